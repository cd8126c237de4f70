/*  test_store.c: server/store.c and store_batch.c against a real PostgreSQL
    (ASY_TEST_DATABASE): migrations, batch transactions, quarantine, the committed-seq
    compare-and-set, the order-independent case_state merge, site binding, re-issued epochs,
    and recovery after the server dropped the connection.  */
#include "breaches.h"
#include "calendar.h"
#include "case_view.h"
#include "casecheck.h"
#include "codec.h"
#include "fixture.h"
#include "harness.h"
#include "migrations.h"
#include "store.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CASE_X "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define S_CASE_Y "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define S_CASE_Z "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define S_PERSON "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static char *s_conninfo;
static PGconn *s_pg;
static asy_store_t *s_store;

static void s_setup(void)
{
    s_conninfo = asy_test_create_database();
    s_pg = asy_test_pg_connect(s_conninfo);
}

/* Closes everything and drops the test's database (the conninfo ends in "dbname=NAME"). */
static void s_teardown(void)
{
    asy_store_destroy(&s_store);
    if (s_pg)
        PQfinish(s_pg);
    s_pg = NULL;
    asy_test_drop_database(s_conninfo);
    free(s_conninfo);
    s_conninfo = NULL;
}

TestSuite(store, .init = s_setup, .fini = s_teardown, .timeout = 120);

static asy_store_t *s_new_store(void)
{
    char error[512] = "";
    asy_store_t *store = asy_store_new(s_conninfo, error, sizeof error);
    cr_assert_not_null(store, "asy_store_new: %s", error);
    return store;
}

/* First column of the first row as text (caller frees); "" for NULL. */
static char *s_text(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(res));
    cr_assert_geq(PQntuples(res), 1, "no row: %s", sql);
    char *text = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    cr_assert_not_null(text);
    return text;
}

/* --------------------------------------------------------------------------------------------
   Events built through the codec, as an agent would. */

/* A test event: its site, a 2-digit id suffix, case, occurred_at, and the body JSON. */
typedef struct {
    int site;
    int id;
    const char *case_id;
    const char *occurred_at;
    const char *body;
} s_spec_t;

static const char *const s_sites[] = {"site-a", "site-b"};
static const char *const s_agents[] = {"agent-a", "agent-b"};

/* Fills item with an encoded, stamped event (item->data is malloc'd: free it). */
static void s_make(asy_store_item_t *item, const s_spec_t *spec, const char *agent, uint64_t epoch,
                   uint64_t seq)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"eventId\": \"01900000-0000-7000-8000-0000000000%02d\", \"caseId\": \"%s\","
             " \"personKey\": \"" S_PERSON "\", \"occurredAt\": \"%s\","
             " \"actorRole\": \"ACTOR_ADVOCATE\", %s}",
             spec->id, spec->case_id, spec->occurred_at, spec->body);
    json_error_t json_error;
    json_t *json = json_loads(text, 0, &json_error);
    cr_assert_not_null(json, "%s: %s", text, json_error.text);
    asy_event_t *event = NULL;
    char error[256] = "";
    cr_assert_eq(asy_event_from_json(json, &event, error, sizeof error), 0, "%s: %s", text, error);
    json_decref(json);
    cr_assert_eq(asy_event_stamp(event, s_sites[spec->site], agent, epoch, seq), 0);
    asy_check_t why = {0};
    cr_assert_eq(asy_event_validate(event, &why), 0, "%s: %s", text, why.reason);
    memset(item, 0, sizeof *item);
    uint8_t *data = NULL;
    cr_assert_eq(asy_event_encode(event, &data, &item->size), 0);
    item->data = data;
    item->seq = seq;
    asy_event_summarise(event, &item->summary);
    asy_event_destroy(&event);
}

static void s_free_items(asy_store_item_t *items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free((void *)items[i].data);
}

static const s_spec_t s_contact = {0, 1, S_CASE_X, "2026-01-05T10:00:00Z",
                                   "\"contactMade\": {\"channel\": \"CHANNEL_PHONE\"}"};

/* Builds count contact.made events of site-a with seqs first..first+count-1. */
static void s_contacts(asy_store_item_t *items, size_t count, uint64_t first)
{
    for (size_t i = 0; i < count; i++) {
        s_spec_t spec = s_contact;
        spec.id = (int)(i % 100);
        s_make(&items[i], &spec, "agent-a", 1, first + i);
    }
}

static void s_hello(const char *agent, const char *site, uint64_t *committed)
{
    uint64_t ignored = 0;
    int rc = asy_store_hello(s_store, agent, site, 1, committed ? committed : &ignored);
    cr_assert_eq(rc, 0, "hello: %s", asy_store_errmsg(s_store));
}

/* --------------------------------------------------------------------------------------------
   Migrations */

Test(store, migrations_apply_once_and_are_idempotent)
{
    /* each start makes this month's partition and the next two's: a month that turns between
       the two starts adds one more */
    static const char month_sql[] = "SELECT extract(year FROM now() AT TIME ZONE 'UTC') * 12 + "
                                    "extract(month FROM now() AT TIME ZONE 'UTC')";
    long long month_before = asy_test_pg_int(s_pg, month_sql);
    s_store = s_new_store();
    asy_store_destroy(&s_store);
    s_store = s_new_store();
    long long months_turned = asy_test_pg_int(s_pg, month_sql) - month_before;
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM schema_migration"), asy_migration_count);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM schema_migration WHERE version = 1 AND"
                       " name = '001_init'"),
                 1);
    /* the default partition and three monthly ones */
    cr_assert_eq(asy_test_pg_intf(
                     s_pg, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'event'::regclass"),
                 4 + (months_turned > 0));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM pg_class WHERE relname = 'event_y' ||"
                       " to_char(now() AT TIME ZONE 'UTC', 'YYYY') || 'm' ||"
                       " to_char(now() AT TIME ZONE 'UTC', 'MM')"),
                 1);
}

/* 010: the merge of every batch writes case_state, and only its primary key is read. */
Test(store, migration_010_leaves_case_state_only_its_primary_key)
{
    s_store = s_new_store();
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM pg_indexes WHERE tablename ="
                                        " 'case_state' AND schemaname = 'public'"),
                 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM pg_indexes WHERE indexname ="
                                        " 'case_state_pkey'"),
                 1);
}

