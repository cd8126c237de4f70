/*  aggregate_render.c: the value of one topic, from the counters, with its confidence
    intervals (stats.h) and, for the public stream, disclosure control (proto/PROTOCOL.md 12,
    13).  */
#include "aggregate_private.h"

#include "stats.h"

#include <math.h>
#include <string.h>

#define S_Z ASY_STATS_Z95

typedef struct {
    const asy_aggregate_t *self;
    const int64_t *block; /* counters of the topic's (scope, period); NULL for "now" */
    asy_mupdate_t *update;
    bool public; /* values from counts as rounded for the public stream (s_shown) */
} s_render_t;

static int64_t s_get(const s_render_t *r, int family, int slot, int group, int which)
{
    return *asy_counter(r->self, (int64_t *)r->block, family, slot, group, which);
}

/* A count as it enters a value (a percentage, rate, ratio, expected count or interval): on the
   public stream rounded to the nearest 5 as the counts shown are (PROTOCOL.md 13.2). A value
   from the exact count, beside a published denominator or expected count, gives that count
   back: 3.924 per 100,000 of 433,215 people is 17 referrals, not the 15 shown. The cell's own
   count stays exact here: disclosure control decides suppression on it, then rounds it. */
static int64_t s_shown(const s_render_t *r, int64_t count)
{
    return r->public ? asy_disclosure_round(&ASY_DISCLOSURE_DEFAULT, count) : count;
}

/* The slot of dimension dim in family, or -1. */
static int s_slot(int family, asy_dim_t dim)
{
    for (int k = 0; asy_family_dims[family][k] >= 0; k++)
        if (asy_family_dims[family][k] == (int)dim)
            return k;
    return -1;
}

static asy_mcell_t *s_cell(s_render_t *r, const char *prefix, asy_dim_t dim, int group)
{
    const char *name = asy_dims[dim].name;
    char breakdown[ASY_MNAME_MAX];
    if (*prefix) {
        snprintf(breakdown, sizeof breakdown, "%s%s", prefix, name);
        name = breakdown;
    }
    return asy_mupdate_add_cell(r->update, name, asy_dim_group_name(dim, group));
}

static void s_interval(asy_mcell_t *cell, const asy_interval_t *iv, double scale)
{
    if (iv->status != ASY_STAT_OK)
        return;
    cell->has_value = true;
    cell->value = iv->value * scale;
    if (isfinite(iv->lower) && isfinite(iv->upper)) {
        cell->has_interval = true;
        cell->lower = iv->lower * scale;
        cell->upper = iv->upper * scale;
    }
}

/* M1, M2: a count per group. */
static int s_counts(s_render_t *r, int family)
{
    for (int k = 0; asy_family_dims[family][k] >= 0; k++) {
        asy_dim_t dim = (asy_dim_t)asy_family_dims[family][k];
        for (int g = 0; g < asy_dims[dim].groups; g++) {
            int64_t count = s_get(r, family, k, g, 0);
            if (count == 0 && dim != ASY_DIM_TOTAL)
                continue;
            asy_mcell_t *cell = s_cell(r, "", dim, g);
            if (!cell)
                return ASY_ENOMEM;
            cell->has_count = true;
            cell->count = count;
        }
    }
    return 0;
}

/* M4, M5, M6, M11, M13: numerator / denominator per group, Wilson interval, in percent. Only
   the dimensions in `only` (-1 terminated; NULL = all of the family). */
static int s_proportions(s_render_t *r, int family, const char *prefix, const int *only)
{
    for (int k = 0; asy_family_dims[family][k] >= 0; k++) {
        asy_dim_t dim = (asy_dim_t)asy_family_dims[family][k];
        bool wanted = !only;
        for (int i = 0; only && only[i] >= 0; i++)
            wanted |= only[i] == (int)dim;
        if (!wanted)
            continue;
        for (int g = 0; g < asy_dims[dim].groups; g++) {
            int64_t n = s_get(r, family, k, g, 0), x = s_get(r, family, k, g, 1);
            if (n == 0 && dim != ASY_DIM_TOTAL)
                continue;
            asy_mcell_t *cell = s_cell(r, prefix, dim, g);
            if (!cell)
                return ASY_ENOMEM;
            cell->has_numerator = cell->has_denominator = true;
            cell->numerator = x;
            cell->denominator = n;
            asy_interval_t iv;
            if (asy_stats_wilson(s_shown(r, x), s_shown(r, n), S_Z, &iv) == 0)
                s_interval(cell, &iv, 100.0);
        }
    }
    return 0;
}

