/*  ingest.h: the broker's ingest. A ROUTER that agents' DEALERs talk to (proto/PROTOCOL.md):
    HELLO -> WELCOME, PUBLISH -> ACK once PostgreSQL has committed the batch, NACK with a reason
    code for anything it cannot take, HEARTBEAT echoed.

    Two kinds of actor, sharing nothing: a front (front.c) owns the ROUTER and relays every
    message, unchanged, to one of N workers (ingest.c) chosen by its routing id, so all messages
    of one connection go to one worker, in order; each worker owns one PostgreSQL connection
    (store.h) and that connection's sessions, and answers synchronously as a single broker did.

    Life cycle:
        asy_ingest_args_t args = {.endpoint = "tcp://127.0.0.1:*", .conninfo = "dbname=advsync"};
        zactor_t *ingest = zactor_new(asy_ingest_actor, &args);   // returns at once
        char *endpoint = NULL;
        asy_ingest_wait_ready(ingest, 30000, &endpoint, error, sizeof error);
        ...
        zactor_destroy(&ingest);    // $TERM: each worker finishes the batch in hand, the front
                                    // relays the last replies and lingers for them

    Every worker connects its store first, retrying with back-off (200 ms doubling to 5 s, one
    log line per attempt) for as long as it takes; the front binds the ROUTER only once all
    workers have a database: while there is no database there is nothing listening and agents
    simply keep retrying their connection. It then sends "READY <endpoint>" on the pipe, or
    "FAILED <reason>" if the endpoint cannot be bound (after which it waits for $TERM).  */
#ifndef ASY_INGEST_H_INCLUDED
#define ASY_INGEST_H_INCLUDED

#include "asy.h"

#include <czmq.h>

typedef struct {
    const char *endpoint;   /* bind endpoint, e.g. "tcp://127.0.0.1:5570" or "tcp://127.0.0.1:*" */
    const char *conninfo;   /* libpq conninfo of the system-of-record database */
    int linger_ms;          /* ZMQ_LINGER of the ROUTER at exit; 0 means 2000 */
    int stats_interval_ms;  /* counters logged this often when changed; 0 means 10000 */
    int workers;            /* ingest workers, each with its own store connection; 0 means
                               ASY_INGEST_DEFAULT_WORKERS; at most ASY_INGEST_MAX_WORKERS */
    const char *monitor;    /* inproc endpoint of the monitor's deltas (monitor.h), or NULL:
                               each worker pushes there the case_state rows of every batch it
                               committed */
} asy_ingest_args_t;

#define ASY_INGEST_DEFAULT_WORKERS 2
#define ASY_INGEST_MAX_WORKERS 16

/* The front's actor body (front.c), for zactor_new(asy_ingest_actor, &args). args
   (asy_ingest_args_t *) is borrowed only until zactor_new() returns: the actor copies what it
   needs. */
void asy_ingest_actor(zsock_t *pipe, void *args);

/* Waits up to timeout_ms for the actor's first report. Returns 0 and *endpoint (the resolved
   endpoint, e.g. "tcp://127.0.0.1:41234"; caller frees) once it listens; ASY_EIO with error[]
   set if it could not bind or ran out of memory; ASY_ERETRY on time-out or interruption (call
   again). */
int asy_ingest_wait_ready(zactor_t *actor, int timeout_ms, char **endpoint, char *error,
                          size_t error_size);

/* Internal, between the front and its workers. A worker connects a PAIR to front_endpoint,
   then its store, then sends "READY" on its pipe ("FAILED <reason>" if it cannot start, then
   waits for $TERM). On $TERM it finishes the message in hand, sends its reply and exits. */
typedef struct {
    const char *front_endpoint;   /* inproc endpoint the front has bound for this worker */
    const char *conninfo;
    int index;                    /* worker number, 1..N, for the log */
    int stats_interval_ms;
    const char *monitor;          /* as asy_ingest_args_t.monitor */
} asy_ingest_worker_args_t;

void asy_ingest_worker_actor(zsock_t *pipe, void *args);

#endif
