/*  replica_live.c: how the replica applies a live message of the publisher: sequence gaps,
    duplicates, broker restarts and streams that do not match. See replica_private.h.  */
#include "replica_private.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

static bool s_full(const asy_replica_t *self)
{
    return self->subtree[0] == '\0';
}

/* Fails the replica (ASY_REPLICA_MISMATCH) when the publisher's stream, said by an update's cells
   or a heartbeat, is not the snapshot service's. */
static asy_replica_outcome_t s_other_stream(asy_replica_t *self, int publisher_exact)
{
    asy_set_error(self->error, sizeof self->error,
                  "the publisher %s sends %s figures but the snapshot service %s %s ones: "
                  "the two endpoints belong to different streams (public and restricted)",
                  self->publisher, publisher_exact ? "exact" : "public", self->snapshot,
                  self->exact ? "exact" : "public");
    self->mismatch = true;
    return ASY_REPLICA_MISMATCH;
}

static const char *s_incarnation_text(uint64_t incarnation, char text[24])
{
    if (incarnation == 0)
        return "none (an older broker)";
    snprintf(text, 24, "%016llx", (unsigned long long)incarnation);
    return text;
}

/* True if msg comes from another broker process than the snapshot (PROTOCOL.md 11): its
   incarnation differs, said or not. The first such message since the snapshot is logged and
   counted as a restart and asks for a new snapshot: its seq belongs to another count, which
   may well be past the last one seen (a restarted broker republishing many topics at once),
   so the seq rules alone could take it for an ordinary gap or none at all. */
static bool s_other_broker(asy_replica_t *self, const asy_mmsg_t *msg)
{
    if (msg->incarnation == self->stats.incarnation) {
        self->has_stale = false; /* the snapshot's broker speaks: any leftover is behind us */
        return false;
    }
    if (self->has_stale && msg->incarnation == self->stale) {
        /* a leftover of a broker a snapshot has already left behind (still buffered on an old
           connection): dropped. Only while the snapshot's broker never speaks does it go on:
           then the publisher is another broker than the snapshot service */
        int64_t now = zclock_mono(), limit = 3 * (int64_t)self->stats.heartbeat_interval_ms;
        if (self->stale_since_ms == 0)
            self->stale_since_ms = now;
        else if (now - self->stale_since_ms > (limit > 500 ? limit : 500)) {
            char snapshot[24], publisher[24];
            asy_set_error(self->error, sizeof self->error,
                          "the publisher %s sends as broker %s but the snapshot service %s "
                          "answers as broker %s: the two endpoints belong to different brokers",
                          self->publisher, s_incarnation_text(msg->incarnation, publisher),
                          self->snapshot, s_incarnation_text(self->stats.incarnation, snapshot));
            self->mismatch = true;
        }
        return true;
    }
    if (!self->need_sync) {
        self->restart_pending = true;
        self->restart_publisher = msg->incarnation;
        char was[24], now[24];
        asy_info("monitor incarnation changed from %s to %s (the broker restarted; seq %llu, "
                 "last seen %llu): taking a new snapshot",
                 s_incarnation_text(self->stats.incarnation, was),
                 s_incarnation_text(msg->incarnation, now), (unsigned long long)msg->seq,
                 (unsigned long long)self->stats.last_seq);
        self->stats.restarts++;
        self->need_sync = true;
    }
    return true;
}

/* After a snapshot taken for a restart: if it is not of the broker whose message told the
   restart, that broker is behind us too (two restarts in quick succession), or it is another
   broker than the snapshot service's (s_other_broker tells which in time). */
void asy_replica_after_restart(asy_replica_t *self, uint64_t snapshot_incarnation)
{
    if (!self->restart_pending)
        return;
    self->restart_pending = false;
    if (snapshot_incarnation == self->restart_publisher)
        return;
    self->has_stale = true;
    self->stale = self->restart_publisher;
    self->stale_since_ms = 0;
}

/* A heartbeat sent before the snapshot's seq S, read after it (queued while the snapshot was
   taken, or still unread in the SUB socket), is the expected overlap, not a broker that counts
   from 1 again: that is told only once the live stream has reached S. */
