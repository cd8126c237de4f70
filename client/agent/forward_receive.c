/*  forward_receive.c: what the forwarder does with what the centre says. WELCOME ends the
    handshake; ACK records what the centre has committed, which prunes the outbox; NACK
    rewinds, waits, says HELLO again or gives up. forward.c has the loop and the connection.  */
#include "forward_private.h"

#include "log.h"

#include <string.h>
#include <strings.h>

#define S_CONTACT_NOTE_MS 1000
#define S_ACK_RETRY_MIN_MS 100   /* a failed save of an acknowledgement: the first retry */
#define S_ACK_RETRY_MAX_MS 10000 /* and the slowest */
#define S_ACK_LOG_EVERY_MS 60000 /* how often a failing save is said again */
#define S_ACK_QUIET_MS 1000      /* a failing save is said once it has lasted this long */

static void s_note_contact(asy_forwarder_t *self)
{
    self->last_received = self->now;
    if (self->now - self->last_contact_note < S_CONTACT_NOTE_MS)
        return;
    self->last_contact_note = self->now;
    if (asy_outbox_note_contact(self->outbox, zclock_time()) != 0)
        asy_debug("cannot note contact in the outbox: %s", asy_outbox_errmsg(self->outbox));
}

/* Takes the flight a NACK answers off the list (the one with first_seq, else the oldest) and
   says whether the NACK is current: it answers a PUBLISH sent since the latest rewind. */
static bool s_take_answered(asy_forwarder_t *self, uint64_t first_seq)
{
    if (self->flight_count == 0)
        return first_seq == 0; /* not about a PUBLISH, e.g. a HEARTBEAT's answer */
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
    memmove(self->flights, self->flights + i + 1,
            self->flight_count * sizeof(asy_forward_flight_t));
    return current;
}

/* Forgets the flights the centre has committed, wherever they are in the list. */
static void s_drop_committed(asy_forwarder_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->flight_count; i++)
        if (self->flights[i].last_seq > self->acked_seq)
            self->flights[kept++] = self->flights[i];
    self->flight_count = kept;
}

static uint32_t s_adopt(uint32_t ours, uint32_t theirs)
{
    return theirs != 0 && theirs < ours ? theirs : ours;
}

/* Records the pending acknowledgement in the outbox (which prunes it). A failure (the file
   locked by a writer for longer than the busy time-out, a full disk) is retried after 100 ms,
   then ever more slowly up to every S_ACK_RETRY_MAX_MS, and said once a minute, not on every
   attempt (the log may be on the same full disk); until then the rows stay, and a restart
   would resend them as harmless duplicates. force: try now, whatever the back-off says. */
void asy_forward_save_ack(asy_forwarder_t *self, bool force)
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
static void s_record_commit(asy_forwarder_t *self, uint64_t seq)
{
    if (seq <= self->acked_seq)
        return;
    if (seq > self->last_seq)
        asy_forward_refresh(self);
    uint64_t upto = seq > self->last_seq ? self->last_seq : seq;
    if (upto > self->acked_seq) {
        self->acked_total += upto - self->acked_seq;
        self->unsaved_ack = upto;
        asy_forward_save_ack(self, false);
    }
    /* The centre has committed these whether or not the outbox could record it: never resend
       them on this connection (the broker answers each PUBLISH once), keep retrying the save. */
    self->acked_seq = seq;
}

/* True if this outbox holds, at the centre's committed seq, an event other than the one the
   centre holds there: the outbox was restored or copied, and submitted to since. Its events
   from that seq on are not the centre's, and acknowledging them would lose them. */
static bool s_diverged(asy_forwarder_t *self, const asy_welcome_t *welcome)
{
    const char *theirs = welcome->committed_event_id;
    if (!theirs || !*theirs || welcome->committed_seq <= self->acked_seq)
        return false; /* nothing said, or a seq this outbox has already pruned */
    char ours[ASY_UUID_TEXT + 1];
    if (asy_outbox_event_id(self->outbox, welcome->committed_seq, ours) != 0 || !ours[0])
        return false; /* no such row here: nothing to compare */
    return strcasecmp(ours, theirs) != 0;
}

