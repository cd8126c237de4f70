/*  codec.c: events encoded, decoded, validated and summarised; names and identifiers.
    Protocol frames are in frame.c.

    With frame.c and json.c, the only code that touches the protobuf-c types generated from
    proto/advsync.proto. An asy_event_t wraps one Advsync__V1__Event; whether it came from
    protobuf_c_message_unpack() or from the JSON mapper, every part is malloc'ed, so
    protobuf_c_message_free_unpacked(message, NULL) frees it.  */
#include "codec.h"

#include "advsync.pb-c.h"
#include "json.h"
#include "pseudonym.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* The plain enums of codec.h mirror the generated ones: keep them in step. */
#define S_SAME(ours, generated) _Static_assert((int)(ours) == (int)(generated), #ours)

S_SAME(ASY_CODE_NONE, ADVSYNC__V1__ERROR_CODE__ERROR_NONE);
S_SAME(ASY_CODE_MALFORMED_FRAME, ADVSYNC__V1__ERROR_CODE__ERROR_MALFORMED_FRAME);
S_SAME(ASY_CODE_VERSION, ADVSYNC__V1__ERROR_CODE__ERROR_VERSION);
S_SAME(ASY_CODE_FRAME_TOO_LARGE, ADVSYNC__V1__ERROR_CODE__ERROR_FRAME_TOO_LARGE);
S_SAME(ASY_CODE_BATCH_TOO_LARGE, ADVSYNC__V1__ERROR_CODE__ERROR_BATCH_TOO_LARGE);
S_SAME(ASY_CODE_SEQ_GAP, ADVSYNC__V1__ERROR_CODE__ERROR_SEQ_GAP);
S_SAME(ASY_CODE_NOT_WELCOMED, ADVSYNC__V1__ERROR_CODE__ERROR_NOT_WELCOMED);
S_SAME(ASY_CODE_RETRY_LATER, ADVSYNC__V1__ERROR_CODE__ERROR_RETRY_LATER);
S_SAME(ASY_CODE_WRONG_AGENT, ADVSYNC__V1__ERROR_CODE__ERROR_WRONG_AGENT);
S_SAME(ASY_CODE_SEQ_CONFLICT, ADVSYNC__V1__ERROR_CODE__ERROR_SEQ_CONFLICT);
S_SAME(ASY_CODE_EVENT_UNDECODABLE, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_UNDECODABLE);
S_SAME(ASY_CODE_EVENT_MISSING_FIELD, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_MISSING_FIELD);
S_SAME(ASY_CODE_EVENT_INVALID_FIELD, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_INVALID_FIELD);
S_SAME(ASY_CODE_EVENT_UNKNOWN_KIND, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_UNKNOWN_KIND);
S_SAME(ASY_CODE_EVENT_SEQ_MISMATCH, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_SEQ_MISMATCH);
S_SAME(ASY_CODE_EVENT_WRONG_SITE, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_WRONG_SITE);
S_SAME(ASY_CODE_EVENT_SCHEMA_TOO_NEW, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_SCHEMA_TOO_NEW);
S_SAME(ASY_CODE_EVENT_TOO_LARGE, ADVSYNC__V1__ERROR_CODE__ERROR_EVENT_TOO_LARGE);

S_SAME(ASY_KIND_NONE, ADVSYNC__V1__EVENT__BODY__NOT_SET);
S_SAME(ASY_KIND_PERSON_PROFILE_RECORDED, ADVSYNC__V1__EVENT__BODY_PERSON_PROFILE_RECORDED);
S_SAME(ASY_KIND_PERSON_PROFILE_UPDATED, ADVSYNC__V1__EVENT__BODY_PERSON_PROFILE_UPDATED);
S_SAME(ASY_KIND_PERSON_EQUALITY_OPTOUT, ADVSYNC__V1__EVENT__BODY_PERSON_EQUALITY_OPTOUT);
S_SAME(ASY_KIND_QUALIFYING_STARTED, ADVSYNC__V1__EVENT__BODY_QUALIFYING_STARTED);
S_SAME(ASY_KIND_QUALIFYING_CHANGED, ADVSYNC__V1__EVENT__BODY_QUALIFYING_CHANGED);
S_SAME(ASY_KIND_QUALIFYING_ENDED, ADVSYNC__V1__EVENT__BODY_QUALIFYING_ENDED);
S_SAME(ASY_KIND_REFERRAL_RECEIVED, ADVSYNC__V1__EVENT__BODY_REFERRAL_RECEIVED);
S_SAME(ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED,
       ADVSYNC__V1__EVENT__BODY_REFERRAL_ELIGIBILITY_DECIDED);
