/*  ingest_publish.c: an ingest worker's answer to a PUBLISH (proto/PROTOCOL.md 5.3): the
    checks against the session, each event's checks, the batch's write and its ACK or NACK,
    and the committed case rows handed to the monitor. The worker's loop is ingest.c.  */
#include "ingest_private.h"

#include "monitor.h"

#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --------------------------------------------------------------------------------------------
   PUBLISH */

/* Acknowledges up to seq, listing the refused items. The list goes in self->rejections,
   allocated with the items (s_items) before the batch was written: allocating it here, after
   COMMIT, could fail and leave an ACK that says nothing was rejected. */
static void s_ack(asy_ingest_worker_t *self, const asy_ingest_session_t *session, uint64_t seq,
                  const asy_store_item_t *items, size_t count, size_t duplicates)
{
    asy_rejection_t *list = self->rejections;
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (items[i].code != 0)
            list[used++] = (asy_rejection_t){items[i].seq, items[i].code, items[i].reason};
    asy_frame_t frame = {.type = ASY_FRAME_ACK, .version = ASY_PROTOCOL_VERSION};
    frame.u.ack = (asy_ack_t){.agent_id = session->agent_id,
                              .epoch = session->epoch,
                              .seq = seq,
                              .rejected_count = used,
                              .rejected = list,
                              .duplicates = (uint32_t)duplicates};
    asy_ingest_send(self, &frame);
}

