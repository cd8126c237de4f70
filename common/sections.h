/*  sections.h: the top-level sections a configuration file may hold.

    One zconfig file may serve several advsync programs: `agent` is advsync-agent's; `broker`
    and `monitor` are advsyncd's (advsync-ctl reads broker/database). Every program refuses a
    file with any other top-level name, so that a misspelt section (`montor`) is an error
    rather than every setting in it silently left at its default.  */
#ifndef ASY_SECTIONS_H_INCLUDED
#define ASY_SECTIONS_H_INCLUDED

#include <czmq.h>

/* The known sections, as a message lists them. */
#define ASY_SECTIONS_KNOWN "agent, broker, monitor"

/* The name of the first top-level entry of root that is not a known section, or NULL. */
const char *asy_sections_stranger(zconfig_t *root);

#endif
