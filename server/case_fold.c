/*  case_fold.c: the per-case fold of a batch. See case_fold.h.

    case_state merge rules (architecture guarantee 3: the state of a case is a function of the
    SET of its events, whatever order or batching they arrive in)
    ------------------------------------------------------------------------------------------
    Every event has a version  ver = occurred_at in microseconds since 1970 (negative clamps
    to 0) as 8 bytes big-endian || the event_id's 16 bytes, a bytea of 24 bytes (migration
    009; before it the *_ver text columns held 20 zero-padded digits || the lowercase
    event_id, which ordered the same). vers compare bytewise, i.e. by occurred_at, then event_id.
   "LWW" = last writer wins: the value of the event with the greatest ver among the events that
   carry the value; ties are the same event. Every rule is commutative, associative and idempotent
   (except event_count, a sum, which relies on each event being applied once: the agent_stream
   compare-and-set guarantees it).

      column                       rule                                      events
      person_key                   LWW (person_key_version)                  any with person_key
      site_id                      site of the earliest event (first_version = min ver) any
      status                       LWW (status_version)                      status-bearing:
                                     referral.received -> referred, referral.eligibility_decided
                                     -> eligible | ineligible, referral.declined -> declined,
                                     waitlist.joined -> waiting, waitlist.left -> allocated,
                                     contact.made -> contacted, meeting.initial_held and
                                     plan.agreed -> active, case.closed -> closed
      service, referral_source,    LWW (referral_version)                    referral.received
        referral_reasons (bit r for each ReferralReason r given; migration 005)
      referral_received_at         min(received_at, else occurred_at)        referral.received
      first_contact_at             min(occurred_at)                          contact.made
      initial_meeting_at           min(its date at 12:00 UTC if earlier,     meeting.initial_held
                                     else occurred_at)
      eligible (NULL/0/1)          LWW (eligible_version)                    eligibility_decided
      declined_at, decline_reason  LWW (declined_version)                    referral.declined
      closed_at, closure_reason,   LWW (closed_version)                      case.closed
        left_before_goals
      legal_status                 LWW (legal_status_version)                qualifying.* with a
                                                                             legal status
      qualifying                   LWW (qualifying_version); .ended -> false qualifying.*
                                     (these two versions take the body's start (.started,
                                     .changed) or end (.ended) in place of occurred_at, and
                                     then a byte, ff if the status qualifies, else 00, before
                                     the event id's first 15 bytes: at one instant a
                                     qualifying status wins)
      qualifying_started_at        min(start, else occurred_at) of those     qualifying.started
                                     whose status qualifies                  / .changed
      ethnicity_ons, nhs_ethnic,   each LWW with its own <column>_version    person.profile_
        sex, gender, age_band,                                               recorded/updated
        disability, religion,                                                where the field is
        sexual_orientation                                                   nonzero
      equality_optout              OR                                        person.equality_optout
      event_count                  sum                                       all
      first_event_at, last_event_at  min / max(occurred_at)                  all
      updated_at, created_at       wall clock of the last / first write (not part of the state)
    An enumeration value 0 ("not recorded") is stored as NULL.

    The batch's events are folded in C per case with these rules (sorted by case_id, so
    concurrent brokers lock case rows in the same order), then the delta rows are merged into
    case_state in SQL with the same rules: LWW as CASE WHEN EXCLUDED.v > case_state.v, min/max
    as LEAST/GREATEST (which ignore NULLs), sums as +.  */
#include "case_fold.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_VER_SIZE 24 /* occurred_at microseconds (8 bytes big-endian), event_id (16 bytes) */
#define S_NO_TIME INT64_MIN
#define S_EQUALITY 8

/* The per-case delta: one event's contribution, or the fold of several. A version of all zero
   bytes is unset: no event has one (validation refuses the nil event_id). */