static void s_reject(asy_store_item_t *item, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void s_reject(asy_store_item_t *item, int code, const char *format, ...)
{
    item->code = code;
    va_list args;
    va_start(args, format);
    vsnprintf(item->reason, sizeof item->reason, format, args);
    va_end(args);
    memset(&item->summary, 0, sizeof item->summary);
}

/* The checks that bind an event to its place: seq, agent, epoch, site. */
static void s_check_binding(const asy_ingest_session_t *session, asy_store_item_t *item)
{
    const asy_event_summary_t *event = &item->summary;
    char text[80];
    if (event->seq != item->seq)
        s_reject(item, ASY_CODE_EVENT_SEQ_MISMATCH,
                 "seq: event says %" PRIu64 " but sits at seq %" PRIu64 " of the PUBLISH",
                 event->seq, item->seq);
    else if (strcmp(event->agent_id, session->agent_id) != 0 || event->epoch != session->epoch)
        s_reject(item, ASY_CODE_EVENT_SEQ_MISMATCH,
                 "agent_id/epoch: event says %s/%" PRIu64 " but the PUBLISH is %s/%" PRIu64,
                 asy_ingest_printable(event->agent_id, text, sizeof text), event->epoch,
                 session->agent_id, session->epoch);
    else if (strcmp(event->site_id, session->site_id) != 0)
        s_reject(item, ASY_CODE_EVENT_WRONG_SITE,
                 "site_id: event says %s but agent %s publishes for site %s",
                 asy_ingest_printable(event->site_id, text, sizeof text), session->agent_id,
                 session->site_id);
}

static void s_check_event(const asy_ingest_session_t *session, const asy_bytes_t *bytes,
                          uint64_t seq, asy_store_item_t *item)
{
    memset(item, 0, sizeof *item);
    item->seq = seq;
    item->data = bytes->data;
    item->size = bytes->size;
    if (bytes->size > ASY_MAX_EVENT_BYTES) {
        s_reject(item, ASY_CODE_EVENT_TOO_LARGE, "event is %zu bytes; the limit is %u", bytes->size,
                 ASY_MAX_EVENT_BYTES);
        return;
    }
    asy_event_t *event = NULL;
    if (asy_event_decode(bytes->data, bytes->size, &event) != 0) {
        s_reject(item, ASY_CODE_EVENT_UNDECODABLE,
                 "event bytes (%zu) are not a decodable advsync.v1.Event", bytes->size);
        return;
    }
    asy_check_t why = {0};
    if (asy_event_validate(event, &why) != 0) {
        s_reject(item, why.code ? why.code : ASY_CODE_EVENT_INVALID_FIELD, "%s",
                 why.reason[0] ? why.reason : "event is not valid");
        if (why.identifying) { /* quarantined without its bytes */
            item->data = NULL;
            item->size = 0;
        }
        asy_event_destroy(&event);
        return;
    }
    asy_event_summarise(event, &item->summary);
    asy_event_destroy(&event);
    s_check_binding(session, item);
}

/* The items of a batch of count events, and room for the ACK's list of their rejections;
   NULL if out of memory (then nothing may be written: the batch could not be answered). */
static asy_store_item_t *s_items(asy_ingest_worker_t *self, size_t count)
{
    if (count > self->items_capacity) {
        asy_store_item_t *items = realloc(self->items, count * sizeof *items);
        if (!items)
            return NULL;
        self->items = items;
        asy_rejection_t *rejections = realloc(self->rejections, count * sizeof *rejections);
        if (!rejections)
            return NULL;
        self->rejections = rejections;
        self->items_capacity = count;
    }
    return self->items;
}

static void s_retry_later(asy_ingest_worker_t *self, const asy_publish_t *publish, uint32_t wait,
                          const char *why)
{
    asy_ingest_nack(self, ASY_CODE_RETRY_LATER, publish->first_seq, 0, wait, "%s; retry in %u ms",
                    why, wait);
}

/* Re-reads the agent's committed seq into the session. Returns 0, or NACKs and returns
   the error. */
static int s_refresh(asy_ingest_worker_t *self, asy_ingest_session_t *session,
                     const asy_publish_t *publish)
{
    uint64_t committed = 0;
    int rc = asy_store_committed_seq(self->store, session->agent_id, session->epoch, &committed);
    if (rc != 0) {
        s_retry_later(self, publish, asy_ingest_db_failed(self, "committed-seq read", rc),
                      "database unavailable");
        return rc;
    }
    if (committed < session->committed) {
        /* the centre's record went back (its database restored, or failed over to a lagging
           replica) under a live session: what this session knows is wrong, and the
           compare-and-set would fail for ever. The agent's HELLO starts from the truth. */
        asy_warn("agent %s epoch %" PRIu64 ": the centre's committed seq went back from %" PRIu64
                 " to %" PRIu64 " (database restored or failed over?); asking for HELLO again",
                 session->agent_id, session->epoch, session->committed, committed);
        asy_ingest_nack(self, ASY_CODE_NOT_WELCOMED, publish->first_seq, 0, 0,
                        "the centre's committed seq for this stream went back from %" PRIu64
                        " to %" PRIu64 " (database restored?): send HELLO again",
                        session->committed, committed);
        zhashx_delete(self->sessions, self->peer_key); /* frees session */
        return ASY_ENOTFOUND;
    }
    if (committed > session->committed)
        session->committed = committed;
    return 0;
}

/* array (count used of *capacity, elements of size bytes) with room for one more: array
   itself, or a larger copy (*capacity doubled, first the first time); NULL if out of memory
   (array and *capacity are then unchanged). */
static void *s_room_for_one(void *array, size_t *capacity, size_t count, size_t size, size_t first)
{
    if (count < *capacity)
        return array;
    size_t grown = *capacity ? *capacity * 2 : first;
    void *larger = realloc(array, grown * size);
    if (larger)
        *capacity = grown;
    return larger;
}

/* The store's case sink: keeps the merged case_state rows of the batch in hand. */
int asy_ingest_collect_case(void *arg, int columns, const char *const *values)
{
    asy_ingest_worker_t *self = arg;
    asy_ingest_rows_t *rows = &self->rows;
    asy_case_view_t *views =
        s_room_for_one(rows->views, &rows->view_capacity, rows->view_count, sizeof *views, 256);
    if (!views)
        return ASY_ENOMEM;
    rows->views = views;
    if (asy_case_view_parse(columns, values, &rows->views[rows->view_count]) != 0) {
        asy_warn("worker %d: case_state row %s not understood by the monitor; skipped", self->index,
                 values[0] ? values[0] : "?");
        return 0;
    }
    rows->view_count++;
    return 0;
}

/* The store's outcome sink: keeps the merged outcome_state rows of the batch in hand. */
int asy_ingest_collect_outcome(void *arg, int columns, const char *const *values)
{
    asy_ingest_rows_t *rows = &((asy_ingest_worker_t *)arg)->rows;
    asy_outcome_view_t *outcomes = s_room_for_one(rows->outcomes, &rows->outcome_capacity,
                                                  rows->outcome_count, sizeof *outcomes, 64);
    if (!outcomes)
        return ASY_ENOMEM;
    rows->outcomes = outcomes;
    if (asy_outcome_view_parse(columns, values, &rows->outcomes[rows->outcome_count]) == 0)
        rows->outcome_count++;
    return 0;
}

/* Hands committed rows (the batch's, or a settled doubt's) to the monitor, and empties them. */
static void s_notify_monitor(asy_ingest_worker_t *self, asy_ingest_rows_t *rows)
{
    if (self->monitor && (rows->view_count > 0 || rows->outcome_count > 0) &&
        asy_monitor_send_cases(self->monitor, rows->views, rows->view_count, rows->outcomes,
                               rows->outcome_count) != 0)
        asy_error("worker %d: %zu case updates not handed to the monitor: %s", self->index,
                  rows->view_count, zmq_strerror(zmq_errno()));
    rows->view_count = rows->outcome_count = 0;
}

/* Keeps the rows of the batch in hand, whose COMMIT went unanswered, for
   asy_ingest_settle_doubt (the two row sets swap their arrays: nothing is copied). */
static void s_hold_in_doubt(asy_ingest_worker_t *self, const char *agent_id, uint64_t epoch,
                            uint64_t first_seq, uint64_t last_seq)
{
    asy_ingest_rows_t spare = self->doubt.rows;
    spare.view_count = spare.outcome_count = 0;
    self->doubt.rows = self->rows;
    self->rows = spare;
    snprintf(self->doubt.agent_id, sizeof self->doubt.agent_id, "%s", agent_id);
    self->doubt.epoch = epoch;
    self->doubt.first_seq = first_seq;
    self->doubt.last_seq = last_seq;
    self->doubt.pending = true;
}

int asy_ingest_settle_doubt(asy_ingest_worker_t *self)
{
    if (!self->doubt.pending)
        return 0;
    uint64_t committed = 0;
    int rc =
        asy_store_committed_seq(self->store, self->doubt.agent_id, self->doubt.epoch, &committed);
    if (rc != 0)
        return rc;
    self->doubt.pending = false;
    if (committed < self->doubt.last_seq) {
        asy_info("agent %s epoch %" PRIu64 " seqs %" PRIu64 "..%" PRIu64 ": the COMMIT whose "
                 "answer was lost had not taken effect (committed seq %" PRIu64 "); the resend "
                 "commits them",
                 self->doubt.agent_id, self->doubt.epoch, self->doubt.first_seq,
                 self->doubt.last_seq, committed);
        return 0;
    }
    /* committed (by that COMMIT, or since by the resend elsewhere: then these rows are
       versions the monitor has already, and it ignores them) */
    asy_info("agent %s epoch %" PRIu64 " seqs %" PRIu64 "..%" PRIu64 ": the COMMIT whose answer "
             "was lost had taken effect (committed seq %" PRIu64 "); its %zu case update(s) go "
             "to the monitor now",
             self->doubt.agent_id, self->doubt.epoch, self->doubt.first_seq, self->doubt.last_seq,
             committed, self->doubt.rows.view_count);
    s_notify_monitor(self, &self->doubt.rows);
    return 0;
}

/* Answers a batch the store did not commit (rc from asy_store_write_batch, not 0 nor
   ASY_EEXIST): a NACK, or RETRY_LATER with the back-off its cause asks for. Returns rc. */
static int s_write_failed(asy_ingest_worker_t *self, const asy_publish_t *publish,
                          const asy_store_item_t *items, size_t fresh, int rc)
{
    if (rc == ASY_ENOMEM) {
        s_retry_later(self, publish, ASY_INGEST_RETRY_FIRST_MS, "broker out of memory");
        return rc;
    }
    if (rc == ASY_EPROTO) {
        /* a batch of an epoch a newer one re-issued: its events go in under the new epoch */
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64 ": %s", asy_ingest_who(self), items[0].seq,
                 items[fresh - 1].seq, asy_store_errmsg(self->store));
        asy_ingest_nack(self, ASY_CODE_WRONG_AGENT, publish->first_seq, 0, 0, "%s",
                        asy_store_errmsg(self->store));
        return rc;
    }
    if (rc == ASY_EDB) {
        /* The database is up but refused this batch (a defect: validation should have
           caught it). Other agents are not affected; this stream waits for a fix. */
        asy_error("agent %s seqs %" PRIu64 "..%" PRIu64 ": the database refused the batch: %s",
                  asy_ingest_who(self), items[0].seq, items[fresh - 1].seq,
                  asy_store_errmsg(self->store));
        s_retry_later(self, publish, ASY_INGEST_RETRY_MAX_MS,
                      "the database refused this batch, nothing "
                      "committed; see the broker log");
        return rc;
    }
    if (asy_store_commit_in_doubt(self->store)) {
        /* the resend settles it: duplicates if it was committed, else committed then; the
           monitor gets the rows once committed_seq says which */
        s_hold_in_doubt(self, publish->agent_id, publish->epoch, items[0].seq,
                        items[fresh - 1].seq);
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64 ": no answer to COMMIT (the connection "
                 "was lost): the batch may have been committed; resend asked",
                 asy_ingest_who(self), items[0].seq, items[fresh - 1].seq);
        s_retry_later(self, publish, asy_ingest_db_failed(self, "batch COMMIT", rc),
                      "database connection lost at COMMIT; if the batch was committed, its "
                      "resend is acknowledged as duplicates");
        return rc;
    }
    if (rc == ASY_ERETRY && asy_store_connected(self->store)) {
        /* A deadlock or serialization failure against another worker or broker: expected
           now and then with concurrent writers; only this batch is resent. */
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64 ": transient conflict, resend asked: %s",
                 asy_ingest_who(self), items[0].seq, items[fresh - 1].seq,
                 asy_store_errmsg(self->store));
        s_retry_later(self, publish, ASY_INGEST_RETRY_FIRST_MS,
                      "a transient conflict with another writer, nothing committed");
        return rc;
    }
    s_retry_later(self, publish, asy_ingest_db_failed(self, "batch write", rc),
                  "database unavailable, nothing committed");
    return rc;
}

