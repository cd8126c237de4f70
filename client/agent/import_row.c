/*  import_row.c: one CSV row of `advsync-agent import` into an event's JSON object, as the
    mapping says: the header row names the columns, each cell is trimmed, translated by the
    column's values and converted to its type. Dates without a zone are Europe/London local
    time and are stored in UTC.  */
#include "calendar.h"
#include "import_private.h"
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------------------------
   Dates and times. Without a zone they are Europe/London wall-clock times (calendar.h). */

typedef struct {
    int year, month, day, hour, minute, second;
    char fraction[10]; /* digits after the decimal point, "" if none */
    bool has_time;
    bool has_zone;
    int offset_minutes; /* east of UTC */
} s_datetime_t;

/* Reads exactly n digits. */
static bool s_digits(const char **p, int n, int *out)
{
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        value = value * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = value;
    return true;
}

/* Reads 1 or 2 digits. */
static bool s_small(const char **p, int *out)
{
    return s_digits(p, isdigit((unsigned char)(*p)[1]) ? 2 : 1, out);
}

/* [HH:MM[:SS[.frac]]] after the date; p points past the separator. */
static bool s_parse_time(const char **p, s_datetime_t *out)
{
    if (!s_digits(p, 2, &out->hour) || **p != ':')
        return false;
    (*p)++;
    if (!s_digits(p, 2, &out->minute))
        return false;
    if (**p == ':') {
        (*p)++;
        if (!s_digits(p, 2, &out->second))
            return false;
        if (**p == '.' || **p == ',') {
            (*p)++;
            size_t n = 0;
            while (isdigit((unsigned char)**p) && n < sizeof out->fraction - 1)
                out->fraction[n++] = *(*p)++;
            out->fraction[n] = '\0';
            if (n == 0 || isdigit((unsigned char)**p))
                return false;
        }
    }
    out->has_time = true;
    return true;
}

static bool s_parse_zone(const char **p, s_datetime_t *out)
{
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        out->has_zone = true;
        return true;
    }
    if (**p != '+' && **p != '-')
        return true;
    int sign = **p == '-' ? -1 : 1, hours, minutes;
    (*p)++;
    if (!s_digits(p, 2, &hours))
        return false;
    if (**p == ':')
        (*p)++;
    if (!s_digits(p, 2, &minutes) || hours > 23 || minutes > 59)
        return false;
    out->has_zone = true;
    out->offset_minutes = sign * (hours * 60 + minutes);
    return true;
}

/* Parses ISO 8601 (YYYY-MM-DD[(T| )HH:MM[:SS[.f]]][Z|+HH:MM]) or d/m/yyyy[ HH:MM[:SS]]. */
static bool s_parse_datetime(const char *text, asy_import_date_format_t format, s_datetime_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    if (format == ASY_IMPORT_AUTO)
        format = strchr(text, '/') ? ASY_IMPORT_DMY : ASY_IMPORT_ISO;
    if (format == ASY_IMPORT_ISO) {
        if (!s_digits(&p, 4, &out->year) || *p++ != '-' || !s_digits(&p, 2, &out->month) ||
            *p++ != '-' || !s_digits(&p, 2, &out->day))
            return false;
        if ((*p == 'T' || *p == 't' || *p == ' ') && p[1]) {
            p++;
            if (!s_parse_time(&p, out) || !s_parse_zone(&p, out))
                return false;
        }
    } else {
        if (!s_small(&p, &out->day) || *p++ != '/' || !s_small(&p, &out->month) || *p++ != '/' ||
            !s_digits(&p, 4, &out->year))
            return false;
        if (*p == ' ' || *p == 'T') {
            while (*p == ' ')
                p++;
            if (*p == 'T')
                p++;
            if (!s_parse_time(&p, out))
                return false;
        }
    }
    if (*p)
        return false;
    return out->year >= 1900 && out->year <= 2999 && out->month >= 1 && out->month <= 12 &&
           out->day >= 1 && out->day <= asy_days_in_month(out->year, out->month) &&
           out->hour <= 23 && out->minute <= 59 && out->second <= 59;
}

