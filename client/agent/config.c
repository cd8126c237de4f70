/*  config.c: advsync-agent configuration: defaults, then the config file, then the flags.

    The file is czmq zconfig (ZPL) text with one section `agent`:
        agent
            id = ward-3
            site = site-north
            outbox = "/var/lib/advsync/ward-3.outbox.db"
            key_file = "/etc/advsync/consortium.key"
            endpoint = "tcp://centre-a:5570,tcp://centre-b:5570"
            batch_max = 5000
    The sections of advsyncd (broker, monitor) are ignored, so one file may serve both
    programs; any other top-level name is an error (sections.h), as are unknown keys inside
    `agent`, so neither a misspelt section nor a misspelt key is silently ignored.  */
#include "agent.h"
#include "sections.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_ENDPOINT "tcp://127.0.0.1:5570"

/* Copies value into a fixed field; ASY_ECONFIG if it does not fit. where names the origin. */
static int s_copy(char *field, size_t size, const char *value, const char *where, char *error,
                  size_t error_size)
{
    if (strlen(value) >= size) {
        asy_set_error(error, error_size, "%s: longer than %zu characters", where, size - 1);
        return ASY_ECONFIG;
    }
    memcpy(field, value, strlen(value) + 1);
    return 0;
}

static int s_number(uint32_t *field, const char *value, uint32_t min, uint32_t max,
                    const char *where, char *error, size_t error_size)
{
    char *end = NULL;
    errno = 0;
    unsigned long long number = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-' || number < min || number > max) {
        asy_set_error(error, error_size, "%s: must be a whole number from %u to %u (got \"%s\")",
                      where, min, max, value);
        return ASY_ECONFIG;
    }
    *field = (uint32_t)number;
    return 0;
}

/* Appends the endpoints of a comma-separated list. */
static int s_add_endpoints(asy_agent_config_t *config, const char *list, const char *where,
                           char *error, size_t error_size)
{
    const char *start = list;
    while (true) {
        const char *comma = strchr(start, ',');
        size_t length = comma ? (size_t)(comma - start) : strlen(start);
        while (length && (*start == ' ' || *start == '\t'))
            start++, length--;
        while (length && (start[length - 1] == ' ' || start[length - 1] == '\t'))
            length--;
        if (length == 0) {
            asy_set_error(error, error_size, "%s: empty endpoint in \"%s\"", where, list);
            return ASY_ECONFIG;
        }
        if (config->endpoint_count == ASY_AGENT_MAX_ENDPOINTS) {
            asy_set_error(error, error_size, "%s: more than %d endpoints", where,
                          ASY_AGENT_MAX_ENDPOINTS);
            return ASY_ECONFIG;
        }
        if (length >= sizeof config->endpoints[0]) {
            asy_set_error(error, error_size, "%s: endpoint longer than %zu characters", where,
                          sizeof config->endpoints[0] - 1);
            return ASY_ECONFIG;
        }
        char *endpoint = config->endpoints[config->endpoint_count++];
        memcpy(endpoint, start, length);
        endpoint[length] = '\0';
        char why[128];
        if (!asy_endpoint_check(endpoint, false, why, sizeof why)) {
            asy_set_error(error, error_size,
                          "%s: endpoint \"%s\" %s (e.g. tcp://centre.example.org:5570)", where,
                          endpoint, why);
            return ASY_ECONFIG;
        }
        if (!comma)
            return 0;
        start = comma + 1;
    }
}

/* Applies one key of the agent section (or one flag: where names which). */
static int s_apply(asy_agent_config_t *config, const char *key, const char *value,
                   const char *where, char *error, size_t error_size)
{
    /* an empty path would silently mean the default one */
    if ((strcmp(key, "outbox") == 0 || strcmp(key, "key_file") == 0) && !*value) {
        asy_set_error(error, error_size, "%s: empty: give a path, or leave the key out", where);
        return ASY_ECONFIG;
    }
    if (strcmp(key, "id") == 0)
        return s_copy(config->agent_id, sizeof config->agent_id, value, where, error, error_size);
    if (strcmp(key, "site") == 0)
        return s_copy(config->site_id, sizeof config->site_id, value, where, error, error_size);
    if (strcmp(key, "outbox") == 0)
        return s_copy(config->outbox_path, sizeof config->outbox_path, value, where, error,
                      error_size);
    if (strcmp(key, "key_file") == 0)
        return s_copy(config->key_file, sizeof config->key_file, value, where, error, error_size);
    if (strcmp(key, "endpoint") == 0)
        return s_add_endpoints(config, value, where, error, error_size);
    if (strcmp(key, "batch_max") == 0)
        return s_number(&config->batch_max, value, 1, ASY_MAX_BATCH_EVENTS, where, error,
                        error_size);
    if (strcmp(key, "batch_ms") == 0)
        return s_number(&config->batch_ms, value, 0, 10000, where, error, error_size);
    if (strcmp(key, "window") == 0)
        return s_number(&config->window, value, 1, 1024, where, error, error_size);
    if (strcmp(key, "ack_timeout_ms") == 0)
        return s_number(&config->ack_timeout_ms, value, 100, 3600000, where, error, error_size);
    asy_set_error(
        error, error_size,
        "%s: unknown key (known: id, site, outbox, key_file, endpoint, batch_max, batch_ms, "
        "window, ack_timeout_ms)",
        where);
    return ASY_ECONFIG;
}

