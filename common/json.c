/*  json.c: proto3 JSON <-> protobuf-c messages, walking the descriptors: what both directions
    share (names, element sizes, the well-known types) and the text forms of Timestamp and Date.
    JSON -> message is in json_parse.c, message -> JSON in json_text.c.  */
#include "json_private.h"

#include "calendar.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool asy_json_date_valid(int64_t year, int64_t month, int64_t day)
{
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1)
        return false;
    return day <= asy_days_in_month((int)year, (int)month);
}

/* Reads exactly count decimal digits. */
static bool s_digits(const char **cursor, int count, int *out)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        char c = (*cursor)[i];
        if (c < '0' || c > '9')
            return false;
        value = value * 10 + (c - '0');
    }
    *cursor += count;
    *out = value;
    return true;
}

static bool s_expect(const char **cursor, char c)
{
    if (**cursor != c)
        return false;
    (*cursor)++;
    return true;
}

int asy_json_parse_date(const char *text, int32_t *year, int32_t *month, int32_t *day)
{
    const char *p = text;
    int y, m, d;
    if (!s_digits(&p, 4, &y) || !s_expect(&p, '-') || !s_digits(&p, 2, &m) || !s_expect(&p, '-') ||
        !s_digits(&p, 2, &d) || *p != '\0' || !asy_json_date_valid(y, m, d))
        return ASY_EINVAL;
    *year = y;
    *month = m;
    *day = d;
    return 0;
}

int asy_json_parse_timestamp(const char *text, int64_t *seconds, int32_t *nanos)
{
    const char *p = text;
    int year, month, day, hour, minute, second;
    if (!s_digits(&p, 4, &year) || !s_expect(&p, '-') || !s_digits(&p, 2, &month) ||
        !s_expect(&p, '-') || !s_digits(&p, 2, &day))
        return ASY_EINVAL;
    if (*p != 'T' && *p != 't')
        return ASY_EINVAL;
    p++;
    if (!s_digits(&p, 2, &hour) || !s_expect(&p, ':') || !s_digits(&p, 2, &minute) ||
        !s_expect(&p, ':') || !s_digits(&p, 2, &second))
        return ASY_EINVAL;
    int32_t fraction = 0;
    if (*p == '.') {
        p++;
        int count = 0;
        while (*p >= '0' && *p <= '9' && count < 9) {
            fraction = fraction * 10 + (*p++ - '0');
            count++;
        }
        if (count == 0 || (*p >= '0' && *p <= '9'))
            return ASY_EINVAL; // no digits, or finer than nanoseconds
        for (; count < 9; count++)
            fraction *= 10;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int offset_hour, offset_minute;
        if (!s_digits(&p, 2, &offset_hour) || !s_expect(&p, ':') ||
            !s_digits(&p, 2, &offset_minute) || offset_hour > 23 || offset_minute > 59)
            return ASY_EINVAL;
        offset = (int64_t)sign * (offset_hour * 3600 + offset_minute * 60);
    } else {
        return ASY_EINVAL;
    }
    if (*p != '\0' || !asy_json_date_valid(year, month, day) || hour > 23 || minute > 59 ||
        second > 59)
        return ASY_EINVAL;
    *seconds = (int64_t)asy_date_from_civil(year, month, day) * 86400 + (int64_t)hour * 3600 +
               (int64_t)minute * 60 + second - offset;
    *nanos = fraction;
    return 0;
}

bool asy_json_timestamp_valid(int64_t seconds, int32_t nanos)
{
    // 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as proto3 JSON allows
    return seconds >= -62135596800LL && seconds <= 253402300799LL && nanos >= 0 &&
           nanos <= 999999999;
}

int asy_json_format_timestamp(int64_t seconds, int32_t nanos, char out[ASY_TIMESTAMP_TEXT])
{
    if (!asy_json_timestamp_valid(seconds, nanos))
        return ASY_EINVAL;
    int64_t days = seconds / 86400;
    int64_t rest = seconds % 86400;
    if (rest < 0) {
        rest += 86400;
        days--;
    }
    int year, month, day;
    asy_date_to_ymd((asy_date_t)days, &year, &month, &day);
    int length = snprintf(out, ASY_TIMESTAMP_TEXT, "%04d-%02d-%02dT%02d:%02d:%02d", year, month,
                          day, (int)(rest / 3600), (int)(rest / 60 % 60), (int)(rest % 60));
    if (nanos % 1000000 == 0 && nanos != 0)
        length += snprintf(out + length, (size_t)(ASY_TIMESTAMP_TEXT - length), ".%03d",
                           (int)(nanos / 1000000));
    else if (nanos % 1000 == 0 && nanos != 0)
        length += snprintf(out + length, (size_t)(ASY_TIMESTAMP_TEXT - length), ".%06d",
                           (int)(nanos / 1000));
    else if (nanos != 0)
        length +=
            snprintf(out + length, (size_t)(ASY_TIMESTAMP_TEXT - length), ".%09d", (int)nanos);
    snprintf(out + length, (size_t)(ASY_TIMESTAMP_TEXT - length), "Z");
    return 0;
}

