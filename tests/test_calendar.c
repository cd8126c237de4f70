/*  test_calendar.c: dates, Europe/London, England and Wales bank holidays and working days.

    Check values: /work/shared/domain.md (e), which match the gov.uk bank-holiday lists
    (https://www.gov.uk/bank-holidays, and the lists kept by vacanza/holidays); Easter dates from
    the Meeus/Jones/Butcher computus as published in tables of Western Easter.  */
#include "calendar.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static asy_calendar_t *s_calendar;

static void s_setup(void)
{
    s_calendar = asy_calendar_new();
    cr_assert_not_null(s_calendar);
}

static void s_teardown(void)
{
    asy_calendar_destroy(&s_calendar);
}

TestSuite(calendar, .init = s_setup, .fini = s_teardown);

static asy_date_t s_date(const char *text)
{
    asy_date_t date = 0;
    cr_assert_eq(asy_date_parse(text, &date), 0, "cannot parse %s", text);
    return date;
}

static void s_assert_date(asy_date_t actual, const char *expected)
{
    char text[ASY_DATE_TEXT];
    cr_assert_str_eq(asy_date_format(actual, text), expected);
}

/* Microseconds since 1970 of date at hh:mm:ss UTC. */
static int64_t s_instant(const char *date, int hour, int minute, int second)
{
    return ((int64_t)s_date(date) * 86400 + hour * 3600 + minute * 60 + second) * 1000000;
}

/* The holidays of year, as "MM-DD MM-DD ...". */
static void s_assert_holidays(int year, const char *expected)
{
    asy_date_t dates[32];
    size_t count = asy_calendar_holidays(s_calendar, year, dates, 32);
    cr_assert_leq(count, 32);
    char text[400] = "", one[ASY_DATE_TEXT];
    for (size_t i = 0; i < count; i++) {
        asy_date_format(dates[i], one);
        if (i > 0)
            strcat(text, " ");
        strcat(text, one + 5);
        cr_assert(asy_calendar_is_holiday(s_calendar, dates[i]), "%s not a holiday", one);
        cr_assert_not(asy_calendar_is_working_day(s_calendar, dates[i]));
    }
    cr_assert_str_eq(text, expected, "holidays of %d", year);
}

/* ---------------------------------------------------------------------------------------------- */

Test(calendar, ymd_round_trip)
{
    asy_date_t date;
    cr_assert_eq(asy_date_from_ymd(1970, 1, 1, &date), 0);
    cr_assert_eq(date, 0);
    cr_assert_eq(asy_date_from_ymd(1969, 12, 31, &date), 0);
    cr_assert_eq(date, -1);
    cr_assert_eq(asy_date_from_ymd(2000, 3, 1, &date), 0);
    cr_assert_eq(date, 11017);
    s_assert_date(s_date("2000-02-29") + 1, "2000-03-01");
    s_assert_date(s_date("1900-02-28") + 1, "1900-03-01");
    s_assert_date(s_date("0001-01-01"), "0001-01-01");
    s_assert_date(s_date("9999-12-31"), "9999-12-31");
    /* every day of 1899-2101 survives the round trip */
    for (asy_date_t d = s_date("1899-01-01"); d <= s_date("2101-12-31"); d++) {
        int year, month, day;
        asy_date_t back;
        asy_date_to_ymd(d, &year, &month, &day);
        cr_assert_eq(asy_date_from_ymd(year, month, day, &back), 0);
        cr_assert_eq(back, d);
    }
}