/* Answers a committed batch: moves the session's mark, counts and logs its events, ACKs. */
static void s_write_committed(asy_ingest_worker_t *self, asy_ingest_session_t *session,
                              const asy_store_item_t *items, size_t fresh, size_t duplicates,
                              size_t known)
{
    asy_ingest_db_ok(self);
    uint64_t last = items[fresh - 1].seq;
    session->committed = last;
    size_t rejected = 0, first_bad = fresh;
    for (size_t i = 0; i < fresh; i++)
        if (items[i].code != 0 && rejected++ == 0)
            first_bad = i;
    self->counters.batches++;
    self->counters.events += fresh - rejected - known;
    self->counters.quarantined += rejected;
    self->counters.duplicates += duplicates + known;
    if (known)
        asy_info("agent %s seqs %" PRIu64 "..%" PRIu64 ": %zu re-issued event(s) already held "
                 "under epoch %" PRIu64 ", not stored again",
                 asy_ingest_who(self), items[0].seq, last, known, session->origins[0].epoch);
    if (rejected)
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64
                 ": %zu event(s) quarantined, first seq %" PRIu64 " %s: %s",
                 asy_ingest_who(self), items[0].seq, last, rejected, items[first_bad].seq,
                 asy_code_name(items[first_bad].code), items[first_bad].reason);
    s_ack(self, session, last, items, fresh, duplicates + known);
}

