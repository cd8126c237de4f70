/*  db.c: libpq wrapper. See db.h. Every PGresult is cleared on every path before a function
    returns, and after an error the connection is drained so the next command starts clean.
    Conninfo checks and redaction are in db_conninfo.c, binary COPY payloads in db_copy.c.  */
#include "db_private.h"
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
    bool refused; /* the last failure carried the server's SQLSTATE */
    char errmsg[1024];
};

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

/* Sets the text asy_db_errmsg() returns (see db_private.h). */
void asy_db_set_error(asy_db_t *self, const char *state, const char *message)
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
    asy_db_set_error(self, state, message);
    /* no SQLSTATE: the error is libpq's, not the server's ("server closed the connection
       unexpectedly": PQstatus still says OK until the next call), so the connection is lost,
       not the statement refused */
    bool transient = s_transient(state) || !state || !*state;
    self->refused = state && *state;
    if (res)
        PQclear(res);
    s_drain(self);
    if (transient || PQstatus(self->conn) != CONNECTION_OK)
        return ASY_ERETRY;
    return ASY_EDB;
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

bool asy_db_server_refused(const asy_db_t *self)
{
    return self->refused;
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
    asy_db_set_error(self, NULL,
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
        asy_db_set_error(self, NULL, PQerrorMessage(self->conn));
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
        asy_db_set_error(self, NULL, "statement name already registered");
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
        asy_db_set_error(self, NULL, "connection to PostgreSQL lost");
        return ASY_ERETRY;
    }
    PGresult *res;
    if (prepared) {
        s_statement_t *statement = s_statement(self, sql_or_name);
        if (!statement) {
            asy_db_set_error(self, NULL, "no such prepared statement");
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
        asy_db_set_error(self, NULL, "query returned no row");
        return ASY_ENOTFOUND;
    }
    int columns = PQnfields(res);
    if (columns > ASY_DB_ROW_MAX) {
        PQclear(res);
        asy_db_set_error(self, NULL, "query returned too many columns");
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
        asy_db_set_error(self, NULL, "COMMIT of a failed transaction");
        self->refused = true; /* certainly not committed */
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
        asy_db_set_error(self, NULL, "transaction was rolled back by the server");
        self->refused = true;
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
        asy_db_set_error(self, NULL, "connection to PostgreSQL lost");
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
