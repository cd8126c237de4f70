/*  test_watch.c: the Clone subscriber (client/watch/replica.c), the table (view.c) and
    advsync-watch, against a small monitor played here.

    The test monitor is a zactor with a real XPUB and ROUTER on tcp://127.0.0.1:* that follows
    PROTOCOL.md section 11: every message is [topic][MonitorMessage], seq grows by one per
    update, a snapshot is the state at S followed by SnapshotEnd{S}. Commands on its pipe let a
    test publish an update or a breach notice (BREACH), lose (SKIP) or repeat (DUP) a message,
    publish while answering a snapshot (INFLIGHT), stop heartbeats, restart the sequence alone
    (RESTART, as a monitor without an incarnation seems to) or as a new broker process
    (REBOOT: another incarnation on every message, as advsyncd after a restart).  */
#include "harness.h"
#include "monitor_msg.h"
#include "replica.h"
#include "view.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_TOPICS_MAX 256
#define S_PERIOD "2026-27-Q3"
#define S_STREAM_MS 5             /* STREAM's pace */
#define S_INCARNATION 0x5eed0001u /* the test monitor's until REBOOT or INCARNATION */

/* ----------------------------------------------------------------------------------------------
   The test monitor. */

typedef struct {
    char topic[ASY_TOPIC_MAX];
    uint64_t seq;
    int64_t value;
} s_topic_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *xpub;
    zsock_t *router;
    s_topic_t topics[S_TOPICS_MAX];
    size_t topic_count;
    uint64_t seq;
    uint64_t incarnation; /* on every message sent, live or reply (0: not said) */
    uint64_t snapshot_incarnation; /* SNAPINC: the replies' instead (another broker's), if not 0 */
    int heartbeat_ms;
    int64_t next_heartbeat;
    int inflight;         /* updates to publish while answering each snapshot request */
    bool stale_heartbeat; /* s_answer first publishes a heartbeat with seq S - 1 */
    int bad_parts;        /* answers that begin with an undecodable part (BADPART) */
    bool live_exact;      /* live updates as the restricted stream's: another stream */
    bool says_stream;     /* heartbeats and SnapshotEnd say the stream (exact), as advsyncd */
    bool restricted;      /* the whole server is a restricted stream: snapshot entries exact */
    int stream_left; /* STREAM: updates still to publish, one every S_STREAM_MS */
    int64_t stream_next;
    int stream_topics;
    zframe_t *last_topic; /* the last publication, for DUP */
    zframe_t *last_body;
    uint64_t subscriptions; /* SUBS: subscribe messages the XPUB has received */
    uint64_t requests;      /* REQUESTS: snapshot requests received */
} s_server_t;

static void s_fill_update(asy_mmsg_t *msg, const char *topic, uint64_t seq, int64_t value)
{
    asy_mmsg_init(msg, ASY_MMSG_UPDATE);
    msg->seq = seq;
    asy_mupdate_t *update = &msg->update;
    snprintf(update->topic, sizeof update->topic, "%s", topic);
    /* all/<metric>/<period> or site/<id>/<metric>/<period> */
    char copy[ASY_TOPIC_MAX];
    snprintf(copy, sizeof copy, "%s", topic);
    char *parts[4] = {0};
    size_t n = 0;
    for (char *save, *part = strtok_r(copy, "/", &save); part && n < 4;
         part = strtok_r(NULL, "/", &save))
        parts[n++] = part;
    bool all = n == 3 && strcmp(parts[0], "all") == 0;
    snprintf(update->scope, sizeof update->scope, "%s", all ? "all" : parts[1] ? parts[1] : "");
    snprintf(update->metric, sizeof update->metric, "%s",
             all        ? parts[1]
             : parts[2] ? parts[2]
                        : "");
    snprintf(update->period, sizeof update->period, "%s",
             all        ? parts[2]
             : parts[3] ? parts[3]
                        : "");
    snprintf(update->unit, sizeof update->unit, "count");
    update->as_of_us = zclock_time() * 1000;
    asy_mcell_t *cell = asy_mupdate_add_cell(update, "total", "ALL");
    cr_assert_not_null(cell);
    cell->has_count = true;
    cell->count = value;
}

static zframe_t *s_encode(const asy_mmsg_t *msg)
{
    uint8_t *data;
    size_t size;
    cr_assert_eq(asy_mmsg_encode(msg, &data, &size), 0);
    zframe_t *frame = zframe_new(data, size);
    free(data);
    return frame;
}

static void s_publish_frames(s_server_t *self, const char *topic, zframe_t *body)
{
    zframe_destroy(&self->last_topic);
    zframe_destroy(&self->last_body);
    self->last_topic = zframe_from(topic);
    self->last_body = zframe_dup(body);
    zframe_t *topic_frame = zframe_from(topic);
    zframe_send(&topic_frame, self->xpub, ZFRAME_MORE);
    zframe_send(&body, self->xpub, 0);
}

static s_topic_t *s_topic(s_server_t *self, const char *topic)
{
    for (size_t i = 0; i < self->topic_count; i++)
        if (strcmp(self->topics[i].topic, topic) == 0)
            return &self->topics[i];
    cr_assert(self->topic_count < S_TOPICS_MAX);
    s_topic_t *entry = &self->topics[self->topic_count++];
    snprintf(entry->topic, sizeof entry->topic, "%s", topic);
    return entry;
}

static void s_set(s_server_t *self, const char *topic, int64_t value)
{
    s_topic_t *entry = s_topic(self, topic);
    entry->seq = ++self->seq;
    entry->value = value;
    asy_mmsg_t msg;
    s_fill_update(&msg, topic, entry->seq, value);
    msg.incarnation = self->incarnation;
    msg.update.exact = self->live_exact; /* the snapshot's: self->restricted */
    s_publish_frames(self, topic, s_encode(&msg));
    asy_mmsg_release(&msg);
}

/* A BreachNotice of site on site/<site>/breach, as the restricted stream sends it. */
static void s_breach(s_server_t *self, const char *site)
{
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_BREACH);
    msg.seq = ++self->seq;
    msg.incarnation = self->incarnation;
    snprintf(msg.breach.site_id, sizeof msg.breach.site_id, "%s", site);
    snprintf(msg.breach.case_id, sizeof msg.breach.case_id, "%064d", 7);
    msg.breach.kind = ASY_BREACH_CONTACT;
    msg.breach.received = 20000;
    msg.breach.deadline = 20003;
    msg.breach.detected_at_us = (int64_t)20004 * 86400 * 1000000;
    char topic[ASY_TOPIC_MAX];
    snprintf(topic, sizeof topic, "site/%s/breach", site);
    s_publish_frames(self, topic, s_encode(&msg));
}

static void s_heartbeat(s_server_t *self)
{
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_HEARTBEAT);
    msg.seq = self->seq;
    msg.incarnation = self->incarnation;
    msg.interval_ms = (uint32_t)self->heartbeat_ms;
    msg.sent_at_us = zclock_time() * 1000;
    if (self->says_stream)
        msg.exact = self->live_exact;
    zframe_t *body = s_encode(&msg);
    zstr_sendm(self->xpub, ASY_HEARTBEAT_TOPIC);
    zframe_send(&body, self->xpub, 0);
}

static void s_send_reply(s_server_t *self, zframe_t *identity, const char *topic, asy_mmsg_t *msg)
{
    msg->incarnation = self->snapshot_incarnation ? self->snapshot_incarnation : self->incarnation;
    zframe_t *id = zframe_dup(identity);
    zframe_t *body = s_encode(msg);
    zframe_send(&id, self->router, ZFRAME_MORE);
    zstr_sendm(self->router, topic);
    zframe_send(&body, self->router, 0);
}

/* PROTOCOL.md 11: entries of the subtree at S, then SnapshotEnd{S}; updates published while
   answering (INFLIGHT) have seq > S and reach the subscriber before the snapshot. */
static void s_answer(s_server_t *self)
{
    zmsg_t *request = zmsg_recv(self->router);
    self->requests++;
    zframe_t *identity = zmsg_pop(request);
    zframe_t *body = zmsg_pop(request);
    asy_mmsg_t msg;
    if (!body || asy_mmsg_decode(&msg, zframe_data(body), zframe_size(body)) != 0 ||
        msg.kind != ASY_MMSG_SNAPSHOT_REQUEST) {
        asy_mmsg_t error;
        asy_mmsg_init(&error, ASY_MMSG_ERROR);
        snprintf(error.reason, sizeof error.reason, "not a SnapshotRequest");
        s_send_reply(self, identity, "", &error);
    } else {
        uint64_t snapshot_seq = self->seq;
        if (self->stale_heartbeat && self->seq > 0) {
            /* a heartbeat sent just before the last update, reaching the subscriber while
               its snapshot is taken: seq < S is the expected overlap */
            self->seq--;
            s_heartbeat(self);
            self->seq++;
            zclock_sleep(30);
        }
        size_t count = self->topic_count;
        s_topic_t *state = malloc((count ? count : 1) * sizeof *state);
        memcpy(state, self->topics, count * sizeof *state);
        for (int i = 0; i < self->inflight && count > 0; i++)
            s_set(self, state[(size_t)i % count].topic, 1000 + i);
        if (self->inflight)
            zclock_sleep(30);
        if (self->bad_parts > 0) {
            self->bad_parts--;
            zframe_t *id = zframe_dup(identity);
            zframe_send(&id, self->router, ZFRAME_MORE);
            zstr_sendm(self->router, "all/M9/" S_PERIOD);
            zstr_send(self->router, "not protobuf \xff\xff");
        }
        uint32_t sent = 0;
        for (size_t i = 0; i < count; i++) {
            if (strncmp(state[i].topic, msg.subtree, strlen(msg.subtree)) != 0)
                continue;
            asy_mmsg_t entry;
            s_fill_update(&entry, state[i].topic, state[i].seq, state[i].value);
            entry.update.exact = self->restricted;
            s_send_reply(self, identity, state[i].topic, &entry);
            asy_mmsg_release(&entry);
            sent++;
        }
        asy_mmsg_t end;
        asy_mmsg_init(&end, ASY_MMSG_SNAPSHOT_END);
        end.seq = snapshot_seq;
        end.topics = sent;
        if (self->says_stream)
            end.exact = 0; /* the snapshot's entries are public ones */
        s_send_reply(self, identity, "", &end);
        free(state);
    }
    asy_mmsg_release(&msg);
    zframe_destroy(&identity);
    zframe_destroy(&body);
    zmsg_destroy(&request);
}

