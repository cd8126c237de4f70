/*  stats.c: confidence intervals and disclosure control (see stats.h).

    Sources: Newcombe (1998) method 3 / Wilson (1927) score interval; PHE Technical Guide
    "Confidence Intervals" (2018) and PHEindicatormethods (phe_proportion, phe_rate, ISRatio,
    phe_dsr); Byar's approximation as quoted there (Breslow & Day 1987); Dobson et al. (1991);
    Katz et al. (1978) log interval for a ratio of proportions; incomplete gamma by series and
    Lentz continued fraction (Numerical Recipes 6.2); log-gamma by Lanczos (g = 7, n = 9).  */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

#define S_EPSILON 1e-15
#define S_TINY 1e-300
#define S_MAX_ITERATIONS 1000
#define S_PI 3.14159265358979323846
#define S_SQRT2 1.41421356237309504880

/* ----------------------------------------------------------------------------------------------
   Distributions */

/* ln Gamma(x) for x > 0 (Lanczos). libm's lgamma writes the global signgam, which would be a
   data race between actors. */
static double s_log_gamma(double x)
{
    static const double coefficients[9] = {
        0.99999999999980993,  676.5203681218851,     -1259.1392167224028,
        771.32342877765313,   -176.61502916214059,   12.507343278686905,
        -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
    if (x < 0.5) /* reflection */
        return log(S_PI / fabs(sin(S_PI * x))) - s_log_gamma(1.0 - x);
    x -= 1.0;
    double sum = coefficients[0];
    for (int i = 1; i < 9; i++)
        sum += coefficients[i] / (x + i);
    double t = x + 7.5;
    return 0.5 * log(2.0 * S_PI) + (x + 0.5) * log(t) - t + log(sum);
}

/* ln of x^a e^-x / Gamma(a), the factor shared by the series and the continued fraction. */
static double s_log_prefactor(double a, double x)
{
    return a * log(x) - x - s_log_gamma(a);
}

double asy_stats_gamma_p(double a, double x)
{
    if (!(a > 0.0) || !(x >= 0.0))
        return NAN;
    if (x == 0.0)
        return 0.0;
    if (isinf(x))
        return 1.0;
    if (x < a + 1.0) {
        double term = 1.0 / a, sum = term, ap = a;
        for (int i = 0; i < S_MAX_ITERATIONS; i++) {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if (fabs(term) < fabs(sum) * S_EPSILON)
                break;
        }
        return sum * exp(s_log_prefactor(a, x));
    }
    /* Q(a, x) by the modified Lentz method */
    double b = x + 1.0 - a, c = 1.0 / S_TINY, d = 1.0 / b, h = d;
    for (int i = 1; i < S_MAX_ITERATIONS; i++) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < S_TINY)
            d = S_TINY;
        c = b + an / c;
        if (fabs(c) < S_TINY)
            c = S_TINY;
        d = 1.0 / d;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < S_EPSILON)
            break;
    }
    return 1.0 - exp(s_log_prefactor(a, x)) * h;
}

double asy_stats_chi2_quantile(double p, double df)
{
    if (!(df >= 0.0) || !(p >= 0.0) || !(p < 1.0) || isinf(df))
        return NAN;
    if (df == 0.0 || p == 0.0)
        return 0.0;
    /* Solve P(a, y) = p for y = x / 2, a = df / 2: Newton steps kept inside a bracket, with
       bisection when a step would leave it. */
    double a = df / 2.0, low = 0.0, high = a > 1.0 ? a : 1.0;
    while (asy_stats_gamma_p(a, high) < p)
        high *= 2.0;
    double y = (low + high) / 2.0;
    for (int i = 0; i < S_MAX_ITERATIONS; i++) {
        double f = asy_stats_gamma_p(a, y) - p;
        if (f < 0.0)
            low = y;
        else
            high = y;
        double density = exp((a - 1.0) * log(y) - y - s_log_gamma(a));
        double next = density > 0.0 ? y - f / density : NAN;
        if (!(next > low && next < high))
            next = (low + high) / 2.0;
        if (fabs(next - y) <= 1e-13 * y || high - low <= 1e-13 * high)
            return 2.0 * next;
        y = next;
    }
    return 2.0 * y;
}

/* ----------------------------------------------------------------------------------------------
   Intervals */

static void s_undefined(asy_interval_t *out, asy_stat_status_t status)
{
    out->value = out->lower = out->upper = NAN;
    out->status = status;
}

static int s_invalid(asy_interval_t *out)
{
    s_undefined(out, ASY_STAT_UNDEFINED);
    return ASY_EINVAL;
}

static void s_set(asy_interval_t *out, double value, double lower, double upper)
{
    out->value = value;
    out->lower = lower;
    out->upper = upper;
    out->status = ASY_STAT_OK;
}

