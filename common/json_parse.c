/*  json_parse.c: proto3 JSON -> protobuf-c messages, walking the descriptors (see json.h).

    Parsing keeps a path ("referralReceived.reasons[2]") so that every error names the field;
    the JSON line number is the caller's. Everything is malloc'ed so the generic
    protobuf_c_message_free_unpacked(message, NULL) frees a parsed message, also halfway.  */
#include "json_private.h"

#include "pseudonym.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_PATH_MAX 512
#define S_ENUM_LIST_MAX 160 /* bytes of value names an error message lists */
/* A value an error message quotes: 60 bytes at most, NHS numbers masked before the cut */
#define S_SHOWN (60 + 4)
#define S_SHOW(text, shown) asy_nhs_number_shown((text), 60, (shown), sizeof(shown))

/* protobuf-c descriptors do not carry oneof names; ours, for messages. */
static const struct {
    const char *message;
    const char *oneof;
} s_oneof_names[] = {{"advsync.v1.Event", "body"}, {"advsync.v1.Frame", "kind"}};

typedef struct {
    char path[S_PATH_MAX];
    size_t length;
    char *error;
    size_t error_size;
} s_parser_t;

static const char *s_oneof_name(const ProtobufCMessageDescriptor *desc)
{
    for (size_t i = 0; i < sizeof s_oneof_names / sizeof s_oneof_names[0]; i++)
        if (strcmp(s_oneof_names[i].message, desc->name) == 0)
            return s_oneof_names[i].oneof;
    return "oneof";
}

