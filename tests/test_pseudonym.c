/*  test_pseudonym.c: keyed pseudonyms, NHS number checks, key files, asy_pseudonym_apply.  */
#include "harness.h"
#include "pseudonym.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *S_KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static char s_dir[256];

static void s_setup(void)
{
    asy_test_mkdtemp(s_dir, sizeof s_dir, "asy-test-pseudonym");
}

static void s_teardown(void)
{
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(command), 0);
}

static char *s_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    return path;
}

static void s_write(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
}

static asy_pseudonym_key_t s_test_key(void)
{
    asy_pseudonym_key_t key;
    for (int i = 0; i < 32; i++) {
        unsigned value;
        sscanf(S_KEY_HEX + 2 * i, "%2x", &value);
        key.bytes[i] = (uint8_t)value;
    }
    return key;
}

TestSuite(pseudonym, .init = s_setup, .fini = s_teardown);

Test(pseudonym, nhs_number_modulus_11)
{
    cr_assert(asy_nhs_number_valid("9434765919"));
    cr_assert(asy_nhs_number_valid("943 476 5919"));
    cr_assert(asy_nhs_number_valid("943-476-5919"));
    cr_assert(asy_nhs_number_valid("4010232137"));
    cr_assert_not(asy_nhs_number_valid("9434765918"), "wrong check digit accepted");
    cr_assert_not(asy_nhs_number_valid("943476591"), "nine digits accepted");
    cr_assert_not(asy_nhs_number_valid("94347659190"), "eleven digits accepted");
    cr_assert_not(asy_nhs_number_valid("943476591X"));
    cr_assert_not(asy_nhs_number_valid("943.476.5919"));
    cr_assert_not(asy_nhs_number_valid(""));
    cr_assert_not(asy_nhs_number_valid(NULL));
    /* 100000000x: sum = 10, 11 - 10 = 1 -> the check digit must be 1 */
    cr_assert(asy_nhs_number_valid("1000000001"));
    cr_assert_not(asy_nhs_number_valid("1000000000"));
    /* 000000006x: sum = 6*2 = 12 -> 11 - 1 = 10: no valid number has these nine digits */
    for (int last = 0; last <= 9; last++) {
        char text[16];
        snprintf(text, sizeof text, "000000006%d", last);
        cr_assert_not(asy_nhs_number_valid(text), "%s has check value 10: never valid", text);
    }
    /* sum % 11 == 0 -> check 11 -> 0: 000000014x has sum 1*3 + 4*2 = 11 */
    cr_assert(asy_nhs_number_valid("0000000140"));
    /* ten equal digits pass the arithmetic but are placeholders, never issued */
    for (char d = '0'; d <= '9'; d++) {
        char text[11];
        memset(text, d, 10);
        text[10] = '\0';
        cr_assert_not(asy_nhs_number_valid(text), "%s is a placeholder", text);
    }
}

/* NHS numbers written in free text as people write them (9434765919 is valid; 9434765918 is
   not). */
