/*  clone_pub.c: one ASM/1 stream's sockets, sequence and topic cache. See clone_pub.h.  */
#include "clone_pub.h"

#include "codec.h"
#include "log.h"

#include <inttypes.h>
#include <string.h>

#define S_SNDHWM 100000

/* A topic's last value: as published (with its seq), and with seq and as_of zeroed, which is
   what tells a real change from a re-render of the same figures. */
typedef struct {
    uint64_t seq;
    uint8_t *data;
    size_t size;
    uint8_t *content;
    size_t content_size;
} s_entry_t;

struct asy_clone_pub {
    zsock_t *xpub;
    zsock_t *router;
    uint64_t seq;
    zhashx_t *topics;     /* topic -> s_entry_t */
    int exact;            /* the stream's: 1 exact, 0 public, -1 not said */
    uint64_t incarnation; /* the broker process's, on every message sent (0: not said) */
    uint64_t abandoned;   /* snapshot replies not sent whole: their peer did not read */
    zlist_t *held;        /* updates of a pass, sent together by asy_clone_pub_release */
    bool holding;
};

static void s_free_entry(void **item)
{
    s_entry_t *entry = *item;
    if (entry) {
        free(entry->data);
        free(entry->content);
    }
    free(entry);
    *item = NULL;
}

static zsock_t *s_bind(int type, const char *endpoint, char *resolved, size_t size)
{
    zsock_t *socket = zsock_new(type);
    if (!socket)
        return NULL;
    zsock_set_linger(socket, 0);
    if (type == ZMQ_ROUTER) {
        /* a reply is one message per topic; a peer that does not read may hold S_SNDHWM of
           them queued, no more: then its reply is abandoned, never cut (ROUTER_MANDATORY:
           a full queue is an error to the sender, not a silent drop) */
        zsock_set_sndhwm(socket, S_SNDHWM);
        zsock_set_router_mandatory(socket, 1);
        /* a request is a subtree of at most 159 bytes: a peer sending more is disconnected
           before anything of it is decoded (PROTOCOL.md 11 rule 6) */
        zsock_set_maxmsgsize(socket, ASY_SNAPSHOT_REQUEST_MAX);
    }
    if (type == ZMQ_XPUB) {
        zsock_set_sndhwm(socket, S_SNDHWM);
        zsock_set_xpub_verbose(socket, 1);
    }
    if (zsock_bind(socket, "%s", endpoint) < 0) {
        zsock_destroy(&socket);
        return NULL;
    }
    char *last = zsock_last_endpoint(socket); /* ours to free */
    snprintf(resolved, size, "%s", last ? last : endpoint);
    zstr_free(&last);
    return socket;
}

