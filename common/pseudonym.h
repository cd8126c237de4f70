/*  pseudonym.h: keyed hashes of person and case identifiers, made at the site.

    The consortium key is 32 random bytes shared by every site (a file of 64 hex digits).
    A pseudonym is hex(BLAKE2b-256 keyed with it over "domain\0identifier"), so the same person
    links across sites while no raw identifier leaves the site.  */
#ifndef ASY_PSEUDONYM_H_INCLUDED
#define ASY_PSEUDONYM_H_INCLUDED

#include "asy.h"

#include <jansson.h>

typedef struct {
    uint8_t bytes[32];
} asy_pseudonym_key_t;

/* Loads a key file (64 hex digits, surrounding white space allowed). Returns 0, ASY_EIO if it
   cannot be read, or ASY_ECONFIG if malformed; error[] says which. */
int asy_pseudonym_key_load(const char *path, asy_pseudonym_key_t *key, char *error,
                           size_t error_size);

/* Writes a new random key file with mode 0600; refuses (ASY_EEXIST) to overwrite one. */
int asy_pseudonym_key_generate(const char *path, char *error, size_t error_size);

/* out[65] = pseudonym of identifier in domain ("nhs", "person", "case"). */
void asy_pseudonym_make(const asy_pseudonym_key_t *key, const char *domain,
                        const char *identifier, char out[ASY_PSEUDONYM_HEX + 1]);

/* True if text is a valid 10-digit NHS number (spaces allowed; modulus 11 check digit). */
bool asy_nhs_number_valid(const char *text);
/* digits[11] = the ten digits of text without its spaces and hyphens, as the pseudonym is made
   of them; false if text is not ten digits so written (the check digit is not tested). */
bool asy_nhs_number_digits(const char *text, char digits[11]);

/* True if text (UTF-8) holds what reads as an NHS number, written as people write one: ten
   digits (of any script: ASCII, full-width, Arabic-Indic, Devanagari ...) with a valid check
   digit, with up to 3 separators between digits (blanks, tabs, dashes, '.', '/', '_', the
   apostrophe, no-break and other Unicode spaces), the first 3 perhaps in parentheses
   ("(943) 476 5919"), or "943,476,5919" standing alone. A letter, a gap of 4 separators or
   more, or the end of the text ends a run. *start and *end (either may be NULL) get the byte
   span of the first one found (from the '(' of a number in parentheses). */
bool asy_nhs_number_find(const char *text, size_t *start, size_t *end);

/* Copies text into out (size bytes, always terminated), with every span asy_nhs_number_find
   finds replaced by "<NHS number>": for messages that quote what they refuse. */
void asy_nhs_number_mask(const char *text, char *out, size_t size);

/* text as a message may quote it: at most limit bytes (cut on a character boundary, then
   "..."), with every NHS number of the whole text masked before the cut, so that a cut never
   leaves nine of its ten digits. out must hold limit + 4 bytes; returns out ("(not shown)"
   if out of memory). */
const char *asy_nhs_number_shown(const char *text, size_t limit, char *out, size_t size);

/* Replaces the raw identifier keys of a JSON event object by pseudonyms, in place:
     "nhsNumber"  -> "personKey" = make("nhs", digits only)
     "personRef"  -> "personKey" = make("person", site_id + ":" + value)  (if no nhsNumber)
     "caseRef"    -> "caseId"    = make("case", value)
   (snake_case spellings nhs_number, person_ref, case_ref are accepted too). The raw keys are
   removed from the object. Returns 0, or ASY_EINVAL with a message naming the field (bad NHS
   number, non-string value, both caseRef and caseId given, neither given). */
int asy_pseudonym_apply(const asy_pseudonym_key_t *key, const char *site_id, json_t *object,
                        char *error, size_t error_size);

#endif
