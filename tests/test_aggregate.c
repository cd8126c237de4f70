/*  test_aggregate.c: the monitor's in-memory aggregate (server/aggregate.c, aggregate_render.c)
    on hand-made cases: membership rules, newer-version-wins, percentiles of the waiting list,
    the new-day recomputation, breaches, and disclosure control.  */
#include "aggregate.h"
#include "stats.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static asy_date_t s_day(int year, int month, int day)
{
    asy_date_t date;
    cr_assert_eq(asy_date_from_ymd(year, month, day, &date), 0);
    return date;
}

static asy_case_view_t s_case(const char *id, const char *site, int64_t version)
{
    asy_case_view_t v;
    memset(&v, 0, sizeof v);
    snprintf(v.case_id, sizeof v.case_id, "%s", id);
    snprintf(v.site_id, sizeof v.site_id, "%s", site);
    v.version = version;
    v.service = 2; /* SERVICE_COMMUNITY: M8's referral rows, M9 and M10 are its */
    v.received = v.contacted = v.met = v.declined = v.closed = v.decided = ASY_NO_DATE;
    v.q_start = v.q_end = ASY_NO_DATE;
    return v;
}

/* Renders topic (exact or public) as the counters stand, without a rebuild (so the topic must
   be dirty: a put touched it), and returns the cell (breakdown, group), or NULL. */
static const asy_mcell_t *s_cell_kept(asy_aggregate_t *agg, const char *topic, bool exact,
                                      asy_mupdate_t *update, const char *breakdown,
                                      const char *group)
{
    asy_topic_ref_t ref;
    size_t cursor = 0;
    char name[ASY_TOPIC_MAX];
    bool found = false;
    while (!found && asy_aggregate_next_dirty(agg, &cursor, &ref)) {
        asy_aggregate_topic(agg, &ref, name);
        found = strcmp(name, topic) == 0;
    }
    cr_assert(found, "no topic %s", topic);
    cr_assert_eq(asy_aggregate_render(agg, &ref, exact, 0, update), 0);
    for (size_t i = 0; i < update->cell_count; i++)
        if (strcmp(update->cells[i].breakdown, breakdown) == 0 &&
            strcmp(update->cells[i].group, group) == 0)
            return &update->cells[i];
    return NULL;
}

/* The same after a rebuild (every topic is dirty after creation or a rebuild). */
static const asy_mcell_t *s_cell(asy_aggregate_t *agg, const char *topic, bool exact,
                                 asy_mupdate_t *update, const char *breakdown, const char *group)
{
    asy_aggregate_rebuild(agg);
    return s_cell_kept(agg, topic, exact, update, breakdown, group);
}

/* A cell as kept incrementally (pass 0) or after a rebuild (pass 1). */
typedef const asy_mcell_t *s_cell_fn(asy_aggregate_t *agg, const char *topic, bool exact,
                                     asy_mupdate_t *update, const char *breakdown,
                                     const char *group);

static s_cell_fn *s_reader(int pass)
{
    return pass ? s_cell : s_cell_kept;
}

/* The count of a cell, 0 if the cell is absent (a group nobody is in). */
static int64_t s_count(const asy_mcell_t *cell)
{
    return cell ? cell->count : 0;
}

typedef struct {
    asy_calendar_t *calendar;
    asy_aggregate_t *agg;
    asy_mupdate_t update;
} s_fixture_t;

static void s_setup(s_fixture_t *f, asy_date_t today)
{
    memset(f, 0, sizeof *f);
    f->calendar = asy_calendar_new();
    f->agg = asy_aggregate_new(f->calendar, 2, today);
    cr_assert_not_null(f->agg);
}

static void s_teardown(s_fixture_t *f)
{
    free(f->update.cells);
    asy_aggregate_destroy(&f->agg);
    asy_calendar_destroy(&f->calendar);
}

Test(aggregate, referral_counts_in_its_month_quarter_and_year_and_newer_version_wins)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t v = s_case("c1", "ward-a", 1);
    v.received = s_day(2026, 10, 5);
    v.attr[ASY_ATTR_ETHNICITY_ONS] = 7; /* ONS_BLACK_CARIBBEAN */
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    const char *topics[] = {"all/M1/2026-10", "all/M1/2026-27-Q3", "all/M1/2026-27",
                            "site/ward-a/M1/2026-10"};
    for (size_t i = 0; i < 4; i++) {
        const asy_mcell_t *c = s_cell(f.agg, topics[i], true, &f.update, "total", "ALL");
        cr_assert_eq(c->count, 1, "%s", topics[i]);
        c = s_cell(f.agg, topics[i], true, &f.update, "ethnic_group", "BLACK");
        cr_assert_not_null(c);
        cr_assert_eq(c->count, 1);
    }
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "total", "ALL")->count, 0);
    /* an older row of the same case (a slower worker) changes nothing */
    asy_case_view_t old = s_case("c1", "ward-a", 0);
    bool changed = true;
    cr_assert_eq(asy_aggregate_put(f.agg, &old, &changed), 0);
    cr_assert_not(changed);
    /* a newer one moves the referral to November */
    v.version = 2;
    v.received = s_day(2026, 11, 2);
    cr_assert_eq(asy_aggregate_put(f.agg, &v, &changed), 0);
    cr_assert(changed);
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-10", true, &f.update, "total", "ALL")->count, 0);
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "total", "ALL")->count, 1);
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-27-Q3", true, &f.update, "total", "ALL")->count, 1);
    cr_assert_eq(asy_aggregate_case_count(f.agg), 1);
    s_teardown(&f);
}

/* The NHS ethnic category breakdown: as recorded, else mapped from the ONS 2021 category
   (domain brief (b): "Map ONS->NHS: Gypsy/Roma/Other White -> C, Arab -> S, Chinese -> R"); a
   recorded NHS category wins over the mapping; neither recorded stays NOT_RECORDED. */
Test(aggregate, the_nhs_breakdown_maps_an_ons_only_category)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    static const struct {
        int ons, nhs;
    } cases[] = {{16, 0} /* Roma */,      {15, 0} /* Gypsy or Irish Traveller */,
                 {17, 0} /* other White */, {2, 0} /* Chinese */,
                 {18, 0} /* Arab */,       {3, 0} /* Indian */,
                 {13, 8} /* British, recorded NHS H */, {20, 0} /* not stated */,
                 {0, 0},                   {21, 0} /* not known */};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%zu", i);
        asy_case_view_t v = s_case(id, "ward-a", 1);
        v.received = s_day(2026, 11, 3);
        v.attr[ASY_ATTR_ETHNICITY_ONS] = cases[i].ons;
        v.attr[ASY_ATTR_NHS_ETHNIC] = cases[i].nhs;
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    }
    static const struct {
        const char *group;
        int64_t count;
    } want[] = {{"NHS_ETHNIC_C_WHITE_OTHER", 3},  {"NHS_ETHNIC_R_CHINESE", 1},
                {"NHS_ETHNIC_S_ANY_OTHER", 1},    {"NHS_ETHNIC_H_ASIAN_INDIAN", 2},
                {"NHS_ETHNIC_A_WHITE_BRITISH", 0}, {"NHS_ETHNIC_Z_NOT_STATED", 1},
                {"NHS_ETHNIC_99_NOT_KNOWN", 1},   {"NHS_ETHNIC_NOT_RECORDED", 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_eq(s_count(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "nhs_ethnic",
                                    want[i].group)),
                     want[i].count, "%s", want[i].group);
    /* the ONS breakdown is as recorded: the British case stays British there */
    cr_assert_eq(s_count(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "ethnicity_ons",
                                "ONS_WHITE_BRITISH")),
                 1);
    s_teardown(&f);
}

/* M1's source_group breakdown is the MHSDS referral-source groups (domain brief (b)): A1 GP
   counts in A primary care, B1 self and B2 carer in B self; the advocacy additions are groups
   of their own; the source breakdown keeps the codes as recorded. */
Test(aggregate, source_groups_are_the_mhsds_groups)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    static const int sources[] = {1, 2, 2, 4, 5, 5, 6, 30, 0};
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%zu", i);
        asy_case_view_t v = s_case(id, "ward-a", 1);
        v.received = s_day(2026, 11, 3);
        v.source = sources[i];
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    }
    const char *topic = "all/M1/2026-11";
    static const struct {
        const char *breakdown, *group;
        int64_t count;
    } want[] = {{"source_group", "SOURCE_A_PRIMARY_CARE", 3},
                {"source_group", "SOURCE_A1_GP", 0},
                {"source_group", "SOURCE_B_SELF", 3},
                {"source_group", "SOURCE_B2_CARER", 0},
                {"source_group", "SOURCE_C_LOCAL_AUTHORITY", 1},
                {"source_group", "SOURCE_MHA_OFFICE", 1},
                {"source_group", "SOURCE_NOT_RECORDED", 1},
                {"source", "SOURCE_A_PRIMARY_CARE", 1},
                {"source", "SOURCE_A1_GP", 2},
                {"source", "SOURCE_B2_CARER", 2}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_eq(s_count(s_cell(f.agg, topic, true, &f.update, want[i].breakdown,
                                    want[i].group)),
                     want[i].count, "%s %s", want[i].breakdown, want[i].group);
    s_teardown(&f);
}

/* IMHA uptake links a hospital's qualifying episode and an IMHA site's contact by the person
   (domain brief (c): U_g = people in Q_g with a contact.made by IMHA), not only within one
   case: P1's episode is recorded at ward-a, their IMHA advocate's contact in a case at
   imha-x. A contact before the episode began (P2's, from an earlier detention) does not
   reach it. Kept incrementally and after a rebuild alike. */
Test(aggregate, imha_uptake_links_an_episode_and_a_contact_of_one_person_across_cases)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t h1 = s_case("h1", "ward-a", 1), i1 = s_case("i1", "imha-x", 1);
    asy_case_view_t h2 = s_case("h2", "ward-a", 1), i2 = s_case("i2", "imha-x", 1);
    snprintf(h1.person_key, sizeof h1.person_key, "P1");
    snprintf(i1.person_key, sizeof i1.person_key, "P1");
    snprintf(h2.person_key, sizeof h2.person_key, "P2");
    snprintf(i2.person_key, sizeof i2.person_key, "P2");
    h1.service = h2.service = 0; /* the hospital's record: no advocacy service */
    i1.service = i2.service = 1; /* SERVICE_IMHA */
    h1.q_start = h2.q_start = s_day(2026, 11, 2);
    i1.received = i2.received = s_day(2026, 11, 3);
    i2.contacted = s_day(2026, 10, 20);
    asy_case_view_t *all[] = {&h1, &i1, &h2, &i2};
    for (size_t k = 0; k < 4; k++)
        cr_assert_eq(asy_aggregate_put(f.agg, all[k], NULL), 0);
    const asy_mcell_t *c = s_cell(f.agg, "all/M6/2026-11", true, &f.update, "total", "ALL");
    cr_assert(c && c->denominator == 2 && c->numerator == 0);
    i1.version = 2;
    i1.contacted = s_day(2026, 11, 5);
    cr_assert_eq(asy_aggregate_put(f.agg, &i1, NULL), 0);
    for (int pass = 0; pass < 2; pass++) {
        s_cell_fn *cell = s_reader(pass);
        c = cell(f.agg, "all/M6/2026-11", true, &f.update, "total", "ALL");
        cr_assert(c && c->denominator == 2 && c->numerator == 1, "pass %d: %lld of %lld", pass,
                  c ? (long long)c->numerator : -1, c ? (long long)c->denominator : -1);
        c = cell(f.agg, "site/ward-a/M6/2026-11", true, &f.update, "total", "ALL");
        cr_assert(c && c->denominator == 2 && c->numerator == 1, "pass %d: the hospital's", pass);
        c = cell(f.agg, "site/imha-x/M6/2026-11", true, &f.update, "total", "ALL");
        cr_assert(c && c->denominator == 0, "pass %d: no episode at imha-x", pass);
    }
    /* a contact after the period's end does not reach it: October has the episode of neither */
    c = s_cell(f.agg, "all/M6/2026-10", true, &f.update, "total", "ALL");
    cr_assert(c && c->denominator == 0);
    s_teardown(&f);
}

