/*  ingest.c: one ingest worker of the broker (see ingest.h and proto/PROTOCOL.md). The front
    (front.c) owns the ROUTER and hands each worker, over an inproc PAIR, every message of the
    connections that hash to it, routing id first, exactly as the ROUTER delivers them; the
    worker answers the same way. Each worker owns one store connection and shares nothing.

    One message at a time, synchronously: a PUBLISH is decoded, checked event by event, written
    in one transaction and only then acknowledged. Being synchronous is what makes $TERM safe:
    the batch in hand is always committed and answered before the actor looks at its pipe.

    Sessions are keyed by ZeroMQ routing id. A session caches the agent's committed seq (its
    high-water mark) so replays are filtered before PostgreSQL sees them; the database's
    compare-and-set in asy_store_write_batch stays the final guard, so a stale cache (another
    broker moved the mark) costs one re-read, never a double write.

    This file is the worker's loop: the actor, its sessions, the replies and the database
    back-off every handler shares, and the dispatch of each message. A HELLO is answered in
    ingest_hello.c, a PUBLISH in ingest_publish.c; ingest_private.h is what they share.  */
#include "ingest_private.h"

#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STATS_MS 10000
#define S_SESSION_IDLE_MS (30 * 60 * 1000)

static void s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

/* Copies untrusted text for a log line or a reason: printable ASCII only, at most 64 chars. */
const char *asy_ingest_printable(const char *text, char *out, size_t size)
{
    size_t used = 0;
    for (; text && *text && used + 1 < size && used < 64; text++)
        out[used++] = (*text >= 0x20 && *text < 0x7f) ? *text : '?';
    out[used] = 0;
    return text ? out : "(absent)";
}

/* --------------------------------------------------------------------------------------------
   Replies */

void asy_ingest_send(asy_ingest_worker_t *self, const asy_frame_t *frame)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (asy_frame_encode(frame, &data, &size) != 0) {
        asy_error("cannot encode a reply of type %d", frame->type);
        return;
    }
    zframe_t *body = zframe_new(data, size);
    free(data);
    zframe_send(&self->peer, self->front, ZFRAME_MORE | ZFRAME_REUSE);
    zframe_send(&body, self->front, 0);
}

const char *asy_ingest_who(asy_ingest_worker_t *self)
{
    asy_ingest_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
    return session ? session->agent_id : self->hello_agent ? self->hello_agent : self->peer_key;
}

void asy_ingest_nack(asy_ingest_worker_t *self, int code, uint64_t first_seq, uint64_t expected_seq,
                     uint32_t retry_after_ms, const char *format, ...)
{
    char reason[512];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    asy_frame_t frame = {.type = ASY_FRAME_NACK, .version = ASY_PROTOCOL_VERSION};
    frame.u.nack = (asy_nack_t){.code = code, .reason = reason, .expected_seq = expected_seq,
                                .first_seq = first_seq, .retry_after_ms = retry_after_ms};
    asy_ingest_send(self, &frame);
    if (code > 0 && code < ASY_INGEST_CODES)
        self->counters.nacks[code]++;
    /* A window of batches in flight gets one NACK each (16 NOT_WELCOMED after a restart): a
       NACK of the same code to the same connection within a second of the last warning is
       debug (the counters logged every 10 s hold them all). */
    int64_t now = zclock_mono();
    bool repeat = code == self->last_nack_code && now - self->last_nack_ms < 1000 &&
                  self->peer_key && strcmp(self->peer_key, self->last_nack_peer) == 0;
    if (repeat) {
        asy_debug("NACK %s to %s: %s", asy_code_name(code), asy_ingest_who(self), reason);
        return;
    }
    asy_warn("NACK %s to %s: %s", asy_code_name(code), asy_ingest_who(self), reason);
    self->last_nack_code = code; /* the second counts from this warning, not from repeats */
    self->last_nack_ms = now;
    snprintf(self->last_nack_peer, sizeof self->last_nack_peer, "%s",
             self->peer_key ? self->peer_key : "");
}

/* --------------------------------------------------------------------------------------------
   Database availability: after a failure the broker answers RETRY_LATER without touching the
   database until the back-off has passed, then tries one reconnect. */

uint32_t asy_ingest_db_failed(asy_ingest_worker_t *self, const char *what, int rc)
{
    uint32_t wait = self->retry_after_ms;
    asy_error("worker %d: database %s failed (%s): %s; answering RETRY_LATER for %u ms",
              self->index, what, asy_strerror(rc), asy_store_errmsg(self->store), wait);
    self->db_down = true;
    self->next_reconnect_ms = zclock_mono() + wait;
    self->retry_after_ms = wait * 2 > ASY_INGEST_RETRY_MAX_MS ? ASY_INGEST_RETRY_MAX_MS : wait * 2;
    return wait;
}

