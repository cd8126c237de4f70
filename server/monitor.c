/*  monitor.c: the live monitor actor. See monitor.h and proto/PROTOCOL.md part II.

    Data flow:  ingest workers --PUSH--> [deltas PULL] -> aggregate (O(1) per case)
                clock tick --> new day? rebuild + breach scan; dirty topics older than
                coalesce_ms -> render (exact / disclosed) -> per stream a clone_pub:
                XPUB (seq) + topic cache; its snapshot ROUTER answers SnapshotRequests
    Every socket, the database connection, the aggregate and the calendar belong to this actor
    alone. Its database reads and writes are in monitor_db.c, its breach notices in
    monitor_breaches.c.  */
#include "monitor_private.h"

#include "log.h"
#include "monitor_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#define S_DELTA_BUDGET_MS 20   /* case rows applied before other work gets a turn */
#define S_PUBLISH_BUDGET_US 20000 /* quiet topics rendered before other work gets a turn */
#define S_PUBLISH_SLICE_US 2000   /* held-back topics rendered per pass, the same */
#define S_STATS_MS 10000       /* a counters line this often, when something changed */

/* The coalescing state of a topic (the values themselves are cached by each stream). */
typedef struct {
    int64_t last_ms; /* when it was last published on either stream */
} s_topic_t;

static int64_t s_system_clock(void *arg)
{
    (void)arg;
    return zclock_time() * 1000;
}

int64_t asy_monitor_now_us(asy_monitor_t *self)
{
    return self->clock(self->clock_arg);
}

/* ----------------------------------------------------------------------------------------------
   Publishing. */

static void s_free_topic(void **item)
{
    free(*item);
    *item = NULL;
}

static s_topic_t *s_topic(asy_monitor_t *self, const char *name)
{
    s_topic_t *topic = zhashx_lookup(self->topics, name);
    if (!topic) {
        topic = calloc(1, sizeof *topic);
        if (topic)
            zhashx_insert(self->topics, name, topic);
    }
    return topic;
}

/* One publishing pass: its clocks, read once (both streams render a topic as of the same
   instant), and the message it renders into. */
typedef struct {
    int64_t now_ms;
    int64_t now_us;
    asy_mmsg_t msg;
} s_pass_t;

/* Renders one changed topic on both streams, publishes what changed, and cleans it. */
static void s_publish_topic(asy_monitor_t *self, s_pass_t *pass, const asy_topic_ref_t *ref,
                            const char *name, s_topic_t *topic)
{
    bool published = false;
    int64_t started = zclock_usecs();
    for (int s = 0; s < ASY_MONITOR_STREAMS; s++) {
        if (asy_aggregate_render(self->aggregate, ref, s == 1, pass->now_us, &pass->msg.update) !=
            0)
            continue;
        self->renders++;
        if (asy_clone_pub_update(self->streams[s], name, &pass->msg)) {
            published = true;
            self->published++;
        }
    }
    self->render_us += zclock_usecs() - started;
    if (published)
        topic->last_ms = pass->now_ms;
    asy_aggregate_clean(self->aggregate, ref);
}

/* The changed topic at ref (its name in name), if publishing it now is due: never published,
   or not within coalesce_ms (quiet: not within two); NULL otherwise or out of memory. */
static s_topic_t *s_due(asy_monitor_t *self, const s_pass_t *pass, const asy_topic_ref_t *ref,
                        char name[ASY_TOPIC_MAX], bool quiet)
{
    asy_aggregate_topic(self->aggregate, ref, name);
    s_topic_t *topic = s_topic(self, name);
    int64_t since = topic && topic->last_ms ? pass->now_ms - topic->last_ms : INT64_MAX;
    return since >= (quiet ? 2 : 1) * self->coalesce_ms ? topic : NULL;
}

/* After new case rows: the topics they changed that were quiet (clean, and not published for
   two coalescing periods: a referral at a quiet site, the benchmark's probes) go out first, in
   the order they changed, before the topics that change all the time, which coalescing holds
   back and releases together: a fresh change does not wait behind that burst. The topics one
   case changed leave together, so each subscriber's connection takes them in one send. What
   the budget leaves is looked at after the next rows. */
