/*  test_ctl.c: advsync-ctl (the program, run through asy_test_run) against a fresh database
    whose schema asy_store_new created: the holiday table commands, the gov.uk feed import,
    the TS021-shaped denominator load, its all-or-nothing errors, and the exit codes. Also the
    CSV record reader of client/ctl directly.  */
#include "ctl.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_OUT 65536

static char *s_conninfo;
static char *s_dir;
static PGconn *s_pg;

static void s_setup(void)
{
    s_conninfo = asy_test_create_database();
    asy_test_migrate(s_conninfo);
    s_pg = asy_test_pg_connect(s_conninfo);
    s_dir = asy_test_tmpdir();
    unsetenv("ADVSYNC_DATABASE");
}

static void s_teardown(void)
{
    if (s_pg)
        PQfinish(s_pg);
    s_pg = NULL;
    asy_test_drop_database(s_conninfo);
    free(s_conninfo);
    s_conninfo = NULL;
    if (s_dir) {
        char *argv[] = {"/bin/rm", "-rf", s_dir, NULL};
        asy_test_run(argv, NULL, 0, 10000);
    }
    free(s_dir);
    s_dir = NULL;
}

TestSuite(ctl, .init = s_setup, .fini = s_teardown, .timeout = 120);

/* Runs `advsync-ctl ARGS...` (NULL-terminated) with stdout and stderr in out; returns the exit
   code. */
static int s_ctl(char *out, size_t out_size, ...)
{
    char *argv[32] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", ASY_CTL_PATH};
    size_t argc = 4;
    va_list args;
    va_start(args, out_size);
    for (char *arg = va_arg(args, char *); arg; arg = va_arg(args, char *)) {
        cr_assert_lt(argc, 31);
        argv[argc++] = arg;
    }
    va_end(args);
    argv[argc] = NULL;
    static char ignored[S_OUT];
    return asy_test_run(argv, out ? out : ignored, out ? out_size : sizeof ignored, 30000);
}

/* `advsync-ctl --database <the test's database> ARGS...`. */
#define s_db(out, ...) s_ctl(out, sizeof(out), "--database", s_conninfo, __VA_ARGS__, NULL)

static char *s_write_file(const char *name, const char *text)
{
    size_t size = strlen(s_dir) + strlen(name) + 2;
    char *path = malloc(size);
    cr_assert_not_null(path);
    snprintf(path, size, "%s/%s", s_dir, name);
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
    return path;
}

/* ----------------------------------------------------------------------------------------------
   holidays */

Test(ctl, holidays_add_remove_clear_list)
{
    char out[S_OUT];
    cr_assert_eq(s_db(out, "holidays", "add", "2026-06-01", "--note", "one-off"), 0, "%s", out);
    cr_assert(strstr(out, "2026-06-01 Monday: added by table: one-off"), "%s", out);
    cr_assert_eq(s_db(out, "holidays", "remove", "2026-08-31", "--note=moved"), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 2);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2026-08-31' AND change = "
                       "'removed' AND note = 'moved'"),
                 1);

    cr_assert_eq(s_db(out, "holidays", "list", "--year", "2026"), 0, "%s", out);
    cr_assert(strstr(out, "2026-06-01 Monday  added by table: one-off\n"), "%s", out);
    cr_assert(strstr(out, "2026-08-31 Monday  removed by table: moved\n"), "%s", out);
    cr_assert(strstr(out, "2026-12-28 Monday\n"), "substitute Boxing Day: %s", out);
    cr_assert_null(strstr(out, "2027-"), "only 2026: %s", out);

    /* add over an existing row replaces it */
    cr_assert_eq(s_db(out, "holidays", "add", "2026-08-31"), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2026-08-31' AND change = "
                       "'added' AND note IS NULL"),
                 1);

    cr_assert_eq(s_db(out, "holidays", "clear", "2026-06-01"), 0, "%s", out);
    cr_assert_eq(s_db(out, "holidays", "list", "--year", "2026"), 0, "%s", out);
    cr_assert_null(strstr(out, "2026-06-01"), "%s", out);
    cr_assert_eq(s_db(out, "holidays", "clear", "2026-06-01"), 1, "%s", out);
    cr_assert(strstr(out, "no row for 2026-06-01"), "%s", out);

    cr_assert_eq(s_db(out, "holidays", "add", "2026-02-30"), 2, "%s", out);
    cr_assert(strstr(out, "DATE \"2026-02-30\" is not a real date"), "%s", out);
    cr_assert_eq(s_db(out, "holidays", "remove", "1/6/2026"), 2, "%s", out);
    cr_assert_eq(s_db(out, "holidays", "list", "--year", "twenty"), 2, "%s", out);
    cr_assert_eq(s_db(out, "holidays", "add"), 2, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 1, "bad input changed nothing");
}

