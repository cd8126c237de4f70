/*  forward.c: `advsync-agent run`, the agent side of the advsync protocol.

    A small state machine over one DEALER socket:
      CONNECTING  -> (connect, send HELLO)                    -> HELLO_SENT
      HELLO_SENT  -> WELCOME: ack committed, resume after it  -> STREAMING
      STREAMING   -> PUBLISH while fewer than `window` batches are unacknowledged;
                     ACK prunes the outbox; NACK rewinds, waits, re-HELLOs or gives up.
    Any silence longer than the liveness limits, or a NACK during HELLO, destroys the socket
    and goes back to CONNECTING on the next endpoint after an exponential backoff. Resending
    is always safe: the centre de-duplicates by (agent, epoch, seq) and re-acknowledges.

    Here: the loop, the connection, the timers, set-up and tear-down. What the centre says is
    handled in forward_receive.c, batches are built and sent in forward_batch.c, and the flags
    of `run` are read in forward_args.c.  */
#include "forward_private.h"

#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_WELCOME_TIMEOUT_MS 2000
#define S_BACKOFF_MAX_MS 5000
#define S_STOP_GRACE_MS 1000
#define S_REPORT_MS 10000
#define S_IDLE_AFTER_MS 1000 /* no new event this long: look for them less often */
#define S_IDLE_REFRESH_MS 50
#define S_RUN_BUSY_MS 200        /* the outbox lock wait of this loop's writes */
#define S_ACK_GIVE_UP_MS 60000   /* --until-drained: drained at the centre, not in the outbox */
#define S_IDLE_HEARTBEATS 3
#define S_IDENTITY_CHECK_MS 1000 /* how often the outbox path is checked to be our file */

static volatile sig_atomic_t s_signal_received;

static void s_on_signal(int signo)
{
    s_signal_received = signo;
}

uint64_t asy_forward_backlog(const asy_forwarder_t *self)
{
    return self->last_seq > self->acked_seq ? self->last_seq - self->acked_seq : 0;
}

const char *asy_forward_endpoint(const asy_forwarder_t *self)
{
    return self->config->endpoints[self->endpoint];
}

/* Logs an error that keeps events from the centre, and records it in the outbox, where
   `status` shows it until the centre acknowledges something again: an operator watching
   status saw a healthy backlog while run logged, say, that the centre's database had been
   restored. */
static void s_vproblem(asy_forwarder_t *self, const char *format, va_list args)
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

void asy_forward_problem(asy_forwarder_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    s_vproblem(self, format, args);
    va_end(args);
}

/* asy_forward_problem, and run stops with exit 1. */
void asy_forward_stop(asy_forwarder_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    s_vproblem(self, format, args);
    va_end(args);
    self->exit_code = 1;
    self->done = true;
}

static void s_begin_stop(asy_forwarder_t *self, const char *why);

/* Reads the outbox's highest seq. A failure is logged and the old value kept: the outbox is
   local and a busy moment (another process submitting) passes. */
void asy_forward_refresh(asy_forwarder_t *self)
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
static void s_check_outbox_identity(asy_forwarder_t *self)
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
int64_t asy_forward_refresh_every(const asy_forwarder_t *self)
{
    int64_t busy = self->batch_ms > 0 ? self->batch_ms : 1;
    return self->now - self->last_new_event >= S_IDLE_AFTER_MS && busy < S_IDLE_REFRESH_MS
               ? S_IDLE_REFRESH_MS
               : busy;
}

/* Encodes and sends one frame without blocking. Returns 0 or ASY_EIO. */
int asy_forward_send_frame(asy_forwarder_t *self, asy_frame_t *frame)
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
        asy_warn("cannot send to %s: %s", asy_forward_endpoint(self), zmq_strerror(errno));
        return ASY_EIO;
    }
    self->last_sent = self->now;
    return 0;
}

/* True while re-issued events (PROTOCOL.md 5.5) may still be unacknowledged: the HELLO
   says which epoch they came from, and the WELCOME must say the centre will check them. */
bool asy_forward_reissuing(const asy_forwarder_t *self)
{
    return self->reissue_of_epoch && self->acked_seq < self->reissue_last_seq;
}

