/*  submit.c: the submission path (pseudonymise, map, validate, append) and
    `advsync-agent submit [FILE|-]`, which feeds it JSON lines.  */
#include "advsync.pb-c.h"
#include "agent.h"
#include "json.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_LINES_PER_TRANSACTION 1000

/* What every input means the same by: a top-level null is an absent key (README, "Field
   names"), also for the identifier keys the pseudonymiser reads before the generic mapper; an
   eventId in capitals is the same UUID as in small letters (the centre's uuid column says so),
   so it is stored in small letters, else the outbox's duplicate check would let it through. */
static void s_normalise(json_t *object)
{
    const char *key;
    json_t *value;
    void *next;
    json_object_foreach_safe(object, next, key, value)
    {
        if (json_is_null(value))
            json_object_del(object, key);
    }
    static const char *const id_keys[] = {"eventId", "event_id"};
    for (size_t i = 0; i < 2; i++) {
        json_t *id = json_object_get(object, id_keys[i]);
        const char *text = json_string_value(id);
        if (!text || !asy_uuid_valid(text))
            continue;
        char lower[ASY_UUID_TEXT + 1];
        for (size_t c = 0; c <= ASY_UUID_TEXT; c++)
            lower[c] = (char)tolower((unsigned char)text[c]);
        json_string_set(id, lower);
    }
}

/* Looks through every text value of value (the event after pseudonymisation) for an NHS
   number: free text (a referrer, a ward, a goal) must not carry one off the site. The
   pseudonyms and the event id are skipped (their hex can hold ten digits by chance). Writes
   the path of the first one found (camelCase keys, as given) and returns true. */
static bool s_identifier_in_text(const json_t *value, char *path, size_t size)
{
    static const char *const skip[] = {"eventId", "event_id",  "caseId",
                                       "case_id", "personKey", "person_key"};
    if (json_is_string(value))
        return asy_nhs_number_find(json_string_value(value), NULL, NULL);
    size_t mark = strlen(path);
    if (json_is_object(value)) {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            bool skipped = false;
            for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
                skipped |= strcmp(key, skip[i]) == 0;
            if (skipped)
                continue;
            char shown[64 + 4]; /* a key is text of the line too: masked before the cut */
            snprintf(path + mark, size - mark, "%s%s", mark ? "." : "",
                     asy_nhs_number_shown(key, 64, shown, sizeof shown));
            if (s_identifier_in_text(member, path, size))
                return true;
        }
    } else if (json_is_array(value)) {
        size_t index;
        const json_t *member;
        json_array_foreach(value, index, member)
        {
            snprintf(path + mark, size - mark, "[%zu]", index);
            if (s_identifier_in_text(member, path, size))
                return true;
        }
    }
    path[mark] = '\0';
    return false;
}

/* The agent stamps its own site: a line that names another one was meant elsewhere. Returns
   0 or ASY_EINVAL with error set. */
static int s_check_site(const asy_submitter_t *self, const json_t *object, char *error,
                        size_t error_size)
{
    static const char *const site_keys[] = {"siteId", "site_id"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *site = json_object_get(object, site_keys[i]);
        if (site && !json_is_string(site)) {
            snprintf(error, error_size, "%s: must be a string (leave it out: the agent sets it)",
                     site_keys[i]);
            return ASY_EINVAL;
        }
        if (site && strcmp(json_string_value(site), self->site_id)) {
            char shown[64 + 4];
            snprintf(error, error_size,
                     "%s: \"%s\" is not this agent's site \"%s\" (leave it out: the agent "
                     "sets it)",
                     site_keys[i],
                     asy_nhs_number_shown(json_string_value(site), 64, shown, sizeof shown),
                     self->site_id);
            return ASY_EINVAL;
        }
    }
    return 0;
}

/* Validates the event as the centre will. Returns 0, ASY_ENOMEM, or ASY_EINVAL (counted as
   refused) with error set. */
