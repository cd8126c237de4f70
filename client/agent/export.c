/*  export.c: `advsync-agent export`: the events of the outbox the centre has not acknowledged,
    as JSON lines another agent's `submit` takes.

    For an agent set up with the wrong id or site (the centre answers WRONG_AGENT, and the
    outbox belongs to that id and site, so no other agent can send it): its events are
    written out without this agent's stamps (siteId, agentId, epoch, seq, schemaVersion), with
    their eventId, pseudonyms (caseId, personKey: no raw identifier is in an outbox to begin
    with) and recordedAt, so that `submit` under the right configuration stores the same
    events. Reading only: the outbox is not changed.  */
#include "agent.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define S_READ_ROWS 1000

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: advsync-agent [common options] export\n"
            "\n"
            "Writes the events of the outbox the centre has not acknowledged to standard\n"
            "output, one JSON line each, without this agent's stamps (siteId, agentId, epoch,\n"
            "seq, schemaVersion): `advsync-agent --config RIGHT.cfg submit FILE` stores them\n"
            "under another agent, with their event ids. For an agent set up with another\n"
            "agent's id or another site (the centre answered WRONG_AGENT, so none of its\n"
            "events reached it): see deploy/README.md. The outbox is not changed.\n"
            "Exit status: 0, 1 if the outbox cannot be read, 2 on a usage error.\n");
}

typedef struct {
    uint64_t written;
    uint64_t next_seq;
    int rc;
} s_export_t;

static int s_write_row(uint64_t seq, const uint8_t *data, size_t size, void *arg)
{
    s_export_t *self = arg;
    self->next_seq = seq + 1;
    asy_event_t *event = NULL;
    char *text = asy_event_decode(data, size, &event) == 0 ? asy_event_to_json(event) : NULL;
    asy_event_destroy(&event);
    json_t *object = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!object) {
        asy_error("seq %llu: the stored event cannot be read back", (unsigned long long)seq);
        self->rc = ASY_EIO;
        return 1;
    }
    static const char *const stamps[] = {"siteId", "agentId", "epoch", "seq", "schemaVersion"};
    for (size_t i = 0; i < sizeof stamps / sizeof stamps[0]; i++)
        json_object_del(object, stamps[i]);
    char *line = json_dumps(object, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(object);
    if (!line || puts(line) < 0) {
        free(line);
        self->rc = ASY_EIO;
        return 1;
    }
    free(line);
    self->written++;
    return 0;
}

int asy_cmd_export(const asy_agent_config_t *config, int argc, char **argv)
{
    int args = asy_agent_read_args(argc, argv, NULL, NULL, s_usage);
    if (args >= 0)
        return args;
    asy_outbox_t *outbox = asy_agent_open_outbox_to_read(config);
    if (!outbox)
        return 1;
    asy_outbox_status_t status;
    s_export_t export = {0};
    export.rc = asy_outbox_status(outbox, &status);
    export.next_seq = status.acked_seq + 1;
    size_t count = 1;
    while (export.rc == 0 && count > 0)
        if (asy_outbox_read(outbox, export.next_seq, S_READ_ROWS, s_write_row, &export, &count) !=
            0)
            export.rc = ASY_EDB;
    if (export.rc == ASY_EDB)
        asy_error("cannot read the outbox: %s", asy_outbox_errmsg(outbox));
    asy_outbox_destroy(&outbox);
    if (fflush(stdout) != 0)
        export.rc = ASY_EIO;
    if (export.rc != 0)
        return 1;
    asy_info("export: %llu unacknowledged event(s) of agent %s, site %s",
             (unsigned long long)export.written, config->agent_id, config->site_id);
    return 0;
}
