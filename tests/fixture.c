/*  fixture.c: the fixture of the agent command tests. See fixture.h.  */
#include "fixture.h"

#include "harness.h"
#include "pseudonym.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void asy_fixture_setup(asy_fixture_t *self, const asy_fixture_spec_t *spec)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "asy-test-%s", spec->name);
    asy_test_mkdtemp(self->dir, sizeof self->dir, prefix);
    asy_agent_config_t *config = &self->config;
    memset(config, 0, sizeof *config);
    snprintf(config->agent_id, sizeof config->agent_id, "%s", spec->agent_id);
    snprintf(config->site_id, sizeof config->site_id, "%s", spec->site_id);
    snprintf(config->outbox_path, sizeof config->outbox_path, "%s%s/%s.db", self->dir,
             spec->outbox_folder ? "/outbox" : "", spec->agent_id);
    snprintf(config->key_file, sizeof config->key_file, "%s/consortium.key", self->dir);
    if (spec->outbox_folder) {
        char outbox_dir[512];
        snprintf(outbox_dir, sizeof outbox_dir, "%s/outbox", self->dir);
        cr_assert_eq(mkdir(outbox_dir, 0700), 0);
    }
    if (spec->random_key) {
        char error[512];
        cr_assert_eq(asy_pseudonym_key_generate(config->key_file, error, sizeof error), 0, "%s",
                     error);
    } else {
        FILE *key = fopen(config->key_file, "w");
        cr_assert_not_null(key);
        fputs(ASY_FIXTURE_KEY "\n", key);
        fclose(key);
    }
}

void asy_fixture_teardown(asy_fixture_t *self)
{
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", self->dir);
    cr_assert_eq(system(command), 0);
}

const char *asy_fixture_write_bytes(const asy_fixture_t *self, const char *name, const char *data,
                                    size_t size)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", self->dir, name);
    FILE *file = fopen(path, "wb");
    cr_assert_not_null(file);
    cr_assert_eq(fwrite(data, 1, size, file), size);
    cr_assert_eq(fclose(file), 0);
    return path;
}

const char *asy_fixture_write(const asy_fixture_t *self, const char *name, const char *text)
{
    return asy_fixture_write_bytes(self, name, text, strlen(text));
}

char *asy_fixture_slurp(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    cr_assert_not_null(file, "cannot read %s", path);
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *data = malloc((size_t)length + 1);
    cr_assert_eq(fread(data, 1, (size_t)length, file), (size_t)length);
    data[length] = '\0';
    fclose(file);
    if (size)
        *size = (size_t)length;
    return data;
}

int asy_fixture_capture(const asy_fixture_t *self, asy_fixture_command_t *command, int argc,
                        char **argv, const char *out_path, const char *err_path)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    int code = command(&self->config, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    return code;
}

void asy_fixture_spawn(const asy_fixture_t *self, asy_fixture_command_t *command, int argc,
                       char **argv, asy_fixture_child_t *child)
{
    int in[2], out[2], err[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    cr_assert_eq(pipe(err), 0);
    child->pid = fork();
    cr_assert(child->pid >= 0);
    if (child->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        int ends[] = {in[0], in[1], out[0], out[1], err[0], err[1]};
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
            close(ends[i]);
        int code = command(&self->config, argc, argv);
        fflush(stdout);
        _exit(code);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    child->in = in[1];
    child->out = out[0];
    child->err = err[0];
}

asy_fixture_result_t asy_fixture_run(const asy_fixture_t *self, asy_fixture_command_t *command,
                                     int argc, char **argv)
{
    static asy_fixture_result_t result;
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/stdout", self->dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", self->dir);
    result.code = asy_fixture_capture(self, command, argc, argv, out_path, err_path);
    char *text = asy_fixture_slurp(out_path, NULL);
    snprintf(result.out, sizeof result.out, "%s", text);
    free(text);
    text = asy_fixture_slurp(err_path, NULL);
    snprintf(result.err, sizeof result.err, "%s", text);
    free(text);
    return result;
}

static bool s_contains(const char *data, size_t size, const char *needle)
{
    size_t length = strlen(needle);
    for (size_t i = 0; i + length <= size; i++)
        if (memcmp(data + i, needle, length) == 0)
            return true;
    return false;
}

int asy_fixture_assert_absent(const asy_fixture_t *self, const char *folder,
                              const char *const *needles, size_t count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", self->dir, folder);
    DIR *dir = opendir(path);
    cr_assert_not_null(dir, "cannot list %s", path);
    int files = 0;
    for (struct dirent *entry; (entry = readdir(dir));) {
        if (entry->d_name[0] == '.')
            continue;
        char file[1536];
        snprintf(file, sizeof file, "%s/%s", path, entry->d_name);
        size_t size;
        char *data = asy_fixture_slurp(file, &size);
        for (size_t i = 0; i < count; i++)
            cr_assert_not(s_contains(data, size, needles[i]), "%s holds %s", entry->d_name,
                          needles[i]);
        free(data);
        files++;
    }
    closedir(dir);
    return files;
}

uint64_t asy_fixture_last_seq(const asy_fixture_t *self)
{
    char error[512];
    asy_outbox_t *outbox = asy_outbox_open(self->config.outbox_path, self->config.agent_id,
                                           self->config.site_id, error, sizeof error);
    cr_assert_not_null(outbox, "%s", error);
    asy_outbox_status_t status;
    cr_assert_eq(asy_outbox_status(outbox, &status), 0);
    asy_outbox_destroy(&outbox);
    return status.last_seq;
}
