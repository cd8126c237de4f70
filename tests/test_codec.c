/*  test_codec.c: events (JSON, bytes, validation, summary, stamp), identifiers and frames.  */
#include "codec.h"
#include "monitor_msg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_CASE "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
/* The golden event below, encoded: any change here is a wire format change (PROTOCOL.md). */
#define S_GOLDEN_EVENT_HEX                                                                         \
    "0a24"                                                                                         \
    "30313930613563382d326631652d376133622d386334642d356536663730383139326133" /* id */            \
    "1001" /* schema_version 1 */                                                                  \
    "1a027331"                                                                                     \
    "22026131" /* site_id "s1", agent_id "a1" */                                                   \
    "2801"                                                                                         \
    "3002" /* epoch 1, seq 2 */                                                                    \
    "3a40" /* case_id, 64 bytes: */                                                                \
    "3966383664303831383834633764363539613266656161306335356164303135"                             \
    "6133626634663162326230623832326364313564366331356230663030613038"                             \
    "4a06"                                                                                         \
    "08a0bf95cd06" /* occurred_at 1772445600 */                                                    \
    "d206"                                                                                         \
    "04"                                                                                           \
    "0801"                                                                                         \
    "2006" /* referral_received {service 1, [6]} */
#define S_PERSON "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

/* A complete envelope in canonical (output) form; a body follows. */
#define S_ENVELOPE                                                                                 \
    "{\"eventId\":\"0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3\",\"schemaVersion\":1,"                   \
    "\"siteId\":\"site-a\",\"agentId\":\"agent-1\",\"epoch\":\"1\",\"seq\":\"7\","                 \
    "\"caseId\":\"" S_CASE "\",\"personKey\":\"" S_PERSON "\","                                    \
    "\"occurredAt\":\"2026-03-02T10:00:00Z\",\"recordedAt\":\"2026-03-02T10:05:00.250Z\","         \
    "\"actorRole\":\"ACTOR_ADVOCATE\","

/* One event of every kind, each written exactly as asy_event_to_json writes it. */
static const struct {
    int kind;
    const char *json;
} s_every_kind[] = {
    {ASY_KIND_PERSON_PROFILE_RECORDED,
     S_ENVELOPE "\"personProfileRecorded\":{\"ons2021Ethnicity\":\"ONS_WHITE_BRITISH\","
                "\"nhsEthnicCategory\":\"NHS_ETHNIC_A_WHITE_BRITISH\",\"sex\":\"SEX_FEMALE\","
                "\"gender\":\"GENDER_FEMALE\",\"genderIdentity\":\"GENDER_IDENTITY_SAME\","
                "\"ageBand\":\"AGE_35_49\",\"disability\":\"DISABILITY_NONE\","
                "\"religion\":\"RELIGION_NONE\",\"sexualOrientation\":\"ORIENTATION_STRAIGHT\","
                "\"veteran\":\"NO\",\"language\":\"en\",\"interpreterNeeded\":\"NO\","
                "\"maritalStatus\":\"MARITAL_SINGLE\",\"pregnancyMaternity\":\"PREGNANCY_NO\"}}"},
    {ASY_KIND_PERSON_PROFILE_UPDATED,
     S_ENVELOPE "\"personProfileUpdated\":{\"religion\":\"RELIGION_SIKH\"}}"},
    {ASY_KIND_PERSON_EQUALITY_OPTOUT,
     S_ENVELOPE "\"personEqualityOptout\":{\"effectiveDate\":\"2026-03-01\"}}"},
    {ASY_KIND_QUALIFYING_STARTED,
     S_ENVELOPE "\"qualifyingStarted\":{\"legalStatus\":\"LEGAL_03_S3\","
                "\"start\":\"2026-03-01T09:00:00Z\",\"ward\":\"Oak\","
                "\"imhaInfoGivenAt\":\"2026-03-01T12:00:00Z\"}}"},
    {ASY_KIND_QUALIFYING_CHANGED,
     S_ENVELOPE "\"qualifyingChanged\":{\"legalStatus\":\"LEGAL_CTO_S17A\","
                "\"start\":\"2026-03-02T09:00:00Z\"}}"},
    {ASY_KIND_QUALIFYING_ENDED,
     S_ENVELOPE "\"qualifyingEnded\":{\"end\":\"2026-03-02T09:00:00Z\"}}"},
    {ASY_KIND_REFERRAL_RECEIVED,
     S_ENVELOPE "\"referralReceived\":{\"service\":\"SERVICE_IMHA\","
                "\"receivedAt\":\"2026-03-02T09:30:00Z\",\"source\":\"SOURCE_WARD_STAFF\","
                "\"reasons\":[\"REASON_MHA_RIGHTS\",\"REASON_TRIBUNAL_OR_HEARING\"],"
                "\"priorityGroups\":[\"PRIORITY_TRIBUNAL_OR_MANAGERS_HEARING\"],"
                "\"referrerOrg\":\"Ward 3\",\"consentBasis\":\"CONSENT_GIVEN\"}}"},
    {ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED,
     S_ENVELOPE "\"referralEligibilityDecided\":{\"eligible\":false,"
                "\"criteriaFailed\":[\"CRITERION_AGE_RANGE\",\"CRITERION_AREA\"]}}"},
    {ASY_KIND_REFERRAL_DECLINED,
     S_ENVELOPE "\"referralDeclined\":{\"declineReason\":\"DECLINE_OUT_OF_AREA\","
                "\"writtenReasonSentTo\":\"referrer\",\"copiedToContractManager\":true}}"},
    {ASY_KIND_WAITLIST_JOINED,
     S_ENVELOPE "\"waitlistJoined\":{\"reasonWaiting\":\"WAIT_NO_ADVOCATE_AVAILABLE\"}}"},
    {ASY_KIND_WAITLIST_LEFT, S_ENVELOPE "\"waitlistLeft\":{\"reason\":\"WAIT_LEFT_ALLOCATED\"}}"},
    {ASY_KIND_CONTACT_ATTEMPTED,
     S_ENVELOPE "\"contactAttempted\":{\"channel\":\"CHANNEL_PHONE\"}}"},
    {ASY_KIND_CONTACT_MADE, S_ENVELOPE "\"contactMade\":{}}"},
    {ASY_KIND_MEETING_INITIAL_HELD,
     S_ENVELOPE "\"meetingInitialHeld\":{\"date\":\"2026-03-04\",\"venueType\":\"VENUE_WARD\"}}"},
    {ASY_KIND_PLAN_AGREED,
     S_ENVELOPE "\"planAgreed\":{\"goals\":[\"attend tribunal\",\"understand rights\"],"
                "\"nextReviewDue\":\"2026-09-04\"}}"},
    {ASY_KIND_PLAN_REVIEWED, S_ENVELOPE "\"planReviewed\":{\"goals\":[\"attend tribunal\"],"
                                        "\"nextReviewDue\":\"2027-03-04\",\"goalsMet\":1}}"},
    {ASY_KIND_ISSUE_RECORDED,
     S_ENVELOPE "\"issueRecorded\":{\"issueCategory\":\"ISSUE_S17_LEAVE\",\"mhaRight\":true}}"},
    {ASY_KIND_MEETING_ATTENDED,
     S_ENVELOPE "\"meetingAttended\":{\"meetingType\":\"MEETING_TRIBUNAL\","
                "\"mode\":\"ADVOCACY_INSTRUCTED\"}}"},
    {ASY_KIND_ACTIVITY_LOGGED,
     S_ENVELOPE "\"activityLogged\":{\"minutes\":90,\"mode\":\"ACTIVITY_FACE_TO_FACE\","
                "\"travelMinutes\":30}}"},
    {ASY_KIND_RECORDS_ACCESS_REQUESTED,
     S_ENVELOPE "\"recordsAccessRequested\":{\"basis\":\"RECORDS_BASIS_LACKS_CAPACITY\"}}"},
    {ASY_KIND_OUTCOME_RECORDED,
     S_ENVELOPE "\"outcomeRecorded\":{\"framework\":\"FRAMEWORK_RECOVERY_STAR\","
                "\"area\":\"AREA_TRUST_HOPE\",\"score\":7,\"edition\":4}}"},
    {ASY_KIND_FEEDBACK_RECEIVED,
     S_ENVELOPE "\"feedbackReceived\":{\"kind\":\"FEEDBACK_COMPLIMENT\","
                "\"consentToPublish\":false}}"},
    {ASY_KIND_UNMET_NEED_RECORDED,
     S_ENVELOPE "\"unmetNeedRecorded\":{\"category\":\"UNMET_LANGUAGE\","
                "\"signpostedTo\":\"Interpreting service\"}}"},
    {ASY_KIND_REFERRAL_OUT_SENT,
     S_ENVELOPE "\"referralOutSent\":{\"partnerId\":\"housing-trust\","
                "\"purpose\":\"PURPOSE_HOUSING\",\"summary\":\"needs housing advice\"}}"},
    {ASY_KIND_CASE_CLOSED,
     S_ENVELOPE "\"caseClosed\":{\"closureReason\":\"CLOSURE_GOALS_ACHIEVED\",\"goalsMet\":true,"
                "\"leftBeforeGoals\":false}}"},
    {ASY_KIND_RECORD_VIEWED, S_ENVELOPE
     "\"recordViewed\":{\"user\":\"advocate-7\",\"purpose\":\"RECORD_PURPOSE_CASEWORK\"}}"},
    {ASY_KIND_RECORD_EXPORTED, S_ENVELOPE "\"recordExported\":{\"user\":\"admin\","
                                          "\"purpose\":\"RECORD_PURPOSE_SUBJECT_ACCESS\"}}"},
    {ASY_KIND_RECORD_ERASED,
     S_ENVELOPE "\"recordErased\":{\"user\":\"system\",\"purpose\":\"RECORD_PURPOSE_RETENTION\"}}"},
};

