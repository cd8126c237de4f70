/*  aggregate_contribute.c: what a case, and a person from all of their cases, add to the
    aggregate's counters (the membership rules of proto/PROTOCOL.md 12.2). See aggregate.c for
    how the counters are kept.  */
#include "aggregate_private.h"

#include <stdlib.h>
#include <string.h>

#define S_PERSON_FAMILIES (1u << ASY_FAM_M2 | 1u << ASY_FAM_M6 | 1u << ASY_FAM_M12)
#define S_PERSON_CASES_ON_STACK 8
#define S_READINGS_ON_STACK 32

/* The topics each family feeds. */
static const uint16_t s_family_topics[ASY_FAM_COUNT] = {
    [ASY_FAM_M1] = ASY_METRIC_BIT(1) | ASY_METRIC_BIT(8) | ASY_METRIC_BIT(9) | ASY_METRIC_BIT(13),
    [ASY_FAM_M2] = ASY_METRIC_BIT(2),
    [ASY_FAM_M4] = ASY_METRIC_BIT(4),
    [ASY_FAM_M5] = ASY_METRIC_BIT(5),
    [ASY_FAM_M6] = ASY_METRIC_BIT(6) | ASY_METRIC_BIT(7) | ASY_METRIC_BIT(8),
    [ASY_FAM_M11D] = ASY_METRIC_BIT(11),
    [ASY_FAM_M11L] = ASY_METRIC_BIT(11),
    [ASY_FAM_REA] = ASY_METRIC_BIT(10),
    [ASY_FAM_M12] = ASY_METRIC_BIT(12),
    [ASY_FAM_RC] = ASY_METRIC_BIT(8) | ASY_METRIC_BIT(9),
};

#define S_IMHA 1      /* ServiceType SERVICE_IMHA */
#define S_COMMUNITY 2 /* ServiceType SERVICE_COMMUNITY */

/* ----------------------------------------------------------------------------------------------
   Contributions. */

static bool s_in(asy_date_t date, const asy_period_t *p)
{
    return date != ASY_NO_DATE && date >= p->start && date <= p->end;
}

static void s_hist_add(asy_hist_t *hist, asy_date_t day, int sign)
{
    if (!hist->counts || day < hist->base || day >= hist->base + hist->length) {
        asy_date_t low = hist->counts && hist->base < day ? hist->base : day - 64;
        asy_date_t high = hist->counts && hist->base + hist->length > day + 1
                              ? hist->base + hist->length
                              : day + 64;
        int64_t *counts = calloc((size_t)(high - low), sizeof *counts);
        if (!counts)
            return; /* counted nowhere: the next rebuild retries (logged by the monitor) */
        if (hist->counts)
            memcpy(counts + (hist->base - low), hist->counts,
                   (size_t)hist->length * sizeof *counts);
        free(hist->counts);
        hist->counts = counts;
        hist->base = low;
        hist->length = high - low;
    }
    hist->counts[day - hist->base] += sign;
    hist->total += sign;
}

static void s_add_family(asy_aggregate_t *self, int64_t *block, int family, const int *groups,
                         int a, int b)
{
    for (int k = 0; asy_family_dims[family][k] >= 0; k++) {
        int dim = asy_family_dims[family][k];
        if (dim == ASY_DIM_REASON) { /* a bit mask: every reason given, or none recorded */
            unsigned mask = (unsigned)groups[dim];
            for (int g = 0; g < asy_dims[dim].groups; g++)
                if (mask & (1u << g) || (g == 0 && mask == 0)) {
                    *asy_counter(self, block, family, k, g, 0) += a;
                    *asy_counter(self, block, family, k, g, 1) += b;
                }
            continue;
        }
        int g = groups[dim];
        *asy_counter(self, block, family, k, g, 0) += a;
        *asy_counter(self, block, family, k, g, 1) += b;
    }
}

static bool s_stated(const asy_case_view_t *v)
{
    int ons = v->attr[ASY_ATTR_ETHNICITY_ONS], nhs = v->attr[ASY_ATTR_NHS_ETHNIC];
    return (ons >= 1 && ons <= 19) || (nhs >= 1 && nhs <= 16);
}

