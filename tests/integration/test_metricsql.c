/*  test_metricsql.c: tests/integration/metricsql.c against hand-made case_state rows whose
    figures are worked out by hand below, an empty database, and the working-day SQL against
    the C calendar on a sample of 900 referral dates.  */
#include "calendar.h"
#include "harness.h"
#include "metricsql.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_conninfo;
static PGconn *s_pg;
static asy_calendar_t *s_cal;
static asy_expect_t *s_cells;
static size_t s_count;

static void s_setup(void)
{
    s_conninfo = asy_test_create_database();
    asy_test_migrate(s_conninfo);
    s_pg = asy_test_pg_connect(s_conninfo);
    s_cal = asy_calendar_new();
    cr_assert_not_null(s_cal);
}

static void s_teardown(void)
{
    free(s_cells);
    s_cells = NULL;
    asy_calendar_destroy(&s_cal);
    if (s_pg)
        PQfinish(s_pg);
    s_pg = NULL;
    asy_test_drop_database(s_conninfo);
    free(s_conninfo);
    s_conninfo = NULL;
}

TestSuite(metricsql, .init = s_setup, .fini = s_teardown, .timeout = 120);

static asy_date_t s_date(const char *text)
{
    asy_date_t date;
    cr_assert_eq(asy_date_parse(text, &date), 0, "%s", text);
    return date;
}

static void s_compute(const char *today, int history_years)
{
    int rc = asy_metricsql_compute(s_pg, s_date(today), s_cal, history_years, &s_cells, &s_count);
    cr_assert_eq(rc, 0, "asy_metricsql_compute: %d", rc);
    for (size_t i = 1; i < s_count; i++) {
        int order = strcmp(s_cells[i - 1].topic, s_cells[i].topic);
        if (order == 0)
            order = strcmp(s_cells[i - 1].breakdown, s_cells[i].breakdown);
        if (order == 0)
            order = strcmp(s_cells[i - 1].group, s_cells[i].group);
        cr_assert_lt(order, 0, "cells %zu and %zu out of order or repeated", i - 1, i);
    }
}

static const asy_expect_t *s_find(const char *topic, const char *breakdown, const char *group)
{
    for (size_t i = 0; i < s_count; i++)
        if (strcmp(s_cells[i].topic, topic) == 0 && strcmp(s_cells[i].breakdown, breakdown) == 0 &&
            strcmp(s_cells[i].group, group) == 0)
            return &s_cells[i];
    return NULL;
}

static void s_count_is(const char *topic, const char *breakdown, const char *group, int64_t n)
{
    const asy_expect_t *cell = s_find(topic, breakdown, group);
    cr_assert_not_null(cell, "no cell %s %s %s", topic, breakdown, group);
    cr_expect_eq(cell->count, n, "%s %s %s: count %lld, expected %lld", topic, breakdown, group,
                 (long long)cell->count, (long long)n);
}

static void s_ratio_is(const char *topic, const char *breakdown, const char *group,
                       int64_t numerator, int64_t denominator)
{
    const asy_expect_t *cell = s_find(topic, breakdown, group);
    cr_assert_not_null(cell, "no cell %s %s %s", topic, breakdown, group);
    cr_expect(cell->numerator == numerator && cell->denominator == denominator,
              "%s %s %s: %lld/%lld, expected %lld/%lld", topic, breakdown, group,
              (long long)cell->numerator, (long long)cell->denominator, (long long)numerator,
              (long long)denominator);
}

static void s_absent(const char *topic, const char *breakdown, const char *group)
{
    cr_expect_null(s_find(topic, breakdown, group), "unexpected cell %s %s %s", topic, breakdown,
                   group);
}

/* Cells of one topic. */
static size_t s_cells_of(const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < s_count; i++)
        n += strcmp(s_cells[i].topic, topic) == 0;
    return n;
}

#define S_COLUMNS                                                                                  \
    "INSERT INTO case_state (case_id, site_id, referral_received_at, service, referral_source,"    \
    " first_contact_at, initial_meeting_at, eligible, eligible_version, declined_at, closed_at,"   \
    " left_before_goals, legal_status, qualifying, qualifying_version, qualifying_started_at,"     \
    " ethnicity_ons, nhs_ethnic, sex, age_band, equality_optout) VALUES "