static bool s_command(s_server_t *self)
{
    char *command = NULL, *text = NULL;
    int64_t number = 0;
    if (zsock_recv(self->pipe, "ss8", &command, &text, &number) != 0)
        return false;
    bool go_on = true;
    if (strcmp(command, "$TERM") == 0) {
        go_on = false;
    } else if (strcmp(command, "SET") == 0) {
        s_set(self, text, number);
    } else if (strcmp(command, "STREAM") == 0) {
        self->stream_left = (int)number;
        self->stream_next = zclock_mono();
        self->stream_topics = atoi(text);
    } else if (strcmp(command, "BREACH") == 0) {
        s_breach(self, text);
    } else if (strcmp(command, "SKIP") == 0) {
        self->seq++;
    } else if (strcmp(command, "DUP") == 0) {
        zframe_t *topic = zframe_dup(self->last_topic), *body = zframe_dup(self->last_body);
        zframe_send(&topic, self->xpub, ZFRAME_MORE);
        zframe_send(&body, self->xpub, 0);
    } else if (strcmp(command, "INFLIGHT") == 0) {
        self->inflight = (int)number;
    } else if (strcmp(command, "EXACT") == 0) {
        self->live_exact = number != 0;
    } else if (strcmp(command, "RESTRICTED") == 0) {
        self->restricted = self->live_exact = number != 0;
    } else if (strcmp(command, "SAYS") == 0) {
        self->says_stream = number != 0;
    } else if (strcmp(command, "BADPART") == 0) {
        self->bad_parts = (int)number;
    } else if (strcmp(command, "STALEHB") == 0) {
        self->stale_heartbeat = number != 0;
    } else if (strcmp(command, "HB") == 0) {
        self->heartbeat_ms = (int)number;
        self->next_heartbeat = zclock_mono() + number;
    } else if (strcmp(command, "RESTART") == 0) {
        self->seq = 0;
        self->topic_count = 0;
    } else if (strcmp(command, "REBOOT") == 0) {
        self->seq = 0;
        self->topic_count = 0;
        self->incarnation = (uint64_t)number;
    } else if (strcmp(command, "INCARNATION") == 0) {
        self->incarnation = (uint64_t)number;
    } else if (strcmp(command, "SNAPINC") == 0) {
        self->snapshot_incarnation = (uint64_t)number;
    } else if (strcmp(command, "BIND") == 0) {
        /* the XPUB on one more port: a publisher a subscriber reaches only from now on */
        cr_assert_eq(zsock_bind(self->xpub, "tcp://127.0.0.1:%d", (int)number), (int)number);
    }
    /* the seq reached; 0 while a stream runs, except to NOW; SUBS and REQUESTS: those counts */
    bool now = strcmp(command, "NOW") == 0;
    uint64_t reply = self->stream_left > 0 && !now ? 0 : self->seq;
    if (strcmp(command, "SUBS") == 0)
        reply = self->subscriptions;
    else if (strcmp(command, "REQUESTS") == 0)
        reply = self->requests;
    if (go_on)
        zsock_send(self->pipe, "8", reply);
    zstr_free(&command);
    zstr_free(&text);
    return go_on;
}

static void s_server_actor(zsock_t *pipe, void *arg)
{
    (void)arg;
    s_server_t *self = calloc(1, sizeof *self);
    self->pipe = pipe;
    self->incarnation = S_INCARNATION;
    self->xpub = zsock_new(ZMQ_XPUB);
    self->router = zsock_new(ZMQ_ROUTER);
    zsock_set_sndhwm(self->xpub, 100000);
    int pub_port = zsock_bind(self->xpub, "tcp://127.0.0.1:*");
    int snap_port = zsock_bind(self->router, "tcp://127.0.0.1:*");
    zsock_signal(pipe, 0);
    zsock_send(pipe, "ii", pub_port, snap_port);
    zpoller_t *poller = zpoller_new(pipe, self->xpub, self->router, NULL);
    bool running = true;
    while (running) {
        int64_t now = zclock_mono();
        int wait = self->stream_left > 0 ? S_STREAM_MS : 10;
        void *which = zpoller_wait(poller, wait);
        if (which == pipe)
            running = s_command(self);
        else if (which == self->xpub) {
            zframe_t *subscription = zframe_recv(self->xpub);
            if (subscription && zframe_size(subscription) > 0 && zframe_data(subscription)[0] == 1)
                self->subscriptions++;
            zframe_destroy(&subscription);
        } else if (which == self->router)
            s_answer(self);
        else if (zpoller_terminated(poller))
            break;
        now = zclock_mono();
        if (self->heartbeat_ms > 0 && now >= self->next_heartbeat) {
            s_heartbeat(self);
            self->next_heartbeat = now + self->heartbeat_ms;
        }
        if (self->stream_left > 0 && now >= self->stream_next) {
            self->stream_next = now + S_STREAM_MS;
            char topic[64];
            int index = self->stream_left % self->stream_topics;
            snprintf(topic, sizeof topic, index % 2 ? "all/M%d/%s" : "site/ward-a/M%d/%s",
                     index + 1, S_PERIOD);
            self->stream_left--;
            s_set(self, topic, (int64_t)self->seq + 1);
        }
    }
    zpoller_destroy(&poller);
    zframe_destroy(&self->last_topic);
    zframe_destroy(&self->last_body);
    zsock_destroy(&self->xpub);
    zsock_destroy(&self->router);
    free(self);
}

static zactor_t *s_server;
static char s_pub[64], s_snap[64];

static uint64_t s_do(const char *command, const char *text, int64_t number)
{
    zsock_send(s_server, "ss8", command, text ? text : "", number);
    uint64_t seq = 0;
    cr_assert_eq(zsock_recv(s_server, "8", &seq), 0);
    return seq;
}

/* Waits until the server's count of SUBS or REQUESTS reaches at least n. */
static void s_wait_count(const char *what, uint64_t n, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    uint64_t count;
    while ((count = s_do(what, NULL, 0)) < n && zclock_mono() < deadline)
        zclock_sleep(10);
    cr_assert_geq(count, n, "%s: %" PRIu64 " after %d ms, %" PRIu64 " expected", what, count,
                  timeout_ms, n);
}

static void s_start(void)
{
    s_server = zactor_new(s_server_actor, NULL);
    cr_assert_not_null(s_server);
    int pub_port = 0, snap_port = 0;
    cr_assert_eq(zsock_recv(s_server, "ii", &pub_port, &snap_port), 0);
    cr_assert(pub_port > 0 && snap_port > 0);
    snprintf(s_pub, sizeof s_pub, "tcp://127.0.0.1:%d", pub_port);
    snprintf(s_snap, sizeof s_snap, "tcp://127.0.0.1:%d", snap_port);
    s_do("HB", NULL, 100);
}

static void s_stop(void)
{
    zactor_destroy(&s_server);
}

TestSuite(watch, .init = s_start, .fini = s_stop, .timeout = 60);

/* Polls until the replica has applied last_seq (or time runs out). */
static void s_catch_up(asy_replica_t *replica, uint64_t last_seq, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (asy_replica_last_seq(replica) < last_seq && zclock_mono() < deadline) {
        asy_mmsg_t msg;
        if (asy_replica_poll(replica, 50, &msg) == 0)
            asy_mmsg_release(&msg);
    }
    cr_assert_eq(asy_replica_last_seq(replica), last_seq, "replica at %llu, wanted %llu",
                 (unsigned long long)asy_replica_last_seq(replica), (unsigned long long)last_seq);
}

static void s_drain(asy_replica_t *replica, int milliseconds)
{
    int64_t deadline = zclock_mono() + milliseconds;
    while (zclock_mono() < deadline) {
        asy_mmsg_t msg;
        if (asy_replica_poll(replica, 20, &msg) == 0)
            asy_mmsg_release(&msg);
    }
}

/* Polls until done(stats) holds or timeout_ms passes: what a loaded machine may take a while
   to do is waited for, not assumed done after a fixed time. */
static void s_drain_until(asy_replica_t *replica, bool (*done)(const asy_replica_stats_t *),
                          int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    while (!done(&stats) && zclock_mono() < deadline) {
        asy_mmsg_t msg;
        if (asy_replica_poll(replica, 20, &msg) == 0)
            asy_mmsg_release(&msg);
        asy_replica_stats(replica, &stats);
    }
}

/* Polls until the replica holds topic or timeout_ms passes. */
static void s_drain_until_topic(asy_replica_t *replica, const char *topic, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (!asy_replica_get(replica, topic) && zclock_mono() < deadline) {
        asy_mmsg_t msg;
        if (asy_replica_poll(replica, 20, &msg) == 0)
            asy_mmsg_release(&msg);
    }
}

static bool s_resnapshotted(const asy_replica_stats_t *stats)
{
    return stats->resnapshots >= 1 && stats->last_seq >= 2;
}

static bool s_two_heartbeats(const asy_replica_stats_t *stats)
{
    return stats->heartbeats >= 2;
}

static bool s_reconnected(const asy_replica_stats_t *stats)
{
    return stats->reconnects >= 1 && stats->resnapshots >= 1;
}

