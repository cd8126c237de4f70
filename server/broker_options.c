/*  broker_options.c: advsyncd's flags and config file. See broker_options.h.  */
#include "broker_options.h"

#include "codec.h"
#include "db.h"
#include "ingest.h"
#include "log.h"
#include "monitor.h"
#include "sections.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { S_TEXT, S_NUMBER, S_LEVEL, S_SWITCH, S_BIND, S_CONNINFO } s_kind_t;

typedef struct {
    const char *flag;     /* long flag without "--" */
    const char *key;      /* "section/key" in the config file, or NULL (flag only) */
    const char *fallback; /* default, or NULL */
    s_kind_t kind;
    int low, high;        /* S_NUMBER range */
    const char *help;
} s_spec_t;

#define S_TEXT_OF_(x) #x
#define S_TEXT_OF(x) S_TEXT_OF_(x) /* a number macro's digits, for a default */

static const s_spec_t s_specs[ASY_OPT_COUNT] = {
    [ASY_OPT_CONFIG] = {"config", NULL, NULL, S_TEXT, 0, 0,
                        "zconfig file (sections broker and monitor; keys as below)"},
    [ASY_OPT_INGEST] = {"ingest", "broker/ingest", "tcp://127.0.0.1:5570", S_BIND, 0, 0,
                        "bind the agents' ROUTER here (:* = any port)"},
    [ASY_OPT_DATABASE] = {"database", "broker/database", "dbname=advsync", S_CONNINFO, 0, 0,
                          "libpq conninfo of the system of record"},
    [ASY_OPT_ENDPOINT_FILE] = {"endpoint-file", NULL, NULL, S_TEXT, 0, 0,
                               "write the bound endpoints there once listening"},
    [ASY_OPT_LOG_LEVEL] = {"log-level", "broker/log_level", NULL, S_LEVEL, 0, 0,
                           "debug, info (default, or $ADVSYNC_LOG), warn or error"},
    [ASY_OPT_WORKERS] = {"workers", "broker/workers", S_TEXT_OF(ASY_INGEST_DEFAULT_WORKERS),
                         S_NUMBER, 1, ASY_INGEST_MAX_WORKERS,
                         "ingest workers, each with its own database connection"},
    [ASY_OPT_MONITOR] = {"monitor", "monitor/enabled", "on", S_SWITCH, 0, 0,
                         "on or off: the live monitor and its streams"},
    [ASY_OPT_MONITOR_PUBLIC] = {"monitor-public", "monitor/public", ASY_MONITOR_PUBLIC, S_BIND, 0,
                                0, "public stream (disclosure-controlled) XPUB"},
    [ASY_OPT_MONITOR_PUBLIC_SNAPSHOT] = {"monitor-public-snapshot", "monitor/public_snapshot",
                                         ASY_MONITOR_PUBLIC_SNAPSHOT, S_BIND, 0, 0,
                                         "public stream snapshot ROUTER"},
    [ASY_OPT_MONITOR_RESTRICTED] = {"monitor-restricted", "monitor/restricted",
                                    ASY_MONITOR_RESTRICTED, S_BIND, 0, 0,
                                    "restricted stream (exact figures, breaches) XPUB"},
    [ASY_OPT_MONITOR_RESTRICTED_SNAPSHOT] = {"monitor-restricted-snapshot",
                                             "monitor/restricted_snapshot",
                                             ASY_MONITOR_RESTRICTED_SNAPSHOT, S_BIND, 0, 0,
                                             "restricted stream snapshot ROUTER"},
    [ASY_OPT_COALESCE_MS] = {"coalesce-ms", "monitor/coalesce_ms", "100", S_NUMBER, 1, 60000,
                             "publish a topic at most this often"},
    [ASY_OPT_HEARTBEAT_MS] = {"heartbeat-ms", "monitor/heartbeat_ms", "1000", S_NUMBER, 10, 60000,
                              "monitor heartbeat interval"},
    [ASY_OPT_HISTORY_YEARS] = {"history-years", "monitor/history_years", "2", S_NUMBER, 1, 10,
                               "financial years of periods kept"},
    [ASY_OPT_BREACH_GRACE_MS] = {"breach-grace-ms", "monitor/breach_grace_ms", "30000", S_NUMBER, 1,
                                 86400000, "wait before announcing a case that arrived in breach"},
};

/* getopt_long takes any unambiguous prefix: `--endpoint` would silently be --endpoint-file
   (agents call their broker address --endpoint). Flags must be spelt out; says so if not. */
