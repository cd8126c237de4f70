/*  forward.c: `advsync-agent run`, the agent side of the advsync protocol.

    A small state machine over one DEALER socket:
      CONNECTING  -> (connect, send HELLO)                    -> HELLO_SENT
      HELLO_SENT  -> WELCOME: ack committed, resume after it  -> STREAMING
      STREAMING   -> PUBLISH while fewer than `window` batches are unacknowledged;
                     ACK prunes the outbox; NACK rewinds, waits, re-HELLOs or gives up.
    Any silence longer than the liveness limits, or a NACK during HELLO, destroys the socket
    and goes back to CONNECTING on the next endpoint after an exponential backoff. Resending
    is always safe: the centre de-duplicates by (agent, epoch, seq) and re-acknowledges.  */
#include "forward.h"

#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S_SOFTWARE "advsync-agent " ASY_VERSION_STRING
#define S_WELCOME_TIMEOUT_MS 2000
#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 5000
#define S_STOP_GRACE_MS 1000
#define S_REPORT_MS 10000
#define S_CONTACT_NOTE_MS 1000
#define S_GAP_PAUSE_MS 5000
#define S_IDLE_AFTER_MS 1000 /* no new event this long: look for them less often */
#define S_IDLE_REFRESH_MS 50
#define S_ACK_RETRY_MIN_MS 100   /* a failed save of an acknowledgement: the first retry */
#define S_ACK_RETRY_MAX_MS 10000 /* and the slowest */
#define S_ACK_LOG_EVERY_MS 60000 /* how often a failing save is said again */
#define S_ACK_QUIET_MS 1000      /* a failing save is said once it has lasted this long */
#define S_RUN_BUSY_MS 200        /* the outbox lock wait of this loop's writes */
#define S_ACK_GIVE_UP_MS 60000   /* --until-drained: drained at the centre, not in the outbox */
#define S_IDLE_HEARTBEATS 3
#define S_IDENTITY_CHECK_MS 1000 /* how often the outbox path is checked to be our file */
#define S_MAX_WINDOW 1024u
/* Room left in a PUBLISH for its header and the tag and length of each event. */
#define S_FRAME_OVERHEAD 1024u
#define S_EVENT_OVERHEAD 16u

typedef enum { S_CONNECTING, S_HELLO_SENT, S_STREAMING } s_state_t;

/* One PUBLISH not yet answered. The broker answers each PUBLISH once, in order; a PUBLISH
   sent before the latest rewind (older generation) is still answered, and a NACK for it is
   stale: acting on it would rewind again and again. */
typedef struct {
    uint64_t first_seq;
    uint64_t last_seq;
    int64_t sent_ms;
    uint32_t generation;
} s_flight_t;

typedef struct {
    const asy_agent_config_t *config;
    asy_forward_options_t options;
    asy_outbox_t *outbox;
    zsock_t *socket;
    s_state_t state;
    int endpoint;               /* index of the endpoint of the current connection */
    uint32_t version;           /* protocol version chosen by WELCOME; 0 before */

    uint64_t epoch;
    uint64_t last_seq;          /* highest seq in the outbox when last looked at */
    uint64_t acked_seq;         /* highest seq the centre has committed */
    uint64_t unsaved_ack;       /* committed seq not yet recorded in the outbox (0: none) */
    uint64_t saved_ack;         /* the last one recorded */
    uint32_t ack_failures;      /* failed attempts to record unsaved_ack in a row */
    int64_t ack_retry_at;       /* the next attempt, after a failure */
    int64_t ack_failing_since;
    int64_t ack_logged_at;
    uint64_t next_seq;          /* next seq to send */
    uint64_t reissue_of_epoch;  /* a re-issued outbox (PROTOCOL.md 5.5): 0, or the old epoch */
    uint64_t reissue_from_seq;
    uint64_t reissue_last_seq; /* seqs 1..this are re-issued events */

    s_flight_t flights[S_MAX_WINDOW];   /* oldest first */
    size_t flight_count;
    uint32_t generation;        /* incremented by every rewind */

    uint32_t window;            /* adopted from config and WELCOME */
    uint32_t batch_max;
    uint32_t batch_ms;
    size_t max_frame_bytes;
    uint32_t heartbeat_ms;
    uint32_t ack_timeout_ms;

    /* The batch being built: event bytes packed in one buffer. */
    uint8_t *bytes;
    size_t bytes_used;
    size_t bytes_capacity;
    size_t *sizes;
    asy_bytes_t *events;
    size_t event_count;
    size_t event_capacity;
    uint64_t first_row_seq;     /* first seq the last read met, 0 if none */
    int read_error;

    /* Monotonic milliseconds. */
    int64_t now;
    int64_t started;
    int64_t last_sent;
    int64_t last_received;
    int64_t last_answer;        /* last WELCOME, ACK or NACK: heartbeat echoes do not count */
    int64_t hello_sent;
    int64_t connect_at;
    int64_t backoff;
    int64_t fill_since;         /* since when a short batch has been waiting; 0 = none */
    int64_t paused_until;       /* RETRY_LATER or an outbox problem */
    int64_t last_refresh;
    int64_t last_identity_check;
    int64_t last_new_event; /* when the outbox last showed a seq not seen before */
    int64_t last_contact_note;
    int64_t next_report;
    int64_t stop_at;            /* 0 = not stopping */

    uint64_t acked_total;
    uint64_t acked_at_report;
    uint64_t rejected_total;
    uint64_t duplicates_total; /* acknowledged as held already (a resend, a re-issue) */
    uint64_t reconnects;
    int exit_code;
    bool done;
    bool problem_noted; /* a problem is recorded in the outbox for `status` (s_problem) */
} s_forwarder_t;

static volatile sig_atomic_t s_signal_received;

static void s_on_signal(int signo)
{
    s_signal_received = signo;
}

static uint64_t s_backlog(const s_forwarder_t *self)
{
    return self->last_seq > self->acked_seq ? self->last_seq - self->acked_seq : 0;
}

static const char *s_endpoint(const s_forwarder_t *self)
{
    return self->config->endpoints[self->endpoint];
}

