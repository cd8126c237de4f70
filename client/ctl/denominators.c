/*  denominators.c: `advsync-ctl denominators load|list` over the `denominator` table:
    resident population by area, ONS 2021 ethnic group, age band and (optionally) sex, in the
    shape of Census 2021
    table TS021 as ONS and Nomis hand it out (see the usage text for the columns read).

    A load is all or nothing: every line is checked before the database is touched, and the
    rows of the file's areas are replaced in one transaction.  */
#include "csv.h"
#include "ctl.h"
#include "json.h"
#include "monitor_msg.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const S_TABLES[] = {"denominator", NULL};

#define S_ETHNICITY_ENUM "EthnicityOns2021"
#define S_AGE_ENUM "AgeBand"
#define S_SEX_ENUM "Sex"
#define S_GROUP_MAX 19 /* EthnicityOns2021: 1..19 are the Census groups; 20, 21 are not */
#define S_BAND_MAX 6   /* AgeBand */
#define S_DOES_NOT_APPLY (-8)
#define S_AREA_CODE_MAX 64
#define S_POPULATION_MAX 100000000000LL /* no area holds more people than this */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-ctl [options] denominators load FILE.csv [--source TEXT]\n"
            "       advsync-ctl [options] denominators list [--area CODE]\n"
            "       advsync-ctl [options] denominators remove AREA_CODE\n"
            "\n"
            "load: population by area, ethnic group and age band, from a CSV file shaped like\n"
            "Census 2021 table TS021 (ONS / Nomis download). The first row names the columns\n"
            "(any order, case ignored):\n"
            "  area code   \"area_code\" or a header ending in \"Code\" (e.g. \"Lower tier local\n"
            "              authorities Code\")\n"
            "  area name   \"area_name\" or the area code's header without \"Code\" (optional)\n"
            "  group       \"ethnicity_ons\" or \"Ethnic group (20 categories) Code\": 1..19 as\n"
            "              TS021 (= EthnicityOns2021), 0 or ALL = all groups, -8 rows skipped;\n"
            "              or a name such as ONS_WHITE_BRITISH\n"
            "  age band    \"age_band\" (optional, else 0): 0 or ALL = all ages, 1 AGE_0_15,\n"
            "              2 AGE_16_17, 3 AGE_18_34, 4 AGE_35_49, 5 AGE_50_64, 6 AGE_65_PLUS\n"
            "  sex         optional, else persons: \"sex\": Male, Female (or M, F, SEX_MALE,\n"
            "              SEX_FEMALE), blank, 0, ALL or persons = persons; or ONS's \"Sex (2\n"
            "              categories) Code\": 1 = Female, 2 = Male\n"
            "  population  \"Observation\" or \"population\": a whole number >= 0\n"
            "The community service's figures (M8's referral rows, M9, M10) count against\n"
            "residents aged 18-64 (bands 3-5): give bands at least for all groups (0).\n"
            "M10 standardises a group by age and sex where its bands 18-64 are given by sex\n"
            "(both sexes); an area's group and band are given either for persons or by sex.\n"
            "Other columns are ignored. The rows of each area in the file replace that area's\n"
            "rows; a bad line changes nothing, nor does an area code given two names (a\n"
            "wrong code would sum two areas). --source (default: the file name) is stored.\n"
            "\n"
            "list: area, group, band, sex, population, source, loaded_at (tab-separated).\n"
            "remove: deletes every row of one area (an area loaded by mistake; a load only\n"
            "replaces the areas its file names).\n");
}

/* ----------------------------------------------------------------------------------------------
   Reading the file. */

typedef struct {
    char *area_code; /* owned */
    char *area_name; /* owned, NULL if none */
    int group;
    int band;
    int sex; /* 0 persons, 1 male, 2 female (the Sex enum) */
    long long population;
    unsigned long line;
} s_row_t;

typedef struct {
    const char *path;
    int area_code, area_name, group, band, population, sex; /* column indexes, -1 if absent */
    char *headers[6];                                       /* their header text (owned) */
    bool sex_ons_codes; /* the sex column is ONS's "Sex (2 categories) Code": 1 F, 2 M */
    s_row_t *rows;
    size_t count, capacity;
    size_t skipped; /* "Does not apply" rows */
} s_load_t;

enum {
    S_COL_AREA_CODE,
    S_COL_AREA_NAME,
    S_COL_GROUP,
    S_COL_BAND,
    S_COL_POPULATION,
    S_COL_SEX,
    S_COLUMNS
};

