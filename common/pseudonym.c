/*  pseudonym.c: keyed hashes of person and case identifiers (see pseudonym.h).

    pseudonym = hex(BLAKE2b-256, keyed with the 32-byte consortium key, over
    domain || 0x00 || identifier). The domain keeps an NHS number and a local reference that
    happen to be the same text from ever producing the same pseudonym. NHS numbers (their check
    digit, and finding them in free text) are in pseudonym_nhs.c.  */
#include "pseudonym_private.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_KEY_FILE_MAX 4096 /* a key file is 64 hex digits; anything much longer is not one */

/* 64 lowercase hex digits (as asy_pseudonym_valid in codec_ids.c; kept here so this module
   stands alone). */
static bool s_is_pseudonym(const char *text)
{
    size_t length = 0;
    for (; text[length]; length++)
        if (!isdigit((unsigned char)text[length]) && !(text[length] >= 'a' && text[length] <= 'f'))
            return false;
    return length == ASY_PSEUDONYM_HEX;
}

int asy_pseudonym_key_load(const char *path, asy_pseudonym_key_t *key, char *error,
                           size_t error_size)
{
    FILE *file = fopen(path, "rb");
    if (!file) {
        asy_set_error(error, error_size, "cannot read key file %s: %s", path, strerror(errno));
        return ASY_EIO;
    }
    char text[S_KEY_FILE_MAX + 1];
    size_t size = fread(text, 1, sizeof text - 1, file);
    bool failed = ferror(file) != 0;
    bool too_long = !failed && !feof(file);
    fclose(file);
    if (failed) {
        asy_set_error(error, error_size, "cannot read key file %s: %s", path, "read error");
        return ASY_EIO;
    }
    text[size] = '\0';
    /* white space around the digits is allowed (a trailing newline, mostly) */
    char *start = text;
    while (*start && isspace((unsigned char)*start))
        start++;
    char *end = start + strlen(start);
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    size_t digits = (size_t)(end - start);
    bool hex = digits == 64 && !too_long;
    for (size_t i = 0; hex && i < digits; i++)
        hex = isxdigit((unsigned char)start[i]) != 0;
    if (!hex) {
        asy_set_error(error, error_size, "key file %s: %s", path,
                    "must hold exactly 64 hex digits (32 bytes); make one with "
                    "`advsync-agent keygen --key-file PATH`");
        sodium_memzero(text, sizeof text);
        return ASY_ECONFIG;
    }
    size_t written = 0;
    int rc = sodium_hex2bin(key->bytes, sizeof key->bytes, start, digits, NULL, &written, NULL);
    sodium_memzero(text, sizeof text);
    if (rc != 0 || written != sizeof key->bytes) {
        asy_set_error(error, error_size, "key file %s: %s", path, "malformed hex digits");
        return ASY_ECONFIG;
    }
    return 0;
}

int asy_pseudonym_key_generate(const char *path, char *error, size_t error_size)
{
    if (sodium_init() < 0) {
        asy_set_error(error, error_size, "cannot initialise libsodium");
        return ASY_EIO;
    }
    /* O_EXCL: an existing key is never replaced; replacing it would unlink every pseudonym */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int code = errno == EEXIST ? ASY_EEXIST : ASY_EIO;
        if (code == ASY_EEXIST)
            asy_set_error(error, error_size, "key file %s already exists: not overwritten", path);
        else
            asy_set_error(error, error_size, "cannot create key file %s: %s", path, strerror(errno));
        return code;
    }
    uint8_t bytes[32];
    char text[2 * sizeof bytes + 2];
    randombytes_buf(bytes, sizeof bytes);
    sodium_bin2hex(text, sizeof text, bytes, sizeof bytes);
    sodium_memzero(bytes, sizeof bytes);
    size_t length = 2 * sizeof bytes;
    text[length++] = '\n';
    ssize_t written = write(fd, text, length);
    sodium_memzero(text, sizeof text);
    int saved = errno;
    if (written != (ssize_t)length || fsync(fd) != 0) {
        if (written == (ssize_t)length)
            saved = errno;
        close(fd);
        unlink(path);
        asy_set_error(error, error_size, "cannot write key file %s: %s", path, strerror(saved));
        return ASY_EIO;
    }
    if (close(fd) != 0) {
        unlink(path);
        asy_set_error(error, error_size, "cannot write key file %s: %s", path, strerror(errno));
        return ASY_EIO;
    }
    return 0;
}

void asy_pseudonym_make(const asy_pseudonym_key_t *key, const char *domain, const char *identifier,
                        char out[ASY_PSEUDONYM_HEX + 1])
{
    crypto_generichash_state state;
    uint8_t hash[32];
    static const uint8_t separator = 0;
    crypto_generichash_init(&state, key->bytes, sizeof key->bytes, sizeof hash);
    crypto_generichash_update(&state, (const uint8_t *)domain, strlen(domain));
    crypto_generichash_update(&state, &separator, 1);
    crypto_generichash_update(&state, (const uint8_t *)identifier, strlen(identifier));
    crypto_generichash_final(&state, hash, sizeof hash);
    sodium_bin2hex(out, ASY_PSEUDONYM_HEX + 1, hash, sizeof hash);
}

