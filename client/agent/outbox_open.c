/*  outbox_open.c: opening an outbox (see outbox.h): the file created private, claimed with
    flock(2) for `run` and `reissue`, refused if it is another program's database, put in WAL
    mode, created or upgraded to the current format, checked to be this agent's, and its
    statements prepared. The rest of the outbox is outbox.c.  */
#include "outbox_private.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h> /* sodium_init: the digests */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_FORMAT 2 /* layout of the file; bump with a migration when it changes (s_upgrade) */
#define S_BUSY_TIMEOUT_MS 10000
#define S_BUSY_STEP_US 500 /* how often a writer waiting for the lock tries again */

static const char *S_SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " payload BLOB NOT NULL, submitted_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " digest BLOB) WITHOUT ROWID;";

static const char *S_SQL[ASY_OUTBOX_STATEMENTS] = {
    [ASY_OUTBOX_BEGIN] = "BEGIN IMMEDIATE",
    [ASY_OUTBOX_COMMIT] = "COMMIT",
    [ASY_OUTBOX_ROLLBACK] = "ROLLBACK",
    [ASY_OUTBOX_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ASY_OUTBOX_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
    [ASY_OUTBOX_SEEN_FIND] = "SELECT seq, digest FROM seen WHERE event_id = ?1",
    [ASY_OUTBOX_SEEN_INSERT] = "INSERT INTO seen (event_id, seq, digest) VALUES (?1, ?2, ?3)",
    [ASY_OUTBOX_ROW_INSERT] =
        "INSERT INTO outbox (seq, event_id, payload, submitted_ms) VALUES (?1, ?2, ?3, ?4)",
    [ASY_OUTBOX_ROW_READ] = "SELECT seq, payload FROM outbox WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    [ASY_OUTBOX_ROW_DELETE] = "DELETE FROM outbox WHERE seq <= ?1",
    /* the first pending event in seq order: one step down the primary key, however long the
       backlog (min(submitted_ms) read every pending row, and run refreshes this often) */
    [ASY_OUTBOX_OLDEST] = "SELECT submitted_ms FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT 1",
    [ASY_OUTBOX_EVENT_ID] = "SELECT event_id FROM outbox WHERE seq = ?1",
};

/* SQLite's own busy handler sleeps in steps of up to 100 ms, which puts a writer that loses
   a race for the lock tens of milliseconds behind. Poll every half millisecond instead, up to
   the time-out (self->busy_timeout_ms). */
static int s_busy(void *arg, int count)
{
    const asy_outbox_t *self = arg;
    if ((int64_t)count * S_BUSY_STEP_US >= (int64_t)self->busy_timeout_ms * 1000)
        return 0;
    struct timespec pause = {0, S_BUSY_STEP_US * 1000L};
    nanosleep(&pause, NULL);
    return 1;
}

static void s_set_busy_timeout(asy_outbox_t *self, int timeout_ms)
{
    self->busy_timeout_ms = timeout_ms;
    sqlite3_busy_handler(self->db, s_busy, self);
}

/* Puts the file in WAL mode. Another process creating the same new file at that moment (a
   write transaction, before its WAL mode is in place: `submit` and `run` started together on
   a new outbox) makes SQLite refuse the switch at once, without the busy handler: it is
   retried for the busy time-out. */
static bool s_wal(asy_outbox_t *self)
{
    for (int attempt = 0;; attempt++) {
        char *mode = NULL;
        sqlite3_stmt *pragma = NULL;
        if (sqlite3_prepare_v2(self->db, "PRAGMA journal_mode=WAL", -1, &pragma, NULL) ==
                SQLITE_OK &&
            sqlite3_step(pragma) == SQLITE_ROW)
            mode = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(pragma, 0));
        sqlite3_finalize(pragma);
        bool wal = mode && strcmp(mode, "wal") == 0;
        sqlite3_free(mode);
        int code = sqlite3_errcode(self->db);
        /* s_busy: the same steps and time-out as SQLite's waits on this connection */
        if (wal || (code != SQLITE_BUSY && code != SQLITE_LOCKED) || !s_busy(self, attempt))
            return wal;
    }
}

/* The file's format, or -1 if it holds no initialised outbox (a read: no write lock). */
static int64_t s_format(asy_outbox_t *self)
{
    sqlite3_stmt *statement = NULL;
    int64_t format = -1;
    if (sqlite3_prepare_v2(self->db, "SELECT value FROM meta WHERE key = 'format'", -1, &statement,
                           NULL) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW)
        format = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return format;
}