static bool s_restarted(const asy_replica_stats_t *stats)
{
    return stats->restarts >= 1 && stats->resnapshots >= 1 && stats->last_seq == 1;
}

static int64_t s_count(const asy_replica_t *replica, const char *topic)
{
    const asy_mupdate_t *update = asy_replica_get(replica, topic);
    cr_assert_not_null(update, "no topic %s", topic);
    cr_assert_eq(update->cell_count, 1);
    return update->cells[0].count;
}

static uint64_t s_wait_stream(void)
{
    int64_t deadline = zclock_mono() + 20000;
    uint64_t seq;
    while ((seq = s_do("SEQ", NULL, 0)) == 0 && zclock_mono() < deadline)
        zclock_sleep(20);
    cr_assert(seq > 0, "the stream did not finish");
    return seq;
}

/* ----------------------------------------------------------------------------------------------
   Replica. */

Test(watch, mid_stream_join_ends_equal_to_one_from_the_start)
{
    asy_replica_t *early = asy_replica_new(s_pub, s_snap, "");
    cr_assert_not_null(early);
    cr_assert_eq(asy_replica_sync(early, 3000), 0, "%s", asy_replica_errmsg(early));
    cr_assert_eq(asy_replica_size(early), 0);

    s_do("STREAM", "20", 400); /* 400 x 5 ms: joins after 20 updates, well before the end */
    int64_t deadline = zclock_mono() + 10000;
    while (s_do("NOW", NULL, 0) < 20 && zclock_mono() < deadline)
        zclock_sleep(5);
    asy_replica_t *late = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(late, 3000), 0, "%s", asy_replica_errmsg(late));
    asy_replica_stats_t stats;
    asy_replica_stats(late, &stats);
    cr_assert(stats.snapshot_seq > 0 && stats.snapshot_seq < 400, "joined at %llu, not mid-stream",
              (unsigned long long)stats.snapshot_seq);

    /* the early one polls only now: its SUB has queued everything */
    uint64_t last = s_wait_stream();
    cr_assert_eq(last, 400);
    s_catch_up(early, last, 10000);
    s_catch_up(late, last, 10000);

    cr_assert_eq(asy_replica_size(early), 20);
    cr_assert_eq(asy_replica_size(late), 20);
    for (size_t i = 0; i < 20; i++) {
        const asy_mupdate_t *a = asy_replica_at(early, i), *b = asy_replica_at(late, i);
        cr_assert_str_eq(a->topic, b->topic);
        cr_assert_eq(a->cells[0].count, b->cells[0].count, "%s", a->topic);
        cr_assert_eq(asy_replica_seq_at(early, i), asy_replica_seq_at(late, i));
        /* the test monitor publishes value = seq */
        cr_assert_eq((uint64_t)a->cells[0].count, asy_replica_seq_at(early, i));
        if (i > 0)
            cr_assert(strcmp(asy_replica_at(early, i - 1)->topic, a->topic) < 0);
    }
    asy_replica_stats(early, &stats);
    cr_assert_eq(stats.updates_applied, 400);
    cr_assert_eq(stats.gaps, 0);
    cr_assert_eq(stats.duplicates, 0);
    asy_replica_stats(late, &stats);
    cr_assert_eq(stats.gaps, 0);
    cr_assert_eq(stats.duplicates, 0);
    cr_assert_eq(stats.resnapshots, 0);
    cr_assert_eq(stats.snapshot_seq + stats.updates_applied, 400,
                 "each update after S applied exactly once");
    asy_replica_destroy(&early);
    asy_replica_destroy(&late);
    cr_assert_null(late);
}

Test(watch, updates_published_while_snapshot_in_flight_are_applied_once)
{
    s_do("SET", "all/M1/" S_PERIOD, 10);
    s_do("SET", "all/M2/" S_PERIOD, 20);
    s_do("SET", "all/M4/" S_PERIOD, 30);
    s_do("INFLIGHT", NULL, 4); /* seq 4..7 go out between request and reply */

    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.snapshot_seq, 3);
    cr_assert_eq(stats.last_seq, 7, "in-flight updates lost: last %llu",
                 (unsigned long long)stats.last_seq);
    cr_assert_eq(stats.updates_applied, 4);
    cr_assert_eq(stats.snapshot_entries, 3);
    /* INFLIGHT set topic i % 3 to 1000 + i: the newest values, not the snapshot's */
    cr_assert_eq(s_count(replica, "all/M1/" S_PERIOD), 1003);
    cr_assert_eq(s_count(replica, "all/M2/" S_PERIOD), 1001);
    cr_assert_eq(s_count(replica, "all/M4/" S_PERIOD), 1002);

    s_do("INFLIGHT", NULL, 0);
    s_drain(replica, 300);
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.updates_applied, 4, "applied twice");
    cr_assert_eq(stats.duplicates, 0);
    cr_assert_eq(stats.gaps, 0);
    cr_assert(stats.heartbeats > 0);
    asy_replica_destroy(&replica);
}

Test(watch, a_heartbeat_older_than_the_snapshot_is_no_restart)
{
    s_do("SET", "all/M1/" S_PERIOD, 10);
    s_do("SET", "all/M2/" S_PERIOD, 20);
    s_do("HB", NULL, 0); /* no regular heartbeat (seq 2) before the stale one: one stream is
                            in order */
    s_do("STALEHB", NULL, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    s_do("STALEHB", NULL, 0);
    s_do("HB", NULL, 100);
    s_drain(replica, 300);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.snapshot_seq, 2);
    cr_assert(stats.heartbeats > 0);
    cr_assert_eq(stats.restarts, 0,
                 "a heartbeat of seq 1 queued during the snapshot was read "
                 "as a restart");
    cr_assert_not(asy_replica_needs_sync(replica));
    asy_replica_destroy(&replica);
}

/* --endpoint of one stream with --snapshot of the other: said once, for good, instead of
   re-snapshotting every second while showing the snapshot's figures under the wrong name. */
Test(watch, publisher_and_snapshot_of_different_streams_are_named)
{
    s_do("SET", "all/M1/" S_PERIOD, 10);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    cr_assert_eq(asy_replica_exact(replica), 0);
    s_do("EXACT", NULL, 1);
    s_do("SET", "all/M1/" S_PERIOD, 11);
    asy_mmsg_t msg;
    int rc = ASY_ETIMEDOUT;
    for (int i = 0; i < 50 && rc == ASY_ETIMEDOUT; i++)
        rc = asy_replica_poll(replica, 100, &msg);
    s_do("EXACT", NULL, 0);
    cr_assert_eq(rc, ASY_EPROTO, "rc %d", rc);
    cr_assert(asy_replica_mismatched(replica));
    cr_assert(strstr(asy_replica_errmsg(replica), "sends exact figures but the snapshot service"),
              "%s", asy_replica_errmsg(replica));
    cr_assert_eq(asy_replica_poll(replica, 100, &msg), ASY_EPROTO, "for good");
    cr_assert_eq(s_count(replica, "all/M1/" S_PERIOD), 10, "the other stream's value kept out");
    asy_replica_destroy(&replica);
}

/* The same with an empty snapshot and an idle publisher: the SnapshotEnd and the heartbeats
   say whose they are, so the mismatch is found before any update. */
Test(watch, different_streams_are_named_before_any_update)
{
    s_do("SAYS", NULL, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    cr_assert_eq(asy_replica_size(replica), 0);
    cr_assert_eq(asy_replica_exact(replica), 0, "the empty snapshot said public");
    s_do("EXACT", NULL, 1);
    s_do("HB", NULL, 50);
    asy_mmsg_t msg;
    int rc = ASY_ETIMEDOUT;
    for (int i = 0; i < 50 && (rc == ASY_ETIMEDOUT || rc == 0); i++) {
        rc = asy_replica_poll(replica, 100, &msg);
        if (rc == 0)
            asy_mmsg_release(&msg);
    }
    s_do("HB", NULL, 0);
    s_do("EXACT", NULL, 0);
    s_do("SAYS", NULL, 0);
    cr_assert_eq(rc, ASY_EPROTO, "rc %d", rc);
    cr_assert(asy_replica_mismatched(replica));
    cr_assert(strstr(asy_replica_errmsg(replica), "sends exact figures but the snapshot service"),
              "%s", asy_replica_errmsg(replica));
    asy_replica_destroy(&replica);
}

Test(watch, gap_triggers_a_new_snapshot)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    s_do("SKIP", NULL, 0);              /* seq 2 is never seen: the replica lost it */
    s_do("SET", "all/M2/" S_PERIOD, 2); /* seq 3: the gap shows */
    uint64_t last = s_do("SET", "all/M4/" S_PERIOD, 3);
    cr_assert_eq(last, 4);
    s_catch_up(replica, last, 5000);
    s_drain(replica, 200);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.resnapshots, 1);
    cr_assert_eq(stats.snapshot_seq, 4);
    cr_assert_eq(asy_replica_size(replica), 3);
    cr_assert_eq(s_count(replica, "all/M2/" S_PERIOD), 2);
    asy_replica_destroy(&replica);
}

Test(watch, heartbeat_ahead_of_a_full_subscriber_triggers_a_new_snapshot)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    s_do("SKIP", NULL, 0); /* the next heartbeat says 2, the replica saw 1 */
    s_drain_until(replica, s_resnapshotted, 5000);
    s_drain(replica, 200);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.resnapshots, 1);
    cr_assert_eq(stats.last_seq, 2);
    asy_replica_destroy(&replica);
}

Test(watch, duplicate_is_dropped)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    s_do("SET", "all/M2/" S_PERIOD, 2);
    s_do("DUP", NULL, 0);
    uint64_t last = s_do("SET", "all/M4/" S_PERIOD, 3);
    s_catch_up(replica, last, 5000);
    s_drain(replica, 200);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.duplicates, 1);
    cr_assert_eq(stats.updates_applied, 2);
    cr_assert_eq(stats.gaps, 0);
    cr_assert_eq(stats.resnapshots, 0);
    asy_replica_destroy(&replica);
}

