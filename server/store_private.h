/*  store_private.h: the store's insides, shared by store.c (connection, migrations, HELLO) and
    store_batch.c (one batch, one refused frame). Not for other modules.  */
#ifndef ASY_STORE_PRIVATE_H_INCLUDED
#define ASY_STORE_PRIVATE_H_INCLUDED

#include "store.h"

#include "case_fold.h"
#include "db.h"

struct asy_store {
    asy_db_t *db;
    asy_db_copy_t *events;
    asy_db_copy_t *quarantined;
    asy_db_copy_t *cases;
    asy_db_copy_t *outcomes;
    asy_case_fold_t *fold;
    unsigned session_generation; /* db generation the staging table was created in */
    int partitions_month;        /* year * 12 + month (0-based) partitions were ensured for */
    asy_db_row_fn *case_sink;    /* given the merged case_state rows, if set */
    void *case_sink_arg;
    asy_db_row_fn *outcome_sink; /* given the merged outcome_state rows, if set */
    void *outcome_sink_arg;
    bool commit_in_doubt; /* the last write_batch lost its connection at COMMIT */
    char errmsg[1024];
};

/* Sets the store's message (asy_store_errmsg) from a printf format. */
void asy_store_error(asy_store_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Records "what: <database message>" and passes rc through. */
int asy_store_db_error(asy_store_t *self, int rc, const char *what);

/* Reconnects a lost connection and creates the per-connection staging tables on a new one.
   Returns 0, or ASY_ERETRY / a db.h code with the message set. */
int asy_store_ready(asy_store_t *self);

/* If migration 011 left case_state_refold, re-derives the columns it changed from the stored
   events and drops the table, in one transaction (store_refold.c). Returns 0 or an error
   (logged by the caller; the migration lock is held). */
int asy_store_refold(asy_store_t *self);

/* Creates the monthly partitions event_yYYYYmMM for this month and the next two (logged, not
   returned, when it cannot). */
void asy_store_ensure_partitions(asy_store_t *self);

#define ASY_STORE_INT8_TEXT 24 /* a bigint parameter's text: sign, 19 digits, NUL */

/* value as the text of a bigint parameter, written in text; returns text. */
const char *asy_store_int8(char text[ASY_STORE_INT8_TEXT], uint64_t value);

#endif
