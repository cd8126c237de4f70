/*  aggregate.c: the monitor's counters, kept incrementally. See aggregate.h.

    A case contributes +1 to the counters of every (scope, period, family, breakdown group) it
    belongs to (the membership rules of proto/PROTOCOL.md 12.2, written out once in
    s_members, aggregate_contribute.c). Putting a new version of a case subtracts the old
    contribution and adds the new one: the work is the number of periods times breakdowns,
    independent of how many cases or events are stored. Counters are dense arrays per (scope,
    period), allocated when a scope first appears; buckets of the window are rebuilt when the
    day changes.

    The families that count people (M2, M6, M12) are kept per person instead: a person counts
    once per (scope, period) if any of their cases there belongs, in the groups of the latest
    such case (greatest received date, then case id), numerator if any such case has it; for
    M12 their Recovery Star readings are first joined across those cases (s_recovery_joined). A put
    subtracts and re-adds the person's contribution: the work grows with the person's cases
    (one or a few), not with the data.  */
#include "aggregate_private.h"

#include "codec.h"

#include <stdlib.h>
#include <string.h>

const asy_dim_info_t asy_dims[ASY_DIM_COUNT] = {
    [ASY_DIM_TOTAL] = {"total", NULL, 1},
    [ASY_DIM_SOURCE] = {"source", "ReferralSource", 24},
    [ASY_DIM_SOURCE_GROUP] = {"source_group", "ReferralSource", 24},
    [ASY_DIM_SERVICE] = {"service", "ServiceType", 3},
    [ASY_DIM_ONS] = {"ethnicity_ons", "EthnicityOns2021", ASY_ONS_GROUPS},
    [ASY_DIM_EG] = {"ethnic_group", NULL, ASY_EG_GROUPS},
    [ASY_DIM_NHS] = {"nhs_ethnic", "NhsEthnicCategory", 19},
    [ASY_DIM_AGE] = {"age_band", "AgeBand", ASY_AGE_GROUPS},
    [ASY_DIM_SEX] = {"sex", "Sex", 4},
    [ASY_DIM_GENDER] = {"gender", "Gender", 7},
    [ASY_DIM_DISABILITY] = {"disability", "Disability", 8},
    [ASY_DIM_RELIGION] = {"religion", "Religion", 10},
    [ASY_DIM_ORIENTATION] = {"sexual_orientation", "SexualOrientation", 6},
    [ASY_DIM_REASON] = {"reason", "ReferralReason", 15},
    [ASY_DIM_EG_AGE_SEX] = {"ethnic_group_age_sex", NULL,
                            ASY_EG_GROUPS * ASY_AGE_GROUPS * ASY_SEX_SLOTS},
};

const int asy_family_dims[ASY_FAM_COUNT][ASY_FAM_DIMS_MAX] = {
    [ASY_FAM_M1] = {ASY_DIM_TOTAL, ASY_DIM_SOURCE, ASY_DIM_SOURCE_GROUP, ASY_DIM_SERVICE, ASY_DIM_ONS, ASY_DIM_EG,
                    ASY_DIM_NHS, ASY_DIM_AGE, ASY_DIM_SEX, ASY_DIM_GENDER, ASY_DIM_DISABILITY,
                    ASY_DIM_RELIGION, ASY_DIM_ORIENTATION, ASY_DIM_REASON, -1},
    [ASY_FAM_M2] = {ASY_DIM_TOTAL, ASY_DIM_SERVICE, ASY_DIM_ONS, ASY_DIM_EG, ASY_DIM_AGE,
                    ASY_DIM_SEX, ASY_DIM_GENDER, ASY_DIM_DISABILITY, -1},
    [ASY_FAM_M4] = {ASY_DIM_TOTAL, ASY_DIM_SERVICE, ASY_DIM_ONS, ASY_DIM_EG, ASY_DIM_AGE,
                    ASY_DIM_SEX, -1},
    [ASY_FAM_M5] = {ASY_DIM_TOTAL, ASY_DIM_SERVICE, ASY_DIM_ONS, ASY_DIM_EG, ASY_DIM_AGE,
                    ASY_DIM_SEX, -1},
    [ASY_FAM_M6] = {ASY_DIM_TOTAL, ASY_DIM_ONS, ASY_DIM_EG, ASY_DIM_NHS, ASY_DIM_AGE, ASY_DIM_SEX,
                    ASY_DIM_GENDER, ASY_DIM_DISABILITY, -1},
    [ASY_FAM_M11D] = {ASY_DIM_TOTAL, ASY_DIM_EG, ASY_DIM_SERVICE, -1},
    [ASY_FAM_M11L] = {ASY_DIM_TOTAL, ASY_DIM_EG, ASY_DIM_SERVICE, -1},
    [ASY_FAM_REA] = {ASY_DIM_EG_AGE_SEX, -1},
    [ASY_FAM_RC] = {ASY_DIM_TOTAL, ASY_DIM_ONS, ASY_DIM_EG, -1},
    [ASY_FAM_M12] = {ASY_DIM_TOTAL, ASY_DIM_EG, ASY_DIM_SERVICE, -1},
};

