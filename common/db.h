/*  db.h: the only code that touches libpq. One asy_db_t is one PostgreSQL connection, owned
    by one actor. PGresult never leaves db.c: query helpers copy the values out.

    Errors: every fallible call returns 0 or a negative code, and keeps the server's message
    (with its SQLSTATE) in asy_db_errmsg(). The code says what the caller can do about it:
      ASY_ERETRY  connection lost (PQstatus bad, SQLSTATE class 08, 57P01/57P02/57P03) or a
                  transient conflict (40001 serialization, 40P01 deadlock): nothing of the
                  failed transaction is kept; reconnect if asy_db_connected() is false, retry;
      ASY_EDB     anything else (syntax, constraint, ...): retrying will not help;
      ASY_ENOTFOUND  a one-row query returned no row.  */
#ifndef ASY_DB_H_INCLUDED
#define ASY_DB_H_INCLUDED

#include "asy.h"

typedef struct asy_db asy_db_t;

/* True if libpq can parse conninfo and takes the values of its sslmode, gssencmode,
   channel_binding and target_session_attrs (which libpq checks only when it connects); else
   false with why ("is not a libpq conninfo: ...", with libpq's reason, any secret it quotes
   masked as by asy_db_conninfo_redact; or "has sslmode=\"x\": libpq takes ..."). Such a
   conninfo never will connect: callers say so at once rather than retry. */
bool asy_db_conninfo_check(const char *conninfo, char *why, size_t why_size);
/* conninfo as it may be shown in a message or a log: the value of every key that contains
   "pass" in any case (password, PASSWORD, passwd; quoted or not; percent-encoded in a URI
   query) and a URI's password (`postgresql://user:SECRET@host`, up to the last '@') replaced
   by "***". Works on text libpq cannot parse too (that is when it is shown). Copies at most
   out_size - 1 bytes; returns out. */
char *asy_db_conninfo_redact(const char *conninfo, char *out, size_t out_size);

/* Connects with a libpq conninfo string; application_name (may be NULL) shows in
   pg_stat_activity. Returns NULL with the reason in error[] if the server cannot be reached. */
asy_db_t *asy_db_connect(const char *conninfo, const char *application_name, char *error,
                         size_t error_size);
/* Closes the connection and nulls *self_p; safe on NULL. */
void asy_db_destroy(asy_db_t **self_p);

/* The last error's text ("SQLSTATE: message"), or "" (borrowed). */
const char *asy_db_errmsg(const asy_db_t *self);
/* True while libpq believes the connection is usable. A server restart is noticed only by
   the next command, which then fails with ASY_ERETRY. */
bool asy_db_connected(const asy_db_t *self);
/* True if the last failed command was answered by the server with an error (a SQLSTATE);
   false if the failure was libpq's (the connection lost, no answer): then, for a COMMIT,
   the server may have committed. */
bool asy_db_server_refused(const asy_db_t *self);
/* As asy_db_connected, but an idle connection (no transaction open) is first asked whether the
   server has closed it meanwhile (a restart, an administrator's pg_terminate_backend): reads
   what is waiting on the socket without blocking or sending anything. Call it before the first
   command of a unit of work, so a connection that died while idle is reset before use instead
   of failing that work. */
bool asy_db_alive(asy_db_t *self);
/* Names the connection in the lines db.c logs itself ("worker 1", "monitor"); copied. */
void asy_db_set_label(asy_db_t *self, const char *label);
/* Counts successful connections (1 after connect, +1 per successful reset): callers that keep
   per-session state (temporary tables, SET) recreate it when this changes. */
unsigned asy_db_generation(const asy_db_t *self);
/* Reconnects (PQreset) with the same parameters. Prepared statements are prepared again on
   their next use. Returns 0 or ASY_ERETRY. */
int asy_db_reset(asy_db_t *self);

/* Runs sql with nparams text parameters (NULL entries are SQL NULL). With nparams == 0 the
   simple protocol is used, so sql may hold several statements. *affected (may be NULL)
   receives the row count of the last statement. Rows returned are discarded. */
int asy_db_exec(asy_db_t *self, const char *sql, int nparams, const char *const *params,
                uint64_t *affected);

/* Registers a named statement. It is prepared on this connection at its first use and again
   after every reset. name and sql are copied. Returns 0, ASY_ENOMEM or ASY_EINVAL (name
   already registered). */
int asy_db_prepare(asy_db_t *self, const char *name, const char *sql, int nparams);
/* Runs a registered statement; as asy_db_exec otherwise. ASY_ENOTFOUND if name is unknown. */
int asy_db_exec_prepared(asy_db_t *self, const char *name, int nparams, const char *const *params,
                         uint64_t *affected);

