/*  view.c: the `top`-like table of advsync-watch. See view.h.  */
#include "view.h"

#include "calendar.h"

#include <stdlib.h>
#include <string.h>

/* Column widths: label, value, interval; n takes the rest of ASY_VIEW_WIDTH. */
#define S_LABEL 44
#define S_VALUE 10
#define S_INTERVAL 20
#define S_NUMBER 32

static const char *const s_titles[] = {
    NULL,
    "M1 Referrals",
    "M2 People using the service",
    "M3 Waiting list (median/P90 working days)",
    "M4 Contacted within 3 working days",
    "M5 Met within 10 working days",
    "M6 IMHA uptake",
    "M7 Uptake ratio vs White British (5 groups: White)",
    "M8 Observed vs expected",
    "M9 Referral rate per 100k",
    "M10 Age/sex-standardised rate per 100k",
    "M11 Declined / left before goals",
    "M12 Recovery Star improvement",
    "M13 Ethnicity recorded",
};

int asy_view_metric_number(const char *metric)
{
    if (!metric || metric[0] != 'M' || metric[1] < '1' || metric[1] > '9')
        return 1000;
    char *end;
    long number = strtol(metric + 1, &end, 10);
    return *end == '\0' && number < 1000 ? (int)number : 1000;
}

const char *asy_view_metric_title(const char *metric)
{
    int number = asy_view_metric_number(metric);
    if (number < (int)(sizeof s_titles / sizeof s_titles[0]))
        return s_titles[number];
    return metric;
}

/* ----------------------------------------------------------------------------------------------
   One row. */

static int s_decimals(const char *unit)
{
    return strcmp(unit, "ratio") == 0 ? 2 : 1;
}

static void s_value_text(char *out, size_t size, const asy_mupdate_t *update,
                         const asy_mcell_t *cell)
{
    const char *unit = update->unit;
    if (cell->suppressed)
        snprintf(out, size, "*");
    else if (strcmp(unit, "count") == 0 || (!unit[0] && !cell->has_value))
        snprintf(out, size, cell->has_count ? "%lld" : "-", (long long)cell->count);
    else if (!cell->has_value)
        snprintf(out, size, "-");
    else if (strcmp(unit, "working_days") == 0 && cell->has_p90)
        snprintf(out, size, "%.1f/%.1f", cell->value, cell->p90);
    else if (strcmp(unit, "percent") == 0)
        snprintf(out, size, "%.1f%%", cell->value);
    else
        snprintf(out, size, "%.*f", s_decimals(unit), cell->value);
}

static void s_interval_text(char *out, size_t size, const asy_mupdate_t *update,
                            const asy_mcell_t *cell)
{
    out[0] = '\0';
    if (cell->suppressed || !cell->has_interval || !cell->has_value)
        return;
    int decimals = s_decimals(update->unit);
    snprintf(out, size, "(%.*f-%.*f)", decimals, cell->lower, decimals, cell->upper);
}

static void s_number_text(char *out, size_t size, const asy_mupdate_t *update,
                          const asy_mcell_t *cell)
{
    out[0] = '\0';
    if (cell->suppressed)
        return;
    if (cell->has_expected && cell->has_count)
        snprintf(out, size, "O=%lld E=%.1f", (long long)cell->count, cell->expected);
    else if (cell->has_numerator && cell->has_denominator)
        snprintf(out, size, "%lld/%lld", (long long)cell->numerator, (long long)cell->denominator);
    /* the count before the denominator: a rate (M9) has both, and n= is its count */
    else if (cell->has_count && strcmp(update->unit, "count") != 0)
        snprintf(out, size, "n=%lld", (long long)cell->count);
    else if (cell->has_denominator)
        snprintf(out, size, "n=%lld", (long long)cell->denominator);
}

