/*  breaches.c: the monitor's book of breaches. See breaches.h.  */
#include "breaches.h"

#include "log.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_SIZE (ASY_PSEUDONYM_HEX + 8)

struct asy_breaches {
    zhashx_t *announced; /* "case_id/kind" -> asy_breach_notice_t */
    zhashx_t *deferred;  /* case_id -> int64_t due (ms, monotonic) */
    zlist_t *unrecorded; /* "case_id,kind,site_id,deadline,t|f" (t: withdrawn) not yet written */
    zlist_t *startup;    /* case ids found in breach by the rebuild */
    bool failing;        /* the last write failed: the records wait for the database */
    int64_t retry_ms;    /* while failing, the next attempt (monotonic ms) */
};

#define S_RETRY_MS 1000
#define S_COLUMNS 5 /* of an unrecorded row */

static void s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

asy_breaches_t *asy_breaches_new(void)
{
    asy_breaches_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->announced = zhashx_new();
    self->deferred = zhashx_new();
    self->unrecorded = zlist_new();
    self->startup = zlist_new();
    if (!self->announced || !self->deferred || !self->unrecorded || !self->startup) {
        asy_breaches_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->deferred, s_free_item);
    zhashx_set_destructor(self->announced, s_free_item);
    zlist_autofree(self->unrecorded);
    zlist_autofree(self->startup);
    return self;
}

void asy_breaches_destroy(asy_breaches_t **self_p)
{
    asy_breaches_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->announced);
    zhashx_destroy(&self->deferred);
    zlist_destroy(&self->unrecorded);
    zlist_destroy(&self->startup);
    free(self);
    *self_p = NULL;
}

/* Adds (case, kind) to the announced notices; false on ENOMEM or if it was there. */
static bool s_add_notice(asy_breaches_t *self, const char *case_id, int kind,
                         const asy_breach_notice_t *values)
{
    char key[S_KEY_SIZE];
    snprintf(key, sizeof key, "%s/%d", case_id, kind);
    if (zhashx_lookup(self->announced, key))
        return false;
    asy_breach_notice_t *notice = malloc(sizeof *notice);
    if (!notice)
        return false;
    *notice = *values;
    zhashx_insert(self->announced, key, notice);
    return true;
}

static asy_breach_notice_t *s_notice(const asy_breaches_t *self, const char *case_id, int kind)
{
    char key[S_KEY_SIZE];
    snprintf(key, sizeof key, "%s/%d", case_id, kind);
    return zhashx_lookup(self->announced, key);
}

static int s_announced_row(void *arg, int columns, const char *const *values)
{
    asy_breach_notice_t notice = {.deadline = ASY_NO_DATE};
    if (columns != 5 || !values[0] || !values[1] || !values[2] || !values[4])
        return 0;
    /* a deadline that does not parse is kept unknown: such a notice is never withdrawn (a
       withdrawal record needs the deadline) */
    asy_date_parse(values[2], &notice.deadline);
    snprintf(notice.site_id, sizeof notice.site_id, "%s", values[3] ? values[3] : "");
    notice.withdrawn = values[4][0] == 't';
    s_add_notice(arg, values[0], atoi(values[1]), &notice);
    return 0;
}

int asy_breaches_load(asy_breaches_t *self, asy_db_t *db)
{
    return asy_db_query_each(db,
                             "SELECT case_id, kind, to_char(deadline, 'YYYY-MM-DD'), site_id,"
                             " withdrawn_at IS NOT NULL FROM monitor_breach",
                             false, 0, NULL, s_announced_row, self);
}

size_t asy_breaches_count(const asy_breaches_t *self)
{
    return zhashx_size(self->announced);
}

bool asy_breaches_mark(asy_breaches_t *self, const asy_case_view_t *view, int kind,
                       asy_date_t deadline)
{
    asy_breach_notice_t notice = {.deadline = deadline};
    snprintf(notice.site_id, sizeof notice.site_id, "%s", view->site_id);
    if (!s_add_notice(self, view->case_id, kind, &notice))
        return false;
    char deadline_text[ASY_DATE_TEXT];
    char *row = zsys_sprintf("%s,%d,%s,%s,f", view->case_id, kind, view->site_id,
                             asy_date_format(deadline, deadline_text));
    zlist_append(self->unrecorded, row); /* autofree: the list keeps a copy */
    zstr_free(&row);
    return true;
}

/* Announced, not withdrawn, and with a deadline a withdrawal record can carry. */
static bool s_stands(const asy_breach_notice_t *notice)
{
    return notice && !notice->withdrawn && notice->deadline != ASY_NO_DATE;
}

const asy_breach_notice_t *asy_breaches_standing(const asy_breaches_t *self, const char *case_id,
                                                 int kind)
{
    const asy_breach_notice_t *notice = s_notice(self, case_id, kind);
    return s_stands(notice) ? notice : NULL;
}

