/*  import.c: `advsync-agent import --mapping MAP.cfg FILE.csv`: one event per CSV row.

    The CSV is RFC 4180 (a header row; quoted fields may hold the delimiter, doubled quotes
    and line breaks; CRLF or LF). The mapping (zconfig, section `import`) says which column
    feeds which field of the event JSON, how values translate, and how dates read; each row
    becomes a JSON object that goes through the same path as `submit` (pseudonymise, check,
    store). Dates without a zone are Europe/London local time and are stored in UTC.
    The format is documented with deploy/examples/import-mapping.cfg. This file is the
    command and the row loop; import_mapping.c reads the mapping, import_row.c makes a row an
    event.  */
#include "import_private.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_ROWS_PER_TRANSACTION 1000

typedef struct {
    asy_submitter_t *submitter;
    asy_import_mapping_t *mapping;
    asy_csv_t *csv;
    const char *name;
    uint64_t committed;
    zhashx_t *seen_rows; /* row digest -> how many such rows so far (uintptr_t) */
    size_t header_count; /* fields of the header row */
    bool open;           /* a transaction is open */
    int pending;         /* rows stored in it */
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

/* Reads the header row (after Excel's "sep=" line, if any) and finds the mapped columns in
   it. Returns 0, or ASY_EINVAL after reporting it. */
static int s_read_header(s_import_t *self)
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
    self->header_count = self->csv->count;
    if (asy_import_resolve_header(self->mapping, self->csv, error, sizeof error) != 0) {
        asy_error("%s:%lu: %s", self->name, self->csv->record_line, error);
        return ASY_EINVAL;
    }
    return 0;
}

/* Reports a refused row as FILE:LINE: column "NAME": reason when the submitter's message names
   a mapped field of the row's event (mapped: the row became one), else as FILE:LINE: reason. */
static void s_report_refused(const s_import_t *self, bool mapped, const char *error)
{
    const asy_import_column_t *column = mapped ? asy_import_column_of(self->mapping, error) : NULL;
    if (column)
        fprintf(stderr, "%s:%lu: column \"%s\": %s\n", self->name, self->csv->record_line,
                column->header, error);
    else
        fprintf(stderr, "%s:%lu: %s\n", self->name, self->csv->record_line, error);
}

/* Stores the record just read as an event (opening a transaction if none is), or reports
   why it is refused. Returns 0, or a fatal code (ASY_ENOMEM, the outbox's) after saying it
   for the row when the submitter refused it. */
static int s_import_row(s_import_t *self)
{
    char error[512];
    bool empty;
    json_t *object = asy_import_row_object(self->mapping, self->csv, self->header_count, &empty,
                                           error, sizeof error);
    if (empty)
        return 0;
    if (!object) { /* a refused cell is quoted: never an NHS number (asy_submitter_add
                      masks its own messages) */
        char masked[sizeof error];
        asy_nhs_number_mask(error, masked, sizeof masked);
        snprintf(error, sizeof error, "%s", masked);
        self->submitter->rejected++;
        s_report_refused(self, false, error);
        return 0;
    }
    int rc = s_derive_event_id(self, object);
    if (rc == 0 && !self->open && (rc = asy_outbox_begin(self->submitter->outbox)) == 0)
        self->open = true;
    if (rc != 0) {
        json_decref(object);
        return rc;
    }
    int added = asy_submitter_add(self->submitter, object, error, sizeof error);
    json_decref(object);
    self->pending++;
    if (added == ASY_EINVAL)
        s_report_refused(self, true, error);
    else if (added != 0 && added != ASY_EEXIST) {
        fprintf(stderr, "%s:%lu: %s\n", self->name, self->csv->record_line, error);
        return added;
    }
    return 0;
}

/* Ends the rows: a read error is said, the open transaction committed (or rolled back after
   an error, which is said). Returns rc, or the error that came at the end. */