/* Finds key under either spelling; sets *name to the spelling found. Both present is an
   error reported by the caller (both_out). */
static json_t *s_take(json_t *object, const char *camel, const char *snake, const char **name,
                      bool *both_out)
{
    json_t *a = json_object_get(object, camel);
    json_t *b = json_object_get(object, snake);
    *both_out = a && b;
    *name = a ? camel : snake;
    return a ? a : b;
}

#define S_IDENTIFIER_MAX 1024

/* The identifier text of field, without the blanks around it (as import trims its cells: a
   padded "C-1001  " is the case "C-1001"), into out: a non-empty string. Numbers are refused
   on purpose: an NHS number as a JSON number loses leading zeros. */
static bool s_identifier(json_t *value, const char *name, char out[S_IDENTIFIER_MAX + 1],
                         char *error, size_t error_size)
{
    const char *text = json_is_string(value) ? json_string_value(value) : NULL;
    if (!text) {
        asy_set_error(error, error_size, "%s: must be a string", name);
        return false;
    }
    size_t start = 0, end = json_string_length(value);
    asy_blank_trim(text, &start, &end); /* as import trims its cells */
    if (start == end) {
        /* blank is empty: "   " from a padded export column names no case and no person */
        asy_set_error(error, error_size, "%s: must not be empty%s", name, *text ? " or blank" : "");
        return false;
    }
    if (end - start > S_IDENTIFIER_MAX) {
        asy_set_error(error, error_size, "%s: longer than %d characters", name, S_IDENTIFIER_MAX);
        return false;
    }
    memcpy(out, text + start, end - start);
    out[end - start] = '\0';
    return true;
}

/* The pseudonym of an NHS number (text, trimmed): refused if not ten digits, a placeholder or
   a wrong check digit. The digits are wiped on every path. Returns 0 or ASY_EINVAL. */
static int s_nhs_pseudonym(const asy_pseudonym_key_t *key, const char *text, const char *name,
                           char pseudonym[ASY_PSEUDONYM_HEX + 1], char *error, size_t error_size)
{
    char digits[11];
    int rc = ASY_EINVAL;
    /* the value is not echoed: error messages end up in logs */
    if (!asy_nhs_number_digits(text, digits))
        asy_set_error(error, error_size,
                      "%s: not an NHS number (10 digits; blanks and dashes allowed)", name);
    else if (asy_nhs_digits_placeholder(digits))
        asy_set_error(error, error_size,
                      "%s: a placeholder, not an NHS number (ten equal digits would link "
                      "every such record into one person); leave it out, or give personRef",
                      name);
    else if (!asy_nhs_digits_check(digits))
        asy_set_error(error, error_size,
                      "%s: not a valid NHS number (check digit does not "
                      "match)",
                      name);
    else
        rc = 0;
    if (rc == 0)
        asy_pseudonym_make(key, "nhs", digits, pseudonym);
    sodium_memzero(digits, sizeof digits);
    return rc;
}

/* The pseudonym of a local person reference (text, trimmed), scoped by the site. The scoped
   copy is wiped. Returns 0 or ASY_EINVAL (out of memory). */
static int s_ref_pseudonym(const asy_pseudonym_key_t *key, const char *site_id, const char *text,
                           const char *name, char pseudonym[ASY_PSEUDONYM_HEX + 1], char *error,
                           size_t error_size)
{
    /* a local reference means something only at its site, hence the site prefix */
    size_t size = strlen(site_id) + strlen(text) + 2;
    char *scoped = malloc(size);
    if (!scoped) {
        asy_set_error(error, error_size, "%s: out of memory", name);
        return ASY_EINVAL;
    }
    snprintf(scoped, size, "%s:%s", site_id, text);
    asy_pseudonym_make(key, "person", scoped, pseudonym);
    sodium_memzero(scoped, size);
    free(scoped);
    return 0;
}

/* The person pseudonym of value, an NHS number (nhs) or a local reference: its text is
   trimmed into a buffer that is wiped on every path. Returns 0 or ASY_EINVAL. */
static int s_person_pseudonym(const asy_pseudonym_key_t *key, const char *site_id, json_t *value,
                              bool nhs, const char *name, char pseudonym[ASY_PSEUDONYM_HEX + 1],
                              char *error, size_t error_size)
{
    char text[S_IDENTIFIER_MAX + 1];
    int rc = ASY_EINVAL;
    if (s_identifier(value, name, text, error, error_size))
        rc = nhs ? s_nhs_pseudonym(key, text, name, pseudonym, error, error_size)
                 : s_ref_pseudonym(key, site_id, text, name, pseudonym, error, error_size);
    sodium_memzero(text, sizeof text);
    return rc;
}

