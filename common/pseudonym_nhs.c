/*  pseudonym_nhs.c: NHS numbers (see pseudonym.h): the modulus 11 check, the digits of a
    number as given, and the search for NHS numbers in free text (any script's digits, the
    separators people write), with the masking of what it finds.  */
#include "pseudonym_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_nhs_digits(const char *text, char digits[11]);

/* Modulus 11: weights 10..2 over the first nine digits; 11 - (sum mod 11) is the check
   digit, 11 reads as 0, and 10 means no valid number has these nine digits. */
bool asy_nhs_digits_check(const char digits[11])
{
    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += (digits[i] - '0') * (10 - i);
    int check = 11 - sum % 11;
    if (check == 11)
        check = 0;
    return check != 10 && check == digits[9] - '0';
}

/* Ten equal digits pass the modulus 11 check (0000000000, 1111111111, ...) but are never
   issued: case systems use them as placeholders for "not known", and taken as a person they
   would link every such record into one. */
bool asy_nhs_digits_placeholder(const char digits[11])
{
    for (int i = 1; i < 10; i++)
        if (digits[i] != digits[0])
            return false;
    return true;
}

bool asy_nhs_number_digits(const char *text, char digits[11])
{
    return text && s_nhs_digits(text, digits);
}

bool asy_nhs_number_valid(const char *text)
{
    char digits[11];
    return text && s_nhs_digits(text, digits) && asy_nhs_digits_check(digits) &&
           !asy_nhs_digits_placeholder(digits);
}

/* ---------------------------------------------------------------------------------------------
   NHS numbers in free text. */

#define S_NHS_GAP_MAX 3     /* separators allowed between two digits of one number */
#define S_NHS_GROUPS_MAX 64 /* groups of one run looked at together */

/* S_OPEN and S_CLOSE are '(' and ')': they end a run, except the pair around a telephone-style
   first group ("(943) 476 5919"), which the scan below recognises. */
typedef enum { S_BREAK, S_DIGIT, S_SEPARATOR, S_OPEN, S_CLOSE } s_class_t;

/* Decodes one UTF-8 code point strictly (no overlong forms, surrogates or code points past
   U+10FFFF); *length = bytes taken (1 for an invalid byte). Returns -1 if invalid. */
static long s_utf8_next(const unsigned char *text, size_t *length)
{
    unsigned char c = text[0];
    *length = 1;
    if (c < 0x80)
        return c;
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0)
        return -1;
    long point = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((text[i] & 0xc0) != 0x80)
            return -1;
        point = (point << 6) | (text[i] & 0x3f);
    }
    static const long least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (point < least[n] || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff))
        return -1;
    *length = n;
    return point;
}

/* The value of a decimal digit of any script (Unicode 15.0 category Nd: ASCII, Arabic-Indic,
   Devanagari, full-width, mathematical ...), or -1. Every script's digits are ten code points
   in a row, from its zero. */
static int s_digit_value(long point)
{
    static const long zeros[] = {
        0x0030,  0x0660,  0x06f0,  0x07c0,  0x0966,  0x09e6,  0x0a66,  0x0ae6,  0x0b66,  0x0be6,
        0x0c66,  0x0ce6,  0x0d66,  0x0de6,  0x0e50,  0x0ed0,  0x0f20,  0x1040,  0x1090,  0x17e0,
        0x1810,  0x1946,  0x19d0,  0x1a80,  0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,
        0xa8d0,  0xa900,  0xa9d0,  0xa9f0,  0xaa50,  0xabf0,  0xff10,  0x104a0, 0x10d30, 0x11066,
        0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0,
        0x11950, 0x11c50, 0x11d50, 0x11da0, 0x11f50, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8,
        0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e4f0, 0x1e950, 0x1fbf0,
    };
    for (size_t i = 0; i < sizeof zeros / sizeof zeros[0] && zeros[i] <= point; i++)
        if (point - zeros[i] < 10)
            return (int)(point - zeros[i]);
    return -1;
}

/* How separators are written: a gap between two digit groups is of one kind (blanks alone, or
   dashes, dots, slashes, underscores or apostrophes with or without blanks), PAREN (the ')'
   after a telephone-style first group) or MIXED. */
