/*  outbox_private.h: the outbox's insides, shared by outbox.c (appending, reading,
    acknowledging, re-issuing, status) and outbox_open.c (opening, creating, claiming and
    upgrading the file). Not for other modules.  */
#ifndef ASY_OUTBOX_PRIVATE_H_INCLUDED
#define ASY_OUTBOX_PRIVATE_H_INCLUDED

#include "outbox.h"

#include <sqlite3.h>
#include <sys/types.h>

/* The statements prepared once per handle (their SQL: S_SQL in outbox_open.c). */
typedef enum {
    ASY_OUTBOX_BEGIN,
    ASY_OUTBOX_COMMIT,
    ASY_OUTBOX_ROLLBACK,
    ASY_OUTBOX_META_GET,
    ASY_OUTBOX_META_SET,
    ASY_OUTBOX_SEEN_FIND,
    ASY_OUTBOX_SEEN_INSERT,
    ASY_OUTBOX_ROW_INSERT,
    ASY_OUTBOX_ROW_READ,
    ASY_OUTBOX_ROW_DELETE,
    ASY_OUTBOX_OLDEST,
    ASY_OUTBOX_EVENT_ID,
    ASY_OUTBOX_STATEMENTS
} asy_outbox_statement_t;

struct asy_outbox {
    sqlite3 *db;
    int claim_fd;        /* -1, or the descriptor holding the claim's flock (open_claimed) */
    int busy_timeout_ms; /* how long a writer waits for the lock (s_busy, outbox_open.c) */
    sqlite3_stmt *statement[ASY_OUTBOX_STATEMENTS];
    char agent_id[ASY_ID_MAX + 1];
    char site_id[ASY_ID_MAX + 1];
    uint64_t epoch;
    bool in_transaction;
    bool dirty;         /* next_seq moved in this transaction */
    uint64_t next_seq;  /* valid inside a transaction */
    uint64_t acked_seq; /* valid inside a transaction */
    int64_t contact_written_ms;
    uint64_t welcome_noted; /* the epoch asy_outbox_note_welcome last wrote (0: none yet) */
    char *path;   /* as opened, for asy_outbox_replaced */
    dev_t device; /* the file opened */
    ino_t inode;
    int last_step; /* SQLite's code from the last s_run (outbox.c) */
    char errmsg[512];
};

/* Milliseconds since 1970. */
int64_t asy_outbox_now_ms(void);

/* Sets the error message of self (asy_outbox_errmsg). */
void asy_outbox_fail(asy_outbox_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Records SQLite's error for what we were doing; returns ASY_EDB. */
int asy_outbox_db_fail(asy_outbox_t *self, const char *doing);

#endif
