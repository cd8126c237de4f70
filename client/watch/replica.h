/*  replica.h: a subscriber of ASM/1, the monitor stream (proto/PROTOCOL.md part II), that keeps
    an in-memory copy of the monitor's figures with the ZeroMQ Clone pattern.

    A replica owns a SUB socket (subscribed to its subtree and to "heartbeat") connected to the
    publisher and a DEALER socket connected to the snapshot service. Typical use:

        asy_replica_t *replica = asy_replica_new("tcp://127.0.0.1:5573",
                                                 "tcp://127.0.0.1:5574", "site/ward-a/");
        if (asy_replica_sync(replica, 5000) != 0) ... asy_replica_errmsg(replica) ...
        while (running) {
            asy_mmsg_t msg;
            if (asy_replica_poll(replica, 200, &msg) == 0) {
                if (msg.kind == ASY_MMSG_BREACH) ... msg.breach ...
                asy_mmsg_release(&msg);
            }
            const asy_mupdate_t *m4 = asy_replica_get(replica, "site/ward-a/M4/2026-27-Q3");
        }
        asy_replica_destroy(&replica);

    The replica repairs itself inside asy_replica_poll: a sequence gap (subtree ""), a heartbeat
    announcing messages it never saw (subtree ""), any message of another broker incarnation
    than the snapshot's, or a heartbeat whose sequence number went backwards (both: the broker
    restarted) all make it take a new snapshot; silence for three
    heartbeat intervals makes it reconnect both sockets first. Until a new snapshot has
    arrived, the previous figures stay readable.

    Not thread-safe: one thread uses one replica (czmq sockets are single-threaded).  */
#ifndef ASY_REPLICA_H_INCLUDED
#define ASY_REPLICA_H_INCLUDED

#include "monitor_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _asy_replica_t asy_replica_t;

/* Counters and liveness. Times are wall-clock microseconds since 1970-01-01Z (0: never). */
typedef struct {
    uint64_t updates_applied;  /* live MetricUpdates applied (snapshot entries not counted) */
    uint64_t snapshot_entries; /* MetricUpdates received in snapshots, all snapshots together */
    uint64_t breaches;         /* BreachNotices received (and returned by poll) */
    uint64_t heartbeats;       /* heartbeats received */
    uint64_t duplicates;       /* live messages dropped because seq <= last applied */
    uint64_t gaps;             /* sequence gaps seen (subtree "" only), incl. by heartbeat */
    uint64_t restarts;         /* broker restarts seen: a message of another incarnation than
                                  the snapshot's, or a heartbeat whose seq went backwards */
    uint64_t resnapshots;      /* snapshots taken after the first successful one */
    uint64_t late_subscriptions; /* snapshots taken before the SUB heard anything, so again */
    uint64_t reconnects;       /* times both sockets were reconnected after silence */
    uint64_t last_seq;         /* the last sequence number applied (or the snapshot's S) */
    uint64_t snapshot_seq;     /* S of the last snapshot */
    uint64_t incarnation;      /* the broker incarnation of the last snapshot (0: not said) */
    int64_t last_message_us;   /* last message of any kind on the live stream */
    int64_t last_heartbeat_us; /* last heartbeat */
    uint32_t heartbeat_interval_ms; /* from the last heartbeat (1000 until one is heard) */
    bool synced;                    /* a snapshot has been applied */
    bool stale;                     /* nothing heard for 3 heartbeat intervals */
} asy_replica_stats_t;

/* Called for every snapshot entry (from_snapshot true, in the order received, once the
   snapshot is complete) and every live message the replica applies or returns (updates,
   breaches; not heartbeats, not dropped duplicates). data/size are the encoded
   MonitorMessage as received (feed them to asy_mmsg_json); msg is decoded. All borrowed. */
typedef void(asy_replica_handler_fn)(const char *topic, const asy_mmsg_t *msg, const uint8_t *data,
                                     size_t size, bool from_snapshot, void *arg);

/* A replica of the topics under subtree ("" = everything, "all/", "site/ward-a/",
   "all/M4/"...). Endpoints are ZeroMQ endpoints to connect to (e.g. "tcp://127.0.0.1:5571").
   Sockets are created and connected here; nothing is sent until asy_replica_sync. Caller
   owns; NULL on bad arguments (NULL endpoint, subtree too long) or if a socket cannot be
   created. */
asy_replica_t *asy_replica_new(const char *publisher_endpoint, const char *snapshot_endpoint,
                               const char *subtree);

/* Also subscribes to prefix ("site/ward-a/breach", or "site/" for every site's) so that
   breach notices outside the subtree arrive; updates that come through it but lie outside the
   subtree are dropped, not kept. Call it once, before asy_replica_sync. Returns 0 or
   ASY_ENOMEM. */
