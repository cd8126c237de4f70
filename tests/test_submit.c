/*  test_submit.c: `advsync-agent submit`: pseudonyms before storage, per-line errors, counts,
    exit codes, duplicates, batching.  */
#include "fixture.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* make("nhs", "9434765919") and make("case", "CASE-RAW-0042") under the test key */
#define S_NHS_KEY "77f1cc20948e18451632ade3ff407a2d997ebbadf19782d339eb20cc37e37cab"
#define S_CASE_ID "4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0"
#define S_PERSON_KEY "ef579d0f59154442e3e8b0eef62397e724028f7eea7ca83f000155861ddd4d9d"

static asy_fixture_t s_fixture;

static void s_setup(void)
{
    asy_fixture_setup(&s_fixture, &(asy_fixture_spec_t){.name = "submit",
                                                        .agent_id = "ward-a",
                                                        .site_id = "site-a",
                                                        .outbox_folder = true});
}

static void s_teardown(void)
{
    asy_fixture_teardown(&s_fixture);
}

TestSuite(submit, .init = s_setup, .fini = s_teardown);

static const char *s_write(const char *name, const char *text)
{
    return asy_fixture_write(&s_fixture, name, text);
}

/* Asserts that stderr says "PATH:LINE: text" (text may be the start of the message). */
static void s_said(const asy_fixture_result_t *result, const char *path, int line, const char *text)
{
    char expected[1024];
    snprintf(expected, sizeof expected, "%s:%d: %s", path, line, text);
    cr_assert(strstr(result->err, expected), "no \"%s\" in: %s", expected, result->err);
}

/* Runs `submit ARG` with stdout and stderr captured. */
static asy_fixture_result_t s_submit(const char *arg)
{
    char *argv[] = {"submit", (char *)arg, NULL};
    return asy_fixture_run(&s_fixture, asy_cmd_submit, arg ? 2 : 1, argv);
}

typedef struct {
    asy_event_summary_t events[8];
    size_t count;
} s_stored_t;

static int s_keep(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    s_stored_t *stored = arg;
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0);
    cr_assert_lt(stored->count, 8);
    asy_event_summarise(event, &stored->events[stored->count]);
    cr_assert_eq(stored->events[stored->count].seq, seq);
    stored->count++;
    asy_event_destroy(&event);
    return 0;
}

static s_stored_t s_read_outbox(void)
{
    static s_stored_t stored;
    memset(&stored, 0, sizeof stored);
    char error[512];
    asy_outbox_t *outbox = asy_outbox_open(s_fixture.config.outbox_path, s_fixture.config.agent_id,
                                           s_fixture.config.site_id, error, sizeof error);
    cr_assert_not_null(outbox, "%s", error);
    size_t count;
    cr_assert_eq(asy_outbox_read(outbox, 1, 8, s_keep, &stored, &count), 0);
    asy_outbox_destroy(&outbox);
    return stored;
}

Test(submit, no_raw_identifier_is_ever_stored)
{
    const char *path = s_write(
        "ids.jsonl", "{\"nhsNumber\":\"943 476 5919\",\"caseRef\":\"CASE-RAW-0042\","
                     "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":"
                     "{\"service\":\"SERVICE_IMHA\",\"receivedAt\":\"2026-03-02T10:00:00Z\"}}\n"
                     "{\"nhs_number\":\"9434765919\",\"personRef\":\"LOCAL-PERSON-77\",\"caseRef\":"
                     "\"CASE-RAW-0042\",\"occurredAt\":\"2026-03-03T10:00:00Z\",\"contactMade\":"
                     "{\"channel\":\"CHANNEL_PHONE\"}}\n"
                     "{\"personRef\":\"LOCAL-PERSON-77\",\"case_ref\":\"CASE-RAW-0042\","
                     "\"occurredAt\":\"2026-03-04T10:00:00Z\",\"contactMade\":{\"channel\":"
                     "\"CHANNEL_PHONE\"}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 0, "exit %d: %s", result.code, result.err);
    cr_assert_str_eq(result.out, "stored 3, duplicates 0, rejected 0\n");

    /* Every byte SQLite wrote (database, WAL, shared memory), read while a handle keeps the
       WAL in place, and again after the last handle closed it. */
    char error[512];
    asy_outbox_t *holder = asy_outbox_open(s_fixture.config.outbox_path, s_fixture.config.agent_id,
                                           s_fixture.config.site_id, error, sizeof error);
    cr_assert_not_null(holder, "%s", error);
    const char *raw[] = {"9434765919",      "943 476 5919", "CASE-RAW-0042",
                         "LOCAL-PERSON-77", "LOCAL-PERSON", "CASE-RAW"};
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_geq(asy_fixture_assert_absent(&s_fixture, "outbox", raw, sizeof raw / sizeof raw[0]),
                      1);
        if (pass == 0)
            asy_outbox_destroy(&holder);
    }

    s_stored_t stored = s_read_outbox();
    cr_assert_eq(stored.count, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(stored.events[i].case_id, S_CASE_ID);
        cr_assert_str_eq(stored.events[i].site_id, "site-a");
        cr_assert_str_eq(stored.events[i].agent_id, "ward-a");
        cr_assert_eq(stored.events[i].seq, i + 1);
    }
    /* the NHS number gives the same person key with or without spaces */
    cr_assert_str_eq(stored.events[0].person_key, S_NHS_KEY);
    cr_assert_str_eq(stored.events[1].person_key, S_NHS_KEY);
    /* a local reference only when there is no NHS number, scoped to the site */
    cr_assert_str_eq(stored.events[2].person_key, S_PERSON_KEY);
    cr_assert_eq(stored.events[0].kind, ASY_KIND_REFERRAL_RECEIVED);
    cr_assert_eq(stored.events[1].kind, ASY_KIND_CONTACT_MADE);
}

