/*  db.c: libpq wrapper. See db.h. Every PGresult is cleared on every path before a function
    returns, and after an error the connection is drained so the next command starts clean.  */
#include "db.h"
#include "log.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *name;
    char *sql;
    int nparams;
    unsigned prepared_in; /* generation it was prepared in; 0 = never */
} s_statement_t;

struct asy_db {
    PGconn *conn;
    bool server_closing; /* a FATAL arrived outside any command: the backend is ending */
    char label[32];      /* "worker 1: " in db.c's own log lines, or "" */
    unsigned generation;
    s_statement_t *statements;
    size_t statement_count;
    char errmsg[1024];
};

/* Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01. */
#define S_PG_EPOCH_US INT64_C(946684800000000)

/* Notices, and errors the server sends while no command runs: a backend being terminated
   (pg_terminate_backend, shutdown, crash of another backend) says FATAL before it closes. */
static void s_notice(void *arg, const PGresult *res)
{
    asy_db_t *self = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *message = PQresultErrorMessage(res);
    if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0))
        self->server_closing = true;
    asy_debug("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

static void s_set_error(asy_db_t *self, const char *state, const char *message)
{
    if (!message || !*message)
        message = "unknown error";
    snprintf(self->errmsg, sizeof self->errmsg, "%s%s%.*s", state ? state : "", state ? ": " : "",
             (int)strcspn(message, "\n"), message);
}

/* Retry-worthy: the connection is gone or the server gave up the transaction for a
   transient reason. */
static bool s_transient(const char *state)
{
    if (!state)
        return false;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
           strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0;
}

/* Reads and discards whatever results are still pending (ending a COPY that is half open). */
static void s_drain(asy_db_t *self)
{
    PGresult *res;
    for (int guard = 0; guard < 64 && (res = PQgetResult(self->conn)) != NULL; guard++) {
        ExecStatusType status = PQresultStatus(res);
        PQclear(res);
        if (status == PGRES_COPY_IN) {
            if (PQputCopyEnd(self->conn, "aborted by client") < 0)
                break;
        } else if (status == PGRES_COPY_OUT) {
            char *buffer = NULL;
            while (PQgetCopyData(self->conn, &buffer, 0) > 0)
                PQfreemem(buffer);
        } else if (status == PGRES_COPY_BOTH) {
            break;
        }
    }
}

/* Records the failure carried by res (may be NULL), clears res, drains, and classifies. */
static int s_fail(asy_db_t *self, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *message = res ? PQresultErrorMessage(res) : NULL;
    if (!message || !*message)
        message = PQerrorMessage(self->conn);
    s_set_error(self, state, message);
    /* no SQLSTATE: the error is libpq's, not the server's ("server closed the connection
       unexpectedly": PQstatus still says OK until the next call), so the connection is lost,
       not the statement refused */
    bool transient = s_transient(state) || !state || !*state;
    if (res)
        PQclear(res);
    s_drain(self);
    if (transient || PQstatus(self->conn) != CONNECTION_OK)
        return ASY_ERETRY;
    return ASY_EDB;
}

/* ----------------------------------------------------------------------------------------------
   Conninfo text for messages: the secrets found (leniently: the text may be one libpq refuses)
   are the values of every key containing "pass" in any case (password, PASSWORD, passwd; also
   percent-encoded in a URI query) and a URI's userinfo after its ':'. Over-masking is the safe
   side. */

#define S_SECRETS 16

typedef struct {
    const char *at;
    size_t length;
} s_span_t;

/* Length of the value at text: through the closing quote (backslash escapes) if quoted, else
   up to a blank (or '&' in a URI query), backslash escapes kept together. */
static size_t s_value_length(const char *text, bool query)
{
    size_t n = 0;
    if (*text == '\'') {
        n = 1;
        while (text[n] && text[n] != '\'')
            n += text[n] == '\\' && text[n + 1] ? 2 : 1;
        return text[n] ? n + 1 : n;
    }
    while (text[n] && !isspace((unsigned char)text[n]) && !(query && text[n] == '&'))
        n += text[n] == '\\' && text[n + 1] ? 2 : 1;
    return n;
}

/* True if key[0..length) names a secret: contains "pass" in any case, percent-decoded. */
static bool s_secret_key(const char *key, size_t length)
{
    char decoded[64];
    size_t used = 0;
    for (size_t i = 0; i < length && used + 1 < sizeof decoded; i++) {
        if (key[i] == '%' && i + 2 < length && isxdigit((unsigned char)key[i + 1]) &&
            isxdigit((unsigned char)key[i + 2])) {
            char hex[3] = {key[i + 1], key[i + 2], '\0'};
            decoded[used++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            decoded[used++] = key[i];
        }
    }
    decoded[used] = '\0';
    for (size_t i = 0; i + 4 <= used; i++)
        if (strncasecmp(decoded + i, "pass", 4) == 0)
            return true;
    return false;
}

/* Adds a secret; the last place left takes the rest of the text (more secrets than places:
   everything after is masked). */
static void s_add_span(s_span_t *spans, size_t *count, const char *at, size_t length)
{
    if (length == 0 || *count == S_SECRETS)
        return;
    if (*count == S_SECRETS - 1)
        length = strlen(at);
    spans[(*count)++] = (s_span_t){at, length};
}

/* Finds the secrets of conninfo, in order of position. Returns their number. */
static size_t s_secrets(const char *conninfo, s_span_t spans[S_SECRETS])
{
    size_t count = 0;
    const char *p = conninfo, *query = NULL;
    if (strncasecmp(p, "postgresql://", 13) == 0 || strncasecmp(p, "postgres://", 11) == 0) {
        /* userinfo: up to the last '@' (a password with a '/', '?' or '@' in it is still
           inside), its secret after the first ':' */
        const char *authority = strstr(p, "//") + 2;
        const char *at = strrchr(authority, '@');
        const char *colon = at ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
        if (colon)
            s_add_span(spans, &count, colon + 1, (size_t)(at - colon - 1));
        query = strchr(at ? at : authority, '?');
        for (const char *q = query; q && *q;) {
            q++; /* past '?' or '&' */
            size_t key = strcspn(q, "=&");
            if (q[key] == '=') {
                size_t value = s_value_length(q + key + 1, true);
                if (s_secret_key(q, key))
                    s_add_span(spans, &count, q + key + 1, value);
                q += key + 1 + value;
            } else {
                q += key;
            }
            q = *q == '&' ? q : NULL;
        }
        return count;
    }
    /* keyword = value pairs, separated by blanks (any isspace, as libpq), or not at all after
       a quoted value */
    static const char blanks[] = " \t\n\r\f\v";
    while (*(p += strspn(p, blanks))) {
        size_t key = 0;
        while (p[key] && p[key] != '=' && !isspace((unsigned char)p[key]))
            key++;
        const char *q = p + key;
        q += strspn(q, blanks);
        if (*q != '=') { /* a word without '=': on to the next one */
            p += key;
            continue;
        }
        q++;
        q += strspn(q, blanks);
        size_t value = s_value_length(q, false);
        bool secret = s_secret_key(p, key);
        if (secret && *q != '\'') {
            /* an unquoted password with blanks in it (the likeliest reason the text is
               refused): the words after it that are no key=value belong to it */
            for (;;) {
                const char *next = q + value;
                const char *word = next + strspn(next, blanks);
                size_t length = strcspn(word, blanks);
                if (!*word || memchr(word, '=', length))
                    break;
                value = (size_t)(word + length - q);
            }
        }
        if (secret) {
            s_add_span(spans, &count, q, value);
            if (*q == '\'' && value >= 2) /* as a message may quote it: without its quotes */
                s_add_span(spans, &count, q + 1, value - (q[value - 1] == '\'' ? 2 : 1));
            else if (*q != '\'') /* or one word of it ("missing \"=\" after WORD") */
                for (const char *word = q; word < q + value;) {
                    size_t length = strcspn(word, blanks);
                    if ((size_t)(word - q) + length > value)
                        length = value - (size_t)(word - q);
                    if (length < value)
                        s_add_span(spans, &count, word, length);
                    word += length;
                    word += strspn(word, blanks);
                }
        }
        p = q + value;
    }
    return count;
}

/* Copies text into out (size > 0) with every occurrence of each secret's text replaced by
   "***". With from_spans, the spans are positions in text itself (the conninfo); otherwise
   their text is looked for (libpq's message, which quotes parts of the conninfo). */
static void s_mask(const char *text, const s_span_t *spans, size_t count, bool from_spans,
                   char *out, size_t size)
{
    size_t used = 0;
    for (const char *p = text; *p && used + 1 < size;) {
        size_t skip = 0;
        for (size_t i = 0; i < count && !skip; i++)
            if (from_spans ? p == spans[i].at : strncmp(p, spans[i].at, spans[i].length) == 0)
                skip = spans[i].length;
        if (!skip) {
            out[used++] = *p++;
            continue;
        }
        for (const char *m = "***"; *m && used + 1 < size; m++)
            out[used++] = *m;
        p += skip;
    }
    out[used] = '\0';
}

char *asy_db_conninfo_redact(const char *conninfo, char *out, size_t out_size)
{
    if (!out_size)
        return out;
    s_span_t spans[S_SECRETS];
    const char *text = conninfo ? conninfo : "";
    s_mask(text, spans, s_secrets(text, spans), true, out, out_size);
    return out;
}

bool asy_db_conninfo_check(const char *conninfo, char *why, size_t why_size)
{
    char *message = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &message);
    PQconninfoFree(parsed);
    if (!parsed) {
        /* libpq's message quotes parts of the text, a password among them */
        const char *text = message ? message : "out of memory";
        char line[512], masked[512];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(text, "\n"), text);
        s_span_t spans[S_SECRETS];
        s_mask(line, spans, s_secrets(conninfo, spans), false, masked, sizeof masked);
        snprintf(why, why_size, "is not a libpq conninfo: %s", masked);
        PQfreemem(message);
    }
    return parsed != NULL;
}

