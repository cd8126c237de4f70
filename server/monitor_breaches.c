/*  monitor_breaches.c: the monitor's breach notices (proto/PROTOCOL.md 12.4): announced when a
    deadline passes, deferred for a case row that arrives late, noted at start-up, withdrawn
    when the case no longer supports them. The book of notices is breaches.c. See monitor.c.  */
#include "monitor_private.h"

#include "log.h"
#include "monitor_msg.h"

/* ----------------------------------------------------------------------------------------------
   Breaches. */

/* One BreachNotice on site/<site>/breach of the restricted stream. */
static void s_publish_notice(asy_monitor_t *self, const asy_case_view_t *view, const char *site_id,
                             int kind, asy_date_t deadline, bool withdrawn)
{
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_BREACH);
    snprintf(msg.breach.case_id, sizeof msg.breach.case_id, "%s", view->case_id);
    snprintf(msg.breach.site_id, sizeof msg.breach.site_id, "%s", site_id);
    msg.breach.kind = kind;
    msg.breach.received = view->received;
    msg.breach.deadline = deadline;
    msg.breach.detected_at_us = asy_monitor_now_us(self);
    msg.breach.service = view->service;
    msg.breach.withdrawn = withdrawn;
    char topic[ASY_TOPIC_MAX];
    snprintf(topic, sizeof topic, "site/%s/breach", site_id);
    asy_clone_pub_notice(self->streams[1], topic, &msg);
}

static const char *s_kind_name(int kind)
{
    return kind == ASY_BREACH_CONTACT ? "contact" : "meeting";
}

/* Publishes one breach notice, unless it was announced before; the book queues its record. */
static void s_announce(asy_monitor_t *self, const asy_case_view_t *view, int kind,
                       asy_date_t deadline)
{
    if (!asy_breaches_mark(self->breach_book, view, kind, deadline))
        return; /* announced before */
    s_publish_notice(self, view, view->site_id, kind, deadline, false);
    self->breaches++;
    char deadline_text[ASY_DATE_TEXT];
    asy_debug("monitor: breach %s of case %.12s at %s (deadline %s)", s_kind_name(kind),
              view->case_id, view->site_id, asy_date_format(deadline, deadline_text));
}

/* True if the case has a standing notice of kind that it no longer supports: the event (or a
   decline) on or before the deadline announced. */
static bool s_undone(const asy_monitor_t *self, const asy_case_view_t *view, int kind)
{
    const asy_breach_notice_t *notice =
        asy_breaches_standing(self->breach_book, view->case_id, kind);
    return notice && asy_aggregate_settled(view, kind, notice->deadline);
}

/* Publishes the withdrawal of a standing notice, once, on the topic (site) it was announced
   on; the book queues its record. */
static void s_withdraw(asy_monitor_t *self, const asy_case_view_t *view, int kind)
{
    const asy_breach_notice_t *notice =
        asy_breaches_withdraw(self->breach_book, view->case_id, kind);
    if (!notice)
        return;
    s_publish_notice(self, view, notice->site_id, kind, notice->deadline, true);
    self->withdrawals++;
    asy_info("monitor: %s breach of case %.12s at %s withdrawn: the case now shows it on time",
             s_kind_name(kind), view->case_id, notice->site_id);
}

/* True if the case already shows the event of kind, late or not. A notice says the centre has
   no such event (PROTOCOL.md 12.4): one whose late event is already here (a back-fill of
   history, events that came while the broker was down) is not raised, now or at a later
   midnight; the figures count the breach all the same. */
static bool s_has_event(const asy_case_view_t *view, int kind)
{
    return (kind == ASY_BREACH_CONTACT ? view->contacted : view->met) != ASY_NO_DATE;
}

/* Announces the breaches of a case now (a deadline passed while we watched, or while we were
   down), and withdraws announced ones the case no longer supports. */
static void s_check_breaches(asy_monitor_t *self, const asy_case_view_t *view)
{
    asy_date_t deadlines[2];
    unsigned mask = asy_aggregate_breaches(self->aggregate, view, deadlines);
    for (int kind = ASY_BREACH_CONTACT; kind <= ASY_BREACH_MEETING; kind++)
        if (s_undone(self, view, kind))
            s_withdraw(self, view, kind);
        else if ((mask & (1u << (kind - 1))) && !s_has_event(view, kind))
            s_announce(self, view, kind, deadlines[kind - 1]);
}

/* A changed case with a standing notice it no longer supports: withdrawn at once, or, in the
   first heartbeats after a start (subscribers reconnecting; snapshots hold no notices), with
   the start-up announcements. */
void asy_monitor_check_withdrawals(asy_monitor_t *self, const asy_case_view_t *view)
{
    for (int kind = ASY_BREACH_CONTACT; kind <= ASY_BREACH_MEETING; kind++) {
        if (!s_undone(self, view, kind))
            continue;
        if (self->scan_due_ms)
            asy_breaches_note(self->breach_book, view->case_id);
        else
            s_withdraw(self, view, kind);
    }
}

void asy_monitor_breach_visit(void *arg, const asy_case_view_t *view)
{
    s_check_breaches(arg, view);
}

/* Start-up: remembers a case the rebuild found in breach, or whose standing notice it no
   longer supports (announced or withdrawn a little later, once subscribers are back). */
void asy_monitor_note_startup_breach(void *arg, const asy_case_view_t *view)
{
    asy_monitor_t *self = arg;
    asy_date_t deadlines[2];
    unsigned mask = asy_aggregate_breaches(self->aggregate, view, deadlines);
    bool undone =
        s_undone(self, view, ASY_BREACH_CONTACT) || s_undone(self, view, ASY_BREACH_MEETING);
    if (mask || undone)
        asy_breaches_note(self->breach_book, view->case_id);
}

/* A case row that arrives with a deadline already passed (a site catching up, an import of
   history): its contact or meeting usually follows in the next rows, so it is looked at again
   breach_grace_ms later and announced only if still missing. */
void asy_monitor_defer_breaches(asy_monitor_t *self, const asy_case_view_t *view)
{
    asy_date_t deadlines[2];
    if (asy_aggregate_breaches(self->aggregate, view, deadlines))
        asy_breaches_defer(self->breach_book, view->case_id, zclock_mono() + self->breach_grace_ms);
}

/* A held or start-up case, as it is now. */
void asy_monitor_recheck(void *arg, const char *case_id)
{
    asy_monitor_t *self = arg;
    const asy_case_view_t *view = asy_aggregate_case(self->aggregate, case_id);
    if (view)
        s_check_breaches(self, view);
}