/* M12 of a person: the latest reading of an area read twice or more (ASY_NO_DATE if none), and
   whether any such area rose by a point or more from its first reading. */
typedef struct {
    asy_date_t latest;
    bool improved;
} s_recovery_t;

/* Whether case a is the later of two for a person's groups. */
static bool s_later(const asy_agg_case_t *a, const asy_agg_case_t *b)
{
    if (a->view.received != b->view.received)
        return a->view.received > b->view.received;
    return strcmp(a->view.case_id, b->view.case_id) > 0;
}

/* M12 of a person in one scope (0: all of their cases; else their cases at that site). A
   person's readings of one area and edition are one series across their cases: its first
   reading is the earliest case's first (by version), its latest the latest's, its count the
   sum. member: the latest case (s_later) holding a reading of a series read twice or more:
   the person counts in its groups; -1 if there is no such series. The person's readings are
   sorted by series, so a person with very many cases (a placeholder identifier shared by
   unrelated records) costs O(m log m), not O(m^2), in their m readings. */
typedef struct {
    s_recovery_t recovery;
    int member;
} s_joined_t;

typedef struct {
    const asy_agg_slot_t *slot;
    int holder; /* the case's index in person->cases */
} s_reading_t;

static int s_by_series(const void *a, const void *b)
{
    const s_reading_t *x = a, *y = b;
    if (x->slot->area != y->slot->area)
        return x->slot->area < y->slot->area ? -1 : 1;
    if (x->slot->edition != y->slot->edition)
        return x->slot->edition < y->slot->edition ? -1 : 1;
    return (x->holder > y->holder) - (x->holder < y->holder);
}

static bool s_in_scope(const asy_agg_case_t *c, int scope)
{
    return scope == 0 || c->scope == scope;
}

static s_joined_t s_recovery_joined(const asy_agg_person_t *person, int scope)
{
    s_joined_t joined = {{ASY_NO_DATE, false}, -1};
    size_t count = 0;
    for (int i = 0; i < person->count; i++)
        if (s_in_scope(person->cases[i], scope))
            for (int k = 0; k < person->cases[i]->slot_count; k++)
                count += person->cases[i]->slots[k].readings > 0;
    if (count == 0)
        return joined;
    s_reading_t on_stack[S_READINGS_ON_STACK];
    s_reading_t *readings =
        count <= S_READINGS_ON_STACK ? on_stack : malloc(count * sizeof *readings);
    if (!readings)
        return joined; /* counted nowhere: the next rebuild retries */
    size_t n = 0;
    for (int i = 0; i < person->count; i++)
        if (s_in_scope(person->cases[i], scope))
            for (int k = 0; k < person->cases[i]->slot_count; k++)
                if (person->cases[i]->slots[k].readings > 0)
                    readings[n++] = (s_reading_t){&person->cases[i]->slots[k], i};
    qsort(readings, n, sizeof *readings, s_by_series);
    for (size_t start = 0, end; start < n; start = end) {
        const asy_agg_slot_t *first = readings[start].slot, *last = first;
        int64_t total = 0;
        int holder = readings[start].holder;
        for (end = start; end < n && readings[end].slot->area == first->area &&
                          readings[end].slot->edition == first->edition;
             end++) {
            const asy_agg_slot_t *slot = readings[end].slot;
            total += slot->readings;
            if (strcmp(slot->first_ver, first->first_ver) < 0)
                first = slot;
            if (strcmp(slot->last_ver, last->last_ver) > 0)
                last = slot;
            if (s_later(person->cases[readings[end].holder], person->cases[holder]))
                holder = readings[end].holder;
        }
        if (total < 2)
            continue;
        if (joined.recovery.latest == ASY_NO_DATE || last->last_date > joined.recovery.latest)
            joined.recovery.latest = last->last_date;
        joined.recovery.improved |= last->last_score - first->first_score >= 1;
        if (joined.member < 0 || s_later(person->cases[holder], person->cases[joined.member]))
            joined.member = holder;
    }
    if (readings != on_stack)
        free(readings);
    return joined;
}

