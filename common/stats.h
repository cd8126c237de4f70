/*  stats.h: confidence intervals and disclosure control for the monitoring metrics.

    The methods are those of /work/shared/domain.md (c), which follow Public Health England's
    PHEindicatormethods (phe_proportion, phe_rate, ISRatio/phe_isr, phe_dsr) and the PHE Technical
    Guide "Confidence Intervals" (2018), plus NHS England's normal-approximation DSR interval
    (Mental Health Act statistics) and the MHSDS / HES disclosure rules.

    Every interval function takes z, the standard normal quantile (ASY_STATS_Z95 = 1.96 for a
    95% interval). The exact Poisson limits use alpha = erfc(z / sqrt 2), i.e. 0.0499958 for
    z = 1.96; PHE uses alpha = 0.05 exactly, which moves the limits by less than 1 part in 10^4.

    Pure module: no I/O, no allocation.  */
#ifndef ASY_STATS_H_INCLUDED
#define ASY_STATS_H_INCLUDED

#include "asy.h"

#define ASY_STATS_Z95 1.96
#define ASY_STATS_PER_100K 100000.0
#define ASY_STATS_EXACT_BELOW 10   /* counts below this get exact Poisson limits, not Byar */
#define ASY_STATS_DSR_MIN_COUNT 10 /* Dobson DSRs are not computed below this total count */

typedef enum {
    ASY_STAT_OK = 0,
    ASY_STAT_UNDEFINED = 1,  /* e.g. zero denominator or a zero count in a ratio: all NaN */
    ASY_STAT_SUPPRESSED = 2, /* not computed by method rule (DSR with total count < 10): NaN */
} asy_stat_status_t;

/* A point estimate and its interval. When status is not ASY_STAT_OK, all three are NaN. */
typedef struct {
    double value;
    double lower;
    double upper;
    asy_stat_status_t status;
} asy_interval_t;

/* ----------------------------------------------------------------------------------------------
   Distributions */

/* Regularised lower incomplete gamma P(a, x) for a > 0, x >= 0 (NaN otherwise). */
double asy_stats_gamma_p(double a, double x);

/* Chi-square quantile: the x with P(chi2_df <= x) = p, to 1e-10 relative. df > 0, 0 <= p < 1;
   df == 0 gives 0 (the degenerate distribution, as R's qchisq). NaN for bad arguments. */
double asy_stats_chi2_quantile(double p, double df);

/* ----------------------------------------------------------------------------------------------
   Intervals. Each returns 0 and fills *out, or ASY_EINVAL for impossible input (negative
   counts, numerator above denominator, NaN, z <= 0); then *out is all NaN, status UNDEFINED. */

/* Proportion x/n with the Wilson score interval:
   (2x + z^2 -+ z sqrt(z^2 + 4x(1 - p))) / (2(n + z^2)). n == 0 -> ASY_STAT_UNDEFINED. */
int asy_stats_wilson(int64_t x, int64_t n, double z, asy_interval_t *out);

/* A Poisson count o with its interval: exact (chi-square) limits when o < 10,
   [chi2(alpha/2, 2o)/2, chi2(1 - alpha/2, 2o + 2)/2], Byar's approximation when o >= 10. */
int asy_stats_poisson_count(int64_t o, double z, asy_interval_t *out);

/* Crude rate multiplier * o / population with the count's limits scaled the same way
   (phe_rate). population <= 0 -> ASY_STAT_UNDEFINED. */
int asy_stats_crude_rate(int64_t o, double population, double multiplier, double z,
                         asy_interval_t *out);

/* Observed / expected (M8) with the count's limits divided by expected (ISRatio).
   expected <= 0 -> ASY_STAT_UNDEFINED. */
int asy_stats_observed_expected(int64_t observed, double expected, double z, asy_interval_t *out);

