/*  simulate.c: `advsync-agent simulate`: synthetic person and case lifecycles for one site,
    with the published disparities, submitted through the ordinary submission path.

    Every figure comes from the parameters file (deploy/sim/default.cfg); the code knows only
    the shape of a lifecycle and the classifications (ONS -> NHS ethnic category, which legal
    statuses qualify, which closure reasons mean "left before goals").

    Cases arrive as a Poisson process between --start and today; each arrival builds its whole
    lifecycle at once (a short array of steps), and a min-heap on (time, serial) interleaves
    the open cases' next steps in time order. The arrival rate is scaled so that the requested
    number of events fits before today: a pilot run measures events per unit of rate.  */
#include "calendar.h"
#include "log.h"
#include "simulate_private.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_COMMIT_EVENTS 1000
#define S_COMMIT_US 100000
#define S_MIN_SLEEP_US 10000 /* shortest pause of a paced run: bounds commits per second */
#define S_MAX_REJECTED 1000
#define S_PILOT_ARRIVALS 4000

/* ----------------------------------------------------------------------------------------------
   The interleaving: a min-heap of (time, serial). */

static bool s_heap_less(const asy_sim_entry_t *a, const asy_sim_entry_t *b)
{
    return a->t < b->t || (a->t == b->t && a->serial < b->serial);
}

static int s_heap_push(asy_sim_t *sim, int64_t t, asy_sim_case_t *c)
{
    if (sim->heap_count == sim->heap_capacity) {
        size_t capacity = sim->heap_capacity ? sim->heap_capacity * 2 : 1024;
        asy_sim_entry_t *heap = realloc(sim->heap, capacity * sizeof *heap);
        if (!heap)
            return ASY_ENOMEM;
        sim->heap = heap;
        sim->heap_capacity = capacity;
    }
    size_t i = sim->heap_count++;
    sim->heap[i] = (asy_sim_entry_t){t, sim->serial++, c};
    while (i > 0 && s_heap_less(&sim->heap[i], &sim->heap[(i - 1) / 2])) {
        asy_sim_entry_t swap = sim->heap[i];
        sim->heap[i] = sim->heap[(i - 1) / 2];
        sim->heap[(i - 1) / 2] = swap;
        i = (i - 1) / 2;
    }
    return 0;
}

static asy_sim_entry_t s_heap_pop(asy_sim_t *sim)
{
    asy_sim_entry_t top = sim->heap[0];
    sim->heap[0] = sim->heap[--sim->heap_count];
    for (size_t i = 0;;) {
        size_t least = i, left = 2 * i + 1, right = 2 * i + 2;
        if (left < sim->heap_count && s_heap_less(&sim->heap[left], &sim->heap[least]))
            least = left;
        if (right < sim->heap_count && s_heap_less(&sim->heap[right], &sim->heap[least]))
            least = right;
        if (least == i)
            break;
        asy_sim_entry_t swap = sim->heap[i];
        sim->heap[i] = sim->heap[least];
        sim->heap[least] = swap;
        i = least;
    }
    return top;
}

static void s_heap_clear(asy_sim_t *sim)
{
    while (sim->heap_count > 0) {
        asy_sim_entry_t entry = s_heap_pop(sim);
        asy_sim_case_destroy(&entry.c);
    }
}

static int64_t s_next_arrival(asy_sim_t *sim, int64_t t)
{
    double days = -log(1.0 - asy_sim_uniform(&sim->rng)) / sim->per_day;
    double seconds = days * ASY_SIM_DAY;
    return seconds > 1e12 ? INT64_MAX / 2 : t + 1 + (int64_t)seconds;
}

/* Events that one arrival a day between start and horizon produces before horizon, measured
   on a pilot with its own random stream; 0 if the pilot's arrivals produce none (a window of
   a weekend or a night, for the community service, whose referrals come in office hours). */