/* Trims blanks in place. */
static char *s_trim(char *text)
{
    while (isspace((unsigned char)*text))
        text++;
    size_t length = strlen(text);
    while (length > 0 && isspace((unsigned char)text[length - 1]))
        text[--length] = '\0';
    return text;
}

/* A lower-case copy of a header, cut to fit. */
static void s_lower_copy(char *out, size_t size, const char *text)
{
    size_t i = 0;
    for (; text[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)text[i]);
    out[i] = '\0';
}

static bool s_ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text), suffix_length = strlen(suffix);
    return length >= suffix_length && streq(text + length - suffix_length, suffix);
}

/* What a (lower-cased) header is for: an S_COL_* or -1. The area name is found afterwards. */
static int s_header_role(const char *header)
{
    if (streq(header, "ethnicity_ons") || (strstr(header, "ethnic") && s_ends_with(header, "code")))
        return S_COL_GROUP;
    if (streq(header, "age_band") ||
        (strncmp(header, "age", 3) == 0 && s_ends_with(header, "code")))
        return S_COL_BAND;
    /* ONS's own header only: a "Sex Code" of other origin may code 1 as male */
    if (streq(header, "sex") || streq(header, "sex (2 categories) code"))
        return S_COL_SEX;
    if (streq(header, "area_code") || s_ends_with(header, "code"))
        return S_COL_AREA_CODE;
    if (streq(header, "observation") || streq(header, "population"))
        return S_COL_POPULATION;
    return -1;
}

static int *s_column(s_load_t *load, int role)
{
    int *columns[] = {&load->area_code, &load->area_name, &load->group,
                      &load->band,      &load->population, &load->sex};
    return columns[role];
}

static int s_set_column(s_load_t *load, int role, int index, const char *header, unsigned long line)
{
    int *column = s_column(load, role);
    if (*column >= 0) {
        fprintf(stderr,
                "advsync-ctl: %s:%lu: header: both \"%s\" and \"%s\" look like the %s "
                "column\n",
                load->path, line, load->headers[role], header,
                role == S_COL_AREA_CODE    ? "area code"
                : role == S_COL_GROUP      ? "ethnic group"
                : role == S_COL_BAND       ? "age band"
                : role == S_COL_POPULATION ? "population"
                : role == S_COL_SEX        ? "sex"
                                           : "area name");
        return ASY_EINVAL;
    }
    *column = index;
    load->headers[role] = strdup(header);
    return load->headers[role] ? 0 : ASY_ENOMEM;
}

static int s_read_header(s_load_t *load, asy_csv_t *csv)
{
    for (int i = 0; i < S_COLUMNS; i++)
        *s_column(load, i) = -1;
    char lower[256];
    for (size_t i = 0; i < csv->count; i++) {
        const char *header = s_trim(asy_csv_field(csv, i));
        s_lower_copy(lower, sizeof lower, header);
        int role = s_header_role(lower);
        if (role >= 0 && s_set_column(load, role, (int)i, header, csv->record_line) != 0)
            return ASY_EINVAL;
        if (role == S_COL_SEX)
            load->sex_ons_codes = !streq(lower, "sex");
    }
    const char *missing = load->area_code < 0    ? "area code (\"area_code\" or a header "
                                                   "ending in \"Code\")"
                          : load->group < 0      ? "ethnic group (\"ethnicity_ons\" or \"Ethnic "
                                                   "group (20 categories) Code\")"
                          : load->population < 0 ? "population (\"Observation\" or "
                                                   "\"population\")"
                                                 : NULL;
    if (missing) {
        fprintf(stderr, "advsync-ctl: %s:%lu: header: no %s column\n", load->path, csv->record_line,
                missing);
        return ASY_EINVAL;
    }
    /* The area name: "area_name", or the code's header without " code". */
    const char *code_header = load->headers[S_COL_AREA_CODE];
    size_t stem = strlen(code_header) - 4;
    while (stem > 0 && (code_header[stem - 1] == ' ' || code_header[stem - 1] == '_'))
        stem--;
    for (size_t i = 0; i < csv->count; i++) {
        const char *header = s_trim(asy_csv_field(csv, i));
        bool is_name =
            strcasecmp(header, "area_name") == 0 ||
            (stem > 0 && strlen(header) == stem && strncasecmp(header, code_header, stem) == 0);
        if (is_name && s_set_column(load, S_COL_AREA_NAME, (int)i, header, csv->record_line))
            return ASY_EINVAL;
    }
    return 0;
}

