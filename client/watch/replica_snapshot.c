/*  replica_snapshot.c: how the replica takes a snapshot of the snapshot service and swaps it
    in. See replica_private.h.  */
#include "replica_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed snapshot drops the updates read meanwhile (the next snapshot brings their topics)
   but not the breach notices: no snapshot carries them, and they were not handed out. */
static void s_keep_breaches(asy_replica_t *self, zlist_t *queue)
{
    asy_replica_live_t *live;
    while ((live = zlist_pop(queue))) {
        if (live->msg.kind != ASY_MMSG_BREACH) {
            asy_replica_live_free(&live);
            continue;
        }
        self->stats.breaches++;
        if (self->handler)
            self->handler(live->topic, &live->msg, zframe_data(live->raw), zframe_size(live->raw),
                          false, self->handler_arg);
        zlist_append(self->pending, live);
    }
}

/* Waits up to wait_ms for any message on the SUB, queueing it: one arriving proves that the
   subscriptions (sent in order, subtree first) have reached the publisher, so nothing
   published after the snapshot can be missed. If none comes (the broker is still down, or
   heartbeats are slower than wait_ms), sub_fresh stays set: the snapshot is taken all the
   same (what `--once` needs), and the first message the SUB hears later asks for another,
   so that what was published before the subscription was in place is not lost. */
static int s_settle(asy_replica_t *self, zlist_t *queue, int64_t wait_ms)
{
    int64_t deadline = zclock_mono() + wait_ms;
    while (self->sub_fresh) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0)
            break;
        zmq_pollitem_t item = {zsock_resolve(self->sub), 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, (long)left);
        if (ready < 0) {
            asy_set_error(self->error, sizeof self->error, "interrupted while waiting for %s",
                          self->publisher);
            return ASY_ETIMEDOUT;
        }
        if (ready == 0)
            break;
        asy_replica_live_t *live = asy_replica_receive(self, self->sub);
        if (live) {
            self->sub_fresh = false;
            zlist_append(queue, live);
        }
    }
    return 0;
}

static int s_send_request(asy_replica_t *self)
{
    asy_mmsg_t request;
    asy_mmsg_init(&request, ASY_MMSG_SNAPSHOT_REQUEST);
    snprintf(request.subtree, sizeof request.subtree, "%s", self->subtree);
    uint8_t *data;
    size_t size;
    int rc = asy_mmsg_encode(&request, &data, &size);
    if (rc != 0)
        return rc;
    zframe_t *frame = zframe_new(data, size);
    free(data);
    if (!frame)
        return ASY_ENOMEM;
    if (zframe_send(&frame, self->dealer, ZFRAME_DONTWAIT) != 0) {
        zframe_destroy(&frame);
        asy_set_error(self->error, sizeof self->error, "cannot send a snapshot request to %s",
                      self->snapshot);
        return ASY_EIO;
    }
    return 0;
}

/* The S and incarnation of a snapshot, from its SnapshotEnd. */
typedef struct {
    uint64_t seq;
    uint64_t incarnation;
} s_snapshot_end_t;

/* One reply part of the snapshot service. Returns 1 at SnapshotEnd (*end filled), 0 for an
   entry (stored in *store, raw kept in entries), or a negative ASY_E* code. */
static int s_snapshot_part(asy_replica_t *self, asy_replica_store_t *store, zlist_t *entries,
                           s_snapshot_end_t *end)
{
    asy_replica_live_t *live = asy_replica_receive(self, self->dealer);
    if (!live)
        return ASY_EPROTO;
    int rc = 0;
    switch (live->msg.kind) {
    case ASY_MMSG_UPDATE:
        self->exact = live->msg.update.exact;
        rc = asy_replica_store_put(store, live->msg.seq, &live->msg.update);
        if (rc == 0) {
            zlist_append(entries, live);
            return 0;
        }
        break;
    case ASY_MMSG_SNAPSHOT_END:
        end->seq = live->msg.seq;
        end->incarnation = live->msg.incarnation;
        if (live->msg.exact >= 0) /* an empty snapshot still says whose it is */
            self->exact = live->msg.exact;
        rc = 1;
        break;
    case ASY_MMSG_ERROR:
        asy_set_error(self->error, sizeof self->error, "snapshot service %s: %s", self->snapshot,
                      live->msg.reason);
        rc = ASY_EPROTO;
        break;
    default:
        asy_set_error(self->error, sizeof self->error,
                      "snapshot service %s sent a message of kind %d", self->snapshot,
                      (int)live->msg.kind);
        rc = ASY_EPROTO;
        break;
    }
    asy_replica_live_free(&live);
    return rc;
}

/* Collects the reply into store, queueing live messages meanwhile. Returns 0 (*end filled),
   ASY_ETIMEDOUT, ASY_EPROTO or ASY_ENOMEM. */