Test(submit, bad_lines_are_named_and_the_rest_stored)
{
    const char *path = s_write(
        "mixed.jsonl",
        "# a comment\n"
        "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        "\n"
        "{\"caseRef\":\"C2\",\"occurredAt\":\n"
        "{\"nhsNumber\":\"9434765918\",\"caseRef\":\"C3\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
        "\"contactMade\":{}}\n"
        "{\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        "[1,2]\n"
        "{\"caseRef\":\"C4\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"noSuchField\":1,"
        "\"contactMade\":{}}\n"
        "{\"caseRef\":\"C5\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        "{\"caseRef\":\"C6\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
        "\"activityLogged\":{\"minutes\":4294967326}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "exit %d; stderr: %s", result.code, result.err);
    cr_assert_str_eq(result.out, "stored 2, duplicates 0, rejected 6\n");
    /* the range is named, not given by bounds: 2147483648 read as an NHS number and masked */
    s_said(&result, path, 10,
           "activityLogged.minutes: 4294967326 is outside the range of int32 (a 32-bit signed "
           "integer)");
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s:4: column 30: occurredAt: not valid JSON: unexpected token near end of line\n", path);
    cr_assert(strstr(result.err, expected), "no message for the broken JSON: %s", result.err);
    s_said(&result, path, 5, "nhsNumber: not a valid NHS number");
    s_said(&result, path, 6, "caseRef: required");
    s_said(&result, path, 7, "not a JSON object");
    snprintf(expected, sizeof expected, "%s:8: ", path);
    cr_assert(strstr(result.err, expected), "no message for the unknown field: %s", result.err);
    cr_assert(strstr(result.err, "noSuchField") || strstr(result.err, "no_such_field"),
              "the message should name the field: %s", result.err);
    cr_assert_null(strstr(result.err, ":1:"), "the comment is not an error: %s", result.err);
    cr_assert_null(strstr(result.err, ":3:"), "the blank line is not an error: %s", result.err);
    cr_assert_null(strstr(result.err, "943476"), "messages must not echo identifiers");

    /* refused lines take no seq: the two stored events are 1 and 2 */
    s_stored_t stored = s_read_outbox();
    cr_assert_eq(stored.count, 2);
    cr_assert_eq(stored.events[0].seq, 1);
    cr_assert_eq(stored.events[1].seq, 2);
}

/* A byte order mark before the first line is skipped, as import does; anywhere else it is
   an error like any other stray character. */
Test(submit, a_byte_order_mark_starts_the_file)
{
    const char *event =
        "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n";
    char text[512];
    snprintf(text, sizeof text, "\xEF\xBB\xBF%s\xEF\xBB\xBF%s", event, event);
    const char *path = s_write("bom.jsonl", text);
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "exit %d; stderr: %s", result.code, result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 0, rejected 1\n");
    char expected[1024];
    snprintf(expected, sizeof expected, "%s:1:", path);
    cr_assert_null(strstr(result.err, expected), "%s", result.err);
    s_said(&result, path, 2,
           "column 1: not valid JSON: a byte order mark (U+FEFF) starts this line: files joined "
           "with cat? Remove it");

    path = s_write("bom-comment.jsonl", "\xEF\xBB\xBF# exported by the case system\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 0, "exit %d; stderr: %s", result.code, result.err);
}

/* Every malformed line names its column; a line that ends early says "end of line". A line
   with no body names the missing key, as FILE:LINE: field: reason. */
Test(submit, messages_name_the_column_and_the_field)
{
    const char *path =
        s_write("bad.jsonl", "{\"caseRef\":\"C1\"\n"
                             "{\"caseRef\":\"C1\"\r\n"
                             "{\"caseRef\":\"C1\"}}\n"
                             "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\"}\n"
                             "{\"caseRef\":\"C\xc3\xa9\"");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "exit %d; stderr: %s", result.code, result.err);
    cr_assert_str_eq(result.out, "stored 0, duplicates 0, rejected 5\n");
    char expected[2048];
    snprintf(expected, sizeof expected,
             "%s:1: column 16: caseRef: not valid JSON: '}' expected near end of line\n"
             "%s:2: column 16: caseRef: not valid JSON: '}' expected near end of line\n"
             "%s:3: column 17: not valid JSON: end of line expected near '}'\n"
             "%s:4: body: missing (one event kind as a key, e.g. referralReceived, contactMade, "
             "activityLogged)\n"
             "%s:5: column 16: caseRef: not valid JSON: '}' expected near end of line\n",
             path, path, path, path, path);
    cr_assert_str_eq(result.err, expected);

    /* the token jansson stopped at is not quoted when it may be a name or an NHS number */
    path = s_write("unquoted.jsonl", "{\"caseRef\": \"C1\" 9434765919}\n"
                                     "{\"caseRef\": Jane Doe}\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 3, "exit %d; stderr: %s", result.code, result.err);
    snprintf(expected, sizeof expected,
             "%s:1: column 27: caseRef: not valid JSON: '}' expected\n"
             "%s:2: column 16: caseRef: not valid JSON: invalid token\n",
             path, path);
    cr_assert_str_eq(result.err, expected);

    /* a key given twice and a number too big for 64 bits name their field; a key that is an
       NHS number is masked like any value */
    path = s_write("fields.jsonl",
                   "{\"caseRef\":\"C1\",\"contactMade\":{},\"caseRef\":\"C2\"}\n"
                   "{\"caseRef\":\"C1\",\"activityLogged\":{\"minutes\":123456789012345678901}}\n"
                   "{\"caseRef\":\"C1\",\"referralReceived\":{\"reasons\":[1,-99999999999999999999]}}\n"
                   "{\"x\":{\"9434765919\":1,\"9434765919\":2}}\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 3, "exit %d; stderr: %s", result.code, result.err);
    snprintf(expected, sizeof expected,
             "%s:1: column 42: caseRef: not valid JSON: duplicate object key\n"
             "%s:2: column 65: activityLogged.minutes: not valid JSON: too big integer\n"
             "%s:3: column 70: referralReceived.reasons[1]: not valid JSON: too big negative "
             "integer\n"
             "%s:4: column 33: x.<NHS number>: not valid JSON: duplicate object key\n",
             path, path, path, path);
    cr_assert_str_eq(result.err, expected);
    cr_assert_null(strstr(result.err, "943476"), "messages must not echo identifiers");

    /* a syntax error names the field it stopped in or after, but only a field of the event:
       a string where a key belongs may be a value typed there (a name), never echoed */
    path = s_write("syntax.jsonl",
                   "{\"caseRef\":\"C1\",\"occurredAt\":2026-03-02,\"contactMade\":{}}\n"
                   "{\"caseRef\":\"C1\",\"activityLogged\":{\"minutes\": ten}}\n"
                   "{\"caseRef\":\"C1\",\"Jane Doe\" \"x\"}\n"
                   "{\"caseRef\":\"C1\",\"Jane Doe\n"
                   "{\"caseRef\":\"C1\",\"contactMade\":{\"Jane\": Doe}}\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 3, "exit %d; stderr: %s", result.code, result.err);
    snprintf(expected, sizeof expected,
             "%s:1: column 35: occurredAt: not valid JSON: '}' expected\n"
             "%s:2: column 48: activityLogged.minutes: not valid JSON: invalid token\n"
             "%s:3: column 30: not valid JSON: ':' expected\n"
             "%s:4: column 25: not valid JSON: unexpected newline\n"
             "%s:5: column 42: not valid JSON: invalid token\n",
             path, path, path, path, path);
    cr_assert_str_eq(result.err, expected);
}

Test(submit, duplicates_are_counted_not_refused)
{
    const char *line = "{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"caseRef\":\"C1\","
                       "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n";
    char text[1024];
    snprintf(text, sizeof text, "%s%s", line, line);
    const char *path = s_write("dup.jsonl", text);
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 1, rejected 0\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 0, duplicates 2, rejected 0\n");
    cr_assert_eq(s_read_outbox().count, 1);
}

/* A case system on SQL Server exports its GUIDs in capitals: the same UUID, so a duplicate,
   not a second event at the centre (whose uuid column does not tell the spellings apart). */
Test(submit, an_event_id_in_capitals_is_the_same_event)
{
    const char *lower = "{\"eventId\":\"0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3\",\"caseRef\":\"C1\","
                        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n";
    const char *upper = "{\"eventId\":\"0190A5C8-2F1E-7A3B-8C4D-5E6F708192A3\",\"caseRef\":\"C1\","
                        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n";
    asy_fixture_result_t result = s_submit(s_write("upper.jsonl", upper));
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 0, rejected 0\n");
    result = s_submit(s_write("lower.jsonl", lower));
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 0, duplicates 1, rejected 0\n", "%s", result.err);
    s_stored_t stored = s_read_outbox();
    cr_assert_eq(stored.count, 1);
    cr_assert_str_eq(stored.events[0].event_id, "0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3");
}

/* "null means absent" holds for the keys read before the generic mapper too. */
Test(submit, null_identifier_and_site_keys_are_absent)
{
    const char *path =
        s_write("nulls.jsonl",
                "{\"nhsNumber\":null,\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                "\"contactMade\":{}}\n"
                "{\"personRef\":null,\"caseRef\":\"C2\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                "\"contactMade\":{}}\n"
                "{\"caseId\":null,\"caseRef\":\"C3\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                "\"contactMade\":{}}\n"
                "{\"personKey\":null,\"nhsNumber\":\"9434765919\",\"caseRef\":\"C4\","
                "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
                "{\"siteId\":null,\"eventId\":null,\"caseRef\":\"C5\","
                "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
                "{\"caseRef\":null,\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 5, duplicates 0, rejected 1\n", "%s", result.err);
    s_said(&result, path, 6, "");
    cr_assert_null(strstr(result.err, "must be a string"), "%s", result.err);
}

Test(submit, an_event_id_reused_for_other_content_is_refused)
{
    /* a correction made by editing a line that kept its eventId: not dropped as a duplicate */
    const char *first = "{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"caseRef\":\"C1\","
                        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n";
    const char *edited = "{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"caseRef\":\"C1\","
                         "\"occurredAt\":\"2026-03-03T10:00:00Z\",\"contactMade\":{}}\n";
    asy_fixture_result_t result = s_submit(s_write("first.jsonl", first));
    cr_assert_eq(result.code, 0, "%s", result.err);
    const char *path = s_write("edited.jsonl", edited);
    result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 0, duplicates 0, rejected 1\n");
    s_said(&result, path, 1,
           "event_id 01890a5d-ac96-774b-bcce-b302099a8057: stored before with other content; a "
           "correction needs an event of its own (a new eventId)");
    /* the same line again, recorded at another moment, is still a duplicate */
    result = s_submit(s_write("again.jsonl", first));
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 0, duplicates 1, rejected 0\n");
    cr_assert_eq(s_read_outbox().count, 1);
}

Test(submit, status_never_creates_an_outbox)
{
    char *argv[] = {"status", NULL};
    asy_fixture_result_t result = asy_fixture_run(&s_fixture, asy_cmd_status, 1, argv);
    cr_assert_eq(result.code, 1, "%s", result.err);
    char expected[1024];
    snprintf(expected, sizeof expected, "no outbox at %s: nothing has been submitted there yet",
             s_fixture.config.outbox_path);
    cr_assert(strstr(result.err, expected), "%s", result.err);
    cr_assert_eq(access(s_fixture.config.outbox_path, F_OK), -1, "status made an outbox");
    /* nor in an empty file */
    FILE *empty = fopen(s_fixture.config.outbox_path, "w");
    cr_assert_not_null(empty);
    fclose(empty);
    result = asy_fixture_run(&s_fixture, asy_cmd_status, 1, argv);
    cr_assert_eq(result.code, 1, "%s", result.err);
    cr_assert(strstr(result.err, expected), "%s", result.err);
    struct stat info;
    cr_assert_eq(stat(s_fixture.config.outbox_path, &info), 0);
    cr_assert_eq(info.st_size, 0, "status wrote into the empty file");
    unlink(s_fixture.config.outbox_path);
}

/* Another program's SQLite database given as the outbox is not taken over (nor changed):
   refused, naming a table of its own. */
Test(submit, another_programs_database_is_not_taken_as_an_outbox)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(s_fixture.config.outbox_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE patients (nhs text)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    const char *path = s_write("one.jsonl", "{\"caseRef\":\"C1\",\"occurredAt\":"
                                            "\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 1, "%s", result.err);
    cr_assert(strstr(result.err, "is not an advsync outbox: it holds a table \"patients\""), "%s",
              result.err);
    char *argv[] = {"status", NULL};
    result = asy_fixture_run(&s_fixture, asy_cmd_status, 1, argv);
    cr_assert_eq(result.code, 1, "%s", result.err);
    cr_assert_eq(sqlite3_open(s_fixture.config.outbox_path, &db), SQLITE_OK);
    sqlite3_stmt *statement = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &statement, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(statement), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(statement, 0), 1, "tables were added to it");
    sqlite3_finalize(statement);
    sqlite3_close(db);
}

Test(submit, a_line_with_a_nul_byte_is_refused)
{
    static const char text[] = "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                               "\"contactMade\":{}}\0{\"junk\n"
                               "{\"caseRef\":\"C2\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                               "\"contactMade\":{}}\n";
    const char *path = asy_fixture_write_bytes(&s_fixture, "nul.jsonl", text, sizeof text - 1);
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 0, rejected 1\n");
    s_said(&result, path, 1, "column 70: a NUL byte: the line is not text");

    /* an escaped NUL: jansson's message named its own flag, JSON_ALLOW_NUL */
    path = s_write("escaped-nul.jsonl", "{\"caseRef\":\"A\\u0000B\",\"occurredAt\":"
                                        "\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert(strstr(result.err, "a \\u0000 (NUL) character is not allowed in text"), "%s",
              result.err);
    cr_assert_null(strstr(result.err, "JSON_ALLOW_NUL"), "%s", result.err);
}

Test(submit, lines_ending_in_cr_alone_are_named_as_such)
{
    const char *path =
        s_write("cr.jsonl", "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                            "\"contactMade\":{}}\r{\"caseRef\":\"C2\",\"occurredAt\":"
                            "\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\r");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert(strstr(result.err, "(the lines end in CR alone: save the file with LF or CRLF line "
                                 "ends)"),
              "%s", result.err);
}

Test(submit, a_line_for_another_site_is_refused)
{
    const char *path =
        s_write("sites.jsonl", "{\"siteId\":\"site-elsewhere\",\"caseRef\":\"C1\","
                               "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
                               "{\"siteId\":\"site-a\",\"caseRef\":\"C2\","
                               "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
                               "{\"siteId\":5,\"caseRef\":\"C3\","
                               "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 0, rejected 2\n", "%s", result.err);
    s_said(&result, path, 1, "siteId: \"site-elsewhere\" is not this agent's site \"site-a\"");
    s_said(&result, path, 3, "siteId: must be a string");
}

/* An NHS number in free text (a referrer, a ward, a goal) would leave the site as written:
   refused, naming the field, never the number. Ten digits that are no NHS number, longer
   numbers (a telephone number) and the event id's digits pass. */
Test(submit, an_nhs_number_in_free_text_is_refused)
{
    const char *path = s_write(
        "text.jsonl",
        "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":"
        "{\"service\":\"SERVICE_IMHA\",\"referrerOrg\":\"Jane Doe NHS 943 476 5919\"}}\n"
        "{\"caseRef\":\"C2\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"planAgreed\":"
        "{\"goals\":[\"see the ward\",\"call 943-476-5919\"]}}\n"
        "{\"caseRef\":\"C3\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":"
        "{\"service\":\"SERVICE_IMHA\",\"referrerOrg\":\"Tel 01632 960001, ref 1234567890\"}}\n"
        "{\"eventId\":\"0190a5c8-2f1e-7abc-8def-943476591900\",\"caseRef\":\"C4\","
        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 2, duplicates 0, rejected 2\n", "%s", result.err);
    s_said(&result, path, 1, "referralReceived.referrerOrg: holds what reads as an NHS number");
    s_said(&result, path, 2, "planAgreed.goals[1]: holds what reads as");
    cr_assert_null(strstr(result.err, "5919"), "the number is never echoed: %s", result.err);

    /* written with other separators; and a refusal that quotes a value masks it */
    path = s_write(
        "text2.jsonl",
        "{\"caseRef\":\"C5\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":"
        "{\"service\":\"SERVICE_IMHA\",\"referrerOrg\":\"943.476.5919\"}}\n"
        "{\"caseRef\":\"C6\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":"
        "{\"service\":\"SERVICE_IMHA\",\"referrerOrg\":\"943\xc2\xa0"
        "476\xc2\xa0"
        "5919\"}}\n"
        "{\"eventId\":\"943 476 5919\",\"caseRef\":\"C7\","
        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        "{\"siteId\":\"943-476-5919\",\"caseRef\":\"C8\","
        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        /* values so long that a cut of the quote would fall inside the number */
        "{\"siteId\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx9434765919\","
        "\"caseRef\":\"C9\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        "{\"eventId\":\"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy9434765919\",\"caseRef\":\"C10\","
        "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n"
        /* an NHS number in a key, the path cut around it */
        "{\"caseRef\":\"C12\",\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":"
        "{\"service\":\"SERVICE_IMHA\",\"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
        "yyyyy9434765919\":\"4010232137\"}}\n"
        /* a summer time holds ten digits; it is no NHS number */
        "{\"caseRef\":\"C11\",\"occurredAt\":\"2026-07-02T01:03:00+01:00\","
        "\"contactMade\":{}}\n");
    result = s_submit(path);
    cr_assert_eq(result.code, 3, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 0, rejected 7\n", "%s", result.err);
    s_said(&result, path, 2, "referralReceived.referrerOrg: holds what reads");
    s_said(&result, path, 3, "event_id: \"<NHS number>\" is not a canonical");
    s_said(&result, path, 4, "siteId: \"<NHS number>\" is not this agent's");
    cr_assert_null(strstr(result.err, "5919"), "the number is never echoed: %s", result.err);
    cr_assert_null(strstr(result.err, "943476591"), "nor cut to nine digits: %s", result.err);
}

/* An agent set up with another agent's id or site cannot send its outbox (WRONG_AGENT), nor
   can another agent open it: `export` writes its unacknowledged events without this agent's
   stamps, and `submit` under the right configuration stores the same events. */
Test(submit, export_moves_the_events_to_another_agent)
{
    const char *path = s_write(
        "two.jsonl",
        "{\"caseRef\":\"C1\",\"personRef\":\"P1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
        "\"referralReceived\":{\"service\":\"imha\",\"referrerOrg\":\"Ward 3\"}}\n"
        "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-03T10:00:00Z\",\"contactMade\":{}}\n");
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 0, "%s", result.err);
    char *argv[] = {"export", NULL};
    result = asy_fixture_run(&s_fixture, asy_cmd_export, 1, argv);
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_null(strstr(result.out, "site-a"), "no stamp of this agent: %s", result.out);
    cr_assert_null(strstr(result.out, "\"seq\""), "%s", result.out);
    cr_assert(strstr(result.out, "Ward 3"), "%s", result.out);
    const char *exported = s_write("exported.jsonl", result.out);

    asy_agent_config_t wrong = s_fixture.config;
    snprintf(s_fixture.config.agent_id, sizeof s_fixture.config.agent_id, "ward-b");
    snprintf(s_fixture.config.site_id, sizeof s_fixture.config.site_id, "site-b");
    snprintf(s_fixture.config.outbox_path, sizeof s_fixture.config.outbox_path, "%s/b.db",
             s_fixture.dir);
    result = s_submit(exported);
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 2, duplicates 0, rejected 0\n");
    s_stored_t moved = s_read_outbox();
    s_fixture.config = wrong;
    s_stored_t original = s_read_outbox();
    cr_assert_eq(moved.count, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_str_eq(moved.events[i].event_id, original.events[i].event_id);
        cr_assert_str_eq(moved.events[i].case_id, original.events[i].case_id);
        cr_assert_str_eq(moved.events[i].site_id, "site-b");
        cr_assert_str_eq(original.events[i].site_id, "site-a");
    }
}

Test(submit, a_file_after_a_double_dash_may_start_with_a_dash)
{
    const char *line = "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                       "\"contactMade\":{}}\n";
    s_write("-dash.jsonl", line);
    cr_assert_eq(chdir(s_fixture.dir), 0);
    char *argv[] = {"submit", "--", "-dash.jsonl", NULL};
    asy_fixture_result_t result = asy_fixture_run(&s_fixture, asy_cmd_submit, 3, argv);
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 1, duplicates 0, rejected 0\n");
}

Test(submit, a_folder_is_not_read_as_input)
{
    asy_fixture_result_t result = s_submit(s_fixture.dir);
    cr_assert_eq(result.code, 1, "%s", result.err);
    cr_assert(strstr(result.err, "it is a folder, not a file of JSON lines"), "%s", result.err);
}

Test(submit, many_lines_span_transactions)
{
    char path[512];
    snprintf(path, sizeof path, "%s/many.jsonl", s_fixture.dir);
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    for (int i = 0; i < 2500; i++)
        fprintf(file,
                "{\"caseRef\":\"C%d\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                "\"contactMade\":{}}\n",
                i % 40);
    fclose(file);
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 0, "%s", result.err);
    cr_assert_str_eq(result.out, "stored 2500, duplicates 0, rejected 0\n");
    char error[512];
    asy_outbox_t *outbox = asy_outbox_open(s_fixture.config.outbox_path, s_fixture.config.agent_id,
                                           s_fixture.config.site_id, error, sizeof error);
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 2500);
    cr_assert_eq(status.backlog, 2500);
    asy_outbox_destroy(&outbox);
}

/* A producer that pauses (`tail -f export | submit -`) must not hold the outbox's write lock
   while submit waits for its next line: what was read is committed first. */
Test(submit, an_idle_pipe_commits_what_it_has)
{
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        dup2(pipefd[0], STDIN_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        char *argv[] = {"submit", "-", NULL};
        _exit(asy_cmd_submit(&s_fixture.config, 2, argv));
    }
    close(pipefd[0]);
    const char *line = "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                       "\"contactMade\":{}}\n";
    cr_assert_eq(write(pipefd[1], line, strlen(line)), (ssize_t)strlen(line));
    uint64_t seen = 0;
    for (int i = 0; i < 100 && seen == 0; i++) {
        usleep(50 * 1000);
        seen = asy_fixture_last_seq(&s_fixture);
    }
    cr_assert_eq(seen, 1, "the first line was not committed while submit waited for more");
    cr_assert_eq(write(pipefd[1], line, strlen(line)), (ssize_t)strlen(line));
    close(pipefd[1]);
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(asy_fixture_last_seq(&s_fixture), 2);
}

/* Ctrl-C while submit waits on a pipe: what was read is committed and the run says where to
   resume (128 + the signal), instead of dying silently with part of the input stored. */
Test(submit, an_interrupt_says_where_to_resume)
{
    char *argv[] = {"submit", "-", NULL};
    asy_fixture_child_t spawned;
    asy_fixture_spawn(&s_fixture, asy_cmd_submit, 2, argv, &spawned);
    const char *lines = "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                        "\"contactMade\":{}}\n"
                        "{\"caseRef\":\"C2\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                        "\"contactMade\":{}}\n"
                        "not json\n";
    cr_assert_eq(write(spawned.in, lines, strlen(lines)), (ssize_t)strlen(lines));
    /* the third line refused on stderr: submit has read all three and waits in read() */
    char err[2048] = "";
    size_t err_used = 0;
    while (!strstr(err, "stdin:3:") && err_used + 1 < sizeof err) {
        ssize_t got = read(spawned.err, err + err_used, sizeof err - 1 - err_used);
        cr_assert_gt(got, 0, "submit ended before refusing line 3: %s", err);
        err_used += (size_t)got;
        err[err_used] = '\0';
    }
    close(spawned.err);
    usleep(20 * 1000);
    cr_assert_eq(kill(spawned.pid, SIGINT), 0);
    int status = 0;
    cr_assert_eq(waitpid(spawned.pid, &status, 0), spawned.pid);
    close(spawned.in);
    char out[512] = "";
    ssize_t got = read(spawned.out, out, sizeof out - 1);
    close(spawned.out);
    out[got > 0 ? got : 0] = '\0';
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT, "status %d: %s", status,
              out);
    cr_assert_str_eq(out, "interrupted (SIGINT): stored 2, from lines 1-3; the input from line 4 "
                          "on was not stored (submit it from there)\n");
    cr_assert_eq(asy_fixture_last_seq(&s_fixture), 2);
}

/* A submit reading a pipe while the outbox is re-issued: its next line is not stamped with
   the old epoch; it stops saying why, without an empty "stdin:2: " line first. */
Test(submit, a_reissue_under_a_running_submit_stops_it_with_a_reason)
{
    char *argv[] = {"submit", "-", NULL};
    asy_fixture_child_t spawned;
    asy_fixture_spawn(&s_fixture, asy_cmd_submit, 2, argv, &spawned);
    const char *first = "{\"caseRef\":\"C1\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                        "\"contactMade\":{}}\n";
    cr_assert_eq(write(spawned.in, first, strlen(first)), (ssize_t)strlen(first));
    uint64_t seen = 0;
    for (int i = 0; i < 100 && seen == 0; i++) {
        usleep(50 * 1000);
        seen = asy_fixture_last_seq(&s_fixture);
    }
    cr_assert_eq(seen, 1);
    char *reissue[] = {"reissue", NULL};
    asy_fixture_result_t result = asy_fixture_run(&s_fixture, asy_cmd_reissue, 1, reissue);
    cr_assert_eq(result.code, 0, "%s", result.err);
    const char *second = "{\"caseRef\":\"C2\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                         "\"contactMade\":{}}\n";
    cr_assert_eq(write(spawned.in, second, strlen(second)), (ssize_t)strlen(second));
    close(spawned.in);
    int status = 0;
    cr_assert_eq(waitpid(spawned.pid, &status, 0), spawned.pid);
    char err[4096] = "";
    ssize_t got = read(spawned.err, err, sizeof err - 1);
    close(spawned.err);
    err[got > 0 ? got : 0] = '\0';
    close(spawned.out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d: %s", status, err);
    cr_assert(strstr(err, "the outbox was re-issued as epoch"), "%s", err);
    cr_assert_null(strstr(err, "stdin:2: \n"), "an empty message line: %s", err);
}

/* An empty file is no outbox to re-issue (review: reissue made it one, with mode 0644), as
   status and export say. */
Test(submit, reissue_refuses_an_empty_file)
{
    snprintf(s_fixture.config.outbox_path, sizeof s_fixture.config.outbox_path, "%s/empty.db",
             s_fixture.dir);
    asy_fixture_write(&s_fixture, "empty.db", "");
    char *reissue[] = {"reissue", NULL};
    asy_fixture_result_t result = asy_fixture_run(&s_fixture, asy_cmd_reissue, 1, reissue);
    cr_assert_eq(result.code, 1, "%s", result.err);
    cr_assert(strstr(result.err, "no outbox at") && strstr(result.err, "an empty file"), "%s",
              result.err);
    struct stat info;
    cr_assert_eq(stat(s_fixture.config.outbox_path, &info), 0);
    cr_assert_eq(info.st_size, 0, "the file was changed");
}

Test(submit, fatal_errors_and_usage)
{
    const char *path = s_write("one.jsonl", "{\"caseRef\":\"C1\",\"occurredAt\":"
                                            "\"2026-03-02T10:00:00Z\",\"contactMade\":{}}\n");
    cr_assert_eq(s_submit("--help").code, 0);
    cr_assert(strstr(s_submit("--help").out, "usage: advsync-agent"));
    cr_assert_eq(s_submit("--bogus").code, 2);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.jsonl", s_fixture.dir);
    cr_assert_eq(s_submit(missing).code, 1);

    snprintf(s_fixture.config.key_file, sizeof s_fixture.config.key_file, "%s/no.key",
             s_fixture.dir);
    asy_fixture_result_t result = s_submit(path);
    cr_assert_eq(result.code, 1);
    cr_assert(strstr(result.err, "no.key"), "the message should name the key file: %s", result.err);

    snprintf(s_fixture.config.key_file, sizeof s_fixture.config.key_file, "%s/consortium.key",
             s_fixture.dir);
    snprintf(s_fixture.config.outbox_path, sizeof s_fixture.config.outbox_path, "%s/none/x.db",
             s_fixture.dir);
    cr_assert_eq(s_submit(path).code, 1);
}

Test(submit, submitter_refusal_takes_no_seq)
{
    char error[512];
    asy_outbox_t *outbox = asy_outbox_open(s_fixture.config.outbox_path, s_fixture.config.agent_id,
                                           s_fixture.config.site_id, error, sizeof error);
    cr_assert_not_null(outbox, "%s", error);
    asy_pseudonym_key_t key;
    cr_assert_eq(asy_pseudonym_key_load(s_fixture.config.key_file, &key, error, sizeof error), 0);
    asy_submitter_t submitter = {.outbox = outbox, .key = &key, .site_id = "site-a"};

    /* no body: valid JSON for the codec, refused by validation */
    json_t *object = json_pack("{s:s, s:s}", "caseRef", "C1", "occurredAt", "2026-03-02T10:00:00Z");
    cr_assert_eq(asy_submitter_add(&submitter, object, error, sizeof error), ASY_EINVAL);
    cr_assert_neq(error[0], '\0', "a refusal says why");
    json_decref(object);

    object = json_pack("{s:s, s:s, s:{}}", "caseRef", "C1", "occurredAt", "2026-03-02T10:00:00Z",
                       "contactMade");
    cr_assert_eq(asy_submitter_add(&submitter, object, error, sizeof error), 0, "%s", error);
    json_decref(object);
    cr_assert_eq(submitter.stored, 1);
    cr_assert_eq(submitter.rejected, 1);
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    cr_assert_eq(status.last_seq, 1);
    asy_outbox_destroy(&outbox);
}

/* ------------------------------------------------------------------------------------------
   asy_agent_config_load: defaults, file, flags (they share this executable). */

static int s_load(asy_agent_config_t *config, char **args, int count, char *error)
{
    char *argv[16] = {"advsync-agent"};
    for (int i = 0; i < count; i++)
        argv[i + 1] = args[i];
    int argc = count + 1;
    argv[argc] = NULL;
    int rc = asy_agent_config_load(config, &argc, argv, error, 512);
    /* what is left is the program name and the non-common arguments */
    for (int i = 1; rc == 0 && i < argc; i++)
        cr_assert(strncmp(argv[i], "--id", 4) && strncmp(argv[i], "--config", 8));
    return rc;
}

/* the config tests write their files in a folder of their own, as the submit tests do (they
   used to write in "/", where two runs at once overwrote each other's files) */
TestSuite(config, .init = s_setup, .fini = s_teardown);

Test(config, defaults_file_then_flags)
{
    const char *path = s_write("agent.cfg", "# site agent\n"
                                            "agent\n"
                                            "    id = ward-3\n"
                                            "    site = site-north\n"
                                            "    key_file = \"/etc/advsync/k\"\n"
                                            "    endpoint = \"tcp://a:1, tcp://b:2\"\n"
                                            "    endpoint = ipc:///tmp/c\n"
                                            "    window = 4\n"
                                            "monitor\n"
                                            "    coalesce_ms = 50\n");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s", path);
    asy_agent_config_t config;
    char error[512] = "";
    char *args[] = {"--config", cfg, "status", "--json"};
    cr_assert_eq(s_load(&config, args, 4, error), 0, "%s", error);
    cr_assert_str_eq(config.agent_id, "ward-3");
    cr_assert_str_eq(config.site_id, "site-north");
    cr_assert_str_eq(config.outbox_path, "./ward-3.outbox.db", "derived from the id");
    cr_assert_str_eq(config.key_file, "/etc/advsync/k");
    cr_assert_eq(config.endpoint_count, 3);
    cr_assert_str_eq(config.endpoints[0], "tcp://a:1");
    cr_assert_str_eq(config.endpoints[1], "tcp://b:2");
    cr_assert_str_eq(config.endpoints[2], "ipc:///tmp/c");
    cr_assert_eq(config.window, 4);
    cr_assert_eq(config.batch_max, 5000);
    cr_assert_eq(config.batch_ms, 2);
    cr_assert_eq(config.ack_timeout_ms, 5000);

    /* flags win, anywhere before "--"; --endpoint replaces the file's list */
    char *flags[] = {"submit",   "--id=ward-4", "--config", cfg,  "--endpoint", "tcp://x:9",
                     "--outbox", "/tmp/o.db",   "-",        "--", "--site",     "kept"};
    int argc = 13;
    char *argv[14] = {"advsync-agent"};
    for (int i = 0; i < 12; i++)
        argv[i + 1] = flags[i];
    cr_assert_eq(asy_agent_config_load(&config, &argc, argv, error, sizeof error), 0, "%s", error);
    cr_assert_str_eq(config.agent_id, "ward-4");
    cr_assert_str_eq(config.outbox_path, "/tmp/o.db");
    cr_assert_eq(config.endpoint_count, 1);
    cr_assert_str_eq(config.endpoints[0], "tcp://x:9");
    cr_assert_eq(argc, 6, "left: program, submit, -, --, --site, kept");
    cr_assert_str_eq(argv[1], "submit");
    cr_assert_str_eq(argv[2], "-");
    cr_assert_str_eq(argv[4], "--site");
    cr_assert_null(argv[6]);

    /* no file: defaults only */
    char *none[] = {"keygen", "--key-file", "/tmp/k"};
    cr_assert_eq(s_load(&config, none, 3, error), 0, "%s", error);
    cr_assert_str_eq(config.endpoints[0], "tcp://127.0.0.1:5570");
    cr_assert_str_eq(config.agent_id, "");
    cr_assert_str_eq(config.outbox_path, "");
}

Test(config, errors_name_the_key_or_flag)
{
    static const struct {
        const char *file;
        const char *message;
    } cases[] = {
        {"agent\n    id = ward 3\n", "agent id \"ward 3\""},
        {"agent\n  id = w\n", "is not valid zconfig text"},
        {"agent\n    id = \"ward 3\"\n", "agent id \"ward 3\""},
        {"agent\n    batch_max = 0\n", "agent/batch_max: must be a whole number from 1 to 5000"},
        {"agent\n    window = lots\n", "agent/window: must be a whole number"},
        {"agent\n    endpiont = tcp://a:1\n", "agent/endpiont: unknown key"},
        {"agent\n    endpoint = \"centre:5570\"\n", "must start with tcp:// or ipc://"},
        {"agent\n    endpoint = \"tcp://a:1,,tcp://b:1\"\n", "empty endpoint"},
        {"agent\n    endpoint = \"tcp://centre:99999\"\n",
         "endpoint \"tcp://centre:99999\" has port \"99999\", not a number 1..65535"},
        {"agent\n    endpoint = \"tcp://centre:5570x\"\n", "has port \"5570x\""},
        {"agent\n    endpoint = \"tcp://:\"\n", "needs a host and a port"},
        {"agent\n    endpoint = \"tcp://centre:*\"\n", "has port \"*\""},
        {"agent\n    endpoint = \"ipc://\"\n", "needs a path after ipc://"},
        {"broker\n    workers = 2\n", "no `agent` section"},
        {"agent\n    id = ward-3\n    site = s\n    id = ward-4\n",
         "agent/id: given twice: which one is meant cannot be told"},
        {"agent\n    outbox = \"\"\n", "agent/outbox: empty: give a path"},
        {"agent\n    id = a\nagent\n    id = b\n", "2 `agent` sections: which one is meant"},
        {"agnet\n    id = x\n",
         "\"agnet\" is not a section of any advsync program (they are agent, broker, monitor)"},
        /* zconfig cuts a value at '#': two wards "ward#3" and "ward#4" were one agent "ward" */
        {"# the ward's agent\nagent\n    site = s   # the site\n    id = ward#3\n",
         "line 4: the value of id is cut at '#' (a comment starts there): quote the value"},
        {"agent\n    id = #3\n", "line 2: the value of id is cut at '#'"},
        {"agent\n    id = w\n        site = s\n", "agent/id: \"site\" is indented under it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.cfg", i);
        char cfg[512];
        snprintf(cfg, sizeof cfg, "%s", s_write(name, cases[i].file));
        asy_agent_config_t config;
        char error[512] = "";
        char *args[] = {"--config", cfg, "status"};
        cr_assert_eq(s_load(&config, args, 3, error), ASY_ECONFIG, "case %zu accepted", i);
        cr_assert(strstr(error, cases[i].message), "case %zu: %s", i, error);
        cr_assert(strstr(error, cfg) || strstr(error, "id \""), "case %zu names no file: %s", i,
                  error);
    }
    asy_agent_config_t config;
    char error[512] = "";
    char *missing[] = {"--config", "/nonexistent/agent.cfg", "status"};
    cr_assert_eq(s_load(&config, missing, 3, error), ASY_ECONFIG);
    cr_assert(strstr(error, "/nonexistent/agent.cfg"), "%s", error);
    char *dangling[] = {"status", "--id"};
    cr_assert_eq(s_load(&config, dangling, 2, error), ASY_ECONFIG);
    cr_assert(strstr(error, "--id: needs a value"), "%s", error);
    /* two files: which one is meant cannot be told (the last one used to win silently) */
    char *twice[] = {"--config", "/nonexistent/a.cfg", "status", "--config=/nonexistent/b.cfg"};
    cr_assert_eq(s_load(&config, twice, 4, error), ASY_ECONFIG);
    cr_assert(strstr(error, "--config: given twice: which one is meant cannot be told"), "%s",
              error);
    /* so is any other flag but --endpoint (a fail-over list): two outboxes, one a typo */
    char *outboxes[] = {"--id", "a", "status", "--outbox", "/tmp/x.db", "--outbox=/tmp/y.db"};
    cr_assert_eq(s_load(&config, outboxes, 6, error), ASY_ECONFIG);
    cr_assert(strstr(error, "--outbox: given twice: which one is meant cannot be told"), "%s",
              error);
    char *ids[] = {"--id", "a", "--site", "s", "--id=b", "status"};
    cr_assert_eq(s_load(&config, ids, 6, error), ASY_ECONFIG);
    cr_assert(strstr(error, "--id: given twice"), "%s", error);
    /* a folder is said to be one; a byte order mark (an editor's UTF-8 with BOM) is skipped */
    char *folder[] = {"--config", "/tmp", "status"};
    cr_assert_eq(s_load(&config, folder, 3, error), ASY_ECONFIG);
    cr_assert(strstr(error, "/tmp is a folder, not a file"), "%s", error);
    char bom[512];
    snprintf(bom, sizeof bom, "%s",
             s_write("bom.cfg", "\xEF\xBB\xBF"
                                "agent\n    id = ward-9\n"));
    char *with_bom[] = {"--config", bom, "status"};
    cr_assert_eq(s_load(&config, with_bom, 3, error), 0, "%s", error);
    cr_assert_str_eq(config.agent_id, "ward-9");
    char *bad_flag[] = {"--endpoint", "udp://x", "run"};
    cr_assert_eq(s_load(&config, bad_flag, 3, error), ASY_ECONFIG);
    cr_assert(strstr(error, "--endpoint"), "%s", error);
}
