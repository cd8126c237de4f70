/*  simulate_model.c: the lifecycle model of `advsync-agent simulate` (see simulate_private.h).

    The code knows only the shape of a lifecycle and the classifications (ONS -> NHS ethnic
    category, which legal statuses qualify, which closure reasons mean "left before goals");
    every figure comes from the parameters.  */
#include "simulate_private.h"

#include "calendar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------------
   Small deterministic PRNG: splitmix64. */
static uint64_t s_rng_next(asy_sim_rng_t *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double asy_sim_uniform(asy_sim_rng_t *rng)
{
    return (double)(s_rng_next(rng) >> 11) * 0x1.0p-53;
}

static bool s_chance(asy_sim_rng_t *rng, double percent)
{
    return asy_sim_uniform(rng) * 100.0 < percent;
}

/* Uniform integer in [low, high]. */
static int64_t s_between(asy_sim_rng_t *rng, int64_t low, int64_t high)
{
    if (high <= low)
        return low;
    return low + (int64_t)(s_rng_next(rng) % (uint64_t)(high - low + 1));
}

static asy_sim_step_t *s_add(asy_sim_case_t *c, int64_t t, int kind)
{
    static asy_sim_step_t spare;
    if (c->count == c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 32;
        asy_sim_step_t *steps = realloc(c->steps, capacity * sizeof *steps);
        if (!steps) {
            c->failed = true;
            memset(&spare, 0, sizeof spare);
            return &spare;
        }
        c->steps = steps;
        c->capacity = capacity;
    }
    asy_sim_step_t *step = &c->steps[c->count++];
    memset(step, 0, sizeof *step);
    step->t = t;
    step->kind = kind;
    return step;
}

void asy_sim_case_destroy(asy_sim_case_t **self_p)
{
    if (*self_p) {
        free((*self_p)->steps);
        free(*self_p);
        *self_p = NULL;
    }
}

static const char *s_pick(asy_sim_rng_t *rng, const asy_sim_table_t *table)
{
    double x = asy_sim_uniform(rng) * table->total;
    for (int i = 0; i < table->count; i++) {
        if (x < table->weight[i])
            return table->name[i];
        x -= table->weight[i];
    }
    return table->name[table->count - 1];
}

static double s_table_value(const asy_sim_table_t *table, const char *name, double otherwise)
{
    for (int i = 0; i < table->count; i++)
        if (strcmp(table->name[i], name) == 0)
            return table->weight[i];
    return otherwise;
}

bool asy_sim_is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Working days skip Saturday and Sunday only (bank holidays are ignored). */
static bool s_weekend(int64_t day_start)
{
    return asy_date_weekday((asy_date_t)(day_start / ASY_SIM_DAY)) >= ASY_SATURDAY;
}

/* A time between 09:00 and 17:00 UTC on the n-th working day after t's day (day 0 = t's day,
   or the next working day if t's is not one). */
static int64_t s_working(asy_sim_t *sim, int64_t t, int64_t n)
{
    int64_t day = t - t % ASY_SIM_DAY;
    while (s_weekend(day))
        day += ASY_SIM_DAY;
    for (int64_t i = 0; i < n; i++) {
        day += ASY_SIM_DAY;
        while (s_weekend(day))
            day += ASY_SIM_DAY;
    }
    return day + 9 * ASY_SIM_HOUR + s_between(&sim->rng, 0, 8 * 60 - 1) * 60;
}

/* The same, but never earlier than an hour after t (working day 0 may be t's own day, in
   office hours that are already over or before t). */
static int64_t s_working_after(asy_sim_t *sim, int64_t t, int64_t n)
{
    int64_t at = s_working(sim, t, n);
    return at > t + ASY_SIM_HOUR ? at : t + ASY_SIM_HOUR;
}

/* ----------------------------------------------------------------------------------------------
   Building a lifecycle. */

static int s_pick_group(asy_sim_t *sim, bool imha)
{
    const double *weight = imha ? sim->imha_weight : sim->community_weight;
    double x = asy_sim_uniform(&sim->rng) * (imha ? sim->imha_total : sim->community_total);
    for (size_t i = 0; i < ASY_SIM_ETHNIC_COUNT; i++) {
        if (x < weight[i])
            return (int)i;
        x -= weight[i];
    }
    return (int)ASY_SIM_ETHNIC_COUNT - 1;
}

static void s_profile(asy_sim_t *sim, asy_sim_case_t *c, const asy_sim_service_t *service,
                      bool imha)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    const asy_sim_ethnic_t *ethnic = &ASY_SIM_ETHNIC[c->group];
    const asy_sim_broad_t *broad = &p->broad[ethnic->broad];
    double x = asy_sim_uniform(rng) * 100.0;
    if (x < p->not_stated) {
        c->ons = "ONS_NOT_STATED";
        c->nhs = "NHS_ETHNIC_Z_NOT_STATED";
    } else if (x < p->not_stated + p->not_known) {
        c->ons = "ONS_NOT_KNOWN";
        c->nhs = "NHS_ETHNIC_99_NOT_KNOWN";
    } else {
        c->ons = ethnic->ons;
        c->nhs = ethnic->nhs;
        /* a community case system recording the 2021 ONS category alone: decided by the same
           draw's low digits (uniform too), so that no later draw of a seed's stream moves */
        if (!imha && fmod(x * 1000.0, 100.0) < p->nhs_omitted)
            c->nhs = NULL;
    }
    c->sex = s_pick(rng, &service->sex);
    if (s_chance(rng, p->gender_differs))
        c->gender = s_pick(rng, &p->gender_other);
    else
        c->gender = asy_sim_is(c->sex, "SEX_MALE")     ? "GENDER_MALE"
                    : asy_sim_is(c->sex, "SEX_FEMALE") ? "GENDER_FEMALE"
                                                       : "GENDER_UNKNOWN";
    c->gender_identity = s_pick(rng, &p->gender_identity);
    c->age = s_pick(rng, &service->age);
    c->disability = s_pick(rng, &p->disability);
    c->religion = s_pick(rng, &broad->religion);
    c->orientation = s_pick(rng, &p->orientation);
    c->marital = s_pick(rng, &p->marital);
    c->veteran = s_chance(rng, p->veteran) ? "YES" : "NO";
    bool interpreter = s_chance(rng, broad->interpreter);
    c->interpreter = interpreter ? "YES" : "NO";
    c->language = interpreter ? broad->language : NULL;
}

