/*  store_refold.c: re-derives columns of case_state from the stored events when a migration
    changed how they are derived (migration 011: the IMHA episode and the first meeting).

    Design: a migration cannot decode event payloads (protobuf) in SQL, so it leaves a marker
    table; this step, run by s_migrate under the migration lock right after the migrations,
    does the work in C with the fold itself (case_fold.c), in one transaction that ends by
    dropping the marker: the columns are reset for the cases that have such events and all of
    whose events are still in `event` (event_count of them: a case with events in a detached
    partition keeps its values rather than be rebuilt from part of its history; one pass over
    `event` chooses them), then the
    events are read with a cursor, 5,000 at a time, folded into delta rows, and merged into
    those columns alone with the fold's own rules (LEAST for the starts, last writer wins by
    version for the status and the flag). case_state is locked against other writers
    meanwhile; event_count and the other columns are not touched.  */
#include "store_private.h"

#include "case_fold.h"
#include "log.h"

#include <libpq-fe.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FETCH 5000

/* The kinds whose columns migration 011 changed. */
#define S_KINDS_TEXT "{%d,%d,%d,%d}"

static const char S_MERGE_SQL[] =
    "UPDATE case_state c SET"
    " qualifying_started_at = LEAST(c.qualifying_started_at, d.qualifying_started_at),"
    " qualifying = CASE WHEN d.qualifying_version IS NOT NULL AND (c.qualifying_version IS NULL"
    "  OR d.qualifying_version > c.qualifying_version) THEN d.qualifying ELSE c.qualifying END,"
    " qualifying_version = CASE WHEN d.qualifying_version IS NOT NULL AND (c.qualifying_version"
    "  IS NULL OR d.qualifying_version > c.qualifying_version) THEN d.qualifying_version"
    "  ELSE c.qualifying_version END,"
    " legal_status = CASE WHEN d.legal_status_version IS NOT NULL AND (c.legal_status_version IS"
    "  NULL OR d.legal_status_version > c.legal_status_version) THEN d.legal_status"
    "  ELSE c.legal_status END,"
    " legal_status_version = CASE WHEN d.legal_status_version IS NOT NULL AND"
    "  (c.legal_status_version IS NULL OR d.legal_status_version > c.legal_status_version)"
    "  THEN d.legal_status_version ELSE c.legal_status_version END,"
    " initial_meeting_at = LEAST(c.initial_meeting_at, d.initial_meeting_at)"
    " FROM asy_case_delta d WHERE c.case_id = d.case_id";

typedef struct {
    asy_store_item_t *items;
    size_t count;
    uint64_t events; /* read so far */
    uint64_t undecodable;
    uint64_t cases; /* re-derived */
    uint64_t kept;  /* with events no longer all in the event table: left as they were */
} s_chunk_t;

/* One event row (payload as bytea text): decoded and summarised into the next item. */
static int s_take_row(void *arg, int columns, const char *const *values)
{
    s_chunk_t *chunk = arg;
    if (columns != 1 || !values[0] || chunk->count >= S_FETCH)
        return 0;
    chunk->events++;
    size_t size = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)values[0], &size);
    asy_event_t *event = NULL;
    if (!bytes || asy_event_decode(bytes, size, &event) != 0) {
        chunk->undecodable++;
        PQfreemem(bytes);
        return 0;
    }
    asy_store_item_t *item = &chunk->items[chunk->count];
    memset(item, 0, sizeof *item);
    item->seq = chunk->count + 1; /* the fold orders a case's events by seq, then by version */
    asy_event_summarise(event, &item->summary);
    asy_event_destroy(&event);
    PQfreemem(bytes);
    chunk->count++;
    return 0;
}