void asy_ingest_db_ok(asy_ingest_worker_t *self)
{
    self->retry_after_ms = ASY_INGEST_RETRY_FIRST_MS;
}

/* Returns 0 if the database may be used now, else the milliseconds to tell the agent. */
uint32_t asy_ingest_db_wait(asy_ingest_worker_t *self)
{
    if (!self->db_down)
        return 0;
    int64_t now = zclock_mono();
    if (now < self->next_reconnect_ms)
        return (uint32_t)(self->next_reconnect_ms - now) + 1;
    if (asy_store_reconnect(self->store) != 0)
        return asy_ingest_db_failed(self, "reconnect", ASY_ERETRY);
    asy_info("worker %d: database reachable again", self->index);
    self->db_down = false;
    return 0;
}

/* Stores bytes that never became a batch, before the NACK goes out, so that an agent that
   sees the NACK can rely on the quarantine row. Returns 0, or the milliseconds to answer
   RETRY_LATER with when the row cannot be written (the database is down or fails): refused
   bytes are never dropped unrecorded, the sender keeps them and sends them again. */
static uint32_t s_quarantine(asy_ingest_worker_t *self, int code, const char *reason,
                             const uint8_t *data, size_t size)
{
    uint32_t wait = asy_ingest_db_wait(self);
    if (wait != 0)
        return wait;
    asy_ingest_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
    /* the store keeps the first 64 KiB and says so in the reason */
    int rc =
        asy_store_quarantine_frame(self->store, session ? session->agent_id : NULL,
                                   session ? session->site_id : NULL, code, reason, data, size);
    if (rc == ASY_EDB) {
        /* up, but refusing the row (a defect): asking for the frame again would not help */
        asy_error("frame from %s not quarantined, the database refused the row (%s): %s",
                  asy_ingest_who(self), asy_store_errmsg(self->store), reason);
        return 0;
    }
    if (rc == ASY_ERETRY && asy_store_connected(self->store))
        return ASY_INGEST_RETRY_FIRST_MS; /* a transient conflict */
    if (rc != 0)
        return asy_ingest_db_failed(self, "quarantine", rc);
    asy_ingest_db_ok(self);
    self->counters.frames++;
    return 0;
}

/* Quarantines a refused frame and NACKs it with the same code and reason; RETRY_LATER instead
   if it cannot be quarantined now. */
static void s_refuse_frame(asy_ingest_worker_t *self, int code, const uint8_t *data, size_t size,
                           const char *reason)
{
    uint32_t wait = s_quarantine(self, code, reason, data, size);
    if (wait != 0) { /* logged as a NACK (one warning per run of them) */
        asy_ingest_nack(
            self, ASY_CODE_RETRY_LATER, 0, 0, wait,
            "database unavailable (this frame is refused, but cannot be quarantined now): "
            "retry in %u ms",
            wait);
        return;
    }
    asy_ingest_nack(self, code, 0, 0, 0, "%s", reason);
}

/* --------------------------------------------------------------------------------------------
   Sessions */

/* One session per agent: a new HELLO from the agent replaces the sessions of its older
   connections (a reconnecting DEALER gets a new routing id). */
asy_ingest_session_t *asy_ingest_session_start(asy_ingest_worker_t *self, const asy_hello_t *hello,
                                               uint64_t committed,
                                               const asy_store_origin_t *origins,
                                               size_t origin_count)
{
    zlistx_t *stale = zlistx_new();
    zlistx_set_destructor(stale, s_free_item);
    for (asy_ingest_session_t *old = zhashx_first(self->sessions); old;
         old = zhashx_next(self->sessions))
        if (strcmp(old->agent_id, hello->agent_id) == 0)
            zlistx_add_end(stale, strdup((const char *)zhashx_cursor(self->sessions)));
    for (char *key = zlistx_first(stale); key; key = zlistx_next(stale))
        zhashx_delete(self->sessions, key);
    zlistx_destroy(&stale);

    asy_ingest_session_t *session = calloc(1, sizeof *session);
    if (!session)
        return NULL;
    snprintf(session->agent_id, sizeof session->agent_id, "%s", hello->agent_id);
    snprintf(session->site_id, sizeof session->site_id, "%s", hello->site_id);
    session->epoch = hello->epoch;
    session->committed = committed;
    memcpy(session->origins, origins, origin_count * sizeof *origins);
    session->origin_count = origin_count;
    session->last_seen_ms = zclock_mono();
    zhashx_update(self->sessions, self->peer_key, session);
    return session;
}

