/*  simulate.c: `advsync-agent simulate`: synthetic person and case lifecycles for one site,
    with the published disparities, submitted through the ordinary submission path.

    Every figure comes from the parameters file (deploy/sim/default.cfg); the code knows only
    the shape of a lifecycle and the classifications (ONS -> NHS ethnic category, which legal
    statuses qualify, which closure reasons mean "left before goals").

    Cases arrive as a Poisson process between --start and today; each arrival builds its whole
    lifecycle at once (a short array of steps), and a min-heap on (time, serial) interleaves
    the open cases' next steps in time order. The arrival rate is scaled so that the requested
    number of events fits before today: a pilot run measures events per unit of rate.  */
#include "simulate.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_DAY 86400
#define S_HOUR 3600
#define S_TABLE_MAX 24
#define S_NAME_MAX 64
#define S_LIST_MAX 16
#define S_TEXT_MAX 1024
#define S_COMMIT_EVENTS 1000
#define S_COMMIT_US 100000
#define S_MAX_REJECTED 1000
#define S_PILOT_ARRIVALS 4000

/* ----------------------------------------------------------------------------------------------
   Small deterministic PRNG: splitmix64. */
typedef struct {
    uint64_t state;
} s_rng_t;

static uint64_t s_rng_next(s_rng_t *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double s_uniform(s_rng_t *rng)
{
    return (double)(s_rng_next(rng) >> 11) * 0x1.0p-53;
}

static bool s_chance(s_rng_t *rng, double percent)
{
    return s_uniform(rng) * 100.0 < percent;
}

/* Uniform integer in [low, high]. */
static int64_t s_between(s_rng_t *rng, int64_t low, int64_t high)
{
    if (high <= low)
        return low;
    return low + (int64_t)(s_rng_next(rng) % (uint64_t)(high - low + 1));
}

/* ----------------------------------------------------------------------------------------------
   Parameters (the data file). */
typedef struct {
    int count;
    double total;
    char name[S_TABLE_MAX][S_NAME_MAX];
    double weight[S_TABLE_MAX];
    char text[S_TABLE_MAX][S_NAME_MAX]; /* for tables of names (partners) */
} s_table_t;

typedef struct {
    int count;
    char item[S_LIST_MAX][S_NAME_MAX * 2];
} s_list_t;

enum { S_WHITE, S_MIXED, S_ASIAN, S_BLACK, S_OTHER, S_BROAD_COUNT };
static const char *const S_BROAD_NAMES[S_BROAD_COUNT] = {"white", "mixed", "asian", "black",
                                                         "other"};

typedef struct {
    const char *key; /* section in the file */
    const char *ons; /* advsync.v1.EthnicityOns2021 value name */
    const char *nhs; /* advsync.v1.NhsEthnicCategory value name (ONS -> NHS mapping) */
    int broad;
} s_ethnic_t;

static const s_ethnic_t S_ETHNIC[] = {
    {"white_british", "ONS_WHITE_BRITISH", "NHS_ETHNIC_A_WHITE_BRITISH", S_WHITE},
    {"white_irish", "ONS_WHITE_IRISH", "NHS_ETHNIC_B_WHITE_IRISH", S_WHITE},
    {"white_gypsy_irish_traveller", "ONS_WHITE_GYPSY_IRISH_TRAVELLER", "NHS_ETHNIC_C_WHITE_OTHER",
     S_WHITE},
    {"white_roma", "ONS_WHITE_ROMA", "NHS_ETHNIC_C_WHITE_OTHER", S_WHITE},
    {"white_other", "ONS_WHITE_OTHER", "NHS_ETHNIC_C_WHITE_OTHER", S_WHITE},
    {"mixed_white_black_caribbean", "ONS_MIXED_WHITE_BLACK_CARIBBEAN",
     "NHS_ETHNIC_D_MIXED_WHITE_BLACK_CARIBBEAN", S_MIXED},
    {"mixed_white_black_african", "ONS_MIXED_WHITE_BLACK_AFRICAN",
     "NHS_ETHNIC_E_MIXED_WHITE_BLACK_AFRICAN", S_MIXED},
    {"mixed_white_asian", "ONS_MIXED_WHITE_ASIAN", "NHS_ETHNIC_F_MIXED_WHITE_ASIAN", S_MIXED},
    {"mixed_other", "ONS_MIXED_OTHER", "NHS_ETHNIC_G_MIXED_OTHER", S_MIXED},
    {"asian_indian", "ONS_ASIAN_INDIAN", "NHS_ETHNIC_H_ASIAN_INDIAN", S_ASIAN},
    {"asian_pakistani", "ONS_ASIAN_PAKISTANI", "NHS_ETHNIC_J_ASIAN_PAKISTANI", S_ASIAN},
    {"asian_bangladeshi", "ONS_ASIAN_BANGLADESHI", "NHS_ETHNIC_K_ASIAN_BANGLADESHI", S_ASIAN},
    {"asian_chinese", "ONS_ASIAN_CHINESE", "NHS_ETHNIC_R_CHINESE", S_ASIAN},
    {"asian_other", "ONS_ASIAN_OTHER", "NHS_ETHNIC_L_ASIAN_OTHER", S_ASIAN},
    {"black_african", "ONS_BLACK_AFRICAN", "NHS_ETHNIC_N_BLACK_AFRICAN", S_BLACK},
    {"black_caribbean", "ONS_BLACK_CARIBBEAN", "NHS_ETHNIC_M_BLACK_CARIBBEAN", S_BLACK},
    {"black_other", "ONS_BLACK_OTHER", "NHS_ETHNIC_P_BLACK_OTHER", S_BLACK},
    {"other_arab", "ONS_OTHER_ARAB", "NHS_ETHNIC_S_ANY_OTHER", S_OTHER},
    {"other_any", "ONS_OTHER_ANY", "NHS_ETHNIC_S_ANY_OTHER", S_OTHER},
};
#define S_ETHNIC_COUNT (sizeof S_ETHNIC / sizeof S_ETHNIC[0])

typedef struct {
    double share, detention, community;
} s_group_t;

typedef struct {
    double uptake, cto, interpreter;
    char language[16];
    s_table_t religion;
} s_broad_t;

/* What differs between the two services. */
typedef struct {
    s_table_t sex, age, source, reasons, consent, channel, venue, meeting_types, issues, closure;
    double waitlist, outcome, records_access;
} s_service_t;

typedef struct {
    double imha_share, not_stated, not_known;
    s_group_t group[S_ETHNIC_COUNT];
    s_broad_t broad[S_BROAD_COUNT];
    double gender_differs, veteran;
    s_table_t gender_other, gender_identity, disability, orientation, marital;
    s_service_t imha, community;
    double uptake_baseline, uptake_16_17, uptake_65_plus, uptake_cto, uptake_learning, uptake_deaf,
        info_given, s2_to_s3, referral_delay_days;
    s_table_t legal_status, duration_days;
    s_list_t wards;
    double out_of_area, no_mh_need;
    double declined, wait_max_days, wait_withdrew, contact_on_time, contact_late_max,
        unable_to_contact, meeting_on_time, meeting_late_max, work_min, work_max, gap_max_days,
        outcome_areas, score_min, score_max, improve, worse, edition4, feedback, unmet_need,
        referral_out, non_instructed;
    s_table_t decline_reasons, wait_reasons, feedback_kinds, unmet_categories, partners,
        activity_modes;
    s_list_t signposted_to, goals;
} s_params_t;

typedef struct {
    zconfig_t *root;
    const char *file;
    char *error;
    size_t error_size;
    bool failed;
} s_loader_t;

static void s_fail(s_loader_t *loader, const char *path, const char *what)
{
    if (!loader->failed)
        snprintf(loader->error, loader->error_size, "%s: %s: %s", loader->file, path, what);
    loader->failed = true;
}

static double s_number(s_loader_t *loader, const char *path, double min, double max)
{
    const char *text = zconfig_get(loader->root, path, NULL);
    if (!text) {
        s_fail(loader, path, "missing");
        return min;
    }
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end != '\0' || value < min || value > max) {
        char what[128];
        snprintf(what, sizeof what, "\"%s\" is not a number from %g to %g", text, min, max);
        s_fail(loader, path, what);
        return min;
    }
    return value;
}

