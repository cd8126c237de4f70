/*  monitor.h: the broker's live monitor (proto/PROTOCOL.md part II), a czmq actor.

    Owns: its own PostgreSQL connection (db.h: rebuild from case_state at start, the holiday
    and denominator tables, the monitor_breach record), the aggregate (aggregate.h), a PULL
    socket on which ingest workers hand it the case_state rows of every committed batch, and
    per stream (public, restricted) an XPUB and a snapshot ROUTER.

        asy_monitor_args_t args = {.conninfo = "...", .public_endpoint = ASY_MONITOR_PUBLIC, ...};
        zactor_t *monitor = zactor_new(asy_monitor_actor, &args);
        asy_monitor_wait_ready(monitor, 30000, &endpoints, error, sizeof error);
        ... ingest workers connect PUSH sockets to args.deltas_endpoint ...
        zactor_destroy(&monitor);

    The PULL socket is bound before anything else, so ingest workers may connect and push at
    once; rows that arrive during the rebuild are applied after it (a case_state row older than
    the one held is ignored, so the order does not matter). The actor then sends "READY" and
    the four resolved endpoints on its pipe, or "FAILED <reason>" (and waits for $TERM).  */
#ifndef ASY_MONITOR_H_INCLUDED
#define ASY_MONITOR_H_INCLUDED

#include "asy.h"
#include "case_view.h"

#include <czmq.h>

#define ASY_MONITOR_DELTAS "inproc://advsync-monitor-deltas"
#define ASY_MONITOR_PUBLIC "tcp://*:5571"
#define ASY_MONITOR_PUBLIC_SNAPSHOT "tcp://*:5572"
#define ASY_MONITOR_RESTRICTED "tcp://127.0.0.1:5573"
#define ASY_MONITOR_RESTRICTED_SNAPSHOT "tcp://127.0.0.1:5574"

/* The monitor's clock: microseconds since 1970-01-01Z. Tests inject their own. */
typedef int64_t(asy_clock_fn)(void *arg);

typedef struct {
    const char *conninfo;
    const char *deltas_endpoint;        /* NULL: ASY_MONITOR_DELTAS */
    const char *public_endpoint;        /* NULL: the defaults above */
    const char *public_snapshot;
    const char *restricted_endpoint;
    const char *restricted_snapshot;
    int coalesce_ms;                    /* 0: 100 */
    int heartbeat_ms;                   /* 0: 1000 */
    int history_years;                  /* 0: 2 */
    int reload_ms;                      /* holidays and denominators re-read; 0: 10000 */
    int breach_grace_ms;                /* a case row arriving after its deadline is looked
                                           at again this much later before its breach is
                                           announced (its event may follow); 0: 30000 */
    asy_clock_fn *clock;                /* NULL: the system clock */
    void *clock_arg;
} asy_monitor_args_t;

/* The actor body for zactor_new(asy_monitor_actor, &args); args are copied before
   zactor_new returns. */
void asy_monitor_actor(zsock_t *pipe, void *args);

typedef struct {
    char public_endpoint[256];
    char public_snapshot[256];
    char restricted_endpoint[256];
    char restricted_snapshot[256];
} asy_monitor_endpoints_t;

/* Waits for READY. Returns 0 with the bound endpoints, ASY_EIO with error[] if the monitor
   failed, ASY_ERETRY on time-out. */
int asy_monitor_wait_ready(zactor_t *actor, int timeout_ms, asy_monitor_endpoints_t *endpoints,
                           char *error, size_t error_size);

/* The ingest side: sends the rows of one committed batch to the monitor on a PUSH socket
   connected to the deltas endpoint: one message of two frames, the case_state rows packed,
   then the outcome_state rows packed (may be empty). Returns 0 or ASY_EIO. */
int asy_monitor_send_cases(zsock_t *push, const asy_case_view_t *views, size_t count,
                           const asy_outcome_view_t *outcomes, size_t outcome_count);

#endif
