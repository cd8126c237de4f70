/*  test_simulate.c: `advsync-agent simulate`: exact counts through the real submission path,
    determinism by seed, the lifecycle's kinds and order, the configured shares and the
    detention disparity, pacing and SIGTERM, parameter-file errors, no raw references stored.  */
#include "fixture.h"
#include "simulate.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static asy_fixture_t s_fixture;

static void s_setup(void)
{
    asy_fixture_setup(&s_fixture, &(asy_fixture_spec_t){.name = "simulate",
                                                        .agent_id = "ward-a",
                                                        .site_id = "site-a",
                                                        .outbox_folder = true,
                                                        .random_key = true});
}

static void s_teardown(void)
{
    asy_fixture_teardown(&s_fixture);
}

TestSuite(simulate, .init = s_setup, .fini = s_teardown);

/* Runs `simulate ARGS...` (NULL-terminated) in this process with stdout into DIR/name and
   stderr into DIR/name.err. Returns the exit code. */
static int s_simulate(const char *name, ...)
{
    char *argv[32] = {"simulate"};
    int argc = 1;
    va_list args;
    va_start(args, name);
    for (const char *arg; (arg = va_arg(args, const char *)) && argc < 31;)
        argv[argc++] = (char *)arg;
    va_end(args);
    argv[argc] = NULL;
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/%s", s_fixture.dir, name);
    snprintf(err_path, sizeof err_path, "%s/%s.err", s_fixture.dir, name);
    return asy_fixture_capture(&s_fixture, asy_cmd_simulate, argc, argv, out_path, err_path);
}

static char *s_output(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_fixture.dir, name);
    return asy_fixture_slurp(path, NULL);
}

typedef struct {
    uint64_t count;
    uint64_t next_seq;
    int kinds[ASY_KIND_LAST + 1];
} s_scan_t;

static int s_check_row(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    s_scan_t *scan = arg;
    cr_assert_eq(seq, scan->next_seq, "seq %llu after %llu", (unsigned long long)seq,
                 (unsigned long long)scan->next_seq - 1);
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0);
    asy_check_t why = {0};
    cr_assert_eq(asy_event_validate(event, &why), 0, "seq %llu: %s", (unsigned long long)seq,
                 why.reason);
    asy_event_summary_t summary;
    asy_event_summarise(event, &summary);
    cr_assert_eq(summary.seq, seq);
    cr_assert(asy_pseudonym_valid(summary.case_id));
    cr_assert(asy_pseudonym_valid(summary.person_key));
    cr_assert_leq(summary.occurred_at_us / 1000000, (int64_t)time(NULL));
    cr_assert(summary.kind >= ASY_KIND_FIRST && summary.kind <= ASY_KIND_LAST);
    scan->kinds[summary.kind]++;
    scan->count++;
    scan->next_seq++;
    asy_event_destroy(&event);
    return 0;
}

static s_scan_t s_scan_outbox(void)
{
    s_scan_t scan = {.next_seq = 1};
    char error[512];
    asy_outbox_t *outbox =
        asy_outbox_open(s_fixture.config.outbox_path, "ward-a", "site-a", error, sizeof error);
    cr_assert_not_null(outbox, "%s", error);
    for (;;) {
        size_t count = 0;
        cr_assert_eq(asy_outbox_read(outbox, scan.next_seq, 1000, s_check_row, &scan, &count), 0);
        if (count == 0)
            break;
    }
    asy_outbox_destroy(&outbox);
    return scan;
}

/* "stored N events of M cases, FIRST to LAST" gives the earliest and the latest time: it gave
   the first and the last stored, which the interleaving cases put backwards (on 2026-12-03,
   seeds 6, 9, 13, 17 and 22 of 20 events, from the default start 120 days back). */
Test(simulate, the_summary_gives_the_earliest_and_the_latest_time)
{
    for (int seed = 1; seed <= 30; seed++) {
        char name[16], seed_text[16];
        snprintf(name, sizeof name, "out%d", seed);
        snprintf(seed_text, sizeof seed_text, "%d", seed);
        int code = s_simulate(name, "--events", "20", "--seed", seed_text, NULL);
        char *out = s_output(name);
        cr_assert_eq(code, 0, "exit %d: %s", code, out);
        const char *range = strstr(out, " cases, ");
        cr_assert_not_null(range, "%s", out);
        char first[32] = "", last[32] = "";
        cr_assert_eq(sscanf(range, " cases, %31s to %31[^;]", first, last), 2, "%s", out);
        cr_assert_leq(strcmp(first, last), 0, "seed %d: %s", seed, out);
        free(out);
    }
}