typedef enum {
    S_GAP_BLANK,
    S_GAP_DASH,
    S_GAP_DOT,
    S_GAP_SLASH,
    S_GAP_UNDERSCORE,
    S_GAP_APOSTROPHE,
    S_GAP_PAREN,
    S_GAP_MIXED
} s_gap_t;

/* True if point separates digits as people write an NHS number, with its kind in *gap: blanks
   (line ends and the Unicode spaces a word processor pastes), hyphens and dashes, '.', '/',
   '_', and the apostrophe of Swiss thousands ("943'476'5919", typographic or not). */
static bool s_separator(long point, s_gap_t *gap)
{
    if (point == ' ' || point == '\t' || point == '\n' || point == '\r' || point == 0x00a0 ||
        (point >= 0x2000 && point <= 0x200b) || point == 0x202f || point == 0x205f ||
        point == 0x2060 || point == 0x3000 || point == 0xfeff || point == 0x200e ||
        point == 0x200f || point == 0x061c || (point >= 0x202a && point <= 0x202e) ||
        (point >= 0x2066 && point <= 0x2069)) /* and the directional controls of mixed text */
        *gap = S_GAP_BLANK;
    else if (point == '-' || point == 0x00ad || (point >= 0x2010 && point <= 0x2015) ||
             point == 0x2212 || point == 0xfe58 || point == 0xfe63 || point == 0xff0d)
        *gap = S_GAP_DASH;
    else if (point == '.' || point == 0x00b7 || point == 0xff0e || point == 0x066b)
        *gap = S_GAP_DOT;
    else if (point == '/' || point == 0xff0f)
        *gap = S_GAP_SLASH;
    else if (point == '_' || point == 0xff3f)
        *gap = S_GAP_UNDERSCORE;
    else if (point == '\'' || point == 0x2019 || point == 0xff07 || point == 0x066c)
        *gap = S_GAP_APOSTROPHE;
    else
        return false;
    return true;
}

/* Copies the 10 ASCII digits of an NHS number into digits[11], dropping blanks and dashes as
   free text has them (a no-break space, an en dash, as a word processor writes them). Returns
   false if anything else is there or the count is not 10. */
static bool s_nhs_digits(const char *text, char digits[11])
{
    size_t count = 0, length;
    for (const unsigned char *p = (const unsigned char *)text; *p; p += length) {
        long point = s_utf8_next(p, &length);
        s_gap_t gap;
        if (s_separator(point, &gap) && (gap == S_GAP_BLANK || gap == S_GAP_DASH))
            continue;
        if (point < '0' || point > '9' || count == 10)
            return false;
        digits[count++] = (char)point;
    }
    digits[count] = '\0';
    return count == 10;
}

/* How a code point may stand in an NHS number: a digit (value in *digit), a separator (kind in
   *gap), a parenthesis, or anything else, which ends a run (letters, and ':' '+' ',' which
   write times, zones, telephone numbers and lists). */
static s_class_t s_classify(const unsigned char *text, size_t *length, int *digit, s_gap_t *gap)
{
    long point = s_utf8_next(text, length);
    *digit = s_digit_value(point);
    if (*digit >= 0)
        return S_DIGIT;
    if (s_separator(point, gap))
        return S_SEPARATOR;
    if (point == '(' || point == 0xff08)
        return S_OPEN;
    if (point == ')' || point == 0xff09)
        return S_CLOSE;
    return S_BREAK;
}

/* True if a digit starts at text + at; *length = its bytes. */
static bool s_digit_at(const unsigned char *text, size_t at, size_t *length, int *digit)
{
    s_gap_t gap;
    return text[at] && s_classify(text + at, length, digit, &gap) == S_DIGIT;
}

typedef struct {
    char digits[11]; /* the first ten */
    int count;
    size_t start, end; /* byte span of the digits (and of "(...)" around a closed first group) */
    s_gap_t gap;       /* of the separators before it (none for a run's first) */
    int before;        /* digits of the run before it */
    size_t open;       /* bytes of a '(' just before it, or 0 */
} s_group_t;

/* A candidate: groups[first..last] hold ten digits written as an NHS number is: in one group,
   as 3, 3 and 4 digits (any separators), or with every gap of one kind ("943  476 5919",
   "94.34.76.59.19"). A date with a time mixes its kinds ("03/11/2026 10"). After a '+' (a
   telephone number's country code) only the 3-3-4 grouping counts. */
