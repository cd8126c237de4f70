/*  harness.c: start the real programs, talk to the real PostgreSQL. See harness.h.  */
#include "harness.h"

#include "store.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t asy_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether port can be bound on 127.0.0.1 now. */
static bool s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return free;
}

/* A port below the kernel's ephemeral range: between this check and the bind that follows,
   no outgoing connection (an agent's, a subscriber's) can be given it as its own port, as
   one from the ephemeral range could. */
int asy_test_free_port(void)
{
    int low = 32768, high = 60999;
    FILE *range = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (range) {
        if (fscanf(range, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(range);
    }
    int first = 20000, last = low - 1;
    if (last - first < 1000) { /* an unusual range: below 20000 instead */
        first = 10000;
        last = 19999;
    }
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)asy_test_now_ms();
    for (int tries = 0; tries < 200; tries++) {
        int port = first + (int)(rand_r(&seed) % (unsigned)(last - first + 1));
        if (s_port_free(port))
            return port;
    }
    cr_assert_fail("no free port found in %d..%d", first, last);
    return -1;
}

const char *asy_test_conninfo(void)
{
    const char *conninfo = getenv("ASY_TEST_DATABASE");
    if (!conninfo || !*conninfo)
        cr_assert_fail("ASY_TEST_DATABASE is not set: run the suite through ./deploy/test, which "
                 "starts a throwaway PostgreSQL cluster");
    return conninfo;
}

PGconn *asy_test_pg_connect(const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        char message[512];
        snprintf(message, sizeof message, "%s", PQerrorMessage(pg));
        PQfinish(pg);
        cr_assert_fail("cannot connect to PostgreSQL (%s): %s", conninfo, message);
    }
    PGresult *quiet = PQexec(pg, "SET client_min_messages = warning");
    PQclear(quiet);
    return pg;
}

void asy_test_pg_exec(PGconn *pg, const char *sql)
{
    PGresult *result = PQexec(pg, sql);
    ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        char message[512];
        snprintf(message, sizeof message, "%s", PQresultErrorMessage(result));
        PQclear(result);
        cr_assert_fail("SQL failed: %s\n%s", sql, message);
    }
    PQclear(result);
}

long long asy_test_pg_int(PGconn *pg, const char *sql)
{
    PGresult *result = PQexec(pg, sql);
    if (PQresultStatus(result) != PGRES_TUPLES_OK || PQntuples(result) < 1) {
        char message[512];
        snprintf(message, sizeof message, "%s", PQresultErrorMessage(result));
        PQclear(result);
        cr_assert_fail("SQL failed or returned no row: %s\n%s", sql, message);
    }
    long long value = PQgetisnull(result, 0, 0) ? 0 : atoll(PQgetvalue(result, 0, 0));
    PQclear(result);
    return value;
}

long long asy_test_pg_intf(PGconn *pg, const char *format, ...)
{
    char sql[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(sql, sizeof sql, format, args);
    va_end(args);
    return asy_test_pg_int(pg, sql);
}

void asy_test_migrate(const char *conninfo)
{
    char error[512] = "";
    asy_store_t *store = asy_store_new(conninfo, error, sizeof error);
    cr_assert_not_null(store, "asy_store_new: %s", error);
    asy_store_destroy(&store);
}

void asy_test_drop_database(const char *conninfo)
{
    const char *name = conninfo ? strrchr(conninfo, '=') : NULL;
    if (!name)
        return;
    PGconn *pg = asy_test_pg_connect(asy_test_conninfo());
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name + 1);
    asy_test_pg_exec(pg, sql);
    PQfinish(pg);
}

char *asy_test_create_database(void)
{
    static int counter = 0;
    const char *base = asy_test_conninfo();
    char name[64];
    snprintf(name, sizeof name, "asy_t_%d_%d_%lld", (int)getpid(), counter++,
             (long long)(asy_test_now_ms() % 1000000));
    PGconn *pg = asy_test_pg_connect(base);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    asy_test_pg_exec(pg, sql);
    PQfinish(pg);
    size_t size = strlen(base) + sizeof name + 16;
    char *conninfo = malloc(size);
    cr_assert_not_null(conninfo);
    /* a later dbname= keyword overrides an earlier one in a libpq conninfo string */
    snprintf(conninfo, size, "%s dbname=%s", base, name);
    return conninfo;
}

