/*  import.c: `advsync-agent import --mapping MAP.cfg FILE.csv`: one event per CSV row.

    The CSV is RFC 4180 (a header row; quoted fields may hold the delimiter, doubled quotes
    and line breaks; CRLF or LF). The mapping (zconfig, section `import`) says which column
    feeds which field of the event JSON, how values translate, and how dates read; each row
    becomes a JSON object that goes through the same path as `submit` (pseudonymise, check,
    store). Dates without a zone are Europe/London local time and are stored in UTC.
    The format is documented with deploy/examples/import-mapping.cfg.  */
#include "advsync.pb-c.h"
#include "agent.h"
#include "calendar.h"
#include "csv.h"
#include "json.h"
#include "log.h"
#include "sections.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_ROWS_PER_TRANSACTION 1000
#define ASY_IMPORT_PATH_DEPTH 4
/* A cell a message quotes: 80 bytes at most, NHS numbers masked before the cut (a cut number
   would leave nine of its ten digits, which the mask of the whole message cannot see) */
#define ASY_IMPORT_CELL_SHOWN (80 + 4)
#define ASY_IMPORT_CELL(text, shown) asy_nhs_number_shown((text), 80, (shown), sizeof(shown))

typedef enum {
    ASY_IMPORT_TEXT,
    ASY_IMPORT_DATETIME,
    ASY_IMPORT_DATE,
    ASY_IMPORT_INTEGER,
    ASY_IMPORT_BOOLEAN
} asy_import_type_t;
typedef enum { ASY_IMPORT_AUTO, ASY_IMPORT_ISO, ASY_IMPORT_DMY } asy_import_date_format_t;

typedef struct {
    const char *from; /* borrowed from the zconfig tree */
    const char *to;
} asy_import_value_t;

typedef struct {
    const char *header;
    char field[256];             /* lowerCamelCase path, or "kind" */
    char *segment[ASY_IMPORT_PATH_DEPTH]; /* into field_split */
    char field_split[256];
    int depth;
    int body_kind; /* the event kind whose body the field is in, or 0 */
    bool is_kind;
    bool identifier; /* never echo its values in messages */
    asy_import_type_t type;
    asy_import_date_format_t format;
    char separator; /* list separator, or 0 */
    bool required;
    const char *fallback; /* `default` */
    asy_import_value_t *values;
    size_t value_count;
    int index; /* position in the CSV header */
} asy_import_column_t;

typedef struct {
    zconfig_t *root;
    int fixed_kind;
    char delimiter;
    asy_import_column_t *columns;
    size_t column_count;
    int kind_column; /* index into columns or -1 */
} asy_import_mapping_t;

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
   The mapping file. */