/* A WELCOME this agent cannot stream on: a protocol version it does not speak, or a broker
   that does not confirm that it drops the re-issued events it holds. Stops run, saying why,
   and returns true; reads the outbox's highest seq before the second check. */
static bool s_welcome_unusable(asy_forwarder_t *self, const asy_welcome_t *welcome)
{
    if (welcome->version < 1 || welcome->version > ASY_PROTOCOL_VERSION) {
        asy_forward_stop(
            self, "%s chose protocol version %u; this agent speaks 1..%u: upgrade the agent",
            asy_forward_endpoint(self), welcome->version, (unsigned)ASY_PROTOCOL_VERSION);
        return true;
    }
    asy_forward_refresh(self);
    if (asy_forward_reissuing(self) && welcome->committed_seq < self->reissue_last_seq &&
        welcome->reissue_of_epoch != self->reissue_of_epoch) {
        /* an older broker: it would store again what it already holds under the old epoch */
        asy_forward_stop(
            self,
            "%s did not confirm that it drops the re-issued events it already holds "
            "(epoch %llu re-issues epoch %llu): its advsyncd predates re-issued epochs. "
            "Upgrade the centre's brokers first; nothing was sent; stopping",
            asy_forward_endpoint(self), (unsigned long long)self->epoch,
            (unsigned long long)self->reissue_of_epoch);
        return true;
    }
    return false;
}

/* True, having stopped run, if the WELCOME shows this outbox to be a restored or copied one:
   the centre has committed more than it holds, or another event at the committed seq. */
static bool s_outbox_copied(asy_forwarder_t *self, const asy_welcome_t *welcome)
{
    uint64_t committed = welcome->committed_seq;
    if (committed > self->last_seq) {
        /* The outbox is older than the centre's record of it (restored from a backup, or a
           copy): its newer seqs may hold events the centre has never seen, and events
           submitted from now on would get seqs the centre already has. Stop rather than lose
           them, and say not to delete the file: it may hold the only copy of some events. */
        asy_forward_stop(
            self,
            "the centre has committed seq %llu of epoch %llu but this outbox holds only "
            "up to %llu: %s is older than the centre's record of it (restored from a "
            "backup, or copied from another machine). Do not delete it and do not submit "
            "to it: events appended since the copy was made may not be at the centre. "
            "Run `advsync-agent reissue` to send them under a new epoch (see "
            "deploy/README.md, 'Outboxes: never restore or copy one'); stopping",
            (unsigned long long)committed, (unsigned long long)self->epoch,
            (unsigned long long)self->last_seq, self->config->outbox_path);
        return true;
    }
    if (s_diverged(self, welcome)) {
        asy_forward_stop(
            self,
            "the centre's event at seq %llu of epoch %llu is %s, but this outbox holds "
            "another one there: %s was restored from a backup or copied, and events were "
            "submitted to it since, under seqs the centre had already used. Some of its "
            "events after seq %llu are not at the centre. Do not delete it and do not submit to "
            "it: run `advsync-agent reissue` to send them under a new epoch (see "
            "deploy/README.md, 'Outboxes: never restore or copy one'); stopping",
            (unsigned long long)committed, (unsigned long long)self->epoch,
            welcome->committed_event_id, self->config->outbox_path,
            (unsigned long long)self->acked_seq);
        return true;
    }
    return false;
}

/* Streams from committed + 1 with the limits the WELCOME adopts (the smaller of ours and
   the broker's). */