/* A section whose children are NAME = weight (numbers) or NAME = text (names_only). */
static void s_table(s_loader_t *loader, const char *path, s_table_t *table, bool names_only)
{
    memset(table, 0, sizeof *table);
    zconfig_t *section = zconfig_locate(loader->root, path);
    if (!section || !zconfig_child(section)) {
        s_fail(loader, path, "missing (a section of NAME = value lines)");
        return;
    }
    for (zconfig_t *child = zconfig_child(section); child; child = zconfig_next(child)) {
        char where[256];
        snprintf(where, sizeof where, "%s/%s", path, zconfig_name(child));
        if (table->count == S_TABLE_MAX || strlen(zconfig_name(child)) >= S_NAME_MAX) {
            s_fail(loader, where, "too many entries or name too long");
            return;
        }
        int i = table->count++;
        snprintf(table->name[i], S_NAME_MAX, "%s", zconfig_name(child));
        const char *value = zconfig_value(child);
        if (names_only) {
            if (!value || !*value || strlen(value) >= S_NAME_MAX)
                s_fail(loader, where, "needs a value name");
            else
                snprintf(table->text[i], S_NAME_MAX, "%s", value);
            table->weight[i] = 1;
        } else
            table->weight[i] = s_number(loader, where, 0, 1e9);
        table->total += table->weight[i];
    }
    if (table->total <= 0)
        s_fail(loader, path, "the weights add up to 0");
}

/* A string of items separated by sep ("a,b,c"). */
static void s_list(s_loader_t *loader, const char *path, char sep, s_list_t *list)
{
    memset(list, 0, sizeof *list);
    const char *text = zconfig_get(loader->root, path, NULL);
    if (!text || !*text) {
        s_fail(loader, path, "missing");
        return;
    }
    while (*text && list->count < S_LIST_MAX) {
        const char *end = strchr(text, sep);
        size_t length = end ? (size_t)(end - text) : strlen(text);
        if (length > 0 && length < sizeof list->item[0]) {
            memcpy(list->item[list->count], text, length);
            list->item[list->count++][length] = '\0';
        }
        text += length + (end ? 1 : 0);
    }
    if (list->count == 0)
        s_fail(loader, path, "no items");
}

static void s_load_service(s_loader_t *loader, const char *name, s_service_t *service)
{
    struct {
        const char *key;
        s_table_t *table;
    } tables[] = {{"sex", &service->sex},         {"age", &service->age},
                  {"source", &service->source},   {"reasons", &service->reasons},
                  {"consent", &service->consent}, {"channel", &service->channel},
                  {"venue", &service->venue},     {"meeting_types", &service->meeting_types},
                  {"issues", &service->issues},   {"closure", &service->closure}};
    char path[128];
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", name, tables[i].key);
        s_table(loader, path, tables[i].table, false);
    }
    snprintf(path, sizeof path, "%s/waitlist", name);
    service->waitlist = s_number(loader, path, 0, 100);
    snprintf(path, sizeof path, "%s/outcome", name);
    service->outcome = s_number(loader, path, 0, 100);
    snprintf(path, sizeof path, "%s/records_access", name);
    service->records_access = s_number(loader, path, 0, 100);
}

static void s_load_people(s_loader_t *loader, s_params_t *p)
{
    char path[128];
    for (size_t i = 0; i < S_ETHNIC_COUNT; i++) {
        snprintf(path, sizeof path, "ethnicity/%s/share", S_ETHNIC[i].key);
        p->group[i].share = s_number(loader, path, 0, 100);
        snprintf(path, sizeof path, "ethnicity/%s/detention", S_ETHNIC[i].key);
        p->group[i].detention = s_number(loader, path, 0, 1e6);
        snprintf(path, sizeof path, "ethnicity/%s/community", S_ETHNIC[i].key);
        p->group[i].community = s_number(loader, path, 0, 1e3);
    }
    for (int b = 0; b < S_BROAD_COUNT; b++) {
        s_broad_t *broad = &p->broad[b];
        snprintf(path, sizeof path, "groups/%s/uptake", S_BROAD_NAMES[b]);
        broad->uptake = s_number(loader, path, 0, 10);
        snprintf(path, sizeof path, "groups/%s/cto", S_BROAD_NAMES[b]);
        broad->cto = s_number(loader, path, 0, 100);
        snprintf(path, sizeof path, "groups/%s/interpreter", S_BROAD_NAMES[b]);
        broad->interpreter = s_number(loader, path, 0, 100);
        snprintf(path, sizeof path, "groups/%s/language", S_BROAD_NAMES[b]);
        snprintf(broad->language, sizeof broad->language, "%s",
                 zconfig_get(loader->root, path, "en"));
        snprintf(path, sizeof path, "groups/%s/religion", S_BROAD_NAMES[b]);
        s_table(loader, path, &broad->religion, false);
    }
    p->gender_differs = s_number(loader, "person/gender_differs", 0, 100);
    p->veteran = s_number(loader, "person/veteran", 0, 100);
    s_table(loader, "person/gender_other", &p->gender_other, false);
    s_table(loader, "person/gender_identity", &p->gender_identity, false);
    s_table(loader, "person/disability", &p->disability, false);
    s_table(loader, "person/sexual_orientation", &p->orientation, false);
    s_table(loader, "person/marital_status", &p->marital, false);
}

static void s_load_course(s_loader_t *loader, s_params_t *p)
{
    struct {
        const char *key;
        double *value;
        double max;
    } numbers[] = {
        {"declined", &p->declined, 100},
        {"wait_max_days", &p->wait_max_days, 200},
        {"wait_withdrew", &p->wait_withdrew, 100},
        {"contact_on_time", &p->contact_on_time, 100},
        {"contact_late_max", &p->contact_late_max, 200},
        {"unable_to_contact", &p->unable_to_contact, 100},
        {"meeting_on_time", &p->meeting_on_time, 100},
        {"meeting_late_max", &p->meeting_late_max, 200},
        {"work_min", &p->work_min, 50},
        {"work_max", &p->work_max, 50},
        {"gap_max_days", &p->gap_max_days, 100},
        {"outcome_areas", &p->outcome_areas, 10},
        {"score_min", &p->score_min, 10},
        {"score_max", &p->score_max, 10},
        {"improve", &p->improve, 100},
        {"worse", &p->worse, 100},
        {"edition4", &p->edition4, 100},
        {"feedback", &p->feedback, 100},
        {"unmet_need", &p->unmet_need, 100},
        {"referral_out", &p->referral_out, 100},
        {"non_instructed", &p->non_instructed, 100},
    };
    char path[128];
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        snprintf(path, sizeof path, "lifecycle/%s", numbers[i].key);
        *numbers[i].value = s_number(loader, path, 0, numbers[i].max);
    }
    if (p->score_min < 1 || p->score_max < p->score_min)
        s_fail(loader, "lifecycle/score_min", "needs 1 <= score_min <= score_max");
    if (p->work_min < 1 || p->work_max < p->work_min)
        s_fail(loader, "lifecycle/work_min", "needs 1 <= work_min <= work_max");
    if (p->outcome_areas < 1)
        s_fail(loader, "lifecycle/outcome_areas", "needs at least 1");
    s_table(loader, "lifecycle/decline_reasons", &p->decline_reasons, false);
    s_table(loader, "lifecycle/wait_reasons", &p->wait_reasons, false);
    s_table(loader, "lifecycle/feedback_kinds", &p->feedback_kinds, false);
    s_table(loader, "lifecycle/unmet_categories", &p->unmet_categories, false);
    s_table(loader, "lifecycle/partners", &p->partners, true);
    s_table(loader, "lifecycle/activity_modes", &p->activity_modes, false);
    s_list(loader, "lifecycle/signposted_to", ',', &p->signposted_to);
    s_list(loader, "lifecycle/goals", ';', &p->goals);
}

