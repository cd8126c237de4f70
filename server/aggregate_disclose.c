/*  aggregate_disclose.c: disclosure control of a rendered topic for the public stream
    (proto/PROTOCOL.md 13): primary suppression, secondary suppression, rows the bounds would
    pin, rounding. The values come from aggregate_render.c.  */
#include "aggregate_private.h"

#include "stats.h"

#include <math.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------------
   Disclosure control (PROTOCOL.md 13). */

static bool s_primary(const asy_mcell_t *cell)
{
    const asy_disclosure_t *rule = &ASY_DISCLOSURE_DEFAULT;
    return cell->suppressed || (cell->has_count && asy_disclosure_suppresses(rule, cell->count)) ||
           (cell->has_numerator && asy_disclosure_suppresses(rule, cell->numerator)) ||
           (cell->has_denominator && asy_disclosure_suppresses(rule, cell->denominator));
}

/* What a secondary suppression protects a cell by: its denominator where that is a count
   (M4-M6, M11-M13), else its count. M9's denominator is a population: by it, the smallest
   group could be one with no referral, whose hiding protects nothing, while M1 and M8 hide
   another (test_aggregate: the same groups hidden in M1, M8 and M9). */
static int64_t s_size(const asy_mcell_t *cell, bool by_count)
{
    if (cell->has_denominator && !by_count)
        return cell->denominator;
    return cell->has_count ? cell->count : 0;
}

bool asy_aggregate_is_total(const char *breakdown)
{
    size_t length = strlen(breakdown);
    return strcmp(breakdown, "total") == 0 || strcmp(breakdown, "imha_total") == 0 ||
           (length > 6 && strcmp(breakdown + length - 6, ".total") == 0);
}

/* The end of the run of cells of cells[start]'s breakdown. */
static size_t s_run_end(const asy_mupdate_t *update, size_t start)
{
    size_t end = start + 1;
    while (end < update->cell_count &&
           strcmp(update->cells[end].breakdown, update->cells[start].breakdown) == 0)
        end++;
    return end;
}

/* Within each breakdown, one suppressed group would be recoverable from the total: suppress
   the next smallest nonzero group too. The renderers (aggregate_render.c) add the cells of a
   breakdown one after another, so a breakdown is one run of cells (test_aggregate checks it on
   every metric). */
static void s_secondary(asy_mupdate_t *update, bool by_count)
{
    size_t end;
    for (size_t start = 0; start < update->cell_count; start = end) {
        const char *breakdown = update->cells[start].breakdown;
        end = s_run_end(update, start);
        if (asy_aggregate_is_total(breakdown))
            continue;
        int suppressed = 0;
        asy_mcell_t *smallest = NULL;
        for (size_t j = start; j < end; j++) {
            asy_mcell_t *cell = &update->cells[j];
            if (cell->suppressed)
                suppressed++;
            else if (s_size(cell, by_count) > 0 &&
                     (!smallest || s_size(cell, by_count) < s_size(smallest, by_count)))
                smallest = cell;
        }
        if (suppressed == 1 && smallest)
            smallest->suppressed = true;
    }
}

static int64_t s_round(int64_t count)
{
    int64_t shown = 0;
    asy_disclose_count(&ASY_DISCLOSURE_DEFAULT, count, &shown);
    return shown;
}

/* The total cell of a breakdown's metric ("total", or "declined.total" for
   "declined.ethnic_group"), or NULL. */
static const asy_mcell_t *s_total_of(const asy_mupdate_t *update, const char *breakdown)
{
    const char *dot = strrchr(breakdown, '.');
    size_t prefix = dot ? (size_t)(dot - breakdown) + 1 : 0;
    if (strncmp(breakdown, "imha_", 5) == 0 && !dot)
        prefix = 5; /* M8's imha_ rows: their own total (s_representation) */
    for (size_t i = 0; i < update->cell_count; i++) {
        const char *name = update->cells[i].breakdown;
        if (strncmp(name, breakdown, prefix) == 0 && strcmp(name + prefix, "total") == 0)
            return &update->cells[i];
    }
    return NULL;
}

/* Drops the rows whose breakdown name was emptied (withheld). */
void asy_aggregate_drop_withheld(asy_mupdate_t *update)
{
    size_t kept = 0;
    for (size_t i = 0; i < update->cell_count; i++)
        if (update->cells[i].breakdown[0])
            update->cells[kept++] = update->cells[i];
    update->cell_count = kept;
}

/* The rows present tell a lower bound of the total: each suppressed one holds 1 to 7, each
   shown one at least its rounded value less 2. Where the bounds leave a suppressed row one
   value only (7 rows under a `*` total, at most 7; 12 referrals in 12 groups under a total
   shown as 10, at most 12: each is 1), the breakdown's rows are withheld (their breakdown
   name emptied, for asy_aggregate_drop_withheld). M1's `reason` is not a partition (a
   referral counts under each reason it gives) and bounds nothing. */