Test(simulate, stores_exactly_n_valid_events_with_every_main_kind)
{
    int code = s_simulate("out", "--events", "5000", "--seed", "11", NULL);
    char *out = s_output("out");
    cr_assert_eq(code, 0, "exit %d: %s", code, out);
    cr_assert(strstr(out, "stored 5000 events"), "%s", out);
    cr_assert(strstr(out, "rejected 0"), "%s", out);
    free(out);
    s_scan_t scan = s_scan_outbox();
    cr_assert_eq(scan.count, 5000);
    const int main_kinds[] = {ASY_KIND_PERSON_PROFILE_RECORDED,
                              ASY_KIND_QUALIFYING_STARTED,
                              ASY_KIND_QUALIFYING_ENDED,
                              ASY_KIND_REFERRAL_RECEIVED,
                              ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED,
                              ASY_KIND_REFERRAL_DECLINED,
                              ASY_KIND_WAITLIST_JOINED,
                              ASY_KIND_WAITLIST_LEFT,
                              ASY_KIND_CONTACT_ATTEMPTED,
                              ASY_KIND_CONTACT_MADE,
                              ASY_KIND_MEETING_INITIAL_HELD,
                              ASY_KIND_PLAN_AGREED,
                              ASY_KIND_ISSUE_RECORDED,
                              ASY_KIND_MEETING_ATTENDED,
                              ASY_KIND_ACTIVITY_LOGGED,
                              ASY_KIND_OUTCOME_RECORDED,
                              ASY_KIND_FEEDBACK_RECEIVED,
                              ASY_KIND_UNMET_NEED_RECORDED,
                              ASY_KIND_REFERRAL_OUT_SENT,
                              ASY_KIND_CASE_CLOSED};
    for (size_t i = 0; i < sizeof main_kinds / sizeof main_kinds[0]; i++)
        cr_assert_gt(scan.kinds[main_kinds[i]], 0, "no %s event", asy_kind_name(main_kinds[i]));

    /* a second run appends after the first: seqs go on, nothing is refused */
    code = s_simulate("out2", "--events", "10", "--seed", "12", NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(s_scan_outbox().count, 5010);
}

Test(simulate, same_seed_same_events_other_seed_other_events)
{
    cr_assert_eq(s_simulate("a.jsonl", "--events", "3000", "--seed", "5", "--json", NULL), 0);
    cr_assert_eq(s_simulate("b.jsonl", "--events", "3000", "--seed", "5", "--json", NULL), 0);
    cr_assert_eq(s_simulate("c.jsonl", "--events", "3000", "--seed", "6", "--json", NULL), 0);
    char *a = s_output("a.jsonl"), *b = s_output("b.jsonl"), *c = s_output("c.jsonl");
    cr_assert_str_eq(a, b, "the same seed gave different events");
    cr_assert_str_neq(a, c, "another seed gave the same events");
    /* a leading zero does not make it octal: "010" is 10 */
    cr_assert_eq(s_simulate("d.jsonl", "--events", "300", "--seed", "010", "--json", NULL), 0);
    cr_assert_eq(s_simulate("e.jsonl", "--events", "300", "--seed", "10", "--json", NULL), 0);
    char *d = s_output("d.jsonl"), *e = s_output("e.jsonl");
    cr_assert_str_eq(d, e, "the seed \"010\" was not read as 10");
    free(d);
    free(e);
    size_t lines = 0;
    for (const char *p = a; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 3000);
    free(a);
    free(b);
    free(c);
    /* --json stores nothing */
    cr_assert_eq(access(s_fixture.config.outbox_path, F_OK), -1);
}

typedef struct {
    char case_ref[96];
    char ethnicity[64];
    bool qualifying;
    char last_time[32];
    int events;
    bool received; /* a referralReceived came */
    bool met;      /* a meetingInitialHeld came */
} s_case_t;

typedef struct {
    s_case_t *cases;
    size_t count;
} s_cases_t;

static s_case_t *s_case_of(s_cases_t *all, const char *ref)
{
    for (size_t i = all->count; i-- > 0;)
        if (strcmp(all->cases[i].case_ref, ref) == 0)
            return &all->cases[i];
    all->cases = realloc(all->cases, (all->count + 1) * sizeof *all->cases);
    s_case_t *c = &all->cases[all->count++];
    memset(c, 0, sizeof *c);
    snprintf(c->case_ref, sizeof c->case_ref, "%s", ref);
    return c;
}

/* Reads JSON lines: per case its recorded ethnicity and whether a qualifying episode began;
   checks time order within each case and the envelope's raw references. */
static s_cases_t s_read_cases(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_fixture.dir, name);
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file);
    s_cases_t all = {0};
    char *line = NULL;
    size_t capacity = 0;
    while (getline(&line, &capacity, file) > 0) {
        json_error_t error;
        json_t *event = json_loads(line, 0, &error);
        cr_assert_not_null(event, "%s: %s", line, error.text);
        const char *ref = json_string_value(json_object_get(event, "caseRef"));
        const char *at = json_string_value(json_object_get(event, "occurredAt"));
        cr_assert(ref && at && json_object_get(event, "personRef"));
        s_case_t *c = s_case_of(&all, ref);
        cr_assert_geq(strcmp(at, c->last_time), 0, "%s goes back in time at %s", ref, at);
        snprintf(c->last_time, sizeof c->last_time, "%s", at);
        c->events++;
        json_t *profile = json_object_get(event, "personProfileRecorded");
        if (profile)
            snprintf(c->ethnicity, sizeof c->ethnicity, "%s",
                     json_string_value(json_object_get(profile, "ons2021Ethnicity")));
        json_t *started = json_object_get(event, "qualifyingStarted");
        if (started) {
            cr_assert_eq(c->events, 1, "%s: qualifying.started is not the first event", ref);
            const char *status = json_string_value(json_object_get(started, "legalStatus"));
            c->qualifying = strcmp(status, "LEGAL_04_S4") != 0 &&
                            strcmp(status, "LEGAL_05_S5_2") != 0 &&
                            strcmp(status, "LEGAL_20_S136") != 0;
        }
        /* a lifecycle's steps come in their order: a decision or a decline follows the
           referral, the plan follows the first meeting */
        if (json_object_get(event, "referralEligibilityDecided") ||
            json_object_get(event, "referralDeclined"))
            cr_assert(c->received, "%s: decided or declined before its referral (%s)", ref, at);
        if (json_object_get(event, "planAgreed"))
            cr_assert(c->met, "%s: plan agreed before the first meeting (%s)", ref, at);
        c->met = c->met || json_object_get(event, "meetingInitialHeld");
        json_t *referral = json_object_get(event, "referralReceived");
        c->received = c->received || referral;
        if (referral &&
            strcmp(json_string_value(json_object_get(referral, "service")), "SERVICE_IMHA") == 0)
            cr_assert(c->qualifying, "%s: IMHA referral without a qualifying episode", ref);
        json_decref(event);
    }
    free(line);
    fclose(file);
    return all;
}