Test(watch, poll_returns_each_update_to_the_caller)
{
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "all/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    s_do("SET", "all/M6/" S_PERIOD, 77);
    int64_t deadline = zclock_mono() + 3000;
    asy_mmsg_t msg;
    bool seen = false;
    while (!seen && zclock_mono() < deadline) {
        if (asy_replica_poll(replica, 100, &msg) != 0)
            continue;
        if (msg.kind == ASY_MMSG_UPDATE) {
            cr_assert_str_eq(msg.update.topic, "all/M6/" S_PERIOD);
            cr_assert_eq(msg.update.cells[0].count, 77);
            seen = true;
        } else {
            cr_assert_eq(msg.kind, ASY_MMSG_HEARTBEAT);
        }
        asy_mmsg_release(&msg);
    }
    cr_assert(seen);
    s_do("HB", NULL, 0);
    s_drain(replica, 100);
    cr_assert_eq(asy_replica_poll(replica, 0, NULL), ASY_ETIMEDOUT);
    asy_replica_destroy(&replica);
}

Test(watch, subtree_filters_snapshot_and_live_stream)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 2);
    s_do("SET", "site/ward-b/M1/" S_PERIOD, 3);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "site/ward-a/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    cr_assert_eq(asy_replica_size(replica), 1);
    cr_assert_eq(s_count(replica, "site/ward-a/M1/" S_PERIOD), 2);

    s_do("SET", "site/ward-b/M4/" S_PERIOD, 4);
    s_do("SET", "all/M4/" S_PERIOD, 5);
    uint64_t last = s_do("SET", "site/ward-a/M4/" S_PERIOD, 6);
    s_catch_up(replica, last, 5000);
    s_drain(replica, 300);
    cr_assert_eq(asy_replica_size(replica), 2);
    for (size_t i = 0; i < asy_replica_size(replica); i++)
        cr_assert(strncmp(asy_replica_at(replica, i)->topic, "site/ward-a/", 12) == 0);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.gaps, 0, "a subtree's seq jumps are not gaps");
    cr_assert_eq(stats.resnapshots, 0);
    cr_assert_null(asy_replica_get(replica, "all/M4/" S_PERIOD));
    asy_replica_destroy(&replica);
}

Test(watch, heartbeat_silence_is_detected_and_repaired)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    s_drain_until(replica, s_two_heartbeats, 5000);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert(stats.heartbeats >= 2);
    cr_assert_eq(stats.heartbeat_interval_ms, 100);
    cr_assert_not(stats.stale);

    s_do("HB", NULL, 0);
    zclock_sleep(400);
    cr_assert(asy_replica_stale(replica), "400 ms without heartbeats (interval 100) not stale");
    s_drain_until(replica, s_reconnected, 5000);
    asy_replica_stats(replica, &stats);
    cr_assert(stats.reconnects >= 1);
    cr_assert(stats.resnapshots >= 1);

    s_do("HB", NULL, 100);
    uint64_t last = s_do("SET", "all/M2/" S_PERIOD, 2);
    s_catch_up(replica, last, 5000);
    s_drain(replica, 300);
    cr_assert_not(asy_replica_stale(replica));
    cr_assert_eq(s_count(replica, "all/M2/" S_PERIOD), 2);
    asy_replica_destroy(&replica);
}

Test(watch, broker_restart_is_detected_by_heartbeat)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    s_do("SET", "all/M2/" S_PERIOD, 2);
    s_do("SET", "all/M4/" S_PERIOD, 3);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "all/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0);
    cr_assert_eq(asy_replica_size(replica), 3);
    s_do("RESTART", NULL, 0);
    s_do("SET", "all/M5/" S_PERIOD, 9); /* seq 1 again */
    s_drain_until(replica, s_restarted, 5000);
    s_drain(replica, 200);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.restarts, 1);
    cr_assert_eq(stats.resnapshots, 1);
    cr_assert_eq(stats.last_seq, 1);
    cr_assert_eq(asy_replica_size(replica), 1);
    cr_assert_eq(s_count(replica, "all/M5/" S_PERIOD), 9);
    asy_replica_destroy(&replica);
}

static bool s_rebooted(const asy_replica_stats_t *stats)
{
    return stats->restarts >= 1 && stats->resnapshots >= 1;
}

/* The case PROTOCOL.md 11 rule 8 is for: a subtree subscriber hears nothing from the restarted
   broker until its seq is past the last one seen, so the seq alone shows an ordinary gap, and
   the topics the new broker does not have would stay with their old figures. */
Test(watch, restart_past_the_last_seq_is_told_by_the_incarnation)
{
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 1);
    s_do("SET", "site/ward-a/M2/" S_PERIOD, 2);
    s_do("SET", "all/M1/" S_PERIOD, 3);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "site/ward-a/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.incarnation, S_INCARNATION);
    cr_assert_eq(asy_replica_size(replica), 2);
    s_do("HB", NULL, 0); /* no heartbeat with a smaller seq to give the restart away */
    s_drain(replica, 200);

    s_do("REBOOT", NULL, 0x5eed0002);
    for (int i = 0; i < 5; i++) /* seq 1..5, outside the subtree: never seen */
        s_do("SET", "all/M4/" S_PERIOD, i);
    uint64_t last = s_do("SET", "site/ward-a/M4/" S_PERIOD, 7); /* seq 6 > 3 */
    cr_assert_eq(last, 6);
    s_drain_until(replica, s_rebooted, 5000);
    s_drain(replica, 200);
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.restarts, 1);
    cr_assert_eq(stats.resnapshots, 1);
    cr_assert_eq(stats.incarnation, 0x5eed0002);
    cr_assert_eq(stats.snapshot_seq, 6);
    cr_assert_eq(stats.duplicates, 0);
    cr_assert_eq(stats.updates_applied, 0, "the new broker's update went into the old figures");
    cr_assert_eq(asy_replica_size(replica), 1, "the old broker's topics are still held");
    cr_assert_eq(s_count(replica, "site/ward-a/M4/" S_PERIOD), 7);
    cr_assert_null(asy_replica_get(replica, "site/ward-a/M1/" S_PERIOD));
    asy_replica_destroy(&replica);
}

static bool s_late_subscription_repaired(const asy_replica_stats_t *stats)
{
    return stats->late_subscriptions >= 1 && stats->resnapshots >= 1;
}

/* A snapshot taken before the SUB has heard anything (the broker restarting: its snapshot
   service answers before the subscriber has reconnected) may miss what is published before
   the subscription is in place; the first message the SUB then hears brings a new snapshot
   (review: a watcher kept 239 of 361 topics after a broker restart, silently). */
Test(watch, a_snapshot_taken_before_the_subscription_is_in_place_is_taken_again)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    int port = asy_test_free_port();
    char publisher[64];
    snprintf(publisher, sizeof publisher, "tcp://127.0.0.1:%d", port);
    asy_replica_t *replica = asy_replica_new(publisher, s_snap, "all/");
    cr_assert_eq(asy_replica_sync(replica, 2000), 0, "%s", asy_replica_errmsg(replica));
    cr_assert_eq(asy_replica_size(replica), 1);
    s_do("SET", "all/M2/" S_PERIOD, 2); /* published while no subscription is in place */
    s_do("BIND", NULL, port);
    s_drain_until(replica, s_late_subscription_repaired, 10000);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.late_subscriptions, 1);
    cr_assert_eq(asy_replica_size(replica), 2, "the topic published before the subscription");
    cr_assert_eq(s_count(replica, "all/M2/" S_PERIOD), 2);
    asy_replica_destroy(&replica);
}

/* Nothing changes in the subtree after the restart: the first heartbeat of the new broker
   tells, though its seq is higher than the last one seen. */
Test(watch, heartbeat_of_another_incarnation_triggers_a_new_snapshot)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 2);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "all/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    cr_assert_eq(asy_replica_size(replica), 1);
    s_do("REBOOT", NULL, 0x5eed0003);
    for (int i = 0; i < 10; i++)
        s_do("SET", "site/ward-a/M2/" S_PERIOD, i); /* heartbeats now say seq 10 > 2 */
    s_drain_until(replica, s_rebooted, 5000);
    s_drain(replica, 300);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.restarts, 1);
    cr_assert_eq(stats.resnapshots, 1);
    cr_assert_eq(stats.gaps, 0);
    cr_assert_eq(stats.incarnation, 0x5eed0003);
    cr_assert_eq(stats.snapshot_seq, 10);
    cr_assert_eq(asy_replica_size(replica), 0, "all/M1 of the old broker is still held");
    cr_assert_not(asy_replica_needs_sync(replica));
    asy_replica_destroy(&replica);
}

/* A breach notice is in no snapshot: the first of the new broker is handed out, not dropped
   with its seq. */
/* A breach notice read while a snapshot is taken (here the restarted broker's first one,
   still in the SUB when the re-snapshot starts) has a seq up to the snapshot's, but no
   snapshot carries notices: it is handed out, once (a review found it dropped). */
Test(watch, a_breach_read_while_the_snapshot_is_taken_is_handed_out)
{
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "site/ward-a/");
    cr_assert_eq(asy_replica_add_breaches(replica, "site/ward-a/breach"), 0);
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    s_do("HB", NULL, 0);
    s_drain(replica, 200);
    s_do("REBOOT", NULL, 0x5eed0009);
    s_do("SET", "site/ward-a/M4/" S_PERIOD, 9); /* seq 1: tells the restart */
    s_do("BREACH", "ward-a", 0);                /* seq 2: read while re-snapshotting */
    zclock_sleep(100);
    int64_t deadline = zclock_mono() + 3000;
    int seen = 0;
    while (zclock_mono() < deadline) {
        asy_mmsg_t msg;
        if (asy_replica_poll(replica, 100, &msg) != 0)
            continue;
        seen += msg.kind == ASY_MMSG_BREACH;
        asy_mmsg_release(&msg);
    }
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(seen, 1, "handed out once (restarts %llu, snapshot seq %llu)",
                 (unsigned long long)stats.restarts, (unsigned long long)stats.snapshot_seq);
    cr_assert_eq(stats.breaches, 1);
    asy_replica_destroy(&replica);
}