static double s_events_per_rate(asy_sim_t *sim)
{
    asy_sim_rng_t saved = sim->rng;
    uint64_t cases = sim->cases;
    sim->rng.state = sim->seed ^ 0x6a09e667f3bcc909ULL;
    double span_days = (double)(sim->horizon - sim->start) / ASY_SIM_DAY;
    uint64_t events = 0;
    for (int i = 0; i < S_PILOT_ARRIVALS; i++) {
        int64_t t0 = sim->start +
                     (int64_t)(asy_sim_uniform(&sim->rng) * (double)(sim->horizon - sim->start));
        asy_sim_case_t *c = asy_sim_case_new(sim, t0);
        for (size_t j = 0; c && j < c->count; j++)
            events += c->steps[j].t < sim->horizon;
        asy_sim_case_destroy(&c);
    }
    sim->rng = saved;
    sim->cases = cases;
    double per_day = S_PILOT_ARRIVALS / span_days;
    return (double)events / per_day; /* 0: nothing of this service falls in the window */
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

/* With --rate, waits until the next event is due, committing before any wait and at least
   every 100 ms.
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
        /* Never sleep inside a transaction: the outbox's write lock would be held almost all
           the time, and `run` (recording acknowledgements) or `status` would starve. Commit,
           then sleep at least S_MIN_SLEEP_US, so at high rates the events due meanwhile go in
           one transaction (at most ~100 commits/s). */
        if (sink->pending > 0) {
            int rc = s_flush(sink);
            if (rc != 0)
                return rc;
        }
        int64_t wait = due - now;
        if (wait < S_MIN_SLEEP_US)
            wait = S_MIN_SLEEP_US;
        if (wait > S_COMMIT_US)
            wait = S_COMMIT_US;
        struct timespec pause = {(time_t)(wait / 1000000), (long)(wait % 1000000) * 1000};
        nanosleep(&pause, NULL); /* a signal cuts it short: the loop looks at the flag */
    }
}

static int s_emit(const asy_sim_t *sim, const s_options_t *options, s_sink_t *sink,
                  const asy_sim_case_t *c, const asy_sim_step_t *step)
{
    int rc = s_pace(options, sink);
    if (rc == 0)
        rc = s_begin(sink);
    if (rc != 0)
        return rc;
    json_t *event = asy_sim_event_json(sim, c, step);
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
    /* the earliest and the latest time stored: events of many cases interleave, so the
       last one stored is not the latest */
    if (sink->emitted++ == 0 || step->t < sink->first_t)
        sink->first_t = step->t;
    if (sink->emitted == 1 || step->t > sink->last_t)
        sink->last_t = step->t;
    if (++sink->pending >= S_COMMIT_EVENTS ||
        (options->rate > 0 && s_monotonic_us() - sink->last_commit_us >= S_COMMIT_US))
        return s_flush(sink);
    return 0;
}

/* One pass: cases arrive between start and horizon; steps after horizon are never emitted.
   Returns 0 when the pass runs out, the count is reached or a stop is requested. */
static int s_pass(asy_sim_t *sim, const s_options_t *options, s_sink_t *sink)
{
    int rc = s_heap_push(sim, s_next_arrival(sim, sim->start), NULL);
    while (rc == 0 && sim->heap_count > 0) {
        if (s_stop_requested || (options->events && sink->emitted >= options->events))
            break;
        asy_sim_entry_t entry = s_heap_pop(sim);
        asy_sim_case_t *c = entry.c;
        if (!c) {
            if (entry.t >= sim->horizon)
                continue;
            c = asy_sim_case_new(sim, entry.t);
            rc = c ? s_heap_push(sim, c->steps[0].t, c) : ASY_ENOMEM;
            if (rc != 0)
                asy_sim_case_destroy(&c);
            else
                rc = s_heap_push(sim, s_next_arrival(sim, entry.t), NULL);
            continue;
        }
        const asy_sim_step_t *step = &c->steps[c->next];
        if (step->t >= sim->horizon) {
            asy_sim_case_destroy(&c);
            continue;
        }
        rc = s_emit(sim, options, sink, c, step);
        if (rc == ASY_ERETRY) {
            asy_sim_case_destroy(&c);
            return 0;
        }
        if (rc == 0 && ++c->next < c->count)
            rc = s_heap_push(sim, c->steps[c->next].t, c);
        else
            asy_sim_case_destroy(&c);
        if (rc != 0)
            asy_sim_case_destroy(&c);
    }
    return rc;
}

static int64_t s_today(void)
{
    int64_t now = (int64_t)time(NULL);
    return now - now % ASY_SIM_DAY;
}

