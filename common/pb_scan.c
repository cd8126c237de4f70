/*  pb_scan.c: see pb_scan.h. A walk over the wire format (tag, wire type, value), guided by the
    message descriptors: only length-delimited values are looked at; a string is searched for
    a NUL, a nested message walked in turn.  */
#include "pb_scan.h"

#include <stdio.h>
#include <string.h>

#define S_DEPTH_MAX 32 /* our messages nest 3 deep; protobuf-c itself allows more */

/* Reads a varint at *pos; false if it runs past size or past 10 bytes. */
static bool s_varint(const uint8_t *data, size_t size, size_t *pos, uint64_t *value)
{
    *value = 0;
    for (unsigned shift = 0; shift < 70 && *pos < size; shift += 7) {
        uint8_t byte = data[(*pos)++];
        *value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

/* Writes "prefix.name" (or "name") into path; cut to fit. */
static void s_path_join(char *path, size_t path_size, const char *prefix, const char *name)
{
    if (path_size == 0)
        return;
    if (prefix && prefix[0])
        snprintf(path, path_size, "%s.%s", prefix, name);
    else
        snprintf(path, path_size, "%s", name);
}

static bool s_scan(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size,
                   const char *prefix, char *path, size_t path_size, int depth)
{
    size_t pos = 0;
    while (pos < size) {
        uint64_t tag, length;
        if (!s_varint(data, size, &pos, &tag))
            return false;
        switch (tag & 7) {
        case 0: /* varint */
            if (!s_varint(data, size, &pos, &length))
                return false;
            continue;
        case 1: /* 64-bit */
            pos += 8;
            continue;
        case 5: /* 32-bit */
            pos += 4;
            continue;
        case 2: /* length-delimited: below */
            break;
        default: /* groups: protobuf-c would not have unpacked them */
            return false;
        }
        if (!s_varint(data, size, &pos, &length) || length > size - pos)
            return false;
        const uint8_t *value = data + pos;
        pos += (size_t)length;
        const ProtobufCFieldDescriptor *field =
            tag >> 3 <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3))
                : NULL;
        if (!field)
            continue; /* an unknown field: kept as bytes, not looked into */
        if (field->type == PROTOBUF_C_TYPE_STRING && memchr(value, 0, (size_t)length)) {
            s_path_join(path, path_size, prefix, field->name);
            return true;
        }
        if (field->type == PROTOBUF_C_TYPE_MESSAGE && depth < S_DEPTH_MAX) {
            char here[128];
            s_path_join(here, sizeof here, prefix, field->name);
            if (s_scan(field->descriptor, value, (size_t)length, here, path, path_size, depth + 1))
                return true;
        }
    }
    return false;
}

bool asy_pb_nul_in_string(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size,
                          char *path, size_t path_size)
{
    if (path_size)
        path[0] = '\0';
    return data && s_scan(desc, data, size, "", path, path_size, 0);
}
