/*  csv.c: the RFC 4180 reader `import` reads its input with (see csv.h).  */
#include "csv.h"

#include <stdio.h>
#include <stdlib.h>

static int s_csv_put(asy_csv_t *csv, char c)
{
    if (csv->used == csv->capacity) {
        size_t capacity = csv->capacity ? csv->capacity * 2 : 1024;
        char *text = realloc(csv->text, capacity);
        if (!text)
            return ASY_ENOMEM;
        csv->text = text;
        csv->capacity = capacity;
    }
    csv->text[csv->used++] = c;
    return 0;
}

static int s_csv_begin_field(asy_csv_t *csv)
{
    if (csv->count == csv->slots) {
        size_t slots = csv->slots ? csv->slots * 2 : 32;
        size_t *starts = realloc(csv->starts, slots * sizeof *starts);
        if (!starts)
            return ASY_ENOMEM;
        csv->starts = starts;
        csv->slots = slots;
    }
    csv->starts[csv->count++] = csv->used;
    return 0;
}

char *asy_csv_field(const asy_csv_t *csv, size_t index)
{
    return csv->text + csv->starts[index];
}

/* A defect of a record, described once the record has ended: the first one found, except that
   a quote never closed (which swallows the rest of the file) is always the one told. */
typedef enum { S_FINE, S_UNCLOSED, S_AFTER_QUOTE, S_NUL } s_defect_t;

static void s_describe(asy_csv_t *csv, s_defect_t defect, size_t field, unsigned long line,
                       unsigned long last_line)
{
    char span[64] = "";
    if (defect == S_FINE)
        return;
    if (last_line > csv->record_line)
        snprintf(span, sizeof span, "; lines %lu-%lu were read as one row", csv->record_line,
                 last_line);
    switch (defect) {
    case S_UNCLOSED:
        snprintf(csv->problem, sizeof csv->problem,
                 "a quoted field is never closed (field %zu runs to the end of the file%s)", field,
                 span);
        break;
    case S_AFTER_QUOTE:
        snprintf(csv->problem, sizeof csv->problem,
                 "field %zu: text after its closing quote on line %lu (a quote inside a quoted "
                 "field is written twice: \"\")%s",
                 field, line, span);
        break;
    case S_NUL:
        /* on line 1, most often a UTF-16 file without its byte order mark */
        snprintf(csv->problem, sizeof csv->problem,
                 "field %zu: a NUL byte on line %lu (the export is damaged or not text%s)%s", field,
                 line, line == 1 ? "; UTF-16 (Excel's \"Unicode text\")? save it as CSV UTF-8" : "",
                 span);
        break;
    case S_FINE:
        break;
    }
}

/* The first character of the file, past a UTF-8 byte-order mark; bytes that only began like
   one are stored as text of the first field (*stored). */
static int s_first(asy_csv_t *csv, bool *stored)
{
    *stored = false;
    csv->began = true;
    int c = getc(csv->file);
    if (c != 0xEF)
        return c;
    int c2 = getc(csv->file);
    int c3 = c2 == 0xBB ? getc(csv->file) : EOF;
    if (c2 == 0xBB && c3 == 0xBF)
        return getc(csv->file);
    *stored = true;
    if (s_csv_begin_field(csv) != 0 || s_csv_put(csv, (char)0xEF) != 0 ||
        (c2 == 0xBB && s_csv_put(csv, (char)0xBB) != 0))
        return ASY_ENOMEM;
    return c2 == 0xBB ? c3 : c2;
}

/* The state of the record being read. */
typedef struct {
    int c;            /* the character in hand */
    bool quoted;      /* inside a quoted field */
    bool field_start; /* nothing of the field read yet */
    s_defect_t defect;
    size_t defect_field;
    unsigned long defect_line;
} s_record_t;

/* Keeps the first defect of the record, with where it is. */
static void s_defect(const asy_csv_t *csv, s_record_t *record, s_defect_t defect)
{
    if (record->defect != S_FINE)
        return;
    record->defect = defect;
    record->defect_field = csv->count;
    record->defect_line = csv->line;
}