/* The holiday table is read whatever DateStyle the session has (PGDATESTYLE, ALTER DATABASE
   or postgresql.conf): day::text gave "01/06/2026", and list failed with "protocol error". */
Test(ctl, holidays_are_read_whatever_the_datestyle)
{
    char out[S_OUT];
    cr_assert_eq(setenv("PGDATESTYLE", "SQL, DMY", 1), 0);
    cr_assert_eq(s_db(out, "holidays", "add", "2026-06-01", "--note", "one-off"), 0, "%s", out);
    cr_assert_eq(s_db(out, "holidays", "list", "--year", "2026"), 0, "%s", out);
    cr_assert(strstr(out, "2026-06-01 Monday  added by table: one-off\n"), "%s", out);
    cr_assert_eq(unsetenv("PGDATESTYLE"), 0);
}

Test(ctl, holidays_list_default_is_this_year_and_next)
{
    char out[S_OUT];
    cr_assert_eq(s_db(out, "holidays", "list"), 0, "%s", out);
    int year = 0;
    cr_assert_eq(sscanf(out, "%d-", &year), 1, "%s", out);
    char next[16];
    snprintf(next, sizeof next, "\n%d-12-", year + 1);
    cr_assert(strstr(out, next), "%s", out);
}

/* 2027 complete (January and December dates) but without the early May holiday, plus a
   one-off; 2028 only partly (one January date); the Scottish division is ignored. */
static const char *const S_FEED =
    "{\"england-and-wales\": {\"division\": \"england-and-wales\", \"events\": [\n"
    " {\"title\": \"New Year's Day\", \"date\": \"2027-01-01\", \"notes\": \"\", "
    "\"bunting\": true},\n"
    " {\"title\": \"Good Friday\", \"date\": \"2027-03-26\", \"notes\": \"\", \"bunting\": "
    "false},\n"
    " {\"title\": \"Easter Monday\", \"date\": \"2027-03-29\", \"notes\": \"\", \"bunting\": "
    "true},\n"
    " {\"title\": \"Spring bank holiday\", \"date\": \"2027-05-31\", \"notes\": \"\", "
    "\"bunting\": true},\n"
    " {\"title\": \"Extra bank holiday\", \"date\": \"2027-06-07\", \"notes\": \"\", "
    "\"bunting\": true},\n"
    " {\"title\": \"Summer bank holiday\", \"date\": \"2027-08-30\", \"notes\": \"\", "
    "\"bunting\": true},\n"
    " {\"title\": \"Christmas Day\", \"date\": \"2027-12-27\", \"notes\": \"Substitute day\", "
    "\"bunting\": true},\n"
    " {\"title\": \"Boxing Day\", \"date\": \"2027-12-28\", \"notes\": \"Substitute day\", "
    "\"bunting\": true},\n"
    " {\"title\": \"New Year's Day\", \"date\": \"2028-01-03\", \"notes\": \"Substitute "
    "day\", \"bunting\": true}\n"
    "]}, \"scotland\": {\"division\": \"scotland\", \"events\": [\n"
    " {\"title\": \"2nd January\", \"date\": \"2027-01-04\", \"notes\": \"\", \"bunting\": true}\n"
    "]}}\n";

Test(ctl, holidays_import_is_idempotent)
{
    char out[S_OUT];
    char *feed = s_write_file("bank-holidays.json", S_FEED);
    /* a 'removed' row for a date the feed lists is cleared; rows of other years are kept */
    cr_assert_eq(s_db(out, "holidays", "remove", "2027-12-27"), 0, "%s", out);
    cr_assert_eq(s_db(out, "holidays", "add", "2030-07-01", "--note", "far future"), 0, "%s", out);

    cr_assert_eq(s_db(out, "holidays", "import", feed), 0, "%s", out);
    cr_assert(strstr(out, "added    2027-06-07 Monday    Extra bank holiday"), "%s", out);
    cr_assert(strstr(out, "removed  2027-05-03 Monday    not in the gov.uk feed"), "%s", out);
    cr_assert(strstr(out, "cleared  2027-12-27"), "%s", out);
    cr_assert_null(strstr(out, "2027-01-04"), "Scotland is not read: %s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2027-06-07' AND change = "
                       "'added' AND note = 'Extra bank holiday'"),
                 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2027-05-03' AND change = "
                       "'removed'"),
                 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day >= '2028-01-01' AND day < "
                       "'2029-01-01'"),
                 0, "2028 is only partly covered: nothing removed");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2030-07-01'"), 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 3);
    long long stamp = asy_test_pg_intf(s_pg, "SELECT extract(epoch FROM max(updated_at)) * 1000000 FROM holiday");

    cr_assert_eq(s_db(out, "holidays", "import", feed), 0, "%s", out);
    cr_assert(strstr(out, "no change"), "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 3);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT extract(epoch FROM max(updated_at)) * 1000000 FROM holiday"), stamp,
                 "a second import writes nothing");

    cr_assert_eq(s_db(out, "holidays", "list", "--year", "2027"), 0, "%s", out);
    cr_assert(strstr(out, "2027-05-03 Monday  removed by table: not in the gov.uk feed\n"), "%s",
              out);
    cr_assert(strstr(out, "2027-06-07 Monday  added by table: Extra bank holiday\n"), "%s", out);
    cr_assert(strstr(out, "2027-12-27 Monday\n"), "%s", out);
    free(feed);
}