/* A whole number in [low, high], surrounding blanks allowed. */
static bool s_parse_integer(const char *text, long long low, long long high, long long *value)
{
    while (isspace((unsigned char)*text))
        text++;
    if (!*text || (!isdigit((unsigned char)*text) && *text != '-'))
        return false;
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    while (end && isspace((unsigned char)*end))
        end++;
    if (errno || end == text || *end || parsed < low || parsed > high)
        return false;
    *value = parsed;
    return true;
}

/* Group or band by number or by name (case ignored; "ALL" is 0). Returns 0 and *value, or
   ASY_EINVAL with why in reason[]. */
static int s_parse_enum(const char *text, const char *which, int max, bool allow_not_applicable,
                        int *value, char *reason, size_t reason_size)
{
    long long number = 0;
    if (s_parse_integer(text, -1000000, 1000000, &number)) {
        if ((number >= 0 && number <= max) ||
            (allow_not_applicable && number == S_DOES_NOT_APPLY)) {
            *value = (int)number;
            return 0;
        }
        asy_set_error(reason, reason_size, "%lld is not a code of %s (0 = all, 1..%d%s)", number,
                      which, max, allow_not_applicable ? ", -8 = does not apply" : "");
        return ASY_EINVAL;
    }
    char name[64];
    snprintf(name, sizeof name, "%s", text);
    const char *trimmed = s_trim(name);
    if (strcasecmp(trimmed, "all") == 0) {
        *value = 0;
        return 0;
    }
    for (int v = 1; v <= 21; v++) {
        const char *known = asy_enum_value_name(which, v);
        if (known && strcasecmp(known, trimmed) == 0 && v <= max) {
            *value = v;
            return 0;
        }
        if (known && strcasecmp(known, trimmed) == 0) {
            asy_set_error(reason, reason_size, "%s is not a Census group (no population)", known);
            return ASY_EINVAL;
        }
    }
    asy_set_error(reason, reason_size, "\"%s\" is not a number or a value name of %s (or ALL)",
                  text, which);
    return ASY_EINVAL;
}

/* Sex: 0 persons, 1 male, 2 female (the Sex enum). Under ONS's "Sex (2 categories) Code" the
   file's 1 is female and 2 male; under "sex" a number other than 0 is refused, as it would
   mean the opposite in the two codings. */
static int s_parse_sex(const char *text, bool ons_codes, int *value, char *reason,
                       size_t reason_size)
{
    char copy[64];
    snprintf(copy, sizeof copy, "%s", text);
    const char *name = s_trim(copy);
    long long number = 0;
    if (!*name || strcasecmp(name, "all") == 0 || strcasecmp(name, "persons") == 0 ||
        (s_parse_integer(name, 0, 0, &number))) {
        *value = 0;
        return 0;
    }
    if (ons_codes && s_parse_integer(name, 1, 2, &number)) {
        *value = number == 1 ? 2 : 1;
        return 0;
    }
    static const char *const male[] = {"male", "m", "SEX_MALE"},
                             *const female[] = {"female", "f", "SEX_FEMALE"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(name, male[i]) == 0 || strcasecmp(name, female[i]) == 0) {
            *value = strcasecmp(name, male[i]) == 0 ? 1 : 2;
            return 0;
        }
    }
    if (!ons_codes && s_parse_integer(name, -1000000, 1000000, &number))
        asy_set_error(reason, reason_size,
                      "%lld: write Male or Female (a number is ambiguous: ONS codes 1 as "
                      "Female, the Sex enum 1 as male)",
                      number);
    else
        asy_set_error(reason, reason_size,
                      ons_codes ? "\"%s\" is not 1 (Female) or 2 (Male)"
                                : "\"%s\" is not Male, Female or ALL",
                      name);
    return ASY_EINVAL;
}

static int s_bad(const s_load_t *load, unsigned long line, int role, const char *reason)
{
    fprintf(stderr, "advsync-ctl: %s:%lu: %s: %s\n", load->path, line, load->headers[role], reason);
    return ASY_EINVAL;
}

/* An area code as the table holds it: ONS codes are capitals, so "e09000004" and "E09000004"
   are one area, not two summed (migration 008). */
static void s_area_upper(char *code)
{
    for (; *code; code++)
        *code = (char)toupper((unsigned char)*code);
}

/* Every column the load reads must be UTF-8 text, as the database takes it: said here, with
   its line and byte, rather than by PostgreSQL's COPY after the file was read (review). */
