/*  main.c: advsync-watch, the live view of the monitor stream (proto/PROTOCOL.md part II).  */
#include "calendar.h"
#include "codec.h"
#include "log.h"
#include "replica.h"
#include "view.h"

#include <ctype.h>
#include <czmq.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_EXIT_OK 0
#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 2
#define S_SNAPSHOT_TIMEOUT_MS 5000
#define S_INTERVAL_MIN_MS 50 /* a faster redraw only burns CPU: figures coalesce per 100 ms */
#define S_INTERVAL_MAX_MS 3600000
#define S_RESYNC_MS 1000 /* the least a re-snapshot inside asy_replica_poll may take */

typedef struct {
    const char *publisher;
    const char *snapshot;
    bool restricted;
    const char *site;
    const char *period;
    const char *metric;
    const char *by;
    bool json;
    bool once;
    double for_seconds; /* 0: until interrupted */
    long interval_ms;
    char subtree[ASY_TOPIC_MAX];
    char derived_snapshot[300]; /* --endpoint's port + 1, when --snapshot is not given */
} s_args_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int signal_number)
{
    (void)signal_number;
    s_stop = 1;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-watch [options]\n"
            "  --endpoint PUB      monitor publisher (default tcp://127.0.0.1:5571,\n"
            "                      restricted tcp://127.0.0.1:5573)\n"
            "  --snapshot SNAP     snapshot service (default: the port after --endpoint's;\n"
            "                      tcp://127.0.0.1:5572, restricted tcp://127.0.0.1:5574)\n"
            "  --restricted        use the restricted stream's default endpoints; without\n"
            "                      it a snapshot of exact figures is refused (exit 1), with\n"
            "                      it one of public figures\n"
            "  --site ID           one site (topics site/ID/...); 'all' = the consortium\n"
            "  --period P          only period P (2026-11, 2026-27-Q3, 2026-27, now); default:\n"
            "                      the current quarter, month, year to date and now\n"
            "  --metric M          only metric M (M1 .. M13)\n"
            "  --by BREAKDOWN      groups shown under each total (default ethnic_group;\n"
            "                      '' for none; source, source_group, service, ethnicity_ons,\n"
            "                      nhs_ethnic, age_band, sex, gender, disability, religion,\n"
            "                      sexual_orientation, reason)\n"
            "  --json              one JSON line per snapshot entry and live message\n"
            "  --once              print the snapshot and exit\n"
            "  --for SECONDS       run this long in all (snapshot wait included), then exit 0\n"
            "  --interval MS       redraw at most every MS milliseconds (default 500,\n"
            "                      50 .. 3600000)\n"
            "  --help              this text\n"
            "  --version           print the version\n");
}

static int s_bad(const char *format, ...) __attribute__((format(printf, 1, 2)));

static int s_bad(const char *format, ...)
{
    va_list values;
    va_start(values, format);
    fprintf(stderr, "advsync-watch: ");
    vfprintf(stderr, format, values);
    fprintf(stderr, "\n");
    va_end(values);
    s_usage(stderr);
    return S_EXIT_USAGE;
}

static bool s_valid_id(const char *text)
{
    size_t length = strlen(text);
    if (length == 0 || length > ASY_ID_MAX)
        return false;
    return strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
           length;
}

/* The breakdowns of PROTOCOL.md 12.3 ("total" is always shown, as the row itself). The
   monitor's list is server/aggregate.c asy_dims, which this program does not link. */
static const char *const s_breakdowns[] = {
    "source", "source_group", "service",    "ethnicity_ons",      "ethnic_group", "nhs_ethnic",
    "age_band", "sex",        "gender",     "disability",         "sexual_orientation",
    "religion", "reason",
};

static bool s_valid_breakdown(const char *by)
{
    if (!by[0])
        return true;
    for (size_t i = 0; i < sizeof s_breakdowns / sizeof s_breakdowns[0]; i++)
        if (strcmp(by, s_breakdowns[i]) == 0)
            return true;
    return false;
}

static bool s_digits(const char *text, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (text[i] < '0' || text[i] > '9')
            return false;
    return true;
}

