/*  reissue.c: `advsync-agent reissue`: gives an outbox that was restored from a backup or
    copied a new epoch, so that its unacknowledged events reach the centre after all
    (PROTOCOL.md 5.5). `run` stops on such an outbox and names this command.

    Design: the events keep their bytes and event_ids and get seqs 1..n of a new epoch, in one
    SQLite transaction (outbox.c); the HELLO then names the old epoch and its first seq, and
    the broker acknowledges without storing those the centre already holds there. Nothing is
    deleted, and nothing the centre holds is stored twice.  */
#include "agent.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-agent [common options] reissue\n"
            "\n"
            "For an outbox restored from a backup or copied from another machine, after\n"
            "`advsync-agent run` stopped on it: gives every event the centre has not\n"
            "acknowledged a new epoch and seqs 1..n, keeping its bytes and event id. The next\n"
            "`run` sends them; the centre acknowledges, without storing them again, those it\n"
            "already holds under the old epoch. A broker that predates re-issued epochs\n"
            "(PROTOCOL.md 5.5) does not confirm this, and `run` then stops before sending.\n"
            "\n"
            "Stop the agent's service first: `run` and `reissue` cannot work on one outbox at\n"
            "once. Events submitted afterwards get seqs after the re-issued ones; a `submit`\n"
            "or `import` already running refuses its next write (start it again).\n"
            "\n"
            "Exit status: 0 re-issued (or nothing to re-issue), 1 failure (the outbox is\n"
            "unchanged), 2 usage error.\n");
}

int asy_cmd_reissue(const asy_agent_config_t *config, int argc, char **argv)
{
    int args = asy_agent_read_args(argc, argv, NULL, NULL, s_usage);
    if (args >= 0)
        return args;
    /* re-issuing a file that is not there, or an empty one (as status and export read it),
       would only create an empty outbox */
    const char *none = asy_agent_no_outbox(config->outbox_path);
    if (none) {
        asy_error("reissue: no outbox at %s (%s); check `outbox` in the config or --outbox",
                  config->outbox_path, none);
        return 1;
    }
    char error[512];
    asy_outbox_t *outbox = asy_outbox_open_claimed(config->outbox_path, config->agent_id,
                                                   config->site_id, error, sizeof error);
    if (!outbox) {
        asy_error("reissue: %s", error);
        return 1;
    }
    asy_outbox_reissue_t done;
    int rc = asy_outbox_reissue(outbox, &done);
    if (rc != 0) {
        asy_error("reissue: %s; the outbox is unchanged", asy_outbox_errmsg(outbox));
        asy_outbox_destroy(&outbox);
        return 1;
    }
    asy_outbox_destroy(&outbox);
    /* the outcome is the command's output, for the operator; stdout like `status` */
    if (done.count == 0)
        printf("%s had no unacknowledged events; it now uses epoch %llu (was %llu), so new "
               "events cannot take seqs the centre has used\n",
               config->outbox_path, (unsigned long long)done.new_epoch,
               (unsigned long long)(done.skipped_epoch ? done.skipped_epoch : done.old_epoch));
    else if (done.skipped_epoch)
        printf("%s: %llu event(s), seqs 1..%llu of epoch %llu (which the centre never "
               "welcomed: re-issued again before any `run`), are now seqs 1..%llu of epoch %llu, "
               "re-issuing epoch %llu from seq %llu as epoch %llu did.\nStart `advsync-agent "
               "run` to send them; the centre acknowledges without storing again those it "
               "already holds.\n",
               config->outbox_path, (unsigned long long)done.count, (unsigned long long)done.count,
               (unsigned long long)done.skipped_epoch, (unsigned long long)done.count,
               (unsigned long long)done.new_epoch, (unsigned long long)done.old_epoch,
               (unsigned long long)done.from_seq, (unsigned long long)done.skipped_epoch);
    else
        printf("%s: %llu event(s), seqs %llu..%llu of epoch %llu, are now seqs 1..%llu of "
               "epoch %llu.\nStart `advsync-agent run` to send them; the centre acknowledges "
               "without storing again those it already holds.\n",
               config->outbox_path, (unsigned long long)done.count,
               (unsigned long long)done.from_seq, (unsigned long long)done.to_seq,
               (unsigned long long)done.old_epoch, (unsigned long long)done.count,
               (unsigned long long)done.new_epoch);
    return 0;
}