/* Ratio of proportions (u_g/q_g) / (u_ref/q_ref) with the log (Katz) interval
   exp(ln RR -+ z sqrt(1/u_g - 1/q_g + 1/u_ref - 1/q_ref)). Any count 0 -> UNDEFINED. */
int asy_stats_rate_ratio(int64_t u_g, int64_t q_g, int64_t u_ref, int64_t q_ref, double z,
                         asy_interval_t *out);

/* One stratum of a directly standardised rate: events, population, standard-population
   weight. */
typedef struct {
    int64_t events;
    double population;
    double weight;
} asy_stratum_t;

/* Directly standardised rate with Dobson's interval (phe_dsr):
   DSR = multiplier * sum(w O/n) / sum(w); var = sum(w^2 O / n^2) / (sum w)^2;
   limits = DSR + multiplier * sqrt(var / O) * (O_L - O) and with O_U, where O = sum O_i and
   O_L, O_U are its exact/Byar limits. O < 10 -> ASY_STAT_SUPPRESSED. A stratum with
   population 0, or sum(w) == 0 -> UNDEFINED. Negative values -> ASY_EINVAL. */
int asy_stats_dsr_dobson(const asy_stratum_t *strata, size_t count, double multiplier, double z,
                         asy_interval_t *out);

/* The same DSR with the normal approximation DSR -+ z * multiplier * sqrt(var) (NHS England's
   MHA statistics). Never suppressed; O == 0 gives 0 [0, 0]. */
int asy_stats_dsr_normal(const asy_stratum_t *strata, size_t count, double multiplier, double z,
                         asy_interval_t *out);

/* ----------------------------------------------------------------------------------------------
   Percentiles (waiting times) */

/* The p-quantile (0 <= p <= 1) of values[0..n-1] by linear interpolation between order
   statistics (Hyndman & Fan type 7, as R's default, numpy's default and Excel PERCENTILE.INC):
   h = (n - 1) p, q = x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]) on sorted x.
   So the median of an even count is the mean of the middle two. Sorts values in place.
   Returns 0 with *out = NaN when n == 0, or ASY_EINVAL for p outside [0, 1] or a NaN value. */
int asy_stats_percentile(double *values, size_t n, double p, double *out);

/* ----------------------------------------------------------------------------------------------
   Disclosure control for public and partner output */

typedef struct {
    int64_t threshold; /* counts 1..threshold are suppressed; 0 shows as 0 */
    int64_t base;      /* shown counts are rounded to the nearest multiple (1 = unrounded) */
} asy_disclosure_t;

/* The HES/ECDS 1-7 rule, rounded to 5 (our default for county-level figures). The MHSDS rule
   "<5 suppressed" is {4, 5}. */
#define ASY_DISCLOSURE_DEFAULT ((asy_disclosure_t){7, 5})

/* True if count would be shown as "*" (1 <= count <= threshold). */
bool asy_disclosure_suppresses(const asy_disclosure_t *rule, int64_t count);

/* Count as published: returns true and *shown = count rounded to the nearest multiple of base
   (halves up), 0 stays 0; or false if suppressed, or if count < 0 or the rule is invalid
   (threshold < 0, base < 1), in which case *shown is -1. */
bool asy_disclose_count(const asy_disclosure_t *rule, int64_t count, int64_t *shown);

/* count rounded to the nearest multiple of rule->base, halves up (0 and negatives unchanged),
   whether or not the rule suppresses it: what asy_disclose_count shows, and the figure a
   public value is computed from. */
int64_t asy_disclosure_round(const asy_disclosure_t *rule, int64_t count);

/* Percentage 100 * numerator / denominator as published: false ("*") if numerator or
   denominator is suppressed by the count rule, denominator is 0, or numerator > denominator
   or either is negative; else true and *shown = the percentage of the unrounded counts,
   rounded half up to a whole number. */
bool asy_disclose_percentage(const asy_disclosure_t *rule, int64_t numerator, int64_t denominator,
                             int64_t *shown);

#endif