/* Metrics published per period for a site / for the consortium (M3 is "now" only; M8-M10
   need population, which is the consortium's). */
const uint16_t asy_aggregate_site_topics =
    ASY_METRIC_BIT(1) | ASY_METRIC_BIT(2) | ASY_METRIC_BIT(4) | ASY_METRIC_BIT(5) |
    ASY_METRIC_BIT(6) | ASY_METRIC_BIT(7) | ASY_METRIC_BIT(11) | ASY_METRIC_BIT(12) |
    ASY_METRIC_BIT(13);
const uint16_t asy_aggregate_all_topics =
    ASY_METRIC_BIT(1) | ASY_METRIC_BIT(2) | ASY_METRIC_BIT(4) | ASY_METRIC_BIT(5) |
    ASY_METRIC_BIT(6) | ASY_METRIC_BIT(7) | ASY_METRIC_BIT(8) | ASY_METRIC_BIT(9) |
    ASY_METRIC_BIT(10) | ASY_METRIC_BIT(11) | ASY_METRIC_BIT(12) | ASY_METRIC_BIT(13);

/* ----------------------------------------------------------------------------------------------
   Groups. */

static const char *const s_eg_names[ASY_EG_GROUPS] = {
    "NOT_RECORDED", "ASIAN", "BLACK", "MIXED", "WHITE", "OTHER", "NOT_STATED", "NOT_KNOWN"};

static int s_ethnic_group(const asy_case_view_t *v)
{
    int ons = v->attr[ASY_ATTR_ETHNICITY_ONS], nhs = v->attr[ASY_ATTR_NHS_ETHNIC];
    if (ons >= 1 && ons <= 21)
        return ons <= 5 ? 1 : ons <= 8 ? 2 : ons <= 12 ? 3 : ons <= 17 ? 4 : ons <= 19 ? 5
                                                                        : ons == 20 ? 6 : 7;
    if (nhs >= 1 && nhs <= 18)
        return nhs <= 3 ? 4 : nhs <= 7 ? 3 : nhs <= 11 ? 1 : nhs <= 14 ? 2 : nhs <= 16 ? 5
                                                                        : nhs == 17 ? 6 : 7;
    return 0;
}

static int s_clamp(int value, int groups)
{
    return value >= 0 && value < groups ? value : 0;
}

/* The NHS ethnic category (NhsEthnicCategory): as recorded, else mapped from the ONS 2021
   category (domain brief (b); the reverse is one-to-many): the ONS group's own category, with
   Gypsy or Irish Traveller, Roma and any other White -> C, Chinese -> R, Arab and any other
   -> S, not stated -> Z, not known -> 99. */
static int s_nhs_category(const asy_case_view_t *v)
{
    static const int from_ons[22] = {
        [1] = 10 /* Bangladeshi K */,  [2] = 15 /* Chinese R */,    [3] = 8 /* Indian H */,
        [4] = 9 /* Pakistani J */,     [5] = 11 /* other Asian L */, [6] = 13 /* African N */,
        [7] = 12 /* Caribbean M */,    [8] = 14 /* other Black P */, [9] = 6 /* White+Asian F */,
        [10] = 5 /* White+Black African E */, [11] = 4 /* White+Black Caribbean D */,
        [12] = 7 /* other Mixed G */,  [13] = 1 /* British A */,    [14] = 2 /* Irish B */,
        [15] = 3 /* Gypsy or Irish Traveller C */, [16] = 3 /* Roma C */,
        [17] = 3 /* other White C */,  [18] = 16 /* Arab S */,      [19] = 16 /* any other S */,
        [20] = 17 /* not stated Z */,  [21] = 18 /* not known 99 */};
    int nhs = v->attr[ASY_ATTR_NHS_ETHNIC], ons = v->attr[ASY_ATTR_ETHNICITY_ONS];
    if (nhs >= 1 && nhs <= 18)
        return nhs;
    return ons >= 1 && ons <= 21 ? from_ons[ons] : 0;
}

/* The group index of a ReferralSource: its value, the advocacy additions (30-34) after P. */
static int s_source(const asy_case_view_t *v)
{
    return v->source >= 30 && v->source <= 34 ? 19 + v->source - 30 : s_clamp(v->source, 19);
}