static void s_publish_quiet(asy_monitor_t *self, s_pass_t *pass)
{
    int64_t until = zclock_usecs() + S_PUBLISH_BUDGET_US;
    size_t cursor = 0;
    asy_topic_ref_t ref;
    char name[ASY_TOPIC_MAX];
    while (zclock_usecs() < until && asy_aggregate_next_fresh(self->aggregate, &cursor, &ref)) {
        s_topic_t *topic = s_due(self, pass, &ref, name, true);
        if (topic)
            s_publish_topic(self, pass, &ref, name, topic);
    }
    asy_aggregate_forget_fresh(self->aggregate, cursor);
}

/* Publishes the changed topics not published within coalesce_ms, after new case rows the quiet
   ones first. The rest go round robin, S_PUBLISH_SLICE_US at a time (a pass starts where the
   last one ran out of time, so no topic waits behind others for more than one pass): a burst
   of held-back topics is cut into slices between which new rows are taken in. */
static void s_hold(asy_monitor_t *self, bool hold)
{
    for (int s = 0; s < ASY_MONITOR_STREAMS; s++)
        if (hold)
            asy_clone_pub_hold(self->streams[s]);
        else
            asy_clone_pub_release(self->streams[s]);
}

static void s_publish_dirty(asy_monitor_t *self, bool after_deltas)
{
    s_pass_t pass = {zclock_mono(), asy_monitor_now_us(self), {0}};
    asy_mmsg_init(&pass.msg, ASY_MMSG_UPDATE);
    /* each part's updates leave together once rendered (asy_clone_pub_hold): the quiet
       topics first, then the slice */
    if (after_deltas) {
        s_hold(self, true);
        s_publish_quiet(self, &pass);
        s_hold(self, false);
    }
    s_hold(self, true);
    size_t start = self->publish_cursor, cursor = start;
    bool wrapped = start == 0, finished = false;
    asy_topic_ref_t ref;
    char name[ASY_TOPIC_MAX];
    int64_t until = zclock_usecs() + S_PUBLISH_SLICE_US;
    while (zclock_usecs() < until) {
        if (!asy_aggregate_next_dirty(self->aggregate, &cursor, &ref)) {
            finished = wrapped;
            if (wrapped)
                break;
            wrapped = true;
            cursor = 0;
            continue;
        }
        if (wrapped && start > 0 && cursor > start) {
            finished = true;
            break;
        }
        s_topic_t *topic = s_due(self, &pass, &ref, name, false);
        if (topic)
            s_publish_topic(self, &pass, &ref, name, topic);
    }
    s_hold(self, false);
    self->publish_cursor = finished ? 0 : cursor;
    asy_mmsg_release(&pass.msg);
}

/* At start, before READY: every topic the rebuild made, at once. The snapshot service answers
   from what has been published, so a client asking as soon as the broker is ready (`watch
   --once`) gets the whole picture; published in slices, it held a third of it for seconds. */
static void s_publish_everything(asy_monitor_t *self)
{
    s_pass_t pass = {zclock_mono(), asy_monitor_now_us(self), {0}};
    asy_mmsg_init(&pass.msg, ASY_MMSG_UPDATE);
    size_t cursor = 0;
    asy_topic_ref_t ref;
    char name[ASY_TOPIC_MAX];
    while (asy_aggregate_next_dirty(self->aggregate, &cursor, &ref)) {
        s_topic_t *topic = s_due(self, &pass, &ref, name, false);
        if (topic)
            s_publish_topic(self, &pass, &ref, name, topic);
    }
    asy_mmsg_release(&pass.msg);
    self->publish_cursor = 0;
    asy_aggregate_forget_fresh(self->aggregate, SIZE_MAX);
}

static void s_heartbeat(asy_monitor_t *self)
{
    int64_t now_ms = zclock_mono();
    if (now_ms < self->next_heartbeat_ms)
        return;
    self->next_heartbeat_ms = now_ms + self->heartbeat_ms;
    for (int s = 0; s < ASY_MONITOR_STREAMS; s++)
        asy_clone_pub_heartbeat(self->streams[s], asy_monitor_now_us(self), self->heartbeat_ms);
}