static bool s_nhs_span(const s_group_t *groups, int first, int last, bool after_plus, size_t *start,
                       size_t *end)
{
    bool spaced = last == first + 2 && groups[first].count == 3 && groups[first + 1].count == 3 &&
                  groups[last].count == 4;
    if (after_plus && !spaced)
        return false;
    for (int g = first + 1; g <= last && !spaced; g++)
        if (groups[g].gap >= S_GAP_PAREN || groups[g].gap != groups[first + 1].gap)
            return false;
    char digits[11];
    int count = 0;
    for (int g = first; g <= last; g++)
        for (int d = 0; d < groups[g].count && count < 10; d++)
            digits[count++] = groups[g].digits[d];
    digits[10] = '\0';
    if (!asy_nhs_digits_check(digits) || asy_nhs_digits_placeholder(digits))
        return false;
    *start = groups[first].start;
    *end = groups[last].end;
    return true;
}

/* Looks at every span of whole groups of one run that holds exactly ten digits. */
static bool s_nhs_run(const s_group_t *groups, int count, bool after_plus, size_t *start,
                      size_t *end)
{
    for (int first = 0; first < count; first++) {
        int digits = 0;
        for (int last = first; last < count && digits < 10; last++) {
            digits += groups[last].count;
            /* the telephone number after a '+' is the run's first 15 digits at most (E.164):
               a span ending later holds text of its own */
            bool phone = after_plus && groups[last].before + groups[last].count <= 15;
            if (digits == 10 && s_nhs_span(groups, first, last, phone, start, end))
                return true;
        }
    }
    return false;
}

/* The scan of a text for runs: groups of digits with at most S_NHS_GAP_MAX separators between
   them. */
typedef struct {
    s_group_t groups[S_NHS_GROUPS_MAX];
    int count;        /* groups of the current run */
    int gap;          /* separators since the last digit */
    s_gap_t gap_kind; /* of those separators */
    bool in_group;    /* the last code point was a digit */
    bool after_plus;  /* the run began just after a '+' */
    bool plus_before; /* the last code point was a '+' */
    size_t open;      /* bytes of the last code point if it was a '(', or 0 */
} s_scan_t;

/* Ends the run, looking at what it holds. */
static bool s_scan_break(s_scan_t *scan, size_t *start, size_t *end)
{
    bool found = s_nhs_run(scan->groups, scan->count, scan->after_plus, start, end);
    scan->count = 0;
    scan->gap = 0;
    scan->gap_kind = S_GAP_BLANK;
    return found;
}

/* A separator of kind; one too many ends the run. */
static bool s_scan_separator(s_scan_t *scan, s_gap_t kind, size_t *start, size_t *end)
{
    if (kind != S_GAP_BLANK)
        scan->gap_kind =
            scan->gap_kind == S_GAP_BLANK || scan->gap_kind == kind ? kind : S_GAP_MIXED;
    return ++scan->gap > S_NHS_GAP_MAX && s_scan_break(scan, start, end);
}

/* Starts a group at byte at. A run too long to keep is looked at first, and its last nine
   groups kept (a ten-digit span has at most ten). */
static bool s_scan_group(s_scan_t *scan, size_t at, size_t *start, size_t *end)
{
    if (scan->count == 0)
        scan->after_plus = scan->plus_before;
    if (scan->count == S_NHS_GROUPS_MAX) {
        if (s_nhs_run(scan->groups, scan->count, scan->after_plus, start, end))
            return true;
        memmove(scan->groups, scan->groups + scan->count - 9, 9 * sizeof *scan->groups);
        scan->count = 9;
        scan->after_plus = false;
    }
    s_group_t *previous = scan->count > 0 ? &scan->groups[scan->count - 1] : NULL;
    s_group_t *group = &scan->groups[scan->count++];
    memset(group, 0, sizeof *group);
    group->before = previous ? previous->before + previous->count : 0;
    group->start = at;
    group->gap = previous ? scan->gap_kind : S_GAP_BLANK;
    group->open = scan->open;
    return false;
}

static bool s_scan_digit(s_scan_t *scan, size_t at, size_t length, int digit, size_t *start,
                         size_t *end)
{
    if (!scan->in_group && s_scan_group(scan, at, start, end))
        return true;
    s_group_t *group = &scan->groups[scan->count - 1];
    if (group->count < 10)
        group->digits[group->count] = (char)('0' + digit);
    group->count++;
    group->end = at + length;
    scan->gap = 0;
    scan->gap_kind = S_GAP_BLANK;
    return false;
}