/* The families a case counts in for period p, with their numerator flags. */
static uint16_t s_members(const asy_aggregate_t *self, const asy_agg_case_t *c,
                          const s_recovery_t *recovery, const asy_period_t *p, int b[ASY_FAM_COUNT])
{
    const asy_case_view_t *v = &c->view;
    uint16_t in = 0;
    if (s_in(v->received, p)) {
        in |= 1u << ASY_FAM_M1;
        b[ASY_FAM_M1] = s_stated(v);
        /* the rates against the population are the community service's, of people aged 18-64
           (or whose age is not recorded: M10 has no stratum for them) */
        int band = v->attr[ASY_ATTR_AGE_BAND];
        if (v->service == S_COMMUNITY && (band == 0 || asy_age_adult(band)))
            in |= 1u << ASY_FAM_REA | 1u << ASY_FAM_RC;
    }
    if (v->received != ASY_NO_DATE && v->received <= p->end &&
        !(v->closed != ASY_NO_DATE && v->closed < p->start) &&
        !(v->declined != ASY_NO_DATE && v->declined < p->start))
        in |= 1u << ASY_FAM_M2;
    if (s_in(c->contact_deadline, p) && asy_aggregate_matured(self, v, c->contact_deadline)) {
        in |= 1u << ASY_FAM_M4;
        b[ASY_FAM_M4] = asy_aggregate_on_time(v->contacted, c->contact_deadline);
    }
    if (s_in(c->meeting_deadline, p) && asy_aggregate_matured(self, v, c->meeting_deadline)) {
        in |= 1u << ASY_FAM_M5;
        b[ASY_FAM_M5] = asy_aggregate_on_time(v->met, c->meeting_deadline);
    }
    if (v->q_start != ASY_NO_DATE && v->q_start <= p->end &&
        (v->q_end == ASY_NO_DATE || v->q_end >= p->start)) {
        in |= 1u << ASY_FAM_M6;
        b[ASY_FAM_M6] = asy_aggregate_on_time(v->contacted, p->end);
    }
    asy_date_t decision = v->declined != ASY_NO_DATE ? v->declined : v->decided;
    if (s_in(decision, p)) {
        in |= 1u << ASY_FAM_M11D;
        b[ASY_FAM_M11D] = s_in(v->declined, p);
    }
    if (s_in(v->closed, p)) {
        in |= 1u << ASY_FAM_M11L;
        b[ASY_FAM_M11L] = v->left_before_goals;
    }
    if (s_in(recovery->latest, p)) {
        in |= 1u << ASY_FAM_M12;
        b[ASY_FAM_M12] = recovery->improved;
    }
    return in;
}

static bool s_waiting(const asy_aggregate_t *self, const asy_case_view_t *v)
{
    return v->received != ASY_NO_DATE && v->received <= self->today && v->closed == ASY_NO_DATE &&
           v->declined == ASY_NO_DATE && v->met == ASY_NO_DATE;
}

/* The case's own contribution: every family but the people-counting ones, and those too when
   with_person (the case is its person's only one: the same as asy_aggregate_person_contribute,
   faster). */