/* ---------------------------------------------------------------------------------------------
   Helpers. */

static asy_event_t *s_event_or_error(const char *text, char *error, size_t error_size)
{
    json_error_t json_error;
    json_t *object = json_loads(text, 0, &json_error);
    cr_assert_not_null(object, "bad test JSON: %s: %s", json_error.text, text);
    asy_event_t *event = NULL;
    int rc = asy_event_from_json(object, &event, error, error_size);
    json_decref(object);
    if (rc)
        cr_assert_null(event);
    return event;
}

static asy_event_t *s_event(const char *text)
{
    char error[256] = "";
    asy_event_t *event = s_event_or_error(text, error, sizeof error);
    cr_assert_not_null(event, "%s in %s", error, text);
    return event;
}

static asy_event_t *s_reencode(const asy_event_t *event)
{
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    asy_event_t *decoded = NULL;
    cr_assert_eq(asy_event_decode(data, size, &decoded), 0);
    free(data);
    return decoded;
}

static char *s_hex(const uint8_t *data, size_t size)
{
    char *text = malloc(size * 2 + 1);
    for (size_t i = 0; i < size; i++)
        snprintf(text + 2 * i, 3, "%02x", data[i]);
    text[size * 2] = '\0';
    return text;
}

/* Validates the event text (with the envelope edited by edit: a JSON object merged over it,
   null values deleting keys) and checks the refusal. */
static void s_refused(const char *body, const char *edit, int code, const char *reason)
{
    char text[4096];
    snprintf(text, sizeof text, S_ENVELOPE "%s}", body);
    json_t *object = json_loads(text, 0, NULL);
    cr_assert_not_null(object, "%s", text);
    if (edit) {
        json_t *changes = json_loads(edit, 0, NULL);
        cr_assert_not_null(changes, "%s", edit);
        const char *key;
        json_t *value;
        json_object_foreach(changes, key, value)
        {
            if (json_is_null(value))
                json_object_del(object, key);
            else
                json_object_set(object, key, value);
        }
        json_decref(changes);
    }
    asy_event_t *event = NULL;
    char error[256] = "";
    cr_assert_eq(asy_event_from_json(object, &event, error, sizeof error), 0, "%s", error);
    json_decref(object);
    asy_check_t why;
    cr_assert_lt(asy_event_validate(event, &why), 0, "accepted %s + %s", body, edit);
    cr_assert_eq(why.code, code, "code %s (%s), wanted %s", asy_code_name(why.code), why.reason,
                 asy_code_name(code));
    cr_assert(strstr(why.reason, reason), "reason \"%s\" lacks \"%s\"", why.reason, reason);
    asy_event_destroy(&event);
}

/* Decodes raw bytes as an event and validates them; returns the check. */
static asy_check_t s_check_bytes(const uint8_t *data, size_t size)
{
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0);
    asy_check_t why;
    cr_assert_lt(asy_event_validate(event, &why), 0);
    asy_event_destroy(&event);
    return why;
}

/* The bytes of a valid event with the given body JSON; caller frees. */
static uint8_t *s_bytes(const char *body, size_t *size, size_t extra)
{
    char text[2048];
    snprintf(text, sizeof text, S_ENVELOPE "%s}", body);
    asy_event_t *event = s_event(text);
    uint8_t *data = NULL;
    cr_assert_eq(asy_event_encode(event, &data, size), 0);
    asy_event_destroy(&event);
    data = realloc(data, *size + extra);
    cr_assert_not_null(data);
    return data;
}

/* ---------------------------------------------------------------------------------------------
   Events: JSON and bytes. */

Test(codec, every_kind_round_trips_json_binary_json)
{
    cr_assert_eq(sizeof s_every_kind / sizeof s_every_kind[0],
                 (size_t)(ASY_KIND_LAST - ASY_KIND_FIRST + 1));
    for (size_t i = 0; i < sizeof s_every_kind / sizeof s_every_kind[0]; i++) {
        asy_event_t *event = s_event(s_every_kind[i].json);
        asy_check_t why;
        cr_assert_eq(asy_event_validate(event, &why), 0, "%s: %s",
                     asy_kind_name(s_every_kind[i].kind), why.reason);
        asy_event_t *decoded = s_reencode(event);
        asy_event_summary_t summary;
        asy_event_summarise(decoded, &summary);
        cr_assert_eq(summary.kind, s_every_kind[i].kind);
        cr_assert(!asy_event_has_unknown_fields(decoded));
        char *text = asy_event_to_json(decoded);
        cr_assert_not_null(text);
        cr_assert_str_eq(text, s_every_kind[i].json);
        free(text);
        asy_event_destroy(&decoded);
        asy_event_destroy(&event);
        cr_assert_null(event);
    }
}

Test(codec, golden_encoded_event_pins_the_wire_format)
{
    asy_event_t *event = s_event(
        "{\"eventId\":\"0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3\",\"schemaVersion\":1,"
        "\"siteId\":\"s1\",\"agentId\":\"a1\",\"epoch\":\"1\",\"seq\":\"2\","
        "\"caseId\":\"" S_CASE "\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
        "\"referralReceived\":{\"service\":\"SERVICE_IMHA\",\"reasons\":[\"REASON_CTO\"]}}");
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    char *hex = s_hex(data, size);
    cr_assert_str_eq(hex, S_GOLDEN_EVENT_HEX);
    free(hex);
    free(data);
    asy_event_destroy(&event);
}

Test(codec, unknown_fields_survive_decode_and_encode)
{
    size_t size = 0;
    // tag 999, varint 5: key (999 << 3 | 0) = 7992 = b8 3e
    uint8_t *data = s_bytes("\"contactMade\":{\"channel\":\"CHANNEL_PHONE\"}", &size, 3);
    memcpy(data + size, "\xb8\x3e\x05", 3);
    size += 3;
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0);
    cr_assert(asy_event_has_unknown_fields(event));
    asy_check_t why;
    cr_assert_eq(asy_event_validate(event, &why), 0, "%s", why.reason);
    uint8_t *again = NULL;
    size_t again_size = 0;
    cr_assert_eq(asy_event_encode(event, &again, &again_size), 0);
    cr_assert_eq(again_size, size);
    cr_assert_eq(memcmp(again, data, size), 0, "the unknown field is written back verbatim");
    free(again);
    asy_event_destroy(&event);
    free(data);
}

Test(codec, unknown_body_is_an_unknown_kind)
{
    size_t size = 0;
    char text[1024];
    // an envelope only, then body field 130 (a newer kind): key (130 << 3 | 2) = 1042 = 92 08
    snprintf(text, sizeof text, "%.*s}", (int)strlen(S_ENVELOPE) - 1, S_ENVELOPE);
    asy_event_t *event = s_event(text);
    uint8_t *data = NULL;
    cr_assert_eq(asy_event_encode(event, &data, &size), 0);
    asy_event_destroy(&event);
    data = realloc(data, size + 3);
    memcpy(data + size, "\x92\x08\x00", 3);
    size += 3;
    asy_check_t why = s_check_bytes(data, size);
    cr_assert_eq(why.code, ASY_CODE_EVENT_UNKNOWN_KIND);
    cr_assert_str_eq(why.reason,
                     "no event body; field numbers 130 are unknown to schema version 1");
    free(data);
}

