/*  outcome_fold.c: Recovery Star readings -> outcome_state. See outcome_fold.h.  */
#include "outcome_fold.h"

#include "case_fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FRAMEWORK_RECOVERY_STAR 1

const char ASY_OUTCOME_STAGING_SQL[] =
    "CREATE TEMP TABLE IF NOT EXISTS asy_outcome_delta (LIKE outcome_state) "
    "ON COMMIT DELETE ROWS";

const char ASY_OUTCOME_COPY_SQL[] =
    "COPY asy_outcome_delta (case_id, area, edition, first_ver, first_score, last_ver, "
    "last_score, readings) FROM STDIN (FORMAT binary)";

const char ASY_OUTCOME_MERGE_SQL[] =
    "INSERT INTO outcome_state AS o (case_id, area, edition, first_ver, first_score, last_ver,"
    " last_score, readings)"
    " SELECT case_id, area, edition, first_ver, first_score, last_ver, last_score, readings"
    " FROM asy_outcome_delta ORDER BY case_id, area, edition"
    " ON CONFLICT (case_id, area, edition) DO UPDATE SET"
    " first_score = CASE WHEN EXCLUDED.first_ver < o.first_ver THEN EXCLUDED.first_score"
    " ELSE o.first_score END,"
    " first_ver = LEAST(o.first_ver, EXCLUDED.first_ver),"
    " last_score = CASE WHEN EXCLUDED.last_ver > o.last_ver THEN EXCLUDED.last_score"
    " ELSE o.last_score END,"
    " last_ver = GREATEST(o.last_ver, EXCLUDED.last_ver),"
    " readings = o.readings + EXCLUDED.readings"
    " RETURNING case_id, area, edition, first_score, last_score, readings, first_ver, last_ver";

typedef struct {
    const char *case_id;
    int area;
    int edition;
    int score;
    char ver[ASY_CASE_VERSION_SIZE];
} s_reading_t;

static int s_compare(const void *a, const void *b)
{
    const s_reading_t *x = a, *y = b;
    int c = strcmp(x->case_id, y->case_id);
    if (c == 0)
        c = (x->area > y->area) - (x->area < y->area);
    if (c == 0)
        c = (x->edition > y->edition) - (x->edition < y->edition);
    return c ? c : strcmp(x->ver, y->ver);
}

static bool s_same_key(const s_reading_t *x, const s_reading_t *y)
{
    return x->area == y->area && x->edition == y->edition && strcmp(x->case_id, y->case_id) == 0;
}

static void s_add_row(asy_db_copy_t *copy, const s_reading_t *first, const s_reading_t *last,
                      int64_t readings)
{
    asy_db_copy_row(copy, 8);
    asy_db_copy_text(copy, first->case_id);
    asy_db_copy_int2(copy, (int16_t)first->area);
    asy_db_copy_int2(copy, (int16_t)first->edition);
    asy_db_copy_text(copy, first->ver);
    asy_db_copy_int2(copy, (int16_t)first->score);
    asy_db_copy_text(copy, last->ver);
    asy_db_copy_int2(copy, (int16_t)last->score);
    asy_db_copy_int8(copy, readings);
}

/* A valid, new Recovery Star reading (not one the centre holds under a re-issued epoch). */
static bool s_is_reading(const asy_store_item_t *item)
{
    const asy_event_summary_t *e = &item->summary;
    return asy_store_item_stored(item) && e->kind == ASY_KIND_OUTCOME_RECORDED &&
           e->outcome_framework == S_FRAMEWORK_RECOVERY_STAR && e->outcome_area > 0 &&
           e->outcome_score > 0;
}

int asy_outcome_fold_build(const asy_store_item_t *items, size_t count, asy_db_copy_t *copy)
{
    asy_db_copy_clear(copy);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        n += s_is_reading(&items[i]);
    if (n == 0)
        return 0;
    s_reading_t *readings = calloc(n, sizeof *readings);
    if (!readings)
        return ASY_ENOMEM;
    size_t r = 0;
    for (size_t i = 0; i < count; i++) {
        const asy_event_summary_t *e = &items[i].summary;
        if (!s_is_reading(&items[i]))
            continue;
        s_reading_t *x = &readings[r++];
        x->case_id = e->case_id;
        x->area = e->outcome_area;
        x->edition = e->outcome_edition;
        x->score = e->outcome_score;
        asy_case_version(e, x->ver);
    }
    qsort(readings, n, sizeof *readings, s_compare);
    int rows = 0;
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && s_same_key(&readings[start], &readings[end]))
            end++;
        s_add_row(copy, &readings[start], &readings[end - 1], (int64_t)(end - start));
        rows++;
        start = end;
    }
    free(readings);
    int rc = asy_db_copy_error(copy);
    return rc ? rc : rows;
}
