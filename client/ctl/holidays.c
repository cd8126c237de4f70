/*  holidays.c: `advsync-ctl holidays list|add|remove|clear` over the `holiday` table, the
    overrides the broker applies to the built-in calendar (asy_calendar_add).  */
#include "ctl.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const S_TABLES[] = {"holiday", NULL};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-ctl [options] holidays list [--year YYYY]\n"
            "       advsync-ctl [options] holidays add DATE [--note TEXT]\n"
            "       advsync-ctl [options] holidays remove DATE [--note TEXT]\n"
            "       advsync-ctl [options] holidays clear DATE\n"
            "       advsync-ctl [options] holidays import FILE.json\n"
            "\n"
            "The England and Wales bank holidays come from the rules and a built-in table of\n"
            "moved and one-off dates; the database's `holiday` table overrides them per date.\n"
            "The broker rereads the table every 10 seconds.\n"
            "\n"
            "  list     the bank holidays of YYYY (default: this year and next) as the broker\n"
            "           sees them, with the dates the table adds or removes marked\n"
            "  add      DATE is a bank holiday (a one-off proclamation)\n"
            "  remove   DATE is a working day although the rules make it a holiday (a moved\n"
            "           holiday: remove the old date, add the new one)\n"
            "  clear    forget the table's entry for DATE (the rules apply again)\n"
            "  import   bring the table in line with the gov.uk feed\n"
            "           (https://www.gov.uk/bank-holidays.json, division england-and-wales)\n"
            "\n"
            "DATE is YYYY-MM-DD.\n");
}

const char *asy_ctl_weekday_name(asy_date_t date)
{
    static const char *const names[] = {"",         "Monday", "Tuesday",  "Wednesday",
                                        "Thursday", "Friday", "Saturday", "Sunday"};
    return names[asy_date_weekday(date)];
}

/* Splits the next tab-separated field off *cursor (in place). */
static char *s_next_field(char **cursor, char separator)
{
    char *field = *cursor;
    if (!field)
        return NULL;
    char *end = strchr(field, separator);
    if (end) {
        *end = '\0';
        *cursor = end + 1;
    } else
        *cursor = NULL;
    return field;
}

int asy_ctl_holiday_rows(asy_db_t *db, asy_ctl_holiday_row_t **rows, size_t *count)
{
    *rows = NULL;
    *count = 0;
    /* One text value (db.h copies only the first row): "day\tchange\tnote\n...". The day
       through to_char: day::text follows the session's DateStyle ("01/06/2026"). */
    asy_db_row_t row = {0};
    int rc = asy_db_query_row(
        db,
        "SELECT count(*), string_agg(to_char(day, 'YYYY-MM-DD') || E'\\t' || change || "
        "E'\\t' || coalesce(translate(note, E'\\t\\n\\r', '   '), ''), "
        "E'\\n' ORDER BY day) FROM holiday",
        false, 0, NULL, &row);
    if (rc != 0)
        return rc;
    size_t expected = strtoul(row.values[0], NULL, 10);
    if (expected && !(*rows = calloc(expected, sizeof **rows))) {
        asy_db_row_release(&row);
        return ASY_ENOMEM;
    }
    char *cursor = expected ? row.values[1] : NULL;
    while (cursor && *count < expected) {
        char *line = s_next_field(&cursor, '\n');
        char *day = s_next_field(&line, '\t');
        char *change = s_next_field(&line, '\t');
        asy_ctl_holiday_row_t *out = &(*rows)[*count];
        if (!day || !change || !line || asy_date_parse(day, &out->day) != 0) {
            rc = ASY_EPROTO;
            break;
        }
        out->change = streq(change, "added") ? ASY_HOLIDAY_ADDED : ASY_HOLIDAY_REMOVED;
        snprintf(out->note, sizeof out->note, "%s", line);
        *count += 1;
    }
    if (rc == 0 && *count != expected)
        rc = ASY_EPROTO;
    asy_db_row_release(&row);
    if (rc != 0) {
        free(*rows);
        *rows = NULL;
        *count = 0;
    }
    return rc;
}

static int s_compare_dates(const void *a, const void *b)
{
    asy_date_t x = *(const asy_date_t *)a, y = *(const asy_date_t *)b;
    return (x > y) - (x < y);
}

