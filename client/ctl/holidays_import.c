/*  holidays_import.c: `advsync-ctl holidays import FILE.json`, the gov.uk bank-holidays feed
    (https://www.gov.uk/bank-holidays.json) applied to the `holiday` table.

    Only the england-and-wales division is read. For each year the feed has dates in:
      - a feed date the built-in calendar (rules + built-in table) does not make a holiday gets
        an 'added' row (note: the event's title);
      - a feed date the built-in calendar does make a holiday needs no row: a 'removed' row for
        it is deleted;
    and for each year the feed covers completely (it has a date in January and in December):
      - a built-in holiday the feed does not list gets a 'removed' row;
      - an 'added' row for a date neither the feed nor the rules have is deleted.
    Rows of other years are left alone. Running it twice changes nothing the second time.  */
#include "ctl.h"

#include <czmq.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define S_DIVISION "england-and-wales"
#define S_YEARS 10000

typedef struct {
    asy_date_t day;
    char title[ASY_CTL_NOTE_MAX];
} s_event_t;

typedef struct {
    s_event_t *events;
    size_t count;
    bool january[S_YEARS], december[S_YEARS];
    unsigned short dates[S_YEARS]; /* the year's events: 0 = a year the feed does not cover */
} s_feed_t;

/* England and Wales never has fewer bank holidays in a year (New Year's Day, Good Friday,
   Easter Monday, the early May, spring and summer holidays, Christmas Day, Boxing Day). */
#define S_MIN_HOLIDAYS_A_YEAR 8

/* Reads the whole file (or pipe) at path into *text_p (caller frees), *size_p bytes. Returns 0,
   or ASY_EINVAL after a message. */
static int s_read_whole(const char *path, char **text_p, size_t *size_p)
{
    size_t size = 0;
    char *text = NULL;
    FILE *file = fopen(path, "rb");
    struct stat info;
    bool stated = file && fstat(fileno(file), &info) == 0;
    if (stated && S_ISDIR(info.st_mode)) {
        fclose(file);
        fprintf(stderr, "advsync-ctl: unable to open %s: it is a folder, not a JSON file\n", path);
        return ASY_EINVAL;
    }
    /* to the end, whatever the size says: a pipe (`<(curl ...)`) says 0 */
    bool failed = !file;
    for (size_t capacity = 0; file && !failed;) {
        if (size == capacity) {
            capacity = capacity ? capacity * 2 : 65536;
            char *bigger = realloc(text, capacity);
            if (!bigger) {
                errno = ENOMEM;
                failed = true;
                break;
            }
            text = bigger;
        }
        size_t got = fread(text + size, 1, capacity - size, file);
        size += got;
        if (got == 0) {
            failed = ferror(file) != 0;
            break;
        }
    }
    int failure = errno;
    if (file)
        fclose(file);
    if (failed) {
        fprintf(stderr, "advsync-ctl: unable to open %s: %s\n", path, strerror(failure));
        free(text);
        return ASY_EINVAL;
    }
    *text_p = text;
    *size_p = size;
    return 0;
}

/* Reads events[i] of the feed into *out. Returns 0, or ASY_EINVAL after a message naming the
   field. */
static int s_read_event(const char *path, size_t i, json_t *event, s_event_t *out)
{
    json_t *date = json_object_get(event, "date");
    json_t *title = json_object_get(event, "title");
    if (!json_is_object(event) || !json_is_string(date) ||
        asy_date_parse(json_string_value(date), &out->day) != 0) {
        if (json_is_string(date))
            fprintf(stderr,
                    "advsync-ctl: %s: %s.events[%zu].date: \"%s\" is not a date "
                    "YYYY-MM-DD\n",
                    path, S_DIVISION, i, json_string_value(date));
        else
            fprintf(stderr,
                    "advsync-ctl: %s: %s.events[%zu].date: missing or not text (a date "
                    "YYYY-MM-DD is expected)\n",
                    path, S_DIVISION, i);
        return ASY_EINVAL;
    }
    int event_year = 0;
    asy_date_to_ymd(out->day, &event_year, NULL, NULL);
    if (event_year < 1971) {
        fprintf(stderr,
                "advsync-ctl: %s: %s.events[%zu].date: \"%s\" is before 1971 (the Banking "
                "and Financial Dealings Act)\n",
                path, S_DIVISION, i, json_string_value(date));
        return ASY_EINVAL;
    }
    if (json_is_null(title))
        title = NULL; /* optional */
    if (title && !json_is_string(title)) {
        fprintf(stderr, "advsync-ctl: %s: %s.events[%zu].title: not text\n", path, S_DIVISION, i);
        return ASY_EINVAL;
    }
    snprintf(out->title, sizeof out->title, "%s", title ? json_string_value(title) : "");
    return 0;
}

