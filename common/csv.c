/*  csv.c: the RFC 4180 reader `import` reads its input with (see csv.h).  */
#include "csv.h"

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

int asy_csv_next(asy_csv_t *csv)
{
    csv->used = 0;
    csv->count = 0;
    csv->unterminated = false;
    csv->record_line = csv->line;
    int c = getc(csv->file);
    if (c == EOF)
        return 0;
    bool quoted = false, field_start = true;
    int rc = s_csv_begin_field(csv);
    while (rc == 0) {
        if (quoted) {
            if (c == EOF) {
                csv->unterminated = true;
                return s_csv_put(csv, '\0') ? ASY_ENOMEM : 1;
            }
            if (c == '"') {
                int next = getc(csv->file);
                if (next != '"') {
                    quoted = false;
                    c = next;
                    continue;
                }
            } else if (c == '\n')
                csv->line++;
            rc = s_csv_put(csv, (char)c);
        } else if (c == csv->delimiter) {
            rc = s_csv_put(csv, '\0');
            if (rc == 0)
                rc = s_csv_begin_field(csv);
            field_start = true;
            c = getc(csv->file);
            continue;
        } else if (c == '\r' || c == '\n' || c == EOF) {
            if (c == '\r') {
                int next = getc(csv->file);
                if (next != '\n' && next != EOF)
                    ungetc(next, csv->file);
            }
            if (c != EOF)
                csv->line++;
            return s_csv_put(csv, '\0') ? ASY_ENOMEM : 1;
        } else if (c == '"' && field_start)
            quoted = true;
        else
            rc = s_csv_put(csv, (char)c); /* a stray quote mid-field is kept as text */
        field_start = false;
        c = getc(csv->file);
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
