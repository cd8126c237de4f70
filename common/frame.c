/*  frame.c: protocol frames (proto/PROTOCOL.md), encoded and decoded.

    With codec.c, codec_validate.c, codec_ids.c (events) and json*.c, the only code that touches
    the protobuf-c types generated from proto/advsync.proto. A decoded asy_frame_t borrows its
   strings and event bytes from an s_frame_storage_t that asy_frame_release() frees.  */
#include "codec.h"

#include "advsync.pb-c.h"
#include "pb_scan.h"

#include <stdlib.h>
#include <string.h>

/* The plain frame types of codec.h mirror the generated ones: keep them in step. */
#define S_SAME(ours, generated) _Static_assert((int)(ours) == (int)(generated), #ours)

S_SAME(ASY_FRAME_NONE, ADVSYNC__V1__FRAME__KIND__NOT_SET);
S_SAME(ASY_FRAME_HELLO, ADVSYNC__V1__FRAME__KIND_HELLO);
S_SAME(ASY_FRAME_WELCOME, ADVSYNC__V1__FRAME__KIND_WELCOME);
S_SAME(ASY_FRAME_PUBLISH, ADVSYNC__V1__FRAME__KIND_PUBLISH);
S_SAME(ASY_FRAME_ACK, ADVSYNC__V1__FRAME__KIND_ACK);
S_SAME(ASY_FRAME_NACK, ADVSYNC__V1__FRAME__KIND_NACK);
S_SAME(ASY_FRAME_HEARTBEAT, ADVSYNC__V1__FRAME__KIND_HEARTBEAT);

/* What a decoded frame's borrowed pointers point into. */
typedef struct {
    Advsync__V1__Frame *message;
    asy_bytes_t *events;
    asy_rejection_t *rejections;
} s_frame_storage_t;

static int s_encode_publish(const asy_publish_t *publish, Advsync__V1__Frame *message,
                            Advsync__V1__Publish *body, ProtobufCBinaryData **events)
{
    advsync__v1__publish__init(body);
    body->agent_id = (char *)publish->agent_id;
    body->has_epoch = body->has_first_seq = 1;
    body->epoch = publish->epoch;
    body->first_seq = publish->first_seq;
    if (publish->count) {
        *events = calloc(publish->count, sizeof **events);
        if (!*events)
            return ASY_ENOMEM;
        for (size_t i = 0; i < publish->count; i++) {
            (*events)[i].data = (uint8_t *)publish->events[i].data;
            (*events)[i].len = publish->events[i].size;
        }
    }
    body->n_events = publish->count;
    body->events = *events;
    message->kind_case = ADVSYNC__V1__FRAME__KIND_PUBLISH;
    message->publish = body;
    return 0;
}

static int s_encode_ack(const asy_ack_t *ack, Advsync__V1__Frame *message, Advsync__V1__Ack *body,
                        Advsync__V1__Rejection **rejections, Advsync__V1__Rejection ***pointers)
{
    advsync__v1__ack__init(body);
    body->agent_id = (char *)ack->agent_id;
    body->has_epoch = body->has_seq = body->has_duplicates = 1;
    body->epoch = ack->epoch;
    body->seq = ack->seq;
    body->duplicates = ack->duplicates;
    if (ack->rejected_count) {
        *rejections = calloc(ack->rejected_count, sizeof **rejections);
        *pointers = calloc(ack->rejected_count, sizeof **pointers);
        if (!*rejections || !*pointers)
            return ASY_ENOMEM;
        for (size_t i = 0; i < ack->rejected_count; i++) {
            Advsync__V1__Rejection *rejection = &(*rejections)[i];
            advsync__v1__rejection__init(rejection);
            rejection->has_seq = rejection->has_code = 1;
            rejection->seq = ack->rejected[i].seq;
            rejection->code = (Advsync__V1__ErrorCode)ack->rejected[i].code;
            rejection->reason = (char *)ack->rejected[i].reason;
            (*pointers)[i] = rejection;
        }
    }
    body->n_rejected = ack->rejected_count;
    body->rejected = *pointers;
    message->kind_case = ADVSYNC__V1__FRAME__KIND_ACK;
    message->ack = body;
    return 0;
}

