/*  sections.h: what every program checks of a configuration file's layout.

    One zconfig file may serve several advsync programs: `agent` is advsync-agent's; `broker`
    and `monitor` are advsyncd's (advsync-ctl reads broker/database). Every program refuses a
    file with any other top-level name, so that a misspelt section (`montor`) is an error
    rather than every setting in it silently left at its default. Keys given twice are
    refused as well (which one is meant cannot be told), but for those a section repeats on
    purpose.  */
#ifndef ASY_SECTIONS_H_INCLUDED
#define ASY_SECTIONS_H_INCLUDED

#include <czmq.h>

/* True if every top-level entry of root is a known section; else false, with why[] =
   "\"montor\" is not a section of any advsync program (they are agent, broker, monitor):
   misspelt?" for the caller to put after its program and file. */
bool asy_sections_known(zconfig_t *root, char *why, size_t why_size);

/* The zconfig tree of the file at path (the caller destroys it), or NULL with why[] = "cannot
   read it: ...", "is a folder, not a file", "is larger than 1 MiB: not a configuration file",
   "is not valid zconfig text (...)" or "at line 3: the value of id is cut at '#' (a comment
   starts there): quote the value, or put a blank before a comment", for the caller to put
   after its program and file. The last: zconfig reads '#' as the start of a comment anywhere,
   so in a line with an unquoted value that has a '#' right after one of its characters,
   `id = ward#3` is the agent id "ward" (and two wards "ward#3" and "ward#4" would be one);
   the value is not echoed (it may be a password). A byte order mark at its start (an
   editor's UTF-8 with BOM) is skipped. Unlike czmq's zconfig_load, which keeps the open file
   of a text it cannot parse, nothing leaks. */
zconfig_t *asy_config_load(const char *path, char *why, size_t why_size);

/* True if an entry of parent before item has item's name. */
bool asy_sections_given_before(zconfig_t *parent, zconfig_t *item);

#endif