asy_db_t *asy_db_connect(const char *conninfo, const char *application_name, char *error,
                         size_t error_size)
{
    asy_db_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    /* Defaults first, the caller's conninfo last: with expand_dbname a later keyword wins, so
       the operator can override any of them. Without time-outs and keepalives a PostgreSQL
       host that silently drops packets (an old primary after fail-over) would block the
       single-threaded caller for many minutes. */
    const char *keywords[] = {"connect_timeout", "keepalives", "keepalives_idle",
                              "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                              "application_name", "dbname", NULL};
    const char *values[] = {"5", "1", "10", "5", "3", "30000",
                            application_name ? application_name : "advsync", conninfo, NULL};
    self->conn = PQconnectdbParams(keywords, values, 1);
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        snprintf(error, error_size, "cannot connect to PostgreSQL: %.*s",
                 self->conn ? (int)strcspn(PQerrorMessage(self->conn), "\n") : 13,
                 self->conn ? PQerrorMessage(self->conn) : "out of memory");
        asy_db_destroy(&self);
        return NULL;
    }
    PQsetNoticeReceiver(self->conn, s_notice, self);
    self->generation = 1;
    return self;
}

void asy_db_destroy(asy_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    asy_db_t *self = *self_p;
    if (self->conn)
        PQfinish(self->conn);
    for (size_t i = 0; i < self->statement_count; i++) {
        free(self->statements[i].name);
        free(self->statements[i].sql);
    }
    free(self->statements);
    free(self);
    *self_p = NULL;
}