/* Runs passes until the count is reached (or forever without one, until a signal). */
static int s_run(asy_sim_t *sim, const s_options_t *options, s_sink_t *sink)
{
    /* without --events, plan for an hour of events per pass */
    uint64_t per_pass =
        options->events ? options->events : (uint64_t)(options->rate * 3600.0) + 1000;
    double boost = 1.0;
    sink->begin_us = sink->last_commit_us = s_monotonic_us();
    while (!s_stop_requested && (!options->events || sink->emitted < options->events)) {
        sim->horizon = s_today();
        uint64_t wanted = options->events ? options->events - sink->emitted : per_pass;
        double events_per_rate = s_events_per_rate(sim);
        if (events_per_rate <= 0) {
            /* more arrivals would not help: they would only be made and dropped, forever */
            char start[32];
            asy_sim_format_time(sim->start, start);
            asy_error("simulate: no event of this service falls between %s and today 00:00 UTC "
                      "(community referrals come on working days, 09:00-17:00): give an earlier "
                      "--start",
                      start);
            return ASY_EINVAL;
        }
        sim->per_day = boost * 1.05 * (double)wanted / events_per_rate;
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
            "           [--params FILE] [--service imha|community|both]\n"
            "           [--start YYYY-MM-DD[THH:MM]] [--json]\n"
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
            "  --start DATE    where the simulated history begins: a day (00:00 UTC) or a time\n"
            "                  YYYY-MM-DDTHH:MM (UTC), from 2000 on (default 120 days ago); the\n"
            "                  history ends at today 00:00 UTC, so DATE is before today\n"
            "  --json          print the events as JSON lines (raw caseRef/personRef, as `submit`\n"
            "                  reads them) instead of storing them\n"
            "\n"
            "Exit status: 0 done, 1 failure, 2 usage or parameters error, 3 some generated\n"
            "events were refused (a bug: see the messages).\n");
}

/* "YYYY-MM-DD" (00:00 UTC) or "YYYY-MM-DDTHH:MM" (UTC; a trailing Z allowed), so that a
   live demo can begin its history in office hours, when referrals come. */
static bool s_parse_date(const char *text, int64_t *out)
{
    int year, month, day, hour = 0, minute = 0, used = 0;
    if (sscanf(text, "%4d-%2d-%2d%n", &year, &month, &day, &used) != 3)
        return false;
    const char *rest = text + used;
    if (*rest == 'T') {
        int more = 0;
        if (sscanf(rest, "T%2d:%2d%n", &hour, &minute, &more) != 2 || more != 6)
            return false;
        rest += more;
        if (*rest == 'Z')
            rest++;
    }
    if (*rest || month < 1 || month > 12 || day < 1 || day > asy_days_in_month(year, month) ||
        hour > 23 || minute > 59 || hour < 0 || minute < 0)
        return false;
    *out = (int64_t)asy_date_from_civil(year, month, day) * ASY_SIM_DAY + hour * 3600 + minute * 60;
    return true;
}

/* Reads one option's value into options (value NULL: none was given). Returns 0, or 2 after
   printing the problem (an unknown option, a missing or bad value). */
static int s_option_value(s_options_t *options, const char *arg, const char *value)
{
    const char *given = value;
    value = value ? value : ""; /* parsed all the same: the option is known by its branch */
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
        options->seed = strtoull(value, &end, 10);
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
        fprintf(stderr, "advsync-agent simulate: unknown option %s (try --help)\n", arg);
        return 2;
    }
    if (!given) {
        fprintf(stderr, "advsync-agent simulate: %s needs a value\n", arg);
        return 2;
    }
    if (!ok) {
        fprintf(stderr, "advsync-agent simulate: %s: bad value \"%s\"\n", arg, value);
        return 2;
    }
    return 0;
}