/* Writes the new events of the batch: all events above the high-water mark. */
static int s_write(asy_ingest_worker_t *self, asy_ingest_session_t *session,
                   const asy_publish_t *publish, size_t duplicates)
{
    size_t fresh = publish->count - duplicates;
    asy_store_item_t *items = s_items(self, fresh);
    if (!items) {
        asy_error("worker %d: agent %s: no memory for a batch of %zu events and its ACK; "
                  "nothing written, resend asked",
                  self->index, asy_ingest_who(self), fresh);
        s_retry_later(self, publish, ASY_INGEST_RETRY_FIRST_MS, "broker out of memory");
        return ASY_ENOMEM;
    }
    for (size_t i = 0; i < fresh; i++)
        s_check_event(session, &publish->events[duplicates + i],
                      publish->first_seq + duplicates + i, &items[i]);
    self->rows.view_count = self->rows.outcome_count = 0;
    asy_store_reissued_t reissued = {session->origins, session->origin_count, 0};
    int rc = asy_store_write_batch(self->store, session->agent_id, session->site_id, session->epoch,
                                   session->committed, items, fresh,
                                   session->origin_count > 0 ? &reissued : NULL);
    if (rc == ASY_EEXIST)
        return rc;
    if (rc != 0)
        return s_write_failed(self, publish, items, fresh, rc);
    s_notify_monitor(self, &self->rows);
    s_write_committed(self, session, items, fresh, duplicates, reissued.known);
    return 0;
}