/* Logs an error that keeps events from the centre, and records it in the outbox, where
   `status` shows it until the centre acknowledges something again: an operator watching
   status saw a healthy backlog while run logged, say, that the centre's database had been
   restored. */
static void s_vproblem(s_forwarder_t *self, const char *format, va_list args)
{
    char text[1024];
    vsnprintf(text, sizeof text, format, args);
    for (char *c = text; *c; c++) /* a peer's NACK reason: no terminal controls in status */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    asy_error("%s", text);
    if (asy_outbox_note_problem(self->outbox, text, zclock_time()) == 0)
        self->problem_noted = true;
}

static void s_problem(s_forwarder_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_problem(s_forwarder_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    s_vproblem(self, format, args);
    va_end(args);
}

/* s_problem, and run stops with exit 1. */
static void s_stop(s_forwarder_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_stop(s_forwarder_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    s_vproblem(self, format, args);
    va_end(args);
    self->exit_code = 1;
    self->done = true;
}

/* Reads the outbox's highest seq. A failure is logged and the old value kept: the outbox is
   local and a busy moment (another process submitting) passes. */
static void s_begin_stop(s_forwarder_t *self, const char *why);

static void s_refresh(s_forwarder_t *self)
{
    asy_outbox_status_t status;
    int rc = asy_outbox_status(self->outbox, &status);
    self->last_refresh = self->now;
    if (rc != 0) {
        asy_warn("cannot read the outbox status: %s", asy_outbox_errmsg(self->outbox));
        return;
    }
    if (status.last_seq != self->last_seq)
        self->last_new_event = self->now;
    self->last_seq = status.last_seq;
}

/* Events submitted after the outbox file was deleted or replaced go to the new file, which
   this process never reads: stop (exit ASY_RUN_EXIT_TRY_AGAIN), so that a supervisor starts
   run on the new one. */
static void s_check_outbox_identity(s_forwarder_t *self)
{
    if (self->now - self->last_identity_check < S_IDENTITY_CHECK_MS || self->stop_at != 0)
        return;
    self->last_identity_check = self->now;
    if (asy_outbox_replaced(self->outbox)) {
        asy_error("the outbox file was deleted or replaced while run was running: stopping "
                  "(exit %d: a service starts run again) to forward what the file now holds",
                  ASY_RUN_EXIT_TRY_AGAIN);
        self->exit_code = ASY_RUN_EXIT_TRY_AGAIN;
        s_begin_stop(self, "outbox replaced");
    }
}

/* How often to look in the outbox for new events: every batch_ms while events come, so that
   they leave at once; after S_IDLE_AFTER_MS without one, every S_IDLE_REFRESH_MS, so that an
   idle agent does not query its outbox hundreds of times a second. */
static int64_t s_refresh_every(const s_forwarder_t *self)
{
    int64_t busy = self->batch_ms > 0 ? self->batch_ms : 1;
    return self->now - self->last_new_event >= S_IDLE_AFTER_MS && busy < S_IDLE_REFRESH_MS
               ? S_IDLE_REFRESH_MS
               : busy;
}

static void s_note_contact(s_forwarder_t *self)
{
    self->last_received = self->now;
    if (self->now - self->last_contact_note < S_CONTACT_NOTE_MS)
        return;
    self->last_contact_note = self->now;
    if (asy_outbox_note_contact(self->outbox, zclock_time()) != 0)
        asy_debug("cannot note contact in the outbox: %s", asy_outbox_errmsg(self->outbox));
}

/* Encodes and sends one frame without blocking. Returns 0 or ASY_EIO. */
static int s_send_frame(s_forwarder_t *self, asy_frame_t *frame)
{
    uint8_t *data = NULL;
    size_t size = 0;
    frame->version = self->version;
    int rc = asy_frame_encode(frame, &data, &size);
    if (rc != 0) {
        asy_error("cannot encode a frame: %s", asy_strerror(rc));
        return rc;
    }
    rc = zmq_send(zsock_resolve(self->socket), data, size, ZMQ_DONTWAIT);
    free(data);
    if (rc < 0) {
        asy_warn("cannot send to %s: %s", s_endpoint(self), zmq_strerror(errno));
        return ASY_EIO;
    }
    self->last_sent = self->now;
    return 0;
}

/* True while re-issued events (PROTOCOL.md 5.5) may still be unacknowledged: the HELLO
   says which epoch they came from, and the WELCOME must say the centre will check them. */
static bool s_reissuing(const s_forwarder_t *self)
{
    return self->reissue_of_epoch && self->acked_seq < self->reissue_last_seq;
}

static int s_send_hello(s_forwarder_t *self)
{
    s_refresh(self);
    asy_frame_t frame = {.type = ASY_FRAME_HELLO};
    bool reissuing = s_reissuing(self);
    frame.u.hello = (asy_hello_t){.version_min = 1,
                                  .version_max = ASY_PROTOCOL_VERSION,
                                  .agent_id = self->config->agent_id,
                                  .site_id = self->config->site_id,
                                  .epoch = self->epoch,
                                  .last_seq = self->last_seq,
                                  .software = S_SOFTWARE,
                                  .reissue_of_epoch = reissuing ? self->reissue_of_epoch : 0,
                                  .reissue_from_seq = reissuing ? self->reissue_from_seq : 0};
    self->version = 0;
    self->flight_count = 0;
    self->state = S_HELLO_SENT;
    self->hello_sent = self->now;
    /* Silence is measured from the HELLO, not from the previous connection's last message. */
    self->last_received = self->now;
    self->last_answer = self->now;
    return s_send_frame(self, &frame);
}

static void s_send_heartbeat(s_forwarder_t *self)
{
    asy_frame_t frame = {.type = ASY_FRAME_HEARTBEAT};
    frame.u.heartbeat.sent_at_ms = zclock_time();
    (void) s_send_frame(self, &frame);
}

/* Drops the connection; the next one goes to the next endpoint after the backoff. */
static void s_disconnect(s_forwarder_t *self, const char *reason, int64_t at_least_ms)
{
    zsock_destroy(&self->socket);
    self->state = S_CONNECTING;
    self->flight_count = 0;
    self->fill_since = 0;
    self->reconnects++;
    int64_t delay = self->backoff > at_least_ms ? self->backoff : at_least_ms;
    asy_warn("disconnecting from %s: %s; reconnecting in %lld ms", s_endpoint(self), reason,
             (long long) delay);
    self->endpoint = (self->endpoint + 1) % self->config->endpoint_count;
    self->connect_at = self->now + delay;
    self->backoff = self->backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff * 2;
}

static void s_connect(s_forwarder_t *self)
{
    const char *endpoint = s_endpoint(self);
    self->socket = zsock_new(ZMQ_DEALER);
    if (!self->socket) {
        asy_error("cannot create a socket: %s", zmq_strerror(errno));
        self->connect_at = self->now + S_BACKOFF_MAX_MS;
        return;
    }
    zsock_set_linger(self->socket, 0);
    zsock_set_maxmsgsize(self->socket, (int) ASY_MAX_FRAME_BYTES);
    if (zsock_connect(self->socket, "%s", endpoint) != 0) {
        asy_error("cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        s_disconnect(self, "bad endpoint", 0);
        return;
    }
    asy_info("connecting to %s", endpoint);
    if (s_send_hello(self) != 0)
        s_disconnect(self, "cannot send HELLO", 0);
}

/* Resends from seq. What is in flight stays counted in the window until answered, but its
   answers no longer steer us. */
static void s_rewind(s_forwarder_t *self, uint64_t seq)
{
    self->generation++;
    self->fill_since = 0;
    self->next_seq = seq > 0 ? seq : 1;
}

/* Takes the flight a NACK answers off the list (the one with first_seq, else the oldest) and
   says whether the NACK is current: it answers a PUBLISH sent since the latest rewind. */
static bool s_take_answered(s_forwarder_t *self, uint64_t first_seq)
{
    if (self->flight_count == 0)
        return first_seq == 0;  /* not about a PUBLISH, e.g. a HEARTBEAT's answer */
    size_t i = 0;
    if (first_seq != 0) {
        while (i < self->flight_count && self->flights[i].first_seq != first_seq)
            i++;
        if (i == self->flight_count)
            return false;
    }
    bool current = self->flights[i].generation == self->generation;
    /* Flights older than the answered one can have no answer coming: forget them too. */
    self->flight_count -= i + 1;
    memmove(self->flights, self->flights + i + 1, self->flight_count * sizeof(s_flight_t));
    return current;
}

/* Forgets the flights the centre has committed, wherever they are in the list. */
static void s_drop_committed(s_forwarder_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->flight_count; i++)
        if (self->flights[i].last_seq > self->acked_seq)
            self->flights[kept++] = self->flights[i];
    self->flight_count = kept;
}

/* ------------------------------------------------------------------------------------------
   Receiving. */

static uint32_t s_adopt(uint32_t ours, uint32_t theirs)
{
    return theirs != 0 && theirs < ours ? theirs : ours;
}

/* Records the pending acknowledgement in the outbox (which prunes it). A failure (the file
   locked by a writer for longer than the busy time-out, a full disk) is retried after 100 ms,
   then ever more slowly up to every S_ACK_RETRY_MAX_MS, and said once a minute, not on every
   attempt (the log may be on the same full disk); until then the rows stay, and a restart
   would resend them as harmless duplicates. force: try now, whatever the back-off says. */
static void s_save_ack(s_forwarder_t *self, bool force)
{
    if (self->unsaved_ack == 0 || (!force && self->now < self->ack_retry_at))
        return;
    if (asy_outbox_ack(self->outbox, self->unsaved_ack, zclock_time()) != 0) {
        /* a submitter holding the lock for a moment is routine: said once it has lasted */
        if (self->ack_failures++ == 0) {
            self->ack_failing_since = self->now;
            self->ack_logged_at = 0;
        }
        if (self->ack_logged_at == 0 && self->now - self->ack_failing_since >= S_ACK_QUIET_MS) {
            self->ack_logged_at = self->now;
            asy_error("cannot record acknowledgement of seq %llu in the outbox (will retry): %s",
                      (unsigned long long)self->unsaved_ack, asy_outbox_errmsg(self->outbox));
        } else if (self->ack_logged_at != 0 &&
                   self->now - self->ack_logged_at >= S_ACK_LOG_EVERY_MS) {
            self->ack_logged_at = self->now;
            asy_error("still cannot record acknowledgements in the outbox (up to seq %llu, %u "
                      "attempts in %lld s): %s",
                      (unsigned long long)self->unsaved_ack, self->ack_failures,
                      (long long)((self->now - self->ack_failing_since) / 1000),
                      asy_outbox_errmsg(self->outbox));
        }
        int64_t wait = S_ACK_RETRY_MIN_MS << (self->ack_failures < 8 ? self->ack_failures - 1 : 7);
        self->ack_retry_at = self->now + (wait < S_ACK_RETRY_MAX_MS ? wait : S_ACK_RETRY_MAX_MS);
        return;
    }
    if (self->ack_logged_at != 0)
        asy_info("recorded acknowledgements up to seq %llu in the outbox after %u failed attempts",
                 (unsigned long long)self->unsaved_ack, self->ack_failures);
    self->ack_logged_at = 0;
    self->saved_ack = self->unsaved_ack;
    self->unsaved_ack = 0;
    self->ack_failures = 0;
    self->ack_retry_at = 0;
    /* the centre takes events again: what kept them away is over */
    if (self->problem_noted && asy_outbox_note_problem(self->outbox, NULL, 0) == 0)
        self->problem_noted = false;
}

/* Records that the centre committed everything up to seq. */
static void s_record_commit(s_forwarder_t *self, uint64_t seq)
{
    if (seq <= self->acked_seq)
        return;
    if (seq > self->last_seq)
        s_refresh(self);
    uint64_t upto = seq > self->last_seq ? self->last_seq : seq;
    if (upto > self->acked_seq) {
        self->acked_total += upto - self->acked_seq;
        self->unsaved_ack = upto;
        s_save_ack(self, false);
    }
    /* The centre has committed these whether or not the outbox could record it: never resend
       them on this connection (the broker answers each PUBLISH once), keep retrying the save. */
    self->acked_seq = seq;
}

/* True if this outbox holds, at the centre's committed seq, an event other than the one the
   centre holds there: the outbox was restored or copied, and submitted to since. Its events
   from that seq on are not the centre's, and acknowledging them would lose them. */
static bool s_diverged(s_forwarder_t *self, const asy_welcome_t *welcome)
{
    const char *theirs = welcome->committed_event_id;
    if (!theirs || !*theirs || welcome->committed_seq <= self->acked_seq)
        return false; /* nothing said, or a seq this outbox has already pruned */
    char ours[ASY_UUID_TEXT + 1];
    if (asy_outbox_event_id(self->outbox, welcome->committed_seq, ours) != 0 || !ours[0])
        return false; /* no such row here: nothing to compare */
    return strcasecmp(ours, theirs) != 0;
}

static void s_on_welcome(s_forwarder_t *self, const asy_welcome_t *welcome)
{
    if (self->state != S_HELLO_SENT) {
        asy_debug("ignoring a WELCOME outside the handshake");
        return;
    }
    if (welcome->version < 1 || welcome->version > ASY_PROTOCOL_VERSION) {
        s_stop(self, "%s chose protocol version %u; this agent speaks 1..%u: upgrade the agent",
               s_endpoint(self), welcome->version, (unsigned)ASY_PROTOCOL_VERSION);
        return;
    }
    s_refresh(self);
    if (s_reissuing(self) && welcome->committed_seq < self->reissue_last_seq &&
        welcome->reissue_of_epoch != self->reissue_of_epoch) {
        /* an older broker: it would store again what it already holds under the old epoch */
        s_stop(self,
               "%s did not confirm that it drops the re-issued events it already holds "
               "(epoch %llu re-issues epoch %llu): its advsyncd predates re-issued epochs. "
               "Upgrade the centre's brokers first; nothing was sent; stopping",
               s_endpoint(self), (unsigned long long)self->epoch,
               (unsigned long long)self->reissue_of_epoch);
        return;
    }
    uint64_t committed = welcome->committed_seq;
    if (committed > self->last_seq) {
        /* The outbox is older than the centre's record of it (restored from a backup, or a
           copy): its newer seqs may hold events the centre has never seen, and events
           submitted from now on would get seqs the centre already has. Stop rather than lose
           them, and say not to delete the file: it may hold the only copy of some events. */
        s_stop(self,
               "the centre has committed seq %llu of epoch %llu but this outbox holds only "
               "up to %llu: %s is older than the centre's record of it (restored from a "
               "backup, or copied from another machine). Do not delete it and do not submit "
               "to it: events appended since the copy was made may not be at the centre. "
               "Run `advsync-agent reissue` to send them under a new epoch (see "
               "deploy/README.md, 'Outboxes: never restore or copy one'); stopping",
               (unsigned long long)committed, (unsigned long long)self->epoch,
               (unsigned long long)self->last_seq, self->config->outbox_path);
        return;
    }
    if (s_diverged(self, welcome)) {
        s_stop(self,
               "the centre's event at seq %llu of epoch %llu is %s, but this outbox holds "
               "another one there: %s was restored from a backup or copied, and events were "
               "submitted to it since, under seqs the centre had already used. Some of its "
               "events after seq %llu are not at the centre. Do not delete it and do not submit to "
               "it: run `advsync-agent reissue` to send them under a new epoch (see "
               "deploy/README.md, 'Outboxes: never restore or copy one'); stopping",
               (unsigned long long)committed, (unsigned long long)self->epoch,
               welcome->committed_event_id, self->config->outbox_path,
               (unsigned long long)self->acked_seq);
        return;
    }
    if (committed < self->acked_seq)
        s_problem(self,
                  "the centre has committed only up to seq %llu but acknowledged up to %llu "
                  "before (centre database restored?); events after %llu were pruned here",
                  (unsigned long long)committed, (unsigned long long)self->acked_seq,
                  (unsigned long long)committed);
    s_record_commit(self, committed);
    self->version = welcome->version;
    self->window = s_adopt(self->config->window ? self->config->window : ASY_DEFAULT_WINDOW,
                           welcome->window);
    if (self->window > S_MAX_WINDOW)
        self->window = S_MAX_WINDOW;
    self->batch_max = s_adopt((uint32_t) self->event_capacity, welcome->max_batch_events);
    self->max_frame_bytes = s_adopt(ASY_MAX_FRAME_BYTES, welcome->max_frame_bytes);
    self->heartbeat_ms = welcome->heartbeat_ms ? welcome->heartbeat_ms : ASY_DEFAULT_HEARTBEAT_MS;
    self->state = S_STREAMING;
    self->backoff = S_BACKOFF_MIN_MS;
    self->flight_count = 0;
    s_rewind(self, committed + 1);
    asy_info("welcome from %s: centre committed seq %llu, backlog %llu, window %u, batch %u",
             s_endpoint(self), (unsigned long long) committed,
             (unsigned long long) s_backlog(self), self->window, self->batch_max);
}

static void s_on_ack(s_forwarder_t *self, const asy_ack_t *ack)
{
    if (ack->epoch != 0 && ack->epoch != self->epoch) {
        asy_warn("ignoring an ACK for epoch %llu (ours is %llu)", (unsigned long long) ack->epoch,
                 (unsigned long long) self->epoch);
        return;
    }
    for (size_t i = 0; i < ack->rejected_count; i++) {
        const asy_rejection_t *r = &ack->rejected[i];
        /* not at the centre: once corrected (a ward PC's clock days fast, a rule tightened),
           the same event may be submitted again, with its eventId, and is not a duplicate.
           Not a re-issued one: the centre may hold it under the old epoch (a review) */
        bool reissued = self->reissue_of_epoch && r->seq <= self->reissue_last_seq;
        bool forgotten = !reissued && asy_outbox_forget(self->outbox, r->seq) == 0;
        asy_warn("event seq %llu quarantined by the centre: %s: %s%s", (unsigned long long)r->seq,
                 asy_code_name(r->code), r->reason ? r->reason : "",
                 forgotten ? "; correct it and submit it again" : "");
    }
    self->rejected_total += ack->rejected_count;
    self->duplicates_total += ack->duplicates;
    s_record_commit(self, ack->seq);
    s_drop_committed(self);
    if (self->state == S_STREAMING && self->next_seq <= self->acked_seq)
        s_rewind(self, self->acked_seq + 1);
}

/* A NACK during the handshake: refused identities end the run, anything else reconnects. */
static bool s_nack_is_fatal(s_forwarder_t *self, const asy_nack_t *nack)
{
    if (nack->code == ASY_CODE_SEQ_CONFLICT) {
        /* as at a WELCOME that shows another event at the committed seq (s_diverged): the
           events from there on are this copy's own; acknowledging them would lose them */
        s_stop(self,
               "%s holds other events at this outbox's seqs (%s): this outbox was restored "
               "from a backup or copied, and another copy got there first. Nothing more "
               "is sent or pruned; run `advsync-agent reissue` on this outbox, then `run` "
               "again (deploy/README.md, \"Outboxes: never restore or copy one\")",
               s_endpoint(self), nack->reason ? nack->reason : "");
        return true;
    }
    if (nack->code != ASY_CODE_VERSION && nack->code != ASY_CODE_WRONG_AGENT)
        return false;
    s_stop(self,
           "%s refused this agent (%s): %s; check agent id \"%s\", site \"%s\" and the agent "
           "version (%s); retrying will not help",
           s_endpoint(self), asy_code_name(nack->code), nack->reason ? nack->reason : "",
           self->config->agent_id, self->config->site_id, S_SOFTWARE);
    return true;
}

static void s_on_nack(s_forwarder_t *self, const asy_nack_t *nack)
{
    const char *name = asy_code_name(nack->code);
    const char *reason = nack->reason ? nack->reason : "";
    if (s_nack_is_fatal(self, nack))
        return;
    if (self->state == S_HELLO_SENT) {
        if (nack->code == ASY_CODE_NOT_WELCOMED)
            return;  /* a late answer to a PUBLISH sent before our HELLO */
        char why[320];
        snprintf(why, sizeof why, "HELLO refused: %s: %s", name, reason);
        s_disconnect(self, why, nack->code == ASY_CODE_RETRY_LATER ? nack->retry_after_ms : 0);
        return;
    }
    if (!s_take_answered(self, nack->first_seq)) {
        asy_debug("ignoring %s for seq %llu sent before a rewind", name,
                  (unsigned long long) nack->first_seq);
        return;
    }
    switch (nack->code) {
    case ASY_CODE_NOT_WELCOMED:
        asy_warn("%s has forgotten this session (%s): saying HELLO again", s_endpoint(self),
                 reason);
        if (s_send_hello(self) != 0)
            s_disconnect(self, "cannot send HELLO", 0);
        break;
    case ASY_CODE_SEQ_GAP:
        asy_warn("centre expects seq %llu (sent %llu): resending from there",
                 (unsigned long long) nack->expected_seq, (unsigned long long) nack->first_seq);
        s_rewind(self, nack->expected_seq ? nack->expected_seq : self->acked_seq + 1);
        break;
    case ASY_CODE_RETRY_LATER: {
        uint32_t wait = nack->retry_after_ms ? nack->retry_after_ms : 1000;
        asy_warn("centre asks to retry in %u ms: %s", wait, reason);
        self->paused_until = self->now + wait;
        s_rewind(self, self->acked_seq + 1);
        break;
    }
    case ASY_CODE_MALFORMED_FRAME:
    case ASY_CODE_FRAME_TOO_LARGE:
    case ASY_CODE_BATCH_TOO_LARGE:
        self->batch_max = self->batch_max > 1 ? self->batch_max / 2 : 1;
        asy_warn("centre refused a batch (%s: %s): batch size now %u, resending", name, reason,
                 self->batch_max);
        s_rewind(self, self->acked_seq + 1);
        break;
    default:
        asy_warn("unexpected NACK %s: %s; resending after 1 s", name, reason);
        self->paused_until = self->now + 1000;
        s_rewind(self, self->acked_seq + 1);
        break;
    }
}

static void s_on_message(s_forwarder_t *self, const uint8_t *data, size_t size)
{
    s_note_contact(self);
    asy_frame_t frame;
    if (asy_frame_decode(&frame, data, size) != 0) {
        asy_warn("ignoring an undecodable frame of %zu bytes from %s%s", size, s_endpoint(self),
                 self->state == S_HELLO_SENT
                     ? ": not an ASP answer (is it the broker's ingest endpoint, not one of "
                       "its monitor ports?)"
                     : "");
        asy_frame_release(&frame);
        return;
    }
    if (frame.type == ASY_FRAME_WELCOME || frame.type == ASY_FRAME_ACK ||
        frame.type == ASY_FRAME_NACK)
        self->last_answer = self->now;
    switch (frame.type) {
    case ASY_FRAME_WELCOME:
        s_on_welcome(self, &frame.u.welcome);
        break;
    case ASY_FRAME_ACK:
        s_on_ack(self, &frame.u.ack);
        break;
    case ASY_FRAME_NACK:
        s_on_nack(self, &frame.u.nack);
        break;
    case ASY_FRAME_HEARTBEAT:
        break;
    default:
        asy_warn("ignoring an unexpected frame (type %d) from %s", frame.type, s_endpoint(self));
        break;
    }
    asy_frame_release(&frame);
}

/* Handles every message waiting on the socket. */
static void s_receive_all(s_forwarder_t *self)
{
    zsock_t *socket = self->socket;
    while (self->socket == socket && socket && !self->done) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, zsock_resolve(socket), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        bool more = zmq_msg_more(&msg);
        s_on_message(self, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
        /* One frame per message: extra parts are not ours to read. */
        while (more && self->socket == socket) {
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, zsock_resolve(socket), 0) < 0)
                more = false;
            else
                more = zmq_msg_more(&msg);
            zmq_msg_close(&msg);
        }
    }
}