int asy_forward_send_hello(asy_forwarder_t *self)
{
    asy_forward_refresh(self);
    asy_frame_t frame = {.type = ASY_FRAME_HELLO};
    bool reissuing = asy_forward_reissuing(self);
    frame.u.hello = (asy_hello_t){.version_min = 1,
                                  .version_max = ASY_PROTOCOL_VERSION,
                                  .agent_id = self->config->agent_id,
                                  .site_id = self->config->site_id,
                                  .epoch = self->epoch,
                                  .last_seq = self->last_seq,
                                  .software = ASY_FORWARD_SOFTWARE,
                                  .reissue_of_epoch = reissuing ? self->reissue_of_epoch : 0,
                                  .reissue_from_seq = reissuing ? self->reissue_from_seq : 0};
    self->version = 0;
    self->flight_count = 0;
    self->state = ASY_FORWARD_HELLO_SENT;
    self->hello_sent = self->now;
    /* Silence is measured from the HELLO, not from the previous connection's last message. */
    self->last_received = self->now;
    self->last_answer = self->now;
    return asy_forward_send_frame(self, &frame);
}

static void s_send_heartbeat(asy_forwarder_t *self)
{
    asy_frame_t frame = {.type = ASY_FRAME_HEARTBEAT};
    frame.u.heartbeat.sent_at_ms = zclock_time();
    (void)asy_forward_send_frame(self, &frame);
}

/* Drops the connection; the next one goes to the next endpoint after the backoff. */
void asy_forward_disconnect(asy_forwarder_t *self, const char *reason, int64_t at_least_ms)
{
    zsock_destroy(&self->socket);
    self->state = ASY_FORWARD_CONNECTING;
    self->flight_count = 0;
    self->fill_since = 0;
    self->reconnects++;
    int64_t delay = self->backoff > at_least_ms ? self->backoff : at_least_ms;
    asy_warn("disconnecting from %s: %s; reconnecting in %lld ms", asy_forward_endpoint(self),
             reason, (long long)delay);
    self->endpoint = (self->endpoint + 1) % self->config->endpoint_count;
    self->connect_at = self->now + delay;
    self->backoff = self->backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff * 2;
}

static void s_connect(asy_forwarder_t *self)
{
    const char *endpoint = asy_forward_endpoint(self);
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
        asy_forward_disconnect(self, "bad endpoint", 0);
        return;
    }
    asy_info("connecting to %s", endpoint);
    if (asy_forward_send_hello(self) != 0)
        asy_forward_disconnect(self, "cannot send HELLO", 0);
}

/* ------------------------------------------------------------------------------------------
   Time. */

static void s_check_liveness(asy_forwarder_t *self)
{
    char why[160];
    if (self->state == ASY_FORWARD_HELLO_SENT) {
        int64_t limit = self->ack_timeout_ms < S_WELCOME_TIMEOUT_MS ? self->ack_timeout_ms
                                                                     : S_WELCOME_TIMEOUT_MS;
        if (self->now - self->hello_sent >= limit) {
            snprintf(why, sizeof why,
                     "no WELCOME within %lld ms (the broker is down, unreachable or busy, or "
                     "this is not its ingest endpoint)",
                     (long long)limit);
            asy_forward_disconnect(self, why, 0);
        }
        return;
    }
    if (self->state != ASY_FORWARD_STREAMING)
        return;
    if (self->flight_count > 0) {
        /* Heartbeat echoes do not count here: a broker restarted at the same address answers
           them (ZeroMQ reconnects the old socket to it) but will never answer our batches. */
        int64_t since = self->last_answer > self->flights[0].sent_ms ? self->last_answer
                                                                     : self->flights[0].sent_ms;
        if (self->now - since >= self->ack_timeout_ms) {
            snprintf(why, sizeof why, "no answer for %u ms with %zu batches unacknowledged",
                     self->ack_timeout_ms, self->flight_count);
            asy_forward_disconnect(self, why, 0);
        }
        return;
    }
    int64_t idle_limit = (int64_t) S_IDLE_HEARTBEATS * self->heartbeat_ms;
    if (self->now - self->last_received >= idle_limit) {
        snprintf(why, sizeof why, "nothing heard for %lld ms (%d heartbeat intervals)",
                 (long long) idle_limit, S_IDLE_HEARTBEATS);
        asy_forward_disconnect(self, why, 0);
    }
}