static int s_check_utf8(const s_load_t *load, asy_csv_t *csv, unsigned long line)
{
    const int columns[] = {load->area_code, load->area_name, load->group,
                           load->band,      load->population, load->sex}; /* by S_COL_* */
    for (int role = 0; role < (int)(sizeof columns / sizeof columns[0]); role++) {
        if (columns[role] < 0)
            continue;
        const char *text = asy_csv_field(csv, (size_t)columns[role]);
        size_t length = strlen(text), good = asy_json_utf8_prefix(text, length);
        if (good == length)
            continue;
        char reason[128];
        snprintf(reason, sizeof reason,
                 "not UTF-8 text (byte %zu is 0x%02X): save the file as CSV UTF-8", good + 1,
                 (unsigned char)text[good]);
        return s_bad(load, line, role, reason);
    }
    return 0;
}

/* Checks one data record and appends it (or counts it as skipped). A "does not apply" (-8)
   row is checked as every other row before it is skipped. */
static int s_read_row(s_load_t *load, asy_csv_t *csv)
{
    unsigned long line = csv->record_line;
    char reason[256];
    s_row_t row = {.line = line};
    char *code = asy_csv_field(csv, (size_t)load->area_code);
    char *group = asy_csv_field(csv, (size_t)load->group);
    char *population = asy_csv_field(csv, (size_t)load->population);
    int rc = s_check_utf8(load, csv, line);
    if (rc != 0)
        return rc;
    if (s_parse_enum(group, S_ETHNICITY_ENUM, S_GROUP_MAX, true, &row.group, reason,
                     sizeof reason) != 0)
        return s_bad(load, line, S_COL_GROUP, reason);
    if (load->band >= 0 && s_parse_enum(asy_csv_field(csv, (size_t)load->band), S_AGE_ENUM,
                                        S_BAND_MAX, false, &row.band, reason, sizeof reason))
        return s_bad(load, line, S_COL_BAND, reason);
    if (load->sex >= 0 && s_parse_sex(asy_csv_field(csv, (size_t)load->sex), load->sex_ons_codes,
                                      &row.sex, reason, sizeof reason) != 0)
        return s_bad(load, line, S_COL_SEX, reason);
    if (!s_parse_integer(population, 0, S_POPULATION_MAX, &row.population)) {
        snprintf(reason, sizeof reason, "\"%s\" is not a whole number from 0 to %lld", population,
                 S_POPULATION_MAX);
        return s_bad(load, line, S_COL_POPULATION, reason);
    }
    size_t code_length = strlen(code);
    while (code_length && isspace((unsigned char)code[code_length - 1]))
        code[--code_length] = '\0';
    while (isspace((unsigned char)*code))
        code++;
    if (!*code || strlen(code) > S_AREA_CODE_MAX)
        return s_bad(load, line, S_COL_AREA_CODE, *code ? "longer than 64 characters" : "empty");
    for (const char *c = code; *c; c++)
        if (isspace((unsigned char)*c))
            /* "E 13" would be an area of its own, which no event's area code matches */
            return s_bad(load, line, S_COL_AREA_CODE, "holds a blank (an area code is one word)");
    if (row.group == S_DOES_NOT_APPLY) {
        load->skipped++;
        return 0;
    }
    if (load->count == load->capacity) {
        size_t capacity = load->capacity ? load->capacity * 2 : 64;
        s_row_t *rows = realloc(load->rows, capacity * sizeof *rows);
        if (!rows)
            return ASY_ENOMEM;
        load->rows = rows;
        load->capacity = capacity;
    }
    const char *name = load->area_name >= 0 ? asy_csv_field(csv, (size_t)load->area_name) : "";
    s_area_upper(code);
    row.area_code = strdup(code);
    row.area_name = *name ? strdup(name) : NULL;
    load->rows[load->count++] = row;
    return row.area_code && (!*name || row.area_name) ? 0 : ASY_ENOMEM;
}

