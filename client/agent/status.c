/*  status.c: `advsync-agent status [--json]`: what the outbox holds and when the centre was
    last heard from.  */
#include "agent.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out, "usage: advsync-agent [common options] status [--json]\n"
                 "\n"
                 "Shows the agent, its site, the outbox epoch, the last seq stored, the last seq\n"
                 "the centre acknowledged, the backlog, the age of the oldest unacknowledged\n"
                 "event and when the centre was last heard from; after `reissue`, which seqs\n"
                 "were re-issued; and what keeps events from the centre, as `run` last said it\n"
                 "(until the centre acknowledges again). --json prints one JSON object.\n"
                 "Exit status: 0, or 1 if there is no outbox or it cannot be opened, 2 on a usage\n"
                 "error.\n");
}

static int64_t s_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* "2026-01-05T10:00:00Z" into out[32]. */
static void s_utc(int64_t ms, char out[32])
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "3 s ago (2026-01-05T10:00:00Z)", or "never". */
static void s_when(int64_t ms, int64_t now, char *out, size_t size)
{
    if (ms <= 0) {
        snprintf(out, size, "never");
        return;
    }
    char utc[32];
    s_utc(ms, utc);
    int64_t age = (now - ms) / 1000;
    if (age < 0)
        age = 0;
    if (age < 120)
        snprintf(out, size, "%lld s ago (%s)", (long long)age, utc);
    else if (age < 7200)
        snprintf(out, size, "%lld min ago (%s)", (long long)(age / 60), utc);
    else
        snprintf(out, size, "%.1f h ago (%s)", (double)age / 3600.0, utc);
}

static json_t *s_ms_or_null(int64_t ms)
{
    return ms > 0 ? json_integer(ms) : json_null();
}

static json_t *s_age_or_null(int64_t ms, int64_t now)
{
    return ms > 0 ? json_integer(now > ms ? now - ms : 0) : json_null();
}

static int s_print_json(const asy_agent_config_t *config, const asy_outbox_status_t *status,
                        int64_t now)
{
    json_t *object =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "agent_id", status->agent_id, "site_id",
                  status->site_id, "outbox", config->outbox_path, "epoch",
                  (json_int_t)status->epoch, "last_seq", (json_int_t)status->last_seq, "acked_seq",
                  (json_int_t)status->acked_seq, "backlog", (json_int_t)status->backlog);
    if (!object)
        return 1;
    json_object_set_new(object, "oldest_pending_ms", s_ms_or_null(status->oldest_pending_ms));
    json_object_set_new(object, "oldest_pending_age_ms",
                        s_age_or_null(status->oldest_pending_ms, now));
    json_object_set_new(object, "last_contact_ms", s_ms_or_null(status->last_contact_ms));
    json_object_set_new(object, "last_contact_age_ms", s_age_or_null(status->last_contact_ms, now));
    json_object_set_new(object, "last_ack_ms", s_ms_or_null(status->last_ack_ms));
    json_object_set_new(object, "last_ack_age_ms", s_age_or_null(status->last_ack_ms, now));
    if (status->reissue_of_epoch) {
        json_object_set_new(object, "reissue_of_epoch",
                            json_integer((json_int_t)status->reissue_of_epoch));
        json_object_set_new(object, "reissue_from_seq",
                            json_integer((json_int_t)status->reissue_from_seq));
        json_object_set_new(object, "reissue_last_seq",
                            json_integer((json_int_t)status->reissue_last_seq));
    }
    json_object_set_new(object, "problem",
                        status->problem[0] ? json_string(status->problem) : json_null());
    json_object_set_new(object, "problem_ms", s_ms_or_null(status->problem_ms));
    json_object_set_new(object, "now_ms", json_integer(now));
    /* default separators (", " and ": "): scripts match "backlog": N */
    char *text = json_dumps(object, JSON_PRESERVE_ORDER);
    json_decref(object);
    if (!text)
        return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

static void s_print_text(const asy_agent_config_t *config, const asy_outbox_status_t *status,
                         int64_t now)
{
    char epoch[32], oldest[96], contact[96], ack[96];
    s_utc((int64_t)status->epoch, epoch);
    s_when(status->oldest_pending_ms, now, oldest, sizeof oldest);
    if (status->backlog == 0)
        snprintf(oldest, sizeof oldest, "none pending");
    s_when(status->last_contact_ms, now, contact, sizeof contact);
    s_when(status->last_ack_ms, now, ack, sizeof ack);
    printf("agent          %s\n", status->agent_id);
    printf("site           %s\n", status->site_id);
    printf("outbox         %s\n", config->outbox_path);
    printf("epoch          %llu (%s)\n", (unsigned long long)status->epoch, epoch);
    printf("last seq       %llu\n", (unsigned long long)status->last_seq);
    printf("acked seq      %llu\n", (unsigned long long)status->acked_seq);
    printf("backlog        %llu\n", (unsigned long long)status->backlog);
    printf("oldest pending %s\n", oldest);
    printf("last contact   %s\n", contact);
    printf("last ack       %s\n", ack);
    if (status->reissue_of_epoch && status->reissue_last_seq == 0)
        printf("re-issued      from epoch %llu, with nothing pending\n",
               (unsigned long long)status->reissue_of_epoch);
    else if (status->reissue_of_epoch)
        printf("re-issued      seqs 1..%llu are seqs %llu.. of epoch %llu (%s)\n",
               (unsigned long long)status->reissue_last_seq,
               (unsigned long long)status->reissue_from_seq,
               (unsigned long long)status->reissue_of_epoch,
               status->acked_seq >= status->reissue_last_seq ? "all acknowledged" : "being sent");
    if (status->problem[0]) {
        char when[96];
        s_when(status->problem_ms, now, when, sizeof when);
        printf("problem        %s: %s\n", when, status->problem);
    }
}

const char *asy_agent_no_outbox(const char *path)
{
    struct stat info;
    if (stat(path, &info) != 0)
        return strerror(errno);
    return S_ISREG(info.st_mode) && info.st_size == 0 ? "an empty file" : NULL;
}

asy_outbox_t *asy_agent_open_outbox_to_read(const asy_agent_config_t *config)
{
    if (asy_agent_no_outbox(config->outbox_path)) { /* not even in an empty file */
        asy_error("no outbox at %s: nothing has been submitted there yet, or --outbox (or "
                  "agent/outbox) names another file",
                  config->outbox_path);
        return NULL;
    }
    char error[1024];
    asy_outbox_t *outbox = asy_outbox_open(config->outbox_path, config->agent_id, config->site_id,
                                           error, sizeof error);
    if (!outbox)
        asy_error("cannot open the outbox: %s", error);
    return outbox;
}

int asy_cmd_status(const asy_agent_config_t *config, int argc, char **argv)
{
    bool as_json = false;
    int args = asy_agent_read_args(argc, argv, "--json", &as_json, s_usage);
    if (args >= 0)
        return args;
    asy_outbox_t *outbox = asy_agent_open_outbox_to_read(config);
    if (!outbox)
        return 1;
    asy_outbox_status_t status;
    int rc = asy_outbox_status(outbox, &status);
    if (rc != 0) {
        asy_error("cannot read the outbox: %s", asy_outbox_errmsg(outbox));
        asy_outbox_destroy(&outbox);
        return 1;
    }
    asy_outbox_destroy(&outbox);
    int64_t now = s_now_ms();
    if (as_json)
        return s_print_json(config, &status, now);
    s_print_text(config, &status, now);
    return 0;
}
