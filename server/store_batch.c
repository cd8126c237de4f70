/*  store_batch.c: writing one batch, and one refused frame, for the broker's store (see
    store.h; the connection, migrations and HELLO are in store.c).

    One batch is one transaction of a handful of round trips, whatever its size:
      BEGIN; compare-and-set of agent_stream.committed_seq (0 rows: someone else moved it,
      ROLLBACK, ASY_EEXIST); binary COPY of the valid events into `event`; binary COPY of the
      refused ones into `quarantine`; binary COPY of one merged delta row per case into a
      temporary staging table and one INSERT ... ON CONFLICT into `case_state`; COMMIT.

    The per-case fold of the batch and the case_state merge rules it follows (one comment block
    that says how every column merges) live in case_fold.c.  */
#include "store_private.h"

#include "case_fold.h"
#include "outcome_fold.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_QUARANTINE_MAX ASY_MAX_EVENT_BYTES /* of a refused frame (PROTOCOL 5.2) */

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char s_copy_event[] =
    "COPY event (agent_id, epoch, seq, event_id, site_id, case_id, person_key, kind,"
    " occurred_at, recorded_at, schema_version, received_at, payload)"
    " FROM STDIN (FORMAT binary)";
static const char s_copy_quarantine[] =
    "COPY quarantine (received_at, agent_id, site_id, epoch, seq, code, code_name, reason,"
    " payload) FROM STDIN (FORMAT binary)";