/* "referralReceived.receivedAt" -> "referral_received.received_at". */
static void s_snake(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 2 < size; p++) {
        if (isupper((unsigned char)*p)) {
            if (n > 0 && out[n - 1] != '.')
                out[n++] = '_';
            out[n++] = (char)tolower((unsigned char)*p);
        } else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/* "referral_received.received_at" -> "referralReceived.receivedAt" (the JSON names). */
static void asy_import_camel(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < size; p++) {
        if (*p == '_' && isalnum((unsigned char)p[1]) && n > 0 && out[n - 1] != '.')
            out[n++] = (char)toupper((unsigned char)*++p);
        else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/* The kind named by text: dotted, snake_case or lowerCamelCase. */
static int asy_import_kind(const char *text)
{
    char snake[128];
    s_snake(text, snake, sizeof snake);
    return asy_kind_from_name(snake);
}

/* Checks at load time what each row would otherwise refuse one by one: the column's field
   path names a field of the event (or an identifier submit pseudonymises), and the values
   an enum field is mapped to are names of that enum. */
static int s_check_field(const asy_import_column_t *column, const char *where, char *error,
                         size_t error_size)
{
    for (size_t i = 0; column->is_kind && i < column->value_count; i++) {
        const char *to = column->values[i].to;
        if (to && *to && !asy_import_kind(to)) {
            char shown[ASY_IMPORT_CELL_SHOWN];
            asy_set_error(error, error_size,
                          "%s/value \"%s\": to: \"%s\" is not an event kind (e.g. "
                          "referral.received; \"\" skips the row)",
                          where, column->values[i].from, ASY_IMPORT_CELL(to, shown));
            return ASY_ECONFIG;
        }
    }
    if (column->is_kind || column->identifier)
        return 0;
    const ProtobufCMessageDescriptor *desc = &advsync__v1__event__descriptor;
    const ProtobufCFieldDescriptor *field = NULL;
    for (int i = 0; i < column->depth; i++) {
        field = asy_json_find_field(desc, column->segment[i]); /* as rows will be read */
        if (!field) {
            asy_set_error(error, error_size, "%s/field: %s: %s has no field \"%s\"", where,
                          column->field, desc->short_name, column->segment[i]);
            return ASY_ECONFIG;
        }
        bool last = i == column->depth - 1;
        if (!last && field->type != PROTOBUF_C_TYPE_MESSAGE) {
            asy_set_error(error, error_size, "%s/field: %s: %s is not a message", where,
                          column->field, column->segment[i]);
            return ASY_ECONFIG;
        }
        if (!last)
            desc = field->descriptor;
    }
    /* the column's type must make a value the field takes */
    const char *message_name = field->type == PROTOBUF_C_TYPE_MESSAGE
                                   ? ((const ProtobufCMessageDescriptor *)field->descriptor)->name
                                   : "";
    bool number = field->type != PROTOBUF_C_TYPE_STRING && field->type != PROTOBUF_C_TYPE_BYTES &&
                  field->type != PROTOBUF_C_TYPE_BOOL && field->type != PROTOBUF_C_TYPE_ENUM &&
                  field->type != PROTOBUF_C_TYPE_MESSAGE;
    const char *wanted = NULL;
    if (column->type == ASY_IMPORT_DATETIME && strcmp(message_name, "advsync.v1.Timestamp") != 0)
        wanted = "a datetime";
    else if (column->type == ASY_IMPORT_DATE && strcmp(message_name, "advsync.v1.Date") != 0)
        wanted = "a date";
    else if (column->type == ASY_IMPORT_INTEGER && !number)
        wanted = "an integer";
    else if (column->type == ASY_IMPORT_BOOLEAN && field->type != PROTOBUF_C_TYPE_BOOL)
        wanted = "a boolean";
    if (wanted) {
        asy_set_error(error, error_size, "%s/type: %s holds %s, not %s: every row would be refused",
                      where, column->field,
                      !strcmp(message_name, "advsync.v1.Timestamp") ? "a time (type = datetime)"
                      : !strcmp(message_name, "advsync.v1.Date")    ? "a date (type = date)"
                      : field->type == PROTOBUF_C_TYPE_BOOL         ? "yes or no (type = boolean)"
                      : number                                      ? "a number (type = integer)"
                                                                    : "text (type = text)",
                      wanted);
        return ASY_ECONFIG;
    }
    if (field->type != PROTOBUF_C_TYPE_ENUM)
        return 0;
    /* each value the enum field is mapped to, read as a row's would be */
    for (size_t i = 0; i < column->value_count; i++) {
        const char *to = column->values[i].to;
        if (!to || !*to)
            continue;
        json_t *value = json_string(to);
        if (value && field->label == PROTOBUF_C_LABEL_REPEATED)
            value = json_pack("[o]", value);
        json_t *object =
            value ? json_pack("{so}", column->segment[column->depth - 1], value) : NULL;
        ProtobufCMessage *message = NULL;
        char why[512] = "out of memory";
        int rc = object ? asy_json_to_message(object, desc, &message, why, sizeof why) : ASY_ENOMEM;
        if (message)
            protobuf_c_message_free_unpacked(message, NULL);
        json_decref(object);
        if (rc == ASY_EINVAL) {
            asy_set_error(error, error_size, "%s/value \"%s\": to: %s", where,
                          column->values[i].from, why);
            return ASY_ECONFIG;
        }
        if (rc != 0) {
            asy_set_error(error, error_size, "%s: %s", where, why);
            return rc;
        }
    }
    return 0;
}

static bool asy_import_flag(const char *value, bool *out)
{
    if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1"))
        *out = true;
    else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcmp(value, "0"))
        *out = false;
    else
        return false;
    return true;
}

/* Reads one `column` section. Returns 0 or ASY_ECONFIG with error set. */
static int s_load_column(asy_import_column_t *column, zconfig_t *section, const char *where,
                         char *error, size_t error_size)
{
    column->index = -1;
    size_t values = 0;
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item))
        values += strcmp(zconfig_name(item), "value") == 0;
    column->values = values ? calloc(values, sizeof *column->values) : NULL;
    if (values && !column->values) {
        asy_set_error(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item)) {
        const char *name = zconfig_name(item);
        const char *value = zconfig_value(item) ? zconfig_value(item) : "";
        /* `value` repeats on purpose; an unknown key is refused below */
        if (strcmp(name, "value") != 0 && asy_sections_given_before(section, item)) {
            asy_set_error(error, error_size,
                          "%s/%s: given twice: which one is meant cannot be told", where, name);
            return ASY_ECONFIG;
        }
        bool ok = true;
        if (!strcmp(name, "header"))
            column->header = value;
        else if (!strcmp(name, "field")) {
            char snake[256];
            s_snake(value, snake, sizeof snake);
            asy_import_camel(snake, column->field, sizeof column->field);
            ok = value[0] != '\0';
        } else if (!strcmp(name, "type")) {
            static const char *types[] = {"text", "datetime", "date", "integer", "boolean"};
            ok = false;
            for (int i = 0; i < 5; i++)
                if (!strcmp(value, types[i])) {
                    column->type = (asy_import_type_t)i;
                    ok = true;
                }
        } else if (!strcmp(name, "format")) {
            column->format = !strcmp(value, "auto")         ? ASY_IMPORT_AUTO
                             : !strcmp(value, "iso8601")    ? ASY_IMPORT_ISO
                             : !strcmp(value, "dd/mm/yyyy") ? ASY_IMPORT_DMY
                                                            : (ok = false, ASY_IMPORT_AUTO);
        } else if (!strcmp(name, "list")) {
            column->separator = value[0];
            ok = strlen(value) == 1;
        } else if (!strcmp(name, "required"))
            ok = asy_import_flag(value, &column->required);
        else if (!strcmp(name, "default"))
            column->fallback = value;
        else if (!strcmp(name, "value")) {
            asy_import_value_t *entry = &column->values[column->value_count++];
            entry->from = zconfig_get(item, "from", NULL);
            entry->to = zconfig_get(item, "to", NULL);
            int froms = 0, tos = 0;
            for (zconfig_t *key = zconfig_child(item); key; key = zconfig_next(key)) {
                froms += !strcmp(zconfig_name(key), "from");
                tos += !strcmp(zconfig_name(key), "to");
            }
            ok = entry->from && entry->to && froms == 1 && tos == 1;
        } else {
            asy_set_error(error, error_size,
                     "%s/%s: unknown key (known: header, field, type, format, "
                     "list, required, default, value)",
                     where, name);
            return ASY_ECONFIG;
        }
        if (!ok) {
            asy_set_error(error, error_size, "%s/%s: bad value \"%s\"%s", where, name, value,
                          !strcmp(name, "type")     ? " (text, datetime, date, integer or boolean)"
                          : !strcmp(name, "format") ? " (auto, iso8601 or dd/mm/yyyy)"
                          : !strcmp(name, "list")   ? " (one separator character)"
                          : !strcmp(name, "value")  ? " (a value section needs one from and one to)"
                                                    : "");
            return ASY_ECONFIG;
        }
    }
    if (!column->header || !column->header[0] || !column->field[0]) {
        asy_set_error(error, error_size, "%s: needs header and field", where);
        return ASY_ECONFIG;
    }
    column->is_kind = !strcmp(column->field, "kind");
    snprintf(column->field_split, sizeof column->field_split, "%s", column->field);
    char *save = NULL;
    for (char *part = strtok_r(column->field_split, ".", &save); part;
         part = strtok_r(NULL, ".", &save)) {
        if (column->depth == ASY_IMPORT_PATH_DEPTH) {
            asy_set_error(error, error_size, "%s/field: deeper than %d levels", where,
                          ASY_IMPORT_PATH_DEPTH);
            return ASY_ECONFIG;
        }
        column->segment[column->depth++] = part;
    }
    if (column->depth == 0) {
        asy_set_error(error, error_size, "%s/field: empty path", where);
        return ASY_ECONFIG;
    }
    column->body_kind = column->depth > 1 ? asy_import_kind(column->segment[0]) : 0;
    column->identifier = !strcmp(column->field, "nhsNumber") ||
                         !strcmp(column->field, "personRef") || !strcmp(column->field, "caseRef");
    if (column->identifier && (column->type != ASY_IMPORT_TEXT || column->separator)) {
        /* a conversion would refuse rows quoting the identifier, or change what is hashed */
        asy_set_error(error, error_size,
                      "%s: %s is an identifier: its column is text as given (no type other "
                      "than text, no list), pseudonymised at the site and never shown",
                      where, column->field);
        return ASY_ECONFIG;
    }
    return s_check_field(column, where, error, error_size);
}