/* ------------------------------------------------------------------------------------------
   Sending batches. */

static int s_take_row(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    s_forwarder_t *self = arg;
    if (self->first_row_seq == 0)
        self->first_row_seq = seq;
    if (seq != self->next_seq + self->event_count)
        return 1;  /* a hole: never send past it */
    size_t need = self->bytes_used + size;
    size_t frame = need + (self->event_count + 1) * S_EVENT_OVERHEAD + S_FRAME_OVERHEAD;
    if (self->event_count > 0 && frame > self->max_frame_bytes)
        return 1;
    if (need > self->bytes_capacity) {
        size_t capacity = self->bytes_capacity ? self->bytes_capacity : 65536;
        while (capacity < need)
            capacity *= 2;
        uint8_t *bytes = realloc(self->bytes, capacity);
        if (!bytes) {
            self->read_error = ASY_ENOMEM;
            return 1;
        }
        self->bytes = bytes;
        self->bytes_capacity = capacity;
    }
    memcpy(self->bytes + self->bytes_used, data, size);
    self->bytes_used += size;
    self->sizes[self->event_count++] = size;
    return 0;
}

/* Reads up to batch_max events from next_seq into the batch buffer. Returns 0 (the batch may
   be empty) or a negative code. */
static int s_read_batch(s_forwarder_t *self)
{
    self->bytes_used = 0;
    self->event_count = 0;
    self->first_row_seq = 0;
    self->read_error = 0;
    size_t visited = 0;
    int rc = asy_outbox_read(self->outbox, self->next_seq, self->batch_max, s_take_row, self,
                             &visited);
    if (rc == 0)
        rc = self->read_error;
    if (rc != 0) {
        asy_error("cannot read the outbox: %s",
                  rc == ASY_ENOMEM ? "out of memory" : asy_outbox_errmsg(self->outbox));
        return rc;
    }
    size_t offset = 0;
    for (size_t i = 0; i < self->event_count; i++) {
        self->events[i] = (asy_bytes_t){self->bytes + offset, self->sizes[i]};
        offset += self->sizes[i];
    }
    return 0;
}