/* Loads the whole parameters file. Returns 0 or ASY_ECONFIG / ASY_EIO with error[] set. */
static int s_params_load(const char *file, s_params_t *p, char *error, size_t error_size)
{
    if (access(file, R_OK) != 0) {
        snprintf(error, error_size, "cannot read %s: %s", file, strerror(errno));
        return ASY_EIO;
    }
    zconfig_t *root = zconfig_load(file);
    if (!root) {
        snprintf(error, error_size, "%s: not a valid zconfig file", file);
        return ASY_ECONFIG;
    }
    s_loader_t loader = {root, file, error, error_size, false};
    memset(p, 0, sizeof *p);
    p->imha_share = s_number(&loader, "sim/imha_share", 0, 100);
    p->not_stated = s_number(&loader, "sim/ethnicity_not_stated", 0, 100);
    p->not_known = s_number(&loader, "sim/ethnicity_not_known", 0, 100);
    s_load_people(&loader, p);
    s_load_service(&loader, "imha", &p->imha);
    s_load_service(&loader, "community", &p->community);
    p->uptake_baseline = s_number(&loader, "imha/uptake_baseline", 0, 100);
    p->uptake_16_17 = s_number(&loader, "imha/uptake_age_16_17", 0, 10);
    p->uptake_65_plus = s_number(&loader, "imha/uptake_age_65_plus", 0, 10);
    p->uptake_cto = s_number(&loader, "imha/uptake_cto", 0, 10);
    p->uptake_learning = s_number(&loader, "imha/uptake_learning_disability", 0, 10);
    p->uptake_deaf = s_number(&loader, "imha/uptake_deaf", 0, 10);
    p->info_given = s_number(&loader, "imha/info_given", 0, 100);
    p->s2_to_s3 = s_number(&loader, "imha/s2_to_s3", 0, 100);
    p->referral_delay_days = s_number(&loader, "imha/referral_delay_days", 0, 365);
    s_table(&loader, "imha/legal_status", &p->legal_status, false);
    s_table(&loader, "imha/duration_days", &p->duration_days, false);
    s_list(&loader, "imha/wards", ',', &p->wards);
    p->out_of_area = s_number(&loader, "community/out_of_area", 0, 100);
    p->no_mh_need = s_number(&loader, "community/no_mh_need", 0, 100);
    s_load_course(&loader, p);
    zconfig_destroy(&root);
    return loader.failed ? ASY_ECONFIG : 0;
}

int asy_simulate_default_params(char *path, size_t size)
{
    char candidates[5][4096];
    int count = 0;
    const char *env = getenv("ADVSYNC_SIM_PARAMS");
    if (env && *env)
        snprintf(candidates[count++], sizeof candidates[0], "%s", env);
    char exe[2048];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (length > 0) {
        exe[length] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(candidates[count++], sizeof candidates[0], "%s/../share/advsync/sim/default.cfg",
                 exe);
    }
    /* A build tree runs from anywhere: __FILE__ is .../client/agent/simulate.c. */
    char source[2048];
    snprintf(source, sizeof source, "%s", __FILE__);
    char *tail = strstr(source, "client/agent/simulate.c");
    if (tail) {
        *tail = '\0';
        snprintf(candidates[count++], sizeof candidates[0], "%sdeploy/sim/default.cfg", source);
    }
    snprintf(candidates[count++], sizeof candidates[0], "/usr/local/share/advsync/sim/default.cfg");
    snprintf(candidates[count++], sizeof candidates[0], "/usr/share/advsync/sim/default.cfg");
    for (int i = 0; i < count; i++)
        if (access(candidates[i], R_OK) == 0) {
            snprintf(path, size, "%s", candidates[i]);
            return 0;
        }
    snprintf(path, size, "%s", candidates[count - 1]);
    return ASY_ENOTFOUND;
}

/* ----------------------------------------------------------------------------------------------
   Cases: a person's profile and the steps of their lifecycle. */
typedef struct {
    int64_t t;        /* seconds since 1970, UTC */
    int kind;         /* asy_kind_t */
    const char *v[5]; /* value names and strings, borrowed from the parameters */
    int64_t n[3];     /* numbers and times */
} s_step_t;

typedef struct {
    uint64_t number;
    bool imha;
    int group; /* S_ETHNIC index */
    const char *ons, *nhs, *sex, *gender, *gender_identity, *age, *disability, *religion,
        *orientation, *marital, *veteran, *interpreter, *language;
    s_step_t *steps;
    size_t count, capacity, next;
    bool failed; /* out of memory while building */
} s_case_t;

typedef struct {
    int64_t t;
    uint64_t serial;
    s_case_t *c; /* NULL: the next arrival */
} s_entry_t;

typedef struct {
    const s_params_t *p;
    s_rng_t rng;
    const char *site_id;
    uint64_t seed;
    int service; /* 0 both, 1 imha, 2 community */
    double imha_weight[S_ETHNIC_COUNT], imha_total;
    double community_weight[S_ETHNIC_COUNT], community_total;
    int64_t start, horizon; /* cases arrive in [start, horizon); no step after horizon */
    double per_day;         /* arrivals per day */
    uint64_t cases;
    s_entry_t *heap;
    size_t heap_count, heap_capacity;
    uint64_t serial;
} s_sim_t;

static s_step_t *s_add(s_case_t *c, int64_t t, int kind)
{
    static s_step_t spare;
    if (c->count == c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 32;
        s_step_t *steps = realloc(c->steps, capacity * sizeof *steps);
        if (!steps) {
            c->failed = true;
            memset(&spare, 0, sizeof spare);
            return &spare;
        }
        c->steps = steps;
        c->capacity = capacity;
    }
    s_step_t *step = &c->steps[c->count++];
    memset(step, 0, sizeof *step);
    step->t = t;
    step->kind = kind;
    return step;
}

static void s_case_destroy(s_case_t **self_p)
{
    if (*self_p) {
        free((*self_p)->steps);
        free(*self_p);
        *self_p = NULL;
    }
}

static const char *s_pick(s_rng_t *rng, const s_table_t *table)
{
    double x = s_uniform(rng) * table->total;
    for (int i = 0; i < table->count; i++) {
        if (x < table->weight[i])
            return table->name[i];
        x -= table->weight[i];
    }
    return table->name[table->count - 1];
}

static double s_table_value(const s_table_t *table, const char *name, double otherwise)
{
    for (int i = 0; i < table->count; i++)
        if (strcmp(table->name[i], name) == 0)
            return table->weight[i];
    return otherwise;
}

static bool s_is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Working days skip Saturday and Sunday only (bank holidays are ignored). */
static bool s_weekend(int64_t day_start)
{
    int weekday = (int)(((day_start / S_DAY) + 4) % 7); /* 1970-01-01 was a Thursday: 0 Sunday */
    return weekday == 0 || weekday == 6;
}

/* A time between 09:00 and 17:00 UTC on the n-th working day after t's day (day 0 = t's day,
   or the next working day if t's is not one). */
static int64_t s_working(s_sim_t *sim, int64_t t, int64_t n)
{
    int64_t day = t - t % S_DAY;
    while (s_weekend(day))
        day += S_DAY;
    for (int64_t i = 0; i < n; i++) {
        day += S_DAY;
        while (s_weekend(day))
            day += S_DAY;
    }
    return day + 9 * S_HOUR + s_between(&sim->rng, 0, 8 * 60 - 1) * 60;
}

/* ----------------------------------------------------------------------------------------------
   Building a lifecycle. */

static int s_pick_group(s_sim_t *sim, bool imha)
{
    const double *weight = imha ? sim->imha_weight : sim->community_weight;
    double x = s_uniform(&sim->rng) * (imha ? sim->imha_total : sim->community_total);
    for (size_t i = 0; i < S_ETHNIC_COUNT; i++) {
        if (x < weight[i])
            return (int)i;
        x -= weight[i];
    }
    return (int)S_ETHNIC_COUNT - 1;
}

static void s_profile(s_sim_t *sim, s_case_t *c, const s_service_t *service)
{
    const s_params_t *p = sim->p;
    s_rng_t *rng = &sim->rng;
    const s_ethnic_t *ethnic = &S_ETHNIC[c->group];
    const s_broad_t *broad = &p->broad[ethnic->broad];
    double x = s_uniform(rng) * 100.0;
    if (x < p->not_stated) {
        c->ons = "ONS_NOT_STATED";
        c->nhs = "NHS_ETHNIC_Z_NOT_STATED";
    } else if (x < p->not_stated + p->not_known) {
        c->ons = "ONS_NOT_KNOWN";
        c->nhs = "NHS_ETHNIC_99_NOT_KNOWN";
    } else {
        c->ons = ethnic->ons;
        c->nhs = ethnic->nhs;
    }
    c->sex = s_pick(rng, &service->sex);
    if (s_chance(rng, p->gender_differs))
        c->gender = s_pick(rng, &p->gender_other);
    else
        c->gender = s_is(c->sex, "SEX_MALE")     ? "GENDER_MALE"
                    : s_is(c->sex, "SEX_FEMALE") ? "GENDER_FEMALE"
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

static const char *s_priority_of(const char *reason)
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
        if (s_is(reason, map[i][0]))
            return map[i][1];
    return NULL;
}