int asy_dim_group(const asy_case_view_t *v, asy_dim_t dim)
{
    switch (dim) {
    case ASY_DIM_SOURCE:
        return s_source(v);
    case ASY_DIM_SOURCE_GROUP: {
        /* the MHSDS groups (domain brief (b)): A1 GP in A primary care, B1 self and B2 carer
           in B self; the advocacy additions are groups of their own */
        int source = s_source(v);
        return source == 2 ? 1 : source == 4 || source == 5 ? 3 : source;
    }
    case ASY_DIM_SERVICE:
        return s_clamp(v->service, 3);
    case ASY_DIM_ONS:
        return s_clamp(v->attr[ASY_ATTR_ETHNICITY_ONS], ASY_ONS_GROUPS);
    case ASY_DIM_EG:
        return s_ethnic_group(v);
    case ASY_DIM_NHS:
        return s_nhs_category(v);
    case ASY_DIM_AGE:
        return s_clamp(v->attr[ASY_ATTR_AGE_BAND], ASY_AGE_GROUPS);
    case ASY_DIM_SEX:
        return s_clamp(v->attr[ASY_ATTR_SEX], 4);
    case ASY_DIM_GENDER: {
        int g = v->attr[ASY_ATTR_GENDER];
        return g == 9 ? 5 : g == 10 ? 6 : s_clamp(g, 5);
    }
    case ASY_DIM_DISABILITY:
        return s_clamp(v->attr[ASY_ATTR_DISABILITY], 8);
    case ASY_DIM_RELIGION:
        return s_clamp(v->attr[ASY_ATTR_RELIGION], 10);
    case ASY_DIM_ORIENTATION:
        return s_clamp(v->attr[ASY_ATTR_SEXUAL_ORIENTATION], 6);
    case ASY_DIM_REASON:
        return (int)(v->reasons & ((1u << asy_dims[ASY_DIM_REASON].groups) - 1) & ~1u);
    case ASY_DIM_EG_AGE_SEX:
        return (s_ethnic_group(v) * ASY_AGE_GROUPS +
                s_clamp(v->attr[ASY_ATTR_AGE_BAND], ASY_AGE_GROUPS)) *
                   ASY_SEX_SLOTS +
               s_clamp(v->attr[ASY_ATTR_SEX], ASY_SEX_SLOTS);
    default:
        return 0;
    }
}

const char *asy_dim_group_name(asy_dim_t dim, int index)
{
    if (dim == ASY_DIM_TOTAL)
        return "ALL";
    if (dim == ASY_DIM_EG)
        return index >= 0 && index < ASY_EG_GROUPS ? s_eg_names[index] : "?";
    int value = index;
    if ((dim == ASY_DIM_SOURCE || dim == ASY_DIM_SOURCE_GROUP) && index >= 19)
        value = 30 + index - 19;
    if (dim == ASY_DIM_GENDER && index >= 5)
        value = index == 5 ? 9 : 10;
    const char *name = asy_dims[dim].enum_name
                           ? asy_enum_value_name(asy_dims[dim].enum_name, value)
                           : NULL;
    return name ? name : "?";
}

/* ----------------------------------------------------------------------------------------------
   The window of periods. */

static asy_date_t s_fy_start(asy_date_t date)
{
    int year, month;
    asy_date_to_ymd(date, &year, &month, NULL);
    return asy_date_from_civil(month >= 4 ? year : year - 1, 4, 1);
}

static void s_add_period(asy_aggregate_t *self, asy_period_kind_t kind, int year, int month)
{
    asy_period_t *p = &self->periods[self->period_count++];
    int months = kind == ASY_PERIOD_MONTH ? 1 : kind == ASY_PERIOD_QUARTER ? 3 : 12;
    p->kind = kind;
    p->start = asy_date_from_civil(year, month, 1);
    p->end = asy_date_from_civil(year + (month - 1 + months) / 12, (month - 1 + months) % 12 + 1,
                                 1) - 1;
    int fy = month >= 4 ? year : year - 1;
    if (kind == ASY_PERIOD_MONTH)
        snprintf(p->name, sizeof p->name, "%04d-%02d", year, month);
    else if (kind == ASY_PERIOD_QUARTER)
        snprintf(p->name, sizeof p->name, "%04d-%02d-Q%d", fy, (fy + 1) % 100,
                 (month + 8) % 12 / 3 + 1);
    else
        snprintf(p->name, sizeof p->name, "%04d-%02d", fy, (fy + 1) % 100);
}