S_SAME(ASY_KIND_REFERRAL_DECLINED, ADVSYNC__V1__EVENT__BODY_REFERRAL_DECLINED);
S_SAME(ASY_KIND_WAITLIST_JOINED, ADVSYNC__V1__EVENT__BODY_WAITLIST_JOINED);
S_SAME(ASY_KIND_WAITLIST_LEFT, ADVSYNC__V1__EVENT__BODY_WAITLIST_LEFT);
S_SAME(ASY_KIND_CONTACT_ATTEMPTED, ADVSYNC__V1__EVENT__BODY_CONTACT_ATTEMPTED);
S_SAME(ASY_KIND_CONTACT_MADE, ADVSYNC__V1__EVENT__BODY_CONTACT_MADE);
S_SAME(ASY_KIND_MEETING_INITIAL_HELD, ADVSYNC__V1__EVENT__BODY_MEETING_INITIAL_HELD);
S_SAME(ASY_KIND_PLAN_AGREED, ADVSYNC__V1__EVENT__BODY_PLAN_AGREED);
S_SAME(ASY_KIND_PLAN_REVIEWED, ADVSYNC__V1__EVENT__BODY_PLAN_REVIEWED);
S_SAME(ASY_KIND_ISSUE_RECORDED, ADVSYNC__V1__EVENT__BODY_ISSUE_RECORDED);
S_SAME(ASY_KIND_MEETING_ATTENDED, ADVSYNC__V1__EVENT__BODY_MEETING_ATTENDED);
S_SAME(ASY_KIND_ACTIVITY_LOGGED, ADVSYNC__V1__EVENT__BODY_ACTIVITY_LOGGED);
S_SAME(ASY_KIND_RECORDS_ACCESS_REQUESTED, ADVSYNC__V1__EVENT__BODY_RECORDS_ACCESS_REQUESTED);
S_SAME(ASY_KIND_OUTCOME_RECORDED, ADVSYNC__V1__EVENT__BODY_OUTCOME_RECORDED);
S_SAME(ASY_KIND_FEEDBACK_RECEIVED, ADVSYNC__V1__EVENT__BODY_FEEDBACK_RECEIVED);
S_SAME(ASY_KIND_UNMET_NEED_RECORDED, ADVSYNC__V1__EVENT__BODY_UNMET_NEED_RECORDED);
S_SAME(ASY_KIND_REFERRAL_OUT_SENT, ADVSYNC__V1__EVENT__BODY_REFERRAL_OUT_SENT);
S_SAME(ASY_KIND_CASE_CLOSED, ADVSYNC__V1__EVENT__BODY_CASE_CLOSED);
S_SAME(ASY_KIND_RECORD_VIEWED, ADVSYNC__V1__EVENT__BODY_RECORD_VIEWED);
S_SAME(ASY_KIND_RECORD_EXPORTED, ADVSYNC__V1__EVENT__BODY_RECORD_EXPORTED);
S_SAME(ASY_KIND_RECORD_ERASED, ADVSYNC__V1__EVENT__BODY_RECORD_ERASED);

#define S_MIN_OCCURRED 946684800LL /* 2000-01-01T00:00:00Z */
#define S_MAX_AHEAD (2LL * 86400)  /* how far ahead of our clock an event may be */
#define S_STRING_MAX 256
#define S_GOAL_MAX 512
#define S_MINUTES_MAX 1440

struct asy_event {
    Advsync__V1__Event *message;
};

/* ---------------------------------------------------------------------------------------------
   Names. */

/* Index = kind - ASY_KIND_FIRST. The dotted name reads the body field's first word group
   (person, referral_out, unmet_need ...) as the noun. */
static const char *const s_kind_names[][2] = {
    {"person.profile_recorded", "person_profile_recorded"},
    {"person.profile_updated", "person_profile_updated"},
    {"person.equality_optout", "person_equality_optout"},
    {"qualifying.started", "qualifying_started"},
    {"qualifying.changed", "qualifying_changed"},
    {"qualifying.ended", "qualifying_ended"},
    {"referral.received", "referral_received"},
    {"referral.eligibility_decided", "referral_eligibility_decided"},
    {"referral.declined", "referral_declined"},
    {"waitlist.joined", "waitlist_joined"},
    {"waitlist.left", "waitlist_left"},
    {"contact.attempted", "contact_attempted"},
    {"contact.made", "contact_made"},
    {"meeting.initial_held", "meeting_initial_held"},
    {"plan.agreed", "plan_agreed"},
    {"plan.reviewed", "plan_reviewed"},
    {"issue.recorded", "issue_recorded"},
    {"meeting.attended", "meeting_attended"},
    {"activity.logged", "activity_logged"},
    {"records.access_requested", "records_access_requested"},
    {"outcome.recorded", "outcome_recorded"},
    {"feedback.received", "feedback_received"},
    {"unmet_need.recorded", "unmet_need_recorded"},
    {"referral_out.sent", "referral_out_sent"},
    {"case.closed", "case_closed"},
    {"record.viewed", "record_viewed"},
    {"record.exported", "record_exported"},
    {"record.erased", "record_erased"},
};
_Static_assert(sizeof s_kind_names / sizeof s_kind_names[0] == ASY_KIND_LAST - ASY_KIND_FIRST + 1,
               "one name per kind");

const char *asy_kind_name(int kind)
{
    if (kind < ASY_KIND_FIRST || kind > ASY_KIND_LAST)
        return NULL;
    return s_kind_names[kind - ASY_KIND_FIRST][0];
}

/* The body field name of a kind ("referral_received"). */
static const char *s_kind_field(int kind)
{
    if (kind < ASY_KIND_FIRST || kind > ASY_KIND_LAST)
        return "body";
    return s_kind_names[kind - ASY_KIND_FIRST][1];
}

int asy_kind_from_name(const char *name)
{
    if (!name)
        return ASY_KIND_NONE;
    for (int kind = ASY_KIND_FIRST; kind <= ASY_KIND_LAST; kind++)
        if (strcmp(name, s_kind_names[kind - ASY_KIND_FIRST][0]) == 0 ||
            strcmp(name, s_kind_names[kind - ASY_KIND_FIRST][1]) == 0)
            return kind;
    return ASY_KIND_NONE;
}

