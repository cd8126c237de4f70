/*  forward.h: `advsync-agent run`: forwards the outbox to the centre and records what the
    centre has committed.

    One DEALER socket, connected to one broker endpoint at a time (the configured endpoints
    are tried in turn). The conversation (proto/PROTOCOL.md) is HELLO -> WELCOME, then a
    window of PUBLISH batches, each answered by ACK or NACK; HEARTBEAT when idle. A new
    socket is made for every connection, so a late ACK from an old connection never arrives.
    The forwarder is the only owner of its outbox handle and of its socket.  */
#ifndef ASY_FORWARD_H_INCLUDED
#define ASY_FORWARD_H_INCLUDED

#include "agent.h"

/* run's exit code when starting again later may well succeed: the outbox could not be opened
   for a full disk or an I/O error, or the file was replaced under it (sysexits' EX_TEMPFAIL;
   the systemd unit restarts on it, not on 1 or 2) */
#define ASY_RUN_EXIT_TRY_AGAIN 75

typedef struct {
    bool until_drained;   /* exit 0 once the backlog is 0 and everything sent is acknowledged */
    int64_t run_for_ms;   /* exit 0 after this long; 0 = until a signal */
} asy_forward_options_t;

/* Parses the flags of `run` (argv[0] is "run"): --until-drained, --for SECONDS, --help.
   Returns 0, 1 if --help was given (usage printed to stdout), or ASY_EINVAL with a message
   in error[]. */
int asy_forward_parse_args(asy_forward_options_t *options, int argc, char **argv, char *error,
                           size_t error_size);

/* Runs the forwarder until drained, until run_for_ms elapsed, or until SIGTERM/SIGINT (then
   waits up to 1 s for outstanding ACKs). Returns the process exit code: 0 on a normal stop,
   ASY_RUN_EXIT_TRY_AGAIN (above), or 1 if the outbox cannot be opened for another reason or
   the centre refuses this agent (VERSION, WRONG_AGENT), which retrying will not mend. Both
   arguments are borrowed. */
int asy_forward_run(const asy_agent_config_t *config, const asy_forward_options_t *options);

#endif
