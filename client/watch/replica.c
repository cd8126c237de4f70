/*  replica.c: the Clone subscriber of ASM/1 (proto/PROTOCOL.md section 11). See replica.h.

    State: a sorted array of topics (each with the seq it was last published with), the last
    sequence number applied, and liveness. A snapshot is collected into a fresh array and
    swapped in only when SnapshotEnd arrives, so readers never see half a snapshot.  */
#include "replica_private.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_SILENT_INTERVALS 3
#define S_RCVHWM 100000
#define S_MIN_RESYNC_MS 1000

static int64_t s_wall_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static int64_t s_silence_ms(const asy_replica_t *self)
{
    return (int64_t)S_SILENT_INTERVALS * self->stats.heartbeat_interval_ms;
}

/* ----------------------------------------------------------------------------------------------
   Sockets. */

void asy_replica_live_free(asy_replica_live_t **live_p)
{
    if (*live_p) {
        asy_mmsg_release(&(*live_p)->msg);
        zframe_destroy(&(*live_p)->raw);
        free(*live_p);
        *live_p = NULL;
    }
}

void asy_replica_live_clear(zlist_t *list)
{
    asy_replica_live_t *live;
    while ((live = zlist_pop(list)))
        asy_replica_live_free(&live);
}

static void s_heard(asy_replica_t *self)
{
    self->last_heard_ms = zclock_mono();
    self->stats.last_message_us = s_wall_us();
}

static int s_connect(asy_replica_t *self)
{
    zsock_destroy(&self->sub);
    zsock_destroy(&self->dealer);
    self->sub = zsock_new(ZMQ_SUB);
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->sub || !self->dealer)
        return ASY_EIO;
    zsock_set_linger(self->sub, 0);
    zsock_set_linger(self->dealer, 0);
    zsock_set_rcvhwm(self->sub, S_RCVHWM);
    zsock_set_rcvhwm(self->dealer, S_RCVHWM);
    zsock_set_subscribe(self->sub, self->subtree);
    zsock_set_subscribe(self->sub, ASY_HEARTBEAT_TOPIC);
    if (self->breach_prefix)
        zsock_set_subscribe(self->sub, self->breach_prefix);
    if (zsock_connect(self->sub, "%s", self->publisher) != 0 ||
        zsock_connect(self->dealer, "%s", self->snapshot) != 0) {
        asy_set_error(self->error, sizeof self->error, "cannot connect to %s / %s", self->publisher,
                      self->snapshot);
        return ASY_EIO;
    }
    self->sub_fresh = true;
    return 0;
}

/* A fresh DEALER, so that a late reply to an abandoned request is never read as the next. */
int asy_replica_reset_dealer(asy_replica_t *self)
{
    zsock_destroy(&self->dealer);
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer)
        return ASY_EIO;
    zsock_set_linger(self->dealer, 0);
    zsock_set_rcvhwm(self->dealer, S_RCVHWM);
    return zsock_connect(self->dealer, "%s", self->snapshot) == 0 ? 0 : ASY_EIO;
}

/* Receives [topic][MonitorMessage] from socket. Returns the message (caller frees) or NULL
   (malformed: logged and dropped; or out of memory). */
asy_replica_live_t *asy_replica_receive(asy_replica_t *self, zsock_t *socket)
{
    zmsg_t *zmsg = zmsg_recv(socket);
    if (!zmsg)
        return NULL;
    asy_replica_live_t *live = calloc(1, sizeof *live);
    if (!live) {
        zmsg_destroy(&zmsg);
        return NULL;
    }
    zframe_t *topic = zmsg_pop(zmsg);
    live->raw = zmsg_pop(zmsg);
    bool shaped =
        topic && live->raw && zmsg_size(zmsg) == 0 && zframe_size(topic) < sizeof live->topic;
    if (shaped) {
        memcpy(live->topic, zframe_data(topic), zframe_size(topic));
        live->topic[zframe_size(topic)] = '\0';
    }
    zframe_destroy(&topic);
    zmsg_destroy(&zmsg);
    if (!shaped ||
        asy_mmsg_decode(&live->msg, zframe_data(live->raw), zframe_size(live->raw)) != 0) {
        asy_set_error(self->error, sizeof self->error,
                      "malformed message from %s (not [topic][MonitorMessage])",
                      socket == self->sub ? self->publisher : self->snapshot);
        asy_warn("%s", self->error);
        asy_replica_live_free(&live);
        return NULL;
    }
    if (socket == self->sub)
        s_heard(self);
    if (live->msg.kind == ASY_MMSG_UPDATE && live->msg.update.topic[0] == '\0')
        snprintf(live->msg.update.topic, sizeof live->msg.update.topic, "%s", live->topic);
    return live;
}
/* ----------------------------------------------------------------------------------------------
   Public API. */

