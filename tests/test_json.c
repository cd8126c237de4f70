/*  test_json.c: the descriptor-driven proto3 JSON mapper (common/json*.c).

    Our schema has no float, bytes or sint fields, so a small test message "jt.All" with every
    scalar kind is described here by hand (as protoc-c would generate it).  */
#include "advsync.pb-c.h"
#include "json.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
   jt.All: every scalar kind, repeated, nested, oneof. */

typedef struct s_all s_all_t;
struct s_all {
    ProtobufCMessage base;
    protobuf_c_boolean has_i32;
    int32_t i32;
    protobuf_c_boolean has_i64;
    int64_t i64;
    protobuf_c_boolean has_u32;
    uint32_t u32;
    protobuf_c_boolean has_u64;
    uint64_t u64;
    protobuf_c_boolean has_s32;
    int32_t s32;
    protobuf_c_boolean has_s64;
    int64_t s64;
    protobuf_c_boolean has_f32;
    uint32_t f32;
    protobuf_c_boolean has_f64;
    uint64_t f64;
    protobuf_c_boolean has_sf32;
    int32_t sf32;
    protobuf_c_boolean has_sf64;
    int64_t sf64;
    protobuf_c_boolean has_flag;
    protobuf_c_boolean flag;
    char *text_value;
    protobuf_c_boolean has_blob;
    ProtobufCBinaryData blob;
    protobuf_c_boolean has_real32;
    float real32;
    protobuf_c_boolean has_real64;
    double real64;
    protobuf_c_boolean has_colour;
    int colour;
    size_t n_many;
    int64_t *many;
    size_t n_names;
    char **names;
    size_t n_colours;
    int *colours;
    size_t n_blobs;
    ProtobufCBinaryData *blobs;
    s_all_t *child;
    size_t n_children;
    s_all_t **children;
    uint32_t choice_case;
    union {
        char *choice_text;
        s_all_t *choice_child;
    };
};

static const ProtobufCEnumValue s_colour_values[] = {
    {"COLOUR_NOT_RECORDED", "JT__COLOUR__COLOUR_NOT_RECORDED", 0},
    {"COLOUR_BRIGHT_RED", "JT__COLOUR__COLOUR_BRIGHT_RED", 1},
    {"COLOUR_DARK_RED", "JT__COLOUR__COLOUR_DARK_RED", 2},
    {"COLOUR_GREEN", "JT__COLOUR__COLOUR_GREEN", 3},
};
static const ProtobufCIntRange s_colour_ranges[] = {{0, 0}, {0, 4}};
static const ProtobufCEnumValueIndex s_colour_by_name[] = {{"COLOUR_BRIGHT_RED", 1},
                                                           {"COLOUR_DARK_RED", 2},
                                                           {"COLOUR_GREEN", 3},
                                                           {"COLOUR_NOT_RECORDED", 0}};
static const ProtobufCEnumDescriptor s_colour_descriptor = {PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC,
                                                            "jt.Colour",
                                                            "Colour",
                                                            "Jt__Colour",
                                                            "jt",
                                                            4,
                                                            s_colour_values,
                                                            4,
                                                            s_colour_by_name,
                                                            1,
                                                            s_colour_ranges,
                                                            NULL,
                                                            NULL,
                                                            NULL,
                                                            NULL};

static const ProtobufCMessageDescriptor s_all_descriptor;

#define S_FIELD(name, id, label, type, quantifier, desc, flags)                                    \
    {                                                                                              \
#name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type, quantifier,                   \
            offsetof(s_all_t, name), desc, NULL, flags, 0, NULL, NULL                              \
    }
