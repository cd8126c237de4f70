/*  fixture.h: the fixture of the agent command tests (test_import, test_submit, test_simulate):
    a private directory under /tmp, a consortium key file and an outbox path in it, the agent
    config that points at them, and a way to run a command with its output captured. The
    functions fail the test (cr_assert) on any error.  */
#ifndef ASY_FIXTURE_H_INCLUDED
#define ASY_FIXTURE_H_INCLUDED

#include "agent.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The key asy_fixture_setup() writes unless random_key is set. */
#define ASY_FIXTURE_KEY "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

typedef struct {
    char dir[256];
    asy_agent_config_t config;
} asy_fixture_t;

typedef struct {
    const char *name;     /* the directory is /tmp/asy-test-<name>-XXXXXX */
    const char *agent_id; /* also names the outbox: <agent_id>.db */
    const char *site_id;
    bool outbox_folder; /* outbox in <dir>/outbox/ (created), else in <dir>/ */
    bool random_key;    /* a new key from asy_pseudonym_key_generate(), else ASY_FIXTURE_KEY */
} asy_fixture_spec_t;

/* Creates the directory and the key file and fills self->config. */
void asy_fixture_setup(asy_fixture_t *self, const asy_fixture_spec_t *spec);

/* Removes the directory and all in it. */
void asy_fixture_teardown(asy_fixture_t *self);

/* Writes text to <dir>/<name> and returns the path (a static buffer, one of eight in turn). */
const char *asy_fixture_write(const asy_fixture_t *self, const char *name, const char *text);
/* The same for bytes that may hold NULs (a UTF-16 file, a line with a NUL byte). */
const char *asy_fixture_write_bytes(const asy_fixture_t *self, const char *name, const char *data,
                                    size_t size);

/* Reads a whole file, NUL-terminated (it may hold NULs); *size its length if size is not NULL.
   Caller frees. */
char *asy_fixture_slurp(const char *path, size_t *size);

/* Fails the test if any file in <dir>/<folder> holds any of the count needles (as bytes,
   anywhere). Returns how many files it read. */
int asy_fixture_assert_absent(const asy_fixture_t *self, const char *folder,
                              const char *const *needles, size_t count);

/* An agent command (asy_cmd_submit, asy_cmd_import, asy_cmd_simulate...). */
typedef int asy_fixture_command_t(const asy_agent_config_t *config, int argc, char **argv);

/* Runs command(&self->config, argc, argv) in this process with stdout into out_path and stderr
   into err_path (both truncated first). Returns the command's exit code. */
int asy_fixture_capture(const asy_fixture_t *self, asy_fixture_command_t *command, int argc,
                        char **argv, const char *out_path, const char *err_path);

typedef struct {
    int code;
    char out[4096];
    char err[16384];
} asy_fixture_result_t;

/* asy_fixture_capture() into <dir>/stdout and <dir>/stderr, then returns the exit code and
   what the command wrote (truncated to the buffers). */
asy_fixture_result_t asy_fixture_run(const asy_fixture_t *self, asy_fixture_command_t *command,
                                     int argc, char **argv);

/* A command running in a child process, its standard streams on pipes: write to in, read
   out and err (the other ends are the child's). */
typedef struct {
    pid_t pid;
    int in, out, err;
} asy_fixture_child_t;

/* Starts command(&self->config, argc, argv) in a child process (its exit code is the child's
   exit status; stdout is flushed first), to be signalled or fed slowly (interrupts, pipes). */
void asy_fixture_spawn(const asy_fixture_t *self, asy_fixture_command_t *command, int argc,
                       char **argv, asy_fixture_child_t *child);

/* The last seq of the fixture's outbox (0 if none assigned yet); fails the test if the outbox
   cannot be opened or read. */
uint64_t asy_fixture_last_seq(const asy_fixture_t *self);

#endif