/* Checks the file belongs to this agent and site and reads its epoch. */
static int s_check_owner(asy_outbox_t *self, const char *path)
{
    sqlite3_stmt *statement = NULL;
    int rc = sqlite3_prepare_v2(self->db,
                                "SELECT (SELECT value FROM meta WHERE key = 'agent_id'),"
                                " (SELECT value FROM meta WHERE key = 'site_id'),"
                                " (SELECT value FROM meta WHERE key = 'epoch'),"
                                " (SELECT value FROM meta WHERE key = 'format')",
                                -1, &statement, NULL);
    int result = ASY_EDB;
    if (rc == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
        const char *agent = (const char *)sqlite3_column_text(statement, 0);
        const char *site = (const char *)sqlite3_column_text(statement, 1);
        self->epoch = (uint64_t)sqlite3_column_int64(statement, 2);
        int64_t format = sqlite3_column_int64(statement, 3);
        if (sqlite3_column_type(statement, 2) != SQLITE_INTEGER ||
            sqlite3_column_int64(statement, 2) < 1)
            asy_outbox_fail(self,
                            "%s: the outbox is damaged: meta epoch holds \"%.40s\", not a whole "
                            "number from 1",
                            path,
                            sqlite3_column_text(statement, 2)
                                ? (const char *)sqlite3_column_text(statement, 2)
                                : "NULL");
        else if (format != S_FORMAT)
            asy_outbox_fail(self, "%s: outbox format %lld is not the one this program knows (%d)",
                            path, (long long)format, S_FORMAT);
        else if (!agent || !site || strcmp(agent, self->agent_id) != 0 ||
                 strcmp(site, self->site_id) != 0)
            asy_outbox_fail(self, "%s belongs to agent %s of site %s, not to agent %s of site %s",
                            path, agent ? agent : "?", site ? site : "?", self->agent_id,
                            self->site_id);
        else
            result = 0;
    } else
        asy_outbox_db_fail(self, "reading the outbox meta data");
    sqlite3_finalize(statement);
    return result;
}

/* Brings a file of an earlier format to S_FORMAT, once, under the write lock (another
   process may be doing the same): format 1 had no digest in `seen`. */