void asy_view_row(char *line, size_t size, const char *label, const asy_mupdate_t *update,
                  const asy_mcell_t *cell)
{
    char value[32], interval[48], number[64];
    s_value_text(value, sizeof value, update, cell);
    s_interval_text(interval, sizeof interval, update, cell);
    s_number_text(number, sizeof number, update, cell);
    size_t limit = size < ASY_VIEW_WIDTH + 1 ? size : ASY_VIEW_WIDTH + 1;
    int written =
        snprintf(line, limit, "%-*.*s %*.*s  %-*.*s %.*s", S_LABEL, S_LABEL, label, S_VALUE,
                 S_VALUE, value, S_INTERVAL, S_INTERVAL, interval, S_NUMBER, number);
    /* no trailing blanks when the last columns are empty */
    size_t length = written < 0 ? 0 : strlen(line);
    while (length > 0 && line[length - 1] == ' ')
        line[--length] = '\0';
}

/* ----------------------------------------------------------------------------------------------
   Header. */

void asy_view_age(char *text, size_t size, int64_t newest_as_of_us, const asy_view_status_t *status)
{
    int64_t latest =
        newest_as_of_us > status->last_message_us ? newest_as_of_us : status->last_message_us;
    if (status->stale) {
        snprintf(text, size, "STALE");
        return;
    }
    if (latest <= 0) {
        snprintf(text, size, "no data");
        return;
    }
    double age = (double)(status->now_us - latest) / 1e6;
    if (age < 0)
        age = 0;
    if (age < 10)
        snprintf(text, size, "data %.1f s old", age);
    else if (age < 120)
        snprintf(text, size, "data %.0f s old", age);
    else
        snprintf(text, size, "data %.0f min old", age / 60);
}

static void s_header(FILE *out, const asy_mupdate_t *const *updates, size_t count,
                     const asy_view_status_t *status)
{
    int64_t newest = 0;
    for (size_t i = 0; i < count; i++)
        if (updates[i]->as_of_us > newest)
            newest = updates[i]->as_of_us;
    char age[48], line[ASY_VIEW_WIDTH + 1];
    asy_view_age(age, sizeof age, newest, status);
    snprintf(line, sizeof line, "advsync-watch  %s  seq %llu  %zu topics  %s",
             status->endpoint ? status->endpoint : "", (unsigned long long)status->seq,
             status->topics, age);
    fprintf(out, "%s\n", line);
}

/* ----------------------------------------------------------------------------------------------
   Sections. */

typedef struct {
    const asy_mupdate_t *update;
    int period_index; /* place in options->periods; 0 if every period is shown */
    int metric;
} s_row_t;

static int s_compare_rows(const void *a, const void *b)
{
    const s_row_t *left = a, *right = b;
    bool left_all = strcmp(left->update->scope, "all") == 0;
    bool right_all = strcmp(right->update->scope, "all") == 0;
    if (left_all != right_all)
        return left_all ? -1 : 1;
    int order = strcmp(left->update->scope, right->update->scope);
    if (order != 0)
        return order;
    if (left->period_index != right->period_index)
        return left->period_index - right->period_index;
    order = strcmp(left->update->period, right->update->period);
    if (order != 0)
        return order;
    if (left->metric != right->metric)
        return left->metric - right->metric;
    return strcmp(left->update->topic, right->update->topic);
}

/* -1 if the update is not shown, else its period's place. */
static int s_period_index(const asy_mupdate_t *update, const asy_view_options_t *options)
{
    if (options->metric && options->metric[0] && strcmp(update->metric, options->metric) != 0)
        return -1;
    if (!options->periods)
        return 0;
    for (size_t i = 0; i < options->period_count; i++)
        if (options->periods[i] && strcmp(update->period, options->periods[i]) == 0)
            return (int)i;
    return -1;
}

static void s_section_title(FILE *out, const asy_mupdate_t *update)
{
    char start[ASY_DATE_TEXT], end[ASY_DATE_TEXT], line[ASY_VIEW_WIDTH + 1];
    if (update->period_start != INT32_MIN && update->period_end != INT32_MIN)
        snprintf(line, sizeof line, "== %s  %s  (%s to %s) ==", update->scope, update->period,
                 asy_date_format(update->period_start, start),
                 asy_date_format(update->period_end, end));
    else
        snprintf(line, sizeof line, "== %s  %s ==", update->scope, update->period);
    fprintf(out, "\n%s\n", line);
    fprintf(out, "%-*s %*s  %-*s %s\n", S_LABEL, "", S_VALUE, "value", S_INTERVAL, "95% interval",
            "n");
}

