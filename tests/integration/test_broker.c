/*  test_broker.c: the broker's answers to good and bad input. A real advsyncd process, a real
    PostgreSQL database per test, and a DEALER in the test that speaks the protocol through
    codec.h. Every case checks the documented answer, that the broker still answers a HELLO
    afterwards, and what the database holds.  */
#include "codec.h"
#include "fixture.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CASE_ID "a3c1e5f0b2d4968877665544332211009988776655443322110099aabbccddee"

static char *s_db;
static char *s_dir;
static pid_t s_broker;
static char s_endpoint[128];
static zsock_t *s_dealer;
static PGconn *s_pg;

static void s_setup(void)
{
    s_db = asy_test_create_database();
    s_dir = asy_test_tmpdir();
    /* a port the kernel picks, not "*": czmq hands those out from 49152 up, so the port a
       restarted broker binds again (restarted_broker_asks_for_hello_again) would be the next
       one another test's "*" takes in the gap */
    s_broker =
        asy_test_start_broker(s_db, s_dir, asy_test_free_port(), s_endpoint, sizeof s_endpoint);
    s_dealer = zsock_new_dealer(s_endpoint);
    cr_assert_not_null(s_dealer, "cannot connect a DEALER to %s", s_endpoint);
    zsock_set_rcvtimeo(s_dealer, 10000);
    zsock_set_sndtimeo(s_dealer, 10000);
    zsock_set_linger(s_dealer, 0);
    s_pg = asy_test_pg_connect(s_db);
}

static void s_teardown(void)
{
    zsock_destroy(&s_dealer);
    if (s_pg)
        PQfinish(s_pg);
    if (s_broker > 0)
        asy_test_stop(s_broker, SIGTERM, 10000);
    /* the database is dropped; the broker's log stays in s_dir */
    asy_test_drop_database(s_db);
    free(s_db);
    free(s_dir);
}

/* --------------------------------------------------------------------------------------------
   Talking to the broker */

static void s_send_bytes(const void *data, size_t size)
{
    zframe_t *frame = zframe_new(data, size);
    cr_assert_eq(zframe_send(&frame, s_dealer, 0), 0, "send failed");
}

static void s_send_frame(const asy_frame_t *frame)
{
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_frame_encode(frame, &data, &size), 0);
    s_send_bytes(data, size);
    free(data);
}

/* Receives one frame into *frame (release it after) and checks its type. */
static void s_recv(asy_frame_t *frame, int type)
{
    zframe_t *reply = zframe_recv(s_dealer);
    cr_assert_not_null(reply, "no answer from the broker within 10 s (log in %s)", s_dir);
    int rc = asy_frame_decode(frame, zframe_data(reply), zframe_size(reply));
    zframe_destroy(&reply);
    cr_assert_eq(rc, 0, "broker's answer does not decode");
    if (frame->type != type && frame->type == ASY_FRAME_NACK)
        cr_assert_fail("expected frame type %d, got NACK %s: %s", type,
                       asy_code_name(frame->u.nack.code), frame->u.nack.reason);
    cr_assert_eq(frame->type, type, "expected frame type %d, got %d", type, frame->type);
}

/* Receives a NACK with the given code; returns it in *frame (release it after). */
static void s_expect_nack(asy_frame_t *frame, int code)
{
    s_recv(frame, ASY_FRAME_NACK);
    cr_assert_eq(frame->u.nack.code, code, "expected NACK %s, got %s: %s", asy_code_name(code),
                 asy_code_name(frame->u.nack.code), frame->u.nack.reason);
    cr_assert(frame->u.nack.reason && *frame->u.nack.reason, "NACK without a reason");
}

static void s_send_hello(const char *agent, const char *site, uint64_t epoch, uint32_t version_min,
                         uint32_t version_max)
{
    asy_frame_t frame = {.type = ASY_FRAME_HELLO, .version = ASY_PROTOCOL_VERSION};
    frame.u.hello = (asy_hello_t){.version_min = version_min, .version_max = version_max,
                                  .agent_id = agent, .site_id = site, .epoch = epoch,
                                  .last_seq = 0, .software = "test_broker"};
    s_send_frame(&frame);
}

/* HELLO that must be WELCOMEd; returns the committed seq. */
static uint64_t s_hello(const char *agent, const char *site, uint64_t epoch)
{
    s_send_hello(agent, site, epoch, 1, 1);
    asy_frame_t welcome;
    s_recv(&welcome, ASY_FRAME_WELCOME);
    cr_assert_eq(welcome.u.welcome.version, 1);
    cr_assert_eq(welcome.u.welcome.max_batch_events, ASY_MAX_BATCH_EVENTS);
    cr_assert_eq(welcome.u.welcome.max_frame_bytes, ASY_MAX_FRAME_BYTES);
    cr_assert_eq(welcome.u.welcome.window, ASY_DEFAULT_WINDOW);
    uint64_t committed = welcome.u.welcome.committed_seq;
    asy_frame_release(&welcome);
    return committed;
}

/* The broker is still serving: a HELLO on the same connection is WELCOMEd. */
static void s_assert_alive(void)
{
    s_hello("alive-check", "alive-site", 1);
}

static void s_publish(const char *agent, uint64_t epoch, uint64_t first_seq,
                      const asy_bytes_t *events, size_t count)
{
    asy_frame_t frame = {.type = ASY_FRAME_PUBLISH, .version = ASY_PROTOCOL_VERSION};
    frame.u.publish = (asy_publish_t){.agent_id = agent, .epoch = epoch, .first_seq = first_seq,
                                      .count = count, .events = events};
    s_send_frame(&frame);
}

/* --------------------------------------------------------------------------------------------
   Events */

/* A valid contact.made event, encoded (caller frees data). */
static asy_bytes_t s_event(const char *agent, const char *site, uint64_t epoch, uint64_t seq)
{
    json_error_t json_error;
    json_t *json = json_loads("{\"occurredAt\": \"2026-01-05T10:00:00Z\", \"actorRole\": "
                              "\"ACTOR_ADVOCATE\", \"contactMade\": {\"channel\": "
                              "\"CHANNEL_PHONE\"}}", 0, &json_error);
    cr_assert_not_null(json);
    asy_event_t *event = NULL;
    char error[256] = "";
    cr_assert_eq(asy_event_from_json(json, &event, error, sizeof error), 0, "%s", error);
    json_decref(json);
    cr_assert_eq(asy_event_set_case_id(event, S_CASE_ID), 0);
    cr_assert_eq(asy_event_stamp(event, site, agent, epoch, seq), 0);
    asy_check_t why = {0};
    cr_assert_eq(asy_event_validate(event, &why), 0, "test event invalid: %s", why.reason);
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    asy_event_destroy(&event);
    return (asy_bytes_t){data, size};
}

static void s_free_events(asy_bytes_t *events, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free((void *)events[i].data);
}

/* Minimal protobuf writer, for bytes the codec would refuse to make. */
static size_t s_pb_varint(uint8_t *out, uint64_t value)
{
    size_t used = 0;
    do {
        out[used++] = (uint8_t)((value & 0x7f) | (value > 0x7f ? 0x80 : 0));
        value >>= 7;
    } while (value);
    return used;
}

static size_t s_pb_string(uint8_t *out, int field, const char *text)
{
    size_t used = s_pb_varint(out, (uint64_t)field << 3 | 2);
    used += s_pb_varint(out + used, strlen(text));
    memcpy(out + used, text, strlen(text));
    return used + strlen(text);
}

static size_t s_pb_uint(uint8_t *out, int field, uint64_t value)
{
    size_t used = s_pb_varint(out, (uint64_t)field << 3);
    return used + s_pb_varint(out + used, value);
}

/* An Event with a full envelope, no body, and an unknown field 999 (a newer writer's kind). */
static asy_bytes_t s_event_unknown_kind(const char *agent, const char *site, uint64_t seq)
{
    uint8_t *out = malloc(512);
    char uuid[ASY_UUID_TEXT + 1];
    asy_uuid_v7(uuid);
    size_t used = s_pb_string(out, 1, uuid);
    used += s_pb_uint(out + used, 2, ASY_SCHEMA_VERSION);
    used += s_pb_string(out + used, 3, site);
    used += s_pb_string(out + used, 4, agent);
    used += s_pb_uint(out + used, 5, 1);
    used += s_pb_uint(out + used, 6, seq);
    used += s_pb_string(out + used, 7, S_CASE_ID);
    uint8_t stamp[16];
    size_t stamp_size = s_pb_uint(stamp, 1, 1767607200);   /* Timestamp.seconds */
    for (int field = 9; field <= 10; field++) {
        used += s_pb_varint(out + used, (uint64_t)field << 3 | 2);
        used += s_pb_varint(out + used, stamp_size);
        memcpy(out + used, stamp, stamp_size);
        used += stamp_size;
    }
    used += s_pb_uint(out + used, 999, 7);
    return (asy_bytes_t){out, used};
}

