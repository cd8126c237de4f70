/*  ctl.h: advsync-ctl, the consortium's admin tool (private to client/ctl).

    Commands run against the broker's PostgreSQL database through db.h. They never migrate:
    a missing table means advsyncd has not yet been started against that database.

    A command returns the program's exit code: ASY_CTL_OK, ASY_CTL_FAILURE (the database, a
    file's contents) or ASY_CTL_USAGE (the command line). Messages go to stderr, results to
    stdout.  */
#ifndef ASY_CTL_H_INCLUDED
#define ASY_CTL_H_INCLUDED

#include "asy.h"
#include "calendar.h"
#include "db.h"

#include <stdio.h>

#define ASY_CTL_OK 0
#define ASY_CTL_FAILURE 1
#define ASY_CTL_USAGE 2

/* The common options; every string borrowed from argv or the environment. */
typedef struct {
    const char *database;    /* --database, else $ADVSYNC_DATABASE; NULL: ask the config */
    const char *config_path; /* --config, may be NULL */
} asy_ctl_options_t;

/* The whole program: parses the common options and runs one command. Returns the exit code. */
int asy_ctl_run(int argc, char **argv);

/* Connects to the database the options name and checks that every table in tables[] (NULL
   terminated) exists. Returns ASY_CTL_OK with *db (caller owns), or prints why not to stderr
   and returns ASY_CTL_FAILURE. */
int asy_ctl_connect(const asy_ctl_options_t *options, const char *const *tables, asy_db_t **db);

/* If argv[*index] is `name VALUE` or `name=VALUE`, sets *value, advances *index past it and
   returns 1; returns 0 if it is another argument, ASY_CTL_USAGE (after a message) if the value
   is missing. */
int asy_ctl_option(int argc, char **argv, int *index, const char *name, const char **value);

/* Reads the one option a verb takes, `name VALUE` (into *value; left as is when absent), from
   argv[2] on. Returns ASY_CTL_OK, or ASY_CTL_USAGE after a message: a missing value, or any
   other argument (named with command, e.g. "holidays list"). Defined in holidays.c. */
int asy_ctl_only_option(int argc, char **argv, const char *command, const char *name,
                        const char **value);

/* True for -h and --help. */
bool asy_ctl_is_help(const char *arg);

/* One verb of a command group: runs with the group's argv (argv[0] the group, argv[1] the
   verb) and returns the exit code. */
typedef struct {
    const char *name;
    int (*run)(const asy_ctl_options_t *options, int argc, char **argv);
} asy_ctl_verb_t;

/* Runs a command group (argv[0] names it): --help or -h anywhere prints usage to stdout;
   no verb prints it to stderr (ASY_CTL_USAGE); an unknown verb is named with the known ones
   (ASY_CTL_USAGE); else the verb of verbs[] (NULL-name terminated) runs. */
int asy_ctl_dispatch(const asy_ctl_options_t *options, int argc, char **argv,
                     const asy_ctl_verb_t *verbs, void (*usage)(FILE *out));

/* Command groups: argv[0] is the group name. */
int asy_ctl_holidays(const asy_ctl_options_t *options, int argc, char **argv);
int asy_ctl_denominators(const asy_ctl_options_t *options, int argc, char **argv);

/* `holidays import FILE.json` (holidays_import.c). */
int asy_ctl_holidays_import(const asy_ctl_options_t *options, const char *path);

/* One row of the holiday table. */
#define ASY_CTL_NOTE_MAX 256
typedef struct {
    asy_date_t day;
    asy_holiday_change_t change;
    char note[ASY_CTL_NOTE_MAX]; /* "" if none; tabs and line breaks read as spaces */
} asy_ctl_holiday_row_t;

/* Reads every row of the holiday table, in date order, into *rows (caller frees; NULL when
   count is 0). Returns 0, ASY_ENOMEM, ASY_EPROTO (a row this tool cannot read) or the db.h
   code (message in asy_db_errmsg). */
int asy_ctl_holiday_rows(asy_db_t *db, asy_ctl_holiday_row_t **rows, size_t *count);

/* English name of a weekday ("Monday"). */
const char *asy_ctl_weekday_name(asy_date_t date);

#endif