/* Seven cases; today is Friday 2022-07-15 and history_years 1, so the periods are 2022-04 ..
   2022-07, 2022-23-Q1 (Apr-Jun), 2022-23-Q2 (Jul-Sep) and 2022-23. 2022 bank holidays that
   matter: Good Friday 04-15, Easter Monday 04-18, Jubilee Thu 06-02 and Fri 06-03.

   A ward-a: received Wed 06-01 00:30 BST (05-31 in UTC: London date 06-01). Day 0 = 06-01;
     06-02/03 are holidays, so day 3 = Wed 06-08 (contact deadline), day 10 = Fri 06-17
     (meeting deadline). Contacted 06-08 (ON the deadline: on time), met 06-20 (late).
     Eligible, decided 06-01 23:30Z = 06-02 London. IMHA, MHA office, ONS white British,
     male, 18-34.
   B ward-a: received SATURDAY 06-04: day 0 = Mon 06-06, contact deadline Thu 06-09, meeting
     deadline Mon 06-20. Contacted Fri 06-10 (the day AFTER the deadline: late), never met,
     still open: waiting. Community, self-referral, ONS Black African, female.
   C ward-a: received Mon 06-06 (deadlines 06-09, 06-20), DECLINED 06-07, before either
     deadline: in no M4/M5 denominator. IMHA; NHS M (Black Caribbean), no ONS -> BLACK.
   D ward-a: received Fri 07-01: contact deadline Wed 07-06 (past, never contacted); meeting
     deadline Fri 07-15 = today, so not yet in M5. EQUALITY OPT-OUT: its ONS Asian Indian,
     male, 35-49 count as not recorded. IMHA. Waiting.
   E ward-b: no referral. ONGOING qualifying episode (s3, qualifying) from 03-10; contacted
     05-10. ONS white British, female.
   F ward-b: received Tue 04-05: contact deadline Fri 04-08; meeting deadline Thu 04-21 (day 7
     = 04-14, then 04-15 and 04-18 are Easter holidays, day 10 = 04-21). Never contacted.
     ENDED episode (s3, qualifying false) from 04-05, ended 04-30 23:30Z = 05-01 London (so it
     overlaps May). Closed 05-20, left before goals. ONS not stated (20). IMHA.
   G ward-b: received Mon 06-13: contact deadline Thu 06-16, meeting deadline Mon 06-27.
     Contacted 06-14, met 06-24 (both on time). Found INELIGIBLE 06-15. Closed 06-30, not
     before goals. NON-QUALIFYING legal status s4 (LEGAL_04_S4 = 4, qualifying false): no
     episode (qualifying_started_at stays NULL: case_fold.c starts an episode only at a
     qualifying status). Community, no ethnicity, referred by a carer (B2).  */
static void s_insert_cases(void)
{
    /* a *_version value (migration 009): the instant's microseconds, 8 bytes big-endian || an
       event id's 16 bytes */
    asy_test_pg_exec(s_pg, "CREATE FUNCTION test_ver(t timestamptz) RETURNS bytea LANGUAGE sql"
                           " AS $$ SELECT decode(lpad(to_hex((extract(epoch FROM t) * 1000000)"
                           "::bigint), 16, '0') || '01890000000070008000000000000000', 'hex') $$");
    static const char *const rows[] = {
        "repeat('a', 64), 'ward-a', '2022-06-01 00:30+01', 1, 30, '2022-06-08 15:00+01',"
        " '2022-06-20 11:00+01', 1, test_ver('2022-06-01 23:30Z'), NULL, NULL, NULL, NULL,"
        " NULL, NULL, NULL, 13, NULL, 1, 3, false",
        "repeat('b', 64), 'ward-a', '2022-06-04 10:00+01', 2, 3, '2022-06-10 09:00+01', NULL,"
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 6, NULL, 2, NULL, false",
        "repeat('c', 64), 'ward-a', '2022-06-06 10:00+01', 1, NULL, NULL, NULL, NULL, NULL,"
        " '2022-06-07 12:00+01', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 12, NULL, NULL, false",
        "repeat('d', 64), 'ward-a', '2022-07-01 10:00+01', 1, NULL, NULL, NULL, NULL, NULL,"
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3, NULL, 1, 4, true",
        "repeat('e', 64), 'ward-b', NULL, NULL, NULL, '2022-05-10 10:00+01', NULL, NULL, NULL,"
        " NULL, NULL, NULL, 3, true, test_ver('2022-03-10 10:00Z'), '2022-03-10 10:00Z',"
        " 13, NULL, 2, NULL, false",
        "repeat('f', 64), 'ward-b', '2022-04-05 10:00+01', 1, NULL, NULL, NULL, NULL, NULL,"
        " NULL, '2022-05-20 10:00+01', true, 3, false, test_ver('2022-04-30 23:30Z'),"
        " '2022-04-05 10:00+01', 20, NULL, NULL, NULL, false",
        "repeat('0', 64), 'ward-b', '2022-06-13 10:00+01', 2, 5, '2022-06-14 10:00+01',"
        " '2022-06-24 10:00+01', 0, test_ver('2022-06-15 10:00Z'), NULL, '2022-06-30 10:00+01',"
        " false, 4, false, test_ver('2022-06-13 10:00Z'), NULL, NULL, NULL,"
        " NULL, NULL, false",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql, "%s(%s)", S_COLUMNS, rows[i]);
        asy_test_pg_exec(s_pg, sql);
    }
}