/* --------------------------------------------------------------------------------------------
   Database */

static long long s_count(const char *sql)
{
    return asy_test_pg_int(s_pg, sql);
}

static long long s_committed(const char *agent)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(committed_seq), 0) FROM agent_stream WHERE agent_id = '%s'",
             agent);
    return s_count(sql);
}

/* --------------------------------------------------------------------------------------------
   Frames the broker cannot read */

TestSuite(broker, .init = s_setup, .fini = s_teardown, .timeout = 120);

Test(broker, random_bytes_are_nacked_and_quarantined)
{
    uint8_t junk[300];
    srand(42);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rand();
    junk[0] = 0x0f;   /* field 1, wire type 7: no protobuf decoder accepts it */
    s_send_bytes(junk, sizeof junk);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(nack.u.nack.reason, "300 bytes"), "reason: %s", nack.u.nack.reason);
    asy_frame_release(&nack);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine"), 1);
    cr_assert_eq(s_count("SELECT length(payload) FROM quarantine"), 300);
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 0);
}

Test(broker, truncated_frame_is_nacked_and_quarantined)
{
    asy_frame_t hello = {.type = ASY_FRAME_HELLO, .version = ASY_PROTOCOL_VERSION};
    hello.u.hello = (asy_hello_t){.version_min = 1, .version_max = 1, .agent_id = "agent-t",
                                  .site_id = "site-t", .epoch = 1, .software = "truncated"};
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_frame_encode(&hello, &data, &size), 0);
    s_send_bytes(data, size / 2);
    free(data);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_MALFORMED_FRAME);
    asy_frame_release(&nack);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine"), 1);
    /* the truncated HELLO bound nothing */
    cr_assert_eq(s_count("SELECT count(*) FROM agent WHERE agent_id = 'agent-t'"), 0);
}

Test(broker, oversize_frame_is_nacked_and_quarantined_truncated)
{
    size_t size = ASY_MAX_FRAME_BYTES + 1;
    uint8_t *big = calloc(1, size);
    cr_assert_not_null(big);
    s_send_bytes(big, size);
    free(big);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_FRAME_TOO_LARGE);
    cr_assert(strstr(nack.u.nack.reason, "16777217"), "reason: %s", nack.u.nack.reason);
    asy_frame_release(&nack);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine"), 1);
    cr_assert_eq(s_count("SELECT length(payload) FROM quarantine"), ASY_MAX_EVENT_BYTES);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE reason LIKE '%(payload truncated "
                         "from 16777217 to 65536 bytes)'"),
                 1);
}

Test(broker, two_part_message_is_malformed)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "one");
    zmsg_addstr(msg, "two");
    cr_assert_eq(zmsg_send(&msg, s_dealer), 0);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(nack.u.nack.reason, "2 parts"), "reason: %s", nack.u.nack.reason);
    asy_frame_release(&nack);
    s_assert_alive();
    /* every part is kept, in order, and the reason says where the first ends */
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE payload = 'onetwo'::bytea AND"
                         " code_name = 'MALFORMED_FRAME' AND reason LIKE"
                         " '%2 parts%6 bytes in all, the first 3)'"),
                 1);
}

Test(broker, a_large_multi_part_message_keeps_its_first_64_kib)
{
    zmsg_t *msg = zmsg_new();
    for (int i = 0; i < 2; i++) {
        uint8_t *part = malloc(40960);
        cr_assert_not_null(part);
        memset(part, 'a' + i, 40960);
        zmsg_addmem(msg, part, 40960);
        free(part);
    }
    cr_assert_eq(zmsg_send(&msg, s_dealer), 0);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_MALFORMED_FRAME);
    asy_frame_release(&nack);
    s_assert_alive();
    /* the first part whole, then the second's first 24,576 bytes */
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE length(payload) = 65536 AND"
                         " get_byte(payload, 40959) = 97 AND get_byte(payload, 40960) = 98 AND"
                         " reason LIKE '%81920 bytes in all, the first 40960) (payload truncated"
                         " from 81920 to 65536 bytes)'"),
                 1);
}

/* A frame only the broker sends (WELCOME, ACK) is refused like any malformed frame: NACKed
   and quarantined, and the broker goes on. */
Test(broker, welcome_or_ack_sent_to_the_broker_is_nacked_and_quarantined)
{
    asy_frame_t welcome = {.type = ASY_FRAME_WELCOME, .version = ASY_PROTOCOL_VERSION};
    welcome.u.welcome.committed_seq = 7;
    s_send_frame(&welcome);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(nack.u.nack.reason, "a WELCOME frame is sent by the broker"), "reason: %s",
              nack.u.nack.reason);
    asy_frame_release(&nack);
    asy_frame_t ack = {.type = ASY_FRAME_ACK, .version = ASY_PROTOCOL_VERSION};
    ack.u.ack.seq = 3;
    s_send_frame(&ack);
    s_expect_nack(&nack, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(nack.u.nack.reason, "an ACK frame is sent by the broker"), "reason: %s",
              nack.u.nack.reason);
    asy_frame_release(&nack);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE code_name = 'MALFORMED_FRAME'"
                         " AND reason LIKE '%is sent by the broker, not to it' AND length(payload)"
                         " > 0"),
                 2);
}

/* --------------------------------------------------------------------------------------------
   Conversation errors */

Test(broker, wrong_protocol_version_is_nacked)
{
    s_send_hello("agent-v", "site-v", 1, 2, 2);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_VERSION);
    cr_assert(strstr(nack.u.nack.reason, "broker speaks 1..1"), "reason: %s",
              nack.u.nack.reason);
    asy_frame_release(&nack);
    /* a PUBLISH in a version the broker does not speak */
    asy_bytes_t event = s_event("agent-v", "site-v", 1, 1);
    asy_frame_t frame = {.type = ASY_FRAME_PUBLISH, .version = 2};
    frame.u.publish = (asy_publish_t){.agent_id = "agent-v", .epoch = 1, .first_seq = 1,
                                      .count = 1, .events = &event};
    s_send_frame(&frame);
    s_expect_nack(&nack, ASY_CODE_VERSION);
    asy_frame_release(&nack);
    s_free_events(&event, 1);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM agent WHERE agent_id = 'agent-v'"), 0);
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 0);
}

Test(broker, publish_before_hello_is_not_welcomed)
{
    asy_bytes_t event = s_event("agent-p", "site-p", 1, 1);
    s_publish("agent-p", 1, 1, &event, 1);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_NOT_WELCOMED);
    cr_assert_eq(nack.u.nack.first_seq, 1);
    asy_frame_release(&nack);
    s_assert_alive();
    /* a session for another agent does not let this one publish either */
    s_publish("agent-p", 1, 1, &event, 1);
    s_expect_nack(&nack, ASY_CODE_NOT_WELCOMED);
    asy_frame_release(&nack);
    s_free_events(&event, 1);
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 0);
}

Test(broker, hello_from_same_agent_with_another_site_is_wrong_agent)
{
    cr_assert_eq(s_hello("agent-w", "site-one", 1), 0);
    s_send_hello("agent-w", "site-two", 1, 1, 1);
    asy_frame_t nack;
    s_expect_nack(&nack, ASY_CODE_WRONG_AGENT);
    asy_frame_release(&nack);
    s_send_hello("bad agent id!", "site-one", 1, 1, 1);
    s_expect_nack(&nack, ASY_CODE_WRONG_AGENT);
    asy_frame_release(&nack);
    s_assert_alive();
    cr_assert_eq(s_hello("agent-w", "site-one", 1), 0);
    cr_assert_eq(s_count("SELECT count(*) FROM agent WHERE agent_id = 'agent-w'"), 1);
    cr_assert_eq(s_count("SELECT count(*) FROM agent WHERE agent_id = 'agent-w' AND site_id = "
                         "'site-one'"), 1);
}

/* Epochs and seqs are bigint at the centre: 2^63 used to be stored as a negative epoch. */
Test(broker, epochs_and_seqs_over_the_bigint_range_are_malformed)
{
    asy_frame_t frame;
    s_send_hello("agent-big", "site-big", (uint64_t)INT64_MAX + 1, 1, 1);
    s_expect_nack(&frame, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(frame.u.nack.reason, "is over 9223372036854775807"), "%s",
              frame.u.nack.reason);
    asy_frame_release(&frame);
    cr_assert_eq(s_hello("agent-big", "site-big", INT64_MAX), 0, "the largest epoch is fine");
    asy_bytes_t events[2] = {s_event("agent-big", "site-big", INT64_MAX, 1),
                             s_event("agent-big", "site-big", INT64_MAX, 2)};
    s_publish("agent-big", INT64_MAX, INT64_MAX, events, 2);
    s_expect_nack(&frame, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(frame.u.nack.reason, "seqs up to 2^63 - 1"), "%s", frame.u.nack.reason);
    asy_frame_release(&frame);
    s_free_events(events, 2);
    cr_assert_eq(s_count("SELECT count(*) FROM agent_stream WHERE epoch < 0"), 0);
    s_assert_alive();
}