void asy_test_mkdtemp(char *path, size_t size, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    int length = snprintf(path, size, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    cr_assert(length > 0 && (size_t)length < size, "temporary path too long: %s", path);
    cr_assert_not_null(mkdtemp(path), "mkdtemp %s: %s", path, strerror(errno));
}

char *asy_test_tmpdir(void)
{
    char path[512];
    asy_test_mkdtemp(path, sizeof path, "asy-test");
    char *copy = strdup(path);
    cr_assert_not_null(copy);
    return copy;
}

double asy_test_cpu_seconds(const char *stat_path, char name[64])
{
    FILE *file = fopen(stat_path, "r");
    if (!file)
        return -1;
    char line[1024];
    bool ok = fgets(line, sizeof line, file) != NULL;
    fclose(file);
    /* "pid (name) state ...": the name may hold spaces and parentheses */
    const char *open = ok ? strchr(line, '(') : NULL;
    const char *close = ok ? strrchr(line, ')') : NULL;
    unsigned long long utime = 0, stime = 0;
    if (!open || !close || close < open ||
        sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return -1;
    if (name)
        snprintf(name, 64, "%.*s", (int)(close - open - 1), open + 1);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

void asy_test_write_lines(const char *dir, const char *name, const char *const *lines, int count,
                          char path[512])
{
    snprintf(path, 512, "%s/%s.jsonl", dir, name);
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file, "%s: %s", path, strerror(errno));
    for (int i = 0; i < count; i++)
        fprintf(file, "%s\n", lines[i]);
    cr_assert_eq(fclose(file), 0, "%s: %s", path, strerror(errno));
}

/* Spawned processes not yet reaped: killed when the test process exits, so that a test whose
   assertion fails before it stops its broker or agent leaves nothing running (a leftover
   broker skews later tests and benchmarks). */
#define S_SPAWNED_MAX 64
static pid_t s_spawned[S_SPAWNED_MAX];

static void s_kill_spawned(void)
{
    for (int i = 0; i < S_SPAWNED_MAX; i++)
        if (s_spawned[i] > 0 && waitpid(s_spawned[i], NULL, WNOHANG) == 0) {
            kill(s_spawned[i], SIGKILL);
            waitpid(s_spawned[i], NULL, 0);
        }
}

static void s_track(pid_t pid, pid_t reaped)
{
    static bool registered;
    if (!registered)
        registered = atexit(s_kill_spawned) == 0;
    for (int i = 0; i < S_SPAWNED_MAX; i++)
        if (s_spawned[i] == reaped) {
            s_spawned[i] = pid;
            return;
        }
}

pid_t asy_test_spawn(char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (log_path) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
        }
        setpgid(0, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    s_track(pid, 0); /* into a free slot */
    return pid;
}

static int s_wait_status(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = asy_test_now_ms() + timeout_ms;
    while (asy_test_now_ms() < deadline) {
        pid_t done = waitpid(pid, status, WNOHANG);
        if (done == pid)
            return 0;
        if (done < 0)
            return -1;
        usleep(10 * 1000);
    }
    return -1;
}

int asy_test_stop(pid_t pid, int sig, int timeout_ms)
{
    int status = 0;
    kill(pid, sig);
    if (s_wait_status(pid, timeout_ms, &status) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    s_track(0, pid);
    return status;
}

int asy_test_wait(pid_t pid, int timeout_ms)
{
    int status = 0;
    int rc = s_wait_status(pid, timeout_ms, &status);
    if (rc != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    s_track(0, pid);
    return rc != 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int asy_test_run(char *const argv[], char *out, size_t out_size, int timeout_ms)
{
    int pipefd[2];
    cr_assert(pipe(pipefd) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    size_t used = 0;
    int64_t deadline = asy_test_now_ms() + timeout_ms;
    int status = 0;
    bool exited = false;
    while (asy_test_now_ms() < deadline) {
        char chunk[4096];
        ssize_t got = read(pipefd[0], chunk, sizeof chunk);
        if (got > 0) {
            if (out && used + 1 < out_size) {
                size_t take = (size_t)got < out_size - 1 - used ? (size_t)got : out_size - 1 - used;
                memcpy(out + used, chunk, take);
                used += take;
            }
            continue;
        }
        if (got == 0 && exited)
            break;
        if (!exited && waitpid(pid, &status, WNOHANG) == pid)
            exited = true;
        else if (got < 0)
            usleep(5 * 1000);
    }
    close(pipefd[0]);
    if (out && out_size)
        out[used] = 0;
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t asy_test_start_broker(const char *conninfo, const char *workdir, int port, char *endpoint,
                            size_t endpoint_size)
{
    return asy_test_start_broker_with(conninfo, workdir, port, NULL, endpoint, endpoint_size);
}

pid_t asy_test_start_broker_with(const char *conninfo, const char *workdir, int port,
                                 const char *const extra[], char *endpoint,
                                 size_t endpoint_size)
{
    char bind[64], endpoint_file[512], log_path[512], database[1024];
    if (port > 0)
        snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", port);
    else
        snprintf(bind, sizeof bind, "tcp://127.0.0.1:*");
    snprintf(endpoint_file, sizeof endpoint_file, "%s/broker.endpoint", workdir);
    snprintf(log_path, sizeof log_path, "%s/broker.log", workdir);
    snprintf(database, sizeof database, "%s", conninfo);
    unlink(endpoint_file);
    char any[] = "tcp://127.0.0.1:*";
    char *argv[32] = {ASY_ADVSYNCD_PATH, "--database", database, "--ingest", bind,
                      "--endpoint-file", endpoint_file, "--monitor-public", any,
                      "--monitor-public-snapshot", any, "--monitor-restricted", any,
                      "--monitor-restricted-snapshot", any, NULL};
    size_t argc = 15;
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert_lt(argc + 1, sizeof argv / sizeof *argv, "too many extra advsyncd args");
        argv[argc++] = (char *)extra[i];
    }
    argv[argc] = NULL;
    pid_t pid = asy_test_spawn(argv, log_path);
    int64_t deadline = asy_test_now_ms() + 30000;
    while (asy_test_now_ms() < deadline) {
        FILE *file = fopen(endpoint_file, "r");
        if (file) {
            char line[256] = "";
            bool ok = fgets(line, sizeof line, file) != NULL;
            fclose(file);
            line[strcspn(line, "\r\n")] = 0;
            if (ok && *line) {
                snprintf(endpoint, endpoint_size, "%s", line);
                return pid;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            cr_assert_fail("advsyncd exited early (status %d); see %s", status, log_path);
        usleep(20 * 1000);
    }
    kill(pid, SIGKILL);
    cr_assert_fail("advsyncd did not start listening within 30 s; see %s", log_path);
    return -1;
}

char *asy_test_agent_config(const char *workdir, const char *agent_id, const char *site_id,
                            const char *endpoint)
{
    char key_path[512];
    snprintf(key_path, sizeof key_path, "%s/consortium.key", workdir);
    if (access(key_path, F_OK) != 0) {
        /* a fixed test key: the same person links across the test's sites */
        FILE *key = fopen(key_path, "w");
        cr_assert_not_null(key);
        fprintf(key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
        fclose(key);
    }
    size_t size = strlen(workdir) + strlen(agent_id) + 16;
    char *config_path = malloc(size);
    cr_assert_not_null(config_path);
    snprintf(config_path, size, "%s/%s.cfg", workdir, agent_id);
    FILE *file = fopen(config_path, "w");
    cr_assert_not_null(file);
    fprintf(file,
            "agent\n    id = %s\n    site = %s\n    outbox = \"%s/%s.outbox.db\"\n"
            "    key_file = \"%s\"\n    endpoint = \"%s\"\n    ack_timeout_ms = 3000\n",
            agent_id, site_id, workdir, agent_id, key_path, endpoint ? endpoint : "tcp://127.0.0.1:1");
    fclose(file);
    return config_path;
}

pid_t asy_test_spawn_agent(const char *config, const char *log_dir, const char *name, ...)
{
    char log_path[512];
    snprintf(log_path, sizeof log_path, "%s/%s.log", log_dir, name);
    char *argv[32] = {ASY_AGENT_PATH, "--config", (char *)config};
    int argc = 3;
    va_list args;
    va_start(args, name);
    char *arg;
    while ((arg = va_arg(args, char *)) != NULL && argc < 31)
        argv[argc++] = arg;
    va_end(args);
    argv[argc] = NULL;
    return asy_test_spawn(argv, log_path);
}

int asy_test_agent(const char *config_path, char *out, size_t out_size, int timeout_ms, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = ASY_AGENT_PATH;
    argv[argc++] = "--config";
    argv[argc++] = (char *)config_path;
    va_list args;
    va_start(args, timeout_ms);
    char *arg;
    while ((arg = va_arg(args, char *)) != NULL && argc < 31)
        argv[argc++] = arg;
    va_end(args);
    argv[argc] = NULL;
    return asy_test_run(argv, out, out_size, timeout_ms);
}