/* Makes message a HELLO, its body in *hello (borrowing the frame's text). */
static void s_encode_hello(const asy_hello_t *h, Advsync__V1__Frame *message,
                           Advsync__V1__Hello *hello)
{
    advsync__v1__hello__init(hello);
    hello->has_version_min = hello->has_version_max = hello->has_epoch = hello->has_last_seq = 1;
    hello->version_min = h->version_min;
    hello->version_max = h->version_max;
    hello->agent_id = (char *)h->agent_id;
    hello->site_id = (char *)h->site_id;
    hello->epoch = h->epoch;
    hello->last_seq = h->last_seq;
    hello->software = (char *)h->software;
    if (h->reissue_of_epoch) {
        hello->has_reissue_of_epoch = hello->has_reissue_from_seq = 1;
        hello->reissue_of_epoch = h->reissue_of_epoch;
        hello->reissue_from_seq = h->reissue_from_seq;
    }
    message->kind_case = ADVSYNC__V1__FRAME__KIND_HELLO;
    message->hello = hello;
}

/* Makes message a WELCOME, its body in *welcome (borrowing the frame's text). */
static void s_encode_welcome(const asy_welcome_t *w, Advsync__V1__Frame *message,
                             Advsync__V1__Welcome *welcome)
{
    advsync__v1__welcome__init(welcome);
    welcome->has_version = welcome->has_committed_seq = welcome->has_max_batch_events = 1;
    welcome->has_max_frame_bytes = welcome->has_window = welcome->has_heartbeat_ms = 1;
    welcome->version = w->version;
    welcome->committed_seq = w->committed_seq;
    welcome->max_batch_events = w->max_batch_events;
    welcome->max_frame_bytes = w->max_frame_bytes;
    welcome->window = w->window;
    welcome->heartbeat_ms = w->heartbeat_ms;
    if (w->committed_event_id && *w->committed_event_id)
        welcome->committed_event_id = (char *)w->committed_event_id;
    if (w->reissue_of_epoch) {
        welcome->has_reissue_of_epoch = 1;
        welcome->reissue_of_epoch = w->reissue_of_epoch;
    }
    message->kind_case = ADVSYNC__V1__FRAME__KIND_WELCOME;
    message->welcome = welcome;
}

/* Makes message a NACK, its body in *nack (borrowing the frame's text). */
static void s_encode_nack(const asy_nack_t *n, Advsync__V1__Frame *message, Advsync__V1__Nack *nack)
{
    advsync__v1__nack__init(nack);
    /* present only where they mean something (PROTOCOL 3.5): an agent may look at presence */
    nack->has_code = 1;
    nack->has_expected_seq = n->code == ASY_CODE_SEQ_GAP || n->expected_seq != 0;
    nack->has_first_seq = n->first_seq != 0;
    nack->has_retry_after_ms = n->code == ASY_CODE_RETRY_LATER || n->retry_after_ms != 0;
    nack->code = (Advsync__V1__ErrorCode)n->code;
    nack->reason = (char *)n->reason;
    nack->expected_seq = n->expected_seq;
    nack->first_seq = n->first_seq;
    nack->retry_after_ms = n->retry_after_ms;
    message->kind_case = ADVSYNC__V1__FRAME__KIND_NACK;
    message->nack = nack;
}

/* The encoded bytes of the message built (caller frees). Returns 0 or ASY_ENOMEM. */
static int s_pack(const Advsync__V1__Frame *message, uint8_t **data, size_t *size)
{
    size_t length = advsync__v1__frame__get_packed_size(message);
    uint8_t *buffer = malloc(length ? length : 1);
    if (!buffer)
        return ASY_ENOMEM;
    advsync__v1__frame__pack(message, buffer);
    *data = buffer;
    *size = length;
    return 0;
}