static void s_start_streaming(asy_forwarder_t *self, const asy_welcome_t *welcome,
                              uint64_t committed)
{
    self->version = welcome->version;
    self->window =
        s_adopt(self->config->window ? self->config->window : ASY_DEFAULT_WINDOW, welcome->window);
    if (self->window > ASY_FORWARD_MAX_WINDOW)
        self->window = ASY_FORWARD_MAX_WINDOW;
    self->batch_max = s_adopt((uint32_t)self->event_capacity, welcome->max_batch_events);
    self->max_frame_bytes = s_adopt(ASY_MAX_FRAME_BYTES, welcome->max_frame_bytes);
    self->heartbeat_ms = welcome->heartbeat_ms ? welcome->heartbeat_ms : ASY_DEFAULT_HEARTBEAT_MS;
    self->state = ASY_FORWARD_STREAMING;
    self->backoff = ASY_FORWARD_BACKOFF_MIN_MS;
    self->flight_count = 0;
    asy_forward_rewind(self, committed + 1);
}

/* The handshake's answer: checked, then what the centre has committed is recorded and
   streaming starts after it. */
static void s_on_welcome(asy_forwarder_t *self, const asy_welcome_t *welcome)
{
    if (self->state != ASY_FORWARD_HELLO_SENT) {
        asy_debug("ignoring a WELCOME outside the handshake");
        return;
    }
    if (s_welcome_unusable(self, welcome) || s_outbox_copied(self, welcome))
        return;
    /* a re-issued epoch: that the centre knows it must be on disk before it publishes, so
       that a later re-issue chains to it rather than past it (asy_outbox_reissue) */
    if (self->reissue_of_epoch && asy_outbox_note_welcome(self->outbox) != 0) {
        char reason[600];
        snprintf(reason, sizeof reason,
                 "cannot record in the outbox that the centre welcomed re-issued epoch %llu (%s)",
                 (unsigned long long)self->epoch, asy_outbox_errmsg(self->outbox));
        asy_forward_disconnect(self, reason, 1000);
        return;
    }
    uint64_t committed = welcome->committed_seq;
    bool restored = committed < self->acked_seq;
    if (restored)
        asy_forward_problem(
            self,
            "the centre has committed only up to seq %llu but acknowledged up to %llu "
            "before (centre database restored?); events after %llu were pruned here",
            (unsigned long long)committed, (unsigned long long)self->acked_seq,
            (unsigned long long)committed);
    /* the centre takes this agent again: what an earlier run or connection recorded is over
       (an idle agent would otherwise show it until its next event is acknowledged); one that
       persists is recorded again when it shows */
    else if (self->problem_noted && asy_outbox_note_problem(self->outbox, NULL, 0) == 0)
        self->problem_noted = false;
    s_record_commit(self, committed);
    s_start_streaming(self, welcome, committed);
    asy_info("welcome from %s: centre committed seq %llu, backlog %llu, window %u, batch %u",
             asy_forward_endpoint(self), (unsigned long long)committed,
             (unsigned long long)asy_forward_backlog(self), self->window, self->batch_max);
}

