/*  advsyncd: the advsync broker. Reads flags and config, starts the ingest actor (a front and
    --workers ingest workers), waits for SIGTERM/SIGINT, stops the actor (which finishes the
    batches in hand) and exits 0.
    Exit codes: 0 stopped by a signal, 1 configuration or start-up error, 2 bad flags.  */
#include "asy.h"
#include "ingest.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *config_path, *ingest, *database, *endpoint_file, *log_level, *workers;
} s_options_t;

static volatile sig_atomic_t s_stop = 0;
static void s_on_signal(int signo) { s_stop = signo; }

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsyncd [--config FILE] [--ingest ENDPOINT] [--database CONNINFO]\n"
            "                [--endpoint-file PATH] [--log-level LEVEL] [--workers N]\n"
            "                [--help] [--version]\n"
            "  --config FILE         zconfig file, section broker: ingest, database, log_level,\n"
            "                        workers\n"
            "  --ingest ENDPOINT     bind here (default tcp://127.0.0.1:5570; :* = any port)\n"
            "  --database CONNINFO   libpq conninfo (default \"dbname=advsync\")\n"
            "  --endpoint-file PATH  write the bound endpoint there once listening\n"
            "  --log-level LEVEL     debug, info (default), warn or error\n"
            "  --workers N           ingest workers, each with its own database connection,\n"
            "                        1..%d (default %d)\n",
            ASY_INGEST_MAX_WORKERS, ASY_INGEST_DEFAULT_WORKERS);
}

/* Returns 1..ASY_INGEST_MAX_WORKERS, or -1 if text is not such a whole number. */
static int s_parse_workers(const char *text)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end || value < 1 || value > ASY_INGEST_MAX_WORKERS)
        return -1;
    return (int)value;
}