static void asy_import_mapping_free(asy_import_mapping_t *mapping)
{
    for (size_t i = 0; i < mapping->column_count; i++)
        free(mapping->columns[i].values);
    free(mapping->columns);
    zconfig_destroy(&mapping->root);
}

static int asy_import_mapping_load(asy_import_mapping_t *mapping, const char *path, char *error,
                                   size_t error_size)
{
    memset(mapping, 0, sizeof *mapping);
    mapping->delimiter = ',';
    mapping->kind_column = -1;
    FILE *probe = fopen(path, "r");
    if (!probe) {
        asy_set_error(error, error_size, "cannot read mapping %s: %s", path, strerror(errno));
        return ASY_ECONFIG;
    }
    fclose(probe);
    mapping->root = zconfig_load(path);
    char why[256];
    if (mapping->root && !asy_sections_uncut(path, why, sizeof why)) {
        asy_set_error(error, error_size, "%s: %s", path, why);
        return ASY_ECONFIG;
    }
    zconfig_t *section = mapping->root ? zconfig_locate(mapping->root, "import") : NULL;
    if (!section) {
        asy_set_error(error, error_size, "%s: %s", path,
                 mapping->root ? "no `import` section" : "not a valid zconfig file");
        return ASY_ECONFIG;
    }
    size_t columns = 0;
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item))
        columns += strcmp(zconfig_name(item), "column") == 0;
    mapping->columns = calloc(columns ? columns : 1, sizeof *mapping->columns);
    if (!mapping->columns) {
        asy_set_error(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item)) {
        const char *name = zconfig_name(item);
        const char *value = zconfig_value(item) ? zconfig_value(item) : "";
        /* `column` repeats on purpose; an unknown key is refused below */
        if (strcmp(name, "column") != 0 && asy_sections_given_before(section, item)) {
            asy_set_error(error, error_size,
                          "%s: import/%s: given twice: which one is meant cannot be told", path,
                          name);
            return ASY_ECONFIG;
        }
        if (!strcmp(name, "kind")) {
            mapping->fixed_kind = asy_import_kind(value);
            if (!mapping->fixed_kind) {
                asy_set_error(error, error_size, "%s: import/kind: unknown event kind \"%s\"", path,
                         value);
                return ASY_ECONFIG;
            }
        } else if (!strcmp(name, "delimiter")) {
            mapping->delimiter = !strcmp(value, "tab") ? '\t' : value[0];
            if (strcmp(value, "tab") != 0 && strlen(value) != 1) {
                asy_set_error(error, error_size, "%s: import/delimiter: one character or \"tab\"", path);
                return ASY_ECONFIG;
            }
        } else if (!strcmp(name, "column")) {
            char where[512];
            size_t index = mapping->column_count++;
            snprintf(where, sizeof where, "%s: import/column %zu", path, index + 1);
            int rc = s_load_column(&mapping->columns[index], item, where, error, error_size);
            if (rc != 0)
                return rc;
            if (mapping->columns[index].is_kind) {
                if (mapping->kind_column >= 0) {
                    asy_set_error(error, error_size, "%s: two columns give the kind", where);
                    return ASY_ECONFIG;
                }
                mapping->kind_column = (int)index;
            }
            for (size_t other = 0; other < index; other++)
                if (!strcmp(mapping->columns[other].field, mapping->columns[index].field)) {
                    asy_set_error(error, error_size, "%s: field %s is already fed by column %zu", where,
                             mapping->columns[index].field, other + 1);
                    return ASY_ECONFIG;
                }
        } else {
            asy_set_error(error, error_size,
                     "%s: import/%s: unknown key (known: kind, delimiter, "
                     "column)",
                     path, name);
            return ASY_ECONFIG;
        }
    }
    if (!mapping->fixed_kind && mapping->kind_column < 0) {
        asy_set_error(error, error_size,
                 "%s: say which event each row is: import/kind = KIND, or a "
                 "column with field = kind",
                 path);
        return ASY_ECONFIG;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
   Rows into events. */

/* The bytes of the blank at text (ASCII white space, or a no-break, narrow no-break or
   zero-width space, or a byte order mark, which cells pasted from a word processor hold), or
   0. */
static size_t s_blank_at(const char *text)
{
    static const char *const blanks[] = {"\xC2\xA0", "\xE2\x80\xAF", "\xE2\x80\x8B",
                                         "\xEF\xBB\xBF"};
    if (isspace((unsigned char)*text))
        return 1;
    for (size_t i = 0; i < sizeof blanks / sizeof blanks[0]; i++)
        if (strncmp(text, blanks[i], strlen(blanks[i])) == 0)
            return strlen(blanks[i]);
    return 0;
}

/* text without the blanks (s_blank_at) around it; cuts it in place. */
static char *s_trim(char *text)
{
    for (size_t skip; (skip = s_blank_at(text)) > 0;)
        text += skip;
    size_t length = strlen(text);
    for (bool cut = true; cut && length > 0;) {
        cut = false;
        for (size_t back = 1; back <= 3 && back <= length && !cut; back++)
            if (s_blank_at(text + length - back) == back) {
                length -= back;
                text[length] = '\0';
                cut = true;
            }
    }
    return text;
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
    /* the longest valid prefix ends just before the offending byte */
    size_t good = 0, length = strlen(text);
    for (size_t end = 1; end <= length; end++)
        if (asy_json_utf8_valid(text, end))
            good = end;
    asy_set_error(error, error_size,
                  "column \"%s\": not UTF-8 text (byte %zu is 0x%02X): save the export as "
                  "CSV UTF-8",
                  header, good + 1, (unsigned char)text[good]);
}

/* The JSON value of one (translated) item, or NULL with error set. */
static json_t *s_convert(const asy_import_column_t *column, const char *text, char *error,
                         size_t error_size)
{
    s_datetime_t time;
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
        if (!s_parse_datetime(text, column->format, &time)) {
            asy_set_error(error, error_size, "column \"%s\": \"%s\" is not a %s (%s)",
                          column->header, ASY_IMPORT_CELL(text, shown),
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
        asy_set_error(error, error_size, "column \"%s\": empty, and the mapping has no default kind",
                 column->header);
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
static json_t *asy_import_row_object(const asy_import_mapping_t *mapping, asy_csv_t *csv,
                                     size_t header_count, bool *empty, char *error,
                                     size_t error_size)
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
        asy_set_error(error, error_size, "%zu fields, but the header has %zu", csv->count, header_count);
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
static int asy_import_resolve_header(asy_import_mapping_t *mapping, asy_csv_t *csv, char *error,
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

/* If the submitter's message names a mapped field, the column that feeds it. */
static const asy_import_column_t *asy_import_column_of(const asy_import_mapping_t *mapping,
                                                       const char *message)
{
    char field[256];
    const char *colon = strchr(message, ':');
    size_t length = colon ? (size_t)(colon - message) : 0;
    if (length == 0 || length >= sizeof field)
        return NULL;
    char named[256], mapped[256];
    memcpy(named, message, length);
    named[length] = '\0';
    s_snake(named, field, sizeof field);
    for (size_t i = 0; i < mapping->column_count; i++) {
        s_snake(mapping->columns[i].field, mapped, sizeof mapped);
        if (!strcmp(mapped, field))
            return &mapping->columns[i];
    }
    return NULL;
}

typedef struct {
    asy_submitter_t *submitter;
    asy_import_mapping_t *mapping;
    asy_csv_t *csv;
    const char *name;
    uint64_t committed;
    zhashx_t *seen_rows; /* row digest -> how many such rows so far (uintptr_t) */
} s_import_t;

/* Gives a row without an eventId column one derived from what it says, so that importing
   the same export again (or a later export that repeats its rows) stores nothing twice: a
   UUID (version 8) from BLAKE2b-128 keyed with the consortium key over the site, the event
   as mapped (before pseudonymisation: keyed, it reveals no more than a pseudonym does) and
   how many identical rows came before it in this file, so that two identical rows of one
   export (two equal activities on one day) are still two events. An NHS number enters as its
   ten digits, as its pseudonym does: an export that writes "943 476 5919" where the last one
   wrote "9434765919" repeats the same events. Returns 0 or ASY_ENOMEM. */
static int s_derive_event_id(s_import_t *self, json_t *object)
{
    if (json_object_get(object, "eventId") || json_object_get(object, "event_id"))
        return 0;
    json_t *hashed = json_copy(object);
    if (!hashed)
        return ASY_ENOMEM;
    static const char *const nhs_keys[] = {"nhsNumber", "nhs_number"};
    for (size_t i = 0; i < 2; i++) {
        json_t *nhs = json_object_get(hashed, nhs_keys[i]);
        char digits[11];
        if (asy_nhs_number_digits(json_string_value(nhs), digits))
            json_object_set_new(hashed, nhs_keys[i], json_string(digits));
    }
    char *text = json_dumps(hashed, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hashed);
    if (!text)
        return ASY_ENOMEM;
    uint8_t digest[16];
    crypto_generichash_state state;
    crypto_generichash_init(&state, self->submitter->key->bytes, sizeof self->submitter->key->bytes,
                            sizeof digest);
    static const char domain[] = "advsync import row v1";
    crypto_generichash_update(&state, (const uint8_t *)domain, sizeof domain);
    const char *site = self->submitter->site_id;
    crypto_generichash_update(&state, (const uint8_t *)site, strlen(site) + 1);
    crypto_generichash_update(&state, (const uint8_t *)text, strlen(text));
    free(text);
    crypto_generichash_state repeat = state; /* the same row content, before its ordinal */
    crypto_generichash_final(&repeat, digest, sizeof digest);
    char key[33];
    sodium_bin2hex(key, sizeof key, digest, sizeof digest);
    uintptr_t before = (uintptr_t)zhashx_lookup(self->seen_rows, key);
    zhashx_update(self->seen_rows, key, (void *)(before + 1));
    uint64_t ordinal = before;
    crypto_generichash_update(&state, (const uint8_t *)&ordinal, sizeof ordinal);
    crypto_generichash_final(&state, digest, sizeof digest);
    digest[6] = (uint8_t)(0x80 | (digest[6] & 0x0f)); /* RFC 9562 version 8 (custom) */
    digest[8] = (uint8_t)(0x80 | (digest[8] & 0x3f)); /* variant 10 */
    char uuid[ASY_UUID_TEXT + 1];
    asy_uuid_format(digest, uuid);
    return json_object_set_new(object, "eventId", json_string(uuid)) == 0 ? 0 : ASY_ENOMEM;
}

/* The delimiter named by Excel's first line "sep=;" (which its CSV exports for some locales
   begin with), or 0 if the record is not such a line. Read with "," a "sep=," is two empty-ish
   fields. */
static char s_sep_line(asy_csv_t *csv)
{
    const char *first = csv->count > 0 ? asy_csv_field(csv, 0) : "";
    if (strncasecmp(first, "sep=", 4) != 0)
        return 0;
    if (csv->count == 1 && first[4] && !first[5])
        return first[4];
    if (csv->count == 2 && !first[4] && !*asy_csv_field(csv, 1))
        return csv->delimiter;
    return 0;
}

/* Reads every row into the outbox. Returns 0, or a fatal code after reporting it. */
static int s_import_rows(s_import_t *self)
{
    char error[512];
    int rc = asy_csv_next(self->csv);
    char sep = rc > 0 ? s_sep_line(self->csv) : 0;
    if (sep) {
        if (sep != self->csv->delimiter)
            asy_info("%s:%lu: the file names its delimiter (sep=%c): read with it", self->name,
                     self->csv->record_line, sep);
        self->csv->delimiter = sep;
        rc = asy_csv_next(self->csv);
    }
    if (rc <= 0) {
        asy_error("%s: %s", self->name,
                  rc == 0 ? "empty file: a header row is expected" : "out of memory");
        return ASY_EINVAL;
    }
    size_t header_count = self->csv->count;
    if (asy_import_resolve_header(self->mapping, self->csv, error, sizeof error) != 0) {
        asy_error("%s:%lu: %s", self->name, self->csv->record_line, error);
        return ASY_EINVAL;
    }
    asy_outbox_t *outbox = self->submitter->outbox;
    /* a transaction is opened by the first row to store and committed every
       S_ROWS_PER_TRANSACTION rows, or sooner when the input has nothing ready (see
       asy_input_idle: a slow pipe never holds the outbox's write lock) */
    bool open = false;
    int pending = 0, got;
    rc = 0;
    while (rc == 0 && !asy_interrupted()) {
        if (open && (pending >= S_ROWS_PER_TRANSACTION || asy_input_idle(self->csv->file))) {
            open = false;
            pending = 0;
            if ((rc = asy_outbox_commit(outbox)) != 0)
                break;
            self->committed = self->submitter->stored;
        }
        /* a record the signal interrupted is not taken: its reading may have been cut short */
        if ((got = asy_csv_next(self->csv)) <= 0 || asy_interrupted()) {
            rc = asy_interrupted() ? 0 : got;
            break;
        }
        bool empty;
        json_t *object = asy_import_row_object(self->mapping, self->csv, header_count, &empty,
                                               error, sizeof error);
        if (empty)
            continue;
        if (!object) { /* a refused cell is quoted: never an NHS number (asy_submitter_add
                          masks its own messages) */
            char masked[sizeof error];
            asy_nhs_number_mask(error, masked, sizeof masked);
            snprintf(error, sizeof error, "%s", masked);
        }
        bool mapped = object != NULL; /* object is released before the message is said */
        int added = ASY_EINVAL;
        if (object && s_derive_event_id(self, object) != 0) {
            json_decref(object);
            rc = ASY_ENOMEM;
            break;
        }
        if (object && !open) {
            if ((rc = asy_outbox_begin(outbox)) != 0) {
                json_decref(object);
                break;
            }
            open = true;
        }
        if (object) {
            added = asy_submitter_add(self->submitter, object, error, sizeof error);
            json_decref(object);
            pending++;
        } else
            self->submitter->rejected++;
        if (added == ASY_EINVAL) {
            const asy_import_column_t *column =
                mapped ? asy_import_column_of(self->mapping, error) : NULL;
            if (column)
                fprintf(stderr, "%s:%lu: column \"%s\": %s\n", self->name, self->csv->record_line,
                        column->header, error);
            else
                fprintf(stderr, "%s:%lu: %s\n", self->name, self->csv->record_line, error);
        } else if (added != 0 && added != ASY_EEXIST) {
            fprintf(stderr, "%s:%lu: %s\n", self->name, self->csv->record_line, error);
            rc = added;
            break;
        }
    }
    if (rc == 0 && !asy_interrupted() && ferror(self->csv->file)) {
        asy_error("%s: read error: %s", self->name, strerror(errno));
        rc = ASY_EIO;
    }
    if (rc == 0 && open)
        rc = asy_outbox_commit(outbox);
    if (rc == 0)
        self->committed = self->submitter->stored;
    else {
        if (rc != ASY_EIO)
            asy_error("%s: %s", self->name,
                      rc == ASY_ENOMEM ? "out of memory" : asy_outbox_errmsg(outbox));
        if (open)
            asy_outbox_rollback(outbox);
    }
    return rc;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-agent [common options] import --mapping MAP.cfg [--] FILE.csv|-\n"
            "\n"
            "Stores one event per row of a CSV export (RFC 4180, with a header row), as the\n"
            "mapping file says (see deploy/examples/import-mapping.cfg). Times without a zone\n"
            "are Europe/London local time. Each refused row is reported on stderr as\n"
            "FILE:LINE: column \"NAME\": reason; the other rows are stored. A row stored\n"
            "before (the same file or export imported again) counts as a duplicate.\n"
            "\n"
            "Exit status: 0 all rows stored, 1 fatal error, 2 usage or mapping error,\n"
            "3 some rows refused (the others were stored), 130 or 143 interrupted by SIGINT\n"
            "or SIGTERM (the rows read are stored; import the file again for the rest).\n");
}

int asy_cmd_import(const asy_agent_config_t *config, int argc, char **argv)
{
    const char *mapping_path = NULL, *path = NULL;
    bool options = true; /* until a "--": after it, FILE may start with '-' */
    for (int i = 1; i < argc; i++) {
        if (options && !strcmp(argv[i], "--")) {
            options = false;
            continue;
        }
        if (options && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
            s_usage(stdout);
            return 0;
        }
        if (options && !strcmp(argv[i], "--mapping") && i + 1 < argc)
            mapping_path = argv[++i];
        else if (options && !strncmp(argv[i], "--mapping=", 10))
            mapping_path = argv[i] + 10;
        else if (options && !strcmp(argv[i], "--mapping")) {
            fprintf(stderr, "advsync-agent import: --mapping needs a file (MAP.cfg)\n");
            s_usage(stderr);
            return 2;
        } else if ((options && argv[i][0] == '-' && argv[i][1]) || path) {
            fprintf(stderr, "advsync-agent import: unexpected argument %s\n", argv[i]);
            s_usage(stderr);
            return 2;
        } else
            path = argv[i];
    }
    if (!mapping_path || !path) {
        fprintf(stderr, "advsync-agent import: --mapping MAP.cfg and FILE.csv are required\n");
        s_usage(stderr);
        return 2;
    }
    char error[1024];
    asy_import_mapping_t mapping;
    int rc = asy_import_mapping_load(&mapping, mapping_path, error, sizeof error);
    if (rc != 0) {
        asy_error("%s", error);
        asy_import_mapping_free(&mapping);
        return 2;
    }
    bool from_stdin = !strcmp(path, "-");
    struct stat info;
    if (!from_stdin && stat(path, &info) == 0 && S_ISDIR(info.st_mode)) {
        asy_error("cannot read %s: it is a folder, not a CSV file", path);
        asy_import_mapping_free(&mapping);
        return 1;
    }
    FILE *file = from_stdin ? stdin : fopen(path, "rb");
    if (!file) {
        asy_error("cannot read %s: %s", path, strerror(errno));
        asy_import_mapping_free(&mapping);
        return 1;
    }
    asy_pseudonym_key_t key;
    asy_outbox_t *outbox = NULL;
    if (asy_submitter_open(config, &key, &outbox) != 0) {
        if (!from_stdin)
            fclose(file);
        asy_import_mapping_free(&mapping);
        return 1;
    }
    asy_submitter_t submitter = {.outbox = outbox, .key = &key, .site_id = config->site_id};
    asy_csv_t csv = {.file = file, .delimiter = mapping.delimiter, .line = 1};
    s_import_t import = {.submitter = &submitter,
                         .mapping = &mapping,
                         .csv = &csv,
                         .name = from_stdin ? "stdin" : path,
                         .seen_rows = zhashx_new()};
    struct sigaction saved[2];
    asy_interrupt_catch(saved);
    rc = import.seen_rows ? s_import_rows(&import) : ASY_ENOMEM;
    if (!import.seen_rows)
        asy_error("%s: out of memory", import.name);
    asy_interrupt_release(saved);
    zhashx_destroy(&import.seen_rows);
    asy_csv_release(&csv);
    if (!from_stdin)
        fclose(file);
    asy_outbox_destroy(&outbox);
    asy_import_mapping_free(&mapping);
    int signal_caught = asy_interrupted();
    if (rc == 0 && signal_caught) {
        printf("interrupted (%s): stored %llu, duplicates %llu, rejected %llu; the rest was not "
               "stored: import the file again (the rows stored are recognised as duplicates)\n",
               signal_caught == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)import.committed,
               (unsigned long long)submitter.duplicates, (unsigned long long)submitter.rejected);
        return 128 + signal_caught; /* main() then dies of the signal itself */
    }
    if (rc != 0) {
        printf("stopped by an error: stored %llu (the rest of the file was not stored)\n",
               (unsigned long long)import.committed);
        return 1;
    }
    printf("stored %llu, duplicates %llu, rejected %llu\n", (unsigned long long)import.committed,
           (unsigned long long)submitter.duplicates, (unsigned long long)submitter.rejected);
    return submitter.rejected ? 3 : 0;
}
