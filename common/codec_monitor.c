/*  codec_monitor.c: ASM/1 messages <-> protobuf-c. See monitor_msg.h.  */
#include "monitor_msg.h"

#include "advsync.pb-c.h"
#include "calendar.h"
#include "codec_private.h"
#include "json.h"
#include "pb_scan.h"

#include <stdlib.h>
#include <string.h>

#define S_NO_DATE INT32_MIN

void asy_mmsg_init(asy_mmsg_t *msg, asy_mmsg_kind_t kind)
{
    memset(msg, 0, sizeof *msg);
    msg->kind = kind;
    msg->version = ASY_MONITOR_VERSION;
    msg->exact = -1;
    msg->update.period_start = S_NO_DATE;
    msg->update.period_end = S_NO_DATE;
    msg->breach.received = S_NO_DATE;
    msg->breach.deadline = S_NO_DATE;
}

void asy_mmsg_release(asy_mmsg_t *msg)
{
    if (!msg)
        return;
    free(msg->update.cells);
    memset(msg, 0, sizeof *msg);
}

asy_mcell_t *asy_mupdate_add_cell(asy_mupdate_t *update, const char *breakdown,
                                  const char *group)
{
    if (update->cell_count == update->cell_capacity) {
        size_t capacity = update->cell_capacity ? update->cell_capacity * 2 : 16;
        asy_mcell_t *cells = realloc(update->cells, capacity * sizeof *cells);
        if (!cells)
            return NULL;
        update->cells = cells;
        update->cell_capacity = capacity;
    }
    asy_mcell_t *cell = &update->cells[update->cell_count++];
    memset(cell, 0, sizeof *cell);
    /* cut to fit (the monitor renders tens of thousands of cells a second) */
    asy_copy_text(cell->breakdown, sizeof cell->breakdown, breakdown);
    asy_copy_text(cell->group, sizeof cell->group, group);
    return cell;
}

/* ----------------------------------------------------------------------------------------------
   Encoding: build the protobuf-c tree on the stack (it only borrows the C struct's text). */

static void s_date_to_pb(int32_t date, Advsync__V1__Date *out)
{
    int year, month, day;
    asy_date_to_ymd(date, &year, &month, &day);
    advsync__v1__date__init(out);
    out->has_year = out->has_month = out->has_day = true;
    out->year = year;
    out->month = month;
    out->day = day;
}

static void s_time_to_pb(int64_t micros, Advsync__V1__Timestamp *out)
{
    advsync__v1__timestamp__init(out);
    int64_t seconds = micros / 1000000, rest = micros % 1000000;
    if (rest < 0) {
        rest += 1000000;
        seconds -= 1;
    }
    out->has_seconds = out->has_nanos = true;
    out->seconds = seconds;
    out->nanos = (int32_t)(rest * 1000);
}

static void s_cell_to_pb(const asy_mcell_t *cell, Advsync__V1__MetricCell *out)
{
    advsync__v1__metric_cell__init(out);
    out->breakdown = (char *)cell->breakdown;
    out->group = (char *)cell->group;
    out->has_suppressed = cell->suppressed;
    out->suppressed = cell->suppressed;
    out->has_count = cell->has_count;
    out->count = cell->count;
    out->has_numerator = cell->has_numerator;
    out->numerator = cell->numerator;
    out->has_denominator = cell->has_denominator;
    out->denominator = cell->denominator;
    out->has_value = cell->has_value;
    out->value = cell->value;
    out->has_lower = out->has_upper = cell->has_interval;
    out->lower = cell->lower;
    out->upper = cell->upper;
    out->has_expected = cell->has_expected;
    out->expected = cell->expected;
    out->has_p90 = cell->has_p90;
    out->p90 = cell->p90;
}

/* The encoded bytes of the message built (caller frees). Returns 0 or ASY_ENOMEM. */
static int s_pack(const Advsync__V1__MonitorMessage *pb, uint8_t **data, size_t *size)
{
    *size = advsync__v1__monitor_message__get_packed_size(pb);
    *data = malloc(*size ? *size : 1);
    if (!*data)
        return ASY_ENOMEM;
    advsync__v1__monitor_message__pack(pb, *data);
    return 0;
}

