/*  aggregate.h: the monitor's figures, kept incrementally in memory (pure: no I/O, no clock).

    The aggregate holds one asy_case_view_t per case and, per scope (the consortium and each
    site) and period (the months, financial quarters and financial years of the window, see
    proto/PROTOCOL.md 10), the counters the metrics M1-M13 are computed from. Putting a case
    replaces its old contribution by its new one: constant work per case, whatever is stored.
    The day matters (open intervals, matured deadlines, the window): asy_aggregate_set_today
    recomputes every contribution from the cases in memory when the date changes.

    Definitions: proto/PROTOCOL.md 12. Topics: "all/<metric>/<period>",
    "site/<site>/<metric>/<period>", "<scope>/M3/now".  */
#ifndef ASY_AGGREGATE_H_INCLUDED
#define ASY_AGGREGATE_H_INCLUDED

#include "asy.h"
#include "calendar.h"
#include "case_view.h"
#include "monitor_msg.h"

typedef struct asy_aggregate asy_aggregate_t;

/* A topic: scope 0 is the consortium, 1.. the sites in order of first sight; period is an
   index of the window, or asy_aggregate_period_count() for "now"; metric 1..13. */
typedef struct {
    int scope;
    int period;
    int metric;
} asy_topic_ref_t;

/* New aggregate for the window of history_years financial years ending with today's.
   calendar is borrowed and must outlive the aggregate. NULL on ENOMEM. */
asy_aggregate_t *asy_aggregate_new(const asy_calendar_t *calendar, int history_years,
                                   asy_date_t today);
void asy_aggregate_destroy(asy_aggregate_t **self_p);

/* Sets today's date: if it differs from the current one, recomputes every contribution (and
   the window) and marks every topic changed. Returns 0 or ASY_ENOMEM; after ASY_ENOMEM from
   this, set_calendar or rebuild the aggregate may only be destroyed. */
int asy_aggregate_set_today(asy_aggregate_t *self, asy_date_t today);
asy_date_t asy_aggregate_today(const asy_aggregate_t *self);

/* Uses another calendar (borrowed; the old one may be freed once this returns) and
   recomputes everything against it. 0 or ASY_ENOMEM (then: destroy only). */
int asy_aggregate_set_calendar(asy_aggregate_t *self, const asy_calendar_t *calendar);

/* Recomputes everything. 0 or ASY_ENOMEM (then: destroy only). */
int asy_aggregate_rebuild(asy_aggregate_t *self);

/* Adds or replaces a case. A view older than the one held (smaller version) is ignored:
   workers commit concurrently, so the newest row of a case may arrive first. A newer view
   that differs from the one held only in its version is kept without touching the figures.
   Returns 0, or ASY_ENOMEM. *changed (may be NULL) says whether the figures may have
   changed. */
int asy_aggregate_put(asy_aggregate_t *self, const asy_case_view_t *view, bool *changed);

/* Adds or replaces a case's Recovery Star readings in one area and edition (M12). A row with
   no more readings than the one held is ignored. Returns 0, ASY_ENOTFOUND if the case is not
   held (its case row comes first), or ASY_ENOMEM. */
int asy_aggregate_put_outcome(asy_aggregate_t *self, const asy_outcome_view_t *outcome);

/* The case held for case_id, or NULL. */
const asy_case_view_t *asy_aggregate_case(const asy_aggregate_t *self, const char *case_id);
size_t asy_aggregate_case_count(const asy_aggregate_t *self);

/* Calls fn for every case held (in no particular order). fn must not look a case up
   (asy_aggregate_case) nor put one: a zhashx lookup moves the cursor of this walk onto the
   item found, and the walk would then never end. */
void asy_aggregate_each_case(const asy_aggregate_t *self,
                             void (*fn)(void *arg, const asy_case_view_t *view), void *arg);

/* Population (denominators, summed over areas): ethnicity_ons 0..19 (0 all groups), age_band
   0..6 (0 all ages). Setting marks the rate topics changed. */
void asy_aggregate_clear_population(asy_aggregate_t *self);
void asy_aggregate_set_population(asy_aggregate_t *self, int ethnicity_ons, int age_band,
                                  double population);
/* The part of that population given by sex (1 male, 2 female, as the Sex enum), for M10's
   age/sex strata; the persons figure above is set on its own and may be larger (areas that
   give no split). */
void asy_aggregate_set_population_by_sex(asy_aggregate_t *self, int ethnicity_ons, int age_band,
                                         int sex, double population);

/* Breaches of a case as of today: deadline passed (the deadline day is before today), no
   contact / meeting on or before it, not declined on or before it. Sets deadline[kind - 1]
   (ASY_NO_DATE if none) and returns a bit mask (1 << (asy_breach_kind_t - 1)). */
unsigned asy_aggregate_breaches(const asy_aggregate_t *self, const asy_case_view_t *view,
                                asy_date_t deadline[2]);

/* True if the case shows the event of kind (asy_breach_kind_t) on or before deadline, or a
   decline on or before it: a breach announced with that deadline no longer stands. Unlike a
   clear bit of asy_aggregate_breaches, a deadline not yet passed does not count. */
bool asy_aggregate_settled(const asy_case_view_t *view, int kind, asy_date_t deadline);

/* Topics. */
int asy_aggregate_scope_count(const asy_aggregate_t *self);
const char *asy_aggregate_scope_name(const asy_aggregate_t *self, int scope); /* "all", site */
int asy_aggregate_period_count(const asy_aggregate_t *self);
/* Iterates the topics changed since they were last cleaned: start with *cursor = 0; returns
   false at the end. */
bool asy_aggregate_next_dirty(asy_aggregate_t *self, size_t *cursor, asy_topic_ref_t *ref);
/* Iterates, in the order they changed, the dirty topics that were clean when they last changed
   and not forgotten since: start with *cursor = 0; returns false at the end. */
bool asy_aggregate_next_fresh(asy_aggregate_t *self, size_t *cursor, asy_topic_ref_t *ref);
/* Forgets the fresh topics a walk with asy_aggregate_next_fresh has passed (cursor where it
   stopped; SIZE_MAX: all of them). They stay dirty until cleaned. */
void asy_aggregate_forget_fresh(asy_aggregate_t *self, size_t cursor);
void asy_aggregate_clean(asy_aggregate_t *self, const asy_topic_ref_t *ref);
/* Writes the topic name of ref. */
void asy_aggregate_topic(const asy_aggregate_t *self, const asy_topic_ref_t *ref,
                         char out[ASY_TOPIC_MAX]);

/* The value of a topic as of now_us: exact (restricted stream) or with disclosure control
   (public stream, PROTOCOL.md 13). update must be initialised (asy_mmsg_init's update);
   its cells are replaced. Returns 0 or ASY_ENOMEM. */
int asy_aggregate_render(const asy_aggregate_t *self, const asy_topic_ref_t *ref, bool exact,
                         int64_t now_us, asy_mupdate_t *update);

#endif