/* A period of PROTOCOL.md 10: "now", a month "2026-11", a financial year "2026-27" or a
   financial quarter "2026-27-Q3" (the second year is the first + 1, in two digits). */
static bool s_valid_period(const char *text)
{
    size_t length = strlen(text);
    if (strcmp(text, "now") == 0)
        return true;
    if ((length != 7 && length != 10) || !s_digits(text, 4) || text[4] != '-' ||
        !s_digits(text + 5, 2))
        return false;
    int year = atoi(text), second = (text[5] - '0') * 10 + (text[6] - '0');
    bool financial = second == (year + 1) % 100;
    if (length == 7)
        return (second >= 1 && second <= 12) || financial;
    return financial && text[7] == '-' && text[8] == 'Q' && text[9] >= '1' && text[9] <= '4';
}

static int s_check_args(s_args_t *args)
{
    if (args->site && !s_valid_id(args->site))
        return s_bad("--site: '%s' is not a site id ([A-Za-z0-9._-]{1,64})", args->site);
    if (args->metric &&
        (asy_view_metric_number(args->metric) < 1 || asy_view_metric_number(args->metric) > 13))
        return s_bad("--metric: '%s' is not a metric (M1 .. M13)", args->metric);
    if (args->period && !s_valid_period(args->period))
        return s_bad("--period: '%s' is not a period (a month 2026-11, a financial quarter "
                     "2026-27-Q3, a financial year 2026-27, or now)",
                     args->period);
    if (!s_valid_breakdown(args->by))
        return s_bad("--by: '%s' is not a breakdown (PROTOCOL.md 12.3: service, age_band, "
                     "ethnicity_ons, ...; '' for none)",
                     args->by);
    char why[128];
    if (args->publisher && !asy_endpoint_check(args->publisher, false, why, sizeof why))
        return s_bad("--endpoint: '%s' is not an endpoint: it %s", args->publisher, why);
    if (args->snapshot && !asy_endpoint_check(args->snapshot, false, why, sizeof why))
        return s_bad("--snapshot: '%s' is not an endpoint: it %s", args->snapshot, why);
    if (args->publisher && !args->snapshot) {
        /* the broker binds each snapshot service on the port after its publisher (defaults
           5571/5572 and 5573/5574, the demo the same): another broker's default would be
           the wrong one */
        const char *colon = strrchr(args->publisher, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (strncmp(args->publisher, "tcp://", 6) != 0 || !end || *end || port < 1 || port >= 65535)
            return s_bad("--endpoint: '%s' needs --snapshot beside it (without one, the "
                         "snapshot service is taken to be on the next port of a tcp:// "
                         "endpoint)",
                         args->publisher);
        snprintf(args->derived_snapshot, sizeof args->derived_snapshot, "%.*s:%ld",
                 (int)(colon - args->publisher), args->publisher, port + 1);
        args->snapshot = args->derived_snapshot;
    }
    if (!args->publisher)
        args->publisher = args->restricted ? "tcp://127.0.0.1:5573" : "tcp://127.0.0.1:5571";
    if (!args->snapshot)
        args->snapshot = args->restricted ? "tcp://127.0.0.1:5574" : "tcp://127.0.0.1:5572";
    bool everything = !args->site || strcmp(args->site, "all") == 0;
    int length =
        snprintf(args->subtree, sizeof args->subtree, everything ? "all/" : "site/%s/", args->site);
    /* the period is filtered here: "all/M1/2026-27" would also match "all/M1/2026-27-Q3" */
    if (args->metric)
        snprintf(args->subtree + length, sizeof args->subtree - (size_t)length, "%s/",
                 args->metric);
    return S_EXIT_OK;
}

/* A decimal number as people write one (digits, at most one '.'): not strtod's hexadecimal,
   exponents, signs or leading blanks ("0x10" was 16 s, "1e3" 1000 s). */
static int s_parse_number(const char *text, double low, double high, double *out)
{
    size_t digits = strspn(text, "0123456789."), points = 0;
    for (const char *c = text; *c; c++)
        points += *c == '.';
    if (!isdigit((unsigned char)text[0]) || text[digits] != '\0' || points > 1)
        return ASY_EINVAL;
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value >= low && value <= high))
        return ASY_EINVAL;
    *out = value;
    return 0;
}