static size_t s_push(s_parser_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static size_t s_push(s_parser_t *self, const char *format, ...)
{
    size_t mark = self->length;
    va_list args;
    va_start(args, format);
    int written = vsnprintf(self->path + mark, S_PATH_MAX - mark, format, args);
    va_end(args);
    if (written > 0)
        self->length =
            mark + (size_t)written < S_PATH_MAX ? mark + (size_t)written : S_PATH_MAX - 1;
    return mark;
}

/* A key is text of the line like any value: masked before the path can cut it */
static size_t s_push_key(s_parser_t *self, const char *key)
{
    char shown[120 + 4];
    asy_nhs_number_shown(key, 120, shown, sizeof shown);
    return self->length ? s_push(self, ".%s", shown) : s_push(self, "%s", shown);
}

static void s_pop(s_parser_t *self, size_t mark)
{
    self->length = mark;
    self->path[mark] = '\0';
}

static int s_fail(s_parser_t *self, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(s_parser_t *self, const char *format, ...)
{
    char text[400];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (self->error && self->error_size) {
        if (self->length)
            snprintf(self->error, self->error_size, "%s: %s", self->path, text);
        else
            snprintf(self->error, self->error_size, "%s", text);
    }
    return ASY_EINVAL;
}

static int s_fail_memory(s_parser_t *self)
{
    s_fail(self, "out of memory");
    return ASY_ENOMEM;
}

static const char *s_json_type(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* ---------------------------------------------------------------------------------------------
   JSON -> scalars. */

/* Shortest of %.15g and %.17g that reads back as number: "0.1", not "0.10000000000000001",
   yet never rounds 1.0000000000000002 to a "1" that would look like an integer. */
static void s_format_real(double number, char *out, size_t size)
{
    snprintf(out, size, "%.15g", number);
    if (strtod(out, NULL) != number)
        snprintf(out, size, "%.17g", number);
}

/* The range named by its type, not by its bounds: the final masking of a refusal took
   -2147483648..2147483647 for an NHS number (2147483648 passes the check digit). */
static int s_fail_range(s_parser_t *self, const char *text, int64_t min, uint64_t max)
{
    char shown[S_SHOWN];
    const char *type = max == INT32_MAX              ? "int32"
                       : max == UINT32_MAX           ? "uint32"
                       : max == INT64_MAX && min < 0 ? "int64"
                                                     : "uint64";
    return s_fail(self, "%s is outside the range of %s (a %s-bit %s integer)", S_SHOW(text, shown),
                  type, strstr(type, "32") ? "32" : "64", min < 0 ? "signed" : "unsigned");
}

/* Checks sign and magnitude against min..max; one check serves every width and signedness.
   text is the number as the message shows it. */
static int s_check_range(s_parser_t *self, const char *text, bool negative, uint64_t magnitude,
                         int64_t min, uint64_t max, int64_t *signed_out, uint64_t *unsigned_out)
{
    uint64_t limit = !negative ? max : min < 0 ? (uint64_t)(-(min + 1)) + 1 : 0;
    if (magnitude > limit)
        return s_fail_range(self, text, min, max);
    if (negative) {
        *signed_out = magnitude ? -(int64_t)(magnitude - 1) - 1 : 0;
        *unsigned_out = (uint64_t)*signed_out;
    } else {
        *signed_out = magnitude <= INT64_MAX ? (int64_t)magnitude : INT64_MAX;
        *unsigned_out = magnitude;
    }
    return 0;
}

/* A JSON integer, an integral number, or a decimal string, within min..max (the field's
   type). Sets *signed_out for signed types, *unsigned_out for unsigned ones. */
static int s_read_integer(s_parser_t *self, json_t *value, int64_t min, uint64_t max,
                          int64_t *signed_out, uint64_t *unsigned_out)
{
    char text[32];
    if (json_is_integer(value)) {
        json_int_t number = json_integer_value(value);
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, number);
        uint64_t magnitude = number < 0 ? (uint64_t)(-(number + 1)) + 1 : (uint64_t)number;
        return s_check_range(self, text, number < 0, magnitude, min, max, signed_out, unsigned_out);
    }
    if (json_is_real(value)) {
        double number = json_real_value(value);
        s_format_real(number, text, sizeof text);
        if (number != floor(number))
            return s_fail(self, "expected an integer, got %s", text);
        if (!(fabs(number) < 18446744073709551616.0))
            return s_fail_range(self, text, min, max); // 2^64 and beyond fit no integer type
        return s_check_range(self, text, number < 0, (uint64_t)fabs(number), min, max, signed_out,
                             unsigned_out);
    }
    if (json_is_string(value)) {
        const char *digits = json_string_value(value);
        bool negative = digits[0] == '-';
        digits += negative;
        if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits)) {
            char shown[S_SHOWN];
            return s_fail(self, "expected an integer, got a string (\"%s\")",
                          S_SHOW(json_string_value(value), shown));
        }
        errno = 0;
        uint64_t magnitude = strtoull(digits, NULL, 10);
        if (errno == ERANGE)
            return s_fail_range(self, json_string_value(value), min, max);
        return s_check_range(self, json_string_value(value), negative, magnitude, min, max,
                             signed_out, unsigned_out);
    }
    return s_fail(self, "expected an integer, got %s", s_json_type(value));
}

