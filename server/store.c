/*  store.c: the broker's writes to PostgreSQL. See store.h.

    One batch is one transaction of a handful of round trips, whatever its size:
      BEGIN; compare-and-set of agent_stream.committed_seq (0 rows: someone else moved it,
      ROLLBACK, ASY_EEXIST); binary COPY of the valid events into `event`; binary COPY of the
      refused ones into `quarantine`; binary COPY of one merged delta row per case into a
      temporary staging table and one INSERT ... ON CONFLICT into `case_state`; COMMIT.

    case_state merge rules (architecture guarantee 3: the state of a case is a function of the
    SET of its events, whatever order or batching they arrive in)
    ------------------------------------------------------------------------------------------
    Every event has a version  ver = 20-digit zero-padded occurred_at in microseconds since
    1970 (negative clamps to 0) || event_id text (lowercase). vers compare bytewise (COLLATE
    "C"), i.e. by occurred_at, then event_id. "LWW" = last writer wins: the value of the event
    with the greatest ver among the events that carry the value; ties are the same event.
    Every rule is commutative, associative and idempotent (except event_count, a sum, which
    relies on each event being applied once: the agent_stream compare-and-set guarantees it).

      column                       rule                                      events
      person_key                   LWW (person_key_ver)                      any with person_key
      site_id                      site of the earliest event (first_ver = min ver)    any
      status                       LWW (status_ver)                          status-bearing:
                                     referral.received -> referred, referral.eligibility_decided
                                     -> eligible | ineligible, referral.declined -> declined,
                                     waitlist.joined -> waiting, waitlist.left -> allocated,
                                     contact.made -> contacted, meeting.initial_held and
                                     plan.agreed -> active, case.closed -> closed
      service, referral_source     LWW (referral_ver)                        referral.received
      referral_received_at         min(received_at, else occurred_at)        referral.received
      first_contact_at             min(occurred_at)                          contact.made
      initial_meeting_at           min(occurred_at)                          meeting.initial_held
      eligible (NULL/0/1)          LWW (eligible_ver)                        eligibility_decided
      declined_at, decline_reason  LWW (declined_ver)                        referral.declined
      closed_at, closure_reason,   LWW (closed_ver)                          case.closed
        left_before_goals
      legal_status                 LWW (legal_status_ver)                    qualifying.* with a
                                                                             legal status
      qualifying                   LWW (qualifying_ver); .ended -> false     qualifying.*
      qualifying_started_at        min(occurred_at)                          qualifying.started
      ethnicity_ons, nhs_ethnic,   each LWW with its own <column>_ver        person.profile_
        sex, gender, age_band,                                               recorded/updated
        disability, religion,                                                where the field is
        sexual_orientation                                                   nonzero
      equality_optout              OR                                        person.equality_optout
      event_count                  sum                                       all
      first_event_at, last_event_at  min / max(occurred_at)                  all
      updated_at, created_at       wall clock of the last / first write (not part of the state)
    An enumeration value 0 ("not recorded") is stored as NULL.

    The batch's events are folded in C per case with these rules (sorted by case_id, so
    concurrent brokers lock case rows in the same order), then the delta rows are merged into
    case_state in SQL with the same rules: LWW as CASE WHEN EXCLUDED.v > case_state.v, min/max
    as LEAST/GREATEST (which ignore NULLs), sums as +.  */
#include "store.h"
#include "db.h"
#include "log.h"
#include "migrations.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_LOCK_KEY "7310258001" /* pg_advisory_lock key for migrations and partitions */
#define S_VER_SIZE (20 + ASY_UUID_TEXT + 1)
#define S_NO_TIME INT64_MIN
#define S_QUARANTINE_MAX (1024u * 1024u)
#define S_EQUALITY 8

/* The per-case delta: one event's contribution, or the fold of several. ver "" = unset. */
typedef struct {
    char case_id[ASY_PSEUDONYM_HEX + 1];
    char person_key[ASY_PSEUDONYM_HEX + 1];
    char person_key_ver[S_VER_SIZE];
    char site_id[ASY_ID_MAX + 1];
    char first_ver[S_VER_SIZE];
    char status[16];
    char status_ver[S_VER_SIZE];
    int service;
    int referral_source;
    char referral_ver[S_VER_SIZE];
    int64_t referral_received_at;
    int64_t first_contact_at;
    int64_t initial_meeting_at;
    int eligible; /* -1 = NULL */
    char eligible_ver[S_VER_SIZE];
    int64_t declined_at;
    int decline_reason;
    char declined_ver[S_VER_SIZE];
    int64_t closed_at;
    int closure_reason;
    bool left_before_goals;
    char closed_ver[S_VER_SIZE];
    int legal_status;
    char legal_status_ver[S_VER_SIZE];
    bool qualifying;
    char qualifying_ver[S_VER_SIZE];
    int64_t qualifying_started_at;
    int equality[S_EQUALITY];
    char equality_ver[S_EQUALITY][S_VER_SIZE];
    bool equality_optout;
    int64_t event_count;
    int64_t first_event_at;
    int64_t last_event_at;
} s_case_t;