static int s_read_file(s_load_t *load)
{
    struct stat info;
    if (stat(load->path, &info) == 0 && S_ISDIR(info.st_mode)) {
        fprintf(stderr, "advsync-ctl: cannot open %s: it is a folder, not a CSV file\n",
                load->path);
        return ASY_EIO;
    }
    FILE *file = fopen(load->path, "r");
    if (!file) {
        fprintf(stderr, "advsync-ctl: cannot open %s: %s\n", load->path, strerror(errno));
        return ASY_EIO;
    }
    /* A UTF-8 byte order mark (Excel, some downloads) is not part of the first header. */
    char bom[3];
    if (fread(bom, 1, 3, file) != 3 || memcmp(bom, "\xEF\xBB\xBF", 3) != 0)
        rewind(file);
    asy_csv_t csv;
    csv = (asy_csv_t){.file = file, .delimiter = ',', .line = 1};
    int rc = 0, got = 0;
    bool header = false;
    size_t columns = 0;
    while (rc == 0 && (got = asy_csv_next(&csv)) == 1) {
        if (!csv.problem[0] && csv.count == 1 && !*asy_csv_field(&csv, 0))
            continue; /* blank line */
        if (csv.problem[0]) {
            fprintf(stderr, "advsync-ctl: %s:%lu: %s\n", load->path, csv.record_line, csv.problem);
            rc = ASY_EINVAL;
        } else if (!header) {
            header = true;
            columns = csv.count;
            rc = s_read_header(load, &csv);
        } else if (csv.count != columns) {
            fprintf(stderr, "advsync-ctl: %s:%lu: %zu fields, but the header has %zu\n", load->path,
                    csv.record_line, csv.count, columns);
            rc = ASY_EINVAL;
        } else
            rc = s_read_row(load, &csv);
    }
    if (rc == 0 && got < 0) {
        fprintf(stderr, "advsync-ctl: cannot read %s: %s\n", load->path, asy_strerror(got));
        rc = got;
    }
    if (rc == 0 && !header) {
        fprintf(stderr, "advsync-ctl: %s: empty file (no header row)\n", load->path);
        rc = ASY_EINVAL;
    }
    asy_csv_release(&csv);
    fclose(file);
    return rc;
}

static int s_compare_rows(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    int by_area = strcmp(x->area_code, y->area_code);
    if (by_area)
        return by_area;
    if (x->group != y->group)
        return x->group - y->group;
    if (x->band != y->band)
        return x->band - y->band;
    if (x->sex != y->sex)
        return x->sex - y->sex;
    return (x->line > y->line) - (x->line < y->line);
}

/* Sorts the rows by (area, group, band, sex) and rejects a key given twice, and a group and
   band of an area given both for persons and by sex, or by one sex only. */
static int s_check_duplicates(s_load_t *load)
{
    qsort(load->rows, load->count, sizeof *load->rows, s_compare_rows);
    /* an area code named two ways is most likely a wrong code: two areas' populations would
       be summed as one */
    const s_row_t *named = NULL;
    for (size_t i = 0; i < load->count; i++) {
        const s_row_t *row = &load->rows[i];
        if (named && !streq(named->area_code, row->area_code))
            named = NULL;
        if (!row->area_name)
            continue;
        if (!named)
            named = row;
        else if (!streq(named->area_name, row->area_name)) {
            const s_row_t *first = named->line < row->line ? named : row,
                          *second = named->line < row->line ? row : named;
            fprintf(stderr,
                    "advsync-ctl: %s:%lu: %s %s is named \"%s\" here and \"%s\" on line %lu: "
                    "is one of the codes wrong?\n",
                    load->path, second->line, load->headers[S_COL_AREA_CODE], row->area_code,
                    second->area_name, first->area_name, first->line);
            return ASY_EINVAL;
        }
    }
    for (size_t i = 1; i < load->count; i++) {
        const s_row_t *a = &load->rows[i - 1], *b = &load->rows[i];
        if (streq(a->area_code, b->area_code) && a->group == b->group && a->band == b->band &&
            a->sex == b->sex) {
            fprintf(stderr,
                    "advsync-ctl: %s:%lu: %s %s, group %d, band %d%s: given already on "
                    "line %lu\n",
                    load->path, b->line, load->headers[S_COL_AREA_CODE], b->area_code, b->group,
                    b->band, b->sex == 1 ? ", male" : b->sex == 2 ? ", female" : "", a->line);
            return ASY_EINVAL;
        }
    }
    /* each (area, group, band): persons alone, or male and female */
    for (size_t first = 0, end = 0; first < load->count; first = end) {
        const s_row_t *row = &load->rows[first];
        unsigned sexes = 0;
        unsigned long last = 0; /* the key's last line in the file */
        for (end = first; end < load->count && streq(load->rows[end].area_code, row->area_code) &&
                          load->rows[end].group == row->group && load->rows[end].band == row->band;
             end++) {
            sexes |= 1u << load->rows[end].sex;
            last = load->rows[end].line > last ? load->rows[end].line : last;
        }
        if (sexes == 1u || sexes == 6u)
            continue;
        fprintf(stderr,
                "advsync-ctl: %s:%lu: %s %s, group %d, band %d: %s\n", load->path, last,
                load->headers[S_COL_AREA_CODE], row->area_code, row->group, row->band,
                sexes & 1u ? "given both for persons and by sex (counted twice); give one or "
                             "the other"
                : sexes == 2u ? "given for males but not for females: give both, or persons"
                              : "given for females but not for males: give both, or persons");
        return ASY_EINVAL;
    }
    return 0;
}

