/*  calendar.c: dates, Europe/London, England and Wales working days (see calendar.h).

    Sources: Banking and Financial Dealings Act 1971 Sch 1; the yearly proclamations (New Year's
    Day from 1974, early May from 1978); gov.uk bank-holiday lists for the moved and one-off
    dates; Meeus/Jones/Butcher Gregorian computus; H. Hinnant's days_from_civil algorithm.  */
#include "calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SECONDS_PER_DAY 86400
#define S_MAX_RULE_HOLIDAYS 12
#define S_TABLE_FIRST_YEAR 1990 /* working days of these years are kept as bits */
#define S_TABLE_LAST_YEAR 2099

typedef struct {
    asy_date_t date;
    asy_holiday_change_t change;
} s_entry_t;

/* The deadlines of every case row walk working days one by one, so the working days of
   S_TABLE_FIRST_YEAR..S_TABLE_LAST_YEAR are kept as one bit a day (about 5 KB), made at
   asy_calendar_new and kept true by asy_calendar_add; dates outside the table are worked out
   from the rules and the entries as they are asked for. */
struct _asy_calendar_t {
    s_entry_t *entries; /* sorted by date, one per date */
    size_t count;
    size_t capacity;
    asy_date_t table_first, table_end; /* [first, end) */
    uint64_t *working;                 /* bit (date - table_first): a working day */
};

/* Moved and one-off bank holidays since the 1971 Act (gov.uk lists; domain.md (e)). A move is
   a removal of the rule-generated date plus an addition of the new one. */
static const struct {
    int year, month, day;
    asy_holiday_change_t change;
} S_BUILTIN[] = {
    {1977, 6, 7, ASY_HOLIDAY_ADDED},   /* Silver Jubilee */
    {1981, 7, 29, ASY_HOLIDAY_ADDED},  /* Royal wedding */
    {1995, 5, 1, ASY_HOLIDAY_REMOVED}, /* early May moved to VE Day 50 */
    {1995, 5, 8, ASY_HOLIDAY_ADDED},
    {1999, 12, 31, ASY_HOLIDAY_ADDED},  /* Millennium */
    {2002, 5, 27, ASY_HOLIDAY_REMOVED}, /* spring moved to 4 Jun */
    {2002, 6, 3, ASY_HOLIDAY_ADDED},    /* Golden Jubilee */
    {2002, 6, 4, ASY_HOLIDAY_ADDED},
    {2011, 4, 29, ASY_HOLIDAY_ADDED},   /* Royal wedding */
    {2012, 5, 28, ASY_HOLIDAY_REMOVED}, /* spring moved to 4 Jun */
    {2012, 6, 4, ASY_HOLIDAY_ADDED},
    {2012, 6, 5, ASY_HOLIDAY_ADDED},   /* Diamond Jubilee */
    {2020, 5, 4, ASY_HOLIDAY_REMOVED}, /* early May moved to VE Day 75 */
    {2020, 5, 8, ASY_HOLIDAY_ADDED},
    {2022, 5, 30, ASY_HOLIDAY_REMOVED}, /* spring moved to Thu 2 Jun */
    {2022, 6, 2, ASY_HOLIDAY_ADDED},
    {2022, 6, 3, ASY_HOLIDAY_ADDED},  /* Platinum Jubilee */
    {2022, 9, 19, ASY_HOLIDAY_ADDED}, /* State funeral */
    {2023, 5, 8, ASY_HOLIDAY_ADDED},  /* Coronation */
};

/* ----------------------------------------------------------------------------------------------
   Plain dates */

static bool s_is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant), no checks. */
static asy_date_t s_days(int64_t year, int64_t month, int64_t day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return (asy_date_t)(era * 146097 + day_of_era - 719468);
}

asy_date_t asy_date_from_civil(int64_t year, int month, int day)
{
    return s_days(year, month, day);
}

int asy_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return month == 2 && s_is_leap(year) ? 29 : days[month - 1];
}

int asy_date_from_ymd(int year, int month, int day, asy_date_t *date)
{
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
        day > asy_days_in_month(year, month))
        return ASY_EINVAL;
    *date = s_days(year, month, day);
    return 0;
}

void asy_date_to_ymd(asy_date_t date, int *year, int *month, int *day)
{
    int64_t z = (int64_t)date + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t day_of_era = z - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t shifted_month = (5 * day_of_year + 2) / 153;
    int64_t m = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
    if (year)
        *year = (int)(year_of_era + era * 400 + (m <= 2));
    if (month)
        *month = (int)m;
    if (day)
        *day = (int)(day_of_year - (153 * shifted_month + 2) / 5 + 1);
}