int asy_frame_encode(const asy_frame_t *frame, uint8_t **data, size_t *size)
{
    Advsync__V1__Frame message = ADVSYNC__V1__FRAME__INIT;
    message.has_version = 1;
    message.version = frame->version ? frame->version : ASY_PROTOCOL_VERSION;
    /* the message's tree is built on the stack: it only borrows the frame's text and bytes */
    Advsync__V1__Hello hello;
    Advsync__V1__Welcome welcome;
    Advsync__V1__Publish publish;
    Advsync__V1__Ack ack;
    Advsync__V1__Nack nack;
    Advsync__V1__Heartbeat heartbeat = ADVSYNC__V1__HEARTBEAT__INIT;
    ProtobufCBinaryData *events = NULL;
    Advsync__V1__Rejection *rejections = NULL;
    Advsync__V1__Rejection **pointers = NULL;
    int rc = 0;
    switch (frame->type) {
    case ASY_FRAME_HELLO:
        s_encode_hello(&frame->u.hello, &message, &hello);
        break;
    case ASY_FRAME_WELCOME:
        s_encode_welcome(&frame->u.welcome, &message, &welcome);
        break;
    case ASY_FRAME_PUBLISH:
        rc = s_encode_publish(&frame->u.publish, &message, &publish, &events);
        break;
    case ASY_FRAME_ACK:
        rc = s_encode_ack(&frame->u.ack, &message, &ack, &rejections, &pointers);
        break;
    case ASY_FRAME_NACK:
        s_encode_nack(&frame->u.nack, &message, &nack);
        break;
    case ASY_FRAME_HEARTBEAT:
        heartbeat.has_sent_at_ms = frame->u.heartbeat.sent_at_ms != 0; /* 0: none echoed */
        heartbeat.sent_at_ms = frame->u.heartbeat.sent_at_ms;
        message.kind_case = ADVSYNC__V1__FRAME__KIND_HEARTBEAT;
        message.heartbeat = &heartbeat;
        break;
    default:
        return ASY_EINVAL;
    }
    if (rc == 0)
        rc = s_pack(&message, data, size);
    free(events);
    free(rejections);
    free(pointers);
    return rc;
}

static const char *s_text(const char *text)
{
    return text ? text : "";
}

static int s_decode_publish(const Advsync__V1__Publish *p, s_frame_storage_t *storage,
                            asy_publish_t *out)
{
    out->agent_id = s_text(p->agent_id);
    out->epoch = p->epoch;
    out->first_seq = p->first_seq;
    out->count = p->n_events;
    if (p->n_events) {
        storage->events = calloc(p->n_events, sizeof *storage->events);
        if (!storage->events)
            return ASY_ENOMEM;
        for (size_t i = 0; i < p->n_events; i++) {
            storage->events[i].data = p->events[i].data;
            storage->events[i].size = p->events[i].len;
        }
    }
    out->events = storage->events;
    return 0;
}

static int s_decode_ack(const Advsync__V1__Ack *a, s_frame_storage_t *storage, asy_ack_t *out)
{
    out->agent_id = s_text(a->agent_id);
    out->epoch = a->epoch;
    out->seq = a->seq;
    out->duplicates = a->duplicates;
    out->rejected_count = a->n_rejected;
    if (a->n_rejected) {
        storage->rejections = calloc(a->n_rejected, sizeof *storage->rejections);
        if (!storage->rejections)
            return ASY_ENOMEM;
        for (size_t i = 0; i < a->n_rejected; i++) {
            storage->rejections[i].seq = a->rejected[i]->seq;
            storage->rejections[i].code = (int)a->rejected[i]->code;
            storage->rejections[i].reason = s_text(a->rejected[i]->reason);
        }
    }
    out->rejected = storage->rejections;
    return 0;
}