static void s_load_release(s_load_t *load)
{
    for (size_t i = 0; i < load->count; i++) {
        free(load->rows[i].area_code);
        free(load->rows[i].area_name);
    }
    free(load->rows);
    for (int i = 0; i < S_COLUMNS; i++)
        free(load->headers[i]);
}

/* ----------------------------------------------------------------------------------------------
   Writing the rows. */

/* Appends text escaped for COPY's text format. */
static void s_copy_text(FILE *out, const char *text)
{
    if (!text) {
        fputs("\\N", out);
        return;
    }
    for (const char *c = text; *c; c++) {
        if (*c == '\\' || *c == '\t' || *c == '\n' || *c == '\r')
            fputc('\\', out);
        fputc(*c == '\t' ? 't' : *c == '\n' ? 'n' : *c == '\r' ? 'r' : *c, out);
    }
}

/* The rows as COPY text. Returns a malloc'ed buffer (caller frees) or NULL. */
static char *s_copy_payload(const s_load_t *load, const char *source, size_t *size)
{
    char *payload = NULL;
    FILE *out = open_memstream(&payload, size);
    if (!out)
        return NULL;
    for (size_t i = 0; i < load->count; i++) {
        const s_row_t *row = &load->rows[i];
        s_copy_text(out, row->area_code);
        fputc('\t', out);
        s_copy_text(out, row->area_name);
        fprintf(out, "\t%d\t%d\t%d\t%lld\t", row->group, row->band, row->sex, row->population);
        s_copy_text(out, source);
        fputc('\n', out);
    }
    if (fclose(out) != 0) {
        free(payload);
        return NULL;
    }
    return payload;
}

/* In one transaction: delete the file's areas, COPY the rows in. */
static int s_write(asy_db_t *db, const s_load_t *load, const char *source, uint64_t *replaced)
{
    size_t size = 0;
    char *payload = s_copy_payload(load, source, &size);
    if (!payload)
        return ASY_ENOMEM;
    int rc = asy_db_begin(db);
    for (size_t i = 0; rc == 0 && i < load->count; i++) {
        if (i > 0 && streq(load->rows[i].area_code, load->rows[i - 1].area_code))
            continue;
        uint64_t deleted = 0;
        const char *params[] = {load->rows[i].area_code};
        rc = asy_db_exec(db, "DELETE FROM denominator WHERE area_code = $1", 1, params, &deleted);
        *replaced += deleted;
    }
    if (rc == 0)
        rc = asy_db_copy_start(db, "COPY denominator (area_code, area_name, ethnicity_ons, "
                                   "age_band, sex, population, source) FROM STDIN");
    if (rc == 0)
        rc = asy_db_copy_put(db, (const uint8_t *)payload, size);
    if (rc == 0)
        rc = asy_db_copy_end(db, NULL);
    if (rc == 0)
        rc = asy_db_commit(db);
    if (rc != 0)
        asy_db_rollback(db);
    free(payload);
    return rc;
}

/* One line per area: its rows and its total (the all-groups all-ages row if given, else the
   sum of the groups, else the sum of the age bands). Rows are sorted by area. */