asy_clone_pub_t *asy_clone_pub_new(const char *pub_endpoint, const char *snapshot_endpoint,
                                   char resolved[2][256], char *error, size_t error_size)
{
    asy_clone_pub_t *self = calloc(1, sizeof *self);
    if (self)
        self->exact = -1;
    if (!self || !(self->topics = zhashx_new())) {
        snprintf(error, error_size, "out of memory");
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->topics, s_free_entry);
    if (!(self->held = zlist_new())) {
        snprintf(error, error_size, "out of memory");
        asy_clone_pub_destroy(&self);
        return NULL;
    }
    const char *endpoints[2] = {pub_endpoint, snapshot_endpoint};
    zsock_t **sockets[2] = {&self->xpub, &self->router};
    for (int i = 0; i < 2; i++) {
        if (asy_ipc_bind_refused(endpoints[i], error, error_size)) {
            asy_clone_pub_destroy(&self);
            return NULL;
        }
        *sockets[i] =
            s_bind(i ? ZMQ_ROUTER : ZMQ_XPUB, endpoints[i], resolved[i], sizeof resolved[i]);
        if (!*sockets[i]) {
            asy_bind_failed(endpoints[i], error, error_size);
            asy_clone_pub_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void asy_clone_pub_destroy(asy_clone_pub_t **self_p)
{
    asy_clone_pub_t *self = *self_p;
    if (!self)
        return;
    for (zmsg_t *msg = self->held ? zlist_pop(self->held) : NULL; msg;
         msg = zlist_pop(self->held))
        zmsg_destroy(&msg);
    zlist_destroy(&self->held);
    zsock_destroy(&self->xpub);
    zsock_destroy(&self->router);
    zhashx_destroy(&self->topics);
    free(self);
    *self_p = NULL;
}

zsock_t *asy_clone_pub_xpub(const asy_clone_pub_t *self)
{
    return self->xpub;
}

zsock_t *asy_clone_pub_router(const asy_clone_pub_t *self)
{
    return self->router;
}

/* Sends what is held, in the order it was made. */
static void s_flush(asy_clone_pub_t *self)
{
    for (zmsg_t *msg = zlist_pop(self->held); msg; msg = zlist_pop(self->held))
        zmsg_send(&msg, self->xpub);
}

/* Sends [topic][data] on the XPUB; an update (may_hold) is kept instead while holding. What
   is held always goes before anything sent: it has the smaller sequence numbers (and a
   heartbeat's seq counts what was sent before it). A message that cannot be kept is sent. */
static void s_send(asy_clone_pub_t *self, const char *topic, const uint8_t *data, size_t size,
                   bool may_hold)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, topic);
    zmsg_addmem(msg, data, size);
    if (may_hold && self->holding && zlist_append(self->held, msg) == 0)
        return;
    s_flush(self);
    zmsg_send(&msg, self->xpub);
}

void asy_clone_pub_hold(asy_clone_pub_t *self)
{
    self->holding = true;
}

void asy_clone_pub_release(asy_clone_pub_t *self)
{
    self->holding = false;
    s_flush(self);
}

bool asy_clone_pub_update(asy_clone_pub_t *self, const char *topic, asy_mmsg_t *msg)
{
    s_entry_t *entry = zhashx_lookup(self->topics, topic);
    if (!entry) {
        entry = calloc(1, sizeof *entry);
        if (!entry)
            return false;
        zhashx_insert(self->topics, topic, entry);
    }
    uint64_t seq = msg->seq;
    int64_t as_of = msg->update.as_of_us;
    msg->incarnation = self->incarnation;
    msg->seq = 0;
    msg->update.as_of_us = 0;
    uint8_t *content = NULL, *data = NULL;
    size_t content_size = 0, size = 0;
    bool changed = asy_mmsg_encode(msg, &content, &content_size) == 0 &&
                   !(entry->content && entry->content_size == content_size &&
                     memcmp(entry->content, content, content_size) == 0);
    msg->seq = self->seq + 1;
    msg->update.as_of_us = as_of;
    bool sent = changed && asy_mmsg_encode(msg, &data, &size) == 0;
    msg->seq = seq;
    if (!sent) {
        free(content);
        return false;
    }
    self->seq++;
    s_send(self, topic, data, size, true);
    free(entry->content);
    free(entry->data);
    *entry = (s_entry_t){self->seq, data, size, content, content_size};
    return true;
}

bool asy_clone_pub_notice(asy_clone_pub_t *self, const char *topic, asy_mmsg_t *msg)
{
    uint64_t seq = msg->seq;
    msg->seq = self->seq + 1;
    msg->incarnation = self->incarnation;
    uint8_t *data;
    size_t size;
    bool sent = asy_mmsg_encode(msg, &data, &size) == 0;
    msg->seq = seq;
    if (!sent)
        return false;
    self->seq++;
    s_send(self, topic, data, size, false);
    free(data);
    return true;
}

void asy_clone_pub_set_exact(asy_clone_pub_t *self, bool exact)
{
    self->exact = exact;
}

void asy_clone_pub_set_incarnation(asy_clone_pub_t *self, uint64_t incarnation)
{
    self->incarnation = incarnation;
}

void asy_clone_pub_heartbeat(asy_clone_pub_t *self, int64_t sent_at_us, int interval_ms)
{
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_HEARTBEAT);
    msg.seq = self->seq;
    msg.incarnation = self->incarnation;
    msg.exact = self->exact;
    msg.sent_at_us = sent_at_us;
    msg.interval_ms = (uint32_t)interval_ms;
    uint8_t *data;
    size_t size;
    if (asy_mmsg_encode(&msg, &data, &size) == 0) {
        s_send(self, ASY_HEARTBEAT_TOPIC, data, size, false);
        free(data);
    }
}

