/*  test_outbox.c: the agent's SQLite outbox: numbering, reading, acknowledging, duplicates,
    durability across reopen, two writers on one file.  */
#include "harness.h"
#include "outbox.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_CASE "4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0"

static char s_dir[256];
static char s_path[512];

static void s_setup(void)
{
    asy_test_mkdtemp(s_dir, sizeof s_dir, "asy-test-outbox");
    snprintf(s_path, sizeof s_path, "%s/agent.outbox.db", s_dir);
}

static void s_teardown(void)
{
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(outbox, .init = s_setup, .fini = s_teardown);

static int64_t s_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static asy_outbox_t *s_open(const char *agent, const char *site)
{
    char error[512] = "";
    asy_outbox_t *outbox = asy_outbox_open(s_path, agent, site, error, sizeof error);
    cr_assert_not_null(outbox, "open: %s", error);
    return outbox;
}

/* A minimal event; event_id given if not NULL. Caller owns. */
static asy_event_t *s_event(const char *event_id)
{
    char text[512];
    if (event_id)
        snprintf(text, sizeof text,
                 "{\"eventId\":\"%s\",\"caseId\":\"" S_CASE "\",\"occurredAt\":"
                 "\"2026-03-02T10:00:00Z\",\"contactMade\":{\"channel\":\"CHANNEL_PHONE\"}}",
                 event_id);
    else
        snprintf(text, sizeof text,
                 "{\"caseId\":\"" S_CASE "\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                 "\"contactMade\":{\"channel\":\"CHANNEL_PHONE\"}}");
    json_error_t json_error;
    json_t *object = json_loads(text, 0, &json_error);
    cr_assert_not_null(object);
    asy_event_t *event = NULL;
    char error[256] = "";
    cr_assert_eq(asy_event_from_json(object, &event, error, sizeof error), 0, "%s", error);
    json_decref(object);
    return event;
}

static uint64_t s_append(asy_outbox_t *outbox, const char *event_id)
{
    asy_event_t *event = s_event(event_id);
    uint64_t seq = 0;
    int rc = asy_outbox_append(outbox, event, &seq);
    asy_event_destroy(&event);
    cr_assert_eq(rc, 0, "append: %s", asy_outbox_errmsg(outbox));
    return seq;
}

typedef struct {
    uint64_t seqs[64];
    size_t count;
    size_t stop_after; /* 0 = never */
    uint64_t epoch;
} s_seen_t;

static int s_collect(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    s_seen_t *seen = arg;
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0, "row %llu undecodable",
                 (unsigned long long)seq);
    asy_event_summary_t summary;
    asy_event_summarise(event, &summary);
    asy_event_destroy(&event);
    /* the stored bytes carry the envelope the outbox stamped */
    cr_assert_eq(summary.seq, seq);
    cr_assert_eq(summary.epoch, seen->epoch);
    cr_assert_str_eq(summary.agent_id, "agent-1");
    cr_assert_str_eq(summary.site_id, "site-1");
    cr_assert_str_eq(summary.case_id, S_CASE);
    cr_assert(asy_uuid_valid(summary.event_id));
    seen->seqs[seen->count++] = seq;
    return seen->stop_after && seen->count == seen->stop_after;
}

/* submit and run started together on a new outbox: while one creates the file (a write
   transaction, before WAL mode is in place) the other's switch to WAL mode is refused at once
   by SQLite, without its busy handler. It waits now instead of failing with "cannot switch
   to WAL mode: database is locked". */