/* Sends one PUBLISH from next_seq. Returns 0 if sent, non-zero if nothing was sent. */
static int s_send_batch(s_forwarder_t *self)
{
    if (s_read_batch(self) != 0) {
        self->paused_until = self->now + 1000;
        return ASY_EDB;
    }
    if (self->event_count == 0) {
        if (self->first_row_seq > self->next_seq) {
            s_problem(self,
                      "the outbox no longer holds seq %llu..%llu (pruned after an earlier "
                      "acknowledgement) but the centre needs them; retrying in %d s. If the "
                      "centre's database was restored from an older backup, stop this agent "
                      "and run `advsync-agent reissue` (deploy/README.md)",
                      (unsigned long long)self->next_seq,
                      (unsigned long long)self->first_row_seq - 1, S_GAP_PAUSE_MS / 1000);
            self->paused_until = self->now + S_GAP_PAUSE_MS;
        }
        return ASY_ENOTFOUND;
    }
    asy_frame_t frame = {.type = ASY_FRAME_PUBLISH};
    frame.u.publish = (asy_publish_t){.agent_id = self->config->agent_id,
                                      .epoch = self->epoch,
                                      .first_seq = self->next_seq,
                                      .count = self->event_count,
                                      .events = self->events};
    if (s_send_frame(self, &frame) != 0) {
        s_disconnect(self, "cannot send PUBLISH", 0);
        return ASY_EIO;
    }
    uint64_t last = self->next_seq + self->event_count - 1;
    self->flights[self->flight_count++] =
        (s_flight_t){self->next_seq, last, self->now, self->generation};
    asy_debug("sent PUBLISH seq %llu..%llu", (unsigned long long) self->next_seq,
              (unsigned long long) last);
    self->next_seq = last + 1;
    return 0;
}

