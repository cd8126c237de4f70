/*  forward_batch.c: reading PUBLISH batches from the outbox and sending them while the
    window has room. forward.c has the loop and the connection.  */
#include "forward_private.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

#define S_GAP_PAUSE_MS 5000
/* Room left in a PUBLISH for its header and the tag and length of each event. */
#define S_FRAME_OVERHEAD 1024u
#define S_EVENT_OVERHEAD 16u

/* Resends from seq. What is in flight stays counted in the window until answered, but its
   answers no longer steer us. */
void asy_forward_rewind(asy_forwarder_t *self, uint64_t seq)
{
    self->generation++;
    self->fill_since = 0;
    self->next_seq = seq > 0 ? seq : 1;
}

static int s_take_row(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    asy_forwarder_t *self = arg;
    if (self->first_row_seq == 0)
        self->first_row_seq = seq;
    if (seq != self->next_seq + self->event_count)
        return 1; /* a hole: never send past it */
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
static int s_read_batch(asy_forwarder_t *self)
{
    self->bytes_used = 0;
    self->event_count = 0;
    self->first_row_seq = 0;
    self->read_error = 0;
    size_t visited = 0;
    int rc =
        asy_outbox_read(self->outbox, self->next_seq, self->batch_max, s_take_row, self, &visited);
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
static int s_send_batch(asy_forwarder_t *self)
{
    if (s_read_batch(self) != 0) {
        self->paused_until = self->now + 1000;
        return ASY_EDB;
    }
    if (self->event_count == 0) {
        if (self->first_row_seq > self->next_seq) {
            asy_forward_problem(
                self,
                "the outbox no longer holds seq %llu..%llu (pruned after an earlier "
                "acknowledgement) but the centre needs them; retrying in %d s. If the "
                "centre's database was restored from an older backup, stop this agent "
                "and run `advsync-agent reissue` (deploy/README.md)",
                (unsigned long long)self->next_seq, (unsigned long long)self->first_row_seq - 1,
                S_GAP_PAUSE_MS / 1000);
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
    if (asy_forward_send_frame(self, &frame) != 0) {
        asy_forward_disconnect(self, "cannot send PUBLISH", 0);
        return ASY_EIO;
    }
    uint64_t last = self->next_seq + self->event_count - 1;
    self->flights[self->flight_count++] =
        (asy_forward_flight_t){self->next_seq, last, self->now, self->generation};
    asy_debug("sent PUBLISH seq %llu..%llu", (unsigned long long)self->next_seq,
              (unsigned long long)last);
    self->next_seq = last + 1;
    return 0;
}

/* Sends batches while the window has room: full batches at once, a short batch once it has
   waited batch_ms for more events. */
void asy_forward_pump(asy_forwarder_t *self)
{
    /* Every answer is in yet not everything sent is committed (answers lost or refused
       without a rewind): resend what is missing rather than wait for ever. */
    if (self->state == ASY_FORWARD_STREAMING && self->flight_count == 0 &&
        self->next_seq > self->acked_seq + 1 && self->now >= self->paused_until)
        asy_forward_rewind(self, self->acked_seq + 1);
    while (self->state == ASY_FORWARD_STREAMING && !self->done && self->stop_at == 0 &&
           self->flight_count < self->window && self->now >= self->paused_until) {
        uint64_t waiting =
            self->last_seq >= self->next_seq ? self->last_seq - self->next_seq + 1 : 0;
        if (waiting < self->batch_max &&
            self->now - self->last_refresh >= asy_forward_refresh_every(self)) {
            asy_forward_refresh(self);
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