/* True (after a NACK SEQ_CONFLICT, which ends the session) if the PUBLISH's last seq the centre
   already holds carries another event than the centre's there: a copy of this agent's outbox, with
   events of its own under the same seqs, got its batch in first (two copies reconnecting together,
   each session on its own worker, get past the WELCOME check of 5.1 at the same seq). Acknowledging
   these seqs as duplicates would lose them. A seq held without an event row (quarantined, or found
   already held by a re-issue) is not compared. Returns true after a RETRY_LATER too if the
   database cannot say. */
static bool s_conflict(asy_ingest_worker_t *self, const asy_ingest_session_t *session,
                       const asy_publish_t *publish, size_t duplicates)
{
    uint64_t seq = publish->first_seq + duplicates - 1;
    char theirs[ASY_UUID_TEXT + 1] = "";
    int rc = asy_store_event_id_at(self->store, session->agent_id, session->epoch, seq, theirs);
    if (rc != 0) {
        s_retry_later(self, publish, asy_ingest_db_failed(self, "PUBLISH", rc),
                      "database unavailable");
        return true;
    }
    if (!theirs[0])
        return false;
    asy_event_t *event = NULL;
    const asy_bytes_t *bytes = &publish->events[duplicates - 1];
    if (asy_event_decode(bytes->data, bytes->size, &event) != 0) {
        asy_event_destroy(&event);
        return false; /* not an event: its seq was quarantined when first sent, or is now */
    }
    const char *ours = asy_event_id(event);
    bool conflict = ours && strcasecmp(ours, theirs) != 0;
    asy_event_destroy(&event);
    if (conflict) {
        asy_warn("agent %s epoch %" PRIu64 ": seq %" PRIu64 " is another event here: a copied "
                 "or restored outbox; refused with SEQ_CONFLICT",
                 session->agent_id, session->epoch, seq);
        asy_ingest_nack(
            self, ASY_CODE_SEQ_CONFLICT, publish->first_seq, 0, 0,
            "the centre holds another event at seq %" PRIu64 " of agent %s epoch %" PRIu64
            ": this outbox is a copy or a restored backup; stop, and run `advsync-agent "
            "reissue` on it",
            seq, session->agent_id, session->epoch);
        /* the session ends: the batches this copy has in flight after this one would
           otherwise be taken at the seqs after the other copy's (PROTOCOL 5.3 step 3) */
        zhashx_delete(self->sessions, self->peer_key); /* frees session */
    }
    return conflict;
}

/* One pass over a PUBLISH. Returns ASY_EEXIST if another writer moved the committed seq under
   us (nothing written, nothing answered); otherwise the PUBLISH has been answered. */