const asy_breach_notice_t *asy_breaches_withdraw(asy_breaches_t *self, const char *case_id,
                                                 int kind)
{
    asy_breach_notice_t *notice = s_notice(self, case_id, kind);
    if (!s_stands(notice))
        return NULL;
    notice->withdrawn = true;
    /* still waiting to be written: one row says both (an upsert may not touch a row twice) */
    char prefix[S_KEY_SIZE + 4];
    int length = snprintf(prefix, sizeof prefix, "%s,%d,", case_id, kind);
    for (char *row = zlist_first(self->unrecorded); row; row = zlist_next(self->unrecorded))
        if (strncmp(row, prefix, (size_t)length) == 0) {
            row[strlen(row) - 1] = 't'; /* the list's own copy */
            return notice;
        }
    char deadline_text[ASY_DATE_TEXT];
    char *row = zsys_sprintf("%s,%d,%s,%s,t", case_id, kind, notice->site_id,
                             asy_date_format(notice->deadline, deadline_text));
    zlist_append(self->unrecorded, row);
    zstr_free(&row);
    return notice;
}

void asy_breaches_record(asy_breaches_t *self, asy_db_t *db, bool now)
{
    if (zlist_size(self->unrecorded) == 0)
        return;
    if (self->failing && !now && zclock_mono() < self->retry_ms)
        return;
    /* five array literals, one per column, every element double-quoted (an unquoted NULL is SQL
       NULL, and "NULL" is a valid site id); ids, dates and t/f hold no quote or backslash */
    char *columns[S_COLUMNS] = {NULL};
    size_t sizes[S_COLUMNS] = {0};
    FILE *streams[S_COLUMNS];
    for (int c = 0; c < S_COLUMNS; c++)
        streams[c] = open_memstream(&columns[c], &sizes[c]);
    bool first = true;
    for (char *row = zlist_first(self->unrecorded); row; row = zlist_next(self->unrecorded)) {
        char *field = row;
        for (int c = 0; c < S_COLUMNS; c++) {
            size_t length = strcspn(field, ",");
            if (streams[c])
                fprintf(streams[c], "%s\"%.*s\"", first ? "{" : ",", (int)length, field);
            field += length + (field[length] ? 1 : 0);
        }
        first = false;
    }
    bool ok = true;
    for (int c = 0; c < S_COLUMNS; c++) {
        ok &= streams[c] != NULL;
        if (streams[c]) {
            fputc('}', streams[c]);
            fclose(streams[c]);
        }
    }
    const char *params[S_COLUMNS] = {columns[0], columns[1], columns[2], columns[3], columns[4]};
    if (ok && !asy_db_alive(db))
        asy_db_reset(db);
    if (!ok ||
        asy_db_exec(db,
                    "INSERT INTO monitor_breach (case_id, kind, site_id, deadline, withdrawn_at)"
                    " SELECT c, k, s, d, CASE WHEN w THEN now() END FROM unnest($1::text[],"
                    " $2::int2[], $3::text[], $4::date[], $5::bool[]) AS u(c, k, s, d, w)"
                    " ON CONFLICT (case_id, kind) DO UPDATE SET withdrawn_at ="
                    " coalesce(monitor_breach.withdrawn_at, EXCLUDED.withdrawn_at)",
                    S_COLUMNS, params, NULL) != 0) {
        /* kept and retried every second: said once, not at every tick of an outage */
        if (!self->failing)
            asy_warn("monitor: breach records wait for the database (%zu so far; retried every "
                     "%d ms; announced again after a restart if the broker stops first): %s",
                     zlist_size(self->unrecorded), S_RETRY_MS,
                     ok ? asy_db_errmsg(db) : "out of memory");
        self->failing = true;
        self->retry_ms = zclock_mono() + S_RETRY_MS; /* reconnected by the probe then */
    } else {
        if (self->failing)
            asy_info("monitor: database reachable again: %zu breach records written",
                     zlist_size(self->unrecorded));
        self->failing = false;
        zlist_purge(self->unrecorded);
    }
    for (int c = 0; c < S_COLUMNS; c++)
        free(columns[c]);
}

void asy_breaches_defer(asy_breaches_t *self, const char *case_id, int64_t due_ms)
{
    if (zhashx_lookup(self->deferred, case_id))
        return;
    int64_t *due = malloc(sizeof *due);
    if (!due)
        return;
    *due = due_ms;
    zhashx_insert(self->deferred, case_id, due);
}

bool asy_breaches_deferred(const asy_breaches_t *self)
{
    return zhashx_size(self->deferred) > 0;
}

void asy_breaches_due(asy_breaches_t *self, int64_t now_ms,
                      void (*fn)(void *arg, const char *case_id), void *arg)
{
    zlist_t *ready = zlist_new();
    if (!ready)
        return;
    for (int64_t *due = zhashx_first(self->deferred); due; due = zhashx_next(self->deferred))
        if (*due <= now_ms)
            zlist_append(ready, (void *)zhashx_cursor(self->deferred));
    for (const char *id = zlist_first(ready); id; id = zlist_next(ready))
        fn(arg, id);
    for (const char *id = zlist_first(ready); id; id = zlist_next(ready))
        zhashx_delete(self->deferred, id); /* the key belongs to the hash: delete last */
    zlist_destroy(&ready);
}

void asy_breaches_note(asy_breaches_t *self, const char *case_id)
{
    zlist_append(self->startup, (void *)case_id); /* autofree: copied */
}

void asy_breaches_startup(asy_breaches_t *self, void (*fn)(void *arg, const char *case_id),
                          void *arg)
{
    for (const char *id = zlist_first(self->startup); id; id = zlist_next(self->startup))
        fn(arg, id);
    zlist_purge(self->startup);
}