/* A byte order mark (some downloads add one) and a null title were refused. */
Test(ctl, holidays_import_reads_a_feed_with_a_bom_and_null_titles)
{
    char out[S_OUT];
    char *feed = s_write_file("bom.json", "\xef\xbb\xbf{\"england-and-wales\": {\"events\": [\n"
                                          "{\"title\": null, \"date\": \"2030-07-01\"}]}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", feed), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2030-07-01'"
                                        " AND change = 'added'"),
                 1);
    free(feed);

    /* through a pipe (`holidays import <(curl ...)`), whose size reads as 0 */
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/feed.fifo", s_dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    fflush(NULL);
    pid_t writer = fork();
    cr_assert_geq(writer, 0);
    if (writer == 0) {
        FILE *pipe = fopen(fifo, "w");
        if (pipe)
            fputs("{\"england-and-wales\": {\"events\": [\n"
                  "{\"title\": \"Piped\", \"date\": \"2030-07-02\"}]}}\n",
                  pipe);
        _exit(pipe && fclose(pipe) == 0 ? 0 : 1);
    }
    cr_assert_eq(s_db(out, "holidays", "import", fifo), 0, "%s", out);
    int status = 0;
    cr_assert_eq(waitpid(writer, &status, 0), writer);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday WHERE day = '2030-07-02'"),
                 1);
}

Test(ctl, holidays_import_rejects_bad_feed)
{
    char out[S_OUT];
    char *bad_date = s_write_file("bad.json", "{\"england-and-wales\": {\"events\": [\n"
                                              "{\"title\": \"A\", \"date\": \"2027-01-01\"},\n"
                                              "{\"title\": \"B\", \"date\": \"2027-02-30\"}]}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", bad_date), 1, "%s", out);
    cr_assert(strstr(out, "england-and-wales.events[1].date: \"2027-02-30\""), "%s", out);
    char *broken = s_write_file("broken.json", "{\"england-and-wales\": {\n \"events\": [,]}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", broken), 1, "%s", out);
    cr_assert(strstr(out, "broken.json:2:"), "JSON error with its line: %s", out);
    cr_assert_eq(s_db(out, "holidays", "import", "/nonexistent/feed.json"), 1, "%s", out);
    cr_assert(strstr(out, "advsync-ctl: unable to open /nonexistent/feed.json: No such file"),
              "no line -1 of a file never read: %s", out);
    char *old = s_write_file("old.json", "{\"england-and-wales\": {\"events\": [\n"
                                         "{\"title\": \"A\", \"date\": \"1950-01-01\"}]}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", old), 1, "%s", out);
    cr_assert(strstr(out, "events[0].date: \"1950-01-01\" is before 1971"), "%s", out);
    free(old);
    cr_assert_eq(s_db(out, "holidays", "add", "1970-06-01"), 2, "%s", out);
    cr_assert(strstr(out, "DATE \"1970-06-01\" is before 1971"), "%s", out);
    cr_assert_eq(s_db(out, "holidays", "import", "/tmp"), 1, "%s", out);
    cr_assert(strstr(out, "unable to open /tmp: it is a folder"), "%s", out);
    char *no_date = s_write_file("nodate.json", "{\"england-and-wales\": {\"events\": [\n"
                                                "{\"title\": \"A\", \"date\": 20270101}]}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", no_date), 1, "%s", out);
    cr_assert(strstr(out, "events[0].date: missing or not text (a date YYYY-MM-DD is expected)"),
              "%s", out);
    free(no_date);
    /* a year with January and December but two dates: trimmed, not taken as complete */
    char *trimmed =
        s_write_file("trimmed.json", "{\"england-and-wales\": {\"events\": [\n"
                                     "{\"title\": \"NY\", \"date\": \"2027-01-01\"},\n"
                                     "{\"title\": \"B\", \"date\": \"2027-12-28\"}]}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", trimmed), 1, "%s", out);
    cr_assert(strstr(out, "2027 has dates in January and December but only 2 holidays"), "%s", out);
    free(trimmed);
    char *other = s_write_file("other.json", "{\"scotland\": {\"events\": []}}\n");
    cr_assert_eq(s_db(out, "holidays", "import", other), 1, "%s", out);
    cr_assert(strstr(out, "england-and-wales.events: missing"), "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 0);
    free(bad_date);
    free(broken);
    free(other);
}

