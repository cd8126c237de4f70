/*  codec_validate.c: an event checked against the schema's rules (see asy_event_validate in
    codec.h): envelope, body, kind-specific required fields, ranges, and every value of every
    field. The broker runs it for every event it takes.  */
#include "codec_private.h"

#include "json.h"
#include "pseudonym.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define S_MIN_OCCURRED 946684800LL /* 2000-01-01T00:00:00Z */
#define S_MAX_AHEAD (2LL * 86400)  /* how far ahead of our clock an event may be */
#define S_STRING_MAX 256
#define S_GOAL_MAX 512
#define S_MINUTES_MAX 1440

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
    char text[ASY_TIMESTAMP_TEXT]; /* written only for a refusal: this runs per event */
    if (asy_json_format_timestamp(stamp->seconds, stamp->nanos, text) != 0)
        /* beyond year 9999 (or before year 1): no date to show, so the seconds */
        snprintf(text, sizeof text, "%" PRId64 " s", stamp->seconds);
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
    if (m->schema_version > INT32_MAX) /* the centre keeps it as integer */
        return s_refuse(why, invalid, "schema_version: %" PRIu32 " is over 2147483647",
                        m->schema_version);
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
    return s_refuse(why, ASY_CODE_EVENT_MISSING_FIELD, "%s.%s: required for %s",
                    asy_kind_field(kind), field, asy_kind_name(kind));
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
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_OUT_SENT: {
        /* the partner the referral is for: an empty or blank name names nobody */
        const char *partner = m->referral_out_sent->partner_id;
        rc = s_require(partner != NULL, kind, "partner_id", why);
        if (rc == 0 && partner[strspn(partner, " \t\r\n")] == '\0')
            rc = s_refuse(why, ASY_CODE_EVENT_MISSING_FIELD,
                          "%s.partner_id: required for %s (it"
                          " is blank)",
                          asy_kind_field(kind), asy_kind_name(kind));
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_PERSON_EQUALITY_OPTOUT:
        rc = s_require(m->person_equality_optout->effective_date != NULL, kind, "effective_date",
                       why);
        break;
    default:
        break;
    }
    return rc;
}

/* Where a value sits: its field's name, its index if the field is repeated (else -1), and
   the path of the message that holds it (NULL at the top). The text ("referral_received.
   reasons[1]") is made only for a refusal: the walk visits every field of every event. */
typedef struct s_path {
    const struct s_path *parent;
    const char *name;
    long index;
} s_path_t;

#define S_PATH_TEXT 256

static void s_path_put(const s_path_t *path, char *out, size_t *used)
{
    if (!path)
        return;
    s_path_put(path->parent, out, used);
    char suffix[24] = "";
    if (path->index >= 0)
        snprintf(suffix, sizeof suffix, "[%ld]", path->index);
    const char *parts[] = {*used ? "." : "", path->name, suffix};
    for (size_t p = 0; p < 3; p++)
        for (const char *c = parts[p]; *c && *used + 1 < S_PATH_TEXT; c++)
            out[(*used)++] = *c;
}

/* path as text, e.g. "occurred_at.nanos"; truncated to fit. Returns out. */
static const char *s_path_text(const s_path_t *path, char out[S_PATH_TEXT])
{
    size_t used = 0;
    s_path_put(path, out, &used);
    out[used] = '\0';
    return out;
}

/* Walks every field of a message: enum numbers must be values of their enum, strings UTF-8
   and short, Dates real dates, Timestamps in range. */
static int s_check_values(const ProtobufCMessage *message, const s_path_t *path, asy_check_t *why);

/* True unless the field is one of the envelope's identifiers, which have a syntax of their
   own (a pseudonym's hex may hold ten digits by chance). One strcmp at most: this runs for
   every string of every event the broker takes. */
static bool s_free_text(const char *name)
{
    const char *id;
    switch (name[0]) {
    case 'e':
        id = "event_id";
        break;
    case 'c':
        id = "case_id";
        break;
    case 'p':
        id = "person_key";
        break;
    case 's':
        id = "site_id";
        break;
    case 'a':
        id = "agent_id";
        break;
    default:
        return true;
    }
    return strcmp(name, id) != 0;
}