/* How each case_state column is written (type) and merged (rule). */
typedef enum { S_TEXT, S_INT, S_FLAG, S_BOOL, S_TIME, S_COUNT } s_type_t;
typedef enum { S_KEY, S_LWW, S_FIRST, S_VER_MAX, S_VER_MIN, S_MIN, S_MAX, S_SUM, S_OR } s_rule_t;

typedef struct {
    const char *name;
    s_type_t type;
    s_rule_t rule;
    size_t offset;
    const char *ver; /* S_LWW / S_FIRST: the column holding the version */
    size_t ver_offset;
} s_column_t;

#define S_COL(name, type, rule)                                                                    \
    {                                                                                              \
#name, type, rule, offsetof(s_case_t, name), NULL, 0                                       \
    }
#define S_LWW_COL(name, type, ver)                                                                 \
    {                                                                                              \
#name, type, S_LWW, offsetof(s_case_t, name), #ver, offsetof(s_case_t, ver)                \
    }
#define S_EQ_COL(name, i)                                                                          \
    {#name,        S_INT,                                                                          \
     S_LWW,        offsetof(s_case_t, equality) + (i) * sizeof(int),                               \
     #name "_ver", offsetof(s_case_t, equality_ver) + (i)*S_VER_SIZE},                             \
    {                                                                                              \
#name "_ver", S_TEXT, S_VER_MAX, offsetof(s_case_t, equality_ver) + (i)*S_VER_SIZE, NULL,  \
            0                                                                                      \
    }

static const s_column_t s_columns[] = {
    S_COL(case_id, S_TEXT, S_KEY),
    S_LWW_COL(person_key, S_TEXT, person_key_ver),
    S_COL(person_key_ver, S_TEXT, S_VER_MAX),
    {"site_id", S_TEXT, S_FIRST, offsetof(s_case_t, site_id), "first_ver",
     offsetof(s_case_t, first_ver)},
    S_COL(first_ver, S_TEXT, S_VER_MIN),
    S_LWW_COL(status, S_TEXT, status_ver),
    S_COL(status_ver, S_TEXT, S_VER_MAX),
    S_LWW_COL(service, S_INT, referral_ver),
    S_LWW_COL(referral_source, S_INT, referral_ver),
    S_COL(referral_ver, S_TEXT, S_VER_MAX),
    S_COL(referral_received_at, S_TIME, S_MIN),
    S_COL(first_contact_at, S_TIME, S_MIN),
    S_COL(initial_meeting_at, S_TIME, S_MIN),
    S_LWW_COL(eligible, S_FLAG, eligible_ver),
    S_COL(eligible_ver, S_TEXT, S_VER_MAX),
    S_LWW_COL(declined_at, S_TIME, declined_ver),
    S_LWW_COL(decline_reason, S_INT, declined_ver),
    S_COL(declined_ver, S_TEXT, S_VER_MAX),
    S_LWW_COL(closed_at, S_TIME, closed_ver),
    S_LWW_COL(closure_reason, S_INT, closed_ver),
    S_LWW_COL(left_before_goals, S_BOOL, closed_ver),
    S_COL(closed_ver, S_TEXT, S_VER_MAX),
    S_LWW_COL(legal_status, S_INT, legal_status_ver),
    S_COL(legal_status_ver, S_TEXT, S_VER_MAX),
    S_LWW_COL(qualifying, S_BOOL, qualifying_ver),
    S_COL(qualifying_ver, S_TEXT, S_VER_MAX),
    S_COL(qualifying_started_at, S_TIME, S_MIN),
    S_EQ_COL(ethnicity_ons, 0),
    S_EQ_COL(nhs_ethnic, 1),
    S_EQ_COL(sex, 2),
    S_EQ_COL(gender, 3),
    S_EQ_COL(age_band, 4),
    S_EQ_COL(disability, 5),
    S_EQ_COL(religion, 6),
    S_EQ_COL(sexual_orientation, 7),
    S_COL(equality_optout, S_BOOL, S_OR),
    S_COL(event_count, S_COUNT, S_SUM),
    S_COL(first_event_at, S_TIME, S_MIN),
    S_COL(last_event_at, S_TIME, S_MAX),
};
#define S_COLUMN_COUNT (sizeof s_columns / sizeof s_columns[0])

/* Where each equality attribute sits in the summary, in s_case_t.equality order. */
static const size_t s_equality_fields[S_EQUALITY] = {
    offsetof(asy_event_summary_t, ethnicity_ons),
    offsetof(asy_event_summary_t, nhs_ethnic),
    offsetof(asy_event_summary_t, sex),
    offsetof(asy_event_summary_t, gender),
    offsetof(asy_event_summary_t, age_band),
    offsetof(asy_event_summary_t, disability),
    offsetof(asy_event_summary_t, religion),
    offsetof(asy_event_summary_t, sexual_orientation)};

struct asy_store {
    asy_db_t *db;
    asy_db_copy_t *events;
    asy_db_copy_t *quarantined;
    asy_db_copy_t *cases;
    s_case_t *case_buffer;
    const asy_store_item_t **order;
    size_t capacity;             /* of case_buffer and order */
    unsigned session_generation; /* db generation the staging table was created in */
    int partitions_month;        /* year * 12 + month (0-based) partitions were ensured for */
    char *upsert_sql;
    char *delta_copy_sql;
    char errmsg[1024];
};

static void s_error(asy_store_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_error(asy_store_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(self->errmsg, sizeof self->errmsg, format, args);
    va_end(args);
}

/* Records "what: <database message>" and passes rc through. */
static int s_db_error(asy_store_t *self, int rc, const char *what)
{
    s_error(self, "%s: %s", what, asy_db_errmsg(self->db));
    return rc;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----------------------------------------------------------------------------------------------
   Statements. */

static const char *const s_statements[][3] = {
    {"cas_update",
     "UPDATE agent_stream SET committed_seq = $3, updated_at = now()"
     " WHERE agent_id = $1 AND epoch = $2 AND committed_seq = $4",
     "4"},
    {"cas_first",
     "INSERT INTO agent_stream (agent_id, epoch, committed_seq, updated_at)"
     " VALUES ($1, $2, $3, now()) ON CONFLICT (agent_id, epoch) DO UPDATE"
     " SET committed_seq = EXCLUDED.committed_seq, updated_at = now()"
     " WHERE agent_stream.committed_seq = 0",
     "3"},
    {"committed_seq", "SELECT committed_seq FROM agent_stream WHERE agent_id = $1 AND epoch = $2",
     "2"},
    {"site_upsert", "INSERT INTO site (site_id) VALUES ($1) ON CONFLICT DO NOTHING", "1"},
    {"agent_upsert",
     "INSERT INTO agent (agent_id, site_id) VALUES ($1, $2) ON CONFLICT (agent_id)"
     " DO UPDATE SET last_seen = now() RETURNING site_id",
     "2"},
    {"stream_insert",
     "INSERT INTO agent_stream (agent_id, epoch) VALUES ($1, $2) ON CONFLICT DO NOTHING", "2"},
};

static const char s_copy_event[] =
    "COPY event (agent_id, epoch, seq, event_id, site_id, case_id, person_key, kind,"
    " occurred_at, recorded_at, schema_version, received_at, payload)"
    " FROM STDIN (FORMAT binary)";
static const char s_copy_quarantine[] =
    "COPY quarantine (received_at, agent_id, site_id, epoch, seq, code, code_name, reason,"
    " payload) FROM STDIN (FORMAT binary)";

/* Builds "INSERT INTO case_state (...) SELECT ... FROM asy_case_delta ORDER BY case_id
   ON CONFLICT (case_id) DO UPDATE SET ..." from s_columns. Caller frees. */
static char *s_build_upsert(void)
{
    size_t size = 16384;
    char *sql = malloc(size);
    if (!sql)
        return NULL;
    size_t used = 0;
#define S_PUT(...) used += (size_t)snprintf(sql + used, used < size ? size - used : 0, __VA_ARGS__)
    S_PUT("INSERT INTO case_state (");
    for (size_t i = 0; i < S_COLUMN_COUNT; i++)
        S_PUT("%s%s", i ? ", " : "", s_columns[i].name);
    S_PUT(") SELECT ");
    for (size_t i = 0; i < S_COLUMN_COUNT; i++)
        S_PUT("%s%s", i ? ", " : "", s_columns[i].name);
    S_PUT(" FROM asy_case_delta ORDER BY case_id ON CONFLICT (case_id) DO UPDATE SET ");
    for (size_t i = 1; i < S_COLUMN_COUNT; i++) {
        const s_column_t *c = &s_columns[i];
        const char *n = c->name;
        switch (c->rule) {
        case S_LWW:
            S_PUT("%s = CASE WHEN EXCLUDED.%s > coalesce(case_state.%s, '') THEN EXCLUDED.%s"
                  " ELSE case_state.%s END, ",
                  n, c->ver, c->ver, n, n);
            break;
        case S_FIRST:
            S_PUT("%s = CASE WHEN EXCLUDED.%s IS NOT NULL AND (case_state.%s IS NULL OR"
                  " EXCLUDED.%s < case_state.%s) THEN EXCLUDED.%s ELSE case_state.%s END, ",
                  n, c->ver, c->ver, c->ver, c->ver, n, n);
            break;
        case S_VER_MAX:
        case S_MAX:
            S_PUT("%s = GREATEST(case_state.%s, EXCLUDED.%s), ", n, n, n);
            break;
        case S_VER_MIN:
        case S_MIN:
            S_PUT("%s = LEAST(case_state.%s, EXCLUDED.%s), ", n, n, n);
            break;
        case S_SUM:
            S_PUT("%s = case_state.%s + EXCLUDED.%s, ", n, n, n);
            break;
        case S_OR:
            S_PUT("%s = case_state.%s OR EXCLUDED.%s, ", n, n, n);
            break;
        case S_KEY:
            break;
        }
    }
    S_PUT("updated_at = now()");
#undef S_PUT
    if (used >= size) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* "COPY asy_case_delta (<s_columns>) FROM STDIN (FORMAT binary)". Caller frees. */
static char *s_build_delta_copy(void)
{
    size_t size = 4096, used = 0;
    char *sql = malloc(size);
    if (!sql)
        return NULL;
    used += (size_t)snprintf(sql, size, "COPY asy_case_delta (");
    for (size_t i = 0; i < S_COLUMN_COUNT && used < size; i++)
        used += (size_t)snprintf(sql + used, size - used, "%s%s", i ? ", " : "", s_columns[i].name);
    if (used < size)
        used += (size_t)snprintf(sql + used, size - used, ") FROM STDIN (FORMAT binary)");
    if (used >= size) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* ----------------------------------------------------------------------------------------------
   Connection, migrations, partitions. */

/* Per-connection state: the staging table for case deltas (temporary, so it is created again
   on every new connection). */
static int s_ready(asy_store_t *self)
{
    if (!asy_db_connected(self->db) && asy_db_reset(self->db) != 0)
        return s_db_error(self, ASY_ERETRY, "reconnect");
    if (self->session_generation == asy_db_generation(self->db))
        return 0;
    int rc = asy_db_exec(self->db,
                         "CREATE TEMP TABLE IF NOT EXISTS asy_case_delta"
                         " (LIKE case_state INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                         0, NULL, NULL);
    if (rc != 0)
        return s_db_error(self, rc, "create staging table");
    self->session_generation = asy_db_generation(self->db);
    return 0;
}

static int s_apply_migration(asy_store_t *self, const asy_migration_t *migration)
{
    char version[16];
    snprintf(version, sizeof version, "%d", migration->version);
    const char *params[] = {version, migration->name};
    asy_db_row_t row;
    int rc = asy_db_query_row(self->db, "SELECT 1 FROM schema_migration WHERE version = $1", false,
                              1, params, &row);
    asy_db_row_release(&row);
    if (rc == 0)
        return 0;
    if (rc != ASY_ENOTFOUND)
        return rc;
    asy_info("applying migration %s", migration->name);
    rc = asy_db_begin(self->db);
    if (rc == 0)
        rc = asy_db_exec(self->db, migration->sql, 0, NULL, NULL);
    if (rc == 0)
        rc = asy_db_exec(self->db, "INSERT INTO schema_migration (version, name) VALUES ($1, $2)",
                         2, params, NULL);
    if (rc == 0)
        rc = asy_db_commit(self->db);
    if (rc != 0)
        asy_db_rollback(self->db);
    return rc;
}

/* Creates the monthly partitions event_yYYYYmMM for this month and the next two. A month
   whose rows already sit in the default partition is left there (logged). */
static void s_ensure_partitions(asy_store_t *self)
{
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    int month = (utc.tm_year + 1900) * 12 + utc.tm_mon;
    /* advisory locks nest: s_migrate already holds it at start */
    if (asy_db_exec(self->db, "SELECT pg_advisory_lock(" S_LOCK_KEY ")", 0, NULL, NULL) != 0) {
        asy_warn("partitions not checked: %s", asy_db_errmsg(self->db));
        return;
    }
    for (int m = month; m < month + 3; m++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS event_y%04dm%02d PARTITION OF event FOR VALUES"
                 " FROM ('%04d-%02d-01 00:00:00+00') TO ('%04d-%02d-01 00:00:00+00')",
                 m / 12, m % 12 + 1, m / 12, m % 12 + 1, (m + 1) / 12, (m + 1) % 12 + 1);
        if (asy_db_exec(self->db, sql, 0, NULL, NULL) != 0)
            asy_warn("partition event_y%04dm%02d not created (its rows stay in event_default): "
                     "%s",
                     m / 12, m % 12 + 1, asy_db_errmsg(self->db));
    }
    asy_db_exec(self->db, "SELECT pg_advisory_unlock(" S_LOCK_KEY ")", 0, NULL, NULL);
    self->partitions_month = month;
}

/* Applies pending migrations and creates partitions, under an advisory lock so that several
   brokers starting together do it once. */
static int s_migrate(asy_store_t *self)
{
    int rc = asy_db_exec(self->db, "SELECT pg_advisory_lock(" S_LOCK_KEY ")", 0, NULL, NULL);
    if (rc != 0)
        return s_db_error(self, rc, "advisory lock");
    rc = asy_db_exec(self->db,
                     "CREATE TABLE IF NOT EXISTS schema_migration (version int PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                     0, NULL, NULL);
    if (rc != 0)
        s_db_error(self, rc, "create schema_migration");
    for (int i = 0; rc == 0 && i < asy_migration_count; i++) {
        rc = s_apply_migration(self, &asy_migrations[i]);
        if (rc != 0)
            s_db_error(self, rc, asy_migrations[i].name);
    }
    if (rc == 0)
        s_ensure_partitions(self);
    asy_db_exec(self->db, "SELECT pg_advisory_unlock(" S_LOCK_KEY ")", 0, NULL, NULL);
    return rc;
}

asy_store_t *asy_store_new(const char *conninfo, char *error, size_t error_size)
{
    asy_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    self->db = asy_db_connect(conninfo, "advsyncd", error, error_size);
    if (!self->db)
        goto err_quiet;
    self->events = asy_db_copy_new();
    self->quarantined = asy_db_copy_new();
    self->cases = asy_db_copy_new();
    self->upsert_sql = s_build_upsert();
    self->delta_copy_sql = s_build_delta_copy();
    if (!self->delta_copy_sql || !self->events || !self->quarantined || !self->cases ||
        !self->upsert_sql) {
        s_error(self, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < sizeof s_statements / sizeof s_statements[0]; i++)
        if (asy_db_prepare(self->db, s_statements[i][0], s_statements[i][1],
                           atoi(s_statements[i][2])) != 0) {
            s_error(self, "out of memory");
            goto err;
        }
    if (asy_db_prepare(self->db, "case_upsert", self->upsert_sql, 0) != 0) {
        s_error(self, "out of memory");
        goto err;
    }
    if (s_migrate(self) != 0 || s_ready(self) != 0)
        goto err;
    return self;
err:
    snprintf(error, error_size, "%s", self->errmsg);
err_quiet:
    asy_store_destroy(&self);
    return NULL;
}

void asy_store_destroy(asy_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    asy_store_t *self = *self_p;
    asy_db_destroy(&self->db);
    asy_db_copy_destroy(&self->events);
    asy_db_copy_destroy(&self->quarantined);
    asy_db_copy_destroy(&self->cases);
    free(self->case_buffer);
    free(self->order);
    free(self->upsert_sql);
    free(self->delta_copy_sql);
    free(self);
    *self_p = NULL;
}

const char *asy_store_errmsg(const asy_store_t *self)
{
    return self ? self->errmsg : "no store";
}

int asy_store_reconnect(asy_store_t *self)
{
    /* libpq learns of a server restart only from the next command: probe before trusting */
    if (asy_db_connected(self->db) && asy_db_exec(self->db, "SELECT 1", 0, NULL, NULL) != 0 &&
        asy_db_connected(self->db))
        asy_db_reset(self->db);
    int rc = s_ready(self);
    return rc == 0 ? 0 : ASY_ERETRY;
}

/* ----------------------------------------------------------------------------------------------
   Hello and committed seq. */

static int s_committed_seq(asy_store_t *self, const char *agent_id, const char *epoch,
                           uint64_t *committed_seq)
{
    const char *params[] = {agent_id, epoch};
    asy_db_row_t row;
    int rc = asy_db_query_row(self->db, "committed_seq", true, 2, params, &row);
    *committed_seq = rc == 0 && row.values[0] ? strtoull(row.values[0], NULL, 10) : 0;
    asy_db_row_release(&row);
    return rc == ASY_ENOTFOUND ? 0 : rc;
}

int asy_store_hello(asy_store_t *self, const char *agent_id, const char *site_id, uint64_t epoch,
                    uint64_t *committed_seq)
{
    *committed_seq = 0;
    int rc = s_ready(self);
    if (rc != 0)
        return rc;
    char epoch_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    const char *params[] = {agent_id, site_id};
    const char *stream[] = {agent_id, epoch_text};
    asy_db_row_t row = {0};
    rc = asy_db_begin(self->db);
    if (rc == 0)
        rc = asy_db_exec_prepared(self->db, "site_upsert", 1, &site_id, NULL);
    if (rc == 0)
        rc = asy_db_query_row(self->db, "agent_upsert", true, 2, params, &row);
    if (rc == 0 && (!row.values[0] || strcmp(row.values[0], site_id) != 0)) {
        s_error(self, "agent %s is bound to site %s", agent_id,
                row.values[0] ? row.values[0] : "?");
        asy_db_row_release(&row);
        asy_db_rollback(self->db);
        return ASY_EINVAL;
    }
    asy_db_row_release(&row);
    if (rc == 0)
        rc = asy_db_exec_prepared(self->db, "stream_insert", 2, stream, NULL);
    if (rc == 0)
        rc = s_committed_seq(self, agent_id, epoch_text, committed_seq);
    if (rc == 0)
        rc = asy_db_commit(self->db);
    if (rc != 0) {
        s_db_error(self, rc, "hello");
        asy_db_rollback(self->db);
    }
    return rc;
}

int asy_store_committed_seq(asy_store_t *self, const char *agent_id, uint64_t epoch,
                            uint64_t *committed_seq)
{
    *committed_seq = 0;
    int rc = s_ready(self);
    if (rc != 0)
        return rc;
    char epoch_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    rc = s_committed_seq(self, agent_id, epoch_text, committed_seq);
    return rc == 0 ? 0 : s_db_error(self, rc, "committed seq");
}

/* ----------------------------------------------------------------------------------------------
   Batch payloads. */

static void s_add_event(asy_store_t *self, const char *agent_id, const char *site_id,
                        uint64_t epoch, int64_t received_at, const asy_store_item_t *item)
{
    const asy_event_summary_t *s = &item->summary;
    asy_db_copy_t *c = self->events;
    asy_db_copy_row(c, 13);
    asy_db_copy_text(c, agent_id);
    asy_db_copy_int8(c, (int64_t)epoch);
    asy_db_copy_int8(c, (int64_t)item->seq);
    asy_db_copy_uuid(c, s->event_id);
    asy_db_copy_text(c, site_id);
    asy_db_copy_text(c, s->case_id);
    asy_db_copy_text(c, s->person_key[0] ? s->person_key : NULL);
    asy_db_copy_int2(c, (int16_t)s->kind);
    if (s->occurred_at_us)
        asy_db_copy_timestamptz(c, s->occurred_at_us);
    else
        asy_db_copy_null(c);
    if (s->recorded_at_us)
        asy_db_copy_timestamptz(c, s->recorded_at_us);
    else
        asy_db_copy_null(c);
    asy_db_copy_int4(c, (int32_t)s->schema_version);
    asy_db_copy_timestamptz(c, received_at);
    asy_db_copy_bytea(c, item->data, item->size);
}

static void s_add_quarantine(asy_db_copy_t *c, int64_t received_at, const char *agent_id,
                             const char *site_id, const uint64_t *epoch, uint64_t seq, int code,
                             const char *reason, const uint8_t *data, size_t size)
{
    asy_db_copy_row(c, 9);
    asy_db_copy_timestamptz(c, received_at);
    asy_db_copy_text(c, agent_id);
    asy_db_copy_text(c, site_id);
    if (epoch)
        asy_db_copy_int8(c, (int64_t)*epoch);
    else
        asy_db_copy_null(c);
    asy_db_copy_int8(c, (int64_t)seq);
    asy_db_copy_int2(c, (int16_t)code);
    asy_db_copy_text(c, asy_code_name(code));
    asy_db_copy_text(c, reason);
    if (data)
        asy_db_copy_bytea(c, data, size);
    else
        asy_db_copy_null(c);
}

/* ----------------------------------------------------------------------------------------------
   The per-case fold (the rules in the comment at the top). */

static const char *s_status_of(const asy_event_summary_t *e)
{
    switch (e->kind) {
    case ASY_KIND_REFERRAL_RECEIVED:
        return "referred";
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED:
        return e->eligible == 1 ? "eligible" : "ineligible";
    case ASY_KIND_REFERRAL_DECLINED:
        return "declined";
    case ASY_KIND_WAITLIST_JOINED:
        return "waiting";
    case ASY_KIND_WAITLIST_LEFT:
        return "allocated";
    case ASY_KIND_CONTACT_MADE:
        return "contacted";
    case ASY_KIND_MEETING_INITIAL_HELD:
    case ASY_KIND_PLAN_AGREED:
        return "active";
    case ASY_KIND_CASE_CLOSED:
        return "closed";
    default:
        return NULL;
    }
}

/* True (and takes ver) if ver is later than the column's current version. */
static bool s_newer(char *column_ver, const char *ver)
{
    if (strcmp(ver, column_ver) <= 0)
        return false;
    snprintf(column_ver, S_VER_SIZE, "%s", ver);
    return true;
}

static void s_min(int64_t *value, int64_t candidate)
{
    if (candidate != S_NO_TIME && (*value == S_NO_TIME || candidate < *value))
        *value = candidate;
}

static void s_max(int64_t *value, int64_t candidate)
{
    if (candidate != S_NO_TIME && (*value == S_NO_TIME || candidate > *value))
        *value = candidate;
}

static void s_case_init(s_case_t *c, const char *case_id)
{
    memset(c, 0, sizeof *c);
    snprintf(c->case_id, sizeof c->case_id, "%s", case_id);
    c->eligible = -1;
    c->referral_received_at = c->first_contact_at = c->initial_meeting_at = S_NO_TIME;
    c->declined_at = c->closed_at = c->qualifying_started_at = S_NO_TIME;
    c->first_event_at = c->last_event_at = S_NO_TIME;
}

static void s_fold_kind(s_case_t *c, const asy_event_summary_t *e, const char *ver,
                        int64_t occurred)
{
    switch (e->kind) {
    case ASY_KIND_REFERRAL_RECEIVED:
        if (s_newer(c->referral_ver, ver)) {
            c->service = e->service;
            c->referral_source = e->source;
        }
        s_min(&c->referral_received_at, e->received_at_us ? e->received_at_us : occurred);
        break;
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED:
        if (s_newer(c->eligible_ver, ver))
            c->eligible = e->eligible == 0 || e->eligible == 1 ? e->eligible : -1;
        break;
    case ASY_KIND_REFERRAL_DECLINED:
        if (s_newer(c->declined_ver, ver)) {
            c->declined_at = occurred;
            c->decline_reason = e->decline_reason;
        }
        break;
    case ASY_KIND_CONTACT_MADE:
        s_min(&c->first_contact_at, occurred);
        break;
    case ASY_KIND_MEETING_INITIAL_HELD:
        s_min(&c->initial_meeting_at, occurred);
        break;
    case ASY_KIND_CASE_CLOSED:
        if (s_newer(c->closed_ver, ver)) {
            c->closed_at = occurred;
            c->closure_reason = e->closure_reason;
            c->left_before_goals = e->left_before_goals;
        }
        break;
    case ASY_KIND_QUALIFYING_STARTED:
    case ASY_KIND_QUALIFYING_CHANGED:
    case ASY_KIND_QUALIFYING_ENDED:
        if (e->legal_status && s_newer(c->legal_status_ver, ver))
            c->legal_status = e->legal_status;
        if (s_newer(c->qualifying_ver, ver))
            c->qualifying = e->kind != ASY_KIND_QUALIFYING_ENDED && e->qualifying;
        if (e->kind == ASY_KIND_QUALIFYING_STARTED)
            s_min(&c->qualifying_started_at, occurred);
        break;
    case ASY_KIND_PERSON_PROFILE_RECORDED:
    case ASY_KIND_PERSON_PROFILE_UPDATED:
        for (int i = 0; i < S_EQUALITY; i++) {
            int value = *(const int *)((const char *)e + s_equality_fields[i]);
            if (value && s_newer(c->equality_ver[i], ver))
                c->equality[i] = value;
        }
        break;
    case ASY_KIND_PERSON_EQUALITY_OPTOUT:
        c->equality_optout = true;
        break;
    default:
        break;
    }
}

static void s_fold(s_case_t *c, const asy_event_summary_t *e, const char *site_id)
{
    char ver[S_VER_SIZE];
    snprintf(ver, sizeof ver, "%020" PRId64 "%s", e->occurred_at_us > 0 ? e->occurred_at_us : 0,
             e->event_id);
    for (char *p = ver + 20; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    int64_t occurred = e->occurred_at_us ? e->occurred_at_us : S_NO_TIME;
    if (e->person_key[0] && s_newer(c->person_key_ver, ver))
        snprintf(c->person_key, sizeof c->person_key, "%s", e->person_key);
    if (!c->first_ver[0] || strcmp(ver, c->first_ver) < 0) {
        snprintf(c->first_ver, sizeof c->first_ver, "%s", ver);
        snprintf(c->site_id, sizeof c->site_id, "%s", site_id);
    }
    const char *status = s_status_of(e);
    if (status && s_newer(c->status_ver, ver))
        snprintf(c->status, sizeof c->status, "%s", status);
    s_fold_kind(c, e, ver, occurred);
    c->event_count++;
    s_min(&c->first_event_at, occurred);
    s_max(&c->last_event_at, occurred);
}

/* One COPY tuple of a case delta, in s_columns order. */
static void s_add_case(asy_db_copy_t *copy, const s_case_t *c)
{
    asy_db_copy_row(copy, (int)S_COLUMN_COUNT);
    for (size_t i = 0; i < S_COLUMN_COUNT; i++) {
        const s_column_t *col = &s_columns[i];
        const char *field = (const char *)c + col->offset;
        bool unset = col->ver && !((const char *)c + col->ver_offset)[0];
        switch (col->type) {
        case S_TEXT:
            asy_db_copy_text(copy, unset || !field[0] ? NULL : field);
            break;
        case S_INT: {
            int value = *(const int *)(const void *)field;
            if (unset || value == 0)
                asy_db_copy_null(copy);
            else
                asy_db_copy_int4(copy, value);
            break;
        }
        case S_FLAG: {
            int value = *(const int *)(const void *)field;
            if (unset || value < 0)
                asy_db_copy_null(copy);
            else
                asy_db_copy_int2(copy, (int16_t)value);
            break;
        }
        case S_BOOL:
            if (unset)
                asy_db_copy_null(copy);
            else
                asy_db_copy_bool(copy, *(const bool *)(const void *)field);
            break;
        case S_TIME: {
            int64_t value = *(const int64_t *)(const void *)field;
            if (unset || value == S_NO_TIME)
                asy_db_copy_null(copy);
            else
                asy_db_copy_timestamptz(copy, value);
            break;
        }
        case S_COUNT:
            asy_db_copy_int8(copy, *(const int64_t *)(const void *)field);
            break;
        }
    }
}

static int s_by_case(const void *a, const void *b)
{
    const asy_store_item_t *x = *(const asy_store_item_t *const *)a;
    const asy_store_item_t *y = *(const asy_store_item_t *const *)b;
    int c = strcmp(x->summary.case_id, y->summary.case_id);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Fills self->cases with one delta row per case of the valid items. */
static int s_build_cases(asy_store_t *self, const char *site_id, const asy_store_item_t *items,
                         size_t count)
{
    if (count > self->capacity) {
        free(self->case_buffer);
        free(self->order);
        self->case_buffer = malloc(count * sizeof *self->case_buffer);
        self->order = malloc(count * sizeof *self->order);
        self->capacity = self->case_buffer && self->order ? count : 0;
        if (!self->capacity)
            return ASY_ENOMEM;
    }
    size_t valid = 0;
    for (size_t i = 0; i < count; i++)
        if (items[i].code == 0)
            self->order[valid++] = &items[i];
    qsort(self->order, valid, sizeof *self->order, s_by_case);
    size_t cases = 0;
    for (size_t i = 0; i < valid; i++) {
        const asy_event_summary_t *e = &self->order[i]->summary;
        if (cases == 0 || strcmp(self->case_buffer[cases - 1].case_id, e->case_id) != 0)
            s_case_init(&self->case_buffer[cases++], e->case_id);
        s_fold(&self->case_buffer[cases - 1], e, site_id);
    }
    asy_db_copy_clear(self->cases);
    for (size_t i = 0; i < cases; i++)
        s_add_case(self->cases, &self->case_buffer[i]);
    return asy_db_copy_error(self->cases);
}

/* ----------------------------------------------------------------------------------------------
   The batch transaction. */

static int s_check_batch(asy_store_t *self, uint64_t expected_committed,
                         const asy_store_item_t *items, size_t count)
{
    if (count == 0) {
        s_error(self, "empty batch");
        return ASY_EINVAL;
    }
    for (size_t i = 0; i < count; i++)
        if (items[i].seq != expected_committed + 1 + i) {
            s_error(self, "batch item %zu has seq %" PRIu64 ", expected %" PRIu64, i, items[i].seq,
                    expected_committed + 1 + i);
            return ASY_EINVAL;
        }
    return 0;
}

static int s_build_batch(asy_store_t *self, const char *agent_id, const char *site_id,
                         uint64_t epoch, const asy_store_item_t *items, size_t count)
{
    int64_t received_at = s_now_us();
    asy_db_copy_clear(self->events);
    asy_db_copy_clear(self->quarantined);
    for (size_t i = 0; i < count; i++) {
        if (items[i].code == 0)
            s_add_event(self, agent_id, site_id, epoch, received_at, &items[i]);
        else
            s_add_quarantine(self->quarantined, received_at, agent_id, site_id, &epoch,
                             items[i].seq, items[i].code, items[i].reason, items[i].data,
                             items[i].size);
    }
    int rc = asy_db_copy_error(self->events);
    if (rc == 0)
        rc = asy_db_copy_error(self->quarantined);
    if (rc == 0)
        rc = s_build_cases(self, site_id, items, count);
    if (rc != 0)
        s_error(self, "%s building the batch (a malformed event_id?)", asy_strerror(rc));
    return rc;
}

/* The compare-and-set of the high-water mark: 0, ASY_EEXIST, or a database error. */
static int s_advance(asy_store_t *self, const char *agent_id, uint64_t epoch,
                     uint64_t expected_committed, uint64_t last)
{
    char epoch_text[24], last_text[24], expected_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    snprintf(last_text, sizeof last_text, "%" PRId64, (int64_t)last);
    snprintf(expected_text, sizeof expected_text, "%" PRId64, (int64_t)expected_committed);
    const char *params[] = {agent_id, epoch_text, last_text, expected_text};
    uint64_t affected = 0;
    int rc = expected_committed == 0
                 ? asy_db_exec_prepared(self->db, "cas_first", 3, params, &affected)
                 : asy_db_exec_prepared(self->db, "cas_update", 4, params, &affected);
    if (rc != 0)
        return s_db_error(self, rc, "committed-seq update");
    if (affected == 0) {
        s_error(self, "agent %s epoch %" PRIu64 ": committed seq is no longer %" PRIu64, agent_id,
                epoch, expected_committed);
        return ASY_EEXIST;
    }
    return 0;
}

int asy_store_write_batch(asy_store_t *self, const char *agent_id, const char *site_id,
                          uint64_t epoch, uint64_t expected_committed,
                          const asy_store_item_t *items, size_t count)
{
    int rc = s_check_batch(self, expected_committed, items, count);
    if (rc == 0)
        rc = s_ready(self);
    if (rc != 0)
        return rc;
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    if ((utc.tm_year + 1900) * 12 + utc.tm_mon != self->partitions_month)
        s_ensure_partitions(self);
    rc = s_build_batch(self, agent_id, site_id, epoch, items, count);
    if (rc != 0)
        return rc;

    if ((rc = asy_db_begin(self->db)) != 0) {
        s_db_error(self, rc, "BEGIN");
        goto fail;
    }
    if ((rc = s_advance(self, agent_id, epoch, expected_committed, items[count - 1].seq)) != 0)
        goto fail;
    if (asy_db_copy_rows(self->events) > 0 &&
        (rc = asy_db_copy_send(self->db, s_copy_event, self->events, NULL)) != 0) {
        s_db_error(self, rc, "COPY into event");
        goto fail;
    }
    if (asy_db_copy_rows(self->quarantined) > 0 &&
        (rc = asy_db_copy_send(self->db, s_copy_quarantine, self->quarantined, NULL)) != 0) {
        s_db_error(self, rc, "COPY into quarantine");
        goto fail;
    }
    if (asy_db_copy_rows(self->cases) > 0) {
        if ((rc = asy_db_copy_send(self->db, self->delta_copy_sql, self->cases, NULL)) != 0 ||
            (rc = asy_db_exec_prepared(self->db, "case_upsert", 0, NULL, NULL)) != 0) {
            s_db_error(self, rc, "case_state merge");
            goto fail;
        }
    }
    if ((rc = asy_db_commit(self->db)) != 0) {
        s_db_error(self, rc, "COMMIT");
        goto fail;
    }
    return 0;
fail:
    asy_db_rollback(self->db);
    return rc;
}

int asy_store_quarantine_frame(asy_store_t *self, const char *agent_id, const char *site_id,
                               int code, const char *reason, const uint8_t *data, size_t size)
{
    int rc = s_ready(self);
    if (rc != 0)
        return rc;
    char text[512];
    if (size > S_QUARANTINE_MAX) {
        snprintf(text, sizeof text, "%s (payload truncated from %zu to %u bytes)",
                 reason ? reason : "", size, S_QUARANTINE_MAX);
        size = S_QUARANTINE_MAX;
    } else {
        snprintf(text, sizeof text, "%s", reason ? reason : "");
    }
    asy_db_copy_clear(self->quarantined);
    s_add_quarantine(self->quarantined, s_now_us(), agent_id, site_id, NULL, 0, code, text, data,
                     size);
    rc = asy_db_copy_send(self->db, s_copy_quarantine, self->quarantined, NULL);
    return rc == 0 ? 0 : s_db_error(self, rc, "quarantine");
}