/* Months, then quarters, then financial years, each oldest first, started by today. */
static int s_make_window(asy_aggregate_t *self)
{
    free(self->periods);
    self->period_count = 0;
    self->periods = calloc((size_t)self->history_years * 17, sizeof *self->periods);
    if (!self->periods)
        return ASY_ENOMEM;
    int year, month;
    asy_date_to_ymd(s_fy_start(self->today), &year, NULL, NULL);
    int first = year - (self->history_years - 1);
    for (int step = 1; step <= 12; step += step == 1 ? 2 : 9) {
        asy_period_kind_t kind = step == 1    ? ASY_PERIOD_MONTH
                                 : step == 3 ? ASY_PERIOD_QUARTER
                                             : ASY_PERIOD_YEAR;
        for (int m = 0;; m += step) {
            int y = first + (3 + m) / 12;
            month = (3 + m) % 12 + 1;
            if (asy_date_from_civil(y, month, 1) > self->today)
                break;
            s_add_period(self, kind, y, month);
        }
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------------
   Scopes and their storage. */

static void s_hist_free(asy_hist_t *hist)
{
    free(hist->counts);
    memset(hist, 0, sizeof *hist);
}

static void s_free_storage(asy_aggregate_t *self)
{
    for (int i = 0; self->counters && i < self->scope_count * self->period_count; i++)
        free(self->counters[i]);
    free(self->counters);
    self->counters = NULL;
    for (int s = 0; self->waits && s < self->scope_count; s++)
        for (int h = 0; h < ASY_WAIT_HISTS; h++)
            s_hist_free(&self->waits[s][h]);
    free(self->waits);
    self->waits = NULL;
    free(self->dirty);
    self->dirty = NULL;
    free(self->fresh);
    self->fresh = NULL;
    free(self->fresh_rows);
    self->fresh_rows = NULL;
    self->fresh_count = 0;
}

/* Frees the counter rows of scopes [from, to) and leaves them NULL. */
static void s_empty_rows(asy_aggregate_t *self, int from, int to)
{
    for (int i = from * self->period_count; i < to * self->period_count; i++) {
        free(self->counters[i]);
        self->counters[i] = NULL;
    }
}

/* (Re)allocates counters, histograms and dirty bits for scope_capacity scopes; the rows of
   scopes [from, to) are new and zero. Returns 0 or ASY_ENOMEM; on failure the new rows hold
   nothing (NULL counters, zeroed histograms), so s_free_storage stays safe. */
static int s_grow_storage(asy_aggregate_t *self, int from, int to)
{
    int np = self->period_count, cap = self->scope_capacity;
    int64_t **counters = realloc(self->counters, (size_t)cap * (size_t)(np ? np : 1) *
                                                     sizeof *counters);
    if (!counters)
        return ASY_ENOMEM;
    self->counters = counters;
    for (int i = from * np; i < to * np; i++)
        self->counters[i] = NULL;
    asy_hist_t(*waits)[ASY_WAIT_HISTS] = realloc(self->waits, (size_t)cap * sizeof *waits);
    if (!waits)
        return ASY_ENOMEM;
    self->waits = waits;
    for (int s = from; s < to; s++)
        memset(self->waits[s], 0, sizeof self->waits[s]);
    size_t rows = (size_t)cap * (size_t)(np + 1);
    uint16_t *dirty = realloc(self->dirty, rows * sizeof *dirty);
    if (!dirty)
        return ASY_ENOMEM;
    self->dirty = dirty;
    uint16_t *fresh = realloc(self->fresh, rows * sizeof *fresh);
    if (!fresh)
        return ASY_ENOMEM;
    self->fresh = fresh;
    size_t *fresh_rows = realloc(self->fresh_rows, rows * sizeof *fresh_rows);
    if (!fresh_rows)
        return ASY_ENOMEM;
    self->fresh_rows = fresh_rows;
    for (int s = from; s < to; s++) {
        for (int p = 0; p <= np; p++)
            self->dirty[s * (np + 1) + p] = self->fresh[s * (np + 1) + p] = 0;
        for (int p = 0; p < np; p++) {
            self->counters[s * np + p] = calloc(2 * (size_t)self->cells, sizeof(int64_t));
            if (!self->counters[s * np + p]) {
                s_empty_rows(self, from, to);
                return ASY_ENOMEM;
            }
        }
    }
    /* every topic of the new scopes is to be published; marked only now that their storage is
       whole, so a failure leaves no row of a scope that is not counted in the fresh list */
    for (int s = from; s < to; s++)
        for (int p = 0; p <= np; p++)
            asy_aggregate_mark(self, (size_t)(s * (np + 1) + p),
                               p < np ? (s ? asy_aggregate_site_topics : asy_aggregate_all_topics)
                                      : ASY_METRIC_BIT(3));
    return 0;
}

static int s_scope_of(asy_aggregate_t *self, const char *site_id)
{
    void *found = zhashx_lookup(self->scope_index, site_id);
    if (found)
        return (int)(intptr_t)found - 1;
    if (self->scope_count == self->scope_capacity) {
        int capacity = self->scope_capacity * 2;
        char **names = realloc(self->scope_names, (size_t)capacity * sizeof *names);
        if (!names)
            return ASY_ENOMEM;
        self->scope_names = names;
        self->scope_capacity = capacity;
        /* counters rows are indexed scope * np + p: the new capacity keeps old rows in place */
    }
    char *name = strdup(site_id);
    if (!name)
        return ASY_ENOMEM;
    /* dirty rows are indexed scope * (np + 1) + p, also stable when capacity grows; the scope
       is counted only once its storage is whole, so a failure leaves no half-made scope */
    int scope = self->scope_count;
    int rc = s_grow_storage(self, scope, scope + 1);
    if (rc != 0) {
        free(name);
        return rc;
    }
    self->scope_count++;
    self->scope_names[scope] = name;
    zhashx_insert(self->scope_index, site_id, (void *)(intptr_t)(scope + 1));
    return scope;
}

/* ----------------------------------------------------------------------------------------------
   Persons and deadlines (their contributions: aggregate_contribute.c). */

/* The key a case's person is filed under: "p" + person_key, or "c" + case_id without one. */
static void s_person_key(const asy_case_view_t *view, char out[ASY_PSEUDONYM_HEX + 2])
{
    snprintf(out, ASY_PSEUDONYM_HEX + 2, "%c%s", view->person_key[0] ? 'p' : 'c',
             view->person_key[0] ? view->person_key : view->case_id);
}

/* The person filed under key, created (empty) if new; NULL on ENOMEM. */
static asy_agg_person_t *s_person(asy_aggregate_t *self, const char *key)
{
    asy_agg_person_t *person = zhashx_lookup(self->persons, key);
    if (!person) {
        person = calloc(1, sizeof *person);
        if (person)
            zhashx_insert(self->persons, key, person);
    }
    return person;
}

/* Makes room for one more case. */
static int s_person_reserve(asy_agg_person_t *person)
{
    if (person->count < person->capacity)
        return 0;
    int capacity = person->capacity ? 2 * person->capacity : 2;
    asy_agg_case_t **cases = realloc(person->cases, (size_t)capacity * sizeof *cases);
    if (!cases)
        return ASY_ENOMEM;
    person->cases = cases;
    person->capacity = capacity;
    return 0;
}

/* After s_person_reserve: cannot fail. */
static void s_person_add(asy_agg_person_t *person, asy_agg_case_t *c)
{
    person->cases[person->count++] = c;
    c->person = person;
}

/* Takes c from the person filed under key; returns true if that freed the person. */
static bool s_person_remove(asy_aggregate_t *self, asy_agg_person_t *person, asy_agg_case_t *c,
                            const char *key)
{
    for (int i = 0; i < person->count; i++)
        if (person->cases[i] == c) {
            person->cases[i] = person->cases[--person->count];
            break;
        }
    c->person = NULL;
    if (person->count > 0)
        return false;
    zhashx_delete(self->persons, key);
    return true;
}

static void s_deadlines(const asy_aggregate_t *self, asy_agg_case_t *c)
{
    c->contact_deadline = c->meeting_deadline = ASY_NO_DATE;
    if (c->view.received == ASY_NO_DATE)
        return;
    c->contact_deadline =
        asy_calendar_add_working_days(self->calendar, c->view.received,
                                      ASY_SLA_CONTACT_WORKING_DAYS);
    c->meeting_deadline =
        asy_calendar_add_working_days(self->calendar, c->view.received,
                                      ASY_SLA_MEETING_WORKING_DAYS);
}

/* ----------------------------------------------------------------------------------------------
   Life cycle. */

static void s_free_person(void **item)
{
    asy_agg_person_t *person = *item;
    if (person)
        free(person->cases);
    free(person);
    *item = NULL;
}

static void s_free_case(void **item)
{
    asy_agg_case_t *c = *item;
    if (c)
        free(c->slots);
    free(c);
    *item = NULL;
}

asy_aggregate_t *asy_aggregate_new(const asy_calendar_t *calendar, int history_years,
                                   asy_date_t today)
{
    asy_aggregate_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->calendar = calendar;
    self->history_years = history_years > 0 ? history_years : 2;
    self->today = today;
    for (int f = 0; f < ASY_FAM_COUNT; f++)
        for (int k = 0; asy_family_dims[f][k] >= 0; k++) {
            self->offset[f][k] = self->cells;
            self->cells += asy_dims[asy_family_dims[f][k]].groups;
        }
    self->cases = zhashx_new();
    self->persons = zhashx_new();
    self->scope_index = zhashx_new();
    self->scope_capacity = 8;
    self->scope_names = calloc((size_t)self->scope_capacity, sizeof *self->scope_names);
    if (!self->cases || !self->persons || !self->scope_index || !self->scope_names ||
        s_make_window(self) != 0) {
        asy_aggregate_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->cases, s_free_case);
    zhashx_set_destructor(self->persons, s_free_person);
    self->scope_names[0] = strdup("all");
    self->scope_count = 1;
    if (!self->scope_names[0] || s_grow_storage(self, 0, 1) != 0)
        asy_aggregate_destroy(&self);
    return self;
}

void asy_aggregate_destroy(asy_aggregate_t **self_p)
{
    asy_aggregate_t *self = *self_p;
    if (!self)
        return;
    s_free_storage(self);
    zhashx_destroy(&self->persons);
    zhashx_destroy(&self->cases);
    zhashx_destroy(&self->scope_index);
    for (int s = 0; self->scope_names && s < self->scope_count; s++)
        free(self->scope_names[s]);
    free(self->scope_names);
    free(self->periods);
    free(self);
    *self_p = NULL;
}

int asy_aggregate_rebuild(asy_aggregate_t *self)
{
    s_free_storage(self);
    int rc = s_make_window(self);
    if (rc == 0)
        rc = s_grow_storage(self, 0, self->scope_count);
    for (asy_agg_case_t *c = zhashx_first(self->cases); rc == 0 && c;
         c = zhashx_next(self->cases)) {
        s_deadlines(self, c);
        asy_aggregate_contribute(self, c, +1, c->person->count == 1);
    }
    for (asy_agg_person_t *person = zhashx_first(self->persons); rc == 0 && person;
         person = zhashx_next(self->persons))
        if (person->count > 1)
            asy_aggregate_person_contribute(self, person, +1);
    return rc;
}

int asy_aggregate_set_calendar(asy_aggregate_t *self, const asy_calendar_t *calendar)
{
    self->calendar = calendar;
    return asy_aggregate_rebuild(self);
}

int asy_aggregate_set_today(asy_aggregate_t *self, asy_date_t today)
{
    if (today == self->today)
        return 0;
    self->today = today;
    return asy_aggregate_rebuild(self);
}

asy_date_t asy_aggregate_today(const asy_aggregate_t *self)
{
    return self->today;
}

/* Whether two views of a case count alike: every field but the version equal. */
_Static_assert(sizeof(asy_case_view_t) == 288,
               "asy_case_view_t changed: compare its new field in s_same_but_version");
static bool s_same_but_version(const asy_case_view_t *a, const asy_case_view_t *b)
{
    return a->service == b->service && a->source == b->source && a->reasons == b->reasons &&
           a->received == b->received && a->contacted == b->contacted && a->met == b->met &&
           a->declined == b->declined && a->closed == b->closed && a->decided == b->decided &&
           a->q_start == b->q_start && a->q_end == b->q_end &&
           a->left_before_goals == b->left_before_goals &&
           memcmp(a->attr, b->attr, sizeof a->attr) == 0 && strcmp(a->site_id, b->site_id) == 0 &&
           strcmp(a->person_key, b->person_key) == 0 && strcmp(a->case_id, b->case_id) == 0;
}

int asy_aggregate_put(asy_aggregate_t *self, const asy_case_view_t *view, bool *changed)
{
    if (changed)
        *changed = false;
    asy_agg_case_t *c = zhashx_lookup(self->cases, view->case_id);
    if (c && view->version <= c->view.version)
        return 0;
    if (c && s_same_but_version(&c->view, view)) {
        /* most events of a case (contacts after the first, goals, notes, outcomes...) move
           nothing the figures count: taking the case out and putting it back would cost the
           same counters twice for nothing */
        c->view.version = view->version;
        return 0;
    }
    int scope = s_scope_of(self, view->site_id);
    if (scope < 0)
        return scope;
    /* everything that can fail first, so that a failure leaves the counters as they were */
    char key[ASY_PSEUDONYM_HEX + 2], old_key[ASY_PSEUDONYM_HEX + 2] = "";
    asy_agg_person_t *old = c ? c->person : NULL;
    asy_agg_person_t *person = old;
    if (!old || strcmp(c->view.person_key, view->person_key) != 0) {
        s_person_key(view, key);
        person = s_person(self, key);
        if (old)
            s_person_key(&c->view, old_key);
    }
    bool fresh = !c;
    if (fresh)
        c = calloc(1, sizeof *c);
    if (!person || !c || (person != old && s_person_reserve(person) != 0)) {
        if (fresh)
            free(c);
        return ASY_ENOMEM;
    }
    if (fresh) /* the hash keeps the pointer we gave it (no duplicator set) */
        zhashx_insert(self->cases, view->case_id, c);
    else
        asy_aggregate_case_and_person(self, c, -1);
    if (person != old) {
        asy_aggregate_person_contribute(self, person, -1);
        if (old && s_person_remove(self, old, c, old_key))
            old = NULL; /* that was its only case: gone */
        s_person_add(person, c);
    }
    c->view = *view;
    c->scope = scope;
    s_deadlines(self, c);
    asy_aggregate_case_and_person(self, c, +1);
    if (old && old != person)
        asy_aggregate_person_contribute(self, old, +1);
    if (changed)
        *changed = true;
    return 0;
}

int asy_aggregate_put_outcome(asy_aggregate_t *self, const asy_outcome_view_t *o)
{
    asy_agg_case_t *c = zhashx_lookup(self->cases, o->case_id);
    if (!c)
        return ASY_ENOTFOUND;
    asy_agg_slot_t *slot = NULL;
    for (int i = 0; i < c->slot_count && !slot; i++)
        if (c->slots[i].area == o->area && c->slots[i].edition == o->edition)
            slot = &c->slots[i];
    if (slot && slot->readings >= o->readings)
        return 0;
    if (!slot) {
        asy_agg_slot_t *slots = realloc(c->slots, (size_t)(c->slot_count + 1) * sizeof *slots);
        if (!slots)
            return ASY_ENOMEM;
        c->slots = slots;
        slot = &c->slots[c->slot_count];
        memset(slot, 0, sizeof *slot);
        slot->area = (int16_t)o->area;
        slot->edition = (int16_t)o->edition;
        /* not counted yet: readings 0 contributes nothing */
        c->slot_count++;
    }
    asy_aggregate_person_contribute(self, c->person, -1);
    slot->first_score = (int16_t)o->first_score;
    slot->last_score = (int16_t)o->last_score;
    slot->last_date = o->last_date;
    slot->readings = o->readings;
    memcpy(slot->first_ver, o->first_ver, sizeof slot->first_ver);
    memcpy(slot->last_ver, o->last_ver, sizeof slot->last_ver);
    asy_aggregate_person_contribute(self, c->person, +1);
    return 0;
}

const asy_case_view_t *asy_aggregate_case(const asy_aggregate_t *self, const char *case_id)
{
    asy_agg_case_t *c = zhashx_lookup(self->cases, case_id);
    return c ? &c->view : NULL;
}

size_t asy_aggregate_case_count(const asy_aggregate_t *self)
{
    return zhashx_size(self->cases);
}

void asy_aggregate_each_case(const asy_aggregate_t *self,
                             void (*fn)(void *arg, const asy_case_view_t *view), void *arg)
{
    for (asy_agg_case_t *c = zhashx_first(self->cases); c; c = zhashx_next(self->cases))
        fn(arg, &c->view);
}

void asy_aggregate_clear_population(asy_aggregate_t *self)
{
    memset(self->population, 0, sizeof self->population);
    memset(self->population_sex, 0, sizeof self->population_sex);
    self->has_population = false;
    for (int p = 0; p < self->period_count; p++)
        asy_aggregate_mark(self, (size_t)p,
                           ASY_METRIC_BIT(8) | ASY_METRIC_BIT(9) | ASY_METRIC_BIT(10));
}

void asy_aggregate_set_population(asy_aggregate_t *self, int ethnicity_ons, int age_band,
                                  double population)
{
    if (ethnicity_ons < 0 || ethnicity_ons >= 20 || age_band < 0 || age_band >= ASY_AGE_GROUPS)
        return;
    self->population[ethnicity_ons][age_band] = population;
    self->has_population = true;
    for (int p = 0; p < self->period_count; p++)
        asy_aggregate_mark(self, (size_t)p,
                           ASY_METRIC_BIT(8) | ASY_METRIC_BIT(9) | ASY_METRIC_BIT(10));
}

void asy_aggregate_set_population_by_sex(asy_aggregate_t *self, int ethnicity_ons, int age_band,
                                         int sex, double population)
{
    if (ethnicity_ons < 0 || ethnicity_ons >= 20 || age_band < 0 || age_band >= ASY_AGE_GROUPS ||
        sex < 1 || sex > ASY_SEXES)
        return;
    self->population_sex[ethnicity_ons][age_band][sex - 1] = population;
    for (int p = 0; p < self->period_count; p++)
        asy_aggregate_mark(self, (size_t)p, ASY_METRIC_BIT(10));
}

bool asy_aggregate_settled(const asy_case_view_t *view, int kind, asy_date_t deadline)
{
    asy_date_t done = kind == ASY_BREACH_CONTACT ? view->contacted : view->met;
    return deadline != ASY_NO_DATE && (asy_aggregate_on_time(done, deadline) ||
                                       asy_aggregate_on_time(view->declined, deadline));
}

unsigned asy_aggregate_breaches(const asy_aggregate_t *self, const asy_case_view_t *view,
                                asy_date_t deadline[2])
{
    asy_agg_case_t c = {.view = *view};
    s_deadlines(self, &c);
    deadline[0] = c.contact_deadline;
    deadline[1] = c.meeting_deadline;
    unsigned mask = 0;
    if (asy_aggregate_matured(self, view, c.contact_deadline) &&
        !asy_aggregate_on_time(view->contacted, c.contact_deadline))
        mask |= 1u << (ASY_BREACH_CONTACT - 1);
    if (asy_aggregate_matured(self, view, c.meeting_deadline) &&
        !asy_aggregate_on_time(view->met, c.meeting_deadline))
        mask |= 1u << (ASY_BREACH_MEETING - 1);
    return mask;
}

/* ----------------------------------------------------------------------------------------------
   Topics. */

int asy_aggregate_scope_count(const asy_aggregate_t *self)
{
    return self->scope_count;
}

const char *asy_aggregate_scope_name(const asy_aggregate_t *self, int scope)
{
    return scope >= 0 && scope < self->scope_count ? self->scope_names[scope] : NULL;
}

int asy_aggregate_period_count(const asy_aggregate_t *self)
{
    return self->period_count;
}

/* The next dirty topic at or after *cursor (a position = row index x 16 + metric) among count
   rows: row k is list[k] (or k itself without a list), its topics those of dirty[row] also in
   also[row] (or all of them without also). */
static bool s_next_topic(const asy_aggregate_t *self, size_t *cursor, const size_t *list,
                         size_t count, const uint16_t *also, asy_topic_ref_t *ref)
{
    for (size_t i = *cursor; i < count * 16; i++) {
        size_t row = list ? list[i / 16] : i / 16;
        int metric = (int)(i % 16);
        if (!(self->dirty[row] & (also ? also[row] : 0xFFFFu) & ASY_METRIC_BIT(metric)))
            continue;
        ref->scope = (int)(row / (size_t)(self->period_count + 1));
        ref->period = (int)(row % (size_t)(self->period_count + 1));
        ref->metric = metric;
        *cursor = i + 1;
        return true;
    }
    *cursor = count * 16;
    return false;
}

bool asy_aggregate_next_dirty(asy_aggregate_t *self, size_t *cursor, asy_topic_ref_t *ref)
{
    size_t rows = (size_t)self->scope_count * (size_t)(self->period_count + 1);
    return s_next_topic(self, cursor, NULL, rows, NULL, ref);
}

bool asy_aggregate_next_fresh(asy_aggregate_t *self, size_t *cursor, asy_topic_ref_t *ref)
{
    return s_next_topic(self, cursor, self->fresh_rows, self->fresh_count, self->fresh, ref);
}

void asy_aggregate_forget_fresh(asy_aggregate_t *self, size_t cursor)
{
    size_t done = cursor / 16 < self->fresh_count ? cursor / 16 : self->fresh_count;
    for (size_t k = 0; k < done; k++)
        self->fresh[self->fresh_rows[k]] = 0;
    self->fresh_count -= done;
    memmove(self->fresh_rows, self->fresh_rows + done, self->fresh_count * sizeof *self->fresh_rows);
}

void asy_aggregate_clean(asy_aggregate_t *self, const asy_topic_ref_t *ref)
{
    self->dirty[ref->scope * (self->period_count + 1) + ref->period] &=
        (uint16_t)~ASY_METRIC_BIT(ref->metric);
}

void asy_aggregate_topic(const asy_aggregate_t *self, const asy_topic_ref_t *ref,
                         char out[ASY_TOPIC_MAX])
{
    const char *period =
        ref->period < self->period_count ? self->periods[ref->period].name : "now";
    if (ref->scope == 0)
        snprintf(out, ASY_TOPIC_MAX, "all/M%d/%s", ref->metric, period);
    else
        snprintf(out, ASY_TOPIC_MAX, "site/%s/M%d/%s", self->scope_names[ref->scope],
                 ref->metric, period);
}