Test(pseudonym, nhs_numbers_are_found_in_free_text_however_written)
{
    static const char *const found[] = {
        "9434765919",
        "NHS 943 476 5919.",
        "943-476-5919",
        "943.476.5919",
        "943/476/5919",
        "943  476  5919",   /* two spaces */
        "943\t476\t5919",   /* tabs */
        "943 - 476 - 5919", /* three separators */
        "943\xc2\xa0"
        "476\xc2\xa0"
        "5919", /* no-break spaces */
        "943\xe2\x80\x93"
        "476\xe2\x80\x93"
        "5919", /* en dashes */
        "\xef\xbc\x99\xef\xbc\x94\xef\xbc\x93\xef\xbc\x94\xef\xbc\x97\xef\xbc\x96"
        "\xef\xbc\x95\xef\xbc\x99\xef\xbc\x91\xef\xbc\x99", /* full-width digits */
        "ward 7; 943 476 5919",
        "01632 960001 943 476 5919", /* after a telephone number */
        "bed 3, 9434765919",
        "bed 3: 94347 65919",
        "Ward 3 - 9434 765919",
        "room 12, 9434 765 919",
        "1) 94 34 76 59 19",
        "943\xef\xbb\xbf"
        "476\xef\xbb\xbf"
        "5919",                     /* zero-width no-break spaces */
        "GP, NHS no 943  476 5919", /* gaps of one kind, not of one length */
        "943 476  5919",
        "943 476-5919", /* 3-3-4, any separators */
        "943\t 476 5919",
        "943\xc2\xa0 476 5919",
        "943 476\n5919",
        "+44 943 476 5919",           /* 3-3-4 even after a country code */
        "+44 7700 900123 9434765919", /* after a telephone number */
        "Tel +44 20 7946 0958 / 9434765919",
        "+1 212 555 0123 94 34 76 59 19",
        /* after 31 dates in one run of digits (the 64 groups looked at together slide) */
        "Seen on 01/02 03/04 05/06 07/08 09/10 11/12 13/01 14/02 15/03 16/04 17/05 18/06 19/07 "
        "20/08 21/09 22/10 23/11 24/12 25/01 26/02 27/03 28/04 29/05 30/06 01/07 02/08 03/09 "
        "04/10 05/11 06/12 07/01 943 476 5919",
    };
    for (size_t i = 0; i < sizeof found / sizeof found[0]; i++)
        cr_assert(asy_nhs_number_find(found[i], NULL, NULL), "not found in \"%s\"", found[i]);
    static const char *const passed[] = {
        "",
        "9434765918",         /* check digit wrong */
        "943 476 591",        /* nine digits */
        "Tel 01632 960001",   /* eleven digits */
        "943    476    5919", /* gaps of four */
        "943a476b5919",       /* letters end runs */
        "1111111111",         /* a placeholder */
        "2026-11-03 10:00",
        "2026-11-03 10:12:30",
        /* dates and times that hold ten digits, in every form the check could confuse */
        "2026-01-05T11:00:00+01:00",
        "11:00:00+01:00",
        "03/11/2026 10:30",
        "Ward 2 call of 01/11/26 09:30",
        "10.11.2026 14.30",
        "2026-11-03 10",
        "943\xf0\x8f\xbc\x99"
        "476 591",         /* an overlong form is no full-width digit */
        "94347659190",     /* eleven in one group */
        "+44 9434 765919", /* a telephone number after a country code */
        "+449434765919",
        "Tel +44 20 7946 0958 05/11/2026", /* a date after a telephone number */
        "Tel +44 20 7946 0958 21 Nov",
        "\xff\xfe 943",
    };
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++)
        cr_assert_not(asy_nhs_number_find(passed[i], NULL, NULL), "found in \"%s\"", passed[i]);

    size_t start = 0, end = 0;
    cr_assert(asy_nhs_number_find("ref 01234, NHS 943.476.5919!", &start, &end));
    cr_assert_eq(start, 15);
    cr_assert_eq(end, 27);
    char out[64];
    asy_nhs_number_mask("a 943 476 5919 b 4010232137", out, sizeof out);
    cr_assert_str_eq(out, "a <NHS number> b <NHS number>");
    asy_nhs_number_mask("ref 000006 9434 765919 end", out, sizeof out);
    cr_assert_str_eq(out, "ref <NHS number> end", "the whole run, not the ten it matched");
    asy_nhs_number_mask("no number, 1234567890", out, sizeof out);
    cr_assert_str_eq(out, "no number, 1234567890");
    asy_nhs_number_mask("x 9434765919", out, 6);
    cr_assert_str_eq(out, "x <NH", "cut to fit, never the digits");
}

/* Every time of a day and every date of a year with a time, as timestamps and free text write
   them: about one in eleven ten-digit strings passes the check, so a detector that joined
   their digits would refuse one event in eleven. None may be found. */
Test(pseudonym, no_date_or_time_reads_as_an_nhs_number)
{
    long tried = 0;
    for (int form = 0; form < 5; form++)
        for (int month = 1; month <= 12; month++)
            for (int day = 1; day <= 28; day++)
                for (int minute = 0; minute < 24 * 60; minute += 7) {
                    char text[64];
                    int h = minute / 60, m = minute % 60;
                    if (form == 0)
                        snprintf(text, sizeof text, "2026-%02d-%02dT%02d:%02d:00+01:00", month, day,
                                 h, m);
                    else if (form == 1)
                        snprintf(text, sizeof text, "%02d/%02d/2026 %02d:%02d", day, month, h, m);
                    else if (form == 2)
                        snprintf(text, sizeof text, "%02d.%02d.2026 %02d.%02d", day, month, h, m);
                    else if (form == 3)
                        snprintf(text, sizeof text, "2026-%02d-%02d %02d:%02d", month, day, h, m);
                    else
                        snprintf(text, sizeof text, "%02d/%02d/26 %02d:%02d", day, month, h, m);
                    cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
                    tried++;
                }
    cr_assert_gt(tried, 300000);
}