/* Area codes loaded in small letters before advsync-ctl upper-cased them: 008 keeps the
   spelling loaded last of each area, in capitals. */
Test(store, migration_008_leaves_one_area_per_code_in_capitals)
{
    s_store = s_new_store();
    asy_store_destroy(&s_store);
    asy_test_pg_exec(s_pg, "DELETE FROM schema_migration WHERE version = 8");
    asy_test_pg_exec(s_pg, "INSERT INTO denominator (area_code, ethnicity_ons, age_band,"
                           " population, loaded_at) VALUES"
                           " ('e09000004', 0, 0, 100, '2026-01-01'),"
                           " ('E09000004', 0, 0, 200, '2026-02-01'),"
                           " ('E09000004', 1, 0, 20, '2026-02-01'),"
                           " ('e08000001', 0, 0, 300, '2026-03-01'),"
                           " ('E08000001', 0, 0, 400, '2026-01-01'),"
                           " ('e07000002', 0, 0, 500, '2026-01-01'),"
                           " ('e06000001', 0, 0, 600, '2026-01-01'),"
                           " ('E06000001', 0, 0, 700, '2026-01-01')");
    s_store = s_new_store();
    char *rows = s_text(s_pg, "SELECT string_agg(area_code || ':' || ethnicity_ons || ':' ||"
                              " population, ' ' ORDER BY area_code, ethnicity_ons)"
                              " FROM denominator");
    cr_assert_str_eq(rows,
                     "E06000001:0:700 E07000002:0:500 E08000001:0:300 E09000004:0:200 "
                     "E09000004:1:20",
                     "last loaded spelling kept (capitals on a tie), all in capitals");
    free(rows);
}

/* 009 turns case_state's text versions into 24 bytes that order the same: a case stored
   before it keeps its values against the events that come after it, earlier or later, and on
   a tie of occurred_at the greater event_id still wins. */
Test(store, migration_009_keeps_the_order_of_text_versions)
{
    static const char *const versions[] = {"person_key",
                                           "first",
                                           "status",
                                           "referral",
                                           "eligible",
                                           "declined",
                                           "closed",
                                           "legal_status",
                                           "qualifying",
                                           "ethnicity_ons",
                                           "nhs_ethnic",
                                           "sex",
                                           "gender",
                                           "age_band",
                                           "disability",
                                           "religion",
                                           "sexual_orientation"};
    s_store = s_new_store();
    asy_store_destroy(&s_store);
    /* back to the text columns of 001, as 008 left them */
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "ALTER TABLE case_state ALTER COLUMN %s_version TYPE text COLLATE \"C\""
                 " USING NULL",
                 versions[i]);
        asy_test_pg_exec(s_pg, sql);
        snprintf(sql, sizeof sql, "ALTER TABLE case_state RENAME COLUMN %s_version TO %s_ver",
                 versions[i], versions[i]);
        asy_test_pg_exec(s_pg, sql);
    }
    asy_test_pg_exec(s_pg, "DELETE FROM schema_migration WHERE version = 9");
    /* case X as a broker before 009 left it: contacted, by event 41 at 2026-02-01T10:00Z */
    asy_test_pg_exec(s_pg, "INSERT INTO case_state (case_id, site_id, first_ver, status,"
                           " status_ver, event_count) VALUES ('" S_CASE_X "', 'site-b',"
                           " '0000176994000000000001900000-0000-7000-8000-000000000041',"
                           " 'contacted',"
                           " '0000176994000000000001900000-0000-7000-8000-000000000041', 1)");
    s_store = s_new_store();
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE"
                                        " pg_typeof(status_version) = 'bytea'::regtype AND"
                                        " encode(status_version, 'hex') = '000649c044f94800"
                                        "01900000000070008000000000000041' AND"
                                        " first_version = status_version"),
                 1, "microseconds big-endian, then the event id's bytes");
    cr_assert_eq(asy_test_pg_intf(s_pg,
                                  "SELECT count(*) FROM information_schema.columns WHERE"
                                  " table_name = 'case_state' AND right(column_name, 4) = '_ver'"),
                 0, "renamed: a broker that writes text versions finds none of its columns");
    s_hello("agent-a", "site-a", NULL);
    /* the same instant with a smaller event id, and an earlier instant: neither is later */
    static const s_spec_t before[] = {
        {0, 40, S_CASE_X, "2026-02-01T10:00:00Z",
         "\"waitlistJoined\": {\"reasonWaiting\": \"WAIT_OTHER\"}"},
        {0, 50, S_CASE_X, "2026-02-01T09:59:59.999999Z",
         "\"waitlistLeft\": {\"reason\": \"WAIT_LEFT_ALLOCATED\"}"},
    };
    asy_store_item_t items[2];
    for (size_t i = 0; i < 2; i++)
        s_make(&items[i], &before[i], "agent-a", 1, i + 1);
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, 2, NULL), 0, "%s",
                 asy_store_errmsg(s_store));
    s_free_items(items, 2);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_X
                                        "' AND status = 'contacted' AND site_id = 'site-a' AND"
                                        " event_count = 3"),
                 1, "the stored status stands; the earlier event is the first (its site)");
    /* the same instant with a greater event id is later */
    static const s_spec_t after = {0, 42, S_CASE_X, "2026-02-01T10:00:00Z",
                                   "\"caseClosed\": {\"closureReason\": \"CLOSURE_WITHDREW\"}"};
    s_make(&items[0], &after, "agent-a", 1, 3);
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 2, items, 1, NULL), 0, "%s",
                 asy_store_errmsg(s_store));
    s_free_items(items, 1);
    cr_assert_eq(asy_test_pg_intf(s_pg,
                                  "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_X
                                  "' AND status = 'closed' AND encode(status_version, 'hex') ="
                                  " '000649c044f9480001900000000070008000000000000042'"),
                 1, "closed by event 42");
}