static int s_finish_rows(s_import_t *self, int rc)
{
    asy_outbox_t *outbox = self->submitter->outbox;
    if (rc == 0 && !asy_interrupted() && ferror(self->csv->file)) {
        asy_error("%s: read error: %s", self->name, strerror(errno));
        rc = ASY_EIO;
    }
    if (rc == 0 && self->open)
        rc = asy_outbox_commit(outbox);
    if (rc == 0)
        self->committed = self->submitter->stored;
    else {
        if (rc != ASY_EIO)
            asy_error("%s: %s", self->name,
                      rc == ASY_ENOMEM ? "out of memory" : asy_outbox_errmsg(outbox));
        if (self->open)
            asy_outbox_rollback(outbox);
    }
    return rc;
}

/* Reads every row into the outbox. Returns 0, or a fatal code after reporting it. */
static int s_import_rows(s_import_t *self)
{
    int rc = s_read_header(self);
    if (rc != 0)
        return rc;
    /* a transaction is opened by the first row to store and committed every
       S_ROWS_PER_TRANSACTION rows, or sooner when the input has nothing ready (see
       asy_input_idle: a slow pipe never holds the outbox's write lock) */
    while (rc == 0 && !asy_interrupted()) {
        if (self->open &&
            (self->pending >= S_ROWS_PER_TRANSACTION || asy_input_idle(self->csv->file))) {
            self->open = false;
            self->pending = 0;
            if ((rc = asy_outbox_commit(self->submitter->outbox)) != 0)
                break;
            self->committed = self->submitter->stored;
        }
        /* a record the signal interrupted is not taken: its reading may have been cut short */
        int got = asy_csv_next(self->csv);
        if (got <= 0 || asy_interrupted()) {
            rc = asy_interrupted() ? 0 : got;
            break;
        }
        rc = s_import_row(self);
    }
    return s_finish_rows(self, rc);
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

/* Reads the command's arguments into *mapping_path and *path. Returns -1 to go on, or the
   exit status (0 after --help, 2 after a usage error, said). */
static int s_parse_args(int argc, char **argv, const char **mapping_path, const char **path)
{
    *mapping_path = *path = NULL;
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
            *mapping_path = argv[++i];
        else if (options && !strncmp(argv[i], "--mapping=", 10))
            *mapping_path = argv[i] + 10;
        else if (options && !strcmp(argv[i], "--mapping")) {
            fprintf(stderr, "advsync-agent import: --mapping needs a file (MAP.cfg)\n");
            s_usage(stderr);
            return 2;
        } else if ((options && argv[i][0] == '-' && argv[i][1]) || *path) {
            fprintf(stderr, "advsync-agent import: unexpected argument %s\n", argv[i]);
            s_usage(stderr);
            return 2;
        } else
            *path = argv[i];
    }
    if (!*mapping_path || !*path) {
        fprintf(stderr, "advsync-agent import: --mapping MAP.cfg and FILE.csv are required\n");
        s_usage(stderr);
        return 2;
    }
    return -1;
}

/* Says how the run ended (rc: s_import_rows's) and returns the exit status. */
static int s_summary(const s_import_t *import, int rc)
{
    int signal_caught = asy_interrupted();
    if (rc == 0 && signal_caught) {
        printf("interrupted (%s): stored %llu, duplicates %llu, rejected %llu; the rest was not "
               "stored: import the file again (the rows stored are recognised as duplicates)\n",
               signal_caught == SIGINT ? "SIGINT" : "SIGTERM",
               (unsigned long long)import->committed,
               (unsigned long long)import->submitter->duplicates,
               (unsigned long long)import->submitter->rejected);
        return 128 + signal_caught; /* main() then dies of the signal itself */
    }
    if (rc != 0) {
        printf("stopped by an error: stored %llu (the rest of the file was not stored)\n",
               (unsigned long long)import->committed);
        return 1;
    }
    printf("stored %llu, duplicates %llu, rejected %llu\n", (unsigned long long)import->committed,
           (unsigned long long)import->submitter->duplicates,
           (unsigned long long)import->submitter->rejected);
    return import->submitter->rejected ? 3 : 0;
}

int asy_cmd_import(const asy_agent_config_t *config, int argc, char **argv)
{
    const char *mapping_path, *path;
    int status = s_parse_args(argc, argv, &mapping_path, &path);
    if (status >= 0)
        return status;
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
    return s_summary(&import, rc);
}