/* The long options of s_parse. */
enum {
    O_ENDPOINT = 1,
    O_SNAPSHOT,
    O_RESTRICTED,
    O_SITE,
    O_PERIOD,
    O_METRIC,
    O_BY,
    O_JSON,
    O_ONCE,
    O_FOR,
    O_INTERVAL,
    O_HELP,
    O_VERSION
};

static const struct option s_options[] = {
    {"endpoint", required_argument, NULL, O_ENDPOINT},
    {"snapshot", required_argument, NULL, O_SNAPSHOT},
    {"restricted", no_argument, NULL, O_RESTRICTED},
    {"site", required_argument, NULL, O_SITE},
    {"period", required_argument, NULL, O_PERIOD},
    {"metric", required_argument, NULL, O_METRIC},
    {"by", required_argument, NULL, O_BY},
    {"json", no_argument, NULL, O_JSON},
    {"once", no_argument, NULL, O_ONCE},
    {"for", required_argument, NULL, O_FOR},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {NULL, 0, NULL, 0},
};

/* An option taken as given (s_check_args checks the values later) or a flag. Returns false
   for any other option. */
static bool s_set_plain(s_args_t *args, int option)
{
    switch (option) {
    case O_ENDPOINT:
        args->publisher = optarg;
        return true;
    case O_SNAPSHOT:
        args->snapshot = optarg;
        return true;
    case O_RESTRICTED:
        args->restricted = true;
        return true;
    case O_SITE:
        args->site = optarg;
        return true;
    case O_PERIOD:
        args->period = optarg;
        return true;
    case O_METRIC:
        args->metric = optarg;
        return true;
    case O_BY:
        args->by = optarg;
        return true;
    case O_JSON:
        args->json = true;
        return true;
    case O_ONCE:
        args->once = true;
        return true;
    default:
        return false;
    }
}

/* An option checked as it is read (a number), --help, --version, or a bad one. Returns -1 to
   go on, else the exit code. */
static int s_set_checked(s_args_t *args, int option, char **argv)
{
    double number;
    switch (option) {
    case O_FOR:
        if (s_parse_number(optarg, 0.001, 1e9, &number) != 0)
            return s_bad("--for: '%s' is not a number of seconds from 0.001 to 1000000000 (as "
                         "90 or 2.5)",
                         optarg);
        args->for_seconds = number;
        break;
    case O_INTERVAL:
        if (s_parse_number(optarg, S_INTERVAL_MIN_MS, S_INTERVAL_MAX_MS, &number) != 0 ||
            number != (double)(long)number)
            return s_bad("--interval: '%s' is not a whole number of milliseconds from %d "
                         "to %d",
                         optarg, S_INTERVAL_MIN_MS, S_INTERVAL_MAX_MS);
        args->interval_ms = (long)number;
        break;
    case 'h':
    case O_HELP:
        s_usage(stdout);
        return S_EXIT_OK;
    case O_VERSION:
        printf("advsync-watch %s (monitor protocol %d)\n", ASY_VERSION_STRING, ASY_MONITOR_VERSION);
        return S_EXIT_OK;
    default:
        return s_bad("unknown option or missing value: %s", argv[optind - 1]);
    }
    return -1;
}

/* Returns -1 to go on, else the exit code. */
static int s_parse(int argc, char **argv, s_args_t *args)
{
    memset(args, 0, sizeof *args);
    args->by = "ethnic_group";
    args->interval_ms = 500;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, "h", s_options, NULL)) != -1) {
        if (s_set_plain(args, option))
            continue;
        int rc = s_set_checked(args, option, argv);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc)
        return s_bad("unexpected argument '%s'", argv[optind]);
    int rc = s_check_args(args);
    return rc == S_EXIT_OK ? -1 : rc;
}

/* ----------------------------------------------------------------------------------------------
   Output. */