/* The file's population share (%) of the ONS groups whose key starts with prefix, weighted
   by the key `weight` ("community" or "detention") when given. */
static double s_configured(const char *prefix, const char *weight)
{
    char path[512];
    snprintf(path, sizeof path, "%s/deploy/sim/default.cfg", ASY_SOURCE_DIR);
    zconfig_t *root = zconfig_load(path);
    cr_assert_not_null(root);
    zconfig_t *section = zconfig_locate(root, "ethnicity");
    double part = 0, total = 0;
    for (zconfig_t *group = zconfig_child(section); group; group = zconfig_next(group)) {
        double value = atof(zconfig_get(group, "share", "0"));
        if (weight)
            value *= atof(zconfig_get(group, weight, "0"));
        total += value;
        if (strncmp(zconfig_name(group), prefix, strlen(prefix)) == 0)
            part += value;
    }
    zconfig_destroy(&root);
    return part / total;
}

/* The share of the profiles (lines with an ONS category) in a --json file that also give an
   NHS category. */
static double s_nhs_share(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_fixture.dir, name);
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file, "%s", path);
    char line[8192];
    size_t profiles = 0, nhs = 0;
    while (fgets(line, sizeof line, file))
        if (strstr(line, "\"ons2021Ethnicity\"")) {
            profiles++;
            nhs += strstr(line, "\"nhsEthnicCategory\"") != NULL;
        }
    fclose(file);
    cr_assert_gt(profiles, 0);
    return (double)nhs / (double)profiles;
}