/* A database a newer broker migrated: the broker still starts, and says so in its log. */
Test(store, a_newer_schema_is_named_in_the_log)
{
    s_store = s_new_store();
    asy_test_pg_exec(s_pg,
                     "INSERT INTO schema_migration (version, name) VALUES (999, '999_later')");
    char *dir = asy_test_tmpdir();
    char endpoint[128];
    pid_t broker =
        asy_test_start_broker(s_conninfo, dir, asy_test_free_port(), endpoint, sizeof endpoint);
    cr_assert_eq(asy_test_stop(broker, SIGTERM, 10000), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/broker.log", dir);
    char *log = asy_fixture_slurp(path, NULL);
    cr_assert(log && strstr(log, "the database has migrations this broker does not know (999 "
                                 "999_later;"),
              "%s", log ? log : "(no log)");
    free(log);
    free(dir);
}

/* A migration the database refuses says which, and that it needs an operator; once the
   conflict is removed the next attempt goes through. */
Test(store, a_refused_migration_is_named_and_goes_through_once_fixed)
{
    asy_test_pg_exec(s_pg, "CREATE TABLE site (made_by_hand int)");
    char error[512] = "";
    asy_store_t *store = asy_store_new(s_conninfo, error, sizeof error);
    cr_assert_null(store);
    cr_assert(strstr(error, "migration 001_init failed: ") && strstr(error, "42P07") &&
                  strstr(error, "needs an operator"),
              "%s", error);
    cr_assert_eq(asy_test_pg_int(s_pg, "SELECT count(*) FROM schema_migration"), 0, "rolled back");
    asy_test_pg_exec(s_pg, "DROP TABLE site");
    s_store = s_new_store();
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM schema_migration"),
                 asy_migration_count);
}

Test(store, concurrent_stores_migrate_once)
{
    pid_t children[3];
    for (int i = 0; i < 3; i++) {
        children[i] = fork();
        cr_assert_geq(children[i], 0);
        if (children[i] == 0) {
            char error[512] = "";
            asy_store_t *store = asy_store_new(s_conninfo, error, sizeof error);
            if (!store)
                fprintf(stderr, "child store: %s\n", error);
            int ok = store != NULL;
            asy_store_destroy(&store);
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 3; i++) {
        int status = 0;
        cr_assert_eq(waitpid(children[i], &status, 0), children[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a concurrent store failed");
    }
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM schema_migration"), asy_migration_count);
}

Test(store, unreachable_database_gives_null_and_a_reason)
{
    char error[512] = "";
    asy_store_t *store = asy_store_new("host=/nonexistent-dir port=1 dbname=x connect_timeout=2",
                                       error, sizeof error);
    cr_assert_null(store);
    cr_assert(strstr(error, "cannot connect"), "error: %s", error);
}

/* --------------------------------------------------------------------------------------------
   Batches */

Test(store, batch_stores_events_verbatim_and_quarantines_the_refused)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    asy_store_item_t items[4];
    s_contacts(items, 4, 1);
    /* seq 3 was refused by the broker's checks: stored raw in quarantine */
    free((void *)items[2].data);
    static const uint8_t junk[] = {0x0a, 0xff, 0x00, 0x42};
    uint8_t *copy = malloc(sizeof junk);
    memcpy(copy, junk, sizeof junk);
    items[2].data = copy;
    items[2].size = sizeof junk;
    items[2].code = ASY_CODE_EVENT_INVALID_FIELD;
    snprintf(items[2].reason, sizeof items[2].reason, "contact_made.channel: out of range");

    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, 4, NULL), 0, "%s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 3);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(DISTINCT received_at) FROM event"), 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT committed_seq FROM agent_stream WHERE agent_id = 'agent-a'"), 4);
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT encode(payload, 'hex') || ' ' || event_id::text || ' ' || kind ||"
                 " ' ' || site_id || ' ' || case_id FROM event WHERE seq = %d",
                 i + 1);
        char *got = s_text(s_pg, sql);
        char want[4096] = "";
        size_t used = 0;
        for (size_t b = 0; b < items[i].size; b++)
            used += (size_t)snprintf(want + used, sizeof want - used, "%02x", items[i].data[b]);
        snprintf(want + used, sizeof want - used, " %s %d site-a " S_CASE_X,
                 items[i].summary.event_id, ASY_KIND_CONTACT_MADE);
        cr_assert_str_eq(got, want);
        free(got);
    }
    char *row = s_text(s_pg, "SELECT agent_id || '|' || site_id || '|' || epoch || '|' || seq ||"
                             " '|' || code || '|' || code_name || '|' || reason || '|' ||"
                             " encode(payload, 'hex') FROM quarantine");
    cr_assert_str_eq(row, "agent-a|site-a|1|3|22|EVENT_INVALID_FIELD|contact_made.channel: out "
                          "of range|0aff0042");
    free(row);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT event_count FROM case_state"), 3);
    asy_test_check_case_state(s_pg);
    cr_assert_eq(asy_test_check_streams(s_pg), 4);
    s_free_items(items, 4);
}

Test(store, compare_and_set_conflict_writes_nothing)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    asy_store_item_t items[3];
    s_contacts(items, 3, 1);
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, 2, NULL), 0, "%s",
                 asy_store_errmsg(s_store));
    /* a second writer (or a replay) expecting 0 again: refused, nothing added */
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, 2, NULL),
                 ASY_EEXIST);
    cr_assert(strstr(asy_store_errmsg(s_store), "no longer 0"), "%s", asy_store_errmsg(s_store));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 2);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT event_count FROM case_state"), 2);
    /* an expectation ahead of the database: refused too */
    items[2].seq = 6;
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 5, &items[2], 1, NULL),
                 ASY_EEXIST);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 2);
    /* the replay after the commit: re-read the mark, write only what is new */
    uint64_t committed = 0;
    cr_assert_eq(asy_store_committed_seq(s_store, "agent-a", 1, &committed), 0);
    cr_assert_eq(committed, 2);
    items[2].seq = 3;
    cr_assert_eq(
        asy_store_write_batch(s_store, "agent-a", "site-a", 1, committed, &items[2], 1, NULL), 0,
        "%s", asy_store_errmsg(s_store));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 3);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT committed_seq FROM agent_stream"), 3);
    /* a batch whose seqs do not follow the expectation is refused before the database */
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 3, items, 1, NULL),
                 ASY_EINVAL);
    /* an unknown stream expecting 0 is created by the batch itself */
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 2, 0, items, 1, NULL), 0, "%s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT committed_seq FROM agent_stream WHERE epoch = 2"), 1);
    asy_test_check_case_state(s_pg);
    s_free_items(items, 3);
}

