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

/* The bytes of the blank that starts text (length bytes, no NUL needed): ASCII white space, or
   a no-break (U+00A0), narrow no-break (U+202F) or zero-width space (U+200B), or a byte order
   mark (U+FEFF), which text pasted from a word processor holds; 0 if there is none. The one
   definition of "blank" around a case or person reference, whether it came in JSON or CSV. */
static inline size_t asy_blank_at(const char *text, size_t length)
{
    static const char *const blanks[] = {"\xC2\xA0", "\xE2\x80\xAF", "\xE2\x80\x8B",
                                         "\xEF\xBB\xBF"};
    if (length == 0)
        return 0;
    if (text[0] == ' ' || (text[0] >= '\t' && text[0] <= '\r'))
        return 1;
    for (size_t i = 0; i < sizeof blanks / sizeof blanks[0]; i++) {
        size_t size = strlen(blanks[i]);
        if (size <= length && memcmp(text, blanks[i], size) == 0)
            return size;
    }
    return 0;
}

/* Narrows [*start, *end) of text to leave out the blanks (asy_blank_at) at both ends. */
static inline void asy_blank_trim(const char *text, size_t *start, size_t *end)
{
    for (size_t skip; (skip = asy_blank_at(text + *start, *end - *start)) > 0;)
        *start += skip;
    for (bool cut = true; cut && *end > *start;) {
        cut = false;
        for (size_t back = 1; back <= 3 && back <= *end - *start && !cut; back++)
            if (asy_blank_at(text + *end - back, back) == back) {
                *end -= back;
                cut = true;
            }
    }
}

/* Returns a static English name for an ASY_E* code. */
const char *asy_strerror(int code);

/* Formats a message into a caller's error buffer (error may be NULL or error_size 0: then
   nothing is written). The one way functions taking `char *error, size_t error_size` fill it. */
void asy_set_error(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