/* M3: waiting list now, median and P90 wait in working days: type 7 percentiles over the
   histogram of receipt days (a later receipt is a shorter wait, so walking the days newest
   first visits the waits in ascending order). */
static double s_order_statistic(const asy_aggregate_t *self, const asy_hist_t *hist, int64_t k)
{
    int64_t seen = 0;
    for (int32_t i = hist->length - 1; i >= 0; i--) {
        seen += hist->counts[i];
        if (hist->counts[i] > 0 && k < seen)
            return asy_calendar_working_days_between(self->calendar, hist->base + i,
                                                     self->today);
    }
    return NAN;
}

static double s_wait_quantile(const asy_aggregate_t *self, const asy_hist_t *hist, double p)
{
    double h = (double)(hist->total - 1) * p;
    int64_t lo = (int64_t)floor(h);
    int64_t hi = lo + 1 < hist->total ? lo + 1 : lo;
    double x_lo = s_order_statistic(self, hist, lo);
    return x_lo + (h - (double)lo) * (s_order_statistic(self, hist, hi) - x_lo);
}

/* The nearest-rank percentile (a wait some referral has): on the public stream, where the
   interpolated one gave the exact count away (with whole-day waits, the fraction of the p90
   tells (n - 1) mod 10, the median whether n is even). */
static double s_wait_rank(const asy_aggregate_t *self, const asy_hist_t *hist, double p)
{
    int64_t rank = (int64_t)ceil(p * (double)hist->total) - 1;
    return s_order_statistic(self, hist, rank < 0 ? 0 : rank);
}

static int s_waits(s_render_t *r, int scope)
{
    const asy_hist_t *hists = r->self->waits[scope];
    for (int h = 0; h < ASY_WAIT_HISTS; h++) {
        asy_dim_t dim = h == 0 ? ASY_DIM_TOTAL : h < 4 ? ASY_DIM_SERVICE : ASY_DIM_EG;
        int group = h == 0 ? 0 : h < 4 ? h - 1 : h - 4;
        if (hists[h].total == 0 && h != 0)
            continue;
        asy_mcell_t *cell = s_cell(r, "", dim, group);
        if (!cell)
            return ASY_ENOMEM;
        cell->has_count = true;
        cell->count = hists[h].total;
        if (hists[h].total > 0) {
            cell->has_value = cell->has_p90 = true;
            cell->value = r->public ? s_wait_rank(r->self, &hists[h], 0.5)
                                    : s_wait_quantile(r->self, &hists[h], 0.5);
            cell->p90 = r->public ? s_wait_rank(r->self, &hists[h], 0.9)
                                  : s_wait_quantile(r->self, &hists[h], 0.9);
        }
    }
    return 0;
}

/* Groups that enter rates and ratios: ONS 1-19; ethnic groups ASIAN..OTHER. */
static bool s_known(asy_dim_t dim, int g)
{
    return dim == ASY_DIM_ONS ? g >= 1 && g <= 19 : g >= 1 && g <= 5;
}