typedef struct {
    char case_id[ASY_PSEUDONYM_HEX + 1];
    char person_key[ASY_PSEUDONYM_HEX + 1];
    uint8_t person_key_version[S_VER_SIZE];
    char site_id[ASY_ID_MAX + 1];
    uint8_t first_version[S_VER_SIZE];
    char status[16];
    uint8_t status_version[S_VER_SIZE];
    int service;
    int referral_source;
    int referral_reasons;
    uint8_t referral_version[S_VER_SIZE];
    int64_t referral_received_at;
    int64_t first_contact_at;
    int64_t initial_meeting_at;
    int eligible; /* -1 = NULL */
    uint8_t eligible_version[S_VER_SIZE];
    int64_t declined_at;
    int decline_reason;
    uint8_t declined_version[S_VER_SIZE];
    int64_t closed_at;
    int closure_reason;
    bool left_before_goals;
    uint8_t closed_version[S_VER_SIZE];
    int legal_status;
    uint8_t legal_status_version[S_VER_SIZE];
    bool qualifying;
    uint8_t qualifying_version[S_VER_SIZE];
    int64_t qualifying_started_at;
    int equality[S_EQUALITY];
    uint8_t equality_ver[S_EQUALITY][S_VER_SIZE];
    bool equality_optout;
    int64_t event_count;
    int64_t first_event_at;
    int64_t last_event_at;
} s_case_t;

/* How each case_state column is written (type) and merged (rule). */
typedef enum { S_TEXT, S_VERSION, S_INT, S_FLAG, S_BOOL, S_TIME, S_COUNT } s_type_t;
typedef enum { S_KEY, S_LWW, S_FIRST, S_VER_MAX, S_VER_MIN, S_MIN, S_MAX, S_SUM, S_OR } s_rule_t;

typedef struct {
    const char *name;
    s_type_t type;
    s_rule_t rule;
    size_t offset;
    const char *ver; /* S_LWW / S_FIRST: the column holding the version */
    size_t ver_offset;
} s_column_t;

#define S_COL(name, type, rule)                                                                    \
    {                                                                                              \
#name, type, rule, offsetof(s_case_t, name), NULL, 0                                       \
    }
#define S_LWW_COL(name, type, ver)                                                                 \
    {                                                                                              \
#name, type, S_LWW, offsetof(s_case_t, name), #ver, offsetof(s_case_t, ver)                \
    }
#define S_EQ_COL(name, i)                                                                          \
    {#name,                                                                                        \
     S_INT,                                                                                        \
     S_LWW,                                                                                        \
     offsetof(s_case_t, equality) + (i) * sizeof(int),                                             \
     #name "_version",                                                                             \
     offsetof(s_case_t, equality_ver) + (i)*S_VER_SIZE},                                           \
    {                                                                                              \
#name "_version", S_VERSION, S_VER_MAX, offsetof(s_case_t, equality_ver) + (i)*S_VER_SIZE, \
            NULL, 0                                                                                \
    }

static const s_column_t s_columns[] = {
    S_COL(case_id, S_TEXT, S_KEY),
    S_LWW_COL(person_key, S_TEXT, person_key_version),
    S_COL(person_key_version, S_VERSION, S_VER_MAX),
    {"site_id", S_TEXT, S_FIRST, offsetof(s_case_t, site_id), "first_version",
     offsetof(s_case_t, first_version)},
    S_COL(first_version, S_VERSION, S_VER_MIN),
    S_LWW_COL(status, S_TEXT, status_version),
    S_COL(status_version, S_VERSION, S_VER_MAX),
    S_LWW_COL(service, S_INT, referral_version),
    S_LWW_COL(referral_source, S_INT, referral_version),
    S_LWW_COL(referral_reasons, S_INT, referral_version),
    S_COL(referral_version, S_VERSION, S_VER_MAX),
    S_COL(referral_received_at, S_TIME, S_MIN),
    S_COL(first_contact_at, S_TIME, S_MIN),
    S_COL(initial_meeting_at, S_TIME, S_MIN),
    S_LWW_COL(eligible, S_FLAG, eligible_version),
    S_COL(eligible_version, S_VERSION, S_VER_MAX),
    S_LWW_COL(declined_at, S_TIME, declined_version),
    S_LWW_COL(decline_reason, S_INT, declined_version),
    S_COL(declined_version, S_VERSION, S_VER_MAX),
    S_LWW_COL(closed_at, S_TIME, closed_version),
    S_LWW_COL(closure_reason, S_INT, closed_version),
    S_LWW_COL(left_before_goals, S_BOOL, closed_version),
    S_COL(closed_version, S_VERSION, S_VER_MAX),
    S_LWW_COL(legal_status, S_INT, legal_status_version),
    S_COL(legal_status_version, S_VERSION, S_VER_MAX),
    S_LWW_COL(qualifying, S_BOOL, qualifying_version),
    S_COL(qualifying_version, S_VERSION, S_VER_MAX),
    S_COL(qualifying_started_at, S_TIME, S_MIN),
    S_EQ_COL(ethnicity_ons, 0),
    S_EQ_COL(nhs_ethnic, 1),
    S_EQ_COL(sex, 2),
    S_EQ_COL(gender, 3),
    S_EQ_COL(age_band, 4),
    S_EQ_COL(disability, 5),
    S_EQ_COL(religion, 6),
    S_EQ_COL(sexual_orientation, 7),
    S_COL(equality_optout, S_BOOL, S_OR),
    S_COL(event_count, S_COUNT, S_SUM),
    S_COL(first_event_at, S_TIME, S_MIN),
    S_COL(last_event_at, S_TIME, S_MAX),
};
#define S_COLUMN_COUNT (sizeof s_columns / sizeof s_columns[0])