/* Sends batches while the window has room: full batches at once, a short batch once it has
   waited batch_ms for more events. */
static void s_pump(s_forwarder_t *self)
{
    /* Every answer is in yet not everything sent is committed (answers lost or refused
       without a rewind): resend what is missing rather than wait for ever. */
    if (self->state == S_STREAMING && self->flight_count == 0 &&
        self->next_seq > self->acked_seq + 1 && self->now >= self->paused_until)
        s_rewind(self, self->acked_seq + 1);
    while (self->state == S_STREAMING && !self->done && self->stop_at == 0 &&
           self->flight_count < self->window && self->now >= self->paused_until) {
        uint64_t waiting = self->last_seq >= self->next_seq ? self->last_seq - self->next_seq + 1 : 0;
        if (waiting < self->batch_max && self->now - self->last_refresh >= s_refresh_every(self)) {
            s_refresh(self);
            waiting = self->last_seq >= self->next_seq ? self->last_seq - self->next_seq + 1 : 0;
        }
        if (waiting == 0) {
            self->fill_since = 0;
            return;
        }
        if (waiting < self->batch_max) {
            if (self->fill_since == 0)
                self->fill_since = self->now;
            if (self->now - self->fill_since < self->batch_ms)
                return;
        }
        if (s_send_batch(self) != 0)
            return;
        self->fill_since = 0;
    }
}