static int s_read_double(s_parser_t *self, json_t *value, double *out)
{
    if (json_is_number(value)) {
        *out = json_number_value(value);
        return 0;
    }
    if (json_is_string(value)) {
        const char *text = json_string_value(value);
        if (strcmp(text, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(text, "Infinity") == 0 || strcmp(text, "-Infinity") == 0) {
            *out = text[0] == '-' ? -INFINITY : INFINITY;
            return 0;
        }
        char *end = NULL;
        errno = 0;
        double number = strtod(text, &end);
        if (*text && !isspace((unsigned char)*text) && end && *end == '\0' && errno == 0 &&
            isfinite(number)) {
            *out = number;
            return 0;
        }
        char shown[S_SHOWN];
        return s_fail(self, "\"%s\" is not a number", S_SHOW(text, shown));
    }
    return s_fail(self, "expected a number, got %s", s_json_type(value));
}

/* Upper-cases text into out, reading ' ' and '-' as '_'. */
static void s_enum_key(const char *text, char *out, size_t size)
{
    size_t length = 0;
    for (; *text && length + 1 < size; text++) {
        char c = *text == ' ' || *text == '-' ? '_' : *text;
        out[length++] = (char)toupper((unsigned char)c);
    }
    out[length] = '\0';
}

static bool s_same_letters(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (toupper((unsigned char)*a) != toupper((unsigned char)*b))
            return false;
    return *a == *b;
}

/* Length of the longest prefix ending in '_' that all the enum's value names share
   ("LEGAL_" for LegalStatus, "" for YesNo). */
static size_t s_common_prefix(const ProtobufCEnumDescriptor *desc)
{
    if (desc->n_values == 0)
        return 0;
    const char *first = desc->values[0].name;
    size_t length = strlen(first);
    for (unsigned i = 1; i < desc->n_values; i++) {
        size_t same = 0;
        while (same < length && desc->values[i].name[same] == first[same])
            same++;
        length = same;
    }
    while (length > 0 && first[length - 1] != '_')
        length--;
    return length;
}

/* "one of A, B, C", or, when the names would not fit a one-line message, as many whole names
   as fit and where to find the rest: a name cut short reads as a valid value that is not. */
static void s_enum_values(const ProtobufCEnumDescriptor *desc, char *out, size_t size)
{
    char names[S_ENUM_LIST_MAX] = "";
    size_t used = 0;
    unsigned listed = 0;
    for (; listed < desc->n_values; listed++) {
        const char *name = desc->values[listed].name;
        if (used + strlen(name) + 2 >= sizeof names)
            break;
        used +=
            (size_t)snprintf(names + used, sizeof names - used, "%s%s", listed ? ", " : "", name);
    }
    if (listed == desc->n_values)
        snprintf(out, size, "one of %s", names);
    else
        snprintf(out, size, "one of %u values: %s, ... and %u more; see enum %s in %s",
                 desc->n_values, names, desc->n_values - listed, desc->short_name,
                 strncmp(desc->name, "advsync.", 8) == 0 ? "proto/advsync.proto" : "its .proto");
}

/* The length of the code a value name carries after the enum's common prefix: digits, or one
   letter and digits, then '_' and a word that starts with a letter ("02" of LEGAL_02_S2, "A"
   of NHS_ETHNIC_A_WHITE_BRITISH, "A1" of SOURCE_A1_GP, "65" of AGE_65_PLUS; none in
   AGE_18_34 or SOURCE_MHA_OFFICE). 0 if none. */
static size_t s_code_length(const char *rest)
{
    size_t length = isupper((unsigned char)rest[0]) ? 1 : 0;
    while (isdigit((unsigned char)rest[length]))
        length++;
    return length > 0 && rest[length] == '_' && isalpha((unsigned char)rest[length + 1]) ? length
                                                                                         : 0;
}

/* True if key names the value whose name, after the common prefix, is rest: its words
   without the code ("s2", "white_british"), or its code ("02", "A"), digits by their number
   ("2" for 02, as a spreadsheet shows it). */
static bool s_names_by_code(const char *rest, const char *key)
{
    size_t code = s_code_length(rest);
    if (code == 0)
        return false;
    if (s_same_letters(rest + code + 1, key) ||
        (strlen(key) == code && strncasecmp(rest, key, code) == 0))
        return true;
    size_t digits = strspn(key, "0123456789");
    return isdigit((unsigned char)rest[0]) && digits > 0 && digits <= 9 && key[digits] == '\0' &&
           strtol(rest, NULL, 10) == strtol(key, NULL, 10);
}

/* Exact name; case-insensitive name; the name without the enum's common prefix ("imha" for
   SERVICE_IMHA, "black_caribbean" for ONS_BLACK_CARIBBEAN); the name without its code or the
   code alone, where it has one ("s2", "02" or "2" for LEGAL_02_S2); or the number. Nothing
   shorter: a part of a name is a guess, and guesses named the opposite ("instructed" was
   CONSENT_NON_INSTRUCTED, "stated" SEX_NOT_STATED, "2" LEGAL_05_S5_2). */
static int s_read_enum(s_parser_t *self, json_t *value, const ProtobufCEnumDescriptor *desc,
                       int *out)
{
    if (json_is_integer(value) || json_is_real(value)) {
        int64_t number = 0;
        uint64_t unused = 0;
        int rc = s_read_integer(self, value, INT64_MIN, INT64_MAX, &number, &unused);
        if (rc)
            return rc;
        if (number < INT32_MIN || number > INT32_MAX ||
            !protobuf_c_enum_descriptor_get_value(desc, (int)number))
            return s_fail(self, "%" PRId64 " is not a value of %s", number, desc->name);
        *out = (int)number;
        return 0;
    }
    if (!json_is_string(value))
        return s_fail(self, "expected an enum name (string) of %s, got %s", desc->name,
                      s_json_type(value));
    const char *text = json_string_value(value);
    const ProtobufCEnumValue *found = protobuf_c_enum_descriptor_get_value_by_name(desc, text);
    if (found) {
        *out = found->value;
        return 0;
    }
    char key[ASY_JSON_NAME_MAX];
    s_enum_key(text, key, sizeof key);
    size_t key_length = strlen(key);
    const ProtobufCEnumValue *matches[2] = {NULL, NULL};
    unsigned count = 0;
    size_t prefix = s_common_prefix(desc);
    for (unsigned i = 0; i < desc->n_values && key_length; i++) {
        const char *name = desc->values[i].name;
        size_t name_length = strlen(name);
        if (s_same_letters(name, key) ||
            (name_length == prefix + key_length && s_same_letters(name + prefix, key))) {
            *out = desc->values[i].value;
            return 0;
        }
        if (s_names_by_code(name + prefix, key)) {
            if (count < 2)
                matches[count] = &desc->values[i];
            count++;
        }
    }
    if (count == 1) {
        *out = matches[0]->value;
        return 0;
    }
    char shown[S_SHOWN];
    if (count > 1)
        return s_fail(self, "\"%s\" is ambiguous in %s (%s, %s%s)", S_SHOW(text, shown), desc->name,
                      matches[0]->name, matches[1]->name, count > 2 ? ", ..." : "");
    char names[S_ENUM_LIST_MAX + 120];
    s_enum_values(desc, names, sizeof names);
    return s_fail(self, "\"%s\" is not a value of %s (%s)", S_SHOW(text, shown), desc->name, names);
}

static int s_read_string(s_parser_t *self, json_t *value, char **out)
{
    if (!json_is_string(value))
        return s_fail(self, "expected a string, got %s", s_json_type(value));
    size_t length = json_string_length(value);
    const char *text = json_string_value(value);
    if (strlen(text) != length)
        return s_fail(self, "string contains a NUL character");
    char *copy = malloc(length + 1);
    if (!copy)
        return s_fail_memory(self);
    memcpy(copy, text, length + 1);
    *out = copy;
    return 0;
}

static int s_read_bytes(s_parser_t *self, json_t *value, ProtobufCBinaryData *out)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    if (!json_is_string(value))
        return s_fail(self, "expected base64 text, got %s", s_json_type(value));
    const char *text = json_string_value(value);
    size_t length = json_string_length(value);
    uint8_t *data = malloc(length / 4 * 3 + 3);
    if (!data)
        return s_fail_memory(self);
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        size_t size = 0;
        if (sodium_base642bin(data, length / 4 * 3 + 3, text, length, NULL, &size, NULL,
                              variants[i]) == 0) {
            out->data = data;
            out->len = size;
            return 0;
        }
    }
    free(data);
    char shown[S_SHOWN];
    return s_fail(self, "\"%s\" is not base64", S_SHOW(text, shown));
}