static int s_upgrade(asy_outbox_t *self, const char *path)
{
    if (s_format(self) != 1)
        return 0; /* current, or one s_check_owner names */
    if (sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return asy_outbox_db_fail(self, "upgrading the outbox");
    /* read again under the lock: another process may have upgraded it meanwhile */
    bool still = s_format(self) == 1;
    /* the step from 1 to 2; a later format adds its own step after it */
    if ((still && sqlite3_exec(self->db,
                               "ALTER TABLE seen ADD COLUMN digest BLOB;"
                               " UPDATE meta SET value = 2 WHERE key = 'format';",
                               NULL, NULL, NULL) != SQLITE_OK) ||
        sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        asy_outbox_db_fail(self, "upgrading the outbox");
        sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
        return ASY_EDB;
    }
    if (still)
        asy_info("%s: outbox upgraded from format 1 to 2 (event digests)", path);
    return 0;
}

/* Creates the tables and the meta rows of a new file, then checks the file belongs to this
   agent and site. Opening an existing outbox of the current format only reads, so `status`
   and `run` never wait for a writer's lock to open one; one of an earlier format is upgraded
   first, once, under that lock. */
static int s_initialise(asy_outbox_t *self, const char *path)
{
    if (s_format(self) >= 0) {
        int rc = s_upgrade(self, path);
        return rc != 0 ? rc : s_check_owner(self, path);
    }
    char *sql = sqlite3_mprintf(
        "BEGIN IMMEDIATE; %s"
        "INSERT OR IGNORE INTO meta VALUES ('format', %d), ('agent_id', %Q), ('site_id', %Q),"
        " ('epoch', %lld), ('next_seq', 1), ('acked_seq', 0), ('last_contact_ms', 0),"
        " ('last_ack_ms', 0);",
        S_SCHEMA, S_FORMAT, self->agent_id, self->site_id, (long long)asy_outbox_now_ms());
    if (!sql)
        return asy_outbox_db_fail(self, "creating the outbox");
    int rc = sqlite3_exec(self->db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        asy_outbox_db_fail(self, "creating the outbox tables");
        sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
        return ASY_EDB;
    }
    int result = s_check_owner(self, path);
    if (sqlite3_exec(self->db, result == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) !=
            SQLITE_OK &&
        result == 0)
        result = asy_outbox_db_fail(self, "creating the outbox");
    return result;
}

/* The first table of the file that is not one of an outbox's (name[0] = 0 if none). Returns 0
   or an SQLite code (a file that is not a database says so here). */
static int s_foreign_table(asy_outbox_t *self, char *name, size_t size)
{
    sqlite3_stmt *statement = NULL;
    int rc = sqlite3_prepare_v2(self->db,
                                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                                "IN ('meta', 'outbox', 'seen') ORDER BY name LIMIT 1",
                                -1, &statement, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(statement);
        if (rc == SQLITE_ROW)
            snprintf(name, size, "%s", (const char *)sqlite3_column_text(statement, 0));
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : rc;
    }
    sqlite3_finalize(statement);
    return rc;
}

/* Whether the last failed open in this thread failed on the storage (asy_outbox_open). */
static _Thread_local bool s_open_on_storage;

/* After a failed open: SQLite's I/O, full-disk, cannot-open and read-only errors are the
   storage's: said so, with what SQLite needs beside the file, which an operator checking the
   file alone would miss. Only the first two often pass (s_open_on_storage). */
static void s_storage_hint(const asy_outbox_t *self, const char *path, char *error,
                           size_t error_size)
{
    int code = self && self->db ? sqlite3_errcode(self->db) & 0xff : SQLITE_OK;
    /* a full disk and I/O errors pass; a folder not writable or a path SQLite cannot open
       (longer than it takes, say) wait for an operator (no restart loop): hinted alike */
    s_open_on_storage = code == SQLITE_IOERR || code == SQLITE_FULL;
    bool hint = s_open_on_storage || code == SQLITE_CANTOPEN || code == SQLITE_READONLY;
    size_t used = strlen(error);
    if (hint && used + 1 < error_size)
        snprintf(error + used, error_size - used,
                 " (is the disk full, or the folder not writable? SQLite writes %s-wal and "
                 "%s-shm beside the file)",
                 path, path);
}

bool asy_outbox_open_failed_on_storage(void)
{
    return s_open_on_storage;
}

/* A handle for agent_id and site_id, not yet opened. Returns NULL with error[] set. */
static asy_outbox_t *s_new(const char *agent_id, const char *site_id, char *error,
                           size_t error_size)
{
    asy_outbox_t *self = calloc(1, sizeof *self);
    if (!self || sodium_init() < 0) {
        snprintf(error, error_size, self ? "libsodium cannot start" : "out of memory");
        free(self);
        return NULL;
    }
    if (strlen(agent_id) > ASY_ID_MAX || strlen(site_id) > ASY_ID_MAX) {
        snprintf(error, error_size, "agent or site id longer than %d characters", ASY_ID_MAX);
        free(self);
        return NULL;
    }
    snprintf(self->agent_id, sizeof self->agent_id, "%s", agent_id);
    snprintf(self->site_id, sizeof self->site_id, "%s", site_id);
    self->claim_fd = -1;
    return self;
}

/* Opens the file (creating it private), takes the claim if asked, and notes which file it
   is (asy_outbox_replaced). Returns 0, or ASY_EIO / ASY_ENOMEM with error[] set. */
static int s_take_file(asy_outbox_t *self, const char *path, bool claim, char *error,
                       size_t error_size)
{
    /* the outbox holds personal (if pseudonymised) data: create it private; SQLite gives
       the -wal and -shm files the same mode */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(error, error_size, "cannot open %s: %s", path, strerror(errno));
        return ASY_EIO;
    }
    /* The claim is taken, and its descriptor kept, before SQLite opens the file: closing any
       descriptor of a file drops the process's POSIX locks on it, SQLite's included. */
    if (claim && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int failure = errno;
        if (failure == EWOULDBLOCK)
            snprintf(error, error_size,
                     "%s is in use by another `advsync-agent run` or `reissue`; one at a time",
                     path);
        else
            snprintf(error, error_size, "cannot lock %s: %s", path, strerror(failure));
        close(fd);
        return ASY_EIO;
    }
    struct stat opened;
    if (fstat(fd, &opened) == 0) {
        self->device = opened.st_dev;
        self->inode = opened.st_ino;
    }
    self->path = strdup(path);
    if (claim)
        self->claim_fd = fd;
    else
        close(fd);
    if (!self->path) {
        snprintf(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    return 0;
}

/* Opens the file in SQLite, refuses another program's database, puts it in WAL mode and
   creates or upgrades the outbox in it. Returns 0, or ASY_EDB with error[] set. */
static int s_open_database(asy_outbox_t *self, const char *path, char *error, size_t error_size)
{
    int rc = sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(error, error_size, "cannot open %s: %s", path,
                 self->db ? sqlite3_errmsg(self->db) : sqlite3_errstr(rc));
        return ASY_EDB;
    }
    s_set_busy_timeout(self, S_BUSY_TIMEOUT_MS);
    /* another program's database (a case system's, given as --outbox by mistake) is not
       taken over: looked at before anything (WAL mode included) changes the file */
    char foreign[128] = "";
    rc = s_foreign_table(self, foreign, sizeof foreign);
    if (rc != 0 || foreign[0]) {
        if (foreign[0])
            snprintf(error, error_size,
                     "%s is not an advsync outbox: it holds a table \"%s\"; give --outbox (or "
                     "agent/outbox) a file of its own",
                     path, foreign);
        else
            snprintf(error, error_size, "%s cannot be read as an outbox: %s", path,
                     sqlite3_errmsg(self->db));
        return ASY_EDB;
    }
    bool wal = s_wal(self);
    if (!wal) {
        snprintf(error, error_size, "%s: cannot switch to WAL mode: %s", path,
                 sqlite3_errmsg(self->db));
        return ASY_EDB;
    }
    if (sqlite3_exec(self->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(error, error_size, "%s: %s", path, sqlite3_errmsg(self->db));
        return ASY_EDB;
    }
    if (s_initialise(self, path) != 0) {
        snprintf(error, error_size, "%s", self->errmsg);
        return ASY_EDB;
    }
    return 0;
}

/* Prepares the statements of S_SQL once for the handle's life. Returns 0, or ASY_EDB with
   error[] set. */
static int s_prepare(asy_outbox_t *self, const char *path, char *error, size_t error_size)
{
    for (int i = 0; i < ASY_OUTBOX_STATEMENTS; i++) {
        if (sqlite3_prepare_v3(self->db, S_SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &self->statement[i], NULL) != SQLITE_OK) {
            snprintf(error, error_size, "%s: preparing \"%s\": %s", path, S_SQL[i],
                     sqlite3_errmsg(self->db));
            return ASY_EDB;
        }
    }
    return 0;
}

/* asy_outbox_open and asy_outbox_open_claimed: NULL with error[] set on failure, with a hint
   where the storage is at fault (s_storage_hint). */
static asy_outbox_t *s_open(const char *path, const char *agent_id, const char *site_id, bool claim,
                            char *error, size_t error_size)
{
    s_open_on_storage = false;
    asy_outbox_t *self = s_new(agent_id, site_id, error, error_size);
    if (!self)
        return NULL;
    if (s_take_file(self, path, claim, error, error_size) == 0 &&
        s_open_database(self, path, error, error_size) == 0 &&
        s_prepare(self, path, error, error_size) == 0)
        return self;
    s_storage_hint(self, path, error, error_size);
    asy_outbox_destroy(&self);
    return NULL;
}

bool asy_outbox_replaced(const asy_outbox_t *self)
{
    struct stat now;
    if (stat(self->path, &now) != 0)
        return errno == ENOENT || errno == ENOTDIR; /* gone; other errors prove nothing */
    if (self->inode == 0)
        return false; /* the opened file could not be looked at: nothing to compare */
    return now.st_dev != self->device || now.st_ino != self->inode;
}

asy_outbox_t *asy_outbox_open(const char *path, const char *agent_id, const char *site_id,
                              char *error, size_t error_size)
{
    return s_open(path, agent_id, site_id, false, error, error_size);
}

asy_outbox_t *asy_outbox_open_claimed(const char *path, const char *agent_id, const char *site_id,
                                      char *error, size_t error_size)
{
    return s_open(path, agent_id, site_id, true, error, error_size);
}

void asy_outbox_destroy(asy_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    asy_outbox_t *self = *self_p;
    if (self->in_transaction)
        asy_outbox_rollback(self);
    for (int i = 0; i < ASY_OUTBOX_STATEMENTS; i++)
        sqlite3_finalize(self->statement[i]);
    sqlite3_close(self->db);
    if (self->claim_fd >= 0)
        close(self->claim_fd); /* releases the flock */
    free(self->path);
    free(self);
    *self_p = NULL;
}

void asy_outbox_set_busy_timeout(asy_outbox_t *self, int timeout_ms)
{
    s_set_busy_timeout(self, timeout_ms);
}