static bool s_spelt_out(char *const argv[], int next, const char *value, const char *name)
{
    /* the flag is the argument before its value when the value was a separate argument */
    const char *given =
        value && next >= 2 && argv[next - 1] == value ? argv[next - 2] : argv[next - 1];
    size_t length = strcspn(given + 2, "=");
    if (strncmp(given, "--", 2) == 0 && length == strlen(name) &&
        strncmp(given + 2, name, length) == 0)
        return true;
    bool endpoint = length == 8 && strncmp(given + 2, "endpoint", 8) == 0;
    fprintf(stderr,
            "advsyncd: %.*s is not an option; did you mean --%s%s? (flags are not "
            "abbreviated; see --help)\n",
            (int)(length + 2), given, name,
            endpoint ? ", or --ingest for the address agents connect to" : "");
    return false;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: advsyncd [--OPTION VALUE ...] [--help] [--version]\n");
    for (int i = 0; i < ASY_OPT_COUNT; i++) {
        const s_spec_t *s = &s_specs[i];
        char range[48] = "";
        if (s->kind == S_NUMBER)
            snprintf(range, sizeof range, ", %d..%d", s->low, s->high);
        fprintf(out, "  --%-28s %s%s%s%s%s%s\n", s->flag, s->help, range,
                s->fallback ? " (default " : "", s->fallback ? s->fallback : "",
                s->fallback ? ")" : "", s->key ? "" : " [flag only]");
        if (s->key)
            fprintf(out, "  %-30s config key %s\n", "", s->key);
    }
}

/* Returns NULL if value is valid for spec, else what is wrong (in why, or a constant). */
static const char *s_check(const s_spec_t *spec, const char *value, char *why, size_t size)
{
    if (spec->kind == S_LEVEL && asy_log_parse_level(value) < 0)
        return "is not debug, info, warn or error";
    if (spec->kind == S_SWITCH && !streq(value, "on") && !streq(value, "off"))
        return "is not on or off";
    if (spec->kind == S_NUMBER) {
        char *end = NULL;
        errno = 0;
        long number = strtol(value, &end, 10);
        /* digits only: strtol would also take leading blanks and a sign (" 3", "+2") */
        if (errno || end == value || *end || strspn(value, "0123456789") != strlen(value) ||
            number < spec->low || number > spec->high) {
            snprintf(why, size, "is not a whole number in %d..%d", spec->low, spec->high);
            return why;
        }
    }
    if (spec->kind == S_BIND && !asy_endpoint_check(value, true, why, size))
        return why;
    if (spec->kind == S_CONNINFO && !asy_db_conninfo_check(value, why, size))
        return why;
    if ((spec->kind == S_TEXT || spec->kind == S_CONNINFO) && !*value)
        return "is empty";
    return NULL;
}

/* value as a message may show it: a conninfo without its password */
static const char *s_shown(const s_spec_t *spec, const char *value, char *buffer, size_t size)
{
    return spec->kind == S_CONNINFO ? asy_db_conninfo_redact(value, buffer, size) : value;
}

static int s_parse_flags(asy_broker_options_t *options, int argc, char **argv)
{
    struct option longs[ASY_OPT_COUNT + 3];
    for (int i = 0; i < ASY_OPT_COUNT; i++)
        longs[i] = (struct option){s_specs[i].flag, required_argument, NULL, i};
    longs[ASY_OPT_COUNT] = (struct option){"help", no_argument, NULL, 'h'};
    longs[ASY_OPT_COUNT + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longs[ASY_OPT_COUNT + 2] = (struct option){NULL, 0, NULL, 0};
    int option, index = -1;
    opterr = 0; /* our own message: getopt's names the program by its whole path */
    while ((option = getopt_long(argc, argv, ":h", longs, &index)) != -1) {
        if (option >= 0 && option != ':' && option != '?' && index >= 0 &&
            !s_spelt_out(argv, optind, optarg, longs[index].name)) {
            return 2;
        }
        index = -1;
        if (option == 'h') {
            s_usage(stdout);
            return 0;
        }
        if (option == 'V') {
            printf("advsyncd %s\n", ASY_VERSION_STRING);
            return 0;
        }
        if (option < 0 || option >= ASY_OPT_COUNT) {
            const char *given = argv[optind - 1];
            fprintf(stderr, "advsyncd: %s %s\n", given,
                    option == ':' ? "needs a value" : "is not an option (see --help)");
            s_usage(stderr);
            return 2;
        }
        char why[256];
        const char *wrong = s_check(&s_specs[option], optarg, why, sizeof why);
        if (wrong) {
            char shown[1024];
            fprintf(stderr, "advsyncd: --%s \"%s\" %s\n", s_specs[option].flag,
                    s_shown(&s_specs[option], optarg, shown, sizeof shown), wrong);
            return 2;
        }
        options->value[option] = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "advsyncd: unexpected argument \"%s\"\n", argv[optind]);
        s_usage(stderr);
        return 2;
    }
    return -1;
}