/* ----------------------------------------------------------------------------------------------
   Events. */

static void s_apply_outcomes(asy_monitor_t *self, zframe_t *frame)
{
    size_t count = frame ? zframe_size(frame) / sizeof(asy_outcome_view_t) : 0;
    for (size_t i = 0; i < count; i++) {
        asy_outcome_view_t view;
        memcpy(&view, zframe_data(frame) + i * sizeof view, sizeof view);
        if (asy_aggregate_put_outcome(self->aggregate, &view) == ASY_ENOMEM)
            asy_error("monitor: out of memory applying outcomes of case %.12s", view.case_id);
    }
}

static void s_apply_frame(asy_monitor_t *self, zframe_t *frame)
{
    size_t count = zframe_size(frame) / sizeof(asy_case_view_t);
    const asy_case_view_t *views = (const asy_case_view_t *)zframe_data(frame);
    for (size_t i = 0; i < count; i++) {
        asy_case_view_t view;
        memcpy(&view, &views[i], sizeof view);
        bool changed = false;
        if (asy_aggregate_put(self->aggregate, &view, &changed) != 0)
            asy_error("monitor: out of memory applying case %.12s", view.case_id);
        if (changed) {
            self->cases_applied++;
            asy_monitor_check_withdrawals(self, &view);
            asy_monitor_defer_breaches(self, &view);
        }
    }
}

/* Applies queued batches for up to S_DELTA_BUDGET_MS, then lets ticks and snapshot requests
   in. */
static void s_on_deltas(asy_monitor_t *self)
{
    int64_t until = zclock_mono() + S_DELTA_BUDGET_MS;
    do {
        zmsg_t *msg = zmsg_recv_nowait(self->deltas);
        if (!msg)
            break;
        zframe_t *cases = zmsg_pop(msg), *outcomes = zmsg_pop(msg);
        if (cases)
            s_apply_frame(self, cases);
        s_apply_outcomes(self, outcomes); /* after the cases: a reading needs its case */
        zframe_destroy(&cases);
        zframe_destroy(&outcomes);
        zmsg_destroy(&msg);
    } while (zclock_mono() < until);
}

/* What the monitor did since the last line, for operators (as the ingest workers do). */
static void s_log_counters(asy_monitor_t *self)
{
    int64_t now_ms = zclock_mono();
    if (now_ms < self->next_stats_ms)
        return;
    self->next_stats_ms = now_ms + S_STATS_MS;
    uint64_t now[5] = {self->cases_applied, self->renders, self->published, self->breaches,
                       self->withdrawals};
    if (memcmp(now, self->logged, sizeof now) == 0)
        return;
    asy_info("monitor counters: cases_applied=%" PRIu64 " renders=%" PRIu64 " (%.1f us each)"
             " published=%" PRIu64 " breaches=%" PRIu64 " withdrawn=%" PRIu64 " cases=%zu",
             self->cases_applied, self->renders,
             self->renders ? (double)self->render_us / (double)self->renders : 0.0, self->published,
             self->breaches, self->withdrawals, asy_aggregate_case_count(self->aggregate));
    memcpy(self->logged, now, sizeof now);
}

/* The aggregate could not be recomputed (out of memory) and must not be used again: the
   monitor stops serving, says so, and waits for $TERM (subscribers see its heartbeats stop). */
static void s_break(asy_monitor_t *self)
{
    asy_error("monitor: out of memory recomputing the figures; the live monitor stops until the "
              "broker is restarted (ingest goes on; its rows are dropped, and the next start "
              "rebuilds the figures from case_state)");
    self->broken = true;
}

/* Re-reads the holiday table and the denominators. A connection that cannot be made again is
   said with the server's reason (the reads would only say the connection is lost). */