Test(store, hello_binds_an_agent_to_its_first_site)
{
    s_store = s_new_store();
    uint64_t committed = 99;
    s_hello("agent-a", "site-a", &committed);
    cr_assert_eq(committed, 0);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM site WHERE site_id = 'site-a'"), 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM agent_stream WHERE agent_id = 'agent-a'"), 1);
    asy_store_item_t items[2];
    s_contacts(items, 2, 1);
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, 2, NULL), 0);
    s_hello("agent-a", "site-a", &committed);
    cr_assert_eq(committed, 2);
    cr_assert_eq(asy_store_hello(s_store, "agent-a", "site-b", 1, &committed), ASY_EINVAL);
    cr_assert_str_eq(asy_store_errmsg(s_store), "agent agent-a is bound to site site-a");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM site WHERE site_id = 'site-b'"), 0);
    /* the store is still usable afterwards */
    s_hello("agent-b", "site-b", &committed);
    cr_assert_eq(committed, 0);
    s_free_items(items, 2);
}

/* A stream row written by hand or by another implementation may name an origin epoch without
   its seq: NULL means an ordinary epoch (006_reissue), so the chain of origins stops there. */
Test(store, a_reissue_origin_without_its_seq_ends_the_chain)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    asy_test_pg_exec(s_pg, "INSERT INTO agent_stream (agent_id, epoch, reissue_of_epoch,"
                           " reissue_from_seq) VALUES ('agent-a', 2, 1, NULL)");
    uint64_t committed = 99;
    cr_assert_eq(asy_store_hello(s_store, "agent-a", "site-a", 3, &committed), 0, "hello: %s",
                 asy_store_errmsg(s_store));
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t count = 99;
    cr_assert_eq(asy_store_reissue(s_store, "agent-a", 3, 2, 5, origins, &count), 0, "%s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(count, 1);
    cr_assert_eq(origins[0].epoch, 2);
    cr_assert_eq(origins[0].offset, 4);
}

/* Two epochs re-issue the same origin (an outbox re-issued again in place of one the centre
   had seen, PROTOCOL.md 5.5 step 1): once the newer one has said HELLO, a batch of the older
   one is refused (it belongs to a copy that no longer sends), as for an epoch re-issued
   directly; else both would store the same events (a review reproduced it). */
Test(store, a_batch_of_an_epoch_a_sibling_superseded_is_refused)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    uint64_t committed = 0;
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t count = 0;
    for (uint64_t epoch = 2; epoch <= 3; epoch++) {
        cr_assert_eq(asy_store_hello(s_store, "agent-a", "site-a", epoch, &committed), 0, "%s",
                     asy_store_errmsg(s_store));
        cr_assert_eq(asy_store_reissue(s_store, "agent-a", epoch, 1, 3, origins, &count), 0, "%s",
                     asy_store_errmsg(s_store));
    }
    cr_assert_eq(count, 2, "epoch 3 looks under epoch 1 and its sibling epoch 2");
    asy_store_item_t items[2];
    s_spec_t spec = s_contact;
    for (int i = 0; i < 2; i++) {
        spec.id = 70 + i;
        s_make(&items[i], &spec, "agent-a", 2, (uint64_t)i + 1);
    }
    asy_store_reissued_t reissued = {origins, 1, 0};
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 2, 0, items, 2, &reissued),
                 ASY_EPROTO, "%s", asy_store_errmsg(s_store));
    cr_assert(strstr(asy_store_errmsg(s_store), "as epoch 3"), "%s", asy_store_errmsg(s_store));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event WHERE epoch = 2"), 0);
    s_free_items(items, 2);
}

/* A re-issue from a seq near 2^63 (valid in a HELLO) maps the batch's seqs past what bigint
   holds: the look-up holds its bounds there instead of failing every batch with "bigint out
   of range" (answered RETRY_LATER for ever); along a chain the offsets are held too. */
Test(store, a_reissue_from_a_seq_near_the_limit_does_not_block_the_stream)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    uint64_t committed = 99;
    cr_assert_eq(asy_store_hello(s_store, "agent-a", "site-a", 2, &committed), 0, "hello: %s",
                 asy_store_errmsg(s_store));
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t count = 0;
    cr_assert_eq(asy_store_reissue(s_store, "agent-a", 2, 1, INT64_MAX, origins, &count), 0, "%s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(count, 1);
    asy_store_item_t items[3];
    s_spec_t spec = s_contact;
    for (int i = 0; i < 3; i++) {
        spec.id = i;
        s_make(&items[i], &spec, "agent-a", 2, (uint64_t)i + 1);
    }
    asy_store_reissued_t reissued = {origins, count, 0};
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 2, 0, items, 3, &reissued), 0,
                 "%s", asy_store_errmsg(s_store));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT committed_seq FROM agent_stream WHERE epoch = 2"),
                 3);
    s_free_items(items, 3);

    /* epoch 3 re-issues epoch 2 from its seq 2^63 - 1 too: 2 + 2^63 - 2 overflows uint64 math
       no more than int64 */
    cr_assert_eq(asy_store_hello(s_store, "agent-a", "site-a", 3, &committed), 0, "hello: %s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(asy_store_reissue(s_store, "agent-a", 3, 2, INT64_MAX, origins, &count), 0, "%s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(count, 2);
    cr_assert_eq(origins[1].offset, (uint64_t)INT64_MAX);
}

