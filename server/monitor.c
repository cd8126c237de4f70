/*  monitor.c: the live monitor actor. See monitor.h and proto/PROTOCOL.md part II.

    Data flow:  ingest workers --PUSH--> [deltas PULL] -> aggregate (O(1) per case)
                clock tick --> new day? rebuild + breach scan; dirty topics older than
                coalesce_ms -> render (exact / disclosed) -> per stream a clone_pub:
                XPUB (seq) + topic cache; its snapshot ROUTER answers SnapshotRequests
    Every socket, the database connection, the aggregate and the calendar belong to this actor
    alone.  */
#include "monitor.h"

#include "aggregate.h"
#include "breaches.h"
#include "clone_pub.h"
#include "db.h"
#include "log.h"
#include "monitor_msg.h"
#include "store.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#define S_STREAMS 2 /* 0 public, 1 restricted */
#define S_FETCH_ROWS "5000"
#define S_RETRY_MS 1000
#define S_DELTA_BUDGET_MS 20   /* case rows applied before other work gets a turn */
#define S_PUBLISH_BUDGET_MS 20 /* topics rendered per tick before other work gets a turn */
#define S_STATS_MS 10000       /* a counters line this often, when something changed */

/* The coalescing state of a topic (the values themselves are cached by each stream). */
typedef struct {
    int64_t last_ms; /* when it was last published on either stream */
} s_topic_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *deltas;
    asy_clone_pub_t *streams[S_STREAMS]; /* [1] is exact (restricted) */
    zpoller_t *poller;
    asy_db_t *db;
    char *conninfo;
    asy_calendar_t *calendar;
    char *holidays_text; /* the holiday table as last loaded, to notice a change */
    char *denominators_text; /* the same for the denominator table */
    asy_aggregate_t *aggregate;
    zhashx_t *topics;    /* topic -> s_topic_t */
    asy_breaches_t *breach_book; /* announced, to record, deferred, found at start-up */
    asy_clock_fn *clock;
    void *clock_arg;
    int coalesce_ms;
    int heartbeat_ms;
    int reload_ms;
    int breach_grace_ms;
    int history_years;
    int64_t next_heartbeat_ms;
    int64_t scan_due_ms;   /* start-up breach scan, once subscribers have had time to connect */
    size_t publish_cursor; /* where the last publishing pass stopped (round robin) */
    unsigned session_generation; /* db generation our session settings were applied in */
    int64_t next_reload_ms;
    uint64_t cases_applied;
    uint64_t renders;    /* topic values computed */
    uint64_t published;  /* MetricUpdates sent (both streams) */
    int64_t render_us;   /* time spent computing and publishing them */
    uint64_t breaches;
    uint64_t withdrawals; /* breach notices withdrawn */
    int64_t next_stats_ms;
    uint64_t logged[5]; /* cases_applied, renders, published, breaches, withdrawals logged */
    bool terminated;
} s_monitor_t;

static int64_t s_system_clock(void *arg)
{
    (void)arg;
    return zclock_time() * 1000;
}

static int64_t s_now_us(s_monitor_t *self)
{
    return self->clock(self->clock_arg);
}

/* ----------------------------------------------------------------------------------------------
   The database: holidays, population, announced breaches, the rebuild. */

static int s_holiday_row(void *arg, int columns, const char *const *values)
{
    asy_calendar_t *calendar = arg;
    asy_date_t day;
    if (columns != 2 || !values[0] || !values[1] || asy_date_parse(values[0], &day) != 0)
        return 0;
    asy_calendar_add(calendar, day,
                     strcmp(values[1], "removed") == 0 ? ASY_HOLIDAY_REMOVED
                                                       : ASY_HOLIDAY_ADDED);
    return 0;
}

/* Reads the holiday table; if it changed since the last call, returns a new calendar with it
   (caller owns), else NULL. */
