/*  test_faults.c: nothing acknowledged is lost and nothing is applied twice while processes
    die. Three agents stream 30,000 events; meanwhile the broker is killed with SIGKILL five
    times and restarted, PostgreSQL is restarted once with `pg_ctl -m immediate` (a crash), and
    one agent is killed with SIGKILL and restarted. Afterwards every submitted event is in
    PostgreSQL exactly once.

    Needs ASY_TEST_PG_RESTART: a command that crash-restarts the test cluster (deploy/test sets
    it). This test restarts the shared cluster, so deploy/test runs it alone.  */
#include "casecheck.h"
#include "fixture.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_AGENTS 3
#define S_EVENTS_PER_AGENT 10000

static void s_restart_postgres(void)
{
    const char *command = getenv("ASY_TEST_PG_RESTART");
    cr_assert(command && *command, "ASY_TEST_PG_RESTART is not set: run through ./deploy/test");
    int rc = system(command);
    cr_assert_eq(rc, 0, "PostgreSQL crash-restart failed (%d)", rc);
}

Test(faults, kill_broker_postgres_and_agent_while_streaming, .timeout = 1200)
{
    /* checked before anything starts: a failed assertion later leaves the broker and the
       agents running */
    const char *restart = getenv("ASY_TEST_PG_RESTART");
    cr_assert(restart && *restart, "ASY_TEST_PG_RESTART is not set: run through ./deploy/test");
    char *db = asy_test_create_database();
    char *dir = asy_test_tmpdir();
    int port = asy_test_free_port();
    char endpoint[128];
    pid_t broker = asy_test_start_broker(db, dir, port, endpoint, sizeof endpoint);

    char *config[S_AGENTS];
    pid_t runner[S_AGENTS], simulator[S_AGENTS];
    for (int i = 0; i < S_AGENTS; i++) {
        char id[32], site[32], name[32];
        snprintf(id, sizeof id, "fault-%d", i);
        snprintf(site, sizeof site, "site-fault-%d", i);
        config[i] = asy_test_agent_config(dir, id, site, endpoint);
        /* events arrive while everything below happens: ~1,000 events/s per site */
        char seed[8];
        snprintf(seed, sizeof seed, "%d", 40 + i);
        snprintf(name, sizeof name, "sim-%d", i);
        simulator[i] = asy_test_spawn_agent(config[i], dir, name, "simulate", "--events", "10000",
                                            "--rate", "1000", "--seed", seed, NULL);
        snprintf(name, sizeof name, "run-%d", i);
        runner[i] = asy_test_spawn_agent(config[i], dir, name, "run", NULL);
    }

    for (int round = 0; round < 5; round++) {
        usleep(1200 * 1000);
        kill(broker, SIGKILL);
        waitpid(broker, NULL, 0);
        if (round == 1) {
            kill(runner[0], SIGKILL);
            waitpid(runner[0], NULL, 0);
            runner[0] = asy_test_spawn_agent(config[0], dir, "run-0-restarted", "run", NULL);
        }
        usleep(300 * 1000);
        broker = asy_test_start_broker(db, dir, port, endpoint, sizeof endpoint);
        if (round == 2) {
            usleep(500 * 1000);
            s_restart_postgres();
        }
    }

    for (int i = 0; i < S_AGENTS; i++)
        cr_assert_eq(asy_test_wait(simulator[i], 120000), 0, "simulator %d failed", i);
    /* every event is now in an outbox; let the runners drain, then stop them */
    for (int i = 0; i < S_AGENTS; i++) {
        asy_test_stop(runner[i], SIGTERM, 10000);
        char name[32];
        snprintf(name, sizeof name, "drain-%d", i);
        runner[i] = asy_test_spawn_agent(config[i], dir, name, "run", "--until-drained", NULL);
    }
    for (int i = 0; i < S_AGENTS; i++)
        cr_assert_eq(asy_test_wait(runner[i], 300000), 0, "agent %d did not drain; logs in %s", i, dir);
    int status = asy_test_stop(broker, SIGTERM, 20000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker did not exit 0 on SIGTERM");

    PGconn *pg = asy_test_pg_connect(db);
    cr_assert_eq(asy_test_check_streams(pg), S_AGENTS * S_EVENTS_PER_AGENT);
    cr_assert_eq(asy_test_pg_int(pg, "SELECT count(*) FROM event"), S_AGENTS * S_EVENTS_PER_AGENT);
    cr_assert_eq(asy_test_pg_int(pg, "SELECT count(DISTINCT event_id) FROM event"),
                 S_AGENTS * S_EVENTS_PER_AGENT, "an event was stored twice under two seqs");
    for (int i = 0; i < S_AGENTS; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT committed_seq FROM agent_stream WHERE agent_id = 'fault-%d'", i);
        cr_assert_eq(asy_test_pg_int(pg, sql), S_EVENTS_PER_AGENT);
    }
    asy_test_check_case_state(pg);
    PQfinish(pg);
}

/* A broker that sat idle through a PostgreSQL crash-restart finds its connections closed when
   the next agent says HELLO: it reconnects there and then, and the agent is welcomed at once
   (it used to be answered RETRY_LATER, logged as a database error). */
Test(faults, an_idle_broker_welcomes_the_first_agent_after_a_postgres_restart, .timeout = 300)
{
    const char *restart = getenv("ASY_TEST_PG_RESTART");
    cr_assert(restart && *restart, "ASY_TEST_PG_RESTART is not set: run through ./deploy/test");
    char *db = asy_test_create_database();
    char *dir = asy_test_tmpdir();
    char endpoint[128];
    pid_t broker = asy_test_start_broker(db, dir, 0, endpoint, sizeof endpoint);
    char *config = asy_test_agent_config(dir, "idle-1", "site-idle", endpoint);
    char out[4096];
    cr_assert_eq(asy_test_agent(config, out, sizeof out, 60000, "simulate", "--events", "50",
                                "--seed", "7", NULL),
                 0);
    cr_assert_eq(asy_test_agent(config, out, sizeof out, 60000, "run", "--until-drained", NULL), 0);

    s_restart_postgres();
    usleep(500 * 1000);
    cr_assert_eq(asy_test_agent(config, out, sizeof out, 60000, "simulate", "--events", "50",
                                "--seed", "8", NULL),
                 0);
    cr_assert_eq(asy_test_agent(config, out, sizeof out, 60000, "run", "--until-drained", NULL), 0);

    int status = asy_test_stop(broker, SIGTERM, 20000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker did not exit 0 on SIGTERM");
    char path[600];
    snprintf(path, sizeof path, "%s/broker.log", dir);
    char *log = asy_fixture_slurp(path, NULL);
    cr_assert_not_null(log);
    /* said by the connection that found it (worker N or monitor) */
    const char *closed = strstr(log, ": PostgreSQL closed an idle connection");
    cr_assert_not_null(closed, "%s", log);
    cr_assert(strncmp(closed - 8, "worker ", 7) == 0 || strncmp(closed - 7, "monitor", 7) == 0,
              "%.80s", closed - 20);
    cr_assert_null(strstr(log, "RETRY_LATER"), "%s", log);
    cr_assert_null(strstr(log, "database HELLO failed"), "%s", log);
    free(log);
    PGconn *pg = asy_test_pg_connect(db);
    cr_assert_eq(asy_test_check_streams(pg), 100);
    PQfinish(pg);
    free(config);
    free(dir);
    free(db);
}
