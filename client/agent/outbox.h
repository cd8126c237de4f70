/*  outbox.h: the agent's durable store of events not yet acknowledged by the centre.

    SQLite in WAL mode with synchronous=FULL: when asy_outbox_commit() returns, the events are
    on disk. The outbox numbers events 1, 2, 3 ... within its epoch; the epoch is fixed when the
    file is created (milliseconds since 1970), so a rebuilt outbox never reuses a (epoch, seq).
    One process may run `run` while others `submit`: SQLite's locking serialises them
    (busy timeout 10 s).  */
#ifndef ASY_OUTBOX_H_INCLUDED
#define ASY_OUTBOX_H_INCLUDED

#include "asy.h"
#include "codec.h"

typedef struct asy_outbox asy_outbox_t;

/* Opens (creating if missing) the outbox at path for this agent and site. Returns NULL and a
   message in error[] if it cannot be opened, or if it belongs to another agent or site. */
asy_outbox_t *asy_outbox_open(const char *path, const char *agent_id, const char *site_id,
                              char *error, size_t error_size);
/* The same, claiming the outbox for this process alone among those that claim it (`run`,
   `reissue`; `submit` and `status` do not): an exclusive flock(2) on the file, held until
   destroy. Fails, saying so, while another process holds the claim. */
asy_outbox_t *asy_outbox_open_claimed(const char *path, const char *agent_id, const char *site_id,
                                      char *error, size_t error_size);
void asy_outbox_destroy(asy_outbox_t **self_p);

/* True if the last asy_outbox_open(_claimed) of this thread that failed, failed on the storage
   in a way that often passes (an I/O error, a full disk). */
bool asy_outbox_open_failed_on_storage(void);

/* True if the file at the path this outbox was opened from is gone, or is another file (the
   outbox was deleted, or a backup copied over it): this handle then writes into a file no
   other command reads. */
bool asy_outbox_replaced(const asy_outbox_t *self);

/* Text of the last error on this outbox (borrowed). */
const char *asy_outbox_errmsg(const asy_outbox_t *self);

uint64_t asy_outbox_epoch(const asy_outbox_t *self);

/* Appending: begin, append any number, commit (durable on return) or rollback. */
int asy_outbox_begin(asy_outbox_t *self);
/* Stamps the event (asy_event_stamp with this outbox's site, agent, epoch and next seq),
   encodes it and stores it. Returns 0 and *seq_out; ASY_EEXIST if an event with the same
   event_id is already in the outbox (a resubmission: nothing stored, *seq_out = its seq, or
   0 if it was already acknowledged and pruned); ASY_EDB on SQLite failure. */
int asy_outbox_append(asy_outbox_t *self, asy_event_t *event, uint64_t *seq_out);
int asy_outbox_commit(asy_outbox_t *self);
int asy_outbox_rollback(asy_outbox_t *self);

/* Called once per stored event, in seq order; data is borrowed for the call only.
   Return 0 to go on, non-zero to stop. */
typedef int (asy_outbox_row_fn)(uint64_t seq, const uint8_t *data, size_t size, void *arg);

/* Visits up to max stored events with seq >= from_seq. Sets *count to how many were visited.
   Returns 0 or ASY_EDB. */
int asy_outbox_read(asy_outbox_t *self, uint64_t from_seq, size_t max, asy_outbox_row_fn *fn,
                    void *arg, size_t *count);

/* The event_id of the event held at seq, in out[37]; "" if no such row is held (pruned, or
   never stored). Returns 0 or ASY_EDB. */
int asy_outbox_event_id(asy_outbox_t *self, uint64_t seq, char out[ASY_UUID_TEXT + 1]);

/* Records that the centre has committed everything up to seq, and deletes those rows.
   Durable on return. Idempotent; a seq below the recorded one is ignored. */
int asy_outbox_ack(asy_outbox_t *self, uint64_t seq, int64_t now_ms);

/* How long a write waits for another process's lock before it fails (default 10 s, right for
   submit and import). `run` sets it short: its loop must keep
   heartbeating and answering signals, and it retries a failed acknowledgement later. */
void asy_outbox_set_busy_timeout(asy_outbox_t *self, int timeout_ms);

/* Records, durably and once per epoch, that the centre WELCOMEd this epoch (before anything
   of it is published): a later re-issue may then chain to it (asy_outbox_reissue). Returns 0
   or ASY_EDB. */
int asy_outbox_note_welcome(asy_outbox_t *self);

/* Records the time of the last message from the centre (not fsynced: informational). */
int asy_outbox_note_contact(asy_outbox_t *self, int64_t now_ms);

typedef struct {
    uint64_t old_epoch;
    uint64_t new_epoch;
    uint64_t from_seq; /* the old epoch's seqs from_seq..to_seq are now 1..count of new_epoch */
    uint64_t to_seq;
    uint64_t count;
    /* not 0: the outbox's epoch was a re-issue of old_epoch that the centre never WELCOMEd
       (a second re-issue in a row); new_epoch re-issues old_epoch in its place */
    uint64_t skipped_epoch;
} asy_outbox_reissue_t;

/* Re-issues the outbox under a new epoch (PROTOCOL.md 5.5), for an outbox restored from a
   backup or copied, whose seqs the centre has used for other events: every unacknowledged
   event keeps its bytes and event_id but gets (new epoch, seq 1..count), in one transaction,
   and the outbox records which seqs of which epoch they were, for the HELLO. Open claimed.
   An epoch that is itself a re-issue may be re-issued again (the centre follows the chain). */
int asy_outbox_reissue(asy_outbox_t *self, asy_outbox_reissue_t *out);

typedef struct {
    char agent_id[ASY_ID_MAX + 1];
    char site_id[ASY_ID_MAX + 1];
    uint64_t epoch;
    uint64_t last_seq;        /* highest seq assigned */
    uint64_t acked_seq;       /* highest seq the centre committed */
    uint64_t backlog;         /* last_seq - acked_seq */
    int64_t last_contact_ms;  /* 0 if never */
    int64_t last_ack_ms;      /* 0 if never */
    int64_t oldest_pending_ms; /* submit time of the first unacknowledged event (lowest seq), 0 if
                                  none */
    uint64_t reissue_of_epoch; /* 0, or the epoch this one re-issued (asy_outbox_reissue) */
    uint64_t reissue_from_seq;
    uint64_t reissue_last_seq; /* seqs 1..this of this epoch are the re-issued events */
    char problem[1024];        /* what keeps events from the centre, as `run` last said it; ""
                                  if nothing (asy_outbox_note_problem) */
    int64_t problem_ms;        /* when it was said */
} asy_outbox_status_t;

int asy_outbox_status(asy_outbox_t *self, asy_outbox_status_t *out);

/* Forgets that the event at seq was stored (its `seen` row), so that the same event, once
   corrected, can be submitted again with its eventId: for an event the centre quarantined.
   Before the row is pruned (asy_outbox_ack). Returns 0 (also if no row is there) or ASY_EDB. */
int asy_outbox_forget(asy_outbox_t *self, uint64_t seq);

/* Records (text) or clears (NULL) the problem `run` last met that keeps events from the
   centre, for `status`. Informational: waits at most 1 s for a writer's lock, no fsync.
   Returns 0 or ASY_EDB. */
int asy_outbox_note_problem(asy_outbox_t *self, const char *text, int64_t now_ms);

#endif