static asy_calendar_t *s_load_holidays(s_monitor_t *self)
{
    asy_db_row_t row;
    if (asy_db_query_row(
            self->db,
            "SELECT coalesce(string_agg(to_char(day, 'YYYY-MM-DD') || ' ' || change, ', '"
            " ORDER BY day), '') FROM holiday",
            false, 0, NULL, &row) != 0) {
        asy_warn("monitor: holidays not read: %s", asy_db_errmsg(self->db));
        return NULL;
    }
    asy_calendar_t *calendar = NULL;
    if (!self->holidays_text || strcmp(self->holidays_text, row.values[0]) != 0) {
        calendar = asy_calendar_new();
        if (calendar &&
            asy_db_query_each(self->db, "SELECT to_char(day, 'YYYY-MM-DD'), change FROM holiday",
                              false, 0, NULL, s_holiday_row, calendar) == 0) {
            free(self->holidays_text);
            self->holidays_text = strdup(row.values[0]);
            asy_info("monitor: holiday table loaded (%s)",
                     *row.values[0] ? row.values[0] : "no overrides");
        } else {
            asy_calendar_destroy(&calendar);
        }
    }
    asy_db_row_release(&row);
    return calendar;
}

static int s_population_row(void *arg, int columns, const char *const *values)
{
    if (columns == 3 && values[0] && values[1] && values[2])
        asy_aggregate_set_population(arg, atoi(values[0]), atoi(values[1]), atof(values[2]));
    return 0;
}

static void s_load_population(s_monitor_t *self)
{
    asy_aggregate_clear_population(self->aggregate);
    if (asy_db_query_each(self->db,
                          "SELECT ethnicity_ons, age_band, sum(population) FROM denominator"
                          " GROUP BY 1, 2",
                          false, 0, NULL, s_population_row, self->aggregate) != 0) {
        asy_warn("monitor: denominators not read: %s", asy_db_errmsg(self->db));
        return;
    }
    /* said when the table changed (as the holidays are), so a load can be seen to arrive */
    asy_db_row_t row;
    if (asy_db_query_row(self->db,
                         "SELECT count(*) || ' rows, ' || count(DISTINCT area_code) || ' area(s)'"
                         " FROM denominator",
                         false, 0, NULL, &row) == 0) {
        if (!self->denominators_text || strcmp(self->denominators_text, row.values[0]) != 0) {
            asy_info("monitor: denominators loaded (%s)", row.values[0]);
            free(self->denominators_text);
            self->denominators_text = strdup(row.values[0]);
        }
        asy_db_row_release(&row);
    }
}

static int s_case_row(void *arg, int columns, const char *const *values)
{
    s_monitor_t *self = arg;
    asy_case_view_t view;
    if (asy_case_view_parse(columns, values, &view) != 0) {
        asy_warn("monitor: case_state row %s not understood; skipped",
                 values[0] ? values[0] : "?");
        return 0;
    }
    return asy_aggregate_put(self->aggregate, &view, NULL);
}

static int s_outcome_row(void *arg, int columns, const char *const *values)
{
    s_monitor_t *self = arg;
    asy_outcome_view_t view;
    if (asy_outcome_view_parse(columns, values, &view) != 0)
        return 0;
    int rc = asy_aggregate_put_outcome(self->aggregate, &view);
    return rc == ASY_ENOMEM ? rc : 0;
}

/* One FETCH's rows, counted on their way to fn (an empty FETCH ends the cursor). */
typedef struct {
    asy_db_row_fn *fn;
    s_monitor_t *self;
    uint64_t rows;
} s_fetch_t;

static int s_fetched_row(void *arg, int columns, const char *const *values)
{
    s_fetch_t *fetch = arg;
    fetch->rows++;
    return fetch->fn(fetch->self, columns, values);
}