typedef struct {
    const s_args_t *args;
    const char *const *periods;
    size_t period_count;
    asy_view_breaches_t breaches; /* the latest received, newest first */
    bool show_breaches;           /* the table has a "recent breaches" section */
    uint64_t printed;             /* --json: lines written */
} s_output_t;

static bool s_wanted(const s_args_t *args, const asy_mmsg_t *msg)
{
    if (msg->kind != ASY_MMSG_UPDATE)
        return true;
    if (args->metric && strcmp(msg->update.metric, args->metric) != 0)
        return false;
    return !args->period || strcmp(msg->update.period, args->period) == 0;
}

static void s_print_json(const char *topic, const asy_mmsg_t *msg, const uint8_t *data, size_t size,
                         bool from_snapshot, void *arg)
{
    (void)topic;
    (void)from_snapshot;
    s_output_t *output = arg;
    if (!s_wanted(output->args, msg))
        return;
    char *line = asy_mmsg_json(data, size);
    if (!line) {
        asy_warn("a message on '%s' does not convert to JSON", topic);
        return;
    }
    fprintf(stdout, "%s\n", line);
    fflush(stdout);
    free(line);
    output->printed++;
}

/* --json after the snapshot: stdout stays JSON lines only, so an empty answer (a quiet broker,
   or a mistyped --site, --metric or --period) is explained on stderr, as the table does. */
static void s_json_explain_empty(const s_output_t *output)
{
    if (output->printed > 0)
        return;
    const s_args_t *args = output->args;
    fprintf(stderr,
            "advsync-watch: the snapshot holds no figures for --site %s --metric %s --period %s "
            "(a site's appear with its first event at the centre; check the values given)%s\n",
            args->site ? args->site : "all", args->metric ? args->metric : "(any)",
            args->period ? args->period : "(any)", args->once ? "" : "; waiting for updates");
}

static int64_t s_wall_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* The current quarter ("2026-27-Q3"), month ("2026-11") and financial year ("2026-27"),
   Europe/London, and "now". */
static size_t s_default_periods(char names[3][ASY_VIEW_PERIOD_MAX], const char *periods[4])
{
    asy_date_t today = asy_london_date(s_wall_us());
    int year, month;
    asy_date_to_ymd(today, &year, &month, NULL);
    char quarter[24];
    asy_quarter_format(asy_quarter_of(today), quarter, sizeof quarter); /* "2026-27 Q3" */
    char *space = strchr(quarter, ' ');
    if (space)
        *space = '-';
    snprintf(names[0], ASY_VIEW_PERIOD_MAX, "%s", quarter);
    snprintf(names[1], ASY_VIEW_PERIOD_MAX, "%04d-%02d", year, month);
    snprintf(names[2], ASY_VIEW_PERIOD_MAX, "%.7s", quarter);
    periods[0] = names[0];
    periods[1] = names[1];
    periods[2] = names[2];
    periods[3] = "now";
    return 4;
}

static void s_draw(const asy_replica_t *replica, const s_output_t *output, bool tty)
{
    size_t count = asy_replica_size(replica);
    const asy_mupdate_t **updates = calloc(count ? count : 1, sizeof(const asy_mupdate_t *));
    if (!updates)
        return;
    for (size_t i = 0; i < count; i++)
        updates[i] = asy_replica_at(replica, i);
    asy_replica_stats_t stats;
    asy_replica_stats(replica, &stats);
    asy_view_status_t status = {
        .endpoint = output->args->publisher,
        .seq = stats.last_seq,
        .topics = count,
        .now_us = s_wall_us(),
        .last_message_us = stats.last_message_us,
        .stale = stats.stale,
        .breaches = output->show_breaches || output->breaches.count ? &output->breaches : NULL,
    };
    asy_view_options_t options = {
        .by = output->args->by,
        .metric = output->args->metric,
        .periods = output->periods,
        .period_count = output->period_count,
        .tty = tty,
    };
    asy_view_render(stdout, updates, count, &status, &options);
    free(updates);
}

/* ----------------------------------------------------------------------------------------------
   Running. */