asy_replica_t *asy_replica_new(const char *publisher_endpoint, const char *snapshot_endpoint,
                               const char *subtree)
{
    if (!publisher_endpoint || !snapshot_endpoint || !subtree || strlen(subtree) >= ASY_TOPIC_MAX)
        return NULL;
    asy_replica_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->publisher = strdup(publisher_endpoint);
    self->snapshot = strdup(snapshot_endpoint);
    self->subtree = strdup(subtree);
    self->pending = zlist_new();
    self->stats.heartbeat_interval_ms = ASY_DEFAULT_HEARTBEAT_MS;
    self->exact = self->expect_exact = -1;
    self->need_sync = true;
    self->last_heard_ms = self->last_reconnect_ms = zclock_mono();
    if (!self->publisher || !self->snapshot || !self->subtree || !self->pending ||
        s_connect(self) != 0) {
        asy_replica_destroy(&self);
        return NULL;
    }
    return self;
}

void asy_replica_destroy(asy_replica_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    asy_replica_t *self = *self_p;
    zsock_destroy(&self->sub);
    zsock_destroy(&self->dealer);
    asy_replica_store_clear(&self->store);
    if (self->pending)
        asy_replica_live_clear(self->pending);
    zlist_destroy(&self->pending);
    free(self->publisher);
    free(self->snapshot);
    free(self->subtree);
    free(self->breach_prefix);
    free(self);
    *self_p = NULL;
}

void asy_replica_set_handler(asy_replica_t *self, asy_replica_handler_fn *handler, void *arg)
{
    self->handler = handler;
    self->handler_arg = arg;
}

int asy_replica_add_breaches(asy_replica_t *self, const char *prefix)
{
    char *copy = strdup(prefix);
    if (!copy)
        return ASY_ENOMEM;
    free(self->breach_prefix);
    self->breach_prefix = copy;
    zsock_set_subscribe(self->sub, copy);
    return 0;
}

int asy_replica_sync(asy_replica_t *self, int timeout_ms)
{
    self->error[0] = '\0';
    return asy_replica_take_snapshot(self, timeout_ms > 0 ? timeout_ms : 0);
}

/* Silence for 3 intervals: the monitor may be gone or restarted on another socket; reconnect
   both sockets (at most once per 3 intervals) and take a new snapshot. */
static void s_check_silence(asy_replica_t *self)
{
    int64_t now = zclock_mono();
    if (!self->stats.synced || now - self->last_heard_ms <= s_silence_ms(self) ||
        now - self->last_reconnect_ms <= s_silence_ms(self))
        return;
    asy_warn("nothing from %s for %lld ms: reconnecting", self->publisher,
             (long long)(now - self->last_heard_ms));
    self->last_reconnect_ms = now;
    self->stats.reconnects++;
    if (s_connect(self) != 0)
        asy_warn("%s", self->error);
    self->need_sync = true;
}

static int s_take(asy_replica_live_t **live_p, asy_mmsg_t *out)
{
    if (out) {
        *out = (*live_p)->msg;
        memset(&(*live_p)->msg, 0, sizeof(*live_p)->msg);
    }
    asy_replica_live_free(live_p);
    return 0;
}

