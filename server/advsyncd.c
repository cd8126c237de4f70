/*  advsyncd: the advsync broker. Reads flags and config (broker_options.c), starts the live
    monitor actor (monitor.c) and then the ingest actor (a front and --workers ingest workers,
    which hand the monitor every committed batch's case rows), waits for SIGTERM/SIGINT, stops
    ingest (which finishes the batches in hand), then the monitor, and exits 0.
    Exit codes: 0 stopped by a signal, 1 configuration or start-up error, 2 bad flags.  */
#include "asy.h"
#include "broker_options.h"
#include "ingest.h"
#include "log.h"
#include "monitor.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop = 0;
static void s_on_signal(int signo) { s_stop = signo; }

/* Crash-safe: a reader never sees a half-written file. */
static int s_write_endpoint_file(const char *path, const char *endpoint)
{
    /* endpoint: the ingest endpoint, then "name endpoint" lines for the monitor's streams */
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

/* Creates the monitor actor unless it is off (it starts in the background). */
static zactor_t *s_new_monitor(const asy_broker_options_t *o)
{
    if (streq(o->value[ASY_OPT_MONITOR], "off"))
        return NULL;
    asy_monitor_args_t args = {
        .conninfo = o->value[ASY_OPT_DATABASE],
        .deltas_endpoint = ASY_MONITOR_DELTAS,
        .public_endpoint = o->value[ASY_OPT_MONITOR_PUBLIC],
        .public_snapshot = o->value[ASY_OPT_MONITOR_PUBLIC_SNAPSHOT],
        .restricted_endpoint = o->value[ASY_OPT_MONITOR_RESTRICTED],
        .restricted_snapshot = o->value[ASY_OPT_MONITOR_RESTRICTED_SNAPSHOT],
        .coalesce_ms = asy_broker_options_int(o, ASY_OPT_COALESCE_MS),
        .heartbeat_ms = asy_broker_options_int(o, ASY_OPT_HEARTBEAT_MS),
        .breach_grace_ms = asy_broker_options_int(o, ASY_OPT_BREACH_GRACE_MS),
        .history_years = asy_broker_options_int(o, ASY_OPT_HISTORY_YEARS)};
    return zactor_new(asy_monitor_actor, &args);
}

/* Waits for ingest, then starts the monitor (with signals blocked, like every thread) and
   waits for it: the agents' fixed port is bound before the monitor binds anything, so a
   monitor on "any port" can never take it. Rows of batches committed meanwhile wait in the
   inproc pipe (connect before bind). Returns 0, or 1 if an actor failed; fills the endpoint
   file's text. */
static int s_start(const asy_broker_options_t *o, const sigset_t *signals, zactor_t *ingest,
                   zactor_t **monitor, char *text, size_t size)
{
    char error[512] = "", *endpoint = NULL;
    int rc = ASY_ERETRY;
    while (!s_stop && rc == ASY_ERETRY)
        rc = asy_ingest_wait_ready(ingest, 250, &endpoint, error, sizeof error);
    if (rc != 0) {
        if (!s_stop)
            asy_error("ingest failed to start: %s", error);
        return s_stop ? 0 : 1;
    }
    snprintf(text, size, "%s", endpoint);
    zstr_free(&endpoint);
    if (streq(o->value[ASY_OPT_MONITOR], "off"))
        return 0;
    pthread_sigmask(SIG_BLOCK, signals, NULL);
    *monitor = s_new_monitor(o);
    pthread_sigmask(SIG_UNBLOCK, signals, NULL);
    if (!*monitor)
        return 1; /* out of memory */
    asy_monitor_endpoints_t bound;
    memset(&bound, 0, sizeof bound);
    rc = ASY_ERETRY;
    while (!s_stop && rc == ASY_ERETRY)
        rc = asy_monitor_wait_ready(*monitor, 250, &bound, error, sizeof error);
    if (rc != 0) {
        if (!s_stop)
            asy_error("monitor failed to start: %s", error);
        return s_stop ? 0 : 1;
    }
    size_t used = strlen(text);
    snprintf(text + used, size - used,
             "\nmonitor_public %s\nmonitor_public_snapshot %s\nmonitor_restricted %s\n"
             "monitor_restricted_snapshot %s",
             bound.public_endpoint, bound.public_snapshot, bound.restricted_endpoint,
             bound.restricted_snapshot);
    return 0;
}

/* Runs until a signal; returns the exit code. */
static int s_run(const asy_broker_options_t *o)
{
    sigset_t signals;
    s_catch_signals(&signals);
    bool monitored = !streq(o->value[ASY_OPT_MONITOR], "off");
    asy_ingest_args_t args = {.endpoint = o->value[ASY_OPT_INGEST],
                              .conninfo = o->value[ASY_OPT_DATABASE],
                              .workers = asy_broker_options_int(o, ASY_OPT_WORKERS),
                              .monitor = monitored ? ASY_MONITOR_DELTAS : NULL};
    zactor_t *ingest = zactor_new(asy_ingest_actor, &args), *monitor = NULL;
    pthread_sigmask(SIG_UNBLOCK, &signals, NULL);
    char text[1600] = "";
    int code = ingest ? s_start(o, &signals, ingest, &monitor, text, sizeof text) : 1;
    const char *file = o->value[ASY_OPT_ENDPOINT_FILE];
    bool listening = code == 0 && !s_stop;
    if (listening && file)
        code = s_write_endpoint_file(file, text);
    zpoller_t *poller = zpoller_new(NULL);
    if (!poller && code == 0) {
        asy_error("out of memory");
        code = 1;
    }
    if (poller && ingest)
        zpoller_add(poller, ingest);
    if (poller && monitor)
        zpoller_add(poller, monitor);
    if (poller)
        zpoller_set_nonstop(poller, true);
    while (!s_stop && code == 0) {
        zactor_t *which = zpoller_wait(poller, 250);
        if (which) {
            char *unexpected = zstr_recv(which);   /* nothing is expected after READY */
            zstr_free(&unexpected);
        }
    }
    zpoller_destroy(&poller);
    if (s_stop)
        asy_info("signal %d: stopping (the batch in hand is finished first)", (int)s_stop);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);   /* a second signal must not cut this short */
    zactor_destroy(&ingest);   /* first: its last batches still reach the monitor */
    zactor_destroy(&monitor);
    if (listening && file)
        unlink(file);
    asy_info("stopped");
    return code;
}

int main(int argc, char **argv)
{
    asy_log_set_name("advsyncd");
    asy_broker_options_t options;
    int code = asy_broker_options_load(&options, argc, argv);
    if (code >= 0) {
        asy_broker_options_release(&options);
        return code;
    }
    if (options.value[ASY_OPT_LOG_LEVEL])
        asy_log_set_level((asy_log_level_t)asy_log_parse_level(options.value[ASY_OPT_LOG_LEVEL]));
    /* which file the settings came from: a misspelt section is ignored (it may belong to
       another program), and the defaults are then what the log shows */
    asy_info("advsyncd %s starting: ingest %s, config %s", ASY_VERSION_STRING,
             options.value[ASY_OPT_INGEST],
             options.value[ASY_OPT_CONFIG] ? options.value[ASY_OPT_CONFIG] : "none (flags only)");
    code = s_run(&options);
    asy_broker_options_release(&options);
    return code;
}
