/*  monitor_private.h: the monitor actor's insides, shared by monitor.c (the loop, publishing,
    life cycle), monitor_db.c (the connection, holidays, denominators, the rebuild) and
    monitor_breaches.c (breach notices). Not for other modules.  */
#ifndef ASY_MONITOR_PRIVATE_H_INCLUDED
#define ASY_MONITOR_PRIVATE_H_INCLUDED

#include "monitor.h"

#include "aggregate.h"
#include "breaches.h"
#include "clone_pub.h"
#include "db.h"

#include <czmq.h>

#define ASY_MONITOR_STREAMS 2 /* 0 public, 1 restricted */

typedef struct {
    zsock_t *pipe;
    zsock_t *deltas;
    asy_clone_pub_t *streams[ASY_MONITOR_STREAMS]; /* [1] is exact (restricted) */
    zpoller_t *poller;
    asy_db_t *db;
    char *conninfo;
    asy_calendar_t *calendar;
    char *holidays_text;     /* the holiday table as last loaded, to notice a change */
    char *denominators_text; /* the same for the denominator table */
    asy_aggregate_t *aggregate;
    zhashx_t *topics;            /* topic -> s_topic_t (monitor.c) */
    asy_breaches_t *breach_book; /* announced, to record, deferred, found at start-up */
    asy_clock_fn *clock;
    void *clock_arg;
    int coalesce_ms;
    int heartbeat_ms;
    int reload_ms;
    int breach_grace_ms;
    int history_years;
    int64_t next_heartbeat_ms;
    int64_t scan_due_ms;   /* start-up breach scan, once subscribers have had time to connect */
    size_t publish_cursor; /* where the last publishing pass stopped (round robin) */
    unsigned session_generation; /* db generation our session settings were applied in */
    int64_t next_reload_ms;
    uint64_t cases_applied;
    uint64_t renders;   /* topic values computed */
    uint64_t published; /* MetricUpdates sent (both streams) */
    int64_t render_us;  /* time spent computing and publishing them */
    uint64_t breaches;
    uint64_t withdrawals; /* breach notices withdrawn */
    int64_t next_stats_ms;
    uint64_t logged[5]; /* cases_applied, renders, published, breaches, withdrawals logged */
    bool terminated;
    bool broken; /* the figures could not be recomputed (out of memory): serving stopped */
} asy_monitor_t;

/* The monitor's clock: microseconds since 1970-01-01Z (monitor.c). */
int64_t asy_monitor_now_us(asy_monitor_t *self);

/* Connects to the database (the schema migrated first), retrying until it is ready. Returns 0,
   ASY_ERETRY if the actor was told to stop first, or ASY_ENOMEM (monitor_db.c). */
int asy_monitor_connect(asy_monitor_t *self);

/* Applies the session settings (synchronous_commit off) once per connection. Returns 0 or a
   db.h code. */
int asy_monitor_session(asy_monitor_t *self);

/* Reads the holiday table; if it changed since the last call, returns a new calendar with it
   (caller owns), else NULL (also when it cannot be read: logged). */
asy_calendar_t *asy_monitor_load_holidays(asy_monitor_t *self);

/* Loads the denominators into the aggregate (logged when they cannot be read, or changed). */
void asy_monitor_load_population(asy_monitor_t *self);

/* Reads every case_state row, then every outcome_state row, in one snapshot, then the breach
   notices announced before. Returns 0 or a db.h code (rolled back). */
int asy_monitor_rebuild(asy_monitor_t *self);

/* A changed case with a standing notice it no longer supports: withdrawn now, or noted for
   the start-up scan (monitor_breaches.c). */
void asy_monitor_check_withdrawals(asy_monitor_t *self, const asy_case_view_t *view);

/* A case row that arrives with a deadline already passed: looked at again breach_grace_ms
   later. */
void asy_monitor_defer_breaches(asy_monitor_t *self, const asy_case_view_t *view);

/* For asy_aggregate_each_case (arg: the monitor): announces the case's breaches and withdraws
   the notices it no longer supports. */
void asy_monitor_breach_visit(void *arg, const asy_case_view_t *view);

/* For asy_aggregate_each_case at start-up (arg: the monitor): notes a case in breach, or with
   a notice it no longer supports, for the start-up scan. */
void asy_monitor_note_startup_breach(void *arg, const asy_case_view_t *view);

/* For the breach book's walks (arg: the monitor): a held or start-up case, as it is now. */
void asy_monitor_recheck(void *arg, const char *case_id);

#endif