Test(watch, breach_of_another_incarnation_is_still_handed_out)
{
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 1);
    s_do("SET", "site/ward-a/M2/" S_PERIOD, 2);
    s_do("SET", "site/ward-a/M4/" S_PERIOD, 3);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "site/ward-a/");
    cr_assert_eq(asy_replica_add_breaches(replica, "site/ward-a/breach"), 0);
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    s_do("HB", NULL, 0);
    s_drain(replica, 200);
    s_do("REBOOT", NULL, 0x5eed0004);
    s_do("BREACH", "ward-a", 0); /* seq 1 < 3: a duplicate by the seq rule */
    int64_t deadline = zclock_mono() + 5000;
    bool seen = false;
    while (!seen && zclock_mono() < deadline) {
        asy_mmsg_t msg;
        if (asy_replica_poll(replica, 100, &msg) != 0)
            continue;
        seen = msg.kind == ASY_MMSG_BREACH;
        if (seen)
            cr_assert_eq(msg.incarnation, 0x5eed0004);
        asy_mmsg_release(&msg);
    }
    cr_assert(seen, "the new broker's breach notice was dropped");
    s_drain_until(replica, s_rebooted, 5000);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.breaches, 1);
    cr_assert_eq(stats.restarts, 1);
    cr_assert_eq(stats.resnapshots, 1);
    cr_assert_eq(asy_replica_size(replica), 0);
    asy_replica_destroy(&replica);
}

/* --endpoint of one broker and --snapshot of another: every live message is of another
   incarnation than every snapshot. The first is taken for a restart; when the snapshot after
   it comes from the same broker again, the replica stops and says so (else it re-snapshots
   forever). A leftover of the broker before a real restart is no second restart. */
Test(watch, publisher_and_snapshot_of_different_brokers_are_named)
{
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 1);
    s_do("SNAPINC", NULL, 0x5eed00aa);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "site/ward-a/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    s_do("SET", "site/ward-a/M2/" S_PERIOD, 2);
    int rc = 0;
    for (int i = 0; i < 20 && rc != ASY_EPROTO; i++) {
        asy_mmsg_t msg;
        rc = asy_replica_poll(replica, 200, &msg);
        asy_mmsg_release(&msg);
        if (i == 5)
            s_do("SET", "site/ward-a/M4/" S_PERIOD, 3);
    }
    cr_assert_eq(rc, ASY_EPROTO, "%s", asy_replica_errmsg(replica));
    cr_assert(strstr(asy_replica_errmsg(replica), "belong to different brokers"), "%s",
              asy_replica_errmsg(replica));
    asy_replica_destroy(&replica);
}

/* After a restart (A to B) and the snapshot of B, a message of A still buffered on the old
   connection costs one snapshot more, no error; a rollback to a broker without an
   incarnation is a restart like any other; and two restarts in quick succession (A, B, C, with
   B's messages still queued) are no "two brokers" (review). */
Test(watch, leftovers_rollbacks_and_quick_restarts_are_restarts)
{
    s_do("INCARNATION", NULL, 0);
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "site/ward-a/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    s_do("REBOOT", NULL, 0x5eed00bb);
    s_do("SET", "site/ward-a/M1/" S_PERIOD, 2);
    s_drain(replica, 800);
    s_do("INCARNATION", NULL, 0); /* the old broker's last words */
    s_do("SET", "site/ward-a/M2/" S_PERIOD, 3);
    s_do("INCARNATION", NULL, 0x5eed00bb);
    s_do("SET", "site/ward-a/M4/" S_PERIOD, 4);
    s_drain_until_topic(replica, "site/ward-a/M4/" S_PERIOD, 10000);
    cr_assert_not(asy_replica_mismatched(replica), "%s", asy_replica_errmsg(replica));
    cr_assert_not_null(asy_replica_get(replica, "site/ward-a/M4/" S_PERIOD));
    s_do("REBOOT", NULL, 0); /* rolled back to a broker that says no incarnation */
    s_do("SET", "site/ward-a/M5/" S_PERIOD, 5);
    s_drain_until_topic(replica, "site/ward-a/M5/" S_PERIOD, 10000);
    cr_assert_not_null(asy_replica_get(replica, "site/ward-a/M5/" S_PERIOD), "the rolled-back one");
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.incarnation, 0);

    s_do("REBOOT", NULL, 0x5eed00cc);
    for (int i = 0; i < 600; i++)
        s_do("SET", "site/ward-a/M1/" S_PERIOD, i);
    s_do("REBOOT", NULL, 0x5eed00dd);
    s_do("SET", "site/ward-a/M6/" S_PERIOD, 6);
    s_drain(replica, 3000);
    cr_assert_not(asy_replica_mismatched(replica), "%s", asy_replica_errmsg(replica));
    cr_assert_not_null(asy_replica_get(replica, "site/ward-a/M6/" S_PERIOD));
    asy_replica_destroy(&replica);
}

/* A monitor that predates the incarnation (none on any message): the smaller seq of a
   heartbeat still tells the restart (rule 3). */
Test(watch, without_incarnations_a_smaller_seq_still_tells_a_restart)
{
    s_do("INCARNATION", NULL, 0);
    s_do("SET", "all/M1/" S_PERIOD, 1);
    s_do("SET", "all/M2/" S_PERIOD, 2);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "all/");
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.incarnation, 0);
    s_drain(replica, 300);
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.restarts, 0, "no incarnation on either side is no new broker");
    s_do("RESTART", NULL, 0);
    s_do("SET", "all/M5/" S_PERIOD, 9);
    s_drain_until(replica, s_restarted, 5000);
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.restarts, 1);
    cr_assert_eq(asy_replica_size(replica), 1);
    cr_assert_eq(s_count(replica, "all/M5/" S_PERIOD), 9);
    asy_replica_destroy(&replica);
}

Test(watch, sync_times_out_without_a_snapshot_service)
{
    int port = asy_test_free_port();
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "tcp://127.0.0.1:%d", port);
    asy_replica_t *replica = asy_replica_new(s_pub, nowhere, "");
    int64_t start = zclock_mono();
    cr_assert_eq(asy_replica_sync(replica, 400), ASY_ETIMEDOUT);
    cr_assert(zclock_mono() - start < 3000);
    cr_assert(strstr(asy_replica_errmsg(replica), nowhere));
    asy_replica_destroy(&replica);
    cr_assert_null(asy_replica_new(NULL, nowhere, ""));
}

/* A snapshot that fails drops the updates read meanwhile (the next one brings their topics),
   not the breach notices: no snapshot carries them (review). */
Test(watch, a_failed_snapshot_keeps_the_breach_notices_read_meanwhile)
{
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "tcp://127.0.0.1:%d", asy_test_free_port());
    uint64_t subscribed = s_do("SUBS", NULL, 0);
    asy_replica_t *replica = asy_replica_new(s_pub, nowhere, "");
    s_wait_count("SUBS", subscribed + 1, 10000); /* the subscription reaches the publisher */
    s_do("BREACH", "ward-a", 0);
    zclock_sleep(100);
    cr_assert_eq(asy_replica_sync(replica, 600), ASY_ETIMEDOUT);
    asy_mmsg_t msg;
    cr_assert_eq(asy_replica_poll(replica, 0, &msg), 0);
    cr_assert_eq(msg.kind, ASY_MMSG_BREACH);
    asy_mmsg_release(&msg);
    asy_replica_destroy(&replica);
}

/* A snapshot that fails part-way (an undecodable part) leaves the rest of its reply behind:
   the next request must not read that rest as its own answer (an old, partial snapshot). */
Test(watch, a_snapshot_that_fails_part_way_leaves_nothing_for_the_next)
{
    s_do("SET", "all/M1/" S_PERIOD, 10);
    s_do("SET", "all/M2/" S_PERIOD, 20);
    s_do("BADPART", NULL, 1);
    asy_replica_t *replica = asy_replica_new(s_pub, s_snap, "");
    cr_assert_eq(asy_replica_sync(replica, 3000), ASY_EPROTO);
    zclock_sleep(200); /* the rest of the first reply arrives */
    s_do("SET", "all/M4/" S_PERIOD, 30);
    cr_assert_eq(asy_replica_sync(replica, 3000), 0, "%s", asy_replica_errmsg(replica));
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    cr_assert_eq(stats.snapshot_seq, 3, "the old reply's end (seq 2) was taken for the new one");
    cr_assert_eq(stats.snapshot_entries, 3);
    cr_assert_eq(s_count(replica, "all/M4/" S_PERIOD), 30);
    asy_replica_destroy(&replica);
}

Test(watch, snapshot_service_error_is_a_protocol_error)
{
    /* a request the test monitor cannot decode is answered with MonitorError */
    zsock_t *dealer = zsock_new_dealer(s_snap);
    zstr_send(dealer, "not protobuf \xff\xff");
    zmsg_t *reply = zmsg_recv(dealer);
    cr_assert_not_null(reply);
    cr_assert_eq(zmsg_size(reply), 2);
    zframe_t *topic = zmsg_first(reply), *body = zmsg_next(reply);
    cr_assert_eq(zframe_size(topic), 0);
    asy_mmsg_t msg;
    cr_assert_eq(asy_mmsg_decode(&msg, zframe_data(body), zframe_size(body)), 0);
    cr_assert_eq(msg.kind, ASY_MMSG_ERROR);
    asy_mmsg_release(&msg);
    zmsg_destroy(&reply);
    zsock_destroy(&dealer);
}