/* Sends [id][topic][body] on the ROUTER without waiting. Returns 0, or -1 if the peer's
   queue is full or the peer is gone (nothing of the message sent: the ROUTER takes or refuses
   a message at its first part). */
static int s_reply(zsock_t *router, zframe_t *id, const char *topic, const uint8_t *data,
                   size_t size)
{
    void *handle = zsock_resolve(router);
    if (zmq_send(handle, zframe_data(id), zframe_size(id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    zmq_send(handle, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(handle, data, size, ZMQ_DONTWAIT);
    return 0;
}

/* Sends msg (SnapshotEnd or MonitorError, topic "") to id with the stream's incarnation.
   Returns -1 if the peer's queue is full or the peer is gone, else 0 (also when it cannot
   be encoded: out of memory, nothing sent). */
static int s_reply_message(asy_clone_pub_t *self, zframe_t *id, asy_mmsg_t *msg)
{
    msg->incarnation = self->incarnation;
    uint8_t *data;
    size_t size;
    if (asy_mmsg_encode(msg, &data, &size) != 0)
        return 0;
    int rc = s_reply(self->router, id, "", data, size);
    free(data);
    return rc;
}

/* A reply that could not go out whole: the rest, SnapshotEnd included, is not sent, so the
   peer times out and asks again (PROTOCOL.md 11 rule 6). Said at the first and every 1000th. */
static void s_abandon(asy_clone_pub_t *self, uint32_t sent)
{
    self->abandoned++;
    if (self->abandoned % 1000 == 1)
        asy_warn("monitor: a snapshot reply abandoned after %" PRIu32 " entries: the peer does "
                 "not read (%" PRIu64 " so far)",
                 sent, self->abandoned);
}

/* The entries of subtree, then SnapshotEnd, to id; abandoned at the first message that
   cannot go out. */
static void s_send_snapshot(asy_clone_pub_t *self, zframe_t *id, const char *subtree)
{
    uint32_t sent = 0;
    size_t prefix = strlen(subtree);
    for (s_entry_t *entry = zhashx_first(self->topics); entry; entry = zhashx_next(self->topics)) {
        const char *name = zhashx_cursor(self->topics);
        if (!entry->data || strncmp(name, subtree, prefix) != 0)
            continue;
        if (s_reply(self->router, id, name, entry->data, entry->size) != 0) {
            s_abandon(self, sent);
            return;
        }
        sent++;
    }
    asy_mmsg_t end;
    asy_mmsg_init(&end, ASY_MMSG_SNAPSHOT_END);
    end.seq = self->seq;
    end.topics = sent;
    end.exact = self->exact;
    if (s_reply_message(self, id, &end) != 0)
        s_abandon(self, sent);
}

void asy_clone_pub_serve_snapshot(asy_clone_pub_t *self)
{
    zmsg_t *request = zmsg_recv(self->router);
    if (!request)
        return;
    zframe_t *id = zmsg_pop(request);
    zframe_t *body = zmsg_pop(request);
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_NONE);
    /* a message of another kind (an update's cells) is released too: nothing of a refused
       request is kept */
    bool ok = id && body && zmsg_size(request) == 0 &&
              asy_mmsg_decode(&msg, zframe_data(body), zframe_size(body)) == 0 &&
              msg.kind == ASY_MMSG_SNAPSHOT_REQUEST;
    if (ok) {
        s_send_snapshot(self, id, msg.subtree);
    } else if (id) {
        asy_mmsg_t error;
        asy_mmsg_init(&error, ASY_MMSG_ERROR);
        snprintf(error.reason, sizeof error.reason,
                 "expected one frame holding a MonitorMessage with a SnapshotRequest "
                 "(its strings without NUL bytes)");
        s_reply_message(self, id, &error); /* a full queue: not answered */
    }
    asy_mmsg_release(&msg);
    zframe_destroy(&id);
    zframe_destroy(&body);
    zmsg_destroy(&request);
}

void asy_clone_pub_take_subscription(asy_clone_pub_t *self)
{
    zmsg_t *msg = zmsg_recv(self->xpub);
    zmsg_destroy(&msg);
}