/* PROTOCOL 5.3: step 0 (malformed, then the database's back-off) before step 1 (batch size). */
Test(broker, a_malformed_publish_is_malformed_before_it_is_too_large)
{
    cr_assert_eq(s_hello("agent-order", "site-order", 1), 0);
    asy_bytes_t *events = calloc(ASY_MAX_BATCH_EVENTS + 1, sizeof *events);
    cr_assert_not_null(events);
    for (size_t i = 0; i <= ASY_MAX_BATCH_EVENTS; i++)
        events[i] = (asy_bytes_t){(const uint8_t *)"x", 1};
    asy_frame_t frame;
    s_publish("agent-order", 1, 0, events, ASY_MAX_BATCH_EVENTS + 1);
    s_expect_nack(&frame, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(frame.u.nack.reason, "first_seq >= 1"), "%s", frame.u.nack.reason);
    asy_frame_release(&frame);
    s_publish("agent-order", 1, 1, events, ASY_MAX_BATCH_EVENTS + 1);
    s_expect_nack(&frame, ASY_CODE_BATCH_TOO_LARGE);
    asy_frame_release(&frame);
    free(events);
    s_assert_alive();
}

/* The centre's database goes back in time under a live session (restored from a backup, or
   failed over to a lagging replica): the session's committed seq is then above the
   database's, and every compare-and-set failed; the agent was told RETRY_LATER for ever ("the
   committed seq keeps moving"), with no diagnosis. It is now asked for HELLO again, whose
   WELCOME tells it the truth (found by an adversarial test). */
Test(broker, a_database_gone_back_under_a_session_asks_for_hello_again)
{
    cr_assert_eq(s_hello("agent-back", "site-back", 1), 0);
    asy_bytes_t events[4];
    for (uint64_t i = 0; i < 4; i++)
        events[i] = s_event("agent-back", "site-back", 1, i + 1);
    s_publish("agent-back", 1, 1, events, 4);
    asy_frame_t frame;
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 4);
    asy_frame_release(&frame);
    /* the restore: the centre now holds seqs 1..2 only */
    asy_test_pg_exec(s_pg, "DELETE FROM event WHERE agent_id = 'agent-back' AND seq > 2");
    asy_test_pg_exec(s_pg,
                     "UPDATE agent_stream SET committed_seq = 2 WHERE agent_id = 'agent-back'");
    asy_bytes_t next = s_event("agent-back", "site-back", 1, 5);
    s_publish("agent-back", 1, 5, &next, 1);
    s_expect_nack(&frame, ASY_CODE_NOT_WELCOMED);
    cr_assert(strstr(frame.u.nack.reason, "went back from 4 to 2"), "%s", frame.u.nack.reason);
    asy_frame_release(&frame);
    cr_assert_eq(s_hello("agent-back", "site-back", 1), 2, "the WELCOME says what is there");
    s_free_events(events, 4);
    s_free_events(&next, 1);
    s_assert_alive();
}

/* A copy of an outbox meets SEQ_CONFLICT; the batches it already has in flight must not be
   taken at the seqs after the other copy's (an adversarial test saw them committed). */
Test(broker, a_seq_conflict_ends_the_session_so_its_batches_in_flight_are_refused)
{
    cr_assert_eq(s_hello("agent-cc", "site-cc", 1), 0);
    asy_bytes_t first[2] = {s_event("agent-cc", "site-cc", 1, 1),
                            s_event("agent-cc", "site-cc", 1, 2)};
    s_publish("agent-cc", 1, 1, first, 2);
    asy_frame_t frame;
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 2);
    asy_frame_release(&frame);
    /* the copy: other events under seqs 1..2, and seq 3 sent right after, before any answer */
    asy_bytes_t copy[3] = {s_event("agent-cc", "site-cc", 1, 1),
                           s_event("agent-cc", "site-cc", 1, 2),
                           s_event("agent-cc", "site-cc", 1, 3)};
    s_publish("agent-cc", 1, 1, copy, 2);
    s_publish("agent-cc", 1, 3, copy + 2, 1);
    s_expect_nack(&frame, ASY_CODE_SEQ_CONFLICT);
    asy_frame_release(&frame);
    s_expect_nack(&frame, ASY_CODE_NOT_WELCOMED);
    asy_frame_release(&frame);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-cc'"), 2);
    cr_assert_eq(s_count("SELECT committed_seq FROM agent_stream WHERE agent_id = 'agent-cc'"), 2);
    s_free_events(first, 2);
    s_free_events(copy, 3);
    s_assert_alive();
}

Test(broker, heartbeat_is_echoed)
{
    asy_frame_t beat = {.type = ASY_FRAME_HEARTBEAT, .version = ASY_PROTOCOL_VERSION};
    beat.u.heartbeat.sent_at_ms = 123456789;
    s_send_frame(&beat);
    asy_frame_t echo;
    s_recv(&echo, ASY_FRAME_HEARTBEAT);
    cr_assert_eq(echo.u.heartbeat.sent_at_ms, 123456789);
    asy_frame_release(&echo);
    s_assert_alive();
}

/* --------------------------------------------------------------------------------------------
   Batches */

Test(broker, duplicate_publish_is_acked_with_duplicates)
{
    cr_assert_eq(s_hello("agent-d", "site-d", 1), 0);
    asy_bytes_t events[7];
    for (int i = 0; i < 7; i++)
        events[i] = s_event("agent-d", "site-d", 1, (uint64_t)i + 1);
    asy_frame_t ack;
    for (int round = 0; round < 2; round++) {
        s_publish("agent-d", 1, 1, events, 5);
        s_recv(&ack, ASY_FRAME_ACK);
        cr_assert_eq(ack.u.ack.seq, 5);
        cr_assert_eq(ack.u.ack.duplicates, round == 0 ? 0u : 5u);
        cr_assert_eq(ack.u.ack.rejected_count, 0);
        cr_assert_str_eq(ack.u.ack.agent_id, "agent-d");
        asy_frame_release(&ack);
        cr_assert_eq(s_count("SELECT count(*) FROM event"), 5);
    }
    /* overlapping: 4..7 holds two known events and two new ones */
    s_publish("agent-d", 1, 4, events + 3, 4);
    s_recv(&ack, ASY_FRAME_ACK);
    cr_assert_eq(ack.u.ack.seq, 7);
    cr_assert_eq(ack.u.ack.duplicates, 2);
    asy_frame_release(&ack);
    s_free_events(events, 7);
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 7);
    cr_assert_eq(s_count("SELECT count(DISTINCT seq) FROM event WHERE agent_id = 'agent-d'"), 7);
    cr_assert_eq(s_committed("agent-d"), 7);
    /* a reconnecting agent learns where the centre is */
    cr_assert_eq(s_hello("agent-d", "site-d", 1), 7);
    s_assert_alive();
}

/* The bytes of an encoded event moved to (epoch, seq), as `advsync-agent reissue` does. */
static asy_bytes_t s_renumbered(asy_bytes_t event_bytes, uint64_t epoch, uint64_t seq)
{
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(event_bytes.data, event_bytes.size, &event), 0);
    asy_event_renumber(event, epoch, seq);
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    asy_event_destroy(&event);
    return (asy_bytes_t){data, size};
}

/* Epoch 1 of agent, seqs 1..4 committed; their bytes in old[] (the caller frees them). */
static void s_commit_four(const char *agent, const char *site, asy_bytes_t old[4])
{
    cr_assert_eq(s_hello(agent, site, 1), 0);
    for (int i = 0; i < 4; i++)
        old[i] = s_event(agent, site, 1, (uint64_t)i + 1);
    asy_frame_t frame;
    s_publish(agent, 1, 1, old, 4);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 4);
    asy_frame_release(&frame);
}