static int s_publish_pass(asy_ingest_worker_t *self, asy_ingest_session_t *session,
                          const asy_publish_t *publish)
{
    if (publish->first_seq > session->committed + 1) {
        if (s_refresh(self, session, publish) != 0)
            return 0;
        if (publish->first_seq > session->committed + 1) {
            asy_ingest_nack(self, ASY_CODE_SEQ_GAP, publish->first_seq, session->committed + 1, 0,
                            "first_seq %" PRIu64 " but the centre has committed up to %" PRIu64
                            ": resend from %" PRIu64,
                            publish->first_seq, session->committed, session->committed + 1);
            return 0;
        }
    }
    uint64_t known =
        publish->first_seq <= session->committed ? session->committed - publish->first_seq + 1 : 0;
    size_t duplicates = known > publish->count ? publish->count : (size_t)known;
    if (duplicates > 0 && s_conflict(self, session, publish, duplicates))
        return 0;
    if (duplicates == publish->count) {
        self->counters.duplicates += duplicates;
        s_ack(self, session, session->committed, NULL, 0, duplicates);
        return 0;
    }
    int rc = s_write(self, session, publish, duplicates);
    return rc == ASY_EEXIST ? rc : 0;
}

/* Checks the PUBLISH against its session; NACKs and returns NULL if it does not fit. */
static asy_ingest_session_t *s_publish_session(asy_ingest_worker_t *self,
                                               const asy_publish_t *publish)
{
    asy_ingest_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
    char text[80];
    if (!session) {
        asy_ingest_nack(
            self, ASY_CODE_NOT_WELCOMED, publish->first_seq, 0, 0,
            "no session on this connection (broker restarted, or no HELLO yet): send HELLO");
        return NULL;
    }
    if (!publish->agent_id || strcmp(publish->agent_id, session->agent_id) != 0 ||
        publish->epoch != session->epoch) {
        asy_ingest_nack(self, ASY_CODE_NOT_WELCOMED, publish->first_seq, 0, 0,
                        "PUBLISH as %s epoch %" PRIu64
                        " but this connection said HELLO as %s epoch %" PRIu64 ": send HELLO again",
                        asy_ingest_printable(publish->agent_id, text, sizeof text), publish->epoch,
                        session->agent_id, session->epoch);
        return NULL;
    }
    session->last_seen_ms = zclock_mono();
    return session;
}

void asy_ingest_on_publish(asy_ingest_worker_t *self, const asy_publish_t *publish)
{
    asy_ingest_session_t *session = s_publish_session(self, publish);
    if (!session)
        return;
    if (publish->first_seq < 1 || publish->count == 0 ||
        publish->first_seq - 1 > (uint64_t)INT64_MAX - publish->count) {
        asy_ingest_nack(self, ASY_CODE_MALFORMED_FRAME, publish->first_seq, 0, 0,
                        "PUBLISH needs first_seq >= 1, at least one event and seqs up to 2^63 - 1 "
                        "(first_seq %" PRIu64 ", %zu events)",
                        publish->first_seq, publish->count);
        return;
    }
    uint32_t wait = asy_ingest_db_wait(self);
    if (wait) {
        s_retry_later(self, publish, wait, "database unavailable");
        return;
    }
    int rc = asy_ingest_settle_doubt(self);
    if (rc != 0) {
        s_retry_later(self, publish, asy_ingest_db_failed(self, "committed-seq read", rc),
                      "database unavailable");
        return;
    }
    if (publish->count > ASY_MAX_BATCH_EVENTS) { /* PROTOCOL 5.3 step 1, after step 0 */
        asy_ingest_nack(self, ASY_CODE_BATCH_TOO_LARGE, publish->first_seq, 0, 0,
                        "PUBLISH holds %zu events; the limit is %u", publish->count,
                        ASY_MAX_BATCH_EVENTS);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (s_publish_pass(self, session, publish) != ASY_EEXIST)
            return;
        asy_info("agent %s: committed seq moved by another writer; re-reading",
                 asy_ingest_who(self));
        if (s_refresh(self, session, publish) != 0)
            return;
    }
    s_retry_later(self, publish, ASY_INGEST_RETRY_FIRST_MS,
                  "committed seq keeps moving under this batch");
}