asy_weekday_t asy_date_weekday(asy_date_t date)
{
    /* 1970-01-01 was a Thursday */
    int64_t from_thursday = (((int64_t)date % 7) + 7) % 7;
    return (asy_weekday_t)((from_thursday + 3) % 7 + 1);
}

int asy_date_parse(const char *text, asy_date_t *date)
{
    if (!text || strlen(text) != 10 || text[4] != '-' || text[7] != '-')
        return ASY_EINVAL;
    int parts[3] = {0, 0, 0};
    static const int starts[3] = {0, 5, 8}, lengths[3] = {4, 2, 2};
    for (int p = 0; p < 3; p++) {
        for (int i = 0; i < lengths[p]; i++) {
            char c = text[starts[p] + i];
            if (c < '0' || c > '9')
                return ASY_EINVAL;
            parts[p] = parts[p] * 10 + (c - '0');
        }
    }
    return asy_date_from_ymd(parts[0], parts[1], parts[2], date);
}

static void s_put_digits(char *out, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

char *asy_date_format(asy_date_t date, char out[ASY_DATE_TEXT])
{
    int year, month, day;
    asy_date_to_ymd(date, &year, &month, &day);
    if (year < 1 || year > 9999)
        year = month = day = 0;
    s_put_digits(out, year, 4);
    out[4] = '-';
    s_put_digits(out + 5, month, 2);
    out[7] = '-';
    s_put_digits(out + 8, day, 2);
    out[10] = '\0';
    return out;
}

asy_date_t asy_easter_sunday(int year)
{
    int a = year % 19, b = year / 100, c = year % 100;
    int d = b / 4, e = b % 4;
    int f = (b + 8) / 25, g = (b - f + 1) / 3;
    int h = (19 * a + b - d - g + 15) % 30;
    int i = c / 4, k = c % 4;
    int l = (32 + 2 * e + 2 * i - h - k) % 7;
    int m = (a + 11 * h + 22 * l) / 451;
    int month = (h + l - 7 * m + 114) / 31;
    int day = (h + l - 7 * m + 114) % 31 + 1;
    return s_days(year, month, day);
}

/* The last given weekday on or before date / the first on or after. */
static asy_date_t s_weekday_on_or_before(asy_date_t date, asy_weekday_t weekday)
{
    return date - ((int)asy_date_weekday(date) - (int)weekday + 7) % 7;
}

static asy_date_t s_weekday_on_or_after(asy_date_t date, asy_weekday_t weekday)
{
    return date + ((int)weekday - (int)asy_date_weekday(date) + 7) % 7;
}

static bool s_is_weekend(asy_date_t date)
{
    return asy_date_weekday(date) >= ASY_SATURDAY;
}

/* ----------------------------------------------------------------------------------------------
   Europe/London */

static int64_t s_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* *start and *end: UTC seconds of 01:00 UTC on the last Sundays of March and October. */
static void s_bst_bounds(int year, int64_t *start, int64_t *end)
{
    *start =
        (int64_t)s_weekday_on_or_before(s_days(year, 3, 31), ASY_SUNDAY) * S_SECONDS_PER_DAY + 3600;
    *end = (int64_t)s_weekday_on_or_before(s_days(year, 10, 31), ASY_SUNDAY) * S_SECONDS_PER_DAY +
           3600;
}

/* The Gregorian year of a number of seconds since 1970 (UTC or wall-clock alike). */
static int s_year_of(int64_t seconds)
{
    int year;
    asy_date_to_ymd((asy_date_t)s_floor_div(seconds, S_SECONDS_PER_DAY), &year, NULL, NULL);
    return year;
}

bool asy_london_is_bst(int64_t utc_micros)
{
    int64_t seconds = s_floor_div(utc_micros, 1000000);
    int64_t start, end;
    s_bst_bounds(s_year_of(seconds), &start, &end);
    return seconds >= start && seconds < end;
}

int64_t asy_london_to_utc(int64_t local_seconds)
{
    /* Read as BST if the BST reading lies in BST; so the repeated October hour is BST, and
       the skipped March hour (whose BST reading falls before the change) is GMT. The bounds
       are those of the local year: BST never spans a New Year, so that is the UTC year. */
    int64_t start, end;
    s_bst_bounds(s_year_of(local_seconds), &start, &end);
    int64_t as_bst = local_seconds - 3600;
    return as_bst >= start && as_bst < end ? as_bst : local_seconds;
}

asy_date_t asy_london_date(int64_t utc_micros)
{
    int64_t seconds = s_floor_div(utc_micros, 1000000);
    if (asy_london_is_bst(utc_micros))
        seconds += 3600;
    return (asy_date_t)s_floor_div(seconds, S_SECONDS_PER_DAY);
}

/* ----------------------------------------------------------------------------------------------
   Bank holiday rules */

static bool s_contains(const asy_date_t *dates, size_t count, asy_date_t date)
{
    for (size_t i = 0; i < count; i++)
        if (dates[i] == date)
            return true;
    return false;
}

static void s_sort(asy_date_t *dates, size_t count)
{
    for (size_t i = 1; i < count; i++) {
        asy_date_t value = dates[i];
        size_t j = i;
        for (; j > 0 && dates[j - 1] > value; j--)
            dates[j] = dates[j - 1];
        dates[j] = value;
    }
}

/* Places holidays that fall on a weekend on the next weekday not already a holiday, after all
   the weekday ones are placed (so 25 Dec on Sunday gives Mon 26 and Tue 27). */
static size_t s_place(asy_date_t *out, size_t count, const asy_date_t *wanted, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s_is_weekend(wanted[i]))
            out[count++] = wanted[i];
    for (size_t i = 0; i < n; i++) {
        if (!s_is_weekend(wanted[i]))
            continue;
        asy_date_t date = wanted[i];
        while (s_is_weekend(date) || s_contains(out, count, date))
            date++;
        out[count++] = date;
    }
    return count;
}