static bool s_left_before_goals(const char *closure)
{
    return s_is(closure, "CLOSURE_WITHDREW") || s_is(closure, "CLOSURE_DISENGAGED") ||
           s_is(closure, "CLOSURE_UNABLE_TO_CONTACT") || s_is(closure, "CLOSURE_MOVED");
}

static void s_close(s_case_t *c, int64_t t, const char *reason)
{
    s_step_t *step = s_add(c, t, ASY_KIND_CASE_CLOSED);
    step->v[0] = reason;
    step->n[0] = s_is(reason, "CLOSURE_GOALS_ACHIEVED");
    step->n[1] = s_left_before_goals(reason);
}

/* Referral, eligibility, decline: returns false if the case ends there. *t advances. */
static bool s_build_referral(s_sim_t *sim, s_case_t *c, const s_service_t *service, int64_t *t)
{
    const s_params_t *p = sim->p;
    s_rng_t *rng = &sim->rng;
    s_step_t *step = s_add(c, *t, ASY_KIND_REFERRAL_RECEIVED);
    step->v[0] = c->imha ? "SERVICE_IMHA" : "SERVICE_COMMUNITY";
    step->v[1] = s_pick(rng, &service->source);
    step->v[2] = c->imha ? "REASON_MHA_RIGHTS" : s_pick(rng, &service->reasons);
    const char *second = s_pick(rng, &service->reasons);
    step->v[3] = s_is(second, step->v[2]) ? NULL : second;
    step->v[4] = s_pick(rng, &service->consent);
    *t = s_working(sim, *t, 0) + S_HOUR;
    if (*t <= c->steps[c->count - 1].t)
        *t = c->steps[c->count - 1].t + S_HOUR;

    const char *criterion = NULL, *decline = NULL;
    if (!c->imha && s_is(c->age, "AGE_65_PLUS")) {
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
    *t = s_working(sim, *t, s_between(rng, 0, 2)) + S_HOUR;
    step = s_add(c, *t, ASY_KIND_REFERRAL_DECLINED);
    step->v[0] = decline;
    if (criterion && s_chance(rng, 50)) {
        step = s_add(c, *t + 600, ASY_KIND_UNMET_NEED_RECORDED);
        step->v[0] =
            s_is(decline, "DECLINE_OUT_OF_AREA") ? "UNMET_OUT_OF_AREA" : "UNMET_OUT_OF_CRITERIA";
        step->v[1] = p->signposted_to.item[s_between(rng, 0, p->signposted_to.count - 1)];
    }
    return false;
}

/* Waiting list and first contact; returns false if the case closes there. */
static bool s_build_contact(s_sim_t *sim, s_case_t *c, const s_service_t *service, int64_t received,
                            int64_t *t)
{
    const s_params_t *p = sim->p;
    s_rng_t *rng = &sim->rng;
    int64_t earliest = 0; /* working days after receipt */
    if (s_chance(rng, service->waitlist)) {
        s_step_t *step = s_add(c, *t + 1800, ASY_KIND_WAITLIST_JOINED);
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
        s_step_t *step = s_add(c, at, ASY_KIND_CONTACT_ATTEMPTED);
        step->v[0] = s_pick(rng, &service->channel);
        *t = at;
    }
    if (unreachable) {
        s_close(c, s_working(sim, *t, 3), "CLOSURE_UNABLE_TO_CONTACT");
        return false;
    }
    int64_t at = s_working(sim, received, day);
    *t = at > *t ? at : *t + 1800;
    s_step_t *step = s_add(c, *t, ASY_KIND_CONTACT_MADE);
    step->v[0] = s_pick(rng, &service->channel);
    /* the first meeting: counted from receipt, never before the contact */
    int64_t meeting = s_chance(rng, p->meeting_on_time)
                          ? s_between(rng, day, day > 10 ? day : 10)
                          : s_between(rng, 11, (int64_t)p->meeting_late_max);
    if (meeting < day)
        meeting = day;
    at = s_working(sim, received, meeting);
    *t = at > *t ? at : *t + 2 * S_HOUR;
    step = s_add(c, *t, ASY_KIND_MEETING_INITIAL_HELD);
    step->v[0] = s_pick(rng, &service->venue);
    return true;
}

static void s_build_outcomes(s_sim_t *sim, s_case_t *c, int64_t first, int64_t second, int areas)
{
    const s_params_t *p = sim->p;
    s_rng_t *rng = &sim->rng;
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
        s_step_t *step = s_add(c, first + 60 * i, ASY_KIND_OUTCOME_RECORDED);
        step->v[0] = area;
        step->n[0] = score;
        step->n[1] = edition;
        double x = s_uniform(rng) * 100.0;
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
static void s_build_work(s_sim_t *sim, s_case_t *c, const s_service_t *service, int64_t t,
                         int index)
{
    const s_params_t *p = sim->p;
    s_rng_t *rng = &sim->rng;
    if (index == 0 || s_chance(rng, 25)) {
        s_step_t *step = s_add(c, t, ASY_KIND_ISSUE_RECORDED);
        step->v[0] = s_pick(rng, &service->issues);
        step->n[0] = c->imha;
        t += 1800;
    }
    if (index > 0 || s_chance(rng, 50)) {
        s_step_t *step = s_add(c, t, ASY_KIND_MEETING_ATTENDED);
        step->v[0] = s_pick(rng, &service->meeting_types);
        step->v[1] =
            s_chance(rng, p->non_instructed) ? "ADVOCACY_NON_INSTRUCTED" : "ADVOCACY_INSTRUCTED";
        t += 1800;
    }
    s_step_t *step = s_add(c, t, ASY_KIND_ACTIVITY_LOGGED);
    step->n[0] = s_between(rng, 2, 24) * 5;
    step->v[0] = s_pick(rng, &p->activity_modes);
    step->n[1] = s_is(step->v[0], "ACTIVITY_FACE_TO_FACE") ? s_between(rng, 1, 12) * 5 : 0;
}

/* Everything after the referral. limit: IMHA cases end when qualifying ends. */
static void s_build_advocacy(s_sim_t *sim, s_case_t *c, int64_t received, int64_t limit)
{
    const s_params_t *p = sim->p;
    const s_service_t *service = c->imha ? &p->imha : &p->community;
    s_rng_t *rng = &sim->rng;
    size_t first = c->count;
    int64_t t = received;
    if (!s_build_referral(sim, c, service, &t) || !s_build_contact(sim, c, service, received, &t))
        goto limit;
    t += S_HOUR;
    s_step_t *step = s_add(c, s_working(sim, t, s_between(rng, 0, 5)), ASY_KIND_PLAN_AGREED);
    step->v[0] = p->goals.item[s_between(rng, 0, p->goals.count - 1)];
    step->v[1] = p->goals.item[s_between(rng, 0, p->goals.count - 1)];
    if (s_is(step->v[0], step->v[1]))
        step->v[1] = NULL;
    step->n[0] = step->t + 182 * S_DAY;
    t = step->t;
    int64_t plan = t;
    int work = (int)s_between(rng, (int64_t)p->work_min, (int64_t)p->work_max);
    for (int i = 0; i < work; i++) {
        t = s_working(sim, t, s_between(rng, 1, (int64_t)p->gap_max_days));
        s_build_work(sim, c, service, t, i);
        t += 2 * S_HOUR;
    }
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
    int64_t closed = s_working(sim, t, s_between(rng, 1, 10));
    if (s_chance(rng, service->outcome))
        s_build_outcomes(sim, c, plan + 1800, closed - S_HOUR,
                         (int)s_between(rng, 1, (int64_t)p->outcome_areas));
    if (s_chance(rng, p->feedback)) {
        step = s_add(c, closed + 1800, ASY_KIND_FEEDBACK_RECEIVED);
        step->v[0] = s_pick(rng, &p->feedback_kinds);
        step->n[0] = s_chance(rng, 50);
    }
    const char *reason = s_pick(rng, &service->closure);
    if (s_is(reason, "CLOSURE_QUALIFYING_ENDED") && limit > closed)
        closed = limit + S_HOUR;
    s_close(c, closed, reason);
limit:
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
            s_close(c, limit + S_HOUR, "CLOSURE_QUALIFYING_ENDED");
    }
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
        if (s_is(status, short_term[i]))
            return false;
    return true;
}

static double s_uptake(const s_sim_t *sim, const s_case_t *c, const char *status)
{
    const s_params_t *p = sim->p;
    double uptake = p->uptake_baseline * p->broad[S_ETHNIC[c->group].broad].uptake;
    if (s_is(c->age, "AGE_16_17"))
        uptake *= p->uptake_16_17;
    if (s_is(c->age, "AGE_65_PLUS"))
        uptake *= p->uptake_65_plus;
    if (s_is(status, "LEGAL_CTO_S17A"))
        uptake *= p->uptake_cto;
    if (s_is(c->disability, "DISABILITY_LEARNING"))
        uptake *= p->uptake_learning;
    if (s_is(c->disability, "DISABILITY_DEAF_OR_HEARING"))
        uptake *= p->uptake_deaf;
    return uptake > 95 ? 95 : uptake;
}

/* Legal status: the table's weights, with CTO scaled by the group's factor. */
static const char *s_pick_status(s_sim_t *sim, const s_case_t *c)
{
    const s_table_t *table = &sim->p->legal_status;
    double cto = sim->p->broad[S_ETHNIC[c->group].broad].cto;
    double total = 0;
    for (int i = 0; i < table->count; i++)
        total += table->weight[i] * (s_is(table->name[i], "LEGAL_CTO_S17A") ? cto : 1.0);
    double x = s_uniform(&sim->rng) * total;
    for (int i = 0; i < table->count; i++) {
        double w = table->weight[i] * (s_is(table->name[i], "LEGAL_CTO_S17A") ? cto : 1.0);
        if (x < w)
            return table->name[i];
        x -= w;
    }
    return table->name[table->count - 1];
}

static int64_t s_duration(s_sim_t *sim, const char *status)
{
    double days = s_table_value(&sim->p->duration_days, status, 28);
    return (int64_t)(days * S_DAY * (0.25 + 0.75 * s_uniform(&sim->rng)));
}

static void s_build_imha(s_sim_t *sim, s_case_t *c, int64_t t0)
{
    const s_params_t *p = sim->p;
    s_rng_t *rng = &sim->rng;
    c->group = s_pick_group(sim, true);
    s_profile(sim, c, &p->imha);
    const char *status = s_pick_status(sim, c);
    const char *ward = p->wards.item[s_between(rng, 0, p->wards.count - 1)];
    int64_t end = t0 + s_duration(sim, status);
    s_step_t *step = s_add(c, t0, ASY_KIND_QUALIFYING_STARTED);
    step->v[0] = status;
    step->v[1] = ward;
    step->n[0] = t0;
    if (s_qualifies(status) && s_chance(rng, p->info_given))
        step->n[1] = t0 + s_between(rng, 1, 48) * S_HOUR;
    s_add(c, t0 + s_between(rng, 10, 120) * 60, ASY_KIND_PERSON_PROFILE_RECORDED);
    const char *final = status;
    if (s_is(status, "LEGAL_02_S2") && s_chance(rng, p->s2_to_s3)) {
        int64_t changed = t0 + s_between(rng, 14 * S_DAY, 27 * S_DAY);
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
        t0 + S_HOUR + (int64_t)(-log(1.0 - s_uniform(rng)) * p->referral_delay_days * S_DAY);
    if (received < end - 6 * S_HOUR)
        s_build_advocacy(sim, c, received, end);
}

static void s_build_community(s_sim_t *sim, s_case_t *c, int64_t t0)
{
    c->group = s_pick_group(sim, false);
    s_profile(sim, c, &sim->p->community);
    int64_t received = s_working(sim, t0, 0);
    s_add(c, received - 600, ASY_KIND_PERSON_PROFILE_RECORDED);
    s_build_advocacy(sim, c, received, INT64_MAX);
}

static int s_step_compare(const void *a, const void *b)
{
    const s_step_t *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* A new case arriving at t0. Returns NULL on ENOMEM. */
static s_case_t *s_case_new(s_sim_t *sim, int64_t t0)
{
    s_case_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->number = ++sim->cases;
    bool imha = sim->service == 1 || (sim->service == 0 && s_chance(&sim->rng, sim->p->imha_share));
    c->imha = imha;
    if (imha)
        s_build_imha(sim, c, t0);
    else
        s_build_community(sim, c, t0);
    if (c->failed) {
        s_case_destroy(&c);
        return NULL;
    }
    /* time order, ties kept in build order by a stable insertion sort on nearly sorted data */
    for (size_t i = 1; i < c->count; i++)
        for (size_t j = i; j > 0 && s_step_compare(&c->steps[j - 1], &c->steps[j]) > 0; j--) {
            s_step_t swap = c->steps[j];
            c->steps[j] = c->steps[j - 1];
            c->steps[j - 1] = swap;
        }
    for (size_t i = 1; i < c->count; i++)
        if (c->steps[i].t <= c->steps[i - 1].t)
            c->steps[i].t = c->steps[i - 1].t + 60;
    return c;
}

/* ----------------------------------------------------------------------------------------------
   Steps as JSON event objects (the proto3 JSON mapping of advsync.v1.Event). */

static void s_set_text(json_t *object, const char *key, const char *value)
{
    if (value)
        json_object_set_new(object, key, json_string(value));
}

static void s_format_time(int64_t t, char out[32])
{
    time_t seconds = (time_t)t;
    struct tm tm;
    gmtime_r(&seconds, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void s_set_time(json_t *object, const char *key, int64_t t)
{
    char text[32];
    s_format_time(t, text);
    json_object_set_new(object, key, json_string(text));
}

static void s_set_date(json_t *object, const char *key, int64_t t)
{
    char text[32];
    s_format_time(t, text);
    text[10] = '\0';
    json_object_set_new(object, key, json_string(text));
}

static json_t *s_array(const char *a, const char *b)
{
    json_t *array = json_array();
    if (a)
        json_array_append_new(array, json_string(a));
    if (b)
        json_array_append_new(array, json_string(b));
    return array;
}

static json_t *s_profile_json(const s_case_t *c)
{
    json_t *body = json_object();
    s_set_text(body, "ons2021Ethnicity", c->ons);
    s_set_text(body, "nhsEthnicCategory", c->nhs);
    s_set_text(body, "sex", c->sex);
    s_set_text(body, "gender", c->gender);
    s_set_text(body, "genderIdentity", c->gender_identity);
    s_set_text(body, "ageBand", c->age);
    s_set_text(body, "disability", c->disability);
    s_set_text(body, "religion", c->religion);
    s_set_text(body, "sexualOrientation", c->orientation);
    s_set_text(body, "veteran", c->veteran);
    s_set_text(body, "language", c->language);
    s_set_text(body, "interpreterNeeded", c->interpreter);
    s_set_text(body, "maritalStatus", c->marital);
    return body;
}

static json_t *s_referral_json(const s_step_t *s)
{
    json_t *body = json_object();
    s_set_text(body, "service", s->v[0]);
    s_set_time(body, "receivedAt", s->t);
    s_set_text(body, "source", s->v[1]);
    json_object_set_new(body, "reasons", s_array(s->v[2], s->v[3]));
    const char *first = s_priority_of(s->v[2]), *second = s_priority_of(s->v[3]);
    if (s_is(s->v[0], "SERVICE_IMHA") && !first)
        first = "PRIORITY_ADMISSION_OR_DISCHARGE";
    if (s_is(first, second))
        second = NULL;
    if (first || second)
        json_object_set_new(body, "priorityGroups", s_array(first, second));
    s_set_text(body, "consentBasis", s->v[4]);
    return body;
}

/* The body of one step; *key gets the body's field name. */
static json_t *s_body_json(const s_case_t *c, const s_step_t *s, const char **key)
{
    json_t *body = json_object();
    switch (s->kind) {
    case ASY_KIND_PERSON_PROFILE_RECORDED:
        *key = "personProfileRecorded";
        json_decref(body);
        return s_profile_json(c);
    case ASY_KIND_QUALIFYING_STARTED:
    case ASY_KIND_QUALIFYING_CHANGED:
    case ASY_KIND_QUALIFYING_ENDED:
        *key = s->kind == ASY_KIND_QUALIFYING_STARTED   ? "qualifyingStarted"
               : s->kind == ASY_KIND_QUALIFYING_CHANGED ? "qualifyingChanged"
                                                        : "qualifyingEnded";
        s_set_text(body, "legalStatus", s->v[0]);
        s_set_time(body, "start", s->n[0]);
        if (s->n[2])
            s_set_time(body, "end", s->n[2]);
        s_set_text(body, "ward", s->v[1]);
        if (s->n[1])
            s_set_time(body, "imhaInfoGivenAt", s->n[1]);
        break;
    case ASY_KIND_REFERRAL_RECEIVED:
        *key = "referralReceived";
        json_decref(body);
        return s_referral_json(s);
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED:
        *key = "referralEligibilityDecided";
        json_object_set_new(body, "eligible", json_boolean(s->n[0]));
        if (s->v[0])
            json_object_set_new(body, "criteriaFailed", s_array(s->v[0], NULL));
        break;
    case ASY_KIND_REFERRAL_DECLINED:
        *key = "referralDeclined";
        s_set_text(body, "declineReason", s->v[0]);
        s_set_text(body, "writtenReasonSentTo", "referrer");
        json_object_set_new(body, "copiedToContractManager", json_true());
        break;
    case ASY_KIND_WAITLIST_JOINED:
        *key = "waitlistJoined";
        s_set_text(body, "reasonWaiting", s->v[0]);
        break;
    case ASY_KIND_WAITLIST_LEFT:
        *key = "waitlistLeft";
        s_set_text(body, "reason", s->v[0]);
        break;
    case ASY_KIND_CONTACT_ATTEMPTED:
    case ASY_KIND_CONTACT_MADE:
        *key = s->kind == ASY_KIND_CONTACT_MADE ? "contactMade" : "contactAttempted";
        s_set_text(body, "channel", s->v[0]);
        break;
    case ASY_KIND_MEETING_INITIAL_HELD:
        *key = "meetingInitialHeld";
        s_set_date(body, "date", s->t);
        s_set_text(body, "venueType", s->v[0]);
        break;
    case ASY_KIND_PLAN_AGREED:
        *key = "planAgreed";
        json_object_set_new(body, "goals", s_array(s->v[0], s->v[1]));
        s_set_date(body, "nextReviewDue", s->n[0]);
        break;
    case ASY_KIND_ISSUE_RECORDED:
        *key = "issueRecorded";
        s_set_text(body, "issueCategory", s->v[0]);
        json_object_set_new(body, "mhaRight", json_boolean(s->n[0]));
        break;
    case ASY_KIND_MEETING_ATTENDED:
        *key = "meetingAttended";
        s_set_text(body, "meetingType", s->v[0]);
        s_set_text(body, "mode", s->v[1]);
        break;
    case ASY_KIND_ACTIVITY_LOGGED:
        *key = "activityLogged";
        json_object_set_new(body, "minutes", json_integer(s->n[0]));
        s_set_text(body, "mode", s->v[0]);
        json_object_set_new(body, "travelMinutes", json_integer(s->n[1]));
        break;
    case ASY_KIND_RECORDS_ACCESS_REQUESTED:
        *key = "recordsAccessRequested";
        s_set_text(body, "basis", s->v[0]);
        break;
    case ASY_KIND_OUTCOME_RECORDED:
        *key = "outcomeRecorded";
        s_set_text(body, "framework", "FRAMEWORK_RECOVERY_STAR");
        s_set_text(body, "area", s->v[0]);
        json_object_set_new(body, "score", json_integer(s->n[0]));
        json_object_set_new(body, "edition", json_integer(s->n[1]));
        break;
    case ASY_KIND_FEEDBACK_RECEIVED:
        *key = "feedbackReceived";
        s_set_text(body, "kind", s->v[0]);
        json_object_set_new(body, "consentToPublish", json_boolean(s->n[0]));
        break;
    case ASY_KIND_UNMET_NEED_RECORDED:
        *key = "unmetNeedRecorded";
        s_set_text(body, "category", s->v[0]);
        s_set_text(body, "signpostedTo", s->v[1]);
        break;
    case ASY_KIND_REFERRAL_OUT_SENT:
        *key = "referralOutSent";
        s_set_text(body, "partnerId", s->v[0]);
        s_set_text(body, "purpose", s->v[1]);
        s_set_text(body, "summary", s->v[2]);
        break;
    default: /* ASY_KIND_CASE_CLOSED */
        *key = "caseClosed";
        s_set_text(body, "closureReason", s->v[0]);
        json_object_set_new(body, "goalsMet", json_boolean(s->n[0]));
        json_object_set_new(body, "leftBeforeGoals", json_boolean(s->n[1]));
        break;
    }
    return body;
}

/* One event object with raw references (caseRef, personRef): submit pseudonymises them. */
static json_t *s_event_json(const s_sim_t *sim, const s_case_t *c, const s_step_t *s)
{
    char reference[160];
    json_t *event = json_object();
    snprintf(reference, sizeof reference, "SIM-%s-%llu-%06llu", sim->site_id,
             (unsigned long long)sim->seed, (unsigned long long)c->number);
    s_set_text(event, "caseRef", reference);
    snprintf(reference, sizeof reference, "P-%s-%llu-%06llu", sim->site_id,
             (unsigned long long)sim->seed, (unsigned long long)c->number);
    s_set_text(event, "personRef", reference);
    s_set_time(event, "occurredAt", s->t);
    bool office = s->kind >= ASY_KIND_QUALIFYING_STARTED && s->kind <= ASY_KIND_QUALIFYING_ENDED;
    s_set_text(event, "actorRole", office ? "ACTOR_MHA_OFFICE" : "ACTOR_ADVOCATE");
    const char *key = "caseClosed";
    json_t *body = s_body_json(c, s, &key);
    json_object_set_new(event, key, body);
    return event;
}

/* ----------------------------------------------------------------------------------------------
   The interleaving: a min-heap of (time, serial). */

static bool s_heap_less(const s_entry_t *a, const s_entry_t *b)
{
    return a->t < b->t || (a->t == b->t && a->serial < b->serial);
}

static int s_heap_push(s_sim_t *sim, int64_t t, s_case_t *c)
{
    if (sim->heap_count == sim->heap_capacity) {
        size_t capacity = sim->heap_capacity ? sim->heap_capacity * 2 : 1024;
        s_entry_t *heap = realloc(sim->heap, capacity * sizeof *heap);
        if (!heap)
            return ASY_ENOMEM;
        sim->heap = heap;
        sim->heap_capacity = capacity;
    }
    size_t i = sim->heap_count++;
    sim->heap[i] = (s_entry_t){t, sim->serial++, c};
    while (i > 0 && s_heap_less(&sim->heap[i], &sim->heap[(i - 1) / 2])) {
        s_entry_t swap = sim->heap[i];
        sim->heap[i] = sim->heap[(i - 1) / 2];
        sim->heap[(i - 1) / 2] = swap;
        i = (i - 1) / 2;
    }
    return 0;
}

static s_entry_t s_heap_pop(s_sim_t *sim)
{
    s_entry_t top = sim->heap[0];
    sim->heap[0] = sim->heap[--sim->heap_count];
    for (size_t i = 0;;) {
        size_t least = i, left = 2 * i + 1, right = 2 * i + 2;
        if (left < sim->heap_count && s_heap_less(&sim->heap[left], &sim->heap[least]))
            least = left;
        if (right < sim->heap_count && s_heap_less(&sim->heap[right], &sim->heap[least]))
            least = right;
        if (least == i)
            break;
        s_entry_t swap = sim->heap[i];
        sim->heap[i] = sim->heap[least];
        sim->heap[least] = swap;
        i = least;
    }
    return top;
}

static void s_heap_clear(s_sim_t *sim)
{
    while (sim->heap_count > 0) {
        s_entry_t entry = s_heap_pop(sim);
        s_case_destroy(&entry.c);
    }
}

static int64_t s_next_arrival(s_sim_t *sim, int64_t t)
{
    double days = -log(1.0 - s_uniform(&sim->rng)) / sim->per_day;
    double seconds = days * S_DAY;
    return seconds > 1e12 ? INT64_MAX / 2 : t + 1 + (int64_t)seconds;
}

/* Events that one arrival a day between start and horizon produces before horizon, measured
   on a pilot with its own random stream. */
static double s_events_per_rate(s_sim_t *sim)
{
    s_rng_t saved = sim->rng;
    uint64_t cases = sim->cases;
    sim->rng.state = sim->seed ^ 0x6a09e667f3bcc909ULL;
    double span_days = (double)(sim->horizon - sim->start) / S_DAY;
    uint64_t events = 0;
    for (int i = 0; i < S_PILOT_ARRIVALS; i++) {
        int64_t t0 =
            sim->start + (int64_t)(s_uniform(&sim->rng) * (double)(sim->horizon - sim->start));
        s_case_t *c = s_case_new(sim, t0);
        for (size_t j = 0; c && j < c->count; j++)
            events += c->steps[j].t < sim->horizon;
        s_case_destroy(&c);
    }
    sim->rng = saved;
    sim->cases = cases;
    double per_day = S_PILOT_ARRIVALS / span_days;
    return events > 0 ? (double)events / per_day : 1.0;
}

/* ----------------------------------------------------------------------------------------------
   The command: options, pacing, storing or printing. */

typedef struct {
    uint64_t events; /* 0: until a signal */
    double rate;     /* events per second; 0: as fast as possible */
    uint64_t seed;
    const char *params;
    int service;   /* 0 both, 1 imha, 2 community */
    int64_t start; /* 0: 120 days before today */
    bool json;
} s_options_t;

typedef struct {
    asy_submitter_t *submitter; /* NULL with --json */
    bool in_transaction;
    uint64_t emitted; /* stored or printed */
    uint64_t pending; /* since the last commit */
    int64_t last_commit_us;
    int64_t begin_us;
    int64_t first_t, last_t;
} s_sink_t;

static volatile sig_atomic_t s_stop_requested;

static void s_on_signal(int signal_number)
{
    (void)signal_number;
    s_stop_requested = 1;
}

static int64_t s_monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* Makes what was emitted durable (outbox) or visible (stdout). */
static int s_flush(s_sink_t *sink)
{
    sink->last_commit_us = s_monotonic_us();
    if (!sink->submitter) {
        fflush(stdout);
        sink->pending = 0;
        return 0;
    }
    if (!sink->in_transaction)
        return 0;
    asy_outbox_t *outbox = sink->submitter->outbox;
    sink->in_transaction = false;
    if (asy_outbox_commit(outbox) != 0) {
        asy_error("simulate: cannot commit to the outbox: %s", asy_outbox_errmsg(outbox));
        asy_outbox_rollback(outbox);
        return ASY_EDB;
    }
    sink->pending = 0;
    return 0;
}

static int s_begin(s_sink_t *sink)
{
    if (!sink->submitter || sink->in_transaction)
        return 0;
    if (asy_outbox_begin(sink->submitter->outbox) != 0) {
        asy_error("simulate: cannot write to the outbox: %s",
                  asy_outbox_errmsg(sink->submitter->outbox));
        return ASY_EDB;
    }
    sink->in_transaction = true;
    return 0;
}

/* With --rate, waits until the next event is due, committing at least every 100 ms.
   Returns 0, ASY_ERETRY if a stop was requested meanwhile, or a commit error. */
static int s_pace(const s_options_t *options, s_sink_t *sink)
{
    if (options->rate <= 0)
        return 0;
    int64_t due = sink->begin_us + (int64_t)((double)sink->emitted * 1e6 / options->rate);
    for (;;) {
        if (s_stop_requested)
            return ASY_ERETRY;
        int64_t now = s_monotonic_us();
        if (sink->pending > 0 && now - sink->last_commit_us >= S_COMMIT_US) {
            int rc = s_flush(sink);
            if (rc != 0)
                return rc;
            continue;
        }
        if (now >= due)
            return 0;
        int64_t wait = due - now;
        if (sink->pending > 0 && sink->last_commit_us + S_COMMIT_US - now < wait)
            wait = sink->last_commit_us + S_COMMIT_US - now;
        if (wait > S_COMMIT_US)
            wait = S_COMMIT_US;
        struct timespec pause = {(time_t)(wait / 1000000), (long)(wait % 1000000) * 1000};
        nanosleep(&pause, NULL); /* a signal cuts it short: the loop looks at the flag */
    }
}

static int s_emit(const s_sim_t *sim, const s_options_t *options, s_sink_t *sink, const s_case_t *c,
                  const s_step_t *step)
{
    int rc = s_pace(options, sink);
    if (rc == 0)
        rc = s_begin(sink);
    if (rc != 0)
        return rc;
    json_t *event = s_event_json(sim, c, step);
    if (!event)
        return ASY_ENOMEM;
    if (sink->submitter) {
        char error[512] = "";
        int added = asy_submitter_add(sink->submitter, event, error, sizeof error);
        json_decref(event);
        if (added == ASY_EINVAL) {
            asy_error("simulate: a generated %s event was refused: %s", asy_kind_name(step->kind),
                      error);
            return sink->submitter->rejected >= S_MAX_REJECTED ? ASY_EINVAL : 0;
        }
        if (added != 0 && added != ASY_EEXIST) {
            asy_error("simulate: cannot store an event: %s", error);
            return added;
        }
    } else {
        char *text = json_dumps(event, JSON_COMPACT);
        json_decref(event);
        if (!text)
            return ASY_ENOMEM;
        puts(text);
        free(text);
    }
    if (sink->emitted++ == 0)
        sink->first_t = step->t;
    sink->last_t = step->t;
    if (++sink->pending >= S_COMMIT_EVENTS ||
        (options->rate > 0 && s_monotonic_us() - sink->last_commit_us >= S_COMMIT_US))
        return s_flush(sink);
    return 0;
}

/* One pass: cases arrive between start and horizon; steps after horizon are never emitted.
   Returns 0 when the pass runs out, the count is reached or a stop is requested. */
static int s_pass(s_sim_t *sim, const s_options_t *options, s_sink_t *sink)
{
    int rc = s_heap_push(sim, s_next_arrival(sim, sim->start), NULL);
    while (rc == 0 && sim->heap_count > 0) {
        if (s_stop_requested || (options->events && sink->emitted >= options->events))
            break;
        s_entry_t entry = s_heap_pop(sim);
        s_case_t *c = entry.c;
        if (!c) {
            if (entry.t >= sim->horizon)
                continue;
            c = s_case_new(sim, entry.t);
            rc = c ? s_heap_push(sim, c->steps[0].t, c) : ASY_ENOMEM;
            if (rc != 0)
                s_case_destroy(&c);
            else
                rc = s_heap_push(sim, s_next_arrival(sim, entry.t), NULL);
            continue;
        }
        const s_step_t *step = &c->steps[c->next];
        if (step->t >= sim->horizon) {
            s_case_destroy(&c);
            continue;
        }
        rc = s_emit(sim, options, sink, c, step);
        if (rc == ASY_ERETRY) {
            s_case_destroy(&c);
            return 0;
        }
        if (rc == 0 && ++c->next < c->count)
            rc = s_heap_push(sim, c->steps[c->next].t, c);
        else
            s_case_destroy(&c);
        if (rc != 0)
            s_case_destroy(&c);
    }
    return rc;
}

static int64_t s_today(void)
{
    int64_t now = (int64_t)time(NULL);
    return now - now % S_DAY;
}

/* Runs passes until the count is reached (or forever without one, until a signal). */
static int s_run(s_sim_t *sim, const s_options_t *options, s_sink_t *sink)
{
    /* without --events, plan for an hour of events per pass */
    uint64_t per_pass =
        options->events ? options->events : (uint64_t)(options->rate * 3600.0) + 1000;
    double boost = 1.0;
    sink->begin_us = sink->last_commit_us = s_monotonic_us();
    while (!s_stop_requested && (!options->events || sink->emitted < options->events)) {
        sim->horizon = s_today();
        uint64_t wanted = options->events ? options->events - sink->emitted : per_pass;
        sim->per_day = boost * 1.05 * (double)wanted / s_events_per_rate(sim);
        uint64_t before = sink->emitted;
        int rc = s_pass(sim, options, sink);
        s_heap_clear(sim);
        if (rc != 0)
            return rc;
        if (sink->emitted == before && !s_stop_requested) {
            boost *= 2;
            if (boost > 1e6) {
                asy_error("simulate: the parameters produce no events before today");
                return ASY_EINVAL;
            }
        }
    }
    return s_flush(sink);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-agent [common options] simulate [--events N] [--rate EPS] [--seed S]\n"
            "           [--params FILE] [--service imha|community|both] [--start YYYY-MM-DD]\n"
            "           [--json]\n"
            "\n"
            "Generates synthetic person and case lifecycles for this site and stores them in the\n"
            "outbox through the ordinary submission path (pseudonymised, validated).\n"
            "  --events N      exactly N events, then stop (without --rate: as fast as possible)\n"
            "  --rate EPS      about EPS events a second, committed at least every 100 ms, until\n"
            "                  N events or SIGTERM/SIGINT (then commit and exit 0)\n"
            "  --seed S        the same seed gives the same events (default: from the clock)\n"
            "  --params FILE   the model's figures (default deploy/sim/default.cfg, installed as\n"
            "                  share/advsync/sim/default.cfg; or $ADVSYNC_SIM_PARAMS)\n"
            "  --service S     imha (hospital), community, or both (default)\n"
            "  --start DATE    first day of the simulated history (default 120 days ago); it ends\n"
            "                  before today\n"
            "  --json          print the events as JSON lines (raw caseRef/personRef, as `submit`\n"
            "                  reads them) instead of storing them\n"
            "\n"
            "Exit status: 0 done, 1 failure, 2 usage or parameters error, 3 some generated\n"
            "events were refused (a bug: see the messages).\n");
}

static bool s_parse_date(const char *text, int64_t *out)
{
    int year, month, day;
    char extra;
    if (sscanf(text, "%4d-%2d-%2d%c", &year, &month, &day, &extra) != 3)
        return false;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day};
    time_t t = timegm(&tm);
    if (tm.tm_year != year - 1900 || tm.tm_mon != month - 1 || tm.tm_mday != day)
        return false;
    *out = (int64_t)t;
    return true;
}

/* Returns 0, or 2 after printing the problem (1 means --help was asked). */
static int s_parse(int argc, char **argv, s_options_t *options)
{
    memset(options, 0, sizeof *options);
    options->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strcmp(arg, "--json") == 0) {
            options->json = true;
            continue;
        }
        if (i + 1 >= argc || strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "advsync-agent simulate: %s %s\n", arg,
                    strncmp(arg, "--", 2) == 0 ? "needs a value" : "is not an option");
            return 2;
        }
        const char *value = argv[++i];
        char *end = NULL;
        errno = 0;
        bool ok = true;
        if (strcmp(arg, "--events") == 0) {
            options->events = strtoull(value, &end, 10);
            ok = !errno && *end == '\0' && options->events > 0 && value[0] != '-';
        } else if (strcmp(arg, "--rate") == 0) {
            options->rate = strtod(value, &end);
            ok = !errno && *end == '\0' && options->rate > 0 && options->rate <= 1e6;
        } else if (strcmp(arg, "--seed") == 0) {
            options->seed = strtoull(value, &end, 0);
            ok = !errno && *end == '\0' && value[0] != '-';
        } else if (strcmp(arg, "--params") == 0)
            options->params = value;
        else if (strcmp(arg, "--service") == 0) {
            options->service = strcmp(value, "both") == 0        ? 0
                               : strcmp(value, "imha") == 0      ? 1
                               : strcmp(value, "community") == 0 ? 2
                                                                 : -1;
            ok = options->service >= 0;
        } else if (strcmp(arg, "--start") == 0)
            ok = s_parse_date(value, &options->start) && options->start >= 946684800;
        else {
            fprintf(stderr, "advsync-agent simulate: unknown option %s\n", arg);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "advsync-agent simulate: %s: bad value \"%s\"\n", arg, value);
            return 2;
        }
    }
    if (!options->events && options->rate <= 0) {
        fprintf(stderr, "advsync-agent simulate: give --events N, --rate EPS, or both\n");
        return 2;
    }
    int64_t today = s_today();
    if (!options->start)
        options->start = today - 120 * (int64_t)S_DAY;
    if (options->start >= today) {
        fprintf(stderr, "advsync-agent simulate: --start must be before today\n");
        return 2;
    }
    return 0;
}