Test(simulate, community_shares_follow_the_parameters)
{
    cr_assert_eq(s_simulate("community.jsonl", "--events", "40000", "--seed", "21", "--service",
                            "community", "--json", NULL),
                 0);
    s_cases_t all = s_read_cases("community.jsonl");
    size_t stated = 0, asian = 0, white = 0, unstated = 0;
    for (size_t i = 0; i < all.count; i++) {
        const char *ethnicity = all.cases[i].ethnicity;
        cr_assert(ethnicity[0], "%s has no profile", all.cases[i].case_ref);
        cr_assert_not(all.cases[i].qualifying);
        if (strcmp(ethnicity, "ONS_NOT_STATED") == 0 || strcmp(ethnicity, "ONS_NOT_KNOWN") == 0) {
            unstated++;
            continue;
        }
        stated++;
        asian += strncmp(ethnicity, "ONS_ASIAN", 9) == 0;
        white += strncmp(ethnicity, "ONS_WHITE", 9) == 0;
    }
    cr_assert_gt(all.count, 2000, "only %zu cases", all.count);
    double expected_asian = s_configured("asian", "community");
    double expected_white = s_configured("white", "community");
    double asian_share = (double)asian / (double)stated;
    double white_share = (double)white / (double)stated;
    cr_assert(asian_share > expected_asian - 0.025 && asian_share < expected_asian + 0.025,
              "Asian share %.3f, configured %.3f", asian_share, expected_asian);
    cr_assert(white_share > expected_white - 0.03 && white_share < expected_white + 0.03,
              "White share %.3f, configured %.3f", white_share, expected_white);
    /* 6% not stated or not known by default */
    double unstated_share = (double)unstated / (double)all.count;
    cr_assert(unstated_share > 0.04 && unstated_share < 0.08, "not stated %.3f", unstated_share);
    /* 30% of the stated profiles give the ONS category alone: 0.94 x 0.7 + 0.06 give an NHS one */
    double nhs = s_nhs_share("community.jsonl");
    cr_assert(nhs > 0.68 && nhs < 0.76, "NHS category in %.3f of the profiles", nhs);
    free(all.cases);
}

Test(simulate, black_patients_qualify_far_more_often_per_head)
{
    cr_assert_eq(s_simulate("imha.jsonl", "--events", "40000", "--seed", "31", "--service", "imha",
                            "--json", NULL),
                 0);
    cr_assert_eq(s_nhs_share("imha.jsonl"), 1.0, "a hospital records the NHS category");
    s_cases_t all = s_read_cases("imha.jsonl");
    double black = 0, white = 0, asian = 0;
    for (size_t i = 0; i < all.count; i++) {
        if (!all.cases[i].qualifying)
            continue;
        const char *ethnicity = all.cases[i].ethnicity;
        black += strncmp(ethnicity, "ONS_BLACK", 9) == 0;
        white += strncmp(ethnicity, "ONS_WHITE", 9) == 0;
        asian += strncmp(ethnicity, "ONS_ASIAN", 9) == 0;
    }
    double black_rate = black / s_configured("black", NULL);
    double white_rate = white / s_configured("white", NULL);
    double asian_rate = asian / s_configured("asian", NULL);
    cr_assert_gt(black, 50);
    /* configured: about 290 vs 63 per 100,000 (4.6x); allow for sampling */
    cr_assert_gt(black_rate / white_rate, 3.0, "Black/White qualifying rate ratio %.2f",
                 black_rate / white_rate);
    cr_assert_lt(black_rate / white_rate, 7.0, "Black/White ratio %.2f", black_rate / white_rate);
    cr_assert_gt(asian_rate, white_rate * 0.9, "Asian %.0f vs White %.0f", asian_rate, white_rate);
    free(all.cases);
}