static void s_print_summary(const s_load_t *load, uint64_t replaced)
{
    size_t areas = 0;
    for (size_t i = 0; i < load->count; i++)
        areas += i == 0 || !streq(load->rows[i].area_code, load->rows[i - 1].area_code);
    printf("loaded %s: %zu area%s, %zu row%s", load->path, areas, areas == 1 ? "" : "s",
           load->count, load->count == 1 ? "" : "s");
    if (load->skipped)
        printf(", skipped %zu \"does not apply\" (-8) row%s", load->skipped,
               load->skipped == 1 ? "" : "s");
    printf("; replaced %llu earlier row%s\n", (unsigned long long)replaced,
           replaced == 1 ? "" : "s");
    for (size_t first = 0, end = 0; first < load->count; first = end) {
        long long all = -1, groups = 0, bands = 0, everything = 0;
        bool has_groups = false, has_bands = false;
        for (end = first;
             end < load->count && streq(load->rows[end].area_code, load->rows[first].area_code);
             end++) {
            const s_row_t *row = &load->rows[end];
            everything += row->population;
            if (row->group == 0 && row->band == 0) /* persons, or male and female */
                all = (all < 0 ? 0 : all) + row->population;
            else if (row->band == 0)
                groups += row->population, has_groups = true;
            else if (row->group == 0)
                bands += row->population, has_bands = true;
        }
        const s_row_t *row = &load->rows[first];
        long long total = all >= 0 ? all : has_groups ? groups : has_bands ? bands : everything;
        printf("%s\t%s\t%zu rows\tpopulation %lld (%s)\n", row->area_code,
               row->area_name ? row->area_name : "", end - first, total,
               all >= 0     ? "all-groups row"
               : has_groups ? "sum of groups"
               : has_bands  ? "sum of age bands"
                            : "sum of rows");
        if (all >= 0 && has_groups && groups != all)
            fprintf(stderr,
                    "advsync-ctl: warning: %s: the groups sum to %lld, the all-groups "
                    "row says %lld\n",
                    row->area_code, groups, all);
        if (all >= 0 && has_bands && bands != all)
            fprintf(stderr,
                    "advsync-ctl: warning: %s: the age bands sum to %lld, the "
                    "all-groups row says %lld\n",
                    row->area_code, bands, all);
    }
}

/* The community service's figures (M8's referral rows, M9, M10) count against the residents
   aged 18-64 (PROTOCOL.md 12.2): a file with no row of those bands gives them none. */
static void s_note_adult_bands(const s_load_t *load)
{
    for (size_t i = 0; i < load->count; i++)
        if (load->rows[i].band >= 3 && load->rows[i].band <= 5)
            return;
    fprintf(stderr,
            "advsync-ctl: note: %s gives no age band from 18-34 to 50-64: the community "
            "service's figures (M8's referral rows, M9, M10) count against residents aged "
            "18-64, and stay empty until some area gives them by age band\n",
            load->path);
}

static int s_load(const asy_ctl_options_t *options, int argc, char **argv)
{
    const char *path = NULL, *source = NULL;
    for (int index = 2; index < argc;) {
        int matched = asy_ctl_option(argc, argv, &index, "--source", &source);
        if (matched == ASY_CTL_USAGE)
            return ASY_CTL_USAGE;
        if (matched)
            continue;
        if (argv[index][0] == '-' || path) {
            fprintf(stderr, "advsync-ctl: denominators load: unexpected argument \"%s\"\n",
                    argv[index]);
            return ASY_CTL_USAGE;
        }
        path = argv[index++];
    }
    if (!path) {
        fprintf(stderr, "advsync-ctl: denominators load: FILE.csv is missing\n");
        return ASY_CTL_USAGE;
    }
    if (!source) {
        const char *slash = strrchr(path, '/');
        source = slash ? slash + 1 : path;
    }
    s_load_t load = {.path = path};
    int rc = s_read_file(&load);
    if (rc == 0 && load.count == 0) {
        fprintf(stderr, "advsync-ctl: %s: no data rows\n", path);
        rc = ASY_EINVAL;
    }
    if (rc == 0)
        rc = s_check_duplicates(&load);
    asy_db_t *db = NULL;
    int code = rc == 0 ? asy_ctl_connect(options, S_TABLES, &db) : ASY_CTL_FAILURE;
    if (code == ASY_CTL_OK) {
        uint64_t replaced = 0;
        rc = s_write(db, &load, *source ? source : NULL, &replaced);
        if (rc == 0) {
            s_print_summary(&load, replaced);
            s_note_adult_bands(&load);
        } else {
            fprintf(stderr, "advsync-ctl: %s: nothing loaded: %s\n", path,
                    rc == ASY_ENOMEM ? asy_strerror(rc) : asy_db_errmsg(db));
            code = ASY_CTL_FAILURE;
        }
    }
    asy_db_destroy(&db);
    s_load_release(&load);
    return code;
}

/* ----------------------------------------------------------------------------------------------
   Listing. */