/* ----------------------------------------------------------------------------------------------
   Re-issued events of a batch (PROTOCOL.md 5.5). */

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
        /* the batch's seqs a..b were a+offset..b+offset of each origin epoch; a bound past
           2^63 - 1 is held at it (no seq of an origin is larger; bigint would overflow) */
        const char *params[] = {agent_id, epochs, offsets, first, last, ids};
        rc = asy_db_query_each(
            self->db,
            "SELECT e.event_id::text FROM unnest($2::bigint[], $3::bigint[]) AS o(epoch, off)"
            " JOIN event e ON e.agent_id = $1 AND e.epoch = o.epoch"
            " AND e.seq BETWEEN $4::bigint + least(o.off, 9223372036854775807 - $4::bigint)"
            " AND $5::bigint + least(o.off, 9223372036854775807 - $5::bigint)"
            " WHERE e.event_id = ANY($6::uuid[])",
            false, 6, params, s_collect_id, &found);
    }
    free(ids);
    free(epochs);
    free(offsets);
    if (rc != 0) {
        free(found.ids);
        return rc == ASY_ENOMEM ? rc : asy_store_db_error(self, rc, "looking up re-issued events");
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
    asy_db_copy_uuid_bytes(c, s->event_uuid);
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
        asy_store_error(self, "empty batch");
        return ASY_EINVAL;
    }
    for (size_t i = 0; i < count; i++)
        if (items[i].seq != expected_committed + 1 + i) {
            asy_store_error(self, "batch item %zu has seq %" PRIu64 ", expected %" PRIu64, i,
                            items[i].seq, expected_committed + 1 + i);
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
        asy_store_error(self, "%s building the batch (a malformed event_id?)", asy_strerror(rc));
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
    if (rc == ASY_ENOTFOUND) {
        /* a sibling: a newer epoch re-issues the same origin in this one's place (the outbox
           re-issued again, PROTOCOL.md 5.5 step 1), so this one is a copy that no longer
           sends, as above; its events belong to the newer epoch */
        rc = asy_db_query_row(self->db,
                              "SELECT t.epoch, t.reissue_from_seq FROM agent_stream s"
                              " JOIN agent_stream t ON t.agent_id = s.agent_id"
                              " AND t.reissue_of_epoch = s.reissue_of_epoch AND t.epoch > s.epoch"
                              " WHERE s.agent_id = $1 AND s.epoch = $2 ORDER BY t.epoch LIMIT 1",
                              false, 2, params, &row);
        if (rc == ASY_ENOTFOUND)
            return 0;
    }
    if (rc != 0)
        return asy_store_db_error(self, rc, "reading a re-issued epoch");
    asy_store_error(self,
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
    char epoch_text[ASY_STORE_INT8_TEXT], last_text[ASY_STORE_INT8_TEXT],
        expected_text[ASY_STORE_INT8_TEXT];
    const char *params[] = {agent_id, asy_store_int8(epoch_text, epoch),
                            asy_store_int8(last_text, last),
                            asy_store_int8(expected_text, expected_committed)};
    uint64_t affected = 0;
    int rc = expected_committed == 0
                 ? asy_db_exec_prepared(self->db, "cas_first", 3, params, &affected)
                 : asy_db_exec_prepared(self->db, "cas_update", 4, params, &affected);
    if (rc != 0)
        return asy_store_db_error(self, rc, "committed-seq update");
    if (affected == 0) {
        asy_store_error(self, "agent %s epoch %" PRIu64 ": committed seq is no longer %" PRIu64,
                        agent_id, epoch, expected_committed);
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
                         " AND epoch = ANY($2::bigint[]) ORDER BY epoch FOR UPDATE",
                         2, params, NULL);
    free(epochs);
    return rc == 0 ? 0 : asy_store_db_error(self, rc, "locking the re-issued epochs");
}

/* Sends what s_build_batch built, inside the batch's transaction: the COPYs into event and
   quarantine, then the case_state and outcome_state merges through their staging tables.
   Returns 0, or the first failure's code with the message set. */
static int s_send_batch(asy_store_t *self)
{
    int rc;
    if (asy_db_copy_rows(self->events) > 0 &&
        (rc = asy_db_copy_send(self->db, s_copy_event, self->events, NULL)) != 0)
        return asy_store_db_error(self, rc, "COPY into event");
    if (asy_db_copy_rows(self->quarantined) > 0 &&
        (rc = asy_db_copy_send(self->db, s_copy_quarantine, self->quarantined, NULL)) != 0)
        return asy_store_db_error(self, rc, "COPY into quarantine");
    if (asy_db_copy_rows(self->cases) > 0) {
        if ((rc = asy_db_copy_send(self->db, asy_case_fold_delta_copy_sql(self->fold), self->cases,
                                   NULL)) != 0 ||
            (rc = self->case_sink
                      ? asy_db_query_each(self->db, "case_upsert_returning", true, 0, NULL,
                                          self->case_sink, self->case_sink_arg)
                      : asy_db_exec_prepared(self->db, "case_upsert", 0, NULL, NULL)) != 0)
            return asy_store_db_error(self, rc, "case_state merge");
    }
    if (asy_db_copy_rows(self->outcomes) > 0) {
        if ((rc = asy_db_copy_send(self->db, ASY_OUTCOME_COPY_SQL, self->outcomes, NULL)) != 0 ||
            (rc = self->outcome_sink
                      ? asy_db_query_each(self->db, ASY_OUTCOME_MERGE_SQL, false, 0, NULL,
                                          self->outcome_sink, self->outcome_sink_arg)
                      : asy_db_exec(self->db, ASY_OUTCOME_MERGE_SQL, 0, NULL, NULL)) != 0)
            return asy_store_db_error(self, rc, "outcome_state merge");
    }
    return 0;
}

int asy_store_write_batch(asy_store_t *self, const char *agent_id, const char *site_id,
                          uint64_t epoch, uint64_t expected_committed, asy_store_item_t *items,
                          size_t count, asy_store_reissued_t *reissued)
{
    self->commit_in_doubt = false;
    int rc = s_check_batch(self, expected_committed, items, count);
    if (rc == 0)
        rc = asy_store_ready(self);
    if (rc != 0)
        return rc;
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    if ((utc.tm_year + 1900) * 12 + utc.tm_mon != self->partitions_month)
        asy_store_ensure_partitions(self);
    if ((rc = asy_db_begin(self->db)) != 0) {
        asy_store_db_error(self, rc, "BEGIN");
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
    if ((rc = s_send_batch(self)) != 0)
        goto fail;
    if ((rc = asy_db_commit(self->db)) != 0) {
        /* no answer to COMMIT (no SQLSTATE: the line went, whether or not libpq has marked
           the connection bad yet): the server may have committed */
        self->commit_in_doubt = !asy_db_server_refused(self->db);
        asy_store_db_error(self, rc, "COMMIT");
        goto fail;
    }
    return 0;
fail:
    asy_db_rollback(self->db);
    return rc;
}

/* ----------------------------------------------------------------------------------------------
   A refused frame. */

int asy_store_quarantine_frame(asy_store_t *self, const char *agent_id, const char *site_id,
                               int code, const char *reason, const uint8_t *data, size_t size)
{
    int rc = asy_store_ready(self);
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
    return rc == 0 ? 0 : asy_store_db_error(self, rc, "quarantine");
}