/* RFC 3339 UTC text of a parsed time into out[40]. */
static void s_datetime_utc(const s_datetime_t *time, char out[40])
{
    int64_t wall = (int64_t)asy_date_from_civil(time->year, time->month, time->day) * 86400 +
                   (int64_t)time->hour * 3600 + (int64_t)time->minute * 60 + time->second;
    int64_t utc =
        time->has_zone ? wall - (int64_t)time->offset_minutes * 60 : asy_london_to_utc(wall);
    int64_t days = utc >= 0 ? utc / 86400 : (utc - 86399) / 86400;
    int64_t seconds = utc - days * 86400;
    int y, m, d;
    asy_date_to_ymd((asy_date_t)days, &y, &m, &d);
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d%s%sZ", y, m, d, (int)(seconds / 3600),
             (int)(seconds / 60 % 60), (int)(seconds % 60), time->fraction[0] ? "." : "",
             time->fraction);
}

/* ------------------------------------------------------------------------------------------
   Rows into events. */

/* text without the blanks (asy_blank_at) around it; cuts it in place. */
static char *s_trim(char *text)
{
    size_t start = 0, end = strlen(text);
    asy_blank_trim(text, &start, &end);
    text[end] = '\0';
    return text + start;
}

/* A note on characters a message shows as nothing or as a plain space (a cell pasted from a
   word processor), or "". */
static const char *s_invisible(const char *value)
{
    if (strstr(value, "\xC2\xA0") || strstr(value, "\xE2\x80\xAF"))
        return " (it holds a no-break space, shown as a space)";
    if (strstr(value, "\xE2\x80\x8B") || strstr(value, "\xEF\xBB\xBF") ||
        strstr(value, "\xE2\x81\xA0"))
        return " (it holds an invisible character: a zero-width space or joiner)";
    return "";
}

/* The mapped text of one value (borrowed), or NULL with error set. *drop is set when the
   value maps to "" (leave it out). */
static const char *s_translate(const asy_import_column_t *column, const char *value, bool *drop,
                               char *error, size_t error_size)
{
    *drop = false;
    if (column->value_count == 0)
        return value;
    const char *any = NULL;
    for (size_t i = 0; i < column->value_count; i++) {
        if (!strcmp(column->values[i].from, "*"))
            any = column->values[i].to;
        else if (!strcasecmp(column->values[i].from, value)) {
            *drop = column->values[i].to[0] == '\0';
            return column->values[i].to;
        }
    }
    if (any) {
        *drop = any[0] == '\0';
        return any;
    }
    char shown[ASY_IMPORT_CELL_SHOWN];
    if (column->identifier)
        asy_set_error(error, error_size, "column \"%s\": value has no mapping", column->header);
    else
        asy_set_error(error, error_size,
                      "column \"%s\": \"%s\" has no mapping (add a `value` with "
                      "from = \"%s\")%s",
                      column->header, ASY_IMPORT_CELL(value, shown), shown, s_invisible(value));
    return NULL;
}

/* Says which byte of a cell is not UTF-8: exports from older case systems are often in
   Windows-1252 ("Café" as 43 61 66 E9). */
static void s_not_utf8(const char *header, const char *text, char *error, size_t error_size)
{
    size_t good = asy_json_utf8_prefix(text, strlen(text));
    asy_set_error(error, error_size,
                  "column \"%s\": not UTF-8 text (byte %zu is 0x%02X): save the export as "
                  "CSV UTF-8",
                  header, good + 1, (unsigned char)text[good]);
}