Test(metricsql, hand_worked_cases)
{
    s_insert_cases();
    /* Recovery Star readings (M12). A: area 1 read 3 times, 4 -> 6, latest 2022-06-20 (June:
       improved); area 2 read once (does not count). B: area 1 twice, 5 -> 5, latest
       2022-07-01 00:30 BST (a July London date; 06-30 in UTC): not improved. C: area 3 twice,
       6 -> 4, edition 4, latest in May, and area 3 edition 3 twice 2 -> 3 latest in April:
       latest of all = May, improved (edition 3 rose). */
    asy_test_pg_exec(s_pg,
                     "INSERT INTO outcome_state VALUES"
                     " (repeat('a', 64), 1, 3, '00000000000000000001a', 4, lpad('1655719200000000', 20, '0')"
                     "  || 'x', 6, 3),"
                     " (repeat('a', 64), 2, 3, '00000000000000000001a', 4, lpad('1655719200000000', 20, '0')"
                     "  || 'y', 9, 1),"
                     " (repeat('b', 64), 1, 3, '00000000000000000001b', 5, lpad('1656631800000000', 20, '0')"
                     "  || 'z', 5, 2),"
                     " (repeat('c', 64), 3, 4, '00000000000000000001c', 6, lpad('1652400000000000', 20, '0')"
                     "  || 'w', 4, 2),"
                     " (repeat('c', 64), 3, 3, '00000000000000000001d', 2, lpad('1649800000000000', 20, '0')"
                     "  || 'v', 3, 2)");
    /* the session time zone must not matter: dates are Europe/London */
    asy_test_pg_exec(s_pg, "SET TimeZone = 'Pacific/Auckland'");
    s_compute("2022-07-15", 1);
    s_ratio_is("all/M12/2022-06", "total", "ALL", 1, 1);
    s_ratio_is("all/M12/2022-07", "total", "ALL", 0, 1);
    s_ratio_is("all/M12/2022-05", "total", "ALL", 1, 1);
    s_ratio_is("all/M12/2022-04", "total", "ALL", 0, 0);
    s_ratio_is("all/M12/2022-23", "total", "ALL", 2, 3);

    /* Totals always present: 3 scopes x 7 periods x 8 (M11 has two), + M3/now per scope. */
    size_t totals = 0;
    for (size_t i = 0; i < s_count; i++) {
        const char *dot = strrchr(s_cells[i].breakdown, '.');
        if (strcmp(dot ? dot + 1 : s_cells[i].breakdown, "total") == 0) {
            cr_expect_str_eq(s_cells[i].group, "ALL");
            totals++;
        }
    }
    cr_expect_eq(totals, 3 * 7 * 9 + 3, "%zu total cells", totals);

    /* M1: F in April; A, B, C, G in June (A by its London date); D in July. */
    s_count_is("all/M1/2022-04", "total", "ALL", 1);
    s_count_is("all/M1/2022-05", "total", "ALL", 0);
    cr_expect_eq(s_cells_of("all/M1/2022-05"), 1, "an empty period has only its total");
    s_count_is("all/M1/2022-06", "total", "ALL", 4);
    s_count_is("all/M1/2022-07", "total", "ALL", 1);
    s_count_is("all/M1/2022-23-Q1", "total", "ALL", 5);
    s_count_is("all/M1/2022-23-Q2", "total", "ALL", 1);
    s_count_is("all/M1/2022-23", "total", "ALL", 6);
    s_count_is("site/ward-a/M1/2022-06", "total", "ALL", 3);
    s_count_is("site/ward-b/M1/2022-06", "total", "ALL", 1);
    s_count_is("all/M1/2022-06", "service", "SERVICE_IMHA", 2);      /* A, C */
    s_count_is("all/M1/2022-06", "service", "SERVICE_COMMUNITY", 2); /* B, G */
    s_absent("all/M1/2022-06", "service", "SERVICE_NOT_RECORDED");
    s_count_is("all/M1/2022-06", "source", "SOURCE_MHA_OFFICE", 1);
    s_count_is("all/M1/2022-06", "source", "SOURCE_B_SELF", 1);
    s_count_is("all/M1/2022-06", "source", "SOURCE_B2_CARER", 1);
    s_count_is("all/M1/2022-06", "source", "SOURCE_NOT_RECORDED", 1);
    /* the MHSDS groups: B2 carer counts in B self */
    s_count_is("all/M1/2022-06", "source_group", "SOURCE_B_SELF", 2);
    s_absent("all/M1/2022-06", "source_group", "SOURCE_B2_CARER");
    s_count_is("all/M1/2022-06", "source_group", "SOURCE_MHA_OFFICE", 1);
    s_count_is("all/M1/2022-06", "source_group", "SOURCE_NOT_RECORDED", 1);
    s_count_is("all/M1/2022-06", "ethnic_group", "WHITE", 1);        /* A */
    s_count_is("all/M1/2022-06", "ethnic_group", "BLACK", 2);        /* B by ONS, C by NHS */
    s_count_is("all/M1/2022-06", "ethnic_group", "NOT_RECORDED", 1); /* G */
    s_count_is("all/M1/2022-06", "ethnicity_ons", "ONS_WHITE_BRITISH", 1);
    s_count_is("all/M1/2022-06", "ethnicity_ons", "ONS_BLACK_AFRICAN", 1);
    s_count_is("all/M1/2022-06", "ethnicity_ons", "ONS_NOT_RECORDED", 2);
    s_count_is("all/M1/2022-06", "nhs_ethnic", "NHS_ETHNIC_M_BLACK_CARIBBEAN", 1);
    /* no NHS category recorded for A and B: mapped from their ONS ones (domain brief (b)) */
    s_count_is("all/M1/2022-06", "nhs_ethnic", "NHS_ETHNIC_A_WHITE_BRITISH", 1);
    s_count_is("all/M1/2022-06", "nhs_ethnic", "NHS_ETHNIC_N_BLACK_AFRICAN", 1);
    s_count_is("all/M1/2022-06", "nhs_ethnic", "NHS_ETHNIC_NOT_RECORDED", 1); /* G */
    s_count_is("all/M1/2022-06", "age_band", "AGE_18_34", 1);
    s_count_is("all/M1/2022-06", "religion", "RELIGION_NOT_RECORDED", 4);
    s_count_is("all/M1/2022-06", "sexual_orientation", "ORIENTATION_NOT_RECORDED", 4);
    /* D opted out: its ONS, sex and age band count as not recorded */
    s_count_is("all/M1/2022-07", "ethnicity_ons", "ONS_NOT_RECORDED", 1);
    s_absent("all/M1/2022-07", "ethnicity_ons", "ONS_ASIAN_INDIAN");
    s_count_is("all/M1/2022-07", "ethnic_group", "NOT_RECORDED", 1);
    s_count_is("all/M1/2022-07", "nhs_ethnic", "NHS_ETHNIC_NOT_RECORDED", 1); /* none mapped */
    s_absent("all/M1/2022-07", "nhs_ethnic", "NHS_ETHNIC_H_ASIAN_INDIAN");
    s_count_is("all/M1/2022-07", "sex", "SEX_NOT_RECORDED", 1);
    s_absent("all/M1/2022-07", "sex", "SEX_MALE");
    s_count_is("all/M1/2022-07", "age_band", "AGE_NOT_RECORDED", 1);
    s_count_is("all/M1/2022-07", "service", "SERVICE_IMHA", 1); /* service is not equality */

    /* M2: F open Apr-May (closed 05-20, before June's start); A, B, C, G in June; July:
       A, B, D (C declined and G closed in June, before July's start). E has no referral. */
    s_count_is("all/M2/2022-04", "total", "ALL", 1);
    s_count_is("all/M2/2022-05", "total", "ALL", 1);
    s_count_is("all/M2/2022-06", "total", "ALL", 4);
    s_count_is("all/M2/2022-07", "total", "ALL", 3);
    s_count_is("all/M2/2022-23-Q1", "total", "ALL", 5);
    s_count_is("all/M2/2022-23-Q2", "total", "ALL", 3);
    s_count_is("all/M2/2022-23", "total", "ALL", 6);
    s_count_is("site/ward-b/M2/2022-07", "total", "ALL", 0);
    s_count_is("all/M2/2022-07", "sex", "SEX_MALE", 1);   /* A (D opted out) */
    s_count_is("all/M2/2022-07", "sex", "SEX_FEMALE", 1); /* B */
    s_count_is("all/M2/2022-07", "sex", "SEX_NOT_RECORDED", 1);

    /* M3: waiting = B and D. B: day 0 Mon 06-06; working days after it to 07-15: June 7-30
       has 18, July 1-15 has 11 -> 29. D: day 0 Fri 07-01; 07-04..07-15 = 10. Median 19.5;
       p90 = 10 + 0.9 * 19 = 27.1. */
    s_count_is("all/M3/now", "total", "ALL", 2);
    const asy_expect_t *m3 = s_find("all/M3/now", "total", "ALL");
    cr_expect_float_eq(m3->median, 19.5, 1e-9);
    cr_expect_float_eq(m3->p90, 27.1, 1e-9);
    s_count_is("site/ward-a/M3/now", "total", "ALL", 2);
    s_count_is("site/ward-b/M3/now", "total", "ALL", 0);
    cr_expect(isnan(s_find("site/ward-b/M3/now", "total", "ALL")->median));
    s_count_is("all/M3/now", "service", "SERVICE_COMMUNITY", 1);
    cr_expect_float_eq(s_find("all/M3/now", "service", "SERVICE_COMMUNITY")->median, 29, 1e-9);
    cr_expect_float_eq(s_find("all/M3/now", "service", "SERVICE_IMHA")->p90, 10, 1e-9);
    s_count_is("all/M3/now", "ethnic_group", "BLACK", 1);
    s_count_is("all/M3/now", "ethnic_group", "NOT_RECORDED", 1);
    cr_expect_eq(s_cells_of("all/M3/now"), 5);

    /* M4: A (06-08, contacted on the day: yes), B (06-09, contacted the day after: no),
       G (06-16: yes) in June; C declined before its deadline: out; F (04-08) no; D (07-06) no. */
    s_ratio_is("all/M4/2022-04", "total", "ALL", 0, 1);
    s_ratio_is("all/M4/2022-05", "total", "ALL", 0, 0);
    s_ratio_is("all/M4/2022-06", "total", "ALL", 2, 3);
    s_ratio_is("all/M4/2022-07", "total", "ALL", 0, 1);
    s_ratio_is("all/M4/2022-23-Q1", "total", "ALL", 2, 4);
    s_ratio_is("all/M4/2022-23", "total", "ALL", 2, 5);
    s_ratio_is("site/ward-a/M4/2022-06", "total", "ALL", 1, 2);
    s_ratio_is("site/ward-b/M4/2022-06", "total", "ALL", 1, 1);
    s_ratio_is("all/M4/2022-06", "service", "SERVICE_IMHA", 1, 1);       /* A (C out) */
    s_ratio_is("all/M4/2022-06", "service", "SERVICE_COMMUNITY", 1, 2);  /* B, G */
    s_ratio_is("all/M4/2022-06", "ethnic_group", "BLACK", 0, 1);         /* B (C out) */
    s_absent("all/M4/2022-06", "nhs_ethnic", "NHS_ETHNIC_NOT_RECORDED"); /* not an M4 breakdown */

    /* M5: A (06-17, met 06-20: no), B (06-20, never: no), G (06-27, met 06-24: yes) in June;
       F (04-21) in April; D's deadline is today: not yet counted. */
    s_ratio_is("all/M5/2022-04", "total", "ALL", 0, 1);
    s_ratio_is("all/M5/2022-06", "total", "ALL", 1, 3);
    s_ratio_is("all/M5/2022-07", "total", "ALL", 0, 0);
    s_ratio_is("all/M5/2022-23", "total", "ALL", 1, 4);

    /* M6: E (ongoing from 03-10, contacted 05-10) in every period, counted as taken up from
       May; F (04-05 to 05-01 London) in April and May, never contacted; G not qualifying. */
    s_ratio_is("all/M6/2022-04", "total", "ALL", 0, 2);
    s_ratio_is("all/M6/2022-05", "total", "ALL", 1, 2);
    s_ratio_is("all/M6/2022-06", "total", "ALL", 1, 1);
    s_ratio_is("all/M6/2022-07", "total", "ALL", 1, 1);
    s_ratio_is("all/M6/2022-23-Q1", "total", "ALL", 1, 2);
    s_ratio_is("all/M6/2022-23-Q2", "total", "ALL", 1, 1);
    s_ratio_is("all/M6/2022-23", "total", "ALL", 1, 2);
    s_ratio_is("site/ward-a/M6/2022-23", "total", "ALL", 0, 0);
    s_ratio_is("all/M6/2022-05", "ethnic_group", "WHITE", 1, 1);
    s_ratio_is("all/M6/2022-05", "ethnic_group", "NOT_STATED", 0, 1);
    s_ratio_is("all/M6/2022-05", "ethnicity_ons", "ONS_NOT_STATED", 0, 1);
    s_ratio_is("all/M6/2022-05", "sex", "SEX_FEMALE", 1, 1);

    /* M11: decisions in June: A eligible (06-02), C declined (06-07), G ineligible (06-15).
       Closures: F in May (before goals), G in June (not). */
    s_ratio_is("all/M11/2022-06", "declined.total", "ALL", 1, 3);
    s_ratio_is("all/M11/2022-06", "declined.service", "SERVICE_IMHA", 1, 2);
    s_ratio_is("all/M11/2022-06", "declined.service", "SERVICE_COMMUNITY", 0, 1);
    s_ratio_is("all/M11/2022-06", "declined.ethnic_group", "BLACK", 1, 1);
    s_ratio_is("all/M11/2022-06", "declined.ethnic_group", "WHITE", 0, 1);
    s_ratio_is("all/M11/2022-04", "declined.total", "ALL", 0, 0);
    s_ratio_is("all/M11/2022-23", "declined.total", "ALL", 1, 3);
    s_ratio_is("all/M11/2022-05", "left_before_goals.total", "ALL", 1, 1);
    s_ratio_is("all/M11/2022-06", "left_before_goals.total", "ALL", 0, 1);
    s_ratio_is("all/M11/2022-23-Q1", "left_before_goals.total", "ALL", 1, 2);
    s_ratio_is("all/M11/2022-05", "left_before_goals.ethnic_group", "NOT_STATED", 1, 1);
    s_ratio_is("site/ward-a/M11/2022-05", "left_before_goals.total", "ALL", 0, 0);

    /* M13: June A (ONS 13), B (ONS 6), C (NHS 12) stated, G not; F's ONS 20 is not stated;
       D's opt-out hides its ethnicity. */
    s_ratio_is("all/M13/2022-06", "total", "ALL", 3, 4);
    s_ratio_is("all/M13/2022-04", "total", "ALL", 0, 1);
    s_ratio_is("all/M13/2022-07", "total", "ALL", 0, 1);
    s_ratio_is("all/M13/2022-23", "total", "ALL", 3, 6);
    s_ratio_is("all/M13/2022-06", "service", "SERVICE_COMMUNITY", 1, 2);
    s_ratio_is("all/M13/2022-06", "ethnic_group", "NOT_RECORDED", 0, 1);
    cr_expect_eq(s_cells_of("all/M13/2022-06"), 1 + 2 + 3, "total, 2 services, 3 groups");
}