/* ------------------------------------------------------------------------------------------
   Time. */

static void s_check_liveness(s_forwarder_t *self)
{
    char why[160];
    if (self->state == S_HELLO_SENT) {
        int64_t limit = self->ack_timeout_ms < S_WELCOME_TIMEOUT_MS ? self->ack_timeout_ms
                                                                     : S_WELCOME_TIMEOUT_MS;
        if (self->now - self->hello_sent >= limit) {
            snprintf(why, sizeof why,
                     "no WELCOME within %lld ms (the broker is down, unreachable or busy, or "
                     "this is not its ingest endpoint)",
                     (long long)limit);
            s_disconnect(self, why, 0);
        }
        return;
    }
    if (self->state != S_STREAMING)
        return;
    if (self->flight_count > 0) {
        /* Heartbeat echoes do not count here: a broker restarted at the same address answers
           them (ZeroMQ reconnects the old socket to it) but will never answer our batches. */
        int64_t since = self->last_answer > self->flights[0].sent_ms ? self->last_answer
                                                                     : self->flights[0].sent_ms;
        if (self->now - since >= self->ack_timeout_ms) {
            snprintf(why, sizeof why, "no answer for %u ms with %zu batches unacknowledged",
                     self->ack_timeout_ms, self->flight_count);
            s_disconnect(self, why, 0);
        }
        return;
    }
    int64_t idle_limit = (int64_t) S_IDLE_HEARTBEATS * self->heartbeat_ms;
    if (self->now - self->last_received >= idle_limit) {
        snprintf(why, sizeof why, "nothing heard for %lld ms (%d heartbeat intervals)",
                 (long long) idle_limit, S_IDLE_HEARTBEATS);
        s_disconnect(self, why, 0);
    }
}