Test(calendar, parse_rejects_bad_text)
{
    asy_date_t date;
    const char *bad[] = {"2023-02-29", "2022-6-01",  "2022-06-01x", "abcd-ef-gh", "0000-01-01",
                         "2022-13-01", "2022-00-10", "2022/06/01",  "",           "2100-02-29"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(asy_date_parse(bad[i], &date), ASY_EINVAL, "accepted %s", bad[i]);
    cr_assert_eq(asy_date_parse(NULL, &date), ASY_EINVAL);
    cr_assert_eq(asy_date_parse("2024-02-29", &date), 0);
    cr_assert_eq(asy_days_in_month(2024, 2), 29);
    cr_assert_eq(asy_days_in_month(2100, 2), 28);
}

Test(calendar, weekdays)
{
    cr_assert_eq(asy_date_weekday(s_date("1970-01-01")), ASY_THURSDAY);
    cr_assert_eq(asy_date_weekday(s_date("1969-12-28")), ASY_SUNDAY);
    cr_assert_eq(asy_date_weekday(s_date("2000-01-01")), ASY_SATURDAY);
    cr_assert_eq(asy_date_weekday(s_date("2022-06-01")), ASY_WEDNESDAY);
    cr_assert_eq(asy_date_weekday(s_date("2026-12-28")), ASY_MONDAY);
}

Test(calendar, easter)
{
    const char *expected[][2] = {{"2024", "2024-03-31"}, {"2025", "2025-04-20"},
                                 {"2038", "2038-04-25"}, {"2285", "2285-03-22"},
                                 {"2019", "2019-04-21"}, {"2008", "2008-03-23"},
                                 {"2011", "2011-04-24"}, {"1818", "1818-03-22"},
                                 {"1943", "1943-04-25"}, {"2000", "2000-04-23"}};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        int year = 0;
        sscanf(expected[i][0], "%d", &year);
        s_assert_date(asy_easter_sunday(year), expected[i][1]);
    }
}

/* ---------------------------------------------------------------------------------------------- */

Test(calendar, check_value_years)
{
    s_assert_holidays(2022, "01-03 04-15 04-18 05-02 06-02 06-03 08-29 09-19 12-26 12-27");
    s_assert_holidays(2023, "01-02 04-07 04-10 05-01 05-08 05-29 08-28 12-25 12-26");
    s_assert_holidays(2026, "01-01 04-03 04-06 05-04 05-25 08-31 12-25 12-28");
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2022-05-30")));
    cr_assert(asy_calendar_is_working_day(s_calendar, s_date("2022-05-30")));
}

Test(calendar, christmas_substitutes)
{
    /* 25 Dec on Saturday: Mon 27 and Tue 28 */
    s_assert_holidays(2010, "01-01 04-02 04-05 05-03 05-31 08-30 12-27 12-28");
    s_assert_holidays(2021, "01-01 04-02 04-05 05-03 05-31 08-30 12-27 12-28");
    /* 25 Dec on Sunday: Mon 26 and Tue 27 (and 1 Jan on Saturday in 2011 and 2022 -> Mon 3) */
    s_assert_holidays(2011, "01-03 04-22 04-25 04-29 05-02 05-30 08-29 12-26 12-27");
    s_assert_holidays(2016, "01-01 03-25 03-28 05-02 05-30 08-29 12-26 12-27");
    /* 26 Dec on Saturday: Mon 28; early May moved to Fri 8 May */
    s_assert_holidays(2020, "01-01 04-10 04-13 05-08 05-25 08-31 12-25 12-28");
    /* 1 Jan on Sunday -> Mon 2 */
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("2023-01-02")));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2023-01-01")));
}

Test(calendar, one_off_years)
{
    s_assert_holidays(2002, "01-01 03-29 04-01 05-06 06-03 06-04 08-26 12-25 12-26");
    s_assert_holidays(2012, "01-02 04-06 04-09 05-07 06-04 06-05 08-27 12-25 12-26");
    s_assert_holidays(1995, "01-02 04-14 04-17 05-08 05-29 08-28 12-25 12-26");
    s_assert_holidays(1999, "01-01 04-02 04-05 05-03 05-31 08-30 12-27 12-28 12-31");
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("1977-06-07")));
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("1981-07-29")));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2002-05-27")));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2012-05-28")));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2020-05-04")));
}