/* ----------------------------------------------------------------------------------------------
   denominators */

/* TS021 as Nomis gives it, columns shuffled, an extra age band column, a -8 row, group names. */
static const char *const S_TS021 =
    "\"Observation\",\"Ethnic group (20 categories)\",\"Lower tier local authorities\","
    "\"Ethnic group (20 categories) Code\",\"Lower tier local authorities Code\",age_band\r\n"
    "0,Does not apply,\"Bristol, City of\",-8,E06000023,0\r\n"
    "1000,\"Asian, Asian British or Asian Welsh: Pakistani\",\"Bristol, City of\",4,"
    "E06000023,0\r\n"
    "3000,\"White: English, Welsh, Scottish, Northern Irish or British\",\"Bristol, City of\","
    "ONS_WHITE_BRITISH,E06000023,ALL\r\n"
    "4000,Total,\"Bristol, City of\",0,E06000023,0\r\n"
    "900,Total,\"Bristol, City of\",0,E06000023,AGE_0_15\r\n"
    "3100,Total,\"Bristol, City of\",0,E06000023,AGE_18_34\r\n"
    "77,\"Other ethnic group: Arab\",\"Kingston upon Hull, City of\",18,E06000010,3\r\n";

Test(ctl, denominators_load_ts021_shape)
{
    char out[S_OUT];
    char *csv = s_write_file("ts021.csv", S_TS021);
    cr_assert_eq(s_db(out, "denominators", "load", csv, "--source", "TS021 test"), 0, "%s", out);
    cr_assert(strstr(out, "2 areas, 6 rows"), "%s", out);
    cr_assert(strstr(out, "skipped 1 \"does not apply\" (-8) row"), "%s", out);
    cr_assert(strstr(out, "E06000023\tBristol, City of\t5 rows\tpopulation 4000 (all-groups "
                          "row)"),
              "%s", out);
    cr_assert(strstr(out, "E06000010\tKingston upon Hull, City of\t1 rows\tpopulation 77"), "%s",
              out);
    cr_assert_null(strstr(out, "no age band"), "it gives 18-34: %s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator"), 6);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT population FROM denominator WHERE area_code = 'E06000023' AND "
                       "ethnicity_ons = 13 AND age_band = 0"),
                 3000);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT population FROM denominator WHERE area_code = 'E06000010' AND "
                       "ethnicity_ons = 18 AND age_band = 3"),
                 77);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_name = 'Bristol, City of' "
                       "AND source = 'TS021 test'"),
                 5);

    /* a new file for one area replaces that area's rows only */
    char *bristol = s_write_file("bristol.csv", "area_code,area_name,ethnicity_ons,population\n"
                                                "E06000023,Bristol,0,4100\n");
    cr_assert_eq(s_db(out, "denominators", "load", bristol), 0, "%s", out);
    cr_assert(strstr(out, "replaced 5 earlier rows"), "%s", out);
    cr_assert(strstr(out, "note: "), "%s", out);
    cr_assert(strstr(out, "bristol.csv gives no age band from 18-34 to 50-64: the community "
                          "service's figures (M8's referral rows, M9, M10) count against "
                          "residents aged 18-64"),
              "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_code = 'E06000023'"), 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_code = 'E06000010'"), 1);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE source = 'bristol.csv'"), 1);

    cr_assert_eq(s_db(out, "denominators", "list", "--area", "E06000010"), 0, "%s", out);
    cr_assert(strstr(out, "E06000010\tKingston upon Hull, City of\tONS_OTHER_ARAB\tAGE_18_34\tALL"
                          "\t77\tTS021 test\t"),
              "%s", out);
    cr_assert_null(strstr(out, "E06000023"), "%s", out);

    /* an area loaded by mistake is taken out again (a load only replaces the areas it names) */
    cr_assert_eq(s_db(out, "denominators", "remove", "e06000023"), 0, "%s", out);
    cr_assert(strstr(out, "removed 1 row(s) of area E06000023"), "%s", out);
    cr_assert_eq(
        asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_code = 'E06000023'"),
        0);
    cr_assert_eq(
        asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_code = 'E06000010'"),
        1);
    cr_assert_eq(s_db(out, "denominators", "remove", "E06000023"), 1, "%s", out);
    cr_assert(strstr(out, "no rows for area E06000023"), "%s", out);
    cr_assert_eq(s_db(out, "denominators", "remove"), 2, "%s", out);
    /* an empty area code is a usage error, not an area with no rows (review) */
    cr_assert_eq(s_db(out, "denominators", "remove", ""), 2, "%s", out);
    cr_assert(strstr(out, "one AREA_CODE expected (it is empty)"), "%s", out);
    cr_assert_eq(s_db(out, "denominators", "list", "--area", ""), 2, "%s", out);
    cr_assert(strstr(out, "--area is empty"), "%s", out);
    free(csv);
    free(bristol);
}

