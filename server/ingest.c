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
    broker moved the mark) costs one re-read, never a double write.  */
#include "ingest.h"

#include "case_view.h"
#include "monitor.h"

#include "codec.h"
#include "log.h"
#include "store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_RETRY_FIRST_MS 200u
#define S_RETRY_MAX_MS 5000u
#define S_STATS_MS 10000
#define S_SESSION_IDLE_MS (30 * 60 * 1000)
#define S_CODES (ASY_CODE_EVENT_TOO_LARGE + 1)

typedef struct {
    char agent_id[ASY_ID_MAX + 1];
    char site_id[ASY_ID_MAX + 1];
    uint64_t epoch;
    uint64_t committed;      /* high-water mark: never above what PostgreSQL has committed */
    int64_t last_seen_ms;
    /* a re-issued epoch (PROTOCOL.md 5.5): where its events may have been before */
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t origin_count;
} s_session_t;

typedef struct {
    uint64_t batches;
    uint64_t events;         /* committed as valid events */
    uint64_t duplicates;
    uint64_t quarantined;    /* events of batches, quarantined */
    uint64_t frames;         /* whole frames quarantined */
    uint64_t nacks[S_CODES];
} s_counters_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *front;          /* PAIR to the front: routing id + body, both ways */
    zpoller_t *poller;
    asy_store_t *store;
    char *front_endpoint;
    char *conninfo;
    int index;               /* worker number, for the log */
    int stats_interval_ms;
    bool terminated;
    zhashx_t *sessions;      /* routing id (hex) -> s_session_t */
    bool db_down;
    uint32_t retry_after_ms;
    int64_t next_reconnect_ms;
    s_counters_t counters;
    s_counters_t logged;
    int64_t next_stats_ms;
    asy_store_item_t *items; /* reused between batches */
    asy_rejection_t *rejections; /* the ACK's list: as many as items, allocated with them */
    size_t items_capacity;
    zframe_t *peer;          /* routing id of the message in hand */
    int last_nack_code;      /* the last NACK logged: its code, time and connection */
    int64_t last_nack_ms;
    char last_nack_peer[2 * 256 + 1];
    char *peer_key;
    const char *hello_agent; /* while a HELLO is answered: the agent id it names */
    char *monitor_endpoint;  /* NULL: no monitor */
    zsock_t *monitor;        /* PUSH: case_state rows of committed batches */
    asy_case_view_t *views;  /* rows of the batch in hand, sent after COMMIT */
    size_t view_count;
    size_t view_capacity;
    asy_outcome_view_t *outcomes; /* outcome_state rows of the batch in hand */
    size_t outcome_count;
    size_t outcome_capacity;
} s_ingest_t;

static void s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

/* Copies untrusted text for a log line or a reason: printable ASCII only, at most 64 chars. */
static const char *s_printable(const char *text, char *out, size_t size)
{
    size_t used = 0;
    for (; text && *text && used + 1 < size && used < 64; text++)
        out[used++] = (*text >= 0x20 && *text < 0x7f) ? *text : '?';
    out[used] = 0;
    return text ? out : "(absent)";
}

/* --------------------------------------------------------------------------------------------
   Replies */

static void s_send(s_ingest_t *self, const asy_frame_t *frame)
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

static const char *s_who(s_ingest_t *self)
{
    s_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
    return session ? session->agent_id : self->hello_agent ? self->hello_agent : self->peer_key;
}

static void s_nack(s_ingest_t *self, int code, uint64_t first_seq, uint64_t expected_seq,
                   uint32_t retry_after_ms, const char *format, ...)
    __attribute__((format(printf, 6, 7)));

static void s_nack(s_ingest_t *self, int code, uint64_t first_seq, uint64_t expected_seq,
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
    s_send(self, &frame);
    if (code > 0 && code < S_CODES)
        self->counters.nacks[code]++;
    /* A window of batches in flight gets one NACK each (16 NOT_WELCOMED after a restart): a
       NACK of the same code to the same connection within a second of the last warning is
       debug (the counters logged every 10 s hold them all). */
    int64_t now = zclock_mono();
    bool repeat = code == self->last_nack_code && now - self->last_nack_ms < 1000 &&
                  self->peer_key && strcmp(self->peer_key, self->last_nack_peer) == 0;
    if (repeat) {
        asy_debug("NACK %s to %s: %s", asy_code_name(code), s_who(self), reason);
        return;
    }
    asy_warn("NACK %s to %s: %s", asy_code_name(code), s_who(self), reason);
    self->last_nack_code = code; /* the second counts from this warning, not from repeats */
    self->last_nack_ms = now;
    snprintf(self->last_nack_peer, sizeof self->last_nack_peer, "%s",
             self->peer_key ? self->peer_key : "");
}

/* Acknowledges up to seq, listing the refused items. The list goes in self->rejections,
   allocated with the items (s_items) before the batch was written: allocating it here, after
   COMMIT, could fail and leave an ACK that says nothing was rejected. */