Test(codec, json_errors_name_the_field)
{
    char error[256] = "";
    cr_assert_null(s_event_or_error("{\"caseId\":\"x\",\"noSuchField\":1}", error, sizeof error));
    cr_assert_str_eq(error, "noSuchField: unknown field");
    cr_assert_null(s_event_or_error("{\"referralReceived\":{\"service\":\"SERVICE_NOPE\"}}", error,
                                    sizeof error));
    cr_assert(strstr(error, "referralReceived.service: \"SERVICE_NOPE\" is not a value of "
                            "advsync.v1.ServiceType"),
              "%s", error);
    json_t *array = json_array();
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_from_json(array, &event, error, sizeof error), ASY_EINVAL);
    json_decref(array);
}

/* ---------------------------------------------------------------------------------------------
   Validation. */

Test(codec, envelope_failures)
{
    const char *body = "\"contactMade\":{}";
    const int missing = ASY_CODE_EVENT_MISSING_FIELD, invalid = ASY_CODE_EVENT_INVALID_FIELD;
    s_refused(body, "{\"eventId\":null}", missing, "event_id: required");
    s_refused(body, "{\"eventId\":\"0190a5c8-2f1e-7a3b-8c4d\"}", invalid,
              "event_id: \"0190a5c8-2f1e-7a3b-8c4d\" is not a canonical UUID");
    s_refused(body, "{\"eventId\":\"00000000-0000-0000-0000-000000000000\"}", invalid,
              "event_id: the nil UUID names no event");
    s_refused(body, "{\"schemaVersion\":null}", missing, "schema_version: required");
    s_refused(body, "{\"schemaVersion\":0}", invalid, "schema_version: must be at least 1");
    s_refused(body, "{\"schemaVersion\":4294967295}", invalid,
              "schema_version: 4294967295 is over 2147483647");
    s_refused(body, "{\"siteId\":null}", missing, "site_id: required");
    s_refused(body, "{\"siteId\":\"site a\"}", invalid, "site_id: \"site a\" is not");
    s_refused(body, "{\"agentId\":null}", missing, "agent_id: required");
    s_refused(body, "{\"agentId\":\"\"}", invalid, "agent_id:");
    s_refused(body, "{\"epoch\":null}", missing, "epoch: required");
    s_refused(body, "{\"epoch\":0}", invalid, "epoch: must be at least 1");
    s_refused(body, "{\"seq\":null}", missing, "seq: required");
    s_refused(body, "{\"seq\":\"0\"}", invalid, "seq: must be at least 1");
    s_refused(body, "{\"caseId\":null}", missing, "case_id: required");
    s_refused(body,
              "{\"caseId\":\"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"}",
              invalid, "case_id: not 64 lowercase hex digits");
    s_refused(body, "{\"personKey\":\"abc\"}", invalid, "person_key: not 64 lowercase hex");
    s_refused(body, "{\"occurredAt\":null}", missing, "occurred_at: required");
    s_refused(body, "{\"occurredAt\":\"1999-12-31T23:59:59Z\"}", invalid,
              "occurred_at: 1999-12-31T23:59:59Z is before 2000-01-01");
    s_refused(body, "{\"occurredAt\":{\"seconds\":\"1767607200\",\"nanos\":1000000000}}", invalid,
              "occurred_at.nanos: 1000000000 is outside 0..999999999");
    s_refused(body, "{\"recordedAt\":\"1990-01-01T00:00:00Z\"}", invalid,
              "recorded_at: 1990-01-01T00:00:00Z is before 2000-01-01");

    char future[128];
    time_t later = time(NULL) + 3 * 86400;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(future, sizeof future, "{\"occurredAt\":\"%Y-%m-%dT%H:%M:%SZ\"}", &tm);
    s_refused(body, future, invalid, "is more than 2 days in the future");
    /* past year 9999 there is no date to show: the seconds, not a bare "?" (review) */
    s_refused(body, "{\"occurredAt\":{\"seconds\":\"99999999999999\"}}", invalid,
              "occurred_at: 99999999999999 s is more than 2 days in the future");
    // a day ahead is a clock skew we accept
    later = time(NULL) + 86400;
    gmtime_r(&later, &tm);
    char text[1024];
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(text, sizeof text,
             "{\"eventId\":\"0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3\",\"schemaVersion\":1,"
             "\"siteId\":\"s\",\"agentId\":\"a\",\"epoch\":1,\"seq\":1,\"caseId\":\"" S_CASE "\","
             "\"occurredAt\":\"%s\",\"contactMade\":{}}",
             stamp);
    asy_event_t *event = s_event(text);
    asy_check_t why;
    cr_assert_eq(asy_event_validate(event, &why), 0, "%s", why.reason);
    asy_event_destroy(&event);
}

Test(codec, no_body_is_an_unknown_kind)
{
    s_refused("\"contactMade\":null", NULL, ASY_CODE_EVENT_UNKNOWN_KIND, "no event body");
}

Test(codec, kind_specific_required_fields)
{
    const int missing = ASY_CODE_EVENT_MISSING_FIELD;
    s_refused("\"referralReceived\":{}", NULL, missing,
              "referral_received.service: required for referral.received");
    s_refused("\"referralReceived\":{\"service\":\"SERVICE_NOT_RECORDED\"}", NULL, missing,
              "referral_received.service: required for referral.received");
    s_refused("\"referralEligibilityDecided\":{\"criteriaFailed\":[\"CRITERION_AREA\"]}", NULL,
              missing,
              "referral_eligibility_decided.eligible: required for referral.eligibility_decided");
    s_refused("\"referralDeclined\":{}", NULL, missing,
              "referral_declined.decline_reason: required for referral.declined");
    s_refused("\"qualifyingStarted\":{\"ward\":\"Oak\"}", NULL, missing,
              "qualifying_started.legal_status: required for qualifying.started");
    s_refused("\"qualifyingChanged\":{}", NULL, missing,
              "qualifying_changed.legal_status: required for qualifying.changed");
    s_refused("\"caseClosed\":{\"goalsMet\":true}", NULL, missing,
              "case_closed.closure_reason: required for case.closed");
    s_refused("\"outcomeRecorded\":{\"area\":\"AREA_WORK\",\"score\":3}", NULL, missing,
              "outcome_recorded.framework: required for outcome.recorded");
    s_refused("\"outcomeRecorded\":{\"framework\":\"FRAMEWORK_LAYERED\",\"score\":3}", NULL,
              missing, "outcome_recorded.area: required for outcome.recorded");
    s_refused("\"outcomeRecorded\":{\"framework\":\"FRAMEWORK_LAYERED\",\"area\":\"AREA_WORK\"}",
              NULL, missing, "outcome_recorded.score: required for outcome.recorded");
    s_refused("\"referralOutSent\":{\"purpose\":\"PURPOSE_HOUSING\"}", NULL, missing,
              "referral_out_sent.partner_id: required for referral_out.sent");
    s_refused("\"referralOutSent\":{\"partnerId\":\"\"}", NULL, missing,
              "referral_out_sent.partner_id: required for referral_out.sent (it is blank)");
    s_refused("\"referralOutSent\":{\"partnerId\":\" \\t\"}", NULL, missing,
              "referral_out_sent.partner_id: required for referral_out.sent (it is blank)");
    s_refused("\"personEqualityOptout\":{}", NULL, missing,
              "person_equality_optout.effective_date: required for person.equality_optout");
}