/* The fresh topics (the monitor publishes those of a quiet site first): the topics a change
   makes dirty that were clean, once each; a topic already dirty is
   not fresh again; forgetting drops the rows walked past and keeps the rest. */
Test(aggregate, fresh_topics_are_the_newly_dirty_ones_each_once)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_topic_ref_t ref;
    size_t cursor = 0;
    asy_aggregate_forget_fresh(f.agg, SIZE_MAX); /* creation made every topic dirty */
    cr_assert_not(asy_aggregate_next_fresh(f.agg, &cursor, &ref));
    asy_case_view_t a = s_case("c1", "ward-a", 1);
    a.received = s_day(2026, 11, 5);
    cr_assert_eq(asy_aggregate_put(f.agg, &a, NULL), 0); /* a new scope: all its topics */
    cursor = 0;
    while (asy_aggregate_next_dirty(f.agg, &cursor, &ref))
        asy_aggregate_clean(f.agg, &ref); /* as after publishing */
    asy_aggregate_forget_fresh(f.agg, SIZE_MAX);
    /* one referral at ward-a: its M1 topics of 2026-11, the quarter and the year, at the site
       and in the consortium, each once and dirty */
    asy_case_view_t b = s_case("c2", "ward-a", 1);
    b.received = s_day(2026, 11, 6);
    cr_assert_eq(asy_aggregate_put(f.agg, &b, NULL), 0);
    char name[ASY_TOPIC_MAX];
    const char *want[] = {"site/ward-a/M1/2026-11", "site/ward-a/M1/2026-27-Q3",
                          "site/ward-a/M1/2026-27", "all/M1/2026-11", "all/M1/2026-27-Q3",
                          "all/M1/2026-27"};
    bool seen[6] = {false};
    int count = 0;
    cursor = 0;
    while (asy_aggregate_next_fresh(f.agg, &cursor, &ref)) {
        asy_aggregate_topic(f.agg, &ref, name);
        for (int i = 0; i < 6; i++)
            if (strcmp(name, want[i]) == 0) {
                cr_assert_not(seen[i], "%s twice", name);
                seen[i] = true;
            }
        count++;
    }
    for (int i = 0; i < 6; i++)
        cr_assert(seen[i], "%s not fresh", want[i]);
    size_t dirty_count = 0, dirty_cursor = 0;
    while (asy_aggregate_next_dirty(f.agg, &dirty_cursor, &ref))
        dirty_count++;
    cr_assert_eq((size_t)count, dirty_count, "fresh %d, dirty %zu", count, dirty_count);
    /* a second change to the same, still dirty, topics adds nothing fresh after forgetting */
    asy_aggregate_forget_fresh(f.agg, cursor);
    b.version = 2;
    b.received = s_day(2026, 11, 7);
    cr_assert_eq(asy_aggregate_put(f.agg, &b, NULL), 0);
    cursor = 0;
    cr_assert_not(asy_aggregate_next_fresh(f.agg, &cursor, &ref), "a dirty topic went fresh");
    /* cleaned, then changed again: fresh again; the walk stopped after the first one keeps
       its row for the next walk, and a cleaned topic is not fresh */
    dirty_cursor = 0;
    while (asy_aggregate_next_dirty(f.agg, &dirty_cursor, &ref))
        asy_aggregate_clean(f.agg, &ref);
    b.version = 3;
    b.received = s_day(2026, 11, 9);
    cr_assert_eq(asy_aggregate_put(f.agg, &b, NULL), 0);
    int again = 0;
    cursor = 0;
    while (asy_aggregate_next_fresh(f.agg, &cursor, &ref))
        again++;
    cr_assert_gt(again, 1);
    cursor = 0;
    cr_assert(asy_aggregate_next_fresh(f.agg, &cursor, &ref));
    asy_topic_ref_t first = ref;
    asy_aggregate_clean(f.agg, &ref);
    asy_aggregate_forget_fresh(f.agg, cursor);
    cursor = 0;
    int rest = 0;
    while (asy_aggregate_next_fresh(f.agg, &cursor, &ref)) {
        cr_assert_not(ref.scope == first.scope && ref.period == first.period &&
                          ref.metric == first.metric,
                      "a cleaned topic is still fresh");
        rest++;
    }
    cr_assert_eq(rest, again - 1);
    s_teardown(&f);
}

/* A newer row that moves nothing counted (an event such as a second contact or a goal) keeps
   its version, leaves every topic clean, and a later real change still applies over it. */
Test(aggregate, a_newer_row_that_changes_nothing_counted_touches_no_topic)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t v = s_case("c1", "ward-a", 1);
    v.received = s_day(2026, 11, 5);
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    asy_topic_ref_t ref;
    size_t cursor = 0;
    while (asy_aggregate_next_dirty(f.agg, &cursor, &ref))
        asy_aggregate_clean(f.agg, &ref); /* as after publishing */
    v.version = 5;
    bool changed = true;
    cr_assert_eq(asy_aggregate_put(f.agg, &v, &changed), 0);
    cr_assert_not(changed);
    cursor = 0;
    cr_assert_not(asy_aggregate_next_dirty(f.agg, &cursor, &ref), "a topic went dirty");
    cr_assert_eq(asy_aggregate_case(f.agg, "c1")->version, 5);
    /* an older row than the one just kept is still ignored... */
    v.version = 4;
    v.received = s_day(2026, 10, 5);
    cr_assert_eq(asy_aggregate_put(f.agg, &v, &changed), 0);
    cr_assert_not(changed);
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "total", "ALL")->count, 1);
    /* ...and a newer one that does change something applies */
    v.version = 6;
    cr_assert_eq(asy_aggregate_put(f.agg, &v, &changed), 0);
    cr_assert(changed);
    cr_assert_eq(s_cell_kept(f.agg, "all/M1/2026-10", true, &f.update, "total", "ALL")->count, 1);
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "total", "ALL")->count, 0);
    s_teardown(&f);
}

Test(aggregate, contact_deadline_matures_the_day_after_and_breaches)
{
    s_fixture_t f;
    s_setup(&f, s_day(2022, 6, 8));
    asy_case_view_t v = s_case("c1", "ward-a", 1);
    v.received = s_day(2022, 6, 1); /* contact due 2022-06-08 (2-3 June bank holidays) */
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    asy_date_t deadlines[2];
    cr_assert_eq(asy_aggregate_breaches(f.agg, &v, deadlines), 0u, "not yet: today is the deadline");
    cr_assert_eq(deadlines[0], s_day(2022, 6, 8));
    cr_assert_eq(deadlines[1], s_day(2022, 6, 17));
    const asy_mcell_t *c = s_cell(f.agg, "all/M4/2022-06", true, &f.update, "total", "ALL");
    cr_assert_eq(c->denominator, 0);
    cr_assert_eq(asy_aggregate_set_today(f.agg, s_day(2022, 6, 9)), 0);
    cr_assert_eq(asy_aggregate_breaches(f.agg, &v, deadlines), 1u);
    c = s_cell(f.agg, "all/M4/2022-06", true, &f.update, "total", "ALL");
    cr_assert_eq(c->denominator, 1);
    cr_assert_eq(c->numerator, 0);
    /* contact on the deadline day is on time: no breach, numerator 1 */
    v.version = 2;
    v.contacted = s_day(2022, 6, 8);
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    cr_assert_eq(asy_aggregate_breaches(f.agg, &v, deadlines), 0u);
    c = s_cell(f.agg, "all/M4/2022-06", true, &f.update, "total", "ALL");
    cr_assert_eq(c->numerator, 1);
    cr_assert(c->has_value && fabs(c->value - 100.0) < 1e-9);
    /* declined on or before the deadline: not counted, never a breach */
    asy_case_view_t d = s_case("c2", "ward-a", 1);
    d.received = s_day(2022, 6, 1);
    d.declined = s_day(2022, 6, 6);
    cr_assert_eq(asy_aggregate_put(f.agg, &d, NULL), 0);
    cr_assert_eq(asy_aggregate_breaches(f.agg, &d, deadlines), 0u);
    cr_assert_eq(s_cell(f.agg, "all/M4/2022-06", true, &f.update, "total", "ALL")->denominator, 1);
    s_teardown(&f);
}

/* What withdraws an announced breach: the event, or a decline, on or before the deadline
   announced; never a deadline that has merely not passed (a holiday added, a clock stepped
   back) or an event after it. */
Test(aggregate, a_breach_is_settled_only_by_an_event_on_time)
{
    asy_case_view_t v = s_case("c1", "ward-a", 1);
    v.received = s_day(2022, 6, 1);
    asy_date_t due = s_day(2022, 6, 8);
    cr_assert_not(asy_aggregate_settled(&v, ASY_BREACH_CONTACT, due), "nothing yet");
    cr_assert_not(asy_aggregate_settled(&v, ASY_BREACH_CONTACT, ASY_NO_DATE));
    v.contacted = s_day(2022, 6, 9);
    cr_assert_not(asy_aggregate_settled(&v, ASY_BREACH_CONTACT, due), "a day late");
    v.contacted = s_day(2022, 6, 8);
    cr_assert(asy_aggregate_settled(&v, ASY_BREACH_CONTACT, due), "on the deadline day");
    cr_assert_not(asy_aggregate_settled(&v, ASY_BREACH_MEETING, s_day(2022, 6, 17)),
                  "a contact settles no meeting");
    v.declined = s_day(2022, 6, 10);
    cr_assert_not(asy_aggregate_settled(&v, ASY_BREACH_MEETING, s_day(2022, 6, 9)));
    cr_assert(asy_aggregate_settled(&v, ASY_BREACH_MEETING, s_day(2022, 6, 17)), "declined");
}

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(aggregate, waiting_list_median_and_p90_match_type_7_percentiles)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    const int received_days[] = {2, 3, 9, 10, 16, 17, 18, 19, 20, 20};
    double waits[10];
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", i);
        asy_case_view_t v = s_case(id, "office-c", 1);
        v.received = s_day(2026, 11, received_days[i]);
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
        waits[i] = asy_calendar_working_days_between(f.calendar, v.received, s_day(2026, 11, 23));
    }
    double median, p90;
    asy_stats_percentile(waits, 10, 0.5, &median);
    asy_stats_percentile(waits, 10, 0.9, &p90);
    const asy_mcell_t *c = s_cell(f.agg, "all/M3/now", true, &f.update, "total", "ALL");
    cr_assert_eq(c->count, 10);
    cr_assert(fabs(c->value - median) < 1e-9, "median %g, expected %g", c->value, median);
    cr_assert(fabs(c->p90 - p90) < 1e-9, "p90 %g, expected %g", c->p90, p90);
    /* the public stream gives nearest-rank percentiles, waits some referral has: the
       interpolated ones told the exact count (the p90's fraction is (n - 1) mod 10) */
    double sorted[10];
    memcpy(sorted, waits, sizeof sorted);
    qsort(sorted, 10, sizeof sorted[0], s_compare_double);
    c = s_cell(f.agg, "all/M3/now", false, &f.update, "total", "ALL");
    cr_assert_eq(c->count, 10);
    cr_assert_float_eq(c->value, sorted[4], 1e-9, "ceil(0.5 x 10) = the 5th");
    cr_assert_float_eq(c->p90, sorted[8], 1e-9, "ceil(0.9 x 10) = the 9th");
    s_teardown(&f);
}