/* M12 counts people: a person's readings of one area and edition are one series across their
   cases. Person P: case p1 at ward-a (received 2022-05-02, ONS Black Caribbean) read area 1
   once (4, in May) and area 2 twice (5 -> 4, latest 2022-05-20); case p2 at ward-b (received
   2022-06-01, ONS White British) read area 1 once (6, 2022-06-10). For the consortium area 1
   is one series 4 -> 6 read twice, latest in June: P counts in June, improved, in p2's groups
   (the latest case holding a counted series); area 2 alone would have put P in May, not
   improved. At ward-a only p1's readings count: area 2, May, not improved. At ward-b area 1
   is read once: P is in no M12 there. Case q (ward-a, no person_key) read area 1 once: it
   joins nobody's series.  */
Test(metricsql, recovery_star_readings_join_across_a_persons_cases)
{
    asy_test_pg_exec(s_pg,
                     "INSERT INTO case_state (case_id, site_id, person_key, referral_received_at,"
                     " service, ethnicity_ons) VALUES"
                     " (repeat('1', 64), 'ward-a', repeat('9', 64), '2022-05-02 10:00+01', 1, 7),"
                     " (repeat('2', 64), 'ward-b', repeat('9', 64), '2022-06-01 10:00+01', 1, 13),"
                     " (repeat('3', 64), 'ward-a', NULL, '2022-06-02 10:00+01', 1, 13)");
    /* versions: 20-digit microseconds || an event id; 1652000000 = 2022-05-08 */
    asy_test_pg_exec(s_pg, "INSERT INTO outcome_state VALUES"
                           " (repeat('1', 64), 1, 3, lpad('1652000000000000', 20, '0') || 'a', 4,"
                           "  lpad('1652000000000000', 20, '0') || 'a', 4, 1),"
                           " (repeat('1', 64), 2, 3, lpad('1651500000000000', 20, '0') || 'b', 5,"
                           "  lpad('1653040000000000', 20, '0') || 'c', 4, 2),"
                           " (repeat('2', 64), 1, 3, lpad('1654850000000000', 20, '0') || 'd', 6,"
                           "  lpad('1654850000000000', 20, '0') || 'd', 6, 1),"
                           " (repeat('3', 64), 1, 3, lpad('1654900000000000', 20, '0') || 'e', 1,"
                           "  lpad('1654900000000000', 20, '0') || 'e', 1, 1)");
    s_compute("2022-07-15", 1);
    s_ratio_is("all/M12/2022-06", "total", "ALL", 1, 1);
    s_ratio_is("all/M12/2022-06", "ethnic_group", "WHITE", 1, 1);
    s_absent("all/M12/2022-06", "ethnic_group", "BLACK");
    s_ratio_is("all/M12/2022-05", "total", "ALL", 0, 0);
    s_ratio_is("all/M12/2022-23", "total", "ALL", 1, 1);
    s_ratio_is("site/ward-a/M12/2022-05", "total", "ALL", 0, 1);
    s_ratio_is("site/ward-a/M12/2022-05", "ethnic_group", "BLACK", 0, 1);
    s_ratio_is("site/ward-a/M12/2022-06", "total", "ALL", 0, 0);
    s_ratio_is("site/ward-b/M12/2022-23", "total", "ALL", 0, 0);
}

