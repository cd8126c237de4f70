/*  ctl.c: advsync-ctl's common options, where the database comes from, and the dispatch to a
    command group.  */
#include "ctl.h"
#include "log.h"
#include "sections.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-ctl [--database CONNINFO] [--config FILE] COMMAND ...\n"
            "\n"
            "The consortium's admin tool: tables of the broker's database that the live monitor\n"
            "reads. advsyncd creates them: start it once against a new database first.\n"
            "\n"
            "commands:\n"
            "  holidays list [--year YYYY]            bank holidays as the broker sees them\n"
            "  holidays add DATE [--note TEXT]        make DATE a bank holiday\n"
            "  holidays remove DATE [--note TEXT]     make DATE a working day\n"
            "  holidays clear DATE                    drop the table's entry for DATE\n"
            "  holidays import FILE.json              apply the gov.uk bank-holidays feed\n"
            "  denominators load FILE.csv [--source TEXT]  load population (Census TS021 shape)\n"
            "  denominators list [--area CODE]        show the loaded population\n"
            "  denominators remove AREA_CODE          delete one area's population\n"
            "\n"
            "options:\n"
            "  --database CONNINFO  libpq conninfo (else $ADVSYNC_DATABASE, else the config\n"
            "                       file's broker/database key)\n"
            "  --config FILE        advsyncd's config file (zconfig)\n"
            "  --help               this text; `advsync-ctl COMMAND --help` for a command\n"
            "  --version            print the version\n"
            "\n"
            "exit status: 0 done, 1 failed (database, file contents), 2 bad command line\n");
}

bool asy_ctl_is_help(const char *arg)
{
    return streq(arg, "--help") || streq(arg, "-h");
}

int asy_ctl_dispatch(const asy_ctl_options_t *options, int argc, char **argv,
                     const asy_ctl_verb_t *verbs, void (*usage)(FILE *out))
{
    for (int i = 1; i < argc; i++)
        if (asy_ctl_is_help(argv[i])) {
            usage(stdout);
            return ASY_CTL_OK;
        }
    const char *verb = argc > 1 ? argv[1] : NULL;
    if (!verb) {
        usage(stderr);
        return ASY_CTL_USAGE;
    }
    for (const asy_ctl_verb_t *v = verbs; v->name; v++)
        if (streq(verb, v->name))
            return v->run(options, argc, argv);
    fprintf(stderr, "advsync-ctl: unknown %s command \"%s\" (known:", argv[0], verb);
    for (const asy_ctl_verb_t *v = verbs; v->name; v++)
        fprintf(stderr, "%s %s", v == verbs ? "" : ",", v->name);
    fprintf(stderr, ")\n");
    return ASY_CTL_USAGE;
}

int asy_ctl_option(int argc, char **argv, int *index, const char *name, const char **value)
{
    const char *arg = argv[*index];
    size_t length = strlen(name);
    if (strncmp(arg, name, length) != 0)
        return 0;
    if (arg[length] == '=') {
        *value = arg + length + 1;
        *index += 1;
        return 1;
    }
    if (arg[length] != '\0')
        return 0;
    if (*index + 1 >= argc) {
        fprintf(stderr, "advsync-ctl: %s needs a value\n", name);
        return ASY_CTL_USAGE;
    }
    *value = argv[*index + 1];
    *index += 2;
    return 1;
}

int asy_ctl_only_option(int argc, char **argv, const char *command, const char *name,
                        const char **value)
{
    for (int index = 2; index < argc;) {
        int matched = asy_ctl_option(argc, argv, &index, name, value);
        if (matched == ASY_CTL_USAGE)
            return ASY_CTL_USAGE;
        if (matched == 0) {
            fprintf(stderr, "advsync-ctl: %s: unexpected argument \"%s\"\n", command, argv[index]);
            return ASY_CTL_USAGE;
        }
    }
    return ASY_CTL_OK;
}

/* The broker/database key of advsyncd's config file. Returns ASY_CTL_OK with *database (owned
   by *config_p), or a message and ASY_CTL_FAILURE. */
static int s_config_database(const char *path, zconfig_t **config_p, const char **database)
{
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "advsync-ctl: cannot read config %s: %s\n", path, strerror(errno));
        return ASY_CTL_FAILURE;
    }
    char why[256];
    *config_p = asy_config_load(path, why, sizeof why);
    if (!*config_p) {
        fprintf(stderr, "advsync-ctl: config %s %s\n", path, why);
        return ASY_CTL_FAILURE;
    }
    /* as advsyncd: a misspelt section, or a key given twice, is refused */
    if (!asy_sections_known(*config_p, why, sizeof why)) {
        fprintf(stderr, "advsync-ctl: config %s: %s\n", path, why);
        return ASY_CTL_FAILURE;
    }
    int given = 0;
    for (zconfig_t *section = zconfig_child(*config_p); section; section = zconfig_next(section))
        if (streq(zconfig_name(section), "broker"))
            for (zconfig_t *key = zconfig_child(section); key; key = zconfig_next(key))
                given += streq(zconfig_name(key), "database");
    if (given > 1) {
        fprintf(stderr,
                "advsync-ctl: config %s: broker/database is given twice: which one is meant "
                "cannot be told\n",
                path);
        return ASY_CTL_FAILURE;
    }
    zconfig_t *item = zconfig_locate(*config_p, "broker/database");
    const char *value = item ? zconfig_value(item) : NULL;
    if (!value || !*value) {
        fprintf(stderr, "advsync-ctl: config %s: no broker/database key\n", path);
        return ASY_CTL_FAILURE;
    }
    *database = value;
    return ASY_CTL_OK;
}

