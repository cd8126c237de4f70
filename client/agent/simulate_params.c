/*  simulate_params.c: loads the simulator's figures, deploy/sim/default.cfg (see
    simulate_private.h). Every figure is checked against its range; the first problem is
    reported as "FILE: PATH: what".  */
#include "sections.h"
#include "simulate_private.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const S_BROAD_NAMES[ASY_SIM_BROAD_COUNT] = {"white", "mixed", "asian", "black",
                                                               "other"};

const asy_sim_ethnic_t ASY_SIM_ETHNIC[ASY_SIM_ETHNIC_COUNT] = {
    {"white_british", "ONS_WHITE_BRITISH", "NHS_ETHNIC_A_WHITE_BRITISH", ASY_SIM_WHITE},
    {"white_irish", "ONS_WHITE_IRISH", "NHS_ETHNIC_B_WHITE_IRISH", ASY_SIM_WHITE},
    {"white_gypsy_irish_traveller", "ONS_WHITE_GYPSY_IRISH_TRAVELLER", "NHS_ETHNIC_C_WHITE_OTHER",
     ASY_SIM_WHITE},
    {"white_roma", "ONS_WHITE_ROMA", "NHS_ETHNIC_C_WHITE_OTHER", ASY_SIM_WHITE},
    {"white_other", "ONS_WHITE_OTHER", "NHS_ETHNIC_C_WHITE_OTHER", ASY_SIM_WHITE},
    {"mixed_white_black_caribbean", "ONS_MIXED_WHITE_BLACK_CARIBBEAN",
     "NHS_ETHNIC_D_MIXED_WHITE_BLACK_CARIBBEAN", ASY_SIM_MIXED},
    {"mixed_white_black_african", "ONS_MIXED_WHITE_BLACK_AFRICAN",
     "NHS_ETHNIC_E_MIXED_WHITE_BLACK_AFRICAN", ASY_SIM_MIXED},
    {"mixed_white_asian", "ONS_MIXED_WHITE_ASIAN", "NHS_ETHNIC_F_MIXED_WHITE_ASIAN", ASY_SIM_MIXED},
    {"mixed_other", "ONS_MIXED_OTHER", "NHS_ETHNIC_G_MIXED_OTHER", ASY_SIM_MIXED},
    {"asian_indian", "ONS_ASIAN_INDIAN", "NHS_ETHNIC_H_ASIAN_INDIAN", ASY_SIM_ASIAN},
    {"asian_pakistani", "ONS_ASIAN_PAKISTANI", "NHS_ETHNIC_J_ASIAN_PAKISTANI", ASY_SIM_ASIAN},
    {"asian_bangladeshi", "ONS_ASIAN_BANGLADESHI", "NHS_ETHNIC_K_ASIAN_BANGLADESHI", ASY_SIM_ASIAN},
    {"asian_chinese", "ONS_ASIAN_CHINESE", "NHS_ETHNIC_R_CHINESE", ASY_SIM_ASIAN},
    {"asian_other", "ONS_ASIAN_OTHER", "NHS_ETHNIC_L_ASIAN_OTHER", ASY_SIM_ASIAN},
    {"black_african", "ONS_BLACK_AFRICAN", "NHS_ETHNIC_N_BLACK_AFRICAN", ASY_SIM_BLACK},
    {"black_caribbean", "ONS_BLACK_CARIBBEAN", "NHS_ETHNIC_M_BLACK_CARIBBEAN", ASY_SIM_BLACK},
    {"black_other", "ONS_BLACK_OTHER", "NHS_ETHNIC_P_BLACK_OTHER", ASY_SIM_BLACK},
    {"other_arab", "ONS_OTHER_ARAB", "NHS_ETHNIC_S_ANY_OTHER", ASY_SIM_OTHER},
    {"other_any", "ONS_OTHER_ANY", "NHS_ETHNIC_S_ANY_OTHER", ASY_SIM_OTHER},
};

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
static void s_table(s_loader_t *loader, const char *path, asy_sim_table_t *table, bool names_only)
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
        if (table->count == ASY_SIM_TABLE_MAX || strlen(zconfig_name(child)) >= ASY_SIM_NAME_MAX) {
            s_fail(loader, where, "too many entries or name too long");
            return;
        }
        int i = table->count++;
        snprintf(table->name[i], ASY_SIM_NAME_MAX, "%s", zconfig_name(child));
        const char *value = zconfig_value(child);
        if (names_only) {
            if (!value || !*value || strlen(value) >= ASY_SIM_NAME_MAX)
                s_fail(loader, where, "needs a value name");
            else
                snprintf(table->text[i], ASY_SIM_NAME_MAX, "%s", value);
            table->weight[i] = 1;
        } else
            table->weight[i] = s_number(loader, where, 0, 1e9);
        table->total += table->weight[i];
    }
    if (table->total <= 0)
        s_fail(loader, path, "the weights add up to 0");
}