static void s_print_year(const asy_calendar_t *calendar, int year,
                         const asy_ctl_holiday_row_t *rows, size_t count)
{
    /* The holidays, plus the dates the table removes (shown so that the removal is seen). */
    asy_date_t dates[64];
    size_t found = asy_calendar_holidays(calendar, year, dates, 32);
    found = found < 32 ? found : 32;
    for (size_t i = 0; i < count && found < sizeof dates / sizeof dates[0]; i++) {
        int row_year = 0;
        asy_date_to_ymd(rows[i].day, &row_year, NULL, NULL);
        if (row_year == year && rows[i].change == ASY_HOLIDAY_REMOVED)
            dates[found++] = rows[i].day;
    }
    qsort(dates, found, sizeof dates[0], s_compare_dates);
    for (size_t i = 0; i < found; i++) {
        if (i > 0 && dates[i] == dates[i - 1])
            continue;
        char text[ASY_DATE_TEXT];
        printf("%s %s", asy_date_format(dates[i], text), asy_ctl_weekday_name(dates[i]));
        for (size_t j = 0; j < count; j++) {
            if (rows[j].day != dates[i])
                continue;
            printf("  %s by table%s%s", rows[j].change == ASY_HOLIDAY_ADDED ? "added" : "removed",
                   *rows[j].note ? ": " : "", rows[j].note);
        }
        printf("\n");
    }
}

static int s_list(const asy_ctl_options_t *options, int argc, char **argv)
{
    const char *year_text = NULL;
    if (asy_ctl_only_option(argc, argv, "holidays list", "--year", &year_text) != ASY_CTL_OK)
        return ASY_CTL_USAGE;
    int first = 0, last = 0;
    if (year_text) {
        char *end = NULL;
        long year = strtol(year_text, &end, 10);
        /* the rules are those of the Banking and Financial Dealings Act 1971 */
        if (end == year_text || *end || year < 1971 || year > 9999) {
            fprintf(stderr,
                    "advsync-ctl: holidays list: --year \"%s\" is not a year from 1971 (the "
                    "Banking and Financial Dealings Act) to 9999\n",
                    year_text);
            return ASY_CTL_USAGE;
        }
        first = last = (int)year;
    } else {
        asy_date_to_ymd(asy_london_date((int64_t)time(NULL) * 1000000), &first, NULL, NULL);
        last = first + 1;
    }
    asy_db_t *db = NULL;
    int code = asy_ctl_connect(options, S_TABLES, &db);
    if (code != ASY_CTL_OK)
        return code;
    asy_ctl_holiday_row_t *rows = NULL;
    size_t count = 0;
    asy_calendar_t *calendar = asy_calendar_new();
    int rc = calendar ? asy_ctl_holiday_rows(db, &rows, &count) : ASY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = asy_calendar_add(calendar, rows[i].day, rows[i].change);
    if (rc == 0)
        for (int year = first; year <= last; year++)
            s_print_year(calendar, year, rows, count);
    else
        fprintf(stderr, "advsync-ctl: cannot read the holiday table: %s\n",
                rc == ASY_EDB || rc == ASY_ERETRY ? asy_db_errmsg(db) : asy_strerror(rc));
    free(rows);
    asy_calendar_destroy(&calendar);
    asy_db_destroy(&db);
    return rc == 0 ? ASY_CTL_OK : ASY_CTL_FAILURE;
}

/* Parses DATE of add/remove/clear and the --note option. Returns ASY_CTL_OK or the usage code. */
static int s_date_arguments(int argc, char **argv, bool note_allowed, asy_date_t *date,
                            const char **date_text, const char **note)
{
    const char *verb = argv[1];
    *date_text = NULL;
    *note = NULL;
    for (int index = 2; index < argc;) {
        int matched = note_allowed ? asy_ctl_option(argc, argv, &index, "--note", note) : 0;
        if (matched == ASY_CTL_USAGE)
            return ASY_CTL_USAGE;
        if (matched)
            continue;
        if (argv[index][0] == '-' || *date_text) {
            fprintf(stderr, "advsync-ctl: holidays %s: unexpected argument \"%s\"\n", verb,
                    argv[index]);
            return ASY_CTL_USAGE;
        }
        *date_text = argv[index++];
    }
    if (!*date_text) {
        fprintf(stderr, "advsync-ctl: holidays %s: DATE (YYYY-MM-DD) is missing\n", verb);
        return ASY_CTL_USAGE;
    }
    if (asy_date_parse(*date_text, date) != 0) {
        fprintf(stderr,
                "advsync-ctl: holidays %s: DATE \"%s\" is not a real date in the form "
                "YYYY-MM-DD\n",
                verb, *date_text);
        return ASY_CTL_USAGE;
    }
    int year = 0;
    asy_date_to_ymd(*date, &year, NULL, NULL);
    if (year < 1971) { /* as list --year: the rules are those of the 1971 Act */
        fprintf(stderr,
                "advsync-ctl: holidays %s: DATE \"%s\" is before 1971 (the Banking and Financial "
                "Dealings Act): no case of ours is dated then\n",
                verb, *date_text);
        return ASY_CTL_USAGE;
    }
    if (*note && strlen(*note) >= ASY_CTL_NOTE_MAX) {
        fprintf(stderr, "advsync-ctl: holidays %s: --note is longer than %d bytes\n", verb,
                ASY_CTL_NOTE_MAX - 1);
        return ASY_CTL_USAGE;
    }
    return ASY_CTL_OK;
}