static bool s_ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text), suffix_length = strlen(suffix);
    return length >= suffix_length && strcmp(text + length - suffix_length, suffix) == 0;
}

/* The cells of breakdown prefix+by, indented. */
static void s_groups(FILE *out, const asy_mupdate_t *update, const char *prefix,
                     size_t prefix_length, const char *by)
{
    char line[ASY_VIEW_WIDTH + 1], label[S_LABEL + 1];
    for (size_t i = 0; i < update->cell_count; i++) {
        const asy_mcell_t *cell = &update->cells[i];
        if (strncmp(cell->breakdown, prefix, prefix_length) != 0 ||
            strcmp(cell->breakdown + prefix_length, by) != 0)
            continue;
        snprintf(label, sizeof label, "%*s%s", prefix_length ? 6 : 4, "", cell->group);
        asy_view_row(line, sizeof line, label, update, cell);
        fprintf(out, "%s\n", line);
    }
}

/* One metric: its total row and groups; M11-like metrics with several "<name>.total"
   breakdowns get a title row and one sub-row (with its groups) per total. */
static void s_metric(FILE *out, const asy_mupdate_t *update, const char *by)
{
    char line[ASY_VIEW_WIDTH + 1], label[S_LABEL + 1];
    const char *title = asy_view_metric_title(update->metric);
    for (size_t i = 0; i < update->cell_count; i++) {
        if (strcmp(update->cells[i].breakdown, "total") == 0) {
            asy_view_row(line, sizeof line, title, update, &update->cells[i]);
            fprintf(out, "%s\n", line);
            if (by && by[0])
                s_groups(out, update, "", 0, by);
            return;
        }
    }
    fprintf(out, "%s\n", title);
    bool totals = false;
    for (size_t i = 0; i < update->cell_count; i++) {
        const asy_mcell_t *cell = &update->cells[i];
        if (!s_ends_with(cell->breakdown, ".total"))
            continue;
        totals = true;
        size_t prefix_length = strlen(cell->breakdown) - strlen("total");
        snprintf(label, sizeof label, "  %.*s", (int)(prefix_length - 1), cell->breakdown);
        asy_view_row(line, sizeof line, label, update, cell);
        fprintf(out, "%s\n", line);
        if (by && by[0])
            s_groups(out, update, cell->breakdown, prefix_length, by);
    }
    /* metrics of groups only (M7 ratios, M8 observed vs expected, with its IMHA part) */
    if (!totals && by && by[0]) {
        s_groups(out, update, "", 0, by);
        char imha[ASY_MNAME_MAX];
        snprintf(imha, sizeof imha, "imha_%s", by);
        bool any = false;
        for (size_t i = 0; i < update->cell_count && !any; i++)
            any = strcmp(update->cells[i].breakdown, imha) == 0;
        if (any) {
            fprintf(out, "  IMHA uptake vs qualifying\n");
            s_groups(out, update, "imha_", 5, by);
        }
    }
}

/* ----------------------------------------------------------------------------------------------
   Recent breaches. */

void asy_view_breach_add(asy_view_breaches_t *recent, const asy_mbreach_t *breach)
{
    /* a withdrawal replaces its notice, if still listed: one line per breach */
    for (size_t i = 0; breach->withdrawn && i < recent->count; i++)
        if (recent->items[i].kind == breach->kind &&
            strcmp(recent->items[i].case_id, breach->case_id) == 0) {
            memmove(&recent->items[i], &recent->items[i + 1],
                    (recent->count - i - 1) * sizeof recent->items[0]);
            recent->count--;
            break;
        }
    size_t kept = recent->count < ASY_VIEW_BREACHES ? recent->count : ASY_VIEW_BREACHES - 1;
    memmove(&recent->items[1], &recent->items[0], kept * sizeof recent->items[0]);
    recent->items[0] = *breach;
    recent->count = kept + 1;
}