static void s_reload(asy_monitor_t *self)
{
    if (!asy_db_alive(self->db) && asy_db_reset(self->db) != 0) {
        asy_warn("monitor: holidays and denominators not re-read: %s", asy_db_errmsg(self->db));
        return;
    }
    asy_calendar_t *calendar = asy_monitor_load_holidays(self);
    if (calendar) {
        int rc = asy_aggregate_set_calendar(self->aggregate, calendar);
        asy_calendar_destroy(&self->calendar);
        self->calendar = calendar;
        if (rc != 0) {
            s_break(self);
            return;
        }
        /* a holiday removed can put a deadline in the past: announced now, as at a midnight;
           at a start, noted for the start-up scan, which announces once subscribers are back */
        asy_aggregate_each_case(
            self->aggregate,
            self->scan_due_ms ? asy_monitor_note_startup_breach : asy_monitor_breach_visit, self);
    }
    asy_monitor_load_population(self);
}

/* New day: everything that depends on the date moves; announce what came due. */
static void s_tick(asy_monitor_t *self)
{
    int64_t now_us = asy_monitor_now_us(self);
    asy_date_t today = asy_london_date(now_us);
    if (zclock_mono() >= self->next_reload_ms) {
        self->next_reload_ms = zclock_mono() + self->reload_ms;
        s_reload(self);
        if (self->broken)
            return;
    }
    if (self->scan_due_ms && zclock_mono() >= self->scan_due_ms) {
        /* the cases found in breach by the rebuild, as they are now */
        self->scan_due_ms = 0;
        asy_breaches_startup(self->breach_book, asy_monitor_recheck, self);
    }
    if (today != asy_aggregate_today(self->aggregate)) {
        if (asy_aggregate_set_today(self->aggregate, today) != 0) {
            s_break(self);
            return;
        }
        asy_aggregate_each_case(self->aggregate, asy_monitor_breach_visit, self);
        char text[ASY_DATE_TEXT];
        asy_info("monitor: day %s: %zu cases recomputed, %" PRIu64 " breaches so far",
                 asy_date_format(today, text), asy_aggregate_case_count(self->aggregate),
                 self->breaches);
    }
    if (asy_breaches_deferred(self->breach_book))
        asy_breaches_due(self->breach_book, zclock_mono(), asy_monitor_recheck, self);
    asy_monitor_session(self);
    asy_breaches_record(self->breach_book, self->db, false);
    s_publish_dirty(self, false);
    s_heartbeat(self);
    s_log_counters(self);
}

/* ----------------------------------------------------------------------------------------------
   Life cycle. */

static void s_on_pipe(asy_monitor_t *self)
{
    char *command = zstr_recv(self->pipe);
    if (!command || streq(command, "$TERM"))
        self->terminated = true;
    else
        asy_warn("monitor: unknown actor command %s", command);
    zstr_free(&command);
}

typedef struct {
    char *endpoints[4];
    char *deltas;
} s_config_t;

/* This monitor's incarnation (PROTOCOL.md 9): random rather than the start time, since
   subscribers only compare it for equality and a clock can repeat itself (stepped back, or
   injected as in the tests), while 64 random bits never plausibly do. Never 0 (not said). */
static int s_incarnation(uint64_t *incarnation)
{
    if (sodium_init() < 0)
        return ASY_EIO;
    do
        randombytes_buf(incarnation, sizeof *incarnation);
    while (*incarnation == 0);
    return 0;
}