/* The first row of a query, copied out. values[i] is NULL for SQL NULL. */
#define ASY_DB_ROW_MAX 16
typedef struct {
    int columns;
    char *values[ASY_DB_ROW_MAX];
} asy_db_row_t;

/* Runs a query (sql text, or a registered statement when prepared is true) and copies its
   first row into *row (caller releases it with asy_db_row_release). ASY_ENOTFOUND if the
   query returned no row (row is then empty), ASY_EINVAL if it has more than ASY_DB_ROW_MAX
   columns. */
int asy_db_query_row(asy_db_t *self, const char *sql_or_name, bool prepared, int nparams,
                     const char *const *params, asy_db_row_t *row);
/* Called by asy_db_query_each for each row: values[c] is the text of column c (NULL for SQL
   NULL), borrowed for the call. Return 0 to go on, anything else to stop (that value is
   returned by asy_db_query_each). */
typedef int(asy_db_row_fn)(void *arg, int columns, const char *const *values);

/* Runs a query (as asy_db_query_row) and calls fn for every row, in order. The whole result
   is held in memory while fn runs: page big tables with a cursor (DECLARE ... FETCH n).
   Returns 0, fn's nonzero value, or the query's error code. */
int asy_db_query_each(asy_db_t *self, const char *sql_or_name, bool prepared, int nparams,
                      const char *const *params, asy_db_row_fn *fn, void *arg);

/* Frees the copied values; safe to call twice. */
void asy_db_row_release(asy_db_row_t *row);

int asy_db_begin(asy_db_t *self);
int asy_db_commit(asy_db_t *self);
/* Rolls back if a transaction is open (no-op otherwise). Keeps the error message of the
   failure that led here. Returns 0 or the rollback's own error code. */
int asy_db_rollback(asy_db_t *self);

/* COPY ... FROM STDIN: start it with the COPY statement, put bytes (any split), end it.
   On any error the COPY is aborted and the transaction is in error: roll back. */
int asy_db_copy_start(asy_db_t *self, const char *copy_sql);
int asy_db_copy_put(asy_db_t *self, const uint8_t *data, size_t size);
/* Ends the COPY; *rows (may be NULL) receives the rows the server took. */
int asy_db_copy_end(asy_db_t *self, uint64_t *rows);

/* ----------------------------------------------------------------------------------------------
   A binary COPY payload under construction (PostgreSQL's COPY BINARY format: header, tuples,
   trailer). Appending never fails loudly: the first failure (ENOMEM, a malformed UUID) sticks
   and is reported by asy_db_copy_error(); check it before sending. */
typedef struct asy_db_copy asy_db_copy_t;

asy_db_copy_t *asy_db_copy_new(void);
void asy_db_copy_destroy(asy_db_copy_t **self_p);
/* Empties the buffer and writes the header again; clears the sticky error. */
void asy_db_copy_clear(asy_db_copy_t *self);
/* Starts a tuple of fields columns; then append exactly that many values. */
void asy_db_copy_row(asy_db_copy_t *self, int fields);
void asy_db_copy_null(asy_db_copy_t *self);
void asy_db_copy_bool(asy_db_copy_t *self, bool value);
void asy_db_copy_int2(asy_db_copy_t *self, int16_t value);
void asy_db_copy_int4(asy_db_copy_t *self, int32_t value);
void asy_db_copy_int8(asy_db_copy_t *self, int64_t value);
/* text and bytea; text NULL writes SQL NULL. */
void asy_db_copy_text(asy_db_copy_t *self, const char *text);
void asy_db_copy_bytea(asy_db_copy_t *self, const uint8_t *data, size_t size);
/* A UUID from its canonical text (8-4-4-4-12 hex). Malformed text sets ASY_EINVAL. */
void asy_db_copy_uuid(asy_db_copy_t *self, const char *text);
/* The same from its 16 bytes (already parsed, e.g. asy_event_summary_t.event_uuid). */
void asy_db_copy_uuid_bytes(asy_db_copy_t *self, const uint8_t bytes[16]);
/* A timestamptz from microseconds since 1970-01-01T00:00:00Z. */
void asy_db_copy_timestamptz(asy_db_copy_t *self, int64_t unix_us);
/* Tuples appended since the last clear. */
size_t asy_db_copy_rows(const asy_db_copy_t *self);
/* 0, ASY_ENOMEM or ASY_EINVAL: the first failure since the last clear. */
int asy_db_copy_error(const asy_db_copy_t *self);
/* Sends the payload (trailer added) as the data of copy_sql: start, put, end. */
int asy_db_copy_send(asy_db_t *self, const char *copy_sql, asy_db_copy_t *payload, uint64_t *rows);

#endif