Test(aggregate, public_cells_suppress_one_to_seven_round_to_five_and_protect_the_total)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    /* November referrals: 20 White British, 12 Indian, 3 Black Caribbean */
    const struct { int ons; int count; } groups[] = {{13, 20}, {3, 12}, {7, 3}};
    int n = 0;
    for (size_t g = 0; g < 3; g++)
        for (int i = 0; i < groups[g].count; i++) {
            char id[16];
            snprintf(id, sizeof id, "p%d", n++);
            asy_case_view_t v = s_case(id, "ward-a", 1);
            v.received = s_day(2026, 11, 3);
            v.attr[ASY_ATTR_ETHNICITY_ONS] = groups[g].ons;
            cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
        }
    const char *topic = "all/M1/2026-11";
    const asy_mcell_t *c = s_cell(f.agg, topic, false, &f.update, "total", "ALL");
    cr_assert_eq(c->count, 35);
    c = s_cell(f.agg, topic, false, &f.update, "ethnicity_ons", "ONS_BLACK_CARIBBEAN");
    cr_assert(c->suppressed && !c->has_count);
    /* 35 - 20 - 12 = 3 would reveal it: the next smallest (12) goes too */
    c = s_cell(f.agg, topic, false, &f.update, "ethnicity_ons", "ONS_ASIAN_INDIAN");
    cr_assert(c->suppressed && !c->has_count);
    c = s_cell(f.agg, topic, false, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(!c->suppressed && c->count == 20);
    /* the total is shown rounded: 35 stays 35; 20 stays 20; in the exact stream ASIAN is 12 */
    c = s_cell(f.agg, topic, true, &f.update, "ethnic_group", "ASIAN");
    cr_assert_eq(c->count, 12);
    c = s_cell(f.agg, "all/M2/2026-11", false, &f.update, "ethnic_group", "WHITE");
    cr_assert(!c->suppressed && c->count == 20);
    /* exact stream untouched */
    c = s_cell(f.agg, topic, true, &f.update, "ethnicity_ons", "ONS_BLACK_CARIBBEAN");
    cr_assert(!c->suppressed && c->count == 3);
    /* a percentage with a suppressed denominator is withheld */
    c = s_cell(f.agg, "all/M13/2026-11", false, &f.update, "ethnic_group", "BLACK");
    cr_assert(c->suppressed && !c->has_value);
    c = s_cell(f.agg, "all/M13/2026-11", false, &f.update, "total", "ALL");
    cr_assert(!c->suppressed && c->has_value && c->value == 100.0 && c->denominator == 35);
    s_teardown(&f);
}

Test(aggregate, qualifying_episode_counts_in_every_period_it_overlaps)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t v = s_case("q1", "ward-a", 1);
    v.q_start = s_day(2026, 8, 30);
    v.q_end = s_day(2026, 10, 2);
    v.contacted = s_day(2026, 9, 10);
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    const struct { const char *topic; int64_t q, u; } expect[] = {
        {"all/M6/2026-07", 0, 0}, {"all/M6/2026-08", 1, 0}, {"all/M6/2026-09", 1, 1},
        {"all/M6/2026-10", 1, 1}, {"all/M6/2026-11", 0, 0}, {"all/M6/2026-27-Q2", 1, 1},
        {"all/M6/2026-27-Q3", 1, 1}, {"all/M6/2026-27", 1, 1}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        const asy_mcell_t *c = s_cell(f.agg, expect[i].topic, true, &f.update, "total", "ALL");
        cr_assert_eq(c->denominator, expect[i].q, "%s", expect[i].topic);
        cr_assert_eq(c->numerator, expect[i].u, "%s", expect[i].topic);
    }
    s_teardown(&f);
}

Test(aggregate, window_holds_two_financial_years_of_periods)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    /* months 2025-04 .. 2026-11 (20), quarters 2025-26 Q1 .. 2026-27 Q3 (7), years 2 */
    cr_assert_eq(asy_aggregate_period_count(f.agg), 29);
    asy_case_view_t v = s_case("old", "ward-a", 1);
    v.received = s_day(2025, 3, 31); /* before the window */
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    cr_assert_eq(s_cell(f.agg, "all/M1/2025-26", true, &f.update, "total", "ALL")->count, 0);
    cr_assert_eq(asy_aggregate_set_today(f.agg, s_day(2027, 4, 1)), 0);
    /* a new financial year: 2026-04 .. 2027-04 */
    cr_assert_eq(asy_aggregate_period_count(f.agg), 13 + 5 + 2);
    s_teardown(&f);
}

Test(aggregate, recovery_star_improvement_counts_people_with_two_readings_of_an_area)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t v = s_case("r1", "ward-a", 1);
    cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    asy_outcome_view_t o = {.area = 1, .edition = 3, .first_score = 4, .last_score = 4,
                            .readings = 1, .last_date = s_day(2026, 9, 1)};
    snprintf(o.case_id, sizeof o.case_id, "r1");
    cr_assert_eq(asy_aggregate_put_outcome(f.agg, &o), 0);
    const asy_mcell_t *c = s_cell(f.agg, "all/M12/2026-09", true, &f.update, "total", "ALL");
    cr_assert_eq(c->denominator, 0, "one reading is not a pair");
    o.readings = 2;
    o.last_score = 5;
    o.last_date = s_day(2026, 10, 6);
    cr_assert_eq(asy_aggregate_put_outcome(f.agg, &o), 0);
    c = s_cell(f.agg, "all/M12/2026-10", true, &f.update, "total", "ALL");
    cr_assert_eq(c->denominator, 1);
    cr_assert_eq(c->numerator, 1);
    /* an older row (fewer readings) is ignored; a case not held is refused */
    o.readings = 1;
    o.last_score = 1;
    cr_assert_eq(asy_aggregate_put_outcome(f.agg, &o), 0);
    cr_assert_eq(s_cell(f.agg, "all/M12/2026-10", true, &f.update, "total", "ALL")->numerator, 1);
    snprintf(o.case_id, sizeof o.case_id, "nobody");
    cr_assert_eq(asy_aggregate_put_outcome(f.agg, &o), ASY_ENOTFOUND);
    /* a later reading in another area without a rise moves the person to November, still
       improved (area 1 rose) */
    asy_outcome_view_t other = {.area = 2, .edition = 3, .first_score = 6, .last_score = 6,
                                .readings = 2, .last_date = s_day(2026, 11, 2)};
    snprintf(other.case_id, sizeof other.case_id, "r1");
    cr_assert_eq(asy_aggregate_put_outcome(f.agg, &other), 0);
    cr_assert_eq(s_cell(f.agg, "all/M12/2026-10", true, &f.update, "total", "ALL")->denominator, 0);
    c = s_cell(f.agg, "all/M12/2026-11", true, &f.update, "total", "ALL");
    cr_assert(c->denominator == 1 && c->numerator == 1);
    s_teardown(&f);
}

/* M2, M6 and M12 count people: a person with cases at two sites counts once for the consortium
   and once at each site, in the groups of their latest case there; a case without a
   person_key is a person of its own. Checked as kept incrementally and after a rebuild. */
Test(aggregate, people_count_once_per_scope_in_the_groups_of_their_latest_case)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t a = s_case("a1", "ward-a", 1), b = s_case("b1", "office-b", 1),
                    c = s_case("c1", "ward-a", 1);
    snprintf(a.person_key, sizeof a.person_key, "P1");
    snprintf(b.person_key, sizeof b.person_key, "P1");
    a.received = s_day(2026, 10, 5);
    a.attr[ASY_ATTR_ETHNICITY_ONS] = 7; /* ONS_BLACK_CARIBBEAN */
    b.received = s_day(2026, 10, 20);
    b.attr[ASY_ATTR_ETHNICITY_ONS] = 13; /* ONS_WHITE_BRITISH */
    c.received = s_day(2026, 10, 10);
    /* both of P1's cases are qualifying episodes in October; only the first was contacted */
    a.q_start = s_day(2026, 10, 1);
    a.contacted = s_day(2026, 10, 6);
    b.q_start = s_day(2026, 10, 18);
    cr_assert_eq(asy_aggregate_put(f.agg, &a, NULL), 0);
    cr_assert_eq(asy_aggregate_put(f.agg, &b, NULL), 0);
    cr_assert_eq(asy_aggregate_put(f.agg, &c, NULL), 0);
    for (int pass = 0; pass < 2; pass++) {
        s_cell_fn *cell = s_reader(pass);
        cr_assert_eq(s_count(cell(f.agg, "all/M1/2026-10", true, &f.update, "total", "ALL")), 3);
        cr_assert_eq(s_count(cell(f.agg, "all/M2/2026-10", true, &f.update, "total", "ALL")), 2,
                     "pass %d", pass);
        cr_assert_eq(
            s_count(cell(f.agg, "all/M2/2026-10", true, &f.update, "ethnic_group", "WHITE")), 1);
        cr_assert_eq(
            s_count(cell(f.agg, "all/M2/2026-10", true, &f.update, "ethnic_group", "BLACK")), 0);
        cr_assert_eq(
            s_count(cell(f.agg, "site/ward-a/M2/2026-10", true, &f.update, "total", "ALL")), 2);
        cr_assert_eq(s_count(cell(f.agg, "site/ward-a/M2/2026-10", true, &f.update,
                                  "ethnic_group", "BLACK")), 1);
        cr_assert_eq(
            s_count(cell(f.agg, "site/office-b/M2/2026-10", true, &f.update, "total", "ALL")), 1);
        const asy_mcell_t *q = cell(f.agg, "all/M6/2026-10", true, &f.update, "total", "ALL");
        cr_assert_eq(q->denominator, 1, "one qualifying person, pass %d", pass);
        cr_assert_eq(q->numerator, 1, "contacted in one of their episodes");
    }
    /* b1 turns out to be someone else: two people at the consortium, one of them White */
    b.version = 2;
    snprintf(b.person_key, sizeof b.person_key, "P2");
    cr_assert_eq(asy_aggregate_put(f.agg, &b, NULL), 0);
    for (int pass = 0; pass < 2; pass++) {
        s_cell_fn *cell = s_reader(pass);
        cr_assert_eq(s_count(cell(f.agg, "all/M2/2026-10", true, &f.update, "total", "ALL")), 3,
                     "pass %d", pass);
        cr_assert_eq(
            s_count(cell(f.agg, "all/M2/2026-10", true, &f.update, "ethnic_group", "BLACK")), 1);
        const asy_mcell_t *q = cell(f.agg, "all/M6/2026-10", true, &f.update, "total", "ALL");
        cr_assert_eq(q->denominator, 2);
        cr_assert_eq(q->numerator, 1);
    }
    s_teardown(&f);
}