/* Runs the statement printf(format, ...) makes; what names it in the error. */
static int s_exec(asy_store_t *self, const char *what, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int s_exec(asy_store_t *self, const char *what, const char *format, ...)
{
    char sql[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(sql, sizeof sql, format, args);
    va_end(args);
    int rc = asy_db_exec(self->db, sql, 0, NULL, NULL);
    return rc == 0 ? 0 : asy_store_db_error(self, rc, what);
}

/* The work, inside the open transaction. */
static int s_refold(asy_store_t *self, s_chunk_t *chunk)
{
    char kinds[64], fetch[64];
    snprintf(kinds, sizeof kinds, S_KINDS_TEXT, ASY_KIND_QUALIFYING_STARTED,
             ASY_KIND_QUALIFYING_CHANGED, ASY_KIND_QUALIFYING_ENDED, ASY_KIND_MEETING_INITIAL_HELD);
    int rc = s_exec(self, "locking case_state", "LOCK TABLE case_state IN EXCLUSIVE MODE");
    /* the cases with such events, in one pass over event; only those whose every event is
       still here (event_count says how many there were) are re-derived: a case with events
       in a detached partition, say, keeps what it has, rather than be rebuilt from part of
       its history */
    if (rc == 0)
        rc = s_exec(self, "choosing the cases",
                    "CREATE TEMP TABLE asy_refold_case ON COMMIT DROP AS SELECT c.case_id,"
                    " e.n = c.event_count AS complete FROM case_state c JOIN (SELECT case_id,"
                    " count(*) AS n, bool_or(kind = ANY('%s'::smallint[])) AS touched FROM event"
                    " GROUP BY case_id) e ON e.case_id = c.case_id WHERE e.touched",
                    kinds);
    /* only events of these kinds set these columns: a case without a meeting event has no
       initial_meeting_at to lose, one without a qualifying event no episode */
    if (rc == 0)
        rc = s_exec(self, "resetting the columns",
                    "UPDATE case_state SET qualifying_started_at = NULL, qualifying = NULL,"
                    " qualifying_version = NULL, legal_status = NULL,"
                    " legal_status_version = NULL, initial_meeting_at = NULL"
                    " WHERE case_id IN (SELECT case_id FROM asy_refold_case WHERE complete)");
    if (rc == 0)
        rc = s_exec(self, "reading the events",
                    "DECLARE asy_refold NO SCROLL CURSOR FOR SELECT payload FROM event"
                    " WHERE kind = ANY('%s'::smallint[])"
                    " AND case_id IN (SELECT case_id FROM asy_refold_case WHERE complete)",
                    kinds);
    if (rc == 0) { /* for the log: how many are re-derived, how many kept as they were */
        asy_db_row_t row;
        if (asy_db_query_row(self->db,
                             "SELECT count(*) FILTER (WHERE complete), count(*) FILTER (WHERE NOT"
                             " complete) FROM asy_refold_case",
                             false, 0, NULL, &row) == 0 &&
            row.values[0] && row.values[1]) {
            chunk->cases = strtoull(row.values[0], NULL, 10);
            chunk->kept = strtoull(row.values[1], NULL, 10);
        }
        asy_db_row_release(&row);
    }
    snprintf(fetch, sizeof fetch, "FETCH %d FROM asy_refold", S_FETCH);
    while (rc == 0) {
        chunk->count = 0;
        rc = asy_db_query_each(self->db, fetch, false, 0, NULL, s_take_row, chunk);
        if (rc != 0) {
            rc = asy_store_db_error(self, rc, "reading the events");
            break;
        }
        if (chunk->count == 0)
            break;
        rc = asy_case_fold_build(self->fold, "", chunk->items, chunk->count, self->cases);
        if (rc == 0)
            rc = asy_db_copy_send(self->db, asy_case_fold_delta_copy_sql(self->fold), self->cases,
                                  NULL);
        if (rc == 0)
            rc = asy_db_exec(self->db, S_MERGE_SQL, 0, NULL, NULL);
        if (rc == 0)
            rc = asy_db_exec(self->db, "DELETE FROM asy_case_delta", 0, NULL, NULL);
        if (rc != 0)
            rc = asy_store_db_error(self, rc, "merging the re-derived columns");
    }
    if (rc == 0)
        rc = s_exec(self, "closing the cursor", "CLOSE asy_refold");
    if (rc == 0)
        rc = s_exec(self, "dropping case_state_refold", "DROP TABLE case_state_refold");
    return rc;
}

int asy_store_refold(asy_store_t *self)
{
    asy_db_row_t row;
    int rc = asy_db_query_row(self->db, "SELECT to_regclass('case_state_refold') IS NOT NULL",
                              false, 0, NULL, &row);
    bool pending = rc == 0 && row.values[0] && row.values[0][0] == 't';
    asy_db_row_release(&row);
    if (rc != 0)
        return asy_store_db_error(self, rc, "looking for case_state_refold");
    if (!pending)
        return 0;
    s_chunk_t chunk = {.items = calloc(S_FETCH, sizeof *chunk.items)};
    if (!chunk.items)
        return ASY_ENOMEM;
    rc = asy_store_ready(self); /* the staging table asy_case_delta */
    if (rc == 0 && (rc = asy_db_begin(self->db)) != 0)
        asy_store_db_error(self, rc, "BEGIN");
    if (rc == 0)
        rc = s_refold(self, &chunk);
    if (rc == 0 && (rc = asy_db_commit(self->db)) != 0)
        asy_store_db_error(self, rc, "COMMIT");
    if (rc != 0)
        asy_db_rollback(self->db);
    else
        asy_info("case_state: the IMHA episode and the first meeting of %" PRIu64 " case(s)"
                 " re-derived from %" PRIu64 " stored events (migration 011); %" PRIu64
                 " case(s) whose events are not all in the event table (a detached partition?)"
                 " kept as they were%s",
                 chunk.cases, chunk.events, chunk.kept,
                 chunk.undecodable ? "; some payloads did not decode (their cases lack them)" : "");
    free(chunk.items);
    return rc;
}
