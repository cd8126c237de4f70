/*  ingest_private.h: an ingest worker's insides, shared by ingest.c (the loop, sessions,
    replies, database back-off), ingest_hello.c (HELLO) and ingest_publish.c (PUBLISH). Not
    for other modules.  */
#ifndef ASY_INGEST_PRIVATE_H_INCLUDED
#define ASY_INGEST_PRIVATE_H_INCLUDED

#include "ingest.h"

#include "case_view.h"
#include "codec.h"
#include "store.h"

#include <czmq.h>

#define ASY_INGEST_RETRY_FIRST_MS 200u
#define ASY_INGEST_RETRY_MAX_MS 5000u
#define ASY_INGEST_CODES (ASY_CODE_EVENT_TOO_LARGE + 1)

typedef struct {
    char agent_id[ASY_ID_MAX + 1];
    char site_id[ASY_ID_MAX + 1];
    uint64_t epoch;
    uint64_t committed; /* high-water mark: never above what PostgreSQL has committed */
    int64_t last_seen_ms;
    /* a re-issued epoch (PROTOCOL.md 5.5): where its events may have been before */
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t origin_count;
} asy_ingest_session_t;

typedef struct {
    uint64_t batches;
    uint64_t events; /* committed as valid events */
    uint64_t duplicates;
    uint64_t quarantined; /* events of batches, quarantined */
    uint64_t frames;      /* whole frames quarantined */
    uint64_t nacks[ASY_INGEST_CODES];
} asy_ingest_counters_t;

/* The merged case_state and outcome_state rows of a batch, as the monitor takes them. */
typedef struct {
    asy_case_view_t *views;
    size_t view_count;
    size_t view_capacity;
    asy_outcome_view_t *outcomes;
    size_t outcome_count;
    size_t outcome_capacity;
} asy_ingest_rows_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *front; /* PAIR to the front: routing id + body, both ways */
    zpoller_t *poller;
    asy_store_t *store;
    char *front_endpoint;
    char *conninfo;
    int index; /* worker number, for the log */
    int stats_interval_ms;
    bool terminated;
    zhashx_t *sessions; /* routing id (hex) -> asy_ingest_session_t */
    bool db_down;
    uint32_t retry_after_ms;
    int64_t next_reconnect_ms;
    asy_ingest_counters_t counters;
    asy_ingest_counters_t logged;
    int64_t next_stats_ms;
    asy_store_item_t *items;     /* reused between batches */
    asy_rejection_t *rejections; /* the ACK's list: as many as items, allocated with them */
    size_t items_capacity;
    zframe_t *peer;     /* routing id of the message in hand */
    int last_nack_code; /* the last NACK logged: its code, time and connection */
    int64_t last_nack_ms;
    char last_nack_peer[2 * 256 + 1];
    char *peer_key;
    const char *hello_agent; /* while a HELLO is answered: the agent id it names */
    char *monitor_endpoint;  /* NULL: no monitor */
    zsock_t *monitor;        /* PUSH: case_state rows of committed batches */
    asy_ingest_rows_t rows;  /* of the batch in hand, sent after COMMIT */
    /* A batch whose COMMIT went unanswered (the connection lost): its rows are held until the
       stream's committed seq says whether it was committed (asy_ingest_settle_doubt).
       Its resend is only duplicates then, and would give the monitor nothing. */
    struct {
        bool pending;
        char agent_id[ASY_ID_MAX + 1];
        uint64_t epoch;
        uint64_t first_seq;
        uint64_t last_seq;
        asy_ingest_rows_t rows;
    } doubt;
} asy_ingest_worker_t;

/* Copies untrusted text for a log line or a reason: printable ASCII only, at most 64 chars. */
const char *asy_ingest_printable(const char *text, char *out, size_t size);

/* Sends frame to the peer of the message in hand (logged if it cannot be encoded). */
void asy_ingest_send(asy_ingest_worker_t *self, const asy_frame_t *frame);

/* Who the message in hand comes from, for a log line: the session's agent, the agent a HELLO
   being answered names, or the routing id. Borrowed. */
const char *asy_ingest_who(asy_ingest_worker_t *self);

/* Sends a NACK with a printf reason, counts it and logs it (a repeat within a second as
   debug). */
void asy_ingest_nack(asy_ingest_worker_t *self, int code, uint64_t first_seq, uint64_t expected_seq,
                     uint32_t retry_after_ms, const char *format, ...)
    __attribute__((format(printf, 6, 7)));

/* Logs a database failure and starts (or lengthens) the back-off. Returns the milliseconds
   to answer RETRY_LATER with. */
uint32_t asy_ingest_db_failed(asy_ingest_worker_t *self, const char *what, int rc);

/* Resets the back-off after a database call succeeded. */
void asy_ingest_db_ok(asy_ingest_worker_t *self);

/* Returns 0 if the database may be used now, else the milliseconds to tell the agent. */
uint32_t asy_ingest_db_wait(asy_ingest_worker_t *self);

/* Starts the session of the connection in hand, replacing the agent's older ones. Returns
   NULL if out of memory. */
asy_ingest_session_t *asy_ingest_session_start(asy_ingest_worker_t *self, const asy_hello_t *hello,
                                               uint64_t committed,
                                               const asy_store_origin_t *origins,
                                               size_t origin_count);

/* Settles a batch whose COMMIT went unanswered, if one is held: its rows go to the monitor
   if the stream's committed seq shows it committed. Returns 0, or a store error (the
   database still away: the caller answers RETRY_LATER). */
int asy_ingest_settle_doubt(asy_ingest_worker_t *self);

/* Answers a HELLO (ingest_hello.c). */
void asy_ingest_on_hello(asy_ingest_worker_t *self, const asy_hello_t *hello);

/* Answers a PUBLISH (ingest_publish.c). */
void asy_ingest_on_publish(asy_ingest_worker_t *self, const asy_publish_t *publish);

/* The store's case and outcome sinks (asy_store_set_case_sink): keep the merged rows of the
   batch in hand for the monitor (ingest_publish.c). */
int asy_ingest_collect_case(void *arg, int columns, const char *const *values);
int asy_ingest_collect_outcome(void *arg, int columns, const char *const *values);

#endif