/* Readings of case_id in an area (edition 3) from first (score, day) to last (score, day). */
static asy_outcome_view_t s_readings(const char *case_id, int area, int first_score,
                                     asy_date_t first_day, int last_score, asy_date_t last_day,
                                     int readings)
{
    asy_outcome_view_t o = {.area = area,
                            .edition = 3,
                            .first_score = first_score,
                            .last_score = last_score,
                            .readings = readings,
                            .last_date = last_day};
    snprintf(o.case_id, sizeof o.case_id, "%s", case_id);
    /* versions order by their 20-digit prefix; the day number serves */
    snprintf(o.first_ver, sizeof o.first_ver, "%020d%s", (int)first_day, case_id);
    snprintf(o.last_ver, sizeof o.last_ver, "%020d%s", (int)last_day, case_id);
    return o;
}

/* M12 joins a person's readings of one area and edition across their cases (the scenario of
   test_metricsql's recovery_star_readings_join_across_a_persons_cases, where the SQL side is
   checked): P's case p1 (ward-a, Black Caribbean) read area 1 once, 4 in May, and area 2 twice,
   5 -> 4 by 05-20; p2 (ward-b, White British) read area 1 once, 6 on 06-10. Consortium: one
   series 4 -> 6 in area 1, June, improved, in p2's groups. ward-a: area 2 only, May, not
   improved. ward-b: one reading, nothing. Each order of the puts, kept and rebuilt.  */
Test(aggregate, recovery_star_readings_join_across_a_persons_cases)
{
    for (int order = 0; order < 3; order++) {
        s_fixture_t f;
        s_setup(&f, s_day(2026, 11, 23));
        asy_case_view_t p1 = s_case("p1", "ward-a", 1), p2 = s_case("p2", "ward-b", 1);
        snprintf(p1.person_key, sizeof p1.person_key, "P");
        snprintf(p2.person_key, sizeof p2.person_key, "P");
        p1.received = s_day(2026, 5, 2);
        p1.attr[ASY_ATTR_ETHNICITY_ONS] = 7; /* ONS_BLACK_CARIBBEAN */
        p2.received = s_day(2026, 6, 1);
        p2.attr[ASY_ATTR_ETHNICITY_ONS] = 13; /* ONS_WHITE_BRITISH */
        asy_outcome_view_t readings[3] = {
            s_readings("p1", 1, 4, s_day(2026, 5, 8), 4, s_day(2026, 5, 8), 1),
            s_readings("p1", 2, 5, s_day(2026, 5, 2), 4, s_day(2026, 5, 20), 2),
            s_readings("p2", 1, 6, s_day(2026, 6, 10), 6, s_day(2026, 6, 10), 1),
        };
        cr_assert_eq(asy_aggregate_put(f.agg, &p1, NULL), 0);
        if (order == 0)
            cr_assert_eq(asy_aggregate_put(f.agg, &p2, NULL), 0);
        for (int i = 0; i < 3; i++) {
            int r = order == 2 ? 2 - i : i;
            if (order != 0 && r == 2)
                cr_assert_eq(asy_aggregate_put(f.agg, &p2, NULL), 0);
            cr_assert_eq(asy_aggregate_put_outcome(f.agg, &readings[r]), 0, "reading %d", r);
        }
        for (int pass = 0; pass < 2; pass++) {
            s_cell_fn *cell = s_reader(pass);
            const asy_mcell_t *c = cell(f.agg, "all/M12/2026-06", true, &f.update, "total", "ALL");
            cr_assert(c->numerator == 1 && c->denominator == 1, "order %d pass %d: %lld/%lld",
                      order, pass, (long long)c->numerator, (long long)c->denominator);
            c = cell(f.agg, "all/M12/2026-06", true, &f.update, "ethnic_group", "WHITE");
            cr_assert(c && c->denominator == 1, "in the groups of p2");
            c = cell(f.agg, "all/M12/2026-06", true, &f.update, "ethnic_group", "BLACK");
            cr_assert(!c || c->denominator == 0);
            c = cell(f.agg, "all/M12/2026-05", true, &f.update, "total", "ALL");
            cr_assert_eq(c->denominator, 0, "order %d pass %d", order, pass);
            c = cell(f.agg, "site/ward-a/M12/2026-05", true, &f.update, "total", "ALL");
            cr_assert(c->numerator == 0 && c->denominator == 1);
            c = cell(f.agg, "site/ward-b/M12/2026-06", true, &f.update, "total", "ALL");
            cr_assert_eq(c->denominator, 0);
        }
        /* p2 turns out to be someone else: P is p1 alone again (May, not improved) */
        p2.version = 2;
        snprintf(p2.person_key, sizeof p2.person_key, "Q");
        cr_assert_eq(asy_aggregate_put(f.agg, &p2, NULL), 0);
        for (int pass = 0; pass < 2; pass++) {
            s_cell_fn *cell = s_reader(pass);
            const asy_mcell_t *c = cell(f.agg, "all/M12/2026-05", true, &f.update, "total", "ALL");
            cr_assert(c->numerator == 0 && c->denominator == 1, "pass %d", pass);
            c = cell(f.agg, "all/M12/2026-06", true, &f.update, "total", "ALL");
            cr_assert_eq(c->denominator, 0, "pass %d", pass);
        }
        s_teardown(&f);
    }
}

/* One person_key on 300 records (a placeholder identifier): one person, whose area-1 readings
   (one per record, score 1 then rising) are one series of 300, improved; more readings than
   the join keeps on the stack. */
Test(aggregate, many_cases_of_one_person_join_into_one_series)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    for (int i = 0; i < 300; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%03d", i);
        asy_case_view_t v = s_case(id, i % 2 ? "ward-a" : "office-b", 1);
        snprintf(v.person_key, sizeof v.person_key, "PLACEHOLDER");
        v.received = s_day(2026, 10, 1) + i / 20;
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
        asy_date_t day = s_day(2026, 10, 1) + i / 20;
        asy_outcome_view_t o = s_readings(id, 1, 1 + i / 60, day, 1 + i / 60, day, 1);
        cr_assert_eq(asy_aggregate_put_outcome(f.agg, &o), 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        s_cell_fn *cell = s_reader(pass);
        const asy_mcell_t *c = cell(f.agg, "all/M12/2026-10", true, &f.update, "total", "ALL");
        cr_assert(c->numerator == 1 && c->denominator == 1, "pass %d: %lld/%lld", pass,
                  (long long)c->numerator, (long long)c->denominator);
        c = cell(f.agg, "site/ward-a/M12/2026-10", true, &f.update, "total", "ALL");
        cr_assert(c->numerator == 1 && c->denominator == 1);
        cr_assert_eq(s_count(cell(f.agg, "all/M2/2026-10", true, &f.update, "total", "ALL")), 1);
        cr_assert_eq(s_count(cell(f.agg, "all/M1/2026-10", true, &f.update, "total", "ALL")), 300);
    }
    s_teardown(&f);
}

/* M1 by reason: a referral counts under every reason it gives, under REASON_NOT_RECORDED if
   it gives none; the groups may add up to more than the total. */
Test(aggregate, referral_counts_under_every_reason_it_gives)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_case_view_t a = s_case("r1", "ward-a", 1), b = s_case("r2", "ward-a", 1);
    a.received = b.received = s_day(2026, 11, 2);
    a.reasons = 1u << 1 | 1u << 5; /* REASON_MHA_RIGHTS, REASON_DISCHARGE_S117 */
    cr_assert_eq(asy_aggregate_put(f.agg, &a, NULL), 0);
    cr_assert_eq(asy_aggregate_put(f.agg, &b, NULL), 0);
    const char *topic = "all/M1/2026-11";
    cr_assert_eq(s_count(s_cell_kept(f.agg, topic, true, &f.update, "total", "ALL")), 2);
    cr_assert_eq(
        s_count(s_cell_kept(f.agg, topic, true, &f.update, "reason", "REASON_MHA_RIGHTS")), 1);
    cr_assert_eq(
        s_count(s_cell_kept(f.agg, topic, true, &f.update, "reason", "REASON_DISCHARGE_S117")),
        1);
    cr_assert_eq(
        s_count(s_cell_kept(f.agg, topic, true, &f.update, "reason", "REASON_NOT_RECORDED")), 1);
    cr_assert_eq(s_count(s_cell_kept(f.agg, topic, true, &f.update, "reason", "REASON_CTO")), 0);
    /* a newer row with other reasons moves the case between groups */
    a.version = 2;
    a.reasons = 1u << 6; /* REASON_CTO */
    cr_assert_eq(asy_aggregate_put(f.agg, &a, NULL), 0);
    cr_assert_eq(
        s_count(s_cell_kept(f.agg, topic, true, &f.update, "reason", "REASON_MHA_RIGHTS")), 0);
    cr_assert_eq(s_count(s_cell_kept(f.agg, topic, true, &f.update, "reason", "REASON_CTO")), 1);
    cr_assert_eq(s_count(s_cell(f.agg, topic, true, &f.update, "reason", "REASON_CTO")), 1);
    s_teardown(&f);
}

/* Every topic, exact and public, over varied cases: the cells of one breakdown come one after
   another (the secondary suppression walks a breakdown as one run of cells), and no
   breakdown of the public stream shows exactly one suppressed cell beside a nonzero shown
   one (the suppressed cell would be its total minus the others). */