static void s_ack(s_ingest_t *self, const s_session_t *session, uint64_t seq,
                  const asy_store_item_t *items, size_t count, size_t duplicates)
{
    asy_rejection_t *list = self->rejections;
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (items[i].code != 0)
            list[used++] = (asy_rejection_t){items[i].seq, items[i].code, items[i].reason};
    asy_frame_t frame = {.type = ASY_FRAME_ACK, .version = ASY_PROTOCOL_VERSION};
    frame.u.ack = (asy_ack_t){.agent_id = session->agent_id, .epoch = session->epoch, .seq = seq,
                              .rejected_count = used, .rejected = list,
                              .duplicates = (uint32_t)duplicates};
    s_send(self, &frame);
}

/* --------------------------------------------------------------------------------------------
   Database availability: after a failure the broker answers RETRY_LATER without touching the
   database until the back-off has passed, then tries one reconnect. */

static uint32_t s_db_failed(s_ingest_t *self, const char *what, int rc)
{
    uint32_t wait = self->retry_after_ms;
    asy_error("worker %d: database %s failed (%s): %s; answering RETRY_LATER for %u ms",
              self->index, what, asy_strerror(rc), asy_store_errmsg(self->store), wait);
    self->db_down = true;
    self->next_reconnect_ms = zclock_mono() + wait;
    self->retry_after_ms = wait * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : wait * 2;
    return wait;
}

static void s_db_ok(s_ingest_t *self)
{
    self->retry_after_ms = S_RETRY_FIRST_MS;
}

/* Returns 0 if the database may be used now, else the milliseconds to tell the agent. */
static uint32_t s_db_wait(s_ingest_t *self)
{
    if (!self->db_down)
        return 0;
    int64_t now = zclock_mono();
    if (now < self->next_reconnect_ms)
        return (uint32_t)(self->next_reconnect_ms - now) + 1;
    if (asy_store_reconnect(self->store) != 0)
        return s_db_failed(self, "reconnect", ASY_ERETRY);
    asy_info("worker %d: database reachable again", self->index);
    self->db_down = false;
    return 0;
}

/* Stores bytes that never became a batch, before the NACK goes out, so that an agent that
   sees the NACK can rely on the quarantine row. Returns 0, or the milliseconds to answer
   RETRY_LATER with when the row cannot be written (the database is down or fails): refused
   bytes are never dropped unrecorded, the sender keeps them and sends them again. */
static uint32_t s_quarantine(s_ingest_t *self, int code, const char *reason, const uint8_t *data,
                             size_t size)
{
    uint32_t wait = s_db_wait(self);
    if (wait != 0)
        return wait;
    s_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
    /* the store keeps the first 64 KiB and says so in the reason */
    int rc =
        asy_store_quarantine_frame(self->store, session ? session->agent_id : NULL,
                                   session ? session->site_id : NULL, code, reason, data, size);
    if (rc == ASY_EDB) {
        /* up, but refusing the row (a defect): asking for the frame again would not help */
        asy_error("frame from %s not quarantined, the database refused the row (%s): %s",
                  s_who(self), asy_store_errmsg(self->store), reason);
        return 0;
    }
    if (rc == ASY_ERETRY && asy_store_connected(self->store))
        return S_RETRY_FIRST_MS; /* a transient conflict */
    if (rc != 0)
        return s_db_failed(self, "quarantine", rc);
    s_db_ok(self);
    self->counters.frames++;
    return 0;
}

/* Quarantines a refused frame and NACKs it with the same code and reason; RETRY_LATER instead
   if it cannot be quarantined now. */
static void s_refuse_frame(s_ingest_t *self, int code, const uint8_t *data, size_t size,
                           const char *reason)
{
    uint32_t wait = s_quarantine(self, code, reason, data, size);
    if (wait != 0) { /* logged as a NACK (one warning per run of them) */
        s_nack(self, ASY_CODE_RETRY_LATER, 0, 0, wait,
               "database unavailable (this frame is refused, but cannot be quarantined now): "
               "retry in %u ms",
               wait);
        return;
    }
    s_nack(self, code, 0, 0, 0, "%s", reason);
}

/* --------------------------------------------------------------------------------------------
   HELLO */