/* M6 links a hospital's qualifying episode and an IMHA contact by the person (domain brief
   (c)), across cases and sites. P1: episode at ward-b from 2022-06-01 (no contact there), an
   IMHA case at ward-a with its first contact on 06-03: reached. P2: the same episode, an IMHA
   contact on 05-20, before it began (an earlier detention): not reached. Both episodes are
   ongoing (today 2022-07-15). */
Test(metricsql, imha_contact_of_a_person_reaches_their_episode_in_another_case)
{
    asy_test_pg_exec(s_pg,
                     "INSERT INTO case_state (case_id, site_id, person_key, referral_received_at,"
                     " service, first_contact_at, legal_status, qualifying, qualifying_started_at)"
                     " VALUES"
                     " (repeat('4', 64), 'ward-b', repeat('7', 64), NULL, NULL, NULL, 3, true,"
                     "  '2022-06-01 10:00+01'),"
                     " (repeat('5', 64), 'ward-a', repeat('7', 64), '2022-06-02 10:00+01', 1,"
                     "  '2022-06-03 10:00+01', NULL, NULL, NULL),"
                     " (repeat('6', 64), 'ward-b', repeat('8', 64), NULL, NULL, NULL, 3, true,"
                     "  '2022-06-01 10:00+01'),"
                     " (repeat('7', 64), 'ward-a', repeat('8', 64), '2022-05-19 10:00+01', 1,"
                     "  '2022-05-20 10:00+01', NULL, NULL, NULL)");
    s_compute("2022-07-15", 1);
    s_ratio_is("all/M6/2022-05", "total", "ALL", 0, 0);
    s_ratio_is("all/M6/2022-06", "total", "ALL", 1, 2);
    s_ratio_is("all/M6/2022-07", "total", "ALL", 1, 2);
    s_ratio_is("site/ward-b/M6/2022-06", "total", "ALL", 1, 2);
    s_ratio_is("site/ward-a/M6/2022-06", "total", "ALL", 0, 0);
}