/* The rule-generated bank holidays of a year, sorted; returns how many (<= 9). */
static size_t s_rule_holidays(int year, asy_date_t out[S_MAX_RULE_HOLIDAYS])
{
    size_t count = 0;
    asy_date_t easter = asy_easter_sunday(year);
    out[count++] = easter - 2; /* Good Friday */
    out[count++] = easter + 1; /* Easter Monday */
    if (year >= 1978)
        out[count++] = s_weekday_on_or_after(s_days(year, 5, 1), ASY_MONDAY);
    out[count++] = s_weekday_on_or_before(s_days(year, 5, 31), ASY_MONDAY);
    out[count++] = s_weekday_on_or_before(s_days(year, 8, 31), ASY_MONDAY);
    if (year >= 1974) {
        asy_date_t new_year = s_days(year, 1, 1);
        count = s_place(out, count, &new_year, 1);
    }
    asy_date_t christmas[2] = {s_days(year, 12, 25), s_days(year, 12, 26)};
    count = s_place(out, count, christmas, 2);
    s_sort(out, count);
    return count;
}

/* ----------------------------------------------------------------------------------------------
   The calendar object */

static bool s_in_table(const asy_calendar_t *self, asy_date_t date)
{
    return date >= self->table_first && date < self->table_end;
}

static void s_table_set(asy_calendar_t *self, asy_date_t date, bool working)
{
    size_t bit = (size_t)(date - self->table_first);
    if (working)
        self->working[bit / 64] |= UINT64_C(1) << (bit % 64);
    else
        self->working[bit / 64] &= ~(UINT64_C(1) << (bit % 64));
}

static bool s_table_get(const asy_calendar_t *self, asy_date_t date)
{
    size_t bit = (size_t)(date - self->table_first);
    return (self->working[bit / 64] >> (bit % 64)) & 1;
}

/* An entry decides its date whatever the rules say. */
static void s_table_note(asy_calendar_t *self, asy_date_t date, asy_holiday_change_t change)
{
    if (s_in_table(self, date))
        s_table_set(self, date, !s_is_weekend(date) && change == ASY_HOLIDAY_REMOVED);
}

/* The table from the rules alone (asy_calendar_new adds the built-in entries after). */
static int s_table_build(asy_calendar_t *self)
{
    self->table_first = s_days(S_TABLE_FIRST_YEAR, 1, 1);
    self->table_end = s_days(S_TABLE_LAST_YEAR + 1, 1, 1);
    size_t days = (size_t)(self->table_end - self->table_first);
    self->working = calloc((days + 63) / 64, sizeof *self->working);
    if (!self->working)
        return ASY_ENOMEM;
    for (int year = S_TABLE_FIRST_YEAR; year <= S_TABLE_LAST_YEAR; year++) {
        asy_date_t rules[S_MAX_RULE_HOLIDAYS];
        size_t count = s_rule_holidays(year, rules);
        for (asy_date_t date = s_days(year, 1, 1); date < s_days(year + 1, 1, 1); date++)
            if (!s_is_weekend(date) && !s_contains(rules, count, date))
                s_table_set(self, date, true);
    }
    return 0;
}