const char *asy_sim_priority_of(const char *reason)
{
    static const char *const map[][2] = {
        {"REASON_TRIBUNAL_OR_HEARING", "PRIORITY_TRIBUNAL_OR_MANAGERS_HEARING"},
        {"REASON_DISCHARGE_S117", "PRIORITY_S117_AFTERCARE"},
        {"REASON_CTO", "PRIORITY_CTO"},
        {"REASON_GUARDIANSHIP", "PRIORITY_GUARDIANSHIP"},
        {"REASON_CARE_PLAN_DISAGREEMENT", "PRIORITY_DISAGREEMENT_ASSESSED_NEEDS"},
        {"REASON_RESIDENTIAL_MOVE", "PRIORITY_RESIDENTIAL_CARE_ENTRY_EXIT"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (asy_sim_is(reason, map[i][0]))
            return map[i][1];
    return NULL;
}

static bool s_left_before_goals(const char *closure)
{
    return asy_sim_is(closure, "CLOSURE_WITHDREW") || asy_sim_is(closure, "CLOSURE_DISENGAGED") ||
           asy_sim_is(closure, "CLOSURE_UNABLE_TO_CONTACT") || asy_sim_is(closure, "CLOSURE_MOVED");
}

static void s_close(asy_sim_case_t *c, int64_t t, const char *reason)
{
    asy_sim_step_t *step = s_add(c, t, ASY_KIND_CASE_CLOSED);
    step->v[0] = reason;
    step->n[0] = asy_sim_is(reason, "CLOSURE_GOALS_ACHIEVED");
    step->n[1] = s_left_before_goals(reason);
}

/* Referral, eligibility, decline: returns false if the case ends there. *t advances. */
static bool s_build_referral(asy_sim_t *sim, asy_sim_case_t *c, const asy_sim_service_t *service,
                             int64_t *t)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    asy_sim_step_t *step = s_add(c, *t, ASY_KIND_REFERRAL_RECEIVED);
    step->v[0] = c->imha ? "SERVICE_IMHA" : "SERVICE_COMMUNITY";
    step->v[1] = s_pick(rng, &service->source);
    step->v[2] = c->imha ? "REASON_MHA_RIGHTS" : s_pick(rng, &service->reasons);
    const char *second = s_pick(rng, &service->reasons);
    step->v[3] = asy_sim_is(second, step->v[2]) ? NULL : second;
    step->v[4] = s_pick(rng, &service->consent);
    *t = s_working(sim, *t, 0) + ASY_SIM_HOUR;
    if (*t <= c->steps[c->count - 1].t)
        *t = c->steps[c->count - 1].t + ASY_SIM_HOUR;

    const char *criterion = NULL, *decline = NULL;
    if (!c->imha && asy_sim_is(c->age, "AGE_65_PLUS")) {
        criterion = "CRITERION_AGE_RANGE";
        decline = "DECLINE_OUT_OF_AGE_RANGE";
    } else if (!c->imha && s_chance(rng, p->out_of_area)) {
        criterion = "CRITERION_AREA";
        decline = "DECLINE_OUT_OF_AREA";
    } else if (!c->imha && s_chance(rng, p->no_mh_need)) {
        criterion = "CRITERION_MENTAL_HEALTH_NEED";
        decline = "DECLINE_NO_MH_NEED";
    }
    step = s_add(c, *t, ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED);
    step->n[0] = criterion == NULL;
    step->v[0] = criterion;
    if (!criterion && s_chance(rng, p->declined))
        decline = s_pick(rng, &p->decline_reasons);
    if (!decline)
        return true;
    *t = s_working_after(sim, *t, s_between(rng, 0, 2));
    step = s_add(c, *t, ASY_KIND_REFERRAL_DECLINED);
    step->v[0] = decline;
    if (criterion && s_chance(rng, 50)) {
        step = s_add(c, *t + 600, ASY_KIND_UNMET_NEED_RECORDED);
        step->v[0] = asy_sim_is(decline, "DECLINE_OUT_OF_AREA") ? "UNMET_OUT_OF_AREA"
                                                                : "UNMET_OUT_OF_CRITERIA";
        step->v[1] = p->signposted_to.item[s_between(rng, 0, p->signposted_to.count - 1)];
    }
    return false;
}

/* Waiting list and first contact; returns false if the case closes there. */
static bool s_build_contact(asy_sim_t *sim, asy_sim_case_t *c, const asy_sim_service_t *service,
                            int64_t received, int64_t *t)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    int64_t earliest = 0; /* working days after receipt */
    if (s_chance(rng, service->waitlist)) {
        asy_sim_step_t *step = s_add(c, *t + 1800, ASY_KIND_WAITLIST_JOINED);
        step->v[0] = s_pick(rng, &p->wait_reasons);
        earliest = s_between(rng, 1, (int64_t)p->wait_max_days);
        *t = s_working(sim, received, earliest);
        step = s_add(c, *t, ASY_KIND_WAITLIST_LEFT);
        bool withdrew = s_chance(rng, p->wait_withdrew);
        step->v[0] = withdrew ? "WAIT_LEFT_WITHDREW" : "WAIT_LEFT_ALLOCATED";
        if (withdrew) {
            s_close(c, *t + 1800, "CLOSURE_WITHDREW");
            return false;
        }
    }
    int64_t day = s_chance(rng, p->contact_on_time)
                      ? s_between(rng, 0, 3)
                      : s_between(rng, 4, (int64_t)p->contact_late_max);
    if (day < earliest)
        day = earliest;
    int attempts = (int)s_between(rng, 0, 2);
    bool unreachable = s_chance(rng, p->unable_to_contact);
    if (unreachable)
        attempts = (int)s_between(rng, 2, 3);
    for (int i = 0; i < attempts; i++) {
        int64_t at = s_working(sim, received, earliest + (day - earliest) * i / (attempts + 1));
        if (at <= *t)
            at = *t + 900;
        asy_sim_step_t *step = s_add(c, at, ASY_KIND_CONTACT_ATTEMPTED);
        step->v[0] = s_pick(rng, &service->channel);
        *t = at;
    }
    if (unreachable) {
        s_close(c, s_working(sim, *t, 3), "CLOSURE_UNABLE_TO_CONTACT");
        return false;
    }
    int64_t at = s_working(sim, received, day);
    *t = at > *t ? at : *t + 1800;
    asy_sim_step_t *step = s_add(c, *t, ASY_KIND_CONTACT_MADE);
    step->v[0] = s_pick(rng, &service->channel);
    /* the first meeting: counted from receipt, never before the contact */
    int64_t meeting = s_chance(rng, p->meeting_on_time)
                          ? s_between(rng, day, day > 10 ? day : 10)
                          : s_between(rng, 11, (int64_t)p->meeting_late_max);
    if (meeting < day)
        meeting = day;
    at = s_working(sim, received, meeting);
    *t = at > *t ? at : *t + 2 * ASY_SIM_HOUR;
    step = s_add(c, *t, ASY_KIND_MEETING_INITIAL_HELD);
    step->v[0] = s_pick(rng, &service->venue);
    return true;
}