static bool s_hello_identity_ok(s_ingest_t *self, const asy_hello_t *hello)
{
    char text[80];
    if (!hello->agent_id || !asy_id_valid(hello->agent_id)) {
        s_nack(self, ASY_CODE_WRONG_AGENT, 0, 0, 0,
               "HELLO agent_id \"%s\" is not 1-64 characters of [A-Za-z0-9._-]",
               s_printable(hello->agent_id, text, sizeof text));
        return false;
    }
    if (!hello->site_id || !asy_id_valid(hello->site_id)) {
        s_nack(self, ASY_CODE_WRONG_AGENT, 0, 0, 0,
               "HELLO site_id \"%s\" is not 1-64 characters of [A-Za-z0-9._-]",
               s_printable(hello->site_id, text, sizeof text));
        return false;
    }
    if (hello->reissue_of_epoch &&
        (hello->reissue_of_epoch >= hello->epoch || hello->reissue_from_seq < 1)) {
        s_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
               "HELLO re-issues epoch %" PRIu64 " from seq %" PRIu64 " as epoch %" PRIu64
               ": the re-issued epoch must be older and the seq 1 or more",
               hello->reissue_of_epoch, hello->reissue_from_seq, hello->epoch);
        return false;
    }
    if (!hello->reissue_of_epoch && hello->reissue_from_seq) {
        s_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
               "HELLO has reissue_from_seq without reissue_of_epoch");
        return false;
    }
    if (hello->epoch < 1) {
        s_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0, "HELLO epoch must be 1 or more, got 0");
        return false;
    }
    /* the centre stores epochs and seqs as bigint: above it they would read back negative */
    if (hello->epoch > INT64_MAX || hello->reissue_from_seq > INT64_MAX) {
        s_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
               "HELLO epoch %" PRIu64 " or reissue_from_seq %" PRIu64
               " is over 9223372036854775807 (2^63 - 1), the largest the centre stores",
               hello->epoch, hello->reissue_from_seq);
        return false;
    }
    return true;
}

/* One session per agent: a new HELLO from the agent replaces the sessions of its older
   connections (a reconnecting DEALER gets a new routing id). */
