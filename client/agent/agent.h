/*  agent.h: the advsync-agent program: its configuration and one entry point per subcommand.
    main.c parses the common options into asy_agent_config_t and dispatches.  */
#ifndef ASY_AGENT_H_INCLUDED
#define ASY_AGENT_H_INCLUDED

#include "asy.h"
#include "codec.h"
#include "outbox.h"
#include "pseudonym.h"

#include <signal.h>

#define ASY_AGENT_MAX_ENDPOINTS 8

typedef struct {
    char agent_id[ASY_ID_MAX + 1];
    char site_id[ASY_ID_MAX + 1];
    char outbox_path[4096];
    char key_file[4096];
    char endpoints[ASY_AGENT_MAX_ENDPOINTS][256];
    int endpoint_count;
    uint32_t batch_max;       /* events per PUBLISH, default 5000 */
    uint32_t batch_ms;        /* wait at most this long to fill a batch, default 2 */
    uint32_t window;          /* unacknowledged batches in flight, default 16 */
    uint32_t ack_timeout_ms;  /* reconnect if nothing heard this long with batches in flight, 5000 */
} asy_agent_config_t;

/* Defaults, then the config file (zconfig, section "agent"), then the flags:
   --config FILE --id ID --site SITE --outbox PATH --key-file PATH --endpoint EP (repeatable).
   Removes the options it consumed from argv. Returns 0 or ASY_ECONFIG with error[] set. */
int asy_agent_config_load(asy_agent_config_t *config, int *argc, char **argv, char *error,
                          size_t error_size);

/* True if arg is one of the common flags asy_agent_config_load takes (--config, --id, ...,
   also as --flag=VALUE). */
bool asy_agent_config_is_flag(const char *arg);

/* Submission path shared by submit, import and simulate: pseudonymise, map, validate, append.
   The caller opens the outbox transaction. */
typedef struct {
    asy_outbox_t *outbox;             /* borrowed */
    const asy_pseudonym_key_t *key;   /* borrowed */
    const char *site_id;
    uint64_t stored;                  /* counters */
    uint64_t duplicates;
    uint64_t rejected;
} asy_submitter_t;

/* Takes one JSON event object (borrowed, modified in place by pseudonymisation). Returns 0 if
   stored, ASY_EEXIST if a duplicate event_id (not an error for the user), ASY_EINVAL with a
   message naming the field, or ASY_EDB. */
int asy_submitter_add(asy_submitter_t *self, json_t *object, char *error, size_t error_size);

/* True when reading the next line could block (a pipe or terminal with nothing ready). submit
   and import commit their transaction first then, so an idle producer (`tail -f | submit -`)
   never holds the outbox's write lock that `run` (recording acknowledgements) and other
   submitters need. */
bool asy_input_idle(FILE *file);

/* Loads the consortium key and opens the outbox that config names, as a submitter needs.
   Returns 0, or logs the reason and returns ASY_ECONFIG (no key_file), ASY_EIO / ASY_ECONFIG
   (key file unreadable / malformed) or ASY_EDB (outbox). The caller destroys *outbox. */
int asy_submitter_open(const asy_agent_config_t *config, asy_pseudonym_key_t *key,
                       asy_outbox_t **outbox);

/* Subcommands: argv[0] is the subcommand name; return the process exit code. */
int asy_cmd_submit(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_import(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_run(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_status(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_simulate(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_keygen(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_reissue(const asy_agent_config_t *config, int argc, char **argv);
int asy_cmd_export(const asy_agent_config_t *config, int argc, char **argv);

/* SIGINT and SIGTERM caught while submit or import reads its input (between catch and
   release), so that what was read is committed and the run ends saying so: without
   SA_RESTART, a read waiting on a pipe returns at the signal. asy_interrupted() is the signal
   caught since asy_interrupt_catch, 0 if none. */
void asy_interrupt_catch(struct sigaction saved[2]);
void asy_interrupt_release(const struct sigaction saved[2]);
int asy_interrupted(void);

/* Opens the configured outbox for a look (status, export), which must never create one: a
   mistyped path would show a healthy empty outbox, and one made by root would lock the
   service's user out. With no file (or an empty one) at the path, or an open that fails, says
   why and returns NULL. */
asy_outbox_t *asy_agent_open_outbox_to_read(const asy_agent_config_t *config);

/* NULL if there is a file at path to open as an outbox; else why there is none (strerror's
   text, or "an empty file": SQLite would make a new outbox of it). */
const char *asy_agent_no_outbox(const char *path);

/* Reads the arguments of a subcommand that takes none but --help (-h) and, if flag is not
   NULL, that one flag; argv[0] is the subcommand's name. Returns -1 to go on (*flag_given set
   if the flag was given); 0 after printing usage to stdout for --help; 2 after naming an
   unexpected argument on stderr, with the usage. */
int asy_agent_read_args(int argc, char **argv, const char *flag, bool *flag_given,
                        void (*usage)(FILE *out));

#endif