/* The JSON value of a date or date-and-time item (UTC text), or NULL with error set. */
static json_t *s_convert_time(const asy_import_column_t *column, const char *text, char *error,
                              size_t error_size)
{
    s_datetime_t time;
    char shown[ASY_IMPORT_CELL_SHOWN];
    if (!s_parse_datetime(text, column->format, &time)) {
        asy_set_error(error, error_size, "column \"%s\": \"%s\" is not a %s (%s)", column->header,
                      ASY_IMPORT_CELL(text, shown),
                      column->type == ASY_IMPORT_DATE ? "date" : "date and time",
                      column->format == ASY_IMPORT_DMY ? "dd/mm/yyyy [HH:MM[:SS]]"
                      : column->format == ASY_IMPORT_ISO
                          ? "YYYY-MM-DD[THH:MM[:SS][Z|+HH:MM]]"
                          : "dd/mm/yyyy [HH:MM] or YYYY-MM-DD[THH:MM...]");
        return NULL;
    }
    if (column->type == ASY_IMPORT_DATE) {
        if (time.has_time) {
            asy_set_error(error, error_size,
                          "column \"%s\": \"%s\" has a time; a date is "
                          "expected",
                          column->header, ASY_IMPORT_CELL(text, shown));
            return NULL;
        }
        char date[48];
        snprintf(date, sizeof date, "%04d-%02d-%02d", time.year, time.month, time.day);
        return json_string(date);
    }
    char utc[40];
    s_datetime_utc(&time, utc);
    return json_string(utc);
}

/* The JSON value of one (translated) item, or NULL with error set. */
static json_t *s_convert(const asy_import_column_t *column, const char *text, char *error,
                         size_t error_size)
{
    char shown[ASY_IMPORT_CELL_SHOWN];
    switch (column->type) {
    case ASY_IMPORT_TEXT:
        if (!asy_json_utf8_valid(text, strlen(text))) {
            s_not_utf8(column->header, text, error, error_size);
            return NULL;
        }
        return json_string(text);
    case ASY_IMPORT_DATETIME:
    case ASY_IMPORT_DATE:
        return s_convert_time(column, text, error, error_size);
    case ASY_IMPORT_INTEGER: {
        char *end = NULL;
        errno = 0;
        long long number = strtoll(text, &end, 10);
        if (*end || errno || end == text) {
            asy_set_error(error, error_size, "column \"%s\": \"%s\" is not a whole number",
                          column->header, ASY_IMPORT_CELL(text, shown));
            return NULL;
        }
        return json_integer(number);
    }
    case ASY_IMPORT_BOOLEAN: {
        bool flag = strcasecmp(text, "y") == 0;
        if (!flag && strcasecmp(text, "n") != 0 && !asy_import_flag(text, &flag)) {
            asy_set_error(error, error_size, "column \"%s\": \"%s\" is not yes/no/true/false/1/0",
                          column->header, ASY_IMPORT_CELL(text, shown));
            return NULL;
        }
        return json_boolean(flag);
    }
    }
    return NULL;
}

/* s_cell of a trimmed text, which a list column cuts into items in place. */
static json_t *s_cell_text(const asy_import_column_t *column, char *text, bool *skip, char *error,
                           size_t error_size)
{
    *skip = false;
    if (!*text) {
        if (column->required)
            asy_set_error(error, error_size, "column \"%s\": required, but empty", column->header);
        *skip = !column->required;
        return NULL;
    }
    json_t *array = column->separator ? json_array() : NULL;
    char *save = NULL;
    char separators[2] = {column->separator, '\0'};
    char *item = column->separator ? strtok_r(text, separators, &save) : text;
    for (; item; item = column->separator ? strtok_r(NULL, separators, &save) : NULL) {
        item = s_trim(item);
        bool drop = false;
        const char *mapped = *item ? s_translate(column, item, &drop, error, error_size) : "";
        if (!mapped) {
            json_decref(array);
            return NULL;
        }
        json_t *value = drop || !*mapped ? NULL : s_convert(column, mapped, error, error_size);
        if (!drop && *mapped && !value) {
            json_decref(array);
            return NULL;
        }
        if (!array) {
            *skip = value == NULL; /* mapped to "": leave the field out */
            if (*skip && column->required) {
                *skip = false;
                asy_set_error(error, error_size,
                              "column \"%s\": required, but its value maps to nothing (to = \"\")",
                              column->header);
            }
            return value;
        }
        if (value)
            json_array_append_new(array, value);
    }
    if (array && json_array_size(array) == 0) {
        json_decref(array);
        if (column->required)
            asy_set_error(error, error_size, "column \"%s\": required, but no item in it",
                          column->header);
        *skip = !column->required;
        return NULL;
    }
    return array;
}