const char *asy_code_name(int code)
{
    switch (code) {
    case ASY_CODE_NONE:
        return "NONE";
    case ASY_CODE_MALFORMED_FRAME:
        return "MALFORMED_FRAME";
    case ASY_CODE_VERSION:
        return "VERSION";
    case ASY_CODE_FRAME_TOO_LARGE:
        return "FRAME_TOO_LARGE";
    case ASY_CODE_BATCH_TOO_LARGE:
        return "BATCH_TOO_LARGE";
    case ASY_CODE_SEQ_GAP:
        return "SEQ_GAP";
    case ASY_CODE_NOT_WELCOMED:
        return "NOT_WELCOMED";
    case ASY_CODE_RETRY_LATER:
        return "RETRY_LATER";
    case ASY_CODE_WRONG_AGENT:
        return "WRONG_AGENT";
    case ASY_CODE_SEQ_CONFLICT:
        return "SEQ_CONFLICT";
    case ASY_CODE_EVENT_UNDECODABLE:
        return "EVENT_UNDECODABLE";
    case ASY_CODE_EVENT_MISSING_FIELD:
        return "EVENT_MISSING_FIELD";
    case ASY_CODE_EVENT_INVALID_FIELD:
        return "EVENT_INVALID_FIELD";
    case ASY_CODE_EVENT_UNKNOWN_KIND:
        return "EVENT_UNKNOWN_KIND";
    case ASY_CODE_EVENT_SEQ_MISMATCH:
        return "EVENT_SEQ_MISMATCH";
    case ASY_CODE_EVENT_WRONG_SITE:
        return "EVENT_WRONG_SITE";
    case ASY_CODE_EVENT_SCHEMA_TOO_NEW:
        return "EVENT_SCHEMA_TOO_NEW";
    case ASY_CODE_EVENT_TOO_LARGE:
        return "EVENT_TOO_LARGE";
    default:
        return "UNKNOWN";
    }
}

/* ---------------------------------------------------------------------------------------------
   Identifiers. */

void asy_uuid_format(const uint8_t bytes[16], char out[ASY_UUID_TEXT + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t at = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[at++] = '-';
        out[at++] = hex[bytes[i] >> 4];
        out[at++] = hex[bytes[i] & 15];
    }
    out[at] = '\0';
}

void asy_uuid_v7(char out[ASY_UUID_TEXT + 1])
{
    if (sodium_init() < 0) {
        // libsodium cannot work without a random source; there is nothing safer to do
        abort();
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    // RFC 9562 method 3: the 12 rand_a bits carry the sub-millisecond fraction, so ids made
    // in one process sort by time to about 250 ns
    uint32_t fraction = (uint32_t)(((uint64_t)now.tv_nsec % 1000000u) * 4096u / 1000000u);
    uint8_t bytes[16];
    randombytes_buf(bytes + 8, 8);
    for (int i = 0; i < 6; i++)
        bytes[i] = (uint8_t)(ms >> (40 - 8 * i));
    bytes[6] = (uint8_t)(0x70 | (fraction >> 8));
    bytes[7] = (uint8_t)(fraction & 0xff);
    bytes[8] = (uint8_t)(0x80 | (bytes[8] & 0x3f));
    asy_uuid_format(bytes, out);
}

static bool s_is_hex(char c, bool lower_only)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (!lower_only && c >= 'A' && c <= 'F');
}

bool asy_uuid_valid(const char *text)
{
    if (!text || strlen(text) != ASY_UUID_TEXT)
        return false;
    for (int i = 0; i < ASY_UUID_TEXT; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? text[i] != '-' : !s_is_hex(text[i], false))
            return false;
    }
    return true;
}

bool asy_endpoint_check(const char *text, bool bind, char *why, size_t why_size)
{
    char ignored[8];
    if (!why) {
        why = ignored;
        why_size = sizeof ignored;
    }
    if (!text || (strncmp(text, "tcp://", 6) != 0 && strncmp(text, "ipc://", 6) != 0)) {
        snprintf(why, why_size, "must start with tcp:// or ipc://");
        return false;
    }
    if (strncmp(text, "ipc://", 6) == 0) {
        if (!text[6])
            snprintf(why, why_size, "needs a path after ipc://");
        return text[6] != '\0';
    }
    /* tcp://[SOURCE;]HOST:PORT: libzmq would take a port of 99999 modulo 65536, or 5570x
       as 5570, and a missing host as a lookup that fails on every attempt */
    const char *source_end = strrchr(text, ';');
    const char *address = source_end ? source_end + 1 : text + 6;
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address) {
        snprintf(why, why_size, "needs a host and a port (tcp://HOST:PORT)");
        return false;
    }
    const char *port = colon + 1;
    if (bind && (strcmp(port, "*") == 0 || strcmp(port, "0") == 0))
        return true;
    size_t digits = strspn(port, "0123456789");
    long number = digits > 0 && digits <= 5 && !port[digits] ? strtol(port, NULL, 10) : -1;
    if (number < 1 || number > 65535) {
        snprintf(why, why_size, "has port \"%s\", not a number 1..65535%s", port,
                 bind ? " (or * for any free port)" : "");
        return false;
    }
    return true;
}

bool asy_ipc_in_use(const char *text)
{
    if (!text || strncmp(text, "ipc://", 6) != 0 || text[6] == '@' || text[6] == '\0')
        return false;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(text + 6) >= sizeof address.sun_path)
        return false; /* libzmq refuses it itself */
    memcpy(address.sun_path, text + 6, strlen(text + 6) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool in_use = connect(fd, (struct sockaddr *)&address, sizeof address) == 0;
    close(fd);
    return in_use;
}

bool asy_ipc_bind_refused(const char *endpoint, char *error, size_t error_size)
{
    if (!asy_ipc_in_use(endpoint))
        return false;
    snprintf(error, error_size, "cannot bind %s: another process is listening there", endpoint);
    return true;
}

void asy_bind_failed(const char *endpoint, char *error, size_t error_size)
{
    int code = zmq_errno();
    snprintf(error, error_size, "cannot bind %s: %s%s", endpoint, zmq_strerror(code),
             code == ENODEV && strncmp(endpoint, "tcp://", 6) == 0
                 ? " (a bind takes an IP address, an interface name or *, not a host name)"
                 : "");
}

bool asy_endpoint_valid(const char *text)
{
    return asy_endpoint_check(text, false, NULL, 0);
}