/* Asserts that each text is found, and that masking leaves none of its digits. */
static void s_assert_found(const char *const *texts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char masked[256];
        cr_assert(asy_nhs_number_find(texts[i], NULL, NULL), "not found in \"%s\"", texts[i]);
        asy_nhs_number_mask(texts[i], masked, sizeof masked);
        cr_assert_str_eq(masked, "<NHS number>", "\"%s\" masked as \"%s\"", texts[i], masked);
    }
}

static void s_assert_not_found(const char *const *texts, size_t count)
{
    for (size_t i = 0; i < count; i++)
        cr_assert_not(asy_nhs_number_find(texts[i], NULL, NULL), "found in \"%s\"", texts[i]);
}

#define S_COUNT(array) (sizeof(array) / sizeof(array)[0])

/* A telephone writes its area code in parentheses: "(943) 476 5919" is one, and its mask takes
   the parentheses with the digits. Only "(DDD)" opening a 3-3-4 grouping counts. */
Test(pseudonym, nhs_numbers_in_telephone_style_are_found)
{
    static const char *const found[] = {
        "(943) 476 5919",
        "(943)476-5919",
        "(943) 476-5919",
        "(943)  476 5919",
        "(943)-476-5919",
        "(943).476.5919",
        "\xef\xbc\x88"
        "943\xef\xbc\x89"
        " 476 5919", /* full-width parentheses */
    };
    s_assert_found(found, S_COUNT(found));
    static const char *const passed[] = {
        "(943) 476 5918",  /* check digit wrong */
        "(943)) 476 5919", /* two closing */
        "(943)(476)5919",
        "(943 476) 5919",  /* the parentheses around more than the first group */
        "943) 476 5919",   /* no opening */
        "( 943) 476 5919", /* not around the digits alone */
        "(9434) 765 919",  /* not three digits inside */
        "(94) 3476 5919",
        "(943) 4765919", /* not 3-3-4 */
        "(943)    476 5919",
        "(020) 7946 0958", /* UK telephone numbers have eleven digits */
        "(01632) 960001",
        "+44 (0)20 7946 0958",
    };
    s_assert_not_found(passed, S_COUNT(passed));
    size_t start = 0, end = 0;
    cr_assert(asy_nhs_number_find("Tel (943) 476 5919.", &start, &end));
    cr_assert_eq(start, 4);
    cr_assert_eq(end, 18);
    char out[64];
    asy_nhs_number_mask("12 (943) 476 5919 ok", out, sizeof out);
    cr_assert_str_eq(out, "12 <NHS number> ok", "a '(' ends the run before it");
    asy_nhs_number_shown("Tel (943) 476 5919", 40, out, sizeof out);
    cr_assert_str_eq(out, "Tel <NHS number>");
}

/* '_' joins digits in names and numeric literals, the apostrophe in Swiss thousands
   ("9'434'765'919"); each is a separator kind of its own. */
Test(pseudonym, nhs_numbers_with_underscores_or_apostrophes_are_found)
{
    static const char *const found[] = {
        "943_476_5919",
        "9_434_765_919",
        "94_34_76_59_19",
        "943'476'5919",
        "9'434'765'919",
        "943 ' 476 ' 5919",
        "943\xe2\x80\x99"
        "476\xe2\x80\x99"
        "5919",         /* typographic apostrophes */
        "943_476-5919", /* 3-3-4, any separators */
        "943\xef\xbc\xbf"
        "476\xef\xbc\xbf"
        "5919", /* full-width low lines */
    };
    s_assert_found(found, S_COUNT(found));
    static const char *const passed[] = {
        "943_476_5918",     /* check digit wrong */
        "9434_765_91",      /* nine digits */
        "9434_76'59_19",    /* kinds mixed, not 3-3-4 */
        "943____476_5919",  /* four separators */
        "94'34'76'59'190",  /* eleven digits */
        "5'10\" and 6'2\"", /* feet and inches */
    };
    s_assert_not_found(passed, S_COUNT(passed));
    char out[64];
    asy_nhs_number_mask("scan_943_476_5919.pdf", out, sizeof out);
    cr_assert_str_eq(out, "scan_<NHS number>.pdf");
    asy_nhs_number_mask("'9434765919'", out, sizeof out);
    cr_assert_str_eq(out, "'<NHS number>'");
}