static int s_encode_update(const asy_mupdate_t *update, Advsync__V1__MonitorMessage *pb,
                           uint8_t **data, size_t *size)
{
    Advsync__V1__MetricUpdate body;
    advsync__v1__metric_update__init(&body);
    Advsync__V1__Date start, end;
    Advsync__V1__Timestamp as_of;
    body.topic = (char *)update->topic;
    body.metric = (char *)update->metric;
    body.scope = (char *)update->scope;
    body.period = (char *)update->period;
    body.unit = (char *)update->unit;
    body.has_exact = true;
    body.exact = update->exact;
    if (update->period_start != S_NO_DATE) {
        s_date_to_pb(update->period_start, &start);
        body.period_start = &start;
    }
    if (update->period_end != S_NO_DATE) {
        s_date_to_pb(update->period_end, &end);
        body.period_end = &end;
    }
    s_time_to_pb(update->as_of_us, &as_of);
    body.as_of = &as_of;
    Advsync__V1__MetricCell *cells = calloc(update->cell_count ? update->cell_count : 1,
                                            sizeof *cells);
    Advsync__V1__MetricCell **pointers =
        calloc(update->cell_count ? update->cell_count : 1, sizeof *pointers);
    int rc = 0;
    if (!cells || !pointers)
        rc = ASY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < update->cell_count; i++) {
        s_cell_to_pb(&update->cells[i], &cells[i]);
        pointers[i] = &cells[i];
    }
    if (rc == 0) {
        body.n_cells = update->cell_count;
        body.cells = pointers;
        pb->body_case = ADVSYNC__V1__MONITOR_MESSAGE__BODY_UPDATE;
        pb->update = &body;
        rc = s_pack(pb, data, size);
    }
    free(cells);
    free(pointers);
    return rc;
}

/* A breach notice, its dates and time in the storage given (borrowing the C struct's text). */
static void s_breach_to_pb(const asy_mbreach_t *in, Advsync__V1__BreachNotice *breach,
                           Advsync__V1__Date *received, Advsync__V1__Date *deadline,
                           Advsync__V1__Timestamp *when)
{
    advsync__v1__breach_notice__init(breach);
    breach->case_id = (char *)in->case_id;
    breach->site_id = (char *)in->site_id;
    breach->has_kind = true;
    breach->kind = (Advsync__V1__BreachKind)in->kind;
    breach->has_service = in->service != 0;
    breach->service = (Advsync__V1__ServiceType)in->service;
    if (in->received != S_NO_DATE) {
        s_date_to_pb(in->received, received);
        breach->received = received;
    }
    if (in->deadline != S_NO_DATE) {
        s_date_to_pb(in->deadline, deadline);
        breach->deadline = deadline;
    }
    s_time_to_pb(in->detected_at_us, when);
    breach->detected_at = when;
    breach->has_withdrawn = in->withdrawn;
    breach->withdrawn = in->withdrawn;
}

/* A heartbeat, its time in *when. */
static void s_heartbeat_to_pb(const asy_mmsg_t *msg, Advsync__V1__MonitorHeartbeat *heartbeat,
                              Advsync__V1__Timestamp *when)
{
    advsync__v1__monitor_heartbeat__init(heartbeat);
    heartbeat->has_seq = heartbeat->has_interval_ms = true;
    heartbeat->seq = msg->seq;
    heartbeat->interval_ms = msg->interval_ms;
    heartbeat->has_exact = msg->exact >= 0;
    heartbeat->exact = msg->exact > 0;
    s_time_to_pb(msg->sent_at_us, when);
    heartbeat->sent_at = when;
}

int asy_mmsg_encode(const asy_mmsg_t *msg, uint8_t **data, size_t *size)
{
    Advsync__V1__MonitorMessage pb;
    advsync__v1__monitor_message__init(&pb);
    pb.has_version = true;
    pb.version = msg->version;
    pb.has_seq = msg->seq != 0;
    pb.seq = msg->seq;
    pb.has_incarnation = msg->incarnation != 0;
    pb.incarnation = msg->incarnation;
    if (msg->kind == ASY_MMSG_UPDATE)
        return s_encode_update(&msg->update, &pb, data, size);

    Advsync__V1__BreachNotice breach;
    Advsync__V1__SnapshotRequest request;
    Advsync__V1__SnapshotEnd end;
    Advsync__V1__MonitorHeartbeat heartbeat;
    Advsync__V1__MonitorError error;
    Advsync__V1__Date received, deadline;
    Advsync__V1__Timestamp when;
    switch (msg->kind) {
    case ASY_MMSG_BREACH:
        s_breach_to_pb(&msg->breach, &breach, &received, &deadline, &when);
        pb.body_case = ADVSYNC__V1__MONITOR_MESSAGE__BODY_BREACH;
        pb.breach = &breach;
        break;
    case ASY_MMSG_SNAPSHOT_REQUEST:
        advsync__v1__snapshot_request__init(&request);
        request.subtree = (char *)msg->subtree;
        pb.body_case = ADVSYNC__V1__MONITOR_MESSAGE__BODY_SNAPSHOT_REQUEST;
        pb.snapshot_request = &request;
        break;
    case ASY_MMSG_SNAPSHOT_END:
        advsync__v1__snapshot_end__init(&end);
        end.has_seq = end.has_topics = true;
        end.seq = msg->seq;
        end.topics = msg->topics;
        end.has_exact = msg->exact >= 0;
        end.exact = msg->exact > 0;
        pb.body_case = ADVSYNC__V1__MONITOR_MESSAGE__BODY_SNAPSHOT_END;
        pb.snapshot_end = &end;
        break;
    case ASY_MMSG_HEARTBEAT:
        s_heartbeat_to_pb(msg, &heartbeat, &when);
        pb.body_case = ADVSYNC__V1__MONITOR_MESSAGE__BODY_HEARTBEAT;
        pb.heartbeat = &heartbeat;
        break;
    case ASY_MMSG_ERROR:
        advsync__v1__monitor_error__init(&error);
        error.reason = (char *)msg->reason;
        pb.body_case = ADVSYNC__V1__MONITOR_MESSAGE__BODY_ERROR;
        pb.error = &error;
        break;
    default:
        return ASY_EINVAL;
    }
    return s_pack(&pb, data, size);
}