static void s_heartbeat(asy_forwarder_t *self)
{
    if (self->state == ASY_FORWARD_STREAMING && self->now - self->last_sent >= self->heartbeat_ms)
        s_send_heartbeat(self);
}

static void s_report(asy_forwarder_t *self)
{
    if (self->now < self->next_report)
        return;
    double seconds = (S_REPORT_MS + (self->now - self->next_report)) / 1000.0;
    /* `status` reads the outbox: say so when it is behind what the centre acknowledged */
    char unsaved[128] = "";
    if (self->unsaved_ack)
        snprintf(unsaved, sizeof unsaved, " (%llu acknowledged but not yet recorded in the outbox)",
                 (unsigned long long)(self->unsaved_ack - self->saved_ack));
    asy_info("rate: %.1f events/s acknowledged; backlog %llu%s; %zu batches in flight",
             (double)(self->acked_total - self->acked_at_report) / seconds,
             (unsigned long long)asy_forward_backlog(self), unsaved, self->flight_count);
    self->acked_at_report = self->acked_total;
    self->next_report = self->now + S_REPORT_MS;
}

/* Drained: nothing in the outbox the centre has not committed, nothing in flight. Looks at the
   outbox again before saying so, since another process may just have submitted. */
static bool s_drained(asy_forwarder_t *self)
{
    if (self->flight_count > 0 || self->acked_seq < self->last_seq || self->unsaved_ack)
        return false;
    asy_forward_refresh(self);
    return self->acked_seq >= self->last_seq;
}

static void s_begin_stop(asy_forwarder_t *self, const char *why)
{
    asy_info("stopping (%s): waiting up to %d ms for %zu unacknowledged batches", why,
             S_STOP_GRACE_MS, self->flight_count);
    self->stop_at = self->now + S_STOP_GRACE_MS;
}

/* How long to wait on the socket: short when there is sending to do, else until the next
   timer; never long, so signals and deadlines are noticed. */
static long s_poll_timeout(const asy_forwarder_t *self)
{
    int64_t timeout = 50;
    if (self->state == ASY_FORWARD_STREAMING && self->flight_count < self->window &&
        self->stop_at == 0)
        timeout = self->last_refresh + asy_forward_refresh_every(self) - self->now;
    if (self->fill_since != 0 && self->fill_since + self->batch_ms - self->now < timeout)
        timeout = self->fill_since + self->batch_ms - self->now; /* a short batch waits */
    if (timeout < 1)
        timeout = 1; /* what is due happens on this turn: never spin (a pause may hold it) */
    if (self->state == ASY_FORWARD_CONNECTING)
        timeout = self->connect_at - self->now;
    if (timeout > 50)
        timeout = 50;
    return timeout > 0 ? (long) timeout : 0;
}

/* One turn of the loop: timers, sending, then waiting for the socket. */
static void s_turn(asy_forwarder_t *self)
{
    if (self->state == ASY_FORWARD_CONNECTING && self->now >= self->connect_at)
        s_connect(self);
    s_check_liveness(self);
    s_check_outbox_identity(self);
    asy_forward_save_ack(self, false);
    asy_forward_pump(self);
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
        asy_forward_receive_all(self);
}

static bool s_should_exit(asy_forwarder_t *self)
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
               self->state != ASY_FORWARD_STREAMING;
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

static void s_destroy(asy_forwarder_t *self)
{
    zsock_destroy(&self->socket);
    asy_outbox_destroy(&self->outbox);
    free(self->bytes);
    free(self->sizes);
    free(self->events);
}

/* Opens the outbox claimed, as run needs it. Returns 0, ASY_ECONFIG (nothing to drain),
   ASY_ERETRY (the storage failed in a way that passes) or ASY_EDB, having said why. */