/* --------------------------------------------------------------------------------------------
   One message from the ROUTER, as relayed by the front */

static void s_on_frame(asy_ingest_worker_t *self, const uint8_t *data, size_t size)
{
    asy_frame_t frame = {0};
    int decoded = asy_frame_decode(&frame, data, size);
    if (decoded != 0) {
        char reason[160];
        if (decoded == ASY_EINVAL)
            snprintf(reason, sizeof reason, "%s: holds a NUL byte; strings hold none",
                     frame.nul_field);
        else
            snprintf(reason, sizeof reason,
                     "%zu bytes are not an advsync.v1.Frame with a known kind (HELLO, PUBLISH, "
                     "HEARTBEAT)",
                     size);
        s_refuse_frame(self, ASY_CODE_MALFORMED_FRAME, data, size, reason);
    } else if (frame.type != ASY_FRAME_HELLO && frame.version != ASY_PROTOCOL_VERSION)
        asy_ingest_nack(self, ASY_CODE_VERSION, 0, 0, 0,
                        "frame version %u; this broker speaks %d (send HELLO to negotiate)",
                        frame.version, ASY_PROTOCOL_VERSION);
    else if (frame.type == ASY_FRAME_HELLO)
        asy_ingest_on_hello(self, &frame.u.hello);
    else if (frame.type == ASY_FRAME_PUBLISH)
        asy_ingest_on_publish(self, &frame.u.publish);
    else if (frame.type == ASY_FRAME_HEARTBEAT) {
        asy_ingest_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
        if (session)
            session->last_seen_ms = zclock_mono();
        asy_frame_t reply = {.type = ASY_FRAME_HEARTBEAT, .version = ASY_PROTOCOL_VERSION};
        reply.u.heartbeat.sent_at_ms = frame.u.heartbeat.sent_at_ms;
        asy_ingest_send(self, &reply);
    }
    else if (frame.type == ASY_FRAME_NACK)  /* never answer a NACK: no NACK ping-pong */
        asy_warn("NACK from %s ignored: the broker takes HELLO, PUBLISH, HEARTBEAT",
                 asy_ingest_who(self));
    else {
        char reason[96];
        snprintf(reason, sizeof reason, "%s frame is sent by the broker, not to it",
                 frame.type == ASY_FRAME_WELCOME ? "a WELCOME"
                 : frame.type == ASY_FRAME_ACK   ? "an ACK"
                                                 : "this");
        s_refuse_frame(self, ASY_CODE_MALFORMED_FRAME, data, size, reason);
    }
    asy_frame_release(&frame);
}

/* Refuses a message of several parts: the parts are quarantined one after the other in one
   row (none is dropped), and the reason says how to cut them apart again. */
static void s_refuse_parts(asy_ingest_worker_t *self, zmsg_t *msg, size_t parts)
{
    size_t total = 0;
    for (zframe_t *part = zmsg_first(msg); part; part = zmsg_next(msg))
        total += zframe_size(part);
    zframe_t *first = zmsg_first(msg);
    char reason[200];
    snprintf(reason, sizeof reason,
             "message has %zu parts; the protocol sends exactly one Frame per message (the"
             " parts follow each other here: %zu bytes in all, the first %zu)",
             parts, total, zframe_size(first));
    /* the store keeps the first 64 KiB (and says the payload was truncated from total) */
    size_t room = total < ASY_MAX_EVENT_BYTES ? total : ASY_MAX_EVENT_BYTES;
    uint8_t *kept = malloc(room ? room : 1);
    if (!kept) { /* out of memory: the first part rather than nothing */
        s_refuse_frame(self, ASY_CODE_MALFORMED_FRAME, zframe_data(first), zframe_size(first),
                       reason);
        return;
    }
    size_t at = 0;
    for (zframe_t *part = zmsg_first(msg); part && at < room; part = zmsg_next(msg)) {
        size_t take = zframe_size(part) < room - at ? zframe_size(part) : room - at;
        memcpy(kept + at, zframe_data(part), take);
        at += take;
    }
    s_refuse_frame(self, ASY_CODE_MALFORMED_FRAME, kept, total, reason);
    free(kept);
}

/* Size and shape checks before any decoding. Returns the single body part, or NULL after
   having refused the message. */
