/*  main.c: advsync-watch, the live view of the monitor stream (proto/PROTOCOL.md part II).  */
#include "calendar.h"
#include "log.h"
#include "replica.h"
#include "view.h"

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
            "  --snapshot SNAP     snapshot service (default tcp://127.0.0.1:5572,\n"
            "                      restricted tcp://127.0.0.1:5574)\n"
            "  --restricted        use the restricted stream's default endpoints\n"
            "  --site ID           one site (topics site/ID/...); 'all' = the consortium\n"
            "  --period P          only period P (2026-11, 2026-27-Q3, 2026-27, now); default:\n"
            "                      the current quarter, month, year to date and now\n"
            "  --metric M          only metric M (M1 .. M13)\n"
            "  --by BREAKDOWN      groups shown under each total (default ethnic_group;\n"
            "                      '' for none)\n"
            "  --json              one JSON line per snapshot entry and live message\n"
            "  --once              print the snapshot and exit\n"
            "  --for SECONDS       run this long, then exit 0\n"
            "  --interval MS       redraw at most every MS milliseconds (default 500)\n"
            "  --help              this text\n");
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

static int s_check_args(s_args_t *args)
{
    if (args->site && !s_valid_id(args->site))
        return s_bad("--site: '%s' is not a site id ([A-Za-z0-9._-]{1,64})", args->site);
    if (args->metric &&
        (asy_view_metric_number(args->metric) < 1 || asy_view_metric_number(args->metric) > 13))
        return s_bad("--metric: '%s' is not a metric (M1 .. M13)", args->metric);
    if (args->period && (!args->period[0] || strlen(args->period) >= ASY_VIEW_PERIOD_MAX ||
                         strchr(args->period, '/')))
        return s_bad("--period: '%s' is not a period (2026-11, 2026-27-Q3, 2026-27, now)",
                     args->period);
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

static int s_parse_number(const char *text, double low, double high, double *out)
{
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value >= low && value <= high))
        return ASY_EINVAL;
    *out = value;
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int s_parse(int argc, char **argv, s_args_t *args)
{
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
        O_HELP
    };
    static const struct option options[] = {
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
        {NULL, 0, NULL, 0},
    };
    memset(args, 0, sizeof *args);
    args->by = "ethnic_group";
    args->interval_ms = 500;
    opterr = 0;
    int option;
    double number;
    while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (option) {
        case O_ENDPOINT:
            args->publisher = optarg;
            break;
        case O_SNAPSHOT:
            args->snapshot = optarg;
            break;
        case O_RESTRICTED:
            args->restricted = true;
            break;
        case O_SITE:
            args->site = optarg;
            break;
        case O_PERIOD:
            args->period = optarg;
            break;
        case O_METRIC:
            args->metric = optarg;
            break;
        case O_BY:
            args->by = optarg;
            break;
        case O_JSON:
            args->json = true;
            break;
        case O_ONCE:
            args->once = true;
            break;
        case O_FOR:
            if (s_parse_number(optarg, 0.001, 1e9, &number) != 0)
                return s_bad("--for: '%s' is not a positive number of seconds", optarg);
            args->for_seconds = number;
            break;
        case O_INTERVAL:
            if (s_parse_number(optarg, 0, 3600000, &number) != 0)
                return s_bad("--interval: '%s' is not a number of milliseconds", optarg);
            args->interval_ms = (long)number;
            break;
        case O_HELP:
            s_usage(stdout);
            return S_EXIT_OK;
        default:
            return s_bad("unknown option or missing value: %s", argv[optind - 1]);
        }
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
    const s_output_t *output = arg;
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

static int s_sync_or_complain(asy_replica_t *replica, const s_args_t *args)
{
    int rc = asy_replica_sync(replica, S_SNAPSHOT_TIMEOUT_MS);
    if (rc != 0 && s_stop)
        return rc; /* interrupted: nothing to complain about */
    if (rc == ASY_ETIMEDOUT)
        fprintf(stderr,
                "advsync-watch: no snapshot from %s within %d s (is the monitor running?)\n",
                args->snapshot, S_SNAPSHOT_TIMEOUT_MS / 1000);
    else if (rc != 0)
        fprintf(stderr, "advsync-watch: snapshot from %s failed: %s\n", args->snapshot,
                asy_replica_errmsg(replica)[0] ? asy_replica_errmsg(replica) : asy_strerror(rc));
    return rc;
}

static int s_live(asy_replica_t *replica, const s_output_t *output)
{
    const s_args_t *args = output->args;
    bool tty = isatty(STDOUT_FILENO);
    int64_t end =
        args->for_seconds > 0 ? zclock_mono() + (int64_t)(args->for_seconds * 1000) : INT64_MAX;
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
        asy_mmsg_t msg;
        int rc = asy_replica_poll(replica, (int)(wait > 0 ? wait : 1), &msg);
        if (rc == ASY_ENOMEM)
            return S_EXIT_FAIL;
        if (rc == 0) {
            if (msg.kind != ASY_MMSG_HEARTBEAT)
                dirty = true;
            asy_mmsg_release(&msg);
        }
    }
    return S_EXIT_OK;
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

int main(int argc, char **argv)
{
    asy_log_set_name("advsync-watch");
    s_args_t args;
    int rc = s_parse(argc, argv, &args);
    if (rc >= 0)
        return rc;
    s_signals();

    char names[3][ASY_VIEW_PERIOD_MAX];
    const char *periods[4];
    s_output_t output = {.args = &args, .periods = periods};
    if (args.period) {
        periods[0] = args.period;
        output.period_count = 1;
    } else {
        output.period_count = s_default_periods(names, periods);
    }

    asy_replica_t *replica = asy_replica_new(args.publisher, args.snapshot, args.subtree);
    if (!replica) {
        fprintf(stderr, "advsync-watch: cannot connect to %s / %s\n", args.publisher,
                args.snapshot);
        return S_EXIT_FAIL;
    }
    if (args.json)
        asy_replica_set_handler(replica, s_print_json, &output);
    rc = s_sync_or_complain(replica, &args);
    int code;
    if (rc != 0 && !args.once && !s_stop)
        fprintf(stderr, "advsync-watch: still trying\n");
    if (args.once) {
        code = rc == 0 || s_stop ? S_EXIT_OK : S_EXIT_FAIL;
        if (rc == 0 && !args.json)
            s_draw(replica, &output, false);
    } else {
        code = s_live(replica, &output);
    }
    asy_replica_destroy(&replica);
    return code;
}