/* A tab in an area's name or in the source (both kept as loaded) does not shift list's
   columns: it used to print the name's second half as the group and the band as the
   population. */
Test(ctl, denominators_list_keeps_its_columns_with_a_tab_in_a_name)
{
    char out[S_OUT];
    char *csv = s_write_file("tab.csv", "area_code,area_name,ethnicity_ons,population\n"
                                        "E09000001,\"City of\tLondon\",0,5000\n");
    cr_assert_eq(s_db(out, "denominators", "load", csv, "--source", "census\t2021"), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_name = "
                                        "E'City of\\tLondon' AND source = E'census\\t2021'"),
                 1);
    cr_assert_eq(s_db(out, "denominators", "list", "--area", "E09000001"), 0, "%s", out);
    cr_assert(strstr(out, "E09000001\tCity of London\t"), "%s", out);
    cr_assert(strstr(out, "\t5000\tcensus 2021\t"), "%s", out);
    free(csv);
}

/* Loads a bad file: exit 1, the message, and the table as it was. */
static void s_expect_rejected(const char *name, const char *text, const char *message)
{
    char out[S_OUT];
    long long rows = asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator");
    long long total = asy_test_pg_intf(s_pg, "SELECT coalesce(sum(population), 0) FROM denominator");
    char *path = s_write_file(name, text);
    cr_assert_eq(s_db(out, "denominators", "load", path), 1, "%s", out);
    cr_assert(strstr(out, message), "want \"%s\" in: %s", message, out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator"), rows, "%s changed the table", name);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT coalesce(sum(population), 0) FROM denominator"), total);
    free(path);
}

/* Population by sex, for M10's age/sex strata: a "sex" column of names, or ONS's "Sex (2
   categories) Code" with ONS's codes (1 Female, 2 Male: the opposite of the Sex enum). A
   number under "sex" is refused as ambiguous, and so is a group and band of one area given
   both for persons and by sex (counted twice), or for one sex only. */