static zframe_t *s_admit(asy_ingest_worker_t *self, zmsg_t *msg)
{
    size_t parts = zmsg_size(msg);
    zframe_t *body = zmsg_first(msg);
    char reason[160];
    for (zframe_t *part = body; part; part = zmsg_next(msg))
        if (zframe_size(part) > ASY_MAX_FRAME_BYTES) {
            snprintf(reason, sizeof reason, "frame of %zu bytes; the limit is %u",
                     zframe_size(part), ASY_MAX_FRAME_BYTES);
            s_refuse_frame(self, ASY_CODE_FRAME_TOO_LARGE, zframe_data(part), zframe_size(part),
                           reason);
            return NULL;
        }
    if (parts != 1) {
        s_refuse_parts(self, msg, parts);
        return NULL;
    }
    return body;
}

static void s_on_front(asy_ingest_worker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->front);
    if (!msg)
        return;
    self->peer = zmsg_pop(msg);
    if (self->peer && zmsg_size(msg) > 0) {
        self->peer_key = zframe_strhex(self->peer);
        zframe_t *body = s_admit(self, msg);
        if (body)
            s_on_frame(self, zframe_data(body), zframe_size(body));
        zstr_free(&self->peer_key);
    }
    zframe_destroy(&self->peer);
    zmsg_destroy(&msg);
}

/* --------------------------------------------------------------------------------------------
   Counters and housekeeping */

static void s_log_counters(asy_ingest_worker_t *self)
{
    const asy_ingest_counters_t *c = &self->counters;
    char nacks[512] = "";
    size_t used = 0;
    for (int code = 1; code < ASY_INGEST_CODES && used < sizeof nacks; code++)
        if (c->nacks[code])
            used += (size_t)snprintf(nacks + used, sizeof nacks - used, " %s=%" PRIu64,
                                     asy_code_name(code), c->nacks[code]);
    asy_info("worker %d counters: batches=%" PRIu64 " events=%" PRIu64 " duplicates=%" PRIu64
             " quarantined=%" PRIu64 " frames_quarantined=%" PRIu64 " sessions=%zu nacks:%s",
             self->index, c->batches, c->events, c->duplicates, c->quarantined, c->frames,
             zhashx_size(self->sessions), used ? nacks : " none");
    self->logged = self->counters;
}

static void s_expire_sessions(asy_ingest_worker_t *self, int64_t now)
{
    zlistx_t *idle = zlistx_new();
    zlistx_set_destructor(idle, s_free_item);
    for (asy_ingest_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (now - s->last_seen_ms > S_SESSION_IDLE_MS)
            zlistx_add_end(idle, strdup((const char *)zhashx_cursor(self->sessions)));
    for (char *key = zlistx_first(idle); key; key = zlistx_next(idle))
        zhashx_delete(self->sessions, key);
    zlistx_destroy(&idle);
}

static void s_tick(asy_ingest_worker_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->next_stats_ms)
        return;
    self->next_stats_ms = now + self->stats_interval_ms;
    if (memcmp(&self->counters, &self->logged, sizeof self->counters) != 0)
        s_log_counters(self);
    s_expire_sessions(self, now);
    /* reconnect in the background once the back-off has passed; then settle a batch whose
       COMMIT went unanswered, if its agent has not come back with a PUBLISH or HELLO */
    if (asy_ingest_db_wait(self) == 0 && self->doubt.pending) {
        int rc = asy_ingest_settle_doubt(self);
        if (rc != 0)
            asy_ingest_db_failed(self, "committed-seq read", rc);
    }
}

/* --------------------------------------------------------------------------------------------
   Actor life cycle */

static void s_on_pipe(asy_ingest_worker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->pipe);
    char *command = msg ? zmsg_popstr(msg) : NULL;
    if (!msg || (command && streq(command, "$TERM")))
        self->terminated = true;
    else
        asy_warn("ingest worker %d: unknown actor command %s", self->index,
                 command ? command : "(empty)");
    zstr_free(&command);
    zmsg_destroy(&msg);
}

/* Sleeps up to ms, serving the pipe. Returns true once $TERM has arrived. */
static bool s_pause(asy_ingest_worker_t *self, int ms)
{
    zpoller_t *poller = zpoller_new(self->pipe, NULL);
    if (!poller) {
        zclock_sleep(ms); /* out of memory: $TERM is served at the next pause */
        return self->terminated;
    }
    zpoller_set_nonstop(poller, true);
    if (zpoller_wait(poller, ms) == self->pipe)
        s_on_pipe(self);
    zpoller_destroy(&poller);
    return self->terminated;
}

