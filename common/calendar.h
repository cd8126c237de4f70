/*  calendar.h: dates, Europe/London, and England and Wales working days.

    A date is an asy_date_t: days since 1970-01-01 in the proleptic Gregorian calendar (so
    1970-01-01 is 0 and 1969-12-31 is -1). Dates compare and subtract as plain integers.

    Working day = Monday to Friday and not an England and Wales bank holiday. Bank holidays come
    from the rules of the Banking and Financial Dealings Act 1971 and the yearly proclamations
    (see /work/shared/domain.md (e)), a built-in data table of moved and one-off dates, and any
    additions or removals made at run time with asy_calendar_add (the broker loads those from
    the `holiday` table). An entry for a date overrides the rules for that date; a later entry
    for the same date replaces an earlier one.

    Pure module: no I/O, no dependence on the process time zone.  */
#ifndef ASY_CALENDAR_H_INCLUDED
#define ASY_CALENDAR_H_INCLUDED

#include "asy.h"

typedef int32_t asy_date_t;

#define ASY_DATE_TEXT 11 /* "YYYY-MM-DD" + NUL */
#define ASY_SLA_CONTACT_WORKING_DAYS 3
#define ASY_SLA_MEETING_WORKING_DAYS 10
#define ASY_REPORT_DUE_WORKING_DAYS 10

/* ISO day of week. */
typedef enum {
    ASY_MONDAY = 1,
    ASY_TUESDAY,
    ASY_WEDNESDAY,
    ASY_THURSDAY,
    ASY_FRIDAY,
    ASY_SATURDAY,
    ASY_SUNDAY,
} asy_weekday_t;

/* ----------------------------------------------------------------------------------------------
   Plain dates. */

/* *date = year-month-day. Returns 0, or ASY_EINVAL if it is not a real date of years 1..9999. */
int asy_date_from_ymd(int year, int month, int day, asy_date_t *date);

/* Days since 1970-01-01 of year-month-day with no checks (H. Hinnant's days_from_civil): for
   callers that have validated the date already. month must be 1..12; any day is counted from
   the first of the month (day 0 is the last day of the month before); the result must fit an
   asy_date_t (years within about +-5,800,000). */
asy_date_t asy_date_from_civil(int64_t year, int month, int day);

/* Splits a date into year, month (1-12) and day (1-31). Any pointer may be NULL. */
void asy_date_to_ymd(asy_date_t date, int *year, int *month, int *day);

/* Day of the week of a date. */
asy_weekday_t asy_date_weekday(asy_date_t date);

/* Parses exactly "YYYY-MM-DD". Returns 0 or ASY_EINVAL (wrong shape or not a real date). */
int asy_date_parse(const char *text, asy_date_t *date);

/* Writes "YYYY-MM-DD" (years 1..9999; other years are written as "0000-00-00"). Returns out. */
char *asy_date_format(asy_date_t date, char out[ASY_DATE_TEXT]);

/* Last day (28-31) of a month (proleptic Gregorian, any year); 0 if month is not 1..12. */
int asy_days_in_month(int year, int month);

/* Easter Sunday of a Gregorian year (Meeus/Jones/Butcher). */
asy_date_t asy_easter_sunday(int year);

/* ----------------------------------------------------------------------------------------------
   Europe/London. BST (UTC+1) runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on
   the last Sunday of October; GMT otherwise. The rule is the one in force since 1996 and is
   applied to every year. */

/* True if the instant (microseconds since 1970-01-01T00:00Z) is in British Summer Time. */
bool asy_london_is_bst(int64_t utc_micros);

/* The Europe/London calendar date of an instant (microseconds since 1970-01-01T00:00Z). */
asy_date_t asy_london_date(int64_t utc_micros);

/* UTC seconds since 1970 of a Europe/London wall-clock time, given as the seconds since 1970
   it would be if it were UTC (asy_date_from_civil(...) * 86400 + seconds of the day). In the
   hour the clocks go back (01:00-01:59 on the last Sunday of October) the earlier, BST reading
   is taken; a time in the hour that does not exist in spring (01:00-01:59 on the last Sunday
   of March) is read as GMT. */
int64_t asy_london_to_utc(int64_t local_seconds);

/* ----------------------------------------------------------------------------------------------
   The working-day calendar. */