/* Where each equality attribute sits in the summary, in s_case_t.equality order. */
static const size_t s_equality_fields[S_EQUALITY] = {
    offsetof(asy_event_summary_t, ethnicity_ons),
    offsetof(asy_event_summary_t, nhs_ethnic),
    offsetof(asy_event_summary_t, sex),
    offsetof(asy_event_summary_t, gender),
    offsetof(asy_event_summary_t, age_band),
    offsetof(asy_event_summary_t, disability),
    offsetof(asy_event_summary_t, religion),
    offsetof(asy_event_summary_t, sexual_orientation)};

struct asy_case_fold {
    s_case_t *case_buffer;
    struct s_order *order;
    size_t capacity; /* of case_buffer and order */
    char *upsert_sql;
    char *delta_copy_sql;
};

/* ----------------------------------------------------------------------------------------------
   The SQL side of the merge rules, built from s_columns. */

/* Builds "INSERT INTO case_state (...) SELECT ... FROM asy_case_delta ORDER BY case_id
   ON CONFLICT (case_id) DO UPDATE SET ..." from s_columns. Caller frees. */
static char *s_build_upsert(void)
{
    size_t size = 16384;
    char *sql = malloc(size);
    if (!sql)
        return NULL;
    size_t used = 0;
#define S_PUT(...) used += (size_t)snprintf(sql + used, used < size ? size - used : 0, __VA_ARGS__)
    S_PUT("INSERT INTO case_state (");
    for (size_t i = 0; i < S_COLUMN_COUNT; i++)
        S_PUT("%s%s", i ? ", " : "", s_columns[i].name);
    S_PUT(") SELECT ");
    for (size_t i = 0; i < S_COLUMN_COUNT; i++)
        S_PUT("%s%s", i ? ", " : "", s_columns[i].name);
    S_PUT(" FROM asy_case_delta ORDER BY case_id ON CONFLICT (case_id) DO UPDATE SET ");
    for (size_t i = 1; i < S_COLUMN_COUNT; i++) {
        const s_column_t *c = &s_columns[i];
        const char *n = c->name;
        switch (c->rule) {
        case S_LWW:
            S_PUT("%s = CASE WHEN EXCLUDED.%s > coalesce(case_state.%s, '') THEN EXCLUDED.%s"
                  " ELSE case_state.%s END, ",
                  n, c->ver, c->ver, n, n);
            break;
        case S_FIRST:
            S_PUT("%s = CASE WHEN EXCLUDED.%s IS NOT NULL AND (case_state.%s IS NULL OR"
                  " EXCLUDED.%s < case_state.%s) THEN EXCLUDED.%s ELSE case_state.%s END, ",
                  n, c->ver, c->ver, c->ver, c->ver, n, n);
            break;
        case S_VER_MAX:
        case S_MAX:
            S_PUT("%s = GREATEST(case_state.%s, EXCLUDED.%s), ", n, n, n);
            break;
        case S_VER_MIN:
        case S_MIN:
            S_PUT("%s = LEAST(case_state.%s, EXCLUDED.%s), ", n, n, n);
            break;
        case S_SUM:
            S_PUT("%s = case_state.%s + EXCLUDED.%s, ", n, n, n);
            break;
        case S_OR:
            S_PUT("%s = case_state.%s OR EXCLUDED.%s, ", n, n, n);
            break;
        case S_KEY:
            break;
        }
    }
    S_PUT("updated_at = now()");
#undef S_PUT
    if (used >= size) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* "COPY asy_case_delta (<s_columns>) FROM STDIN (FORMAT binary)". Caller frees. */
static char *s_build_delta_copy(void)
{
    size_t size = 4096, used = 0;
    char *sql = malloc(size);
    if (!sql)
        return NULL;
    used += (size_t)snprintf(sql, size, "COPY asy_case_delta (");
    for (size_t i = 0; i < S_COLUMN_COUNT && used < size; i++)
        used += (size_t)snprintf(sql + used, size - used, "%s%s", i ? ", " : "", s_columns[i].name);
    if (used < size)
        used += (size_t)snprintf(sql + used, size - used, ") FROM STDIN (FORMAT binary)");
    if (used >= size) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* ----------------------------------------------------------------------------------------------
   The C side of the merge rules. */

static const char *s_status_of(const asy_event_summary_t *e)
{
    switch (e->kind) {
    case ASY_KIND_REFERRAL_RECEIVED:
        return "referred";
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED:
        return e->eligible == 1 ? "eligible" : "ineligible";
    case ASY_KIND_REFERRAL_DECLINED:
        return "declined";
    case ASY_KIND_WAITLIST_JOINED:
        return "waiting";
    case ASY_KIND_WAITLIST_LEFT:
        return "allocated";
    case ASY_KIND_CONTACT_MADE:
        return "contacted";
    case ASY_KIND_MEETING_INITIAL_HELD:
    case ASY_KIND_PLAN_AGREED:
        return "active";
    case ASY_KIND_CASE_CLOSED:
        return "closed";
    default:
        return NULL;
    }
}

static const uint8_t s_unset[S_VER_SIZE];

static bool s_set(const uint8_t *ver)
{
    return memcmp(ver, s_unset, S_VER_SIZE) != 0;
}

/* True (and takes ver) if ver is later than the column's current version. */
static bool s_newer(uint8_t *column_ver, const uint8_t *ver)
{
    if (memcmp(ver, column_ver, S_VER_SIZE) <= 0)
        return false;
    memcpy(column_ver, ver, S_VER_SIZE);
    return true;
}

static void s_min(int64_t *value, int64_t candidate)
{
    if (candidate != S_NO_TIME && (*value == S_NO_TIME || candidate < *value))
        *value = candidate;
}

static void s_max(int64_t *value, int64_t candidate)
{
    if (candidate != S_NO_TIME && (*value == S_NO_TIME || candidate > *value))
        *value = candidate;
}

static void s_case_init(s_case_t *c, const char *case_id)
{
    memset(c, 0, sizeof *c);
    asy_copy_text(c->case_id, sizeof c->case_id, case_id);
    c->eligible = -1;
    c->referral_received_at = c->first_contact_at = c->initial_meeting_at = S_NO_TIME;
    c->declined_at = c->closed_at = c->qualifying_started_at = S_NO_TIME;
    c->first_event_at = c->last_event_at = S_NO_TIME;
}

static bool s_version_at(const asy_event_summary_t *e, int64_t at_us, uint8_t out[S_VER_SIZE]);

static void s_fold_kind(s_case_t *c, const asy_event_summary_t *e, const uint8_t *ver,
                        int64_t occurred)
{
    switch (e->kind) {
    case ASY_KIND_REFERRAL_RECEIVED:
        if (s_newer(c->referral_version, ver)) {
            c->service = e->service;
            c->referral_source = e->source;
            c->referral_reasons = (int)e->reasons;
        }
        s_min(&c->referral_received_at, e->received_at_us ? e->received_at_us : occurred);
        break;
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED:
        if (s_newer(c->eligible_version, ver))
            c->eligible = e->eligible == 0 || e->eligible == 1 ? e->eligible : -1;
        break;
    case ASY_KIND_REFERRAL_DECLINED:
        if (s_newer(c->declined_version, ver)) {
            c->declined_at = occurred;
            c->decline_reason = e->decline_reason;
        }
        break;
    case ASY_KIND_CONTACT_MADE:
        s_min(&c->first_contact_at, occurred);
        break;
    case ASY_KIND_MEETING_INITIAL_HELD:
        s_min(&c->initial_meeting_at, e->met_at_us ? e->met_at_us : occurred);
        break;
    case ASY_KIND_CASE_CLOSED:
        if (s_newer(c->closed_version, ver)) {
            c->closed_at = occurred;
            c->closure_reason = e->closure_reason;
            c->left_before_goals = e->left_before_goals;
        }
        break;
    case ASY_KIND_QUALIFYING_STARTED:
    case ASY_KIND_QUALIFYING_CHANGED:
    case ASY_KIND_QUALIFYING_ENDED: {
        /* ordered by when the status took effect (the body's start / end), not by when it
           was recorded: the episode's end is the date of that version */
        bool qualifying = e->kind != ASY_KIND_QUALIFYING_ENDED && e->qualifying;
        uint8_t qver[S_VER_SIZE];
        s_version_at(e, e->qualifying_at_us, qver);
        /* at one instant a qualifying status comes after one that is not (s2 ended and s3
           started at 00:00): one byte after the time says which, then the event id's first
           15 bytes (the date of the version stays the status's own) */
        memmove(qver + 9, qver + 8, S_VER_SIZE - 9);
        qver[8] = qualifying ? 0xff : 0x00;
        if (e->legal_status && s_newer(c->legal_status_version, qver))
            c->legal_status = e->legal_status;
        if (s_newer(c->qualifying_version, qver))
            c->qualifying = qualifying;
        if (qualifying) /* s4 then s2: the episode starts with s2 */
            s_min(&c->qualifying_started_at, e->qualifying_at_us);
        break;
    }
    case ASY_KIND_PERSON_PROFILE_RECORDED:
    case ASY_KIND_PERSON_PROFILE_UPDATED:
        for (int i = 0; i < S_EQUALITY; i++) {
            int value = *(const int *)((const char *)e + s_equality_fields[i]);
            if (value && s_newer(c->equality_ver[i], ver))
                c->equality[i] = value;
        }
        break;
    case ASY_KIND_PERSON_EQUALITY_OPTOUT:
        c->equality_optout = true;
        break;
    default:
        break;
    }
}

void asy_case_version(const asy_event_summary_t *e, char out[ASY_CASE_VERSION_SIZE])
{
    snprintf(out, ASY_CASE_VERSION_SIZE, "%020" PRId64 "%s",
             e->occurred_at_us > 0 ? e->occurred_at_us : 0, e->event_id);
    for (char *p = out + 20; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
}

/* An event's version as case_state stores it (009_case_state_binary_versions): occurred_at
   microseconds (negative clamps to 0) as 8 bytes big-endian, then the event_id's 16 bytes.
   Compared with memcmp, it orders as the text of asy_case_version does. False if the
   event_id is not a UUID (its bytes all zero: validation refuses the nil UUID). */
static bool s_version_at(const asy_event_summary_t *e, int64_t at_us, uint8_t out[S_VER_SIZE])
{
    uint64_t micros = at_us > 0 ? (uint64_t)at_us : 0;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(micros >> (56 - 8 * i));
    memcpy(out + 8, e->event_uuid, 16);
    return memcmp(e->event_uuid, s_unset, 16) != 0;
}

static bool s_version(const asy_event_summary_t *e, uint8_t out[S_VER_SIZE])
{
    return s_version_at(e, e->occurred_at_us, out);
}

static bool s_fold(s_case_t *c, const asy_event_summary_t *e, const char *site_id)
{
    uint8_t ver[S_VER_SIZE];
    if (!s_version(e, ver))
        return false;
    int64_t occurred = e->occurred_at_us ? e->occurred_at_us : S_NO_TIME;
    if (e->person_key[0] && s_newer(c->person_key_version, ver))
        asy_copy_text(c->person_key, sizeof c->person_key, e->person_key);
    if (!s_set(c->first_version) || memcmp(ver, c->first_version, S_VER_SIZE) < 0) {
        memcpy(c->first_version, ver, S_VER_SIZE);
        asy_copy_text(c->site_id, sizeof c->site_id, site_id);
    }
    const char *status = s_status_of(e);
    if (status && s_newer(c->status_version, ver))
        asy_copy_text(c->status, sizeof c->status, status);
    s_fold_kind(c, e, ver, occurred);
    c->event_count++;
    s_min(&c->first_event_at, occurred);
    s_max(&c->last_event_at, occurred);
    return true;
}

/* One COPY tuple of a case delta, in s_columns order. */
static void s_add_case(asy_db_copy_t *copy, const s_case_t *c)
{
    asy_db_copy_row(copy, (int)S_COLUMN_COUNT);
    for (size_t i = 0; i < S_COLUMN_COUNT; i++) {
        const s_column_t *col = &s_columns[i];
        const char *field = (const char *)c + col->offset;
        bool unset = col->ver && !s_set((const uint8_t *)c + col->ver_offset);
        switch (col->type) {
        case S_TEXT:
            asy_db_copy_text(copy, unset || !field[0] ? NULL : field);
            break;
        case S_VERSION:
            if (s_set((const uint8_t *)field))
                asy_db_copy_bytea(copy, (const uint8_t *)field, S_VER_SIZE);
            else
                asy_db_copy_null(copy);
            break;
        case S_INT: {
            int value = *(const int *)(const void *)field;
            if (unset || value == 0)
                asy_db_copy_null(copy);
            else
                asy_db_copy_int4(copy, value);
            break;
        }
        case S_FLAG: {
            int value = *(const int *)(const void *)field;
            if (unset || value < 0)
                asy_db_copy_null(copy);
            else
                asy_db_copy_int2(copy, (int16_t)value);
            break;
        }
        case S_BOOL:
            if (unset)
                asy_db_copy_null(copy);
            else
                asy_db_copy_bool(copy, *(const bool *)(const void *)field);
            break;
        case S_TIME: {
            int64_t value = *(const int64_t *)(const void *)field;
            if (unset || value == S_NO_TIME)
                asy_db_copy_null(copy);
            else
                asy_db_copy_timestamptz(copy, value);
            break;
        }
        case S_COUNT:
            asy_db_copy_int8(copy, *(const int64_t *)(const void *)field);
            break;
        }
    }
}

/* An event of the batch in the sort by case: the first 8 characters of its case_id as a
   big-endian number order as the text does, and decide nearly every comparison without a
   look at the item (a batch's items are large: each one read is a cache miss). */
typedef struct s_order {
    uint64_t prefix;
    const asy_store_item_t *item;
} s_order_t;

static uint64_t s_prefix(const char *case_id)
{
    uint64_t prefix = 0;
    /* a valid case_id has 64 characters; a shorter one's array is zero after its end
       (asy_event_summarise), which orders as strcmp does */
    for (int i = 0; i < 8; i++)
        prefix = prefix << 8 | (uint8_t)case_id[i];
    return prefix;
}

static int s_by_case(const void *a, const void *b)
{
    const s_order_t *x = a, *y = b;
    if (x->prefix != y->prefix)
        return x->prefix < y->prefix ? -1 : 1;
    int c = strcmp(x->item->summary.case_id, y->item->summary.case_id);
    if (c)
        return c;
    return x->item->seq < y->item->seq ? -1 : x->item->seq > y->item->seq;
}

/* ----------------------------------------------------------------------------------------------
   The fold object. */

asy_case_fold_t *asy_case_fold_new(void)
{
    asy_case_fold_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->upsert_sql = s_build_upsert();
    self->delta_copy_sql = s_build_delta_copy();
    if (!self->upsert_sql || !self->delta_copy_sql)
        asy_case_fold_destroy(&self);
    return self;
}

void asy_case_fold_destroy(asy_case_fold_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    asy_case_fold_t *self = *self_p;
    free(self->case_buffer);
    free(self->order);
    free(self->upsert_sql);
    free(self->delta_copy_sql);
    free(self);
    *self_p = NULL;
}

const char *asy_case_fold_upsert_sql(const asy_case_fold_t *self)
{
    return self->upsert_sql;
}

const char *asy_case_fold_delta_copy_sql(const asy_case_fold_t *self)
{
    return self->delta_copy_sql;
}

int asy_case_fold_build(asy_case_fold_t *self, const char *site_id, const asy_store_item_t *items,
                        size_t count, asy_db_copy_t *copy)
{
    if (count > self->capacity) {
        free(self->case_buffer);
        free(self->order);
        self->case_buffer = malloc(count * sizeof *self->case_buffer);
        self->order = malloc(count * sizeof *self->order);
        self->capacity = self->case_buffer && self->order ? count : 0;
        if (!self->capacity)
            return ASY_ENOMEM;
    }
    size_t valid = 0;
    for (size_t i = 0; i < count; i++)
        if (asy_store_item_stored(&items[i]))
            self->order[valid++] = (s_order_t){s_prefix(items[i].summary.case_id), &items[i]};
    qsort(self->order, valid, sizeof *self->order, s_by_case);
    size_t cases = 0;
    for (size_t i = 0; i < valid; i++) {
        const asy_event_summary_t *e = &self->order[i].item->summary;
        if (cases == 0 || strcmp(self->case_buffer[cases - 1].case_id, e->case_id) != 0)
            s_case_init(&self->case_buffer[cases++], e->case_id);
        if (!s_fold(&self->case_buffer[cases - 1], e, site_id))
            return ASY_EINVAL; /* an event_id that is no UUID: validation refuses those */
    }
    asy_db_copy_clear(copy);
    for (size_t i = 0; i < cases; i++)
        s_add_case(copy, &self->case_buffer[i]);
    return asy_db_copy_error(copy);
}