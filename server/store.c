/*  store.c: the broker's writes to PostgreSQL. See store.h.

    This file holds the connection (statements, migrations, partitions), the HELLO's reads and
    writes (committed seq, re-issued epochs) and the sinks; writing one batch, and one refused
    frame, is store_batch.c.  */
#include "store_private.h"

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
#include <time.h>

#define S_LOCK_KEY "7310258001" /* pg_advisory_lock key for migrations and partitions */

/* Sets the store's message (asy_store_errmsg) from a printf format. */
void asy_store_error(asy_store_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(self->errmsg, sizeof self->errmsg, format, args);
    va_end(args);
}

/* Records "what: <database message>" and passes rc through. */
int asy_store_db_error(asy_store_t *self, int rc, const char *what)
{
    asy_store_error(self, "%s: %s", what, asy_db_errmsg(self->db));
    return rc;
}

/* value as the text of a bigint parameter, written in text; returns text. */
const char *asy_store_int8(char text[ASY_STORE_INT8_TEXT], uint64_t value)
{
    snprintf(text, ASY_STORE_INT8_TEXT, "%" PRId64, (int64_t)value);
    return text;
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

/* ----------------------------------------------------------------------------------------------
   Connection, migrations, partitions. */

/* Per-connection state: the staging table for case deltas (temporary, so it is created again
   on every new connection). */
int asy_store_ready(asy_store_t *self)
{
    if (!asy_db_alive(self->db) && asy_db_reset(self->db) != 0)
        return asy_store_db_error(self, ASY_ERETRY, "reconnect");
    if (self->session_generation == asy_db_generation(self->db))
        return 0;
    int rc = asy_db_exec(self->db,
                         "CREATE TEMP TABLE IF NOT EXISTS asy_case_delta"
                         " (LIKE case_state INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                         0, NULL, NULL);
    if (rc == 0)
        rc = asy_db_exec(self->db, ASY_OUTCOME_STAGING_SQL, 0, NULL, NULL);
    if (rc != 0)
        return asy_store_db_error(self, rc, "create staging table");
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
void asy_store_ensure_partitions(asy_store_t *self)
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
        return asy_store_db_error(self, rc, "advisory lock");
    rc = asy_db_exec(self->db,
                     "CREATE TABLE IF NOT EXISTS schema_migration (version int PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                     0, NULL, NULL);
    if (rc != 0) /* refused (not lost): most often the role may not create tables */
        asy_store_error(
            self, "create schema_migration: %s%s", asy_db_errmsg(self->db),
            rc != ASY_ERETRY && strstr(asy_db_errmsg(self->db), "42501")
                ? " (the broker's role must be able to create tables: make it the "
                  "database's owner, createdb -O ROLE; see deploy/README.md, 'Installing')"
                : "");
    for (int i = 0; rc == 0 && i < asy_migration_count; i++) {
        rc = s_apply_migration(self, &asy_migrations[i]);
        if (rc != 0) /* the database answered and refused it: no retry will change that */
            asy_store_error(self, "migration %s failed: %s%s", asy_migrations[i].name,
                            asy_db_errmsg(self->db),
                            rc == ASY_ERETRY ? ""
                                             : " (rolled back; the database needs an operator: see "
                                               "deploy/README.md, 'Migrations')");
    }
    if (rc == 0 && (rc = asy_store_refold(self)) != 0) {
        char why[sizeof self->errmsg];
        snprintf(why, sizeof why, "%s", self->errmsg);
        asy_store_error(self, "re-deriving case_state after migration 011 failed: %s", why);
    }
    if (rc == 0)
        asy_store_ensure_partitions(self);
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
        asy_store_error(self, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < sizeof s_statements / sizeof s_statements[0]; i++)
        if (asy_db_prepare(self->db, s_statements[i][0], s_statements[i][1],
                           atoi(s_statements[i][2])) != 0) {
            asy_store_error(self, "out of memory");
            goto err;
        }
    char *returning = s_returning_sql(self->fold);
    int prepared = returning ? asy_db_prepare(self->db, "case_upsert_returning", returning, 0)
                             : ASY_ENOMEM;
    free(returning);
    if (prepared != 0 ||
        asy_db_prepare(self->db, "case_upsert", asy_case_fold_upsert_sql(self->fold), 0) != 0) {
        asy_store_error(self, "out of memory");
        goto err;
    }
    if (s_migrate(self) != 0 || asy_store_ready(self) != 0)
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

bool asy_store_commit_in_doubt(const asy_store_t *self)
{
    return self->commit_in_doubt;
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
    int rc = asy_store_ready(self);
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
    int rc = asy_store_ready(self);
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
        asy_store_error(self, "agent %s is bound to site %s", agent_id,
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
        asy_store_db_error(self, rc, "hello");
        asy_db_rollback(self->db);
    }
    return rc;
}

int asy_store_committed_seq(asy_store_t *self, const char *agent_id, uint64_t epoch,
                            uint64_t *committed_seq)
{
    *committed_seq = 0;
    int rc = asy_store_ready(self);
    if (rc != 0)
        return rc;
    char epoch_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    rc = s_committed_seq(self, agent_id, epoch_text, committed_seq);
    return rc == 0 ? 0 : asy_store_db_error(self, rc, "committed seq");
}

int asy_store_event_id_at(asy_store_t *self, const char *agent_id, uint64_t epoch, uint64_t seq,
                          char out[ASY_UUID_TEXT + 1])
{
    out[0] = '\0';
    if (seq == 0)
        return 0;
    int rc = asy_store_ready(self);
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
        return asy_store_db_error(self, rc, "event id at the committed seq");
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
    char epoch_text[ASY_STORE_INT8_TEXT], of_text[ASY_STORE_INT8_TEXT],
        from_text[ASY_STORE_INT8_TEXT];
    const char *params[] = {agent_id, asy_store_int8(epoch_text, epoch),
                            asy_store_int8(of_text, of_epoch), asy_store_int8(from_text, from_seq)};
    int rc = asy_db_exec(self->db,
                         "UPDATE agent_stream SET reissue_of_epoch = $3, reissue_from_seq = $4"
                         " WHERE agent_id = $1 AND epoch = $2 AND reissue_of_epoch IS NULL",
                         4, params, NULL);
    if (rc != 0)
        return asy_store_db_error(self, rc, "recording a re-issued epoch");
    /* the stream keeps its first record: a HELLO that says otherwise is not the outbox the
       stream was re-issued from, and its events would be matched against the wrong seqs */
    asy_db_row_t recorded = {0};
    rc = asy_db_query_row(self->db,
                          "SELECT reissue_of_epoch, reissue_from_seq FROM agent_stream"
                          " WHERE agent_id = $1 AND epoch = $2",
                          false, 2, params, &recorded);
    if (rc != 0)
        return asy_store_db_error(self, rc, "reading a re-issued epoch");
    bool same = recorded.values[0] && recorded.values[1] &&
                strcmp(recorded.values[0], of_text) == 0 &&
                strcmp(recorded.values[1], from_text) == 0;
    if (!same)
        asy_store_error(self,
                        "agent %s epoch %" PRIu64
                        " re-issues epoch %s from seq %s (recorded at its first "
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
            return asy_store_db_error(self, rc, "following a re-issued epoch back");
        /* NULL is an ordinary epoch (006_reissue): a row written by hand or by another
           implementation may name an origin epoch without its seq, so it has no origin */
        bool whole = row.values[0] && row.values[1];
        uint64_t earlier = whole ? strtoull(row.values[0], NULL, 10) : 0;
        uint64_t from = whole ? strtoull(row.values[1], NULL, 10) : 0;
        asy_db_row_release(&row);
        if (!whole || earlier >= last->epoch || from < 1)
            return 0; /* not a record this broker wrote */
        /* offsets add up along the chain: held at 2^63 - 1, past any seq an origin holds */
        uint64_t offset = from - 1 > (uint64_t)INT64_MAX - last->offset ? (uint64_t)INT64_MAX
                                                                        : last->offset + from - 1;
        origins[*count] = (asy_store_origin_t){earlier, offset};
        (*count)++;
    }
    return 0;
}

/* s_add_siblings' query rows go into origins through this. */
typedef struct {
    const asy_store_origin_t *of; /* the chain's epoch they re-issued */
    asy_store_origin_t *origins;
    size_t *count;
} s_siblings_t;

/* One sibling row (epoch, reissue_from_seq): added unless known or there is no room. */
static int s_add_sibling(void *arg, int columns, const char *const *values)
{
    s_siblings_t *s = arg;
    if (columns != 2 || !values[0] || !values[1] || *s->count >= ASY_STORE_REISSUE_DEPTH)
        return 0;
    uint64_t sibling = strtoull(values[0], NULL, 10);
    uint64_t from = strtoull(values[1], NULL, 10);
    for (size_t k = 0; k < *s->count; k++)
        if (s->origins[k].epoch == sibling)
            return 0;
    int64_t offset = (int64_t)s->of->offset - (int64_t)(from - 1);
    s->origins[(*s->count)++] = (asy_store_origin_t){sibling, (uint64_t)offset};
    return 0;
}

/* Adds to origins the other epochs that re-issued an epoch of the chain ("siblings"): a
   re-issue that an agent re-issued again before its HELLO was WELCOMEd names the chain's
   epoch, not the sibling (advsync-agent cannot know whether that HELLO reached the centre,
   PROTOCOL.md 5.5), so its events may be held under the sibling. A sibling that re-issued
   origin E from seq F' holds E's seq x at x - (F' - 1): offset = E's offset - (F' - 1),
   which may be below 0 (those seqs are simply not found). Up to ASY_STORE_REISSUE_DEPTH
   origins in all. */
static int s_add_siblings(asy_store_t *self, const char *agent_id, uint64_t epoch,
                          asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH], size_t *count)
{
    size_t chain = *count;
    char of_text[24], epoch_text[24];
    snprintf(epoch_text, sizeof epoch_text, "%" PRId64, (int64_t)epoch);
    for (size_t i = 0; i < chain && *count < ASY_STORE_REISSUE_DEPTH; i++) {
        if (origins[i].offset >= (uint64_t)INT64_MAX)
            continue; /* held at the limit: no seq of a sibling maps there */
        snprintf(of_text, sizeof of_text, "%" PRId64, (int64_t)origins[i].epoch);
        const char *params[] = {agent_id, of_text, epoch_text};
        s_siblings_t siblings = {&origins[i], origins, count};
        int rc = asy_db_query_each(self->db,
                                   "SELECT epoch, reissue_from_seq FROM agent_stream"
                                   " WHERE agent_id = $1 AND reissue_of_epoch = $2 AND epoch <> $3"
                                   " AND reissue_from_seq >= 1 ORDER BY epoch DESC",
                                   false, 3, params, s_add_sibling, &siblings);
        if (rc != 0)
            return asy_store_db_error(self, rc, "looking for sibling re-issues");
    }
    return 0;
}

int asy_store_reissue(asy_store_t *self, const char *agent_id, uint64_t epoch, uint64_t of_epoch,
                      uint64_t from_seq, asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH],
                      size_t *count)
{
    *count = 0;
    int rc = asy_store_ready(self);
    if (rc == 0)
        rc = s_record_reissue(self, agent_id, epoch, of_epoch, from_seq);
    if (rc != 0)
        return rc;
    /* follow the origins back: an epoch that re-issued events which were re-issued before */
    origins[(*count)++] = (asy_store_origin_t){of_epoch, from_seq - 1};
    rc = s_follow_origins(self, agent_id, origins, count);
    return rc == 0 ? s_add_siblings(self, agent_id, epoch, origins, count) : rc;
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