/* The JSON value of one cell: a single value, an array (list columns), or NULL with *skip
   set (empty, leave the field out), or NULL with error set. An empty cell takes the column's
   default, a copy of it: cut into items in place, it served only its first row whole. */
static json_t *s_cell(const asy_import_column_t *column, char *cell, bool *skip, char *error,
                      size_t error_size)
{
    char *text = s_trim(cell);
    if (*text || !column->fallback)
        return s_cell_text(column, text, skip, error, error_size);
    char *copy = strdup(column->fallback);
    if (!copy) {
        *skip = false;
        asy_set_error(error, error_size, "out of memory");
        return NULL;
    }
    json_t *value = s_cell_text(column, copy, skip, error, error_size);
    free(copy);
    return value;
}

/* Puts value (taken) at the column's path inside object. */
static int s_put(json_t *object, const asy_import_column_t *column, json_t *value, char *error,
                 size_t error_size)
{
    json_t *at = object;
    for (int i = 0; i + 1 < column->depth; i++) {
        json_t *next = json_object_get(at, column->segment[i]);
        if (!next) {
            next = json_object();
            json_object_set_new(at, column->segment[i], next);
        }
        if (!json_is_object(next)) {
            json_decref(value);
            asy_set_error(error, error_size, "column \"%s\": %s clashes with another column",
                          column->header, column->field);
            return ASY_EINVAL;
        }
        at = next;
    }
    json_object_set_new(at, column->segment[column->depth - 1], value);
    return 0;
}

/* The kind of the current row. Returns 0 or ASY_EINVAL. */
static int s_row_kind(const asy_import_mapping_t *mapping, asy_csv_t *csv, int *kind, char *error,
                      size_t error_size)
{
    *kind = mapping->fixed_kind;
    if (mapping->kind_column < 0)
        return 0;
    const asy_import_column_t *column = &mapping->columns[mapping->kind_column];
    char *text = s_trim(asy_csv_field(csv, column->index));
    if (!*text && column->fallback)
        text = (char *)column->fallback;
    if (!*text) {
        if (*kind)
            return 0;
        asy_set_error(error, error_size,
                      "column \"%s\": empty, and the mapping has no default kind", column->header);
        return ASY_EINVAL;
    }
    bool drop = false;
    const char *mapped = s_translate(column, text, &drop, error, error_size);
    if (!mapped)
        return ASY_EINVAL;
    if (drop) {
        *kind = 0; /* mapped to "": not an event, the row is skipped */
        return 0;
    }
    *kind = asy_import_kind(mapped);
    if (!*kind) {
        char shown[ASY_IMPORT_CELL_SHOWN];
        asy_set_error(error, error_size,
                      "column \"%s\": \"%s\" is not an event kind (map it with a "
                      "`value` to one, e.g. referral.received)",
                      column->header, ASY_IMPORT_CELL(mapped, shown));
        return ASY_EINVAL;
    }
    return 0;
}

/* Builds the event object of the current row. Returns it (caller owns), or NULL with error
   set; *empty is set for a row of empty cells (skipped silently). */