/* The first snapshot, waited for at most 5 s or what is left of --for (end_ms). */
static int s_sync_or_complain(asy_replica_t *replica, const s_args_t *args, int64_t end_ms)
{
    int64_t left = end_ms - zclock_mono();
    int timeout = left < S_SNAPSHOT_TIMEOUT_MS ? (int)(left > 0 ? left : 0) : S_SNAPSHOT_TIMEOUT_MS;
    int rc = asy_replica_sync(replica, timeout);
    if (rc != 0 && s_stop)
        return rc; /* interrupted: nothing to complain about */
    if (rc == ASY_EPROTO && asy_replica_mismatched(replica))
        return rc; /* the caller says so */
    /* the snapshot endpoint the user did not type is named with where it came from */
    char from[400];
    if (args->snapshot == args->derived_snapshot)
        snprintf(from, sizeof from, "%s (--endpoint %s, port + 1)", args->snapshot,
                 args->publisher);
    else
        snprintf(from, sizeof from, "%s", args->snapshot);
    const char *hint = args->snapshot == args->derived_snapshot
                           ? "is the monitor running, and is --endpoint its public or "
                             "restricted stream, not the agents' ingest port?"
                           : "is the monitor running?";
    if (rc == ASY_ETIMEDOUT && timeout < S_SNAPSHOT_TIMEOUT_MS)
        fprintf(stderr, "advsync-watch: no snapshot from %s before --for ran out (%s)\n", from,
                hint);
    else if (rc == ASY_ETIMEDOUT)
        fprintf(stderr, "advsync-watch: no snapshot from %s within %d s (%s)\n", from,
                S_SNAPSHOT_TIMEOUT_MS / 1000, hint);
    else if (rc != 0)
        fprintf(stderr, "advsync-watch: snapshot from %s failed: %s\n", from,
                asy_replica_errmsg(replica)[0] ? asy_replica_errmsg(replica) : asy_strerror(rc));
    return rc;
}

static bool s_breach_wanted(const s_args_t *args, const asy_mbreach_t *breach)
{
    return !args->site || strcmp(args->site, "all") == 0 ||
           strcmp(args->site, breach->site_id) == 0;
}

/* Waits up to milliseconds for a signal. */
static void s_pause(int64_t milliseconds)
{
    zmq_poll(NULL, 0, (long)milliseconds);
}

static int s_live(asy_replica_t *replica, s_output_t *output, int64_t end)
{
    const s_args_t *args = output->args;
    bool tty = isatty(STDOUT_FILENO);
    int64_t last_draw = INT64_MIN / 2;
    bool dirty = true, was_stale = false;
    while (!s_stop) {
        int64_t now = zclock_mono();
        if (now >= end)
            break;
        bool stale = asy_replica_stale(replica);
        bool due = now - last_draw >= args->interval_ms;
        if (!args->json && due && (tty || dirty || stale != was_stale)) {
            s_draw(replica, output, tty);
            last_draw = now;
            dirty = false;
            was_stale = stale;
        }
        int64_t wait = end - now < args->interval_ms ? end - now : args->interval_ms;
        if (asy_replica_needs_sync(replica) && end - now < S_RESYNC_MS) {
            /* a snapshot now would outlast --for */
            s_pause(end - now);
            continue;
        }
        asy_mmsg_t msg;
        int rc = asy_replica_poll(replica, (int)(wait > 0 ? wait : 1), &msg);
        if (rc == ASY_ENOMEM)
            return S_EXIT_FAIL;
        if (rc == ASY_EPROTO && asy_replica_mismatched(replica)) {
            fprintf(stderr, "advsync-watch: %s\n", asy_replica_errmsg(replica));
            return S_EXIT_FAIL;
        }
        if (rc == 0) {
            if (msg.kind != ASY_MMSG_HEARTBEAT)
                dirty = true;
            if (msg.kind == ASY_MMSG_BREACH && s_breach_wanted(args, &msg.breach))
                asy_view_breach_add(&output->breaches, &msg.breach);
            asy_mmsg_release(&msg);
        }
    }
    return S_EXIT_OK;
}

