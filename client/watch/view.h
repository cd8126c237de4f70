/*  view.h: how advsync-watch shows the monitor's figures. Pure functions over borrowed data
    that write to a FILE *, so they can be tested against a memory stream.  */
#ifndef ASY_VIEW_H_INCLUDED
#define ASY_VIEW_H_INCLUDED

#include "monitor_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ASY_VIEW_WIDTH 100 /* every line of the table fits this many columns */
#define ASY_VIEW_PERIOD_MAX 16
#define ASY_VIEW_BREACHES 5 /* breach notices kept for the "recent breaches" section */

/* The latest breach notices received, newest first. */
typedef struct {
    asy_mbreach_t items[ASY_VIEW_BREACHES];
    size_t count;
} asy_view_breaches_t;

/* What the header says about the stream. */
typedef struct {
    const char *endpoint;    /* publisher endpoint shown */
    uint64_t seq;            /* last sequence number applied */
    size_t topics;           /* topics held by the replica (before filtering) */
    int64_t now_us;          /* the clock (wall, microseconds since 1970) */
    int64_t last_message_us; /* last message heard on the live stream (0: never) */
    bool stale;              /* no heartbeat for 3 intervals */
    const asy_view_breaches_t *breaches; /* NULL: no "recent breaches" section */
} asy_view_status_t;

/* What the table shows. */
typedef struct {
    const char *by;             /* breakdown shown under each total; NULL/"": none */
    const char *metric;         /* "M4": only that metric; NULL: all */
    const char *const *periods; /* sections, in this order, per scope; NULL: every period */
    size_t period_count;
    bool tty; /* clear the screen first (ANSI) instead of a blank line after */
} asy_view_options_t;

/* "M4 Contacted within 3 working days"; "M99" and the like give the metric itself. */
const char *asy_view_metric_title(const char *metric);

/* Sorting key of a metric name: 4 for "M4"; 1000 for anything else. */
int asy_view_metric_number(const char *metric);

/* Writes the table for updates[0..count-1] (any order; several scopes and periods): a header
   line, then one section per (scope, period) present ("all" first, then sites by name; periods
   in options->periods order), one row per metric (by number) with the total cell's value, its
   95% interval and n, then, indented, one row per group of options->by. Suppressed cells show
   "*", undefined values "-". Then, if status->breaches is set, a "recent breaches" section:
   one line per notice, newest first (site, contact/meeting, case id prefix, deadline,
   detected, Europe/London). Every line is at most ASY_VIEW_WIDTH columns. */
void asy_view_render(FILE *out, const asy_mupdate_t *const *updates, size_t count,
                     const asy_view_status_t *status, const asy_view_options_t *options);

/* Puts breach first in recent, dropping the oldest beyond ASY_VIEW_BREACHES. */
void asy_view_breach_add(asy_view_breaches_t *recent, const asy_mbreach_t *breach);

/* Writes one table row (no newline) for a cell of update into line (size >= ASY_VIEW_WIDTH+1):
   label in the first column, then value, interval, n. For tests and for render. */
void asy_view_row(char *line, size_t size, const char *label, const asy_mupdate_t *update,
                  const asy_mcell_t *cell);

/* "data 0.4 s old" / "data 12 s old" / "no data" / "STALE": the age of the newest figure,
   from the newest as_of and the last message heard, whichever is later. */
void asy_view_age(char *text, size_t size, int64_t newest_as_of_us,
                  const asy_view_status_t *status);

#endif