static int s_open_outbox(asy_forwarder_t *self, const asy_agent_config_t *config,
                         const asy_forward_options_t *options)
{
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
       time: a save that fails is retried with the back-off of asy_forward_save_ack */
    asy_outbox_set_busy_timeout(self->outbox, S_RUN_BUSY_MS);
    return 0;
}

/* Reads where the outbox stands: its epoch, last and acknowledged seqs, and what it
   re-issues. Returns 0 or ASY_EDB, having said why. */
static int s_read_outbox_position(asy_forwarder_t *self)
{
    self->epoch = asy_outbox_epoch(self->outbox);
    asy_outbox_status_t status;
    if (asy_outbox_status(self->outbox, &status) != 0) {
        asy_error("cannot read the outbox %s: %s", self->config->outbox_path,
                  asy_outbox_errmsg(self->outbox));
        return ASY_EDB;
    }
    self->last_seq = status.last_seq;
    self->acked_seq = self->saved_ack = status.acked_seq;
    self->next_seq = status.acked_seq + 1;
    self->reissue_of_epoch = status.reissue_of_epoch;
    self->reissue_from_seq = status.reissue_from_seq;
    self->reissue_last_seq = status.reissue_last_seq;
    if (asy_forward_reissuing(self))
        asy_info("epoch %llu re-issues seqs %llu.. of epoch %llu (its seqs 1..%llu): the centre "
                 "acknowledges those it already holds without storing them again",
                 (unsigned long long)self->epoch, (unsigned long long)self->reissue_from_seq,
                 (unsigned long long)self->reissue_of_epoch,
                 (unsigned long long)self->reissue_last_seq);
    return 0;
}

/* Sets the forwarder up: the outbox opened claimed, the batch buffers, the configured limits
   and where the outbox stands. Returns 0 or a negative code, having said why. */
static int s_init(asy_forwarder_t *self, const asy_agent_config_t *config,
                  const asy_forward_options_t *options)
{
    memset(self, 0, sizeof *self);
    self->config = config;
    self->options = *options;
    if (config->endpoint_count < 1 || config->endpoint_count > ASY_AGENT_MAX_ENDPOINTS) {
        asy_error("no broker endpoint configured (--endpoint or agent/endpoint in the config)");
        return ASY_ECONFIG;
    }
    int rc = s_open_outbox(self, config, options);
    if (rc != 0)
        return rc;
    uint32_t batch = config->batch_max ? config->batch_max : ASY_MAX_BATCH_EVENTS;
    self->event_capacity = batch < ASY_MAX_BATCH_EVENTS ? batch : ASY_MAX_BATCH_EVENTS;
    self->sizes = calloc(self->event_capacity, sizeof *self->sizes);
    self->events = calloc(self->event_capacity, sizeof *self->events);
    if (!self->sizes || !self->events) {
        asy_error("out of memory");
        return ASY_ENOMEM;
    }
    self->batch_max = (uint32_t)self->event_capacity;
    self->batch_ms = config->batch_ms;
    self->window = config->window ? config->window : ASY_DEFAULT_WINDOW;
    self->ack_timeout_ms = config->ack_timeout_ms ? config->ack_timeout_ms : 5000;
    self->heartbeat_ms = ASY_DEFAULT_HEARTBEAT_MS;
    self->max_frame_bytes = ASY_MAX_FRAME_BYTES;
    rc = s_read_outbox_position(self);
    if (rc != 0)
        return rc;
    self->now = self->started = self->last_new_event = zclock_mono();
    self->backoff = ASY_FORWARD_BACKOFF_MIN_MS;
    self->next_report = self->now + S_REPORT_MS;
    return 0;
}

int asy_forward_run(const asy_agent_config_t *config, const asy_forward_options_t *options)
{
    asy_forwarder_t *self = calloc(1, sizeof *self);
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
             (unsigned long long)self->epoch, (unsigned long long)self->acked_seq,
             (unsigned long long)asy_forward_backlog(self));
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
    asy_forward_save_ack(self, true);
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
             (double)(zclock_mono() - self->started) / 1000.0,
             (unsigned long long)asy_forward_backlog(self), (unsigned long long)self->reconnects);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    int exit_code = self->exit_code;
    s_destroy(self);
    free(self);
    return exit_code;
}