static void s_build_outcomes(asy_sim_t *sim, asy_sim_case_t *c, int64_t first, int64_t second,
                             int areas)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    int edition = s_chance(rng, p->edition4) ? 4 : 3;
    int ceiling = edition == 4 ? 8 : 10;
    int start_area = (int)s_between(rng, 1, 10);
    for (int i = 0; i < areas; i++) {
        static const char *const names[] = {"AREA_MANAGING_MENTAL_HEALTH",
                                            "AREA_PHYSICAL_HEALTH_SELF_CARE",
                                            "AREA_LIVING_SKILLS",
                                            "AREA_SOCIAL_NETWORKS",
                                            "AREA_WORK",
                                            "AREA_RELATIONSHIPS",
                                            "AREA_ADDICTIVE_BEHAVIOUR",
                                            "AREA_RESPONSIBILITIES",
                                            "AREA_IDENTITY_SELF_ESTEEM",
                                            "AREA_TRUST_HOPE"};
        const char *area = names[(start_area + i * 3) % 10];
        int score = (int)s_between(rng, (int64_t)p->score_min, (int64_t)p->score_max);
        if (score > ceiling)
            score = ceiling;
        asy_sim_step_t *step = s_add(c, first + 60 * i, ASY_KIND_OUTCOME_RECORDED);
        step->v[0] = area;
        step->n[0] = score;
        step->n[1] = edition;
        double x = asy_sim_uniform(rng) * 100.0;
        int later = x < p->improve              ? score + (int)s_between(rng, 1, 2)
                    : x < p->improve + p->worse ? score - 1
                                                : score;
        later = later < 1 ? 1 : later > ceiling ? ceiling : later;
        step = s_add(c, second + 60 * i, ASY_KIND_OUTCOME_RECORDED);
        step->v[0] = area;
        step->n[0] = later;
        step->n[1] = edition;
    }
}