static int s_find_key(const char *key)
{
    for (int i = 0; i < ASY_OPT_COUNT; i++)
        if (s_specs[i].key && streq(s_specs[i].key, key))
            return i;
    return -1;
}

/* Takes the keys of one of our sections (broker, monitor) into options, unless a flag gave
   them already; seen marks the keys met so far. Returns 0, or 1 after a message on stderr for
   an unknown, empty, invalid or repeated key. */
static int s_load_section(asy_broker_options_t *options, const char *path, zconfig_t *section,
                          bool seen[ASY_OPT_COUNT])
{
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item)) {
        char key[256];
        snprintf(key, sizeof key, "%s/%s", zconfig_name(section), zconfig_name(item));
        const char *value = zconfig_value(item);
        int which = s_find_key(key);
        char why[256];
        const char *wrong = which < 0           ? "is not a known key (see advsyncd --help)"
                            : !value || !*value ? "has no value"
                                                : s_check(&s_specs[which], value, why, sizeof why);
        if (wrong && which >= 0 && value && *value) {
            char shown[1024];
            fprintf(stderr, "advsyncd: config %s: %s \"%s\" %s\n", path, key,
                    s_shown(&s_specs[which], value, shown, sizeof shown), wrong);
            return 1;
        }
        if (!wrong && seen[which])
            wrong = "is given twice: which one is meant cannot be told";
        if (wrong) {
            fprintf(stderr, "advsyncd: config %s: %s %s\n", path, key, wrong);
            return 1;
        }
        seen[which] = true;
        if (!options->value[which])
            options->value[which] = value; /* flags win over the file */
    }
    return 0;
}

static int s_load_config(asy_broker_options_t *options)
{
    const char *path = options->value[ASY_OPT_CONFIG];
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "advsyncd: cannot read config %s: %s\n", path, strerror(errno));
        return 1;
    }
    char stranger[256];
    zconfig_t *config = asy_config_load(path, stranger, sizeof stranger);
    options->config = config;
    if (!config) {
        fprintf(stderr, "advsyncd: config %s %s\n", path, stranger);
        return 1;
    }
    if (!asy_sections_known(config, stranger, sizeof stranger)) {
        fprintf(stderr, "advsyncd: config %s: %s\n", path, stranger);
        return 1;
    }
    bool ours = false, seen[ASY_OPT_COUNT] = {false};
    for (zconfig_t *section = zconfig_child(config); section; section = zconfig_next(section)) {
        /* the agent's section may share the file */
        if (!streq(zconfig_name(section), "broker") && !streq(zconfig_name(section), "monitor"))
            continue;
        ours = true;
        if (s_load_section(options, path, section, seen) != 0)
            return 1;
    }
    if (!ours) {
        /* every setting would silently be its default: an agent's file given by mistake, or
           an empty one */
        fprintf(stderr,
                "advsyncd: config %s has no broker or monitor section (%s): see "
                "deploy/examples/advsyncd.cfg\n",
                path,
                zconfig_locate(config, "agent") ? "it is an agent's configuration" : "empty?");
        return 1;
    }
    return 0;
}

int asy_broker_options_load(asy_broker_options_t *options, int argc, char **argv)
{
    memset(options, 0, sizeof *options);
    int code = s_parse_flags(options, argc, argv);
    if (code >= 0)
        return code;
    if (options->value[ASY_OPT_CONFIG] && (code = s_load_config(options)) != 0)
        return code;
    for (int i = 0; i < ASY_OPT_COUNT; i++)
        if (!options->value[i])
            options->value[i] = s_specs[i].fallback;
    return -1;
}

void asy_broker_options_release(asy_broker_options_t *options)
{
    zconfig_t *config = options->config;
    zconfig_destroy(&config);
    options->config = NULL;
}

int asy_broker_options_int(const asy_broker_options_t *options, asy_broker_option_t which)
{
    const char *value = options->value[which];
    return value ? atoi(value) : 0;
}
