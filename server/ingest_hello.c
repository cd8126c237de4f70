/*  ingest_hello.c: an ingest worker's answer to a HELLO (proto/PROTOCOL.md 5.1, 5.5): the
    version and identity checks, the WELCOME, and the record of a re-issued epoch; the
    session itself is started by ingest.c (asy_ingest_session_start), the worker's loop.  */
#include "ingest_private.h"

#include "log.h"

#include <inttypes.h>

/* --------------------------------------------------------------------------------------------
   HELLO */

static bool s_hello_identity_ok(asy_ingest_worker_t *self, const asy_hello_t *hello)
{
    char text[80];
    if (!hello->agent_id || !asy_id_valid(hello->agent_id)) {
        asy_ingest_nack(self, ASY_CODE_WRONG_AGENT, 0, 0, 0,
                        "HELLO agent_id \"%s\" is not 1-64 characters of [A-Za-z0-9._-]",
                        asy_ingest_printable(hello->agent_id, text, sizeof text));
        return false;
    }
    if (!hello->site_id || !asy_id_valid(hello->site_id)) {
        asy_ingest_nack(self, ASY_CODE_WRONG_AGENT, 0, 0, 0,
                        "HELLO site_id \"%s\" is not 1-64 characters of [A-Za-z0-9._-]",
                        asy_ingest_printable(hello->site_id, text, sizeof text));
        return false;
    }
    if (hello->reissue_of_epoch &&
        (hello->reissue_of_epoch >= hello->epoch || hello->reissue_from_seq < 1)) {
        asy_ingest_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
                        "HELLO re-issues epoch %" PRIu64 " from seq %" PRIu64 " as epoch %" PRIu64
                        ": the re-issued epoch must be older and the seq 1 or more",
                        hello->reissue_of_epoch, hello->reissue_from_seq, hello->epoch);
        return false;
    }
    if (!hello->reissue_of_epoch && hello->reissue_from_seq) {
        asy_ingest_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
                        "HELLO has reissue_from_seq without reissue_of_epoch");
        return false;
    }
    if (hello->epoch < 1) {
        asy_ingest_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
                        "HELLO epoch must be 1 or more, got 0");
        return false;
    }
    /* the centre stores epochs and seqs as bigint: above it they would read back negative */
    if (hello->epoch > INT64_MAX || hello->reissue_from_seq > INT64_MAX) {
        asy_ingest_nack(self, ASY_CODE_MALFORMED_FRAME, 0, 0, 0,
                        "HELLO epoch %" PRIu64 " or reissue_from_seq %" PRIu64
                        " is over 9223372036854775807 (2^63 - 1), the largest the centre stores",
                        hello->epoch, hello->reissue_from_seq);
        return false;
    }
    return true;
}

static void s_welcome(asy_ingest_worker_t *self, uint32_t version, uint64_t committed,
                      const char *committed_event_id, uint64_t reissue_of_epoch)
{
    asy_frame_t frame = {.type = ASY_FRAME_WELCOME, .version = version};
    frame.u.welcome = (asy_welcome_t){.version = version,
                                      .committed_seq = committed,
                                      .committed_event_id = committed_event_id,
                                      .reissue_of_epoch = reissue_of_epoch,
                                      .max_batch_events = ASY_MAX_BATCH_EVENTS,
                                      .max_frame_bytes = ASY_MAX_FRAME_BYTES,
                                      .window = ASY_DEFAULT_WINDOW,
                                      .heartbeat_ms = ASY_DEFAULT_HEARTBEAT_MS};
    asy_ingest_send(self, &frame);
}

static void s_on_hello_checked(asy_ingest_worker_t *self, const asy_hello_t *hello);

/* Answers a HELLO; its NACKs name the agent the HELLO names, not the peer's routing id. */
void asy_ingest_on_hello(asy_ingest_worker_t *self, const asy_hello_t *hello)
{
    self->hello_agent = hello->agent_id && *hello->agent_id ? hello->agent_id : NULL;
    s_on_hello_checked(self, hello);
    self->hello_agent = NULL;
}

static void s_on_hello_checked(asy_ingest_worker_t *self, const asy_hello_t *hello)
{
    uint32_t version =
        hello->version_max < ASY_PROTOCOL_VERSION ? hello->version_max : ASY_PROTOCOL_VERSION;
    if (version < 1 || version < hello->version_min) {
        asy_ingest_nack(self, ASY_CODE_VERSION, 0, 0, 0, "agent speaks %u..%u; broker speaks 1..%d",
                        hello->version_min, hello->version_max, ASY_PROTOCOL_VERSION);
        return;
    }
    if (!s_hello_identity_ok(self, hello))
        return;
    uint32_t wait = asy_ingest_db_wait(self);
    uint64_t committed = 0;
    char committed_event_id[ASY_UUID_TEXT + 1] = "";
    int rc = wait ? ASY_ERETRY : asy_ingest_settle_doubt(self);
    if (rc == 0)
        rc =
            asy_store_hello(self->store, hello->agent_id, hello->site_id, hello->epoch, &committed);
    if (rc == 0) /* so that an agent with a restored or copied outbox can tell (5.1) */
        rc = asy_store_event_id_at(self->store, hello->agent_id, hello->epoch, committed,
                                   committed_event_id);
    asy_store_origin_t origins[ASY_STORE_REISSUE_DEPTH];
    size_t origin_count = 0;
    if (rc == 0 && hello->reissue_of_epoch)
        rc = asy_store_reissue(self->store, hello->agent_id, hello->epoch, hello->reissue_of_epoch,
                               hello->reissue_from_seq, origins, &origin_count);
    if (rc == ASY_EINVAL) {
        asy_ingest_nack(self, ASY_CODE_WRONG_AGENT, 0, 0, 0, "%s", asy_store_errmsg(self->store));
        return;
    }
    if (rc != 0) {
        wait = wait ? wait : asy_ingest_db_failed(self, "HELLO", rc);
        asy_ingest_nack(self, ASY_CODE_RETRY_LATER, 0, 0, wait,
                        "database unavailable; retry in %u ms", wait);
        return;
    }
    asy_ingest_db_ok(self);
    if (!asy_ingest_session_start(self, hello, committed, origins, origin_count)) {
        asy_ingest_nack(self, ASY_CODE_RETRY_LATER, 0, 0, ASY_INGEST_RETRY_FIRST_MS,
                        "broker out of memory");
        return;
    }
    char software[80];
    asy_info("session: agent %s site %s epoch %" PRIu64 " (peer %s, %s): committed %" PRIu64
             ", agent holds %" PRIu64,
             hello->agent_id, hello->site_id, hello->epoch, self->peer_key,
             asy_ingest_printable(hello->software, software, sizeof software), committed,
             hello->last_seq);
    if (hello->last_seq < committed)
        asy_warn("agent %s epoch %" PRIu64 " holds seqs only up to %" PRIu64
                 " but the centre committed %" PRIu64 ": its outbox lost events; it should "
                 "start a new epoch",
                 hello->agent_id, hello->epoch, hello->last_seq, committed);
    if (hello->reissue_of_epoch)
        asy_info("agent %s epoch %" PRIu64 " re-issues the events of epoch %" PRIu64
                 " from seq %" PRIu64 " (%zu epoch(s) back): those the centre holds there are "
                 "acknowledged, not stored again",
                 hello->agent_id, hello->epoch, hello->reissue_of_epoch, hello->reissue_from_seq,
                 origin_count);
    s_welcome(self, version, committed, committed_event_id, hello->reissue_of_epoch);
}