static int s_bind_all(asy_monitor_t *self, const s_config_t *config, char resolved[4][256],
                      char *error, size_t error_size)
{
    uint64_t incarnation;
    if (s_incarnation(&incarnation) != 0) {
        snprintf(error, error_size, "no random source for the monitor's incarnation");
        return ASY_EIO;
    }
    asy_info("monitor: incarnation %016" PRIx64, incarnation);
    for (int s = 0; s < ASY_MONITOR_STREAMS; s++) {
        self->streams[s] = asy_clone_pub_new(config->endpoints[2 * s], config->endpoints[2 * s + 1],
                                             &resolved[2 * s], error, error_size);
        if (!self->streams[s])
            return ASY_EIO;
        asy_clone_pub_set_exact(self->streams[s], s == 1);
        asy_clone_pub_set_incarnation(self->streams[s], incarnation);
    }
    /* zpoller reports the first ready socket in this order: control and snapshot requests
       before the (possibly long) queue of case rows */
    self->poller = zpoller_new(self->pipe, asy_clone_pub_router(self->streams[0]),
                               asy_clone_pub_router(self->streams[1]), self->deltas,
                               asy_clone_pub_xpub(self->streams[0]),
                               asy_clone_pub_xpub(self->streams[1]), NULL);
    if (!self->poller) {
        snprintf(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    zpoller_set_nonstop(self->poller, true);
    return 0;
}

static void s_serve(asy_monitor_t *self)
{
    int tick_ms = self->coalesce_ms / 4 > 0 ? self->coalesce_ms / 4 : 1;
    if (tick_ms > 100)
        tick_ms = 100;
    int64_t next_tick = 0;
    while (!self->terminated && !self->broken) {
        int64_t wait = next_tick - zclock_mono();
        void *which = zpoller_wait(self->poller, wait > 0 ? (int)wait : 0);
        if (which == self->pipe)
            s_on_pipe(self);
        else if (which == self->deltas) {
            s_on_deltas(self);
            s_publish_dirty(self, true); /* a change goes out now if its topic may be published */
        } else {
            for (int s = 0; s < ASY_MONITOR_STREAMS; s++) {
                if (which == asy_clone_pub_router(self->streams[s]))
                    asy_clone_pub_serve_snapshot(self->streams[s]);
                else if (which == asy_clone_pub_xpub(self->streams[s]))
                    asy_clone_pub_take_subscription(self->streams[s]);
            }
        }
        if (zclock_mono() >= next_tick) {
            s_tick(self);
            next_tick = zclock_mono() + tick_ms;
        }
    }
}

static asy_monitor_t *s_monitor_new(zsock_t *pipe, const asy_monitor_args_t *args)
{
    asy_monitor_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->conninfo = strdup(args->conninfo ? args->conninfo : "");
    self->clock = args->clock ? args->clock : s_system_clock;
    self->clock_arg = args->clock_arg;
    self->coalesce_ms = args->coalesce_ms > 0 ? args->coalesce_ms : 100;
    self->heartbeat_ms = args->heartbeat_ms > 0 ? args->heartbeat_ms : 1000;
    self->reload_ms = args->reload_ms > 0 ? args->reload_ms : 10000;
    self->breach_grace_ms = args->breach_grace_ms > 0 ? args->breach_grace_ms : 30000;
    self->history_years = args->history_years > 0 ? args->history_years : 2;
    self->topics = zhashx_new();
    self->breach_book = asy_breaches_new();
    if (!self->conninfo || !self->topics || !self->breach_book) {
        asy_breaches_destroy(&self->breach_book);
        free(self->conninfo);
        zhashx_destroy(&self->topics);
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->topics, s_free_topic);
    return self;
}

static void s_monitor_destroy(asy_monitor_t **self_p)
{
    asy_monitor_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy(&self->poller);
    zsock_destroy(&self->deltas);
    for (int s = 0; s < ASY_MONITOR_STREAMS; s++)
        asy_clone_pub_destroy(&self->streams[s]);
    asy_aggregate_destroy(&self->aggregate);
    asy_calendar_destroy(&self->calendar);
    if (self->db && self->breach_book) /* the last tick's announcements */
        asy_breaches_record(self->breach_book, self->db, true); /* last chance */
    asy_db_destroy(&self->db);
    zhashx_destroy(&self->topics);
    asy_breaches_destroy(&self->breach_book);
    free(self->holidays_text);
    free(self->denominators_text);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}

/* Database, calendar, denominators, rebuild, the breaches that came due while we were down. */
static int s_start(asy_monitor_t *self, char *error, size_t error_size)
{
    int rc = asy_monitor_connect(self);
    if (rc != 0) {
        snprintf(error, error_size, "%s",
                 rc == ASY_ENOMEM ? "out of memory" : "stopped before the database was available");
        return rc;
    }
    self->calendar = asy_monitor_load_holidays(self);
    if (!self->calendar)
        self->calendar = asy_calendar_new();
    int64_t now_us = asy_monitor_now_us(self);
    self->aggregate = self->calendar ? asy_aggregate_new(self->calendar, self->history_years,
                                                         asy_london_date(now_us))
                                     : NULL;
    if (!self->aggregate) {
        snprintf(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    asy_monitor_load_population(self);
    int64_t started = zclock_mono();
    rc = asy_monitor_rebuild(self);
    if (rc != 0) {
        snprintf(error, error_size, "rebuild from case_state failed: %s",
                 asy_db_errmsg(self->db));
        return rc;
    }
    asy_info("monitor: rebuilt from case_state: %zu cases, %zu breaches announced before, "
             "%" PRId64 " ms",
             asy_aggregate_case_count(self->aggregate), asy_breaches_count(self->breach_book),
             zclock_mono() - started);
    /* Breaches that came due while we were down are announced once subscribers have had
       two heartbeat intervals to (re)connect to the new publisher; cases that arrive
       meanwhile take the late-arrival path (asy_monitor_defer_breaches). */
    asy_aggregate_each_case(self->aggregate, asy_monitor_note_startup_breach, self);
    self->scan_due_ms = zclock_mono() + 2 * self->heartbeat_ms;
    self->next_reload_ms = zclock_mono() + self->reload_ms;
    return 0;
}

/* Receives and drops every queued part of the deltas socket, without allocating; returns how
   many batches went. */
static uint64_t s_drop_deltas(zsock_t *deltas)
{
    uint64_t dropped = 0;
    zmq_msg_t part;
    zmq_msg_init(&part);
    while (zmq_msg_recv(&part, zsock_resolve(deltas), ZMQ_DONTWAIT) >= 0)
        dropped += !zmq_msg_more(&part);
    zmq_msg_close(&part);
    return dropped;
}

/* A monitor that failed or broke serves nothing more but must not return before $TERM
   (zactor_destroy sends it and waits for the actor). A broken one keeps taking the rows
   ingest hands it and drops them: ingest goes on, and without this they would pile up in the
   broker's memory until $TERM (the next start rebuilds the figures from case_state). */
static void s_wait_for_term(asy_monitor_t *self, zsock_t *pipe)
{
    uint64_t dropped = 0;
    while (self && !self->terminated) {
        zmq_pollitem_t items[2] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
            {self->deltas ? zsock_resolve(self->deltas) : NULL, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, self->deltas ? 2 : 1, -1) < 0) {
            self->terminated = errno != EINTR; /* the context is ending */
            continue;
        }
        if (items[1].revents & ZMQ_POLLIN)
            dropped += s_drop_deltas(self->deltas);
        if (items[0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv(pipe);
            self->terminated = !command || streq(command, "$TERM");
            zstr_free(&command);
        }
    }
    if (dropped)
        asy_warn("monitor: %" PRIu64 " committed batch(es) not applied while broken", dropped);
}

void asy_monitor_actor(zsock_t *pipe, void *args_)
{
    const asy_monitor_args_t *args = args_;
    s_config_t config = {
        {strdup(args->public_endpoint ? args->public_endpoint : ASY_MONITOR_PUBLIC),
         strdup(args->public_snapshot ? args->public_snapshot : ASY_MONITOR_PUBLIC_SNAPSHOT),
         strdup(args->restricted_endpoint ? args->restricted_endpoint : ASY_MONITOR_RESTRICTED),
         strdup(args->restricted_snapshot ? args->restricted_snapshot
                                          : ASY_MONITOR_RESTRICTED_SNAPSHOT)},
        strdup(args->deltas_endpoint ? args->deltas_endpoint : ASY_MONITOR_DELTAS)};
    asy_monitor_t *self = s_monitor_new(pipe, args);
    zsock_signal(pipe, 0); /* args copied */

    char error[512] = "out of memory", resolved[4][256];
    int rc = self && config.deltas ? 0 : ASY_ENOMEM;
    if (rc == 0) {
        /* no high-water mark: a committed batch's rows must never be dropped */
        self->deltas = zsock_new(ZMQ_PULL);
        if (self->deltas)
            zsock_set_rcvhwm(self->deltas, 0);
        if (!self->deltas || zsock_bind(self->deltas, "%s", config.deltas) < 0) {
            snprintf(error, sizeof error, "cannot bind %s", config.deltas);
            rc = ASY_EIO;
        }
    }
    if (rc == 0)
        rc = s_start(self, error, sizeof error);
    if (rc == 0)
        rc = s_bind_all(self, &config, resolved, error, sizeof error);
    if (rc == 0) {
        int64_t started = zclock_mono();
        s_publish_everything(self);
        asy_info("monitor: %" PRIu64 " topic values published for the first snapshot, %" PRId64
                 " ms",
                 self->published, zclock_mono() - started);
        zstr_sendx(pipe, "READY", resolved[0], resolved[1], resolved[2], resolved[3], NULL);
        asy_info("monitor: public %s (snapshot %s), restricted %s (snapshot %s)", resolved[0],
                 resolved[1], resolved[2], resolved[3]);
        s_serve(self);
        if (self->broken)
            s_wait_for_term(self, pipe);
        asy_info("monitor: stopped; %" PRIu64 " case updates applied, %" PRIu64
                 " breaches (%" PRIu64 " withdrawn), %" PRIu64
                 " topic values computed (%.1f us each), %" PRIu64 " updates published",
                 self->cases_applied, self->breaches, self->withdrawals, self->renders,
                 self->renders ? (double)self->render_us / (double)self->renders : 0.0,
                 self->published);
    } else if (!self || !self->terminated) {
        zstr_sendx(pipe, "FAILED", error, NULL);
        asy_error("monitor: %s", error);
        s_wait_for_term(self, pipe);
    }
    s_monitor_destroy(&self);
    for (int i = 0; i < 4; i++)
        free(config.endpoints[i]);
    free(config.deltas);
}

int asy_monitor_wait_ready(zactor_t *actor, int timeout_ms, asy_monitor_endpoints_t *endpoints,
                           char *error, size_t error_size)
{
    zpoller_t *poller = zpoller_new(actor, NULL);
    if (!poller) {
        snprintf(error, error_size, "out of memory");
        return ASY_EIO;
    }
    void *which = zpoller_wait(poller, timeout_ms);
    zpoller_destroy(&poller);
    if (!which) {
        snprintf(error, error_size, "monitor not ready within %d ms", timeout_ms);
        return ASY_ERETRY;
    }
    zmsg_t *msg = zmsg_recv(actor);
    char *status = msg ? zmsg_popstr(msg) : NULL;
    int rc = 0;
    if (status && streq(status, "READY") && zmsg_size(msg) == 4) {
        char *fields[4] = {endpoints->public_endpoint, endpoints->public_snapshot,
                           endpoints->restricted_endpoint, endpoints->restricted_snapshot};
        for (int i = 0; i < 4; i++) {
            char *text = zmsg_popstr(msg);
            snprintf(fields[i], sizeof endpoints->public_endpoint, "%s", text ? text : "");
            zstr_free(&text);
        }
    } else {
        char *reason = msg ? zmsg_popstr(msg) : NULL;
        snprintf(error, error_size, "%s", reason ? reason : "monitor failed");
        zstr_free(&reason);
        rc = ASY_EIO;
    }
    zstr_free(&status);
    zmsg_destroy(&msg);
    return rc;
}

int asy_monitor_send_cases(zsock_t *push, const asy_case_view_t *views, size_t count,
                           const asy_outcome_view_t *outcomes, size_t outcome_count)
{
    if (count == 0 && outcome_count == 0)
        return 0;
    zmsg_t *msg = zmsg_new();
    if (!msg || zmsg_addmem(msg, views, count * sizeof *views) != 0 ||
        zmsg_addmem(msg, outcomes, outcome_count * sizeof *outcomes) != 0) {
        zmsg_destroy(&msg);
        return ASY_ENOMEM;
    }
    return zmsg_send(&msg, push) == 0 ? 0 : ASY_EIO;
}