Test(aggregate, every_topic_keeps_a_breakdown_together_and_hides_no_lone_cell)
{
    s_fixture_t f;
    asy_date_t today = s_day(2026, 11, 23);
    s_setup(&f, today);
    /* a population by group and age band, so that M8-M10 have cells too; group 19 has none
       (a group with referrals and no population) */
    for (int ons = 1; ons < 19; ons++)
        for (int band = 1; band <= 6; band++)
            asy_aggregate_set_population(f.agg, ons, band, 1000.0 * (1 + ons % 5) + 37 * band);
    uint64_t state = 42;
    for (int i = 0; i < 600; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", i);
        asy_case_view_t v = s_case(id, i % 3 ? "ward-a" : "ward-b", 1);
        state = state * 6364136223846793005u + 1442695040888963407u;
        uint32_t r = (uint32_t)(state >> 33);
        v.service = 1 + (int)(r % 3);
        v.source = 1 + (int)(r / 3 % 18);
        v.reasons = 1u << (1 + r / 7 % 6);
        v.attr[ASY_ATTR_ETHNICITY_ONS] = 1 + (int)(r / 11 % 19);
        v.attr[ASY_ATTR_GENDER] = 1 + (int)(r / 13 % 4);
        v.attr[ASY_ATTR_AGE_BAND] = 1 + (int)(r / 17 % 9);
        v.attr[ASY_ATTR_SEX] = 1 + (int)(r / 19 % 2);
        v.received = today - 1 - (int)(r / 23 % 400);
        v.q_start = v.received - (int)(r / 29 % 5);
        if (r % 2)
            v.contacted = v.received + (int)(r / 31 % 6);
        if (r % 3 == 0)
            v.met = v.received + (int)(r / 37 % 9);
        if (r % 5 == 0)
            v.declined = v.received + 2;
        if (r % 4 == 0) {
            v.closed = v.q_end = v.received + 30;
            v.left_before_goals = r % 8 == 0;
        }
        v.decided = v.received + 1;
        if (v.contacted > today || v.met > today || v.closed > today)
            v.contacted = v.met = v.closed = v.q_end = ASY_NO_DATE;
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    }
    cr_assert_eq(asy_aggregate_rebuild(f.agg), 0);
    size_t cursor = 0, topics = 0, lone_checked = 0, rate_cells[3] = {0};
    asy_topic_ref_t ref;
    while (asy_aggregate_next_dirty(f.agg, &cursor, &ref)) {
        topics++;
        for (int exact = 0; exact < 2; exact++) {
            cr_assert_eq(asy_aggregate_render(f.agg, &ref, exact, 0, &f.update), 0);
            const asy_mupdate_t *u = &f.update;
            for (int m = 8; m <= 10; m++) {
                char name[4];
                snprintf(name, sizeof name, "M%d", m);
                if (strcmp(u->metric, name) == 0)
                    rate_cells[m - 8] += u->cell_count;
            }
            size_t end;
            for (size_t start = 0; start < u->cell_count; start = end) {
                const char *breakdown = u->cells[start].breakdown;
                int suppressed = 0, shown = 0;
                for (end = start;
                     end < u->cell_count && strcmp(u->cells[end].breakdown, breakdown) == 0;
                     end++) {
                    suppressed += u->cells[end].suppressed;
                    shown += !u->cells[end].suppressed &&
                             (u->cells[end].count > 0 || u->cells[end].denominator > 0);
                }
                for (size_t j = end; j < u->cell_count; j++)
                    cr_assert(strcmp(u->cells[j].breakdown, breakdown) != 0,
                              "%s: breakdown %s in two runs", u->topic, breakdown);
                if (!exact && strcmp(breakdown, "total") != 0) {
                    cr_assert(suppressed != 1 || shown == 0, "%s: %s has one cell hidden", u->topic,
                              breakdown);
                    lone_checked += suppressed > 0;
                }
            }
        }
    }
    cr_assert_gt(topics, 400);
    cr_assert_gt(lone_checked, 100, "only %zu breakdowns with suppression", lone_checked);
    for (int m = 0; m < 3; m++)
        cr_assert_gt(rate_cells[m], 50, "M%d: only %zu cells", m + 8, rate_cells[m]);
    s_teardown(&f);
}

/* A rate or ratio on the public stream comes from the counts as shown (rounded to 5), so it
   cannot give back the exact count beside its published denominator or expected count: an
   exploratory test recovered 514 of 523 exact M9 counts as value x population / 100,000. */
Test(aggregate, public_values_come_from_the_rounded_counts)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_aggregate_set_population(f.agg, 0, 0, 433215);
    asy_aggregate_set_population(f.agg, 13, 3, 300000); /* ONS_WHITE_BRITISH */
    asy_aggregate_set_population(f.agg, 3, 3, 40000);   /* ONS_ASIAN_INDIAN */
    const struct {
        int ons;
        int count;
    } groups[] = {{13, 17}, {3, 9}};
    int n = 0;
    for (size_t g = 0; g < 2; g++)
        for (int i = 0; i < groups[g].count; i++) {
            char id[16];
            snprintf(id, sizeof id, "v%d", n++);
            asy_case_view_t v = s_case(id, "ward-a", 1);
            v.received = s_day(2026, 11, 3);
            v.attr[ASY_ATTR_ETHNICITY_ONS] = groups[g].ons;
            cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
        }
    /* M9, crude rate: exact 26 referrals, shown 25 */
    const asy_mcell_t *c = s_cell(f.agg, "all/M9/2026-11", true, &f.update, "total", "ALL");
    cr_assert(c && c->has_value && c->count == 26);
    cr_assert_float_eq(c->value * 433215 / 1e5, 26.0, 1e-9);
    c = s_cell(f.agg, "all/M9/2026-11", false, &f.update, "total", "ALL");
    cr_assert(c && c->has_value && c->count == 25 && c->denominator == 433215);
    cr_assert_float_eq(c->value * 433215 / 1e5, 25.0, 1e-9, "the value gives back %.6f",
                       c->value * 433215 / 1e5);
    cr_assert(c->has_interval && c->lower < c->value && c->value < c->upper);
    /* M8, observed / expected: O and the total behind E are the shown 15 and 25 */
    c = s_cell(f.agg, "all/M8/2026-11", false, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && c->has_value && c->count == 15);
    cr_assert_float_eq(c->expected, 25.0 * 300000 / 340000, 1e-9);
    cr_assert_float_eq(c->value * c->expected, 15.0, 1e-9);
    c = s_cell(f.agg, "all/M8/2026-11", true, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && c->count == 17);
    cr_assert_float_eq(c->value * c->expected, 17.0, 1e-9);
    s_teardown(&f);
}

/* count cases of ONS group ons: referrals received 3 Nov 2026, or (qualifying) episodes from
   2 Nov 2026; the first `contacted` of them contacted on 5 Nov. */
static void s_add_cases(s_fixture_t *f, int ons, int count, bool qualifying, int contacted, int *n)
{
    for (int i = 0; i < count; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", (*n)++);
        asy_case_view_t v = s_case(id, "ward-a", 1);
        if (qualifying)
            v.q_start = s_day(2026, 11, 2);
        else
            v.received = s_day(2026, 11, 3);
        if (i < contacted)
            v.contacted = s_day(2026, 11, 5);
        v.attr[ASY_ATTR_ETHNICITY_ONS] = ons;
        cr_assert_eq(asy_aggregate_put(f->agg, &v, NULL), 0);
    }
}

/* M8's expected counts on the public stream rest on the total of the breakdown, summed
   exactly and rounded once: summing the rounded groups carried a suppressed group's rounded
   count into every published E. A total that would itself be suppressed gives no E at all. */
Test(aggregate, public_expected_counts_do_not_carry_suppressed_groups)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_aggregate_set_population(f.agg, 13, 3, 300000); /* ONS_WHITE_BRITISH */
    asy_aggregate_set_population(f.agg, 3, 3, 40000);   /* ONS_ASIAN_INDIAN */
    asy_aggregate_set_population(f.agg, 6, 3, 20000);   /* ONS_BLACK_AFRICAN */
    int n = 0;
    /* 3 referrals, all in one group: the only count is suppressed, and so is every E */
    s_add_cases(&f, 3, 3, false, 0, &n);
    const asy_mcell_t *c =
        s_cell(f.agg, "all/M8/2026-11", false, &f.update, "ethnicity_ons", "ONS_ASIAN_INDIAN");
    cr_assert(c && c->suppressed);
    c = s_cell(f.agg, "all/M8/2026-11", false, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && !c->suppressed && c->count == 0);
    cr_assert_not(c->has_expected, "E = %.3f gives back the suppressed 3 (as 5)", c->expected);
    cr_assert_not(c->has_value);
    c = s_cell(f.agg, "all/M8/2026-11", true, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && c->has_expected, "the restricted stream keeps its exact E");
    cr_assert_float_eq(c->expected, 3.0 * 300000 / 360000, 1e-9);

    /* 43 + 3: both hidden (primary, then secondary); E rests on round(46) = 45, not on
       round(43) + round(3) = 50 */
    s_add_cases(&f, 6, 43, false, 0, &n);
    c = s_cell(f.agg, "all/M8/2026-11", false, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && !c->suppressed && c->has_expected);
    cr_assert_float_eq(c->expected * 360000 / 300000, 45.0, 1e-9);
    s_teardown(&f);
}

/* M8's IMHA rows: E = U_tot x Q_g / Q_tot. A group whose qualifying count Q_g is from 1 to 7
   is suppressed on the public stream, its O too: O is M6's numerator, and M6 withholds such a
   group (a shown "0 contacted" gave M6's withheld 0% away; and the row used to be there for
   Q_g 3-7 but not for 1-2, telling them apart). Nor does any group get an E while Q_tot is
   from 1 to 7. */
Test(aggregate, public_imha_expected_counts_hide_small_qualifying_groups)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    int n = 0;
    const char *topic = "all/M8/2026-11", *by = "imha_ethnicity_ons";
    s_add_cases(&f, 3, 1, true, 0, &n); /* ONS_ASIAN_INDIAN: Q 1 (Q_tot rounds to 0) */
    const asy_mcell_t *c = s_cell(f.agg, topic, false, &f.update, by, "ONS_ASIAN_INDIAN");
    cr_assert(c && c->suppressed, "there, and hidden, as with Q 3: M6 shows * either way");
    s_add_cases(&f, 3, 2, true, 0, &n); /* ONS_ASIAN_INDIAN: Q 3, U 0 */
    c = s_cell(f.agg, topic, false, &f.update, by, "ONS_ASIAN_INDIAN");
    cr_assert(c && c->suppressed && !c->has_count && !c->has_expected);
    s_add_cases(&f, 13, 40, true, 20, &n); /* ONS_WHITE_BRITISH: Q 40, U 20 */
    s_add_cases(&f, 6, 1, true, 0, &n);    /* ONS_BLACK_AFRICAN: Q 1, U 0 */
    c = s_cell(f.agg, topic, false, &f.update, by, "ONS_ASIAN_INDIAN");
    cr_assert(c && c->suppressed && !c->has_count && !c->has_expected, "Q_g 3");
    c = s_cell(f.agg, topic, false, &f.update, by, "ONS_BLACK_AFRICAN");
    cr_assert(c && c->suppressed, "Q_g 1: there, and hidden, as Q_g 3 is");
    c = s_cell(f.agg, topic, false, &f.update, by, "ONS_WHITE_BRITISH");
    cr_assert(c && !c->suppressed && c->has_expected && c->count == 20);
    cr_assert_float_eq(c->expected, 20.0 * 40 / 45, 1e-9, "U_tot 20, Q 40, Q_tot round(44)");
    c = s_cell(f.agg, topic, true, &f.update, by, "ONS_ASIAN_INDIAN");
    cr_assert(c && c->has_expected && c->count == 0, "the restricted stream keeps it exact");
    cr_assert_float_eq(c->expected, 20.0 * 3 / 44, 1e-9);
    s_teardown(&f);
}

/* count referrals received 3 Nov 2026 of ONS group ons, ServiceType service, age band and
   Sex sex. */
static void s_add_referrals_of_sex(s_fixture_t *f, int ons, int service, int band, int sex,
                                   int count, int *n)
{
    for (int i = 0; i < count; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%d", (*n)++);
        asy_case_view_t v = s_case(id, "ward-a", 1);
        v.received = s_day(2026, 11, 3);
        v.service = service;
        v.attr[ASY_ATTR_ETHNICITY_ONS] = ons;
        v.attr[ASY_ATTR_AGE_BAND] = band;
        v.attr[ASY_ATTR_SEX] = sex;
        cr_assert_eq(asy_aggregate_put(f->agg, &v, NULL), 0);
    }
}