Test(outbox, opening_a_file_another_process_is_creating_waits_for_it)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t creator = fork(); /* before any SQLite handle: SQLite's lock state must not be copied */
    cr_assert(creator >= 0);
    if (creator == 0) {
        sqlite3 *db = NULL;
        /* the busy time-out as every outbox connection has one: the COMMIT needs the file to
           itself and the opener's polling reads hold it shared for moments (CI saw COMMIT
           refused with SQLITE_BUSY under ASan, where those moments are longer) */
        bool ok = sqlite3_open(s_path, &db) == SQLITE_OK &&
                  sqlite3_busy_timeout(db, 10 * 1000) == SQLITE_OK &&
                  sqlite3_exec(db, "BEGIN IMMEDIATE; CREATE TABLE early (x);", NULL, NULL, NULL) ==
                      SQLITE_OK;
        ok = write(ready[1], "x", 1) == 1 && ok;
        usleep(300 * 1000);
        ok = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK && ok;
        sqlite3_close(db);
        _exit(ok ? 0 : 1);
    }
    char byte;
    cr_assert_eq(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    close(ready[1]);
    char error[512] = "";
    asy_outbox_t *outbox = asy_outbox_open(s_path, "ward-a", "site-a", error, sizeof error);
    cr_assert_not_null(outbox, "%s", error);
    asy_outbox_destroy(&outbox);
    int status = 0;
    cr_assert_eq(waitpid(creator, &status, 0), creator);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the creator failed");
}

Test(outbox, numbers_events_from_one_in_a_transaction)
{
    int64_t before = s_now_ms();
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    uint64_t epoch = asy_outbox_epoch(outbox);
    cr_assert(epoch >= (uint64_t)before - 1000 && epoch <= (uint64_t)s_now_ms() + 1000,
              "epoch %llu is not the creation time", (unsigned long long)epoch);
    cr_assert_eq(asy_outbox_begin(outbox), 0);
    for (uint64_t i = 1; i <= 3; i++)
        cr_assert_eq(s_append(outbox, NULL), i);
    cr_assert_eq(asy_outbox_commit(outbox), 0);

    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 3);
    cr_assert_eq(status.acked_seq, 0);
    cr_assert_eq(status.backlog, 3);
    cr_assert_eq(status.epoch, epoch);
    cr_assert_str_eq(status.agent_id, "agent-1");
    cr_assert_str_eq(status.site_id, "site-1");
    cr_assert(status.oldest_pending_ms >= before);
    cr_assert_eq(status.last_contact_ms, 0);
    cr_assert_eq(status.last_ack_ms, 0);

    s_seen_t seen = {.epoch = epoch};
    size_t count = 0;
    cr_assert_eq(asy_outbox_read(outbox, 1, 100, s_collect, &seen, &count), 0);
    cr_assert_eq(count, 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(seen.seqs[i], i + 1);
    asy_outbox_destroy(&outbox);
    cr_assert_null(outbox);
    asy_outbox_destroy(&outbox); /* idempotent */

    struct stat info;
    cr_assert_eq(stat(s_path, &info), 0);
    cr_assert_eq(info.st_mode & 0777, 0600, "the outbox should be private: %o", info.st_mode);
}

Test(outbox, read_honours_from_max_and_stop)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_begin(outbox), 0);
    for (int i = 0; i < 10; i++)
        s_append(outbox, NULL);
    cr_assert_eq(asy_outbox_commit(outbox), 0);

    s_seen_t seen = {.epoch = asy_outbox_epoch(outbox)};
    size_t count = 0;
    cr_assert_eq(asy_outbox_read(outbox, 4, 3, s_collect, &seen, &count), 0);
    cr_assert_eq(count, 3);
    cr_assert_eq(seen.seqs[0], 4);
    cr_assert_eq(seen.seqs[2], 6);

    s_seen_t stopped = {.epoch = asy_outbox_epoch(outbox), .stop_after = 2};
    cr_assert_eq(asy_outbox_read(outbox, 1, 100, s_collect, &stopped, &count), 0);
    cr_assert_eq(count, 2, "the callback asked to stop after two rows");

    s_seen_t none = {.epoch = asy_outbox_epoch(outbox)};
    cr_assert_eq(asy_outbox_read(outbox, 11, 100, s_collect, &none, &count), 0);
    cr_assert_eq(count, 0);
    asy_outbox_destroy(&outbox);
}