/* "2026-11-05 00:00" in Europe/London. */
static void s_london_time(char *out, size_t size, int64_t utc_us)
{
    char date[ASY_DATE_TEXT];
    int64_t local_seconds = utc_us / 1000000 + (asy_london_is_bst(utc_us) ? 3600 : 0);
    int64_t second_of_day = ((local_seconds % 86400) + 86400) % 86400;
    snprintf(out, size, "%s %02d:%02d", asy_date_format(asy_london_date(utc_us), date),
             (int)(second_of_day / 3600), (int)(second_of_day / 60 % 60));
}

static const char *s_breach_kind(int kind)
{
    return kind == ASY_BREACH_CONTACT ? "contact" : kind == ASY_BREACH_MEETING ? "meeting" : "?";
}

static void s_breaches(FILE *out, const asy_view_breaches_t *recent)
{
    fprintf(out, "\n== recent breaches (newest first) ==\n");
    if (recent->count == 0)
        fprintf(out, "(none since start)\n");
    for (size_t i = 0; i < recent->count && i < ASY_VIEW_BREACHES; i++) {
        const asy_mbreach_t *breach = &recent->items[i];
        char deadline[ASY_DATE_TEXT], detected[32], line[ASY_VIEW_WIDTH + 1];
        s_london_time(detected, sizeof detected, breach->detected_at_us);
        snprintf(line, sizeof line, "%-20.20s %-7s  case %.12s  deadline %s  %s %s",
                 breach->site_id, s_breach_kind(breach->kind), breach->case_id,
                 asy_date_format(breach->deadline, deadline),
                 breach->withdrawn ? "WITHDRAWN" : "detected", detected);
        fprintf(out, "%s\n", line);
    }
}

void asy_view_render(FILE *out, const asy_mupdate_t *const *updates, size_t count,
                     const asy_view_status_t *status, const asy_view_options_t *options)
{
    if (options->tty)
        fputs("\033[H\033[2J", out);
    s_header(out, updates, count, status);
    s_row_t *rows = calloc(count ? count : 1, sizeof *rows);
    size_t shown = 0;
    for (size_t i = 0; rows && i < count; i++) {
        int index = s_period_index(updates[i], options);
        if (index < 0)
            continue;
        rows[shown].update = updates[i];
        rows[shown].period_index = index;
        rows[shown].metric = asy_view_metric_number(updates[i]->metric);
        shown++;
    }
    if (!rows)
        fprintf(out, "(out of memory)\n");
    else if (shown == 0 && count == 0)
        /* nothing published under the subscription: a quiet broker, or a site or metric that
           has no figures (a mistyped --site looks just like this) */
        fprintf(out, "\n(no figures yet for this subscription: a site's appear with its first "
                     "event at the centre;\n check the --site and --metric given)\n");
    else if (shown == 0) {
        fprintf(out, "\n(%zu figure%s held, none for the period%s shown:", count,
                count == 1 ? "" : "s", options->period_count == 1 ? "" : "s");
        for (size_t i = 0; i < options->period_count; i++)
            fprintf(out, " %s", options->periods[i]);
        fprintf(out, ")\n");
    }
    if (rows)
        qsort(rows, shown, sizeof *rows, s_compare_rows);
    for (size_t i = 0; i < shown; i++) {
        const asy_mupdate_t *update = rows[i].update;
        if (i == 0 || strcmp(update->scope, rows[i - 1].update->scope) != 0 ||
            strcmp(update->period, rows[i - 1].update->period) != 0)
            s_section_title(out, update);
        s_metric(out, update, options->by);
    }
    free(rows);
    if (status->breaches)
        s_breaches(out, status->breaches);
    if (!options->tty)
        fputc('\n', out);
    fflush(out);
}