/* A string of items separated by sep ("a,b,c"). */
static void s_list(s_loader_t *loader, const char *path, char sep, asy_sim_list_t *list)
{
    memset(list, 0, sizeof *list);
    const char *text = zconfig_get(loader->root, path, NULL);
    if (!text || !*text) {
        s_fail(loader, path, "missing");
        return;
    }
    while (*text && list->count < ASY_SIM_LIST_MAX) {
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

static void s_load_service(s_loader_t *loader, const char *name, asy_sim_service_t *service)
{
    struct {
        const char *key;
        asy_sim_table_t *table;
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

static void s_load_people(s_loader_t *loader, asy_sim_params_t *p)
{
    char path[128];
    for (size_t i = 0; i < ASY_SIM_ETHNIC_COUNT; i++) {
        snprintf(path, sizeof path, "ethnicity/%s/share", ASY_SIM_ETHNIC[i].key);
        p->group[i].share = s_number(loader, path, 0, 100);
        snprintf(path, sizeof path, "ethnicity/%s/detention", ASY_SIM_ETHNIC[i].key);
        p->group[i].detention = s_number(loader, path, 0, 1e6);
        snprintf(path, sizeof path, "ethnicity/%s/community", ASY_SIM_ETHNIC[i].key);
        p->group[i].community = s_number(loader, path, 0, 1e3);
    }
    for (int b = 0; b < ASY_SIM_BROAD_COUNT; b++) {
        asy_sim_broad_t *broad = &p->broad[b];
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
    p->repeat = s_number(loader, "person/repeat", 0, 100);
    s_table(loader, "person/gender_other", &p->gender_other, false);
    s_table(loader, "person/gender_identity", &p->gender_identity, false);
    s_table(loader, "person/disability", &p->disability, false);
    s_table(loader, "person/sexual_orientation", &p->orientation, false);
    s_table(loader, "person/marital_status", &p->marital, false);
}

static void s_load_course(s_loader_t *loader, asy_sim_params_t *p)
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
int asy_sim_params_load(const char *file, asy_sim_params_t *p, char *error, size_t error_size)
{
    if (access(file, R_OK) != 0) {
        snprintf(error, error_size, "cannot read %s: %s", file, strerror(errno));
        return ASY_EIO;
    }
    char why[256];
    zconfig_t *root = asy_config_load(file, why, sizeof why);
    if (!root) {
        snprintf(error, error_size, "%s %s", file, why);
        return ASY_ECONFIG;
    }
    s_loader_t loader = {root, file, error, error_size, false};
    memset(p, 0, sizeof *p);
    p->imha_share = s_number(&loader, "sim/imha_share", 0, 100);
    p->not_stated = s_number(&loader, "sim/ethnicity_not_stated", 0, 100);
    p->not_known = s_number(&loader, "sim/ethnicity_not_known", 0, 100);
    /* optional (parameter files written before it): none omitted */
    p->nhs_omitted = zconfig_get(loader.root, "sim/community_nhs_category_omitted", NULL)
                         ? s_number(&loader, "sim/community_nhs_category_omitted", 0, 100)
                         : 0;
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
    /* A build tree runs from anywhere: __FILE__ is .../client/agent/simulate_params.c. */
    char source[2048];
    snprintf(source, sizeof source, "%s", __FILE__);
    char *tail = strstr(source, "client/agent/simulate_params.c");
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
