/*  main.c: advsync-ctl, the consortium's admin tool (see ctl.h).  */
#include "ctl.h"

int main(int argc, char **argv)
{
    return asy_ctl_run(argc, argv);
}