Test(codec, value_ranges)
{
    const int invalid = ASY_CODE_EVENT_INVALID_FIELD;
    s_refused("\"outcomeRecorded\":{\"framework\":1,\"area\":2,\"score\":11}", NULL, invalid,
              "outcome_recorded.score: 11 is outside 1..10");
    s_refused("\"outcomeRecorded\":{\"framework\":1,\"area\":2,\"score\":0}", NULL, invalid,
              "outcome_recorded.score: 0 is outside 1..10");
    s_refused("\"outcomeRecorded\":{\"framework\":1,\"area\":2,\"score\":5,\"edition\":65539}",
              NULL, invalid,
              "outcome_recorded.edition: 65539 is not a Recovery Star edition (3 or 4)");
    s_refused("\"outcomeRecorded\":{\"framework\":1,\"area\":2,\"score\":5,\"edition\":0}", NULL,
              invalid, "outcome_recorded.edition: 0 is not a Recovery Star edition (3 or 4)");
    s_refused("\"activityLogged\":{\"minutes\":1441}", NULL, invalid,
              "activity_logged.minutes: 1441 is outside 0..1440");
    s_refused("\"activityLogged\":{\"minutes\":60,\"travelMinutes\":-1}", NULL, invalid,
              "activity_logged.travel_minutes: -1 is outside 0..1440");
    // only the plain object form can carry an impossible date from JSON; the wire can too
    s_refused("\"meetingInitialHeld\":{\"date\":{\"year\":2023,\"month\":2,\"day\":29}}", NULL,
              invalid, "meeting_initial_held.date: 2023-02-29 is not a calendar date");
    s_refused("\"planAgreed\":{\"nextReviewDue\":{\"year\":2026,\"month\":13,\"day\":1}}", NULL,
              invalid, "plan_agreed.next_review_due: 2026-13-01 is not a calendar date");

    char body[1400];
    snprintf(body, sizeof body, "\"referralReceived\":{\"service\":1,\"referrerOrg\":\"%0257d\"}",
             0);
    s_refused(body, NULL, invalid, "referral_received.referrer_org: 257 bytes is longer than 256");
    snprintf(body, sizeof body, "\"planAgreed\":{\"goals\":[\"ok\",\"%0513d\"]}", 0);
    s_refused(body, NULL, invalid, "plan_agreed.goals[1]: 513 bytes is longer than 512");
    snprintf(body, sizeof body, "\"planAgreed\":{\"goals\":[\"%0512d\"]}", 0);
    char text[2048];
    snprintf(text, sizeof text, S_ENVELOPE "%s}", body);
    asy_event_t *event = s_event(text);
    asy_check_t why;
    cr_assert_eq(asy_event_validate(event, &why), 0, "a goal may have 512 bytes: %s", why.reason);
    asy_event_destroy(&event);

    /* free text holding an NHS number: refused, and said to be identifying (the broker then
       keeps no bytes of it); the pseudonyms' hex is not free text */
    s_refused("\"referralReceived\":{\"service\":1,\"referrerOrg\":\"re 943-476-5919\"}", NULL,
              invalid, "referral_received.referrer_org: holds what reads as an NHS number");
    event = s_event(S_ENVELOPE "\"planAgreed\":{\"goals\":[\"call (943) 476 5919\"]}}");
    memset(&why, 0, sizeof why);
    cr_assert_eq(asy_event_validate(event, &why), ASY_EINVAL);
    cr_assert(why.identifying, "%s", why.reason);
    cr_assert_null(strstr(why.reason, "5919"), "%s", why.reason);
    /* the verdict alone, with no asy_check_t; and a reused one forgets the last verdict */
    cr_assert_eq(asy_event_validate(event, NULL), ASY_EINVAL);
    asy_event_destroy(&event);
    event = s_event(S_ENVELOPE "\"planAgreed\":{\"goals\":[\"call back\"]}}");
    cr_assert_eq(asy_event_validate(event, &why), 0, "%s", why.reason);
    cr_assert_not(why.identifying);
    asy_event_destroy(&event);
}

/* The first byte of needle in (data, size) set to NUL: the bytes stay a valid encoding. */
static void s_nul_at(uint8_t *data, size_t size, const char *needle)
{
    size_t length = strlen(needle);
    for (size_t i = 0; i + length <= size; i++)
        if (memcmp(data + i, needle, length) == 0) {
            data[i] = 0;
            return;
        }
    cr_assert_fail("%s is not in the bytes", needle);
}

Test(codec, a_nul_inside_a_string_is_refused_naming_its_field)
{
    /* protobuf-c reads strings as C strings: every check would stop at the NUL, while the
       stored bytes keep what follows it (here an NHS number) */
    size_t size = 0;
    uint8_t *data =
        s_bytes("\"referralReceived\":{\"service\":1,\"referrerOrg\":\"okZ9434765919\"}", &size, 0);
    s_nul_at(data, size, "Z943");
    asy_event_t *event = NULL;
    cr_assert_eq(asy_event_decode(data, size, &event), 0);
    asy_check_t why;
    cr_assert_eq(asy_event_validate(event, &why), ASY_EINVAL);
    cr_assert_eq(why.code, ASY_CODE_EVENT_INVALID_FIELD);
    cr_assert_str_eq(why.reason, "referral_received.referrer_org: holds a NUL byte (text after it "
                                 "would escape every check; the event's bytes are not kept)");
    cr_assert(why.identifying, "no bytes kept of what could not be looked at");
    asy_event_destroy(&event);
    free(data);

    // an envelope identifier: its syntax check would otherwise see only what comes before
    data = s_bytes("\"caseClosed\":null", &size, 0);
    s_nul_at(data, size, S_CASE + 60);
    why = s_check_bytes(data, size);
    cr_assert_eq(why.code, ASY_CODE_EVENT_INVALID_FIELD);
    cr_assert_str_eq(why.reason, "case_id: holds a NUL byte (text after it would escape every "
                                 "check; the event's bytes are not kept)");
    free(data);

    // the same string without the NUL passes the NUL check (and fails on the NHS number)
    data =
        s_bytes("\"referralReceived\":{\"service\":1,\"referrerOrg\":\"ok 9434765919\"}", &size, 0);
    why = s_check_bytes(data, size);
    cr_assert_str_eq(why.reason, "referral_received.referrer_org: holds what reads as an NHS "
                                 "number; free text must not carry one (the event's bytes are "
                                 "not kept)");
    free(data);

    // a frame: HELLO's agent_id "nul-X\0evil" would have been welcomed as "nul-X"
    asy_frame_t in = {.type = ASY_FRAME_HELLO};
    in.u.hello.agent_id = "nul-XZevil";
    in.u.hello.site_id = "site-a";
    in.u.hello.epoch = 1;
    in.u.hello.version_min = in.u.hello.version_max = 1;
    cr_assert_eq(asy_frame_encode(&in, &data, &size), 0);
    s_nul_at(data, size, "Zevil");
    asy_frame_t frame;
    cr_assert_eq(asy_frame_decode(&frame, data, size), ASY_EINVAL);
    cr_assert_eq(frame.type, ASY_FRAME_NONE);
    cr_assert_str_eq(frame.nul_field, "hello.agent_id");
    asy_frame_release(&frame);
    free(data);

    // a snapshot request: "all/M1/\0zzz" would have been served as "all/M1/"
    asy_mmsg_t request;
    asy_mmsg_init(&request, ASY_MMSG_SNAPSHOT_REQUEST);
    snprintf(request.subtree, sizeof request.subtree, "all/M1/Zzzz");
    cr_assert_eq(asy_mmsg_encode(&request, &data, &size), 0);
    asy_mmsg_release(&request);
    asy_mmsg_t decoded;
    cr_assert_eq(asy_mmsg_decode(&decoded, data, size), 0, "the request itself is good");
    asy_mmsg_release(&decoded);
    s_nul_at(data, size, "Zzzz");
    cr_assert_eq(asy_mmsg_decode(&decoded, data, size), ASY_EPROTO);
    asy_mmsg_release(&decoded);
    free(data);
}

Test(codec, enum_numbers_from_the_wire_must_be_values)
{
    size_t size = 0;
    // contact_made (112, length-delimited: key 898 = 82 07) { channel (1) = 99 }
    uint8_t *data = s_bytes("\"caseClosed\":null", &size, 5);
    memcpy(data + size, "\x82\x07\x02\x08\x63", 5);
    asy_check_t why = s_check_bytes(data, size + 5);
    cr_assert_eq(why.code, ASY_CODE_EVENT_INVALID_FIELD);
    cr_assert_str_eq(why.reason,
                     "contact_made.channel: 99 is not a value of advsync.v1.ContactChannel");
    free(data);

    // referral_received (106: key 850 = d2 06) { service 1, reasons [3, 77] }
    data = s_bytes("\"caseClosed\":null", &size, 9);
    memcpy(data + size, "\xd2\x06\x06\x08\x01\x20\x03\x20\x4d", 9);
    why = s_check_bytes(data, size + 9);
    cr_assert_eq(why.code, ASY_CODE_EVENT_INVALID_FIELD);
    cr_assert_str_eq(why.reason, "referral_received.reasons[1]: 77 is not a value of "
                                 "advsync.v1.ReferralReason");
    free(data);

    // the same with eleven good reasons before the bad one: a two-digit index in the path
    data = s_bytes("\"caseClosed\":null", &size, 29);
    memcpy(data + size,
           "\xd2\x06\x1a\x08\x01\x20\x03\x20\x03\x20\x03\x20\x03\x20\x03\x20\x03\x20\x03"
           "\x20\x03\x20\x03\x20\x03\x20\x03\x20\x4d",
           29);
    why = s_check_bytes(data, size + 29);
    cr_assert_str_eq(why.reason, "referral_received.reasons[11]: 77 is not a value of "
                                 "advsync.v1.ReferralReason");
    free(data);

    // referral_received { service 1, received_at { seconds 300,000,000,000 } }: past year 9999
    data = s_bytes("\"caseClosed\":null", &size, 14);
    memcpy(data + size, "\xd2\x06\x0b\x08\x01\x12\x07\x08\x80\xf0\x92\xcb\xdd\x08", 14);
    why = s_check_bytes(data, size + 14);
    cr_assert_eq(why.code, ASY_CODE_EVENT_INVALID_FIELD);
    cr_assert_str_eq(why.reason, "referral_received.received_at: seconds 300000000000 / nanos 0 "
                                 "is not a time in years 1..9999");
    free(data);
}

