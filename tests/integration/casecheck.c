/*  casecheck.c: see casecheck.h.  */
#include "casecheck.h"
#include "codec.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    asy_event_summary_t s;
} s_row_t;

static int s_by_case_then_time(const void *a, const void *b)
{
    const asy_event_summary_t *x = &((const s_row_t *)a)->s, *y = &((const s_row_t *)b)->s;
    int c = strcmp(x->case_id, y->case_id);
    if (c)
        return c;
    if (x->occurred_at_us != y->occurred_at_us)
        return x->occurred_at_us < y->occurred_at_us ? -1 : 1;
    return strcmp(x->event_id, y->event_id);
}

/* The state of one case, as the sequential definition gives it. */
typedef struct {
    char status[16];
    long long event_count;
    long long first_event_us, last_event_us;
    long long referral_received_us, first_contact_us, initial_meeting_us, closed_us;
    int service, closure_reason, ethnicity_ons, age_band, gender, legal_status, reasons;
} s_state_t;

static const char *s_status_of(const asy_event_summary_t *e)
{
    switch (e->kind) {
    case ASY_KIND_REFERRAL_RECEIVED: return "referred";
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED: return e->eligible == 1 ? "eligible" : "ineligible";
    case ASY_KIND_REFERRAL_DECLINED: return "declined";
    case ASY_KIND_WAITLIST_JOINED: return "waiting";
    case ASY_KIND_WAITLIST_LEFT: return "allocated";
    case ASY_KIND_CONTACT_MADE: return "contacted";
    case ASY_KIND_MEETING_INITIAL_HELD:
    case ASY_KIND_PLAN_AGREED: return "active";
    case ASY_KIND_CASE_CLOSED: return "closed";
    default: return NULL;
    }
}

static void s_replay(const s_row_t *rows, size_t count, s_state_t *st)
{
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < count; i++) {
        const asy_event_summary_t *e = &rows[i].s;
        const char *status = s_status_of(e);
        if (status)
            snprintf(st->status, sizeof st->status, "%s", status);
        if (st->event_count++ == 0)
            st->first_event_us = e->occurred_at_us;
        st->last_event_us = e->occurred_at_us;
        switch (e->kind) {
        case ASY_KIND_REFERRAL_RECEIVED:
            if (!st->referral_received_us || e->received_at_us < st->referral_received_us)
                st->referral_received_us = e->received_at_us;
            st->service = e->service;
            st->reasons = (int)e->reasons;
            break;
        case ASY_KIND_CONTACT_MADE:
            if (!st->first_contact_us)
                st->first_contact_us = e->occurred_at_us;
            break;
        case ASY_KIND_MEETING_INITIAL_HELD:
            if (!st->initial_meeting_us || e->met_at_us < st->initial_meeting_us)
                st->initial_meeting_us = e->met_at_us; /* its date, if earlier */
            break;
        case ASY_KIND_CASE_CLOSED:
            st->closed_us = e->occurred_at_us;
            st->closure_reason = e->closure_reason;
            break;
        case ASY_KIND_QUALIFYING_STARTED:
        case ASY_KIND_QUALIFYING_CHANGED:
        case ASY_KIND_QUALIFYING_ENDED:
            if (e->legal_status)
                st->legal_status = e->legal_status;
            break;
        case ASY_KIND_PERSON_PROFILE_RECORDED:
        case ASY_KIND_PERSON_PROFILE_UPDATED:
            if (e->ethnicity_ons)
                st->ethnicity_ons = e->ethnicity_ons;
            if (e->age_band)
                st->age_band = e->age_band;
            if (e->gender)
                st->gender = e->gender;
            break;
        default:
            break;
        }
    }
}