Test(outbox, ack_prunes_and_is_idempotent)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    for (int i = 0; i < 5; i++)
        s_append(outbox, NULL); /* lone appends: each its own transaction */
    cr_assert_eq(asy_outbox_ack(outbox, 3, 1767225600123), 0, "%s", asy_outbox_errmsg(outbox));

    s_seen_t seen = {.epoch = asy_outbox_epoch(outbox)};
    size_t count = 0;
    cr_assert_eq(asy_outbox_read(outbox, 1, 100, s_collect, &seen, &count), 0);
    cr_assert_eq(count, 2, "acknowledged rows are deleted");
    cr_assert_eq(seen.seqs[0], 4);

    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.acked_seq, 3);
    cr_assert_eq(status.backlog, 2);
    cr_assert_eq(status.last_ack_ms, 1767225600123);

    cr_assert_eq(asy_outbox_ack(outbox, 3, 1767225700000), 0);
    cr_assert_eq(asy_outbox_ack(outbox, 1, 1767225700000), 0, "a lower seq is ignored");
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.acked_seq, 3);
    cr_assert_eq(status.last_ack_ms, 1767225600123);

    cr_assert_eq(asy_outbox_ack(outbox, 9, 1767225700000), ASY_EINVAL,
                 "an ack beyond the last seq must be refused");
    cr_assert(strstr(asy_outbox_errmsg(outbox), "9"), "%s", asy_outbox_errmsg(outbox));

    cr_assert_eq(asy_outbox_ack(outbox, 5, 1767225800000), 0);
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.backlog, 0);
    cr_assert_eq(status.oldest_pending_ms, 0);
    /* numbering goes on after the pruned rows */
    cr_assert_eq(s_append(outbox, NULL), 6);
    asy_outbox_destroy(&outbox);
}

Test(outbox, rollback_gives_back_the_seqs)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_begin(outbox), 0);
    s_append(outbox, NULL);
    s_append(outbox, NULL);
    cr_assert_eq(asy_outbox_rollback(outbox), 0);
    cr_assert_eq(asy_outbox_begin(outbox), 0);
    cr_assert_eq(asy_outbox_begin(outbox), ASY_EINVAL, "nested begin is a programmer error");
    cr_assert_eq(s_append(outbox, NULL), 1);
    cr_assert_eq(asy_outbox_commit(outbox), 0);
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 1);
    asy_outbox_destroy(&outbox);
}

Test(outbox, a_format_1_file_is_upgraded_and_its_old_ids_stay_duplicates)
{
    /* the layout before event digests: `seen` without its digest column */
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(s_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "PRAGMA journal_mode=WAL;"
                              "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
                              "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT "
                              "NULL, payload BLOB NOT NULL, submitted_ms INTEGER NOT NULL);"
                              "CREATE TABLE seen (event_id TEXT PRIMARY KEY, seq INTEGER NOT "
                              "NULL) WITHOUT ROWID;"
                              "INSERT INTO meta VALUES ('format', 1), ('agent_id', 'agent-1'),"
                              " ('site_id', 'site-1'), ('epoch', 7), ('next_seq', 2),"
                              " ('acked_seq', 1), ('last_contact_ms', 0), ('last_ack_ms', 0);"
                              "INSERT INTO seen VALUES "
                              "('01890a5d-ac96-774b-bcce-b302099a8057', 0);",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);

    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    asy_event_t *event = s_event("01890a5d-ac96-774b-bcce-b302099a8057");
    uint64_t seq = 99;
    cr_assert_eq(asy_outbox_append(outbox, event, &seq), ASY_EEXIST,
                 "an id from before the upgrade (no digest) is a duplicate whatever it holds");
    asy_event_destroy(&event);
    cr_assert_eq(s_append(outbox, "01890a5d-ac96-774b-bcce-b302099a8058"), 2);
    asy_outbox_destroy(&outbox);

    cr_assert_eq(sqlite3_open(s_path, &db), SQLITE_OK);
    sqlite3_stmt *statement = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT (SELECT value FROM meta WHERE key = 'format'),"
                                    " (SELECT length(digest) FROM seen WHERE event_id ="
                                    " '01890a5d-ac96-774b-bcce-b302099a8058')",
                                    -1, &statement, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(statement), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(statement, 0), 2);
    cr_assert_eq(sqlite3_column_int(statement, 1), 16);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    /* opened again: nothing more to do */
    outbox = s_open("agent-1", "site-1");
    asy_outbox_destroy(&outbox);
}