static void s_add_referrals(s_fixture_t *f, int ons, int service, int band, int count, int *n)
{
    s_add_referrals_of_sex(f, ons, service, band, 0, count, n);
}

/* M8's referral rows, M9 and M10 are the community service's, against the population aged
   18-64 (domain brief (c): "P_g: resident population ... aged 18-64 for the community
   service"): IMHA referrals and people aged 65+ at referral are not counted there (IMHA's
   representation is M8's imha_ rows), a referral whose age is not recorded is (M9, M8), and
   a group without age bands takes the 18-64 share of those loaded. Values worked by hand:
   White British bands 20,000 / 5,000 / 30,000 / 25,000 / 20,000 / 40,000 (18-64: 75,000 of
   140,000); Asian Indian 14,000 and Asian Pakistani 10,000, all ages only (18-64: 7,500 and
   10,000 x 75 / 140); the total 164,000, of whom 75,000 x 164 / 140 aged 18-64. */
Test(aggregate, community_rates_count_its_referrals_against_the_population_aged_18_to_64)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    static const double bands[7] = {0, 20000, 5000, 30000, 25000, 20000, 40000};
    for (int band = 1; band <= 6; band++)
        asy_aggregate_set_population(f.agg, 13, band, bands[band]);
    asy_aggregate_set_population(f.agg, 3, 0, 14000);
    asy_aggregate_set_population(f.agg, 4, 0, 10000);
    const struct {
        int ons, service, band, count;
    } cases[] = {{13, 2, 3, 20}, {13, 2, 0, 10}, {13, 2, 6, 5}, {13, 1, 3, 30},
                 {3, 2, 4, 12},  {4, 2, 3, 3},   {4, 1, 3, 20}};
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_add_referrals(&f, cases[i].ons, cases[i].service, cases[i].band, cases[i].count, &n);
    cr_assert_eq(s_cell(f.agg, "all/M1/2026-11", true, &f.update, "total", "ALL")->count, 100);
    const char *m9 = "all/M9/2026-11", *m8 = "all/M8/2026-11", *by = "ethnicity_ons";
    const double adult = 75000.0 * 164000 / 140000; /* 87,857.14 */
    const asy_mcell_t *c = s_cell(f.agg, m9, true, &f.update, "total", "ALL");
    cr_assert(c && c->count == 45 && c->denominator == 87857, "%lld / %lld",
              c ? (long long)c->count : -1, c ? (long long)c->denominator : -1);
    cr_assert_float_eq(c->value, 1e5 * 45 / adult, 1e-9);
    c = s_cell(f.agg, m9, true, &f.update, by, "ONS_WHITE_BRITISH");
    cr_assert(c && c->count == 30 && c->denominator == 75000);
    cr_assert_float_eq(c->value, 40.0, 1e-9);
    c = s_cell(f.agg, m9, true, &f.update, by, "ONS_ASIAN_INDIAN");
    cr_assert(c && c->count == 12 && c->denominator == 7500);
    cr_assert_float_eq(c->value, 160.0, 1e-9);
    /* M8: O of the community referrals, E = O_tot x P_g / P_tot over the known groups */
    c = s_cell(f.agg, m8, true, &f.update, by, "ONS_WHITE_BRITISH");
    cr_assert(c && c->count == 30 && c->has_expected);
    cr_assert_float_eq(c->expected, 45.0 * 75000 / adult, 1e-9);
    c = s_cell(f.agg, m8, true, &f.update, by, "ONS_ASIAN_INDIAN");
    cr_assert_float_eq(c->expected, 45.0 * 7500 / adult, 1e-9);
    /* M10: strata 18-34, 35-49 and 50-64 only; the 10 of no recorded age are in none */
    c = s_cell(f.agg, "all/M10/2026-11", true, &f.update, "ethnic_group", "WHITE");
    cr_assert(c && c->count == 20 && c->has_value);
    cr_assert_float_eq(c->value, 1e5 * 20 / 75000, 1e-9, "standard = White British's bands");
    /* public: Pakistani is 23 in M1 (shown) but 3 in M9 (suppressed); M8's rows hide what M9
       hides, whatever M9 chose as its second */
    static const char *const names[] = {"ONS_WHITE_BRITISH", "ONS_ASIAN_INDIAN",
                                        "ONS_ASIAN_PAKISTANI"};
    int hidden = 0;
    for (size_t g = 0; g < 3; g++) {
        const char *name = names[g];
        asy_mupdate_t other = {0};
        const asy_mcell_t *in9 = s_cell(f.agg, m9, false, &f.update, by, name);
        bool hidden9 = in9 && in9->suppressed;
        const asy_mcell_t *in8 = s_cell(f.agg, m8, false, &other, by, name);
        bool hidden8 = in8 && in8->suppressed;
        cr_assert_eq(hidden8, hidden9, "%s: M8 %d, M9 %d", name, hidden8, hidden9);
        hidden += hidden9;
        free(other.cells);
    }
    cr_assert_eq(hidden, 2, "a primary and its secondary");
    c = s_cell(f.agg, m9, false, &f.update, by, "ONS_ASIAN_PAKISTANI");
    cr_assert(c && c->suppressed);
    c = s_cell(f.agg, "all/M1/2026-11", false, &f.update, by, "ONS_ASIAN_PAKISTANI");
    cr_assert(c && !c->suppressed && c->count == 25);
    s_teardown(&f);
}

/* With populations of all ages only (no band from 18-34 to 50-64 anywhere) no population aged
   18-64 is known: M9 and M10 have no cells and M8 no referral rows, rather than rates against
   the wrong population. */
Test(aggregate, community_rates_need_an_age_band_of_18_to_64)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_aggregate_set_population(f.agg, 13, 0, 300000);
    asy_aggregate_set_population(f.agg, 0, 6, 50000); /* 65+ only: no 18-64 either */
    int n = 0;
    s_add_referrals(&f, 13, 2, 3, 12, &n);
    for (int exact = 0; exact <= 1; exact++) {
        cr_assert_null(s_cell(f.agg, "all/M9/2026-11", exact, &f.update, "total", "ALL"));
        cr_assert_null(s_cell(f.agg, "all/M10/2026-11", exact, &f.update, "total", "ALL"));
        cr_assert_null(s_cell(f.agg, "all/M8/2026-11", exact, &f.update, "ethnicity_ons",
                              "ONS_WHITE_BRITISH"));
    }
    asy_aggregate_set_population(f.agg, 0, 4, 100000); /* 35-49 of all groups: now known */
    const asy_mcell_t *c = s_cell(f.agg, "all/M9/2026-11", true, &f.update, "ethnicity_ons",
                                  "ONS_WHITE_BRITISH");
    cr_assert(c && c->denominator == 200000, "300,000 x 100,000 / 150,000");
    s_teardown(&f);
}

/* M10 when some areas give age bands and others do not: the bands given are scaled up to the
   whole population, since the referrals come from every area. Two areas of 60,000 White
   British people each, only the first by age band (10,000 in each of 6 bands); 60 referrals
   to the community service, 10 in each band. The strata are the bands 18-34, 35-49 and 50-64
   (domain brief (c): the community service's population is aged 18-64): 30 referrals against
   2 x 30,000 people = 50 per 100,000 (before, the strata covered only the first area and gave
   100). M9 over the same: the referrals of people aged 18-64, against them. */
Test(aggregate, standardised_rate_covers_areas_without_age_bands)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    for (int ons = 0; ons <= 13; ons += 13) {
        asy_aggregate_set_population(f.agg, ons, 0, 120000);
        for (int band = 1; band <= 6; band++)
            asy_aggregate_set_population(f.agg, ons, band, 10000);
    }
    for (int i = 0; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", i);
        asy_case_view_t v = s_case(id, "ward-a", 1);
        v.received = s_day(2026, 11, 3);
        v.attr[ASY_ATTR_ETHNICITY_ONS] = 13;
        v.attr[ASY_ATTR_AGE_BAND] = 1 + i % 6;
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    }
    const asy_mcell_t *c =
        s_cell(f.agg, "all/M10/2026-11", true, &f.update, "ethnic_group", "WHITE");
    cr_assert(c && c->has_value, "no M10 for WHITE");
    cr_assert_float_eq(c->value, 50.0, 1e-9);
    c = s_cell(f.agg, "all/M10/2026-11", true, &f.update, "total", "ALL");
    cr_assert(c && c->has_value);
    cr_assert_float_eq(c->value, 50.0, 1e-9);
    c = s_cell(f.agg, "all/M9/2026-11", true, &f.update, "total", "ALL");
    cr_assert_float_eq(c->value, 50.0, 1e-9, "M9 over the same population");
    s_teardown(&f);
}

/* M10 standardised by age and sex (domain brief (c): "age/sex-standardised rate"; NHS
   England's MHA rates are age x sex, [S9a]) for a group whose population is given by sex.
   Worked by hand: the standard (all groups) has 10,000 males and 10,000 females in each band
   18-34, 35-49, 50-64. White British are split 5,000/5,000, 4,000/6,000 and 2,000/8,000
   (M/F); their referrals 10/20, 8/12 and 4/16, so the rates are 0.002 in five strata and
   0.004 in one: DSR = 10^5 x (5 x 0.002 + 0.004) / 6 = 233.33 per 100,000. Their 5
   referrals of no recorded or no stated sex are in no stratum (by age alone, with them, it
   would be 10^5 x (0.0035 + 0.002 + 0.002) / 3 = 250). Indian people, 2,000 in each band
   with no split given, keep the age strata (split by the standard's shares they would give
   the same rate): 10, 10 and 10 referrals, DSR = 10^5 x 0.005 = 500. So does the total,
   whose population is the standard, with every referral (the Black African ones below
   too): 10^5 x (51 + 34 + 30) / 20,000 / 3 = 191.67. Black African people are given by sex with no woman aged 50-64 (a stratum of no
   population would leave the rate undefined): age strata, 6 and 4 referrals against 1,000
   in each band, 10^5 x 10 / 3,000 = 333.33. */