/* ----------------------------------------------------------------------------------------------
   Decoding. */

static bool s_copy(char *out, size_t size, const char *text)
{
    if (!text) {
        out[0] = '\0';
        return true;
    }
    size_t length = strlen(text);
    if (length >= size)
        return false;
    memcpy(out, text, length + 1);
    return true;
}

static int32_t s_date_from_pb(const Advsync__V1__Date *date)
{
    asy_date_t out;
    if (!date || asy_date_from_ymd(date->year, date->month, date->day, &out) != 0)
        return S_NO_DATE;
    return out;
}

static bool s_cell_from_pb(const Advsync__V1__MetricCell *pb, asy_mcell_t *cell)
{
    if (!s_copy(cell->breakdown, sizeof cell->breakdown, pb->breakdown) ||
        !s_copy(cell->group, sizeof cell->group, pb->group))
        return false;
    cell->has_count = pb->has_count;
    cell->count = pb->count;
    cell->has_numerator = pb->has_numerator;
    cell->numerator = pb->numerator;
    cell->has_denominator = pb->has_denominator;
    cell->denominator = pb->denominator;
    cell->has_value = pb->has_value;
    cell->value = pb->value;
    cell->has_interval = pb->has_lower && pb->has_upper;
    cell->lower = pb->lower;
    cell->upper = pb->upper;
    cell->has_expected = pb->has_expected;
    cell->expected = pb->expected;
    cell->has_p90 = pb->has_p90;
    cell->p90 = pb->p90;
    cell->suppressed = pb->suppressed;
    return true;
}

static bool s_update_from_pb(const Advsync__V1__MetricUpdate *pb, asy_mupdate_t *update)
{
    if (!s_copy(update->topic, sizeof update->topic, pb->topic) ||
        !s_copy(update->metric, sizeof update->metric, pb->metric) ||
        !s_copy(update->scope, sizeof update->scope, pb->scope) ||
        !s_copy(update->period, sizeof update->period, pb->period) ||
        !s_copy(update->unit, sizeof update->unit, pb->unit))
        return false;
    update->period_start = s_date_from_pb(pb->period_start);
    update->period_end = s_date_from_pb(pb->period_end);
    update->as_of_us = asy_codec_micros(pb->as_of);
    update->exact = pb->exact;
    for (size_t i = 0; i < pb->n_cells; i++) {
        asy_mcell_t *cell = asy_mupdate_add_cell(update, "", "");
        if (!cell || !s_cell_from_pb(pb->cells[i], cell))
            return false;
    }
    return true;
}