/* out = ascii with its digits written in the script whose zero is the code point zero. */
static void s_in_script(const char *ascii, long zero, char *out, size_t size)
{
    size_t used = 0;
    for (const char *p = ascii; *p && used + 5 < size; p++) {
        long point = *p >= '0' && *p <= '9' ? zero + (*p - '0') : *p;
        if (point < 0x80) {
            out[used++] = (char)point;
        } else if (point < 0x800) {
            out[used++] = (char)(0xc0 | (point >> 6));
            out[used++] = (char)(0x80 | (point & 0x3f));
        } else if (point < 0x10000) {
            out[used++] = (char)(0xe0 | (point >> 12));
            out[used++] = (char)(0x80 | ((point >> 6) & 0x3f));
            out[used++] = (char)(0x80 | (point & 0x3f));
        } else {
            out[used++] = (char)(0xf0 | (point >> 18));
            out[used++] = (char)(0x80 | ((point >> 12) & 0x3f));
            out[used++] = (char)(0x80 | ((point >> 6) & 0x3f));
            out[used++] = (char)(0x80 | (point & 0x3f));
        }
    }
    out[used] = '\0';
}

/* Digits of any script are digits: Arabic-Indic "٩٤٣٤٧٦٥٩١٩" is 9434765919. */
Test(pseudonym, nhs_numbers_in_digits_of_other_scripts_are_found)
{
    static const long zeros[] = {
        0x0660,  /* Arabic-Indic */
        0x06f0,  /* Extended Arabic-Indic (Persian, Urdu) */
        0x0966,  /* Devanagari */
        0x09e6,  /* Bengali */
        0x0a66,  /* Gurmukhi */
        0x0ae6,  /* Gujarati */
        0x0be6,  /* Tamil */
        0x0e50,  /* Thai */
        0xff10,  /* full-width */
        0x1d7ce, /* mathematical bold */
        0x1d7f6, /* mathematical monospace */
    };
    static const char *const found[] = {"9434765919", "943 476 5919", "(943) 476-5919",
                                        "943_476_5919", "943,476,5919"};
    static const char *const passed[] = {"9434765918", "943 476 591", "94347659190",
                                         "943a476b5919"};
    for (size_t z = 0; z < S_COUNT(zeros); z++) {
        char text[256];
        for (size_t i = 0; i < S_COUNT(found); i++) {
            s_in_script(found[i], zeros[z], text, sizeof text);
            const char *one[] = {text};
            s_assert_found(one, 1);
        }
        for (size_t i = 0; i < S_COUNT(passed); i++) {
            s_in_script(passed[i], zeros[z], text, sizeof text);
            cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
        }
        s_in_script("ref 000006 9434 765919 end", zeros[z], text, sizeof text);
        char out[256];
        asy_nhs_number_mask(text, out, sizeof out);
        cr_assert_str_eq(out, "ref <NHS number> end", "the whole run, not the ten it matched");
    }
    /* Arabic text: its thousands separator U+066C, and right-to-left marks U+200F between
       the groups (review) */
    cr_assert(asy_nhs_number_find("\xd9\xa9\xd9\xa4\xd9\xa3\xd9\xac\xd9\xa4\xd9\xa7\xd9\xa6\xd9\xac"
                                  "\xd9\xa5\xd9\xa9\xd9\xa1\xd9\xa9",
                                  NULL, NULL));
    cr_assert(asy_nhs_number_find("943\xe2\x80\x8f 476\xe2\x80\x8f 5919", NULL, NULL));
    cr_assert(asy_nhs_number_find("943\xe2\x80\xac 476 5919", NULL, NULL), "U+202C");
    cr_assert(asy_nhs_number_find("943\xe2\x81\xa9 476 5919", NULL, NULL), "U+2069");
    /* scripts mixed in one number */
    cr_assert(asy_nhs_number_find("943\xd9\xa4\xd9\xa7\xd9\xa6"
                                  "5919",
                                  NULL, NULL));
    /* signs that look like digits but are none: superscripts, circled digits */
    cr_assert_not(asy_nhs_number_find("94347659\xc2\xb9"
                                      "9",
                                      NULL, NULL));
    cr_assert_not(asy_nhs_number_find("\xe2\x91\xa8"
                                      "434765919",
                                      NULL, NULL));
}

/* Commas write lists, amounts and CSV rows, so only "943,476,5919" standing alone counts:
   exactly 3, 3 and 4 digits and one comma in each gap. */