Test(metricsql, empty_database_has_only_zero_totals)
{
    s_compute("2022-07-15", 2);
    /* window from 2021-04-01: 16 months, 6 quarters, 2 years; 9 families; + M3/now */
    cr_assert_eq(s_count, 24 * 9 + 1, "%zu cells", s_count);
    for (size_t i = 0; i < s_count; i++) {
        const asy_expect_t *cell = &s_cells[i];
        cr_expect_str_eq(cell->group, "ALL");
        cr_expect(strcmp(cell->breakdown, "total") == 0 ||
                  strcmp(cell->breakdown, "declined.total") == 0 ||
                  strcmp(cell->breakdown, "left_before_goals.total") == 0);
        cr_expect(cell->count == 0 && cell->numerator == 0 && cell->denominator == 0, "%s",
                  cell->topic);
    }
    s_count_is("all/M1/2021-04", "total", "ALL", 0);
    s_count_is("all/M2/2021-22-Q4", "total", "ALL", 0);
    s_ratio_is("all/M6/2022-23", "total", "ALL", 0, 0);
    s_ratio_is("all/M11/2022-23-Q2", "left_before_goals.total", "ALL", 0, 0);
    cr_expect_null(s_find("all/M1/2022-08", "total", "ALL"), "a month after today");
    cr_expect_null(s_find("all/M1/2021-03", "total", "ALL"), "a month before the window");
    cr_expect_null(s_find("all/M1/2022-23-Q3", "total", "ALL"));
    s_count_is("all/M3/now", "total", "ALL", 0);
    cr_expect(isnan(s_find("all/M3/now", "total", "ALL")->median));
}