const char *asy_db_errmsg(const asy_db_t *self)
{
    return self ? self->errmsg : "no database";
}

bool asy_db_connected(const asy_db_t *self)
{
    return self && self->conn && PQstatus(self->conn) == CONNECTION_OK;
}

bool asy_db_alive(asy_db_t *self)
{
    if (!asy_db_connected(self))
        return false;
    if (PQtransactionStatus(self->conn) != PQTRANS_IDLE)
        return true;
    /* A backend that exits may send its FATAL message before closing: the first read takes
       the message (PQnotifies parses it, reporting it to the notice receiver), the second
       meets the end of the stream, which marks the connection bad. */
    for (int read = 0; read < 2 && PQstatus(self->conn) == CONNECTION_OK; read++) {
        if (!PQconsumeInput(self->conn))
            break;
        PGnotify *notify;
        while ((notify = PQnotifies(self->conn)) != NULL)
            PQfreemem(notify);
    }
    if (PQstatus(self->conn) == CONNECTION_OK && !self->server_closing)
        return true;
    s_set_error(self, NULL,
                self->server_closing ? "the server is ending this session (FATAL while idle)"
                                     : PQerrorMessage(self->conn));
    asy_info("%sPostgreSQL closed an idle connection (%s); reconnecting", self->label,
             self->errmsg);
    return false;
}

