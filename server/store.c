/*  store.c: the broker's writes to PostgreSQL. See store.h.

    One batch is one transaction of a handful of round trips, whatever its size:
      BEGIN; compare-and-set of agent_stream.committed_seq (0 rows: someone else moved it,
      ROLLBACK, ASY_EEXIST); binary COPY of the valid events into `event`; binary COPY of the
      refused ones into `quarantine`; binary COPY of one merged delta row per case into a
      temporary staging table and one INSERT ... ON CONFLICT into `case_state`; COMMIT.

    The per-case fold of the batch and the case_state merge rules it follows (one comment block
    that says how every column merges) live in case_fold.c.  */
#include "store.h"

#include "case_fold.h"
#include "case_view.h"
#include "outcome_fold.h"
#include "db.h"
#include "log.h"
#include "migrations.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_LOCK_KEY "7310258001" /* pg_advisory_lock key for migrations and partitions */
#define S_QUARANTINE_MAX ASY_MAX_EVENT_BYTES /* of a refused frame (PROTOCOL 5.2) */

struct asy_store {
    asy_db_t *db;
    asy_db_copy_t *events;
    asy_db_copy_t *quarantined;
    asy_db_copy_t *cases;
    asy_db_copy_t *outcomes;
    asy_case_fold_t *fold;
    unsigned session_generation; /* db generation the staging table was created in */
    int partitions_month;        /* year * 12 + month (0-based) partitions were ensured for */
    asy_db_row_fn *case_sink;    /* given the merged case_state rows, if set */
    void *case_sink_arg;
    asy_db_row_fn *outcome_sink; /* given the merged outcome_state rows, if set */
    void *outcome_sink_arg;
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
    {"reissued_by",
     "SELECT epoch, reissue_from_seq FROM agent_stream WHERE agent_id = $1"
     " AND reissue_of_epoch = $2 AND reissue_from_seq <= $3 ORDER BY epoch LIMIT 1",
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

/* ----------------------------------------------------------------------------------------------
   Connection, migrations, partitions. */

/* Per-connection state: the staging table for case deltas (temporary, so it is created again
   on every new connection). */
static int s_ready(asy_store_t *self)
{
    if (!asy_db_alive(self->db) && asy_db_reset(self->db) != 0)
        return s_db_error(self, ASY_ERETRY, "reconnect");
    if (self->session_generation == asy_db_generation(self->db))
        return 0;
    int rc = asy_db_exec(self->db,
                         "CREATE TEMP TABLE IF NOT EXISTS asy_case_delta"
                         " (LIKE case_state INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                         0, NULL, NULL);
    if (rc == 0)
        rc = asy_db_exec(self->db, ASY_OUTCOME_STAGING_SQL, 0, NULL, NULL);
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
    if (rc != 0) /* refused (not lost): most often the role may not create tables */
        s_error(self, "create schema_migration: %s%s", asy_db_errmsg(self->db),
                rc != ASY_ERETRY && strstr(asy_db_errmsg(self->db), "42501")
                    ? " (the broker's role must be able to create tables: make it the "
                      "database's owner, createdb -O ROLE; see deploy/README.md, 'Installing')"
                    : "");
    for (int i = 0; rc == 0 && i < asy_migration_count; i++) {
        rc = s_apply_migration(self, &asy_migrations[i]);
        if (rc != 0) /* the database answered and refused it: no retry will change that */
            s_error(self, "migration %s failed: %s%s", asy_migrations[i].name,
                    asy_db_errmsg(self->db),
                    rc == ASY_ERETRY ? ""
                                     : " (rolled back; the database needs an operator: see "
                                       "deploy/README.md, 'Migrations')");
    }
    if (rc == 0)
        s_ensure_partitions(self);
    if (rc == 0) {
        /* a newer broker migrated this database: this one may not write what it expects */
        asy_db_row_t row;
        char known[16];
        snprintf(known, sizeof known, "%d", asy_migrations[asy_migration_count - 1].version);
        const char *params[] = {known};
        if (asy_db_query_row(self->db,
                             "SELECT coalesce(string_agg(version || ' ' || name, ', '"
                             " ORDER BY version), '') FROM schema_migration WHERE version > $1",
                             false, 1, params, &row) == 0) {
            if (row.values[0][0])
                asy_warn("the database has migrations this broker does not know (%s; it knows "
                         "up to %s): a newer broker migrated it; run that version",
                         row.values[0], known);
            asy_db_row_release(&row);
        }
    }
    asy_db_exec(self->db, "SELECT pg_advisory_unlock(" S_LOCK_KEY ")", 0, NULL, NULL);
    return rc;
}

/* The merge with the monitor's view of every row it wrote. Caller frees. */
static char *s_returning_sql(const asy_case_fold_t *fold)
{
    const char *upsert = asy_case_fold_upsert_sql(fold);
    size_t size = strlen(upsert) + strlen(ASY_CASE_VIEW_COLUMNS) + 16;
    char *sql = malloc(size);
    if (sql)
        snprintf(sql, size, "%s RETURNING %s", upsert, ASY_CASE_VIEW_COLUMNS);
    return sql;
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
    self->outcomes = asy_db_copy_new();
    self->fold = asy_case_fold_new();
    if (!self->fold || !self->events || !self->quarantined || !self->cases || !self->outcomes) {
        s_error(self, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < sizeof s_statements / sizeof s_statements[0]; i++)
        if (asy_db_prepare(self->db, s_statements[i][0], s_statements[i][1],
                           atoi(s_statements[i][2])) != 0) {
            s_error(self, "out of memory");
            goto err;
        }
    char *returning = s_returning_sql(self->fold);
    int prepared = returning ? asy_db_prepare(self->db, "case_upsert_returning", returning, 0)
                             : ASY_ENOMEM;
    free(returning);
    if (prepared != 0 ||
        asy_db_prepare(self->db, "case_upsert", asy_case_fold_upsert_sql(self->fold), 0) != 0) {
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
    asy_db_copy_destroy(&self->outcomes);
    asy_case_fold_destroy(&self->fold);
    free(self);
    *self_p = NULL;
}

bool asy_store_connected(const asy_store_t *self)
{
    return self->db && asy_db_connected(self->db);
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

int asy_store_event_id_at(asy_store_t *self, const char *agent_id, uint64_t epoch, uint64_t seq,
                          char out[ASY_UUID_TEXT + 1])
{
    out[0] = '\0';
    if (seq == 0)
        return 0;
    int rc = s_ready(self);
    if (rc != 0)
        return rc;
    char epoch_text[24], seq_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    snprintf(seq_text, sizeof seq_text, "%" PRId64, (int64_t)seq);
    const char *params[] = {agent_id, epoch_text, seq_text};
    asy_db_row_t row;
    rc = asy_db_query_row(self->db,
                          "SELECT coalesce((SELECT event_id::text FROM event WHERE agent_id = $1"
                          " AND epoch = $2 AND seq = $3 LIMIT 1), '')",
                          false, 3, params, &row);
    if (rc != 0)
        return s_db_error(self, rc, "event id at the committed seq");
    snprintf(out, ASY_UUID_TEXT + 1, "%s", row.values[0] ? row.values[0] : "");
    asy_db_row_release(&row);
    return 0;
}

/* ----------------------------------------------------------------------------------------------
   Re-issued epochs (PROTOCOL.md 5.5). */

/* Records (of_epoch, from_seq) on the stream of (agent_id, epoch) unless it has a record, and
   reads the record back. Returns 0 if the record is this one, ASY_EINVAL (with errmsg) if the
   stream re-issues another epoch or seq, or a database error. */
static int s_record_reissue(asy_store_t *self, const char *agent_id, uint64_t epoch,
                            uint64_t of_epoch, uint64_t from_seq)
{
    char epoch_text[24], of_text[24], from_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    snprintf(of_text, sizeof of_text, "%" PRId64, (int64_t)of_epoch);
    snprintf(from_text, sizeof from_text, "%" PRId64, (int64_t)from_seq);
    const char *params[] = {agent_id, epoch_text, of_text, from_text};
    int rc = asy_db_exec(self->db,
                         "UPDATE agent_stream SET reissue_of_epoch = $3, reissue_from_seq = $4"
                         " WHERE agent_id = $1 AND epoch = $2 AND reissue_of_epoch IS NULL",
                         4, params, NULL);
    if (rc != 0)
        return s_db_error(self, rc, "recording a re-issued epoch");
    /* the stream keeps its first record: a HELLO that says otherwise is not the outbox the
       stream was re-issued from, and its events would be matched against the wrong seqs */
    asy_db_row_t recorded = {0};
    rc = asy_db_query_row(self->db,
                          "SELECT reissue_of_epoch, reissue_from_seq FROM agent_stream"
                          " WHERE agent_id = $1 AND epoch = $2",
                          false, 2, params, &recorded);
    if (rc != 0)
        return s_db_error(self, rc, "reading a re-issued epoch");
    bool same = recorded.values[0] && recorded.values[1] &&
                strcmp(recorded.values[0], of_text) == 0 &&
                strcmp(recorded.values[1], from_text) == 0;
    if (!same)
        s_error(self,
                "agent %s epoch %" PRIu64 " re-issues epoch %s from seq %s (recorded at its first "
                "HELLO); this HELLO says epoch %" PRIu64 " from seq %" PRIu64
                ": not the outbox the stream was re-issued from",
                agent_id, epoch, recorded.values[0] ? recorded.values[0] : "(none)",
                recorded.values[1] ? recorded.values[1] : "(none)", of_epoch, from_seq);
    asy_db_row_release(&recorded);
    return same ? 0 : ASY_EINVAL;
}

/* Follows the origins back from origins[*count - 1]: an epoch that re-issued events which
   were re-issued before. Appends each earlier origin, up to ASY_STORE_REISSUE_DEPTH. */
static int s_follow_origins(asy_store_t *self, const char *agent_id,
                            asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH], size_t *count)
{
    char of_text[24];
    while (*count < ASY_STORE_REISSUE_DEPTH) {
        const asy_store_origin_t *last = &origins[*count - 1];
        snprintf(of_text, sizeof of_text, "%" PRId64, (int64_t)last->epoch);
        const char *stream[] = {agent_id, of_text};
        asy_db_row_t row = {0};
        int rc =
            asy_db_query_row(self->db,
                             "SELECT reissue_of_epoch, reissue_from_seq FROM agent_stream"
                             " WHERE agent_id = $1 AND epoch = $2 AND reissue_of_epoch IS NOT NULL",
                             false, 2, stream, &row);
        if (rc == ASY_ENOTFOUND)
            return 0;
        if (rc != 0)
            return s_db_error(self, rc, "following a re-issued epoch back");
        /* NULL is an ordinary epoch (006_reissue): a row written by hand or by another
           implementation may name an origin epoch without its seq, so it has no origin */
        bool whole = row.values[0] && row.values[1];
        uint64_t earlier = whole ? strtoull(row.values[0], NULL, 10) : 0;
        uint64_t from = whole ? strtoull(row.values[1], NULL, 10) : 0;
        asy_db_row_release(&row);
        if (!whole || earlier >= last->epoch || from < 1)
            return 0; /* not a record this broker wrote */
        origins[*count] = (asy_store_origin_t){earlier, last->offset + from - 1};
        (*count)++;
    }
    return 0;
}

int asy_store_reissue(asy_store_t *self, const char *agent_id, uint64_t epoch, uint64_t of_epoch,
                      uint64_t from_seq, asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH],
                      size_t *count)
{
    *count = 0;
    int rc = s_ready(self);
    if (rc == 0)
        rc = s_record_reissue(self, agent_id, epoch, of_epoch, from_seq);
    if (rc != 0)
        return rc;
    /* follow the origins back: an epoch that re-issued events which were re-issued before */
    origins[(*count)++] = (asy_store_origin_t){of_epoch, from_seq - 1};
    return s_follow_origins(self, agent_id, origins, count);
}

typedef struct {
    char (*ids)[ASY_UUID_TEXT + 1];
    size_t count;
    size_t capacity;
} s_id_set_t;

static int s_collect_id(void *arg, int columns, const char *const *values)
{
    s_id_set_t *set = arg;
    if (columns < 1 || !values[0])
        return 0;
    if (set->count == set->capacity) {
        size_t capacity = set->capacity ? set->capacity * 2 : 64;
        void *ids = realloc(set->ids, capacity * sizeof *set->ids);
        if (!ids)
            return ASY_ENOMEM;
        set->ids = ids;
        set->capacity = capacity;
    }
    snprintf(set->ids[set->count++], ASY_UUID_TEXT + 1, "%s", values[0]);
    return 0;
}

static int s_compare_id(const void *a, const void *b)
{
    return strcasecmp(a, b);
}

/* "{a,b,...}" of n numbers or texts, for an array parameter; NULL if out of memory. */
static char *s_array_literal(size_t n, size_t width, const char *(*item)(size_t, char *, void *),
                             void *arg)
{
    char *text = malloc(n * (width + 1) + 3);
    if (!text)
        return NULL;
    size_t used = 0;
    text[used++] = '{';
    char buffer[64];
    for (size_t i = 0; i < n; i++) {
        const char *value = item(i, buffer, arg);
        if (!value)
            continue;
        if (used > 1)
            text[used++] = ',';
        size_t length = strlen(value);
        memcpy(text + used, value, length);
        used += length;
    }
    text[used++] = '}';
    text[used] = '\0';
    return text;
}

static const char *s_valid_event_id(size_t i, char *buffer, void *arg)
{
    (void)buffer;
    const asy_store_item_t *items = arg;
    return items[i].code == 0 ? items[i].summary.event_id : NULL;
}

static const char *s_origin_epoch(size_t i, char *buffer, void *arg)
{
    const asy_store_origin_t *origins = arg;
    snprintf(buffer, 64, "%" PRId64, (int64_t)origins[i].epoch);
    return buffer;
}

static const char *s_origin_offset(size_t i, char *buffer, void *arg)
{
    const asy_store_origin_t *origins = arg;
    snprintf(buffer, 64, "%" PRId64, (int64_t)origins[i].offset);
    return buffer;
}

/* Marks the items of a re-issued epoch's batch whose event_id the centre holds at their
   origin seq (asy_store_write_batch), inside its transaction. */
static int s_mark_reissued(asy_store_t *self, const char *agent_id,
                           const asy_store_origin_t *origins, size_t origin_count,
                           asy_store_item_t *items, size_t count, size_t *known)
{
    *known = 0;
    size_t valid = 0;
    for (size_t i = 0; i < count; i++)
        valid += items[i].code == 0;
    if (valid == 0 || origin_count == 0)
        return 0;
    int rc = 0;
    char *ids = s_array_literal(count, ASY_UUID_TEXT, s_valid_event_id, items);
    char *epochs = s_array_literal(origin_count, 20, s_origin_epoch, (void *)origins);
    char *offsets = s_array_literal(origin_count, 20, s_origin_offset, (void *)origins);
    char first[24], last[24];
    snprintf(first, sizeof first, "%" PRId64, (int64_t)items[0].seq);
    snprintf(last, sizeof last, "%" PRId64, (int64_t)items[count - 1].seq);
    s_id_set_t found = {0};
    if (!ids || !epochs || !offsets)
        rc = ASY_ENOMEM;
    else {
        /* the batch's seqs a..b were a+offset..b+offset of each origin epoch */
        const char *params[] = {agent_id, epochs, offsets, first, last, ids};
        rc = asy_db_query_each(
            self->db,
            "SELECT e.event_id::text FROM unnest($2::bigint[], $3::bigint[]) AS o(epoch, off)"
            " JOIN event e ON e.agent_id = $1 AND e.epoch = o.epoch"
            " AND e.seq BETWEEN $4::bigint + o.off AND $5::bigint + o.off"
            " WHERE e.event_id = ANY($6::uuid[])",
            false, 6, params, s_collect_id, &found);
    }
    free(ids);
    free(epochs);
    free(offsets);
    if (rc != 0) {
        free(found.ids);
        return rc == ASY_ENOMEM ? rc : s_db_error(self, rc, "looking up re-issued events");
    }
    if (found.count == 0)
        return 0;
    qsort(found.ids, found.count, sizeof *found.ids, s_compare_id);
    for (size_t i = 0; i < count; i++) {
        items[i].known =
            items[i].code == 0 && bsearch(items[i].summary.event_id, found.ids, found.count,
                                          sizeof *found.ids, s_compare_id) != NULL;
        *known += items[i].known;
    }
    free(found.ids);
    return 0;
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
        if (items[i].known)
            continue; /* held already under the epoch this one re-issues */
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
        rc = asy_case_fold_build(self->fold, site_id, items, count, self->cases);
    if (rc == 0) {
        int rows = asy_outcome_fold_build(items, count, self->outcomes);
        rc = rows < 0 ? rows : 0;
    }
    if (rc != 0)
        s_error(self, "%s building the batch (a malformed event_id?)", asy_strerror(rc));
    return rc;
}

/* After the compare-and-set, which holds the stream's row until COMMIT: was this epoch
   re-issued by a newer one from a seq of the batch on? Then the batch comes from a copy of
   the outbox that no longer sends, or was sent before its agent was killed and the outbox
   re-issued: its events go in under the new epoch, ASY_EPROTO. A statement of its own, so
   that it sees every re-issue committed before the row was ours (the compare-and-set's own
   snapshot may be older: it can have waited for the row). A re-issue recorded after this
   waits for our COMMIT (s_lock_origins) and then finds our events held. */
static int s_reissued_since(asy_store_t *self, const char *agent_id, uint64_t epoch,
                            const char *const params[3])
{
    asy_db_row_t row = {0};
    int rc = asy_db_query_row(self->db, "reissued_by", true, 3, params, &row);
    if (rc == ASY_ENOTFOUND)
        return 0;
    if (rc != 0)
        return s_db_error(self, rc, "reading a re-issued epoch");
    s_error(self,
            "agent %s epoch %" PRIu64 " was re-issued as epoch %s from seq %s on "
            "(advsync-agent reissue): this batch belongs to a copy of the outbox that no "
            "longer sends",
            agent_id, epoch, row.values[0] ? row.values[0] : "?",
            row.values[1] ? row.values[1] : "?");
    asy_db_row_release(&row);
    return ASY_EPROTO;
}

/* The compare-and-set of the high-water mark: 0, ASY_EEXIST (moved by another writer: re-read
   and retry, a replay then counts as duplicates), ASY_EPROTO (s_reissued_since), or a
   database error. */
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
    return s_reissued_since(self, agent_id, epoch, params);
}

/* A re-issued epoch's batch, first in its transaction: locks the origin epochs' rows of
   agent_stream, so that a batch of an old epoch another worker is still committing (sent
   before its agent was killed and the outbox re-issued) is waited for and then seen by the
   look-up; without it both were stored. */
static int s_lock_origins(asy_store_t *self, const char *agent_id,
                          const asy_store_reissued_t *reissued)
{
    char *epochs =
        s_array_literal(reissued->origin_count, 20, s_origin_epoch, (void *)reissued->origins);
    if (!epochs)
        return ASY_ENOMEM;
    const char *params[] = {agent_id, epochs};
    int rc = asy_db_exec(self->db,
                         "SELECT 1 FROM agent_stream WHERE agent_id = $1"
                         " AND epoch = ANY($2::bigint[]) FOR UPDATE",
                         2, params, NULL);
    free(epochs);
    return rc == 0 ? 0 : s_db_error(self, rc, "locking the re-issued epochs");
}

int asy_store_write_batch(asy_store_t *self, const char *agent_id, const char *site_id,
                          uint64_t epoch, uint64_t expected_committed, asy_store_item_t *items,
                          size_t count, asy_store_reissued_t *reissued)
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
    if ((rc = asy_db_begin(self->db)) != 0) {
        s_db_error(self, rc, "BEGIN");
        goto fail;
    }
    if (reissued && reissued->origin_count > 0 &&
        ((rc = s_lock_origins(self, agent_id, reissued)) != 0 ||
         (rc = s_mark_reissued(self, agent_id, reissued->origins, reissued->origin_count, items,
                               count, &reissued->known)) != 0))
        goto fail;
    if ((rc = s_build_batch(self, agent_id, site_id, epoch, items, count)) != 0)
        goto fail;
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
        if ((rc = asy_db_copy_send(self->db, asy_case_fold_delta_copy_sql(self->fold), self->cases,
                                   NULL)) != 0 ||
            (rc = self->case_sink
                      ? asy_db_query_each(self->db, "case_upsert_returning", true, 0, NULL,
                                          self->case_sink, self->case_sink_arg)
                      : asy_db_exec_prepared(self->db, "case_upsert", 0, NULL, NULL)) != 0) {
            s_db_error(self, rc, "case_state merge");
            goto fail;
        }
    }
    if (asy_db_copy_rows(self->outcomes) > 0) {
        if ((rc = asy_db_copy_send(self->db, ASY_OUTCOME_COPY_SQL, self->outcomes, NULL)) != 0 ||
            (rc = self->outcome_sink
                      ? asy_db_query_each(self->db, ASY_OUTCOME_MERGE_SQL, false, 0, NULL,
                                          self->outcome_sink, self->outcome_sink_arg)
                      : asy_db_exec(self->db, ASY_OUTCOME_MERGE_SQL, 0, NULL, NULL)) != 0) {
            s_db_error(self, rc, "outcome_state merge");
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

void asy_store_set_label(asy_store_t *self, const char *label)
{
    asy_db_set_label(self->db, label);
}

void asy_store_set_case_sink(asy_store_t *self, asy_db_row_fn *fn, void *arg)
{
    self->case_sink = fn;
    self->case_sink_arg = arg;
}

void asy_store_set_outcome_sink(asy_store_t *self, asy_db_row_fn *fn, void *arg)
{
    self->outcome_sink = fn;
    self->outcome_sink_arg = arg;
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
