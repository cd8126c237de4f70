/*  csv.h: an RFC 4180 reader (advsync-agent import, advsync-ctl denominators load).

    Records are read one at a time from a FILE: fields are separated by the delimiter; a field
    that starts with a quote may hold the delimiter, doubled quotes ("" for ") and line breaks;
    records end with CRLF, LF or CR. A stray quote inside an unquoted field is kept as text.
    A UTF-8 byte-order mark at the start of the file is skipped. Line numbers count physical
    lines, so a message can name the line a record started on.

    A record the reader had to guess at is read whole and described in csv->problem, for the
    caller to refuse: a quote never closed (the record runs to the end of the file), text after
    a closing quote (a quote inside a quoted field not written twice: the field may have run on
    over the rows that follow), a NUL byte.  */
#ifndef ASY_CSV_H_INCLUDED
#define ASY_CSV_H_INCLUDED

#include "asy.h"

#include <stdio.h>

/* Set file, delimiter and line (1) and zero the rest; asy_csv_release() frees the buffers. */
typedef struct {
    FILE *file; /* borrowed */
    char delimiter;
    unsigned long line;        /* physical line the reader is on */
    unsigned long record_line; /* where the last record started */
    char *text;                /* fields, each NUL-terminated */
    size_t used, capacity;
    size_t *starts;
    size_t count, slots;
    bool began;        /* the first read is done (the byte-order mark is behind) */
    char problem[192]; /* "" or why the last record cannot be trusted (starts "a quoted field
                          is never closed", "field N: ..."; says which lines it spans) */
} asy_csv_t;

/* Reads one record (csv->count fields). Returns 1 (check csv->problem), 0 at the end of the
   file, or ASY_ENOMEM. */
int asy_csv_next(asy_csv_t *csv);

/* Field index (< csv->count) of the last record, NUL-terminated; borrowed until the next read,
   and writable (callers trim it in place). */
char *asy_csv_field(const asy_csv_t *csv, size_t index);

/* Frees the reader's buffers (not the file). */
void asy_csv_release(asy_csv_t *csv);

#endif