static bool s_table_exists(asy_db_t *db, const char *table, int *code)
{
    asy_db_row_t row = {0};
    const char *params[] = {table};
    *code = asy_db_query_row(db, "SELECT to_regclass($1) IS NOT NULL", false, 1, params, &row);
    bool exists = *code == 0 && row.values[0] && streq(row.values[0], "t");
    asy_db_row_release(&row);
    return exists;
}

int asy_ctl_connect(const asy_ctl_options_t *options, const char *const *tables, asy_db_t **db)
{
    zconfig_t *config = NULL;
    const char *conninfo = options->database;
    if (!conninfo && options->config_path) {
        int code = s_config_database(options->config_path, &config, &conninfo);
        if (code != ASY_CTL_OK) {
            zconfig_destroy(&config);
            return code;
        }
    }
    if (!conninfo) {
        fprintf(stderr, "advsync-ctl: which database? Give --database CONNINFO, set "
                        "ADVSYNC_DATABASE, or --config FILE with a broker/database key\n");
        return ASY_CTL_FAILURE;
    }
    char error[512] = "";
    if (!asy_db_conninfo_check(conninfo, error, sizeof error)) {
        char shown[256];
        fprintf(stderr, "advsync-ctl: the database \"%s\" %s\n",
                asy_db_conninfo_redact(conninfo, shown, sizeof shown), error);
        zconfig_destroy(&config);
        return ASY_CTL_USAGE;
    }
    *db = asy_db_connect(conninfo, "advsync-ctl", error, sizeof error);
    zconfig_destroy(&config);
    if (!*db) {
        fprintf(stderr, "advsync-ctl: %s\n", error);
        return ASY_CTL_FAILURE;
    }
    for (size_t i = 0; tables && tables[i]; i++) {
        int code = 0;
        if (s_table_exists(*db, tables[i], &code))
            continue;
        if (code != 0)
            fprintf(stderr, "advsync-ctl: cannot read the schema: %s\n", asy_db_errmsg(*db));
        else
            fprintf(stderr,
                    "advsync-ctl: this database has no table \"%s\": start advsyncd "
                    "once against it (it creates the schema), then try again\n",
                    tables[i]);
        asy_db_destroy(db);
        return ASY_CTL_FAILURE;
    }
    return ASY_CTL_OK;
}

int asy_ctl_run(int argc, char **argv)
{
    /* Messages of the common library (db notices) only when asked for. */
    asy_log_set_name("advsync-ctl");
    if (!getenv("ADVSYNC_LOG"))
        asy_log_set_level(ASY_LOG_WARN);
    asy_ctl_options_t options = {.database = NULL, .config_path = NULL};
    const char *database = NULL;
    int index = 1;
    while (index < argc && argv[index][0] == '-') {
        const char *arg = argv[index];
        int matched = 0;
        if (asy_ctl_is_help(arg)) {
            s_usage(stdout);
            return ASY_CTL_OK;
        }
        if (streq(arg, "--version")) {
            printf("advsync-ctl %s\n", ASY_VERSION_STRING);
            return ASY_CTL_OK;
        }
        if ((matched = asy_ctl_option(argc, argv, &index, "--database", &database)) == 0)
            matched = asy_ctl_option(argc, argv, &index, "--config", &options.config_path);
        if (matched == ASY_CTL_USAGE)
            return ASY_CTL_USAGE;
        if (matched == 0) {
            fprintf(stderr, "advsync-ctl: unknown option %s (try --help)\n", arg);
            return ASY_CTL_USAGE;
        }
    }
    if (database && !*database) {
        /* as advsyncd refuses it: an empty flag is a mistake, not a wish for libpq's defaults */
        fprintf(stderr, "advsync-ctl: --database is empty: give a libpq conninfo\n");
        return ASY_CTL_USAGE;
    }
    options.database = database ? database : getenv("ADVSYNC_DATABASE");
    if (options.database && !*options.database)
        options.database = NULL; /* an empty ADVSYNC_DATABASE is as if unset */
    if (index >= argc) {
        s_usage(stderr);
        return ASY_CTL_USAGE;
    }
    const char *command = argv[index];
    if (streq(command, "holidays"))
        return asy_ctl_holidays(&options, argc - index, argv + index);
    if (streq(command, "denominators"))
        return asy_ctl_denominators(&options, argc - index, argv + index);
    if (streq(command, "help")) {
        s_usage(stdout);
        return ASY_CTL_OK;
    }
    fprintf(stderr,
            "advsync-ctl: unknown command \"%s\" (known: holidays, denominators; try "
            "--help)\n",
            command);
    return ASY_CTL_USAGE;
}