/* ---------------------------------------------------------------------------------------------
   JSON -> messages. */

static int s_parse_message(s_parser_t *self, json_t *value, const ProtobufCMessageDescriptor *desc,
                           ProtobufCMessage **out);

/* Writes one integer of the field's type at member, if within the type's range. */
static int s_parse_integer(s_parser_t *self, json_t *value, ProtobufCType type, void *member)
{
    int64_t number = 0;
    uint64_t unsigned_number = 0;
    int rc = 0;
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = s_read_integer(self, value, INT32_MIN, INT32_MAX, &number, &unsigned_number);
        if (rc == 0)
            *(int32_t *)member = (int32_t)number;
        return rc;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = s_read_integer(self, value, 0, UINT32_MAX, &number, &unsigned_number);
        if (rc == 0)
            *(uint32_t *)member = (uint32_t)unsigned_number;
        return rc;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = s_read_integer(self, value, INT64_MIN, INT64_MAX, &number, &unsigned_number);
        if (rc == 0)
            *(int64_t *)member = number;
        return rc;
    default: /* PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_FIXED64 */
        rc = s_read_integer(self, value, 0, UINT64_MAX, &number, &unsigned_number);
        if (rc == 0)
            *(uint64_t *)member = unsigned_number;
        return rc;
    }
}

