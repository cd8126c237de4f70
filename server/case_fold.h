/*  case_fold.h: the per-case fold of a batch (private to the broker's store).

    Folds a batch's valid events into one delta row per case with the case_state merge rules
    (the comment at the top of case_fold.c), and gives the SQL that stages those rows and merges
    them into case_state with the same rules. store_batch.c runs that SQL inside its transaction. */
#ifndef ASY_CASE_FOLD_H_INCLUDED
#define ASY_CASE_FOLD_H_INCLUDED

#include "case_view.h"
#include "db.h"
#include "store.h"

typedef struct asy_case_fold asy_case_fold_t;

/* An event's version text (ASY_CASE_VERSION_SIZE: case_view.h), as outcome_state keeps it;
   case_state keeps the same order in 24 bytes (case_fold.c). */
void asy_case_version(const asy_event_summary_t *event, char out[ASY_CASE_VERSION_SIZE]);

/* New fold with its SQL built. Returns NULL on ENOMEM. Caller destroys. */
asy_case_fold_t *asy_case_fold_new(void);

/* Destroys the fold and nulls *self_p; safe on NULL. */
void asy_case_fold_destroy(asy_case_fold_t **self_p);

/* "INSERT INTO case_state (...) SELECT ... FROM asy_case_delta ORDER BY case_id ON CONFLICT
   (case_id) DO UPDATE SET ...", the merge of the staged deltas. Borrowed. */
const char *asy_case_fold_upsert_sql(const asy_case_fold_t *self);

/* "COPY asy_case_delta (<columns>) FROM STDIN (FORMAT binary)", in the column order of the
   rows asy_case_fold_build() writes. Borrowed. */
const char *asy_case_fold_delta_copy_sql(const asy_case_fold_t *self);

/* Clears copy and fills it with one delta row per case of the valid items (code == 0), in
   case_id order so that concurrent brokers lock case rows in the same order. Returns 0,
   ASY_ENOMEM, or the copy's error (a malformed event_id, say). */
int asy_case_fold_build(asy_case_fold_t *self, const char *site_id, const asy_store_item_t *items,
                        size_t count, asy_db_copy_t *copy);

#endif