static bool s_bad_z(double z)
{
    return !(z > 0.0) || isinf(z);
}

int asy_stats_wilson(int64_t x, int64_t n, double z, asy_interval_t *out)
{
    if (x < 0 || n < 0 || x > n || s_bad_z(z))
        return s_invalid(out);
    if (n == 0) {
        s_undefined(out, ASY_STAT_UNDEFINED);
        return 0;
    }
    double p = (double)x / (double)n, z2 = z * z;
    double root = z * sqrt(z2 + 4.0 * (double)x * (1.0 - p));
    double denominator = 2.0 * ((double)n + z2);
    s_set(out, p, (2.0 * (double)x + z2 - root) / denominator,
          (2.0 * (double)x + z2 + root) / denominator);
    return 0;
}

/* Byar's approximation (PHE byars_lower / byars_upper). */
static double s_byar_lower(double o, double z)
{
    double factor = 1.0 - 1.0 / (9.0 * o) - z / (3.0 * sqrt(o));
    return o * factor * factor * factor;
}

static double s_byar_upper(double o, double z)
{
    double o1 = o + 1.0;
    double factor = 1.0 - 1.0 / (9.0 * o1) + z / (3.0 * sqrt(o1));
    return o1 * factor * factor * factor;
}

int asy_stats_poisson_count(int64_t o, double z, asy_interval_t *out)
{
    if (o < 0 || s_bad_z(z))
        return s_invalid(out);
    double count = (double)o;
    if (o >= ASY_STATS_EXACT_BELOW) {
        s_set(out, count, s_byar_lower(count, z), s_byar_upper(count, z));
        return 0;
    }
    double alpha = erfc(z / S_SQRT2);
    double lower = o == 0 ? 0.0 : asy_stats_chi2_quantile(alpha / 2.0, 2.0 * count) / 2.0;
    double upper = asy_stats_chi2_quantile(1.0 - alpha / 2.0, 2.0 * count + 2.0) / 2.0;
    s_set(out, count, lower, upper);
    return 0;
}

/* The count's interval divided by divisor (> 0), times multiplier. */
static int s_scaled_count(int64_t o, double divisor, double multiplier, double z,
                          asy_interval_t *out)
{
    if (o < 0 || isnan(divisor) || isnan(multiplier) || s_bad_z(z))
        return s_invalid(out);
    if (!(divisor > 0.0) || isinf(divisor)) {
        s_undefined(out, ASY_STAT_UNDEFINED);
        return 0;
    }
    asy_interval_t count;
    asy_stats_poisson_count(o, z, &count);
    double scale = multiplier / divisor;
    s_set(out, count.value * scale, count.lower * scale, count.upper * scale);
    return 0;
}

int asy_stats_crude_rate(int64_t o, double population, double multiplier, double z,
                         asy_interval_t *out)
{
    return s_scaled_count(o, population, multiplier, z, out);
}

int asy_stats_observed_expected(int64_t observed, double expected, double z, asy_interval_t *out)
{
    return s_scaled_count(observed, expected, 1.0, z, out);
}

int asy_stats_rate_ratio(int64_t u_g, int64_t q_g, int64_t u_ref, int64_t q_ref, double z,
                         asy_interval_t *out)
{
    if (u_g < 0 || q_g < 0 || u_ref < 0 || q_ref < 0 || u_g > q_g || u_ref > q_ref || s_bad_z(z))
        return s_invalid(out);
    if (u_g == 0 || q_g == 0 || u_ref == 0 || q_ref == 0) {
        s_undefined(out, ASY_STAT_UNDEFINED);
        return 0;
    }
    double ratio = ((double)u_g / (double)q_g) / ((double)u_ref / (double)q_ref);
    double se =
        sqrt(1.0 / (double)u_g - 1.0 / (double)q_g + 1.0 / (double)u_ref - 1.0 / (double)q_ref);
    s_set(out, ratio, exp(log(ratio) - z * se), exp(log(ratio) + z * se));
    return 0;
}

/* Sums for a DSR. Returns 0, ASY_EINVAL (bad values), or 1 if undefined (zero population or
   zero total weight). */
static int s_dsr_sums(const asy_stratum_t *strata, size_t count, double *dsr, double *variance,
                      int64_t *events)
{
    double weighted = 0.0, weights = 0.0, squares = 0.0;
    int64_t total = 0;
    bool undefined = false;
    if (!strata && count > 0)
        return ASY_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const asy_stratum_t *s = &strata[i];
        if (s->events < 0 || !(s->population >= 0.0) || !(s->weight >= 0.0) ||
            isinf(s->population) || isinf(s->weight))
            return ASY_EINVAL;
        if (s->population == 0.0) {
            undefined = true;
            continue;
        }
        double rate = (double)s->events / s->population;
        weighted += s->weight * rate;
        weights += s->weight;
        squares += s->weight * s->weight * rate / s->population;
        total += s->events;
    }
    if (undefined || weights == 0.0)
        return 1;
    *dsr = weighted / weights;
    *variance = squares / (weights * weights);
    *events = total;
    return 0;
}

