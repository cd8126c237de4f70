/*  store.h: the broker's writes to PostgreSQL. One batch -> one transaction: the valid events
    (binary COPY into `event`), the quarantined ones, the merged per-case state, and the
    compare-and-set of the agent's committed high-water mark, which is what makes replays
    exactly-once even with several brokers over one database.

    Owns one PostgreSQL connection (through db.h). Not shared between actors.  */
#ifndef ASY_STORE_H_INCLUDED
#define ASY_STORE_H_INCLUDED

#include "asy.h"
#include "codec.h"
#include "db.h"

typedef struct asy_store asy_store_t;

/* Connects with a libpq conninfo string and applies pending migrations under an advisory
   lock. Returns NULL with error[] set if the database cannot be reached or a migration fails. */
asy_store_t *asy_store_new(const char *conninfo, char *error, size_t error_size);
void asy_store_destroy(asy_store_t **self_p);
const char *asy_store_errmsg(const asy_store_t *self);

/* True while the connection is usable: after ASY_ERETRY it tells a transient conflict
   (deadlock, serialization failure: just retry the batch) from a lost database. */
bool asy_store_connected(const asy_store_t *self);

/* True if the last asy_store_write_batch failed because the connection was lost while its
   COMMIT was under way: the batch may or may not be committed (the stream's committed_seq
   says which, once the database is back). */
bool asy_store_commit_in_doubt(const asy_store_t *self);

/* Re-establishes a lost connection. Returns 0 if the connection is (now) good, else ASY_ERETRY. */
int asy_store_reconnect(asy_store_t *self);

/* Binds agent_id to site_id on first sight (tables site, agent, agent_stream) and returns the
   committed seq of (agent_id, epoch), 0 if none. ASY_EINVAL (with errmsg) if the agent is
   bound to another site; ASY_ERETRY if the database is unreachable. */
int asy_store_hello(asy_store_t *self, const char *agent_id, const char *site_id,
                    uint64_t epoch, uint64_t *committed_seq);

/* Reads the committed seq of (agent_id, epoch) (0 if none). ASY_ERETRY if unreachable. */
int asy_store_committed_seq(asy_store_t *self, const char *agent_id, uint64_t epoch,
                            uint64_t *committed_seq);

/* The event_id stored for (agent, epoch, seq), in out[37]; "" when there is none (seq 0, or
   the event was quarantined). Returns 0 or a db.h code. */
int asy_store_event_id_at(asy_store_t *self, const char *agent_id, uint64_t epoch, uint64_t seq,
                          char out[ASY_UUID_TEXT + 1]);

/* One event of a batch, already checked by the caller: code == 0 means valid (summary
   filled), otherwise the event is quarantined with code and reason. data is the event's bytes
   exactly as received, kept verbatim. known (set by asy_store_write_batch, re-issue) means the
   centre holds the event already under the epoch this one re-issues: its seq is consumed,
   nothing is written. */
typedef struct {
    uint64_t seq;
    const uint8_t *data;
    size_t size;
    int code;
    bool known;
    char reason[256];
    asy_event_summary_t summary;
} asy_store_item_t;

/* True if the item becomes an event row: valid, and not already held (known). What the case
   and outcome folds take in. */
static inline bool asy_store_item_stored(const asy_store_item_t *item)
{
    return item->code == 0 && !item->known;
}

/* Where a re-issued epoch's events were before (PROTOCOL.md 5.5): the event at seq s of the
   re-issued epoch was at seq s + offset of `epoch`. */
typedef struct {
    uint64_t epoch;
    uint64_t offset;
} asy_store_origin_t;

#define ASY_STORE_REISSUE_DEPTH 8 /* origins followed back: re-issues of re-issues */

/* Records that (agent_id, epoch) re-issues the events of (agent_id, of_epoch) from seq
   from_seq on (once: a stream already marked keeps its first record), and returns in
   origins[0..*count) where its events may have been: of_epoch, and if that epoch was itself
   a re-issue, its origins in turn (up to ASY_STORE_REISSUE_DEPTH). Returns 0, ASY_EINVAL
   (the stream was recorded as re-issuing another epoch or seq: the message says both), or a
   db.h code. */
int asy_store_reissue(asy_store_t *self, const char *agent_id, uint64_t epoch, uint64_t of_epoch,
                      uint64_t from_seq, asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH],
                      size_t *count);

/* A batch of a re-issued epoch: the epochs it re-issues (asy_store_reissue), and, after the
   write, how many of its events the centre held already there (items[i].known). */
typedef struct {
    const asy_store_origin_t *origins;
    size_t origin_count;
    size_t known;
} asy_store_reissued_t;

/* Writes items (contiguous seqs, items[0].seq == expected_committed + 1) in one transaction
   and moves agent_stream.committed_seq from expected_committed to the last item's seq.
   reissued (NULL for an ordinary epoch): inside the transaction, the origin epochs' rows of
   agent_stream are locked first (a batch of an old epoch still being committed by another
   worker is waited for), then each valid item whose event_id the centre holds at its origin
   seq (seq + offset) in an origin epoch is marked known and not written again (one query,
   bounded by the primary key to the batch's seq range in each origin epoch).
   Returns 0 once COMMIT succeeded; ASY_EEXIST if committed_seq was no longer
   expected_committed (another writer moved it: nothing written, re-read and retry);
   ASY_EPROTO if this epoch was re-issued by a newer one from a seq of this batch on (a stale
   copy of the outbox: errmsg says which; nothing written);
   ASY_ERETRY if the connection was lost or a transient SQLSTATE (40001, 40P01) occurred
   (nothing acknowledged: the outcome is re-derived from committed_seq on retry);
   ASY_EDB for any other database error (errmsg says which). */
int asy_store_write_batch(asy_store_t *self, const char *agent_id, const char *site_id,
                          uint64_t epoch, uint64_t expected_committed, asy_store_item_t *items,
                          size_t count, asy_store_reissued_t *reissued);

/* Names the store's connection in the log lines of db.c ("worker 1"). */
void asy_store_set_label(asy_store_t *self, const char *label);

/* Asks for the final case_state rows of every batch: from now on asy_store_write_batch
   merges with "RETURNING <ASY_CASE_VIEW_COLUMNS>" and calls fn once per row the batch
   touched, inside the transaction (the rows count only if the call returns 0, i.e. after
   COMMIT). fn returning nonzero fails the batch. */
void asy_store_set_case_sink(asy_store_t *self, asy_db_row_fn *fn, void *arg);

/* The same for the merged outcome_state rows (ASY_OUTCOME_VIEW_COLUMNS of case_view.h):
   Recovery Star readings, migration 004. */
void asy_store_set_outcome_sink(asy_store_t *self, asy_db_row_fn *fn, void *arg);

/* Quarantines bytes that never became an event of a batch (a malformed frame, an oversize
   frame): agent/site may be NULL, seq 0. size is the frame's; only its first
   min(size, ASY_MAX_EVENT_BYTES) bytes are read and kept, and the reason then says it was
   truncated from size. Best effort: returns 0 or an error code. */
int asy_store_quarantine_frame(asy_store_t *self, const char *agent_id, const char *site_id,
                               int code, const char *reason, const uint8_t *data, size_t size);

#endif
