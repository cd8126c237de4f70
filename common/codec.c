/*  codec.c: events encoded, decoded, stamped and summarised. Their validation is in
    codec_validate.c, kind and code names and identifiers in codec_ids.c, protocol frames in
    frame.c.

    With the codec's other files (codec_*.c, frame.c) and json*.c, the only code that touches
    the protobuf-c types generated from proto/advsync.proto. An asy_event_t wraps one
    Advsync__V1__Event; whether it came from protobuf_c_message_unpack() or from the JSON
    mapper, every part is malloc'ed, so protobuf_c_message_free_unpacked(message, NULL) frees
    it.  */
#include "codec_private.h"
#include "pb_scan.h"

#include "calendar.h"
#include "json.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    if (!*out)
        return ASY_ENOMEM;
    asy_pb_nul_in_string(&advsync__v1__event__descriptor, data, size, (*out)->nul_field,
                         sizeof(*out)->nul_field);
    return 0;
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
   Summary. */

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

/* Microseconds since 1970, saturating (the wire can carry any seconds). */
int64_t asy_codec_micros(const Advsync__V1__Timestamp *stamp)
{
    if (!stamp)
        return 0;
    /* wire values are not trusted: clamped so that seconds * 10^6 plus any int32 nanos / 1000
       (at most 2,147,483) stays inside int64 */
    const int64_t limit = INT64_MAX / 1000000 - 3;
    int64_t seconds = stamp->seconds > limit    ? limit
                      : stamp->seconds < -limit ? -limit
                                                : stamp->seconds;
    return seconds * 1000000 + stamp->nanos / 1000;
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

#define S_EARLIEST_US 946684800000000LL /* 2000-01-01T00:00:00Z, as for occurred_at */
#define S_AHEAD_US 172800000000LL       /* 2 days */

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
        bool ended = m->body_case == ADVSYNC__V1__EVENT__BODY_QUALIFYING_ENDED;
        const Advsync__V1__Timestamp *given = ended ? q->end : q->start;
        int64_t at = given ? asy_codec_micros(given) : out->occurred_at_us;
        /* a time outside what occurred_at may hold (a typo: 2062) would win for ever */
        if (at < S_EARLIEST_US || at > out->occurred_at_us + S_AHEAD_US)
            at = out->occurred_at_us;
        out->qualifying_at_us = at;
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_MEETING_INITIAL_HELD: {
        const Advsync__V1__Date *date = m->meeting_initial_held->date;
        out->met_at_us = out->occurred_at_us;
        if (date && asy_json_date_valid(date->year, date->month, date->day)) {
            /* noon UTC is that date in London too (UTC+0 or +1) */
            int64_t noon =
                (int64_t)asy_date_from_civil(date->year, date->month, date->day) * 86400000000LL +
                43200000000LL;
            if (noon < out->met_at_us && noon >= S_EARLIEST_US)
                out->met_at_us = noon;
        }
        break;
    }
    case ADVSYNC__V1__EVENT__BODY_REFERRAL_RECEIVED: {
        const Advsync__V1__ReferralReceived *r = m->referral_received;
        out->service = r->has_service ? (int)r->service : 0;
        out->source = r->has_source ? (int)r->source : 0;
        for (size_t i = 0; i < r->n_reasons; i++)
            if (r->reasons[i] > 0 && r->reasons[i] < 31)
                out->reasons |= 1u << r->reasons[i];
        out->received_at_us =
            r->received_at ? asy_codec_micros(r->received_at) : out->occurred_at_us;
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
    asy_copy_text(out->event_id, sizeof out->event_id, m->event_id);
    if (!asy_uuid_parse(out->event_id, out->event_uuid)) /* parsed once, for every use */
        memset(out->event_uuid, 0, sizeof out->event_uuid);
    out->schema_version = m->has_schema_version ? m->schema_version : 0;
    asy_copy_text(out->site_id, sizeof out->site_id, m->site_id);
    asy_copy_text(out->agent_id, sizeof out->agent_id, m->agent_id);
    out->epoch = m->has_epoch ? m->epoch : 0;
    out->seq = m->has_seq ? m->seq : 0;
    asy_copy_text(out->case_id, sizeof out->case_id, m->case_id);
    asy_copy_text(out->person_key, sizeof out->person_key, m->person_key);
    out->occurred_at_us = asy_codec_micros(m->occurred_at);
    out->recorded_at_us = asy_codec_micros(m->recorded_at);
    out->kind = asy_kind_name((int)m->body_case) ? (int)m->body_case : ASY_KIND_NONE;
    s_summarise_body(m, out);
}