#define S_OPTIONAL(name, id, type, desc)                                                           \
    S_FIELD(name, id, OPTIONAL, type, offsetof(s_all_t, has_##name), desc, 0)
#define S_REPEATED(name, id, type, desc)                                                           \
    S_FIELD(name, id, REPEATED, type, offsetof(s_all_t, n_##name), desc, 0)

static const ProtobufCFieldDescriptor s_all_fields[] = {
    S_OPTIONAL(i32, 1, INT32, NULL),
    S_OPTIONAL(i64, 2, INT64, NULL),
    S_OPTIONAL(u32, 3, UINT32, NULL),
    S_OPTIONAL(u64, 4, UINT64, NULL),
    S_OPTIONAL(s32, 5, SINT32, NULL),
    S_OPTIONAL(s64, 6, SINT64, NULL),
    S_OPTIONAL(f32, 7, FIXED32, NULL),
    S_OPTIONAL(f64, 8, FIXED64, NULL),
    S_OPTIONAL(sf32, 9, SFIXED32, NULL),
    S_OPTIONAL(sf64, 10, SFIXED64, NULL),
    S_OPTIONAL(flag, 11, BOOL, NULL),
    S_FIELD(text_value, 12, OPTIONAL, STRING, 0, NULL, 0),
    S_OPTIONAL(blob, 13, BYTES, NULL),
    S_OPTIONAL(real32, 14, FLOAT, NULL),
    S_OPTIONAL(real64, 15, DOUBLE, NULL),
    S_OPTIONAL(colour, 16, ENUM, &s_colour_descriptor),
    S_REPEATED(many, 17, INT64, NULL),
    S_REPEATED(names, 18, STRING, NULL),
    S_REPEATED(colours, 19, ENUM, &s_colour_descriptor),
    S_REPEATED(blobs, 20, BYTES, NULL),
    S_FIELD(child, 21, OPTIONAL, MESSAGE, 0, &s_all_descriptor, 0),
    S_REPEATED(children, 22, MESSAGE, &s_all_descriptor),
    S_FIELD(choice_text, 30, OPTIONAL, STRING, offsetof(s_all_t, choice_case), NULL,
            PROTOBUF_C_FIELD_FLAG_ONEOF),
    S_FIELD(choice_child, 31, OPTIONAL, MESSAGE, offsetof(s_all_t, choice_case), &s_all_descriptor,
            PROTOBUF_C_FIELD_FLAG_ONEOF),
};
static const unsigned s_all_by_name[] = {12, 19, 20, 21, 23, 22, 15, 18, 6, 7,  10, 0,
                                         1,  16, 17, 13, 14, 4,  5,  8,  9, 11, 2,  3};
static const ProtobufCIntRange s_all_ranges[] = {{1, 0}, {30, 22}, {0, 24}};

static void s_all_init(ProtobufCMessage *message)
{
    memset(message, 0, sizeof(s_all_t));
    message->descriptor = &s_all_descriptor;
}

static const ProtobufCMessageDescriptor s_all_descriptor = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                            "jt.All",
                                                            "All",
                                                            "Jt__All",
                                                            "jt",
                                                            sizeof(s_all_t),
                                                            24,
                                                            s_all_fields,
                                                            s_all_by_name,
                                                            2,
                                                            s_all_ranges,
                                                            s_all_init,
                                                            NULL,
                                                            NULL,
                                                            NULL};

/* ---------------------------------------------------------------------------------------------
   Helpers. */

static char s_error[512];

/* Parses text as desc; returns the rc, *out set on success. */
static int s_parse(const char *text, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    json_error_t json_error;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &json_error);
    cr_assert_not_null(value, "bad test JSON %s: %s", text, json_error.text);
    s_error[0] = '\0';
    *out = NULL;
    int rc = asy_json_to_message(value, desc, out, s_error, sizeof s_error);
    json_decref(value);
    if (rc)
        cr_assert_null(*out);
    return rc;
}

static s_all_t *s_all(const char *text)
{
    ProtobufCMessage *message = NULL;
    cr_assert_eq(s_parse(text, &s_all_descriptor, &message), 0, "%s: %s", text, s_error);
    return (s_all_t *)message;
}

/* Asserts that text fails to parse with an error containing each of the fragments. */
static void s_refused(const char *text, const ProtobufCMessageDescriptor *desc,
                      const char *fragment, const char *fragment2)
{
    ProtobufCMessage *message = NULL;
    cr_assert_eq(s_parse(text, desc, &message), ASY_EINVAL, "accepted %s", text);
    cr_assert(strstr(s_error, fragment), "error \"%s\" lacks \"%s\"", s_error, fragment);
    if (fragment2)
        cr_assert(strstr(s_error, fragment2), "error \"%s\" lacks \"%s\"", s_error, fragment2);
}

/* JSON text of a message (compact, keys in field order). Caller frees. */
static char *s_dump(const ProtobufCMessage *message)
{
    json_t *value = asy_json_from_message(message);
    cr_assert_not_null(value);
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    return text;
}

static int s_enum_of(const char *field, const char *spelling)
{
    char text[256];
    snprintf(text, sizeof text, "{\"%s\":\"%s\"}", field, spelling);
    s_all_t *all = s_all(text);
    int value = all->colour;
    protobuf_c_message_free_unpacked(&all->base, NULL);
    return value;
}

/* Packs a message into a malloc'ed buffer. */
static uint8_t *s_pack(const ProtobufCMessage *message, size_t *size)
{
    *size = protobuf_c_message_get_packed_size(message);
    uint8_t *data = malloc(*size + 1);
    cr_assert_not_null(data);
    protobuf_c_message_pack(message, data);
    return data;
}

/* message -> JSON -> message gives the same bytes. */
static void s_round_trip(const ProtobufCMessage *message)
{
    size_t size = 0, size2 = 0;
    uint8_t *bytes = s_pack(message, &size);
    json_t *value = asy_json_from_message(message);
    cr_assert_not_null(value);
    ProtobufCMessage *again = NULL;
    int rc = asy_json_to_message(value, message->descriptor, &again, s_error, sizeof s_error);
    json_decref(value);
    cr_assert_eq(rc, 0, "%s", s_error);
    uint8_t *bytes2 = s_pack(again, &size2);
    cr_assert_eq(size, size2);
    cr_assert_eq(memcmp(bytes, bytes2, size), 0);
    free(bytes);
    free(bytes2);
    protobuf_c_message_free_unpacked(again, NULL);
}

/* ---------------------------------------------------------------------------------------------
   Scalars. */

/* The field a parser stopped in, from its byte position (jansson's json_error_t.position:
   the end of a duplicate key or of a number too big). */
Test(json, the_path_at_a_position_names_the_key_or_element)
{
    char path[64];
    const char *text = "{\"a\":{\"b\":[1,{\"c\":1,\"c\":2}]}}";
    cr_assert(asy_json_path_at(text, 23, path, sizeof path)); /* the second "c" */
    cr_assert_str_eq(path, "a.b[1].c");
    cr_assert(asy_json_path_at(text, 12, path, sizeof path)); /* the end of b's 1 */
    cr_assert_str_eq(path, "a.b[0]");
    cr_assert(asy_json_path_at(text, 5, path, sizeof path)); /* after the key a */
    cr_assert_str_eq(path, "a");
    cr_assert_not(asy_json_path_at(text, 1, path, sizeof path), "no key yet: %s", path);
    /* commas, colons and brackets inside strings, and escaped quotes, are text */
    text = "{\"k,[\\\"\":\"v]},\\\"\",\"n\":123456789012345678901234}";
    cr_assert(asy_json_path_at(text, strlen(text) - 1, path, sizeof path));
    cr_assert_str_eq(path, "n");
    cr_assert(asy_json_path_at(text, 8, path, sizeof path));
    cr_assert_str_eq(path, "k,[\\\"");
    /* an object closed: back to the outer key */
    text = "{\"a\":{\"b\":1},\"c\":2}";
    cr_assert(asy_json_path_at(text, 17, path, sizeof path));
    cr_assert_str_eq(path, "c");
    /* too small an out */
    cr_assert_not(asy_json_path_at("{\"long_key\":1}", 12, path, 4));
    /* deeper than 32 */
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    cr_assert_not(asy_json_path_at(deep, 40, path, sizeof path));
}

Test(json, every_scalar_kind)
{
    s_all_t *all = s_all("{\"i32\":-5,\"i64\":\"-9000000000\",\"u32\":\"4294967295\","
                         "\"u64\":\"18446744073709551615\",\"s32\":-2147483648,\"s64\":7,"
                         "\"f32\":12,\"f64\":\"13\",\"sf32\":-14,\"sf64\":-15,\"flag\":false,"
                         "\"textValue\":\"caf\\u00e9\",\"blob\":\"AAEC/w==\",\"real32\":1.5,"
                         "\"real64\":\"-Infinity\",\"colour\":\"COLOUR_GREEN\"}");
    cr_assert(all->has_i32 && all->i32 == -5);
    cr_assert(all->has_i64 && all->i64 == -9000000000LL);
    cr_assert(all->has_u32 && all->u32 == UINT32_MAX);
    cr_assert(all->has_u64 && all->u64 == UINT64_MAX);
    cr_assert(all->has_s32 && all->s32 == INT32_MIN);
    cr_assert(all->has_s64 && all->s64 == 7);
    cr_assert(all->has_f32 && all->f32 == 12);
    cr_assert(all->has_f64 && all->f64 == 13);
    cr_assert(all->has_sf32 && all->sf32 == -14);
    cr_assert(all->has_sf64 && all->sf64 == -15);
    cr_assert(all->has_flag && !all->flag, "false is present, not absent");
    cr_assert_str_eq(all->text_value, "caf\xc3\xa9");
    cr_assert(all->has_blob && all->blob.len == 4);
    cr_assert_eq(memcmp(all->blob.data, "\x00\x01\x02\xff", 4), 0);
    cr_assert(all->has_real32 && all->real32 == 1.5f);
    cr_assert(all->has_real64 && isinf(all->real64) && all->real64 < 0);
    cr_assert(all->has_colour && all->colour == 3);

    char *text = s_dump(&all->base);
    cr_assert_str_eq(text, "{\"i32\":-5,\"i64\":\"-9000000000\",\"u32\":4294967295,"
                           "\"u64\":\"18446744073709551615\",\"s32\":-2147483648,\"s64\":\"7\","
                           "\"f32\":12,\"f64\":\"13\",\"sf32\":-14,\"sf64\":\"-15\","
                           "\"flag\":false,\"textValue\":\"caf\xc3\xa9\",\"blob\":\"AAEC/w==\","
                           "\"real32\":1.5,\"real64\":\"-Infinity\",\"colour\":\"COLOUR_GREEN\"}");
    free(text);
    s_round_trip(&all->base);
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

Test(json, integers_as_strings_and_integral_numbers)
{
    s_all_t *all = s_all("{\"i32\":\"-42\",\"i64\":9007199254740993,\"u32\":3.0,\"s64\":\"-1\"}");
    cr_assert_eq(all->i32, -42);
    cr_assert_eq(all->i64, 9007199254740993LL);
    cr_assert_eq(all->u32, 3u);
    cr_assert_eq(all->s64, -1);
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

Test(json, bad_scalars_name_the_field)
{
    s_refused("{\"i32\":2147483649}", &s_all_descriptor,
              "i32: 2147483649 is outside the range of int32 (a 32-bit signed integer)", NULL);
    /* a quoted value that reads as an NHS number (2^31 does: its check digit fits) is
       masked, however it came; and masked before it is cut to 60 bytes */
    s_refused("{\"i32\":2147483648}", &s_all_descriptor,
              "i32: <NHS number> is outside the range of int32", NULL);
    s_refused("{\"i32\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa9434765919\"}",
              &s_all_descriptor, "expected an integer, got a string (\"aaaa", "a<NHS num...\")");
    cr_assert_null(strstr(s_error, "943476591"), "nine digits left by the cut: %s", s_error);
    s_refused("{\"u32\":-1}", &s_all_descriptor,
              "u32: -1 is outside the range of uint32 (a 32-bit unsigned integer)", NULL);
    s_refused("{\"u64\":\"-1\"}", &s_all_descriptor, "u64: -1 is outside the range of uint64",
              NULL);
    s_refused("{\"i64\":\"12x\"}", &s_all_descriptor,
              "i64: expected an integer, got a string (\"12x\")", NULL);
    s_refused("{\"i64\":\"99999999999999999999\"}", &s_all_descriptor,
              "i64: 99999999999999999999 is outside the range of int64", NULL);
    s_refused("{\"i32\":1.5}", &s_all_descriptor, "i32: expected an integer, got 1.5", NULL);
    s_refused("{\"flag\":\"true\"}", &s_all_descriptor, "flag: ", "true or false");
    s_refused("{\"textValue\":5}", &s_all_descriptor, "textValue: ", "expected a string");
    s_refused("{\"blob\":\"**\"}", &s_all_descriptor, "blob: ", "base64");
    s_refused("{\"real64\":\"lots\"}", &s_all_descriptor, "real64: ", "not a number");
    s_refused("{\"real32\":1e300}", &s_all_descriptor, "real32: ", "out of range");
    s_refused("{\"child\":5}", &s_all_descriptor, "child: ", "expected an object");
    s_refused("[1]", &s_all_descriptor, "expected an object", NULL);
}

/* The message says what is wrong: not a number at all, not whole, or outside the type. */
Test(json, integer_errors_say_what_is_wrong)
{
    ProtobufCMessage *message = NULL;
    cr_assert_eq(
        s_parse("{\"minutes\":\"ten\"}", &advsync__v1__activity_logged__descriptor, &message),
        ASY_EINVAL);
    cr_assert_str_eq(s_error, "minutes: expected an integer, got a string (\"ten\")");
    cr_assert_eq(s_parse("{\"minutes\":1.5}", &advsync__v1__activity_logged__descriptor, &message),
                 ASY_EINVAL);
    cr_assert_str_eq(s_error, "minutes: expected an integer, got 1.5");
    cr_assert_eq(
        s_parse("{\"minutes\":70000000000}", &advsync__v1__activity_logged__descriptor, &message),
        ASY_EINVAL);
    cr_assert_str_eq(
        s_error, "minutes: 70000000000 is outside the range of int32 (a 32-bit signed integer)");
    cr_assert_eq(s_parse("{\"minutes\":true}", &advsync__v1__activity_logged__descriptor, &message),
                 ASY_EINVAL);
    cr_assert_str_eq(s_error, "minutes: expected an integer, got a boolean");

    s_refused("{\"i32\":7e10}", &s_all_descriptor, "i32: 70000000000 is outside the range of int32",
              NULL);
    s_refused("{\"u64\":1e20}", &s_all_descriptor, "u64: 1e+20 is outside the range of uint64",
              NULL);
    s_refused("{\"i64\":\"-9223372036854775809\"}", &s_all_descriptor, "is outside", NULL);
    s_refused("{\"u32\":\"\"}", &s_all_descriptor, "u32: expected an integer, got a string (\"\")",
              NULL);
    s_refused("{\"i32\":1.0000000000000002}", &s_all_descriptor,
              "i32: expected an integer, got 1.0000000000000002", NULL);
    s_all_t *all =
        s_all("{\"i32\":-2147483648,\"u32\":\"4294967295\",\"i64\":\"-9223372036854775808\","
              "\"u64\":\"18446744073709551615\",\"s32\":\"-0\"}");
    cr_assert_eq(all->i32, INT32_MIN);
    cr_assert_eq(all->u32, UINT32_MAX);
    cr_assert_eq(all->i64, INT64_MIN);
    cr_assert_eq(all->u64, UINT64_MAX);
    cr_assert_eq(all->s32, 0);
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

Test(json, null_is_absent_and_snake_case_is_accepted)
{
    s_all_t *all = s_all("{\"i32\":null,\"text_value\":\"x\",\"choice_text\":null}");
    cr_assert(!all->has_i32);
    cr_assert_str_eq(all->text_value, "x");
    cr_assert_eq(all->choice_case, 0u);
    protobuf_c_message_free_unpacked(&all->base, NULL);
    s_refused("{\"text_value\":\"x\",\"textValue\":\"y\"}", &s_all_descriptor,
              "textValue: ", "given twice");
}

Test(json, nan_and_infinity_round_trip)
{
    s_all_t *all = s_all("{\"real64\":\"NaN\",\"real32\":\"Infinity\"}");
    cr_assert(isnan(all->real64));
    char *text = s_dump(&all->base);
    cr_assert_str_eq(text, "{\"real32\":\"Infinity\",\"real64\":\"NaN\"}");
    free(text);
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

/* ---------------------------------------------------------------------------------------------
   Enums. */

Test(json, enum_spellings)
{
    cr_assert_eq(s_enum_of("colour", "COLOUR_DARK_RED"), 2, "exact");
    cr_assert_eq(s_enum_of("colour", "colour_dark_red"), 2, "case-insensitive");
    cr_assert_eq(s_enum_of("colour", "dark_red"), 2, "without the common prefix");
    cr_assert_eq(s_enum_of("colour", "Dark Red"), 2, "with a space");
    cr_assert_eq(s_enum_of("colour", "Green"), 3, "without the common prefix, capitalised");
    cr_assert_eq(s_enum_of("colour", "bright-red"), 1, "without the prefix, with a hyphen");
    cr_assert_eq(s_enum_of("colour", "colour_bright_red"), 1, "case-insensitive");
    s_all_t *all = s_all("{\"colour\":1}");
    cr_assert_eq(all->colour, 1, "number");
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

Test(json, enum_errors_name_path_value_and_type)
{
    s_refused("{\"colour\":\"red\"}", &s_all_descriptor,
              "colour: \"red\" is not a value of jt.Colour", "COLOUR_BRIGHT_RED, COLOUR_DARK_RED");
    s_refused("{\"colour\":\"blue\"}", &s_all_descriptor,
              "colour: \"blue\" is not a value of jt.Colour", "COLOUR_GREEN");
    s_refused("{\"colour\":9}", &s_all_descriptor, "colour: 9 is not a value of jt.Colour", NULL);
    s_refused("{\"colour\":\"\"}", &s_all_descriptor, "not a value of jt.Colour", NULL);
    s_refused("{\"colour\":true}", &s_all_descriptor, "colour: expected an enum name", NULL);
}

/* A short enum lists every value; a long one lists whole names and says how many are left
   out and where they are: a name cut short would read as a valid value. */
Test(json, enum_errors_list_whole_names)
{
    s_refused("{\"colour\":\"blue\"}", &s_all_descriptor,
              "colour: \"blue\" is not a value of jt.Colour (one of COLOUR_NOT_RECORDED, "
              "COLOUR_BRIGHT_RED, COLOUR_DARK_RED, COLOUR_GREEN)",
              NULL);
    cr_assert(s_error[strlen(s_error) - 1] == ')', "%s", s_error);

    const ProtobufCEnumDescriptor *legal = &advsync__v1__legal_status__descriptor;
    char expected[64];
    snprintf(expected, sizeof expected, "(one of %u values: LEGAL_NOT_RECORDED, ", legal->n_values);
    s_refused("{\"legalStatus\":\"nope\"}", &advsync__v1__qualifying__descriptor,
              "legalStatus: \"nope\" is not a value of advsync.v1.LegalStatus ", expected);
    const char *tail = strstr(s_error, ", ... and ");
    cr_assert_not_null(tail, "%s", s_error);
    cr_assert(strstr(tail, " more; see enum LegalStatus in proto/advsync.proto)"), "%s", s_error);
    cr_assert(s_error[strlen(s_error) - 1] == ')', "%s", s_error);
    /* every name before the "..." is a whole value name */
    const char *name = strstr(s_error, "values: ") + strlen("values: ");
    unsigned whole = 0;
    while (name < tail) {
        size_t length = strcspn(name, ",");
        char value[64];
        snprintf(value, sizeof value, "%.*s", (int)length, name);
        cr_assert_not_null(protobuf_c_enum_descriptor_get_value_by_name(legal, value),
                           "\"%s\" is not a whole name in %s", value, s_error);
        whole++;
        name += length + 2;
    }
    cr_assert_gt(whole, 3u);
    snprintf(expected, sizeof expected, "and %u more", legal->n_values - whole);
    cr_assert(strstr(tail, expected), "%s lacks %s", s_error, expected);

    s_refused("{\"reasons\":[\"mha_rights\",\"x\"]}", &advsync__v1__referral_received__descriptor,
              "reasons[1]: \"x\" is not a value of advsync.v1.ReferralReason (one of ",
              "; see enum ReferralReason in proto/advsync.proto)");
}

Test(json, enum_spellings_of_the_schema)
{
    ProtobufCMessage *message = NULL;
    cr_assert_eq(
        s_parse("{\"service\":\"imha\"}", &advsync__v1__referral_received__descriptor, &message), 0,
        "%s", s_error);
    cr_assert_eq(((Advsync__V1__ReferralReceived *)message)->service,
                 ADVSYNC__V1__SERVICE_TYPE__SERVICE_IMHA);
    protobuf_c_message_free_unpacked(message, NULL);

    cr_assert_eq(s_parse("{\"ons2021Ethnicity\":\"white_british\",\"sex\":\"Female\"}",
                         &advsync__v1__person_profile__descriptor, &message),
                 0, "%s", s_error);
    cr_assert_eq(((Advsync__V1__PersonProfile *)message)->ons2021_ethnicity,
                 ADVSYNC__V1__ETHNICITY_ONS2021__ONS_WHITE_BRITISH);
    cr_assert_eq(((Advsync__V1__PersonProfile *)message)->sex, ADVSYNC__V1__SEX__SEX_FEMALE);
    protobuf_c_message_free_unpacked(message, NULL);

    cr_assert_eq(
        s_parse("{\"legalStatus\":\"s2\"}", &advsync__v1__qualifying__descriptor, &message), 0,
        "%s", s_error);
    cr_assert_eq(((Advsync__V1__Qualifying *)message)->legal_status,
                 ADVSYNC__V1__LEGAL_STATUS__LEGAL_02_S2);
    protobuf_c_message_free_unpacked(message, NULL);

    cr_assert_eq(s_parse("{\"ons2021Ethnicity\":\"black_caribbean\"}",
                         &advsync__v1__person_profile__descriptor, &message),
                 0, "%s", s_error);
    cr_assert_eq(((Advsync__V1__PersonProfile *)message)->ons2021_ethnicity,
                 ADVSYNC__V1__ETHNICITY_ONS2021__ONS_BLACK_CARIBBEAN,
                 "the name without the prefix wins over a longer name with that suffix");
    protobuf_c_message_free_unpacked(message, NULL);
    /* a part of a name is a guess, and the guesses named the opposite */
    static const struct {
        const ProtobufCMessageDescriptor *type;
        const char *field, *text;
    } guesses[] = {
        {&advsync__v1__person_profile__descriptor, "ons2021Ethnicity", "caribbean"},
        {&advsync__v1__person_profile__descriptor, "ons2021Ethnicity", "asian"},
        {&advsync__v1__person_profile__descriptor, "nhsEthnicCategory", "asian"},
        {&advsync__v1__person_profile__descriptor, "sex", "stated"},
        {&advsync__v1__qualifying__descriptor, "legalStatus", "guardianship"},
        {&advsync__v1__qualifying__descriptor, "legalStatus", "s5"},
    };
    for (size_t i = 0; i < sizeof guesses / sizeof guesses[0]; i++) {
        char json[96], said[96];
        snprintf(json, sizeof json, "{\"%s\":\"%s\"}", guesses[i].field, guesses[i].text);
        snprintf(said, sizeof said, "%s: \"%s\" is not a value of", guesses[i].field,
                 guesses[i].text);
        s_refused(json, guesses[i].type, said, NULL);
    }
    /* a value's code, or its name without the code: digits by their number */
    static const struct {
        const ProtobufCMessageDescriptor *type;
        const char *field, *text;
        int value;
        const char *member;
    } codes[] = {
        {&advsync__v1__qualifying__descriptor, "legalStatus", "4", 4, "legal_status"},
        {&advsync__v1__qualifying__descriptor, "legalStatus", "04", 4, "legal_status"},
        {&advsync__v1__qualifying__descriptor, "legalStatus", "03", 3, "legal_status"},
        {&advsync__v1__qualifying__descriptor, "legalStatus", "S5 2", 5, "legal_status"},
        {&advsync__v1__qualifying__descriptor, "legalStatus", "s7_guardianship", 35,
         "legal_status"},
        {&advsync__v1__person_profile__descriptor, "nhsEthnicCategory", "A", 1,
         "nhs_ethnic_category"},
        {&advsync__v1__person_profile__descriptor, "nhsEthnicCategory", "white british", 1,
         "nhs_ethnic_category"},
        {&advsync__v1__person_profile__descriptor, "nhsEthnicCategory", "99", 18,
         "nhs_ethnic_category"},
        {&advsync__v1__person_profile__descriptor, "ageBand", "65", 6, "age_band"},
        {&advsync__v1__person_profile__descriptor, "ageBand", "plus", 6, "age_band"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char json[96];
        snprintf(json, sizeof json, "{\"%s\":\"%s\"}", codes[i].field, codes[i].text);
        cr_assert_eq(s_parse(json, codes[i].type, &message), 0, "%s: %s", json, s_error);
        const ProtobufCFieldDescriptor *field =
            protobuf_c_message_descriptor_get_field_by_name(codes[i].type, codes[i].member);
        cr_assert_not_null(field);
        int got = *(const int *)((const char *)message + field->offset);
        cr_assert_eq(got, codes[i].value, "%s", json);
        protobuf_c_message_free_unpacked(message, NULL);
    }
    s_refused("{\"ageBand\":\"34\"}", &advsync__v1__person_profile__descriptor,
              "ageBand: \"34\" is not a value of", NULL);
}

/* ---------------------------------------------------------------------------------------------
   Repeated, nested, oneof. */

Test(json, repeated_fields)
{
    s_all_t *all = s_all("{\"many\":[1,\"-2\",3],\"names\":[\"a\",\"b\"],"
                         "\"colours\":[\"green\",2,\"COLOUR_BRIGHT_RED\"],\"blobs\":[\"\",\"AQ\"],"
                         "\"children\":[{\"i32\":1},{}]}");
    cr_assert_eq(all->n_many, 3u);
    cr_assert_eq(all->many[1], -2);
    cr_assert_eq(all->n_names, 2u);
    cr_assert_str_eq(all->names[1], "b");
    cr_assert_eq(all->n_colours, 3u);
    cr_assert_eq(all->colours[0], 3);
    cr_assert_eq(all->colours[2], 1);
    cr_assert_eq(all->n_blobs, 2u);
    cr_assert_eq(all->blobs[0].len, 0u);
    cr_assert_eq(all->blobs[1].len, 1u);
    cr_assert_eq(all->n_children, 2u);
    cr_assert_eq(all->children[0]->i32, 1);
    char *text = s_dump(&all->base);
    cr_assert_str_eq(text,
                     "{\"many\":[\"1\",\"-2\",\"3\"],\"names\":[\"a\",\"b\"],"
                     "\"colours\":[\"COLOUR_GREEN\",\"COLOUR_DARK_RED\",\"COLOUR_BRIGHT_RED\"],"
                     "\"blobs\":[\"\",\"AQ==\"],\"children\":[{\"i32\":1},{}]}");
    free(text);
    s_round_trip(&all->base);
    protobuf_c_message_free_unpacked(&all->base, NULL);

    s_refused("{\"colours\":[\"green\",\"red\",\"purple\"]}", &s_all_descriptor,
              "colours[1]: ", "not a value");
    s_refused("{\"names\":[\"a\",\"b\",3]}", &s_all_descriptor, "names[2]: ", "expected a string");
    s_refused("{\"names\":[null]}", &s_all_descriptor, "names[0]: ", "null");
    s_refused("{\"names\":\"a\"}", &s_all_descriptor, "names: expected an array", NULL);
}

Test(json, nested_errors_have_full_paths)
{
    s_all_t *all = s_all("{\"child\":{\"child\":{\"i32\":7}}}");
    cr_assert_eq(all->child->child->i32, 7);
    protobuf_c_message_free_unpacked(&all->base, NULL);
    s_refused("{\"child\":{\"children\":[{},{\"flag\":1}]}}", &s_all_descriptor,
              "child.children[1].flag: expected true or false", NULL);
    s_refused("{\"child\":{\"nope\":1}}", &s_all_descriptor, "child.nope: unknown field", NULL);
    s_refused("{\"referralReceived\":{\"foo\":1}}", &advsync__v1__event__descriptor,
              "referralReceived.foo: unknown field", NULL);
    s_refused("{\"referralReceived\":{\"reasons\":[\"REASON_CTO\",\"housing\",\"x\"]}}",
              &advsync__v1__event__descriptor, "referralReceived.reasons[2]: \"x\" is not a value",
              "advsync.v1.ReferralReason");
}

Test(json, oneof)
{
    s_all_t *all = s_all("{\"choiceChild\":{}}");
    cr_assert_eq(all->choice_case, 31u, "an empty member still sets the case");
    cr_assert_not_null(all->choice_child);
    s_round_trip(&all->base);
    protobuf_c_message_free_unpacked(&all->base, NULL);
    s_refused("{\"choiceText\":\"a\",\"choiceChild\":{}}", &s_all_descriptor,
              "choiceChild: only one of the oneof 'oneof' may be set (got choiceText and "
              "choiceChild)",
              NULL);
    s_refused("{\"contactMade\":{},\"referral_received\":{\"service\":1}}",
              &advsync__v1__event__descriptor,
              "only one of the oneof 'body' may be set (got contactMade and referralReceived)",
              NULL);

    ProtobufCMessage *message = NULL;
    cr_assert_eq(s_parse("{\"contactMade\":{}}", &advsync__v1__event__descriptor, &message), 0);
    Advsync__V1__Event *event = (Advsync__V1__Event *)message;
    cr_assert_eq(event->body_case, ADVSYNC__V1__EVENT__BODY_CONTACT_MADE);
    size_t size = 0;
    uint8_t *bytes = s_pack(message, &size);
    cr_assert_eq(size, 3u, "tag 112 + empty length");
    Advsync__V1__Event *decoded = advsync__v1__event__unpack(NULL, size, bytes);
    cr_assert_eq(decoded->body_case, ADVSYNC__V1__EVENT__BODY_CONTACT_MADE);
    advsync__v1__event__free_unpacked(decoded, NULL);
    free(bytes);
    protobuf_c_message_free_unpacked(message, NULL);
}

/* ---------------------------------------------------------------------------------------------
   Timestamp and Date. */

Test(json, timestamp_parse)
{
    int64_t seconds = 0;
    int32_t nanos = -1;
    cr_assert_eq(asy_json_parse_timestamp("2026-01-05T10:00:00Z", &seconds, &nanos), 0);
    cr_assert_eq(seconds, 1767607200LL);
    cr_assert_eq(nanos, 0);
    cr_assert_eq(asy_json_parse_timestamp("2026-01-05T11:00:00.25+01:00", &seconds, &nanos), 0);
    cr_assert_eq(seconds, 1767607200LL);
    cr_assert_eq(nanos, 250000000);
    cr_assert_eq(asy_json_parse_timestamp("2026-01-05t04:30:00.000000001-05:30", &seconds, &nanos),
                 0);
    cr_assert_eq(seconds, 1767607200LL);
    cr_assert_eq(nanos, 1);
    cr_assert_eq(asy_json_parse_timestamp("1969-12-31T23:59:59Z", &seconds, &nanos), 0);
    cr_assert_eq(seconds, -1);
    cr_assert_eq(asy_json_parse_timestamp("2024-02-29T00:00:00Z", &seconds, &nanos), 0);

    const char *bad[] = {"2026-01-05T10:00:00",
                         "2026-01-05 10:00:00Z",
                         "2026-13-05T10:00:00Z",
                         "2023-02-29T10:00:00Z",
                         "2026-01-05T24:00:00Z",
                         "2026-01-05T10:60:00Z",
                         "2026-01-05T10:00:60Z",
                         "2026-01-05T10:00:00.Z",
                         "2026-01-05T10:00:00.1234567891Z",
                         "2026-01-05T10:00:00+1:00",
                         "2026-01-05T10:00:00+24:00",
                         "2026-01-05T10:00:00Zjunk",
                         "26-01-05T10:00:00Z",
                         "",
                         "2026-01-05"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(asy_json_parse_timestamp(bad[i], &seconds, &nanos), ASY_EINVAL, "%s", bad[i]);
}

Test(json, timestamp_format)
{
    char text[ASY_TIMESTAMP_TEXT];
    cr_assert_eq(asy_json_format_timestamp(1767607200, 0, text), 0);
    cr_assert_str_eq(text, "2026-01-05T10:00:00Z");
    asy_json_format_timestamp(1767607200, 500000000, text);
    cr_assert_str_eq(text, "2026-01-05T10:00:00.500Z");
    asy_json_format_timestamp(1767607200, 123456000, text);
    cr_assert_str_eq(text, "2026-01-05T10:00:00.123456Z");
    asy_json_format_timestamp(-1, 1, text);
    cr_assert_str_eq(text, "1969-12-31T23:59:59.000000001Z");
    asy_json_format_timestamp(951782400, 0, text);
    cr_assert_str_eq(text, "2000-02-29T00:00:00Z");
    cr_assert_eq(asy_json_format_timestamp(0, 1000000000, text), ASY_EINVAL);
    cr_assert_eq(asy_json_format_timestamp(0, -1, text), ASY_EINVAL);
    cr_assert_eq(asy_json_format_timestamp(253402300800LL, 0, text), ASY_EINVAL);
    cr_assert_eq(asy_json_format_timestamp(253402300799LL, 0, text), 0);
    cr_assert_str_eq(text, "9999-12-31T23:59:59Z");
}

Test(json, date_parse_and_validity)
{
    int32_t year, month, day;
    cr_assert_eq(asy_json_parse_date("2024-02-29", &year, &month, &day), 0);
    cr_assert(year == 2024 && month == 2 && day == 29);
    const char *bad[] = {"2023-02-29",  "2026-04-31", "2026-00-10", "2026-1-10",
                         "2026-01-10T", "0000-01-01", "1900-02-29", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(asy_json_parse_date(bad[i], &year, &month, &day), ASY_EINVAL, "%s", bad[i]);
    cr_assert(asy_json_date_valid(2000, 2, 29));
    cr_assert(!asy_json_date_valid(2100, 2, 29));
}

Test(json, well_known_types_in_messages)
{
    ProtobufCMessage *message = NULL;
    cr_assert_eq(s_parse("{\"start\":\"2026-01-05T11:00:00.5+01:00\"}",
                         &advsync__v1__qualifying__descriptor, &message),
                 0, "%s", s_error);
    Advsync__V1__Qualifying *q = (Advsync__V1__Qualifying *)message;
    cr_assert_eq(q->start->seconds, 1767607200LL);
    cr_assert_eq(q->start->nanos, 500000000);
    char *text = s_dump(message);
    cr_assert_str_eq(text, "{\"start\":\"2026-01-05T10:00:00.500Z\"}");
    free(text);
    s_round_trip(message);
    protobuf_c_message_free_unpacked(message, NULL);

    cr_assert_eq(s_parse("{\"date\":\"2026-03-02\"}",
                         &advsync__v1__initial_meeting_held__descriptor, &message),
                 0, "%s", s_error);
    text = s_dump(message);
    cr_assert_str_eq(text, "{\"date\":\"2026-03-02\"}");
    free(text);
    s_round_trip(message);
    protobuf_c_message_free_unpacked(message, NULL);

    s_refused("{\"date\":\"2023-02-29\"}", &advsync__v1__initial_meeting_held__descriptor,
              "date: \"2023-02-29\" is not a calendar date", NULL);
    s_refused("{\"start\":\"yesterday\"}", &advsync__v1__qualifying__descriptor,
              "start: \"yesterday\" is not an RFC 3339 timestamp", NULL);
    s_refused("{\"start\":12}", &advsync__v1__qualifying__descriptor,
              "start: expected RFC 3339 timestamp text", NULL);

    // an unrepresentable time (only possible from the wire) is written as an object and read back
    Advsync__V1__Timestamp stamp = ADVSYNC__V1__TIMESTAMP__INIT;
    stamp.has_seconds = 1;
    stamp.seconds = INT64_MAX;
    text = s_dump(&stamp.base);
    cr_assert_str_eq(text, "{\"seconds\":\"9223372036854775807\"}");
    free(text);
    s_round_trip(&stamp.base);
}

/* ---------------------------------------------------------------------------------------------
   Round trips and odd input. */

Test(json, round_trip_keeps_packed_bytes)
{
    s_all_t *all = s_all("{\"i32\":0,\"u64\":\"0\",\"flag\":true,\"textValue\":\"\","
                         "\"colour\":\"COLOUR_NOT_RECORDED\",\"child\":{\"many\":[\"-1\"]},"
                         "\"choiceText\":\"pick\",\"sf64\":\"-9223372036854775808\"}");
    cr_assert(all->has_i32 && all->has_u64 && all->has_colour, "zero values are present");
    s_round_trip(&all->base);
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

Test(json, invalid_utf8_from_the_wire_is_replaced)
{
    s_all_t all;
    s_all_init(&all.base);
    all.text_value = (char *)"ok\xff\xc3\xa9!";
    char *text = s_dump(&all.base);
    cr_assert_str_eq(text, "{\"textValue\":\"ok\xef\xbf\xbd\xc3\xa9!\"}");
    free(text);
    cr_assert(asy_json_utf8_valid("caf\xc3\xa9", 5));
    cr_assert(!asy_json_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    cr_assert(!asy_json_utf8_valid("\xc0\xaf", 2), "overlong");
    /* where the first bad sequence starts: the byte a message points at */
    cr_assert_eq(asy_json_utf8_prefix("caf\xc3\xa9", 5), 5);
    cr_assert_eq(asy_json_utf8_prefix("Caf\xe9 ok", 7), 3, "Windows-1252");
    cr_assert_eq(asy_json_utf8_prefix("ab\xc3", 3), 2, "a sequence cut short");
    cr_assert_eq(asy_json_utf8_prefix("a\xed\xa0\x80", 4), 1, "surrogate");
}

Test(json, error_buffer_may_be_small)
{
    json_t *value = json_pack("{s:i}", "noSuchFieldWithALongName", 1);
    ProtobufCMessage *message = NULL;
    char error[8];
    cr_assert_eq(asy_json_to_message(value, &s_all_descriptor, &message, error, sizeof error),
                 ASY_EINVAL);
    cr_assert_str_eq(error, "noSuchF");
    json_decref(value);
}