Test(calendar, proclamation_start_years)
{
    /* New Year's Day from 1974, early May from 1978 */
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("1973-01-01")));
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("1974-01-01")));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("1977-05-02")));
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("1978-05-01")));
}

Test(calendar, holidays_capacity_reports_total)
{
    asy_date_t dates[3];
    cr_assert_eq(asy_calendar_holidays(s_calendar, 2022, dates, 3), 10);
    s_assert_date(dates[2], "2022-04-18");
}

/* ---------------------------------------------------------------------------------------------- */

Test(calendar, sla_deadlines)
{
    asy_date_t received = s_date("2022-06-01");
    s_assert_date(asy_calendar_add_working_days(s_calendar, received, 3), "2022-06-08");
    s_assert_date(asy_calendar_add_working_days(s_calendar, received, 10), "2022-06-17");
    s_assert_date(asy_calendar_add_working_days(s_calendar, received, 0), "2022-06-01");
    /* received on a Saturday or a bank holiday: day 0 is the next working day, Mon 6 June */
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-06-04"), 0), "2022-06-06");
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-06-04"), 3), "2022-06-09");
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-06-02"), 3), "2022-06-09");
    /* over Christmas 2022 (26, 27 Dec) and New Year (2 Jan 2023) */
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-12-23"), 3), "2022-12-30");
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-12-23"), 5), "2023-01-04");
    /* backwards */
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-06-08"), -3),
                  "2022-06-01");
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2022-06-05"), -1),
                  "2022-05-31");
    s_assert_date(asy_calendar_next_working_day(s_calendar, s_date("2022-06-02")), "2022-06-06");
}

Test(calendar, working_days_between)
{
    asy_date_t received = s_date("2022-06-01");
    cr_assert_eq(asy_calendar_working_days_between(s_calendar, received, s_date("2022-06-08")), 3);
    cr_assert_eq(asy_calendar_working_days_between(s_calendar, received, s_date("2022-06-17")), 10);
    cr_assert_eq(asy_calendar_working_days_between(s_calendar, received, received), 0);
    cr_assert_eq(
        asy_calendar_working_days_between(s_calendar, s_date("2022-06-04"), s_date("2022-06-06")),
        0);
    cr_assert_eq(asy_calendar_working_days_between(s_calendar, s_date("2022-06-08"), received), -3);
    /* whole year 2023: 365 days, 105 weekend days, 9 holidays (none on a weekend) */
    cr_assert_eq(
        asy_calendar_working_days_between(s_calendar, s_date("2022-12-30"), s_date("2023-12-31")),
        365 - 105 - 9);
    /* inverse of add_working_days for every start in 2020-2027 and n in 0..25 */
    for (asy_date_t a = s_date("2020-01-01"); a < s_date("2027-12-31"); a += 3)
        for (int n = 0; n <= 25; n += 5) {
            asy_date_t b = asy_calendar_add_working_days(s_calendar, a, n);
            cr_assert(asy_calendar_is_working_day(s_calendar, b));
            cr_assert_eq(asy_calendar_working_days_between(s_calendar, a, b), n);
        }
}

Test(calendar, run_time_changes)
{
    asy_date_t received = s_date("2022-06-01");
    /* an extra holiday on Mon 6 June moves the contact deadline a day later */
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("2022-06-06"), ASY_HOLIDAY_ADDED), 0);
    s_assert_date(asy_calendar_add_working_days(s_calendar, received, 3), "2022-06-09");
    /* removing Fri 3 June brings it back */
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("2022-06-03"), ASY_HOLIDAY_REMOVED), 0);
    s_assert_date(asy_calendar_add_working_days(s_calendar, received, 3), "2022-06-08");
    s_assert_holidays(2022, "01-03 04-15 04-18 05-02 06-02 06-06 08-29 09-19 12-26 12-27");
    /* a later entry for the same date replaces the earlier one */
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("2022-06-06"), ASY_HOLIDAY_REMOVED), 0);
    cr_assert(asy_calendar_is_working_day(s_calendar, s_date("2022-06-06")));
    /* a removed rule holiday (a future proclamation moving Christmas, say) */
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("2026-12-28"), ASY_HOLIDAY_REMOVED), 0);
    s_assert_holidays(2026, "01-01 04-03 04-06 05-04 05-25 08-31 12-25");
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("2026-01-01"), 7), ASY_EINVAL);
    cr_assert_eq(asy_calendar_add(s_calendar, -800000, ASY_HOLIDAY_ADDED), ASY_EINVAL);
}