Test(outbox, an_event_id_reused_for_other_content_is_refused)
{
    const char *id = "01890a5d-ac96-774b-bcce-b302099a8057";
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    cr_assert_eq(s_append(outbox, id), 1);
    char text[512];
    snprintf(text, sizeof text,
             "{\"eventId\":\"%s\",\"caseId\":\"" S_CASE "\",\"occurredAt\":"
             "\"2026-03-02T10:00:00Z\",\"contactMade\":{\"channel\":\"CHANNEL_VIDEO\"}}",
             id);
    json_error_t json_error;
    json_t *object = json_loads(text, 0, &json_error);
    asy_event_t *other = NULL;
    char error[256];
    cr_assert_eq(asy_event_from_json(object, &other, error, sizeof error), 0, "%s", error);
    json_decref(object);
    uint64_t seq = 99;
    cr_assert_eq(asy_outbox_append(outbox, other, &seq), ASY_EINVAL);
    cr_assert(strstr(asy_outbox_errmsg(outbox), "stored before with other content"), "%s",
              asy_outbox_errmsg(outbox));
    asy_event_destroy(&other);
    /* after the acknowledgement prunes the payload, the digest still tells */
    cr_assert_eq(asy_outbox_ack(outbox, 1, s_now_ms()), 0);
    asy_event_t *same = s_event(id);
    cr_assert_eq(asy_outbox_append(outbox, same, &seq), ASY_EEXIST);
    asy_event_destroy(&same);
    asy_outbox_destroy(&outbox);
}

Test(outbox, duplicate_event_id_is_recognised_before_and_after_ack)
{
    const char *id = "01890a5d-ac96-774b-bcce-b302099a8057";
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    cr_assert_eq(s_append(outbox, id), 1);
    s_append(outbox, NULL);

    asy_event_t *event = s_event(id);
    uint64_t seq = 99;
    cr_assert_eq(asy_outbox_append(outbox, event, &seq), ASY_EEXIST);
    cr_assert_eq(seq, 1, "the duplicate's seq is reported while it is held");
    cr_assert_eq(asy_outbox_ack(outbox, 2, s_now_ms()), 0);
    cr_assert_eq(asy_outbox_append(outbox, event, &seq), ASY_EEXIST,
                 "a pruned event id is still known");
    cr_assert_eq(seq, 0);
    asy_event_destroy(&event);

    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 2, "a duplicate takes no seq");
    asy_outbox_destroy(&outbox);
}

Test(outbox, survives_reopen_and_refuses_another_agent)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    uint64_t epoch = asy_outbox_epoch(outbox);
    for (int i = 0; i < 4; i++)
        s_append(outbox, NULL);
    cr_assert_eq(asy_outbox_ack(outbox, 1, s_now_ms()), 0);
    cr_assert_eq(asy_outbox_note_contact(outbox, s_now_ms() + 5000), 0);
    asy_outbox_destroy(&outbox);

    outbox = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_epoch(outbox), epoch, "the epoch is fixed at creation");
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 4);
    cr_assert_eq(status.acked_seq, 1);
    cr_assert_gt(status.last_contact_ms, status.last_ack_ms);
    cr_assert_eq(s_append(outbox, NULL), 5);
    asy_outbox_destroy(&outbox);

    char error[512] = "";
    cr_assert_null(asy_outbox_open(s_path, "agent-2", "site-1", error, sizeof error));
    cr_assert(strstr(error, "belongs to agent agent-1"), "%s", error);
    cr_assert_null(asy_outbox_open(s_path, "agent-1", "site-2", error, sizeof error));
    cr_assert(strstr(error, "site-1"), "%s", error);
    cr_assert_null(asy_outbox_open("/nonexistent-dir/x.db", "a", "s", error, sizeof error));
    cr_assert(strstr(error, "nonexistent-dir"), "%s", error);
}

