/*  replica.c: the Clone subscriber of ASM/1 (proto/PROTOCOL.md section 11). See replica.h.

    State: a sorted array of topics (each with the seq it was last published with), the last
    sequence number applied, and liveness. A snapshot is collected into a fresh array and
    swapped in only when SnapshotEnd arrives, so readers never see half a snapshot.  */
#include "replica.h"

#include "log.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_SILENT_INTERVALS 3
#define S_RCVHWM 100000
#define S_MIN_RESYNC_MS 1000

typedef struct {
    uint64_t seq;
    asy_mupdate_t update; /* owns its cells */
} s_entry_t;

typedef struct {
    s_entry_t **items;
    size_t count;
    size_t capacity;
} s_store_t;

/* A live message received while a snapshot was in flight, or a breach waiting for poll. */
typedef struct {
    char topic[ASY_TOPIC_MAX];
    asy_mmsg_t msg;
    zframe_t *raw;
} s_live_t;

typedef enum { S_DROPPED = 0, S_APPLIED, S_HEARTBEAT, S_MISMATCH } s_outcome_t;

struct _asy_replica_t {
    char *publisher;
    char *snapshot;
    char *subtree;
    char *breach_prefix; /* an extra subscription for breach notices, or NULL */
    zsock_t *sub;
    zsock_t *dealer;
    s_store_t store;
    zlist_t *pending; /* s_live_t *: breach notices applied in sync, for poll to return */
    asy_replica_handler_fn *handler;
    void *handler_arg;
    asy_replica_stats_t stats;
    int64_t last_heard_ms;     /* monotonic */
    int64_t last_reconnect_ms; /* monotonic */
    bool sub_fresh;            /* SUB (re)connected: its subscription may not be in place */
    bool need_sync;
    int exact;        /* the snapshot's stream (its updates, else its SnapshotEnd): 1 exact,
                         0 public, -1 not known yet */
    int expect_exact; /* the stream asked for (asy_replica_expect_exact), -1 any */
    bool caught_up; /* since the snapshot, a live message of seq >= S has come */
    bool mismatch;  /* publisher and snapshot service belong to different streams or brokers
                       (fatal) */
    bool restart_pending;       /* the next snapshot is taken for a restart (s_other_broker) */
    uint64_t restart_publisher; /* the incarnation that told it */
    bool has_stale;             /* stale: a broker a snapshot left behind (s_after_restart) */
    uint64_t stale;
    int64_t stale_since_ms; /* its first message dropped since the snapshot's broker spoke */
    char error[512];
};

static int64_t s_wall_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static bool s_full(const asy_replica_t *self)
{
    return self->subtree[0] == '\0';
}

static int64_t s_silence_ms(const asy_replica_t *self)
{
    return (int64_t)S_SILENT_INTERVALS * self->stats.heartbeat_interval_ms;
}

/* ----------------------------------------------------------------------------------------------
   The sorted topic store. */

static void s_entry_free(s_entry_t *entry)
{
    if (entry) {
        free(entry->update.cells);
        free(entry);
    }
}

static void s_store_clear(s_store_t *store)
{
    for (size_t i = 0; i < store->count; i++)
        s_entry_free(store->items[i]);
    free(store->items);
    memset(store, 0, sizeof *store);
}