json_t *asy_import_row_object(const asy_import_mapping_t *mapping, asy_csv_t *csv,
                              size_t header_count, bool *empty, char *error, size_t error_size)
{
    *empty = false;
    if (csv->problem[0]) {
        asy_set_error(error, error_size, "%s", csv->problem);
        return NULL;
    }
    *empty = true;
    for (size_t i = 0; i < csv->count && *empty; i++)
        *empty = *s_trim(asy_csv_field(csv, i)) == '\0';
    if (*empty)
        return NULL;
    if (csv->count != header_count) {
        asy_set_error(error, error_size, "%zu fields, but the header has %zu", csv->count,
                      header_count);
        return NULL;
    }
    int kind;
    if (s_row_kind(mapping, csv, &kind, error, error_size) != 0)
        return NULL;
    *empty = kind == 0; /* its kind maps to "": skipped as a blank row is */
    if (*empty)
        return NULL;
    char snake[64], body[64];
    asy_set_error(snake, sizeof snake, "%s", asy_kind_name(kind));
    for (char *dot = strchr(snake, '.'); dot; dot = strchr(dot, '.'))
        *dot = '_';
    asy_import_camel(snake, body, sizeof body);
    json_t *object = json_object();
    json_object_set_new(object, body, json_object());
    for (size_t i = 0; i < mapping->column_count; i++) {
        const asy_import_column_t *column = &mapping->columns[i];
        if (column->is_kind || (column->body_kind && column->body_kind != kind))
            continue;
        bool skip;
        json_t *value = s_cell(column, asy_csv_field(csv, column->index), &skip, error, error_size);
        if (!value && skip)
            continue;
        if (!value || s_put(object, column, value, error, error_size) != 0) {
            json_decref(object);
            return NULL;
        }
    }
    return object;
}

/* Finds each mapped column in the header row. Returns 0 or ASY_EINVAL with error set. */
int asy_import_resolve_header(asy_import_mapping_t *mapping, asy_csv_t *csv, char *error,
                              size_t error_size)
{
    const char *first = csv->count > 0 ? asy_csv_field(csv, 0) : "";
    if (!strncmp(first, "\xFF\xFE", 2) || !strncmp(first, "\xFE\xFF", 2)) {
        asy_set_error(error, error_size,
                      "the file is UTF-16 (Excel's \"Unicode text\"): save it as CSV UTF-8");
        return ASY_EINVAL;
    }
    if (csv->problem[0]) {
        asy_set_error(error, error_size, "the header row: %s", csv->problem);
        return ASY_EINVAL;
    }
    for (size_t i = 0; i < csv->count; i++) {
        char *name = s_trim(asy_csv_field(csv, i));
        if (!asy_json_utf8_valid(name, strlen(name))) {
            asy_set_error(error, error_size,
                          "the header row is not UTF-8 text (column %zu): save the export as "
                          "CSV UTF-8",
                          i + 1);
            return ASY_EINVAL;
        }
    }
    for (size_t c = 0; c < mapping->column_count; c++) {
        asy_import_column_t *column = &mapping->columns[c];
        for (size_t i = 0; i < csv->count; i++) {
            if (strcasecmp(s_trim(asy_csv_field(csv, i)), column->header) != 0)
                continue;
            if (column->index >= 0) {
                asy_set_error(error, error_size,
                              "the header row has column \"%s\" twice (columns %d and %zu): "
                              "which one the mapping means cannot be told",
                              column->header, column->index + 1, i + 1);
                return ASY_EINVAL;
            }
            column->index = (int)i;
        }
        if (column->index < 0) {
            /* one field holding another separator: an export in another locale's format */
            const char *other = csv->count == 1 ? strpbrk(asy_csv_field(csv, 0), ";\t,|") : NULL;
            char hint[96] = "", name[8] = "tab";
            if (other && *other != '\t')
                snprintf(name, sizeof name, "\"%c\"", *other);
            if (other && *other != csv->delimiter)
                snprintf(hint, sizeof hint,
                         "; the header row is one field holding %s: set delimiter = %s in the "
                         "mapping",
                         *other == '\t' ? "tabs" : name, name);
            asy_set_error(error, error_size,
                          "the header row has no column \"%s\" (mapping column %zu)%s",
                          column->header, c + 1, hint);
            return ASY_EINVAL;
        }
    }
    return 0;
}