/* Breach notices come on site/<site>/breach, outside the subtree when it is all/ or narrowed
   to one metric. Only the restricted stream carries them (PROTOCOL.md 13), and "site/"
   also brings every site's updates, so the consortium asks for them only with --restricted. */
static int s_subscribe_breaches(asy_replica_t *replica, const s_args_t *args)
{
    char prefix[ASY_TOPIC_MAX];
    if (args->site && strcmp(args->site, "all") != 0) {
        if (!args->metric)
            return 0; /* site/<site>/ has them */
        snprintf(prefix, sizeof prefix, "site/%s/breach", args->site);
    } else if (args->restricted) {
        snprintf(prefix, sizeof prefix, "site/");
    } else {
        return 0;
    }
    return asy_replica_add_breaches(replica, prefix);
}

static void s_signals(void)
{
    /* our own handlers, without SA_RESTART, so a blocked poll returns at once */
    zsys_handler_set(NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

/* The replica of args' subtree, with its breach subscription, the --json handler and the
   stream asked for. NULL if it cannot be made (after a message if it cannot connect). */
static asy_replica_t *s_open_replica(const s_args_t *args, s_output_t *output)
{
    asy_replica_t *replica = asy_replica_new(args->publisher, args->snapshot, args->subtree);
    if (!replica) {
        fprintf(stderr, "advsync-watch: cannot connect to %s / %s\n", args->publisher,
                args->snapshot);
        return NULL;
    }
    if (s_subscribe_breaches(replica, args) != 0) {
        asy_replica_destroy(&replica);
        return NULL;
    }
    if (args->json)
        asy_replica_set_handler(replica, s_print_json, output);
    /* the stream asked for (--restricted or not) and the snapshot's must agree: exact figures
       shown as public ones, or the other way round, mislead whoever reads them */
    asy_replica_expect_exact(replica, args->restricted);
    return replica;
}

/* Explains a snapshot of the other stream than asked for, and what to give instead. */
static void s_complain_other_stream(const s_args_t *args)
{
    fprintf(stderr,
            "advsync-watch: the snapshot service %s sends %s figures (the %s stream's), %s: "
            "give %s\n",
            args->snapshot, args->restricted ? "public (rounded)" : "exact",
            args->restricted ? "public" : "restricted",
            args->restricted ? "though --restricted was given" : "but --restricted was not given",
            args->restricted ? "the restricted stream's --snapshot (and --endpoint)"
                             : "--restricted, or the public stream's --snapshot (and --endpoint)");
}

int main(int argc, char **argv)
{
    asy_log_set_name("advsync-watch");
    s_args_t args;
    int rc = s_parse(argc, argv, &args);
    if (rc >= 0)
        return rc;
    s_signals();
    /* --for bounds the whole run, the wait for the first snapshot included */
    int64_t end =
        args.for_seconds > 0 ? zclock_mono() + (int64_t)(args.for_seconds * 1000) : INT64_MAX;

    char names[3][ASY_VIEW_PERIOD_MAX];
    const char *periods[4];
    s_output_t output = {.args = &args, .periods = periods};
    output.show_breaches = args.restricted && !args.once;
    if (args.period) {
        periods[0] = args.period;
        output.period_count = 1;
    } else {
        output.period_count = s_default_periods(names, periods);
    }

    asy_replica_t *replica = s_open_replica(&args, &output);
    if (!replica)
        return S_EXIT_FAIL;
    rc = s_sync_or_complain(replica, &args, end);
    if (rc == ASY_EPROTO && asy_replica_mismatched(replica)) {
        s_complain_other_stream(&args);
        asy_replica_destroy(&replica);
        return S_EXIT_FAIL;
    }
    if (rc == 0 && args.json)
        s_json_explain_empty(&output);
    int code;
    if (rc != 0 && !args.once && !s_stop && zclock_mono() < end)
        fprintf(stderr, "advsync-watch: still trying\n");
    if (args.once) {
        code = rc == 0 || s_stop ? S_EXIT_OK : S_EXIT_FAIL;
        if (rc == 0 && !args.json)
            s_draw(replica, &output, false);
    } else {
        code = s_live(replica, &output, end);
    }
    asy_replica_destroy(&replica);
    return code;
}