Test(calendar, many_run_time_entries)
{
    /* enough entries to grow the table several times, in reverse order */
    for (int i = 0; i < 200; i++)
        cr_assert_eq(asy_calendar_add(s_calendar, s_date("2030-12-31") - 7 * i, ASY_HOLIDAY_ADDED),
                     0);
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("2030-12-31")));
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("2030-12-31") - 7 * 199));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2030-12-30")));
    /* the built-in table survived the inserts */
    cr_assert(asy_calendar_is_holiday(s_calendar, s_date("2022-09-19")));
    cr_assert_not(asy_calendar_is_holiday(s_calendar, s_date("2022-05-30")));
}

/* The working-day walks agree, day by day, with is_working_day (which asks the rules and the
   entries): from 1985 to 2105, across the ends of the kept years (1990-2099), also after
   run-time changes inside and outside them. */
static void s_assert_walks_agree(void)
{
    for (asy_date_t date = s_date("1985-01-01"); date < s_date("2105-01-01"); date++) {
        asy_date_t next = date + 1;
        while (!asy_calendar_is_working_day(s_calendar, next))
            next++;
        asy_date_t start = date;
        while (!asy_calendar_is_working_day(s_calendar, start))
            start++;
        char text[ASY_DATE_TEXT];
        cr_assert_eq(asy_calendar_next_working_day(s_calendar, date), start, "%s",
                     asy_date_format(date, text));
        cr_assert_eq(asy_calendar_nth_working_day_after(s_calendar, date, 1), next, "%s",
                     asy_date_format(date, text));
        /* from a working day, one more working day is the next one */
        if (start == date)
            cr_assert_eq(asy_calendar_add_working_days(s_calendar, date, 1), next, "%s",
                         asy_date_format(date, text));
        asy_date_t after_start = start + 1;
        while (!asy_calendar_is_working_day(s_calendar, after_start))
            after_start++;
        cr_assert_eq(asy_calendar_working_days_between(s_calendar, start, after_start), 1, "%s",
                     asy_date_format(date, text));
        cr_assert_eq(asy_calendar_working_days_between(s_calendar, date, after_start - 1), 0, "%s",
                     asy_date_format(date, text));
    }
}

Test(calendar, working_day_walks_agree_with_the_rules)
{
    s_assert_walks_agree();
    const char *changes[] = {"1989-12-29", "1990-01-02", "2024-07-05",
                             "2099-12-31", "2100-01-04", "1995-05-08"};
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
        cr_assert_eq(asy_calendar_add(s_calendar, s_date(changes[i]), ASY_HOLIDAY_ADDED), 0);
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("2026-12-28"), ASY_HOLIDAY_REMOVED), 0);
    cr_assert_eq(asy_calendar_add(s_calendar, s_date("1990-01-02"), ASY_HOLIDAY_REMOVED), 0);
    s_assert_walks_agree();
    cr_assert_not(asy_calendar_is_working_day(s_calendar, s_date("2024-07-05")));
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2024-07-04"), 1), "2024-07-08");
    s_assert_date(asy_calendar_add_working_days(s_calendar, s_date("2026-12-24"), 1), "2026-12-28");
}

Test(calendar, destroy_is_idempotent)
{
    asy_calendar_t *calendar = asy_calendar_new();
    cr_assert_not_null(calendar);
    asy_calendar_destroy(&calendar);
    cr_assert_null(calendar);
    asy_calendar_destroy(&calendar);
    asy_calendar_destroy(NULL);
}

