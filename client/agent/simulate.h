/*  simulate.h: `advsync-agent simulate`, synthetic case lifecycles for one site (demo, tests,
    benchmarks). The entry point asy_cmd_simulate() is declared in agent.h; this header holds
    what a test or another tool may want besides it.  */
#ifndef ASY_SIMULATE_H_INCLUDED
#define ASY_SIMULATE_H_INCLUDED

#include "agent.h"

/* Writes into path[size] the parameters file simulate uses when no --params is given: the
   first that exists of $ADVSYNC_SIM_PARAMS, <program dir>/../share/advsync/sim/default.cfg,
   <source tree>/deploy/sim/default.cfg, /usr/local/share/advsync/sim/default.cfg,
   /usr/share/advsync/sim/default.cfg. Returns 0, or ASY_ENOTFOUND (path then names the
   source-tree candidate). */
int asy_simulate_default_params(char *path, size_t size);

#endif