/* ----------------------------------------------------------------------------------------------
   View. */

static asy_mcell_t *s_cell(asy_mupdate_t *update, const char *breakdown, const char *group)
{
    asy_mcell_t *cell = asy_mupdate_add_cell(update, breakdown, group);
    cr_assert_not_null(cell);
    return cell;
}

static void s_view_updates(asy_mmsg_t messages[3])
{
    asy_mmsg_init(&messages[0], ASY_MMSG_UPDATE);
    asy_mupdate_t *m1 = &messages[0].update;
    snprintf(m1->topic, sizeof m1->topic, "all/M1/" S_PERIOD);
    snprintf(m1->metric, sizeof m1->metric, "M1");
    snprintf(m1->scope, sizeof m1->scope, "all");
    snprintf(m1->period, sizeof m1->period, S_PERIOD);
    snprintf(m1->unit, sizeof m1->unit, "count");
    m1->as_of_us = 1000000000000000;
    asy_mcell_t *cell = s_cell(m1, "total", "ALL");
    cell->has_count = true;
    cell->count = 1235;
    cell = s_cell(m1, "ethnic_group", "ASIAN");
    cell->has_count = true;
    cell->count = 40;
    cell = s_cell(m1, "ethnic_group", "BLACK");
    cell->suppressed = true;
    cell = s_cell(m1, "sex", "SEX_FEMALE");
    cell->has_count = true;
    cell->count = 600;

    asy_mmsg_init(&messages[1], ASY_MMSG_UPDATE);
    asy_mupdate_t *m4 = &messages[1].update;
    *m4 = *m1;
    m4->cells = NULL;
    m4->cell_count = m4->cell_capacity = 0;
    snprintf(m4->topic, sizeof m4->topic, "all/M4/" S_PERIOD);
    snprintf(m4->metric, sizeof m4->metric, "M4");
    snprintf(m4->unit, sizeof m4->unit, "percent");
    m4->as_of_us = 1000000000000000 - 5000000;
    cell = s_cell(m4, "total", "ALL");
    cell->has_numerator = cell->has_denominator = cell->has_value = cell->has_interval = true;
    cell->numerator = 40;
    cell->denominator = 60;
    cell->value = 66.6667;
    cell->lower = 54.06;
    cell->upper = 77.27;
    cell = s_cell(m4, "ethnic_group", "WHITE");
    cell->suppressed = true;

    asy_mmsg_init(&messages[2], ASY_MMSG_UPDATE);
    asy_mupdate_t *m11 = &messages[2].update;
    *m11 = *m4;
    m11->cells = NULL;
    m11->cell_count = m11->cell_capacity = 0;
    snprintf(m11->topic, sizeof m11->topic, "all/M11/" S_PERIOD);
    snprintf(m11->metric, sizeof m11->metric, "M11");
    cell = s_cell(m11, "declined.total", "ALL");
    cell->has_numerator = cell->has_denominator = cell->has_value = cell->has_interval = true;
    cell->numerator = 5;
    cell->denominator = 50;
    cell->value = 10;
    cell->lower = 4.35;
    cell->upper = 21.36;
    cell = s_cell(m11, "left_before_goals.total", "ALL");
    cell->has_denominator = true;
    cell->denominator = 0;
}

static char *s_render(const asy_mupdate_t *const *updates, size_t count, bool stale, bool tty)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    asy_view_status_t status = {
        .endpoint = "tcp://127.0.0.1:5571",
        .seq = 42,
        .topics = 3,
        .now_us = 1000000000000000 + 400000,
        .last_message_us = 1000000000000000 - 2000000,
        .stale = stale,
    };
    const char *periods[] = {"2026-11", S_PERIOD};
    asy_view_options_t options = {
        .by = "ethnic_group", .periods = periods, .period_count = 2, .tty = tty};
    asy_view_render(out, updates, count, &status, &options);
    fclose(out);
    return text;
}

Test(watch, view_renders_known_updates)
{
    asy_mmsg_t messages[3];
    s_view_updates(messages);
    /* order given is not the order shown */
    const asy_mupdate_t *updates[] = {&messages[2].update, &messages[1].update,
                                      &messages[0].update};
    char *text = s_render(updates, 3, false, false);
    const char *expected =
        "advsync-watch  tcp://127.0.0.1:5571  seq 42  3 topics  data 0.4 s old\n"
        "\n"
        "== all  2026-27-Q3 ==\n"
        "                                                  value  95% interval         n\n"
        "M1 Referrals                                       1235\n"
        "    ASIAN                                            40\n"
        "    BLACK                                             *\n"
        "M4 Contacted within 3 working days                66.7%  (54.1-77.3)          40/60\n"
        "    WHITE                                             *\n"
        "M11 Declined / left before goals\n"
        "  declined                                        10.0%  (4.3-21.4)           5/50\n"
        "  left_before_goals                                   -                       n=0\n"
        "\n";
    cr_assert_str_eq(text, expected, "got:\n%s", text);
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        cr_assert((size_t)(end - line) <= ASY_VIEW_WIDTH);
        line = end + 1;
    }
    free(text);

    text = s_render(updates, 3, true, true);
    cr_assert(strncmp(text, "\033[H\033[2J", 7) == 0);
    cr_assert(strstr(text, "STALE"));
    free(text);
    for (int i = 0; i < 3; i++)
        asy_mmsg_release(&messages[i]);
}

Test(watch, view_says_why_nothing_is_shown)
{
    char *text = s_render(NULL, 0, false, false);
    cr_assert(strstr(text, "(no figures yet for this subscription: a site's appear with its "
                           "first event at the centre;\n check the --site and --metric given)"),
              "%s", text);
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        cr_assert((size_t)(end - line) <= ASY_VIEW_WIDTH, "%.*s", (int)(end - line), line);
        line = end + 1;
    }
    free(text);
    /* figures held, but none for the periods asked for */
    asy_mmsg_t messages[3];
    s_view_updates(messages);
    snprintf(messages[0].update.period, sizeof messages[0].update.period, "2025-26");
    const asy_mupdate_t *updates[] = {&messages[0].update};
    text = s_render(updates, 1, false, false);
    cr_assert(strstr(text, "(1 figure held, none for the periods shown: 2026-11 "
                           "2026-27-Q3)"),
              "%s", text);
    free(text);
    for (int i = 0; i < 3; i++)
        asy_mmsg_release(&messages[i]);
}

Test(watch, view_shows_recent_breaches_newest_first)
{
    asy_mmsg_t messages[3];
    s_view_updates(messages);
    const asy_mupdate_t *updates[] = {&messages[0].update};
    asy_view_breaches_t recent = {0};
    for (int i = 0; i < ASY_VIEW_BREACHES + 2; i++) {
        asy_mbreach_t breach = {.kind = i % 2 ? ASY_BREACH_MEETING : ASY_BREACH_CONTACT};
        snprintf(breach.site_id, sizeof breach.site_id, "ward-%c", 'a' + i);
        snprintf(breach.case_id, sizeof breach.case_id, "%02d%062d", i, 0);
        breach.received = 20760 + i; /* 2026-11-03 + i */
        breach.deadline = 20763 + i; /* 2026-11-06 + i; detected the next day at 03:00 GMT */
        breach.detected_at_us = (int64_t)(20764 + i) * 86400 * 1000000 + 3600000000 * 3;
        asy_view_breach_add(&recent, &breach);
    }
    cr_assert_eq(recent.count, ASY_VIEW_BREACHES);
    cr_assert_str_eq(recent.items[0].site_id, "ward-g");
    cr_assert_str_eq(recent.items[ASY_VIEW_BREACHES - 1].site_id, "ward-c");

    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    asy_view_status_t status = {.endpoint = "tcp://127.0.0.1:5573", .breaches = &recent};
    asy_view_options_t options = {.by = "ethnic_group"};
    asy_view_render(out, updates, 1, &status, &options);
    fclose(out);
    const char *section = strstr(text, "\n== recent breaches (newest first) ==\n");
    cr_assert_not_null(section, "got:\n%s", text);
    cr_assert(strstr(text, "M1 Referrals") < section, "breaches after the figures:\n%s", text);
    const char *newest = strstr(section, "ward-g               contact  case 060000000000  "
                                         "deadline 2026-11-12  detected 2026-11-13 03:00\n");
    const char *older = strstr(section, "ward-f               meeting  case 050000000000  "
                                        "deadline 2026-11-11  detected 2026-11-12 03:00\n");
    cr_assert(newest && older && newest < older, "got:\n%s", section);
    cr_assert_null(strstr(section, "ward-b"), "only the last %d: %s", ASY_VIEW_BREACHES, section);
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        cr_assert((size_t)(end - line) <= ASY_VIEW_WIDTH);
        line = end + 1;
    }
    free(text);

    /* a withdrawal replaces its notice at the top; one for a notice no longer listed is added */
    asy_mbreach_t withdrawal = recent.items[1]; /* ward-f's meeting breach */
    withdrawal.withdrawn = true;
    withdrawal.detected_at_us += 3600000000LL * 10;
    asy_view_breach_add(&recent, &withdrawal);
    cr_assert_eq(recent.count, ASY_VIEW_BREACHES);
    cr_assert(recent.items[0].withdrawn && strcmp(recent.items[0].site_id, "ward-f") == 0);
    cr_assert_str_eq(recent.items[1].site_id, "ward-g");
    text = NULL;
    out = open_memstream(&text, &size);
    asy_view_render(out, updates, 1, &status, &options);
    fclose(out);
    cr_assert(strstr(text, "ward-f               meeting  case 050000000000  deadline 2026-11-11  "
                           "WITHDRAWN 2026-11-12 13:00\n"),
              "%s", text);
    cr_assert_null(strstr(text, "detected 2026-11-12 03:00"), "listed once: %s", text);
    free(text);
    withdrawal = (asy_mbreach_t){.kind = ASY_BREACH_CONTACT, .withdrawn = true};
    snprintf(withdrawal.site_id, sizeof withdrawal.site_id, "ward-z");
    asy_view_breach_add(&recent, &withdrawal);
    cr_assert(recent.items[0].withdrawn && strcmp(recent.items[0].site_id, "ward-z") == 0);
    cr_assert_eq(recent.count, ASY_VIEW_BREACHES);

    /* a restricted view before any breach says so; without the section nothing is said */
    recent.count = 0;
    text = NULL;
    out = open_memstream(&text, &size);
    asy_view_render(out, updates, 1, &status, &options);
    fclose(out);
    cr_assert(strstr(text, "== recent breaches (newest first) ==\n(none since start)\n"), "%s",
              text);
    free(text);
    text = s_render(updates, 1, false, false);
    cr_assert_null(strstr(text, "breaches"), "%s", text);
    free(text);
    for (int i = 0; i < 3; i++)
        asy_mmsg_release(&messages[i]);
}