Test(codec, undecodable_bytes)
{
    asy_event_t *event = (asy_event_t *)1;
    cr_assert_eq(asy_event_decode((const uint8_t *)"\x0a\x20zz", 4, &event), ASY_EPROTO);
    cr_assert_null(event);
    cr_assert_eq(asy_event_decode((const uint8_t *)"\xff\xff\xff", 3, &event), ASY_EPROTO);
    // empty bytes are an empty Event: decodable, and refused by validation
    cr_assert_eq(asy_event_decode(NULL, 0, &event), 0);
    asy_check_t why;
    cr_assert_lt(asy_event_validate(event, &why), 0);
    cr_assert_str_eq(why.reason, "event_id: required");
    asy_event_destroy(&event);
    asy_event_destroy(&event);
}

/* ---------------------------------------------------------------------------------------------
   Summary, stamp, identifiers. */

Test(codec, summarise_referral_and_envelope)
{
    asy_event_t *event = s_event(s_every_kind[6].json);
    asy_event_summary_t s;
    asy_event_summarise(event, &s);
    cr_assert_str_eq(s.event_id, "0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3");
    static const uint8_t uuid[16] = {0x01, 0x90, 0xa5, 0xc8, 0x2f, 0x1e, 0x7a, 0x3b,
                                     0x8c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3};
    cr_assert_arr_eq(s.event_uuid, uuid, 16);
    cr_assert_eq(s.schema_version, 1u);
    cr_assert_str_eq(s.site_id, "site-a");
    cr_assert_str_eq(s.agent_id, "agent-1");
    cr_assert_eq(s.epoch, 1u);
    cr_assert_eq(s.seq, 7u);
    cr_assert_str_eq(s.case_id, S_CASE);
    cr_assert_str_eq(s.person_key, S_PERSON);
    cr_assert_eq(s.occurred_at_us, 1772445600LL * 1000000);
    cr_assert_eq(s.recorded_at_us, 1772445900LL * 1000000 + 250000);
    cr_assert_eq(s.kind, ASY_KIND_REFERRAL_RECEIVED);
    cr_assert_eq(s.service, 1);
    cr_assert_eq(s.source, 34);
    cr_assert_eq(s.received_at_us, 1772443800LL * 1000000);
    cr_assert_eq(s.eligible, -1);
    asy_event_destroy(&event);

    event =
        s_event("{\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":{\"service\":2}}");
    asy_event_summarise(event, &s);
    cr_assert_eq(s.received_at_us, s.occurred_at_us, "received_at defaults to occurred_at");
    cr_assert_str_eq(s.person_key, "");
    cr_assert_eq(s.reasons, 0u, "no reasons given");
    asy_event_destroy(&event);

    event = s_event("{\"occurredAt\":\"2026-03-02T10:00:00Z\",\"referralReceived\":{\"service\":2,"
                    "\"reasons\":[\"REASON_HOUSING\",\"REASON_MHA_RIGHTS\",\"REASON_HOUSING\"]}}");
    asy_event_summarise(event, &s);
    cr_assert_eq(s.reasons, 1u << 10 | 1u << 1, "bit r per reason value r: got %#x", s.reasons);
    cr_assert_eq(s.recorded_at_us, 0);
    asy_event_destroy(&event);
}

static asy_event_summary_t s_summary_of(const char *body)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"occurredAt\":\"2026-03-02T10:00:00Z\",%s}", body);
    asy_event_t *event = s_event(text);
    asy_event_summary_t s;
    asy_event_summarise(event, &s);
    asy_event_destroy(&event);
    return s;
}

Test(codec, summarise_facts)
{
    asy_event_summary_t s = s_summary_of("\"caseClosed\":{\"closureReason\":\"withdrew\"}");
    cr_assert_eq(s.closure_reason, 3);
    cr_assert(s.left_before_goals, "derived from WITHDREW");
    s = s_summary_of("\"caseClosed\":{\"closureReason\":\"moved\",\"leftBeforeGoals\":false}");
    cr_assert(!s.left_before_goals, "as given");
    s = s_summary_of("\"caseClosed\":{\"closureReason\":\"CLOSURE_GOALS_ACHIEVED\"}");
    cr_assert(!s.left_before_goals);
    s = s_summary_of("\"caseClosed\":{\"closureReason\":\"unable_to_contact\"}");
    cr_assert(s.left_before_goals);
    s = s_summary_of("\"qualifyingStarted\":{\"legalStatus\":\"LEGAL_03_S3\"}");
    cr_assert(s.qualifying && s.legal_status == 3);
    s = s_summary_of("\"qualifyingChanged\":{\"legalStatus\":\"s136\"}");
    cr_assert(!s.qualifying && s.legal_status == 20);
    /* when a status took effect (occurred_at is 2026-03-02T10:00Z): the body's time; one past
       what occurred_at may hold (a typo: 2062) is not taken */
    const int64_t occurred = 1772445600000000, day_before = 1772359200000000;
    s = s_summary_of("\"qualifyingStarted\":{\"legalStatus\":\"LEGAL_03_S3\","
                     "\"start\":\"2026-03-01T10:00:00Z\"}");
    cr_assert_eq(s.qualifying_at_us, day_before);
    s = s_summary_of("\"qualifyingEnded\":{\"legalStatus\":\"LEGAL_02_S2\","
                     "\"end\":\"2026-03-01T10:00:00Z\"}");
    cr_assert_eq(s.qualifying_at_us, day_before);
    s = s_summary_of("\"qualifyingStarted\":{\"legalStatus\":\"LEGAL_03_S3\","
                     "\"start\":\"2062-03-01T10:00:00Z\"}");
    cr_assert_eq(s.qualifying_at_us, occurred);
    s = s_summary_of("\"qualifyingChanged\":{\"legalStatus\":\"LEGAL_03_S3\"}");
    cr_assert_eq(s.qualifying_at_us, occurred);
    /* a first meeting's date, at noon UTC, when earlier than occurred_at and not before 2000 */
    s = s_summary_of("\"meetingInitialHeld\":{\"date\":\"2026-02-20\"}");
    cr_assert_eq(s.met_at_us, 1771588800000000);
    s = s_summary_of("\"meetingInitialHeld\":{\"date\":\"1999-12-31\"}");
    cr_assert_eq(s.met_at_us, occurred);
    s = s_summary_of("\"meetingInitialHeld\":{\"date\":\"2026-03-05\"}");
    cr_assert_eq(s.met_at_us, occurred, "a date after the event: the event's time");
    s = s_summary_of("\"referralEligibilityDecided\":{\"eligible\":false}");
    cr_assert_eq(s.eligible, 0);
    s = s_summary_of("\"referralEligibilityDecided\":{\"eligible\":true}");
    cr_assert_eq(s.eligible, 1);
    s = s_summary_of("\"referralDeclined\":{\"declineReason\":\"duplicate\"}");
    cr_assert_eq(s.decline_reason, 9);
    s = s_summary_of("\"outcomeRecorded\":{\"framework\":1,\"area\":\"work\",\"score\":6,"
                     "\"edition\":3}");
    cr_assert(s.outcome_area == 5 && s.outcome_score == 6 && s.outcome_edition == 3);
    s = s_summary_of("\"personProfileUpdated\":{\"ons2021Ethnicity\":\"black_caribbean\","
                     "\"nhsEthnicCategory\":12,\"sex\":\"male\",\"gender\":\"non_binary\","
                     "\"ageBand\":\"AGE_18_34\",\"disability\":\"learning\","
                     "\"religion\":\"muslim\",\"sexualOrientation\":\"bisexual\"}");
    cr_assert(s.ethnicity_ons == 7 && s.nhs_ethnic == 12 && s.sex == 1 && s.gender == 3 &&
              s.age_band == 3 && s.disability == 3 && s.religion == 6 && s.sexual_orientation == 3);
    cr_assert_eq(s.kind, ASY_KIND_PERSON_PROFILE_UPDATED);
}