bool asy_id_valid(const char *text)
{
    if (!text)
        return false;
    size_t length = strlen(text);
    return length >= 1 && length <= ASY_ID_MAX &&
           strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
               length;
}

bool asy_pseudonym_valid(const char *text)
{
    if (!text || strlen(text) != ASY_PSEUDONYM_HEX)
        return false;
    for (int i = 0; i < ASY_PSEUDONYM_HEX; i++)
        if (!s_is_hex(text[i], true))
            return false;
    return true;
}

bool asy_legal_status_qualifies(int legal_status)
{
    switch (legal_status) {
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_02_S2:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_03_S3:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_07_S35:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_08_S36:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_09_S37_41:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_10_S37:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_12_S38:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_13_S44:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_14_S46:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_15_S47_49:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_16_S47:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_17_S48_49:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_18_S48:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_35_S7_GUARDIANSHIP:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_36_S37_GUARDIANSHIP:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_37_S45A:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_38_S45A_LIMITED:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_CTO_S17A:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_CONDITIONAL_DISCHARGE:
    case ADVSYNC__V1__LEGAL_STATUS__LEGAL_S57_TREATMENT_DISCUSSED:
        return true;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------------------------------------
   Events: life cycle, bytes and JSON. */

static asy_event_t *s_event_wrap(Advsync__V1__Event *message)
{
    asy_event_t *self = calloc(1, sizeof *self);
    if (!self) {
        protobuf_c_message_free_unpacked(&message->base, NULL);
        return NULL;
    }
    self->message = message;
    return self;
}

int asy_event_decode(const uint8_t *data, size_t size, asy_event_t **out)
{
    *out = NULL;
    static const uint8_t empty[1] = {0};
    Advsync__V1__Event *message = advsync__v1__event__unpack(NULL, size, data ? data : empty);
    if (!message)
        return ASY_EPROTO;
    *out = s_event_wrap(message);
    return *out ? 0 : ASY_ENOMEM;
}

int asy_event_encode(const asy_event_t *self, uint8_t **data, size_t *size)
{
    size_t length = protobuf_c_message_get_packed_size(&self->message->base);
    uint8_t *buffer = malloc(length ? length : 1);
    if (!buffer)
        return ASY_ENOMEM;
    protobuf_c_message_pack(&self->message->base, buffer);
    *data = buffer;
    *size = length;
    return 0;
}

int asy_event_content_digest(asy_event_t *self, uint8_t digest[ASY_EVENT_DIGEST_BYTES])
{
    Advsync__V1__Event *m = self->message;
    /* set aside what asy_event_stamp owns, encode the rest, put them back */
    char *site_id = m->site_id, *agent_id = m->agent_id;
    Advsync__V1__Timestamp *recorded_at = m->recorded_at;
    protobuf_c_boolean has_epoch = m->has_epoch, has_seq = m->has_seq,
                       has_version = m->has_schema_version;
    m->site_id = m->agent_id = NULL;
    m->recorded_at = NULL;
    m->has_epoch = m->has_seq = m->has_schema_version = 0;
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = asy_event_encode(self, &data, &size);
    m->site_id = site_id;
    m->agent_id = agent_id;
    m->recorded_at = recorded_at;
    m->has_epoch = has_epoch;
    m->has_seq = has_seq;
    m->has_schema_version = has_version;
    if (rc != 0)
        return rc;
    crypto_generichash(digest, ASY_EVENT_DIGEST_BYTES, data, size, NULL, 0);
    free(data);
    return 0;
}

void asy_event_destroy(asy_event_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    protobuf_c_message_free_unpacked(&(*self_p)->message->base, NULL);
    free(*self_p);
    *self_p = NULL;
}

int asy_event_from_json(json_t *object, asy_event_t **out, char *error, size_t error_size)
{
    *out = NULL;
    if (!json_is_object(object)) {
        if (error && error_size)
            snprintf(error, error_size, "an event must be a JSON object");
        return ASY_EINVAL;
    }
    ProtobufCMessage *message = NULL;
    int rc =
        asy_json_to_message(object, &advsync__v1__event__descriptor, &message, error, error_size);
    if (rc)
        return rc;
    *out = s_event_wrap((Advsync__V1__Event *)message);
    return *out ? 0 : ASY_ENOMEM;
}

char *asy_event_to_json(const asy_event_t *self)
{
    json_t *value = asy_json_from_message(&self->message->base);
    if (!value)
        return NULL;
    char *text = json_dumps(value, JSON_COMPACT);
    json_decref(value);
    return text;
}

static int s_set_string(char **field, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return ASY_ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

int asy_event_set_case_id(asy_event_t *self, const char *case_id)
{
    return s_set_string(&self->message->case_id, case_id);
}

int asy_event_set_person_key(asy_event_t *self, const char *person_key)
{
    return s_set_string(&self->message->person_key, person_key);
}

const char *asy_event_id(const asy_event_t *self)
{
    return self->message->event_id;
}

void asy_event_renumber(asy_event_t *self, uint64_t epoch, uint64_t seq)
{
    Advsync__V1__Event *message = self->message;
    message->has_epoch = message->has_seq = 1;
    message->epoch = epoch;
    message->seq = seq;
}

int asy_event_stamp(asy_event_t *self, const char *site_id, const char *agent_id, uint64_t epoch,
                    uint64_t seq)
{
    Advsync__V1__Event *message = self->message;
    if (s_set_string(&message->site_id, site_id) || s_set_string(&message->agent_id, agent_id))
        return ASY_ENOMEM;
    message->has_epoch = message->has_seq = message->has_schema_version = 1;
    message->epoch = epoch;
    message->seq = seq;
    message->schema_version = ASY_SCHEMA_VERSION;
    if (!message->recorded_at) {
        Advsync__V1__Timestamp *stamp = malloc(sizeof *stamp);
        if (!stamp)
            return ASY_ENOMEM;
        advsync__v1__timestamp__init(stamp);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        stamp->has_seconds = 1;
        stamp->seconds = now.tv_sec;
        // microseconds are what the centre keeps
        stamp->nanos = (int32_t)(now.tv_nsec / 1000 * 1000);
        stamp->has_nanos = stamp->nanos != 0;
        message->recorded_at = stamp;
    }
    if (!message->event_id || !message->event_id[0]) {
        char uuid[ASY_UUID_TEXT + 1];
        asy_uuid_v7(uuid);
        if (s_set_string(&message->event_id, uuid))
            return ASY_ENOMEM;
    }
    return 0;
}

/* Counts unknown fields in a message and every message inside it. */
static size_t s_unknown_fields(const ProtobufCMessage *message)
{
    if (!message)
        return 0;
    size_t count = message->n_unknown_fields;
    const ProtobufCMessageDescriptor *desc = message->descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        if (field->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)message;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + field->quantifier_offset);
            ProtobufCMessage *const *items =
                *(ProtobufCMessage *const *const *)(base + field->offset);
            for (size_t j = 0; j < n; j++)
                count += s_unknown_fields(items[j]);
        } else if (!(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
                   *(const uint32_t *)(base + field->quantifier_offset) == field->id) {
            count += s_unknown_fields(*(ProtobufCMessage *const *)(base + field->offset));
        }
    }
    return count;
}

bool asy_event_has_unknown_fields(const asy_event_t *self)
{
    return s_unknown_fields(&self->message->base) > 0;
}

/* ---------------------------------------------------------------------------------------------
   Validation. */

static int s_refuse(asy_check_t *why, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int s_refuse(asy_check_t *why, int code, const char *format, ...)
{
    if (why) {
        why->code = code;
        va_list args;
        va_start(args, format);
        vsnprintf(why->reason, sizeof why->reason, format, args);
        va_end(args);
        /* Reasons quote untrusted values and end up in a UTF-8 text column, a log line and
           an ACK: keep them printable ASCII, so a stray byte (or a multi-byte character cut by
           a precision) cannot make the quarantine write itself fail. */
        for (char *c = why->reason; *c; c++)
            if (*c < 0x20 || *c > 0x7e)
                *c = '?';
    }
    return ASY_EINVAL;
}

static int s_check_time(const Advsync__V1__Timestamp *stamp, const char *name, asy_check_t *why)
{
    if (stamp->has_nanos && (stamp->nanos < 0 || stamp->nanos > 999999999))
        return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                        "%s.nanos: %" PRId32 " is outside 0..999999999", name, stamp->nanos);
    bool early = stamp->seconds < S_MIN_OCCURRED;
    if (!early && stamp->seconds <= (int64_t)time(NULL) + S_MAX_AHEAD)
        return 0;
    char text[ASY_TIMESTAMP_TEXT] = "?"; /* written only for a refusal: this runs per event */
    asy_json_format_timestamp(stamp->seconds, stamp->nanos, text);
    return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                    early ? "%s: %s is before 2000-01-01"
                          : "%s: %s is more than 2 days in the future",
                    name, text);
}