static int s_collect(asy_replica_t *self, asy_replica_store_t *store, zlist_t *entries,
                     zlist_t *queue, int64_t deadline, s_snapshot_end_t *end)
{
    for (;;) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0) {
            asy_set_error(self->error, sizeof self->error,
                          "no snapshot from %s within the time allowed", self->snapshot);
            return ASY_ETIMEDOUT;
        }
        zmq_pollitem_t items[] = {{zsock_resolve(self->dealer), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve(self->sub), 0, ZMQ_POLLIN, 0}};
        int ready = zmq_poll(items, 2, (long)left);
        if (ready < 0) {
            /* a signal the program handles (SIGINT, SIGTERM): let it look */
            asy_set_error(self->error, sizeof self->error,
                          "interrupted while waiting for a snapshot from %s", self->snapshot);
            return ASY_ETIMEDOUT;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            asy_replica_live_t *live = asy_replica_receive(self, self->sub);
            if (live)
                zlist_append(queue, live);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int rc = s_snapshot_part(self, store, entries, end);
            if (rc != 0)
                return rc > 0 ? 0 : rc;
        }
    }
}

/* The snapshot is complete: swap it in, tell the handler, apply what was queued. */
static void s_install(asy_replica_t *self, asy_replica_store_t *store, zlist_t *entries,
                      zlist_t *queue, const s_snapshot_end_t *end)
{
    asy_replica_store_clear(&self->store);
    self->store = *store;
    memset(store, 0, sizeof *store);
    if (self->stats.synced)
        self->stats.resnapshots++;
    self->stats.synced = true;
    self->stats.snapshot_seq = end->seq;
    self->stats.last_seq = end->seq;
    asy_replica_after_restart(self, end->incarnation);
    self->stats.incarnation = end->incarnation;
    self->caught_up = false;
    self->stats.snapshot_entries += zlist_size(entries);
    self->need_sync = false;
    self->last_heard_ms = zclock_mono(); /* the liveness clock starts again */
    asy_replica_live_t *live;
    while ((live = zlist_pop(entries))) {
        if (self->handler)
            self->handler(live->topic, &live->msg, zframe_data(live->raw), zframe_size(live->raw),
                          true, self->handler_arg);
        asy_replica_live_free(&live);
    }
    while ((live = zlist_pop(queue))) {
        if (asy_replica_handle_live(self, live, true) == ASY_REPLICA_APPLIED &&
            live->msg.kind == ASY_MMSG_BREACH)
            zlist_append(self->pending, live);
        else
            asy_replica_live_free(&live);
    }
}

int asy_replica_take_snapshot(asy_replica_t *self, int64_t timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    zlist_t *queue = zlist_new();
    zlist_t *entries = zlist_new();
    asy_replica_store_t store = {0};
    s_snapshot_end_t end = {0, 0};
    int exact_before = self->exact; /* whose figures the store holds, until one is installed */
    int rc = queue && entries ? 0 : ASY_ENOMEM;
    if (rc == 0 && !self->dealer && asy_replica_reset_dealer(self) != 0) {
        /* the last timeout's new socket could not be made: try again, or say so */
        asy_set_error(self->error, sizeof self->error,
                      "cannot open a connection to the snapshot service %s", self->snapshot);
        rc = ASY_EIO;
    }
    if (rc == 0 && self->sub_fresh) {
        int64_t settle = self->stats.heartbeat_interval_ms * 3 / 2;
        rc = s_settle(self, queue, settle < timeout_ms / 2 ? settle : timeout_ms / 2);
    }
    if (rc == 0)
        rc = s_send_request(self);
    if (rc == 0)
        rc = s_collect(self, &store, entries, queue, deadline, &end);
    if (rc == 0 && self->expect_exact >= 0 && self->exact >= 0 &&
        self->exact != self->expect_exact) {
        /* the other stream than asked for: nothing of it is installed or handed out */
        asy_set_error(self->error, sizeof self->error,
                      "the snapshot service %s sends %s figures (the %s stream's), not %s ones",
                      self->snapshot, self->exact ? "exact" : "public (rounded)",
                      self->exact ? "restricted" : "public", self->exact ? "public" : "exact");
        self->mismatch = true;
        rc = ASY_EPROTO;
    }
    if (rc == 0)
        s_install(self, &store, entries, queue, &end);
    /* a timed-out or failed request may leave (the rest of) its reply queued: a new socket
       drops it, so the next request never reads it as its own */
    else if (asy_replica_reset_dealer(self) != 0)
        zsock_destroy(&self->dealer); /* made again at the next request */
    if (rc != 0 && !self->mismatch)
        self->exact = exact_before;
    if (rc != 0 && !self->mismatch && queue)
        s_keep_breaches(self, queue);
    asy_replica_store_clear(&store);
    if (queue)
        asy_replica_live_clear(queue);
    if (entries)
        asy_replica_live_clear(entries);
    zlist_destroy(&queue);
    zlist_destroy(&entries);
    return rc;
}