/* Returns -1 to continue, else the exit code. */
static int s_parse_flags(int argc, char **argv, s_options_t *options)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'},  {"ingest", required_argument, NULL, 'i'},
        {"database", required_argument, NULL, 'd'}, {"endpoint-file", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"workers", required_argument, NULL, 'w'},   {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int option;
    while ((option = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (option) {
        case 'c': options->config_path = optarg; break;
        case 'i': options->ingest = optarg; break;
        case 'd': options->database = optarg; break;
        case 'e': options->endpoint_file = optarg; break;
        case 'l': options->log_level = optarg; break;
        case 'w': options->workers = optarg; break;
        case 'h': s_usage(stdout); return 0;
        case 'V': printf("advsyncd %s\n", ASY_VERSION_STRING); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    bool extra = optind < argc;
    if (extra || (options->log_level && asy_log_parse_level(options->log_level) < 0)) {
        fprintf(stderr, "advsyncd: %s \"%s\"\n",
                extra ? "unexpected argument" : "--log-level is not debug, info, warn or error:",
                extra ? argv[optind] : options->log_level);
        s_usage(stderr);
        return 2;
    }
    if (options->workers && s_parse_workers(options->workers) < 0) {
        fprintf(stderr, "advsyncd: --workers \"%s\" is not a number from 1 to %d\n",
                options->workers, ASY_INGEST_MAX_WORKERS);
        s_usage(stderr);
        return 2;
    }
    return -1;
}

/* Fills options the flags left unset from the config file. Returns 0 or 1 (exit code). */
static int s_load_config(s_options_t *options, zconfig_t **config_p)
{
    const char *path = options->config_path;
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "advsyncd: cannot read config %s: %s\n", path, strerror(errno));
        return 1;
    }
    zconfig_t *config = *config_p = zconfig_load(path);
    if (!config) {
        fprintf(stderr, "advsyncd: config %s is not valid zconfig text (indent children by "
                        "4 spaces, `key = value`)\n", path);
        return 1;
    }
    zconfig_t *broker = zconfig_locate(config, "broker");
    for (zconfig_t *item = broker ? zconfig_child(broker) : NULL; item; item = zconfig_next(item)) {
        const char *name = zconfig_name(item), *value = zconfig_value(item);
        if (!value || !*value) {
            fprintf(stderr, "advsyncd: config %s: broker/%s has no value\n", path, name);
            return 1;
        }
        const char **slot = streq(name, "ingest")      ? &options->ingest
                            : streq(name, "database")  ? &options->database
                            : streq(name, "log_level") ? &options->log_level
                            : streq(name, "workers")   ? &options->workers
                                                       : NULL;
        if (!slot) {
            fprintf(stderr, "advsyncd: config %s: unknown key broker/%s (known: ingest, "
                            "database, log_level, workers)\n", path, name);
            return 1;
        }
        *slot = *slot ? *slot : value;   /* flags win over the file */
    }
    bool bad_level = options->log_level && asy_log_parse_level(options->log_level) < 0;
    if (bad_level)
        fprintf(stderr, "advsyncd: config %s: broker/log_level \"%s\" is not debug, info, "
                        "warn or error\n", path, options->log_level);
    bool bad_workers = options->workers && s_parse_workers(options->workers) < 0;
    if (bad_workers)
        fprintf(stderr, "advsyncd: config %s: broker/workers \"%s\" is not a number from 1 to "
                        "%d\n", path, options->workers, ASY_INGEST_MAX_WORKERS);
    return bad_level || bad_workers ? 1 : 0;
}

/* Crash-safe: a reader never sees a half-written file. */
static int s_write_endpoint_file(const char *path, const char *endpoint)
{
    char temporary[4096];
    snprintf(temporary, sizeof temporary, "%s.tmp.%d", path, (int)getpid());
    FILE *file = fopen(temporary, "w");
    bool ok = file && fprintf(file, "%s\n", endpoint) > 0 && fflush(file) == 0
              && fsync(fileno(file)) == 0;
    if ((file && fclose(file) != 0) || !ok || rename(temporary, path) != 0) {
        asy_error("cannot write endpoint file %s: %s", path, strerror(errno));
        unlink(temporary);
        return 1;
    }
    return 0;
}

/* Our handler, not czmq's: we decide when the actor stops. Signals are blocked while ZeroMQ's
   and the actor's threads start (they inherit the mask), so only this thread ever sees them. */
static void s_catch_signals(sigset_t *signals)
{
    zsys_handler_set(NULL);
    zsys_init();   /* before our sigaction, so nothing of czmq's replaces it */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    *signals = action.sa_mask;
    sigaddset(signals, SIGTERM);
    sigaddset(signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, signals, NULL);
}

/* Runs until a signal; returns the exit code. */
static int s_run(const s_options_t *options)
{
    sigset_t signals;
    s_catch_signals(&signals);
    asy_ingest_args_t args = {.endpoint = options->ingest, .conninfo = options->database,
                              .workers = options->workers ? s_parse_workers(options->workers)
                                                          : 0};
    zactor_t *ingest = zactor_new(asy_ingest_actor, &args);
    pthread_sigmask(SIG_UNBLOCK, &signals, NULL);
    if (!ingest)
        return 1;   /* out of memory */
    char *endpoint = NULL, error[512] = "";
    int rc = ASY_ERETRY;
    while (!s_stop && rc == ASY_ERETRY)
        rc = asy_ingest_wait_ready(ingest, 250, &endpoint, error, sizeof error);
    if (rc == ASY_EIO)
        asy_error("ingest failed to start: %s", error);
    int code = rc == ASY_EIO ? 1 : 0;
    if (rc == 0 && options->endpoint_file)
        code = s_write_endpoint_file(options->endpoint_file, endpoint);
    zpoller_t *poller = zpoller_new(ingest, NULL);
    zpoller_set_nonstop(poller, true);
    while (!s_stop && code == 0)
        if (zpoller_wait(poller, 250) == ingest) {
            char *unexpected = zstr_recv(ingest);   /* nothing is expected after READY */
            zstr_free(&unexpected);
        }
    zpoller_destroy(&poller);
    if (s_stop)
        asy_info("signal %d: stopping (the batch in hand is finished first)", (int)s_stop);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);   /* a second signal must not cut this short */
    zactor_destroy(&ingest);
    if (rc == 0 && options->endpoint_file)
        unlink(options->endpoint_file);
    zstr_free(&endpoint);
    asy_info("stopped");
    return code;
}

int main(int argc, char **argv)
{
    asy_log_set_name("advsyncd");
    s_options_t options = {0};
    int code = s_parse_flags(argc, argv, &options);
    if (code >= 0)
        return code;
    zconfig_t *config = NULL;
    if (options.config_path && (code = s_load_config(&options, &config)) != 0) {
        zconfig_destroy(&config);
        return code;
    }
    options.ingest = options.ingest ? options.ingest : "tcp://127.0.0.1:5570";
    options.database = options.database ? options.database : "dbname=advsync";
    if (options.log_level)
        asy_log_set_level((asy_log_level_t)asy_log_parse_level(options.log_level));
    asy_info("advsyncd %s starting: ingest %s", ASY_VERSION_STRING, options.ingest);
    code = s_run(&options);
    zconfig_destroy(&config);
    return code;
}
