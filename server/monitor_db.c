/*  monitor_db.c: the monitor's database: the connection (after the schema is migrated), its
    session settings, the holiday and denominator tables, the rebuild from case_state and
    outcome_state. See monitor.c.  */
#include "monitor_private.h"

#include "log.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

#define S_FETCH_ROWS "5000"
#define S_RETRY_MS 1000

/* ----------------------------------------------------------------------------------------------
   The database: holidays, population, announced breaches, the rebuild. */

static int s_holiday_row(void *arg, int columns, const char *const *values)
{
    asy_calendar_t *calendar = arg;
    asy_date_t day;
    if (columns != 2 || !values[0] || !values[1] || asy_date_parse(values[0], &day) != 0) {
        asy_warn("monitor: holiday row \"%s\" not read",
                 columns >= 1 && values[0] ? values[0] : "");
        return 0;
    }
    asy_calendar_add(calendar, day,
                     strcmp(values[1], "removed") == 0 ? ASY_HOLIDAY_REMOVED : ASY_HOLIDAY_ADDED);
    return 0;
}

/* Reads the holiday table; if it changed since the last call, returns a new calendar with it
   (caller owns), else NULL. */
asy_calendar_t *asy_monitor_load_holidays(asy_monitor_t *self)
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

/* One (group, band): persons (the rows by sex counted in), then the part given by sex. */
static int s_population_row(void *arg, int columns, const char *const *values)
{
    if (columns != 5 || !values[0] || !values[1] || !values[2])
        return 0;
    int group = atoi(values[0]), band = atoi(values[1]);
    asy_aggregate_set_population(arg, group, band, atof(values[2]));
    for (int sex = 1; sex <= 2; sex++)
        if (values[2 + sex])
            asy_aggregate_set_population_by_sex(arg, group, band, sex, atof(values[2 + sex]));
    return 0;
}

void asy_monitor_load_population(asy_monitor_t *self)
{
    asy_aggregate_clear_population(self->aggregate);
    if (asy_db_query_each(self->db,
                          "SELECT ethnicity_ons, age_band, sum(population),"
                          " sum(population) FILTER (WHERE sex = 1),"
                          " sum(population) FILTER (WHERE sex = 2)"
                          " FROM denominator GROUP BY 1, 2",
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
    asy_monitor_t *self = arg;
    asy_case_view_t view;
    if (asy_case_view_parse(columns, values, &view) != 0) {
        asy_warn("monitor: case_state row %s not understood; skipped", values[0] ? values[0] : "?");
        return 0;
    }
    return asy_aggregate_put(self->aggregate, &view, NULL);
}

static int s_outcome_row(void *arg, int columns, const char *const *values)
{
    asy_monitor_t *self = arg;
    asy_outcome_view_t view;
    if (asy_outcome_view_parse(columns, values, &view) != 0)
        return 0;
    int rc = asy_aggregate_put_outcome(self->aggregate, &view);
    return rc == ASY_ENOMEM ? rc : 0;
}

/* One FETCH's rows, counted on their way to fn (an empty FETCH ends the cursor). */
typedef struct {
    asy_db_row_fn *fn;
    asy_monitor_t *self;
    uint64_t rows;
} s_fetch_t;

static int s_fetched_row(void *arg, int columns, const char *const *values)
{
    s_fetch_t *fetch = arg;
    fetch->rows++;
    return fetch->fn(fetch->self, columns, values);
}

/* Reads a whole table through a cursor (bounded memory), inside the open transaction. */
static int s_read_table(asy_monitor_t *self, const char *columns, const char *table,
                        asy_db_row_fn *fn)
{
    char declare[2048];
    snprintf(declare, sizeof declare,
             "DECLARE asy_monitor_rows NO SCROLL CURSOR FOR SELECT %s"
             " FROM %s",
             columns, table);
    int rc = asy_db_exec(self->db, declare, 0, NULL, NULL);
    s_fetch_t fetch = {fn, self, 1};
    while (rc == 0 && fetch.rows > 0) {
        fetch.rows = 0;
        rc = asy_db_query_each(self->db, "FETCH " S_FETCH_ROWS " FROM asy_monitor_rows", false, 0,
                               NULL, s_fetched_row, &fetch);
    }
    if (rc == 0)
        rc = asy_db_exec(self->db, "CLOSE asy_monitor_rows", 0, NULL, NULL);
    return rc;
}

/* Reads every case_state row, then every outcome_state row, in one snapshot. */
int asy_monitor_rebuild(asy_monitor_t *self)
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
int asy_monitor_session(asy_monitor_t *self)
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
int asy_monitor_connect(asy_monitor_t *self)
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
        if (self->db && asy_monitor_session(self) == 0 &&
            asy_db_exec(self->db,
                        "SELECT 1 FROM case_state, outcome_state, holiday, denominator"
                        " LIMIT 0",
                        0, NULL, NULL) == 0)
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
