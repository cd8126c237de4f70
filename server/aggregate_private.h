/*  aggregate_private.h: the aggregate's insides, shared by aggregate.c (upkeep),
    aggregate_contribute.c (what a case and a person add to the counters), aggregate_render.c
    (metric values) and aggregate_disclose.c (their disclosure control). Not for other
    modules.  */
#ifndef ASY_AGGREGATE_PRIVATE_H_INCLUDED
#define ASY_AGGREGATE_PRIVATE_H_INCLUDED

#include "aggregate.h"

#include <czmq.h>

/* Breakdowns ("dimensions"): how a case is grouped. */
typedef enum {
    ASY_DIM_TOTAL,
    ASY_DIM_SOURCE,
    ASY_DIM_SOURCE_GROUP, /* the MHSDS groups: A1 in A, B1 and B2 in B */
    ASY_DIM_SERVICE,
    ASY_DIM_ONS,
    ASY_DIM_EG,      /* ONS high-level ethnic group */
    ASY_DIM_NHS,
    ASY_DIM_AGE,
    ASY_DIM_SEX,
    ASY_DIM_GENDER,
    ASY_DIM_DISABILITY,
    ASY_DIM_RELIGION,
    ASY_DIM_ORIENTATION,
    ASY_DIM_REASON,  /* referral reasons: several per referral (a case counts in each) */
    ASY_DIM_EG_AGE_SEX, /* ethnic group x age band x sex, for the standardised rate (internal) */
    ASY_DIM_COUNT
} asy_dim_t;

#define ASY_EG_GROUPS 8 /* NOT_RECORDED, ASIAN, BLACK, MIXED, WHITE, OTHER, NOT_STATED, NOT_KNOWN */
#define ASY_EG_WHITE 4
#define ASY_AGE_GROUPS 7
/* The age bands of the community service's population (domain brief (c): P_g aged 18-64):
   AGE_18_34, AGE_35_49, AGE_50_64. */
#define ASY_AGE_ADULT_FIRST 3
#define ASY_AGE_ADULT_LAST 5
#define ASY_AGE_ADULT_BANDS (ASY_AGE_ADULT_LAST - ASY_AGE_ADULT_FIRST + 1)

static inline bool asy_age_adult(int band)
{
    return band >= ASY_AGE_ADULT_FIRST && band <= ASY_AGE_ADULT_LAST;
}
/* M10's strata by sex: the Sex enum's SEX_MALE (1) and SEX_FEMALE (2); a referral of
   another or no recorded sex is in sex slot 0 of ASY_DIM_EG_AGE_SEX. */
#define ASY_SEXES 2
#define ASY_SEX_SLOTS (ASY_SEXES + 1)
#define ASY_ONS_WHITE_BRITISH 13
#define ASY_ONS_GROUPS 22

typedef struct {
    const char *name;      /* breakdown name on the wire */
    const char *enum_name; /* advsync.proto enum of the group names, or NULL */
    int groups;
} asy_dim_info_t;

extern const asy_dim_info_t asy_dims[ASY_DIM_COUNT];

/* Families of counters kept per (scope, period): a = count or denominator, b = numerator. */
typedef enum {
    ASY_FAM_M1,   /* a referrals received, b of which ethnicity stated (M13) */
    ASY_FAM_M2,   /* a people with an open case (counted per person) */
    ASY_FAM_M4,   /* a contact deadlines matured, b met */
    ASY_FAM_M5,   /* a meeting deadlines matured, b met */
    ASY_FAM_M6,   /* a qualifying people (Q), b of whom contacted (U) (per person) */
    ASY_FAM_M11D, /* a decisions, b declined */
    ASY_FAM_M11L, /* a closures, b left before goals */
    ASY_FAM_REA,  /* a referrals to the community service by ethnic group x age band x sex
                     (M10) */
    ASY_FAM_M12,  /* a people with two readings or more in an area, b of whom improved
                     (per person) */
    ASY_FAM_RC,   /* a referrals to the community service (M8's referral rows, M9: against
                     the population aged 18-64, domain brief (c)) */
    ASY_FAM_COUNT
} asy_family_t;

#define ASY_FAM_DIMS_MAX 15
extern const int asy_family_dims[ASY_FAM_COUNT][ASY_FAM_DIMS_MAX]; /* -1 terminated */

typedef enum { ASY_PERIOD_MONTH, ASY_PERIOD_QUARTER, ASY_PERIOD_YEAR } asy_period_kind_t;

typedef struct {
    asy_period_kind_t kind;
    asy_date_t start;
    asy_date_t end;
    char name[16];
} asy_period_t;

/* Waiting-list histogram: counts[d - base] cases received on day d. */
typedef struct {
    asy_date_t base;
    int32_t length;
    int64_t *counts;
    int64_t total;
} asy_hist_t;

#define ASY_WAIT_HISTS 12 /* total, service (3), ethnic group (8) */

/* A case's Recovery Star readings in one area and edition (outcome_state). */
typedef struct {
    int16_t area;
    int16_t edition;
    int16_t first_score;
    int16_t last_score;
    asy_date_t last_date;
    int64_t readings;
    char first_ver[ASY_CASE_VERSION_SIZE]; /* order the readings of one person's cases */
    char last_ver[ASY_CASE_VERSION_SIZE];
} asy_agg_slot_t;

typedef struct asy_agg_person asy_agg_person_t;

typedef struct {
    asy_case_view_t view;
    asy_agg_person_t *person; /* whose case this is (never NULL once put) */
    int scope;
    asy_date_t contact_deadline;
    asy_date_t meeting_deadline;
    asy_agg_slot_t *slots; /* owned; NULL when the case has no readings */
    int slot_count;
} asy_agg_case_t;