/* ---------------------------------------------------------------------------------------------- */

Test(calendar, quarters_and_report_due)
{
    asy_quarter_t q4 = asy_quarter_of(s_date("2023-02-14"));
    cr_assert_eq(q4.start_year, 2022);
    cr_assert_eq(q4.quarter, 4);
    s_assert_date(asy_quarter_start(q4), "2023-01-01");
    s_assert_date(asy_quarter_end(q4), "2023-03-31");
    s_assert_date(asy_calendar_report_due(s_calendar, q4), "2023-04-18");
    char text[16];
    cr_assert_str_eq(asy_quarter_format(q4, text, sizeof text), "2022-23 Q4");

    asy_quarter_t q1 = asy_quarter_of(s_date("2024-04-01"));
    cr_assert_eq(q1.start_year, 2024);
    cr_assert_eq(q1.quarter, 1);
    s_assert_date(asy_quarter_end(q1), "2024-06-30");
    /* quarter ends on a Sunday: the 10th working day after it */
    s_assert_date(asy_calendar_report_due(s_calendar, q1), "2024-07-12");
    asy_quarter_t q3 = asy_quarter_of(s_date("2022-12-31"));
    cr_assert_eq(q3.quarter, 3);
    s_assert_date(asy_quarter_start(q3), "2022-10-01");
    /* 10 working days after Sat 31 Dec 2022 skip 2 Jan 2023 */
    s_assert_date(asy_calendar_report_due(s_calendar, q3), "2023-01-16");
    asy_quarter_t next = asy_quarter_next(q4);
    cr_assert_eq(next.start_year, 2023);
    cr_assert_eq(next.quarter, 1);
    asy_quarter_t previous = asy_quarter_previous(next);
    cr_assert_eq(previous.start_year, 2022);
    cr_assert_eq(previous.quarter, 4);
    s_assert_date(asy_quarter_end(asy_quarter_of(s_date("2022-07-01"))), "2022-09-30");
}

/* ---------------------------------------------------------------------------------------------- */

Test(calendar, london_dates_across_dst)
{
    /* BST 2026 starts Sun 29 March 01:00 UTC */
    cr_assert_not(asy_london_is_bst(s_instant("2026-03-29", 0, 30, 0)));
    s_assert_date(asy_london_date(s_instant("2026-03-29", 0, 30, 0)), "2026-03-29");
    s_assert_date(asy_london_date(s_instant("2026-03-28", 23, 30, 0)), "2026-03-28");
    cr_assert(asy_london_is_bst(s_instant("2026-03-29", 1, 0, 0)));
    cr_assert_not(asy_london_is_bst(s_instant("2026-03-29", 0, 59, 59)));
    /* summer: 23:30 UTC is the next day in London */
    s_assert_date(asy_london_date(s_instant("2026-10-24", 23, 30, 0)), "2026-10-25");
    s_assert_date(asy_london_date(s_instant("2026-06-30", 23, 30, 0)), "2026-07-01");
    s_assert_date(asy_london_date(s_instant("2026-06-30", 22, 59, 59)), "2026-06-30");
    /* BST ends Sun 25 October 01:00 UTC */
    cr_assert(asy_london_is_bst(s_instant("2026-10-25", 0, 59, 59)));
    cr_assert_not(asy_london_is_bst(s_instant("2026-10-25", 1, 0, 0)));
    s_assert_date(asy_london_date(s_instant("2026-10-25", 23, 30, 0)), "2026-10-25");
    s_assert_date(asy_london_date(s_instant("2026-12-31", 23, 30, 0)), "2026-12-31");
    /* 2022: 27 March to 30 October */
    cr_assert(asy_london_is_bst(s_instant("2022-03-27", 1, 0, 0)));
    cr_assert_not(asy_london_is_bst(s_instant("2022-10-30", 1, 0, 0)));
    /* microseconds before 1970 floor, not truncate */
    s_assert_date(asy_london_date(-1), "1969-12-31");
    s_assert_date(asy_london_date(0), "1970-01-01");
}