static bool s_body_from_pb(const Advsync__V1__MonitorMessage *pb, asy_mmsg_t *msg)
{
    switch (pb->body_case) {
    case ADVSYNC__V1__MONITOR_MESSAGE__BODY_UPDATE:
        msg->kind = ASY_MMSG_UPDATE;
        return s_update_from_pb(pb->update, &msg->update);
    case ADVSYNC__V1__MONITOR_MESSAGE__BODY_BREACH:
        msg->kind = ASY_MMSG_BREACH;
        msg->breach.kind = pb->breach->kind;
        msg->breach.service = pb->breach->service;
        msg->breach.received = s_date_from_pb(pb->breach->received);
        msg->breach.deadline = s_date_from_pb(pb->breach->deadline);
        msg->breach.detected_at_us = asy_codec_micros(pb->breach->detected_at);
        msg->breach.withdrawn = pb->breach->withdrawn;
        return s_copy(msg->breach.case_id, sizeof msg->breach.case_id, pb->breach->case_id) &&
               s_copy(msg->breach.site_id, sizeof msg->breach.site_id, pb->breach->site_id);
    case ADVSYNC__V1__MONITOR_MESSAGE__BODY_SNAPSHOT_REQUEST:
        msg->kind = ASY_MMSG_SNAPSHOT_REQUEST;
        return s_copy(msg->subtree, sizeof msg->subtree, pb->snapshot_request->subtree);
    case ADVSYNC__V1__MONITOR_MESSAGE__BODY_SNAPSHOT_END:
        msg->kind = ASY_MMSG_SNAPSHOT_END;
        msg->seq = pb->snapshot_end->seq;
        msg->topics = pb->snapshot_end->topics;
        msg->exact = pb->snapshot_end->has_exact ? pb->snapshot_end->exact : -1;
        return true;
    case ADVSYNC__V1__MONITOR_MESSAGE__BODY_HEARTBEAT:
        msg->kind = ASY_MMSG_HEARTBEAT;
        msg->seq = pb->heartbeat->seq;
        msg->interval_ms = pb->heartbeat->interval_ms;
        msg->exact = pb->heartbeat->has_exact ? pb->heartbeat->exact : -1;
        msg->sent_at_us = asy_codec_micros(pb->heartbeat->sent_at);
        return true;
    case ADVSYNC__V1__MONITOR_MESSAGE__BODY_ERROR:
        msg->kind = ASY_MMSG_ERROR;
        snprintf(msg->reason, sizeof msg->reason, "%s",
                 pb->error->reason ? pb->error->reason : "");
        return true;
    default:
        return false;
    }
}

int asy_mmsg_decode(asy_mmsg_t *msg, const uint8_t *data, size_t size)
{
    asy_mmsg_init(msg, ASY_MMSG_NONE);
    Advsync__V1__MonitorMessage *pb = advsync__v1__monitor_message__unpack(NULL, size, data);
    if (!pb)
        return ASY_EPROTO;
    if (asy_pb_nul_in_string(&advsync__v1__monitor_message__descriptor, data, size, NULL, 0)) {
        /* a subtree "all/M1/\0x" would be read as "all/M1/" (PROTOCOL 4: strings hold no NUL) */
        advsync__v1__monitor_message__free_unpacked(pb, NULL);
        return ASY_EPROTO;
    }
    msg->version = pb->version;
    msg->seq = pb->seq;
    msg->incarnation = pb->has_incarnation ? pb->incarnation : 0;
    bool ok = s_body_from_pb(pb, msg);
    advsync__v1__monitor_message__free_unpacked(pb, NULL);
    if (!ok) {
        asy_mmsg_release(msg);
        asy_mmsg_init(msg, ASY_MMSG_NONE);
        return ASY_EPROTO;
    }
    return 0;
}

char *asy_mmsg_json(const uint8_t *data, size_t size)
{
    Advsync__V1__MonitorMessage *pb = advsync__v1__monitor_message__unpack(NULL, size, data);
    if (!pb)
        return NULL;
    json_t *value = asy_json_from_message(&pb->base);
    advsync__v1__monitor_message__free_unpacked(pb, NULL);
    if (!value)
        return NULL;
    char *text = json_dumps(value, JSON_COMPACT);
    json_decref(value);
    return text;
}

/* ----------------------------------------------------------------------------------------------
   Enum value names. */

static const struct {
    const char *name;
    const ProtobufCEnumDescriptor *descriptor;
} s_enums[] = {
    {"EthnicityOns2021", &advsync__v1__ethnicity_ons2021__descriptor},
    {"NhsEthnicCategory", &advsync__v1__nhs_ethnic_category__descriptor},
    {"AgeBand", &advsync__v1__age_band__descriptor},
    {"Sex", &advsync__v1__sex__descriptor},
    {"Gender", &advsync__v1__gender__descriptor},
    {"Disability", &advsync__v1__disability__descriptor},
    {"Religion", &advsync__v1__religion__descriptor},
    {"SexualOrientation", &advsync__v1__sexual_orientation__descriptor},
    {"ReferralReason", &advsync__v1__referral_reason__descriptor},
    {"ServiceType", &advsync__v1__service_type__descriptor},
    {"ReferralSource", &advsync__v1__referral_source__descriptor},
    {"BreachKind", &advsync__v1__breach_kind__descriptor},
};

const char *asy_enum_value_name(const char *which, int value)
{
    for (size_t i = 0; i < sizeof s_enums / sizeof s_enums[0]; i++) {
        if (strcmp(s_enums[i].name, which) != 0)
            continue;
        const ProtobufCEnumValue *found =
            protobuf_c_enum_descriptor_get_value(s_enums[i].descriptor, value);
        return found ? found->name : NULL;
    }
    return NULL;
}
