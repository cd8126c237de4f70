/*  harness.h: helpers for tests that start the real programs against a real PostgreSQL.
    The cluster is the one ./deploy/test started: ASY_TEST_DATABASE holds a libpq conninfo for
    it (e.g. "host=/tmp/x port=5xxxx user=postgres dbname=postgres"). A test that needs it and
    cannot reach it fails loudly.  */
#ifndef ASY_HARNESS_H_INCLUDED
#define ASY_HARNESS_H_INCLUDED

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The cluster's conninfo; fails the test (cr_assert_fail) if ASY_TEST_DATABASE is unset. */
const char *asy_test_conninfo(void);

/* Creates a fresh, empty database and returns its conninfo (caller frees). */
char *asy_test_create_database(void);

/* Connects or fails the test. Caller PQfinish()es. */
PGconn *asy_test_pg_connect(const char *conninfo);

/* Runs a query returning one integer (first row, first column); fails the test on error. */
long long asy_test_pg_int(PGconn *pg, const char *sql);

/* asy_test_pg_int with the query built printf-style (at most 1023 characters). */
long long asy_test_pg_intf(PGconn *pg, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Applies the broker's migrations to the database (asy_store_new), or fails the test. */
void asy_test_migrate(const char *conninfo);
/* Drops the database a conninfo ending in "dbname=NAME" names (WITH FORCE); NULL: nothing. */
void asy_test_drop_database(const char *conninfo);
/* Runs a statement; fails the test on error. */
void asy_test_pg_exec(PGconn *pg, const char *sql);

/* A new private directory $TMPDIR/asy-test-XXXXXX ($TMPDIR: /tmp when unset; ./deploy/test
   gives each run its own and removes it when every test passed). Caller frees the path. */
char *asy_test_tmpdir(void);

/* Makes a new private directory $TMPDIR/<prefix>-XXXXXX; its path into path[size]. Fails the
   test if it cannot. */
void asy_test_mkdtemp(char *path, size_t size, const char *prefix);

/* CPU seconds (user + system) a process or thread has used, from its /proc stat file (e.g.
   "/proc/123/stat", "/proc/123/task/124/stat"); its name into name[64] if name is not NULL.
   -1 if the file cannot be read (the process is gone). */
double asy_test_cpu_seconds(const char *stat_path, char name[64]);

/* Writes lines (one per line) to <dir>/<name>.jsonl; its path into path[512]. */
void asy_test_write_lines(const char *dir, const char *name, const char *const *lines, int count,
                          char path[512]);

/* Starts argv[0] (a path) with stdout+stderr appended to log_path (NULL: inherit).
   Returns the pid or fails the test. */
pid_t asy_test_spawn(char *const argv[], const char *log_path);

/* Sends sig, waits up to timeout_ms, then SIGKILLs. Returns the wait status. */
int asy_test_stop(pid_t pid, int sig, int timeout_ms);

/* Waits up to timeout_ms for a child to exit by itself; returns its exit code, or -1 on
   time-out (the child is then killed) or if it died from a signal. */
int asy_test_wait(pid_t pid, int timeout_ms);

/* Runs a command to completion (timeout_ms), capturing stdout into out (may be NULL).
   Returns its exit code, or -1 on time-out / signal. */
int asy_test_run(char *const argv[], char *out, size_t out_size, int timeout_ms);

/* A TCP port on 127.0.0.1 nobody listens on right now, chosen at random below the kernel's
   ephemeral range (so that no outgoing connection takes it before the caller binds it);
   fails the test if none is found. */
int asy_test_free_port(void);

/* Starts advsyncd on tcp://127.0.0.1:<port> (port 0: any free port) against conninfo, with
   extra args (NULL-terminated, may be NULL). Waits until it is listening; writes the endpoint
   into endpoint[] (e.g. "tcp://127.0.0.1:41234"). The monitor binds its four streams to free
   loopback ports, listed in <workdir>/broker.endpoint after the first line as "name endpoint"
   (asy_test_broker_endpoint). Log in <workdir>/broker.log. */
pid_t asy_test_start_broker_with(const char *conninfo, const char *workdir, int port,
                                 const char *const extra[], char *endpoint,
                                 size_t endpoint_size);

/* The same without extra args. */
pid_t asy_test_start_broker(const char *conninfo, const char *workdir, int port,
                            char *endpoint, size_t endpoint_size);

/* Writes a consortium key file at <workdir>/consortium.key (once) and an agent config at
   <workdir>/<agent_id>.cfg; returns the config path (caller frees). */
char *asy_test_agent_config(const char *workdir, const char *agent_id, const char *site_id,
                            const char *endpoint);

/* Runs `advsync-agent <args...> --config cfg` to completion; returns its exit code. */
int asy_test_agent(const char *config_path, char *out, size_t out_size, int timeout_ms, ...)
    __attribute__((sentinel));

/* Starts `advsync-agent --config config ARGS...` (args NULL-terminated) in the background,
   its output in <log_dir>/<name>.log. Returns the pid or fails the test. */
pid_t asy_test_spawn_agent(const char *config, const char *log_dir, const char *name, ...)
    __attribute__((sentinel));

/* Milliseconds since an arbitrary start (monotonic). */
int64_t asy_test_now_ms(void);

#endif