static int s_check_value(const ProtobufCFieldDescriptor *field, const void *member,
                         const s_path_t *path, asy_check_t *why)
{
    const int invalid = ASY_CODE_EVENT_INVALID_FIELD;
    char where[S_PATH_TEXT];
    if (field->type == PROTOBUF_C_TYPE_ENUM) {
        const ProtobufCEnumDescriptor *desc = field->descriptor;
        int number = *(const int *)member;
        if (!protobuf_c_enum_descriptor_get_value(desc, number))
            return s_refuse(why, invalid, "%s: %d is not a value of %s", s_path_text(path, where),
                            number, desc->name);
    } else if (field->type == PROTOBUF_C_TYPE_STRING) {
        const char *text = *(char *const *)member;
        if (!text)
            return 0;
        size_t length = strlen(text);
        size_t limit =
            field->name[0] == 'g' && strcmp(field->name, "goals") == 0 ? S_GOAL_MAX : S_STRING_MAX;
        if (length > limit)
            return s_refuse(why, invalid, "%s: %zu bytes is longer than %zu",
                            s_path_text(path, where), length, limit);
        if (!asy_json_utf8_valid(text, length))
            return s_refuse(why, invalid, "%s: not valid UTF-8", s_path_text(path, where));
        if (s_free_text(field->name) && asy_nhs_number_find(text, NULL, NULL)) {
            /* the agent refuses these; another implementation may not: the centre keeps no
               direct identifier, not even in quarantine */
            if (why)
                why->identifying = true;
            return s_refuse(why, invalid,
                            "%s: holds what reads as an NHS number; free text must not carry "
                            "one (the event's bytes are not kept)",
                            s_path_text(path, where));
        }
    } else if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
        return s_check_values(*(ProtobufCMessage *const *)member, path, why);
    }
    return 0;
}

static int s_check_well_known(const ProtobufCMessage *message, const s_path_t *path,
                              asy_check_t *why)
{
    char text[S_PATH_TEXT];
    /* by descriptor, not by name: each message of each event comes through here */
    const ProtobufCMessageDescriptor *desc = message->descriptor;
    if (desc == &advsync__v1__date__descriptor) {
        const Advsync__V1__Date *date = (const Advsync__V1__Date *)message;
        if (!asy_json_date_valid(date->year, date->month, date->day))
            return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                            "%s: %04" PRId32 "-%02" PRId32 "-%02" PRId32 " is not a calendar date",
                            s_path_text(path, text), date->year, date->month, date->day);
    } else if (desc == &advsync__v1__timestamp__descriptor) {
        const Advsync__V1__Timestamp *stamp = (const Advsync__V1__Timestamp *)message;
        if (!asy_json_timestamp_valid(stamp->seconds, stamp->nanos))
            return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                            "%s: seconds %" PRId64 " / nanos %" PRId32 " is not a time in years "
                            "1..9999",
                            s_path_text(path, text), stamp->seconds, stamp->nanos);
    }
    return 0;
}

static int s_check_values(const ProtobufCMessage *message, const s_path_t *path, asy_check_t *why)
{
    int rc = s_check_well_known(message, path, why);
    const ProtobufCMessageDescriptor *desc = message->descriptor;
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
            s_path_t here = {path, field->name,
                             field->label == PROTOBUF_C_LABEL_REPEATED ? (long)j : -1};
            rc = s_check_value(field, (const char *)member + j * size, &here, why);
        }
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
        /* the centre keeps readings per edition in a smallint: 65539 would have merged into
           edition 3's series (or, with both in one batch, failed the batch for good) */
        int32_t edition = m->outcome_recorded->edition;
        if (m->outcome_recorded->has_edition && edition != 3 && edition != 4)
            return s_refuse(why, invalid,
                            "outcome_recorded.edition: %" PRId32
                            " is not a Recovery Star edition (3 or 4)",
                            edition);
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
        why->identifying = false;
    }
    const Advsync__V1__Event *m = self->message;
    if (self->nul_field[0]) {
        /* what follows the NUL escapes every check below, an NHS number included: the
           centre keeps no bytes it could not look at */
        if (why)
            why->identifying = true;
        return s_refuse(why, ASY_CODE_EVENT_INVALID_FIELD,
                        "%s: holds a NUL byte (text after it would escape every check; the "
                        "event's bytes are not kept)",
                        self->nul_field);
    }
    int rc = s_check_envelope(m, why);
    if (rc == 0)
        rc = s_check_body_present(m, why);
    if (rc == 0)
        rc = s_check_required(m, why);
    if (rc == 0)
        rc = s_check_ranges(m, why);
    if (rc == 0) {
        rc = s_check_values(&m->base, NULL, why);
    }
    return rc;
}