/* Writes one float or double at member; a finite number beyond a float's range is refused. */
static int s_parse_real(s_parser_t *self, json_t *value, ProtobufCType type, void *member)
{
    double real = 0;
    int rc = s_read_double(self, value, &real);
    if (type == PROTOBUF_C_TYPE_FLOAT) {
        if (rc == 0 && isfinite(real) && fabs(real) > FLT_MAX)
            rc = s_fail(self, "%g is out of range for a float", real);
        if (rc == 0)
            *(float *)member = (float)real;
        return rc;
    }
    if (rc == 0)
        *(double *)member = real;
    return rc;
}

/* Writes one value of the field's type at member (a single field or one array element). */
static int s_parse_value(s_parser_t *self, json_t *value, const ProtobufCFieldDescriptor *field,
                         void *member)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return s_parse_integer(self, value, field->type, member);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_parse_real(self, value, field->type, member);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(value))
            return s_fail(self, "expected true or false, got %s", s_json_type(value));
        *(protobuf_c_boolean *)member = json_is_true(value);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return s_read_enum(self, value, field->descriptor, (int *)member);
    case PROTOBUF_C_TYPE_STRING:
        return s_read_string(self, value, (char **)member);
    case PROTOBUF_C_TYPE_BYTES:
        return s_read_bytes(self, value, (ProtobufCBinaryData *)member);
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_parse_message(self, value, field->descriptor, (ProtobufCMessage **)member);
    }
    return s_fail(self, "field type %d is not supported", (int)field->type);
}

static int s_parse_repeated(s_parser_t *self, json_t *value, const ProtobufCFieldDescriptor *field,
                            ProtobufCMessage *message)
{
    if (!json_is_array(value))
        return s_fail(self, "expected an array, got %s", s_json_type(value));
    size_t count = json_array_size(value);
    if (count == 0)
        return 0;
    size_t element_size = asy_json_element_size(field->type);
    char *elements = calloc(count, element_size);
    if (!elements)
        return s_fail_memory(self);
    size_t *filled = (size_t *)((char *)message + field->quantifier_offset);
    *(char **)((char *)message + field->offset) = elements;
    *filled = 0;
    for (size_t i = 0; i < count; i++) {
        size_t mark = s_push(self, "[%zu]", i);
        json_t *item = json_array_get(value, i);
        int rc = json_is_null(item) ? s_fail(self, "null is not allowed in an array")
                                    : s_parse_value(self, item, field, elements + i * element_size);
        s_pop(self, mark);
        if (rc)
            return rc; // the caller frees the message with the *filled elements made so far
        (*filled)++;
    }
    return 0;
}

static int s_parse_field(s_parser_t *self, json_t *value, const ProtobufCMessageDescriptor *desc,
                         const ProtobufCFieldDescriptor *field, ProtobufCMessage *message)
{
    char *base = (char *)message;
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return s_parse_repeated(self, value, field, message);
    uint32_t *which = NULL;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        which = (uint32_t *)(base + field->quantifier_offset);
        if (*which != 0 && *which != field->id) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(desc, (int)*which);
            char first[ASY_JSON_NAME_MAX], second[ASY_JSON_NAME_MAX];
            asy_json_name(other ? other->name : "?", first, sizeof first);
            asy_json_name(field->name, second, sizeof second);
            return s_fail(self, "only one of the oneof '%s' may be set (got %s and %s)",
                          s_oneof_name(desc), first, second);
        }
    }
    int rc = s_parse_value(self, value, field, base + field->offset);
    if (rc)
        return rc;
    if (which)
        *which = field->id;
    else if (field->label == PROTOBUF_C_LABEL_OPTIONAL && field->type != PROTOBUF_C_TYPE_STRING &&
             field->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)(base + field->quantifier_offset) = 1;
    return 0;
}