static s_session_t *s_session_start(s_ingest_t *self, const asy_hello_t *hello, uint64_t committed,
                                    const asy_store_origin_t *origins, size_t origin_count)
{
    zlistx_t *stale = zlistx_new();
    zlistx_set_destructor(stale, s_free_item);
    for (s_session_t *old = zhashx_first(self->sessions); old; old = zhashx_next(self->sessions))
        if (strcmp(old->agent_id, hello->agent_id) == 0)
            zlistx_add_end(stale, strdup((const char *)zhashx_cursor(self->sessions)));
    for (char *key = zlistx_first(stale); key; key = zlistx_next(stale))
        zhashx_delete(self->sessions, key);
    zlistx_destroy(&stale);

    s_session_t *session = calloc(1, sizeof *session);
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

static void s_welcome(s_ingest_t *self, uint32_t version, uint64_t committed,
                      const char *committed_event_id, uint64_t reissue_of_epoch)
{
    asy_frame_t frame = {.type = ASY_FRAME_WELCOME, .version = version};
    frame.u.welcome = (asy_welcome_t){.version = version,
                                      .committed_seq = committed,
                                      .committed_event_id = committed_event_id,
                                      .reissue_of_epoch = reissue_of_epoch,
                                      .max_batch_events = ASY_MAX_BATCH_EVENTS,
                                      .max_frame_bytes = ASY_MAX_FRAME_BYTES,
                                      .window = ASY_DEFAULT_WINDOW,
                                      .heartbeat_ms = ASY_DEFAULT_HEARTBEAT_MS};
    s_send(self, &frame);
}

static void s_on_hello_checked(s_ingest_t *self, const asy_hello_t *hello);

/* Answers a HELLO; its NACKs name the agent the HELLO names, not the peer's routing id. */
static void s_on_hello(s_ingest_t *self, const asy_hello_t *hello)
{
    self->hello_agent = hello->agent_id && *hello->agent_id ? hello->agent_id : NULL;
    s_on_hello_checked(self, hello);
    self->hello_agent = NULL;
}

static void s_on_hello_checked(s_ingest_t *self, const asy_hello_t *hello)
{
    uint32_t version = hello->version_max < ASY_PROTOCOL_VERSION ? hello->version_max
                                                                  : ASY_PROTOCOL_VERSION;
    if (version < 1 || version < hello->version_min) {
        s_nack(self, ASY_CODE_VERSION, 0, 0, 0, "agent speaks %u..%u; broker speaks 1..%d",
               hello->version_min, hello->version_max, ASY_PROTOCOL_VERSION);
        return;
    }
    if (!s_hello_identity_ok(self, hello))
        return;
    uint32_t wait = s_db_wait(self);
    uint64_t committed = 0;
    char committed_event_id[ASY_UUID_TEXT + 1] = "";
    int rc = wait ? ASY_ERETRY
                  : asy_store_hello(self->store, hello->agent_id, hello->site_id, hello->epoch,
                                    &committed);
    if (rc == 0) /* so that an agent with a restored or copied outbox can tell (5.1) */
        rc = asy_store_event_id_at(self->store, hello->agent_id, hello->epoch, committed,
                                   committed_event_id);
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t origin_count = 0;
    if (rc == 0 && hello->reissue_of_epoch)
        rc = asy_store_reissue(self->store, hello->agent_id, hello->epoch, hello->reissue_of_epoch,
                               hello->reissue_from_seq, origins, &origin_count);
    if (rc == ASY_EINVAL) {
        s_nack(self, ASY_CODE_WRONG_AGENT, 0, 0, 0, "%s", asy_store_errmsg(self->store));
        return;
    }
    if (rc != 0) {
        wait = wait ? wait : s_db_failed(self, "HELLO", rc);
        s_nack(self, ASY_CODE_RETRY_LATER, 0, 0, wait, "database unavailable; retry in %u ms",
               wait);
        return;
    }
    s_db_ok(self);
    if (!s_session_start(self, hello, committed, origins, origin_count)) {
        s_nack(self, ASY_CODE_RETRY_LATER, 0, 0, S_RETRY_FIRST_MS, "broker out of memory");
        return;
    }
    char software[80];
    asy_info("session: agent %s site %s epoch %" PRIu64 " (peer %s, %s): committed %" PRIu64
             ", agent holds %" PRIu64,
             hello->agent_id, hello->site_id, hello->epoch, self->peer_key,
             s_printable(hello->software, software, sizeof software), committed, hello->last_seq);
    if (hello->last_seq < committed)
        asy_warn("agent %s epoch %" PRIu64 " holds seqs only up to %" PRIu64
                 " but the centre committed %" PRIu64 ": its outbox lost events; it should "
                 "start a new epoch",
                 hello->agent_id, hello->epoch, hello->last_seq, committed);
    if (hello->reissue_of_epoch)
        asy_info("agent %s epoch %" PRIu64 " re-issues the events of epoch %" PRIu64
                 " from seq %" PRIu64 " (%zu epoch(s) back): those the centre holds there are "
                 "acknowledged, not stored again",
                 hello->agent_id, hello->epoch, hello->reissue_of_epoch, hello->reissue_from_seq,
                 origin_count);
    s_welcome(self, version, committed, committed_event_id, hello->reissue_of_epoch);
}

/* --------------------------------------------------------------------------------------------
   PUBLISH */

static void s_reject(asy_store_item_t *item, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void s_reject(asy_store_item_t *item, int code, const char *format, ...)
{
    item->code = code;
    va_list args;
    va_start(args, format);
    vsnprintf(item->reason, sizeof item->reason, format, args);
    va_end(args);
    memset(&item->summary, 0, sizeof item->summary);
}

/* The checks that bind an event to its place: seq, agent, epoch, site. */
static void s_check_binding(const s_session_t *session, asy_store_item_t *item)
{
    const asy_event_summary_t *event = &item->summary;
    char text[80];
    if (event->seq != item->seq)
        s_reject(item, ASY_CODE_EVENT_SEQ_MISMATCH,
                 "seq: event says %" PRIu64 " but sits at seq %" PRIu64 " of the PUBLISH",
                 event->seq, item->seq);
    else if (strcmp(event->agent_id, session->agent_id) != 0 || event->epoch != session->epoch)
        s_reject(item, ASY_CODE_EVENT_SEQ_MISMATCH,
                 "agent_id/epoch: event says %s/%" PRIu64 " but the PUBLISH is %s/%" PRIu64,
                 s_printable(event->agent_id, text, sizeof text), event->epoch,
                 session->agent_id, session->epoch);
    else if (strcmp(event->site_id, session->site_id) != 0)
        s_reject(item, ASY_CODE_EVENT_WRONG_SITE,
                 "site_id: event says %s but agent %s publishes for site %s",
                 s_printable(event->site_id, text, sizeof text), session->agent_id,
                 session->site_id);
}

static void s_check_event(const s_session_t *session, const asy_bytes_t *bytes, uint64_t seq,
                          asy_store_item_t *item)
{
    memset(item, 0, sizeof *item);
    item->seq = seq;
    item->data = bytes->data;
    item->size = bytes->size;
    if (bytes->size > ASY_MAX_EVENT_BYTES) {
        s_reject(item, ASY_CODE_EVENT_TOO_LARGE, "event is %zu bytes; the limit is %u",
                 bytes->size, ASY_MAX_EVENT_BYTES);
        return;
    }
    asy_event_t *event = NULL;
    if (asy_event_decode(bytes->data, bytes->size, &event) != 0) {
        s_reject(item, ASY_CODE_EVENT_UNDECODABLE,
                 "event bytes (%zu) are not a decodable advsync.v1.Event", bytes->size);
        return;
    }
    asy_check_t why = {0};
    if (asy_event_validate(event, &why) != 0) {
        s_reject(item, why.code ? why.code : ASY_CODE_EVENT_INVALID_FIELD, "%s",
                 why.reason[0] ? why.reason : "event is not valid");
        if (why.identifying) { /* quarantined without its bytes */
            item->data = NULL;
            item->size = 0;
        }
        asy_event_destroy(&event);
        return;
    }
    asy_event_summarise(event, &item->summary);
    asy_event_destroy(&event);
    s_check_binding(session, item);
}

/* The items of a batch of count events, and room for the ACK's list of their rejections;
   NULL if out of memory (then nothing may be written: the batch could not be answered). */
static asy_store_item_t *s_items(s_ingest_t *self, size_t count)
{
    if (count > self->items_capacity) {
        asy_store_item_t *items = realloc(self->items, count * sizeof *items);
        if (!items)
            return NULL;
        self->items = items;
        asy_rejection_t *rejections = realloc(self->rejections, count * sizeof *rejections);
        if (!rejections)
            return NULL;
        self->rejections = rejections;
        self->items_capacity = count;
    }
    return self->items;
}

static void s_retry_later(s_ingest_t *self, const asy_publish_t *publish, uint32_t wait,
                          const char *why)
{
    s_nack(self, ASY_CODE_RETRY_LATER, publish->first_seq, 0, wait, "%s; retry in %u ms", why,
           wait);
}

/* Re-reads the agent's committed seq into the session. Returns 0, or NACKs and returns
   the error. */
static int s_refresh(s_ingest_t *self, s_session_t *session, const asy_publish_t *publish)
{
    uint64_t committed = 0;
    int rc = asy_store_committed_seq(self->store, session->agent_id, session->epoch, &committed);
    if (rc != 0) {
        s_retry_later(self, publish, s_db_failed(self, "committed-seq read", rc),
                      "database unavailable");
        return rc;
    }
    if (committed > session->committed)
        session->committed = committed;
    return 0;
}

/* The store's case sink: keeps the merged case_state rows of the batch in hand. */
static int s_collect_case(void *arg, int columns, const char *const *values)
{
    s_ingest_t *self = arg;
    if (self->view_count == self->view_capacity) {
        size_t capacity = self->view_capacity ? self->view_capacity * 2 : 256;
        asy_case_view_t *views = realloc(self->views, capacity * sizeof *views);
        if (!views)
            return ASY_ENOMEM;
        self->views = views;
        self->view_capacity = capacity;
    }
    if (asy_case_view_parse(columns, values, &self->views[self->view_count]) != 0) {
        asy_warn("worker %d: case_state row %s not understood by the monitor; skipped",
                 self->index, values[0] ? values[0] : "?");
        return 0;
    }
    self->view_count++;
    return 0;
}

/* The store's outcome sink: keeps the merged outcome_state rows of the batch in hand. */
static int s_collect_outcome(void *arg, int columns, const char *const *values)
{
    s_ingest_t *self = arg;
    if (self->outcome_count == self->outcome_capacity) {
        size_t capacity = self->outcome_capacity ? self->outcome_capacity * 2 : 64;
        asy_outcome_view_t *outcomes = realloc(self->outcomes, capacity * sizeof *outcomes);
        if (!outcomes)
            return ASY_ENOMEM;
        self->outcomes = outcomes;
        self->outcome_capacity = capacity;
    }
    if (asy_outcome_view_parse(columns, values, &self->outcomes[self->outcome_count]) == 0)
        self->outcome_count++;
    return 0;
}

/* Hands the committed batch's case rows to the monitor. */
static void s_notify_monitor(s_ingest_t *self)
{
    if (self->monitor && (self->view_count > 0 || self->outcome_count > 0) &&
        asy_monitor_send_cases(self->monitor, self->views, self->view_count, self->outcomes,
                               self->outcome_count) != 0)
        asy_error("worker %d: %zu case updates not handed to the monitor: %s", self->index,
                  self->view_count, zmq_strerror(zmq_errno()));
    self->view_count = self->outcome_count = 0;
}

/* Writes the new events of the batch: all events above the high-water mark. */
static int s_write(s_ingest_t *self, s_session_t *session, const asy_publish_t *publish,
                   size_t duplicates)
{
    size_t fresh = publish->count - duplicates;
    asy_store_item_t *items = s_items(self, fresh);
    if (!items) {
        asy_error("worker %d: agent %s: no memory for a batch of %zu events and its ACK; "
                  "nothing written, resend asked",
                  self->index, s_who(self), fresh);
        s_retry_later(self, publish, S_RETRY_FIRST_MS, "broker out of memory");
        return ASY_ENOMEM;
    }
    for (size_t i = 0; i < fresh; i++)
        s_check_event(session, &publish->events[duplicates + i],
                      publish->first_seq + duplicates + i, &items[i]);
    self->view_count = self->outcome_count = 0;
    asy_store_reissued_t reissued = {session->origins, session->origin_count, 0};
    int rc = asy_store_write_batch(self->store, session->agent_id, session->site_id, session->epoch,
                                   session->committed, items, fresh,
                                   session->origin_count > 0 ? &reissued : NULL);
    size_t known = reissued.known;
    if (rc == 0)
        s_notify_monitor(self);
    if (rc == ASY_EEXIST)
        return rc;
    if (rc == ASY_ENOMEM) {
        s_retry_later(self, publish, S_RETRY_FIRST_MS, "broker out of memory");
        return rc;
    }
    if (rc == ASY_EPROTO) {
        /* a batch of an epoch a newer one re-issued: its events go in under the new epoch */
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64 ": %s", s_who(self), items[0].seq,
                 items[fresh - 1].seq, asy_store_errmsg(self->store));
        s_nack(self, ASY_CODE_WRONG_AGENT, publish->first_seq, 0, 0, "%s",
               asy_store_errmsg(self->store));
        return rc;
    }
    if (rc == ASY_EDB) {
        /* The database is up but refused this batch (a defect: validation should have
           caught it). Other agents are not affected; this stream waits for a fix. */
        asy_error("agent %s seqs %" PRIu64 "..%" PRIu64 ": the database refused the batch: %s",
                  s_who(self), items[0].seq, items[fresh - 1].seq,
                  asy_store_errmsg(self->store));
        s_retry_later(self, publish, S_RETRY_MAX_MS, "the database refused this batch, nothing "
                                                     "committed; see the broker log");
        return rc;
    }
    if (rc == ASY_ERETRY && asy_store_connected(self->store)) {
        /* A deadlock or serialization failure against another worker or broker: expected
           now and then with concurrent writers; only this batch is resent. */
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64 ": transient conflict, resend asked: %s",
                 s_who(self), items[0].seq, items[fresh - 1].seq,
                 asy_store_errmsg(self->store));
        s_retry_later(self, publish, S_RETRY_FIRST_MS,
                      "a transient conflict with another writer, nothing committed");
        return rc;
    }
    if (rc != 0) {
        s_retry_later(self, publish, s_db_failed(self, "batch write", rc),
                      "database unavailable, nothing committed");
        return rc;
    }
    s_db_ok(self);
    uint64_t last = items[fresh - 1].seq;
    session->committed = last;
    size_t rejected = 0, first_bad = fresh;
    for (size_t i = 0; i < fresh; i++)
        if (items[i].code != 0 && rejected++ == 0)
            first_bad = i;
    self->counters.batches++;
    self->counters.events += fresh - rejected - known;
    self->counters.quarantined += rejected;
    self->counters.duplicates += duplicates + known;
    if (known)
        asy_info("agent %s seqs %" PRIu64 "..%" PRIu64 ": %zu re-issued event(s) already held "
                 "under epoch %" PRIu64 ", not stored again",
                 s_who(self), items[0].seq, last, known, session->origins[0].epoch);
    if (rejected)
        asy_warn("agent %s seqs %" PRIu64 "..%" PRIu64 ": %zu event(s) quarantined, first seq %"
                 PRIu64 " %s: %s",
                 s_who(self), items[0].seq, last, rejected, items[first_bad].seq,
                 asy_code_name(items[first_bad].code), items[first_bad].reason);
    s_ack(self, session, last, items, fresh, duplicates + known);
    return 0;
}