/* M7: uptake ratio against White British (ONS) / White (ethnic group), log interval. */
static int s_uptake_ratio(s_render_t *r)
{
    const asy_dim_t dims[2] = {ASY_DIM_ONS, ASY_DIM_EG};
    for (int d = 0; d < 2; d++) {
        int k = s_slot(ASY_FAM_M6, dims[d]);
        int ref = dims[d] == ASY_DIM_ONS ? ASY_ONS_WHITE_BRITISH : ASY_EG_WHITE;
        int64_t q_ref = s_get(r, ASY_FAM_M6, k, ref, 0), u_ref = s_get(r, ASY_FAM_M6, k, ref, 1);
        for (int g = 0; g < asy_dims[dims[d]].groups; g++) {
            int64_t q = s_get(r, ASY_FAM_M6, k, g, 0), u = s_get(r, ASY_FAM_M6, k, g, 1);
            if (!s_known(dims[d], g) || q == 0)
                continue;
            asy_mcell_t *cell = s_cell(r, "", dims[d], g);
            if (!cell)
                return ASY_ENOMEM;
            cell->has_numerator = cell->has_denominator = true;
            cell->numerator = u;
            cell->denominator = q;
            asy_interval_t iv;
            if (g == ref && s_shown(r, u) > 0) {
                /* the reference against itself: 1 by definition, with no sampling error (a
                   Katz interval would treat the two as independent samples) */
                cell->has_value = true;
                cell->value = 1.0;
            } else if (g != ref &&
                       asy_stats_rate_ratio(s_shown(r, u), s_shown(r, q), s_shown(r, u_ref),
                                            s_shown(r, q_ref), S_Z, &iv) == 0)
                s_interval(cell, &iv, 1.0);
            /* the reference group's own figures decide disclosure too */
            if (!r->update->exact && (asy_disclosure_suppresses(&ASY_DISCLOSURE_DEFAULT, u_ref) ||
                                      asy_disclosure_suppresses(&ASY_DISCLOSURE_DEFAULT, q_ref)))
                cell->suppressed = true;
        }
    }
    return 0;
}

/* Population of an ONS group (1..19) or of all groups (0), all ages: the all-ages row if
   loaded, else the sum of the age bands. */
static double s_population(const asy_aggregate_t *self, int ons, int band)
{
    if (band > 0 || self->population[ons][0] > 0)
        return self->population[ons][band];
    double sum = 0;
    for (int b = 1; b < ASY_AGE_GROUPS; b++)
        sum += self->population[ons][b];
    return sum;
}

/* Population of a group of a dimension (ONS or ethnic group), age band (0 = all). */
static double s_group_population(const asy_aggregate_t *self, asy_dim_t dim, int g, int band)
{
    if (dim == ASY_DIM_ONS)
        return s_population(self, g, band);
    double sum = 0;
    for (int ons = 1; ons <= 19; ons++) {
        asy_case_view_t probe = {.attr = {[ASY_ATTR_ETHNICITY_ONS] = ons}};
        if (asy_dim_group(&probe, ASY_DIM_EG) == g)
            sum += s_population(self, ons, band);
    }
    return sum;
}

static double s_all_population(const asy_aggregate_t *self, int band)
{
    double all = s_population(self, 0, band);
    if (all > 0)
        return all;
    for (int ons = 1; ons <= 19; ons++)
        all += s_population(self, ons, band);
    return all;
}

/* Population of a group of a dimension by age band (0 = all ages); ASY_DIM_TOTAL: of all
   groups. */
static double s_band_population(const asy_aggregate_t *self, asy_dim_t dim, int g, int band)
{
    return dim == ASY_DIM_TOTAL ? s_all_population(self, band)
                                : s_group_population(self, dim, g, band);
}

/* The population aged 18-64 of a group (dim ONS or EG, or TOTAL): its bands 18-34, 35-49 and
   50-64 where its bands are loaded (scaled up to its whole population where some areas give
   bands and others do not, as for M10); else its whole population times the share aged 18-64
   of all groups' bands; 0 where no area gives any band (no 18-64 population is known). */
static double s_adult_population(const asy_aggregate_t *self, asy_dim_t dim, int g)
{
    double all = s_band_population(self, dim, g, 0), banded = 0, adult = 0;
    for (int b = 1; b < ASY_AGE_GROUPS; b++) {
        double n = s_band_population(self, dim, g, b);
        banded += n;
        adult += asy_age_adult(b) ? n : 0;
    }
    if (banded > 0)
        return all > banded ? adult * all / banded : adult;
    double standard = 0, standard_adult = 0;
    for (int b = 1; b < ASY_AGE_GROUPS; b++) {
        double n = s_all_population(self, b);
        standard += n;
        standard_adult += asy_age_adult(b) ? n : 0;
    }
    return standard > 0 ? all * standard_adult / standard : 0;
}

