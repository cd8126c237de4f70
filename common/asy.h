/*  asy.h: constants and error codes shared by every advsync module.

    Error convention (see ../shared/style.md): a fallible function returns int, 0 on success
    or a negative ASY_E* code; the detail text sits on the object that failed.  */
#ifndef ASY_H_INCLUDED
#define ASY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ASY_VERSION_STRING "0.1.0"

#define ASY_OK 0
#define ASY_EINVAL (-1)    /* bad input from outside: a line, a field, a flag */
#define ASY_ENOMEM (-2)
#define ASY_EIO (-3)       /* file or socket I/O failed */
#define ASY_EDB (-4)       /* database error (SQLite or PostgreSQL) */
#define ASY_EPROTO (-5)    /* malformed frame or protocol violation */
#define ASY_ENOTFOUND (-6)
#define ASY_EEXIST (-7)    /* already there (duplicate) */
#define ASY_ERETRY (-8)    /* transient: try again later */
#define ASY_ECONFIG (-9)   /* configuration error */
#define ASY_ETIMEDOUT (-10) /* no answer within the time allowed */

/* Wire protocol (proto/PROTOCOL.md). */
#define ASY_PROTOCOL_VERSION 1
#define ASY_SCHEMA_VERSION 1          /* event schema this code writes and fully understands */
#define ASY_MAX_FRAME_BYTES (16u * 1024u * 1024u)
#define ASY_MAX_EVENT_BYTES (64u * 1024u)
#define ASY_MAX_BATCH_EVENTS 5000u
#define ASY_DEFAULT_WINDOW 16u
#define ASY_DEFAULT_HEARTBEAT_MS 1000u

/* Identifiers on the wire. */
#define ASY_ID_MAX 64                 /* site_id, agent_id: [A-Za-z0-9._-]{1,64} */
#define ASY_PSEUDONYM_HEX 64          /* case_id, person_key: 64 lowercase hex digits */
#define ASY_UUID_TEXT 36

/* snprintf(out, size, "%s", text) without the formatting (the broker copies several ids per
   event and the monitor two names per cell): text cut to size - 1 bytes; NULL copies as "".
   size must be at least 1. */
static inline void asy_copy_text(char *out, size_t size, const char *text)
{
    size_t length = text ? strnlen(text, size - 1) : 0;
    if (length)
        memcpy(out, text, length);
    out[length] = '\0';
}

/* Returns a static English name for an ASY_E* code. */
const char *asy_strerror(int code);

/* Formats a message into a caller's error buffer (error may be NULL or error_size 0: then
   nothing is written). The one way functions taking `char *error, size_t error_size` fill it. */
void asy_set_error(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
