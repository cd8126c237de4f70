/*  test_stats.c: confidence intervals, chi-square quantiles, percentiles, disclosure control.

    Where the reference values come from:
    - Wilson: Newcombe RG (1998) "Two-sided confidence intervals for the single proportion",
      Stat Med 17:857-872, Table I method 3 (81/263, 15/148, 0/20, 1/29), to 4 decimals.
    - Chi-square quantiles: standard tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4):
      chi2(0.975, 10) = 20.483, chi2(0.025, 10) = 3.247, chi2(0.95, 1) = 3.841.
    - Exact Poisson limits: the PHE Technical Guide "Confidence Intervals" (2018) table of exact
      limits (alpha = 0.05): O=0: 0, 3.689; O=1: 0.0253, 5.5716; O=5: 1.6235, 11.6683.
    - Tighter values (1e-8) were computed independently with mpmath 1.3 (40 digits: bisection on
      mpmath.gammainc(regularized=True)) from the formulas in domain.md (c) with z = 1.96,
      i.e. alpha = erfc(1.96/sqrt 2) = 0.04999579.
    - Byar, O = 100: 81.3618, 121.6283 (formula of domain.md (c), PHE byars_lower/upper).
    - DSR, rate ratio, crude rate, O/E: worked examples below, recomputed in mpmath from the
      same formulas (Dobson et al. 1991; Katz et al. 1978; PHE phe_rate and ISRatio).  */
#include "stats.h"

#include <criterion/criterion.h>
#include <math.h>

#define Z ASY_STATS_Z95

static void s_assert_interval(const asy_interval_t *got, double value, double lower, double upper,
                              double tolerance)
{
    cr_assert_eq(got->status, ASY_STAT_OK);
    cr_assert_float_eq(got->value, value, tolerance, "value %.10g, want %.10g", got->value, value);
    cr_assert_float_eq(got->lower, lower, tolerance, "lower %.10g, want %.10g", got->lower, lower);
    cr_assert_float_eq(got->upper, upper, tolerance, "upper %.10g, want %.10g", got->upper, upper);
}

static void s_assert_nan(const asy_interval_t *got, asy_stat_status_t status)
{
    cr_assert_eq(got->status, status);
    cr_assert(isnan(got->value) && isnan(got->lower) && isnan(got->upper));
}

/* ---------------------------------------------------------------------------------------------- */

Test(stats, chi_square_table_values)
{
    cr_assert_float_eq(asy_stats_chi2_quantile(0.975, 10), 20.483, 5e-4);
    cr_assert_float_eq(asy_stats_chi2_quantile(0.025, 10), 3.247, 5e-4);
    cr_assert_float_eq(asy_stats_chi2_quantile(0.95, 1), 3.841, 5e-4);
    /* mpmath, 1e-8 relative */
    const double cases[][3] = {{0.975, 10, 20.4831773508074},  {0.025, 10, 3.24697278023684},
                               {0.95, 1, 3.84145882069413},    {0.5, 0.5, 0.0873476047057468},
                               {0.999, 200, 267.540527822757}, {1e-6, 3, 0.000241810487201243},
                               {0.025, 2, 0.0506356159685798}, {0.975, 20, 34.1696069028383},
                               {0.5, 2, 1.38629436111989}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = asy_stats_chi2_quantile(cases[i][0], cases[i][1]);
        cr_assert(fabs(got - cases[i][2]) <= 1e-8 * cases[i][2], "chi2(%g, %g) = %.15g, want %.15g",
                  cases[i][0], cases[i][1], got, cases[i][2]);
    }
    cr_assert_eq(asy_stats_chi2_quantile(0.3, 0), 0.0);
    cr_assert_eq(asy_stats_chi2_quantile(0.0, 4), 0.0);
    cr_assert(isnan(asy_stats_chi2_quantile(1.0, 4)));
    cr_assert(isnan(asy_stats_chi2_quantile(-0.1, 4)));
    cr_assert(isnan(asy_stats_chi2_quantile(0.5, -1)));
}