Test(broker, reissued_epoch_drops_the_events_the_centre_holds_from_that_seq_on)
{
    asy_bytes_t old[4];
    s_commit_four("agent-re", "site-re", old);
    asy_frame_t frame;

    /* epoch 2 re-issues epoch 1 from seq 2: old 1 (below it), 3, 4, and one new event */
    asy_frame_t hello = {.type = ASY_FRAME_HELLO, .version = ASY_PROTOCOL_VERSION};
    hello.u.hello = (asy_hello_t){.version_min = 1,
                                  .version_max = 1,
                                  .agent_id = "agent-re",
                                  .site_id = "site-re",
                                  .epoch = 2,
                                  .last_seq = 4,
                                  .reissue_of_epoch = 1,
                                  .reissue_from_seq = 2};
    s_send_frame(&hello);
    s_recv(&frame, ASY_FRAME_WELCOME);
    cr_assert_eq(frame.u.welcome.reissue_of_epoch, 1, "the WELCOME confirms the re-issue");
    cr_assert_eq(frame.u.welcome.committed_seq, 0);
    asy_frame_release(&frame);
    asy_bytes_t again[4] = {s_renumbered(old[0], 2, 1), s_renumbered(old[2], 2, 2),
                            s_renumbered(old[3], 2, 3), s_event("agent-re", "site-re", 2, 4)};
    s_publish("agent-re", 2, 1, again, 4);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 4);
    cr_assert_eq(frame.u.ack.duplicates, 2, "old seqs 3 and 4");
    cr_assert_eq(frame.u.ack.rejected_count, 0);
    asy_frame_release(&frame);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-re'"), 6,
                 "4 + old seq 1 (below reissue_from_seq, so not looked for) + the new one");
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-re' AND epoch = 2"
                         " AND seq IN (1, 4)"),
                 2);
    cr_assert_eq(s_count("SELECT count(*) FROM agent_stream WHERE agent_id = 'agent-re' AND"
                         " epoch = 2 AND reissue_of_epoch = 1 AND reissue_from_seq = 2"),
                 1);
    /* a replay of the batch: duplicates by seq, as always */
    s_publish("agent-re", 2, 1, again, 4);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert(frame.u.ack.seq == 4 && frame.u.ack.duplicates == 4);
    asy_frame_release(&frame);

    /* epoch 3 re-issues epoch 2 from seq 2 (a backup of epoch 2's outbox restored): old 3 and
       4 are held under epoch 1 (the chain is followed back), the new one of epoch 2 under
       epoch 2; one more new event */
    hello.u.hello.epoch = 3;
    hello.u.hello.reissue_of_epoch = 2;
    hello.u.hello.reissue_from_seq = 2;
    s_send_frame(&hello);
    s_recv(&frame, ASY_FRAME_WELCOME);
    cr_assert_eq(frame.u.welcome.reissue_of_epoch, 2);
    asy_frame_release(&frame);
    asy_bytes_t third[4] = {s_renumbered(again[1], 3, 1), s_renumbered(again[2], 3, 2),
                            s_renumbered(again[3], 3, 3), s_event("agent-re", "site-re", 3, 4)};
    s_publish("agent-re", 3, 1, third, 4);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 4);
    cr_assert_eq(frame.u.ack.duplicates, 3, "two held under epoch 1, one under epoch 2");
    asy_frame_release(&frame);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-re'"), 7);
    cr_assert_eq(s_count("SELECT count(DISTINCT event_id) FROM event WHERE agent_id = 'agent-re'"),
                 6, "only old seq 1 (re-issued below its from seq) is there twice");
    s_free_events(old, 4);
    s_free_events(again, 4);
    s_free_events(third, 4);

    /* an ordinary HELLO gets no confirmation; a malformed re-issue is refused */
    s_send_hello("agent-re", "site-re", 4, 1, 1);
    s_recv(&frame, ASY_FRAME_WELCOME);
    cr_assert_eq(frame.u.welcome.reissue_of_epoch, 0);
    asy_frame_release(&frame);
    hello.u.hello.epoch = 4;
    hello.u.hello.reissue_of_epoch = 4; /* not older than the epoch */
    s_send_frame(&hello);
    s_expect_nack(&frame, ASY_CODE_MALFORMED_FRAME);
    cr_assert(strstr(frame.u.nack.reason, "must be older"), "%s", frame.u.nack.reason);
    asy_frame_release(&frame);
    hello.u.hello.reissue_of_epoch = 1;
    hello.u.hello.reissue_from_seq = 0;
    s_send_frame(&hello);
    s_expect_nack(&frame, ASY_CODE_MALFORMED_FRAME);
    asy_frame_release(&frame);

    /* a stream keeps its first record: a HELLO for epoch 3 that re-issues from another seq
       used to be served with its own (the batch's events then matched against the wrong
       seqs, and one was stored twice) */
    hello.u.hello.epoch = 3;
    hello.u.hello.reissue_of_epoch = 2;
    hello.u.hello.reissue_from_seq = 3;
    s_send_frame(&hello);
    s_expect_nack(&frame, ASY_CODE_WRONG_AGENT);
    cr_assert(strstr(frame.u.nack.reason, "agent agent-re epoch 3 re-issues epoch 2 from seq 2 "
                                          "(recorded at its first HELLO); this HELLO says epoch "
                                          "2 from seq 3"),
              "%s", frame.u.nack.reason);
    asy_frame_release(&frame);
    hello.u.hello.reissue_from_seq = 2;
    s_send_frame(&hello);
    s_recv(&frame, ASY_FRAME_WELCOME);
    cr_assert_eq(frame.u.welcome.reissue_of_epoch, 2, "the recorded one is welcome again");
    asy_frame_release(&frame);
    s_assert_alive();
}

/* Re-issued twice: epoch 2 re-issued epoch 1 from seq 3 and published (the centre holds one
   new event under epoch 2); then a backup of the outbox taken before epoch 2's first WELCOME
   is restored and re-issued again. advsync-agent cannot know that epoch 2 reached the centre,
   so epoch 3 re-issues epoch 1 from seq 3 in its place (PROTOCOL.md 5.5 step 1): the centre
   must look under epoch 2 too, a sibling, or that event is stored twice (a review found it). */
Test(broker, a_reissue_finds_events_held_under_a_sibling_reissue)
{
    asy_bytes_t old[4];
    s_commit_four("agent-sib", "site-sib", old);
    asy_frame_t frame;
    asy_frame_t hello = {.type = ASY_FRAME_HELLO, .version = ASY_PROTOCOL_VERSION};
    hello.u.hello = (asy_hello_t){.version_min = 1,
                                  .version_max = 1,
                                  .agent_id = "agent-sib",
                                  .site_id = "site-sib",
                                  .epoch = 2,
                                  .last_seq = 3,
                                  .reissue_of_epoch = 1,
                                  .reissue_from_seq = 3};
    s_send_frame(&hello);
    s_recv(&frame, ASY_FRAME_WELCOME);
    asy_frame_release(&frame);
    asy_bytes_t second[3] = {s_renumbered(old[2], 2, 1), s_renumbered(old[3], 2, 2),
                             s_event("agent-sib", "site-sib", 2, 3)};
    s_publish("agent-sib", 2, 1, second, 3);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert(frame.u.ack.seq == 3 && frame.u.ack.duplicates == 2);
    asy_frame_release(&frame);

    /* the restored backup, re-issued in place of epoch 2: the same three events */
    hello.u.hello.epoch = 3;
    s_send_frame(&hello);
    s_recv(&frame, ASY_FRAME_WELCOME);
    cr_assert_eq(frame.u.welcome.reissue_of_epoch, 1);
    asy_frame_release(&frame);
    asy_bytes_t third[3] = {s_renumbered(second[0], 3, 1), s_renumbered(second[1], 3, 2),
                            s_renumbered(second[2], 3, 3)};
    s_publish("agent-sib", 3, 1, third, 3);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 3);
    cr_assert_eq(frame.u.ack.duplicates, 3, "two held under epoch 1, one under epoch 2");
    asy_frame_release(&frame);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-sib'"), 5);
    cr_assert_eq(s_count("SELECT count(DISTINCT event_id) FROM event WHERE agent_id = 'agent-sib'"),
                 5);
    s_free_events(old, 4);
    s_free_events(second, 3);
    s_free_events(third, 3);
    s_assert_alive();
}

Test(broker, seq_gap_is_nacked_with_expected_seq)
{
    cr_assert_eq(s_hello("agent-g", "site-g", 1), 0);
    asy_bytes_t events[5];
    for (int i = 0; i < 5; i++)
        events[i] = s_event("agent-g", "site-g", 1, (uint64_t)i + 1);
    s_publish("agent-g", 1, 3, events + 2, 1);
    asy_frame_t reply;
    s_expect_nack(&reply, ASY_CODE_SEQ_GAP);
    cr_assert_eq(reply.u.nack.expected_seq, 1);
    cr_assert_eq(reply.u.nack.first_seq, 3);
    asy_frame_release(&reply);
    s_publish("agent-g", 1, 1, events, 2);
    s_recv(&reply, ASY_FRAME_ACK);
    cr_assert_eq(reply.u.ack.seq, 2);
    asy_frame_release(&reply);
    s_publish("agent-g", 1, 5, events + 4, 1);
    s_expect_nack(&reply, ASY_CODE_SEQ_GAP);
    cr_assert_eq(reply.u.nack.expected_seq, 3);
    asy_frame_release(&reply);
    s_free_events(events, 5);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 2);
    cr_assert_eq(s_committed("agent-g"), 2);
}

static const struct {
    uint64_t seq;
    int code;
    const char *reason_has;
} s_bad[] = {
    {2, ASY_CODE_EVENT_UNDECODABLE, "not a decodable"},
    {4, ASY_CODE_EVENT_SEQ_MISMATCH, "seq"},
    {5, ASY_CODE_EVENT_WRONG_SITE, "site"},
    {6, ASY_CODE_EVENT_UNKNOWN_KIND, ""},
    {7, ASY_CODE_EVENT_TOO_LARGE, "65536"},
    {8, ASY_CODE_EVENT_SEQ_MISMATCH, "agent"},
};

