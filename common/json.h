/*  json.h: the proto3 JSON mapping for any protobuf-c message, driven by its descriptor.

    One generic mapper, no per-message code. Field names are lowerCamelCase (the proto3 JSON
    name) on output; lowerCamelCase or the snake_case proto name on input. Enums by value name
    (or an unambiguous suffix, or the number); 64-bit integers as decimal strings; bytes as
    base64; advsync.v1.Timestamp as RFC 3339 text and advsync.v1.Date as "YYYY-MM-DD".
    It exposes protobuf-c types: besides this module (json.c, json_parse.c, json_text.c) only
    codec.c, codec_validate.c, codec_monitor.c and the agent's import (client/agent/import.c)
    include it, and its submit (client/agent/submit.c) for asy_json_path_at.  */
#ifndef ASY_JSON_H_INCLUDED
#define ASY_JSON_H_INCLUDED

#include "asy.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* Longest text asy_json_format_timestamp() writes, with its NUL. */
#define ASY_TIMESTAMP_TEXT 40

/* Builds a message of type desc from a JSON value (an object; a string for Timestamp and
   Date). Every part is malloc'ed, so protobuf_c_message_free_unpacked(*out, NULL) frees it.
   Returns 0 and *out (caller owns), ASY_EINVAL with "path: what was wrong" in error[]
   (e.g. "referralReceived.reasons[2]: \"x\" is not a value of advsync.v1.ReferralReason"),
   or ASY_ENOMEM. The value is borrowed. */
int asy_json_to_message(json_t *value, const ProtobufCMessageDescriptor *desc,
                        ProtobufCMessage **out, char *error, size_t error_size);

/* The field of desc that a JSON key names, as asy_json_to_message reads keys: the proto name
   or its lowerCamelCase JSON name. NULL if none. */
const ProtobufCFieldDescriptor *asy_json_find_field(const ProtobufCMessageDescriptor *desc,
                                                    const char *key);

/* The message as a JSON value (an object, or a string for Timestamp and Date). Absent fields
   are left out; unknown fields are not represented. Caller owns; NULL on ENOMEM. */
json_t *asy_json_from_message(const ProtobufCMessage *message);

/* Parses RFC 3339 text ("2026-01-05T10:00:00Z", "2026-01-05T11:00:00.25+01:00") into seconds
   since 1970 and nanoseconds. Returns 0 or ASY_EINVAL. */
int asy_json_parse_timestamp(const char *text, int64_t *seconds, int32_t *nanos);

/* Writes seconds + nanos as UTC RFC 3339 text with "Z", with a fraction (3, 6 or 9 digits)
   only if nanos is not 0. Returns 0, or ASY_EINVAL if outside years 1..9999 or nanos is
   outside 0..999,999,999. */
int asy_json_format_timestamp(int64_t seconds, int32_t nanos, char out[ASY_TIMESTAMP_TEXT]);
/* True if asy_json_format_timestamp() would accept the pair (years 1..9999, nanos in range). */
bool asy_json_timestamp_valid(int64_t seconds, int32_t nanos);

/* Parses "YYYY-MM-DD" (a real calendar date, years 1..9999). Returns 0 or ASY_EINVAL. */
int asy_json_parse_date(const char *text, int32_t *year, int32_t *month, int32_t *day);

/* True if year-month-day is a real date of the proleptic Gregorian calendar, years 1..9999. */
bool asy_json_date_valid(int64_t year, int64_t month, int64_t day);

/* True if the bytes are well-formed UTF-8 (no overlongs, no surrogates, no NUL). */
bool asy_json_utf8_valid(const char *text, size_t length);
/* The length of the longest well-formed prefix of the bytes, cut before the first byte that
   does not start a whole valid sequence (length if all are well-formed): where to point a
   reader of text that is not UTF-8. */
size_t asy_json_utf8_prefix(const char *text, size_t length);

/* The field path ("activityLogged.minutes", "referralReceived.reasons[2]", keys as the text
   spells them) of the key or value being read at byte position of JSON text that is well-formed
   up to there: where a parser stopped (jansson's json_error_t.position: a duplicate key, a
   number too big, a token it could not take). Writes it to out and returns true; false if position is in no object's key
   or value (or nested deeper than 32, or out is too small). The keys are the text's: mask
   identifiers before showing them. */
bool asy_json_path_at(const char *text, size_t position, char *out, size_t size);

#endif