Test(watch, view_row_formats_each_unit)
{
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_UPDATE);
    asy_mupdate_t *update = &msg.update;
    snprintf(update->unit, sizeof update->unit, "working_days");
    asy_mcell_t *cell = s_cell(update, "total", "ALL");
    cell->has_count = cell->has_value = cell->has_p90 = true;
    cell->count = 12;
    cell->value = 4;
    cell->p90 = 9.5;
    char line[ASY_VIEW_WIDTH + 1];
    asy_view_row(line, sizeof line, asy_view_metric_title("M3"), update, cell);
    cr_assert_str_eq(line, "M3 Waiting list (median/P90 working days)       4.0/9.5"
                           "                       n=12");

    snprintf(update->unit, sizeof update->unit, "ratio");
    memset(cell, 0, sizeof *cell);
    cell->has_count = cell->has_expected = cell->has_value = cell->has_interval = true;
    cell->count = 12;
    cell->expected = 9.84;
    cell->value = 1.2195;
    cell->lower = 0.63;
    cell->upper = 2.13;
    asy_view_row(line, sizeof line, asy_view_metric_title("M8"), update, cell);
    cr_assert_str_eq(line, "M8 Observed vs expected                            1.22  (0.63-2.13)"
                           "          O=12 E=9.8");

    snprintf(update->unit, sizeof update->unit, "per_100k");
    memset(cell, 0, sizeof *cell);
    cell->has_count = cell->has_denominator = cell->has_value = cell->has_interval = true;
    cell->count = 340;
    cell->denominator = 275400; /* the population: not what n= shows */
    cell->value = 123.456;
    cell->lower = 110.5;
    cell->upper = 137.25;
    asy_view_row(line, sizeof line, asy_view_metric_title("M9"), update, cell);
    cr_assert_str_eq(line, "M9 Referral rate per 100k                         123.5  (110.5-137.2)"
                           "        n=340");
    cell->suppressed = true;
    asy_view_row(line, sizeof line, "    ASIAN", update, cell);
    cr_assert_str_eq(line, "    ASIAN                                             *");
    cr_assert_str_eq(asy_view_metric_title("M13"), "M13 Ethnicity recorded");
    cr_assert_str_eq(asy_view_metric_title("X1"), "X1");
    asy_mmsg_release(&msg);

    char age[48];
    asy_view_status_t status = {.now_us = 100000000, .last_message_us = 0};
    asy_view_age(age, sizeof age, 0, &status);
    cr_assert_str_eq(age, "no data");
    asy_view_age(age, sizeof age, 100000000 - 45000000, &status);
    cr_assert_str_eq(age, "data 45 s old");
}

/* ----------------------------------------------------------------------------------------------
   The program. */

static size_t s_lines(const char *text)
{
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    return lines;
}

/* A snapshot of the other stream than asked for (public figures with --restricted) is an
   error, in --once as in live mode: rounded figures read as exact ones (or the other way
   round) mislead. It used to be a hint with exit 0. */
Test(watch, a_snapshot_of_the_other_stream_is_refused)
{
    s_do("SET", "all/M1/" S_PERIOD, 11);
    char command[1024], out[4096];
    snprintf(command, sizeof command, "%s --restricted --endpoint %s --snapshot %s --once 2>&1",
             ASY_WATCH_PATH, s_pub, s_snap);
    char *argv[] = {"/bin/sh", "-c", command, NULL};
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 10000), 1, "%s", out);
    cr_assert(strstr(out, "sends public (rounded) figures (the public stream's), though "
                          "--restricted was given"),
              "%s", out);
    cr_assert_null(strstr(out, "M1"), "no figures shown: %s", out);
    /* --json prints nothing of it either */
    snprintf(command, sizeof command,
             "%s --restricted --endpoint %s --snapshot %s --once --json 2>/dev/null",
             ASY_WATCH_PATH, s_pub, s_snap);
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 10000), 1, "%s", out);
    cr_assert_str_eq(out, "", "stdout: %s", out);
}

Test(watch, once_json_prints_one_line_per_topic)
{
    s_do("SET", "all/M1/" S_PERIOD, 11);
    s_do("SET", "all/M4/" S_PERIOD, 12);
    s_do("SET", "site/ward-a/M1/2026-11", 13);
    char out[16384];
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot",
                    s_snap,         "--once",     "--json", NULL};
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 10000), 0);
    cr_assert_eq(s_lines(out), 2, "output:\n%s", out);
    char *line = out;
    for (int i = 0; i < 2; i++) {
        char *end = strchr(line, '\n');
        *end = '\0';
        json_error_t error;
        json_t *value = json_loads(line, 0, &error);
        cr_assert_not_null(value, "not JSON: %s", line);
        json_t *update = json_object_get(value, "update");
        cr_assert_not_null(update, "%s", line);
        const char *topic = json_string_value(json_object_get(update, "topic"));
        cr_assert(topic && strncmp(topic, "all/", 4) == 0, "%s", line);
        json_decref(value);
        line = end + 1;
    }

    char *site_argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                         "--site",       "ward-a",     "--once", "--json",     NULL};
    cr_assert_eq(asy_test_run(site_argv, out, sizeof out, 10000), 0);
    cr_assert_eq(s_lines(out), 1, "output:\n%s", out);
    cr_assert(strstr(out, "site/ward-a/M1/2026-11"));

    char *metric_argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                           "--metric",     "M4",         "--once", "--json",     NULL};
    cr_assert_eq(asy_test_run(metric_argv, out, sizeof out, 10000), 0);
    cr_assert_eq(s_lines(out), 1, "output:\n%s", out);
    cr_assert(strstr(out, "all/M4/" S_PERIOD));
}

Test(watch, once_prints_the_table)
{
    s_do("SET", "all/M1/" S_PERIOD, 11);
    s_do("SET", "all/M1/2026-11", 7);
    char out[16384];
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                    "--once",       "--period",   S_PERIOD, NULL};
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 10000), 0);
    cr_assert(strstr(out, "seq 2  2 topics"), "%s", out);
    cr_assert(strstr(out, "== all  2026-27-Q3"), "%s", out);
    cr_assert(strstr(out, "M1 Referrals                                         11\n"), "%s", out);
    cr_assert_null(strstr(out, "2026-11"), "%s", out);
}

Test(watch, live_json_runs_for_a_while_and_stops_on_sigterm)
{
    s_do("SET", "all/M1/" S_PERIOD, 1);
    char out[65536];
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub, "--snapshot", s_snap,
                    "--json",       "--for",      "1.5", NULL};
    s_do("STREAM", "4", 20);
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 10000), 0);
    /* the snapshot's line and the live ones of the stream under all/ */
    cr_assert(s_lines(out) >= 2, "output:\n%s", out);

    char *dir = asy_test_tmpdir();
    char log[256];
    snprintf(log, sizeof log, "%s/watch.log", dir);
    char *table_argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub, "--snapshot",
                          s_snap,         "--interval", "50",  NULL};
    pid_t pid = asy_test_spawn(table_argv, log);
    char text[4096] = "";
    int64_t deadline = zclock_mono() + 10000; /* until it has drawn its table */
    while (!strstr(text, "advsync-watch  tcp://127.0.0.1:") && zclock_mono() < deadline) {
        zclock_sleep(20);
        FILE *file = fopen(log, "r"); /* made by the child: maybe not yet */
        if (!file)
            continue;
        size_t got = fread(text, 1, sizeof text - 1, file);
        text[got] = '\0';
        fclose(file);
    }
    int status = asy_test_stop(pid, SIGTERM, 3000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cr_assert(strstr(text, "advsync-watch  tcp://127.0.0.1:"), "%s", text);
    unlink(log);
    rmdir(dir);
    free(dir);
}

/* Runs argv to completion with stdout and stderr in text; returns the exit code. */
static int s_run_logged(char *const argv[], char *text, size_t size, int timeout_ms)
{
    char *dir = asy_test_tmpdir();
    char log[256];
    snprintf(log, sizeof log, "%s/watch.log", dir);
    int code = asy_test_wait(asy_test_spawn(argv, log), timeout_ms);
    FILE *file = fopen(log, "r");
    cr_assert_not_null(file);
    size_t got = fread(text, 1, size - 1, file);
    text[got] = '\0';
    fclose(file);
    unlink(log);
    rmdir(dir);
    free(dir);
    return code;
}

