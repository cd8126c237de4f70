/*  forward_private.h: the forwarder's insides, shared by forward.c (the loop, the connection
    and the timers), forward_receive.c (WELCOME, ACK and NACK) and forward_batch.c (building
    and sending PUBLISH batches). Not for other modules.  */
#ifndef ASY_FORWARD_PRIVATE_H_INCLUDED
#define ASY_FORWARD_PRIVATE_H_INCLUDED

#include "forward.h"

#include <czmq.h>

#define ASY_FORWARD_SOFTWARE "advsync-agent " ASY_VERSION_STRING
#define ASY_FORWARD_BACKOFF_MIN_MS 100
#define ASY_FORWARD_MAX_WINDOW 1024u

typedef enum {
    ASY_FORWARD_CONNECTING,
    ASY_FORWARD_HELLO_SENT,
    ASY_FORWARD_STREAMING
} asy_forward_state_t;

/* One PUBLISH not yet answered. The broker answers each PUBLISH once, in order; a PUBLISH
   sent before the latest rewind (older generation) is still answered, and a NACK for it is
   stale: acting on it would rewind again and again. */
typedef struct {
    uint64_t first_seq;
    uint64_t last_seq;
    int64_t sent_ms;
    uint32_t generation;
} asy_forward_flight_t;

typedef struct {
    const asy_agent_config_t *config;
    asy_forward_options_t options;
    asy_outbox_t *outbox;
    zsock_t *socket;
    asy_forward_state_t state;
    int endpoint;     /* index of the endpoint of the current connection */
    uint32_t version; /* protocol version chosen by WELCOME; 0 before */

    uint64_t epoch;
    uint64_t last_seq;     /* highest seq in the outbox when last looked at */
    uint64_t acked_seq;    /* highest seq the centre has committed */
    uint64_t unsaved_ack;  /* committed seq not yet recorded in the outbox (0: none) */
    uint64_t saved_ack;    /* the last one recorded */
    uint32_t ack_failures; /* failed attempts to record unsaved_ack in a row */
    int64_t ack_retry_at;  /* the next attempt, after a failure */
    int64_t ack_failing_since;
    int64_t ack_logged_at;
    uint64_t next_seq;         /* next seq to send */
    uint64_t reissue_of_epoch; /* a re-issued outbox (PROTOCOL.md 5.5): 0, or the old epoch */
    uint64_t reissue_from_seq;
    uint64_t reissue_last_seq; /* seqs 1..this are re-issued events */

    asy_forward_flight_t flights[ASY_FORWARD_MAX_WINDOW]; /* oldest first */
    size_t flight_count;
    uint32_t generation; /* incremented by every rewind */

    uint32_t window; /* adopted from config and WELCOME */
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
    uint64_t first_row_seq; /* first seq the last read met, 0 if none */
    int read_error;

    /* Monotonic milliseconds. */
    int64_t now;
    int64_t started;
    int64_t last_sent;
    int64_t last_received;
    int64_t last_answer; /* last WELCOME, ACK or NACK: heartbeat echoes do not count */
    int64_t hello_sent;
    int64_t connect_at;
    int64_t backoff;
    int64_t fill_since;   /* since when a short batch has been waiting; 0 = none */
    int64_t paused_until; /* RETRY_LATER or an outbox problem */
    int64_t last_refresh;
    int64_t last_identity_check;
    int64_t last_new_event; /* when the outbox last showed a seq not seen before */
    int64_t last_contact_note;
    int64_t next_report;
    int64_t stop_at; /* 0 = not stopping */

    uint64_t acked_total;
    uint64_t acked_at_report;
    uint64_t rejected_total;
    uint64_t duplicates_total; /* acknowledged as held already (a resend, a re-issue) */
    uint64_t reconnects;
    int exit_code;
    bool done;
    bool problem_noted; /* a problem is recorded in the outbox for `status` (asy_forward_problem) */
} asy_forwarder_t;

/* ----------------------------------------------------------------------------------------------
   The loop and the connection (forward.c). */

/* Events in the outbox the centre has not committed. */
uint64_t asy_forward_backlog(const asy_forwarder_t *self);

/* The endpoint of the current connection (borrowed). */
const char *asy_forward_endpoint(const asy_forwarder_t *self);

/* Logs an error that keeps events from the centre, and records it in the outbox, where
   `status` shows it until the centre acknowledges something again: an operator watching
   status saw a healthy backlog while run logged, say, that the centre's database had been
   restored. */
void asy_forward_problem(asy_forwarder_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* asy_forward_problem, and run stops with exit 1. */
void asy_forward_stop(asy_forwarder_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads the outbox's highest seq. A failure is logged and the old value kept: the outbox is
   local and a busy moment (another process submitting) passes. */
void asy_forward_refresh(asy_forwarder_t *self);

/* How often to look in the outbox for new events: every batch_ms while events come, so that
   they leave at once; after S_IDLE_AFTER_MS without one, every S_IDLE_REFRESH_MS, so that an
   idle agent does not query its outbox hundreds of times a second. */
int64_t asy_forward_refresh_every(const asy_forwarder_t *self);

/* Encodes and sends one frame without blocking. Returns 0 or ASY_EIO. */
int asy_forward_send_frame(asy_forwarder_t *self, asy_frame_t *frame);

/* True while re-issued events (PROTOCOL.md 5.5) may still be unacknowledged: the HELLO
   says which epoch they came from, and the WELCOME must say the centre will check them. */
bool asy_forward_reissuing(const asy_forwarder_t *self);

/* Sends HELLO and waits for the WELCOME (state HELLO_SENT). Returns 0 or ASY_EIO. */
int asy_forward_send_hello(asy_forwarder_t *self);

/* Drops the connection; the next one goes to the next endpoint after the backoff. */
void asy_forward_disconnect(asy_forwarder_t *self, const char *reason, int64_t at_least_ms);

/* ----------------------------------------------------------------------------------------------
   What the centre says (forward_receive.c). */

/* Records the pending acknowledgement in the outbox (which prunes it). A failure (the file
   locked by a writer for longer than the busy time-out, a full disk) is retried after 100 ms,
   then ever more slowly up to every S_ACK_RETRY_MAX_MS, and said once a minute, not on every
   attempt (the log may be on the same full disk); until then the rows stay, and a restart
   would resend them as harmless duplicates. force: try now, whatever the back-off says. */
void asy_forward_save_ack(asy_forwarder_t *self, bool force);

/* Handles every message waiting on the socket. */
void asy_forward_receive_all(asy_forwarder_t *self);

/* ----------------------------------------------------------------------------------------------
   Batches (forward_batch.c). */

/* Resends from seq. What is in flight stays counted in the window until answered, but its
   answers no longer steer us. */
void asy_forward_rewind(asy_forwarder_t *self, uint64_t seq);

/* Sends batches while the window has room: full batches at once, a short batch once it has
   waited batch_ms for more events. */
void asy_forward_pump(asy_forwarder_t *self);

#endif