static int s_list(const asy_ctl_options_t *options, int argc, char **argv)
{
    const char *area = NULL;
    if (asy_ctl_only_option(argc, argv, "denominators list", "--area", &area) != ASY_CTL_OK)
        return ASY_CTL_USAGE;
    if (area && !*area) {
        fprintf(stderr, "advsync-ctl: denominators list: --area is empty: give an area code\n");
        return ASY_CTL_USAGE;
    }
    asy_db_t *db = NULL;
    int code = asy_ctl_connect(options, S_TABLES, &db);
    if (code != ASY_CTL_OK)
        return code;
    /* One text value (db.h copies only the first row): one line per row, tab-separated; the
       free-text columns (name, source) with their tabs and line ends made spaces, or a tab in
       a name shifted every column after it. */
    asy_db_row_t row = {0};
    const char *params[] = {area};
    int rc = asy_db_query_row(
        db,
        "SELECT count(*), string_agg(area_code || E'\\t' || translate(coalesce(area_name, ''), "
        "E'\\t\\n\\r', '   ') || E'\\t' || ethnicity_ons || E'\\t' || age_band || E'\\t' || "
        "sex || E'\\t' || population || E'\\t' || translate(coalesce(source, ''), E'\\t\\n\\r', '   ') || E'\\t' "
        "|| to_char(loaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), E'\\n' "
        "ORDER BY area_code, ethnicity_ons, age_band, sex) FROM denominator "
        "WHERE $1::text IS NULL OR area_code = upper($1)",
        false, 1, params, &row);
    if (rc != 0) {
        fprintf(stderr, "advsync-ctl: cannot read the denominator table: %s\n", asy_db_errmsg(db));
        asy_db_destroy(&db);
        return ASY_CTL_FAILURE;
    }
    if (streq(row.values[0], "0"))
        fprintf(stderr, "advsync-ctl: no denominators loaded%s%s\n", area ? " for area " : "",
                area ? area : "");
    else
        printf("area\tarea_name\tgroup\tband\tsex\tpopulation\tsource\tloaded_at\n");
    for (char *line = streq(row.values[0], "0") ? NULL : row.values[1]; line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *fields[8] = {0};
        char *cursor = line;
        for (size_t i = 0; i < 8 && cursor; i++) {
            fields[i] = cursor;
            char *tab = strchr(cursor, '\t');
            cursor = tab ? (*tab = '\0', tab + 1) : NULL;
        }
        int group = fields[2] ? atoi(fields[2]) : -1, band = fields[3] ? atoi(fields[3]) : -1;
        int sex = fields[4] ? atoi(fields[4]) : -1;
        const char *group_name = group == 0 ? "ALL" : asy_enum_value_name(S_ETHNICITY_ENUM, group);
        const char *band_name = band == 0 ? "ALL" : asy_enum_value_name(S_AGE_ENUM, band);
        const char *sex_name = sex == 0 ? "ALL" : asy_enum_value_name(S_SEX_ENUM, sex);
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fields[0], fields[1] ? fields[1] : "",
               group_name ? group_name : "?", band_name ? band_name : "?",
               sex_name ? sex_name : "?", fields[5] ? fields[5] : "", fields[6] ? fields[6] : "",
               fields[7] ? fields[7] : "");
        line = next;
    }
    asy_db_row_release(&row);
    asy_db_destroy(&db);
    return ASY_CTL_OK;
}

static int s_remove(const asy_ctl_options_t *options, int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-' || !argv[2][0]) {
        fprintf(stderr, "advsync-ctl: denominators remove: one AREA_CODE expected%s\n",
                argc == 3 && !argv[2][0] ? " (it is empty)" : "");
        return ASY_CTL_USAGE;
    }
    const char *area = argv[2];
    asy_db_t *db = NULL;
    int code = asy_ctl_connect(options, S_TABLES, &db);
    if (code != ASY_CTL_OK)
        return code;
    uint64_t deleted = 0;
    const char *params[] = {area};
    int rc =
        asy_db_exec(db, "DELETE FROM denominator WHERE area_code = upper($1)", 1, params, &deleted);
    if (rc != 0) {
        fprintf(stderr, "advsync-ctl: cannot write the denominator table: %s\n", asy_db_errmsg(db));
        code = ASY_CTL_FAILURE;
    } else if (deleted == 0) {
        fprintf(stderr,
                "advsync-ctl: denominators remove: no rows for area %s (see "
                "`denominators list`)\n",
                area);
        code = ASY_CTL_FAILURE;
    } else {
        char stored[S_AREA_CODE_MAX + 1]; /* as the table holds it */
        snprintf(stored, sizeof stored, "%s", area);
        s_area_upper(stored);
        printf("removed %llu row(s) of area %s; the broker re-reads the table within 10 s\n",
               (unsigned long long)deleted, stored);
    }
    asy_db_destroy(&db);
    return code;
}

int asy_ctl_denominators(const asy_ctl_options_t *options, int argc, char **argv)
{
    static const asy_ctl_verb_t verbs[] = {
        {"load", s_load}, {"list", s_list}, {"remove", s_remove}, {NULL, NULL}};
    return asy_ctl_dispatch(options, argc, argv, verbs, s_usage);
}