/* The file's sections: no unknown section, one `agent` section (a value cut at a '#' is
   refused by asy_config_load).
   Returns 0 or ASY_ECONFIG with error set. */
static int s_check_sections(zconfig_t *root, const zconfig_t *section, const char *path,
                            char *error, size_t error_size)
{
    char why[256];
    bool known = asy_sections_known(root, why, sizeof why);
    int agents = 0;
    for (zconfig_t *top = zconfig_child(root); top; top = zconfig_next(top))
        agents += strcmp(zconfig_name(top), "agent") == 0;
    int rc = 0;
    if (!known) {
        asy_set_error(error, error_size, "%s: %s", path, why);
        rc = ASY_ECONFIG;
    } else if (agents > 1) {
        asy_set_error(error, error_size,
                      "%s: %d `agent` sections: which one is meant cannot be told", path, agents);
        rc = ASY_ECONFIG;
    } else if (!section) {
        asy_set_error(error, error_size, "%s: no `agent` section", path);
        rc = ASY_ECONFIG;
    }
    return rc;
}

/* Reads the `agent` section of the config file at path over config. Returns 0 or ASY_ECONFIG
   with error set. */
static int s_load_file(asy_agent_config_t *config, const char *path, char *error, size_t error_size)
{
    FILE *probe = fopen(path, "r");
    if (!probe) {
        asy_set_error(error, error_size, "cannot read config file %s: %s", path, strerror(errno));
        return ASY_ECONFIG;
    }
    fclose(probe);
    char why[256];
    zconfig_t *root = asy_config_load(path, why, sizeof why);
    if (!root) {
        asy_set_error(error, error_size, "config file %s %s", path, why);
        return ASY_ECONFIG;
    }
    zconfig_t *section = zconfig_locate(root, "agent");
    int rc = s_check_sections(root, section, path, error, error_size);
    bool file_endpoints = false;
    for (zconfig_t *item = section ? zconfig_child(section) : NULL; item && rc == 0;
         item = zconfig_next(item)) {
        const char *name = zconfig_name(item);
        const char *value = zconfig_value(item) ? zconfig_value(item) : "";
        char where[256];
        snprintf(where, sizeof where, "%s: agent/%s", path, name);
        if (zconfig_child(item)) {
            asy_set_error(error, error_size, "%s: a value, not a section, is expected", where);
            rc = ASY_ECONFIG;
            break;
        }
        /* repeated `endpoint` keys add up; any other key given twice is refused, as advsyncd
           refuses it */
        if (strcmp(name, "endpoint") != 0 && asy_sections_given_before(section, item)) {
            asy_set_error(error, error_size, "%s: given twice: which one is meant cannot be told",
                          where);
            rc = ASY_ECONFIG;
            break;
        }
        if (strcmp(name, "endpoint") == 0 && !file_endpoints) {
            config->endpoint_count = 0;
            file_endpoints = true;
        }
        rc = s_apply(config, name, value, where, error, error_size);
    }
    zconfig_destroy(&root);
    return rc;
}

typedef struct {
    const char *flag;
    const char *key;
} s_flag_t;

static const s_flag_t S_FLAGS[] = {
    {"--config", NULL},         {"--id", "id"},
    {"--site", "site"},         {"--outbox", "outbox"},
    {"--key-file", "key_file"}, {"--endpoint", "endpoint"},
};

/* If arg is one of our flags (as "--flag" or "--flag=value"), returns it and sets *inline_value
   to the text after '=' (or NULL). */
static const s_flag_t *s_match(const char *arg, const char **inline_value)
{
    for (size_t i = 0; i < sizeof S_FLAGS / sizeof S_FLAGS[0]; i++) {
        size_t length = strlen(S_FLAGS[i].flag);
        if (strncmp(arg, S_FLAGS[i].flag, length) != 0)
            continue;
        if (arg[length] == '\0') {
            *inline_value = NULL;
            return &S_FLAGS[i];
        }
        if (arg[length] == '=') {
            *inline_value = arg + length + 1;
            return &S_FLAGS[i];
        }
    }
    return NULL;
}

/* The flags taken out of argv: the config file, and each other flag's values in order. */
typedef struct {
    const char *config_path;
    const char *values[sizeof S_FLAGS / sizeof S_FLAGS[0]][ASY_AGENT_MAX_ENDPOINTS + 1];
    int counts[sizeof S_FLAGS / sizeof S_FLAGS[0]];
} s_given_t;