Test(watch, restricted_table_shows_breaches_of_every_site_or_of_one)
{
    s_do("RESTRICTED", NULL, 1);
    s_do("SET", "all/M1/" S_PERIOD, 11);
    /* 4 s: the breaches are sent once both have their snapshot, and a watch draws at most
       every 500 ms and not as it ends; two starting at once under ASan on a busy machine
       may take more than a second to their snapshot */
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                    "--restricted", "--period",   S_PERIOD, "--for",      "4",
                    "--metric",     "M1",         NULL};
    char *site_argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                         "--restricted", "--site",     "ward-b", "--metric",   "M1",
                         "--for",        "4",          NULL};
    char *dir = asy_test_tmpdir();
    char log[256], site_log[256];
    snprintf(log, sizeof log, "%s/all.log", dir);
    snprintf(site_log, sizeof site_log, "%s/site.log", dir);
    uint64_t requests = s_do("REQUESTS", NULL, 0);
    pid_t pid = asy_test_spawn(argv, log);
    pid_t site_pid = asy_test_spawn(site_argv, site_log);
    /* both have asked for their snapshot: a watch subscribes before it asks (Clone) */
    s_wait_count("REQUESTS", requests + 2, 10000);
    zclock_sleep(100);
    s_do("BREACH", "ward-a", 0);
    s_do("BREACH", "ward-b", 0);
    cr_assert_eq(asy_test_wait(pid, 15000), 0);
    cr_assert_eq(asy_test_wait(site_pid, 15000), 0);
    char text[16384];
    for (int i = 0; i < 2; i++) {
        FILE *file = fopen(i == 0 ? log : site_log, "r");
        cr_assert_not_null(file);
        size_t got = fread(text, 1, sizeof text - 1, file);
        text[got] = '\0';
        fclose(file);
        /* the last block drawn has both (or ward-b's only), newest first */
        const char *block = strstr(text, "== recent breaches");
        for (const char *next; block && (next = strstr(block + 1, "== recent breaches"));)
            block = next;
        cr_assert_not_null(block, "%s", text);
        const char *a = strstr(block, "\nward-a "), *b = strstr(block, "\nward-b ");
        cr_assert_not_null(b, "%s", text);
        cr_assert(
            strstr(b, "contact  case 000000000000  deadline 2024-10-07  detected 2024-10-08 01:00"),
            "%s", text);
        if (i == 0)
            cr_assert(a && b < a, "%s", text);
        else
            cr_assert_null(a, "--site ward-b showed ward-a's breach:\n%s", text);
        if (i == 0)
            cr_assert(strstr(text, "M1 Referrals"), "%s", text);
        unlink(i == 0 ? log : site_log);
    }
    rmdir(dir);
    free(dir);
}

Test(watch, for_bounds_the_whole_run)
{
    /* nobody answers: the snapshot wait (5 s otherwise) is part of the 1 s. The upper bounds
       only tell "bounded" from "5 s more"; a loaded CI machine may be slow to start a process. */
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "tcp://127.0.0.1:%d", asy_test_free_port());
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", nowhere, "--snapshot", nowhere,
                    "--json",       "--for",      "1",     NULL};
    int64_t start = zclock_mono();
    cr_assert_eq(asy_test_run(argv, NULL, 0, 10000), 0);
    int64_t took = zclock_mono() - start;
    cr_assert(took >= 900 && took < 4000, "--for 1 took %lld ms", (long long)took);

    s_do("SET", "all/M1/" S_PERIOD, 1);
    char *live_argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub, "--snapshot", s_snap,
                         "--json",       "--for",      "1.5", NULL};
    start = zclock_mono();
    cr_assert_eq(asy_test_run(live_argv, NULL, 0, 10000), 0);
    took = zclock_mono() - start;
    cr_assert(took >= 1400 && took < 4000, "--for 1.5 took %lld ms", (long long)took);
}

Test(watch, once_without_a_monitor_exits_1)
{
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "tcp://127.0.0.1:%d", asy_test_free_port());
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", nowhere, "--snapshot", nowhere, "--once", NULL};
    int64_t start = zclock_mono();
    cr_assert_eq(asy_test_run(argv, NULL, 0, 15000), 1);
    cr_assert(zclock_mono() - start >= 4500);
}

/* The snapshot endpoint derived from --endpoint (its port + 1) is named with where it came
   from: the deployer who gave the agents' ingest port by mistake was told of a port he never
   typed. */
Test(watch, a_derived_snapshot_endpoint_is_explained)
{
    char nowhere[64], out[4096];
    snprintf(nowhere, sizeof nowhere, "tcp://127.0.0.1:%d", asy_test_free_port());
    char command[512];
    snprintf(command, sizeof command, "%s --endpoint %s --once --for 0.5 2>&1", ASY_WATCH_PATH,
             nowhere);
    char *argv[] = {"/bin/sh", "-c", command, NULL};
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 15000), 1, "%s", out);
    char expected[160];
    snprintf(expected, sizeof expected, "(--endpoint %s, port + 1)", nowhere);
    cr_assert(strstr(out, expected), "%s", out);
    cr_assert(strstr(out, "not the agents' ingest port"), "%s", out);
}

Test(watch, bad_flags_exit_2)
{
    char *cases[][4] = {
        {ASY_WATCH_PATH, "--bogus", NULL, NULL},    {ASY_WATCH_PATH, "--interval", "soon", NULL},
        {ASY_WATCH_PATH, "--for", "-1", NULL},      {ASY_WATCH_PATH, "--site", "bad/site", NULL},
        {ASY_WATCH_PATH, "--metric", "M99", NULL},  {ASY_WATCH_PATH, "--once", "extra", NULL},
        {ASY_WATCH_PATH, "--endpoint", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(asy_test_run(cases[i], NULL, 0, 5000), 2, "case %zu (%s)", i, cases[i][1]);

    /* bad values: exit 2 with a message naming the flag and the value */
    char *values[][2] = {
        {"--period", "2026-13"},
        {"--period", "2026-00"},
        {"--period", "2026-28-Q1"},
        {"--period", "2026-27-Q5"},
        {"--period", "2026-28"},
        {"--period", "26-27"},
        {"--period", "nowish"},
        {"--by", "colour"},
        {"--by", "total"},
        {"--interval", "0"},
        {"--interval", "49"},
        {"--interval", "100.5"},
        /* decimal only (review: strtod took these as 16 s, 1000 s and 100 ms) */
        {"--for", "0x10"},
        {"--for", "1e3"},
        {"--for", "1e308"},
        {"--interval", " 100"},
        {"--endpoint", "ipc:///tmp/advsync-monitor"},
        {"--endpoint", "foo:1"},
        {"--snapshot", "foo:1"},
        {"--endpoint", "tcp://127.0.0.1:99999"},
        {"--endpoint", "tcp://"},
    };
    char text[8192];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *argv[] = {ASY_WATCH_PATH, values[i][0], values[i][1], "--once", NULL};
        cr_assert_eq(s_run_logged(argv, text, sizeof text, 5000), 2, "%s %s", values[i][0],
                     values[i][1]);
        char expected[128];
        snprintf(expected, sizeof expected, "advsync-watch: %s: '%s' ", values[i][0], values[i][1]);
        cr_assert(strstr(text, expected), "%s %s said:\n%s", values[i][0], values[i][1], text);
        cr_assert(strstr(text, "usage: advsync-watch"), "%s", text);
    }
    cr_assert(strstr(text, "needs a host and a port (tcp://HOST:PORT)"), "%s", text);

    /* the forms the README lists are accepted (the program then runs: --once against the
       test monitor) */
    s_do("SET", "all/M1/" S_PERIOD, 1);
    const char *good[][2] = {{"--period", "2026-11"},    {"--period", "2026-27"},
                             {"--period", "2026-27-Q3"}, {"--period", "now"},
                             {"--period", "2099-00-Q4"}, {"--by", ""},
                             {"--by", "age_band"},       {"--interval", "50"}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *argv[] = {
            ASY_WATCH_PATH,     "--endpoint",       s_pub, "--snapshot", s_snap, "--once",
            (char *)good[i][0], (char *)good[i][1], NULL};
        cr_assert_eq(asy_test_run(argv, NULL, 0, 10000), 0, "%s '%s'", good[i][0], good[i][1]);
    }

    char out[4096];
    char *help[] = {ASY_WATCH_PATH, "--help", NULL};
    cr_assert_eq(asy_test_run(help, out, sizeof out, 5000), 0);
    cr_assert(strstr(out, "usage: advsync-watch"));
    cr_assert(strstr(out, "--version"));
    char *version[] = {ASY_WATCH_PATH, "--version", NULL};
    cr_assert_eq(asy_test_run(version, out, sizeof out, 5000), 0);
    cr_assert_str_eq(out, "advsync-watch " ASY_VERSION_STRING " (monitor protocol 1)\n");
}

/* --json keeps stdout to JSON lines: nothing matching is said on stderr, not in the lines. */
Test(watch, once_json_explains_an_empty_answer_on_stderr)
{
    s_do("SET", "all/M1/" S_PERIOD, 11);
    char *argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                    "--site",       "ward-z",     "--once", "--json",     NULL};
    char out[4096];
    cr_assert_eq(asy_test_run(argv, out, sizeof out, 10000), 0);
    cr_assert_str_eq(out, "");
    char text[4096];
    cr_assert_eq(s_run_logged(argv, text, sizeof text, 10000), 0);
    cr_assert(strstr(text, "the snapshot holds no figures for --site ward-z --metric (any) "
                           "--period (any)"),
              "%s", text);
    cr_assert_null(strstr(text, "waiting for updates"), "%s", text);
    /* figures that match: no note */
    char *all_argv[] = {ASY_WATCH_PATH, "--endpoint", s_pub,    "--snapshot", s_snap,
                        "--metric",     "M1",         "--once", "--json",     NULL};
    cr_assert_eq(s_run_logged(all_argv, text, sizeof text, 10000), 0);
    cr_assert_null(strstr(text, "holds no figures"), "%s", text);
    cr_assert(strstr(text, "all/M1/" S_PERIOD), "%s", text);
}
