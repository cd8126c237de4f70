/*  json_text.c: protobuf-c messages -> proto3 JSON values, walking the descriptors (see
    json.h). Absent fields are left out; 64-bit integers are strings, bytes base64, Timestamp
    and Date text.  */
#include "json_private.h"

#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
   Messages -> JSON. */

/* JSON string of text; bytes that are not UTF-8 (possible on the wire) become U+FFFD. */
static json_t *s_string_to_json(const char *text)
{
    json_t *value = json_string(text);
    if (value)
        return value;
    size_t length = strlen(text);
    char *clean = malloc(length * 3 + 1);
    if (!clean)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; i < length;) {
        size_t step = 1;
        while (step <= 4 && i + step <= length && !asy_json_utf8_valid(text + i, step))
            step++;
        if (step <= 4 && i + step <= length) {
            memcpy(clean + used, text + i, step);
            used += step;
            i += step;
        } else {
            memcpy(clean + used, "\xef\xbf\xbd", 3);
            used += 3;
            i++;
        }
    }
    value = json_stringn(clean, used);
    free(clean);
    return value;
}

static json_t *s_message_to_json(const ProtobufCMessage *message);

static json_t *s_double_to_json(double value)
{
    if (isnan(value))
        return json_string("NaN");
    if (isinf(value))
        return json_string(value < 0 ? "-Infinity" : "Infinity");
    return json_real(value);
}

static json_t *s_value_to_json(const ProtobufCFieldDescriptor *field, const void *member)
{
    char text[32];
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)member);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)member);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(text, sizeof text, "%" PRId64, *(const int64_t *)member);
        return json_string(text);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(text, sizeof text, "%" PRIu64, *(const uint64_t *)member);
        return json_string(text);
    case PROTOBUF_C_TYPE_FLOAT:
        return s_double_to_json(*(const float *)member);
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_double_to_json(*(const double *)member);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)member);
    case PROTOBUF_C_TYPE_ENUM: {
        int number = *(const int *)member;
        const ProtobufCEnumValue *value =
            protobuf_c_enum_descriptor_get_value(field->descriptor, number);
        return value ? json_string(value->name) : json_integer(number);
    }
    case PROTOBUF_C_TYPE_STRING:
        return s_string_to_json(*(char *const *)member);
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bytes = member;
        size_t size = sodium_base64_ENCODED_LEN(bytes->len, sodium_base64_VARIANT_ORIGINAL);
        char *encoded = malloc(size);
        if (!encoded)
            return NULL;
        sodium_bin2base64(encoded, size, bytes->data ? bytes->data : (const unsigned char *)"",
                          bytes->len, sodium_base64_VARIANT_ORIGINAL);
        json_t *value = json_string(encoded);
        free(encoded);
        return value;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_message_to_json(*(ProtobufCMessage *const *)member);
    }
    return NULL;
}

/* True if the singular field holds a value. */
static bool s_present(const ProtobufCMessage *message, const ProtobufCFieldDescriptor *field)
{
    const char *base = (const char *)message;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + field->quantifier_offset) != field->id)
            return false;
    } else if (field->label == PROTOBUF_C_LABEL_OPTIONAL && field->type != PROTOBUF_C_TYPE_STRING &&
               field->type != PROTOBUF_C_TYPE_MESSAGE) {
        return *(const protobuf_c_boolean *)(base + field->quantifier_offset);
    }
    if (field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE) {
        const void *pointer = *(const void *const *)(base + field->offset);
        return pointer != NULL && pointer != field->default_value;
    }
    return true;
}

static json_t *s_field_to_json(const ProtobufCMessage *message,
                               const ProtobufCFieldDescriptor *field)
{
    const char *base = (const char *)message;
    if (field->label != PROTOBUF_C_LABEL_REPEATED)
        return s_value_to_json(field, base + field->offset);
    size_t count = *(const size_t *)(base + field->quantifier_offset);
    const char *elements = *(const char *const *)(base + field->offset);
    size_t element_size = asy_json_element_size(field->type);
    json_t *array = json_array();
    for (size_t i = 0; array && i < count; i++) {
        json_t *item = s_value_to_json(field, elements + i * element_size);
        if (!item || json_array_append_new(array, item) != 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

/* Timestamp and Date as text when they hold a representable value; else as plain objects. */
static json_t *s_well_known_to_json(const ProtobufCMessage *message)
{
    const ProtobufCMessageDescriptor *desc = message->descriptor;
    int64_t values[3] = {0, 0, 0};
    for (unsigned i = 0; i < desc->n_fields && i < 3; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        const char *member = (const char *)message + field->offset;
        if (!s_present(message, field))
            continue;
        values[i] = field->type == PROTOBUF_C_TYPE_INT64 ? *(const int64_t *)member
                                                         : *(const int32_t *)member;
    }
    if (strcmp(desc->name, ASY_JSON_TIMESTAMP) == 0) {
        char text[ASY_TIMESTAMP_TEXT];
        if (asy_json_format_timestamp(values[0], (int32_t)values[1], text) == 0)
            return json_string(text);
    } else if (asy_json_date_valid(values[0], values[1], values[2])) {
        char text[16];
        snprintf(text, sizeof text, "%04d-%02d-%02d", (int)values[0], (int)values[1],
                 (int)values[2]);
        return json_string(text);
    }
    return NULL;
}

static json_t *s_message_to_json(const ProtobufCMessage *message)
{
    const ProtobufCMessageDescriptor *desc = message->descriptor;
    if (asy_json_is_well_known(desc)) {
        json_t *text = s_well_known_to_json(message);
        if (text)
            return text;
    }
    json_t *object = json_object();
    if (!object)
        return NULL;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)((const char *)message + field->quantifier_offset) == 0)
                continue;
        } else if (!s_present(message, field)) {
            continue;
        }
        char name[ASY_JSON_NAME_MAX];
        asy_json_name(field->name, name, sizeof name);
        json_t *value = s_field_to_json(message, field);
        if (!value || json_object_set_new(object, name, value) != 0) {
            json_decref(object);
            return NULL;
        }
    }
    return object;
}

json_t *asy_json_from_message(const ProtobufCMessage *message)
{
    return message ? s_message_to_json(message) : NULL;
}
