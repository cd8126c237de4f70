/*  main.c: advsync-agent: reads the common options and the config file, then runs one
    subcommand.  */
#include "agent.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(const asy_agent_config_t *config, int argc, char **argv);
    bool needs_identity; /* id and site */
    bool needs_key;      /* key_file */
    const char *summary;
} s_command_t;

static const s_command_t S_COMMANDS[] = {
    {"submit", asy_cmd_submit, true, true, "store JSON-line events in the outbox"},
    {"import", asy_cmd_import, true, true, "store the rows of a CSV export, via a mapping file"},
    {"run", asy_cmd_run, true, false, "forward the outbox to the centre"},
    {"status", asy_cmd_status, true, false, "show the outbox backlog and the last contact"},
    {"simulate", asy_cmd_simulate, true, true, "store synthetic case events (demo, tests)"},
    {"reissue", asy_cmd_reissue, true, false,
     "give a restored or copied outbox's events a new epoch"},
    {"export", asy_cmd_export, true, false,
     "write the unacknowledged events as JSON lines (for another agent)"},
    {"keygen", asy_cmd_keygen, false, false, "write a new consortium key file"},
};
#define S_COMMAND_COUNT (sizeof S_COMMANDS / sizeof S_COMMANDS[0])

static void s_usage(FILE *out)
{
    fprintf(out, "usage: advsync-agent [common options] SUBCOMMAND [args]\n\nsubcommands:\n");
    for (size_t i = 0; i < S_COMMAND_COUNT; i++)
        fprintf(out, "  %-9s %s\n", S_COMMANDS[i].name, S_COMMANDS[i].summary);
    fprintf(out,
            "\ncommon options (before or after the subcommand; they override the file):\n"
            "  --config FILE     zconfig file with an `agent` section\n"
            "  --id ID           agent id ([A-Za-z0-9._-]{1,64})\n"
            "  --site SITE       site id\n"
            "  --outbox PATH     outbox file (default ./ID.outbox.db)\n"
            "  --key-file PATH   consortium key (64 hex digits)\n"
            "  --endpoint EP     broker endpoint tcp://HOST:PORT or ipc://PATH; repeat for\n"
            "                    fail-over\n"
            "  --help, -h        this text; `advsync-agent SUBCOMMAND --help` for one subcommand\n"
            "  --version         print the version\n"
            "\nexit status: 0 success, 1 failure, 2 usage or configuration error,\n"
            "3 some input refused (submit, import)\n");
}

static bool s_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Checks what the subcommand needs from the configuration; prints what is missing. */
static bool s_ready(const s_command_t *command, const asy_agent_config_t *config)
{
    if (command->needs_identity && !config->agent_id[0]) {
        fprintf(stderr,
                "advsync-agent %s: no agent id: set `id` in the agent section of the "
                "config file or pass --id\n",
                command->name);
        return false;
    }
    if (command->needs_identity && !config->site_id[0]) {
        fprintf(stderr,
                "advsync-agent %s: no site id: set `site` in the agent section of the "
                "config file or pass --site\n",
                command->name);
        return false;
    }
    if (command->needs_key && !config->key_file[0]) {
        fprintf(stderr,
                "advsync-agent %s: no consortium key: set `key_file` in the agent "
                "section of the config file or pass --key-file\n",
                command->name);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    asy_log_set_name("advsync-agent");
    asy_agent_config_t config;
    char error[1024] = "";
    int loaded = asy_agent_config_load(&config, &argc, argv, error, sizeof error);

    bool help = false, version = false; /* common options: before or after the subcommand */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        help = help || s_is_help(argv[i]);
        version = version || strcmp(argv[i], "--version") == 0;
    }
    if (argc < 2) {
        if (loaded != 0)
            fprintf(stderr, "advsync-agent: %s\n", error);
        s_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (s_is_help(name)) {
        s_usage(stdout);
        return 0;
    }
    if (version && !help) {
        printf("advsync-agent %s (protocol %d, event schema %d)\n", ASY_VERSION_STRING,
               ASY_PROTOCOL_VERSION, ASY_SCHEMA_VERSION);
        return 0;
    }
    const s_command_t *command = NULL;
    for (size_t i = 0; i < S_COMMAND_COUNT; i++)
        if (strcmp(name, S_COMMANDS[i].name) == 0)
            command = &S_COMMANDS[i];
    if (!command && loaded != 0 && asy_agent_config_is_flag(name)) {
        /* a mistake in a common flag before the subcommand (`--config` without a value, given
           twice): its flags were not taken out, so the first of them is here; say what is wrong
           with it rather than call it unknown */
        fprintf(stderr, "advsync-agent: %s\n", error);
        return 2;
    }
    if (!command) {
        fprintf(stderr, "advsync-agent: unknown %s %s\n", name[0] == '-' ? "option" : "subcommand",
                name);
        s_usage(stderr);
        return 2;
    }
    /* `SUBCOMMAND --help` works without a usable configuration */
    if (!help) {
        if (loaded != 0) {
            fprintf(stderr, "advsync-agent: %s\n", error);
            return 2;
        }
        if (!s_ready(command, &config))
            return 2;
    }
    int code = command->run(&config, argc - 1, argv + 1);
    if ((command->run == asy_cmd_submit || command->run == asy_cmd_import) &&
        (code == 128 + SIGINT || code == 128 + SIGTERM)) {
        /* submit and import caught the signal to commit and say where to resume; die of it
           now, so that a shell loop over files stops at Ctrl-C as it would for any program */
        fflush(stdout);
        signal(code - 128, SIG_DFL);
        raise(code - 128);
    }
    return code;
}