/* One piece of work at t: an issue, a meeting with its time logged, or a records request. */
static void s_build_work(asy_sim_t *sim, asy_sim_case_t *c, const asy_sim_service_t *service,
                         int64_t t, int index)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    if (index == 0 || s_chance(rng, 25)) {
        asy_sim_step_t *step = s_add(c, t, ASY_KIND_ISSUE_RECORDED);
        step->v[0] = s_pick(rng, &service->issues);
        step->n[0] = c->imha;
        t += 1800;
    }
    if (index > 0 || s_chance(rng, 50)) {
        asy_sim_step_t *step = s_add(c, t, ASY_KIND_MEETING_ATTENDED);
        step->v[0] = s_pick(rng, &service->meeting_types);
        step->v[1] =
            s_chance(rng, p->non_instructed) ? "ADVOCACY_NON_INSTRUCTED" : "ADVOCACY_INSTRUCTED";
        t += 1800;
    }
    asy_sim_step_t *step = s_add(c, t, ASY_KIND_ACTIVITY_LOGGED);
    step->n[0] = s_between(rng, 2, 24) * 5;
    step->v[0] = s_pick(rng, &p->activity_modes);
    step->n[1] = asy_sim_is(step->v[0], "ACTIVITY_FACE_TO_FACE") ? s_between(rng, 1, 12) * 5 : 0;
}

/* The plan agreed a few working days after t (one or two goals). Returns its time. */
static int64_t s_build_plan(asy_sim_t *sim, asy_sim_case_t *c, int64_t t)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    asy_sim_step_t *step =
        s_add(c, s_working_after(sim, t, s_between(rng, 0, 5)), ASY_KIND_PLAN_AGREED);
    step->v[0] = p->goals.item[s_between(rng, 0, p->goals.count - 1)];
    step->v[1] = p->goals.item[s_between(rng, 0, p->goals.count - 1)];
    if (asy_sim_is(step->v[0], step->v[1]))
        step->v[1] = NULL;
    step->n[0] = step->t + 182 * ASY_SIM_DAY;
    return step->t;
}

/* The steps that may follow the plan within days: a records request, a referral out to a
   partner, an unmet need. */