static int s_decode_kind(const Advsync__V1__Frame *m, s_frame_storage_t *storage,
                         asy_frame_t *frame)
{
    switch (m->kind_case) {
    case ADVSYNC__V1__FRAME__KIND_HELLO: {
        asy_hello_t *h = &frame->u.hello;
        h->version_min = m->hello->version_min;
        h->version_max = m->hello->version_max;
        h->agent_id = s_text(m->hello->agent_id);
        h->site_id = s_text(m->hello->site_id);
        h->epoch = m->hello->epoch;
        h->last_seq = m->hello->last_seq;
        h->software = m->hello->software;
        h->reissue_of_epoch = m->hello->reissue_of_epoch;
        h->reissue_from_seq = m->hello->reissue_from_seq;
        return 0;
    }
    case ADVSYNC__V1__FRAME__KIND_WELCOME: {
        asy_welcome_t *w = &frame->u.welcome;
        w->version = m->welcome->version;
        w->committed_seq = m->welcome->committed_seq;
        w->max_batch_events = m->welcome->max_batch_events;
        w->max_frame_bytes = m->welcome->max_frame_bytes;
        w->window = m->welcome->window;
        w->heartbeat_ms = m->welcome->heartbeat_ms;
        w->committed_event_id = m->welcome->committed_event_id;
        w->reissue_of_epoch = m->welcome->reissue_of_epoch;
        return 0;
    }
    case ADVSYNC__V1__FRAME__KIND_PUBLISH:
        return s_decode_publish(m->publish, storage, &frame->u.publish);
    case ADVSYNC__V1__FRAME__KIND_ACK:
        return s_decode_ack(m->ack, storage, &frame->u.ack);
    case ADVSYNC__V1__FRAME__KIND_NACK: {
        asy_nack_t *n = &frame->u.nack;
        n->code = (int)m->nack->code;
        n->reason = s_text(m->nack->reason);
        n->expected_seq = m->nack->expected_seq;
        n->first_seq = m->nack->first_seq;
        n->retry_after_ms = m->nack->retry_after_ms;
        return 0;
    }
    case ADVSYNC__V1__FRAME__KIND_HEARTBEAT:
        frame->u.heartbeat.sent_at_ms = m->heartbeat->sent_at_ms;
        return 0;
    default:
        return ASY_EPROTO;
    }
}

int asy_frame_decode(asy_frame_t *frame, const uint8_t *data, size_t size)
{
    memset(frame, 0, sizeof *frame);
    static const uint8_t empty[1] = {0};
    s_frame_storage_t *storage = calloc(1, sizeof *storage);
    if (!storage)
        return ASY_ENOMEM;
    frame->storage_ = storage;
    storage->message = advsync__v1__frame__unpack(NULL, size, data ? data : empty);
    if (!storage->message) {
        asy_frame_release(frame);
        return ASY_EPROTO;
    }
    char nul_field[sizeof frame->nul_field];
    if (asy_pb_nul_in_string(&advsync__v1__frame__descriptor, data, size, nul_field,
                             sizeof nul_field)) {
        asy_frame_release(frame);
        memcpy(frame->nul_field, nul_field, sizeof nul_field);
        return ASY_EINVAL;
    }
    int rc = s_decode_kind(storage->message, storage, frame);
    if (rc) {
        asy_frame_release(frame);
        return rc;
    }
    frame->type = (int)storage->message->kind_case;
    frame->version = storage->message->version;
    return 0;
}

void asy_frame_release(asy_frame_t *frame)
{
    if (!frame)
        return;
    s_frame_storage_t *storage = frame->storage_;
    if (storage) {
        protobuf_c_message_free_unpacked((ProtobufCMessage *)storage->message, NULL);
        free(storage->events);
        free(storage->rejections);
        free(storage);
    }
    memset(frame, 0, sizeof *frame);
}
