/*  simulate_private.h: what simulate.c, simulate_params.c, simulate_model.c and
    simulate_event.c share (private to client/agent). simulate_params.c loads the figures
    (deploy/sim/default.cfg) into an asy_sim_params_t; simulate_model.c builds a case's whole
    lifecycle from them as a short array of steps; simulate_event.c turns a step into a JSON
    event; simulate.c interleaves the cases' steps and paces, stores or prints the events.  */
#ifndef ASY_SIMULATE_PRIVATE_H_INCLUDED
#define ASY_SIMULATE_PRIVATE_H_INCLUDED

#include "simulate.h"

#define ASY_SIM_DAY 86400
#define ASY_SIM_HOUR 3600
#define ASY_SIM_TABLE_MAX 24
#define ASY_SIM_NAME_MAX 64
#define ASY_SIM_LIST_MAX 16
#define ASY_SIM_RECENT 64 /* a repeat referral is of one of the last 64 cases' people */

typedef struct {
    int count;
    double total;
    char name[ASY_SIM_TABLE_MAX][ASY_SIM_NAME_MAX];
    double weight[ASY_SIM_TABLE_MAX];
    char text[ASY_SIM_TABLE_MAX][ASY_SIM_NAME_MAX]; /* for tables of names (partners) */
} asy_sim_table_t;

typedef struct {
    int count;
    char item[ASY_SIM_LIST_MAX][ASY_SIM_NAME_MAX * 2];
} asy_sim_list_t;

enum {
    ASY_SIM_WHITE,
    ASY_SIM_MIXED,
    ASY_SIM_ASIAN,
    ASY_SIM_BLACK,
    ASY_SIM_OTHER,
    ASY_SIM_BROAD_COUNT
};

typedef struct {
    const char *key; /* section in the file */
    const char *ons; /* advsync.v1.EthnicityOns2021 value name */
    const char *nhs; /* advsync.v1.NhsEthnicCategory value name (ONS -> NHS mapping) */
    int broad;
} asy_sim_ethnic_t;

#define ASY_SIM_ETHNIC_COUNT 19

typedef struct {
    double share, detention, community;
} asy_sim_group_t;

typedef struct {
    double uptake, cto, interpreter;
    char language[16];
    asy_sim_table_t religion;
} asy_sim_broad_t;

/* What differs between the two services. */
typedef struct {
    asy_sim_table_t sex, age, source, reasons, consent, channel, venue, meeting_types, issues,
        closure;
    double waitlist, outcome, records_access;
} asy_sim_service_t;

typedef struct {
    double imha_share, not_stated, not_known;
    double nhs_omitted; /* % of community cases recorded with the ONS category alone */
    asy_sim_group_t group[ASY_SIM_ETHNIC_COUNT];
    asy_sim_broad_t broad[ASY_SIM_BROAD_COUNT];
    double gender_differs, veteran;
    double repeat; /* % of cases of a person referred before at the site */
    asy_sim_table_t gender_other, gender_identity, disability, orientation, marital;
    asy_sim_service_t imha, community;
    double uptake_baseline, uptake_16_17, uptake_65_plus, uptake_cto, uptake_learning, uptake_deaf,
        info_given, s2_to_s3, referral_delay_days;
    asy_sim_table_t legal_status, duration_days;
    asy_sim_list_t wards;
    double out_of_area, no_mh_need;
    double declined, wait_max_days, wait_withdrew, contact_on_time, contact_late_max,
        unable_to_contact, meeting_on_time, meeting_late_max, work_min, work_max, gap_max_days,
        outcome_areas, score_min, score_max, improve, worse, edition4, feedback, unmet_need,
        referral_out, non_instructed;
    asy_sim_table_t decline_reasons, wait_reasons, feedback_kinds, unmet_categories, partners,
        activity_modes;
    asy_sim_list_t signposted_to, goals;
} asy_sim_params_t;

/* ONS 2021 ethnic groups: their section names, value names and NHS mapping. */
extern const asy_sim_ethnic_t ASY_SIM_ETHNIC[ASY_SIM_ETHNIC_COUNT];

/* Loads the whole parameters file. Returns 0 or ASY_ECONFIG / ASY_EIO with error[] set. */
int asy_sim_params_load(const char *file, asy_sim_params_t *p, char *error, size_t error_size);

/* ----------------------------------------------------------------------------------------------
   The model (simulate_model.c). Small deterministic PRNG: splitmix64. */
typedef struct {
    uint64_t state;
} asy_sim_rng_t;

/* Uniform in [0, 1). */
double asy_sim_uniform(asy_sim_rng_t *rng);

typedef struct {
    int64_t t;        /* seconds since 1970, UTC */
    int kind;         /* asy_kind_t */
    const char *v[5]; /* value names and strings, borrowed from the parameters */
    int64_t n[3];     /* numbers and times */
} asy_sim_step_t;

typedef struct {
    uint64_t number;
    uint64_t person; /* the person's number: the case's own, or an earlier case's (a repeat) */
    bool imha;
    int group; /* ASY_SIM_ETHNIC index */
    const char *ons, *nhs, *sex, *gender, *gender_identity, *age, *disability, *religion,
        *orientation, *marital, *veteran, *interpreter, *language;
    asy_sim_step_t *steps;
    size_t count, capacity, next;
    bool failed; /* out of memory while building */
} asy_sim_case_t;

typedef struct {
    int64_t t;
    uint64_t serial;
    asy_sim_case_t *c; /* NULL: the next arrival */
} asy_sim_entry_t;

typedef struct {
    const asy_sim_params_t *p;
    asy_sim_rng_t rng;
    const char *site_id;
    uint64_t seed;
    int service; /* 0 both, 1 imha, 2 community */
    double imha_weight[ASY_SIM_ETHNIC_COUNT], imha_total;
    double community_weight[ASY_SIM_ETHNIC_COUNT], community_total;
    int64_t start, horizon; /* cases arrive in [start, horizon); no step after horizon */
    double per_day;         /* arrivals per day */
    uint64_t cases;
    asy_sim_case_t recent[ASY_SIM_RECENT]; /* the last cases' people (steps not kept) */
    asy_sim_entry_t *heap;
    size_t heap_count, heap_capacity;
    uint64_t serial;
} asy_sim_t;

/* A new case arriving at t0, its steps in time order. Caller owns; NULL on ENOMEM. */
asy_sim_case_t *asy_sim_case_new(asy_sim_t *sim, int64_t t0);

/* Frees the case and sets *self_p to NULL; does nothing if *self_p is NULL. */
void asy_sim_case_destroy(asy_sim_case_t **self_p);

/* True if both are set and equal. */
bool asy_sim_is(const char *a, const char *b);

/* The referral priority a referral reason implies, or NULL. */
const char *asy_sim_priority_of(const char *reason);

/* ----------------------------------------------------------------------------------------------
   Steps as events (simulate_event.c). */

/* t (seconds since 1970, UTC) as "YYYY-MM-DDTHH:MM:SSZ". */
void asy_sim_format_time(int64_t t, char out[32]);

/* One event object of step s of case c, with raw references (caseRef, personRef): submit
   pseudonymises them. Caller owns (json_decref); NULL on ENOMEM. */
json_t *asy_sim_event_json(const asy_sim_t *sim, const asy_sim_case_t *c, const asy_sim_step_t *s);

#endif