Test(pseudonym, nhs_numbers_with_commas_only_as_3_3_4)
{
    static const char *const found[] = {
        "943,476,5919",
        "\xef\xbc\x99\xef\xbc\x94\xef\xbc\x93,\xef\xbc\x94\xef\xbc\x97\xef\xbc\x96,"
        "\xef\xbc\x95\xef\xbc\x99\xef\xbc\x91\xef\xbc\x99", /* full-width digits */
    };
    s_assert_found(found, S_COUNT(found));
    char out[64];
    asy_nhs_number_mask("no 943,476,5919, seen", out, sizeof out);
    cr_assert_str_eq(out, "no <NHS number>, seen");
    asy_nhs_number_mask("NHS 943,476,5919.", out, sizeof out);
    cr_assert_str_eq(out, "NHS <NHS number>.");
    asy_nhs_number_mask("(943,476,5919) \"943,476,5919\"", out, sizeof out);
    cr_assert_str_eq(out, "(<NHS number>) \"<NHS number>\"");
    static const char *const passed[] = {
        "943,476,5918",                                         /* check digit wrong */
        "943, 476, 5919",                                       /* a list in a sentence */
        "943,,476,5919",                                        /* two commas */
        "943 ,476,5919",                                        /* a comma and a blank */
        "9434,765,919",                                         /* not 3-3-4 */
        "94,34,76,59,19",                                       /* a list of five */
        "9,434,765,919",                                        /* an amount */
        "12,943,476,5919",                                      /* a list of four */
        "943,476,5919,12", "x,943,476,5919",                    /* fields of a CSV row */
        "943,476,5919,x",  "943,476,5919,",  "943,476,5919.25", /* a decimal */
        "1.943,476,5919",
    };
    s_assert_not_found(passed, S_COUNT(passed));
}

/* Lists of small numbers, dates written as lists, amounts with thousands commas and CSV rows of
   four fields or more never read as an NHS number, whatever their digits. */
Test(pseudonym, comma_lists_of_numbers_are_not_nhs_numbers)
{
    static const char *const passed[] = {
        "12,5,2024", "1,2,3,4,5,6,7,8,9,10", "doses 5,10,20,40 mg", "BP 120,80,72,98",
        "943,476",   "2026,11,03,10,30",     "1,234,567,890",       "12,345,678,901.50",
    };
    s_assert_not_found(passed, S_COUNT(passed));
    long tried = 0;
    uint32_t random = 1;
    char text[256];
    for (int i = 0; i < 60000; i++) {
        /* a list of 2 to 12 numbers below 1000, with or without blanks */
        int used = 0, items = 2 + i % 11;
        for (int item = 0; item < items; item++) {
            random = random * 1103515245u + 12345u;
            used += snprintf(text + used, sizeof text - (size_t)used, "%s%u",
                             item == 0 ? "" : (i & 1 ? ", " : ","), (random >> 8) % 1000);
        }
        cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
        /* a CSV row: four fields or more of up to 4 digits or a word */
        used = 0;
        items = 4 + i % 7;
        for (int item = 0; item < items; item++) {
            random = random * 1103515245u + 12345u;
            unsigned value = (random >> 8) % 10000;
            used += snprintf(text + used, sizeof text - (size_t)used,
                             item % 5 == 4 ? "%sword" : "%s%u", item == 0 ? "" : ",", value);
        }
        cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
        tried += 2;
    }
    for (int day = 1; day <= 31; day++)
        for (int month = 1; month <= 12; month++) {
            snprintf(text, sizeof text, "%d,%d,2026 %02d,%02d,2026", day, month, day, month);
            cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
            tried++;
        }
    /* amounts of 7 to 10 digits with thousands commas, with pence or without */
    for (long long amount = 1000000; amount < 10000000000LL; amount += 104729) {
        char digits[16];
        int n = snprintf(digits, sizeof digits, "%lld", amount), used = 0;
        for (int d = 0; d < n; d++)
            used += snprintf(text + used, sizeof text - (size_t)used, "%s%c",
                             d > 0 && (n - d) % 3 == 0 ? "," : "", digits[d]);
        cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
        snprintf(text + used, sizeof text - (size_t)used, ".%02lld", amount % 100);
        cr_assert_not(asy_nhs_number_find(text, NULL, NULL), "found in \"%s\"", text);
        tried += 2;
    }
    cr_assert_gt(tried, 300000);
}