static int s_check_envelope(const Advsync__V1__Event *m, asy_check_t *why)
{
    const int missing = ASY_CODE_EVENT_MISSING_FIELD, invalid = ASY_CODE_EVENT_INVALID_FIELD;
    char shown[70 + 4]; /* a value quoted: NHS numbers masked before the cut */
    if (!m->event_id)
        return s_refuse(why, missing, "event_id: required");
    if (!asy_uuid_valid(m->event_id))
        return s_refuse(why, invalid, "event_id: \"%s\" is not a canonical UUID",
                        asy_nhs_number_shown(m->event_id, 40, shown, sizeof shown));
    /* versions (case_fold.c) order events by occurred_at, then event_id: one id shared by
       different events would make the merge depend on arrival order */
    if (strcmp(m->event_id, "00000000-0000-0000-0000-000000000000") == 0)
        return s_refuse(why, invalid, "event_id: the nil UUID names no event");
    if (!m->has_schema_version)
        return s_refuse(why, missing, "schema_version: required");
    if (m->schema_version == 0)
        return s_refuse(why, invalid, "schema_version: must be at least 1");
    if (!m->site_id)
        return s_refuse(why, missing, "site_id: required");
    if (!asy_id_valid(m->site_id))
        return s_refuse(why, invalid, "site_id: \"%s\" is not [A-Za-z0-9._-]{1,64}",
                        asy_nhs_number_shown(m->site_id, 70, shown, sizeof shown));
    if (!m->agent_id)
        return s_refuse(why, missing, "agent_id: required");
    if (!asy_id_valid(m->agent_id))
        return s_refuse(why, invalid, "agent_id: \"%s\" is not [A-Za-z0-9._-]{1,64}",
                        asy_nhs_number_shown(m->agent_id, 70, shown, sizeof shown));
    if (!m->has_epoch)
        return s_refuse(why, missing, "epoch: required");
    if (m->epoch == 0)
        return s_refuse(why, invalid, "epoch: must be at least 1");
    if (!m->has_seq)
        return s_refuse(why, missing, "seq: required");
    if (m->seq == 0)
        return s_refuse(why, invalid, "seq: must be at least 1");
    if (!m->case_id)
        return s_refuse(why, missing, "case_id: required");
    if (!asy_pseudonym_valid(m->case_id))
        return s_refuse(why, invalid, "case_id: not 64 lowercase hex digits (a case pseudonym)");
    if (m->person_key && !asy_pseudonym_valid(m->person_key))
        return s_refuse(why, invalid,
                        "person_key: not 64 lowercase hex digits (a person pseudonym)");
    if (!m->occurred_at)
        return s_refuse(why, missing, "occurred_at: required");
    int rc = s_check_time(m->occurred_at, "occurred_at", why);
    if (rc == 0 && m->recorded_at)
        rc = s_check_time(m->recorded_at, "recorded_at", why);
    return rc;
}