/* Returns 0, or 2 after printing the problem (1 means --help was asked). Options take their
   value as `--opt VALUE` or `--opt=VALUE`, as the agent's other subcommands do. */
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
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "advsync-agent simulate: %s is not an option\n", arg);
            return 2;
        }
        const char *equals = strchr(arg, '=');
        char name[64];
        snprintf(name, sizeof name, "%.*s", equals ? (int)(equals - arg) : (int)strlen(arg), arg);
        const char *value = equals ? equals + 1 : i + 1 < argc ? argv[i + 1] : NULL;
        int status = s_option_value(options, name, value);
        i += !equals && value; /* the next word was its value */
        if (status != 0)
            return status;
    }
    if (!options->events && options->rate <= 0) {
        fprintf(stderr, "advsync-agent simulate: give --events N, --rate EPS, or both\n");
        return 2;
    }
    int64_t today = s_today();
    if (!options->start)
        options->start = today - 120 * (int64_t)ASY_SIM_DAY;
    if (options->start >= today) {
        fprintf(stderr, "advsync-agent simulate: --start must be before today\n");
        return 2;
    }
    return 0;
}

static void s_prepare_weights(asy_sim_t *sim)
{
    for (size_t i = 0; i < ASY_SIM_ETHNIC_COUNT; i++) {
        const asy_sim_group_t *group = &sim->p->group[i];
        sim->imha_weight[i] = group->share * group->detention;
        sim->community_weight[i] = group->share * group->community;
        sim->imha_total += sim->imha_weight[i];
        sim->community_total += sim->community_weight[i];
    }
}

/* Finds the parameters file (--params, else the default) and loads it into *params_p (caller
   frees), its name into path. Returns 0, or the exit status after printing the problem. */
static int s_load_params(const s_options_t *options, char *path, size_t path_size,
                         asy_sim_params_t **params_p)
{
    char error[1024];
    if (options->params)
        snprintf(path, path_size, "%s", options->params);
    else if (asy_simulate_default_params(path, path_size) != 0) {
        fprintf(stderr,
                "advsync-agent simulate: no parameters file (tried %s and others); "
                "pass --params FILE\n",
                path);
        return 2;
    }
    asy_sim_params_t *params = calloc(1, sizeof *params);
    if (!params)
        return 1;
    if (asy_sim_params_load(path, params, error, sizeof error) != 0) {
        fprintf(stderr, "advsync-agent simulate: %s\n", error);
        free(params);
        return 2;
    }
    *params_p = params;
    return 0;
}

/* s_run with SIGTERM and SIGINT turned into a stop request (the old handlers are put back). */
static int s_run_until_signal(asy_sim_t *sim, const s_options_t *options, s_sink_t *sink)
{
    struct sigaction action = {.sa_handler = s_on_signal}, old_term, old_int;
    sigemptyset(&action.sa_mask);
    s_stop_requested = 0;
    sigaction(SIGTERM, &action, &old_term);
    sigaction(SIGINT, &action, &old_int);
    int rc = s_run(sim, options, sink);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    return rc;
}

/* The closing summary: a log line with --json (stdout holds the events), else on stdout. */
static void s_report(const s_options_t *options, const asy_sim_t *sim, const s_sink_t *sink,
                     uint64_t rejected)
{
    char first[32] = "-", last[32] = "-";
    if (sink->emitted) {
        asy_sim_format_time(sink->first_t, first);
        asy_sim_format_time(sink->last_t, last);
    }
    if (options->json)
        asy_info("simulate: printed %llu events of %llu cases, %s to %s",
                 (unsigned long long)sink->emitted, (unsigned long long)sim->cases, first, last);
    else
        printf("stored %llu events of %llu cases, %s to %s; rejected %llu%s\n",
               (unsigned long long)sink->emitted, (unsigned long long)sim->cases, first, last,
               (unsigned long long)rejected, s_stop_requested ? " (stopped)" : "");
}

int asy_cmd_simulate(const asy_agent_config_t *config, int argc, char **argv)
{
    s_options_t options;
    int parsed = s_parse(argc, argv, &options);
    if (parsed != 0) {
        s_usage(parsed == 1 ? stdout : stderr);
        return parsed == 1 ? 0 : 2;
    }
    char path[4096];
    asy_sim_params_t *params = NULL;
    int status = s_load_params(&options, path, sizeof path, &params);
    if (status != 0)
        return status;
    asy_sim_t sim = {.p = params,
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

    int rc = s_run_until_signal(&sim, &options, &sink);
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
    s_report(&options, &sim, &sink, submitter.rejected);
    if (rc != 0)
        return 1;
    return submitter.rejected ? 3 : 0;
}