Test(store, oversize_frame_is_quarantined_truncated)
{
    s_store = s_new_store();
    size_t size = 2u * 1024u * 1024u;
    uint8_t *data = calloc(1, size);
    cr_assert_not_null(data);
    cr_assert_eq(asy_store_quarantine_frame(s_store, NULL, NULL, ASY_CODE_FRAME_TOO_LARGE,
                                            "frame too large", data, size),
                 0, "%s", asy_store_errmsg(s_store));
    cr_assert_eq(asy_store_quarantine_frame(s_store, "agent-a", "site-a", ASY_CODE_MALFORMED_FRAME,
                                            "not a frame", data, 10),
                 0);
    free(data);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT length(payload) FROM quarantine WHERE code = 3"),
                 65536);
    cr_assert_eq(asy_test_pg_intf(
                     s_pg, "SELECT count(*) FROM quarantine WHERE code = 3 AND agent_id IS NULL AND"
                           " seq = 0 AND reason LIKE 'frame too large (payload truncated from"
                           " 2097152 to 65536 bytes)' AND code_name = 'FRAME_TOO_LARGE'"),
                 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM quarantine WHERE agent_id = 'agent-a' AND"
                       " length(payload) = 10 AND code_name = 'MALFORMED_FRAME'"),
                 1);
}

/* --------------------------------------------------------------------------------------------
   Connection loss */

/* Kills the store's backend from another connection and waits until it is gone. */
static void s_kill_backend(void)
{
    asy_test_pg_exec(s_pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                           " application_name = 'advsyncd' AND datname = current_database()");
    for (int i = 0; i < 200; i++) {
        if (asy_test_pg_intf(s_pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'advsyncd'"
                  " AND datname = current_database()") == 0)
            return;
        usleep(10000);
    }
    cr_assert_fail("the store's backend did not go away");
}

/* A connection the server closed while idle is noticed before the next unit of work and
   replaced there: nothing fails. (It used to fail once with ASY_ERETRY.) */
Test(store, write_after_the_server_dropped_an_idle_connection_reconnects_first)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    asy_store_item_t items[3];
    s_contacts(items, 3, 1);
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, 1, NULL), 0);

    s_kill_backend();
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 1, &items[1], 1, NULL), 0,
                 "%s", asy_store_errmsg(s_store));
    s_kill_backend();
    uint64_t committed = 0;
    cr_assert_eq(asy_store_committed_seq(s_store, "agent-a", 1, &committed), 0, "%s",
                 asy_store_errmsg(s_store));
    cr_assert_eq(committed, 2);
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 2, &items[2], 1, NULL), 0,
                 "%s", asy_store_errmsg(s_store));

    /* an explicit reconnect after a kill also works */
    s_kill_backend();
    cr_assert_eq(asy_store_reconnect(s_store), 0, "%s", asy_store_errmsg(s_store));
    cr_assert_eq(asy_store_committed_seq(s_store, "agent-a", 1, &committed), 0);
    cr_assert_eq(committed, 3);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 3);
    asy_test_check_case_state(s_pg);
    s_free_items(items, 3);
}

/* A connection lost inside a transaction is not probed (the probe would read the
   transaction's own replies): the command fails with ASY_ERETRY, nothing of it is kept, and
   the connection is then known to be gone. */
Test(store, a_connection_lost_inside_a_transaction_says_retry)
{
    asy_test_migrate(s_conninfo);
    char error[256];
    asy_db_t *db = asy_db_connect(s_conninfo, "advsyncd", error, sizeof error);
    cr_assert_not_null(db, "%s", error);
    cr_assert(asy_db_alive(db));
    cr_assert_eq(asy_db_begin(db), 0);
    cr_assert_eq(asy_db_exec(db, "INSERT INTO holiday (day, change) VALUES ('2030-01-02', 'added')",
                             0, NULL, NULL),
                 0, "%s", asy_db_errmsg(db));
    s_kill_backend();
    cr_assert(asy_db_alive(db), "not probed inside a transaction");
    cr_assert_eq(asy_db_commit(db), ASY_ERETRY);
    cr_assert_not(asy_db_alive(db));
    cr_assert_eq(asy_db_reset(db), 0, "%s", asy_db_errmsg(db));
    cr_assert(asy_db_alive(db));
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 0);
    asy_db_destroy(&db);
}

/* The monitor's breach records (server/breaches.c) wait out a lost connection: kept, retried
   at most every second (or at once with now), and written when the database answers. */
Test(store, breach_records_wait_for_the_database)
{
    asy_test_migrate(s_conninfo);
    char error[256];
    asy_db_t *db = asy_db_connect(s_conninfo, "advsyncd", error, sizeof error);
    cr_assert_not_null(db, "%s", error);
    asy_breaches_t *book = asy_breaches_new();
    asy_case_view_t view;
    memset(&view, 0, sizeof view);
    snprintf(view.case_id, sizeof view.case_id, "%s", S_CASE_X);
    snprintf(view.site_id, sizeof view.site_id, "site-a");
    asy_date_t deadline;
    cr_assert_eq(asy_date_from_ymd(2026, 11, 5, &deadline), 0);
    cr_assert(asy_breaches_mark(book, &view, 1, deadline));
    /* the database refuses the write (the table is away): kept */
    asy_test_pg_exec(s_pg, "ALTER TABLE monitor_breach RENAME TO monitor_breach_away");
    int64_t failed_at = asy_test_now_ms();
    asy_breaches_record(book, db, false);
    asy_test_pg_exec(s_pg, "ALTER TABLE monitor_breach_away RENAME TO monitor_breach");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM monitor_breach"), 0);
    asy_breaches_record(book, db, false); /* within the second: not tried */
    /* (unless this machine took the second over the two statements above) */
    if (asy_test_now_ms() - failed_at < 900)
        cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM monitor_breach"), 0);
    s_kill_backend();
    asy_breaches_record(book, db, true); /* at shutdown: tried, reconnected, written */
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM monitor_breach"), 1,
                 "the record kept through the failure is written");
    asy_breaches_destroy(&book);
    asy_db_destroy(&db);
}

/* --------------------------------------------------------------------------------------------
   case_state: the same set of events in any order and batching gives the same rows */