static void s_prepare_weights(s_sim_t *sim)
{
    for (size_t i = 0; i < S_ETHNIC_COUNT; i++) {
        const s_group_t *group = &sim->p->group[i];
        sim->imha_weight[i] = group->share * group->detention;
        sim->community_weight[i] = group->share * group->community;
        sim->imha_total += sim->imha_weight[i];
        sim->community_total += sim->community_weight[i];
    }
}

int asy_cmd_simulate(const asy_agent_config_t *config, int argc, char **argv)
{
    s_options_t options;
    int parsed = s_parse(argc, argv, &options);
    if (parsed != 0) {
        s_usage(parsed == 1 ? stdout : stderr);
        return parsed == 1 ? 0 : 2;
    }
    char path[4096], error[1024];
    if (options.params)
        snprintf(path, sizeof path, "%s", options.params);
    else if (asy_simulate_default_params(path, sizeof path) != 0) {
        fprintf(stderr,
                "advsync-agent simulate: no parameters file (tried %s and others); "
                "pass --params FILE\n",
                path);
        return 2;
    }
    s_params_t *params = calloc(1, sizeof *params);
    if (!params)
        return 1;
    if (s_params_load(path, params, error, sizeof error) != 0) {
        fprintf(stderr, "advsync-agent simulate: %s\n", error);
        free(params);
        return 2;
    }
    s_sim_t sim = {.p = params,
                   .site_id = config->site_id,
                   .seed = options.seed,
                   .service = options.service,
                   .start = options.start};
    sim.rng.state = options.seed;
    s_prepare_weights(&sim);

    asy_pseudonym_key_t key;
    asy_outbox_t *outbox = NULL;
    asy_submitter_t submitter = {0};
    s_sink_t sink = {0};
    if (!options.json) {
        if (asy_submitter_open(config, &key, &outbox) != 0) {
            free(params);
            return 1;
        }
        submitter = (asy_submitter_t){.outbox = outbox, .key = &key, .site_id = config->site_id};
        sink.submitter = &submitter;
    }
    asy_info("simulate: seed %llu, parameters %s, %s", (unsigned long long)options.seed, path,
             options.rate > 0 ? "paced" : "backlog");

    struct sigaction action = {.sa_handler = s_on_signal}, old_term, old_int;
    sigemptyset(&action.sa_mask);
    s_stop_requested = 0;
    sigaction(SIGTERM, &action, &old_term);
    sigaction(SIGINT, &action, &old_int);
    int rc = s_run(&sim, &options, &sink);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    if (rc != 0 && sink.in_transaction) {
        /* keep what was generated before a failure that did not come from the outbox */
        if (rc != ASY_EDB)
            s_flush(&sink);
        else
            asy_outbox_rollback(outbox);
    }
    free(sim.heap);
    free(params);
    asy_outbox_destroy(&outbox);

    char first[32] = "-", last[32] = "-";
    if (sink.emitted) {
        s_format_time(sink.first_t, first);
        s_format_time(sink.last_t, last);
    }
    if (options.json)
        asy_info("simulate: printed %llu events of %llu cases, %s to %s",
                 (unsigned long long)sink.emitted, (unsigned long long)sim.cases, first, last);
    else
        printf("stored %llu events of %llu cases, %s to %s; rejected %llu%s\n",
               (unsigned long long)sink.emitted, (unsigned long long)sim.cases, first, last,
               (unsigned long long)submitter.rejected, s_stop_requested ? " (stopped)" : "");
    if (rc != 0)
        return 1;
    return submitter.rejected ? 3 : 0;
}