Test(ctl, denominators_by_sex)
{
    char out[S_OUT];
    char *named = s_write_file("named.csv", "area_code,ethnicity_ons,age_band,sex,population\n"
                                            "E1,0,0,,5000\n"
                                            "E1,0,AGE_18_34,Male,1000\n"
                                            "E1,0,AGE_18_34,f,1100\n"
                                            "E1,13,3,SEX_MALE,800\n"
                                            "E1,13,3,female,850\n");
    cr_assert_eq(s_db(out, "denominators", "load", named), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator WHERE area_code = 'E1'"),
                 5);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT population FROM denominator WHERE area_code = "
                                        "'E1' AND ethnicity_ons = 0 AND age_band = 3 AND sex = 2"),
                 1100);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT population FROM denominator WHERE area_code = "
                                        "'E1' AND ethnicity_ons = 0 AND age_band = 0 AND sex = 0"),
                 5000);
    cr_assert_eq(s_db(out, "denominators", "list", "--area", "E1"), 0, "%s", out);
    cr_assert(strstr(out, "area\tarea_name\tgroup\tband\tsex\tpopulation\t"), "%s", out);
    cr_assert(strstr(out, "E1\t\tONS_WHITE_BRITISH\tAGE_18_34\tSEX_FEMALE\t850\t"), "%s", out);
    cr_assert(strstr(out, "E1\t\tALL\tALL\tALL\t5000\t"), "%s", out);
    char *ons = s_write_file("ons.csv", "\"Lower tier local authorities Code\",\"Ethnic group (20 "
                                        "categories) Code\",\"Sex (2 categories) Code\",\"Sex (2 "
                                        "categories)\",\"Observation\",age_band\n"
                                        "E2,0,1,Female,300,4\n"
                                        "E2,0,2,Male,280,4\n");
    cr_assert_eq(s_db(out, "denominators", "load", ons), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT population FROM denominator WHERE area_code = "
                                        "'E2' AND age_band = 4 AND sex = 2"),
                 300, "ONS code 1 is Female");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT population FROM denominator WHERE area_code = "
                                        "'E2' AND age_band = 4 AND sex = 1"),
                 280);
    const char *header = "area_code,ethnicity_ons,age_band,sex,population\n";
    char text[512];
    snprintf(text, sizeof text, "%sE3,0,3,1,1000\n", header);
    s_expect_rejected("number.csv", text,
                      "number.csv:2: sex: 1: write Male or Female (a number is ambiguous");
    snprintf(text, sizeof text, "%sE3,0,3,Male,1000\nE3,0,3,Female,900\nE3,0,3,ALL,1900\n",
             header);
    s_expect_rejected("both.csv", text,
                      "both.csv:4: area_code E3, group 0, band 3: given both for persons and by "
                      "sex (counted twice)");
    snprintf(text, sizeof text, "%sE3,0,3,Male,1000\nE3,0,4,Female,900\n", header);
    s_expect_rejected("one.csv", text,
                      "one.csv:2: area_code E3, group 0, band 3: given for males but not for "
                      "females");
    snprintf(text, sizeof text, "%sE3,0,3,Male,1000\nE3,0,3,m,900\n", header);
    s_expect_rejected("twice.csv", text, "twice.csv:3: area_code E3, group 0, band 3, male: "
                                         "given already on line 2");
    snprintf(text, sizeof text, "%sE3,0,3,boy,1000\n", header);
    s_expect_rejected("word.csv", text, "word.csv:2: sex: \"boy\" is not Male, Female or ALL");
    s_expect_rejected("onscode.csv",
                      "area_code,ethnicity_ons,Sex (2 categories) Code,population\nE3,0,3,10\n",
                      "onscode.csv:2: Sex (2 categories) Code: \"3\" is not 1 (Female) or 2 (Male)");
    free(named);
    free(ons);
}

Test(ctl, denominators_bad_line_changes_nothing)
{
    char out[S_OUT];
    char *good = s_write_file("good.csv", "area_code,ethnicity_ons,population\n"
                                          "E1,0,100\nE1,13,60\nE1,4,40\n");
    cr_assert_eq(s_db(out, "denominators", "load", good), 0, "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM denominator"), 3);
    const char *header = "area_code,ethnicity_ons,population\n";
    char text[512];
    snprintf(text, sizeof text, "%sE1,0,1\nE1,13,-5\nE1,4,40\n", header);
    s_expect_rejected("negative.csv", text, "negative.csv:3: population: \"-5\"");
    /* one code, two names: most likely a wrong code (two areas summed as one) */
    s_expect_rejected("names.csv",
                      "area_code,area_name,ethnicity_ons,population\n"
                      "E08000034,Kirklees,0,433213\nE08000033,Calderdale,0,206600\n"
                      "E08000034,Calderdale,13,170000\nE08000034,,3,5\n",
                      "names.csv:4: area_code E08000034 is named \"Calderdale\" here and "
                      "\"Kirklees\" on line 2: is one of the codes wrong?");
    snprintf(text, sizeof text, "%sE1,0,1\nE1,13,5\nE1,ONS_MARTIAN,4\n", header);
    s_expect_rejected("group.csv", text, "group.csv:4: ethnicity_ons: \"ONS_MARTIAN\"");
    snprintf(text, sizeof text, "%sE1,0,1\nE1,13,5\nE1,4,4\nE1,ONS_WHITE_BRITISH,4\n", header);
    s_expect_rejected("dup.csv", text,
                      "dup.csv:5: area_code E1, group 13, band 0: given "
                      "already on line 3");
    /* an area code in small letters is the same area: a duplicate, not a second area */
    snprintf(text, sizeof text, "%sE1,0,1\ne1,0,1\n", header);
    s_expect_rejected("case.csv", text,
                      "case.csv:3: area_code E1, group 0, band 0: given "
                      "already on line 2");
    snprintf(text, sizeof text, "%sE1,0,1\nE1,20,5\n", header);
    s_expect_rejected("code.csv", text, "code.csv:3: ethnicity_ons: 20 is not a code");
    snprintf(text, sizeof text, "area_code,ethnicity_ons,population,age_band\nE1,0,1,7\n");
    s_expect_rejected("band.csv", text, "band.csv:2: age_band: 7 is not a code of AgeBand");
    snprintf(text, sizeof text, "%sE1,0,1\n\"E1,0,1\n", header);
    s_expect_rejected("quote.csv", text, "quote.csv:3: a quoted field is never closed");
    s_expect_rejected("header.csv", "area,group,people\nE1,0,1\n",
                      "header.csv:1: header: no area code");
    s_expect_rejected("fields.csv", "area_code,ethnicity_ons,population\nE1,0\n",
                      "fields.csv:2: 2 fields, but the header has 3");
    /* review: Latin-1 text was refused by PostgreSQL's COPY with no line and the bytes of its
       own text form; a -8 row was skipped unchecked */
    s_expect_rejected("latin1.csv",
                      "area_code,area_name,ethnicity_ons,population\nE1,Ynys M\xf4n,0,1\n",
                      "latin1.csv:2: area_name: not UTF-8 text (byte 7 is 0xF4)");
    snprintf(text, sizeof text, "%sE1,0,1\nE1,-8,garbage\n", header);
    s_expect_rejected("skipped.csv", text, "skipped.csv:3: population: \"garbage\"");
    snprintf(text, sizeof text, "%sE1,0,1\nE 13,0,1\n", header);
    s_expect_rejected("blank.csv", text, "blank.csv:3: area_code: holds a blank");
    snprintf(text, sizeof text, "%sE1,0,1\n,-8,0\n", header);
    s_expect_rejected("nocode.csv", text, "nocode.csv:3: area_code: empty");
    snprintf(text, sizeof text, "%sE1,0,9223372036854775807\n", header);
    s_expect_rejected("huge.csv", text,
                      "huge.csv:2: population: \"9223372036854775807\" is not a whole number from "
                      "0 to 100000000000");
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT sum(population) FROM denominator WHERE area_code = 'E1'"), 200);
    free(good);
}