static const s_spec_t s_story[] = {
    {0, 1, S_CASE_X, "2026-01-05T09:00:00Z",
     "\"referralReceived\": {\"service\": \"SERVICE_IMHA\", \"source\": \"SOURCE_A1_GP\","
     " \"receivedAt\": \"2026-01-05T08:30:00Z\"}"},
    {0, 2, S_CASE_X, "2026-01-05T09:05:00Z",
     "\"personProfileRecorded\": {\"ons2021Ethnicity\": \"ONS_ASIAN_INDIAN\", \"ageBand\":"
     " \"AGE_18_34\", \"gender\": \"GENDER_FEMALE\"}"},
    {1, 3, S_CASE_X, "2026-01-06T10:00:00Z",
     "\"referralEligibilityDecided\": {\"eligible\": true}"},
    {1, 4, S_CASE_X, "2026-01-07T11:00:00Z", "\"contactMade\": {\"channel\": \"CHANNEL_PHONE\"}"},
    {0, 5, S_CASE_X, "2026-01-06T12:00:00Z", "\"contactMade\": {\"channel\": \"CHANNEL_VIDEO\"}"},
    {1, 6, S_CASE_X, "2026-01-08T09:00:00Z", "\"meetingInitialHeld\": {\"date\": \"2026-01-08\"}"},
    {0, 7, S_CASE_X, "2026-01-02T00:00:00Z",
     "\"qualifyingStarted\": {\"legalStatus\": \"LEGAL_07_S35\"}"},
    {1, 8, S_CASE_X, "2026-01-20T00:00:00Z",
     "\"qualifyingEnded\": {\"legalStatus\": \"LEGAL_07_S35\"}"},
    {0, 9, S_CASE_X, "2026-01-10T00:00:00Z",
     "\"personProfileUpdated\": {\"ageBand\": \"AGE_35_49\"}"},
    {1, 10, S_CASE_X, "2026-01-11T00:00:00Z",
     "\"personEqualityOptout\": {\"effectiveDate\": \"2026-01-11\"}"},
    {0, 11, S_CASE_X, "2026-01-30T00:00:00Z",
     "\"caseClosed\": {\"closureReason\": \"CLOSURE_WITHDREW\"}"},
    {1, 12, S_CASE_X, "2026-01-25T00:00:00Z",
     "\"waitlistJoined\": {\"reasonWaiting\": \"WAIT_OTHER\"}"},
    {1, 13, S_CASE_Y, "2026-01-03T00:00:00Z",
     "\"referralReceived\": {\"service\": \"SERVICE_COMMUNITY\", \"source\": \"SOURCE_B_SELF\"}"},
    {0, 14, S_CASE_Y, "2026-01-04T00:00:00Z",
     "\"referralDeclined\": {\"declineReason\": \"DECLINE_OUT_OF_AREA\"}"},
    {0, 15, S_CASE_Y, "2026-01-03T12:00:00Z",
     "\"referralReceived\": {\"service\": \"SERVICE_IMHA\", \"source\": \"SOURCE_B_SELF\"}"},
    {0, 16, S_CASE_Z, "2026-01-09T00:00:00Z",
     "\"contactAttempted\": {\"channel\": \"CHANNEL_PHONE\"}"},
};
#define S_STORY (sizeof s_story / sizeof s_story[0])

/* Delivers s_story in the order given, batching consecutive events of one site up to
   batch_size, into a fresh database; returns the case_state rows as text (caller frees). */
static char *s_deliver(const size_t *order, size_t batch_size)
{
    s_teardown();
    s_setup();
    s_store = s_new_store();
    uint64_t committed[2] = {0, 0};
    for (int site = 0; site < 2; site++)
        s_hello(s_agents[site], s_sites[site], NULL);
    asy_store_item_t items[S_STORY];
    size_t i = 0;
    while (i < S_STORY) {
        int site = s_story[order[i]].site;
        size_t n = 0;
        while (i + n < S_STORY && n < batch_size && s_story[order[i + n]].site == site) {
            s_make(&items[n], &s_story[order[i + n]], s_agents[site], 1, committed[site] + n + 1);
            n++;
        }
        cr_assert_eq(asy_store_write_batch(s_store, s_agents[site], s_sites[site], 1,
                                           committed[site], items, n, NULL),
                     0, "%s", asy_store_errmsg(s_store));
        committed[site] += n;
        s_free_items(items, n);
        i += n;
    }
    cr_assert_eq(asy_test_check_case_state(s_pg), 3);
    return s_text(s_pg, "SELECT string_agg((to_jsonb(c) - 'updated_at' - 'created_at')::text,"
                        " E'\\n' ORDER BY case_id) FROM case_state c");
}

Test(store, case_state_is_the_same_in_any_order_and_batching)
{
    size_t forward[S_STORY], backward[S_STORY], shuffled[S_STORY];
    for (size_t i = 0; i < S_STORY; i++) {
        forward[i] = i;
        backward[i] = S_STORY - 1 - i;
        shuffled[i] = (i * 7 + 3) % S_STORY; /* 7 is prime to 16: a permutation */
    }
    char *a = s_deliver(forward, 100);
    char *b = s_deliver(backward, 1);
    char *c = s_deliver(shuffled, 3);
    cr_assert_str_eq(a, b);
    cr_assert_str_eq(a, c);
    /* and the state is the one the rules say */
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_X "' AND"
                       " status = 'closed' AND site_id = 'site-a' AND event_count = 12 AND"
                       " service = 1 AND referral_source = 2 AND eligible = 1 AND"
                       " referral_received_at = '2026-01-05T08:30:00Z' AND"
                       " first_contact_at = '2026-01-06T12:00:00Z' AND"
                       " initial_meeting_at = '2026-01-08T09:00:00Z' AND legal_status = 7 AND"
                       " NOT qualifying AND qualifying_started_at = '2026-01-02T00:00:00Z' AND"
                       " ethnicity_ons IS NOT NULL AND age_band = 4 AND gender = 2 AND"
                       " equality_optout AND closure_reason = 3 AND left_before_goals AND"
                       " closed_at = '2026-01-30T00:00:00Z' AND person_key = '" S_PERSON "' AND"
                       " first_event_at = '2026-01-02T00:00:00Z' AND"
                       " last_event_at = '2026-01-30T00:00:00Z'"),
                 1, "case X: %s", a);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_Y "' AND"
                       " status = 'declined' AND service = 1 AND decline_reason = 2 AND"
                       " declined_at = '2026-01-04T00:00:00Z' AND site_id = 'site-b' AND"
                       " referral_received_at = '2026-01-03T00:00:00Z' AND eligible IS NULL"),
                 1, "case Y: %s", a);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_Z "' AND"
                       " status IS NULL AND event_count = 1 AND NOT equality_optout"),
                 1, "case Z: %s", a);
    free(a);
    free(b);
    free(c);
}