Test(calendar, date_from_civil_without_checks)
{
    cr_assert_eq(asy_date_from_civil(1970, 1, 1), 0);
    cr_assert_eq(asy_date_from_civil(1969, 12, 31), -1);
    cr_assert_eq(asy_date_from_civil(2000, 3, 1), s_date("2000-03-01"));
    cr_assert_eq(asy_date_from_civil(1, 1, 1), s_date("0001-01-01"));
    cr_assert_eq(asy_date_from_civil(9999, 12, 31), s_date("9999-12-31"));
    /* outside years 1..9999, and days counted on from the first of the month */
    cr_assert_eq(asy_date_from_civil(0, 12, 31), s_date("0001-01-01") - 1);
    cr_assert_eq(asy_date_from_civil(2024, 2, 30), s_date("2024-03-01"));
    cr_assert_eq(asy_date_from_civil(2024, 3, 0), s_date("2024-02-29"));
    cr_assert_eq(asy_days_in_month(2023, 2), 28);
    cr_assert_eq(asy_days_in_month(2000, 2), 29);
    cr_assert_eq(asy_days_in_month(2026, 10), 31);
    cr_assert_eq(asy_days_in_month(2026, 13), 0);
}

/* Seconds since 1970 of a date and time read as if UTC. */
static int64_t s_wall(const char *date, int hour, int minute)
{
    return (int64_t)s_date(date) * 86400 + hour * 3600 + minute * 60;
}

Test(calendar, london_local_time_to_utc)
{
    /* GMT in winter, BST in summer */
    cr_assert_eq(asy_london_to_utc(s_wall("2026-01-15", 9, 0)), s_wall("2026-01-15", 9, 0));
    cr_assert_eq(asy_london_to_utc(s_wall("2026-07-16", 10, 15)), s_wall("2026-07-16", 9, 15));
    /* 29 March 2026: 00:59 is GMT, 01:00-01:59 does not exist and is read as GMT, 02:00 BST */
    cr_assert_eq(asy_london_to_utc(s_wall("2026-03-29", 0, 59)), s_wall("2026-03-29", 0, 59));
    cr_assert_eq(asy_london_to_utc(s_wall("2026-03-29", 1, 30)), s_wall("2026-03-29", 1, 30));
    cr_assert_eq(asy_london_to_utc(s_wall("2026-03-29", 2, 0)), s_wall("2026-03-29", 1, 0));
    /* 25 October 2026: 01:00-01:59 happens twice; the first (BST) is taken; 02:00 is GMT */
    cr_assert_eq(asy_london_to_utc(s_wall("2026-10-25", 0, 59)), s_wall("2026-10-24", 23, 59));
    cr_assert_eq(asy_london_to_utc(s_wall("2026-10-25", 1, 0)), s_wall("2026-10-25", 0, 0));
    cr_assert_eq(asy_london_to_utc(s_wall("2026-10-25", 1, 59)), s_wall("2026-10-25", 0, 59));
    cr_assert_eq(asy_london_to_utc(s_wall("2026-10-25", 2, 0)), s_wall("2026-10-25", 2, 0));
    /* New Year is GMT on both sides; before 1970 too */
    cr_assert_eq(asy_london_to_utc(s_wall("2027-01-01", 0, 30)), s_wall("2027-01-01", 0, 30));
    cr_assert_eq(asy_london_to_utc(s_wall("1960-07-01", 12, 0)), s_wall("1960-07-01", 11, 0));
    /* the BST reading agrees with asy_london_is_bst() */
    int64_t utc = asy_london_to_utc(s_wall("2022-06-01", 8, 0));
    cr_assert(asy_london_is_bst(utc * 1000000));
    cr_assert_eq(asy_london_date(utc * 1000000), s_date("2022-06-01"));
}