/* Derives personKey from nhsNumber or personRef. Returns 0 or ASY_EINVAL. */
static int s_apply_person(const asy_pseudonym_key_t *key, const char *site_id, json_t *object,
                          char *error, size_t error_size)
{
    const char *nhs_name, *ref_name, *key_name;
    bool both;
    json_t *nhs = s_take(object, "nhsNumber", "nhs_number", &nhs_name, &both);
    if (both) {
        asy_set_error(error, error_size, "nhsNumber: given twice (nhsNumber and nhs_number)");
        return ASY_EINVAL;
    }
    json_t *ref = s_take(object, "personRef", "person_ref", &ref_name, &both);
    if (both) {
        asy_set_error(error, error_size, "personRef: given twice (personRef and person_ref)");
        return ASY_EINVAL;
    }
    json_t *given = s_take(object, "personKey", "person_key", &key_name, &both);
    if (!nhs && !ref) {
        if (given && !(json_is_string(given) && s_is_pseudonym(json_string_value(given)))) {
            asy_set_error(error, error_size,
                        "%s: must be a pseudonym (64 lowercase hex digits); give a raw "
                        "identifier as nhsNumber or personRef",
                        key_name);
            return ASY_EINVAL;
        }
        return 0;
    }
    if (given) {
        asy_set_error(error, error_size, "%s: given together with %s; give one of them", key_name,
                    nhs ? nhs_name : ref_name);
        return ASY_EINVAL;
    }
    if (ref && nhs && !json_is_string(ref)) {
        asy_set_error(error, error_size, "%s: must be a string", ref_name);
        return ASY_EINVAL;
    }
    char pseudonym[ASY_PSEUDONYM_HEX + 1];
    if (s_person_pseudonym(key, site_id, nhs ? nhs : ref, nhs != NULL, nhs ? nhs_name : ref_name,
                           pseudonym, error, error_size) != 0)
        return ASY_EINVAL;
    json_object_del(object, "nhsNumber");
    json_object_del(object, "nhs_number");
    json_object_del(object, "personRef");
    json_object_del(object, "person_ref");
    if (json_object_set_new(object, "personKey", json_string(pseudonym)) != 0) {
        asy_set_error(error, error_size, "personKey: out of memory");
        return ASY_EINVAL;
    }
    return 0;
}

/* Derives caseId from caseRef. Returns 0 or ASY_EINVAL. */
static int s_apply_case(const asy_pseudonym_key_t *key, json_t *object, char *error,
                        size_t error_size)
{
    const char *ref_name, *id_name;
    bool both;
    json_t *ref = s_take(object, "caseRef", "case_ref", &ref_name, &both);
    if (both) {
        asy_set_error(error, error_size, "caseRef: given twice (caseRef and case_ref)");
        return ASY_EINVAL;
    }
    json_t *given = s_take(object, "caseId", "case_id", &id_name, &both);
    if (ref && given) {
        asy_set_error(error, error_size, "%s: given together with %s; give one of them", ref_name,
                    id_name);
        return ASY_EINVAL;
    }
    if (!ref && !given) {
        asy_set_error(error, error_size,
                    "caseRef: required (the local case reference; or caseId, "
                    "its pseudonym)");
        return ASY_EINVAL;
    }
    if (given) {
        if (!(json_is_string(given) && s_is_pseudonym(json_string_value(given)))) {
            asy_set_error(error, error_size,
                        "%s: must be a pseudonym (64 lowercase hex digits); give a raw case "
                        "reference as caseRef",
                        id_name);
            return ASY_EINVAL;
        }
        return 0;
    }
    char text[S_IDENTIFIER_MAX + 1];
    if (!s_identifier(ref, ref_name, text, error, error_size))
        return ASY_EINVAL;
    char pseudonym[ASY_PSEUDONYM_HEX + 1];
    asy_pseudonym_make(key, "case", text, pseudonym);
    sodium_memzero(text, sizeof text);
    json_object_del(object, "caseRef");
    json_object_del(object, "case_ref");
    if (json_object_set_new(object, "caseId", json_string(pseudonym)) != 0) {
        asy_set_error(error, error_size, "caseId: out of memory");
        return ASY_EINVAL;
    }
    return 0;
}

int asy_pseudonym_apply(const asy_pseudonym_key_t *key, const char *site_id, json_t *object,
                        char *error, size_t error_size)
{
    if (!json_is_object(object)) {
        asy_set_error(error, error_size, "event: must be a JSON object");
        return ASY_EINVAL;
    }
    int rc = s_apply_person(key, site_id, object, error, error_size);
    if (rc == 0)
        rc = s_apply_case(key, object, error, error_size);
    return rc;
}