Test(aggregate, standardised_rate_by_age_and_sex_for_a_group_given_by_sex)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    static const double all_bands[7] = {100000, 20000, 0, 20000, 20000, 20000, 20000};
    static const double wb_bands[7] = {40000, 5000, 0, 10000, 10000, 10000, 5000};
    static const double wb_male[7] = {0, 0, 0, 5000, 4000, 2000, 0};
    for (int band = 0; band <= 6; band++) {
        asy_aggregate_set_population(f.agg, 0, band, all_bands[band]);
        asy_aggregate_set_population(f.agg, 13, band, wb_bands[band]);
        bool adult = band >= 3 && band <= 5;
        asy_aggregate_set_population(f.agg, 3, band, band == 0 ? 6000 : adult ? 2000 : 0);
        if (!adult)
            continue;
        asy_aggregate_set_population_by_sex(f.agg, 0, band, 1, 10000);
        asy_aggregate_set_population_by_sex(f.agg, 0, band, 2, 10000);
        asy_aggregate_set_population_by_sex(f.agg, 13, band, 1, wb_male[band]);
        asy_aggregate_set_population_by_sex(f.agg, 13, band, 2, wb_bands[band] - wb_male[band]);
        asy_aggregate_set_population(f.agg, 6, band, 1000);
        asy_aggregate_set_population_by_sex(f.agg, 6, band, 1, band == 5 ? 1000 : 500);
        asy_aggregate_set_population_by_sex(f.agg, 6, band, 2, band == 5 ? 0 : 500);
    }
    const struct {
        int ons, band, male, female;
    } cases[] = {{13, 3, 10, 20}, {13, 4, 8, 12}, {13, 5, 4, 16},
                 {3, 3, 6, 4},    {3, 4, 5, 5},   {3, 5, 0, 10},  {6, 3, 6, 0}, {6, 4, 0, 4}};
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_add_referrals_of_sex(&f, cases[i].ons, 2, cases[i].band, 1, cases[i].male, &n);
        s_add_referrals_of_sex(&f, cases[i].ons, 2, cases[i].band, 2, cases[i].female, &n);
    }
    s_add_referrals_of_sex(&f, 13, 2, 3, 0, 3, &n); /* sex not recorded: in no stratum */
    s_add_referrals_of_sex(&f, 13, 2, 3, 3, 2, &n); /* not stated: in none either */
    const char *topic = "all/M10/2026-11";
    const asy_mcell_t *c = s_cell(f.agg, topic, true, &f.update, "ethnic_group", "WHITE");
    cr_assert(c && c->has_value && c->count == 70, "70 in the strata, not 75");
    cr_assert_float_eq(c->value, 1e5 * 0.014 / 6, 1e-9);
    c = s_cell(f.agg, topic, true, &f.update, "ethnic_group", "ASIAN");
    cr_assert(c && c->has_value && c->count == 30);
    cr_assert_float_eq(c->value, 500.0, 1e-9, "the age strata for a group without a split");
    c = s_cell(f.agg, topic, true, &f.update, "ethnic_group", "BLACK");
    cr_assert(c && c->has_value && c->count == 10, "no stratum of no population");
    cr_assert_float_eq(c->value, 1e5 * 10 / 3000, 1e-9);
    c = s_cell(f.agg, topic, true, &f.update, "total", "ALL");
    cr_assert(c && c->has_value && c->count == 115);
    cr_assert_float_eq(c->value, 1e5 * (51.0 + 34.0 + 30.0) / 20000 / 3, 1e-9);
    /* public: the stratum of 4 White British men aged 50-64 withholds the rate */
    c = s_cell(f.agg, topic, false, &f.update, "ethnic_group", "WHITE");
    cr_assert(c && c->suppressed && !c->has_value, "a sex stratum of 4");
    /* M9 stays crude, against persons aged 18-64, every referral counted */
    c = s_cell(f.agg, "all/M9/2026-11", true, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && c->count == 75 && c->denominator == 30000);
    s_teardown(&f);
}

/* M10 on the public stream: each age stratum entered the rate rounded (1-2 as 0, 3-7 as 5);
   with the populations public, the value could be inverted back to the strata (exploratory
   testing solved one: BLACK 18-34 = 10, 65+ = "5", when 65+ was a stratum). A stratum of 1-7
   withholds the rate; so does a group under 10 referrals counted exactly. The 20 Black people
   aged 65+ are in no stratum (the community service's population is aged 18-64). */
Test(aggregate, public_standardised_rates_hide_small_strata)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    static const double bands[7] = {0, 70000, 10000, 90000, 80000, 50000, 38400};
    for (int band = 0; band <= 6; band++) {
        asy_aggregate_set_population(f.agg, 0, band, band ? bands[band] * 10 : 3384000);
        asy_aggregate_set_population(f.agg, 7, band, band ? bands[band] : 338400);
        asy_aggregate_set_population(f.agg, 13, band, band ? bands[band] * 5 : 1692000);
    }
    int n = 0;
    const struct {
        int ons, band, count;
    } cases[] = {{7, 3, 10}, {7, 5, 3}, {13, 3, 10}, {13, 4, 8}, {7, 6, 20}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_add_referrals(&f, cases[i].ons, 2, cases[i].band, cases[i].count, &n);
    const char *topic = "all/M10/2026-11";
    const asy_mcell_t *c = s_cell(f.agg, topic, false, &f.update, "ethnic_group", "BLACK");
    cr_assert(c && !c->has_value && !c->has_interval, "a stratum of 3: no rate (%.4f)",
              c ? c->value : 0);
    cr_assert(c->suppressed && !c->has_count, "shown as *, not as a rate not defined");
    c = s_cell(f.agg, topic, false, &f.update, "ethnic_group", "WHITE");
    cr_assert(c && c->has_value, "strata of 10 and 8: a rate");
    c = s_cell(f.agg, topic, true, &f.update, "ethnic_group", "BLACK");
    cr_assert(c && c->has_value && c->count == 13, "the restricted stream keeps it");
    s_teardown(&f);
}

/* The group hidden to protect a lone suppressed one is the same in M1, M8 and M9: M9 chose by
   its denominator, a population, and so hid a group with no referral (protecting nothing)
   while showing the one M1 and M8 hid. */
Test(aggregate, public_secondary_suppression_hides_the_same_group_in_every_metric)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_aggregate_set_population(f.agg, 0, 0, 433215);
    asy_aggregate_set_population(f.agg, 13, 3, 300000); /* ONS_WHITE_BRITISH */
    asy_aggregate_set_population(f.agg, 3, 3, 40000);   /* ONS_ASIAN_INDIAN */
    asy_aggregate_set_population(f.agg, 4, 3, 30000);   /* ONS_ASIAN_PAKISTANI */
    asy_aggregate_set_population(f.agg, 15, 3, 402);    /* ONS_WHITE_GYPSY_IRISH_TRAVELLER */
    int n = 0;
    s_add_cases(&f, 13, 10, false, 0, &n);
    s_add_cases(&f, 3, 11, false, 0, &n);
    s_add_cases(&f, 4, 3, false, 0, &n);
    const char *by = "ethnicity_ons";
    static const char *const topics[] = {"all/M1/2026-11", "all/M8/2026-11", "all/M9/2026-11"};
    for (size_t t = 0; t < 3; t++) {
        const asy_mcell_t *c =
            s_cell(f.agg, topics[t], false, &f.update, by, "ONS_ASIAN_PAKISTANI");
        cr_assert(c && c->suppressed, "%s: primary", topics[t]);
        c = s_cell(f.agg, topics[t], false, &f.update, by, "ONS_WHITE_BRITISH");
        cr_assert(c && c->suppressed, "%s: the secondary is the smallest count", topics[t]);
        c = s_cell(f.agg, topics[t], false, &f.update, by, "ONS_ASIAN_INDIAN");
        cr_assert(c && !c->suppressed && c->count == 10, "%s", topics[t]);
        c = s_cell(f.agg, topics[t], false, &f.update, by, "ONS_WHITE_GYPSY_IRISH_TRAVELLER");
        cr_assert(!c || (!c->suppressed && c->count == 0), "%s: a zero stays a zero", topics[t]);
    }
    s_teardown(&f);
}

/* M7: each group's uptake against White British. The reference row is 1 by definition, with
   no interval: a Katz interval treated it as an independent sample of itself (0.54-1.86). */
Test(aggregate, uptake_ratio_of_the_reference_group_is_one_without_an_interval)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    int n = 0;
    s_add_cases(&f, 13, 40, true, 20, &n); /* ONS_WHITE_BRITISH: U/Q = 20/40 */
    s_add_cases(&f, 3, 40, true, 10, &n);  /* ONS_ASIAN_INDIAN: 10/40 */
    for (int exact = 0; exact <= 1; exact++) {
        const asy_mcell_t *c =
            s_cell(f.agg, "all/M7/2026-11", exact, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
        cr_assert(c && c->has_value && !c->has_interval, "exact %d", exact);
        cr_assert_float_eq(c->value, 1.0, 1e-12);
        c = s_cell(f.agg, "all/M7/2026-11", exact, &f.update, "ethnicity_ons", "ONS_ASIAN_INDIAN");
        cr_assert(c && c->has_value && c->has_interval, "exact %d", exact);
        cr_assert_float_eq(c->value, 0.5, 1e-12, "(10/40) / (20/40)");
        cr_assert(c->lower < 0.5 && 0.5 < c->upper);
    }
    s_teardown(&f);
}

/* Counting the rows present bounds the total: 7 referrals in 7 groups under a `*` total make
   every group 1; so do 12 in 12 under a total shown as 10 (8-12). Such a breakdown's rows are
   withheld on the public stream; with the bound leaving room, they stay. */