/* M8 of one part (referrals against population, or IMHA against qualifying people) and one
   dimension: what s_representation's steps share. */
typedef struct {
    bool imha;
    int family;
    asy_dim_t dim;
    int k;
    int64_t o_exact, base_exact[ASY_ONS_GROUPS], base_exact_total;
    double base[ASY_ONS_GROUPS], base_total;
    double o_total;
    bool no_e;
} s_represented_t;

/* The part's observed total and bases (population or Q_g), exact and as shown, and whether
   it gives an E at all. */
static void s_representation_bases(s_render_t *r, s_represented_t *m)
{
    /* The totals behind E are summed exactly and then shown (rounded once on the
       public stream): summing the rounded groups would carry a suppressed group's
       rounded count into every published E. A total or an IMHA base that would itself
       be suppressed (1-7) gives no E at all: E times the shares would give it back. */
    for (int g = 0; g < asy_dims[m->dim].groups; g++) {
        if (!s_known(m->dim, g))
            continue;
        if (m->imha) {
            m->base_exact[g] = s_get(r, m->family, m->k, g, 0);
            m->base_exact_total += m->base_exact[g];
            m->base[g] = (double)s_shown(r, m->base_exact[g]);
        } else {
            m->base[g] = s_adult_population(r->self, m->dim, g);
            m->base_total += m->base[g];
        }
        m->o_exact += s_get(r, m->family, m->k, g, m->imha ? 1 : 0);
    }
    if (m->imha)
        m->base_total = (double)s_shown(r, m->base_exact_total);
    m->o_total = (double)s_shown(r, m->o_exact);
    const asy_disclosure_t *rule = &ASY_DISCLOSURE_DEFAULT;
    m->no_e = r->public && (asy_disclosure_suppresses(rule, m->o_exact) ||
                            asy_disclosure_suppresses(rule, m->base_exact_total));
}

/* The part's rows: one per known group with a base or an observation, O and (where it may be
   given) E with its interval. */
static int s_representation_rows(s_render_t *r, const s_represented_t *m)
{
    const asy_disclosure_t *rule = &ASY_DISCLOSURE_DEFAULT;
    for (int g = 0; g < asy_dims[m->dim].groups; g++) {
        int64_t o = s_known(m->dim, g) ? s_get(r, m->family, m->k, g, m->imha ? 1 : 0) : 0;
        /* a row is there when its group has a base: decided on the exact Q_g, since
           the rounded one told 1-2 (no row) from 3-7 (a row) */
        if (!s_known(m->dim, g) || (o == 0 && (m->imha ? m->base_exact[g] <= 0 : m->base[g] <= 0)))
            continue;
        asy_mcell_t *cell = s_cell(r, m->imha ? "imha_" : "", m->dim, g);
        if (!cell)
            return ASY_ENOMEM;
        cell->has_count = true;
        cell->count = o;
        /* O of an IMHA group is M6's numerator: with its Q_g (M6's denominator) from
           1 to 7, M6 withholds the group, and so must this row, even a 0 ("0 of 3-7
           qualifying people contacted") */
        bool small_base = r->public && asy_disclosure_suppresses(rule, m->base_exact[g]);
        if (m->imha && small_base)
            cell->suppressed = true;
        if (m->no_e || small_base)
            continue;
        cell->has_expected = true;
        cell->expected = m->o_total * m->base[g] / m->base_total;
        asy_interval_t iv;
        if (asy_stats_observed_expected(s_shown(r, o), cell->expected, S_Z, &iv) == 0)
            s_interval(cell, &iv, 1.0);
    }
    return 0;
}

/* M8: observed vs expected, the community service's referrals against the population aged
   18-64, and IMHA (people contacted) against qualifying people. */
