/*  command_args.c: the arguments of the subcommands that take none but --help, or one flag
    besides (export, reissue, keygen, status): read the same way, with the same messages.  */
#include "agent.h"

#include <stdio.h>
#include <string.h>

int asy_agent_read_args(int argc, char **argv, const char *flag, bool *flag_given,
                        void (*usage)(FILE *out))
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (flag && strcmp(argv[i], flag) == 0)
            *flag_given = true;
        else {
            fprintf(stderr, "advsync-agent %s: unexpected argument %s\n", argv[0], argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return -1;
}
