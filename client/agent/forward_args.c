/*  forward_args.c: the flags of `advsync-agent run` and its entry point, asy_cmd_run; the
    forwarder itself is in forward.c.  */
#include "forward.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_usage =
    "usage: advsync-agent [common options] run [--until-drained] [--for SECONDS]\n"
    "\n"
    "Forwards the outbox to the centre and prunes what the centre has committed.\n"
    "  --until-drained  exit 0 once every event in the outbox is acknowledged (1 if there\n"
    "                   is no outbox file, or it could not record the acknowledgements\n"
    "                   for 60 s)\n"
    "  --for SECONDS    exit 0 after SECONDS (waiting up to 1 s for outstanding ACKs);\n"
    "                   with --until-drained, 1 if the outbox had not drained by then\n"
    "  --help           show this text\n"
    "SIGTERM or SIGINT stops sending, waits up to 1 s for outstanding ACKs and exits 0.\n"
    "Exit 75 when starting again later may succeed (the outbox could not be opened for a\n"
    "full disk or an I/O error, or the file was replaced); 1 when an operator is needed\n"
    "(the centre refused this agent, a copied outbox, a folder not writable...); 2 on a\n"
    "usage error.\n";

static int s_parse_seconds(const char *text, int64_t *ms, char *error, size_t error_size)
{
    char *end = NULL;
    errno = 0;
    double seconds = text ? strtod(text, &end) : 0;
    if (!text || end == text || *end != '\0' || errno != 0 || !(seconds > 0) || seconds > 1e9) {
        snprintf(error, error_size, "run: --for needs a positive number of seconds, not \"%s\"",
                 text ? text : "");
        return ASY_EINVAL;
    }
    *ms = (int64_t)(seconds * 1000.0 + 0.5);
    if (*ms < 1)
        *ms = 1;
    return 0;
}

int asy_forward_parse_args(asy_forward_options_t *options, int argc, char **argv, char *error,
                           size_t error_size)
{
    memset(options, 0, sizeof *options);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(s_usage, stdout);
            return 1;
        }
        if (strcmp(arg, "--until-drained") == 0)
            options->until_drained = true;
        else if (strcmp(arg, "--for") == 0) {
            if (s_parse_seconds(i + 1 < argc ? argv[++i] : NULL, &options->run_for_ms, error,
                                error_size) != 0)
                return ASY_EINVAL;
        } else if (strncmp(arg, "--for=", 6) == 0) {
            if (s_parse_seconds(arg + 6, &options->run_for_ms, error, error_size) != 0)
                return ASY_EINVAL;
        } else {
            snprintf(error, error_size, "run: unknown argument \"%s\" (try run --help)", arg);
            return ASY_EINVAL;
        }
    }
    return 0;
}

int asy_cmd_run(const asy_agent_config_t *config, int argc, char **argv)
{
    asy_forward_options_t options;
    char error[256] = "";
    int rc = asy_forward_parse_args(&options, argc, argv, error, sizeof error);
    if (rc == 1)
        return 0;
    if (rc != 0) {
        asy_error("%s", error);
        fputs(s_usage, stderr);
        return 2;
    }
    return asy_forward_run(config, &options);
}