static void s_withhold_pinned(asy_mupdate_t *update, bool by_count)
{
    size_t end;
    for (size_t start = 0; start < update->cell_count; start = end) {
        const char *breakdown = update->cells[start].breakdown;
        end = s_run_end(update, start);
        const asy_mcell_t *total = s_total_of(update, breakdown);
        if (asy_aggregate_is_total(breakdown) || strcmp(breakdown, "reason") == 0 || !total)
            continue;
        int64_t k = 0, shown_lo = 0, shown_hi = 0;
        for (size_t j = start; j < end; j++) {
            const asy_mcell_t *cell = &update->cells[j];
            int64_t v = s_round(s_size(cell, by_count));
            k += cell->suppressed;
            shown_lo += cell->suppressed ? 0 : (v > 2 ? v - 2 : 0);
            shown_hi += cell->suppressed ? 0 : (v > 0 ? v + 2 : 0);
        }
        int64_t t = s_round(s_size(total, by_count));
        int64_t t_lo = t > 2 ? t - 2 : 0, t_hi = total->suppressed ? 7 : t > 0 ? t + 2 : 0;
        /* a suppressed total bounds its rows at 7 only where its size is its count: one
           suppressed on its numerator hides a denominator of any size */
        bool bounded = !total->suppressed || by_count || !total->has_denominator;
        bool pinned = false;
        /* each suppressed row holds 1 or more, whatever hid it: a bound of 1 pins it. The
           bound from below (a row forced to 7) holds only where every suppressed row is a
           count of 1-7 summing with the others to the total: no secondary row (k >= 3 has
           none), no row hidden on its numerator, no subset of groups (M9) */
        bool counts = !by_count && !update->cells[start].has_denominator;
        if (k > 0 && bounded)
            pinned = t_hi - shown_lo - (k - 1) <= 1 ||
                     (counts && k >= 3 && !total->suppressed && t_lo - shown_hi - 7 * (k - 1) >= 7);
        for (size_t j = start; pinned && j < end; j++)
            update->cells[j].breakdown[0] = '\0';
    }
}

/* A suppressed cell as sent: its breakdown and group, nothing else. */
static void s_hide(asy_mcell_t *cell)
{
    asy_mcell_t hidden = {0};
    memcpy(hidden.breakdown, cell->breakdown, sizeof hidden.breakdown);
    memcpy(hidden.group, cell->group, sizeof hidden.group);
    hidden.suppressed = true;
    *cell = hidden;
}

/* M10's rows whose rate s_standardised withheld on the public stream are `*`: without a value
   they read as "not defined" (no population loaded), as if nothing were withheld. */
void asy_aggregate_hide_withheld_rates(asy_mupdate_t *update)
{
    for (size_t i = 0; i < update->cell_count; i++)
        if (update->cells[i].withheld && !update->cells[i].suppressed)
            s_hide(&update->cells[i]);
}

/* M7 on the public stream: a ratio to a reference group that is suppressed (M6's second hidden
   group, say) gives the reference's counts back (from the ratio and its interval), and with
   them the group M6 hid first. Every row of such a breakdown is suppressed. */
void asy_aggregate_hide_without_reference(asy_mupdate_t *update)
{
    const struct {
        asy_dim_t dim;
        int reference;
    } refs[] = {{ASY_DIM_ONS, ASY_ONS_WHITE_BRITISH}, {ASY_DIM_EG, ASY_EG_WHITE}};
    for (size_t r = 0; r < sizeof refs / sizeof refs[0]; r++) {
        const char *breakdown = asy_dims[refs[r].dim].name;
        const char *group = asy_dim_group_name(refs[r].dim, refs[r].reference);
        bool hidden = false;
        for (size_t i = 0; i < update->cell_count; i++)
            hidden |= strcmp(update->cells[i].breakdown, breakdown) == 0 &&
                      strcmp(update->cells[i].group, group) == 0 && update->cells[i].suppressed;
        for (size_t i = 0; hidden && i < update->cell_count; i++)
            if (strcmp(update->cells[i].breakdown, breakdown) == 0)
                s_hide(&update->cells[i]);
    }
}

void asy_aggregate_disclose(asy_mupdate_t *update, bool percent)
{
    asy_aggregate_drop_withheld(update); /* what s_follow_siblings withheld */
    for (size_t i = 0; i < update->cell_count; i++)
        update->cells[i].suppressed = s_primary(&update->cells[i]);
    bool by_count = strcmp(update->unit, "per_100k") == 0;
    s_secondary(update, by_count);
    s_withhold_pinned(update, by_count);
    asy_aggregate_drop_withheld(update);
    for (size_t i = 0; i < update->cell_count; i++) {
        asy_mcell_t *cell = &update->cells[i];
        if (cell->suppressed) {
            s_hide(cell);
            continue;
        }
        cell->count = s_round(cell->count);
        cell->numerator = s_round(cell->numerator);
        cell->denominator = s_round(cell->denominator);
        if (percent) {
            cell->value = round(cell->value);
            cell->lower = round(cell->lower);
            cell->upper = round(cell->upper);
        }
    }
}