/* Seqs 1..9: 1, 3 and 9 are good; the rest are bad in the ways s_bad lists. */
static void s_mixed_batch(asy_bytes_t *events)
{
    for (uint64_t seq = 1; seq <= 9; seq++)
        events[seq - 1] = s_event("agent-m", "site-m", 1, seq);
    s_free_events(events + 1, 1);
    uint8_t *junk = malloc(5);
    memcpy(junk, "\xff\xff\xff\xff\xff", 5);
    events[1] = (asy_bytes_t){junk, 5};
    s_free_events(events + 3, 2);
    events[3] = s_event("agent-m", "site-m", 1, 40);
    events[4] = s_event("agent-m", "site-elsewhere", 1, 5);
    s_free_events(events + 5, 1);
    events[5] = s_event_unknown_kind("agent-m", "site-m", 6);
    s_free_events(events + 6, 1);
    uint8_t *big = calloc(1, ASY_MAX_EVENT_BYTES + 1);
    events[6] = (asy_bytes_t){big, ASY_MAX_EVENT_BYTES + 1};
    s_free_events(events + 7, 1);
    events[7] = s_event("agent-other", "site-m", 1, 8);
}

Test(broker, mixed_batch_commits_good_and_quarantines_bad)
{
    cr_assert_eq(s_hello("agent-m", "site-m", 1), 0);
    asy_bytes_t events[9];
    s_mixed_batch(events);
    s_publish("agent-m", 1, 1, events, 9);
    asy_frame_t ack;
    s_recv(&ack, ASY_FRAME_ACK);
    cr_assert_eq(ack.u.ack.seq, 9);
    cr_assert_eq(ack.u.ack.rejected_count, 6);
    for (size_t i = 0; i < 6; i++) {
        const asy_rejection_t *r = &ack.u.ack.rejected[i];
        cr_assert_eq(r->seq, s_bad[i].seq);
        cr_assert_eq(r->code, s_bad[i].code, "seq %llu: expected %s, got %s (%s)",
                     (unsigned long long)r->seq, asy_code_name(s_bad[i].code),
                     asy_code_name(r->code), r->reason);
        cr_assert(r->reason && strstr(r->reason, s_bad[i].reason_has), "seq %llu reason: %s",
                  (unsigned long long)r->seq, r->reason);
    }
    asy_frame_release(&ack);
    s_free_events(events, 9);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-m'"), 3);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE seq IN (1, 3, 9)"), 3);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE agent_id = 'agent-m'"), 6);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE seq IN (2, 4, 5, 6, 7, 8) AND "
                         "length(reason) > 0"), 6);
    cr_assert_eq(s_committed("agent-m"), 9);
}

/* Untrusted bytes quoted in a refusal reason must not make the quarantine write fail (the
   reason column is UTF-8 text): the event is quarantined, the stream goes on. */
Test(broker, invalid_utf8_in_an_event_is_quarantined_not_retried)
{
    cr_assert_eq(s_hello("agent-u", "site-u", 1), 0);
    uint8_t *bad = malloc(256);
    /* event_id of 40 bytes: an invalid byte, then a 2-byte character cut by the %.40s */
    char id[64];
    memset(id, 'a', sizeof id);
    id[0] = (char)0xff;
    id[39] = (char)0xc3;
    id[40] = (char)0xa9;
    id[41] = 0;
    size_t used = s_pb_string(bad, 1, id);
    used += s_pb_uint(bad + used, 2, ASY_SCHEMA_VERSION);
    asy_bytes_t events[2] = {{bad, used}, s_event("agent-u", "site-u", 1, 2)};
    s_publish("agent-u", 1, 1, events, 2);
    asy_frame_t ack;
    s_recv(&ack, ASY_FRAME_ACK);
    cr_assert_eq(ack.u.ack.seq, 2);
    cr_assert_eq(ack.u.ack.rejected_count, 1);
    cr_assert_eq(ack.u.ack.rejected[0].code, ASY_CODE_EVENT_INVALID_FIELD, "%s",
                 ack.u.ack.rejected[0].reason);
    asy_frame_release(&ack);
    s_free_events(events, 2);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-u'"), 1);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE agent_id = 'agent-u' AND seq = 1"
                         " AND reason LIKE 'event_id: %'"), 1);
    cr_assert_eq(s_committed("agent-u"), 2);
}

/* An NHS number in free text, from an implementation that does not refuse it as
   advsync-agent does: quarantined, and its bytes not kept (no direct identifier at the
   centre, not even in quarantine). */
Test(broker, an_nhs_number_in_free_text_is_quarantined_without_its_bytes)
{
    cr_assert_eq(s_hello("agent-n", "site-n", 1), 0);
    json_error_t json_error;
    json_t *json = json_loads("{\"occurredAt\": \"2026-01-05T10:00:00Z\", \"referralReceived\": "
                              "{\"service\": \"SERVICE_IMHA\", \"referrerOrg\": "
                              "\"Dr Smith, re 943 476 5919\"}}",
                              0, &json_error);
    cr_assert_not_null(json);
    asy_event_t *event = NULL;
    char error[256] = "";
    cr_assert_eq(asy_event_from_json(json, &event, error, sizeof error), 0, "%s", error);
    json_decref(json);
    cr_assert_eq(asy_event_set_case_id(event, S_CASE_ID), 0);
    cr_assert_eq(asy_event_stamp(event, "site-n", "agent-n", 1, 1), 0);
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    asy_event_destroy(&event);
    asy_bytes_t events[2] = {{data, size}, s_event("agent-n", "site-n", 1, 2)};
    s_publish("agent-n", 1, 1, events, 2);
    asy_frame_t ack;
    s_recv(&ack, ASY_FRAME_ACK);
    cr_assert_eq(ack.u.ack.seq, 2);
    cr_assert_eq(ack.u.ack.rejected_count, 1);
    cr_assert_eq(ack.u.ack.rejected[0].code, ASY_CODE_EVENT_INVALID_FIELD);
    cr_assert(strstr(ack.u.ack.rejected[0].reason,
                     "referral_received.referrer_org: holds what reads as an NHS number"),
              "%s", ack.u.ack.rejected[0].reason);
    cr_assert_null(strstr(ack.u.ack.rejected[0].reason, "5919"));
    asy_frame_release(&ack);
    s_free_events(events, 2);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-n'"), 1);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE agent_id = 'agent-n' AND seq = 1"
                         " AND payload IS NULL"),
                 1);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE reason LIKE '%5919%'"), 0);

    /* the same number behind a NUL ("ok\0 9434765919"): a check reading C strings would see
       "ok" and store the rest */
    cr_assert_eq(s_hello("agent-n", "site-n", 1), 2); /* s_assert_alive said HELLO as another */
    json = json_loads("{\"occurredAt\": \"2026-01-05T10:00:00Z\", \"referralReceived\": "
                      "{\"service\": \"SERVICE_IMHA\", \"referrerOrg\": \"okZ9434765919\"}}",
                      0, &json_error);
    cr_assert_not_null(json);
    cr_assert_eq(asy_event_from_json(json, &event, error, sizeof error), 0, "%s", error);
    json_decref(json);
    cr_assert_eq(asy_event_set_case_id(event, S_CASE_ID), 0);
    cr_assert_eq(asy_event_stamp(event, "site-n", "agent-n", 1, 3), 0);
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    asy_event_destroy(&event);
    size_t at = 0;
    while (at + 4 <= size && memcmp(data + at, "Z943", 4) != 0)
        at++;
    cr_assert_lt(at + 4, size + 1, "Z943 is in the bytes");
    data[at] = 0;
    events[0] = (asy_bytes_t){data, size};
    s_publish("agent-n", 1, 3, events, 1);
    s_recv(&ack, ASY_FRAME_ACK);
    cr_assert_eq(ack.u.ack.seq, 3);
    cr_assert_eq(ack.u.ack.rejected_count, 1);
    cr_assert(
        strstr(ack.u.ack.rejected[0].reason, "referral_received.referrer_org: holds a NUL byte"),
        "%s", ack.u.ack.rejected[0].reason);
    asy_frame_release(&ack);
    free(data);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-n'"), 1);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine WHERE agent_id = 'agent-n' AND seq = 3"
                         " AND payload IS NULL"),
                 1);
}