/* One character inside a quoted field: a quote ends the field unless doubled, line breaks are
   text. Returns 0 to go on, 1 if the file ended (a quote never closed), or ASY_ENOMEM. */
static int s_quoted(asy_csv_t *csv, s_record_t *record)
{
    int c = record->c;
    if (c == EOF) {
        bool ended =
            csv->used > 0 && (csv->text[csv->used - 1] == '\n' || csv->text[csv->used - 1] == '\r');
        s_describe(csv, S_UNCLOSED, csv->count, csv->line, csv->line - ended);
        return s_csv_put(csv, '\0') ? ASY_ENOMEM : 1;
    }
    if (c == '"') {
        int next = getc(csv->file);
        if (next != '"') {
            record->quoted = false;
            record->c = next;
            if (next != csv->delimiter && next != '\r' && next != '\n' && next != EOF)
                s_defect(csv, record, S_AFTER_QUOTE);
            return 0;
        }
    } else if (c == '\n') {
        csv->line++;
    } else if (c == '\r') {
        /* a CR alone ends a line too (CRLF counts once, at its LF) */
        int next = getc(csv->file);
        if (next != '\n')
            csv->line++;
        if (next != EOF)
            ungetc(next, csv->file);
    }
    int rc = s_csv_put(csv, (char)c);
    record->field_start = false;
    record->c = getc(csv->file);
    return rc;
}

/* The end of the record at a line break or the end of the file. Returns 1 or ASY_ENOMEM. */
static int s_end_record(asy_csv_t *csv, const s_record_t *record)
{
    if (record->c == '\r') {
        int next = getc(csv->file);
        if (next != '\n' && next != EOF)
            ungetc(next, csv->file);
    }
    s_describe(csv, record->defect, record->defect_field, record->defect_line, csv->line);
    if (record->c != EOF)
        csv->line++;
    return s_csv_put(csv, '\0') ? ASY_ENOMEM : 1;
}

/* A delimiter: the field ends and the next begins. Returns 0 or ASY_ENOMEM. */
static int s_next_field(asy_csv_t *csv, s_record_t *record)
{
    int rc = s_csv_put(csv, '\0');
    if (rc == 0)
        rc = s_csv_begin_field(csv);
    record->field_start = true;
    record->c = getc(csv->file);
    return rc;
}

/* Any other character outside quotes: a quote at the start of a field opens quotes, anything
   else is text. Returns 0 or ASY_ENOMEM. */
static int s_unquoted(asy_csv_t *csv, s_record_t *record)
{
    int rc = 0;
    if (record->c == '"' && record->field_start)
        record->quoted = true;
    else
        rc = s_csv_put(csv, (char)record->c); /* a stray quote mid-field is kept as text */
    record->field_start = false;
    record->c = getc(csv->file);
    return rc;
}

int asy_csv_next(asy_csv_t *csv)
{
    csv->used = 0;
    csv->count = 0;
    csv->problem[0] = '\0';
    csv->record_line = csv->line;
    bool stored = false;
    int c = csv->began ? getc(csv->file) : s_first(csv, &stored);
    if (c == ASY_ENOMEM)
        return ASY_ENOMEM;
    if (c == EOF && !stored)
        return 0;
    s_record_t record = {.c = c, .quoted = false, .field_start = !stored, .defect = S_FINE};
    int rc = stored ? 0 : s_csv_begin_field(csv);
    while (rc == 0) {
        if (record.c == '\0')
            s_defect(csv, &record, S_NUL);
        if (record.quoted)
            rc = s_quoted(csv, &record);
        else if (record.c == csv->delimiter)
            rc = s_next_field(csv, &record);
        else if (record.c == '\r' || record.c == '\n' || record.c == EOF)
            return s_end_record(csv, &record);
        else
            rc = s_unquoted(csv, &record);
    }
    return rc;
}

void asy_csv_release(asy_csv_t *csv)
{
    free(csv->text);
    free(csv->starts);
    csv->text = NULL;
    csv->starts = NULL;
    csv->used = csv->capacity = csv->count = csv->slots = 0;
}