static int s_check_body_present(const Advsync__V1__Event *m, asy_check_t *why)
{
    if (m->body_case != ADVSYNC__V1__EVENT__BODY__NOT_SET &&
        asy_kind_name((int)m->body_case) != NULL)
        return 0;
    if (m->base.n_unknown_fields == 0)
        return s_refuse(why, ASY_CODE_EVENT_UNKNOWN_KIND, "no event body");
    char numbers[160] = "";
    size_t used = 0;
    for (unsigned i = 0; i < m->base.n_unknown_fields && used + 12 < sizeof numbers; i++) {
        uint32_t tag = m->base.unknown_fields[i].tag;
        bool again = false;
        for (unsigned j = 0; j < i; j++)
            again = again || m->base.unknown_fields[j].tag == tag;
        if (!again)
            used += (size_t)snprintf(numbers + used, sizeof numbers - used, "%s%" PRIu32,
                                     used ? ", " : "", tag);
    }
    return s_refuse(why, ASY_CODE_EVENT_UNKNOWN_KIND,
                    "no event body; field numbers %s are unknown to schema version %d", numbers,
                    ASY_SCHEMA_VERSION);
}

/* MISSING_FIELD unless present and, for enums, not *_NOT_RECORDED. */
static int s_require(bool present, int kind, const char *field, asy_check_t *why)
{
    if (present)
        return 0;
    return s_refuse(why, ASY_CODE_EVENT_MISSING_FIELD, "%s.%s: required for %s", s_kind_field(kind),
                    field, asy_kind_name(kind));
}

static int s_check_required(const Advsync__V1__Event *m, asy_check_t *why)
{
    int kind = (int)m->body_case;
    int rc = 0;
    switch (m->body_case) {
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_RECEIVED:
        rc = s_require(m->referral_received->has_service && m->referral_received->service != 0,
                       kind, "service", why);
        break;
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_ELIGIBILITY_DECIDED:
        rc = s_require(m->referral_eligibility_decided->has_eligible, kind, "eligible", why);
        break;
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_DECLINED:
        rc = s_require(m->referral_declined->has_decline_reason &&
                           m->referral_declined->decline_reason != 0,
                       kind, "decline_reason", why);
        break;
    case ADVSYNC__V1__EVENT__BODY_QUALIFYING_STARTED:
    case ADVSYNC__V1__EVENT__BODY_QUALIFYING_CHANGED: {
        const Advsync__V1__Qualifying *q =
            kind == ASY_KIND_QUALIFYING_STARTED ? m->qualifying_started : m->qualifying_changed;
        rc = s_require(q->has_legal_status && q->legal_status != 0, kind, "legal_status", why);
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_CASE_CLOSED:
        rc = s_require(m->case_closed->has_closure_reason && m->case_closed->closure_reason != 0,
                       kind, "closure_reason", why);
        break;
    case ADVSYNC__V1__EVENT__BODY_OUTCOME_RECORDED: {
        const Advsync__V1__OutcomeRecorded *o = m->outcome_recorded;
        rc = s_require(o->has_framework && o->framework != 0, kind, "framework", why);
        if (rc == 0)
            rc = s_require(o->has_area && o->area != 0, kind, "area", why);
        if (rc == 0)
            rc = s_require(o->has_score, kind, "score", why);
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_OUT_SENT:
        rc = s_require(m->referral_out_sent->partner_id != NULL, kind, "partner_id", why);
        break;
    case ADVSYNC__V1__EVENT__BODY_PERSON_EQUALITY_OPTOUT:
        rc = s_require(m->person_equality_optout->effective_date != NULL, kind, "effective_date",
                       why);
        break;
    default:
        break;
    }
    return rc;
}

/* Walks every field of a message (snake_case path in path[]): enum numbers must be values of
   their enum, strings UTF-8 and short, Dates real dates, Timestamps in range. */
static int s_check_values(const ProtobufCMessage *message, char *path, size_t path_size,
                          asy_check_t *why);

/* True unless the field is one of the envelope's identifiers, which have a syntax of their
   own (a pseudonym's hex may hold ten digits by chance). */
static bool s_free_text(const char *name)
{
    static const char *const ids[] = {"event_id", "case_id", "person_key", "site_id", "agent_id"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (strcmp(name, ids[i]) == 0)
            return false;
    return true;
}

static int s_check_value(const ProtobufCFieldDescriptor *field, const void *member, char *path,
                         size_t path_size, asy_check_t *why)
{
    const int invalid = ASY_CODE_EVENT_INVALID_FIELD;
    if (field->type == PROTOBUF_C_TYPE_ENUM) {
        const ProtobufCEnumDescriptor *desc = field->descriptor;
        int number = *(const int *)member;
        if (!protobuf_c_enum_descriptor_get_value(desc, number))
            return s_refuse(why, invalid, "%s: %d is not a value of %s", path, number, desc->name);
    } else if (field->type == PROTOBUF_C_TYPE_STRING) {
        const char *text = *(char *const *)member;
        if (!text)
            return 0;
        size_t length = strlen(text);
        size_t limit = strcmp(field->name, "goals") == 0 ? S_GOAL_MAX : S_STRING_MAX;
        if (length > limit)
            return s_refuse(why, invalid, "%s: %zu bytes is longer than %zu", path, length, limit);
        if (!asy_json_utf8_valid(text, length))
            return s_refuse(why, invalid, "%s: not valid UTF-8", path);
        if (s_free_text(field->name) && asy_nhs_number_find(text, NULL, NULL)) {
            /* the agent refuses these; another implementation may not: the centre keeps no
               direct identifier, not even in quarantine */
            why->identifying = true;
            return s_refuse(why, invalid,
                            "%s: holds what reads as an NHS number; free text must not carry "
                            "one (the event's bytes are not kept)",
                            path);
        }
    } else if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
        return s_check_values(*(ProtobufCMessage *const *)member, path, path_size, why);
    }
    return 0;
}

static int s_check_well_known(const ProtobufCMessage *message, const char *path, asy_check_t *why)
{
    const char *name = message->descriptor->name;
    if (strcmp(name, "advsync.v1.Date") == 0) {
        const Advsync__V1__Date *date = (const Advsync__V1__Date *)message;
        if (!asy_json_date_valid(date->year, date->month, date->day))
            return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                            "%s: %04" PRId32 "-%02" PRId32 "-%02" PRId32 " is not a calendar date",
                            path, date->year, date->month, date->day);
    } else if (strcmp(name, "advsync.v1.Timestamp") == 0) {
        const Advsync__V1__Timestamp *stamp = (const Advsync__V1__Timestamp *)message;
        if (!asy_json_timestamp_valid(stamp->seconds, stamp->nanos))
            return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                            "%s: seconds %" PRId64 " / nanos %" PRId32 " is not a time in years "
                            "1..9999",
                            path, stamp->seconds, stamp->nanos);
    }
    return 0;
}