/* Index of the entry for date, or of where it would go (and *found false). */
static size_t s_find(const asy_calendar_t *self, asy_date_t date, bool *found)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->entries[middle].date < date)
            low = middle + 1;
        else
            high = middle;
    }
    *found = low < self->count && self->entries[low].date == date;
    return low;
}

asy_calendar_t *asy_calendar_new(void)
{
    asy_calendar_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (s_table_build(self) != 0) {
        free(self);
        return NULL;
    }
    for (size_t i = 0; i < sizeof S_BUILTIN / sizeof S_BUILTIN[0]; i++) {
        asy_date_t date = s_days(S_BUILTIN[i].year, S_BUILTIN[i].month, S_BUILTIN[i].day);
        if (asy_calendar_add(self, date, S_BUILTIN[i].change) != 0) {
            asy_calendar_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void asy_calendar_destroy(asy_calendar_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->entries);
    free((*self_p)->working);
    free(*self_p);
    *self_p = NULL;
}

int asy_calendar_add(asy_calendar_t *self, asy_date_t date, asy_holiday_change_t change)
{
    if (change != ASY_HOLIDAY_ADDED && change != ASY_HOLIDAY_REMOVED)
        return ASY_EINVAL;
    if (date < s_days(1, 1, 1) || date > s_days(9999, 12, 31))
        return ASY_EINVAL;
    bool found;
    size_t at = s_find(self, date, &found);
    if (found) {
        self->entries[at].change = change;
        s_table_note(self, date, change);
        return 0;
    }
    if (self->count == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 32;
        s_entry_t *entries = realloc(self->entries, capacity * sizeof *entries);
        if (!entries)
            return ASY_ENOMEM;
        self->entries = entries;
        self->capacity = capacity;
    }
    memmove(self->entries + at + 1, self->entries + at, (self->count - at) * sizeof(s_entry_t));
    self->entries[at] = (s_entry_t){date, change};
    self->count++;
    s_table_note(self, date, change);
    return 0;
}

/* Walking day by day recomputes a year's rules only when the year changes. */
typedef struct {
    const asy_calendar_t *calendar;
    int year;
    size_t count;
    asy_date_t rules[S_MAX_RULE_HOLIDAYS];
} s_cursor_t;

static s_cursor_t s_cursor(const asy_calendar_t *calendar)
{
    s_cursor_t cursor = {.calendar = calendar, .year = -1000000};
    return cursor;
}

static bool s_holiday(s_cursor_t *cursor, asy_date_t date)
{
    bool found;
    size_t at = s_find(cursor->calendar, date, &found);
    if (found)
        return cursor->calendar->entries[at].change == ASY_HOLIDAY_ADDED;
    int year;
    asy_date_to_ymd(date, &year, NULL, NULL);
    if (year != cursor->year) {
        cursor->year = year;
        cursor->count = s_rule_holidays(year, cursor->rules);
    }
    return s_contains(cursor->rules, cursor->count, date);
}

/* From the rules and the entries (what the table is made from). */
static bool s_working_by_rules(s_cursor_t *cursor, asy_date_t date)
{
    return !s_is_weekend(date) && !s_holiday(cursor, date);
}

static bool s_working(s_cursor_t *cursor, asy_date_t date)
{
    if (s_in_table(cursor->calendar, date))
        return s_table_get(cursor->calendar, date);
    return s_working_by_rules(cursor, date);
}

bool asy_calendar_is_holiday(const asy_calendar_t *self, asy_date_t date)
{
    s_cursor_t cursor = s_cursor(self);
    return s_holiday(&cursor, date);
}

bool asy_calendar_is_working_day(const asy_calendar_t *self, asy_date_t date)
{
    /* not from the table: the tests hold one against the other */
    s_cursor_t cursor = s_cursor(self);
    return s_working_by_rules(&cursor, date);
}

size_t asy_calendar_holidays(const asy_calendar_t *self, int year, asy_date_t *out, size_t capacity)
{
    asy_date_t found[S_MAX_RULE_HOLIDAYS + 32];
    size_t count = 0;
    size_t limit = sizeof found / sizeof found[0];
    s_cursor_t cursor = s_cursor(self);
    /* rule dates not removed */
    asy_date_t rules[S_MAX_RULE_HOLIDAYS];
    size_t rule_count = s_rule_holidays(year, rules);
    for (size_t i = 0; i < rule_count; i++)
        if (s_holiday(&cursor, rules[i]))
            found[count++] = rules[i];
    /* added dates of the year; a year with more than `limit` additions is absurd, but be safe
       by counting past the buffer. */
    size_t total = count;
    bool in_table;
    size_t at = s_find(self, s_days(year, 1, 1), &in_table);
    asy_date_t last = s_days(year, 12, 31);
    for (; at < self->count && self->entries[at].date <= last; at++) {
        asy_date_t date = self->entries[at].date;
        if (self->entries[at].change != ASY_HOLIDAY_ADDED || s_contains(rules, rule_count, date))
            continue;
        if (count < limit)
            found[count++] = date;
        total++;
    }
    s_sort(found, count);
    for (size_t i = 0; i < count && i < capacity; i++)
        out[i] = found[i];
    return total;
}

asy_date_t asy_calendar_next_working_day(const asy_calendar_t *self, asy_date_t date)
{
    s_cursor_t cursor = s_cursor(self);
    while (!s_working(&cursor, date))
        date++;
    return date;
}

asy_date_t asy_calendar_add_working_days(const asy_calendar_t *self, asy_date_t date, int n)
{
    s_cursor_t cursor = s_cursor(self);
    int step = n >= 0 ? 1 : -1;
    while (!s_working(&cursor, date))
        date += step;
    while (n != 0) {
        date += step;
        if (s_working(&cursor, date))
            n -= step;
    }
    return date;
}

int asy_calendar_working_days_between(const asy_calendar_t *self, asy_date_t a, asy_date_t b)
{
    if (b < a)
        return -asy_calendar_working_days_between(self, b, a);
    s_cursor_t cursor = s_cursor(self);
    asy_date_t day0 = a;
    while (!s_working(&cursor, day0))
        day0++;
    int count = 0;
    for (asy_date_t date = day0 + 1; date <= b; date++)
        if (s_working(&cursor, date))
            count++;
    return count;
}

asy_date_t asy_calendar_nth_working_day_after(const asy_calendar_t *self, asy_date_t date, int n)
{
    s_cursor_t cursor = s_cursor(self);
    while (n > 0) {
        date++;
        if (s_working(&cursor, date))
            n--;
    }
    return date;
}

/* ----------------------------------------------------------------------------------------------
   Financial quarters */

asy_quarter_t asy_quarter_of(asy_date_t date)
{
    int year, month;
    asy_date_to_ymd(date, &year, &month, NULL);
    if (month >= 4)
        return (asy_quarter_t){year, (month - 4) / 3 + 1};
    return (asy_quarter_t){year - 1, 4};
}

asy_date_t asy_quarter_start(asy_quarter_t quarter)
{
    if (quarter.quarter == 4)
        return s_days(quarter.start_year + 1, 1, 1);
    return s_days(quarter.start_year, 4 + 3 * (quarter.quarter - 1), 1);
}

asy_quarter_t asy_quarter_next(asy_quarter_t quarter)
{
    if (quarter.quarter >= 4)
        return (asy_quarter_t){quarter.start_year + 1, 1};
    return (asy_quarter_t){quarter.start_year, quarter.quarter + 1};
}

asy_quarter_t asy_quarter_previous(asy_quarter_t quarter)
{
    if (quarter.quarter <= 1)
        return (asy_quarter_t){quarter.start_year - 1, 4};
    return (asy_quarter_t){quarter.start_year, quarter.quarter - 1};
}

asy_date_t asy_quarter_end(asy_quarter_t quarter)
{
    return asy_quarter_start(asy_quarter_next(quarter)) - 1;
}

asy_date_t asy_calendar_report_due(const asy_calendar_t *self, asy_quarter_t quarter)
{
    return asy_calendar_nth_working_day_after(self, asy_quarter_end(quarter),
                                              ASY_REPORT_DUE_WORKING_DAYS);
}

char *asy_quarter_format(asy_quarter_t quarter, char *out, size_t size)
{
    snprintf(out, size, "%d-%02d Q%d", quarter.start_year, (quarter.start_year + 1) % 100,
             quarter.quarter);
    return out;
}