Test(broker, lost_database_connection_answers_retry_later_then_recovers)
{
    cr_assert_eq(s_hello("agent-l", "site-l", 1), 0);
    asy_bytes_t events[4];
    for (int i = 0; i < 4; i++)
        events[i] = s_event("agent-l", "site-l", 1, (uint64_t)i + 1);
    asy_frame_t reply;
    s_publish("agent-l", 1, 1, events, 2);
    s_recv(&reply, ASY_FRAME_ACK);
    asy_frame_release(&reply);
    /* cut the broker's PostgreSQL connection under it */
    cr_assert_geq(s_count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                          "datname = current_database() AND pid <> pg_backend_pid()"), 1);
    int retries = 0;
    for (;;) {
        s_publish("agent-l", 1, 3, events + 2, 2);
        zframe_t *raw = zframe_recv(s_dealer);
        cr_assert_not_null(raw, "no answer after the connection loss");
        cr_assert_eq(asy_frame_decode(&reply, zframe_data(raw), zframe_size(raw)), 0);
        zframe_destroy(&raw);
        if (reply.type == ASY_FRAME_ACK)
            break;
        cr_assert_eq(reply.type, ASY_FRAME_NACK);
        cr_assert_eq(reply.u.nack.code, ASY_CODE_RETRY_LATER, "got %s: %s",
                     asy_code_name(reply.u.nack.code), reply.u.nack.reason);
        cr_assert_gt(reply.u.nack.retry_after_ms, 0);
        cr_assert_lt(++retries, 10, "still RETRY_LATER after 10 tries");
        usleep(reply.u.nack.retry_after_ms * 1000u);
        asy_frame_release(&reply);
    }
    cr_assert_eq(reply.u.ack.seq, 4);
    asy_frame_release(&reply);
    cr_log_info("RETRY_LATER answered %d time(s) before the broker reconnected", retries);
    s_free_events(events, 4);
    s_assert_alive();
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-l'"), 4);
    cr_assert_eq(s_committed("agent-l"), 4);
}

/* A database that is up but refuses a batch (here a trigger; in life a defect validation did
   not catch) gets RETRY_LATER with 5,000 ms at once (PROTOCOL 5.3 step 5), nothing committed;
   once the cause is gone the same batch is committed. */
Test(broker, a_batch_the_database_refuses_is_asked_again_in_5_s_and_nothing_committed)
{
    cr_assert_eq(s_hello("agent-r", "site-r", 1), 0);
    asy_test_pg_exec(s_pg, "CREATE FUNCTION asy_refuse() RETURNS trigger LANGUAGE plpgsql AS"
                           " $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$");
    /* on the partitioned table: PostgreSQL puts it on every partition */
    asy_test_pg_exec(s_pg, "CREATE TRIGGER asy_refuse BEFORE INSERT ON event FOR EACH ROW"
                           " EXECUTE FUNCTION asy_refuse()");
    asy_bytes_t events[2];
    for (int i = 0; i < 2; i++)
        events[i] = s_event("agent-r", "site-r", 1, (uint64_t)i + 1);
    s_publish("agent-r", 1, 1, events, 2);
    asy_frame_t reply;
    s_expect_nack(&reply, ASY_CODE_RETRY_LATER);
    cr_assert_eq(reply.u.nack.retry_after_ms, 5000);
    cr_assert(strstr(reply.u.nack.reason, "the database refused this batch"), "%s",
              reply.u.nack.reason);
    asy_frame_release(&reply);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-r'"), 0);
    cr_assert_eq(s_committed("agent-r"), 0);

    asy_test_pg_exec(s_pg, "DROP TRIGGER asy_refuse ON event");
    s_publish("agent-r", 1, 1, events, 2);
    s_recv(&reply, ASY_FRAME_ACK);
    cr_assert_eq(reply.u.ack.seq, 2);
    asy_frame_release(&reply);
    s_free_events(events, 2);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-r'"), 2);
}

/* Bytes the broker refuses but cannot quarantine (its database down) are asked for again with
   RETRY_LATER; they were NACKed MALFORMED_FRAME and lost, while PROTOCOL 5.2 promises that
   an agent seeing the NACK can rely on the quarantine row. */
Test(broker, a_refused_frame_is_quarantined_once_the_database_is_back)
{
    const char *name = strrchr(s_db, '=') + 1;                /* the conninfo ends in dbname=NAME */
    PGconn *admin = asy_test_pg_connect(asy_test_conninfo()); /* not from inside the database */
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false", name);
    asy_test_pg_exec(admin, sql);
    cr_assert_geq(s_count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                          "datname = current_database() AND pid <> pg_backend_pid()"),
                  1);
    uint8_t junk[64] = {0x0f}; /* field 1, wire type 7: never a Frame */
    s_send_bytes(junk, sizeof junk);
    asy_frame_t reply;
    s_expect_nack(&reply, ASY_CODE_RETRY_LATER);
    cr_assert_gt(reply.u.nack.retry_after_ms, 0);
    cr_assert(strstr(reply.u.nack.reason, "cannot be quarantined now"), "%s", reply.u.nack.reason);
    asy_frame_release(&reply);
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine"), 0);

    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", name);
    asy_test_pg_exec(admin, sql);
    PQfinish(admin);
    for (int tries = 0;; tries++) {
        cr_assert_lt(tries, 20, "still not quarantined");
        usleep(200 * 1000);
        s_send_bytes(junk, sizeof junk);
        s_recv(&reply, ASY_FRAME_NACK);
        int code = reply.u.nack.code;
        asy_frame_release(&reply);
        if (code == ASY_CODE_MALFORMED_FRAME)
            break;
        cr_assert_eq(code, ASY_CODE_RETRY_LATER, "got %s", asy_code_name(code));
    }
    cr_assert_eq(s_count("SELECT count(*) FROM quarantine"), 1);
    s_assert_alive();
}

/* --------------------------------------------------------------------------------------------
   Process */

Test(broker, sigterm_exits_zero_after_answering)
{
    cr_assert_eq(s_hello("agent-s", "site-s", 1), 0);
    asy_bytes_t events[50];
    for (int i = 0; i < 50; i++)
        events[i] = s_event("agent-s", "site-s", 1, (uint64_t)i + 1);
    s_publish("agent-s", 1, 1, events, 50);
    asy_frame_t ack;
    s_recv(&ack, ASY_FRAME_ACK);   /* commit happened; now stop */
    asy_frame_release(&ack);
    s_free_events(events, 50);
    int status = asy_test_stop(s_broker, SIGTERM, 15000);
    s_broker = 0;
    cr_assert(WIFEXITED(status), "broker did not exit by itself on SIGTERM (status %d)", status);
    cr_assert_eq(WEXITSTATUS(status), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/broker.endpoint", s_dir);
    cr_assert_neq(access(path, F_OK), 0, "endpoint file left behind after a clean exit");
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 50);
    cr_assert_eq(s_committed("agent-s"), 50);
}