static void s_build_after_plan(asy_sim_t *sim, asy_sim_case_t *c, const asy_sim_service_t *service,
                               int64_t plan)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    asy_sim_step_t *step;
    if (s_chance(rng, service->records_access)) {
        step = s_add(c, s_working(sim, plan, 2), ASY_KIND_RECORDS_ACCESS_REQUESTED);
        step->v[0] = s_chance(rng, 90) ? "RECORDS_BASIS_CONSENT" : "RECORDS_BASIS_LACKS_CAPACITY";
    }
    if (s_chance(rng, p->referral_out)) {
        step = s_add(c, s_working(sim, plan, 3), ASY_KIND_REFERRAL_OUT_SENT);
        int i = (int)s_between(rng, 0, p->partners.count - 1);
        step->v[0] = p->partners.name[i];
        step->v[1] = p->partners.text[i];
        step->v[2] = "referral from advocacy: please contact the person via the site";
    }
    if (s_chance(rng, p->unmet_need)) {
        step = s_add(c, s_working(sim, plan, 1), ASY_KIND_UNMET_NEED_RECORDED);
        step->v[0] = s_pick(rng, &p->unmet_categories);
        step->v[1] = p->signposted_to.item[s_between(rng, 0, p->signposted_to.count - 1)];
    }
}

/* Drops the steps built since first that fall after limit, and closes the case at limit if
   what is left does not close or decline it. */
static void s_cut_at_limit(asy_sim_case_t *c, size_t first, int64_t limit)
{
    /* IMHA ends with the qualifying episode: cut the work that would follow it */
    if (c->imha && c->count > first && c->steps[c->count - 1].t > limit) {
        size_t kept = first;
        for (size_t i = first; i < c->count; i++)
            if (c->steps[i].t < limit)
                c->steps[kept++] = c->steps[i];
        bool closed_already = false;
        for (size_t i = first; i < kept; i++)
            closed_already = closed_already || c->steps[i].kind == ASY_KIND_CASE_CLOSED ||
                             c->steps[i].kind == ASY_KIND_REFERRAL_DECLINED;
        c->count = kept;
        if (!closed_already)
            s_close(c, limit + ASY_SIM_HOUR, "CLOSURE_QUALIFYING_ENDED");
    }
}

/* Everything after the referral. limit: IMHA cases end when qualifying ends. */
static void s_build_advocacy(asy_sim_t *sim, asy_sim_case_t *c, int64_t received, int64_t limit)
{
    const asy_sim_params_t *p = sim->p;
    const asy_sim_service_t *service = c->imha ? &p->imha : &p->community;
    asy_sim_rng_t *rng = &sim->rng;
    size_t first = c->count;
    int64_t t = received;
    if (!s_build_referral(sim, c, service, &t) || !s_build_contact(sim, c, service, received, &t)) {
        s_cut_at_limit(c, first, limit);
        return;
    }
    t = s_build_plan(sim, c, t);
    int64_t plan = t;
    int work = (int)s_between(rng, (int64_t)p->work_min, (int64_t)p->work_max);
    for (int i = 0; i < work; i++) {
        t = s_working(sim, t, s_between(rng, 1, (int64_t)p->gap_max_days));
        s_build_work(sim, c, service, t, i);
        t += 2 * ASY_SIM_HOUR;
    }
    s_build_after_plan(sim, c, service, plan);
    int64_t closed = s_working(sim, t, s_between(rng, 1, 10));
    if (s_chance(rng, service->outcome))
        s_build_outcomes(sim, c, plan + 1800, closed - ASY_SIM_HOUR,
                         (int)s_between(rng, 1, (int64_t)p->outcome_areas));
    if (s_chance(rng, p->feedback)) {
        asy_sim_step_t *step = s_add(c, closed + 1800, ASY_KIND_FEEDBACK_RECEIVED);
        step->v[0] = s_pick(rng, &p->feedback_kinds);
        step->n[0] = s_chance(rng, 50);
    }
    const char *reason = s_pick(rng, &service->closure);
    if (asy_sim_is(reason, "CLOSURE_QUALIFYING_ENDED") && limit > closed)
        closed = limit + ASY_SIM_HOUR;
    s_close(c, closed, reason);
    s_cut_at_limit(c, first, limit);
}