static s_row_t *s_load_events(PGconn *pg, size_t *count)
{
    PGresult *res = PQexecParams(pg, "SELECT payload FROM event", 0, NULL, NULL, NULL, NULL, 1);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    size_t n = (size_t)PQntuples(res);
    s_row_t *rows = calloc(n ? n : 1, sizeof *rows);
    cr_assert_not_null(rows);
    for (size_t i = 0; i < n; i++) {
        asy_event_t *event = NULL;
        int rc = asy_event_decode((const uint8_t *)PQgetvalue(res, (int)i, 0),
                                  (size_t)PQgetlength(res, (int)i, 0), &event);
        cr_assert_eq(rc, 0, "a stored payload does not decode");
        asy_event_summarise(event, &rows[i].s);
        asy_event_destroy(&event);
    }
    PQclear(res);
    qsort(rows, n, sizeof *rows, s_by_case_then_time);
    *count = n;
    return rows;
}

#define S_COLUMNS                                                                               \
    "SELECT case_id, coalesce(status,''), event_count, "                                       \
    " (extract(epoch from first_event_at)*1000000)::bigint,"                                   \
    " (extract(epoch from last_event_at)*1000000)::bigint,"                                    \
    " coalesce((extract(epoch from referral_received_at)*1000000)::bigint, 0),"                \
    " coalesce((extract(epoch from first_contact_at)*1000000)::bigint, 0),"                    \
    " coalesce((extract(epoch from initial_meeting_at)*1000000)::bigint, 0),"                  \
    " coalesce((extract(epoch from closed_at)*1000000)::bigint, 0),"                           \
    " coalesce(service,0), coalesce(closure_reason,0), coalesce(ethnicity_ons,0),"             \
    " coalesce(age_band,0), coalesce(gender,0), coalesce(legal_status,0),"                     \
    " coalesce(referral_reasons,0)"                                                            \
    " FROM case_state ORDER BY case_id COLLATE \"C\""

static void s_compare(PGresult *res, int row, const char *case_id, const s_state_t *want)
{
    cr_assert_str_eq(PQgetvalue(res, row, 0), case_id, "case_state has no row for %s", case_id);
    const char *got_status = PQgetvalue(res, row, 1);
    cr_assert_str_eq(got_status, want->status, "case %s: status %s, replay says %s", case_id,
                     got_status, want->status);
    long long got[14];
    for (int c = 2; c < 16; c++)
        got[c - 2] = atoll(PQgetvalue(res, row, c));
    long long expected[] = {want->event_count, want->first_event_us, want->last_event_us,
                            want->referral_received_us, want->first_contact_us,
                            want->initial_meeting_us, want->closed_us, want->service,
                            want->closure_reason, want->ethnicity_ons, want->age_band,
                            want->gender, want->legal_status, want->reasons};
    static const char *names[] = {"event_count", "first_event_at", "last_event_at",
                                  "referral_received_at", "first_contact_at",
                                  "initial_meeting_at", "closed_at", "service",
                                  "closure_reason", "ethnicity_ons", "age_band", "gender",
                                  "legal_status", "referral_reasons"};
    for (int c = 0; c < 14; c++)
        cr_assert_eq(got[c], expected[c], "case %s: %s is %lld, replay says %lld", case_id,
                     names[c], got[c], expected[c]);
}

/* outcome_state (migration 004) against the sequential definition: per case, Recovery Star
   area and edition, the first and the latest reading in (occurred_at, event_id) order. */
static int s_by_outcome_key(const void *a, const void *b)
{
    const asy_event_summary_t *x = *(const asy_event_summary_t *const *)a;
    const asy_event_summary_t *y = *(const asy_event_summary_t *const *)b;
    int c = strcmp(x->case_id, y->case_id);
    if (c == 0)
        c = (x->outcome_area > y->outcome_area) - (x->outcome_area < y->outcome_area);
    if (c == 0)
        c = (x->outcome_edition > y->outcome_edition) - (x->outcome_edition < y->outcome_edition);
    return c ? c : s_by_case_then_time(x, y); /* a summary is the first member of s_row_t */
}