/* Reads the division's events. Returns 0, or ASY_EINVAL after a message naming the field. */
static int s_read_feed(const char *path, s_feed_t *feed)
{
    json_error_t error;
    /* read whole, so that a UTF-8 byte order mark (some downloads) can be skipped, as the CSV
       readers skip it */
    size_t size = 0;
    char *text = NULL;
    if (s_read_whole(path, &text, &size) != 0)
        return ASY_EINVAL;
    size_t skip = size >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    json_t *root = json_loadb(text + skip, size - skip, 0, &error);
    free(text);
    if (!root) {
        if (error.line > 0) /* jansson gives -1 when it could not read the file at all */
            fprintf(stderr, "advsync-ctl: %s:%d:%d: %s\n", path, error.line, error.column,
                    error.text);
        else
            fprintf(stderr, "advsync-ctl: %s\n", error.text);
        return ASY_EINVAL;
    }
    int rc = 0;
    json_t *division = json_is_object(root) ? json_object_get(root, S_DIVISION) : NULL;
    json_t *events = json_is_object(division) ? json_object_get(division, "events") : NULL;
    if (!json_is_array(events)) {
        fprintf(stderr,
                "advsync-ctl: %s: %s.events: missing or not an array (is this the "
                "gov.uk bank-holidays.json feed?)\n",
                path, S_DIVISION);
        rc = ASY_EINVAL;
    } else if (!(feed->events = calloc(json_array_size(events) + 1, sizeof *feed->events))) {
        rc = ASY_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(events); i++) {
        json_t *event = json_array_get(events, i);
        s_event_t *out = &feed->events[feed->count];
        rc = s_read_event(path, i, event, out);
        if (rc != 0)
            break;
        int year = 0, month = 0;
        asy_date_to_ymd(out->day, &year, &month, NULL);
        feed->january[year] |= month == 1;
        feed->december[year] |= month == 12;
        feed->dates[year]++;
        feed->count++;
    }
    json_decref(root);
    return rc;
}

static const s_event_t *s_feed_find(const s_feed_t *feed, asy_date_t day)
{
    for (size_t i = 0; i < feed->count; i++)
        if (feed->events[i].day == day)
            return &feed->events[i];
    return NULL;
}

static const asy_ctl_holiday_row_t *s_row_find(const asy_ctl_holiday_row_t *rows, size_t count,
                                               asy_date_t day)
{
    for (size_t i = 0; i < count; i++)
        if (rows[i].day == day)
            return &rows[i];
    return NULL;
}

typedef struct {
    asy_db_t *db;
    FILE *out; /* what changed: printed only once committed */
    int changes;
    int rc;
} s_apply_t;

static void s_upsert(s_apply_t *apply, asy_date_t day, asy_holiday_change_t change,
                     const char *note)
{
    char text[ASY_DATE_TEXT];
    const char *change_text = change == ASY_HOLIDAY_ADDED ? "added" : "removed";
    const char *params[] = {asy_date_format(day, text), change_text, *note ? note : NULL};
    if (apply->rc == 0)
        apply->rc = asy_db_exec(apply->db,
                                "INSERT INTO holiday (day, change, note) VALUES ($1, $2, $3) "
                                "ON CONFLICT (day) DO UPDATE SET change = EXCLUDED.change, "
                                "note = EXCLUDED.note, updated_at = now()",
                                3, params, NULL);
    if (apply->rc == 0) {
        fprintf(apply->out, "%-8s %s %-9s %s\n", change_text, text, asy_ctl_weekday_name(day),
                note);
        apply->changes++;
    }
}

static void s_delete(s_apply_t *apply, asy_date_t day, const char *why)
{
    char text[ASY_DATE_TEXT];
    const char *params[] = {asy_date_format(day, text)};
    if (apply->rc == 0)
        apply->rc = asy_db_exec(apply->db, "DELETE FROM holiday WHERE day = $1", 1, params, NULL);
    if (apply->rc == 0) {
        fprintf(apply->out, "%-8s %s %-9s %s\n", "cleared", text, asy_ctl_weekday_name(day), why);
        apply->changes++;
    }
}

/* The changes the feed asks for, given the built-in calendar and the table's rows. */
static void s_apply(s_apply_t *apply, const s_feed_t *feed, const asy_calendar_t *builtin,
                    const asy_ctl_holiday_row_t *rows, size_t count)
{
    for (size_t i = 0; i < feed->count; i++) {
        const s_event_t *event = &feed->events[i];
        if (s_feed_find(feed, event->day) != event)
            continue; /* listed twice */
        const asy_ctl_holiday_row_t *row = s_row_find(rows, count, event->day);
        if (!asy_calendar_is_holiday(builtin, event->day)) {
            if (!row || row->change != ASY_HOLIDAY_ADDED)
                s_upsert(apply, event->day, ASY_HOLIDAY_ADDED, event->title);
        } else if (row && row->change == ASY_HOLIDAY_REMOVED)
            s_delete(apply, event->day, "(the feed lists it: a holiday again)");
    }
    for (int year = 1; year < S_YEARS; year++) {
        if (!feed->january[year] || !feed->december[year])
            continue;
        asy_date_t dates[32];
        size_t found = asy_calendar_holidays(builtin, year, dates, 32);
        for (size_t i = 0; i < found && i < 32; i++) {
            const asy_ctl_holiday_row_t *row = s_row_find(rows, count, dates[i]);
            if (!s_feed_find(feed, dates[i]) && (!row || row->change != ASY_HOLIDAY_REMOVED))
                s_upsert(apply, dates[i], ASY_HOLIDAY_REMOVED, "not in the gov.uk feed");
        }
        for (size_t i = 0; i < count; i++) {
            int row_year = 0;
            asy_date_to_ymd(rows[i].day, &row_year, NULL, NULL);
            if (row_year == year && rows[i].change == ASY_HOLIDAY_ADDED &&
                !s_feed_find(feed, rows[i].day) && !asy_calendar_is_holiday(builtin, rows[i].day))
                s_delete(apply, rows[i].day, "(added by table, but not in the gov.uk feed)");
        }
    }
}