/* Takes our flags out of argv (anywhere before "--") into *given, and *argc down to what
   is left. Returns 0 or ASY_ECONFIG with error set. */
bool asy_agent_config_is_flag(const char *arg)
{
    const char *inline_value = NULL;
    return s_match(arg, &inline_value) != NULL;
}

static int s_take_flags(s_given_t *given, int *argc, char **argv, char *error, size_t error_size)
{
    memset(given, 0, sizeof *given);
    int kept = 1;
    bool passthrough = false;
    for (int i = 1; i < *argc; i++) {
        const char *inline_value = NULL;
        const s_flag_t *flag = passthrough ? NULL : s_match(argv[i], &inline_value);
        if (!flag) {
            passthrough = passthrough || strcmp(argv[i], "--") == 0;
            argv[kept++] = argv[i];
            continue;
        }
        const char *value = inline_value;
        if (!value) {
            if (i + 1 >= *argc) {
                asy_set_error(error, error_size, "%s: needs a value", flag->flag);
                return ASY_ECONFIG;
            }
            value = argv[++i];
        }
        size_t index = (size_t)(flag - S_FLAGS);
        bool repeatable = flag->key && strcmp(flag->key, "endpoint") == 0; /* fail-over list */
        if ((!flag->key && given->config_path) || (!repeatable && given->counts[index] > 0)) {
            /* as a key given twice in the file: the last one winning silently hides a mistake
               (two outboxes, two ids: one of them is a typo, and which one cannot be told) */
            asy_set_error(error, error_size, "%s: given twice: which one is meant cannot be told",
                          flag->flag);
            return ASY_ECONFIG;
        }
        if (!flag->key)
            given->config_path = value;
        else if (given->counts[index] > ASY_AGENT_MAX_ENDPOINTS) {
            asy_set_error(error, error_size, "%s: given too often", flag->flag);
            return ASY_ECONFIG;
        } else
            given->values[index][given->counts[index]++] = value;
    }
    *argc = kept;
    argv[kept] = NULL;
    return 0;
}

/* Applies the flags given over the file's values. Returns 0 or ASY_ECONFIG with error set. */
static int s_apply_flags(asy_agent_config_t *config, const s_given_t *given, char *error,
                         size_t error_size)
{
    for (size_t i = 0; i < sizeof S_FLAGS / sizeof S_FLAGS[0]; i++) {
        if (!S_FLAGS[i].key || given->counts[i] == 0)
            continue;
        /* --endpoint replaces the file's endpoints; each other flag is given once */
        if (strcmp(S_FLAGS[i].key, "endpoint") == 0)
            config->endpoint_count = 0;
        int first = strcmp(S_FLAGS[i].key, "endpoint") == 0 ? 0 : given->counts[i] - 1;
        for (int j = first; j < given->counts[i]; j++) {
            int rc = s_apply(config, S_FLAGS[i].key, given->values[i][j], S_FLAGS[i].flag, error,
                             error_size);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* The agent and site ids must be ids the centre takes. Returns 0 or ASY_ECONFIG with error
   set. */
static int s_check_ids(const asy_agent_config_t *config, char *error, size_t error_size)
{
    if (config->agent_id[0] && !asy_id_valid(config->agent_id)) {
        asy_set_error(error, error_size,
                      "agent id \"%s\" (id / --id): use 1 to %d of A-Z a-z 0-9 . _ -",
                      config->agent_id, ASY_ID_MAX);
        return ASY_ECONFIG;
    }
    if (config->site_id[0] && !asy_id_valid(config->site_id)) {
        asy_set_error(error, error_size,
                      "site id \"%s\" (site / --site): use 1 to %d of A-Z a-z 0-9 . _ -",
                      config->site_id, ASY_ID_MAX);
        return ASY_ECONFIG;
    }
    return 0;
}

int asy_agent_config_load(asy_agent_config_t *config, int *argc, char **argv, char *error,
                          size_t error_size)
{
    memset(config, 0, sizeof *config);
    config->batch_max = 5000;
    config->batch_ms = 2;
    config->window = ASY_DEFAULT_WINDOW;
    config->ack_timeout_ms = 5000;

    /* first pass: take our flags out of argv (anywhere before "--"), remember them */
    s_given_t given;
    int rc = s_take_flags(&given, argc, argv, error, error_size);
    if (rc == 0 && given.config_path)
        rc = s_load_file(config, given.config_path, error, error_size);
    if (rc == 0)
        rc = s_apply_flags(config, &given, error, error_size);
    if (rc != 0)
        return rc;
    if (config->endpoint_count == 0) {
        snprintf(config->endpoints[0], sizeof config->endpoints[0], "%s", S_DEFAULT_ENDPOINT);
        config->endpoint_count = 1;
    }
    if ((rc = s_check_ids(config, error, error_size)) != 0)
        return rc;
    if (!config->outbox_path[0] && config->agent_id[0])
        snprintf(config->outbox_path, sizeof config->outbox_path, "./%s.outbox.db",
                 config->agent_id);
    return 0;
}