/* True (after a NACK SEQ_CONFLICT) if the PUBLISH's last seq the centre already holds carries
   another event than the centre's there: a copy of this agent's outbox, with events of its own
   under the same seqs, got its batch in first (two copies reconnecting together, each session
   on its own worker, get past the WELCOME check of 5.1 at the same seq). Acknowledging these
   seqs as duplicates would lose them. A seq held without an event row (quarantined, or found
   already held by a re-issue) is not compared. Returns true after a RETRY_LATER too if the
   database cannot say. */
static bool s_conflict(s_ingest_t *self, const s_session_t *session, const asy_publish_t *publish,
                       size_t duplicates)
{
    uint64_t seq = publish->first_seq + duplicates - 1;
    char theirs[ASY_UUID_TEXT + 1] = "";
    int rc = asy_store_event_id_at(self->store, session->agent_id, session->epoch, seq, theirs);
    if (rc != 0) {
        s_retry_later(self, publish, s_db_failed(self, "PUBLISH", rc), "database unavailable");
        return true;
    }
    if (!theirs[0])
        return false;
    asy_event_t *event = NULL;
    const asy_bytes_t *bytes = &publish->events[duplicates - 1];
    if (asy_event_decode(bytes->data, bytes->size, &event) != 0) {
        asy_event_destroy(&event);
        return false; /* not an event: its seq was quarantined when first sent, or is now */
    }
    const char *ours = asy_event_id(event);
    bool conflict = ours && strcasecmp(ours, theirs) != 0;
    asy_event_destroy(&event);
    if (conflict) {
        asy_warn("agent %s epoch %" PRIu64 ": seq %" PRIu64 " is another event here: a copied "
                 "or restored outbox; refused with SEQ_CONFLICT",
                 session->agent_id, session->epoch, seq);
        s_nack(self, ASY_CODE_SEQ_CONFLICT, publish->first_seq, 0, 0,
               "the centre holds another event at seq %" PRIu64 " of agent %s epoch %" PRIu64
               ": this outbox is a copy or a restored backup; stop, and run `advsync-agent "
               "reissue` on it",
               seq, session->agent_id, session->epoch);
    }
    return conflict;
}