static int s_validate(asy_submitter_t *self, asy_event_t *event, char *error, size_t error_size)
{
    /* Validate with a provisional seq so that a refused event never takes a seq: the append
       in s_add stamps the real one. Validation does not look at the seq's value. */
    int rc =
        asy_event_stamp(event, self->site_id, "provisional", asy_outbox_epoch(self->outbox), 1);
    if (rc != 0) {
        snprintf(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    asy_check_t why = {0};
    if (asy_event_validate(event, &why) != 0) {
        /* The codec's "no event body" speaks of the wire; in JSON the body is a key named
           after the kind, and JSON gives no unknown field numbers, so say which key is due. */
        if (why.code == ASY_CODE_EVENT_UNKNOWN_KIND)
            snprintf(error, error_size,
                     "body: missing (one event kind as a key, e.g. referralReceived, "
                     "contactMade, activityLogged)");
        else
            snprintf(error, error_size, "%s", why.reason[0] ? why.reason : asy_code_name(why.code));
        self->rejected++;
        return ASY_EINVAL;
    }
    return 0;
}

static int s_add(asy_submitter_t *self, json_t *object, char *error, size_t error_size)
{
    s_normalise(object);
    if (s_check_site(self, object, error, error_size) != 0) {
        self->rejected++;
        return ASY_EINVAL;
    }
    int rc = asy_pseudonym_apply(self->key, self->site_id, object, error, error_size);
    if (rc != 0) {
        self->rejected++;
        return ASY_EINVAL;
    }
    char path[256] = "";
    if (s_identifier_in_text(object, path, sizeof path)) {
        snprintf(error, error_size,
                 "%s: holds what reads as an NHS number (ten digits with a valid check digit); "
                 "an identifier goes in nhsNumber, where it is pseudonymised, never in free text",
                 path);
        self->rejected++;
        return ASY_EINVAL;
    }
    asy_event_t *event = NULL;
    rc = asy_event_from_json(object, &event, error, error_size);
    if (rc != 0) {
        self->rejected++;
        return rc == ASY_ENOMEM ? ASY_ENOMEM : ASY_EINVAL;
    }
    rc = s_validate(self, event, error, error_size);
    if (rc != 0) {
        asy_event_destroy(&event);
        return rc;
    }
    uint64_t seq = 0;
    rc = asy_outbox_append(self->outbox, event, &seq);
    asy_event_destroy(&event);
    if (rc == 0)
        self->stored++;
    else if (rc == ASY_EEXIST) {
        self->duplicates++;
        snprintf(error, error_size, "%s", asy_outbox_errmsg(self->outbox));
    } else {
        if (rc == ASY_EINVAL)
            self->rejected++; /* too large to send */
        snprintf(error, error_size, "%s", asy_outbox_errmsg(self->outbox));
    }
    return rc;
}

int asy_submitter_add(asy_submitter_t *self, json_t *object, char *error, size_t error_size)
{
    int rc = s_add(self, object, error, error_size);
    if (rc == ASY_EINVAL) {
        /* a refusal may quote what it refused (an id, a site, a value): never an NHS number */
        char masked[1024];
        asy_nhs_number_mask(error, masked, sizeof masked);
        snprintf(error, error_size, "%s", masked);
    }
    return rc;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-agent [common options] submit [--] [FILE|-]\n"
            "\n"
            "Stores case events, one JSON object per line, in the outbox. Identifiers are\n"
            "replaced by pseudonyms before anything is stored: nhsNumber and personRef become\n"
            "personKey, caseRef becomes caseId. Blank lines and lines starting with # are\n"
            "skipped. Each refused line is reported on stderr as FILE:LINE: field: reason.\n"
            "Reads standard input when FILE is - or absent. An eventId seen before counts\n"
            "as a duplicate; one seen before with other content is refused (a correction\n"
            "needs its own eventId). A siteId other than this agent's site is refused, and\n"
            "so is an event whose free text (a referrer, a ward, a goal) holds an NHS number.\n"
            "\n"
            "Exit status: 0 all stored (duplicates included), 1 fatal error (nothing more\n"
            "stored; the summary says from which line to submit again), 2 usage error,\n"
            "3 some lines refused (the others were stored), 130 or 143 interrupted by\n"
            "SIGINT or SIGTERM (what was read is stored; the summary says from which line\n"
            "to submit again).\n");
}

/* True if the line holds only white space or starts (after white space) with '#'. */
static bool s_skip_line(const char *line)
{
    while (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\n')
        line++;
    return *line == '\0' || *line == '#';
}

int asy_submitter_open(const asy_agent_config_t *config, asy_pseudonym_key_t *key,
                       asy_outbox_t **outbox)
{
    char error[512];
    if (!config->key_file[0]) {
        asy_error("no consortium key: set key_file in the agent section or pass --key-file");
        return ASY_ECONFIG;
    }
    int rc = asy_pseudonym_key_load(config->key_file, key, error, sizeof error);
    if (rc != 0) {
        asy_error("%s", error);
        return rc;
    }
    *outbox = asy_outbox_open(config->outbox_path, config->agent_id, config->site_id, error,
                              sizeof error);
    if (!*outbox) {
        asy_error("cannot open the outbox: %s", error);
        return ASY_EDB;
    }
    return 0;
}

/* A SIGINT or SIGTERM during a submit or an import: the lines or rows read so far are
   committed and the run ends saying where to resume (without it the operator could not know,
   and submitting the whole input again would store its first part twice). */
static volatile sig_atomic_t s_signal;

static void s_on_signal(int signo)
{
    s_signal = signo;
}

void asy_interrupt_catch(struct sigaction saved[2])
{
    struct sigaction on_signal = {.sa_handler = s_on_signal}; /* no SA_RESTART */
    sigemptyset(&on_signal.sa_mask);
    s_signal = 0;
    sigaction(SIGINT, &on_signal, &saved[0]);
    sigaction(SIGTERM, &on_signal, &saved[1]);
}

void asy_interrupt_release(const struct sigaction saved[2])
{
    sigaction(SIGINT, &saved[0], NULL);
    sigaction(SIGTERM, &saved[1], NULL);
}

int asy_interrupted(void)
{
    return s_signal;
}

bool asy_input_idle(FILE *file)
{
    /* lines already in stdio's buffer are ready (glibc's FILE: read pointer before its end) */
    if (file->_IO_read_ptr < file->_IO_read_end)
        return false;
    struct pollfd ready = {.fd = fileno(file), .events = POLLIN};
    return poll(&ready, 1, 0) == 0;
}

/* Whether every key of a path that asy_json_path_at wrote ("a.b[2].c") is a field of the
   event, or one of submit's identifier keys at its top. A line broken by a syntax error
   names its path only then: the walker takes a string where a key belongs for the key, and
   that string may be a value typed there, a name say, which no message may echo. */
static bool s_known_path(const char *path)
{
    static const char *const identifiers[] = {"caseRef",   "case_ref",  "personRef",
                                              "person_ref", "nhsNumber", "nhs_number"};
    const ProtobufCMessageDescriptor *desc = &advsync__v1__event__descriptor;
    bool top = true;
    for (const char *p = path; *p;) {
        if (*p == '[' || *p == '.') {
            const char *next = *p == '[' ? strchr(p, ']') : p;
            if (!next)
                return false;
            p = next + 1;
            continue;
        }
        char key[128];
        size_t length = strcspn(p, ".[");
        if (!desc || length >= sizeof key)
            return false;
        memcpy(key, p, length);
        key[length] = '\0';
        p += length;
        bool identifier = false;
        for (size_t i = 0; top && i < sizeof identifiers / sizeof identifiers[0]; i++)
            identifier |= strcmp(key, identifiers[i]) == 0;
        top = false;
        const ProtobufCFieldDescriptor *field = identifier ? NULL : asy_json_find_field(desc, key);
        if (!identifier && !field)
            return false;
        desc = field && field->type == PROTOBUF_C_TYPE_MESSAGE ? field->descriptor : NULL;
    }
    return true;
}

/* Reports a line that is not a JSON object as FILE:LINE: column N: reason. jansson reads the
   line as a whole text: where it ran out it says "end of file" and gives no column (or the
   next line's), which for one line of a file means its end, one past its last character. */
static void s_report_not_json(const char *name, unsigned long number, const char *line,
                              json_t *object, const json_error_t *json_error)
{
    if (object) {
        fprintf(stderr, "%s:%lu: not a JSON object\n", name, number);
        return;
    }
    char text[sizeof json_error->text];
    snprintf(text, sizeof text, "%s", json_error->text);
    char *end_of_file = strstr(text, "end of file");
    if (end_of_file)
        memcpy(end_of_file, "end of line", strlen("end of line"));
    if (strstr(text, "JSON_ALLOW_NUL")) /* jansson names its own flag */
        snprintf(text, sizeof text, "a \\u0000 (NUL) character is not allowed in text");
    /* a byte order mark inside the file (two files joined with cat): invisible in the line */
    if (!strncmp(line, "\xEF\xBB\xBF", 3) && number > 1)
        snprintf(text, sizeof text,
                 "a byte order mark (U+FEFF) starts this line: files joined "
                 "with cat? Remove it");
    /* jansson quotes the token it stopped at: punctuation helps, but a word or a number may be
       a name or an NHS number typed without quotes, and the column already says where */
    char *near = strstr(text, " near '");
    for (const char *c = near ? near + strlen(" near '") : ""; *c; c++)
        if (isalnum((unsigned char)*c) || ((unsigned char)*c & 0x80)) {
            *near = '\0';
            break;
        }
    /* name the field the parser stopped in or just after (jansson gives none; its position is
       where it stopped: the end of a duplicate key, of a number too big, of the token it could
       not take), so that a broken line says where as FILE:LINE: field: reason does; the text
       before a syntax error is well-formed, so the path up to there is the line's. A
       duplicate key and a number too big are keys for sure; after a syntax error only a path
       of the event's own fields is named (s_known_path). */
    char path[256], shown[64 + 4], named[64 + 8] = "";
    bool of_a_key = !strncmp(text, "duplicate object key", 20) || !strncmp(text, "too big", 7);
    if (json_error->position > 0 &&
        asy_json_path_at(line, (size_t)json_error->position, path, sizeof path) &&
        (of_a_key || s_known_path(path)))
        snprintf(named, sizeof named, "%s: ", asy_nhs_number_shown(path, 64, shown, sizeof shown));
    int column = json_error->column;
    if (strstr(json_error->text, "near end of file")) {
        column = 1;
        for (const char *p = line; *p && *p != '\r' && *p != '\n'; p++)
            column += ((unsigned char)*p & 0xc0) != 0x80; // jansson counts characters
    }
    /* a CR inside the line: lines that end in CR alone (classic Mac OS) all read as one */
    const char *cr = strchr(line, '\r');
    const char *hint = cr && cr[1] && cr[1] != '\n'
                           ? " (the lines end in CR alone: save the file with LF or CRLF line ends)"
                           : "";
    if (column > 0)
        fprintf(stderr, "%s:%lu: column %d: %snot valid JSON: %s%s\n", name, number, column,
                named, text, hint);
    else
        fprintf(stderr, "%s:%lu: %snot valid JSON: %s%s\n", name, number, named, text, hint);
}

/* The JSON object of one line of input (caller owns), or NULL for a line to skip (blank or
   a comment) or, with *refused set, one refused (said as FILE:LINE: ...). */
static json_t *s_parse_line(const char *name, unsigned long number, const char *line, size_t length,
                            bool *refused)
{
    *refused = false;
    const char *nul = memchr(line, '\0', length);
    if (nul) {
        /* the JSON reader would stop there and take the rest of the line as gone */
        fprintf(stderr, "%s:%lu: column %ld: a NUL byte: the line is not text\n", name, number,
                (long)(nul - line) + 1);
        *refused = true;
        return NULL;
    }
    // a UTF-8 byte order mark (Windows editors, Excel exports) is not part of the first line
    const char *text = number == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0 ? line + 3 : line;
    if (s_skip_line(text))
        return NULL;
    json_error_t json_error;
    json_t *object = json_loads(text, JSON_REJECT_DUPLICATES, &json_error);
    if (!object || !json_is_object(object)) {
        s_report_not_json(name, number, text, object, &json_error);
        json_decref(object);
        *refused = true;
        return NULL;
    }
    return object;
}

/* Ends the lines: a read error is said, the open transaction committed (or rolled back after
   an error, which is said). Returns rc, or the error that came at the end. */
static int s_finish_lines(asy_submitter_t *submitter, FILE *file, const char *name, bool open,
                          int rc)
{
    if (rc == 0 && ferror(file) && !s_signal) {
        fprintf(stderr, "%s: read error: %s\n", name, strerror(errno));
        rc = ASY_EIO;
    }
    if (open && rc == 0)
        rc = asy_outbox_commit(submitter->outbox);
    if (rc != 0) {
        if (rc != ASY_EIO) /* a read error has said so itself */
            asy_error("%s", asy_outbox_errmsg(submitter->outbox));
        if (open)
            asy_outbox_rollback(submitter->outbox);
    }
    return rc;
}

/* Reads JSON lines from file into the submitter; name is for messages. Returns 0, or
   ASY_EDB / ASY_EIO / ASY_ENOMEM on a fatal error (after reporting it). *committed counts
   the events stored by committed transactions, *through the last line whose event is stored
   or refused for good (when an error stops the run, the input after it was not stored).
   Lines go in transactions of up to S_LINES_PER_TRANSACTION, cut short whenever the input
   has nothing more ready. */
static int s_submit_lines(asy_submitter_t *submitter, FILE *file, const char *name,
                          uint64_t *committed, unsigned long *through)
{
    char *line = NULL;
    size_t capacity = 0;
    unsigned long number = 0;
    int pending = 0;
    bool open = false;
    int rc = 0;
    while (rc == 0 && !s_signal) {
        if (open && (pending >= S_LINES_PER_TRANSACTION || asy_input_idle(file))) {
            open = false;
            pending = 0;
            if ((rc = asy_outbox_commit(submitter->outbox)) != 0)
                break;
            *committed = submitter->stored;
            *through = number;
        }
        ssize_t length = getline(&line, &capacity, file);
        if (length < 0 || s_signal)
            break; /* a line read as the signal came is not taken: it may be cut short */
        number++;
        bool refused;
        json_t *object = s_parse_line(name, number, line, (size_t)length, &refused);
        if (!object) {
            submitter->rejected += refused;
            if (refused && !open)
                *through = number;
            continue;
        }
        if (!open && (rc = asy_outbox_begin(submitter->outbox)) == 0)
            open = true;
        if (rc != 0) { /* the outbox refused a transaction (re-issued meanwhile): said below */
            json_decref(object);
            break;
        }
        char error[512] = "";
        int added = asy_submitter_add(submitter, object, error, sizeof error);
        json_decref(object);
        if (added == ASY_EINVAL)
            fprintf(stderr, "%s:%lu: %s\n", name, number, error);
        else if (added != 0 && added != ASY_EEXIST) {
            if (*error)
                fprintf(stderr, "%s:%lu: %s\n", name, number, error);
            rc = added;
        }
        pending++;
    }
    free(line);
    rc = s_finish_lines(submitter, file, name, open, rc);
    if (rc == 0) {
        *committed = submitter->stored;
        *through = number;
    }
    return rc;
}

/* Reads the command's arguments: *path is the input file, or NULL for stdin. Returns -1 to
   go on, or the exit status (0 after --help, 2 after a usage error, said). */
static int s_parse_args(int argc, char **argv, const char **path)
{
    *path = NULL;
    bool options = true; /* until a "--": after it, FILE may start with '-' */
    for (int i = 1; i < argc; i++) {
        if (options && strcmp(argv[i], "--") == 0) {
            options = false;
            continue;
        }
        if (options && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            s_usage(stdout);
            return 0;
        }
        if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "advsync-agent submit: unknown option %s\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
        if (*path) {
            fprintf(stderr, "advsync-agent submit: one FILE at most\n");
            s_usage(stderr);
            return 2;
        }
        *path = argv[i];
    }
    return -1;
}

/* Says how the run ended (rc: s_submit_lines's, which stored committed events from lines
   1-through) and returns the exit status. */
static int s_summary(const asy_submitter_t *submitter, int rc, uint64_t committed,
                     unsigned long through)
{
    if (rc == 0 && s_signal) {
        printf("interrupted (%s): stored %llu, from lines 1-%lu; the input from line %lu on "
               "was not stored (submit it from there)\n",
               s_signal == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)committed, through,
               through + 1);
        return 128 + s_signal; /* main() then dies of the signal itself */
    }
    if (rc != 0) {
        /* lines without an eventId get a new one each time: submitting the whole input again
           would store its first part twice */
        printf("stopped by an error: stored %llu, from lines 1-%lu; the input from line %lu "
               "on was not stored (submit it from there)\n",
               (unsigned long long)committed, through, through + 1);
        return 1;
    }
    printf("stored %llu, duplicates %llu, rejected %llu\n", (unsigned long long)committed,
           (unsigned long long)submitter->duplicates, (unsigned long long)submitter->rejected);
    return submitter->rejected ? 3 : 0;
}

int asy_cmd_submit(const asy_agent_config_t *config, int argc, char **argv)
{
    const char *path;
    int status = s_parse_args(argc, argv, &path);
    if (status >= 0)
        return status;
    bool from_stdin = !path || strcmp(path, "-") == 0;
    struct stat info;
    if (!from_stdin && stat(path, &info) == 0 && S_ISDIR(info.st_mode)) {
        asy_error("cannot read %s: it is a folder, not a file of JSON lines", path);
        return 1;
    }
    FILE *file = from_stdin ? stdin : fopen(path, "r");
    if (!file) {
        asy_error("cannot read %s: %s", path, strerror(errno));
        return 1;
    }
    asy_pseudonym_key_t key;
    asy_outbox_t *outbox = NULL;
    if (asy_submitter_open(config, &key, &outbox) != 0) {
        if (!from_stdin)
            fclose(file);
        return 1;
    }
    asy_submitter_t submitter = {.outbox = outbox, .key = &key, .site_id = config->site_id};
    uint64_t committed = 0;
    unsigned long through = 0;
    struct sigaction saved[2];
    asy_interrupt_catch(saved);
    int rc = s_submit_lines(&submitter, file, from_stdin ? "stdin" : path, &committed, &through);
    asy_interrupt_release(saved);
    if (!from_stdin)
        fclose(file);
    asy_outbox_destroy(&outbox);
    return s_summary(&submitter, rc, committed, through);
}