/* add and remove: an upsert of the date's row. */
static int s_set(const asy_ctl_options_t *options, int argc, char **argv,
                 asy_holiday_change_t change)
{
    asy_date_t date = 0;
    const char *date_text = NULL, *note = NULL;
    int code = s_date_arguments(argc, argv, true, &date, &date_text, &note);
    if (code != ASY_CTL_OK)
        return code;
    asy_db_t *db = NULL;
    if ((code = asy_ctl_connect(options, S_TABLES, &db)) != ASY_CTL_OK)
        return code;
    const char *change_text = change == ASY_HOLIDAY_ADDED ? "added" : "removed";
    const char *params[] = {date_text, change_text, note && *note ? note : NULL};
    int rc = asy_db_exec(db,
                         "INSERT INTO holiday (day, change, note) VALUES ($1, $2, $3) "
                         "ON CONFLICT (day) DO UPDATE SET change = EXCLUDED.change, "
                         "note = EXCLUDED.note, updated_at = now()",
                         3, params, NULL);
    if (rc != 0) {
        fprintf(stderr, "advsync-ctl: cannot write the holiday table: %s\n", asy_db_errmsg(db));
        asy_db_destroy(&db);
        return ASY_CTL_FAILURE;
    }
    asy_db_destroy(&db);
    printf("%s %s: %s by table%s%s\n", date_text, asy_ctl_weekday_name(date), change_text,
           note && *note ? ": " : "", note && *note ? note : "");
    /* Harmless but probably not what was meant: say so. */
    asy_calendar_t *rules = asy_calendar_new();
    bool by_rules = rules && asy_calendar_is_holiday(rules, date);
    asy_calendar_destroy(&rules);
    if (asy_date_weekday(date) >= ASY_SATURDAY)
        fprintf(stderr, "advsync-ctl: note: %s is a %s, never a working day anyway\n", date_text,
                asy_ctl_weekday_name(date));
    else if (change == ASY_HOLIDAY_ADDED && by_rules)
        fprintf(stderr, "advsync-ctl: note: the rules already make %s a bank holiday\n", date_text);
    else if (change == ASY_HOLIDAY_REMOVED && !by_rules)
        fprintf(stderr, "advsync-ctl: note: the rules do not make %s a bank holiday\n", date_text);
    return ASY_CTL_OK;
}

static int s_clear(const asy_ctl_options_t *options, int argc, char **argv)
{
    asy_date_t date = 0;
    const char *date_text = NULL, *note = NULL;
    int code = s_date_arguments(argc, argv, false, &date, &date_text, &note);
    if (code != ASY_CTL_OK)
        return code;
    asy_db_t *db = NULL;
    if ((code = asy_ctl_connect(options, S_TABLES, &db)) != ASY_CTL_OK)
        return code;
    uint64_t deleted = 0;
    const char *params[] = {date_text};
    int rc = asy_db_exec(db, "DELETE FROM holiday WHERE day = $1", 1, params, &deleted);
    if (rc != 0)
        fprintf(stderr, "advsync-ctl: cannot write the holiday table: %s\n", asy_db_errmsg(db));
    else if (deleted == 0)
        fprintf(stderr, "advsync-ctl: holidays clear: the holiday table has no row for %s\n",
                date_text);
    else
        printf("%s %s: cleared (the rules apply)\n", date_text, asy_ctl_weekday_name(date));
    asy_db_destroy(&db);
    return rc == 0 && deleted > 0 ? ASY_CTL_OK : ASY_CTL_FAILURE;
}

static int s_add(const asy_ctl_options_t *options, int argc, char **argv)
{
    return s_set(options, argc, argv, ASY_HOLIDAY_ADDED);
}

static int s_remove(const asy_ctl_options_t *options, int argc, char **argv)
{
    return s_set(options, argc, argv, ASY_HOLIDAY_REMOVED);
}

static int s_import(const asy_ctl_options_t *options, int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-') {
        fprintf(stderr, "advsync-ctl: holidays import takes one FILE.json\n");
        return ASY_CTL_USAGE;
    }
    return asy_ctl_holidays_import(options, argv[2]);
}

int asy_ctl_holidays(const asy_ctl_options_t *options, int argc, char **argv)
{
    static const asy_ctl_verb_t verbs[] = {{"list", s_list},     {"add", s_add},
                                           {"remove", s_remove}, {"clear", s_clear},
                                           {"import", s_import}, {NULL, NULL}};
    return asy_ctl_dispatch(options, argc, argv, verbs, s_usage);
}