/* One pass over a PUBLISH. Returns ASY_EEXIST if another writer moved the committed seq under
   us (nothing written, nothing answered); otherwise the PUBLISH has been answered. */
static int s_publish_pass(s_ingest_t *self, s_session_t *session, const asy_publish_t *publish)
{
    if (publish->first_seq > session->committed + 1) {
        if (s_refresh(self, session, publish) != 0)
            return 0;
        if (publish->first_seq > session->committed + 1) {
            s_nack(self, ASY_CODE_SEQ_GAP, publish->first_seq, session->committed + 1, 0,
                   "first_seq %" PRIu64 " but the centre has committed up to %" PRIu64
                   ": resend from %" PRIu64,
                   publish->first_seq, session->committed, session->committed + 1);
            return 0;
        }
    }
    uint64_t known = publish->first_seq <= session->committed
                         ? session->committed - publish->first_seq + 1
                         : 0;
    size_t duplicates = known > publish->count ? publish->count : (size_t)known;
    if (duplicates > 0 && s_conflict(self, session, publish, duplicates))
        return 0;
    if (duplicates == publish->count) {
        self->counters.duplicates += duplicates;
        s_ack(self, session, session->committed, NULL, 0, duplicates);
        return 0;
    }
    int rc = s_write(self, session, publish, duplicates);
    return rc == ASY_EEXIST ? rc : 0;
}