Test(simulate, no_raw_reference_reaches_the_outbox)
{
    char error[512];
    /* a handle open during the run keeps the WAL file in place to be read too */
    cr_assert_eq(s_simulate("out", "--events", "1", "--seed", "3", NULL), 0);
    asy_outbox_t *holder =
        asy_outbox_open(s_fixture.config.outbox_path, "ward-a", "site-a", error, sizeof error);
    cr_assert_not_null(holder, "%s", error);
    cr_assert_eq(s_simulate("out", "--events", "2000", "--seed", "4", NULL), 0);
    const char *raw[] = {"SIM-site-a", "P-site-a-"};
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_gt(asy_fixture_assert_absent(&s_fixture, "outbox", raw, 2), 0);
        asy_outbox_destroy(&holder);
    }
}

Test(simulate, paced_run_takes_about_events_over_rate)
{
    struct timespec begin, end;
    clock_gettime(CLOCK_MONOTONIC, &begin);
    int code = s_simulate("out", "--events", "300", "--rate", "500", "--seed", "8", NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds =
        (double)(end.tv_sec - begin.tv_sec) + (double)(end.tv_nsec - begin.tv_nsec) / 1e9;
    cr_assert_eq(code, 0);
    cr_assert_eq(s_scan_outbox().count, 300);
    cr_assert(seconds > 0.5 && seconds < 5.0, "300 events at 500/s took %.2f s", seconds);
}

Test(simulate, sigterm_commits_and_exits_zero)
{
    fflush(stdout);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        char *argv[] = {"simulate", "--rate", "400", "--seed", "9", NULL};
        _exit(asy_cmd_simulate(&s_fixture.config, 5, argv));
    }
    usleep(800 * 1000);
    cr_assert_eq(kill(child, SIGTERM), 0);
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    s_scan_t scan = s_scan_outbox();
    /* at least one commit; a loaded machine may start the child late, so no tighter floor */
    cr_assert(scan.count > 0 && scan.count < 2000, "%llu events after 0.8 s at 400/s",
              (unsigned long long)scan.count);
}

/* Every "occurredAt" in the JSON lines EVENTS is at or after START (RFC 3339, UTC, so that
   text order is time order). */
static void s_assert_none_before(const char *events, const char *start)
{
    static const char key[] = "\"occurredAt\":\"";
    int seen = 0;
    for (const char *at = strstr(events, key); at; at = strstr(at + 1, key), seen++)
        cr_assert_geq(strncmp(at + sizeof key - 1, start, strlen(start)), 0,
                      "an event before %s: %.60s", start, at);
    cr_assert_gt(seen, 0);
}