void asy_db_set_label(asy_db_t *self, const char *label)
{
    snprintf(self->label, sizeof self->label, "%s%s", label ? label : "",
             label && *label ? ": " : "");
}

unsigned asy_db_generation(const asy_db_t *self)
{
    return self->generation;
}

int asy_db_reset(asy_db_t *self)
{
    PQreset(self->conn);
    self->server_closing = false;
    if (PQstatus(self->conn) != CONNECTION_OK) {
        s_set_error(self, NULL, PQerrorMessage(self->conn));
        return ASY_ERETRY;
    }
    self->generation++;
    self->errmsg[0] = '\0';
    return 0;
}

static s_statement_t *s_statement(asy_db_t *self, const char *name)
{
    for (size_t i = 0; i < self->statement_count; i++)
        if (strcmp(self->statements[i].name, name) == 0)
            return &self->statements[i];
    return NULL;
}

int asy_db_prepare(asy_db_t *self, const char *name, const char *sql, int nparams)
{
    if (s_statement(self, name)) {
        s_set_error(self, NULL, "statement name already registered");
        return ASY_EINVAL;
    }
    s_statement_t *grown =
        realloc(self->statements, (self->statement_count + 1) * sizeof *self->statements);
    if (!grown)
        return ASY_ENOMEM;
    self->statements = grown;
    s_statement_t *statement = &grown[self->statement_count];
    *statement = (s_statement_t){strdup(name), strdup(sql), nparams, 0};
    if (!statement->name || !statement->sql) {
        free(statement->name);
        free(statement->sql);
        return ASY_ENOMEM;
    }
    self->statement_count++;
    return 0;
}

/* Prepares the statement on this connection if it is not yet. */
static int s_ensure_prepared(asy_db_t *self, s_statement_t *statement)
{
    if (statement->prepared_in == self->generation)
        return 0;
    PGresult *res =
        PQprepare(self->conn, statement->name, statement->sql, statement->nparams, NULL);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return s_fail(self, res);
    PQclear(res);
    statement->prepared_in = self->generation;
    return 0;
}

/* Runs one command; on success *out holds its result (caller clears). */
static int s_run(asy_db_t *self, const char *sql_or_name, bool prepared, int nparams,
                 const char *const *params, PGresult **out)
{
    *out = NULL;
    if (!asy_db_connected(self)) {
        s_set_error(self, NULL, "connection to PostgreSQL lost");
        return ASY_ERETRY;
    }
    PGresult *res;
    if (prepared) {
        s_statement_t *statement = s_statement(self, sql_or_name);
        if (!statement) {
            s_set_error(self, NULL, "no such prepared statement");
            return ASY_ENOTFOUND;
        }
        int rc = s_ensure_prepared(self, statement);
        if (rc != 0)
            return rc;
        res = PQexecPrepared(self->conn, sql_or_name, nparams, params, NULL, NULL, 0);
    } else if (nparams == 0) {
        res = PQexec(self->conn, sql_or_name);
    } else {
        res = PQexecParams(self->conn, sql_or_name, nparams, NULL, params, NULL, NULL, 0);
    }
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        return s_fail(self, res);
    *out = res;
    return 0;
}

