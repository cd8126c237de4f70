/*  breaches.h: the monitor's book of response-time breaches (private to monitor.c).

    Which breaches were announced (so none is announced twice, also across restarts: table
    monitor_breach), which announced ones still have to be recorded (written in one statement
    per call to asy_breaches_record), which late-arriving cases are waiting out their grace,
    and which cases the start-up rebuild found in breach. No sockets: the monitor publishes.  */
#ifndef ASY_BREACHES_H_INCLUDED
#define ASY_BREACHES_H_INCLUDED

#include "case_view.h"
#include "db.h"

typedef struct asy_breaches asy_breaches_t;

/* New, empty book. NULL on ENOMEM. Caller destroys. */
asy_breaches_t *asy_breaches_new(void);
void asy_breaches_destroy(asy_breaches_t **self_p);

/* Reads the breaches announced before from monitor_breach. Returns 0 or the db.h code. */
int asy_breaches_load(asy_breaches_t *self, asy_db_t *db);

/* How many breaches are known announced. */
size_t asy_breaches_count(const asy_breaches_t *self);

/* Marks the breach (case, kind) announced and queues its record. Returns true the first time,
   false if it was announced before (then nothing is queued). */
bool asy_breaches_mark(asy_breaches_t *self, const asy_case_view_t *view, int kind,
                       asy_date_t deadline);

/* A notice announced: its deadline and site as announced. */
typedef struct {
    asy_date_t deadline;
    char site_id[ASY_ID_MAX + 1];
    bool withdrawn;
} asy_breach_notice_t;

/* The notice of (case, kind) if it was announced and not withdrawn, else NULL. Borrowed. */
const asy_breach_notice_t *asy_breaches_standing(const asy_breaches_t *self, const char *case_id,
                                                 int kind);

/* Marks a standing notice withdrawn (the case shows its event on time after all) and queues
   the record. Returns the notice (borrowed) the first time, NULL if it was not standing. */
const asy_breach_notice_t *asy_breaches_withdraw(asy_breaches_t *self, const char *case_id,
                                                 int kind);

/* Writes the queued records (announcements and withdrawals) in one statement (asynchronous commit
   is the caller's choice). On failure keeps them and tries again at most every second, logging the
   first failure and the recovery (if the broker stops before the database is back, they may be
   announced once more after a restart). now: try even within that second (at shutdown). */
void asy_breaches_record(asy_breaches_t *self, asy_db_t *db, bool now);

/* Holds case_id until due_ms (monotonic); a case already held keeps its first due time. */
void asy_breaches_defer(asy_breaches_t *self, const char *case_id, int64_t due_ms);

/* True if some case is held. */
bool asy_breaches_deferred(const asy_breaches_t *self);

/* Calls fn for every held case due by now_ms and forgets them. */
void asy_breaches_due(asy_breaches_t *self, int64_t now_ms,
                      void (*fn)(void *arg, const char *case_id), void *arg);

/* Start-up: remembers a case found in breach by the rebuild; asy_breaches_startup calls fn
   for each remembered case once and forgets them. */
void asy_breaches_note(asy_breaches_t *self, const char *case_id);
void asy_breaches_startup(asy_breaches_t *self, void (*fn)(void *arg, const char *case_id),
                          void *arg);

#endif