Test(simulate, usage_and_parameter_errors)
{
    cr_assert_eq(s_simulate("out", "--seed", "1", NULL), 2);
    cr_assert_eq(s_simulate("out", "--events", "10", "--service", "ward", NULL), 2);
    cr_assert_eq(s_simulate("out", "--events", "0", NULL), 2);
    cr_assert_eq(s_simulate("out", "--events", "10", "--start", "2026-02-30", NULL), 2);
    cr_assert_eq(s_simulate("out", "--events", "10", "--bogus", "1", NULL), 2);
    /* an unknown option is called unknown even last (it was "--bogus needs a value"), and
       --opt=VALUE is taken as by the other subcommands (it was "--events=5 needs a value") */
    cr_assert_eq(s_simulate("bogus", "--events", "10", "--bogus", NULL), 2);
    char *bogus = s_output("bogus.err");
    cr_assert(strstr(bogus, "unknown option --bogus"), "%s", bogus);
    free(bogus);
    cr_assert_eq(s_simulate("dangling", "--events", NULL), 2);
    char *dangling = s_output("dangling.err");
    cr_assert(strstr(dangling, "--events needs a value"), "%s", dangling);
    free(dangling);
    cr_assert_eq(s_simulate("equals.jsonl", "--events=3", "--seed=7", "--json", NULL), 0);
    char *equals = s_output("equals.jsonl");
    int lines = 0;
    for (const char *c = equals; *c; c++)
        lines += *c == '\n';
    cr_assert_eq(lines, 3, "%s", equals);
    free(equals);
    cr_assert_eq(s_simulate("out", "--events=0", NULL), 2);
    /* a seed is decimal, as the other numbers are: not hexadecimal, no trailing junk */
    cr_assert_eq(s_simulate("out", "--events", "10", "--seed", "0x10", NULL), 2);
    cr_assert_eq(s_simulate("out", "--events", "10", "--seed", "12abc", NULL), 2);
    cr_assert_eq(s_simulate("out", "--help", NULL), 0);
    cr_assert_eq(s_simulate("out", "--events", "10", "--start", "2026-02-01T24:00", NULL), 2);
    cr_assert_eq(s_simulate("out", "--events", "10", "--start", "2026-02-01T9:00", NULL), 2);

    /* a window with no office hours in it (yesterday 23:59 to today 00:00) gives the
       community service nothing to emit: said at once, not sought forever with ever more
       arrivals that are made and dropped */
    /* the runs below end their history at today 00:00 UTC, read again by each: not across a
       midnight */
    if (86400 - time(NULL) % 86400 < 30)
        sleep(31);
    time_t yesterday = time(NULL) - 86400;
    struct tm tm;
    gmtime_r(&yesterday, &tm);
    char start[32];
    strftime(start, sizeof start, "%Y-%m-%dT23:59", &tm);
    cr_assert_eq(s_simulate("empty", "--rate", "5", "--service", "community", "--start", start,
                            "--seed", "7", "--json", NULL),
                 1);
    char *said = s_output("empty.err");
    cr_assert(strstr(said, "no event of this service falls between"), "%s", said);
    free(said);
    /* a time of day is taken: the history begins then */
    strftime(start, sizeof start, "%Y-%m-%dT22:00Z", &tm);
    cr_assert_eq(s_simulate("late.jsonl", "--events", "20", "--service", "imha", "--start", start,
                            "--seed", "7", "--json", NULL),
                 0);
    char *events = s_output("late.jsonl");
    char day[16];
    strftime(day, sizeof day, "%Y-%m-%dT2", &tm);
    cr_assert(strstr(events, day), "events from 22:00 on: %.200s", events);
    strftime(start, sizeof start, "%Y-%m-%dT22:00:00Z", &tm);
    s_assert_none_before(events, start);
    free(events);
    /* nor does a community referral whose office hours began before the start: from noon
       on a Wednesday a week or more ago */
    gmtime_r(&yesterday, &tm);
    time_t wednesday = yesterday - (time_t)(7 + (tm.tm_wday + 7 - 3) % 7) * 86400;
    gmtime_r(&wednesday, &tm);
    cr_assert_eq(tm.tm_wday, 3);
    strftime(start, sizeof start, "%Y-%m-%dT12:00Z", &tm);
    cr_assert_eq(s_simulate("noon.jsonl", "--events", "5", "--service", "community", "--start",
                            start, "--seed", "7", "--json", NULL),
                 0);
    events = s_output("noon.jsonl");
    strftime(start, sizeof start, "%Y-%m-%dT12:00:00Z", &tm);
    s_assert_none_before(events, start);
    free(events);

    /* a parameters file without one figure: the message names the key */
    char source[512], broken[512];
    snprintf(source, sizeof source, "%s/deploy/sim/default.cfg", ASY_SOURCE_DIR);
    snprintf(broken, sizeof broken, "%s/broken.cfg", s_fixture.dir);
    char *text = asy_fixture_slurp(source, NULL);
    char *line = strstr(text, "    uptake_baseline");
    cr_assert_not_null(line);
    line[4] = 'X';
    FILE *file = fopen(broken, "w");
    fputs(text, file);
    fclose(file);
    free(text);
    cr_assert_eq(s_simulate("out", "--events", "10", "--params", broken, NULL), 2);
    char *err = s_output("out.err");
    cr_assert(strstr(err, "imha/uptake_baseline: missing"), "%s", err);
    free(err);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/none.cfg", s_fixture.dir);
    cr_assert_eq(s_simulate("out", "--events", "10", "--params", missing, NULL), 2);
    cr_assert_eq(access(s_fixture.config.outbox_path, F_OK), -1,
                 "an outbox was made for bad input");
}

Test(simulate, default_parameters_are_found)
{
    char path[4096];
    cr_assert_eq(asy_simulate_default_params(path, sizeof path), 0, "%s", path);
    cr_assert(strstr(path, "sim/default.cfg"), "%s", path);
}