void asy_aggregate_contribute(asy_aggregate_t *self, const asy_agg_case_t *c, int sign,
                              bool with_person)
{
    int groups[ASY_DIM_COUNT];
    for (int d = 0; d < ASY_DIM_COUNT; d++)
        groups[d] = asy_dim_group(&c->view, (asy_dim_t)d);
    const int scopes[2] = {0, c->scope};
    /* M12 counts people: here only for a person whose one case this is (with_person) */
    const s_recovery_t recovery =
        with_person ? s_recovery_joined(c->person, 0).recovery : (s_recovery_t){ASY_NO_DATE, false};
    int np = self->period_count;
    for (int p = 0; p < np; p++) {
        int b[ASY_FAM_COUNT] = {0};
        uint16_t in = s_members(self, c, &recovery, &self->periods[p], b) &
                      (with_person ? 0xFFFFu : (uint16_t)~S_PERSON_FAMILIES);
        if (!in)
            continue;
        for (int s = 0; s < 2; s++) {
            int64_t *block = self->counters[scopes[s] * np + p];
            uint16_t topics = 0;
            for (int f = 0; f < ASY_FAM_COUNT; f++)
                if (in & (1u << f)) {
                    s_add_family(self, block, f, groups, sign, b[f] ? sign : 0);
                    topics |= s_family_topics[f];
                }
            asy_aggregate_mark(self, (size_t)(scopes[s] * (np + 1) + p),
                               topics & (scopes[s] ? asy_aggregate_site_topics
                                                   : asy_aggregate_all_topics));
        }
    }
    if (s_waiting(self, &c->view)) {
        int hists[3] = {0, 1 + groups[ASY_DIM_SERVICE], 4 + groups[ASY_DIM_EG]};
        for (int s = 0; s < 2; s++) {
            for (int h = 0; h < 3; h++)
                s_hist_add(&self->waits[scopes[s]][hists[h]], c->view.received, sign);
            asy_aggregate_mark(self, (size_t)(scopes[s] * (np + 1) + np), ASY_METRIC_BIT(3));
        }
    }
}

/* One of a person's cases in one period (asy_aggregate_person_contribute): its groups, the
   people-counting families it counts in, their numerator flags. */
typedef struct {
    int groups[ASY_DIM_COUNT];
    uint16_t in;
    int b[ASY_FAM_COUNT];
} s_member_t;

/* A scope a person counts in, with their M12 there. */
typedef struct {
    int scope;
    s_joined_t m12;
} s_scope_t;

/* The consortium, then each site the person has a case at (once); returns how many. */
static int s_person_scopes(const asy_agg_person_t *person, s_scope_t *scopes)
{
    int ns = 0;
    for (int s = -1; s < person->count; s++) {
        int scope = s < 0 ? 0 : person->cases[s]->scope;
        bool seen = false;
        for (int j = 0; j < ns && !seen; j++)
            seen = scopes[j].scope == scope;
        if (!seen)
            scopes[ns++] = (s_scope_t){scope, s_recovery_joined(person, scope)};
    }
    return ns;
}

/* Whether an IMHA case of the person (at any site) records a first contact from the start of
   their earliest qualifying episode among the M6 member cases in the scope up to the period's
   end: the domain brief (c) links a hospital's qualifying events and an IMHA site's contact
   by the person (the NHS number's key), not by the case. */
static bool s_reached_by_imha(const asy_agg_person_t *person, const s_member_t *m,
                             const s_scope_t *scope, const asy_period_t *period)
{
    asy_date_t first = ASY_NO_DATE;
    for (int i = 0; i < person->count; i++) {
        const asy_case_view_t *v = &person->cases[i]->view;
        if ((m[i].in & (1u << ASY_FAM_M6)) && s_in_scope(person->cases[i], scope->scope) &&
            (first == ASY_NO_DATE || v->q_start < first))
            first = v->q_start;
    }
    for (int i = 0; first != ASY_NO_DATE && i < person->count; i++) {
        const asy_case_view_t *v = &person->cases[i]->view;
        if (v->service == S_IMHA && v->contacted != ASY_NO_DATE && v->contacted >= first &&
            v->contacted <= period->end)
            return true;
    }
    return false;
}

/* The case (index in person->cases) whose groups the person counts in for family f in a scope
   and period, -1 if none; *numerator_p: whether the person is in its numerator. */