/* A meta value edited by hand used to read as 0: next_seq 0 handed out seqs the centre held. */
Test(outbox, a_damaged_meta_value_is_an_error_not_a_zero)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    s_append(outbox, NULL);
    asy_outbox_destroy(&outbox);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(s_path, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db, "UPDATE meta SET value = 'abc' WHERE key = 'next_seq'", NULL, NULL, NULL),
        SQLITE_OK);
    outbox = s_open("agent-1", "site-1");
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), ASY_EDB);
    cr_assert(strstr(asy_outbox_errmsg(outbox), "damaged: meta next_seq holds \"abc\""), "%s",
              asy_outbox_errmsg(outbox));
    cr_assert_eq(asy_outbox_begin(outbox), ASY_EDB, "no seq is handed out");
    asy_outbox_destroy(&outbox);
    /* a number stored as text by a hand edit with quotes is a number; a missing row is not */
    cr_assert_eq(
        sqlite3_exec(db, "UPDATE meta SET value = '2' WHERE key = 'next_seq'", NULL, NULL, NULL),
        SQLITE_OK);
    outbox = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_status(outbox, &status), 0, "%s", asy_outbox_errmsg(outbox));
    asy_outbox_destroy(&outbox);
    cr_assert_eq(sqlite3_exec(db, "DELETE FROM meta WHERE key = 'acked_seq'", NULL, NULL, NULL),
                 SQLITE_OK);
    outbox = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_status(outbox, &status), ASY_EDB);
    cr_assert(strstr(asy_outbox_errmsg(outbox), "meta acked_seq holds \"(no row)\""), "%s",
              asy_outbox_errmsg(outbox));
    asy_outbox_destroy(&outbox);
    cr_assert_eq(sqlite3_exec(db, "INSERT INTO meta VALUES ('acked_seq', 1)", NULL, NULL, NULL),
                 SQLITE_OK);

    cr_assert_eq(sqlite3_exec(db,
                              "UPDATE meta SET value = 2 WHERE key = 'next_seq';"
                              " UPDATE meta SET value = -1 WHERE key = 'epoch'",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    char error[512] = "";
    cr_assert_null(asy_outbox_open(s_path, "agent-1", "site-1", error, sizeof error));
    cr_assert(strstr(error, "damaged: meta epoch holds \"-1\""), "%s", error);
}

Test(outbox, two_writers_get_contiguous_seqs)
{
    asy_outbox_t *first = s_open("agent-1", "site-1");
    asy_outbox_t *second = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_epoch(first), asy_outbox_epoch(second));
    for (int i = 0; i < 20; i++) {
        asy_outbox_t *writer = i % 3 ? first : second;
        cr_assert_eq(s_append(writer, NULL), (uint64_t)i + 1);
    }
    /* a batch on one handle, then the other continues after it */
    cr_assert_eq(asy_outbox_begin(first), 0);
    s_append(first, NULL);
    s_append(first, NULL);
    cr_assert_eq(asy_outbox_commit(first), 0);
    cr_assert_eq(s_append(second, NULL), 23);

    s_seen_t seen = {.epoch = asy_outbox_epoch(first)};
    size_t count = 0;
    cr_assert_eq(asy_outbox_read(second, 1, 64, s_collect, &seen, &count), 0);
    cr_assert_eq(count, 23);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(seen.seqs[i], i + 1, "hole or reorder at %zu", i);
    asy_outbox_destroy(&first);
    asy_outbox_destroy(&second);
}

