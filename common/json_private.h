/*  json_private.h: what the two directions of the JSON mapping, json_parse.c (JSON -> message)
    and json_text.c (message -> JSON), share; defined in json.c. Not for other modules.  */
#ifndef ASY_JSON_PRIVATE_H_INCLUDED
#define ASY_JSON_PRIVATE_H_INCLUDED

#include "json.h"

#define ASY_JSON_NAME_MAX 128
#define ASY_JSON_TIMESTAMP "advsync.v1.Timestamp"
#define ASY_JSON_DATE "advsync.v1.Date"

/* lowerCamelCase JSON name of a snake_case proto field name, as protoc computes it. */
void asy_json_name(const char *name, char *out, size_t size);

/* Bytes of one element of a repeated field of the type. */
size_t asy_json_element_size(ProtobufCType type);

/* True for advsync.v1.Timestamp and advsync.v1.Date, which JSON writes as text. */
bool asy_json_is_well_known(const ProtobufCMessageDescriptor *desc);

#endif