static asy_replica_outcome_t s_handle_heartbeat(asy_replica_t *self, const asy_mmsg_t *msg)
{
    if (msg->exact >= 0 && self->exact >= 0 && msg->exact != self->exact)
        return s_other_stream(self, msg->exact);
    self->stats.heartbeats++;
    self->stats.last_heartbeat_us = self->stats.last_message_us;
    if (msg->interval_ms > 0)
        self->stats.heartbeat_interval_ms = msg->interval_ms;
    if (!self->stats.synced || self->need_sync || s_other_broker(self, msg))
        return ASY_REPLICA_HEARTBEAT;
    bool overlap = !self->caught_up && msg->seq <= self->stats.snapshot_seq;
    if (msg->seq >= self->stats.snapshot_seq)
        self->caught_up = true;
    if (msg->seq < self->stats.last_seq && !overlap) {
        /* the broker restarted and counts from 1 again */
        asy_info("monitor sequence went back from %llu to %llu: taking a new snapshot",
                 (unsigned long long)self->stats.last_seq, (unsigned long long)msg->seq);
        self->stats.restarts++;
        self->need_sync = true;
    } else if (s_full(self) && msg->seq > self->stats.last_seq) {
        asy_info("heartbeat announces seq %llu, last seen %llu: taking a new snapshot",
                 (unsigned long long)msg->seq, (unsigned long long)self->stats.last_seq);
        self->stats.gaps++;
        self->need_sync = true;
    }
    return ASY_REPLICA_HEARTBEAT;
}

/* Applies one live message. replay: live is one of the messages read while a snapshot was
   taken (replica_snapshot.c), where seq <= S is the expected overlap, not a duplicate. */
asy_replica_outcome_t asy_replica_handle_live(asy_replica_t *self, asy_replica_live_t *live,
                                              bool replay)
{
    asy_mmsg_t *msg = &live->msg;
    if (msg->kind == ASY_MMSG_HEARTBEAT)
        return s_handle_heartbeat(self, msg);
    if (msg->kind != ASY_MMSG_UPDATE && msg->kind != ASY_MMSG_BREACH) {
        asy_warn("unexpected message kind %d on topic '%s' from %s: dropped", (int)msg->kind,
                 live->topic, self->publisher);
        return ASY_REPLICA_DROPPED;
    }
    /* exact = true only on the restricted stream (PROTOCOL.md 13): a publisher whose updates
       differ from the snapshot's belongs to the other stream, and its sequence numbers never
       line up with the snapshot's (each looks like a restart or a duplicate) */
    if (msg->kind == ASY_MMSG_UPDATE && self->exact >= 0 && msg->update.exact != self->exact)
        return s_other_stream(self, msg->update.exact);
    bool other_broker = s_other_broker(self, msg);
    /* the breach subscription ("site/") also brings updates of topics we do not keep */
    if (msg->kind == ASY_MMSG_UPDATE &&
        strncmp(live->topic, self->subtree, strlen(self->subtree)) != 0)
        return ASY_REPLICA_DROPPED;
    /* the other broker's figures come with the snapshot asked for: the store never mixes two
       brokers' (its breach notices, which no snapshot carries, are still handed out) */
    if (other_broker && msg->kind == ASY_MMSG_UPDATE)
        return ASY_REPLICA_DROPPED;
    /* a breach notice read while the snapshot was taken was never handed out, and no
       snapshot carries one: it is handed out whatever its seq (a restarted broker announces
       its start-up breaches just then) */
    bool unseen_breach = replay && msg->kind == ASY_MMSG_BREACH;
    if (!other_broker && msg->seq <= self->stats.last_seq && !unseen_breach) {
        if (!replay)
            self->stats.duplicates++;
        return ASY_REPLICA_DROPPED;
    }
    if (!other_broker && s_full(self) && msg->seq > self->stats.last_seq + 1) {
        asy_info("sequence gap: expected %llu, got %llu: taking a new snapshot",
                 (unsigned long long)self->stats.last_seq + 1, (unsigned long long)msg->seq);
        self->stats.gaps++;
        self->need_sync = true;
    }
    if (msg->kind == ASY_MMSG_UPDATE) {
        /* the store keeps a copy: the caller still gets msg */
        if (asy_replica_store_put(&self->store, msg->seq, &msg->update) != 0)
            return ASY_REPLICA_DROPPED;
        self->stats.updates_applied++;
    } else {
        self->stats.breaches++;
    }
    if (!other_broker && msg->seq > self->stats.last_seq) {
        self->stats.last_seq = msg->seq;
        self->caught_up = true;
    }
    if (self->handler)
        self->handler(live->topic, msg, zframe_data(live->raw), zframe_size(live->raw), false,
                      self->handler_arg);
    return ASY_REPLICA_APPLIED;
}
