/*  csv.h: an RFC 4180 reader (advsync-agent import, advsync-ctl denominators load).

    Records are read one at a time from a FILE: fields are separated by the delimiter; a field
    that starts with a quote may hold the delimiter, doubled quotes ("" for ") and line breaks;
    records end with CRLF, LF or CR. A stray quote inside an unquoted field is kept as text.
    Line numbers count physical lines, so a message can name the line a record started on.  */
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
    bool unterminated; /* the last record ended inside quotes */
} asy_csv_t;

/* Reads one record (csv->count fields). Returns 1, 0 at the end of the file, or ASY_ENOMEM.
   A quote that is never closed ends the record at the end of the file with csv->unterminated
   set. */
int asy_csv_next(asy_csv_t *csv);

/* Field index (< csv->count) of the last record, NUL-terminated; borrowed until the next read,
   and writable (callers trim it in place). */
char *asy_csv_field(const asy_csv_t *csv, size_t index);

/* Frees the reader's buffers (not the file). */
void asy_csv_release(asy_csv_t *csv);

#endif