Test(ctl, denominators_example_file_adds_up)
{
    char out[S_OUT];
    cr_assert_eq(
        s_db(out, "denominators", "load", ASY_SOURCE_DIR "/deploy/examples/denominators-ts021.csv"),
        0, "%s", out);
    cr_assert(strstr(out, "E08000034\tKirklees\t26 rows\tpopulation 433213"), "%s", out);
    cr_assert_null(strstr(out, "warning"), "groups and bands add up: %s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT sum(population) FROM denominator WHERE ethnicity_ons BETWEEN 1 "
                       "AND 5 AND age_band = 0"),
                 84202);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT sum(population) FROM denominator WHERE ethnicity_ons BETWEEN 13 "
                       "AND 17 AND age_band = 0"),
                 318969);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT sum(population) FROM denominator WHERE ethnicity_ons = 0 AND "
                       "age_band > 0"),
                 433213);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT max(ethnicity_ons) FROM denominator WHERE population = (SELECT "
                       "max(population) FROM denominator WHERE ethnicity_ons BETWEEN 1 AND 5)"),
                 4, "Pakistani is the largest Asian group");
}

/* ----------------------------------------------------------------------------------------------
   The program's edges */

Test(ctl, database_sources_and_failures)
{
    char out[S_OUT];
    char bad[512];
    snprintf(bad, sizeof bad, "%s dbname=asy_ctl_no_such_database", asy_test_conninfo());
    cr_assert_eq(s_ctl(out, sizeof out, "--database", bad, "holidays", "list", NULL), 1, "%s", out);
    cr_assert(strstr(out, "cannot connect to PostgreSQL"), "%s", out);
    /* not a conninfo at all: said as such (it used to be tried as a database name) */
    cr_assert_eq(s_ctl(out, sizeof out, "--database", "this is bad", "holidays", "list", NULL), 2,
                 "%s", out);
    cr_assert(strstr(out, "the database \"this is bad\" is not a libpq conninfo: missing \"=\""),
              "%s", out);

    cr_assert_eq(
        s_ctl(out, sizeof out, "--database", "password='Secret 1' oops", "holidays", "list", NULL),
        2, "%s", out);
    cr_assert(strstr(out, "the database \"password=*** oops\" is not a libpq conninfo"), "%s", out);
    cr_assert_null(strstr(out, "Secret"), "%s", out);

    cr_assert_eq(s_ctl(out, sizeof out, "holidays", "list", NULL), 1, "%s", out);
    cr_assert(strstr(out, "which database?"), "%s", out);
    /* an empty flag is refused, not taken as "look in the config file" (as advsyncd refuses it) */
    char *fallback = s_write_file("fallback.cfg", "broker\n    database = \"dbname=x\"\n");
    cr_assert_eq(
        s_ctl(out, sizeof out, "--database", "", "--config", fallback, "holidays", "list", NULL), 2,
        "%s", out);
    cr_assert(strstr(out, "--database is empty"), "%s", out);
    free(fallback);

    /* a database advsyncd never started against */
    char *empty = asy_test_create_database();
    cr_assert_eq(s_ctl(out, sizeof out, "--database", empty, "denominators", "list", NULL), 1, "%s",
                 out);
    cr_assert(strstr(out, "no table \"denominator\": start advsyncd once"), "%s", out);
    asy_test_drop_database(empty);
    free(empty);

    /* the environment, then the config file */
    setenv("ADVSYNC_DATABASE", s_conninfo, 1);
    cr_assert_eq(s_ctl(out, sizeof out, "holidays", "add", "2026-06-01", NULL), 0, "%s", out);
    unsetenv("ADVSYNC_DATABASE");
    char config[1024];
    snprintf(config, sizeof config, "broker\n    database = \"%s\"\n", s_conninfo);
    char *config_path = s_write_file("advsyncd.cfg", config);
    cr_assert_eq(
        s_ctl(out, sizeof out, "--config", config_path, "holidays", "clear", "2026-06-01", NULL), 0,
        "%s", out);
    cr_assert_eq(asy_test_pg_intf(s_pg, "SELECT count(*) FROM holiday"), 0);
    char *no_key = s_write_file("nokey.cfg", "broker\n    workers = 2\n");
    cr_assert_eq(s_ctl(out, sizeof out, "--config", no_key, "holidays", "list", NULL), 1, "%s",
                 out);
    cr_assert(strstr(out, "no broker/database key"), "%s", out);
    /* given twice: refused, as advsyncd refuses it */
    snprintf(config, sizeof config, "broker\n    database = \"%s\"\n    database = \"dbname=x\"\n",
             s_conninfo);
    char *twice = s_write_file("twice.cfg", config);
    cr_assert_eq(s_ctl(out, sizeof out, "--config", twice, "holidays", "list", NULL), 1, "%s", out);
    cr_assert(strstr(out, "broker/database is given twice"), "%s", out);
    char *misspelt = s_write_file("misspelt.cfg", "brokr\n    database = \"dbname=x\"\n");
    cr_assert_eq(s_ctl(out, sizeof out, "--config", misspelt, "holidays", "list", NULL), 1, "%s",
                 out);
    cr_assert(strstr(out, "\"brokr\" is not a section of any advsync program"), "%s", out);
    free(misspelt);
    /* a file zconfig cannot parse: said so, and nothing leaks (czmq's zconfig_load kept the
       file of such a text, and LeakSanitizer turned the exit status into 1 for --help too) */
    char *broken = s_write_file("broken.cfg", "broker\n  database = \"dbname=x\"\n");
    cr_assert_eq(s_ctl(out, sizeof out, "--config", broken, "holidays", "list", NULL), 1, "%s",
                 out);
    cr_assert(strstr(out, "is not valid zconfig text"), "%s", out);
    cr_assert_null(strstr(out, "LeakSanitizer"), "%s", out);
    free(broken);
    cr_assert_eq(s_ctl(out, sizeof out, "--config", s_dir, "holidays", "list", NULL), 1, "%s", out);
    cr_assert(strstr(out, "is a folder, not a file"), "%s", out);
    /* saved by an editor as UTF-8 with a byte order mark: read as without it */
    snprintf(config, sizeof config,
             "\xEF\xBB\xBF"
             "broker\n    database = \"%s\"\n",
             s_conninfo);
    char *bom = s_write_file("bom.cfg", config);
    cr_assert_eq(s_ctl(out, sizeof out, "--config", bom, "holidays", "list", NULL), 0, "%s", out);
    free(bom);
    free(twice);
    free(config_path);
    free(no_key);
}

Test(ctl, help_and_usage_errors)
{
    char out[S_OUT];
    cr_assert_eq(s_ctl(out, sizeof out, "--help", NULL), 0);
    cr_assert(strstr(out, "usage: advsync-ctl"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "holidays", "--help", NULL), 0);
    cr_assert(strstr(out, "holidays import FILE.json"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "denominators", "load", "--help", NULL), 0);
    cr_assert(strstr(out, "Ethnic group (20 categories) Code"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "frobnicate", NULL), 2, "%s", out);
    cr_assert(strstr(out, "unknown command \"frobnicate\""), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "holidays", "frob", NULL), 2, "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "denominators", NULL), 2, "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "--bogus", "holidays", "list", NULL), 2, "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "--database", NULL), 2, "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, "holidays", "list", "--year", "27", NULL), 2, "%s", out);
    cr_assert(strstr(out, "is not a year from 1971"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, NULL), 2, "%s", out);
}