/* Two status-bearing events at the same instant: the greater event_id wins, whichever came
   first; same for an equality attribute. */
static const s_spec_t s_ties[] = {
    {0, 40, S_CASE_X, "2026-02-01T10:00:00Z", "\"contactMade\": {\"channel\": \"CHANNEL_PHONE\"}"},
    {0, 41, S_CASE_X, "2026-02-01T10:00:00Z",
     "\"waitlistJoined\": {\"reasonWaiting\": \"WAIT_OTHER\"}"},
    {0, 42, S_CASE_X, "2026-02-01T10:00:00Z",
     "\"personProfileUpdated\": {\"gender\": \"GENDER_MALE\"}"},
    {0, 43, S_CASE_X, "2026-02-01T10:00:00Z",
     "\"personProfileUpdated\": {\"gender\": \"GENDER_NON_BINARY\"}"},
};

/* Delivers specs[order[0..count)] of site-a one event per batch into a fresh database. */
static void s_deliver_singly(const s_spec_t *specs, const size_t *order, size_t count)
{
    s_teardown();
    s_setup();
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    for (uint64_t i = 0; i < count; i++) {
        asy_store_item_t item;
        s_make(&item, &specs[order[i]], "agent-a", 1, i + 1);
        cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, i, &item, 1, NULL), 0,
                     "%s", asy_store_errmsg(s_store));
        s_free_items(&item, 1);
    }
}

Test(store, last_writer_wins_ties_break_on_event_id)
{
    size_t orders[2][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}};
    char *rows[2];
    for (int o = 0; o < 2; o++) {
        s_deliver_singly(s_ties, orders[o], 4);
        cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE status = 'waiting' AND"
                           " gender = 3"),
                     1, "order %d", o);
        rows[o] = s_text(s_pg, "SELECT (to_jsonb(c) - 'updated_at' - 'created_at')::text"
                               " FROM case_state c");
    }
    cr_assert_str_eq(rows[0], rows[1]);
    free(rows[0]);
    free(rows[1]);
}

/* An IMHA-qualifying episode (domain.md (c), M6): it starts at the first QUALIFYING status
   (s4 is not: a conversion to s2 starts it) and ends when the status stops qualifying (made
   informal), at the times the events give for the status (start / end), not when they were
   recorded. A meeting's date counts over the time its event was recorded. Before: s4's
   start began the episode, and the informal status at the end dropped the whole episode. */
static const s_spec_t s_episode[] = {
    {0, 50, S_CASE_Z, "2026-03-29T10:00:00Z",
     "\"qualifyingStarted\": {\"legalStatus\": \"LEGAL_04_S4\"}"},
    {0, 51, S_CASE_Z, "2026-04-01T09:00:00Z",
     "\"qualifyingChanged\": {\"legalStatus\": \"LEGAL_02_S2\", \"start\": "
     "\"2026-03-31T10:00:00Z\"}"},
    {0, 52, S_CASE_Z, "2026-05-21T09:00:00Z",
     "\"qualifyingChanged\": {\"legalStatus\": \"LEGAL_01_INFORMAL\", \"start\": "
     "\"2026-05-20T10:00:00Z\"}"},
    {0, 53, S_CASE_Z, "2026-04-10T09:00:00Z", "\"meetingInitialHeld\": {\"date\": \"2026-04-02\"}"},
};

Test(store, an_episode_runs_from_the_first_qualifying_status_to_the_first_that_is_not)
{
    size_t orders[2][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}};
    for (int o = 0; o < 2; o++) {
        s_deliver_singly(s_episode, orders[o], 4);
        cr_assert_eq(asy_test_pg_intf(
                         s_pg,
                         "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_Z "' AND"
                         " qualifying_started_at = '2026-03-31T10:00:00Z' AND NOT qualifying"
                         " AND legal_status = 1 AND initial_meeting_at = '2026-04-02T12:00:00Z'"),
                     1, "order %d", o);
        /* the monitor's reading of the row: an episode from 31 March to 20 May */
        char sql[1024];
        snprintf(sql, sizeof sql, "SELECT %s FROM case_state WHERE case_id = '%s'",
                 ASY_CASE_VIEW_COLUMNS, S_CASE_Z);
        PGresult *res = PQexec(s_pg, sql);
        cr_assert_eq(PQntuples(res), 1, "%s", PQresultErrorMessage(res));
        const char *values[64];
        int columns = PQnfields(res);
        cr_assert_leq(columns, 64);
        for (int c = 0; c < columns; c++)
            values[c] = PQgetisnull(res, 0, c) ? NULL : PQgetvalue(res, 0, c);
        asy_case_view_t view;
        cr_assert_eq(asy_case_view_parse(columns, values, &view), 0);
        PQclear(res);
        asy_date_t start, end, met;
        cr_assert_eq(asy_date_from_ymd(2026, 3, 31, &start), 0);
        cr_assert_eq(asy_date_from_ymd(2026, 5, 20, &end), 0);
        cr_assert_eq(asy_date_from_ymd(2026, 4, 2, &met), 0);
        cr_assert(view.q_start == start && view.q_end == end && view.met == met,
                  "episode %d..%d (want %d..%d), met %d (want %d)", (int)view.q_start,
                  (int)view.q_end, (int)start, (int)end, (int)view.met, (int)met);
    }
}

/* s2 ended and s3 started at one instant, London midnight: in either order the patient is
   still detained (a qualifying status wins a tie), and the status's version keeps its own
   time, so the end falls on its own date. */