/* Reads a whole table through a cursor (bounded memory), inside the open transaction. */
static int s_read_table(s_monitor_t *self, const char *columns, const char *table,
                        asy_db_row_fn *fn)
{
    char declare[2048];
    snprintf(declare, sizeof declare, "DECLARE asy_monitor_rows NO SCROLL CURSOR FOR SELECT %s"
             " FROM %s", columns, table);
    int rc = asy_db_exec(self->db, declare, 0, NULL, NULL);
    s_fetch_t fetch = {fn, self, 1};
    while (rc == 0 && fetch.rows > 0) {
        fetch.rows = 0;
        rc = asy_db_query_each(self->db, "FETCH " S_FETCH_ROWS " FROM asy_monitor_rows", false,
                               0, NULL, s_fetched_row, &fetch);
    }
    if (rc == 0)
        rc = asy_db_exec(self->db, "CLOSE asy_monitor_rows", 0, NULL, NULL);
    return rc;
}

/* Reads every case_state row, then every outcome_state row, in one snapshot. */
static int s_rebuild(s_monitor_t *self)
{
    int rc = asy_db_exec(self->db, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL);
    if (rc == 0)
        rc = s_read_table(self, ASY_CASE_VIEW_COLUMNS, "case_state", s_case_row);
    if (rc == 0)
        rc = s_read_table(self, ASY_OUTCOME_VIEW_COLUMNS, "outcome_state", s_outcome_row);
    if (rc == 0)
        rc = asy_db_commit(self->db);
    if (rc == 0)
        rc = asy_breaches_load(self->breach_book, self->db);
    if (rc != 0)
        asy_db_rollback(self->db);
    return rc;
}

/* The monitor's only writes (breach records) need not wait for the WAL flush: a record lost
   in a crash only means the breach is announced once more after the restart. A reconnect
   (asy_db_reset, here or in breaches.c) starts a new session: applied again then. */
static int s_session(s_monitor_t *self)
{
    if (self->session_generation == asy_db_generation(self->db))
        return 0;
    int rc = asy_db_exec(self->db, "SET synchronous_commit = off", 0, NULL, NULL);
    if (rc == 0)
        self->session_generation = asy_db_generation(self->db);
    return rc;
}

/* Connects (the schema migrated first), retrying every S_RETRY_MS until the database is ready.
   Returns 0, ASY_ERETRY if the actor was told to stop first, or ASY_ENOMEM. */
static int s_connect(s_monitor_t *self)
{
    char error[512];
    for (int attempt = 1; !self->terminated; attempt++) {
        /* the schema may not exist yet: migrate (under the advisory lock) as ingest does */
        asy_store_t *store = asy_store_new(self->conninfo, error, sizeof error);
        if (store)
            self->db = asy_db_connect(self->conninfo, "advsyncd-monitor", error, sizeof error);
        if (self->db)
            asy_db_set_label(self->db, "monitor");
        asy_store_destroy(&store);
        self->session_generation = 0;
        if (self->db && s_session(self) == 0 &&
            asy_db_exec(self->db, "SELECT 1 FROM case_state, outcome_state, holiday, denominator"
                                              " LIMIT 0", 0, NULL, NULL) == 0)
            return 0;
        if (self->db)
            snprintf(error, sizeof error, "schema not ready: %s", asy_db_errmsg(self->db));
        asy_db_destroy(&self->db);
        asy_warn("monitor: database not ready (attempt %d): %s; retrying in %d ms", attempt, error,
                 S_RETRY_MS);
        zpoller_t *poller = zpoller_new(self->pipe, NULL);
        if (!poller)
            return ASY_ENOMEM; /* FAILED and logged by the actor, as other allocation failures */
        if (zpoller_wait(poller, S_RETRY_MS) == self->pipe) {
            char *command = zstr_recv(self->pipe);
            self->terminated = !command || streq(command, "$TERM");
            zstr_free(&command);
        }
        zpoller_destroy(&poller);
    }
    return ASY_ERETRY;
}

/* ----------------------------------------------------------------------------------------------
   Publishing. */

static void s_free_topic(void **item)
{
    free(*item);
    *item = NULL;
}

static s_topic_t *s_topic(s_monitor_t *self, const char *name)
{
    s_topic_t *topic = zhashx_lookup(self->topics, name);
    if (!topic) {
        topic = calloc(1, sizeof *topic);
        if (topic)
            zhashx_insert(self->topics, name, topic);
    }
    return topic;
}