Test(stats, incomplete_gamma)
{
    const double cases[][3] = {{0.5, 0.1, 0.34527915398142298},
                               {3, 2.5, 0.45618688411667048},
                               {10, 15, 0.93014633930059023},
                               {100, 90, 0.15822098918643017},
                               {2.5, 40, 0.99999999999999916}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_float_eq(asy_stats_gamma_p(cases[i][0], cases[i][1]), cases[i][2], 1e-12);
    cr_assert_eq(asy_stats_gamma_p(2, 0), 0.0);
    cr_assert(isnan(asy_stats_gamma_p(0, 1)));
}

/* ---------------------------------------------------------------------------------------------- */

Test(stats, wilson_newcombe_examples)
{
    asy_interval_t ci;
    cr_assert_eq(asy_stats_wilson(81, 263, Z, &ci), 0);
    s_assert_interval(&ci, 81.0 / 263.0, 0.2553, 0.3662, 5e-5);
    s_assert_interval(&ci, 0.307984790875, 0.255287613064, 0.366210684053, 1e-10);
    cr_assert_eq(asy_stats_wilson(15, 148, Z, &ci), 0);
    s_assert_interval(&ci, 15.0 / 148.0, 0.0624, 0.1605, 5e-5);
    cr_assert_eq(asy_stats_wilson(1, 29, Z, &ci), 0);
    s_assert_interval(&ci, 1.0 / 29.0, 0.0061, 0.1718, 5e-5);
    /* zero events: lower limit exactly 0 */
    cr_assert_eq(asy_stats_wilson(0, 20, Z, &ci), 0);
    s_assert_interval(&ci, 0.0, 0.0, 0.1611, 5e-5);
    cr_assert_eq(ci.lower, 0.0);
    /* all events: upper limit exactly 1 */
    cr_assert_eq(asy_stats_wilson(29, 29, Z, &ci), 0);
    s_assert_interval(&ci, 1.0, 0.883026405534, 1.0, 1e-10);
}

Test(stats, wilson_edge_cases)
{
    asy_interval_t ci;
    cr_assert_eq(asy_stats_wilson(0, 0, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    cr_assert_eq(asy_stats_wilson(5, 4, Z, &ci), ASY_EINVAL);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    cr_assert_eq(asy_stats_wilson(-1, 4, Z, &ci), ASY_EINVAL);
    cr_assert_eq(asy_stats_wilson(1, 4, 0.0, &ci), ASY_EINVAL);
    cr_assert_eq(asy_stats_wilson(1, 4, NAN, &ci), ASY_EINVAL);
}

/* ---------------------------------------------------------------------------------------------- */

Test(stats, poisson_exact_small_counts)
{
    asy_interval_t ci;
    /* PHE table, alpha = 0.05: our alpha differs by 4e-6, well inside 2e-4 */
    cr_assert_eq(asy_stats_poisson_count(0, Z, &ci), 0);
    s_assert_interval(&ci, 0, 0, 3.689, 2e-4);
    cr_assert_eq(asy_stats_poisson_count(1, Z, &ci), 0);
    s_assert_interval(&ci, 1, 0.0253, 5.5716, 2e-4);
    cr_assert_eq(asy_stats_poisson_count(5, Z, &ci), 0);
    s_assert_interval(&ci, 5, 1.6235, 11.6683, 2e-4);
    /* mpmath with z = 1.96 */
    cr_assert_eq(asy_stats_poisson_count(1, Z, &ci), 0);
    s_assert_interval(&ci, 1, 0.0253156491642821, 5.57174270022982, 1e-8);
    cr_assert_eq(asy_stats_poisson_count(5, Z, &ci), 0);
    s_assert_interval(&ci, 5, 1.62344951605031, 11.6684684961755, 1e-8);
    cr_assert_eq(asy_stats_poisson_count(9, Z, &ci), 0);
    s_assert_interval(&ci, 9, 4.11530989038800, 17.0849653888233, 1e-8);
    cr_assert_eq(asy_stats_poisson_count(0, Z, &ci), 0);
    s_assert_interval(&ci, 0, 0, 3.68896365172964, 1e-8);
}

Test(stats, poisson_byar_from_ten)
{
    asy_interval_t ci;
    cr_assert_eq(asy_stats_poisson_count(100, Z, &ci), 0);
    s_assert_interval(&ci, 100, 81.3618, 121.6283, 1e-4);
    cr_assert_eq(asy_stats_poisson_count(10, Z, &ci), 0);
    s_assert_interval(&ci, 10, 4.78738021553, 18.3916268741, 1e-9);
    cr_assert_eq(asy_stats_poisson_count(-1, Z, &ci), ASY_EINVAL);
}

Test(stats, crude_rate_and_observed_expected)
{
    asy_interval_t ci;
    /* 7 referrals from a population of 9,948 (exact) and 150 from 263,526 (Byar), per 100k */
    cr_assert_eq(asy_stats_crude_rate(7, 9948, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_interval(&ci, 70.365902694, 28.2902309147, 144.982160663, 1e-7);
    cr_assert_eq(asy_stats_crude_rate(150, 263526, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_interval(&ci, 56.9203797728, 48.1752384363, 66.7936554542, 1e-7);
    cr_assert_eq(asy_stats_crude_rate(3, 0, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    cr_assert_eq(asy_stats_crude_rate(0, 1000, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_interval(&ci, 0, 0, 368.896365172964, 1e-6);
    /* M8: O = 23 against E = 10.5 (Byar), O = 3 against E = 7.2 (exact) */
    cr_assert_eq(asy_stats_observed_expected(23, 10.5, Z, &ci), 0);
    s_assert_interval(&ci, 2.19047619048, 1.38811840441, 3.28695572113, 1e-9);
    cr_assert_eq(asy_stats_observed_expected(3, 7.2, Z, &ci), 0);
    s_assert_interval(&ci, 0.416666666667, 0.0859238478172, 1.21769352777, 1e-9);
    cr_assert_eq(asy_stats_observed_expected(3, 0.0, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
}

Test(stats, rate_ratio_katz)
{
    asy_interval_t ci;
    /* uptake 9/40 against a reference 110/200 */
    cr_assert_eq(asy_stats_rate_ratio(9, 40, 110, 200, Z, &ci), 0);
    s_assert_interval(&ci, 0.409090909091, 0.22707442796, 0.73700668721, 1e-9);
    cr_assert_eq(asy_stats_rate_ratio(30, 100, 45, 100, Z, &ci), 0);
    s_assert_interval(&ci, 0.666666666667, 0.460682472832, 0.964752233164, 1e-9);
    /* every qualifying patient in the group took up IMHA: defined, 1/U - 1/Q = 0 */
    cr_assert_eq(asy_stats_rate_ratio(23, 23, 110, 200, Z, &ci), 0);
    s_assert_interval(&ci, 1.81818181818, 1.60395905055, 2.06101591111, 1e-9);
    /* a zero count anywhere: undefined */
    cr_assert_eq(asy_stats_rate_ratio(0, 40, 110, 200, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    cr_assert_eq(asy_stats_rate_ratio(9, 40, 0, 200, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    cr_assert_eq(asy_stats_rate_ratio(0, 0, 110, 200, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    cr_assert_eq(asy_stats_rate_ratio(41, 40, 110, 200, Z, &ci), ASY_EINVAL);
}

/* ---------------------------------------------------------------------------------------------- */

/* Worked example: three age bands, weights from the 2013 European Standard Population shape.
   DSR = (29000*12/20000 + 26000*30/25000 + 11000*45/15000) / 66000 * 1e5 = 123.636...;
   O = 87, Byar limits 69.6811 / 107.3158. */
static const asy_stratum_t S_STRATA[] = {
    {12, 20000, 29000}, {30, 25000, 26000}, {45, 15000, 11000}};

Test(stats, dsr_dobson_worked_example)
{
    asy_interval_t ci;
    cr_assert_eq(asy_stats_dsr_dobson(S_STRATA, 3, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_interval(&ci, 123.636363636, 98.1797597156, 153.497967727, 1e-8);
}

Test(stats, dsr_normal_worked_example)
{
    asy_interval_t ci;
    cr_assert_eq(asy_stats_dsr_normal(S_STRATA, 3, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_interval(&ci, 123.636363636, 96.7646261168, 150.508101156, 1e-8);
}

Test(stats, dsr_edge_cases)
{
    asy_interval_t ci;
    /* total count 9: suppressed by Dobson, still given by the normal method */
    const asy_stratum_t few[] = {{4, 1000, 1}, {5, 1000, 1}};
    cr_assert_eq(asy_stats_dsr_dobson(few, 2, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_SUPPRESSED);
    cr_assert_eq(asy_stats_dsr_normal(few, 2, ASY_STATS_PER_100K, Z, &ci), 0);
    cr_assert_float_eq(ci.value, 450.0, 1e-9);
    /* zero events everywhere */
    const asy_stratum_t none[] = {{0, 1000, 1}, {0, 1000, 1}};
    cr_assert_eq(asy_stats_dsr_dobson(none, 2, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_SUPPRESSED);
    cr_assert_eq(asy_stats_dsr_normal(none, 2, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_interval(&ci, 0, 0, 0, 0);
    /* all events in one stratum: same as a weighted crude rate */
    const asy_stratum_t one[] = {{40, 2000, 1}, {0, 2000, 1}};
    cr_assert_eq(asy_stats_dsr_normal(one, 2, 1.0, Z, &ci), 0);
    s_assert_interval(&ci, 0.01, 0.01 - Z * sqrt(40.0) / 4000.0, 0.01 + Z * sqrt(40.0) / 4000.0,
                      1e-12);
    /* zero population: undefined; negative: invalid; no strata: undefined */
    const asy_stratum_t empty[] = {{0, 0, 1}, {20, 1000, 1}};
    cr_assert_eq(asy_stats_dsr_dobson(empty, 2, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
    const asy_stratum_t negative[] = {{-1, 10, 1}};
    cr_assert_eq(asy_stats_dsr_dobson(negative, 1, ASY_STATS_PER_100K, Z, &ci), ASY_EINVAL);
    cr_assert_eq(asy_stats_dsr_normal(NULL, 0, ASY_STATS_PER_100K, Z, &ci), 0);
    s_assert_nan(&ci, ASY_STAT_UNDEFINED);
}

/* ---------------------------------------------------------------------------------------------- */

Test(stats, percentiles)
{
    double out;
    double odd[] = {9, 1, 5, 3, 7};
    cr_assert_eq(asy_stats_percentile(odd, 5, 0.5, &out), 0);
    cr_assert_float_eq(out, 5.0, 1e-12);
    cr_assert_eq(asy_stats_percentile(odd, 5, 0.9, &out), 0);
    cr_assert_float_eq(out, 8.2, 1e-12); /* h = 3.6: 7 + 0.6 * 2 */
    double even[] = {4, 1, 3, 2};
    cr_assert_eq(asy_stats_percentile(even, 4, 0.5, &out), 0);
    cr_assert_float_eq(out, 2.5, 1e-12);
    /* 1..10: R quantile(1:10, 0.9) = 9.1 */
    double ten[] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    cr_assert_eq(asy_stats_percentile(ten, 10, 0.9, &out), 0);
    cr_assert_float_eq(out, 9.1, 1e-12);
    cr_assert_eq(asy_stats_percentile(ten, 10, 1.0, &out), 0);
    cr_assert_float_eq(out, 10.0, 1e-12);
    cr_assert_eq(asy_stats_percentile(ten, 10, 0.0, &out), 0);
    cr_assert_float_eq(out, 1.0, 1e-12);
    double single[] = {4};
    cr_assert_eq(asy_stats_percentile(single, 1, 0.9, &out), 0);
    cr_assert_float_eq(out, 4.0, 1e-12);
    cr_assert_eq(asy_stats_percentile(NULL, 0, 0.5, &out), 0);
    cr_assert(isnan(out));
    cr_assert_eq(asy_stats_percentile(ten, 10, 1.5, &out), ASY_EINVAL);
    double bad[] = {1, NAN};
    cr_assert_eq(asy_stats_percentile(bad, 2, 0.5, &out), ASY_EINVAL);
}

/* ---------------------------------------------------------------------------------------------- */

Test(stats, disclosure_counts)
{
    asy_disclosure_t rule = ASY_DISCLOSURE_DEFAULT;
    int64_t shown;
    cr_assert(asy_disclose_count(&rule, 0, &shown));
    cr_assert_eq(shown, 0);
    for (int64_t count = 1; count <= 7; count++) {
        cr_assert_not(asy_disclose_count(&rule, count, &shown), "%lld shown", (long long)count);
        cr_assert_eq(shown, -1);
    }
    const int64_t cases[][2] = {{8, 10},  {12, 10}, {13, 15},     {15, 15},
                                {17, 15}, {18, 20}, {1002, 1000}, {1003, 1005}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert(asy_disclose_count(&rule, cases[i][0], &shown));
        cr_assert_eq(shown, cases[i][1], "%lld -> %lld", (long long)cases[i][0], (long long)shown);
    }
    /* MHSDS rule: <5 suppressed; 5 shows as 5, 7 as 5 */
    asy_disclosure_t mhsds = {4, 5};
    cr_assert_not(asy_disclose_count(&mhsds, 4, &shown));
    cr_assert(asy_disclose_count(&mhsds, 7, &shown));
    cr_assert_eq(shown, 5);
    /* base 10: halves round up */
    asy_disclosure_t tens = {0, 10};
    cr_assert(asy_disclose_count(&tens, 15, &shown));
    cr_assert_eq(shown, 20);
    cr_assert(asy_disclose_count(&tens, 3, &shown));
    cr_assert_eq(shown, 0);
    cr_assert_not(asy_disclose_count(&rule, -3, &shown));
    asy_disclosure_t broken = {7, 0};
    cr_assert_not(asy_disclose_count(&broken, 20, &shown));
    cr_assert(asy_disclosure_suppresses(&rule, 7));
    cr_assert_not(asy_disclosure_suppresses(&rule, 0));
    cr_assert_not(asy_disclosure_suppresses(&rule, 8));
}

Test(stats, disclosure_percentages)
{
    asy_disclosure_t rule = ASY_DISCLOSURE_DEFAULT;
    int64_t shown;
    cr_assert(asy_disclose_percentage(&rule, 81, 263, &shown));
    cr_assert_eq(shown, 31); /* 30.8% */
    cr_assert(asy_disclose_percentage(&rule, 10, 80, &shown));
    cr_assert_eq(shown, 13); /* 12.5% rounds up */
    cr_assert(asy_disclose_percentage(&rule, 0, 50, &shown));
    cr_assert_eq(shown, 0);
    cr_assert(asy_disclose_percentage(&rule, 50, 50, &shown));
    cr_assert_eq(shown, 100);
    cr_assert_not(asy_disclose_percentage(&rule, 5, 50, &shown)); /* numerator suppressed */
    cr_assert_eq(shown, -1);
    cr_assert_not(asy_disclose_percentage(&rule, 0, 6, &shown));   /* denominator suppressed */
    cr_assert_not(asy_disclose_percentage(&rule, 0, 0, &shown));   /* no denominator */
    cr_assert_not(asy_disclose_percentage(&rule, 60, 50, &shown)); /* impossible */
}