static void s_on_ack(asy_forwarder_t *self, const asy_ack_t *ack)
{
    if (ack->epoch != 0 && ack->epoch != self->epoch) {
        asy_warn("ignoring an ACK for epoch %llu (ours is %llu)", (unsigned long long)ack->epoch,
                 (unsigned long long)self->epoch);
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
    if (self->state == ASY_FORWARD_STREAMING && self->next_seq <= self->acked_seq)
        asy_forward_rewind(self, self->acked_seq + 1);
}

/* A NACK during the handshake: refused identities end the run, anything else reconnects. */
static bool s_nack_is_fatal(asy_forwarder_t *self, const asy_nack_t *nack)
{
    if (nack->code == ASY_CODE_SEQ_CONFLICT) {
        /* as at a WELCOME that shows another event at the committed seq (s_diverged): the
           events from there on are this copy's own; acknowledging them would lose them */
        asy_forward_stop(
            self,
            "%s holds other events at this outbox's seqs (%s): this outbox was restored "
            "from a backup or copied, and another copy got there first. Nothing more "
            "is sent or pruned; run `advsync-agent reissue` on this outbox, then `run` "
            "again (deploy/README.md, \"Outboxes: never restore or copy one\")",
            asy_forward_endpoint(self), nack->reason ? nack->reason : "");
        return true;
    }
    if (nack->code != ASY_CODE_VERSION && nack->code != ASY_CODE_WRONG_AGENT)
        return false;
    asy_forward_stop(
        self,
        "%s refused this agent (%s): %s; check agent id \"%s\", site \"%s\" and the agent "
        "version (%s); retrying will not help",
        asy_forward_endpoint(self), asy_code_name(nack->code), nack->reason ? nack->reason : "",
        self->config->agent_id, self->config->site_id, ASY_FORWARD_SOFTWARE);
    return true;
}

static void s_on_nack(asy_forwarder_t *self, const asy_nack_t *nack)
{
    const char *name = asy_code_name(nack->code);
    const char *reason = nack->reason ? nack->reason : "";
    if (s_nack_is_fatal(self, nack))
        return;
    if (self->state == ASY_FORWARD_HELLO_SENT) {
        if (nack->code == ASY_CODE_NOT_WELCOMED)
            return; /* a late answer to a PUBLISH sent before our HELLO */
        char why[320];
        snprintf(why, sizeof why, "HELLO refused: %s: %s", name, reason);
        asy_forward_disconnect(self, why,
                               nack->code == ASY_CODE_RETRY_LATER ? nack->retry_after_ms : 0);
        return;
    }
    if (!s_take_answered(self, nack->first_seq)) {
        asy_debug("ignoring %s for seq %llu sent before a rewind", name,
                  (unsigned long long)nack->first_seq);
        return;
    }
    switch (nack->code) {
    case ASY_CODE_NOT_WELCOMED:
        asy_warn("%s has forgotten this session (%s): saying HELLO again",
                 asy_forward_endpoint(self), reason);
        if (asy_forward_send_hello(self) != 0)
            asy_forward_disconnect(self, "cannot send HELLO", 0);
        break;
    case ASY_CODE_SEQ_GAP:
        asy_warn("centre expects seq %llu (sent %llu): resending from there",
                 (unsigned long long)nack->expected_seq, (unsigned long long)nack->first_seq);
        asy_forward_rewind(self, nack->expected_seq ? nack->expected_seq : self->acked_seq + 1);
        break;
    case ASY_CODE_RETRY_LATER: {
        uint32_t wait = nack->retry_after_ms ? nack->retry_after_ms : 1000;
        asy_warn("centre asks to retry in %u ms: %s", wait, reason);
        self->paused_until = self->now + wait;
        asy_forward_rewind(self, self->acked_seq + 1);
        break;
    }
    case ASY_CODE_MALFORMED_FRAME:
    case ASY_CODE_FRAME_TOO_LARGE:
    case ASY_CODE_BATCH_TOO_LARGE:
        self->batch_max = self->batch_max > 1 ? self->batch_max / 2 : 1;
        asy_warn("centre refused a batch (%s: %s): batch size now %u, resending", name, reason,
                 self->batch_max);
        asy_forward_rewind(self, self->acked_seq + 1);
        break;
    default:
        asy_warn("unexpected NACK %s: %s; resending after 1 s", name, reason);
        self->paused_until = self->now + 1000;
        asy_forward_rewind(self, self->acked_seq + 1);
        break;
    }
}

static void s_on_message(asy_forwarder_t *self, const uint8_t *data, size_t size)
{
    s_note_contact(self);
    asy_frame_t frame;
    if (asy_frame_decode(&frame, data, size) != 0) {
        asy_warn("ignoring an undecodable frame of %zu bytes from %s%s", size,
                 asy_forward_endpoint(self),
                 self->state == ASY_FORWARD_HELLO_SENT
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
        asy_warn("ignoring an unexpected frame (type %d) from %s", frame.type,
                 asy_forward_endpoint(self));
        break;
    }
    asy_frame_release(&frame);
}

/* Handles every message waiting on the socket. */
void asy_forward_receive_all(asy_forwarder_t *self)
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