static uint64_t s_affected(PGresult *res)
{
    const char *tuples = PQcmdTuples(res);
    return tuples && *tuples ? strtoull(tuples, NULL, 10) : 0;
}

static int s_exec(asy_db_t *self, const char *sql_or_name, bool prepared, int nparams,
                  const char *const *params, uint64_t *affected)
{
    PGresult *res = NULL;
    int rc = s_run(self, sql_or_name, prepared, nparams, params, &res);
    if (rc != 0)
        return rc;
    if (affected)
        *affected = s_affected(res);
    PQclear(res);
    return 0;
}

int asy_db_exec(asy_db_t *self, const char *sql, int nparams, const char *const *params,
                uint64_t *affected)
{
    return s_exec(self, sql, false, nparams, params, affected);
}

int asy_db_exec_prepared(asy_db_t *self, const char *name, int nparams, const char *const *params,
                         uint64_t *affected)
{
    return s_exec(self, name, true, nparams, params, affected);
}

int asy_db_query_row(asy_db_t *self, const char *sql_or_name, bool prepared, int nparams,
                     const char *const *params, asy_db_row_t *row)
{
    memset(row, 0, sizeof *row);
    PGresult *res = NULL;
    int rc = s_run(self, sql_or_name, prepared, nparams, params, &res);
    if (rc != 0)
        return rc;
    if (PQntuples(res) < 1) {
        PQclear(res);
        s_set_error(self, NULL, "query returned no row");
        return ASY_ENOTFOUND;
    }
    int columns = PQnfields(res);
    if (columns > ASY_DB_ROW_MAX) {
        PQclear(res);
        s_set_error(self, NULL, "query returned too many columns");
        return ASY_EINVAL;
    }
    for (int c = 0; c < columns; c++) {
        if (PQgetisnull(res, 0, c))
            continue;
        row->values[c] = strdup(PQgetvalue(res, 0, c));
        if (!row->values[c]) {
            PQclear(res);
            asy_db_row_release(row);
            return ASY_ENOMEM;
        }
    }
    row->columns = columns;
    PQclear(res);
    return 0;
}

int asy_db_query_each(asy_db_t *self, const char *sql_or_name, bool prepared, int nparams,
                      const char *const *params, asy_db_row_fn *fn, void *arg)
{
    PGresult *res = NULL;
    int rc = s_run(self, sql_or_name, prepared, nparams, params, &res);
    if (rc != 0)
        return rc;
    int rows = PQntuples(res), columns = PQnfields(res);
    const char **values = calloc(columns ? (size_t)columns : 1, sizeof *values);
    if (!values) {
        PQclear(res);
        return ASY_ENOMEM;
    }
    for (int r = 0; rc == 0 && r < rows; r++) {
        for (int c = 0; c < columns; c++)
            values[c] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
        rc = fn(arg, columns, values);
    }
    free(values);
    PQclear(res);
    return rc;
}

void asy_db_row_release(asy_db_row_t *row)
{
    for (int c = 0; c < ASY_DB_ROW_MAX; c++) {
        free(row->values[c]);
        row->values[c] = NULL;
    }
    row->columns = 0;
}

int asy_db_begin(asy_db_t *self)
{
    return asy_db_exec(self, "BEGIN", 0, NULL, NULL);
}