static int s_person_latest(const asy_agg_person_t *person, const s_member_t *m,
                           const s_scope_t *scope, const asy_period_t *period, int f,
                           bool *numerator_p)
{
    int latest = -1;
    bool numerator = false;
    if (f == ASY_FAM_M12) {
        if (s_in(scope->m12.recovery.latest, period)) {
            latest = scope->m12.member;
            numerator = scope->m12.recovery.improved;
        }
    } else {
        for (int i = 0; i < person->count; i++) {
            if (!(m[i].in & (1u << f)) || !s_in_scope(person->cases[i], scope->scope))
                continue;
            numerator |= m[i].b[f] != 0;
            if (latest < 0 || s_later(person->cases[i], person->cases[latest]))
                latest = i;
        }
        if (f == ASY_FAM_M6 && latest >= 0 && !numerator)
            numerator = s_reached_by_imha(person, m, scope, period);
    }
    *numerator_p = numerator;
    return latest;
}

/* The person's contribution in period p, in each of their scopes. */
static void s_person_period(asy_aggregate_t *self, const asy_agg_person_t *person, s_member_t *m,
                            const s_scope_t *scopes, int ns, int p, int sign)
{
    const s_recovery_t none = {ASY_NO_DATE, false}; /* M12 is not per case here */
    const asy_period_t *period = &self->periods[p];
    int np = self->period_count;
    uint16_t any = 0;
    for (int i = 0; i < person->count; i++) {
        memset(m[i].b, 0, sizeof m[i].b);
        m[i].in = s_members(self, person->cases[i], &none, period, m[i].b) & S_PERSON_FAMILIES;
        any |= m[i].in;
    }
    for (int s = 0; s < ns; s++)
        if (s_in(scopes[s].m12.recovery.latest, period))
            any |= 1u << ASY_FAM_M12;
    if (!any)
        return;
    for (int s = 0; s < ns; s++) {
        int scope = scopes[s].scope;
        int64_t *block = self->counters[scope * np + p];
        uint16_t topics = 0;
        for (int f = 0; f < ASY_FAM_COUNT; f++) {
            if (!(any & (1u << f)))
                continue;
            bool numerator;
            int latest = s_person_latest(person, m, &scopes[s], period, f, &numerator);
            if (latest < 0)
                continue;
            s_add_family(self, block, f, m[latest].groups, sign, numerator ? sign : 0);
            topics |= s_family_topics[f];
        }
        asy_aggregate_mark(self, (size_t)(scope * (np + 1) + p),
                           topics & (scope ? asy_aggregate_site_topics : asy_aggregate_all_topics));
    }
}

/* A person's contribution to the people-counting families, from all of their cases: M2 and
   M6 from the cases that count, M12 from the readings joined across the cases. */
void asy_aggregate_person_contribute(asy_aggregate_t *self, const asy_agg_person_t *person,
                                     int sign)
{
    int n = person->count;
    if (n == 0)
        return;
    s_member_t members_on_stack[S_PERSON_CASES_ON_STACK];
    s_scope_t scopes_on_stack[S_PERSON_CASES_ON_STACK + 1];
    bool on_stack = n <= S_PERSON_CASES_ON_STACK;
    s_member_t *m = on_stack ? members_on_stack : malloc((size_t)n * sizeof *m);
    s_scope_t *scopes = on_stack ? scopes_on_stack : malloc((size_t)(n + 1) * sizeof *scopes);
    if (!m || !scopes) {
        if (!on_stack) {
            free(m);
            free(scopes);
        }
        return; /* counted nowhere: the next rebuild retries */
    }
    for (int i = 0; i < n; i++)
        for (int d = 0; d < ASY_DIM_COUNT; d++)
            m[i].groups[d] = asy_dim_group(&person->cases[i]->view, (asy_dim_t)d);
    /* the consortium, then each site the person has a case at (once) */
    int ns = s_person_scopes(person, scopes);
    for (int p = 0; p < self->period_count; p++)
        s_person_period(self, person, m, scopes, ns, p, sign);
    if (!on_stack) {
        free(m);
        free(scopes);
    }
}

/* The case's families and its person's: at once when the case is the person's only one. */
void asy_aggregate_case_and_person(asy_aggregate_t *self, const asy_agg_case_t *c, int sign)
{
    bool alone = c->person->count == 1;
    asy_aggregate_contribute(self, c, sign, alone);
    if (!alone)
        asy_aggregate_person_contribute(self, c->person, sign);
}
