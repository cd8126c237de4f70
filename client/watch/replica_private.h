/*  replica_private.h: the replica's insides, shared by replica.c (sockets and the public
    API), replica_store.c (the sorted topic store), replica_live.c (live messages) and
    replica_snapshot.c (snapshots). Not for other modules.  */
#ifndef ASY_REPLICA_PRIVATE_H_INCLUDED
#define ASY_REPLICA_PRIVATE_H_INCLUDED

#include "replica.h"

#include <czmq.h>

typedef struct {
    uint64_t seq;
    asy_mupdate_t update; /* owns its cells */
} asy_replica_entry_t;

typedef struct {
    asy_replica_entry_t **items;
    size_t count;
    size_t capacity;
} asy_replica_store_t;

/* A live message received while a snapshot was in flight, or a breach waiting for poll. */
typedef struct {
    char topic[ASY_TOPIC_MAX];
    asy_mmsg_t msg;
    zframe_t *raw;
} asy_replica_live_t;

typedef enum {
    ASY_REPLICA_DROPPED = 0,
    ASY_REPLICA_APPLIED,
    ASY_REPLICA_HEARTBEAT,
    ASY_REPLICA_MISMATCH
} asy_replica_outcome_t;

struct _asy_replica_t {
    char *publisher;
    char *snapshot;
    char *subtree;
    char *breach_prefix; /* an extra subscription for breach notices, or NULL */
    zsock_t *sub;
    zsock_t *dealer;
    asy_replica_store_t store;
    zlist_t *pending; /* asy_replica_live_t *: breach notices applied in sync, for poll to return */
    asy_replica_handler_fn *handler;
    void *handler_arg;
    asy_replica_stats_t stats;
    int64_t last_heard_ms;     /* monotonic */
    int64_t last_reconnect_ms; /* monotonic */
    bool sub_fresh;            /* SUB (re)connected: its subscription may not be in place */
    bool need_sync;
    int exact;            /* the snapshot's stream (its updates, else its SnapshotEnd): 1 exact,
                             0 public, -1 not known yet */
    int expect_exact;     /* the stream asked for (asy_replica_expect_exact), -1 any */
    bool caught_up;       /* since the snapshot, a live message of seq >= S has come */
    bool mismatch;        /* publisher and snapshot service belong to different streams or brokers
                             (fatal) */
    bool restart_pending; /* the next snapshot is taken for a restart (s_other_broker) */
    uint64_t restart_publisher; /* the incarnation that told it */
    bool has_stale; /* stale: a broker a snapshot left behind (asy_replica_after_restart) */
    uint64_t stale;
    int64_t stale_since_ms; /* its first message dropped since the snapshot's broker spoke */
    char error[512];
};

/* ----------------------------------------------------------------------------------------------
   The sorted topic store (replica_store.c). */

/* Frees every entry and the array; store is left empty. */
void asy_replica_store_clear(asy_replica_store_t *store);

/* Index of topic, or of where it would go (*found false). */
size_t asy_replica_store_find(const asy_replica_store_t *store, const char *topic, bool *found);

/* Replaces or inserts a copy of update (with its cells). Returns 0 or ASY_ENOMEM. */
int asy_replica_store_put(asy_replica_store_t *store, uint64_t seq, const asy_mupdate_t *update);

/* ----------------------------------------------------------------------------------------------
   Sockets (replica.c). */

/* Frees *live_p (its message and raw frame) and sets it to NULL. Safe on *live_p NULL. */
void asy_replica_live_free(asy_replica_live_t **live_p);

/* Frees every asy_replica_live_t * in list; the list itself stays. */
void asy_replica_live_clear(zlist_t *list);

/* Receives [topic][MonitorMessage] from socket. Returns the message (caller frees) or NULL
   (malformed: logged and dropped; or out of memory). */
asy_replica_live_t *asy_replica_receive(asy_replica_t *self, zsock_t *socket);

/* A fresh DEALER, so that a late reply to an abandoned request is never read as the next.
   Returns 0 or ASY_EIO. */
int asy_replica_reset_dealer(asy_replica_t *self);

/* ----------------------------------------------------------------------------------------------
   Live messages (replica_live.c). */

/* Applies one live message. replay: live is one of the messages read while a snapshot was
   taken, where seq <= S is the expected overlap, not a duplicate. Says what became of it. */
asy_replica_outcome_t asy_replica_handle_live(asy_replica_t *self, asy_replica_live_t *live,
                                              bool replay);

/* Called as a snapshot of broker snapshot_incarnation is installed: remembers a broker the
   snapshot taken for a restart has left behind. */
void asy_replica_after_restart(asy_replica_t *self, uint64_t snapshot_incarnation);

/* ----------------------------------------------------------------------------------------------
   Snapshots (replica_snapshot.c). */

/* Takes a snapshot within timeout_ms and installs it (asy_replica_sync says how). Returns 0,
   ASY_ETIMEDOUT, ASY_EPROTO, ASY_EIO or ASY_ENOMEM. */
int asy_replica_take_snapshot(asy_replica_t *self, int64_t timeout_ms);

#endif
