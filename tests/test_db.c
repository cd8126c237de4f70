/*  test_db.c: the parts of db that need no server: conninfo checks and their redaction
    (db_conninfo.c).
    (The connection itself is tested against a real PostgreSQL in integration/test_store.c.)  */
#include "db.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* Passwords never reach a message: every form libpq reads is masked, the rest is kept. */
Test(db, conninfo_redaction_masks_every_password_form)
{
    static const struct {
        const char *given, *shown;
    } cases[] = {
        {"host=db password=Secret1 dbname=x", "host=db password=*** dbname=x"},
        {"password = 'a b\\' c' user=u", "password = *** user=u"},
        {"password=back\\ slash port=1", "password=*** port=1"},
        {"password=", "password="},
        {"mypassword=x passwd=y passfile=z host=h",
         "mypassword=*** passwd=*** passfile=*** host=h"},
        {"PASSWORD=Secret1 dbname=x", "PASSWORD=*** dbname=x"},
        /* words without '=' after an unquoted password are taken as part of it */
        {"dbname='x'password=Secret1 junk", "dbname='x'password=***"},
        {"user=u\rpassword=Secret1 junk", "user=u\rpassword=***"},
        {"postgresql://h/db?pass%77ord=Secret1&x=1", "postgresql://h/db?pass%77ord=***&x=1"},
        {"postgresql://u:Sec?ret/1@h/db?x=1", "postgresql://u:***@h/db?x=1"},
        {"POSTGRESQL://u:Secret1@h/db", "POSTGRESQL://u:***@h/db"},
        {"host=db password=my Secret1 words port=5", "host=db password=*** port=5"},
        {"postgresql://u:Secret1@h:5432/db?sslmode=require",
         "postgresql://u:***@h:5432/db?sslmode=require"},
        {"postgres://u@h/db?password=Secret1&application_name=a",
         "postgres://u@h/db?password=***&application_name=a"},
        {"postgresql://h/db", "postgresql://h/db"},
        {"dbname=advsync", "dbname=advsync"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_str_eq(asy_db_conninfo_redact(cases[i].given, out, sizeof out), cases[i].shown,
                         "case %zu", i);
    /* libpq's own message quotes parts of the text: masked too */
    static const char *const refused[] = {
        "postgresql://u:Secret1@[::1]x/db",
        "postgresql://u:Sec%zzret1@h/db",
        "postgresql://u@h/db?password=Sec%00ret1",
        "password='Secret1 x' junk",
        "host=db password=my Secret1",
        "POSTGRESQL://u:Secret1@h/db junk",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char why[512];
        cr_assert_not(asy_db_conninfo_check(refused[i], why, sizeof why));
        cr_assert(strstr(why, "is not a libpq conninfo: "), "%s", why);
        cr_assert_null(strstr(why, "Sec"), "case %zu: %s", i, why);
    }
    /* a short buffer truncates, never overruns, and still masks */
    char small[12];
    cr_assert_str_eq(asy_db_conninfo_redact("password=Secret1 host=db", small, sizeof small),
                     "password=**");
}

/* What libpq can parse passes (it is not connected to); what it cannot is named as such. */
Test(db, conninfo_check_takes_what_libpq_parses)
{
    char why[256] = "";
    cr_assert(asy_db_conninfo_check("host=/var/run/postgresql dbname=advsync", why, sizeof why));
    cr_assert(asy_db_conninfo_check("postgresql://u@centre:5432/advsync?sslmode=require", why,
                                    sizeof why));
    cr_assert_not(asy_db_conninfo_check("advsync", why, sizeof why));
    cr_assert(strstr(why, "is not a libpq conninfo: missing \"=\" after \"advsync\""), "%s", why);
    /* a value libpq refuses only when it connects, so at every attempt: refused at once
       (review: advsyncd retried sslmode=bogus for ever) */
    cr_assert_not(asy_db_conninfo_check("dbname=x sslmode=bogus", why, sizeof why));
    cr_assert(strstr(why, "has sslmode=\"bogus\": libpq takes disable|allow|prefer"), "%s", why);
    cr_assert_not(
        asy_db_conninfo_check("postgresql:///x?target_session_attrs=rw", why, sizeof why));
    cr_assert(strstr(why, "target_session_attrs"), "%s", why);
    cr_assert(asy_db_conninfo_check("dbname=x sslmode=verify-full gssencmode=disable "
                                    "channel_binding=prefer target_session_attrs=read-write",
                                    why, sizeof why),
              "%s", why);
}