Test(outbox, parallel_processes_never_share_a_seq)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1"); /* create the file first */
    asy_outbox_destroy(&outbox);
    pid_t children[3];
    for (int c = 0; c < 3; c++) {
        children[c] = fork();
        cr_assert_geq(children[c], 0);
        if (children[c] == 0) {
            char error[512];
            asy_outbox_t *mine = asy_outbox_open(s_path, "agent-1", "site-1", error, sizeof error);
            int failures = !mine;
            for (int batch = 0; mine && batch < 10; batch++) {
                failures += asy_outbox_begin(mine) != 0;
                for (int i = 0; i < 5; i++) {
                    asy_event_t *event = s_event(NULL);
                    uint64_t seq;
                    failures += asy_outbox_append(mine, event, &seq) != 0;
                    asy_event_destroy(&event);
                }
                failures += asy_outbox_commit(mine) != 0;
            }
            asy_outbox_destroy(&mine);
            _exit(failures ? 1 : 0);
        }
    }
    for (int c = 0; c < 3; c++) {
        int status;
        cr_assert_eq(waitpid(children[c], &status, 0), children[c]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", c);
    }
    outbox = s_open("agent-1", "site-1");
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 150);
    s_seen_t seen = {.epoch = asy_outbox_epoch(outbox)};
    uint64_t expected = 1;
    size_t count = 0;
    while (expected <= 150) {
        seen.count = 0;
        cr_assert_eq(asy_outbox_read(outbox, expected, 64, s_collect, &seen, &count), 0);
        cr_assert_gt(count, 0);
        for (size_t i = 0; i < count; i++, expected++)
            cr_assert_eq(seen.seqs[i], expected);
    }
    asy_outbox_destroy(&outbox);
}

Test(outbox, contact_notes_never_wait_for_a_writer)
{
    asy_outbox_t *writer = s_open("agent-1", "site-1");
    asy_outbox_t *forwarder = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_begin(writer), 0);
    s_append(writer, NULL);
    int64_t start = s_now_ms();
    cr_assert_eq(asy_outbox_note_contact(forwarder, 1767225600000), 0,
                 "a busy outbox only skips the note: %s", asy_outbox_errmsg(forwarder));
    cr_assert_lt(s_now_ms() - start, 1000, "note_contact waited for the writer's lock");
    cr_assert_eq(asy_outbox_commit(writer), 0);

    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(forwarder, &status), 0);
    cr_assert_eq(status.last_contact_ms, 0, "skipped while busy");
    cr_assert_eq(asy_outbox_note_contact(forwarder, 1767225600000), 0);
    cr_assert_eq(asy_outbox_note_contact(forwarder, 1767225600500), 0); /* throttled */
    cr_assert_eq(asy_outbox_status(writer, &status), 0);
    cr_assert_eq(status.last_contact_ms, 1767225600000);
    cr_assert_eq(asy_outbox_note_contact(forwarder, 1767225601500), 0);
    cr_assert_eq(asy_outbox_status(writer, &status), 0);
    cr_assert_eq(status.last_contact_ms, 1767225601500);
    asy_outbox_destroy(&writer);
    asy_outbox_destroy(&forwarder);
}

/* ----------------------------------------------------------------------------------------------
   Re-issue (PROTOCOL.md 5.5). */

typedef struct {
    char ids[16][ASY_UUID_TEXT + 1];
    uint64_t epochs[16];
    size_t count;
} s_ids_t;

static int s_collect_ids(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    s_ids_t *ids = arg;
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0);
    asy_event_summary_t summary;
    asy_event_summarise(event, &summary);
    asy_event_destroy(&event);
    cr_assert_eq(summary.seq, seq, "the stored bytes carry the row's seq");
    cr_assert_lt(ids->count, 16);
    snprintf(ids->ids[ids->count], sizeof ids->ids[0], "%s", summary.event_id);
    ids->epochs[ids->count++] = summary.epoch;
    return 0;
}

static asy_outbox_t *s_open_claimed(void)
{
    char error[512] = "";
    asy_outbox_t *outbox =
        asy_outbox_open_claimed(s_path, "agent-1", "site-1", error, sizeof error);
    cr_assert_not_null(outbox, "open claimed: %s", error);
    return outbox;
}