typedef struct _asy_calendar_t asy_calendar_t;

typedef enum {
    ASY_HOLIDAY_ADDED = 1,   /* the date is a bank holiday, whatever the rules say */
    ASY_HOLIDAY_REMOVED = 2, /* the date is not a bank holiday, whatever the rules say */
} asy_holiday_change_t;

/* A calendar with the rules and the built-in table of moved and one-off dates (1977-06-07,
   1981-07-29, 1995, 1999-12-31, 2002, 2011, 2012, 2020, 2022, 2023). Caller owns; NULL if out
   of memory. */
asy_calendar_t *asy_calendar_new(void);

/* Frees the calendar and sets *self_p to NULL; does nothing if *self_p is NULL. */
void asy_calendar_destroy(asy_calendar_t **self_p);

/* Makes date a bank holiday (ASY_HOLIDAY_ADDED) or not one (ASY_HOLIDAY_REMOVED), overriding
   the rules and any earlier entry for that date. Returns 0, ASY_EINVAL (bad change or a date
   outside years 1..9999) or ASY_ENOMEM. */
int asy_calendar_add(asy_calendar_t *self, asy_date_t date, asy_holiday_change_t change);

/* True if date is an England and Wales bank holiday. */
bool asy_calendar_is_holiday(const asy_calendar_t *self, asy_date_t date);

/* True if date is Monday to Friday and not a bank holiday. */
bool asy_calendar_is_working_day(const asy_calendar_t *self, asy_date_t date);

/* Writes the bank holidays of a year, in order, to out[0..capacity-1] and returns how many
   there are (which may be more than capacity: only capacity are written). 16 is plenty. */
size_t asy_calendar_holidays(const asy_calendar_t *self, int year, asy_date_t *out,
                             size_t capacity);

/* The first working day on or after date. */
asy_date_t asy_calendar_next_working_day(const asy_calendar_t *self, asy_date_t date);

/* SLA deadline: day 0 is date if it is a working day, else the next working day; the result is
   day n (the n-th working day after day 0). Received Wed 2022-06-01 -> n=3: 2022-06-08,
   n=10: 2022-06-17. n < 0 counts back from the last working day on or before date. */
asy_date_t asy_calendar_add_working_days(const asy_calendar_t *self, asy_date_t date, int n);

/* Working days elapsed from a to b in SLA terms: the number of working days d with
   day0(a) < d <= b, where day0(a) is the first working day on or after a (0 if b is before
   that). If b < a the result is minus working_days_between(b, a). For n >= 0,
   working_days_between(a, add_working_days(a, n)) == n. */
int asy_calendar_working_days_between(const asy_calendar_t *self, asy_date_t a, asy_date_t b);

/* The n-th working day strictly after date (n >= 1), whatever date itself is. */
asy_date_t asy_calendar_nth_working_day_after(const asy_calendar_t *self, asy_date_t date, int n);

/* ----------------------------------------------------------------------------------------------
   Financial quarters: Q1 Apr-Jun, Q2 Jul-Sep, Q3 Oct-Dec, Q4 Jan-Mar. Financial year 2022-23
   (start_year 2022) runs 2022-04-01 .. 2023-03-31. */

typedef struct {
    int start_year; /* calendar year in which the financial year starts */
    int quarter;    /* 1..4 */
} asy_quarter_t;

/* The financial quarter a date falls in. */
asy_quarter_t asy_quarter_of(asy_date_t date);

/* First and last day of a quarter (quarter must be 1..4). */
asy_date_t asy_quarter_start(asy_quarter_t quarter);
asy_date_t asy_quarter_end(asy_quarter_t quarter);

/* The quarter after / before. */
asy_quarter_t asy_quarter_next(asy_quarter_t quarter);
asy_quarter_t asy_quarter_previous(asy_quarter_t quarter);

/* Quarterly monitoring report due date: the ASY_REPORT_DUE_WORKING_DAYS-th working day after
   the quarter end (spec 5.3). Q4 2022-23 (ends 2023-03-31) -> 2023-04-18. */
asy_date_t asy_calendar_report_due(const asy_calendar_t *self, asy_quarter_t quarter);

/* Writes "2022-23 Q4" to out (at least 11 bytes). Returns out. */
char *asy_quarter_format(asy_quarter_t quarter, char *out, size_t size);

#endif