static int s_parse_fields(s_parser_t *self, json_t *object, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage *message)
{
    unsigned char *seen = calloc(desc->n_fields + 1, 1);
    if (!seen)
        return s_fail_memory(self);
    int rc = 0;
    const char *key;
    json_t *value;
    json_object_foreach(object, key, value)
    {
        size_t mark = s_push_key(self, key);
        const ProtobufCFieldDescriptor *field = asy_json_find_field(desc, key);
        if (!field)
            rc = s_fail(self, "unknown field");
        else if (seen[field - desc->fields])
            rc = s_fail(self, "given twice (as snake_case and lowerCamelCase)");
        else if (!json_is_null(value))
            rc = s_parse_field(self, value, desc, field, message);
        if (field)
            seen[field - desc->fields] = 1;
        if (rc)
            break; // keep the path of the failing field for the message
        s_pop(self, mark);
    }
    free(seen);
    return rc;
}

/* Finds a field by name in a well-known message and sets it (with its has_ flag). */
static void s_set_int(ProtobufCMessage *message, const char *name, int64_t value)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name(message->descriptor, name);
    char *base = (char *)message;
    if (field->type == PROTOBUF_C_TYPE_INT64)
        *(int64_t *)(base + field->offset) = value;
    else
        *(int32_t *)(base + field->offset) = (int32_t)value;
    *(protobuf_c_boolean *)(base + field->quantifier_offset) = 1;
}

static int s_parse_well_known(s_parser_t *self, const char *text,
                              const ProtobufCMessageDescriptor *desc, ProtobufCMessage *message)
{
    char shown[S_SHOWN];
    if (strcmp(desc->name, ASY_JSON_TIMESTAMP) == 0) {
        int64_t seconds;
        int32_t nanos;
        if (asy_json_parse_timestamp(text, &seconds, &nanos) != 0)
            return s_fail(self,
                          "\"%s\" is not an RFC 3339 timestamp "
                          "(e.g. 2026-01-05T10:00:00Z or 2026-01-05T10:00:00.5+01:00)",
                          S_SHOW(text, shown));
        s_set_int(message, "seconds", seconds);
        if (nanos)
            s_set_int(message, "nanos", nanos);
        return 0;
    }
    int32_t year, month, day;
    if (asy_json_parse_date(text, &year, &month, &day) != 0)
        return s_fail(self, "\"%s\" is not a calendar date YYYY-MM-DD", S_SHOW(text, shown));
    s_set_int(message, "year", year);
    s_set_int(message, "month", month);
    s_set_int(message, "day", day);
    return 0;
}

static int s_parse_message(s_parser_t *self, json_t *value, const ProtobufCMessageDescriptor *desc,
                           ProtobufCMessage **out)
{
    *out = NULL;
    bool well_known = asy_json_is_well_known(desc);
    if (!json_is_object(value) && !(well_known && json_is_string(value)))
        return s_fail(self, "expected %s, got %s",
                      !well_known                                   ? "an object"
                      : strcmp(desc->name, ASY_JSON_TIMESTAMP) == 0 ? "RFC 3339 timestamp text"
                                                                    : "a date \"YYYY-MM-DD\"",
                      s_json_type(value));
    ProtobufCMessage *message = calloc(1, desc->sizeof_message);
    if (!message)
        return s_fail_memory(self);
    desc->message_init(message);
    int rc = json_is_string(value)
                 ? s_parse_well_known(self, json_string_value(value), desc, message)
                 : s_parse_fields(self, value, desc, message);
    if (rc) {
        protobuf_c_message_free_unpacked(message, NULL);
        return rc;
    }
    *out = message;
    return 0;
}

int asy_json_to_message(json_t *value, const ProtobufCMessageDescriptor *desc,
                        ProtobufCMessage **out, char *error, size_t error_size)
{
    s_parser_t parser = {.length = 0, .error = error, .error_size = error_size};
    parser.path[0] = '\0';
    if (error && error_size)
        error[0] = '\0';
    if (!value) {
        *out = NULL;
        return s_fail(&parser, "no JSON value");
    }
    return s_parse_message(&parser, value, desc, out);
}