static bool s_qualifies(const char *status)
{
    static const char *const short_term[] = {"LEGAL_01_INFORMAL",
                                             "LEGAL_04_S4",
                                             "LEGAL_05_S5_2",
                                             "LEGAL_06_S5_4",
                                             "LEGAL_19_S135",
                                             "LEGAL_20_S136",
                                             "LEGAL_31_CRIMINAL_PROCEDURE",
                                             "LEGAL_32_OTHER_ACT"};
    for (size_t i = 0; i < sizeof short_term / sizeof short_term[0]; i++)
        if (asy_sim_is(status, short_term[i]))
            return false;
    return true;
}

static double s_uptake(const asy_sim_t *sim, const asy_sim_case_t *c, const char *status)
{
    const asy_sim_params_t *p = sim->p;
    double uptake = p->uptake_baseline * p->broad[ASY_SIM_ETHNIC[c->group].broad].uptake;
    if (asy_sim_is(c->age, "AGE_16_17"))
        uptake *= p->uptake_16_17;
    if (asy_sim_is(c->age, "AGE_65_PLUS"))
        uptake *= p->uptake_65_plus;
    if (asy_sim_is(status, "LEGAL_CTO_S17A"))
        uptake *= p->uptake_cto;
    if (asy_sim_is(c->disability, "DISABILITY_LEARNING"))
        uptake *= p->uptake_learning;
    if (asy_sim_is(c->disability, "DISABILITY_DEAF_OR_HEARING"))
        uptake *= p->uptake_deaf;
    return uptake > 95 ? 95 : uptake;
}

/* Legal status: the table's weights, with CTO scaled by the group's factor. */
static const char *s_pick_status(asy_sim_t *sim, const asy_sim_case_t *c)
{
    const asy_sim_table_t *table = &sim->p->legal_status;
    double cto = sim->p->broad[ASY_SIM_ETHNIC[c->group].broad].cto;
    double total = 0;
    for (int i = 0; i < table->count; i++)
        total += table->weight[i] * (asy_sim_is(table->name[i], "LEGAL_CTO_S17A") ? cto : 1.0);
    double x = asy_sim_uniform(&sim->rng) * total;
    for (int i = 0; i < table->count; i++) {
        double w = table->weight[i] * (asy_sim_is(table->name[i], "LEGAL_CTO_S17A") ? cto : 1.0);
        if (x < w)
            return table->name[i];
        x -= w;
    }
    return table->name[table->count - 1];
}

static int64_t s_duration(asy_sim_t *sim, const char *status)
{
    double days = s_table_value(&sim->p->duration_days, status, 28);
    return (int64_t)(days * ASY_SIM_DAY * (0.25 + 0.75 * asy_sim_uniform(&sim->rng)));
}

/* A repeat referral: the case is of an earlier case's person, who keeps who they are. */
static void s_take_person(asy_sim_case_t *c, const asy_sim_case_t *earlier)
{
    c->person = earlier->person;
    c->group = earlier->group;
    c->ons = earlier->ons;
    c->nhs = earlier->nhs;
    c->sex = earlier->sex;
    c->gender = earlier->gender;
    c->gender_identity = earlier->gender_identity;
    c->age = earlier->age;
    c->disability = earlier->disability;
    c->religion = earlier->religion;
    c->orientation = earlier->orientation;
    c->marital = earlier->marital;
    c->veteran = earlier->veteran;
    c->interpreter = earlier->interpreter;
    c->language = earlier->language;
}

/* The case's person: drawn from the service's population, or, for a repeat referral, the
   earlier case's (before anything that depends on who they are is drawn). */
static void s_person(asy_sim_t *sim, asy_sim_case_t *c, const asy_sim_service_t *service, bool imha,
                     const asy_sim_case_t *earlier)
{
    c->group = s_pick_group(sim, imha);
    s_profile(sim, c, service, imha);
    if (earlier)
        s_take_person(c, earlier);
}