Test(codec, legal_status_qualifies)
{
    const int yes[] = {2,  3,  7,  8,  9,  10, 12, 13,  14,  15,
                       16, 17, 18, 35, 36, 37, 38, 100, 101, 102};
    const int no[] = {0, 1, 4, 5, 6, 19, 20, 31, 32, 11, 99};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(asy_legal_status_qualifies(yes[i]), "%d", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert(!asy_legal_status_qualifies(no[i]), "%d", no[i]);
}

Test(codec, stamp_fills_the_agent_fields)
{
    asy_event_t *event =
        s_event("{\"schemaVersion\":9,\"siteId\":\"old\","
                "\"caseId\":\"" S_CASE "\",\"occurredAt\":\"2026-03-02T10:00:00Z\","
                "\"contactMade\":{}}");
    cr_assert_null(asy_event_id(event));
    cr_assert_eq(asy_event_stamp(event, "site-b", "agent-9", 3, 42), 0);
    asy_check_t why;
    cr_assert_eq(asy_event_validate(event, &why), 0, "%s", why.reason);
    asy_event_summary_t s;
    asy_event_summarise(event, &s);
    cr_assert_str_eq(s.site_id, "site-b");
    cr_assert_str_eq(s.agent_id, "agent-9");
    cr_assert_eq(s.epoch, 3u);
    cr_assert_eq(s.seq, 42u);
    cr_assert_eq(s.schema_version, (uint32_t)ASY_SCHEMA_VERSION);
    int64_t now_us = (int64_t)time(NULL) * 1000000;
    cr_assert(s.recorded_at_us > now_us - 5000000 && s.recorded_at_us < now_us + 5000000);
    cr_assert(asy_uuid_valid(asy_event_id(event)));
    cr_assert_eq(asy_event_id(event)[14], '7');

    // a second stamp keeps event_id and recorded_at
    char id[ASY_UUID_TEXT + 1];
    snprintf(id, sizeof id, "%s", asy_event_id(event));
    int64_t recorded = s.recorded_at_us;
    cr_assert_eq(asy_event_stamp(event, "site-b", "agent-9", 3, 43), 0);
    asy_event_summarise(event, &s);
    cr_assert_str_eq(asy_event_id(event), id);
    cr_assert_eq(s.recorded_at_us, recorded);
    cr_assert_eq(s.seq, 43u);

    cr_assert_eq(asy_event_set_case_id(event, S_PERSON), 0);
    cr_assert_eq(asy_event_set_person_key(event, S_CASE), 0);
    asy_event_summarise(event, &s);
    cr_assert_str_eq(s.case_id, S_PERSON);
    cr_assert_str_eq(s.person_key, S_CASE);
    asy_event_destroy(&event);
}

Test(codec, uuid_v7)
{
    char previous[ASY_UUID_TEXT + 1] = "";
    for (int i = 0; i < 2000; i++) {
        char uuid[ASY_UUID_TEXT + 1];
        asy_uuid_v7(uuid);
        cr_assert_eq(strlen(uuid), 36u);
        cr_assert(asy_uuid_valid(uuid), "%s", uuid);
        cr_assert_eq(uuid[14], '7', "version 7: %s", uuid);
        cr_assert(strchr("89ab", uuid[19]), "variant 10: %s", uuid);
        for (const char *c = uuid; *c; c++)
            cr_assert(*c == '-' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'));
        cr_assert_str_neq(uuid, previous);
        // the 48-bit ms time and the 12-bit fraction never go backwards in one process
        cr_assert_leq(strncmp(previous, uuid, 18), 0, "%s then %s", previous, uuid);
        memcpy(previous, uuid, sizeof uuid);
    }
    // the time prefix is now, in milliseconds
    char uuid[ASY_UUID_TEXT + 1];
    asy_uuid_v7(uuid);
    char hex[13];
    memcpy(hex, uuid, 8);
    memcpy(hex + 8, uuid + 9, 4);
    hex[12] = '\0';
    long long ms = strtoll(hex, NULL, 16);
    cr_assert_lt(llabs(ms - (long long)time(NULL) * 1000), 5000);
}

Test(codec, identifiers)
{
    cr_assert(asy_uuid_valid("0190A5C8-2F1E-7A3B-8C4D-5E6F708192A3"));
    cr_assert(!asy_uuid_valid("0190a5c8-2f1e-7a3b-8c4d-5e6f708192a"));
    cr_assert(!asy_uuid_valid("0190a5c8-2f1e-7a3b-8c4d-5e6f708192a33"));
    cr_assert(!asy_uuid_valid("0190a5c8_2f1e-7a3b-8c4d-5e6f708192a3"));
    cr_assert(!asy_uuid_valid("0190a5c8-2f1e-7a3b-8c4d-5e6f708192g3"));
    cr_assert(!asy_uuid_valid(NULL));
    uint8_t bytes[16];
    cr_assert(asy_uuid_parse("0190A5C8-2f1e-7a3b-8c4d-5e6f708192a3", bytes));
    char text[ASY_UUID_TEXT + 1];
    asy_uuid_format(bytes, text);
    cr_assert_str_eq(text, "0190a5c8-2f1e-7a3b-8c4d-5e6f708192a3");
    cr_assert(!asy_uuid_parse("0190a5c8-2f1e-7a3b-8c4d-5e6f708192a", bytes));
    cr_assert(!asy_uuid_parse("0190a5c8-2f1e-7a3b-8c4d-5e6f708192g3", bytes));
    cr_assert(asy_id_valid("site-A.1_x"));
    cr_assert(asy_id_valid("a"));
    cr_assert(!asy_id_valid(""));
    cr_assert(!asy_id_valid("site a"));
    cr_assert(!asy_id_valid("s\xc3\xa9"));
    cr_assert(asy_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    cr_assert(!asy_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    cr_assert(asy_pseudonym_valid(S_CASE));
    cr_assert(!asy_pseudonym_valid(S_CASE "0"));
    cr_assert(
        !asy_pseudonym_valid("9F86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
}

Test(codec, kind_and_code_names)
{
    cr_assert_str_eq(asy_kind_name(ASY_KIND_REFERRAL_RECEIVED), "referral.received");
    cr_assert_str_eq(asy_kind_name(ASY_KIND_PERSON_PROFILE_RECORDED), "person.profile_recorded");
    cr_assert_str_eq(asy_kind_name(ASY_KIND_MEETING_INITIAL_HELD), "meeting.initial_held");
    cr_assert_str_eq(asy_kind_name(ASY_KIND_RECORDS_ACCESS_REQUESTED), "records.access_requested");
    cr_assert_str_eq(asy_kind_name(ASY_KIND_UNMET_NEED_RECORDED), "unmet_need.recorded");
    cr_assert_str_eq(asy_kind_name(ASY_KIND_REFERRAL_OUT_SENT), "referral_out.sent");
    cr_assert_str_eq(asy_kind_name(ASY_KIND_RECORD_ERASED), "record.erased");
    cr_assert_null(asy_kind_name(ASY_KIND_NONE));
    cr_assert_null(asy_kind_name(128));
    for (int kind = ASY_KIND_FIRST; kind <= ASY_KIND_LAST; kind++) {
        const char *name = asy_kind_name(kind);
        cr_assert_not_null(name);
        cr_assert_eq(asy_kind_from_name(name), kind);
        char field[64];
        snprintf(field, sizeof field, "%s", name);
        *strchr(field, '.') = '_';
        cr_assert_eq(asy_kind_from_name(field), kind, "%s", field);
    }
    cr_assert_eq(asy_kind_from_name("referral"), ASY_KIND_NONE);
    cr_assert_eq(asy_kind_from_name(NULL), ASY_KIND_NONE);
    cr_assert_str_eq(asy_code_name(ASY_CODE_SEQ_GAP), "SEQ_GAP");
    cr_assert_str_eq(asy_code_name(ASY_CODE_EVENT_MISSING_FIELD), "EVENT_MISSING_FIELD");
    cr_assert_str_eq(asy_code_name(ASY_CODE_EVENT_TOO_LARGE), "EVENT_TOO_LARGE");
    cr_assert_str_eq(asy_code_name(999), "UNKNOWN");
}

/* ---------------------------------------------------------------------------------------------
   Frames. */

static void s_frame_round_trip(const asy_frame_t *frame, asy_frame_t *decoded)
{
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_frame_encode(frame, &data, &size), 0);
    cr_assert_eq(asy_frame_decode(decoded, data, size), 0);
    free(data); // the decoded frame owns copies
    cr_assert_eq(decoded->type, frame->type);
    cr_assert_eq(decoded->version, frame->version ? frame->version : ASY_PROTOCOL_VERSION);
}

Test(codec, frames_round_trip)
{
    asy_frame_t in = {.type = ASY_FRAME_HELLO, .version = 0};
    in.u.hello = (asy_hello_t){1, 2, "agent-1", "site-a", 5, 99, "advsync-agent 0.1.0", 0, 0};
    asy_frame_t out;
    s_frame_round_trip(&in, &out);
    cr_assert(out.u.hello.version_min == 1 && out.u.hello.version_max == 2);
    cr_assert_str_eq(out.u.hello.agent_id, "agent-1");
    cr_assert_str_eq(out.u.hello.site_id, "site-a");
    cr_assert(out.u.hello.epoch == 5 && out.u.hello.last_seq == 99);
    cr_assert_str_eq(out.u.hello.software, "advsync-agent 0.1.0");
    cr_assert(out.u.hello.reissue_of_epoch == 0 && out.u.hello.reissue_from_seq == 0);
    asy_frame_release(&out);
    in.u.hello.software = NULL;
    in.u.hello.reissue_of_epoch = 4; /* a re-issued epoch (PROTOCOL.md 5.5) */
    in.u.hello.reissue_from_seq = 1200;
    s_frame_round_trip(&in, &out);
    cr_assert_null(out.u.hello.software);
    cr_assert(out.u.hello.reissue_of_epoch == 4 && out.u.hello.reissue_from_seq == 1200);
    asy_frame_release(&out);

    in = (asy_frame_t){.type = ASY_FRAME_WELCOME, .version = 7};
    in.u.welcome = (asy_welcome_t){
        1, 1234567890123ULL, 5000, 16777216, 16, 1000, "0190a1b2-0000-7000-8000-000000000001", 0};
    s_frame_round_trip(&in, &out);
    cr_assert_eq(out.version, 7u);
    cr_assert(out.u.welcome.version == 1 && out.u.welcome.committed_seq == 1234567890123ULL &&
              out.u.welcome.max_batch_events == 5000 && out.u.welcome.max_frame_bytes == 16777216 &&
              out.u.welcome.window == 16 && out.u.welcome.heartbeat_ms == 1000);
    cr_assert_str_eq(out.u.welcome.committed_event_id, "0190a1b2-0000-7000-8000-000000000001");
    cr_assert_eq(out.u.welcome.reissue_of_epoch, 0);
    asy_frame_release(&out);
    in.u.welcome.committed_event_id = NULL; /* optional: absent stays absent */
    in.u.welcome.reissue_of_epoch = 4;
    s_frame_round_trip(&in, &out);
    cr_assert(!out.u.welcome.committed_event_id || !*out.u.welcome.committed_event_id);
    cr_assert_eq(out.u.welcome.reissue_of_epoch, 4);
    asy_frame_release(&out);

    const asy_bytes_t events[] = {{(const uint8_t *)"abc", 3},
                                  {(const uint8_t *)"", 0},
                                  {(const uint8_t *)"\x00\x01\x02\x03\xff", 5}};
    in = (asy_frame_t){.type = ASY_FRAME_PUBLISH};
    in.u.publish = (asy_publish_t){"agent-1", 2, 10, 3, events};
    s_frame_round_trip(&in, &out);
    cr_assert_str_eq(out.u.publish.agent_id, "agent-1");
    cr_assert(out.u.publish.epoch == 2 && out.u.publish.first_seq == 10);
    cr_assert_eq(out.u.publish.count, 3u);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(out.u.publish.events[i].size, events[i].size);
        if (events[i].size)
            cr_assert_eq(memcmp(out.u.publish.events[i].data, events[i].data, events[i].size), 0);
    }
    asy_frame_release(&out);
    in.u.publish.count = 0;
    in.u.publish.events = NULL;
    s_frame_round_trip(&in, &out);
    cr_assert_eq(out.u.publish.count, 0u);
    asy_frame_release(&out);

    const asy_rejection_t rejected[] = {{11, ASY_CODE_EVENT_MISSING_FIELD, "case_id: required"},
                                        {12, ASY_CODE_EVENT_INVALID_FIELD, NULL}};
    in = (asy_frame_t){.type = ASY_FRAME_ACK};
    in.u.ack = (asy_ack_t){"agent-1", 2, 12, 2, rejected, 4};
    s_frame_round_trip(&in, &out);
    cr_assert_str_eq(out.u.ack.agent_id, "agent-1");
    cr_assert(out.u.ack.epoch == 2 && out.u.ack.seq == 12 && out.u.ack.duplicates == 4);
    cr_assert_eq(out.u.ack.rejected_count, 2u);
    cr_assert(out.u.ack.rejected[0].seq == 11 &&
              out.u.ack.rejected[0].code == ASY_CODE_EVENT_MISSING_FIELD);
    cr_assert_str_eq(out.u.ack.rejected[0].reason, "case_id: required");
    cr_assert_str_eq(out.u.ack.rejected[1].reason, "", "absent text reads as \"\"");
    asy_frame_release(&out);

    in = (asy_frame_t){.type = ASY_FRAME_NACK};
    in.u.nack = (asy_nack_t){ASY_CODE_SEQ_GAP, "expected 5", 5, 9, 250};
    s_frame_round_trip(&in, &out);
    cr_assert(out.u.nack.code == ASY_CODE_SEQ_GAP && out.u.nack.expected_seq == 5 &&
              out.u.nack.first_seq == 9 && out.u.nack.retry_after_ms == 250);
    cr_assert_str_eq(out.u.nack.reason, "expected 5");
    asy_frame_release(&out);

    in = (asy_frame_t){.type = ASY_FRAME_HEARTBEAT};
    in.u.heartbeat.sent_at_ms = -1764000000123LL;
    s_frame_round_trip(&in, &out);
    cr_assert_eq(out.u.heartbeat.sent_at_ms, -1764000000123LL);
    asy_frame_release(&out);
    asy_frame_release(&out);
    cr_assert_eq(out.type, ASY_FRAME_NONE);
    cr_assert_null(out.storage_);

    uint8_t *data = NULL;
    size_t size = 0;
    in = (asy_frame_t){.type = ASY_FRAME_NONE};
    cr_assert_eq(asy_frame_encode(&in, &data, &size), ASY_EINVAL);
    in.type = 99;
    cr_assert_eq(asy_frame_encode(&in, &data, &size), ASY_EINVAL);
}

/* Encodes frame and compares the bytes, in hex, with want. */
static void s_frame_hex_is(const asy_frame_t *frame, const char *want)
{
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_frame_encode(frame, &data, &size), 0);
    char *hex = s_hex(data, size);
    cr_assert_str_eq(hex, want);
    free(hex);
    free(data);
}

Test(codec, golden_heartbeat_frame)
{
    asy_frame_t in = {.type = ASY_FRAME_HEARTBEAT};
    in.u.heartbeat.sent_at_ms = 1000;
    // version (1) = 1; heartbeat (15) { sent_at_ms (1) = 1000 }
    s_frame_hex_is(&in, "08017a0308e807");
}

/* A NACK carries expected_seq, first_seq and retry_after_ms only where they mean something
   (PROTOCOL 3.5), so that another implementation may read presence. */
Test(codec, golden_nack_frames_carry_only_their_fields)
{
    asy_frame_t in = {.type = ASY_FRAME_NACK};
    // version (1) = 1; nack (14) { code (1) = 1; reason (2) = "x" }
    in.u.nack = (asy_nack_t){.code = ASY_CODE_MALFORMED_FRAME, .reason = "x"};
    s_frame_hex_is(&in, "080172050801120178");
    // SEQ_GAP: expected_seq (3) = 8 and first_seq (4) = 9
    in.u.nack =
        (asy_nack_t){.code = ASY_CODE_SEQ_GAP, .reason = "x", .expected_seq = 8, .first_seq = 9};
    s_frame_hex_is(&in, "08017209080512017818082009");
    // RETRY_LATER: retry_after_ms (5), even 0
    in.u.nack = (asy_nack_t){.code = ASY_CODE_RETRY_LATER, .reason = "x"};
    s_frame_hex_is(&in, "0801720708071201782800");
    // a HEARTBEAT with no time (0) echoes none
    in = (asy_frame_t){.type = ASY_FRAME_HEARTBEAT};
    s_frame_hex_is(&in, "08017a00");
}

/* ASM/1: the broker incarnation is envelope field 3, fixed64 (PROTOCOL.md 9), beside seq. */
Test(codec, golden_monitor_heartbeat_with_incarnation)
{
    asy_mmsg_t in;
    asy_mmsg_init(&in, ASY_MMSG_HEARTBEAT);
    in.seq = 5;
    in.incarnation = 0x0102030405060708u;
    in.sent_at_us = 1000000;
    in.interval_ms = 1000;
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_mmsg_encode(&in, &data, &size), 0);
    char *hex = s_hex(data, size);
    // version (1) = 1; seq (2) = 5; incarnation (3) little-endian; heartbeat (14) { seq (1) = 5,
    // sent_at (2) { seconds 1, nanos 0 }, interval_ms (3) = 1000 }
    cr_assert_str_eq(hex, "08011005190807060504030201720b0805120408011000"
                          "18e807");
    asy_mmsg_t out;
    cr_assert_eq(asy_mmsg_decode(&out, data, size), 0);
    cr_assert_eq(out.kind, ASY_MMSG_HEARTBEAT);
    cr_assert_eq(out.incarnation, 0x0102030405060708u);
    char *json = asy_mmsg_json(data, size);
    cr_assert_not_null(json);
    cr_assert(strstr(json, "\"incarnation\":\"72623859790382856\""), "%s", json);
    free(json);
    free(hex);
    free(data);

    /* an older broker's message: no field 3, decoded as 0, and 0 is never sent */
    in.incarnation = 0;
    cr_assert_eq(asy_mmsg_encode(&in, &data, &size), 0);
    hex = s_hex(data, size);
    cr_assert_str_eq(hex, "08011005720b080512040801100018e807");
    cr_assert_eq(asy_mmsg_decode(&out, data, size), 0);
    cr_assert_eq(out.incarnation, 0);
    free(hex);
    free(data);
}

/* A monitor message's time from the wire is clamped, not overflowed (seconds = INT64_MAX). */
Test(codec, monitor_time_out_of_range_is_clamped)
{
    // version 1, seq 5, heartbeat (14) { seq 5, sent_at { seconds INT64_MAX, nanos 0 },
    // interval_ms 1000 }
    const uint8_t data[] = {0x08, 0x01, 0x10, 0x05, 0x72, 0x13, 0x08, 0x05, 0x12,
                            0x0c, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0x7f, 0x10, 0x00, 0x18, 0xe8, 0x07};
    asy_mmsg_t out;
    cr_assert_eq(asy_mmsg_decode(&out, data, sizeof data), 0);
    cr_assert_eq(out.kind, ASY_MMSG_HEARTBEAT);
    cr_assert_gt(out.sent_at_us, (int64_t)9e18);
}

Test(codec, bad_frames_are_protocol_errors)
{
    asy_frame_t frame;
    memset(&frame, 0xab, sizeof frame); // decode must not trust what was there
    cr_assert_eq(asy_frame_decode(&frame, NULL, 0), ASY_EPROTO, "empty Frame");
    cr_assert_eq(frame.type, ASY_FRAME_NONE);
    asy_frame_release(&frame);
    cr_assert_eq(asy_frame_decode(&frame, (const uint8_t *)"\x08\x01", 2), ASY_EPROTO,
                 "version only, no kind");
    cr_assert_eq(frame.type, ASY_FRAME_NONE);
    asy_frame_release(&frame);
    cr_assert_eq(asy_frame_decode(&frame, (const uint8_t *)"\x08\x01\x80\x06\x00", 5), ASY_EPROTO,
                 "only a kind from the future (field 96)");
    asy_frame_release(&frame);

    // every truncation of a PUBLISH is refused
    const asy_bytes_t events[] = {{(const uint8_t *)"event one", 9},
                                  {(const uint8_t *)"event two", 9}};
    asy_frame_t in = {.type = ASY_FRAME_PUBLISH};
    in.u.publish = (asy_publish_t){"agent-1", 1, 1, 2, events};
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(asy_frame_encode(&in, &data, &size), 0);
    for (size_t cut = 0; cut < size; cut++) {
        cr_assert_eq(asy_frame_decode(&frame, data, cut), ASY_EPROTO, "cut at %zu of %zu", cut,
                     size);
        cr_assert_eq(frame.type, ASY_FRAME_NONE);
        asy_frame_release(&frame);
    }
    cr_assert_eq(asy_frame_decode(&frame, data, size), 0);
    asy_frame_release(&frame);
    free(data);
}

Test(codec, random_bytes_never_crash)
{
    srand(20261123);
    uint8_t buffer[96];
    int decoded_frames = 0;
    for (int i = 0; i < 10000; i++) {
        size_t size = (size_t)(rand() % (int)sizeof buffer);
        for (size_t j = 0; j < size; j++)
            buffer[j] = (uint8_t)rand();
        if (i % 4 == 0 && size > 2) {
            // start like a real frame so decoding gets further in
            buffer[0] = 0x08;
            buffer[1] = 0x01;
            buffer[2] = (uint8_t)(0x52 + 8 * (rand() % 6));
        }
        asy_frame_t frame;
        int rc = asy_frame_decode(&frame, buffer, size);
        cr_assert(rc == 0 || rc == ASY_EPROTO);
        if (rc == 0) {
            cr_assert_neq(frame.type, ASY_FRAME_NONE);
            decoded_frames++;
        } else {
            cr_assert_eq(frame.type, ASY_FRAME_NONE);
        }
        asy_frame_release(&frame);

        asy_event_t *event = NULL;
        rc = asy_event_decode(buffer, size, &event);
        cr_assert(rc == 0 || rc == ASY_EPROTO);
        if (rc == 0) {
            asy_check_t why;
            asy_event_validate(event, &why);
            asy_event_summary_t summary;
            asy_event_summarise(event, &summary);
            free(asy_event_to_json(event));
            asy_event_destroy(&event);
        }
    }
    cr_assert_gt(decoded_frames, 0, "some random frames should decode");
}

/* An ipc:// path is in use while a process listens on it; a socket file left behind by one
   that died (or no file, or a tcp:// endpoint) is not. */
Test(codec, ipc_in_use_only_while_someone_listens)
{
    char dir[] = "/tmp/asy-ipc-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char endpoint[128], *path = endpoint + 6;
    snprintf(endpoint, sizeof endpoint, "ipc://%s/s.sock", dir);
    cr_assert_not(asy_ipc_in_use(endpoint), "no file yet");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert(asy_ipc_in_use(endpoint));
    char error[256] = "";
    cr_assert(asy_ipc_bind_refused(endpoint, error, sizeof error));
    char expected[300];
    snprintf(expected, sizeof expected, "cannot bind %s: another process is listening there",
             endpoint);
    cr_assert_str_eq(error, expected);
    close(fd);
    cr_assert_not(asy_ipc_bind_refused(endpoint, error, sizeof error));
    cr_assert_not(asy_ipc_in_use(endpoint), "a stale socket file");
    cr_assert_not(asy_ipc_in_use("tcp://127.0.0.1:5570"));
    unlink(path);
    rmdir(dir);
}

/* libzmq says "No such device" for a host name in a tcp:// bind: the refusal says what a
   bind takes (the deployer typed the centre's host name into --ingest). */
Test(codec, a_host_name_bind_is_explained)
{
    void *context = zmq_ctx_new();
    void *socket = zmq_socket(context, ZMQ_ROUTER);
    const char *endpoint = "tcp://centre.example.org:5999";
    cr_assert_neq(zmq_bind(socket, endpoint), 0);
    char error[256];
    asy_bind_failed(endpoint, error, sizeof error);
    cr_assert(strstr(error, "cannot bind tcp://centre.example.org:5999: ") == error, "%s", error);
    cr_assert(strstr(error, "not a host name"), "%s", error);
    zmq_close(socket);
    zmq_ctx_term(context);
}