Test(pseudonym, known_answer_blake2b_keyed)
{
    asy_pseudonym_key_t key = s_test_key();
    char out[ASY_PSEUDONYM_HEX + 1];
    /* reference values from Python: blake2b(domain + b"\0" + id, key=key, digest_size=32) */
    asy_pseudonym_make(&key, "nhs", "9434765919", out);
    cr_assert_str_eq(out, "77f1cc20948e18451632ade3ff407a2d997ebbadf19782d339eb20cc37e37cab");
    asy_pseudonym_make(&key, "person", "site-a:LOCAL-PERSON-77", out);
    cr_assert_str_eq(out, "ef579d0f59154442e3e8b0eef62397e724028f7eea7ca83f000155861ddd4d9d");
    asy_pseudonym_make(&key, "case", "CASE-RAW-0042", out);
    cr_assert_str_eq(out, "4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0");
    /* the domain separates equal identifiers */
    char other[ASY_PSEUDONYM_HEX + 1];
    asy_pseudonym_make(&key, "person", "9434765919", other);
    asy_pseudonym_make(&key, "nhs", "9434765919", out);
    cr_assert_str_neq(out, other);
    /* another key, another pseudonym */
    key.bytes[0] ^= 1;
    asy_pseudonym_make(&key, "nhs", "9434765919", other);
    cr_assert_str_neq(out, other);
}

Test(pseudonym, key_load_accepts_hex_with_white_space)
{
    char text[128];
    snprintf(text, sizeof text, "  %s\n\n", S_KEY_HEX);
    s_write(s_path("k1"), text);
    asy_pseudonym_key_t key, expected = s_test_key();
    char error[256] = "";
    cr_assert_eq(asy_pseudonym_key_load(s_path("k1"), &key, error, sizeof error), 0, "%s", error);
    cr_assert_arr_eq(key.bytes, expected.bytes, 32);

    /* upper case hex is the same key */
    char upper[65];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(S_KEY_HEX[i] >= 'a' ? S_KEY_HEX[i] - 32 : S_KEY_HEX[i]);
    upper[64] = '\0';
    s_write(s_path("k2"), upper);
    cr_assert_eq(asy_pseudonym_key_load(s_path("k2"), &key, error, sizeof error), 0, "%s", error);
    cr_assert_arr_eq(key.bytes, expected.bytes, 32);
}

Test(pseudonym, key_load_refuses_bad_files)
{
    asy_pseudonym_key_t key;
    char error[256] = "";
    cr_assert_eq(asy_pseudonym_key_load(s_path("missing"), &key, error, sizeof error), ASY_EIO);
    cr_assert(strstr(error, "missing"), "error should name the file: %s", error);

    s_write(s_path("short"), "00112233");
    cr_assert_eq(asy_pseudonym_key_load(s_path("short"), &key, error, sizeof error), ASY_ECONFIG);
    cr_assert(strstr(error, "64 hex digits"), "%s", error);

    char text[128];
    snprintf(text, sizeof text, "%.63sg", S_KEY_HEX);
    s_write(s_path("nothex"), text);
    cr_assert_eq(asy_pseudonym_key_load(s_path("nothex"), &key, error, sizeof error), ASY_ECONFIG);

    snprintf(text, sizeof text, "%s00", S_KEY_HEX);
    s_write(s_path("long"), text);
    cr_assert_eq(asy_pseudonym_key_load(s_path("long"), &key, error, sizeof error), ASY_ECONFIG);

    snprintf(text, sizeof text, "%.32s %.32s", S_KEY_HEX, S_KEY_HEX + 32);
    s_write(s_path("split"), text);
    cr_assert_eq(asy_pseudonym_key_load(s_path("split"), &key, error, sizeof error), ASY_ECONFIG);
}

Test(pseudonym, key_generate_is_private_and_never_overwrites)
{
    char error[256] = "";
    const char *path = s_path("new.key");
    cr_assert_eq(asy_pseudonym_key_generate(path, error, sizeof error), 0, "%s", error);
    struct stat info;
    cr_assert_eq(stat(path, &info), 0);
    cr_assert_eq(info.st_mode & 0777, 0600, "mode %o", info.st_mode & 0777);
    asy_pseudonym_key_t first, second;
    cr_assert_eq(asy_pseudonym_key_load(path, &first, error, sizeof error), 0, "%s", error);

    cr_assert_eq(asy_pseudonym_key_generate(path, error, sizeof error), ASY_EEXIST);
    cr_assert(strstr(error, "already exists"), "%s", error);
    cr_assert_eq(asy_pseudonym_key_load(path, &second, error, sizeof error), 0);
    cr_assert_arr_eq(first.bytes, second.bytes, 32, "an existing key was changed");

    const char *other = s_path("other.key");
    cr_assert_eq(asy_pseudonym_key_generate(other, error, sizeof error), 0, "%s", error);
    cr_assert_eq(asy_pseudonym_key_load(other, &second, error, sizeof error), 0);
    cr_assert_arr_neq(first.bytes, second.bytes, 32, "two generated keys are equal");

    cr_assert_eq(asy_pseudonym_key_generate("/nonexistent-dir/x.key", error, sizeof error),
                 ASY_EIO);
}