static void s_build_imha(asy_sim_t *sim, asy_sim_case_t *c, int64_t t0,
                         const asy_sim_case_t *earlier)
{
    const asy_sim_params_t *p = sim->p;
    asy_sim_rng_t *rng = &sim->rng;
    s_person(sim, c, &p->imha, true, earlier);
    const char *status = s_pick_status(sim, c);
    const char *ward = p->wards.item[s_between(rng, 0, p->wards.count - 1)];
    int64_t end = t0 + s_duration(sim, status);
    asy_sim_step_t *step = s_add(c, t0, ASY_KIND_QUALIFYING_STARTED);
    step->v[0] = status;
    step->v[1] = ward;
    step->n[0] = t0;
    if (s_qualifies(status) && s_chance(rng, p->info_given))
        step->n[1] = t0 + s_between(rng, 1, 48) * ASY_SIM_HOUR;
    s_add(c, t0 + s_between(rng, 10, 120) * 60, ASY_KIND_PERSON_PROFILE_RECORDED);
    const char *final = status;
    if (asy_sim_is(status, "LEGAL_02_S2") && s_chance(rng, p->s2_to_s3)) {
        int64_t changed = t0 + s_between(rng, 14 * ASY_SIM_DAY, 27 * ASY_SIM_DAY);
        if (changed < end) {
            step = s_add(c, changed, ASY_KIND_QUALIFYING_CHANGED);
            final = step->v[0] = "LEGAL_03_S3";
            step->v[1] = ward;
            step->n[0] = changed;
            end = changed + s_duration(sim, final);
        }
    }
    step = s_add(c, end, ASY_KIND_QUALIFYING_ENDED);
    step->v[0] = final;
    step->v[1] = ward;
    step->n[0] = t0;
    step->n[2] = end;
    if (!s_qualifies(status) || !s_chance(rng, s_uptake(sim, c, status)))
        return;
    int64_t received =
        t0 + ASY_SIM_HOUR +
        (int64_t)(-log(1.0 - asy_sim_uniform(rng)) * p->referral_delay_days * ASY_SIM_DAY);
    if (received < end - 6 * ASY_SIM_HOUR)
        s_build_advocacy(sim, c, received, end);
}

static void s_build_community(asy_sim_t *sim, asy_sim_case_t *c, int64_t t0,
                              const asy_sim_case_t *earlier)
{
    s_person(sim, c, &sim->p->community, false, earlier);
    /* received in the office hours that follow the arrival: never before it, so that no
       event precedes --start (an evening arrival waits for the next working day) */
    int64_t received = s_working(sim, t0, 0);
    if (received - 600 < t0)
        received = s_working(sim, t0, 1);
    s_add(c, received - 600, ASY_KIND_PERSON_PROFILE_RECORDED);
    s_build_advocacy(sim, c, received, INT64_MAX);
}

static int s_step_compare(const void *a, const void *b)
{
    const asy_sim_step_t *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* A new case arriving at t0. Returns NULL on ENOMEM. */
asy_sim_case_t *asy_sim_case_new(asy_sim_t *sim, int64_t t0)
{
    asy_sim_case_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->number = c->person = ++sim->cases;
    bool imha = sim->service == 1 || (sim->service == 0 && s_chance(&sim->rng, sim->p->imha_share));
    c->imha = imha;
    /* a repeat referral takes an earlier person before its steps are drawn, so that they are
       drawn for who the person is (uptake, legal status and so on) */
    const asy_sim_case_t *earlier = NULL;
    if (sim->p->repeat > 0 && c->number > 1 && s_chance(&sim->rng, sim->p->repeat)) {
        uint64_t known = c->number - 1 < ASY_SIM_RECENT ? c->number - 1 : ASY_SIM_RECENT;
        uint64_t back = 1 + (uint64_t)(asy_sim_uniform(&sim->rng) * (double)known);
        if (back > known)
            back = known;
        earlier = &sim->recent[(c->number - back) % ASY_SIM_RECENT];
    }
    if (imha)
        s_build_imha(sim, c, t0, earlier);
    else
        s_build_community(sim, c, t0, earlier);
    sim->recent[c->number % ASY_SIM_RECENT] = *c;
    sim->recent[c->number % ASY_SIM_RECENT].steps = NULL; /* borrowed: people only */
    if (c->failed) {
        asy_sim_case_destroy(&c);
        return NULL;
    }
    /* time order, ties kept in build order by a stable insertion sort on nearly sorted data */
    for (size_t i = 1; i < c->count; i++)
        for (size_t j = i; j > 0 && s_step_compare(&c->steps[j - 1], &c->steps[j]) > 0; j--) {
            asy_sim_step_t swap = c->steps[j];
            c->steps[j] = c->steps[j - 1];
            c->steps[j - 1] = swap;
        }
    for (size_t i = 1; i < c->count; i++)
        if (c->steps[i].t <= c->steps[i - 1].t)
            c->steps[i].t = c->steps[i - 1].t + 60;
    return c;
}