static int s_representation(s_render_t *r)
{
    const asy_dim_t dims[2] = {ASY_DIM_ONS, ASY_DIM_EG};
    for (int part = 0; part < 2; part++) {
        bool imha = part == 1;
        int family = imha ? ASY_FAM_M6 : ASY_FAM_RC;
        for (int d = 0; d < 2; d++) {
            s_represented_t m = {
                .imha = imha, .family = family, .dim = dims[d], .k = s_slot(family, dims[d])};
            s_representation_bases(r, &m);
            /* on the exact total for IMHA rows: the rounded Q_tot tells 1-2 (0) from 3-7 (5) */
            if (imha ? m.base_exact_total <= 0 : m.base_total <= 0)
                continue;
            if (r->public && d == 0 && !imha) {
                /* M8 has no total row, but its E gives the (rounded) total of its referral
                   rows away: a total cell for s_withhold_pinned to judge them against, dropped
                   after disclosure (asy_aggregate_render). The imha_ rows are suppressed on
                   their Q_g, not on O, and follow M6 (s_follow_siblings). */
                asy_mcell_t *total = asy_mupdate_add_cell(r->update, "total", "ALL");
                if (!total)
                    return ASY_ENOMEM;
                total->has_count = true;
                total->count = m.o_exact;
            }
            int rc = s_representation_rows(r, &m);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* M9: crude referral rate per 100,000: the community service's referrals of people aged
   18-64 (or of an age not recorded) against the population aged 18-64. */
static int s_rates(s_render_t *r)
{
    /* no cells where no population aged 18-64 is known (no age band loaded) */
    if (!r->self->has_population || s_adult_population(r->self, ASY_DIM_TOTAL, 0) <= 0)
        return 0;
    const asy_dim_t dims[3] = {ASY_DIM_TOTAL, ASY_DIM_ONS, ASY_DIM_EG};
    for (int d = 0; d < 3; d++) {
        int k = s_slot(ASY_FAM_RC, dims[d]);
        for (int g = 0; g < asy_dims[dims[d]].groups; g++) {
            if (dims[d] != ASY_DIM_TOTAL && !s_known(dims[d], g))
                continue;
            double population = s_adult_population(r->self, dims[d], g);
            int64_t o = s_get(r, ASY_FAM_RC, k, g, 0);
            if (population <= 0 && o == 0)
                continue;
            asy_mcell_t *cell = s_cell(r, "", dims[d], g);
            if (!cell)
                return ASY_ENOMEM;
            cell->has_count = cell->has_denominator = true;
            cell->count = o;
            cell->denominator = (int64_t)llround(population);
            asy_interval_t iv;
            if (asy_stats_crude_rate(s_shown(r, o), population, ASY_STATS_PER_100K, S_Z, &iv) == 0)
                s_interval(cell, &iv, 1.0);
        }
    }
    return 0;
}

/* The population of an age band by sex (1 male, 2 female) of an ethnic group (g) or of all
   groups (total): for all groups, the all-groups rows where the band has them (both sexes
   from the same rows), else the sum of the groups'. */
static double s_sex_population(const asy_aggregate_t *self, bool total, int g, int band, int sex)
{
    const double *all = self->population_sex[0][band];
    if (total && all[0] + all[1] > 0)
        return all[sex - 1];
    double sum = 0;
    for (int ons = 1; ons <= 19; ons++) {
        asy_case_view_t probe = {.attr = {[ASY_ATTR_ETHNICITY_ONS] = ons}};
        if (total || asy_dim_group(&probe, ASY_DIM_EG) == g)
            sum += self->population_sex[ons][band][sex - 1];
    }
    return sum;
}

/* The share of sex s in an age band of a group (or of all groups), from the rows given by
   sex; 0 where the band has no male or no female population given. */
static double s_sex_share(const asy_aggregate_t *self, bool total, int g, int band, int sex)
{
    double male = s_sex_population(self, total, g, band, 1),
           female = s_sex_population(self, total, g, band, 2);
    if (male <= 0 || female <= 0)
        return 0;
    return (sex == 1 ? male : female) / (male + female);
}

/* Whether a group's M10 strata are split by sex: its own population (and so the standard's)
   is given by sex, both sexes, in each band 18-64. Split by any other shares (the
   standard's), a band's strata give back the band's own rate, so other groups and the total
   (whose population is the standard) keep the age strata and every referral in them. */
static bool s_standardised_by_sex(const asy_aggregate_t *self, int g)
{
    for (int b = ASY_AGE_ADULT_FIRST; b <= ASY_AGE_ADULT_LAST; b++)
        if (s_sex_share(self, false, g, b, 1) <= 0 || s_sex_share(self, true, 0, b, 1) <= 0)
            return false;
    return true;
}

/* M10: age/sex-standardised referral rate per 100,000 by ethnic group (Dobson), of the
   community service: its referrals in the age bands 18-34, 35-49 and 50-64 (a referral whose
   band is not recorded is in no stratum) against the population of those bands. Standard =
   the population of those bands of the areas loaded (summed). Where a group's population by
   age band is not loaded, its age structure is taken to be that of all groups (n_i = P_g *
   P_i / sum of all bands P); where some areas give a group's bands and others do not, the
   bands given are scaled up to the group's whole population, so strata always cover the areas
   the referrals come from.
   A group whose population is given by sex in each of those bands (s_standardised_by_sex)
   has a male and a female stratum in each band (domain brief (c): age/sex standardisation,
   as NHS England's): the band's population, the group's and the standard's, is split by the
   shares of their rows given by sex, and a referral whose sex is neither male nor female is
   in no stratum. */
static int s_standardised(s_render_t *r)
{
    const asy_aggregate_t *self = r->self;
    double all = s_all_population(self, 0), weights = 0;
    for (int b = 1; b < ASY_AGE_GROUPS; b++)
        weights += s_all_population(self, b);
    /* no standard where no age band 18-64 is loaded */
    if (all <= 0 || s_adult_population(self, ASY_DIM_TOTAL, 0) <= 0)
        return 0;
    for (int g = 0; g <= ASY_EG_GROUPS; g++) {
        bool total = g == ASY_EG_GROUPS;
        if (!total && !s_known(ASY_DIM_EG, g))
            continue;
        bool by_sex = !total && s_standardised_by_sex(self, g);
        int first_sex = by_sex ? 1 : 0, last_sex = by_sex ? ASY_SEXES : 0;
        asy_stratum_t strata[ASY_AGE_ADULT_BANDS * ASY_SEXES];
        int count = 0;
        int64_t observed = 0;
        bool small_stratum = false;
        double group_all = total ? all : s_group_population(self, ASY_DIM_EG, g, 0);
        double banded = 0;
        for (int b = 1; b < ASY_AGE_GROUPS; b++)
            banded += total ? 0 : s_group_population(self, ASY_DIM_EG, g, b);
        for (int b = ASY_AGE_ADULT_FIRST; b <= ASY_AGE_ADULT_LAST; b++) {
            double weight = s_all_population(self, b);
            double n = total || banded <= 0
                           ? (weights > 0 ? group_all * weight / weights : 0)
                           : s_group_population(self, ASY_DIM_EG, g, b) * group_all / banded;
            for (int sex = first_sex; sex <= last_sex; sex++) {
                int64_t o = 0;
                for (int e = 0; e < ASY_EG_GROUPS; e++)
                    for (int slot = 0; slot < ASY_SEX_SLOTS && (total || e == g); slot++)
                        if (!by_sex || slot == sex)
                            o += s_get(r, ASY_FAM_REA, 0,
                                       (e * ASY_AGE_GROUPS + b) * ASY_SEX_SLOTS + slot, 0);
                double n_share = by_sex ? s_sex_share(self, false, g, b, sex) : 1;
                double w_share = by_sex ? s_sex_share(self, true, 0, b, sex) : 1;
                strata[count++] = (asy_stratum_t){s_shown(r, o), n * n_share, weight * w_share};
                observed += o;
                small_stratum |= asy_disclosure_suppresses(&ASY_DISCLOSURE_DEFAULT, o);
            }
        }
        if (group_all <= 0 && observed == 0)
            continue;
        asy_mcell_t *cell = total ? asy_mupdate_add_cell(r->update, "total", "ALL")
                                  : s_cell(r, "", ASY_DIM_EG, g);
        if (!cell)
            return ASY_ENOMEM;
        cell->has_count = true;
        cell->count = observed;
        /* On the public stream a stratum (group x age band, x sex where standardised by sex)
           of 1-7 referrals withholds the rate: rounded into it (1-2 as 0, 3-7 as 5), the
           public populations let the value be inverted back to the strata, a cross-table no
           stream publishes. So does a group under the minimum count, judged on the exact
           count, not on the rounded strata. */
        if (r->public && (small_stratum || observed < ASY_STATS_DSR_MIN_COUNT)) {
            cell->withheld = observed > 0; /* no referral: no rate, and nothing to hide */
            continue;
        }
        asy_interval_t iv;
        if (asy_stats_dsr_dobson(strata, (size_t)count, ASY_STATS_PER_100K, S_Z, &iv) == 0)
            s_interval(cell, &iv, 1.0);
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------------
   One topic. */

/* Our rows of breakdown `prefix`+B follow the sibling's public render: a group it suppresses
   is suppressed here too, and where it has no row of B at all though it counts something
   (s_withhold_pinned withheld them there) our rows of B are withheld. */
static void s_follow(asy_mupdate_t *update, const char *prefix, const asy_mupdate_t *sibling)
{
    /* a breakdown the sibling has no row of is withheld there only if it counts anything at
       all: with no referral (or no qualifying person) it has no rows, and ours are zeros */
    bool counts = false;
    for (size_t j = 0; j < sibling->cell_count; j++) {
        const asy_mcell_t *other = &sibling->cells[j];
        if (strcmp(other->breakdown, "total") == 0)
            counts |= other->suppressed || other->count > 0 || other->denominator > 0;
    }
    size_t length = strlen(prefix);
    for (size_t i = 0; i < update->cell_count; i++) {
        asy_mcell_t *cell = &update->cells[i];
        if (strncmp(cell->breakdown, prefix, length) != 0 ||
            (!length && strncmp(cell->breakdown, "imha_", 5) == 0))
            continue;
        bool there = false;
        for (size_t j = 0; j < sibling->cell_count; j++) {
            const asy_mcell_t *other = &sibling->cells[j];
            if (strcmp(other->breakdown, cell->breakdown + length) != 0)
                continue;
            there = true;
            if (other->suppressed && strcmp(other->group, cell->group) == 0)
                cell->suppressed = true;
        }
        if (!there && counts)
            cell->breakdown[0] = '\0';
    }
}

int asy_aggregate_render(const asy_aggregate_t *self, const asy_topic_ref_t *ref, bool exact,
                         int64_t now_us, asy_mupdate_t *update);

/* M7, M8 and M9 repeat the groups of M6 (M7, M8's imha_ rows) and M1 (M8's other rows, M9)
   on the public stream. Left to themselves they would each choose their second hidden group
   by their own figures (M6 by Q, M8's imha_ rows by U): a group hidden in one and shown in
   another. So each hides what its sibling hides, before choosing a second group of its own
   where it still has a lone one. And a breakdown M6 or M1 withholds is withheld in them too:
   M7 and M8 have no totals to judge their rows by, and M9, judging its known groups (a
   subset) against its total, cannot tell where they pin the counts from below (7 referrals
   in each of 4 groups under a total shown as 30: each `*` is 7), which M1 can. M8's referral
   rows and M9 count the same referrals (the community service's, aged 18-64), fewer than M1's
   where there are others: M9 may hide a group of its own, so M8 hides what M9 hides too. */
static int s_follow_siblings(const asy_aggregate_t *self, const asy_topic_ref_t *ref,
                             int64_t now_us, asy_mupdate_t *update)
{
    static const struct {
        int metric, sibling;
        const char *prefix;
    } pairs[] = {{7, 6, ""}, {8, 6, "imha_"}, {8, 1, ""}, {9, 1, ""}, {8, 9, ""}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        if (pairs[p].metric != ref->metric)
            continue;
        asy_topic_ref_t other = *ref;
        other.metric = pairs[p].sibling;
        asy_mupdate_t sibling = {.cells = NULL};
        int rc = asy_aggregate_render(self, &other, false, now_us, &sibling);
        if (rc == 0)
            s_follow(update, pairs[p].prefix, &sibling);
        free(sibling.cells);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const char *s_unit(int metric)
{
    switch (metric) {
    case 1:
    case 2:
        return "count";
    case 3:
        return "working_days";
    case 7:
    case 8:
        return "ratio";
    case 9:
    case 10:
        return "per_100k";
    default:
        return "percent";
    }
}

int asy_aggregate_render(const asy_aggregate_t *self, const asy_topic_ref_t *ref, bool exact,
                         int64_t now_us, asy_mupdate_t *update)
{
    update->cell_count = 0;
    asy_aggregate_topic(self, ref, update->topic);
    snprintf(update->metric, sizeof update->metric, "M%d", ref->metric);
    snprintf(update->scope, sizeof update->scope, "%s", self->scope_names[ref->scope]);
    bool now = ref->period >= self->period_count;
    const asy_period_t *period = now ? NULL : &self->periods[ref->period];
    snprintf(update->period, sizeof update->period, "%s", now ? "now" : period->name);
    update->period_start = now ? self->today : period->start;
    update->period_end = now ? self->today : period->end;
    update->as_of_us = now_us;
    update->exact = exact;
    snprintf(update->unit, sizeof update->unit, "%s", s_unit(ref->metric));
    s_render_t r = {self,
                    now ? NULL : self->counters[ref->scope * self->period_count + ref->period],
                    update, !exact};
    static const int m13_dims[] = {ASY_DIM_TOTAL, ASY_DIM_SERVICE, ASY_DIM_EG, -1};
    int rc = ASY_EINVAL;
    switch (now ? (ref->metric == 3 ? 3 : 0) : ref->metric) {
    case 1: rc = s_counts(&r, ASY_FAM_M1); break;
    case 2: rc = s_counts(&r, ASY_FAM_M2); break;
    case 3: rc = s_waits(&r, ref->scope); break;
    case 4: rc = s_proportions(&r, ASY_FAM_M4, "", NULL); break;
    case 5: rc = s_proportions(&r, ASY_FAM_M5, "", NULL); break;
    case 6: rc = s_proportions(&r, ASY_FAM_M6, "", NULL); break;
    case 7: rc = s_uptake_ratio(&r); break;
    case 8: rc = s_representation(&r); break;
    case 9: rc = s_rates(&r); break;
    case 10: rc = s_standardised(&r); break;
    case 11:
        rc = s_proportions(&r, ASY_FAM_M11D, "declined.", NULL);
        if (rc == 0)
            rc = s_proportions(&r, ASY_FAM_M11L, "left_before_goals.", NULL);
        break;
    case 12: rc = s_proportions(&r, ASY_FAM_M12, "", NULL); break;
    case 13: rc = s_proportions(&r, ASY_FAM_M1, "", m13_dims); break;
    default: break;
    }
    if (rc == 0 && !exact && ref->metric >= 7 && ref->metric <= 9)
        rc = s_follow_siblings(self, ref, now_us, update);
    if (rc == 0 && !exact)
        asy_aggregate_disclose(update, strcmp(update->unit, "percent") == 0);
    if (rc == 0 && !exact && ref->metric == 10)
        asy_aggregate_hide_withheld_rates(update);
    if (rc == 0 && !exact && ref->metric == 7)
        asy_aggregate_hide_without_reference(update);
    if (rc == 0 && !exact && ref->metric == 8) {
        for (size_t i = 0; i < update->cell_count; i++) /* the total s_representation lent it */
            if (asy_aggregate_is_total(update->cells[i].breakdown))
                update->cells[i].breakdown[0] = '\0';
        asy_aggregate_drop_withheld(update);
    }
    return rc;
}
