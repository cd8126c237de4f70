/*  outcome_fold.h: Recovery Star readings of a batch, folded per (case, area, edition) and
    merged into outcome_state (migration 004) in the batch's transaction (private to the
    store: store_batch.c).

    In C: the batch's valid outcome.recorded events with framework Recovery Star, an area and a
    score, sorted by (case, area, edition, version), give one delta row per key: its first and
    latest reading and how many (ON CONFLICT cannot touch one row twice in a statement). In
    SQL: the deltas are staged with COPY and merged: first = the smaller version, latest = the
    greater, readings summed. Any arrival order of the same readings gives the same rows.  */
#ifndef ASY_OUTCOME_FOLD_H_INCLUDED
#define ASY_OUTCOME_FOLD_H_INCLUDED

#include "db.h"
#include "store.h"

/* Creates the session's staging table (temporary, emptied at commit). */
extern const char ASY_OUTCOME_STAGING_SQL[];
/* COPY into the staging table, in the column order asy_outcome_fold_build() writes. */
extern const char ASY_OUTCOME_COPY_SQL[];
/* The merge, RETURNING the rows it wrote as ASY_OUTCOME_VIEW_COLUMNS (case_view.h). */
extern const char ASY_OUTCOME_MERGE_SQL[];

/* Clears copy and fills it with the folded delta rows of the valid items. Returns the number
   of rows (>= 0), ASY_ENOMEM, or the copy's error. */
int asy_outcome_fold_build(const asy_store_item_t *items, size_t count, asy_db_copy_t *copy);

#endif