/* Checks the PUBLISH against its session; NACKs and returns NULL if it does not fit. */
static s_session_t *s_publish_session(s_ingest_t *self, const asy_publish_t *publish)
{
    s_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
    char text[80];
    if (!session) {
        s_nack(self, ASY_CODE_NOT_WELCOMED, publish->first_seq, 0, 0,
               "no session on this connection (broker restarted, or no HELLO yet): send HELLO");
        return NULL;
    }
    if (!publish->agent_id || strcmp(publish->agent_id, session->agent_id) != 0
        || publish->epoch != session->epoch) {
        s_nack(self, ASY_CODE_NOT_WELCOMED, publish->first_seq, 0, 0,
               "PUBLISH as %s epoch %" PRIu64 " but this connection said HELLO as %s epoch %"
               PRIu64 ": send HELLO again",
               s_printable(publish->agent_id, text, sizeof text), publish->epoch,
               session->agent_id, session->epoch);
        return NULL;
    }
    session->last_seen_ms = zclock_mono();
    return session;
}

static void s_on_publish(s_ingest_t *self, const asy_publish_t *publish)
{
    s_session_t *session = s_publish_session(self, publish);
    if (!session)
        return;
    if (publish->count > ASY_MAX_BATCH_EVENTS) {
        s_nack(self, ASY_CODE_BATCH_TOO_LARGE, publish->first_seq, 0, 0,
               "PUBLISH holds %zu events; the limit is %u", publish->count, ASY_MAX_BATCH_EVENTS);
        return;
    }
    if (publish->first_seq < 1 || publish->count == 0 ||
        publish->first_seq - 1 > (uint64_t)INT64_MAX - publish->count) {
        s_nack(self, ASY_CODE_MALFORMED_FRAME, publish->first_seq, 0, 0,
               "PUBLISH needs first_seq >= 1, at least one event and seqs up to 2^63 - 1 "
               "(first_seq %" PRIu64 ", %zu events)",
               publish->first_seq, publish->count);
        return;
    }
    uint32_t wait = s_db_wait(self);
    if (wait) {
        s_retry_later(self, publish, wait, "database unavailable");
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (s_publish_pass(self, session, publish) != ASY_EEXIST)
            return;
        asy_info("agent %s: committed seq moved by another writer; re-reading", s_who(self));
        if (s_refresh(self, session, publish) != 0)
            return;
    }
    s_retry_later(self, publish, S_RETRY_FIRST_MS, "committed seq keeps moving under this batch");
}

/* --------------------------------------------------------------------------------------------
   One message from the ROUTER, as relayed by the front */

static void s_on_frame(s_ingest_t *self, const uint8_t *data, size_t size)
{
    asy_frame_t frame = {0};
    if (asy_frame_decode(&frame, data, size) != 0) {
        char reason[160];
        snprintf(reason, sizeof reason,
                 "%zu bytes are not an advsync.v1.Frame with a known kind (HELLO, PUBLISH, "
                 "HEARTBEAT)", size);
        s_refuse_frame(self, ASY_CODE_MALFORMED_FRAME, data, size, reason);
    }
    else if (frame.type != ASY_FRAME_HELLO && frame.version != ASY_PROTOCOL_VERSION)
        s_nack(self, ASY_CODE_VERSION, 0, 0, 0,
               "frame version %u; this broker speaks %d (send HELLO to negotiate)",
               frame.version, ASY_PROTOCOL_VERSION);
    else if (frame.type == ASY_FRAME_HELLO)
        s_on_hello(self, &frame.u.hello);
    else if (frame.type == ASY_FRAME_PUBLISH)
        s_on_publish(self, &frame.u.publish);
    else if (frame.type == ASY_FRAME_HEARTBEAT) {
        s_session_t *session = zhashx_lookup(self->sessions, self->peer_key);
        if (session)
            session->last_seen_ms = zclock_mono();
        asy_frame_t reply = {.type = ASY_FRAME_HEARTBEAT, .version = ASY_PROTOCOL_VERSION};
        reply.u.heartbeat.sent_at_ms = frame.u.heartbeat.sent_at_ms;
        s_send(self, &reply);
    }
    else if (frame.type == ASY_FRAME_NACK)  /* never answer a NACK: no NACK ping-pong */
        asy_warn("NACK from %s ignored: the broker takes HELLO, PUBLISH, HEARTBEAT", s_who(self));
    else
        s_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
               "frame type %d is sent by the broker, not to it", frame.type);
    asy_frame_release(&frame);
}