size_t asy_json_utf8_prefix(const char *text, size_t length)
{
    const unsigned char *const start = (const unsigned char *)text;
    const unsigned char *p = start, *end = start + length;
    while (p < end) {
        unsigned c = *p;
        size_t extra;
        uint32_t code;
        if (c == 0)
            return (size_t)(p - start);
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            code = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            code = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            code = c & 0x07;
        } else {
            return (size_t)(p - start);
        }
        if ((size_t)(end - p) <= extra)
            return (size_t)(p - start);
        for (size_t i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return (size_t)(p - start);
            code = (code << 6) | (p[i] & 0x3f);
        }
        if ((extra == 2 && code < 0x800) || (extra == 3 && (code < 0x10000 || code > 0x10ffff)) ||
            (code >= 0xd800 && code <= 0xdfff))
            return (size_t)(p - start);
        p += extra + 1;
    }
    return length;
}

bool asy_json_utf8_valid(const char *text, size_t length)
{
    return asy_json_utf8_prefix(text, length) == length;
}

/* ---------------------------------------------------------------------------------------------
   Names. */

/* lowerCamelCase JSON name of a snake_case proto field name, as protoc computes it. */
void asy_json_name(const char *name, char *out, size_t size)
{
    size_t length = 0;
    bool upper = false;
    for (; *name && length + 1 < size; name++) {
        if (*name == '_') {
            upper = true;
            continue;
        }
        out[length++] = upper ? (char)toupper((unsigned char)*name) : *name;
        upper = false;
    }
    out[length] = '\0';
}

const ProtobufCFieldDescriptor *asy_json_find_field(const ProtobufCMessageDescriptor *desc,
                                                    const char *key)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name(desc, key);
    if (field)
        return field;
    char name[ASY_JSON_NAME_MAX];
    for (unsigned i = 0; i < desc->n_fields; i++) {
        asy_json_name(desc->fields[i].name, name, sizeof name);
        if (strcmp(name, key) == 0)
            return &desc->fields[i];
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
   Element sizes and well-known types. */

/* The bytes of one element of a repeated field: what protobuf-c's arrays step by. */
size_t asy_json_element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof(int32_t);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(int64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* The two messages JSON writes as text rather than as an object. */
bool asy_json_is_well_known(const ProtobufCMessageDescriptor *desc)
{
    return strcmp(desc->name, ASY_JSON_TIMESTAMP) == 0 || strcmp(desc->name, ASY_JSON_DATE) == 0;
}

/* One open object or array of asy_json_path_at's walk: the key whose value is being read (an
   object's), or the index of the element (an array's). */
typedef struct {
    bool array;
    bool has_key;
    size_t index;
    const char *key; /* in the text, unescaped as it stands */
    size_t key_length;
} s_open_t;

#define S_PATH_DEPTH 32

/* Skips the string whose opening quote is at text[i]: the index of its closing quote, or end
   if it runs past end. */
static size_t s_string_end(const char *text, size_t i, size_t end)
{
    for (i++; i < end; i++) {
        if (text[i] == '\\')
            i++;
        else if (text[i] == '"')
            return i;
    }
    return end;
}

bool asy_json_path_at(const char *text, size_t position, char *out, size_t size)
{
    s_open_t open[S_PATH_DEPTH];
    int depth = 0;
    bool too_deep = false;
    for (size_t i = 0; i < position && text[i]; i++) {
        char c = text[i];
        s_open_t *top = depth > 0 ? &open[depth - 1] : NULL;
        if (c == '{' || c == '[') {
            if (depth == S_PATH_DEPTH) {
                too_deep = true;
                break;
            }
            open[depth++] = (s_open_t){.array = c == '['};
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        } else if (c == ',' && top) {
            top->index++;
            top->has_key = false;
        } else if (c == '"') {
            size_t close = s_string_end(text, i, position);
            /* a string read where an object expects its key (no key yet) is the key */
            if (top && !top->array && !top->has_key) {
                top->key = text + i + 1;
                top->key_length = close - i - 1;
                top->has_key = true;
            }
            i = close;
        }
    }
    size_t used = 0;
    if (size)
        out[0] = '\0';
    for (int d = 0; !too_deep && d < depth && size; d++) {
        int n;
        if (open[d].array)
            n = snprintf(out + used, size - used, "[%zu]", open[d].index);
        else if (open[d].has_key)
            n = snprintf(out + used, size - used, "%s%.*s", used ? "." : "",
                         (int)(open[d].key_length > 200 ? 200 : open[d].key_length),
                         open[d].key);
        else
            break;
        if (n < 0 || (size_t)n >= size - used)
            return false;
        used += (size_t)n;
    }
    return !too_deep && used > 0;
}