/* path[mark..] = ".name" (no dot at the start), then "[index]" if index >= 0; truncated to
   fit. Without snprintf: this runs for every field of every event the broker takes. */
static void s_path_set(char *path, size_t size, size_t mark, const char *name, long index)
{
    char suffix[24] = "";
    if (index >= 0) {
        char digits[20];
        int n = 0;
        do
            digits[n++] = (char)('0' + index % 10);
        while ((index /= 10) > 0 && n < (int)sizeof digits);
        suffix[0] = '[';
        for (int i = 0; i < n; i++)
            suffix[1 + i] = digits[n - 1 - i];
        suffix[1 + n] = ']';
        suffix[2 + n] = '\0';
    }
    const char *parts[] = {mark ? "." : "", name, suffix};
    size_t used = mark;
    for (size_t p = 0; p < 3; p++)
        for (const char *c = parts[p]; *c && used + 1 < size; c++)
            path[used++] = *c;
    path[used < size ? used : size - 1] = '\0';
}

static int s_check_values(const ProtobufCMessage *message, char *path, size_t path_size,
                          asy_check_t *why)
{
    int rc = s_check_well_known(message, path, why);
    const ProtobufCMessageDescriptor *desc = message->descriptor;
    size_t mark = strlen(path);
    for (unsigned i = 0; rc == 0 && i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        const char *base = (const char *)message;
        const void *member = base + field->offset;
        size_t count = 1;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(base + field->quantifier_offset);
            member = *(const void *const *)member;
        } else if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + field->quantifier_offset) != field->id)
                continue;
        } else if (field->type != PROTOBUF_C_TYPE_STRING &&
                   field->type != PROTOBUF_C_TYPE_MESSAGE) {
            if (!*(const protobuf_c_boolean *)(base + field->quantifier_offset))
                continue;
        }
        if ((field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE) &&
            field->label != PROTOBUF_C_LABEL_REPEATED && !*(const void *const *)member)
            continue;
        size_t size = field->type == PROTOBUF_C_TYPE_ENUM ? sizeof(int) : sizeof(void *);
        for (size_t j = 0; rc == 0 && j < count; j++) {
            s_path_set(path, path_size, mark, field->name,
                       field->label == PROTOBUF_C_LABEL_REPEATED ? (long)j : -1);
            rc = s_check_value(field, (const char *)member + j * size, path, path_size, why);
        }
        path[mark] = '\0';
    }
    return rc;
}

static int s_check_ranges(const Advsync__V1__Event *m, asy_check_t *why)
{
    const int invalid = ASY_CODE_EVENT_INVALID_FIELD;
    if (m->body_case == ADVSYNC__V1__EVENT__BODY_OUTCOME_RECORDED) {
        int32_t score = m->outcome_recorded->score;
        if (score < 1 || score > 10)
            return s_refuse(why, invalid, "outcome_recorded.score: %" PRId32 " is outside 1..10",
                            score);
    }
    if (m->body_case == ADVSYNC__V1__EVENT__BODY_ACTIVITY_LOGGED) {
        const Advsync__V1__ActivityLogged *a = m->activity_logged;
        if (a->has_minutes && (a->minutes < 0 || a->minutes > S_MINUTES_MAX))
            return s_refuse(why, invalid, "activity_logged.minutes: %" PRId32 " is outside 0..%d",
                            a->minutes, S_MINUTES_MAX);
        if (a->has_travel_minutes && (a->travel_minutes < 0 || a->travel_minutes > S_MINUTES_MAX))
            return s_refuse(why, invalid,
                            "activity_logged.travel_minutes: %" PRId32 " is outside 0..%d",
                            a->travel_minutes, S_MINUTES_MAX);
    }
    return 0;
}