/* Publishes every changed topic not published within coalesce_ms. */
static void s_publish_dirty(s_monitor_t *self)
{
    int64_t now_ms = zclock_mono(), now_us = s_now_us(self);
    /* round robin: start where the last pass ran out of time, so that no topic waits behind
       others for more than one pass */
    size_t start = self->publish_cursor, cursor = start;
    bool wrapped = start == 0, finished = false;
    asy_topic_ref_t ref;
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_UPDATE);
    int64_t until = now_ms + S_PUBLISH_BUDGET_MS;
    while (zclock_mono() < until) {
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
        char name[ASY_TOPIC_MAX];
        asy_aggregate_topic(self->aggregate, &ref, name);
        s_topic_t *topic = s_topic(self, name);
        if (!topic)
            break;
        if (topic->last_ms && now_ms - topic->last_ms < self->coalesce_ms)
            continue;
        bool published = false;
        int64_t started = zclock_usecs();
        for (int s = 0; s < S_STREAMS; s++) {
            if (asy_aggregate_render(self->aggregate, &ref, s == 1, now_us, &msg.update) != 0)
                continue;
            self->renders++;
            if (asy_clone_pub_update(self->streams[s], name, &msg)) {
                published = true;
                self->published++;
            }
        }
        self->render_us += zclock_usecs() - started;
        if (published)
            topic->last_ms = now_ms;
        asy_aggregate_clean(self->aggregate, &ref);
    }
    self->publish_cursor = finished ? 0 : cursor;
    asy_mmsg_release(&msg);
}

static void s_heartbeat(s_monitor_t *self)
{
    int64_t now_ms = zclock_mono();
    if (now_ms < self->next_heartbeat_ms)
        return;
    self->next_heartbeat_ms = now_ms + self->heartbeat_ms;
    for (int s = 0; s < S_STREAMS; s++)
        asy_clone_pub_heartbeat(self->streams[s], s_now_us(self), self->heartbeat_ms);
}

/* ----------------------------------------------------------------------------------------------
   Breaches. */

/* One BreachNotice on site/<site>/breach of the restricted stream. */
static void s_publish_notice(s_monitor_t *self, const asy_case_view_t *view, const char *site_id,
                             int kind, asy_date_t deadline, bool withdrawn)
{
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_BREACH);
    snprintf(msg.breach.case_id, sizeof msg.breach.case_id, "%s", view->case_id);
    snprintf(msg.breach.site_id, sizeof msg.breach.site_id, "%s", site_id);
    msg.breach.kind = kind;
    msg.breach.received = view->received;
    msg.breach.deadline = deadline;
    msg.breach.detected_at_us = s_now_us(self);
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
static void s_announce(s_monitor_t *self, const asy_case_view_t *view, int kind,
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
static bool s_undone(const s_monitor_t *self, const asy_case_view_t *view, int kind)
{
    const asy_breach_notice_t *notice =
        asy_breaches_standing(self->breach_book, view->case_id, kind);
    return notice && asy_aggregate_settled(view, kind, notice->deadline);
}

/* Publishes the withdrawal of a standing notice, once, on the topic (site) it was announced
   on; the book queues its record. */
static void s_withdraw(s_monitor_t *self, const asy_case_view_t *view, int kind)
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
static void s_check_breaches(s_monitor_t *self, const asy_case_view_t *view)
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
static void s_check_withdrawals(s_monitor_t *self, const asy_case_view_t *view)
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

static void s_breach_visit(void *arg, const asy_case_view_t *view)
{
    s_check_breaches(arg, view);
}

/* Start-up: remembers a case the rebuild found in breach, or whose standing notice it no
   longer supports (announced or withdrawn a little later, once subscribers are back). */
static void s_note_startup_breach(void *arg, const asy_case_view_t *view)
{
    s_monitor_t *self = arg;
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
static void s_defer_breaches(s_monitor_t *self, const asy_case_view_t *view)
{
    asy_date_t deadlines[2];
    if (asy_aggregate_breaches(self->aggregate, view, deadlines))
        asy_breaches_defer(self->breach_book, view->case_id,
                           zclock_mono() + self->breach_grace_ms);
}

/* A held or start-up case, as it is now. */
static void s_recheck(void *arg, const char *case_id)
{
    s_monitor_t *self = arg;
    const asy_case_view_t *view = asy_aggregate_case(self->aggregate, case_id);
    if (view)
        s_check_breaches(self, view);
}

/* ----------------------------------------------------------------------------------------------
   Events. */

static void s_apply_outcomes(s_monitor_t *self, zframe_t *frame)
{
    size_t count = frame ? zframe_size(frame) / sizeof(asy_outcome_view_t) : 0;
    for (size_t i = 0; i < count; i++) {
        asy_outcome_view_t view;
        memcpy(&view, zframe_data(frame) + i * sizeof view, sizeof view);
        if (asy_aggregate_put_outcome(self->aggregate, &view) == ASY_ENOMEM)
            asy_error("monitor: out of memory applying outcomes of case %.12s", view.case_id);
    }
}

static void s_apply_frame(s_monitor_t *self, zframe_t *frame)
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
            s_check_withdrawals(self, &view);
            s_defer_breaches(self, &view);
        }
    }
}

