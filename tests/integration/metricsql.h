/*  metricsql.h: an independent recomputation, in SQL, of the live monitor's figures (metrics
    M1-M6 and M11-M13 of proto/PROTOCOL.md 12.2, as pinned in the metric specification), for
    the test "figures published equal a recomputation in SQL".

    Everything is derived in PostgreSQL from case_state (and outcome_state for M12): a TEMP
    table of the working-day calendar (filled from the C calendar, so holiday-table overrides
    count), a TEMP table of periods, a TEMP table of per-case values (dates in Europe/London, SLA deadlines through the
    ordinal of working days), then GROUP BY per metric and breakdown. Only the medians and 90th
    percentiles of M3 are taken in C (asy_stats_percentile) from the waits SQL returns.

    The TEMP tables (mq_case, mq_cal, mq_period, mq_member, ...) are left in the session after
    a call, for a test to inspect; the next call replaces them.  */
#ifndef ASY_METRICSQL_H_INCLUDED
#define ASY_METRICSQL_H_INCLUDED

#include "calendar.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* One cell of one topic. */
typedef struct {
    char topic[160];    /* "all/M4/2026-27-Q3", "site/ward-a/M1/2026-11", "all/M3/now" */
    char breakdown[48]; /* "total", "ethnic_group", "declined.total", ... */
    char group[48];     /* "ALL", "ONS_WHITE_BRITISH", "WHITE", ... */
    int64_t count;      /* M1, M2, M3 (0 for the others) */
    int64_t numerator;  /* M4-M6, M11-M13 (0 for the others) */
    int64_t denominator;
    double median, p90; /* M3 only: NaN when count is 0; 0 for the other metrics */
} asy_expect_t;

/* Recomputes every cell of M1-M6, M11-M13 (breakdowns as the specification lists) for every
   scope ("all" and each non-NULL site_id of case_state) and every period (months, financial
   quarters and financial years starting from April 1 of the financial year history_years - 1
   years before today's, up to today; "now" for M3), from case_state, as of the Europe/London
   date today with calendar cal. Total cells ("total", or "declined.total" and
   "left_before_goals.total" for M11) are always present; other cells only when their count or
   denominator is nonzero.
   Returns 0 with *out a malloc'ed array (caller frees) of *count cells sorted by (topic,
   breakdown, group) bytewise, or ASY_EINVAL (NULL argument, history_years < 1, a date
   outside years 1..9999, a name too long for its field), ASY_EDB (an SQL error) or ASY_ENOMEM,
   with a message on stderr; then *out is NULL and *count 0. */
int asy_metricsql_compute(PGconn *pg, int32_t today, const asy_calendar_t *cal, int history_years,
                          asy_expect_t **out, size_t *count);

#endif