/* An integer column of a result row. */
static int s_column(const PGresult *res, int row, int column)
{
    return (int)strtol(PQgetvalue(res, row, column), NULL, 10);
}

/* The SQL deadlines and waits equal the C calendar's, for 900 consecutive referral days over
   weekends, Christmases, the 2022 Jubilee, the 2023 Coronation and a run-time holiday. */
Test(metricsql, working_days_match_the_calendar)
{
    cr_assert_eq(asy_calendar_add(s_cal, s_date("2023-03-15"), ASY_HOLIDAY_ADDED), 0);
    cr_assert_eq(asy_calendar_add(s_cal, s_date("2022-12-27"), ASY_HOLIDAY_REMOVED), 0);
    asy_test_pg_exec(s_pg, "INSERT INTO case_state (case_id, site_id, referral_received_at)"
                           " SELECT lpad(to_hex(i), 64, '0'), 'ward-a',"
                           "  timestamptz '2022-01-01 12:00Z' + i * interval '1 day'"
                           " FROM generate_series(0, 899) AS i");
    asy_date_t today = s_date("2023-12-31");
    s_compute("2023-12-31", 2);

    PGresult *res = PQexec(s_pg, "SELECT received - date '1970-01-01',"
                                 " contact_deadline - date '1970-01-01',"
                                 " meeting_deadline - date '1970-01-01', wait FROM mq_case");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_assert_eq(PQntuples(res), 900);
    int m4_november = 0; /* C's count of contact deadlines in 2023-11 */
    for (int row = 0; row < PQntuples(res); row++) {
        asy_date_t received = s_column(res, row, 0);
        asy_date_t contact = asy_calendar_add_working_days(s_cal, received, 3);
        asy_date_t meeting = asy_calendar_add_working_days(s_cal, received, 10);
        char text[ASY_DATE_TEXT];
        asy_date_format(received, text);
        cr_expect_eq(s_column(res, row, 1), contact, "contact deadline of %s", text);
        cr_expect_eq(s_column(res, row, 2), meeting, "meeting deadline of %s", text);
        if (received <= today)
            cr_expect_eq(s_column(res, row, 3),
                         asy_calendar_working_days_between(s_cal, received, today), "wait of %s",
                         text);
        else
            cr_expect(PQgetisnull(res, row, 3), "no wait for %s (after today)", text);
        m4_november += contact >= s_date("2023-11-01") && contact <= s_date("2023-11-30");
    }
    PQclear(res);
    s_ratio_is("all/M4/2023-11", "total", "ALL", 0, m4_november);
    s_count_is("all/M1/2023-24", "total", "ALL", 366); /* 2023-04-01 .. 2024-03-31 (a leap year) */
    s_count_is("site/ward-a/M1/2022-23-Q3", "total", "ALL", 92);
    /* received after today (2024) waits in no M3 row: 730 days 2022-01-01 .. 2023-12-31 */
    s_count_is("all/M3/now", "total", "ALL", 730);
}

Test(metricsql, bad_arguments)
{
    asy_expect_t *cells = (asy_expect_t *)1;
    size_t count = 7;
    cr_expect_eq(asy_metricsql_compute(s_pg, s_date("2022-07-15"), s_cal, 0, &cells, &count),
                 ASY_EINVAL);
    cr_expect_null(cells);
    cr_expect_eq(count, 0);
    cr_expect_eq(asy_metricsql_compute(s_pg, s_date("2022-07-15"), NULL, 2, &cells, &count),
                 ASY_EINVAL);
}