int asy_replica_poll(asy_replica_t *self, int timeout_ms, asy_mmsg_t *out)
{
    if (out)
        asy_mmsg_init(out, ASY_MMSG_NONE);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    for (;;) {
        if (self->mismatch)
            return ASY_EPROTO;
        asy_replica_live_t *live = zlist_pop(self->pending);
        if (live)
            return s_take(&live, out);
        int64_t left = deadline - zclock_mono();
        if (self->need_sync) {
            int rc =
                asy_replica_take_snapshot(self, left > S_MIN_RESYNC_MS ? left : S_MIN_RESYNC_MS);
            if (rc != 0)
                return rc == ASY_ENOMEM || rc == ASY_EPROTO ? rc : ASY_ETIMEDOUT;
            continue;
        }
        if (left < 0)
            left = 0;
        /* wake at least once an interval to notice silence */
        long wait = left < self->stats.heartbeat_interval_ms
                        ? (long)left
                        : (long)self->stats.heartbeat_interval_ms;
        zmq_pollitem_t item = {zsock_resolve(self->sub), 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, wait);
        if (ready < 0)
            return ASY_ETIMEDOUT; /* interrupted by a signal: let the caller look */
        if (ready > 0) {
            live = asy_replica_receive(self, self->sub);
            if (live && self->sub_fresh) {
                /* the snapshot was taken before the subscription was known to be in place
                   (replica_snapshot.c, s_settle): now it is, and what was published in
                   between may be missing; a new snapshot brings it */
                self->sub_fresh = false;
                self->need_sync = true;
                self->stats.late_subscriptions++;
            }
            if (live) {
                asy_replica_outcome_t outcome = asy_replica_handle_live(self, live, false);
                if (outcome == ASY_REPLICA_APPLIED || outcome == ASY_REPLICA_HEARTBEAT)
                    return s_take(&live, out);
                asy_replica_live_free(&live);
            }
        } else {
            /* only when nothing is queued: a backlog is not silence */
            s_check_silence(self);
        }
        if (zclock_mono() >= deadline)
            return ASY_ETIMEDOUT;
    }
}

void asy_replica_expect_exact(asy_replica_t *self, bool exact)
{
    self->expect_exact = exact;
}

int asy_replica_exact(const asy_replica_t *self)
{
    return self->exact;
}

bool asy_replica_mismatched(const asy_replica_t *self)
{
    return self->mismatch;
}

bool asy_replica_needs_sync(const asy_replica_t *self)
{
    return self->need_sync;
}

size_t asy_replica_size(const asy_replica_t *self)
{
    return self->store.count;
}

const asy_mupdate_t *asy_replica_at(const asy_replica_t *self, size_t index)
{
    return index < self->store.count ? &self->store.items[index]->update : NULL;
}

uint64_t asy_replica_seq_at(const asy_replica_t *self, size_t index)
{
    return index < self->store.count ? self->store.items[index]->seq : 0;
}

const asy_mupdate_t *asy_replica_get(const asy_replica_t *self, const char *topic)
{
    bool found;
    size_t index = asy_replica_store_find(&self->store, topic, &found);
    return found ? &self->store.items[index]->update : NULL;
}

uint64_t asy_replica_last_seq(const asy_replica_t *self)
{
    return self->stats.last_seq;
}

bool asy_replica_stale(const asy_replica_t *self)
{
    return zclock_mono() - self->last_heard_ms > s_silence_ms(self);
}

void asy_replica_stats(const asy_replica_t *self, asy_replica_stats_t *stats)
{
    *stats = self->stats;
    stats->stale = asy_replica_stale(self);
}

const char *asy_replica_errmsg(const asy_replica_t *self)
{
    return self->error;
}

const char *asy_replica_subtree(const asy_replica_t *self)
{
    return self->subtree;
}

const char *asy_replica_publisher(const asy_replica_t *self)
{
    return self->publisher;
}

const char *asy_replica_snapshot_endpoint(const asy_replica_t *self)
{
    return self->snapshot;
}