/* A person and their cases (by person_key; a case without one is a person of its own). M2,
   M6 and M12 count people, so they are counted per person, from all of the person's cases. */
struct asy_agg_person {
    asy_agg_case_t **cases; /* borrowed from asy_aggregate.cases */
    int count;
    int capacity;
};

struct asy_aggregate {
    const asy_calendar_t *calendar;
    int history_years;
    asy_date_t today;
    asy_period_t *periods;
    int period_count;
    int cells;                              /* counters per family set */
    int offset[ASY_FAM_COUNT][ASY_FAM_DIMS_MAX];
    zhashx_t *cases;                        /* case_id -> asy_agg_case_t (owned) */
    zhashx_t *persons;                      /* person key -> asy_agg_person_t (owned) */
    char **scope_names;                     /* [0] = "all" */
    int scope_count;
    int scope_capacity;
    zhashx_t *scope_index;                  /* site id -> scope index + 1 */
    int64_t **counters;                     /* [scope * period_count + p] -> 2 * cells */
    asy_hist_t (*waits)[ASY_WAIT_HISTS];    /* [scope] */
    uint16_t *dirty;                        /* [scope * (period_count + 1) + p]: metric bits */
    uint16_t *fresh;                        /* [same row]: bits dirtied anew since forgotten */
    size_t *fresh_rows;                     /* the rows with fresh bits, in the order marked */
    size_t fresh_count;
    double population[20][ASY_AGE_GROUPS];  /* [ethnicity_ons 0..19][age band 0..6] */
    double population_sex[20][ASY_AGE_GROUPS][ASY_SEXES]; /* the part given by sex */
    bool has_population;
};

/* Group index of a view in a dimension; for ASY_DIM_REASON, the view's reasons bit mask (a
   referral counts in the group of every reason it gives, in NOT_RECORDED if none). */
int asy_dim_group(const asy_case_view_t *view, asy_dim_t dim);
/* Group name of index in a dimension (enum value name, "ALL", "WHITE", ...). */
const char *asy_dim_group_name(asy_dim_t dim, int index);

/* Counter pair of family f, dimension slot k, group g, in a counters block. */
static inline int64_t *asy_counter(const asy_aggregate_t *self, int64_t *block, int family,
                                   int slot, int group, int which)
{
    return &block[which * self->cells + self->offset[family][slot] + group];
}

/* The bit of metric M<metric> in a mask of topics (dirty bits, the topics a family feeds). */
#define ASY_METRIC_BIT(metric) ((uint16_t)(1u << (metric)))

/* Marks the topics bits of dirty row (scope * (period_count + 1) + p) changed. Those that were
   not dirty already are also fresh: asy_aggregate_next_fresh finds them without a walk of
   every dirty topic. A row is in fresh_rows once (while its fresh bits are not 0), so the list
   never outgrows the rows. */
static inline void asy_aggregate_mark(asy_aggregate_t *self, size_t row, uint16_t bits)
{
    uint16_t added = (uint16_t)(bits & ~self->dirty[row]);
    self->dirty[row] |= bits;
    if (!added)
        return;
    if (!self->fresh[row])
        self->fresh_rows[self->fresh_count++] = row;
    self->fresh[row] |= added;
}

/* Metrics published per period for a site / for the consortium (aggregate.c). */
extern const uint16_t asy_aggregate_site_topics;
extern const uint16_t asy_aggregate_all_topics;

/* Whether a deadline has passed (before today) without a decline on or before it. */
static inline bool asy_aggregate_matured(const asy_aggregate_t *self, const asy_case_view_t *v,
                                         asy_date_t deadline)
{
    return deadline != ASY_NO_DATE && deadline < self->today &&
           !(v->declined != ASY_NO_DATE && v->declined <= deadline);
}

/* Whether done is a date on or before deadline. */
static inline bool asy_aggregate_on_time(asy_date_t done, asy_date_t deadline)
{
    return done != ASY_NO_DATE && done <= deadline;
}

/* The case's own contribution (sign +1 or -1) to the counters: every family but the
   people-counting ones, and those too when with_person (aggregate_contribute.c). */
void asy_aggregate_contribute(asy_aggregate_t *self, const asy_agg_case_t *c, int sign,
                              bool with_person);

/* A person's contribution to the people-counting families (M2, M6, M12), from all of their
   cases (aggregate_contribute.c). Counted nowhere if out of memory: the next rebuild retries. */
void asy_aggregate_person_contribute(asy_aggregate_t *self, const asy_agg_person_t *person,
                                     int sign);

/* The case's families and its person's: at once when the case is the person's only one
   (aggregate_contribute.c). */
void asy_aggregate_case_and_person(asy_aggregate_t *self, const asy_agg_case_t *c, int sign);

/* Disclosure control of a rendered update for the public stream (PROTOCOL.md 13): suppresses,
   withholds and rounds its cells in place; percent: values are percentages, rounded to whole
   ones (aggregate_disclose.c). */
void asy_aggregate_disclose(asy_mupdate_t *update, bool percent);

/* Drops the rows whose breakdown name was emptied (withheld). */
void asy_aggregate_drop_withheld(asy_mupdate_t *update);

/* Whether breakdown is a total row ("total", "imha_total", "<prefix>.total"). */
bool asy_aggregate_is_total(const char *breakdown);

/* M10's rows whose rate was withheld on the public stream, shown as `*`. */
void asy_aggregate_hide_withheld_rates(asy_mupdate_t *update);

/* M7 on the public stream: every row of a breakdown whose reference group is suppressed is
   suppressed. */
void asy_aggregate_hide_without_reference(asy_mupdate_t *update);

#endif