/* Index of topic, or of where it would go (*found false). */
static size_t s_store_find(const s_store_t *store, const char *topic, bool *found)
{
    size_t low = 0, high = store->count;
    *found = false;
    /* snapshots and steady streams mostly come in order or hit the last entry */
    if (high > 0 && strcmp(store->items[high - 1]->update.topic, topic) < 0)
        return high;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        int order = strcmp(store->items[middle]->update.topic, topic);
        if (order == 0) {
            *found = true;
            return middle;
        }
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/* Replaces or inserts update's topic; takes the cells of *update (left empty). */
static int s_store_take(s_store_t *store, uint64_t seq, asy_mupdate_t *update)
{
    bool found;
    size_t index = s_store_find(store, update->topic, &found);
    if (found) {
        s_entry_t *entry = store->items[index];
        free(entry->update.cells);
        entry->update = *update;
        entry->seq = seq;
    } else {
        if (store->count == store->capacity) {
            size_t capacity = store->capacity ? store->capacity * 2 : 64;
            s_entry_t **items = realloc(store->items, capacity * sizeof(s_entry_t *));
            if (!items)
                return ASY_ENOMEM;
            store->items = items;
            store->capacity = capacity;
        }
        s_entry_t *entry = malloc(sizeof *entry);
        if (!entry)
            return ASY_ENOMEM;
        entry->update = *update;
        entry->seq = seq;
        memmove(&store->items[index + 1], &store->items[index],
                (store->count - index) * sizeof(s_entry_t *));
        store->items[index] = entry;
        store->count++;
    }
    update->cells = NULL;
    update->cell_count = update->cell_capacity = 0;
    return 0;
}

/* Replaces or inserts a copy of update (with its cells). */
static int s_store_put(s_store_t *store, uint64_t seq, const asy_mupdate_t *update)
{
    asy_mupdate_t copy = *update;
    copy.cells = malloc((copy.cell_count ? copy.cell_count : 1) * sizeof *copy.cells);
    if (!copy.cells)
        return ASY_ENOMEM;
    if (copy.cell_count)
        memcpy(copy.cells, update->cells, copy.cell_count * sizeof *copy.cells);
    copy.cell_capacity = copy.cell_count;
    int rc = s_store_take(store, seq, &copy);
    if (rc != 0)
        free(copy.cells);
    return rc;
}

/* ----------------------------------------------------------------------------------------------
   Sockets. */

static void s_live_free(s_live_t **live_p)
{
    if (*live_p) {
        asy_mmsg_release(&(*live_p)->msg);
        zframe_destroy(&(*live_p)->raw);
        free(*live_p);
        *live_p = NULL;
    }
}

static void s_list_clear(zlist_t *list)
{
    s_live_t *live;
    while ((live = zlist_pop(list)))
        s_live_free(&live);
}

/* A failed snapshot drops the updates read meanwhile (the next snapshot brings their topics)
   but not the breach notices: no snapshot carries them, and they were not handed out. */
static void s_keep_breaches(asy_replica_t *self, zlist_t *queue)
{
    s_live_t *live;
    while ((live = zlist_pop(queue))) {
        if (live->msg.kind != ASY_MMSG_BREACH) {
            s_live_free(&live);
            continue;
        }
        self->stats.breaches++;
        if (self->handler)
            self->handler(live->topic, &live->msg, zframe_data(live->raw), zframe_size(live->raw),
                          false, self->handler_arg);
        zlist_append(self->pending, live);
    }
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
static int s_reset_dealer(asy_replica_t *self)
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
static s_live_t *s_receive(asy_replica_t *self, zsock_t *socket)
{
    zmsg_t *zmsg = zmsg_recv(socket);
    if (!zmsg)
        return NULL;
    s_live_t *live = calloc(1, sizeof *live);
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
        s_live_free(&live);
        return NULL;
    }
    if (socket == self->sub)
        s_heard(self);
    if (live->msg.kind == ASY_MMSG_UPDATE && live->msg.update.topic[0] == '\0')
        snprintf(live->msg.update.topic, sizeof live->msg.update.topic, "%s", live->topic);
    return live;
}

/* ----------------------------------------------------------------------------------------------
   Live messages. */

/* Fails the replica (S_MISMATCH) when the publisher's stream, said by an update's cells or a
   heartbeat, is not the snapshot service's. */
static s_outcome_t s_other_stream(asy_replica_t *self, int publisher_exact)
{
    asy_set_error(self->error, sizeof self->error,
                  "the publisher %s sends %s figures but the snapshot service %s %s ones: "
                  "the two endpoints belong to different streams (public and restricted)",
                  self->publisher, publisher_exact ? "exact" : "public", self->snapshot,
                  self->exact ? "exact" : "public");
    self->mismatch = true;
    return S_MISMATCH;
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
static void s_after_restart(asy_replica_t *self, uint64_t snapshot_incarnation)
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
static s_outcome_t s_handle_heartbeat(asy_replica_t *self, const asy_mmsg_t *msg)
{
    if (msg->exact >= 0 && self->exact >= 0 && msg->exact != self->exact)
        return s_other_stream(self, msg->exact);
    self->stats.heartbeats++;
    self->stats.last_heartbeat_us = self->stats.last_message_us;
    if (msg->interval_ms > 0)
        self->stats.heartbeat_interval_ms = msg->interval_ms;
    if (!self->stats.synced || self->need_sync || s_other_broker(self, msg))
        return S_HEARTBEAT;
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
    return S_HEARTBEAT;
}

/* Applies one live message. count_duplicates is false for messages queued during a snapshot,
   where seq <= S is the expected overlap, not a duplicate. */
/* replay: live is one of the messages read while a snapshot was taken (s_install). */
static s_outcome_t s_handle_live(asy_replica_t *self, s_live_t *live, bool replay)
{
    asy_mmsg_t *msg = &live->msg;
    if (msg->kind == ASY_MMSG_HEARTBEAT)
        return s_handle_heartbeat(self, msg);
    if (msg->kind != ASY_MMSG_UPDATE && msg->kind != ASY_MMSG_BREACH) {
        asy_warn("unexpected message kind %d on topic '%s' from %s: dropped", (int)msg->kind,
                 live->topic, self->publisher);
        return S_DROPPED;
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
        return S_DROPPED;
    /* the other broker's figures come with the snapshot asked for: the store never mixes two
       brokers' (its breach notices, which no snapshot carries, are still handed out) */
    if (other_broker && msg->kind == ASY_MMSG_UPDATE)
        return S_DROPPED;
    /* a breach notice read while the snapshot was taken was never handed out, and no
       snapshot carries one: it is handed out whatever its seq (a restarted broker announces
       its start-up breaches just then) */
    bool unseen_breach = replay && msg->kind == ASY_MMSG_BREACH;
    if (!other_broker && msg->seq <= self->stats.last_seq && !unseen_breach) {
        if (!replay)
            self->stats.duplicates++;
        return S_DROPPED;
    }
    if (!other_broker && s_full(self) && msg->seq > self->stats.last_seq + 1) {
        asy_info("sequence gap: expected %llu, got %llu: taking a new snapshot",
                 (unsigned long long)self->stats.last_seq + 1, (unsigned long long)msg->seq);
        self->stats.gaps++;
        self->need_sync = true;
    }
    if (msg->kind == ASY_MMSG_UPDATE) {
        /* the store keeps a copy: the caller still gets msg */
        if (s_store_put(&self->store, msg->seq, &msg->update) != 0)
            return S_DROPPED;
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
    return S_APPLIED;
}

/* ----------------------------------------------------------------------------------------------
   Snapshots. */

/* Waits up to wait_ms for any message on the SUB, queueing it: one arriving proves that the
   subscriptions (sent in order, subtree first) have reached the publisher, so nothing
   published after the snapshot can be missed. */
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
        s_live_t *live = s_receive(self, self->sub);
        if (live) {
            self->sub_fresh = false;
            zlist_append(queue, live);
        }
    }
    self->sub_fresh = false;
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
static int s_snapshot_part(asy_replica_t *self, s_store_t *store, zlist_t *entries,
                           s_snapshot_end_t *end)
{
    s_live_t *live = s_receive(self, self->dealer);
    if (!live)
        return ASY_EPROTO;
    int rc = 0;
    switch (live->msg.kind) {
    case ASY_MMSG_UPDATE:
        self->exact = live->msg.update.exact;
        rc = s_store_put(store, live->msg.seq, &live->msg.update);
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
    s_live_free(&live);
    return rc;
}

/* Collects the reply into store, queueing live messages meanwhile. Returns 0 (*end filled),
   ASY_ETIMEDOUT, ASY_EPROTO or ASY_ENOMEM. */
static int s_collect(asy_replica_t *self, s_store_t *store, zlist_t *entries, zlist_t *queue,
                     int64_t deadline, s_snapshot_end_t *end)
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
            s_live_t *live = s_receive(self, self->sub);
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
static void s_install(asy_replica_t *self, s_store_t *store, zlist_t *entries, zlist_t *queue,
                      const s_snapshot_end_t *end)
{
    s_store_clear(&self->store);
    self->store = *store;
    memset(store, 0, sizeof *store);
    if (self->stats.synced)
        self->stats.resnapshots++;
    self->stats.synced = true;
    self->stats.snapshot_seq = end->seq;
    self->stats.last_seq = end->seq;
    s_after_restart(self, end->incarnation);
    self->stats.incarnation = end->incarnation;
    self->caught_up = false;
    self->stats.snapshot_entries += zlist_size(entries);
    self->need_sync = false;
    self->last_heard_ms = zclock_mono(); /* the liveness clock starts again */
    s_live_t *live;
    while ((live = zlist_pop(entries))) {
        if (self->handler)
            self->handler(live->topic, &live->msg, zframe_data(live->raw), zframe_size(live->raw),
                          true, self->handler_arg);
        s_live_free(&live);
    }
    while ((live = zlist_pop(queue))) {
        if (s_handle_live(self, live, true) == S_APPLIED && live->msg.kind == ASY_MMSG_BREACH)
            zlist_append(self->pending, live);
        else
            s_live_free(&live);
    }
}

static int s_sync(asy_replica_t *self, int64_t timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    zlist_t *queue = zlist_new();
    zlist_t *entries = zlist_new();
    s_store_t store = {0};
    s_snapshot_end_t end = {0, 0};
    int rc = queue && entries ? 0 : ASY_ENOMEM;
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
    else if (rc == ASY_ETIMEDOUT)
        s_reset_dealer(self);
    if (rc != 0 && !self->mismatch && queue)
        s_keep_breaches(self, queue);
    s_store_clear(&store);
    if (queue)
        s_list_clear(queue);
    if (entries)
        s_list_clear(entries);
    zlist_destroy(&queue);
    zlist_destroy(&entries);
    return rc;
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
    s_store_clear(&self->store);
    if (self->pending)
        s_list_clear(self->pending);
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
    return s_sync(self, timeout_ms > 0 ? timeout_ms : 0);
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

static int s_take(s_live_t **live_p, asy_mmsg_t *out)
{
    if (out) {
        *out = (*live_p)->msg;
        memset(&(*live_p)->msg, 0, sizeof(*live_p)->msg);
    }
    s_live_free(live_p);
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
        s_live_t *live = zlist_pop(self->pending);
        if (live)
            return s_take(&live, out);
        int64_t left = deadline - zclock_mono();
        if (self->need_sync) {
            int rc = s_sync(self, left > S_MIN_RESYNC_MS ? left : S_MIN_RESYNC_MS);
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
            live = s_receive(self, self->sub);
            if (live) {
                s_outcome_t outcome = s_handle_live(self, live, false);
                if (outcome == S_APPLIED || outcome == S_HEARTBEAT)
                    return s_take(&live, out);
                s_live_free(&live);
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
    size_t index = s_store_find(&self->store, topic, &found);
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