/* A ')' just after "(DDD" at the start of a run, as a telephone number writes its area code
   ("(943) 476 5919"): a separator of its own kind, so that only the 3-3-4 grouping counts, and
   the span found starts at the '('. Any other ')' ends the run. '(' always ends one (a group
   opened by it starts a run). */
static bool s_scan_close(s_scan_t *scan, size_t *start, size_t *end)
{
    s_group_t *group = &scan->groups[0];
    if (!scan->in_group || scan->count != 1 || group->open == 0 || group->count != 3)
        return s_scan_break(scan, start, end);
    group->start -= group->open;
    return s_scan_separator(scan, S_GAP_PAREN, start, end);
}

/* The first NHS number in a run of digit groups (see s_nhs_span). */
static bool s_find_in_runs(const unsigned char *text, size_t *start, size_t *end)
{
    s_scan_t scan;
    memset(&scan, 0, sizeof scan);
    for (size_t at = 0;;) {
        size_t length = 1;
        int digit = 0;
        s_gap_t kind = S_GAP_BLANK;
        s_class_t class = text[at] ? s_classify(text + at, &length, &digit, &kind) : S_BREAK;
        bool found = class == S_DIGIT       ? s_scan_digit(&scan, at, length, digit, start, end)
                     : class == S_SEPARATOR ? s_scan_separator(&scan, kind, start, end)
                     : class == S_CLOSE     ? s_scan_close(&scan, start, end)
                                            : s_scan_break(&scan, start, end);
        if (found)
            return true;
        scan.in_group = class == S_DIGIT;
        scan.plus_before = class == S_BREAK && text[at] == '+';
        scan.open = class == S_OPEN ? length : 0;
        if (!text[at])
            return false;
        at += length;
    }
}

/* True if text + *at starts a list of digit groups joined by single commas that is exactly
   3, 3 and 4 digits ("943,476,5919") with a valid check digit and no decimal part after it.
   *at moves past the list's last digit. */
static bool s_comma_list(const unsigned char *text, size_t *at)
{
    char digits[11];
    int sizes[3] = {0, 0, 0}, groups = 0, count = 0;
    size_t length;
    int digit;
    for (;;) {
        int size = 0;
        for (; s_digit_at(text, *at, &length, &digit); *at += length, size++, count++)
            if (count < 10)
                digits[count] = (char)('0' + digit);
        if (groups < 3)
            sizes[groups] = size;
        groups++;
        if (text[*at] != ',' || !s_digit_at(text, *at + 1, &length, &digit))
            break;
        (*at)++;
    }
    digits[count < 10 ? count : 10] = '\0';
    bool decimal = text[*at] == '.' && s_digit_at(text, *at + 1, &length, &digit);
    return groups == 3 && sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 4 && !decimal &&
           asy_nhs_digits_check(digits) && !asy_nhs_digits_placeholder(digits);
}

/* The first NHS number written with commas: "943,476,5919" and nothing else. A comma makes
   lists ("12,5,2024"), amounts ("1,234,567,890") and CSV rows, so the list must be exactly the
   3-3-4 grouping (which no amount has), not follow a comma (a field of a CSV row) or a '.' after a
   digit (a decimal), and not be followed by a comma unless a space follows it, as in a sentence
   ("943,476,5919, seen"; not "...,5919,x" nor a row's empty last field "...,5919,"). */
static bool s_find_in_comma_lists(const unsigned char *text, size_t *start, size_t *end)
{
    bool after_digit = false, joined = false; /* joined: a ',' or a decimal '.' just before */
    for (size_t at = 0; text[at];) {
        size_t length, first = at;
        int digit;
        if (!s_digit_at(text, at, &length, &digit)) {
            joined = text[at] == ',' || (text[at] == '.' && after_digit);
            after_digit = false;
            s_utf8_next(text + at, &length);
            at += length;
            continue;
        }
        bool found = s_comma_list(text, &at) && !joined;
        if (found && !(text[at] == ',' && text[at + 1] != ' ')) {
            *start = first;
            *end = at;
            return true;
        }
        after_digit = true;
        joined = false;
    }
    return false;
}