int asy_db_commit(asy_db_t *self)
{
    if (asy_db_connected(self) && PQtransactionStatus(self->conn) == PQTRANS_INERROR) {
        s_set_error(self, NULL, "COMMIT of a failed transaction");
        asy_db_rollback(self);
        return ASY_EDB;
    }
    PGresult *res = NULL;
    int rc = s_run(self, "COMMIT", false, 0, NULL, &res);
    if (rc != 0)
        return rc;
    /* the server answers COMMIT of an aborted transaction with the tag ROLLBACK */
    bool rolled_back = strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
    PQclear(res);
    if (rolled_back) {
        s_set_error(self, NULL, "transaction was rolled back by the server");
        return ASY_EDB;
    }
    return 0;
}

int asy_db_rollback(asy_db_t *self)
{
    if (!asy_db_connected(self))
        return 0;
    s_drain(self);
    PGTransactionStatusType status = PQtransactionStatus(self->conn);
    if (status != PQTRANS_INTRANS && status != PQTRANS_INERROR)
        return 0;
    char kept[sizeof self->errmsg];
    memcpy(kept, self->errmsg, sizeof kept);
    int rc = asy_db_exec(self, "ROLLBACK", 0, NULL, NULL);
    if (rc != 0)
        asy_debug("ROLLBACK failed: %s", self->errmsg);
    memcpy(self->errmsg, kept, sizeof kept);
    return rc;
}

int asy_db_copy_start(asy_db_t *self, const char *copy_sql)
{
    if (!asy_db_connected(self)) {
        s_set_error(self, NULL, "connection to PostgreSQL lost");
        return ASY_ERETRY;
    }
    PGresult *res = PQexec(self->conn, copy_sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN)
        return s_fail(self, res);
    PQclear(res);
    return 0;
}

int asy_db_copy_put(asy_db_t *self, const uint8_t *data, size_t size)
{
    const size_t chunk = 1u << 30;
    while (size > 0) {
        int part = (int)(size < chunk ? size : chunk);
        if (PQputCopyData(self->conn, (const char *)data, part) != 1)
            return s_fail(self, NULL);
        data += part;
        size -= (size_t)part;
    }
    return 0;
}

int asy_db_copy_end(asy_db_t *self, uint64_t *rows)
{
    if (PQputCopyEnd(self->conn, NULL) != 1)
        return s_fail(self, NULL);
    PGresult *res = PQgetResult(self->conn);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return s_fail(self, res);
    if (rows)
        *rows = s_affected(res);
    PQclear(res);
    s_drain(self);
    return 0;
}

/* ----------------------------------------------------------------------------------------------
   Binary COPY payloads. */

struct asy_db_copy {
    uint8_t *data;
    size_t size;
    size_t capacity;
    size_t rows;
    int error;
};

static void s_append(asy_db_copy_t *self, const void *bytes, size_t size)
{
    if (self->error)
        return;
    if (self->size + size > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 4096;
        while (capacity < self->size + size)
            capacity *= 2;
        uint8_t *grown = realloc(self->data, capacity);
        if (!grown) {
            self->error = ASY_ENOMEM;
            return;
        }
        self->data = grown;
        self->capacity = capacity;
    }
    memcpy(self->data + self->size, bytes, size);
    self->size += size;
}

static void s_be16(asy_db_copy_t *self, uint16_t value)
{
    uint8_t b[2] = {(uint8_t)(value >> 8), (uint8_t)value};
    s_append(self, b, sizeof b);
}

static void s_be32(asy_db_copy_t *self, uint32_t value)
{
    uint8_t b[4] = {(uint8_t)(value >> 24), (uint8_t)(value >> 16), (uint8_t)(value >> 8),
                    (uint8_t)value};
    s_append(self, b, sizeof b);
}

static void s_be64(asy_db_copy_t *self, uint64_t value)
{
    s_be32(self, (uint32_t)(value >> 32));
    s_be32(self, (uint32_t)value);
}