/* The part both DSR intervals share: checks the arguments and sums the strata. Returns 1 with
   *dsr, *variance, *events set when an interval is to be computed; otherwise 0 or ASY_EINVAL
   with *out already filled (invalid input, or undefined because a stratum has no population
   or there is no weight). */
static int s_dsr_begin(const asy_stratum_t *strata, size_t count, double multiplier, double z,
                       asy_interval_t *out, double *dsr, double *variance, int64_t *events)
{
    if (s_bad_z(z) || isnan(multiplier))
        return s_invalid(out);
    int rc = s_dsr_sums(strata, count, dsr, variance, events);
    if (rc < 0)
        return s_invalid(out);
    if (rc > 0) {
        s_undefined(out, ASY_STAT_UNDEFINED);
        return 0;
    }
    return 1;
}

int asy_stats_dsr_dobson(const asy_stratum_t *strata, size_t count, double multiplier, double z,
                         asy_interval_t *out)
{
    double dsr = 0.0, variance = 0.0;
    int64_t events = 0;
    int rc = s_dsr_begin(strata, count, multiplier, z, out, &dsr, &variance, &events);
    if (rc <= 0)
        return rc;
    if (events < ASY_STATS_DSR_MIN_COUNT) {
        s_undefined(out, ASY_STAT_SUPPRESSED);
        return 0;
    }
    asy_interval_t limits;
    asy_stats_poisson_count(events, z, &limits);
    double o = (double)events, spread = sqrt(variance / o);
    s_set(out, multiplier * dsr, multiplier * (dsr + spread * (limits.lower - o)),
          multiplier * (dsr + spread * (limits.upper - o)));
    return 0;
}

int asy_stats_dsr_normal(const asy_stratum_t *strata, size_t count, double multiplier, double z,
                         asy_interval_t *out)
{
    double dsr = 0.0, variance = 0.0;
    int64_t events = 0;
    int rc = s_dsr_begin(strata, count, multiplier, z, out, &dsr, &variance, &events);
    if (rc <= 0)
        return rc;
    double half = z * sqrt(variance);
    s_set(out, multiplier * dsr, multiplier * (dsr - half), multiplier * (dsr + half));
    return 0;
}

/* ----------------------------------------------------------------------------------------------
   Percentiles */

static int s_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int asy_stats_percentile(double *values, size_t n, double p, double *out)
{
    *out = NAN;
    if (!(p >= 0.0 && p <= 1.0))
        return ASY_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (isnan(values[i]))
            return ASY_EINVAL;
    if (n == 0)
        return 0;
    qsort(values, n, sizeof *values, s_compare_doubles);
    double h = (double)(n - 1) * p;
    size_t below = (size_t)floor(h);
    double fraction = h - (double)below;
    *out = below + 1 < n ? values[below] + fraction * (values[below + 1] - values[below])
                         : values[below];
    return 0;
}

/* ----------------------------------------------------------------------------------------------
   Disclosure control */

static bool s_rule_valid(const asy_disclosure_t *rule)
{
    return rule && rule->threshold >= 0 && rule->base >= 1;
}

bool asy_disclosure_suppresses(const asy_disclosure_t *rule, int64_t count)
{
    return count >= 1 && count <= rule->threshold;
}

int64_t asy_disclosure_round(const asy_disclosure_t *rule, int64_t count)
{
    if (!s_rule_valid(rule) || count <= 0)
        return count;
    int64_t remainder = count % rule->base;
    return count - remainder + (2 * remainder >= rule->base ? rule->base : 0);
}

bool asy_disclose_count(const asy_disclosure_t *rule, int64_t count, int64_t *shown)
{
    *shown = -1;
    if (!s_rule_valid(rule) || count < 0 || asy_disclosure_suppresses(rule, count))
        return false;
    *shown = asy_disclosure_round(rule, count);
    return true;
}

bool asy_disclose_percentage(const asy_disclosure_t *rule, int64_t numerator, int64_t denominator,
                             int64_t *shown)
{
    *shown = -1;
    if (!s_rule_valid(rule) || numerator < 0 || denominator <= 0 || numerator > denominator ||
        asy_disclosure_suppresses(rule, numerator) || asy_disclosure_suppresses(rule, denominator))
        return false;
    /* floor(100 n / d + 1/2) in integers, so 12.5% rounds to 13 exactly */
    *shown = (200 * numerator + denominator) / (2 * denominator);
    return true;
}