/* True if text cannot hold ten digits: fewer than ten ASCII digits and no byte of a non-ASCII
   character (a digit of another script). The broker looks at every string of every event:
   most are names and places, and the full scan costs half a microsecond each. */
static bool s_too_few_digits(const unsigned char *text)
{
    int digits = 0;
    for (; *text; text++) {
        if (*text >= 0x80)
            return false;
        if (*text >= '0' && *text <= '9' && ++digits >= 10)
            return false;
    }
    return true;
}

bool asy_nhs_number_find(const char *text, size_t *start, size_t *end)
{
    const unsigned char *base = (const unsigned char *)(text ? text : "");
    if (s_too_few_digits(base))
        return false;
    size_t run_start = 0, run_end = 0, list_start = 0, list_end = 0;
    bool in_run = s_find_in_runs(base, &run_start, &run_end);
    bool in_list = s_find_in_comma_lists(base, &list_start, &list_end);
    if (!in_run && !in_list)
        return false;
    bool list_first = in_list && (!in_run || list_start < run_start);
    if (start)
        *start = list_first ? list_start : run_start;
    if (end)
        *end = list_first ? list_end : run_end;
    return true;
}

/* Where the run of digits and separators holding text + start begins: its first digit, or
   start if text + start is no digit ("(943) ..." begins at its '('). */
static size_t s_run_start(const unsigned char *text, size_t start)
{
    size_t length = 1, first = start;
    int digit;
    s_gap_t kind;
    if (!s_digit_at(text, start, &length, &digit))
        return start;
    for (size_t at = 0; at < start; at += length) {
        s_class_t class = s_classify(text + at, &length, &digit, &kind);
        if (class == S_DIGIT && first == start)
            first = at;
        else if (class != S_DIGIT && class != S_SEPARATOR)
            first = start;
    }
    return first;
}

/* Where that run ends: past its last digit. */
static size_t s_run_end(const unsigned char *text, size_t end)
{
    size_t length = 1;
    int digit;
    s_gap_t kind;
    for (size_t at = end; text[at]; at += length) {
        s_class_t class = s_classify(text + at, &length, &digit, &kind);
        if (class != S_DIGIT && class != S_SEPARATOR)
            break;
        if (class == S_DIGIT)
            end = at + length;
    }
    return end;
}

void asy_nhs_number_mask(const char *text, char *out, size_t size)
{
    static const char mask[] = "<NHS number>";
    if (size == 0)
        return;
    size_t used = 0;
    const char *p = text ? text : "";
    size_t start, end;
    while (used + 1 < size && *p) {
        size_t take = strlen(p);
        bool found = asy_nhs_number_find(p, &start, &end);
        if (found) {
            /* the whole run of digits it stands in: a match can be the wrong ten of a longer
               run ("ref 000006 9434 765919"), and the rest must not show what it missed */
            start = s_run_start((const unsigned char *)p, start);
            end = s_run_end((const unsigned char *)p, end);
            take = start;
        }
        if (take > size - 1 - used)
            take = size - 1 - used;
        memcpy(out + used, p, take);
        used += take;
        if (!found)
            break;
        size_t room = size - 1 - used;
        size_t put = room < sizeof mask - 1 ? room : sizeof mask - 1;
        memcpy(out + used, mask, put);
        used += put;
        p += end;
    }
    out[used] = '\0';
}

const char *asy_nhs_number_shown(const char *text, size_t limit, char *out, size_t size)
{
    if (size == 0)
        return out;
    /* the whole text is masked before the cut: a prefix cut inside a number, then masked,
       could leave nine of its digits once a masked run before it had shrunk the text (the
       mask of a 10-byte number is 12 bytes: room for twice the text is enough) */
    if (!text)
        text = "";
    size_t text_length = strlen(text);
    char *masked = malloc(2 * text_length + 16);
    if (!masked) {
        snprintf(out, size, "(not shown)");
        return out;
    }
    asy_nhs_number_mask(text, masked, 2 * text_length + 16);
    size_t length = strlen(masked);
    bool cut = length > limit;
    if (cut) {
        length = limit;
        while (length > 0 && ((unsigned char)masked[length] & 0xc0) == 0x80)
            length--; /* not inside a character */
    }
    snprintf(out, size, "%.*s%s", (int)length, masked, cut ? "..." : "");
    free(masked);
    return out;
}
