/*  keygen.c: `advsync-agent keygen --key-file PATH`: makes a new consortium key.  */
#include "agent.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static void s_usage(FILE *out)
{
    fprintf(out, "usage: advsync-agent keygen --key-file PATH\n"
                 "\n"
                 "Writes a new random consortium key (64 hex digits, mode 0600) to PATH; the path\n"
                 "may also come from key_file in the config file. An existing file is never\n"
                 "overwritten: replacing the key would break every link between old and new\n"
                 "pseudonyms. Make the key once and copy it to every site by a secure channel.\n"
                 "Exit status: 0 written, 1 not written (exists, cannot write), 2 usage error.\n");
}

int asy_cmd_keygen(const asy_agent_config_t *config, int argc, char **argv)
{
    int args = asy_agent_read_args(argc, argv, NULL, NULL, s_usage);
    if (args >= 0)
        return args;
    if (!config->key_file[0]) {
        fprintf(stderr, "advsync-agent keygen: --key-file PATH is required\n");
        s_usage(stderr);
        return 2;
    }
    char error[512];
    if (asy_pseudonym_key_generate(config->key_file, error, sizeof error) != 0) {
        asy_error("%s", error);
        return 1;
    }
    printf("wrote a new consortium key to %s\n", config->key_file);
    return 0;
}