/* "2018-2027 (complete: 2018-2026)" style summary of the years. */
static void s_print_years(const s_feed_t *feed)
{
    printf("feed years:");
    for (int year = 1; year < S_YEARS; year++)
        if (feed->dates[year] > 0)
            printf(" %d%s", year, feed->january[year] && feed->december[year] ? "" : " (part)");
    printf("\n");
}

/* Reads the feed and refuses one that is empty or trimmed (which, taken as complete, would
   remove holidays). Returns 0 or a negative ASY_E* code (after a message if the feed is at
   fault). */
static int s_load_feed(const char *path, s_feed_t *feed)
{
    int rc = s_read_feed(path, feed);
    if (rc == 0 && feed->count == 0) {
        fprintf(stderr, "advsync-ctl: %s: %s.events: empty\n", path, S_DIVISION);
        rc = ASY_EINVAL;
    }
    /* a year from January to December with fewer dates than any real year is a trimmed or
       edited feed: taken as complete, it would remove that year's statutory holidays */
    for (int year = 1; rc == 0 && year < S_YEARS; year++)
        if (feed->january[year] && feed->december[year] &&
            feed->dates[year] < S_MIN_HOLIDAYS_A_YEAR) {
            fprintf(stderr,
                    "advsync-ctl: %s: %s: %d has dates in January and December but only %u "
                    "holidays (England and Wales has at least %d a year): a trimmed or edited "
                    "feed? Nothing changed\n",
                    path, S_DIVISION, year, (unsigned)feed->dates[year], S_MIN_HOLIDAYS_A_YEAR);
            rc = ASY_EINVAL;
        }
    return rc;
}

int asy_ctl_holidays_import(const asy_ctl_options_t *options, const char *path)
{
    s_feed_t *feed = calloc(1, sizeof *feed);
    if (!feed)
        return ASY_CTL_FAILURE;
    int rc = s_load_feed(path, feed);
    static const char *const tables[] = {"holiday", NULL};
    asy_db_t *db = NULL;
    int code = rc == 0 ? asy_ctl_connect(options, tables, &db) : ASY_CTL_FAILURE;
    asy_calendar_t *builtin = code == ASY_CTL_OK ? asy_calendar_new() : NULL;
    asy_ctl_holiday_row_t *rows = NULL;
    size_t count = 0;
    char *report = NULL;
    size_t report_size = 0;
    s_apply_t apply = {.db = db, .out = NULL, .changes = 0, .rc = 0};
    if (code == ASY_CTL_OK && !(apply.out = open_memstream(&report, &report_size)))
        rc = ASY_ENOMEM;
    if (code == ASY_CTL_OK) {
        /* Concurrent imports (or add/remove) wait for this one: the diff stays right. */
        rc = rc == 0 && builtin ? asy_db_begin(db) : ASY_ENOMEM;
        if (rc == 0)
            rc = asy_db_exec(db, "LOCK TABLE holiday IN SHARE ROW EXCLUSIVE MODE", 0, NULL, NULL);
        if (rc == 0)
            rc = asy_ctl_holiday_rows(db, &rows, &count);
        if (rc == 0) {
            s_apply(&apply, feed, builtin, rows, count);
            rc = apply.rc;
        }
        if (rc == 0)
            rc = asy_db_commit(db);
        if (apply.out)
            fclose(apply.out);
        if (rc != 0) {
            asy_db_rollback(db);
            fprintf(stderr, "advsync-ctl: holidays import: nothing changed: %s\n",
                    rc == ASY_ENOMEM || rc == ASY_EPROTO ? asy_strerror(rc) : asy_db_errmsg(db));
            code = ASY_CTL_FAILURE;
        } else {
            fputs(report ? report : "", stdout);
            if (apply.changes == 0)
                printf("no change\n");
            s_print_years(feed);
        }
    }
    free(report);
    free(rows);
    asy_calendar_destroy(&builtin);
    asy_db_destroy(&db);
    free(feed->events);
    free(feed);
    return code;
}
