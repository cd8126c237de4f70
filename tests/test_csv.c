/*  test_csv.c: the RFC 4180 record reader (common/csv.c) that `advsync-agent import` and
    `advsync-ctl denominators load` read with: quotes, line ends, line numbers, and the records
    it had to guess at.  */
#include "csv.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

Test(csv, quotes_and_lines)
{
    char text[] = "a,\"b, c\",\"say \"\"hi\"\"\"\r\n"
                  "\n"
                  "\"two\nlines\",,x\n"
                  "last";
    FILE *file = fmemopen(text, strlen(text), "r");
    cr_assert_not_null(file);
    asy_csv_t csv;
    csv = (asy_csv_t){.file = file, .delimiter = ',', .line = 1};
    cr_assert_eq(asy_csv_next(&csv), 1);
    cr_assert_eq(csv.count, 3);
    cr_assert_str_eq(asy_csv_field(&csv, 1), "b, c");
    cr_assert_str_eq(asy_csv_field(&csv, 2), "say \"hi\"");
    cr_assert_eq(asy_csv_next(&csv), 1);
    cr_assert_eq(csv.count, 1, "blank line: one empty field");
    cr_assert_eq(csv.record_line, 2);
    cr_assert_eq(asy_csv_next(&csv), 1);
    cr_assert_eq(csv.record_line, 3);
    cr_assert_str_eq(asy_csv_field(&csv, 0), "two\nlines");
    cr_assert_str_eq(asy_csv_field(&csv, 1), "");
    cr_assert_eq(asy_csv_next(&csv), 1);
    cr_assert_eq(csv.record_line, 5);
    cr_assert_str_eq(asy_csv_field(&csv, 0), "last");
    cr_assert_str_eq(csv.problem, "");
    cr_assert_eq(asy_csv_next(&csv), 0);
    asy_csv_release(&csv);
    fclose(file);
}

/* Reads text (with embedded NULs: size given) record by record into problems[i] ("" if fine);
   returns the number of records. */
static int s_csv_problems(const char *text, size_t size, char problems[][192], int most,
                          char first_field[64])
{
    FILE *file = fmemopen((void *)text, size, "r");
    cr_assert_not_null(file);
    asy_csv_t csv = {.file = file, .delimiter = ',', .line = 1};
    int records = 0;
    while (records < most && asy_csv_next(&csv) == 1) {
        if (records == 0)
            snprintf(first_field, 64, "%s", asy_csv_field(&csv, 0));
        memcpy(problems[records++], csv.problem, sizeof csv.problem);
    }
    asy_csv_release(&csv);
    fclose(file);
    return records;
}

Test(csv, names_what_it_had_to_guess_at)
{
    char problems[4][192], first[64];
    /* a byte-order mark before a quoted header holding the delimiter */
    const char bom[] = "\xEF\xBB\xBF\"Notes, misc\",Case\r\nx,y\r\n";
    cr_assert_eq(s_csv_problems(bom, sizeof bom - 1, problems, 4, first), 2);
    cr_assert_str_eq(first, "Notes, misc");
    cr_assert_str_eq(problems[0], "");
    /* bytes that only begin like one are text */
    const char almost[] = "\xEF\xBBx,y\n";
    cr_assert_eq(s_csv_problems(almost, sizeof almost - 1, problems, 4, first), 1);
    cr_assert_str_eq(first, "\xEF\xBBx");
    /* a quote left open swallows the next rows up to a quote that is then followed by text */
    const char open[] = "a,\"Ward 3\nb,c\nd,\"The \"\"Friends\"\"\"\ne,f\n";
    cr_assert_eq(s_csv_problems(open, sizeof open - 1, problems, 4, first), 2);
    cr_assert_str_eq(problems[0], "field 2: text after its closing quote on line 3 (a quote "
                                  "inside a quoted field is written twice: \"\"); lines 1-3 "
                                  "were read as one row");
    cr_assert_str_eq(problems[1], "", "the reader is back in step on line 4");
    /* a NUL byte */
    const char nul[] = "a,b\nWard\0 9,c\n";
    cr_assert_eq(s_csv_problems(nul, sizeof nul - 1, problems, 4, first), 2);
    cr_assert_str_eq(problems[1], "field 1: a NUL byte on line 2 (the export is damaged or not "
                                  "text)");
    /* never closed */
    const char never[] = "a,b\n\"x\ny\n";
    cr_assert_eq(s_csv_problems(never, sizeof never - 1, problems, 4, first), 2);
    cr_assert_str_eq(problems[1], "a quoted field is never closed (field 1 runs to the end of "
                                  "the file; lines 2-3 were read as one row)");
}

/* Lines that end in CR alone (as old Mac exports do) count inside quoted fields too. */
Test(csv, lines_ending_in_cr_alone_are_counted_inside_quotes)
{
    char problems[4][192], first[64];
    const char after[] = "a,\"b\rc,\"d\",e\rf,g\r";
    cr_assert_eq(s_csv_problems(after, sizeof after - 1, problems, 4, first), 2);
    cr_assert_str_eq(problems[0], "field 2: text after its closing quote on line 2 (a quote "
                                  "inside a quoted field is written twice: \"\"); lines 1-2 "
                                  "were read as one row");
    const char never[] = "a,b\r\"x\ry\r";
    cr_assert_eq(s_csv_problems(never, sizeof never - 1, problems, 4, first), 2);
    cr_assert_str_eq(problems[1], "a quoted field is never closed (field 1 runs to the end of "
                                  "the file; lines 2-3 were read as one row)");
    /* the record after a two-line quoted field starts on line 4 */
    char text[] = "a,b\r\"x\ry\",c\rd,e\r";
    FILE *file = fmemopen(text, strlen(text), "r");
    asy_csv_t csv = {.file = file, .delimiter = ',', .line = 1};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(asy_csv_next(&csv), 1);
    cr_assert_str_eq(asy_csv_field(&csv, 0), "d");
    cr_assert_eq(csv.record_line, 4);
    asy_csv_release(&csv);
    fclose(file);
}