Test(outbox, reissue_gives_unacknowledged_events_a_new_epoch_and_keeps_their_ids)
{
    asy_outbox_t *outbox = s_open("agent-1", "site-1");
    for (int i = 0; i < 5; i++)
        s_append(outbox, NULL);
    s_ids_t acked = {0};
    cr_assert_eq(asy_outbox_read(outbox, 1, 2, s_collect_ids, &acked, NULL), 0);
    cr_assert_eq(asy_outbox_ack(outbox, 2, s_now_ms()), 0);
    s_ids_t before = {0};
    cr_assert_eq(asy_outbox_read(outbox, 1, 100, s_collect_ids, &before, NULL), 0);
    cr_assert_eq(before.count, 3, "seqs 3..5 are held");
    uint64_t old_epoch = asy_outbox_epoch(outbox);
    asy_outbox_destroy(&outbox);

    outbox = s_open_claimed();
    asy_outbox_reissue_t done;
    cr_assert_eq(asy_outbox_reissue(outbox, &done), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert_eq(done.old_epoch, old_epoch);
    cr_assert_gt(done.new_epoch, old_epoch);
    cr_assert(done.from_seq == 3 && done.to_seq == 5 && done.count == 3);
    cr_assert_eq(asy_outbox_epoch(outbox), done.new_epoch);

    s_ids_t after = {0};
    cr_assert_eq(asy_outbox_read(outbox, 1, 100, s_collect_ids, &after, NULL), 0);
    cr_assert_eq(after.count, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(after.ids[i], before.ids[i], "the same events, in the same order");
        cr_assert_eq(after.epochs[i], done.new_epoch, "stamped with the new epoch");
    }
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert(status.epoch == done.new_epoch && status.last_seq == 3 && status.acked_seq == 0 &&
              status.backlog == 3);
    cr_assert(status.reissue_of_epoch == old_epoch && status.reissue_from_seq == 3 &&
              status.reissue_last_seq == 3);

    /* new events follow the re-issued ones; an old id is still a duplicate, at its new seq */
    cr_assert_eq(s_append(outbox, NULL), 4);
    asy_event_t *again = s_event(before.ids[0]);
    uint64_t seq = 0;
    cr_assert_eq(asy_outbox_append(outbox, again, &seq), ASY_EEXIST);
    cr_assert_eq(seq, 1);
    asy_event_destroy(&again);
    /* one acknowledged under the old epoch: known, with no seq of this epoch */
    again = s_event(acked.ids[1]);
    seq = 99;
    cr_assert_eq(asy_outbox_append(outbox, again, &seq), ASY_EEXIST);
    cr_assert_eq(seq, 0);
    cr_assert(strstr(asy_outbox_errmsg(outbox), "acknowledged"), "%s", asy_outbox_errmsg(outbox));
    asy_event_destroy(&again);

    /* a re-issued epoch may be re-issued again (the centre follows the chain) */
    cr_assert_eq(asy_outbox_ack(outbox, 1, s_now_ms()), 0);
    uint64_t first_reissue = done.new_epoch;
    cr_assert_eq(asy_outbox_reissue(outbox, &done), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert(done.old_epoch == first_reissue && done.from_seq == 2 && done.to_seq == 4 &&
              done.count == 3);
    asy_outbox_destroy(&outbox);

    /* and the file says so after reopening */
    outbox = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert(status.epoch == done.new_epoch && status.last_seq == 3 &&
              status.reissue_of_epoch == done.old_epoch && status.reissue_from_seq == 2 &&
              status.reissue_last_seq == 3);
    asy_outbox_destroy(&outbox);
}

/* The centre knows an epoch only once it has said HELLO: a re-issue of a re-issue it never
   WELCOMEd re-issues the original epoch instead (PROTOCOL.md 5.5), else the centre could not
   follow the chain and would store every event again. Once WELCOMEd, the chain goes through. */
Test(outbox, a_reissue_of_an_epoch_never_welcomed_reissues_its_origin)
{
    asy_outbox_t *outbox = s_open_claimed();
    for (int i = 0; i < 5; i++)
        s_append(outbox, NULL);
    cr_assert_eq(asy_outbox_ack(outbox, 2, s_now_ms()), 0);
    uint64_t origin = asy_outbox_epoch(outbox);
    asy_outbox_reissue_t first, second, third;
    cr_assert_eq(asy_outbox_reissue(outbox, &first), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert(first.old_epoch == origin && first.from_seq == 3 && first.skipped_epoch == 0);
    cr_assert_eq(asy_outbox_reissue(outbox, &second), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert_gt(second.new_epoch, first.new_epoch);
    cr_assert_eq(second.skipped_epoch, first.new_epoch);
    cr_assert(second.old_epoch == origin && second.from_seq == 3 && second.to_seq == 5 &&
                  second.count == 3,
              "epoch %llu from %llu to %llu, %llu events", (unsigned long long)second.old_epoch,
              (unsigned long long)second.from_seq, (unsigned long long)second.to_seq,
              (unsigned long long)second.count);
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert(status.reissue_of_epoch == origin && status.reissue_from_seq == 3 &&
              status.reissue_last_seq == 3);

    /* WELCOMEd (by run, before it publishes): the next re-issue chains to this epoch */
    cr_assert_eq(asy_outbox_note_welcome(outbox), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert_eq(asy_outbox_reissue(outbox, &third), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert(third.old_epoch == second.new_epoch && third.from_seq == 1 &&
              third.skipped_epoch == 0);
    asy_outbox_destroy(&outbox);
}

Test(outbox, reissue_of_an_outbox_with_nothing_pending_only_moves_the_epoch)
{
    asy_outbox_t *outbox = s_open_claimed();
    s_append(outbox, NULL);
    cr_assert_eq(asy_outbox_ack(outbox, 1, s_now_ms()), 0);
    uint64_t old_epoch = asy_outbox_epoch(outbox);
    asy_outbox_reissue_t done;
    cr_assert_eq(asy_outbox_reissue(outbox, &done), 0, "%s", asy_outbox_errmsg(outbox));
    cr_assert(done.count == 0 && done.new_epoch > old_epoch);
    cr_assert_eq(s_append(outbox, NULL), 1, "the new epoch starts at seq 1");
    asy_outbox_destroy(&outbox);
}

Test(outbox, claim_is_exclusive_and_a_writer_notices_a_reissue)
{
    asy_outbox_t *writer = s_open("agent-1", "site-1");
    s_append(writer, NULL);
    asy_outbox_t *claimed = s_open_claimed();
    char error[512] = "";
    cr_assert_null(asy_outbox_open_claimed(s_path, "agent-1", "site-1", error, sizeof error));
    cr_assert(strstr(error, "in use by another"), "%s", error);
    asy_outbox_t *reader = s_open("agent-1", "site-1"); /* status, submit: no claim */
    asy_outbox_destroy(&reader);

    asy_outbox_reissue_t done;
    cr_assert_eq(asy_outbox_reissue(claimed, &done), 0, "%s", asy_outbox_errmsg(claimed));
    /* the writer opened the old epoch: it must not stamp events with it any more */
    asy_event_t *event = s_event(NULL);
    cr_assert_eq(asy_outbox_append(writer, event, NULL), ASY_EINVAL);
    cr_assert(strstr(asy_outbox_errmsg(writer), "re-issued"), "%s", asy_outbox_errmsg(writer));
    asy_event_destroy(&event);
    asy_outbox_destroy(&writer);

    asy_outbox_destroy(&claimed);
    claimed = s_open_claimed(); /* the claim ended with its holder */
    asy_outbox_reissue_t again;
    cr_assert_eq(asy_outbox_reissue(claimed, &again), 0, "%s", asy_outbox_errmsg(claimed));
    asy_outbox_destroy(&claimed);
    asy_outbox_t *plain = s_open("agent-1", "site-1");
    cr_assert_eq(asy_outbox_reissue(plain, &again), ASY_EINVAL, "re-issue needs the claim");
    asy_outbox_destroy(&plain);
}
