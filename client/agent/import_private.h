/*  import_private.h: what the files of `advsync-agent import` share. import_mapping.c reads
    the column mapping file into asy_import_mapping_t; import_row.c applies it to the header
    row and to each CSV row (dates, values, cells into one event's JSON); import.c is the
    command and the row loop that stores the events.  */
#ifndef ASY_IMPORT_PRIVATE_H_INCLUDED
#define ASY_IMPORT_PRIVATE_H_INCLUDED

#include "agent.h"
#include "csv.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

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
    char field[256];                      /* lowerCamelCase path, or "kind" */
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

/* Reads the mapping file at path into *mapping. Returns 0, or ASY_ECONFIG (or ASY_ENOMEM)
   with error set; either way the caller frees it with asy_import_mapping_free. */
int asy_import_mapping_load(asy_import_mapping_t *mapping, const char *path, char *error,
                            size_t error_size);

/* Frees what asy_import_mapping_load took (not mapping itself, which the caller owns). */
void asy_import_mapping_free(asy_import_mapping_t *mapping);

/* If the submitter's message names a mapped field, the column that feeds it (borrowed from
   mapping), or NULL. */
const asy_import_column_t *asy_import_column_of(const asy_import_mapping_t *mapping,
                                                const char *message);

/* "referral_received.received_at" -> "referralReceived.receivedAt" (the JSON names). */
void asy_import_camel(const char *text, char *out, size_t size);

/* The kind named by text: dotted, snake_case or lowerCamelCase; 0 if none. */
int asy_import_kind(const char *text);

/* Reads true/yes/1 or false/no/0 (any case) into *out; false for any other text. */
bool asy_import_flag(const char *value, bool *out);

/* Finds each mapped column in the header row (sets the columns' index). Returns 0 or
   ASY_EINVAL with error set. */
int asy_import_resolve_header(asy_import_mapping_t *mapping, asy_csv_t *csv, char *error,
                              size_t error_size);

/* Builds the event object of the csv's current row. Returns it (caller owns), or NULL with
   error set; *empty is set for a row of empty cells (skipped silently). */
json_t *asy_import_row_object(const asy_import_mapping_t *mapping, asy_csv_t *csv,
                              size_t header_count, bool *empty, char *error, size_t error_size);

#endif