/* Parses text into an object, applies pseudonyms; returns rc and leaves the object in *out. */
static int s_apply(const char *text, json_t **out, char *error, size_t error_size)
{
    asy_pseudonym_key_t key = s_test_key();
    json_error_t json_error;
    *out = json_loads(text, 0, &json_error);
    cr_assert_not_null(*out, "bad test JSON: %s", json_error.text);
    error[0] = '\0';
    return asy_pseudonym_apply(&key, "site-a", *out, error, error_size);
}

Test(pseudonym, apply_replaces_raw_identifiers)
{
    json_t *object;
    char error[256];
    int rc = s_apply("{\"nhsNumber\":\"943 476 5919\",\"personRef\":\"LOCAL-PERSON-77\","
                     "\"caseRef\":\"CASE-RAW-0042\",\"contactMade\":{}}",
                     &object, error, sizeof error);
    cr_assert_eq(rc, 0, "%s", error);
    /* the NHS number wins over the local reference, spaces stripped */
    cr_assert_str_eq(json_string_value(json_object_get(object, "personKey")),
                     "77f1cc20948e18451632ade3ff407a2d997ebbadf19782d339eb20cc37e37cab");
    cr_assert_str_eq(json_string_value(json_object_get(object, "caseId")),
                     "4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0");
    cr_assert_null(json_object_get(object, "nhsNumber"));
    cr_assert_null(json_object_get(object, "personRef"));
    cr_assert_null(json_object_get(object, "caseRef"));
    cr_assert_not_null(json_object_get(object, "contactMade"), "other keys are kept");
    char *dump = json_dumps(object, 0);
    cr_assert_null(strstr(dump, "5919"));
    cr_assert_null(strstr(dump, "LOCAL-PERSON"));
    cr_assert_null(strstr(dump, "CASE-RAW"));
    free(dump);
    json_decref(object);

    rc = s_apply("{\"person_ref\":\"LOCAL-PERSON-77\",\"case_ref\":\"CASE-RAW-0042\"}", &object,
                 error, sizeof error);
    cr_assert_eq(rc, 0, "%s", error);
    /* personRef is scoped by the site: make("person", "site-a:LOCAL-PERSON-77") */
    cr_assert_str_eq(json_string_value(json_object_get(object, "personKey")),
                     "ef579d0f59154442e3e8b0eef62397e724028f7eea7ca83f000155861ddd4d9d");
    cr_assert_null(json_object_get(object, "person_ref"));
    cr_assert_null(json_object_get(object, "case_ref"));
    json_decref(object);

    /* an NHS number with the no-break spaces and en dashes a word processor writes */
    rc = s_apply("{\"nhsNumber\":\"943\u00a0476\u2013"
                 "5919\",\"caseRef\":\"CASE-RAW-0042\"}",
                 &object, error, sizeof error);
    cr_assert_eq(rc, 0, "%s", error);
    cr_assert_str_eq(json_string_value(json_object_get(object, "personKey")),
                     "77f1cc20948e18451632ade3ff407a2d997ebbadf19782d339eb20cc37e37cab");
    json_decref(object);

    /* blanks around a reference are not part of it (import trims its cells too): a padded
       export column names the same case and person */
    rc = s_apply("{\"personRef\":\" LOCAL-PERSON-77\\t\",\"caseRef\":\"CASE-RAW-0042  \"}", &object,
                 error, sizeof error);
    cr_assert_eq(rc, 0, "%s", error);
    cr_assert_str_eq(json_string_value(json_object_get(object, "personKey")),
                     "ef579d0f59154442e3e8b0eef62397e724028f7eea7ca83f000155861ddd4d9d");
    cr_assert_str_eq(json_string_value(json_object_get(object, "caseId")),
                     "4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0");
    json_decref(object);

    /* and so are the no-break, narrow no-break and zero-width spaces and the byte order mark
       that a reference pasted from a word processor carries, as import trims them (review: the
       same case was split in two by a trailing U+00A0) */
    static const char *const pasted[] = {"{\"caseRef\":\"CASE-RAW-0042\\u00a0\"}",
                                         "{\"caseRef\":\"\\u200bCASE-RAW-0042\"}",
                                         "{\"caseRef\":\"\\ufeffCASE-RAW-0042\\u202f \"}"};
    for (size_t i = 0; i < sizeof pasted / sizeof pasted[0]; i++) {
        rc = s_apply(pasted[i], &object, error, sizeof error);
        cr_assert_eq(rc, 0, "%s: %s", pasted[i], error);
        cr_assert_str_eq(json_string_value(json_object_get(object, "caseId")),
                         "4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0", "%s",
                         pasted[i]);
        json_decref(object);
    }

    /* pseudonyms given directly pass through */
    rc =
        s_apply("{\"caseId\":\"4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0\"}",
                &object, error, sizeof error);
    cr_assert_eq(rc, 0, "%s", error);
    cr_assert_null(json_object_get(object, "personKey"));
    json_decref(object);
}