static int s_connect_store(asy_ingest_worker_t *self)
{
    uint32_t wait = ASY_INGEST_RETRY_FIRST_MS;
    for (int attempt = 1; !self->terminated; attempt++) {
        char error[512] = "";
        self->store = asy_store_new(self->conninfo, error, sizeof error);
        if (self->store && self->monitor) {
            asy_store_set_case_sink(self->store, asy_ingest_collect_case, self);
            asy_store_set_outcome_sink(self->store, asy_ingest_collect_outcome, self);
        }
        if (self->store) {
            char label[16];
            snprintf(label, sizeof label, "worker %d", self->index);
            asy_store_set_label(self->store, label);
            asy_info("worker %d: database connected and migrated (attempt %d)", self->index,
                     attempt);
            return 0;
        }
        asy_warn("worker %d: database not ready (attempt %d): %s; retrying in %u ms", self->index,
                 attempt, error, wait);
        if (s_pause(self, (int)wait))
            break;
        wait = wait * 2 > ASY_INGEST_RETRY_MAX_MS ? ASY_INGEST_RETRY_MAX_MS : wait * 2;
    }
    return -1;
}

/* No high-water mark on the link: the front must never block on a busy worker (it would stop
   relaying the other workers' replies); the agents' windows bound what can queue. */
static int s_link(asy_ingest_worker_t *self)
{
    self->front = zsock_new(ZMQ_PAIR);
    if (!self->front)
        return ASY_EIO;
    zsock_set_sndhwm(self->front, 0);
    zsock_set_rcvhwm(self->front, 0);
    if (zsock_connect(self->front, "%s", self->front_endpoint) < 0)
        return ASY_EIO;
    self->poller = zpoller_new(self->pipe, self->front, NULL);
    if (!self->poller)
        return ASY_EIO;
    if (self->monitor_endpoint) {
        /* no high-water mark: the rows of a committed batch must never be dropped */
        self->monitor = zsock_new(ZMQ_PUSH);
        if (!self->monitor)
            return ASY_EIO;
        zsock_set_sndhwm(self->monitor, 0);
        if (zsock_connect(self->monitor, "%s", self->monitor_endpoint) < 0)
            return ASY_EIO;
    }
    zpoller_set_nonstop(self->poller, true);   /* only $TERM stops us, not zsys_interrupted */
    return 0;
}

static void s_serve(asy_ingest_worker_t *self)
{
    while (!self->terminated) {
        void *which = zpoller_wait(self->poller, 1000);
        if (which == self->pipe)
            s_on_pipe(self);
        else if (which == self->front)
            s_on_front(self);
        s_tick(self);
    }
}

static asy_ingest_worker_t *s_ingest_new(zsock_t *pipe, const asy_ingest_worker_args_t *args)
{
    asy_ingest_worker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->index = args->index;
    self->front_endpoint = strdup(args->front_endpoint);
    self->conninfo = strdup(args->conninfo ? args->conninfo : "");
    self->stats_interval_ms = args->stats_interval_ms > 0 ? args->stats_interval_ms : S_STATS_MS;
    self->sessions = zhashx_new();
    self->retry_after_ms = ASY_INGEST_RETRY_FIRST_MS;
    self->monitor_endpoint = args->monitor ? strdup(args->monitor) : NULL;
    if (!self->front_endpoint || !self->conninfo || !self->sessions ||
        (args->monitor && !self->monitor_endpoint)) {
        free(self->monitor_endpoint);
        free(self->front_endpoint);
        free(self->conninfo);
        zhashx_destroy(&self->sessions);
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->sessions, s_free_item);
    return self;
}

static void s_ingest_destroy(asy_ingest_worker_t **self_p)
{
    asy_ingest_worker_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy(&self->poller);
    zsock_destroy(&self->front);   /* inproc: replies already sent stay readable by the front */
    zsock_destroy(&self->monitor);
    free(self->monitor_endpoint);
    free(self->rows.views);
    free(self->rows.outcomes);
    free(self->doubt.rows.views);
    free(self->doubt.rows.outcomes);
    asy_store_destroy(&self->store);
    zhashx_destroy(&self->sessions);
    free(self->items);
    free(self->rejections);
    free(self->front_endpoint);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}

void asy_ingest_worker_actor(zsock_t *pipe, void *args)
{
    asy_ingest_worker_t *self = s_ingest_new(pipe, (const asy_ingest_worker_args_t *)args);
    zsock_signal(pipe, 0);    /* args are copied: zactor_new() may return */
    if (!self || s_link(self) != 0) {
        zstr_sendx(pipe, "FAILED", self ? "cannot link a worker to the front" : "out of memory",
                   NULL);
        while (self && !s_pause(self, 1000)) {}
    }
    else if (s_connect_store(self) == 0) {
        zstr_send(pipe, "READY");
        self->next_stats_ms = zclock_mono() + self->stats_interval_ms;
        s_serve(self);
        s_log_counters(self);
    }
    s_ingest_destroy(&self);
}
