/*  db_conninfo.c: conninfo text checked with libpq and redacted for messages (see db.h).  */
#include "db.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ----------------------------------------------------------------------------------------------
   Conninfo text for messages: the secrets found (leniently: the text may be one libpq refuses)
   are the values of every key containing "pass" in any case (password, PASSWORD, passwd; also
   percent-encoded in a URI query) and a URI's userinfo after its ':'. Over-masking is the safe
   side. */

#define S_SECRETS 16

typedef struct {
    const char *at;
    size_t length;
} s_span_t;

/* Length of the value at text: through the closing quote (backslash escapes) if quoted, else
   up to a blank (or '&' in a URI query), backslash escapes kept together. */
static size_t s_value_length(const char *text, bool query)
{
    size_t n = 0;
    if (*text == '\'') {
        n = 1;
        while (text[n] && text[n] != '\'')
            n += text[n] == '\\' && text[n + 1] ? 2 : 1;
        return text[n] ? n + 1 : n;
    }
    while (text[n] && !isspace((unsigned char)text[n]) && !(query && text[n] == '&'))
        n += text[n] == '\\' && text[n + 1] ? 2 : 1;
    return n;
}

/* True if key[0..length) names a secret: contains "pass" in any case, percent-decoded. */
static bool s_secret_key(const char *key, size_t length)
{
    char decoded[64];
    size_t used = 0;
    for (size_t i = 0; i < length && used + 1 < sizeof decoded; i++) {
        if (key[i] == '%' && i + 2 < length && isxdigit((unsigned char)key[i + 1]) &&
            isxdigit((unsigned char)key[i + 2])) {
            char hex[3] = {key[i + 1], key[i + 2], '\0'};
            decoded[used++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            decoded[used++] = key[i];
        }
    }
    decoded[used] = '\0';
    for (size_t i = 0; i + 4 <= used; i++)
        if (strncasecmp(decoded + i, "pass", 4) == 0)
            return true;
    return false;
}

/* Adds a secret; the last place left takes the rest of the text (more secrets than places:
   everything after is masked). */
static void s_add_span(s_span_t *spans, size_t *count, const char *at, size_t length)
{
    if (length == 0 || *count == S_SECRETS)
        return;
    if (*count == S_SECRETS - 1)
        length = strlen(at);
    spans[(*count)++] = (s_span_t){at, length};
}

/* The secrets of a URI conninfo (postgresql://...): the userinfo's password and the values of
   query keys that name one. */
static void s_uri_secrets(const char *p, s_span_t spans[S_SECRETS], size_t *count)
{
    /* userinfo: up to the last '@' (a password with a '/', '?' or '@' in it is still
       inside), its secret after the first ':' */
    const char *authority = strstr(p, "//") + 2;
    const char *at = strrchr(authority, '@');
    const char *colon = at ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
    if (colon)
        s_add_span(spans, count, colon + 1, (size_t)(at - colon - 1));
    const char *query = strchr(at ? at : authority, '?');
    for (const char *q = query; q && *q;) {
        q++; /* past '?' or '&' */
        size_t key = strcspn(q, "=&");
        if (q[key] == '=') {
            size_t value = s_value_length(q + key + 1, true);
            if (s_secret_key(q, key))
                s_add_span(spans, count, q + key + 1, value);
            q += key + 1 + value;
        } else {
            q += key;
        }
        q = *q == '&' ? q : NULL;
    }
}

/* What separates keyword = value pairs: any isspace, as libpq. */
static const char s_blanks[] = " \t\n\r\f\v";

/* The length of an unquoted password at q whose first word is value bytes long: with blanks
   in it (the likeliest reason the text is refused), the words after it that are no key=value
   belong to it. */
static size_t s_unquoted_secret_length(const char *q, size_t value)
{
    for (;;) {
        const char *next = q + value;
        const char *word = next + strspn(next, s_blanks);
        size_t length = strcspn(word, s_blanks);
        if (!*word || memchr(word, '=', length))
            break;
        value = (size_t)(word + length - q);
    }
    return value;
}

/* Adds the secret value at q (value bytes), and the parts of it a message may quote alone. */
static void s_add_secret_value(s_span_t spans[S_SECRETS], size_t *count, const char *q,
                               size_t value)
{
    s_add_span(spans, count, q, value);
    if (*q == '\'' && value >= 2) /* as a message may quote it: without its quotes */
        s_add_span(spans, count, q + 1, value - (q[value - 1] == '\'' ? 2 : 1));
    else if (*q != '\'') /* or one word of it ("missing \"=\" after WORD") */
        for (const char *word = q; word < q + value;) {
            size_t length = strcspn(word, s_blanks);
            if ((size_t)(word - q) + length > value)
                length = value - (size_t)(word - q);
            if (length < value)
                s_add_span(spans, count, word, length);
            word += length;
            word += strspn(word, s_blanks);
        }
}

/* Finds the secrets of conninfo, in order of position. Returns their number. */
static size_t s_secrets(const char *conninfo, s_span_t spans[S_SECRETS])
{
    size_t count = 0;
    const char *p = conninfo;
    if (strncasecmp(p, "postgresql://", 13) == 0 || strncasecmp(p, "postgres://", 11) == 0) {
        s_uri_secrets(p, spans, &count);
        return count;
    }
    /* keyword = value pairs, separated by blanks (any isspace, as libpq), or not at all after
       a quoted value */
    while (*(p += strspn(p, s_blanks))) {
        size_t key = 0;
        while (p[key] && p[key] != '=' && !isspace((unsigned char)p[key]))
            key++;
        const char *q = p + key;
        q += strspn(q, s_blanks);
        if (*q != '=') { /* a word without '=': on to the next one */
            p += key;
            continue;
        }
        q++;
        q += strspn(q, s_blanks);
        size_t value = s_value_length(q, false);
        bool secret = s_secret_key(p, key);
        if (secret && *q != '\'')
            value = s_unquoted_secret_length(q, value);
        if (secret)
            s_add_secret_value(spans, &count, q, value);
        p = q + value;
    }
    return count;
}

/* Copies text into out (size > 0) with every occurrence of each secret's text replaced by
   "***". With from_spans, the spans are positions in text itself (the conninfo); otherwise
   their text is looked for (libpq's message, which quotes parts of the conninfo). */
static void s_mask(const char *text, const s_span_t *spans, size_t count, bool from_spans,
                   char *out, size_t size)
{
    size_t used = 0;
    for (const char *p = text; *p && used + 1 < size;) {
        size_t skip = 0;
        for (size_t i = 0; i < count && !skip; i++)
            if (from_spans ? p == spans[i].at : strncmp(p, spans[i].at, spans[i].length) == 0)
                skip = spans[i].length;
        if (!skip) {
            out[used++] = *p++;
            continue;
        }
        for (const char *m = "***"; *m && used + 1 < size; m++)
            out[used++] = *m;
        p += skip;
    }
    out[used] = '\0';
}

char *asy_db_conninfo_redact(const char *conninfo, char *out, size_t out_size)
{
    if (!out_size)
        return out;
    s_span_t spans[S_SECRETS];
    const char *text = conninfo ? conninfo : "";
    s_mask(text, spans, s_secrets(text, spans), true, out, out_size);
    return out;
}

/* The keywords whose values libpq checks only when it connects, and those values (libpq 15):
   a connection with another value fails every time, so the broker would retry it for ever. */
static const struct {
    const char *keyword;
    const char *values; /* separated by '|' */
} s_choices[] = {
    {"sslmode", "disable|allow|prefer|require|verify-ca|verify-full"},
    {"gssencmode", "disable|prefer|require"},
    {"channel_binding", "disable|prefer|require"},
    {"target_session_attrs", "any|read-write|read-only|primary|standby|prefer-standby"},
};

/* True if value is one of the '|'-separated choices. */
static bool s_one_of(const char *value, const char *choices)
{
    size_t length = strlen(value);
    for (const char *c = choices; *c;) {
        size_t span = strcspn(c, "|");
        if (span == length && strncmp(c, value, length) == 0)
            return true;
        c += span + (c[span] == '|');
    }
    return false;
}

/* NULL, or the first parsed option whose value libpq will refuse at every connection, with
   why[] set. */
static const PQconninfoOption *s_bad_choice(const PQconninfoOption *parsed, char *why,
                                            size_t why_size)
{
    for (const PQconninfoOption *o = parsed; o && o->keyword; o++)
        for (size_t i = 0; o->val && i < sizeof s_choices / sizeof s_choices[0]; i++)
            if (strcmp(o->keyword, s_choices[i].keyword) == 0 &&
                !s_one_of(o->val, s_choices[i].values)) {
                snprintf(why, why_size, "has %s=\"%.40s\": libpq takes %s", o->keyword, o->val,
                         s_choices[i].values);
                return o;
            }
    return NULL;
}

bool asy_db_conninfo_check(const char *conninfo, char *why, size_t why_size)
{
    char *message = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &message);
    bool bad_choice = parsed && s_bad_choice(parsed, why, why_size);
    PQconninfoFree(parsed);
    if (bad_choice)
        return false;
    if (!parsed) {
        /* libpq's message quotes parts of the text, a password among them */
        const char *text = message ? message : "out of memory";
        char line[512], masked[512];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(text, "\n"), text);
        s_span_t spans[S_SECRETS];
        s_mask(line, spans, s_secrets(conninfo, spans), false, masked, sizeof masked);
        snprintf(why, why_size, "is not a libpq conninfo: %s", masked);
        PQfreemem(message);
    }
    return parsed != NULL;
}