int asy_event_validate(const asy_event_t *self, asy_check_t *why)
{
    if (why) {
        why->code = ASY_CODE_NONE;
        why->reason[0] = '\0';
    }
    const Advsync__V1__Event *m = self->message;
    int rc = s_check_envelope(m, why);
    if (rc == 0)
        rc = s_check_body_present(m, why);
    if (rc == 0)
        rc = s_check_required(m, why);
    if (rc == 0)
        rc = s_check_ranges(m, why);
    if (rc == 0) {
        char path[256] = "";
        rc = s_check_values(&m->base, path, sizeof path, why);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
   Summary. */

/* Microseconds since 1970, saturating (the wire can carry any seconds). */
static int64_t s_micros(const Advsync__V1__Timestamp *stamp)
{
    if (!stamp)
        return 0;
    const int64_t limit = INT64_MAX / 1000000 - 1;
    int64_t seconds = stamp->seconds > limit    ? limit
                      : stamp->seconds < -limit ? -limit
                                                : stamp->seconds;
    return seconds * 1000000 + stamp->nanos / 1000;
}

static void s_copy(char *out, size_t size, const char *text)
{
    snprintf(out, size, "%s", text ? text : "");
}

static void s_summarise_profile(const Advsync__V1__PersonProfile *p, asy_event_summary_t *out)
{
    out->ethnicity_ons = p->has_ons2021_ethnicity ? (int)p->ons2021_ethnicity : 0;
    out->nhs_ethnic = p->has_nhs_ethnic_category ? (int)p->nhs_ethnic_category : 0;
    out->sex = p->has_sex ? (int)p->sex : 0;
    out->gender = p->has_gender ? (int)p->gender : 0;
    out->age_band = p->has_age_band ? (int)p->age_band : 0;
    out->disability = p->has_disability ? (int)p->disability : 0;
    out->religion = p->has_religion ? (int)p->religion : 0;
    out->sexual_orientation = p->has_sexual_orientation ? (int)p->sexual_orientation : 0;
}

static bool s_left_before_goals(int reason)
{
    return reason == ADVSYNC__V1__CLOSURE_REASON__CLOSURE_WITHDREW ||
           reason == ADVSYNC__V1__CLOSURE_REASON__CLOSURE_DISENGAGED ||
           reason == ADVSYNC__V1__CLOSURE_REASON__CLOSURE_UNABLE_TO_CONTACT ||
           reason == ADVSYNC__V1__CLOSURE_REASON__CLOSURE_MOVED;
}

static void s_summarise_body(const Advsync__V1__Event *m, asy_event_summary_t *out)
{
    switch (m->body_case) {
    case ADVSYNC__V1__EVENT__BODY_PERSON_PROFILE_RECORDED:
        s_summarise_profile(m->person_profile_recorded, out);
        break;
    case ADVSYNC__V1__EVENT__BODY_PERSON_PROFILE_UPDATED:
        s_summarise_profile(m->person_profile_updated, out);
        break;
    case ADVSYNC__V1__EVENT__BODY_QUALIFYING_STARTED:
    case ADVSYNC__V1__EVENT__BODY_QUALIFYING_CHANGED:
    case ADVSYNC__V1__EVENT__BODY_QUALIFYING_ENDED: {
        const Advsync__V1__Qualifying *q =
            m->body_case == ADVSYNC__V1__EVENT__BODY_QUALIFYING_STARTED   ? m->qualifying_started
            : m->body_case == ADVSYNC__V1__EVENT__BODY_QUALIFYING_CHANGED ? m->qualifying_changed
                                                                          : m->qualifying_ended;
        out->legal_status = q->has_legal_status ? (int)q->legal_status : 0;
        out->qualifying = asy_legal_status_qualifies(out->legal_status);
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_RECEIVED: {
        const Advsync__V1__ReferralReceived *r = m->referral_received;
        out->service = r->has_service ? (int)r->service : 0;
        out->source = r->has_source ? (int)r->source : 0;
        for (size_t i = 0; i < r->n_reasons; i++)
            if (r->reasons[i] > 0 && r->reasons[i] < 31)
                out->reasons |= 1u << r->reasons[i];
        out->received_at_us = r->received_at ? s_micros(r->received_at) : out->occurred_at_us;
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_ELIGIBILITY_DECIDED: {
        const Advsync__V1__EligibilityDecided *e = m->referral_eligibility_decided;
        out->eligible = e->has_eligible ? (e->eligible ? 1 : 0) : -1;
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_DECLINED:
        out->decline_reason = m->referral_declined->has_decline_reason
                                  ? (int)m->referral_declined->decline_reason
                                  : 0;
        break;
    case ADVSYNC__V1__EVENT__BODY_CASE_CLOSED: {
        const Advsync__V1__CaseClosed *c = m->case_closed;
        out->closure_reason = c->has_closure_reason ? (int)c->closure_reason : 0;
        out->left_before_goals = c->has_left_before_goals
                                     ? c->left_before_goals != 0
                                     : s_left_before_goals(out->closure_reason);
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_OUTCOME_RECORDED: {
        const Advsync__V1__OutcomeRecorded *o = m->outcome_recorded;
        out->outcome_framework = o->has_framework ? (int)o->framework : 0;
        out->outcome_area = o->has_area ? (int)o->area : 0;
        out->outcome_score = o->has_score ? o->score : 0;
        out->outcome_edition = o->has_edition ? o->edition : 0;
        break;
    }
    default:
        break;
    }
}

void asy_event_summarise(const asy_event_t *self, asy_event_summary_t *out)
{
    const Advsync__V1__Event *m = self->message;
    memset(out, 0, sizeof *out);
    out->eligible = -1;
    s_copy(out->event_id, sizeof out->event_id, m->event_id);
    out->schema_version = m->has_schema_version ? m->schema_version : 0;
    s_copy(out->site_id, sizeof out->site_id, m->site_id);
    s_copy(out->agent_id, sizeof out->agent_id, m->agent_id);
    out->epoch = m->has_epoch ? m->epoch : 0;
    out->seq = m->has_seq ? m->seq : 0;
    s_copy(out->case_id, sizeof out->case_id, m->case_id);
    s_copy(out->person_key, sizeof out->person_key, m->person_key);
    out->occurred_at_us = s_micros(m->occurred_at);
    out->recorded_at_us = s_micros(m->recorded_at);
    out->kind = asy_kind_name((int)m->body_case) ? (int)m->body_case : ASY_KIND_NONE;
    s_summarise_body(m, out);
}