asy_db_copy_t *asy_db_copy_new(void)
{
    asy_db_copy_t *self = calloc(1, sizeof *self);
    if (self)
        asy_db_copy_clear(self);
    return self;
}

void asy_db_copy_destroy(asy_db_copy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

void asy_db_copy_clear(asy_db_copy_t *self)
{
    static const uint8_t signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    self->size = 0;
    self->rows = 0;
    self->error = 0;
    s_append(self, signature, sizeof signature);
    s_be32(self, 0); /* flags */
    s_be32(self, 0); /* header extension length */
}

void asy_db_copy_row(asy_db_copy_t *self, int fields)
{
    s_be16(self, (uint16_t)fields);
    self->rows++;
}

void asy_db_copy_null(asy_db_copy_t *self)
{
    s_be32(self, UINT32_MAX); /* length -1 */
}

void asy_db_copy_bool(asy_db_copy_t *self, bool value)
{
    uint8_t b = value ? 1 : 0;
    s_be32(self, 1);
    s_append(self, &b, 1);
}

void asy_db_copy_int2(asy_db_copy_t *self, int16_t value)
{
    s_be32(self, 2);
    s_be16(self, (uint16_t)value);
}

void asy_db_copy_int4(asy_db_copy_t *self, int32_t value)
{
    s_be32(self, 4);
    s_be32(self, (uint32_t)value);
}

void asy_db_copy_int8(asy_db_copy_t *self, int64_t value)
{
    s_be32(self, 8);
    s_be64(self, (uint64_t)value);
}

void asy_db_copy_text(asy_db_copy_t *self, const char *text)
{
    if (!text) {
        asy_db_copy_null(self);
        return;
    }
    asy_db_copy_bytea(self, (const uint8_t *)text, strlen(text));
}

void asy_db_copy_bytea(asy_db_copy_t *self, const uint8_t *data, size_t size)
{
    if (size > INT32_MAX) {
        self->error = self->error ? self->error : ASY_EINVAL;
        return;
    }
    s_be32(self, (uint32_t)size);
    if (size)
        s_append(self, data, size);
}

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void asy_db_copy_uuid(asy_db_copy_t *self, const char *text)
{
    uint8_t bytes[16];
    size_t n = 0;
    for (size_t i = 0; text && text[i] && n < 16; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                break;
            continue;
        }
        int high = s_hex(text[i]), low = text[i + 1] ? s_hex(text[i + 1]) : -1;
        if (high < 0 || low < 0)
            break;
        bytes[n++] = (uint8_t)(high << 4 | low);
        i++;
    }
    if (n != 16 || !text || strlen(text) != ASY_UUID_TEXT) {
        self->error = self->error ? self->error : ASY_EINVAL;
        return;
    }
    s_be32(self, 16);
    s_append(self, bytes, sizeof bytes);
}

void asy_db_copy_timestamptz(asy_db_copy_t *self, int64_t unix_us)
{
    asy_db_copy_int8(self, unix_us - S_PG_EPOCH_US);
}

size_t asy_db_copy_rows(const asy_db_copy_t *self)
{
    return self->rows;
}

int asy_db_copy_error(const asy_db_copy_t *self)
{
    return self->error;
}

int asy_db_copy_send(asy_db_t *self, const char *copy_sql, asy_db_copy_t *payload, uint64_t *rows)
{
    if (payload->error) {
        s_set_error(self, NULL,
                    payload->error == ASY_ENOMEM ? "out of memory building COPY data"
                                                 : "malformed value in COPY data");
        return payload->error;
    }
    static const uint8_t trailer[2] = {0xff, 0xff};
    int rc = asy_db_copy_start(self, copy_sql);
    if (rc == 0)
        rc = asy_db_copy_put(self, payload->data, payload->size);
    if (rc == 0)
        rc = asy_db_copy_put(self, trailer, sizeof trailer);
    if (rc == 0)
        rc = asy_db_copy_end(self, rows);
    return rc;
}