Test(broker, restarted_broker_asks_for_hello_again)
{
    cr_assert_eq(s_hello("agent-r", "site-r", 1), 0);
    asy_bytes_t events[2] = {s_event("agent-r", "site-r", 1, 1), s_event("agent-r", "site-r", 1, 2)};
    s_publish("agent-r", 1, 1, events, 1);
    asy_frame_t reply;
    s_recv(&reply, ASY_FRAME_ACK);
    asy_frame_release(&reply);
    int status = asy_test_stop(s_broker, SIGTERM, 15000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int port = atoi(strrchr(s_endpoint, ':') + 1);
    char endpoint[128];
    s_broker = asy_test_start_broker(s_db, s_dir, port, endpoint, sizeof endpoint);
    cr_assert_str_eq(endpoint, s_endpoint);
    /* the DEALER reconnects by itself; a window of batches gets a NACK each, the log warns
       once (the broker warns again after a second: the window is sent at once, not one
       round trip after another, which a busy machine could stretch past it) */
    for (int i = 0; i < 3; i++)
        s_publish("agent-r", 1, 2, events + 1, 1);
    for (int i = 0; i < 3; i++) {
        s_expect_nack(&reply, ASY_CODE_NOT_WELCOMED);
        asy_frame_release(&reply);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/broker.log", s_dir);
    char *log = asy_fixture_slurp(path, NULL);
    cr_assert_not_null(log);
    int warned = 0;
    for (const char *at = log; (at = strstr(at, "WARN NACK NOT_WELCOMED")) != NULL; at++)
        warned++;
    cr_assert_eq(warned, 1, "%s", log);
    free(log);
    cr_assert_eq(s_hello("agent-r", "site-r", 1), 1);
    s_publish("agent-r", 1, 2, events + 1, 1);
    s_recv(&reply, ASY_FRAME_ACK);
    cr_assert_eq(reply.u.ack.seq, 2);
    asy_frame_release(&reply);
    s_free_events(events, 2);
    cr_assert_eq(s_count("SELECT count(*) FROM event"), 2);
}

/* --------------------------------------------------------------------------------------------
   Flags, config, and a database that is not there yet */

/* Runs advsyncd FLAGS (split by the shell) with stderr into out too; returns its exit code. */
static int s_advsyncd_said(char *out, size_t size, const char *flags)
{
    char command[1024];
    snprintf(command, sizeof command, "%s %s 2>&1", ASY_ADVSYNCD_PATH, flags);
    char *argv[] = {"/bin/sh", "-c", command, NULL};
    return asy_test_run(argv, out, size, 10000);
}

static int s_advsyncd(const char *a, const char *b, char *out, size_t size)
{
    char *argv[] = {ASY_ADVSYNCD_PATH, (char *)a, (char *)b, NULL};
    return asy_test_run(argv, out, size, 10000);
}

Test(broker, flags_and_config_errors)
{
    char out[4096];
    cr_assert_eq(s_advsyncd("--version", NULL, out, sizeof out), 0);
    cr_assert(strstr(out, ASY_VERSION_STRING), "--version said: %s", out);
    cr_assert_eq(s_advsyncd("--help", NULL, out, sizeof out), 0);
    cr_assert(strstr(out, "--endpoint-file"), "--help said: %s", out);
    cr_assert_eq(s_advsyncd("-h", NULL, out, sizeof out), 0, "-h as the other programs take it");
    cr_assert(strstr(out, "usage: advsyncd"), "-h said: %s", out);
    char *watch[] = {ASY_WATCH_PATH, "-h", NULL};
    cr_assert_eq(asy_test_run(watch, out, sizeof out, 10000), 0);
    cr_assert(strstr(out, "usage: advsync-watch"), "-h said: %s", out);
    cr_assert_eq(s_advsyncd("--no-such-flag", NULL, out, sizeof out), 2);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--no-such-flag"), 2);
    cr_assert(strncmp(out, "advsyncd: --no-such-flag is not an option", 41) == 0, "%s", out);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--workers"), 2);
    cr_assert(strncmp(out, "advsyncd: --workers needs a value", 33) == 0, "%s", out);
    /* no abbreviations: --endpoint (the agents' word) is not silently --endpoint-file */
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--endpoint tcp://127.0.0.1:1"), 2);
    cr_assert(strstr(out, "advsyncd: --endpoint is not an option; did you mean --endpoint-file, "
                          "or --ingest"),
              "%s", out);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--work=3"), 2);
    cr_assert(strstr(out, "--work is not an option; did you mean --workers?"), "%s", out);
    cr_assert_eq(s_advsyncd("--log-level", "loud", out, sizeof out), 2);
    cr_assert_eq(s_advsyncd("--breach-grace-ms", "0", out, sizeof out), 2);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--breach-grace-ms 0"), 2);
    cr_assert(strstr(out, "--breach-grace-ms \"0\" is not a whole number in 1..86400000"), "%s",
              out);
    /* digits only (review: strtol took a blank and a sign) */
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--workers +2"), 2);
    cr_assert(strstr(out, "--workers \"+2\" is not a whole number in 1.."), "%s", out);
    cr_assert_eq(s_advsyncd("--workers", " 3", out, sizeof out), 2);
    /* endpoints and the conninfo are checked before anything starts: libzmq would bind
       port 99999 as 34463, and a conninfo that cannot be parsed would be retried forever */
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--ingest tcp://127.0.0.1:99999"), 2);
    cr_assert(strstr(out, "--ingest \"tcp://127.0.0.1:99999\" has port \"99999\", not a number "
                          "1..65535"),
              "%s", out);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--monitor-public tcp://:5571"), 2);
    cr_assert(strstr(out, "needs a host and a port"), "%s", out);
    cr_assert_eq(s_advsyncd("--database", "this is not=valid", out, sizeof out), 2);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--database this"), 2);
    cr_assert(strstr(out, "--database \"this\" is not a libpq conninfo: missing \"=\" after "
                          "\"this\""),
              "%s", out);
    /* a refused conninfo is shown without its password */
    cr_assert_eq(s_advsyncd_said(out, sizeof out, "--database 'password=Secret1 host=db oops'"), 2);
    cr_assert(strstr(out, "--database \"password=*** host=db oops\" is not a libpq conninfo"), "%s",
              out);
    cr_assert_null(strstr(out, "Secret1"), "%s", out);
    cr_assert_eq(s_advsyncd("--help", NULL, out, sizeof out), 0);
    cr_assert(strstr(out, "1..16 (default 2)"), "--workers shows its default: %s", out);
    cr_assert_eq(s_advsyncd("--coalesce-ms", "fast", out, sizeof out), 2);
    cr_assert_eq(s_advsyncd("--config", "/nonexistent/advsyncd.cfg", out, sizeof out), 1);
    char path[512];
    snprintf(path, sizeof path, "%s/bad.cfg", s_dir);
    FILE *file = fopen(path, "w");
    fprintf(file, "broker\n    ingest = tcp://127.0.0.1:*\n    databse = \"dbname=x\"\n");
    fclose(file);
    cr_assert_eq(s_advsyncd("--config", path, out, sizeof out), 1);
    char flags[600];
    /* a file with nothing for the broker: every setting would silently be its default */
    file = fopen(path, "w");
    fprintf(file, "agent\n    id = ward-1\n    site = north\n");
    fclose(file);
    snprintf(flags, sizeof flags, "--config %s", path);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "has no broker or monitor section (it is an agent's configuration)"),
              "%s", out);
    file = fopen(path, "w");
    fprintf(file, "monitor\n    breach_grace_ms = 90000000\n"); /* over a day */
    fclose(file);
    cr_assert_eq(s_advsyncd("--config", path, out, sizeof out), 1);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "monitor/breach_grace_ms \"90000000\" is not a whole number in "
                          "1..86400000"),
              "the value and the range: %s", out);
    /* a misspelt section left its settings at their defaults (the public stream on *:5571) */
    file = fopen(path, "w");
    fprintf(file, "broker\n    workers = 2\nmontor\n    public = tcp://127.0.0.1:*\n");
    fclose(file);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "\"montor\" is not a section of any advsync program (they are agent, "
                          "broker, monitor): misspelt?"),
              "%s", out);
    /* a key indented too deep is a child of the key above, which nothing reads (review: the
       monitor stayed on), and a section given a value: both refused */
    file = fopen(path, "w");
    fprintf(file, "broker\n    workers = 2\n        monitor = off\n");
    fclose(file);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "broker/workers: \"monitor\" is indented under it (8 spaces)"), "%s",
              out);
    file = fopen(path, "w");
    fprintf(file, "broker = 1\n    workers = 2\n");
    fclose(file);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "broker = ...: a section takes no value"), "%s", out);
    /* a folder: said so (it was "no broker or monitor section") */
    snprintf(flags, sizeof flags, "--config %s", s_dir);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "is a folder, not a file"), "%s", out);
    snprintf(flags, sizeof flags, "--config %s", path);
    /* a value cut at '#' (a password with one, unquoted): not echoed */
    file = fopen(path, "w");
    fprintf(file, "broker\n    database = password=se#cret\n");
    fclose(file);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "line 2: the value of database is cut at '#'"), "%s", out);
    cr_assert_null(strstr(out, "se#cret"), "%s", out);
    /* a key given twice (also in a second section of the same name) used to keep the first */
    file = fopen(path, "w");
    fprintf(file, "monitor\n    coalesce_ms = 100\nmonitor\n    coalesce_ms = 50\n");
    fclose(file);
    cr_assert_eq(s_advsyncd_said(out, sizeof out, flags), 1);
    cr_assert(strstr(out, "monitor/coalesce_ms is given twice"), "%s", out);
    s_assert_alive();
}