static void s_heartbeat(s_forwarder_t *self)
{
    if (self->state == S_STREAMING && self->now - self->last_sent >= self->heartbeat_ms)
        s_send_heartbeat(self);
}

static void s_report(s_forwarder_t *self)
{
    if (self->now < self->next_report)
        return;
    double seconds = (S_REPORT_MS + (self->now - self->next_report)) / 1000.0;
    asy_info("rate: %.1f events/s acknowledged; backlog %llu; %zu batches in flight",
             (double) (self->acked_total - self->acked_at_report) / seconds,
             (unsigned long long) s_backlog(self), self->flight_count);
    self->acked_at_report = self->acked_total;
    self->next_report = self->now + S_REPORT_MS;
}

/* Drained: nothing in the outbox the centre has not committed, nothing in flight. Looks at the
   outbox again before saying so, since another process may just have submitted. */
static bool s_drained(s_forwarder_t *self)
{
    if (self->flight_count > 0 || self->acked_seq < self->last_seq || self->unsaved_ack)
        return false;
    s_refresh(self);
    return self->acked_seq >= self->last_seq;
}

static void s_begin_stop(s_forwarder_t *self, const char *why)
{
    asy_info("stopping (%s): waiting up to %d ms for %zu unacknowledged batches", why,
             S_STOP_GRACE_MS, self->flight_count);
    self->stop_at = self->now + S_STOP_GRACE_MS;
}

/* How long to wait on the socket: short when there is sending to do, else until the next
   timer; never long, so signals and deadlines are noticed. */
static long s_poll_timeout(const s_forwarder_t *self)
{
    int64_t timeout = 50;
    if (self->state == S_STREAMING && self->flight_count < self->window && self->stop_at == 0)
        timeout = self->last_refresh + s_refresh_every(self) - self->now;
    if (self->fill_since != 0 && self->fill_since + self->batch_ms - self->now < timeout)
        timeout = self->fill_since + self->batch_ms - self->now; /* a short batch waits */
    if (timeout < 1)
        timeout = 1; /* what is due happens on this turn: never spin (a pause may hold it) */
    if (self->state == S_CONNECTING)
        timeout = self->connect_at - self->now;
    if (timeout > 50)
        timeout = 50;
    return timeout > 0 ? (long) timeout : 0;
}

/* One turn of the loop: timers, sending, then waiting for the socket. */
static void s_turn(s_forwarder_t *self)
{
    if (self->state == S_CONNECTING && self->now >= self->connect_at)
        s_connect(self);
    s_check_liveness(self);
    s_check_outbox_identity(self);
    s_save_ack(self, false);
    s_pump(self);
    s_heartbeat(self);
    s_report(self);
    long timeout = s_poll_timeout(self);
    if (!self->socket) {
        zclock_sleep((int) timeout);
        return;
    }
    zmq_pollitem_t item = {zsock_resolve(self->socket), 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, timeout);
    self->now = zclock_mono();
    if (rc > 0)
        s_receive_all(self);
}