static const s_spec_t s_tie[] = {
    {0, 60, S_CASE_Y, "2026-05-01T09:00:00Z",
     "\"qualifyingStarted\": {\"legalStatus\": \"LEGAL_02_S2\"}"},
    {0, 61, S_CASE_Y, "2026-06-01T09:00:00Z",
     "\"qualifyingEnded\": {\"legalStatus\": \"LEGAL_02_S2\", \"end\": \"2026-05-31T23:00:00Z\"}"},
    {0, 62, S_CASE_Y, "2026-06-01T09:05:00Z",
     "\"qualifyingStarted\": {\"legalStatus\": \"LEGAL_03_S3\", \"start\": "
     "\"2026-05-31T23:00:00Z\"}"},
};

Test(store, a_qualifying_status_wins_a_tie_with_an_end_at_the_same_instant)
{
    size_t orders[2][3] = {{0, 1, 2}, {0, 2, 1}};
    for (int o = 0; o < 2; o++) {
        s_deliver_singly(s_tie, orders[o], 3);
        cr_assert_eq(
            asy_test_pg_intf(s_pg, "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_Y "'"
                                   " AND qualifying AND legal_status = 3 AND"
                                   " qualifying_started_at = '2026-05-01T09:00:00Z' AND"
                                   " ('x' || encode(substr(qualifying_version, 1, 8), 'hex'))"
                                   "::bit(64)::bigint = 1780268400000000"),
            1, "order %d", o);
    }
    /* the end alone: the version is the end's own instant (London 1 June), not a moment
       before it */
    size_t end_only[2] = {0, 1};
    s_deliver_singly(s_tie, end_only, 2);
    cr_assert_eq(asy_test_pg_intf(s_pg,
                                  "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_Y "'"
                                  " AND NOT qualifying AND ('x' || encode(substr("
                                  "qualifying_version, 1, 8), 'hex'))::bit(64)::bigint"
                                  " = 1780268400000000"),
                 1);
}

/* Rows written before the episode rules changed (3c15e05) hold the old values: migration 011
   asks the broker to re-derive those columns from the events, once (store_refold.c). */
Test(store, migration_011_re_derives_the_episode_of_rows_written_before)
{
    size_t order[4] = {0, 1, 2, 3};
    s_deliver_singly(s_episode, order, 4);
    const char *right = "SELECT count(*) FROM case_state WHERE case_id = '" S_CASE_Z "' AND"
                        " qualifying_started_at = '2026-03-31T10:00:00Z' AND NOT qualifying AND"
                        " legal_status = 1 AND initial_meeting_at = '2026-04-02T12:00:00Z' AND"
                        " event_count = 4";
    cr_assert_eq(asy_test_pg_intf(s_pg, "%s", right), 1);
    /* what the old fold wrote: the s4's start, the meeting's occurred_at, versions by
       occurred_at; and migration 011 not yet applied (a new database, without cases, got no
       marker from it) */
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM pg_class WHERE relname ="
                                        " 'case_state_refold'"),
                 0);
    asy_test_pg_exec(s_pg, "UPDATE case_state SET qualifying_started_at = '2026-03-29T10:00:00Z',"
                           " initial_meeting_at = '2026-04-10T09:00:00Z', qualifying = true,"
                           " legal_status = 2, qualifying_version = NULL,"
                           " legal_status_version = NULL");
    asy_test_pg_exec(s_pg, "DELETE FROM schema_migration WHERE version = 11");
    asy_store_destroy(&s_store);
    s_store = s_new_store(); /* migrates, and re-derives */
    cr_assert_eq(asy_test_pg_intf(s_pg, "%s", right), 1, "re-derived, event_count untouched");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM pg_class WHERE relname ="
                                        " 'case_state_refold'"),
                 0, "once");
    /* the same in the order the rows came: a second broker start changes nothing */
    asy_store_destroy(&s_store);
    s_store = s_new_store();
    cr_assert_eq(asy_test_pg_intf(s_pg, "%s", right), 1);

    /* a case whose events are no longer all there (a detached partition): kept as it is,
       rather than rebuilt from part of its history */
    asy_test_pg_exec(s_pg, "DELETE FROM event WHERE seq = 2"); /* the s2 */
    asy_test_pg_exec(s_pg, "CREATE TABLE case_state_refold (pending boolean PRIMARY KEY);"
                           " INSERT INTO case_state_refold VALUES (true)");
    asy_store_destroy(&s_store);
    s_store = s_new_store();
    cr_assert_eq(asy_test_pg_intf(s_pg, "%s", right), 1, "kept");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 3);
}

/* --------------------------------------------------------------------------------------------
   A rough figure (no assertion on time). */

Test(store, one_batch_of_a_thousand_events, .timeout = 300)
{
    s_store = s_new_store();
    s_hello("agent-a", "site-a", NULL);
    enum { S_N = 1000 };
    asy_store_item_t *items = calloc(S_N, sizeof *items);
    cr_assert_not_null(items);
    for (size_t i = 0; i < S_N; i++) {
        char case_id[ASY_PSEUDONYM_HEX + 1];
        snprintf(case_id, sizeof case_id, "%064zx", i % 100);
        s_spec_t spec = s_contact;
        spec.case_id = case_id;
        spec.id = (int)(i % 100);
        s_make(&items[i], &spec, "agent-a", 1, i + 1);
    }
    int64_t start = asy_test_now_ms();
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, 0, items, S_N, NULL), 0,
                 "%s", asy_store_errmsg(s_store));
    int64_t first = asy_test_now_ms() - start;
    for (size_t i = 0; i < S_N; i++)
        items[i].seq += S_N;
    start = asy_test_now_ms();
    cr_assert_eq(asy_store_write_batch(s_store, "agent-a", "site-a", 1, S_N, items, S_N, NULL), 0);
    int64_t second = asy_test_now_ms() - start;
    fprintf(stderr,
            "store: one batch of %d events over 100 cases: %lld ms (first), %lld ms "
            "(second, cases exist)\n",
            S_N, (long long)first, (long long)second);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM event"), 2 * S_N);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT sum(event_count) FROM case_state"), 2 * S_N);
    s_free_items(items, S_N);
    free(items);
}
