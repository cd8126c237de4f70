/*  broker_options.h: advsyncd's settings, from flags and the config file (flags win).

    Every setting is a text value until used; the table in broker_options.c names each one's
    flag, config key and help line, so --help, the config reader and the checks stay in step.  */
#ifndef ASY_BROKER_OPTIONS_H_INCLUDED
#define ASY_BROKER_OPTIONS_H_INCLUDED

#include "asy.h"

#include <stdio.h>

typedef enum {
    ASY_OPT_CONFIG,
    ASY_OPT_INGEST,
    ASY_OPT_DATABASE,
    ASY_OPT_ENDPOINT_FILE,
    ASY_OPT_LOG_LEVEL,
    ASY_OPT_WORKERS,
    ASY_OPT_MONITOR,                     /* "on" | "off" */
    ASY_OPT_MONITOR_PUBLIC,
    ASY_OPT_MONITOR_PUBLIC_SNAPSHOT,
    ASY_OPT_MONITOR_RESTRICTED,
    ASY_OPT_MONITOR_RESTRICTED_SNAPSHOT,
    ASY_OPT_COALESCE_MS,
    ASY_OPT_HEARTBEAT_MS,
    ASY_OPT_HISTORY_YEARS,
    ASY_OPT_BREACH_GRACE_MS,
    ASY_OPT_COUNT
} asy_broker_option_t;

typedef struct {
    const char *value[ASY_OPT_COUNT]; /* NULL = unset; borrowed from argv or the config */
    void *config;                     /* the loaded zconfig_t, owned */
} asy_broker_options_t;

/* Parses argv, then the config file if one was named, then fills defaults. Returns -1 to go
   on, or the exit code (0 after --help/--version, 1 bad config, 2 bad flags) with the
   reason printed on stderr. */
int asy_broker_options_load(asy_broker_options_t *options, int argc, char **argv);

/* Frees the config. */
void asy_broker_options_release(asy_broker_options_t *options);

/* A numeric setting (already checked by load). */
int asy_broker_options_int(const asy_broker_options_t *options, asy_broker_option_t which);

#endif