static bool s_should_exit(s_forwarder_t *self)
{
    if (self->done)
        return true;
    if (s_signal_received && self->stop_at == 0)
        s_begin_stop(self, s_signal_received == SIGINT ? "SIGINT" : "SIGTERM");
    if (self->options.run_for_ms > 0 && self->stop_at == 0 &&
        self->now - self->started >= self->options.run_for_ms) {
        if (self->options.until_drained && !s_drained(self)) {
            /* a script must tell "drained" from "gave up" */
            if (self->last_seq > self->acked_seq)
                asy_warn("--for elapsed before the outbox drained (%llu event(s) not "
                         "acknowledged)",
                         (unsigned long long)(self->last_seq - self->acked_seq));
            else
                asy_warn("--for elapsed before the outbox drained: the centre has every event, "
                         "but the outbox could not record its acknowledgement up to seq %llu "
                         "(%s); the next run sends those events again and the centre counts "
                         "them as already there",
                         (unsigned long long)self->unsaved_ack, asy_outbox_errmsg(self->outbox));
            self->exit_code = 1;
        }
        s_begin_stop(self, "--for elapsed");
    }
    if (self->stop_at != 0)
        return self->flight_count == 0 || self->now >= self->stop_at ||
               self->state != S_STREAMING;
    if (self->options.until_drained && s_drained(self)) {
        asy_info("drained: the centre has committed every event of this outbox");
        return true;
    }
    if (self->options.until_drained && self->flight_count == 0 &&
        self->acked_seq >= self->last_seq && self->unsaved_ack &&
        self->now - self->ack_failing_since >= S_ACK_GIVE_UP_MS) {
        /* drained at the centre, but not in the outbox: waiting longer would not end */
        asy_error("the centre has committed every event of this outbox, but the outbox could "
                  "not record it for %d s (%s): giving up; the next run sends those events "
                  "again and the centre counts them as already there",
                  S_ACK_GIVE_UP_MS / 1000, asy_outbox_errmsg(self->outbox));
        self->exit_code = 1;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------
   Set-up and tear-down. */

static void s_destroy(s_forwarder_t *self)
{
    zsock_destroy(&self->socket);
    asy_outbox_destroy(&self->outbox);
    free(self->bytes);
    free(self->sizes);
    free(self->events);
}

static int s_init(s_forwarder_t *self, const asy_agent_config_t *config,
                  const asy_forward_options_t *options)
{
    memset(self, 0, sizeof *self);
    self->config = config;
    self->options = *options;
    if (config->endpoint_count < 1 || config->endpoint_count > ASY_AGENT_MAX_ENDPOINTS) {
        asy_error("no broker endpoint configured (--endpoint or agent/endpoint in the config)");
        return ASY_ECONFIG;
    }
    char error[512] = "";
    if (options->until_drained && access(config->outbox_path, F_OK) != 0) {
        /* a one-off drain of a file that is not there is a mistyped path, not a success (the
           service, without --until-drained, may start before the first submit creates it) */
        asy_error("no outbox at %s to drain: nothing has been submitted there yet, or --outbox "
                  "(or agent/outbox) names another file",
                  config->outbox_path);
        return ASY_ECONFIG;
    }
    self->outbox = asy_outbox_open_claimed(config->outbox_path, config->agent_id, config->site_id,
                                           error, sizeof error);
    if (!self->outbox) {
        asy_error("cannot open the outbox %s: %s", config->outbox_path, error);
        return asy_outbox_open_failed_on_storage() ? ASY_ERETRY : ASY_EDB;
    }
    self->problem_noted = true; /* an earlier run's, if any, goes with the first ACK */
    /* a submitter holding the lock must not stall the loop (heartbeats, signals) for 10 s at a
       time: a save that fails is retried with the back-off of s_save_ack */
    asy_outbox_set_busy_timeout(self->outbox, S_RUN_BUSY_MS);
    uint32_t batch = config->batch_max ? config->batch_max : ASY_MAX_BATCH_EVENTS;
    self->event_capacity = batch < ASY_MAX_BATCH_EVENTS ? batch : ASY_MAX_BATCH_EVENTS;
    self->sizes = calloc(self->event_capacity, sizeof *self->sizes);
    self->events = calloc(self->event_capacity, sizeof *self->events);
    if (!self->sizes || !self->events) {
        asy_error("out of memory");
        return ASY_ENOMEM;
    }
    self->batch_max = (uint32_t) self->event_capacity;
    self->batch_ms = config->batch_ms;
    self->window = config->window ? config->window : ASY_DEFAULT_WINDOW;
    self->ack_timeout_ms = config->ack_timeout_ms ? config->ack_timeout_ms : 5000;
    self->heartbeat_ms = ASY_DEFAULT_HEARTBEAT_MS;
    self->max_frame_bytes = ASY_MAX_FRAME_BYTES;
    self->epoch = asy_outbox_epoch(self->outbox);
    asy_outbox_status_t status;
    if (asy_outbox_status(self->outbox, &status) != 0) {
        asy_error("cannot read the outbox %s: %s", config->outbox_path,
                  asy_outbox_errmsg(self->outbox));
        return ASY_EDB;
    }
    self->last_seq = status.last_seq;
    self->acked_seq = self->saved_ack = status.acked_seq;
    self->next_seq = status.acked_seq + 1;
    self->reissue_of_epoch = status.reissue_of_epoch;
    self->reissue_from_seq = status.reissue_from_seq;
    self->reissue_last_seq = status.reissue_last_seq;
    if (s_reissuing(self))
        asy_info("epoch %llu re-issues seqs %llu.. of epoch %llu (its seqs 1..%llu): the centre "
                 "acknowledges those it already holds without storing them again",
                 (unsigned long long)self->epoch, (unsigned long long)self->reissue_from_seq,
                 (unsigned long long)self->reissue_of_epoch,
                 (unsigned long long)self->reissue_last_seq);
    self->now = self->started = self->last_new_event = zclock_mono();
    self->backoff = S_BACKOFF_MIN_MS;
    self->next_report = self->now + S_REPORT_MS;
    return 0;
}

int asy_forward_run(const asy_agent_config_t *config, const asy_forward_options_t *options)
{
    s_forwarder_t *self = calloc(1, sizeof *self);
    if (!self) {
        asy_error("out of memory");
        return 1;
    }
    int rc = s_init(self, config, options);
    if (rc != 0) {
        s_destroy(self);
        free(self);
        return rc == ASY_ERETRY ? ASY_RUN_EXIT_TRY_AGAIN : 1;
    }
    asy_info("forwarding outbox %s (agent %s, site %s, epoch %llu): acknowledged up to %llu, "
             "backlog %llu",
             config->outbox_path, config->agent_id, config->site_id,
             (unsigned long long) self->epoch, (unsigned long long) self->acked_seq,
             (unsigned long long) s_backlog(self));
    /* czmq installs its own handlers when first initialised: take ours after it. */
    zsys_init();
    struct sigaction action = {.sa_handler = s_on_signal}, old_int, old_term;
    sigemptyset(&action.sa_mask);
    s_signal_received = 0;
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);

    while (true) {
        self->now = zclock_mono();
        if (s_should_exit(self))
            break;
        s_turn(self);
    }
    s_save_ack(self, true);
    char unsaved[160] = "";
    if (self->unsaved_ack)
        snprintf(unsaved, sizeof unsaved,
                 " (the outbox could not record the acknowledgement of %llu of them: the next "
                 "run sends them again)",
                 (unsigned long long)(self->unsaved_ack - self->saved_ack));
    asy_info("exit: %llu events acknowledged%s (%llu quarantined, %llu already at the centre) "
             "in %.1f s; backlog %llu; %llu reconnects",
             (unsigned long long)self->acked_total, unsaved,
             (unsigned long long)self->rejected_total, (unsigned long long)self->duplicates_total,
             (double)(zclock_mono() - self->started) / 1000.0, (unsigned long long)s_backlog(self),
             (unsigned long long)self->reconnects);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    int exit_code = self->exit_code;
    s_destroy(self);
    free(self);
    return exit_code;
}