/* Applies queued batches for up to S_DELTA_BUDGET_MS, then lets ticks and snapshot requests
   in. */
static void s_on_deltas(s_monitor_t *self)
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
static void s_log_counters(s_monitor_t *self)
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

/* Re-reads the holiday table and the denominators. A connection that cannot be made again is
   said with the server's reason (the reads would only say the connection is lost). */
static void s_reload(s_monitor_t *self)
{
    if (!asy_db_alive(self->db) && asy_db_reset(self->db) != 0) {
        asy_warn("monitor: holidays and denominators not re-read: %s", asy_db_errmsg(self->db));
        return;
    }
    asy_calendar_t *calendar = s_load_holidays(self);
    if (calendar) {
        asy_aggregate_set_calendar(self->aggregate, calendar);
        asy_calendar_destroy(&self->calendar);
        self->calendar = calendar;
        /* a holiday removed can put a deadline in the past: announced now, as at a midnight;
           at a start, noted for the start-up scan, which announces once subscribers are back */
        asy_aggregate_each_case(self->aggregate,
                                self->scan_due_ms ? s_note_startup_breach : s_breach_visit, self);
    }
    s_load_population(self);
}

/* New day: everything that depends on the date moves; announce what came due. */
static void s_tick(s_monitor_t *self)
{
    int64_t now_us = s_now_us(self);
    asy_date_t today = asy_london_date(now_us);
    if (zclock_mono() >= self->next_reload_ms) {
        self->next_reload_ms = zclock_mono() + self->reload_ms;
        s_reload(self);
    }
    if (self->scan_due_ms && zclock_mono() >= self->scan_due_ms) {
        /* the cases found in breach by the rebuild, as they are now */
        self->scan_due_ms = 0;
        asy_breaches_startup(self->breach_book, s_recheck, self);
    }
    if (today != asy_aggregate_today(self->aggregate)) {
        asy_aggregate_set_today(self->aggregate, today);
        asy_aggregate_each_case(self->aggregate, s_breach_visit, self);
        char text[ASY_DATE_TEXT];
        asy_info("monitor: day %s: %zu cases recomputed, %" PRIu64 " breaches so far",
                 asy_date_format(today, text), asy_aggregate_case_count(self->aggregate),
                 self->breaches);
    }
    if (asy_breaches_deferred(self->breach_book))
        asy_breaches_due(self->breach_book, zclock_mono(), s_recheck, self);
    s_session(self);
    asy_breaches_record(self->breach_book, self->db, false);
    s_publish_dirty(self);
    s_heartbeat(self);
    s_log_counters(self);
}