static void s_check_outcomes(PGconn *pg, const s_row_t *rows, size_t count)
{
    const asy_event_summary_t **readings = calloc(count ? count : 1, sizeof *readings);
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const asy_event_summary_t *e = &rows[i].s;
        if (e->kind == ASY_KIND_OUTCOME_RECORDED && e->outcome_framework == 1 &&
            e->outcome_area > 0 && e->outcome_score > 0)
            readings[n++] = e;
    }
    qsort(readings, n, sizeof *readings, s_by_outcome_key);
    PGresult *res = PQexec(pg, "SELECT case_id, area, edition, first_score, last_score, readings"
                               " FROM outcome_state ORDER BY case_id, area, edition");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    int row = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(readings[j]->case_id, readings[i]->case_id) == 0 &&
               readings[j]->outcome_area == readings[i]->outcome_area &&
               readings[j]->outcome_edition == readings[i]->outcome_edition)
            j++;
        cr_assert_lt(row, PQntuples(res), "outcome_state has fewer rows than the readings");
        char want[256], got[256];
        snprintf(want, sizeof want, "%s %d %d %d %d %zu", readings[i]->case_id,
                 readings[i]->outcome_area, readings[i]->outcome_edition,
                 readings[i]->outcome_score, readings[j - 1]->outcome_score, j - i);
        snprintf(got, sizeof got, "%s %s %s %s %s %s", PQgetvalue(res, row, 0),
                 PQgetvalue(res, row, 1), PQgetvalue(res, row, 2), PQgetvalue(res, row, 3),
                 PQgetvalue(res, row, 4), PQgetvalue(res, row, 5));
        cr_assert_str_eq(got, want, "outcome_state differs from the readings");
        row++;
        i = j;
    }
    cr_assert_eq(row, PQntuples(res), "outcome_state has %d rows, the readings give %d",
                 PQntuples(res), row);
    PQclear(res);
    free(readings);
}

long asy_test_check_case_state(PGconn *pg)
{
    size_t count = 0;
    s_row_t *rows = s_load_events(pg, &count);
    PGresult *res = PQexec(pg, S_COLUMNS);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    int states = PQntuples(res);
    long cases = 0;
    size_t i = 0;
    while (i < count) {
        size_t j = i;
        while (j < count && strcmp(rows[j].s.case_id, rows[i].s.case_id) == 0)
            j++;
        s_state_t want;
        s_replay(rows + i, j - i, &want);
        cr_assert_lt(cases, states, "case_state has fewer rows than the events have cases");
        s_compare(res, (int)cases, rows[i].s.case_id, &want);
        cases++;
        i = j;
    }
    cr_assert_eq(cases, states, "case_state has %d rows, the events have %ld cases", states, cases);
    PQclear(res);
    s_check_outcomes(pg, rows, count);
    free(rows);
    return cases;
}

long asy_test_check_streams(PGconn *pg)
{
    PGresult *res = PQexec(pg, "SELECT agent_id, epoch, count(*), count(DISTINCT seq), min(seq), max(seq) FROM"
                               " (SELECT agent_id, epoch, seq FROM event UNION ALL"
                               "  SELECT agent_id, epoch, seq FROM quarantine WHERE seq > 0) s"
                               " GROUP BY agent_id, epoch");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    long total = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        long long n = atoll(PQgetvalue(res, r, 2)), distinct = atoll(PQgetvalue(res, r, 3));
        long long lo = atoll(PQgetvalue(res, r, 4)), hi = atoll(PQgetvalue(res, r, 5));
        cr_assert_eq(n, distinct, "agent %s: %lld rows but %lld distinct seqs (duplicates)",
                     PQgetvalue(res, r, 0), n, distinct);
        cr_assert_eq(lo, 1, "agent %s: seq starts at %lld", PQgetvalue(res, r, 0), lo);
        cr_assert_eq(hi, n, "agent %s: seq 1..%lld holds %lld rows (a gap)", PQgetvalue(res, r, 0),
                     hi, n);
        total += (long)n;
    }
    PQclear(res);
    return total;
}