int asy_replica_add_breaches(asy_replica_t *self, const char *prefix);

/* Closes the sockets, frees everything, sets *self_p to NULL. Safe on NULL / *self_p NULL. */
void asy_replica_destroy(asy_replica_t **self_p);

/* Sets the handler (NULL: none) and its argument. */
void asy_replica_set_handler(asy_replica_t *self, asy_replica_handler_fn *handler, void *arg);

/* Takes a snapshot: waits (at most half of timeout_ms) for the subscription to be in place,
   sends SnapshotRequest{subtree}, applies the reply in place of the previous figures and
   remembers its S, then applies the live messages that arrived meanwhile with seq > S (breach
   notices among them are also returned by the next asy_replica_poll calls). Returns 0;
   ASY_ETIMEDOUT if SnapshotEnd did not arrive within timeout_ms, or a handled signal
   interrupted the wait; ASY_EPROTO if the service answered with an error or something
   undecodable, or is another stream's (reason in asy_replica_errmsg); ASY_ENOMEM. After any
   failure the DEALER is reconnected, so that a late reply, or the rest of one abandoned
   part-way, cannot be mistaken for the next one; the previous figures stay. */
int asy_replica_sync(asy_replica_t *self, int timeout_ms);

/* Waits up to timeout_ms (0: do not wait; < 0: forever) for one live message and handles it:
   a MetricUpdate replaces its topic's value, a BreachNotice is counted, a heartbeat updates
   liveness. Messages with seq <= the last applied are dropped (counted) and waiting goes on;
   so are updates of another broker incarnation than the snapshot's (the new snapshot, taken
   at the next call, brings their figures).
   Returns 0 with the message in *out (may be NULL; caller releases it with
   asy_mmsg_release) for an update, breach or heartbeat; ASY_ETIMEDOUT if nothing came (a
   re-snapshot that timed out also ends here and is retried at the next call); ASY_EPROTO
   if a re-snapshot was refused (asy_replica_errmsg; retried at the next call), or for good
   when the publisher's updates are of the other stream than the snapshot's (public and
   restricted: every later call returns it too); ASY_ENOMEM. A pending re-snapshot or
   reconnection is done first and takes at least 1 s of allowance. */
int asy_replica_poll(asy_replica_t *self, int timeout_ms, asy_mmsg_t *out);

/* Which stream the snapshot came from (its updates' exact flag, else its SnapshotEnd's): 1
   restricted (exact), 0 public, -1 not known yet. */
int asy_replica_exact(const asy_replica_t *self);

/* The stream the caller asked for (true: restricted). A snapshot of the other one then fails
   the sync with ASY_EPROTO and asy_replica_mismatched(), before anything of it is installed or
   given to the handler. Without this call any stream is taken. */
void asy_replica_expect_exact(asy_replica_t *self, bool exact);

/* True once the publisher's updates or heartbeats were found to be of the other stream than
   the snapshot's, or the snapshot of the other stream than expected (asy_replica_errmsg says
   which): the replica cannot be repaired. */
bool asy_replica_mismatched(const asy_replica_t *self);

/* True if the next asy_replica_poll will first take a snapshot (with at least 1 s of
   allowance): the first one failed, or the replica is repairing itself. */
bool asy_replica_needs_sync(const asy_replica_t *self);

/* Number of topics held. */
size_t asy_replica_size(const asy_replica_t *self);

/* The index-th topic in ascending (strcmp) order of topic, 0 <= index < size; NULL beyond.
   Borrowed: valid until the next sync or poll. */
const asy_mupdate_t *asy_replica_at(const asy_replica_t *self, size_t index);

/* The sequence number with which the index-th topic was last published; 0 beyond. */
uint64_t asy_replica_seq_at(const asy_replica_t *self, size_t index);

/* The current value of a topic, or NULL. Borrowed: valid until the next sync or poll. */
const asy_mupdate_t *asy_replica_get(const asy_replica_t *self, const char *topic);

/* The last sequence number applied (0 before the first sync). */
uint64_t asy_replica_last_seq(const asy_replica_t *self);

/* Fills *stats (stale is computed against the clock now). */
void asy_replica_stats(const asy_replica_t *self, asy_replica_stats_t *stats);

/* True if nothing has been heard on the live stream for 3 heartbeat intervals. */
bool asy_replica_stale(const asy_replica_t *self);

/* Text of the last error (borrowed; "" if none). */
const char *asy_replica_errmsg(const asy_replica_t *self);

/* The subtree and endpoints given to asy_replica_new (borrowed). */
const char *asy_replica_subtree(const asy_replica_t *self);
const char *asy_replica_publisher(const asy_replica_t *self);
const char *asy_replica_snapshot_endpoint(const asy_replica_t *self);

#endif