Test(pseudonym, apply_refuses_bad_identifiers)
{
    static const struct {
        const char *json;
        const char *field;
    } cases[] = {
        {"{\"nhsNumber\":\"9434765918\",\"caseRef\":\"c\"}", "nhsNumber: not a valid NHS number"},
        {"{\"nhsNumber\":\"94347659\",\"caseRef\":\"c\"}", "nhsNumber: not an NHS number"},
        {"{\"nhsNumber\":\"000 000 0000\",\"caseRef\":\"c\"}", "nhsNumber: a placeholder"},
        {"{\"nhsNumber\":9434765919,\"caseRef\":\"c\"}", "nhsNumber: must be a string"},
        {"{\"personRef\":\"\",\"caseRef\":\"c\"}", "personRef: must not be empty"},
        {"{\"caseRef\":\" \\t \"}", "caseRef: must not be empty or blank"},
        {"{\"caseRef\":\"\\u00a0\"}", "caseRef: must not be empty or blank"},
        {"{\"caseRef\":\"c\",\"personRef\":\"\\u200b\\ufeff\"}",
         "personRef: must not be empty or blank"},
        {"{\"caseRef\":\"c\",\"caseId\":"
         "\"4b1cc7bb677d802eb3650942c408779372252039b5f75f76a0d5bf3c3c6c64c0\"}",
         "caseRef: given together with caseId"},
        {"{\"personRef\":\"p\"}", "caseRef: required"},
        {"{}", "caseRef: required"},
        {"{\"caseId\":\"CASE-RAW-0042\"}", "caseId: must be a pseudonym"},
        {"{\"caseRef\":\"c\",\"personKey\":\"LOCAL-PERSON-77\"}", "personKey: must be a pseudonym"},
        {"{\"caseRef\":\"c\",\"nhsNumber\":\"9434765919\",\"personKey\":"
         "\"ef579d0f59154442e3e8b0eef62397e724028f7eea7ca83f000155861ddd4d9d\"}",
         "personKey: given together with nhsNumber"},
        {"{\"caseRef\":[1]}", "caseRef: must be a string"},
        {"{\"caseRef\":\"a\",\"case_ref\":\"b\"}", "caseRef: given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *object;
        char error[256];
        int rc = s_apply(cases[i].json, &object, error, sizeof error);
        cr_assert_eq(rc, ASY_EINVAL, "%s: accepted", cases[i].json);
        cr_assert(strncmp(error, cases[i].field, strlen(cases[i].field)) == 0,
                  "%s: error \"%s\" should start \"%s\"", cases[i].json, error, cases[i].field);
        /* no error message echoes the raw value */
        cr_assert_null(strstr(error, "943476"), "%s", error);
        json_decref(object);
    }
    asy_pseudonym_key_t key = s_test_key();
    char error[256];
    json_t *array = json_array();
    cr_assert_eq(asy_pseudonym_apply(&key, "site-a", array, error, sizeof error), ASY_EINVAL);
    json_decref(array);
}

/* A quote is masked whole, then cut: masking a prefix cut inside a second number, after a
   first masked run had shrunk the text, left nine of its digits within the limit (review). */
Test(pseudonym, a_quote_never_shows_nine_digits_of_a_number)
{
    size_t size = 12 + 2 * 1077 + 17;
    char *text = malloc(size);
    cr_assert_not_null(text);
    strcpy(text, "943 476 5919");
    for (int i = 0; i < 1077; i++)
        strcat(text, " 1");
    strcat(text, "x9434765919 tail");
    char out[64 + 4];
    asy_nhs_number_shown(text, 60, out, sizeof out);
    cr_assert_null(strstr(out, "943476591"), "%s", out);
    cr_assert_str_eq(out, "<NHS number>x<NHS number> tail");
    free(text);
}