Test(aggregate, public_rows_that_pin_their_counts_are_withheld)
{
    static const int onses[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const struct {
        int groups, each;
        bool withheld;
    } cases[] = {{7, 1, true}, {12, 1, true}, {3, 3, false}, {2, 12, false}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        s_fixture_t f;
        s_setup(&f, s_day(2026, 11, 23));
        int n = 0;
        for (int g = 0; g < cases[t].groups; g++)
            s_add_cases(&f, onses[g], cases[t].each, false, 0, &n);
        const char *topic = "site/ward-a/M1/2026-11";
        const asy_mcell_t *c =
            s_cell(f.agg, topic, false, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE");
        if (cases[t].withheld)
            cr_assert_null(c, "case %zu: the rows pin each group", t);
        else
            cr_assert_not_null(c, "case %zu: the rows leave room", t);
        c = s_cell(f.agg, topic, false, &f.update, "total", "ALL");
        cr_assert_not_null(c, "case %zu: the total stays", t);
        c = s_cell(f.agg, topic, true, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE");
        cr_assert(c && c->count == cases[t].each, "case %zu: the restricted stream keeps it", t);
        s_teardown(&f);
    }
}

/* Ordinary data keeps its rows: a secondary row (8 or more), rows hidden on their numerator
   (whose denominators can be any size) and M9's known groups (a subset of the total) bound
   nothing from below. And M7 and M8, which repeat M6's and M1's groups without a total, drop
   the breakdowns those withhold (12 groups of 1 qualifying person: M6 withholds, M7 did not). */
Test(aggregate, rows_are_withheld_only_where_they_pin_and_everywhere_they_do)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    asy_aggregate_set_population(f.agg, 0, 0, 433215);
    for (int ons = 1; ons <= 19; ons++)
        asy_aggregate_set_population(f.agg, ons, 3, 20000);
    int n = 0;
    s_add_cases(&f, 13, 50, false, 0, &n);
    s_add_cases(&f, 3, 45, false, 0, &n);
    s_add_cases(&f, 4, 5, false, 0, &n);
    s_add_cases(&f, 20, 49, false, 0, &n); /* ONS_NOT_STATED: in M1's total, not in M9's rows */
    s_add_cases(&f, 13, 40, true, 20, &n); /* M6: 20/40, 3/30, 4/50 */
    s_add_cases(&f, 3, 30, true, 3, &n);
    s_add_cases(&f, 6, 50, true, 4, &n);
    static const char *const topics[] = {"all/M1/2026-11", "all/M9/2026-11", "all/M6/2026-11"};
    for (size_t t = 0; t < 3; t++)
        cr_assert_not_null(
            s_cell(f.agg, topics[t], false, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH"),
            "%s: rows kept", topics[t]);
    s_teardown(&f);

    s_setup(&f, s_day(2026, 11, 23));
    n = 0;
    for (int ons = 1; ons <= 12; ons++)
        s_add_cases(&f, ons, 1, true, 0, &n);
    cr_assert_null(s_cell(f.agg, "site/ward-a/M6/2026-11", false, &f.update, "ethnicity_ons",
                          "ONS_ASIAN_CHINESE"),
                   "M6 withholds: 12 rows under a total shown as 10");
    cr_assert_null(s_cell(f.agg, "site/ward-a/M7/2026-11", false, &f.update, "ethnicity_ons",
                          "ONS_ASIAN_CHINESE"),
                   "and so does M7");
    cr_assert_null(s_cell(f.agg, "all/M8/2026-11", false, &f.update, "imha_ethnicity_ons",
                          "ONS_ASIAN_CHINESE"),
                   "and M8's IMHA rows");
    cr_assert_not_null(
        s_cell(f.agg, "all/M7/2026-11", true, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE"),
        "the restricted stream keeps them");
    s_teardown(&f);
}

/* M8's E gives the total of its referral rows away (E x P_tot / P_g), so its rows are judged
   against that total: 12 referrals of 1 in known groups and 50 not stated left M1 room (its
   total counts the 50) but pinned every M8 row to 1. And a total suppressed on its numerator
   hides a denominator of any size: it bounds nothing (M6 with 3 contacted of 320 kept no
   breakdown). */
Test(aggregate, m8_rows_are_judged_against_the_total_their_expected_counts_give)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    for (int ons = 1; ons <= 19; ons++)
        asy_aggregate_set_population(f.agg, ons, 3, 20000);
    int n = 0;
    for (int ons = 1; ons <= 12; ons++)
        s_add_cases(&f, ons, 1, false, 0, &n);
    s_add_cases(&f, 20, 50, false, 0, &n);
    cr_assert_not_null(
        s_cell(f.agg, "all/M1/2026-11", false, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE"),
        "M1: the 50 leave room");
    cr_assert_null(
        s_cell(f.agg, "all/M8/2026-11", false, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE"),
        "M8: E gives 10 away, and 12 rows of at least 1 then pin each");
    cr_assert_null(s_cell(f.agg, "all/M8/2026-11", false, &f.update, "total", "ALL"),
                   "M8 has no total row");
    s_teardown(&f);

    s_setup(&f, s_day(2026, 11, 23));
    n = 0;
    s_add_cases(&f, 13, 100, true, 3, &n);
    s_add_cases(&f, 3, 100, true, 0, &n);
    s_add_cases(&f, 6, 120, true, 0, &n);
    const asy_mcell_t *c =
        s_cell(f.agg, "all/M6/2026-11", false, &f.update, "ethnicity_ons", "ONS_BLACK_AFRICAN");
    cr_assert(c && !c->suppressed && c->denominator == 120,
              "a total hidden on its numerator (3) bounds no denominator");
    s_teardown(&f);
}

/* M6, M7 and M8's IMHA rows show the same groups, and each used to choose its second hidden
   group by its own figures: M6 by Q (ASIAN_PAKISTANI, Q 9), M8 by U (BLACK_AFRICAN, U 8), so
   M8 showed PAKISTANI, whose rounded E gave back the Q that M6 hid. Every metric now hides
   what M6 hides. So do M8's referral rows and M9 what M1 hides (its second group chosen among
   all groups, NOT_STATED included). */
Test(aggregate, public_metrics_of_one_family_hide_the_groups_their_base_hides)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    int n = 0;
    s_add_cases(&f, 13, 40, true, 20, &n); /* ONS_WHITE_BRITISH: U/Q 20/40 */
    s_add_cases(&f, 3, 5, true, 2, &n);    /* ONS_ASIAN_INDIAN: 2/5, primary */
    s_add_cases(&f, 4, 9, true, 9, &n);    /* ONS_ASIAN_PAKISTANI: 9/9, smallest Q shown */
    s_add_cases(&f, 6, 30, true, 8, &n);   /* ONS_BLACK_AFRICAN: 8/30, smallest U shown */
    const struct {
        const char *topic, *breakdown;
    } views[] = {{"all/M6/2026-11", "ethnicity_ons"},
                 {"all/M7/2026-11", "ethnicity_ons"},
                 {"all/M8/2026-11", "imha_ethnicity_ons"}};
    for (size_t v = 0; v < sizeof views / sizeof views[0]; v++) {
        const char *topic = views[v].topic, *by = views[v].breakdown;
        const asy_mcell_t *c = s_cell(f.agg, topic, false, &f.update, by, "ONS_ASIAN_INDIAN");
        cr_assert(c && c->suppressed, "%s: primary", topic);
        c = s_cell(f.agg, topic, false, &f.update, by, "ONS_ASIAN_PAKISTANI");
        cr_assert(c && c->suppressed, "%s: M6's second hidden group", topic);
        c = s_cell(f.agg, topic, false, &f.update, by, "ONS_BLACK_AFRICAN");
        cr_assert(c && !c->suppressed, "%s: shown, as in M6", topic);
        c = s_cell(f.agg, topic, false, &f.update, by, "ONS_WHITE_BRITISH");
        cr_assert(c && !c->suppressed, "%s", topic);
    }
    s_teardown(&f);

    /* M1 by ethnic group: ASIAN 3 (primary), NOT_STATED 9 (M1's second), BLACK 12. M8 and
       M9, which have no NOT_STATED row, hide what M1 hides and then a second of their own */
    s_setup(&f, s_day(2026, 11, 23));
    for (int ons = 1; ons <= 19; ons++)
        asy_aggregate_set_population(f.agg, ons, 3, 20000);
    n = 0;
    s_add_cases(&f, 13, 50, false, 0, &n);
    s_add_cases(&f, 3, 3, false, 0, &n);
    s_add_cases(&f, 6, 12, false, 0, &n);
    s_add_cases(&f, 20, 9, false, 0, &n);
    const asy_mcell_t *c =
        s_cell(f.agg, "all/M1/2026-11", false, &f.update, "ethnic_group", "NOT_STATED");
    cr_assert(c && c->suppressed, "M1's second hidden group");
    static const char *const topics[] = {"all/M1/2026-11", "all/M8/2026-11", "all/M9/2026-11"};
    for (size_t t = 0; t < 3; t++) {
        c = s_cell(f.agg, topics[t], false, &f.update, "ethnic_group", "ASIAN");
        cr_assert(c && c->suppressed, "%s: primary", topics[t]);
        c = s_cell(f.agg, topics[t], false, &f.update, "ethnic_group", "BLACK");
        cr_assert(c && c->suppressed == (t > 0), "%s: a second of their own", topics[t]);
        c = s_cell(f.agg, topics[t], false, &f.update, "ethnic_group", "WHITE");
        cr_assert(c && !c->suppressed && c->count == 50, "%s", topics[t]);
    }
    s_teardown(&f);
}

/* From a review: (1) M9 judged its known groups against its total and could not see that 7
   referrals in each of 4 groups under a total shown as 30 make every `*` a 7, which M1 and
   M8 withhold: M9 now withholds the breakdowns M1 withholds. With no referral at all M1 has
   no rows, and M9's zeros stay. (2) M7 divided by a reference group M6 hid as its second
   group: the ratio and its interval gave the reference's counts back, and with M6's total the
   group hidden first; such a breakdown is now all `*`. (3) M10 without a population is a rate
   not defined, not a rate withheld: its count stays. */
Test(aggregate, review_m9_follows_m1_m7_needs_its_reference_m10_undefined_is_not_withheld)
{
    s_fixture_t f;
    s_setup(&f, s_day(2026, 11, 23));
    for (int ons = 1; ons <= 19; ons++)
        asy_aggregate_set_population(f.agg, ons, 3, 20000);
    cr_assert_not_null(
        s_cell(f.agg, "all/M9/2026-11", false, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE"),
        "no referral: M9's zero rows stay");
    int n = 0;
    for (int ons = 1; ons <= 4; ons++)
        s_add_cases(&f, ons, 7, false, 0, &n);
    static const char *const topics[] = {"all/M1/2026-11", "all/M8/2026-11", "all/M9/2026-11"};
    for (size_t t = 0; t < 3; t++)
        cr_assert_null(
            s_cell(f.agg, topics[t], false, &f.update, "ethnicity_ons", "ONS_ASIAN_CHINESE"),
            "%s withholds", topics[t]);
    s_teardown(&f);

    s_setup(&f, s_day(2026, 11, 23));
    n = 0;
    s_add_cases(&f, 13, 14, true, 8, &n); /* ONS_WHITE_BRITISH 8/14: M6's second hidden */
    s_add_cases(&f, 3, 5, true, 2, &n);   /* ONS_ASIAN_INDIAN 2/5: primary */
    s_add_cases(&f, 6, 40, true, 20, &n); /* ONS_BLACK_AFRICAN */
    s_add_cases(&f, 7, 60, true, 30, &n); /* ONS_BLACK_CARIBBEAN */
    const asy_mcell_t *c =
        s_cell(f.agg, "all/M6/2026-11", false, &f.update, "ethnicity_ons", "ONS_WHITE_BRITISH");
    cr_assert(c && c->suppressed, "M6 hides the reference as its second group");
    c = s_cell(f.agg, "all/M7/2026-11", false, &f.update, "ethnicity_ons", "ONS_BLACK_AFRICAN");
    cr_assert(c && c->suppressed && !c->has_value, "no ratio to a hidden reference");
    c = s_cell(f.agg, "all/M7/2026-11", true, &f.update, "ethnicity_ons", "ONS_BLACK_AFRICAN");
    cr_assert(c && c->has_value, "the restricted stream keeps it");
    s_teardown(&f);

    s_setup(&f, s_day(2026, 11, 23));
    asy_aggregate_set_population(f.agg, 13, 3, 300000); /* the standard, but no Black people */
    asy_aggregate_set_population(f.agg, 3, 3, 40000);   /* Asian Indian people, no referral */
    for (int i = 0; i < 50; i++) { /* 30 White British, 20 Black African, aged 18-34 */
        char id[16];
        snprintf(id, sizeof id, "u%d", i);
        asy_case_view_t v = s_case(id, "ward-a", 1);
        v.received = s_day(2026, 11, 3);
        v.attr[ASY_ATTR_ETHNICITY_ONS] = i < 30 ? 13 : 6;
        v.attr[ASY_ATTR_AGE_BAND] = 3;
        cr_assert_eq(asy_aggregate_put(f.agg, &v, NULL), 0);
    }
    c = s_cell(f.agg, "all/M10/2026-11", false, &f.update, "ethnic_group", "BLACK");
    cr_assert(c && !c->suppressed && c->count == 20 && !c->has_value,
              "a rate not defined is no rate withheld");
    c = s_cell(f.agg, "all/M10/2026-11", false, &f.update, "ethnic_group", "ASIAN");
    cr_assert(c && !c->suppressed && c->count == 0, "no referral: 0, as in M1 and M9, not *");
    s_teardown(&f);
}