/* ----------------------------------------------------------------------------------------------
   Life cycle. */

static void s_on_pipe(s_monitor_t *self)
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

static int s_bind_all(s_monitor_t *self, const s_config_t *config, char resolved[4][256],
                      char *error, size_t error_size)
{
    uint64_t incarnation;
    if (s_incarnation(&incarnation) != 0) {
        snprintf(error, error_size, "no random source for the monitor's incarnation");
        return ASY_EIO;
    }
    asy_info("monitor: incarnation %016" PRIx64, incarnation);
    for (int s = 0; s < S_STREAMS; s++) {
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

static void s_serve(s_monitor_t *self)
{
    int tick_ms = self->coalesce_ms / 4 > 0 ? self->coalesce_ms / 4 : 1;
    if (tick_ms > 100)
        tick_ms = 100;
    int64_t next_tick = 0;
    while (!self->terminated) {
        int64_t wait = next_tick - zclock_mono();
        void *which = zpoller_wait(self->poller, wait > 0 ? (int)wait : 0);
        if (which == self->pipe)
            s_on_pipe(self);
        else if (which == self->deltas) {
            s_on_deltas(self);
            s_publish_dirty(self); /* a change goes out now if its topic may be published */
        } else {
            for (int s = 0; s < S_STREAMS; s++) {
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

static s_monitor_t *s_monitor_new(zsock_t *pipe, const asy_monitor_args_t *args)
{
    s_monitor_t *self = calloc(1, sizeof *self);
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

static void s_monitor_destroy(s_monitor_t **self_p)
{
    s_monitor_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy(&self->poller);
    zsock_destroy(&self->deltas);
    for (int s = 0; s < S_STREAMS; s++)
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
static int s_start(s_monitor_t *self, char *error, size_t error_size)
{
    int rc = s_connect(self);
    if (rc != 0) {
        snprintf(error, error_size, "%s",
                 rc == ASY_ENOMEM ? "out of memory" : "stopped before the database was available");
        return rc;
    }
    self->calendar = s_load_holidays(self);
    if (!self->calendar)
        self->calendar = asy_calendar_new();
    int64_t now_us = s_now_us(self);
    self->aggregate = self->calendar ? asy_aggregate_new(self->calendar, self->history_years,
                                                         asy_london_date(now_us))
                                     : NULL;
    if (!self->aggregate) {
        snprintf(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    s_load_population(self);
    int64_t started = zclock_mono();
    rc = s_rebuild(self);
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
       meanwhile take the late-arrival path (s_defer_breaches). */
    asy_aggregate_each_case(self->aggregate, s_note_startup_breach, self);
    self->scan_due_ms = zclock_mono() + 2 * self->heartbeat_ms;
    self->next_reload_ms = zclock_mono() + self->reload_ms;
    return 0;
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
    s_monitor_t *self = s_monitor_new(pipe, args);
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
        zstr_sendx(pipe, "READY", resolved[0], resolved[1], resolved[2], resolved[3], NULL);
        asy_info("monitor: public %s (snapshot %s), restricted %s (snapshot %s)", resolved[0],
                 resolved[1], resolved[2], resolved[3]);
        s_serve(self);
        asy_info("monitor: stopped; %" PRIu64 " case updates applied, %" PRIu64
                 " breaches (%" PRIu64 " withdrawn), %" PRIu64
                 " topic values computed (%.1f us each), %" PRIu64 " updates published",
                 self->cases_applied, self->breaches, self->withdrawals, self->renders,
                 self->renders ? (double)self->render_us / (double)self->renders : 0.0,
                 self->published);
    } else if (!self || !self->terminated) {
        zstr_sendx(pipe, "FAILED", error, NULL);
        asy_error("monitor: %s", error);
        while (self && !self->terminated) {
            char *command = zstr_recv(pipe);
            self->terminated = !command || streq(command, "$TERM");
            zstr_free(&command);
        }
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
    void *which = poller ? zpoller_wait(poller, timeout_ms) : NULL;
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