Test(broker, waits_for_the_database_then_stops_on_sigterm)
{
    char log_path[512], endpoint_file[512];
    snprintf(log_path, sizeof log_path, "%s/nodb.log", s_dir);
    snprintf(endpoint_file, sizeof endpoint_file, "%s/nodb.endpoint", s_dir);
    char *argv[] = {ASY_ADVSYNCD_PATH, "--database", "host=127.0.0.1 port=1 dbname=none "
                    "connect_timeout=2", "--ingest", "tcp://127.0.0.1:*", "--endpoint-file",
                    endpoint_file, NULL};
    pid_t pid = asy_test_spawn(argv, log_path);
    /* until its second attempt is logged (a fixed pause was too short on a loaded machine) */
    char text[8192] = "";
    int64_t until = zclock_mono() + 15000;
    while (!strstr(text, "database not ready (attempt 2)") && zclock_mono() < until) {
        zclock_sleep(50);
        FILE *log = fopen(log_path, "r");
        cr_assert_not_null(log);
        size_t got = fread(text, 1, sizeof text - 1, log);
        text[got] = 0;
        fclose(log);
    }
    cr_assert(strstr(text, "database not ready (attempt 2)"), "log: %s", text);
    cr_assert_neq(access(endpoint_file, F_OK), 0, "listening without a database");
    int status = asy_test_stop(pid, SIGTERM, 10000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    s_assert_alive();
}

/* One more connection to a broker (the session's own is s_dealer). */
static zsock_t *s_second_dealer(const char *endpoint)
{
    zsock_t *dealer = zsock_new_dealer(endpoint);
    cr_assert_not_null(dealer);
    zsock_set_rcvtimeo(dealer, 10000);
    zsock_set_linger(dealer, 0);
    return dealer;
}

/* Waits (up to 10 s) until COUNT sessions of this test's own database wait for a lock: a
   batch has reached the point the test holds it at (a fixed pause was too short on a busy
   machine, and counting every database's sessions saw other tests' waits). */
static void s_wait_for_lock_waits(long long count)
{
    const char *sql = "SELECT count(DISTINCT l.pid) FROM pg_locks l"
                      " JOIN pg_stat_activity a ON a.pid = l.pid"
                      " WHERE NOT l.granted AND a.datname = current_database()";
    int64_t until = zclock_mono() + 10000;
    long long waiting = s_count(sql);
    while (waiting < count && zclock_mono() < until) {
        zclock_sleep(20);
        waiting = s_count(sql);
    }
    cr_assert_geq(waiting, count, "%lld sessions wait for a lock, not %lld", waiting, count);
}

/* HELLO of epoch 2 of agent, re-issuing its epoch 1 from seq 1 (3 events), WELCOMEd. */
static void s_reissue_hello(const char *agent, const char *site)
{
    asy_frame_t hello = {.type = ASY_FRAME_HELLO, .version = ASY_PROTOCOL_VERSION};
    hello.u.hello = (asy_hello_t){.version_min = 1,
                                  .version_max = 1,
                                  .agent_id = agent,
                                  .site_id = site,
                                  .epoch = 2,
                                  .last_seq = 3,
                                  .reissue_of_epoch = 1,
                                  .reissue_from_seq = 1};
    s_send_frame(&hello);
    asy_frame_t frame;
    s_recv(&frame, ASY_FRAME_WELCOME);
    asy_frame_release(&frame);
}

/* A batch of the old epoch still being committed (sent before its agent was killed, and
   waiting here on a lock) while the re-issued epoch's batch of the same events goes through
   another worker: the re-issued batch waits for it and finds them held; then a later batch of
   the old epoch is refused (a fault tester stored every event twice). */
Test(broker, a_reissued_batch_waits_for_the_old_epoch_still_being_committed)
{
    cr_assert_eq(s_hello("agent-rc", "site-rc", 1), 0);
    asy_bytes_t old[3];
    for (int i = 0; i < 3; i++)
        old[i] = s_event("agent-rc", "site-rc", 1, (uint64_t)i + 1);
    PGconn *locker = asy_test_pg_connect(s_db);
    asy_test_pg_exec(locker, "BEGIN");
    asy_test_pg_exec(locker, "LOCK TABLE event IN EXCLUSIVE MODE");
    s_publish("agent-rc", 1, 1, old, 3); /* its worker waits on the lock, holding epoch 1 */
    s_wait_for_lock_waits(1);

    zsock_t *first = s_dealer; /* a second connection: the next worker */
    s_dealer = s_second_dealer(s_endpoint);
    s_reissue_hello("agent-rc", "site-rc");
    asy_frame_t frame;
    asy_bytes_t again[3];
    for (int i = 0; i < 3; i++)
        again[i] = s_renumbered(old[i], 2, (uint64_t)i + 1);
    s_publish("agent-rc", 2, 1, again, 3);
    s_wait_for_lock_waits(2); /* its worker reaches the old epoch's row */
    asy_test_pg_exec(locker, "COMMIT");
    PQfinish(locker);
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 3);
    cr_assert_eq(frame.u.ack.duplicates, 3, "all held under epoch 1 by then");
    asy_frame_release(&frame);
    zsock_t *second = s_dealer;
    s_dealer = first;
    s_recv(&frame, ASY_FRAME_ACK);
    cr_assert_eq(frame.u.ack.seq, 3);
    asy_frame_release(&frame);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-rc'"), 3,
                 "each event once");

    /* the old epoch goes on: refused, its events belong to epoch 2 now */
    asy_bytes_t more = s_event("agent-rc", "site-rc", 1, 4);
    s_publish("agent-rc", 1, 4, &more, 1);
    s_expect_nack(&frame, ASY_CODE_WRONG_AGENT);
    cr_assert(strstr(frame.u.nack.reason, "was re-issued as epoch 2 from seq 1"), "%s",
              frame.u.nack.reason);
    asy_frame_release(&frame);
    cr_assert_eq(s_count("SELECT count(*) FROM event WHERE agent_id = 'agent-rc'"), 3);
    zsock_destroy(&second);
    s_free_events(old, 3);
    s_free_events(again, 3);
    s_free_events(&more, 1);
}

/* Two batches of epoch 1 in flight at two brokers (the first waiting on a lock, the second,
   a resend, waiting for the first), the outbox re-issued meanwhile, epoch 2 at a third
   broker (brokers, not workers: which worker a connection gets is not the client's choice): whether
   the first commits or fails (cancelled), every event is stored once, and the resend is either a
   replay (duplicates) or refused, never stored after the re-issue (review: the compare-and-set's
   own snapshot predated the re-issue). */
static void s_reissue_race(const char *agent, bool cancel)
{
    char *dir2 = asy_test_tmpdir(), *dir3 = asy_test_tmpdir();
    char endpoint2[128], endpoint3[128];
    pid_t broker2 =
        asy_test_start_broker(s_db, dir2, asy_test_free_port(), endpoint2, sizeof endpoint2);
    pid_t broker3 =
        asy_test_start_broker(s_db, dir3, asy_test_free_port(), endpoint3, sizeof endpoint3);
    zsock_t *conn1 = s_dealer, *conn2 = s_second_dealer(endpoint2);
    cr_assert_eq(s_hello(agent, "site-race", 1), 0);
    s_dealer = conn2;
    cr_assert_eq(s_hello(agent, "site-race", 1), 0);
    s_dealer = conn1;
    asy_bytes_t old[3], again[3];
    for (int i = 0; i < 3; i++)
        old[i] = s_event(agent, "site-race", 1, (uint64_t)i + 1);
    PGconn *locker = asy_test_pg_connect(s_db);
    asy_test_pg_exec(locker, "BEGIN");
    asy_test_pg_exec(locker, "LOCK TABLE event IN EXCLUSIVE MODE");
    s_publish(agent, 1, 1, old, 3); /* holds epoch 1's row, waits at its COPY */
    s_wait_for_lock_waits(1);
    s_dealer = conn2;
    s_publish(agent, 1, 1, old, 3); /* a resend: waits for the row */
    s_wait_for_lock_waits(2);
    zsock_t *conn3 = s_second_dealer(endpoint3);
    s_dealer = conn3;
    s_reissue_hello(agent, "site-race");
    asy_frame_t frame;
    for (int i = 0; i < 3; i++)
        again[i] = s_renumbered(old[i], 2, (uint64_t)i + 1);
    s_publish(agent, 2, 1, again, 3); /* waits for epoch 1's row */
    s_wait_for_lock_waits(3);
    if (cancel) /* the first batch's COPY, in this test's own database only */
        cr_assert_eq(asy_test_pg_int(s_pg, "SELECT count(pg_cancel_backend(pid))"
                                           " FROM pg_stat_activity WHERE query LIKE 'COPY event%'"
                                           " AND wait_event_type = 'Lock'"
                                           " AND datname = current_database()"),
                     1);
    zclock_sleep(300);
    asy_test_pg_exec(locker, "COMMIT");
    PQfinish(locker);
    zsock_t *each[3] = {conn1, conn2, conn3};
    for (int c = 0; c < 3; c++) {
        zframe_t *reply = zframe_recv(each[c]);
        cr_assert_not_null(reply, "connection %d: no answer", c + 1);
        cr_assert_eq(asy_frame_decode(&frame, zframe_data(reply), zframe_size(reply)), 0);
        zframe_destroy(&reply);
        /* the resend: a replay of what the first committed, or, the first failed, a batch
           of an epoch re-issued since its compare-and-set began to wait */
        if (c == 1 && !cancel)
            cr_assert(frame.type == ASY_FRAME_ACK && frame.u.ack.duplicates == 3,
                      "a replay is acknowledged as duplicates, not refused");
        if (c == 1 && cancel)
            cr_assert(frame.type == ASY_FRAME_NACK && frame.u.nack.code == ASY_CODE_WRONG_AGENT,
                      "refused: epoch 1 was re-issued");
        if (c == 2)
            cr_assert_eq(frame.type, ASY_FRAME_ACK);
        asy_frame_release(&frame);
    }
    char query[256];
    snprintf(query, sizeof query, "SELECT count(*) FROM event WHERE agent_id = '%s'", agent);
    cr_assert_eq(s_count(query), 3, "cancel %d: each event once", cancel);
    s_dealer = conn1;
    zsock_destroy(&conn2);
    zsock_destroy(&conn3);
    asy_test_stop(broker2, SIGTERM, 10000);
    asy_test_stop(broker3, SIGTERM, 10000);
    s_free_events(old, 3);
    s_free_events(again, 3);
    free(dir2);
    free(dir3);
}

Test(broker, a_reissue_racing_two_batches_of_the_old_epoch_stores_each_event_once, .timeout = 120)
{
    s_reissue_race("agent-race-a", false);
    s_reissue_race("agent-race-b", true);
}