/* Size and shape checks before any decoding. Returns the single body part, or NULL after
   having refused the message. */
static zframe_t *s_admit(s_ingest_t *self, zmsg_t *msg)
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
        snprintf(reason, sizeof reason,
                 "message has %zu parts; the protocol sends exactly one Frame per message", parts);
        s_refuse_frame(self, ASY_CODE_MALFORMED_FRAME, zframe_data(body), zframe_size(body),
                       reason);
        return NULL;
    }
    return body;
}

static void s_on_front(s_ingest_t *self)
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

static void s_log_counters(s_ingest_t *self)
{
    const s_counters_t *c = &self->counters;
    char nacks[512] = "";
    size_t used = 0;
    for (int code = 1; code < S_CODES && used < sizeof nacks; code++)
        if (c->nacks[code])
            used += (size_t)snprintf(nacks + used, sizeof nacks - used, " %s=%" PRIu64,
                                     asy_code_name(code), c->nacks[code]);
    asy_info("worker %d counters: batches=%" PRIu64 " events=%" PRIu64 " duplicates=%" PRIu64
             " quarantined=%" PRIu64 " frames_quarantined=%" PRIu64 " sessions=%zu nacks:%s",
             self->index, c->batches, c->events, c->duplicates, c->quarantined, c->frames,
             zhashx_size(self->sessions), used ? nacks : " none");
    self->logged = self->counters;
}

static void s_expire_sessions(s_ingest_t *self, int64_t now)
{
    zlistx_t *idle = zlistx_new();
    zlistx_set_destructor(idle, s_free_item);
    for (s_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (now - s->last_seen_ms > S_SESSION_IDLE_MS)
            zlistx_add_end(idle, strdup((const char *)zhashx_cursor(self->sessions)));
    for (char *key = zlistx_first(idle); key; key = zlistx_next(idle))
        zhashx_delete(self->sessions, key);
    zlistx_destroy(&idle);
}

static void s_tick(s_ingest_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->next_stats_ms)
        return;
    self->next_stats_ms = now + self->stats_interval_ms;
    if (memcmp(&self->counters, &self->logged, sizeof self->counters) != 0)
        s_log_counters(self);
    s_expire_sessions(self, now);
    s_db_wait(self);   /* reconnect in the background once the back-off has passed */
}

/* --------------------------------------------------------------------------------------------
   Actor life cycle */

static void s_on_pipe(s_ingest_t *self)
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
static bool s_pause(s_ingest_t *self, int ms)
{
    zpoller_t *poller = zpoller_new(self->pipe, NULL);
    zpoller_set_nonstop(poller, true);
    if (zpoller_wait(poller, ms) == self->pipe)
        s_on_pipe(self);
    zpoller_destroy(&poller);
    return self->terminated;
}

static int s_connect_store(s_ingest_t *self)
{
    uint32_t wait = S_RETRY_FIRST_MS;
    for (int attempt = 1; !self->terminated; attempt++) {
        char error[512] = "";
        self->store = asy_store_new(self->conninfo, error, sizeof error);
        if (self->store && self->monitor) {
            asy_store_set_case_sink(self->store, s_collect_case, self);
            asy_store_set_outcome_sink(self->store, s_collect_outcome, self);
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
        wait = wait * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : wait * 2;
    }
    return -1;
}

/* No high-water mark on the link: the front must never block on a busy worker (it would stop
   relaying the other workers' replies); the agents' windows bound what can queue. */
static int s_link(s_ingest_t *self)
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

static void s_serve(s_ingest_t *self)
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

static s_ingest_t *s_ingest_new(zsock_t *pipe, const asy_ingest_worker_args_t *args)
{
    s_ingest_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->index = args->index;
    self->front_endpoint = strdup(args->front_endpoint);
    self->conninfo = strdup(args->conninfo ? args->conninfo : "");
    self->stats_interval_ms = args->stats_interval_ms > 0 ? args->stats_interval_ms : S_STATS_MS;
    self->sessions = zhashx_new();
    self->retry_after_ms = S_RETRY_FIRST_MS;
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

static void s_ingest_destroy(s_ingest_t **self_p)
{
    s_ingest_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy(&self->poller);
    zsock_destroy(&self->front);   /* inproc: replies already sent stay readable by the front */
    zsock_destroy(&self->monitor);
    free(self->monitor_endpoint);
    free(self->views);
    free(self->outcomes);
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
    s_ingest_t *self = s_ingest_new(pipe, (const asy_ingest_worker_args_t *)args);
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
