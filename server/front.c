/*  front.c: the front of the broker's ingest (see ingest.h). Owns the external ROUTER and one
    inproc PAIR per worker, and does nothing but relay: a message from the ROUTER (routing id +
    parts) goes whole and unchanged to worker = routing id % N; a message from a worker
    (routing id + reply) goes to the ROUTER. Per-connection affinity keeps each connection's
    order and session exactly as with a single worker; workers write concurrently, which the
    store makes safe (compare-and-set on agent_stream, case rows upserted in case_id order, a
    deadlock is ASY_ERETRY -> RETRY_LATER).  */
#include "ingest.h"

#include "codec.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LINGER_MS 2000
/* Messages a little above the frame limit are answered FRAME_TOO_LARGE by a worker; far above
   it libzmq drops the connection before the bytes are buffered. */
#define S_MAXMSGSIZE ((int)(ASY_MAX_FRAME_BYTES + 1024u * 1024u))

typedef struct {
    zsock_t *pipe;
    zsock_t *router;
    zpoller_t *poller;
    char *endpoint;
    int linger_ms;
    int count;                                   /* workers */
    zactor_t *workers[ASY_INGEST_MAX_WORKERS];
    zsock_t *links[ASY_INGEST_MAX_WORKERS];      /* PAIR bound for workers[i] */
    bool terminated;
} s_front_t;

/* libzmq's generated routing ids are 0 + a big-endian counter, so reading the id as a
   big-endian number spreads successive connections round-robin over the workers. */
static int s_worker_of(const s_front_t *self, zframe_t *routing_id)
{
    const uint8_t *data = zframe_data(routing_id);
    unsigned value = 0;
    for (size_t i = 0; i < zframe_size(routing_id); i++)
        value = (value * 256u + data[i]) % (unsigned)self->count;
    return (int)value;
}

static void s_front_destroy(s_front_t **self_p)
{
    s_front_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy(&self->poller);
    for (int i = 0; i < self->count; i++) {
        zactor_destroy(&self->workers[i]);
        zsock_destroy(&self->links[i]);
    }
    zsock_destroy(&self->router);   /* lingers linger_ms so the last replies leave */
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

/* Binds the links and starts the workers (which connect their stores in the background). */
static s_front_t *s_front_new(zsock_t *pipe, const asy_ingest_args_t *args)
{
    s_front_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->endpoint = strdup(args->endpoint ? args->endpoint : "tcp://127.0.0.1:5570");
    self->linger_ms = args->linger_ms > 0 ? args->linger_ms : S_LINGER_MS;
    self->count = args->workers > 0 ? args->workers : ASY_INGEST_DEFAULT_WORKERS;
    self->count = self->count > ASY_INGEST_MAX_WORKERS ? ASY_INGEST_MAX_WORKERS : self->count;
    if (!self->endpoint) {
        s_front_destroy(&self);
        return NULL;
    }
    for (int i = 0; i < self->count; i++) {
        /* unique per front: tests start several brokers in one process */
        char link[96];
        snprintf(link, sizeof link, "inproc://asy-ingest-%p-%d", (void *)self, i + 1);
        self->links[i] = zsock_new(ZMQ_PAIR);
        if (!self->links[i]) {
            s_front_destroy(&self);
            return NULL;
        }
        zsock_set_sndhwm(self->links[i], 0);   /* relaying must never block: see ingest.c */
        zsock_set_rcvhwm(self->links[i], 0);
        if (zsock_bind(self->links[i], "%s", link) < 0) {
            s_front_destroy(&self);
            return NULL;
        }
        asy_ingest_worker_args_t worker = {.front_endpoint = link,
                                           .conninfo = args->conninfo,
                                           .index = i + 1,
                                           .stats_interval_ms = args->stats_interval_ms,
                                           .monitor = args->monitor};
        self->workers[i] = zactor_new(asy_ingest_worker_actor, &worker);
        if (!self->workers[i]) {
            s_front_destroy(&self);
            return NULL;
        }
    }
    return self;
}

static void s_on_pipe(s_front_t *self)
{
    char *command = zstr_recv(self->pipe);
    if (!command || streq(command, "$TERM"))
        self->terminated = true;
    else
        asy_warn("ingest: unknown actor command %s", command);
    zstr_free(&command);
}

/* Waits until every worker has its store. Returns 0, or ASY_EIO with error[] set if a worker
   failed, or ASY_ERETRY if $TERM came first. */
static int s_wait_workers(s_front_t *self, char *error, size_t error_size)
{
    zpoller_t *poller = zpoller_new(self->pipe, NULL);
    if (!poller) {
        snprintf(error, error_size, "out of memory");
        return ASY_EIO;
    }
    for (int i = 0; i < self->count; i++)
        zpoller_add(poller, self->workers[i]);
    zpoller_set_nonstop(poller, true);
    int ready = 0, rc = 0;
    while (rc == 0 && ready < self->count && !self->terminated) {
        void *which = zpoller_wait(poller, 1000);
        if (which == self->pipe)
            s_on_pipe(self);
        else if (which) {
            char *status = NULL, *detail = NULL;
            zstr_recvx(which, &status, &detail, NULL);
            if (status && streq(status, "READY"))
                ready++;
            else {
                snprintf(error, error_size, "ingest worker failed: %s",
                         detail ? detail : "no reason");
                rc = ASY_EIO;
            }
            zstr_free(&status);
            zstr_free(&detail);
        }
    }
    zpoller_destroy(&poller);
    return rc != 0 ? rc : self->terminated ? ASY_ERETRY : 0;
}

static int s_bind(s_front_t *self, char *error, size_t error_size)
{
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router) {
        snprintf(error, error_size, "cannot create a ROUTER socket");
        return ASY_EIO;
    }
    zsock_set_maxmsgsize(self->router, S_MAXMSGSIZE);
    zsock_set_linger(self->router, self->linger_ms);
    zsock_set_rcvhwm(self->router, 4 * (int)ASY_DEFAULT_WINDOW);
    zsock_set_heartbeat_ivl(self->router, 10000);      /* drop dead TCP peers */
    zsock_set_heartbeat_timeout(self->router, 30000);
    if (asy_ipc_bind_refused(self->endpoint, error, error_size))
        return ASY_EIO;
    if (zsock_bind(self->router, "%s", self->endpoint) < 0) {
        asy_bind_failed(self->endpoint, error, error_size);
        return ASY_EIO;
    }
    /* The links come before the ROUTER: zpoller_wait returns the first ready socket, and a
       reply (an ACK) must never wait behind a stream of incoming frames. */
    self->poller = zpoller_new(self->pipe, NULL);
    for (int i = 0; self->poller && i < self->count; i++)
        zpoller_add(self->poller, self->links[i]);
    if (self->poller)
        zpoller_add(self->poller, self->router);
    if (!self->poller) {
        snprintf(error, error_size, "cannot create a poller");
        return ASY_EIO;
    }
    zpoller_set_nonstop(self->poller, true);   /* only $TERM stops us, not zsys_interrupted */
    return 0;
}

static void s_relay(zsock_t *from, zsock_t *to)
{
    zmsg_t *msg = zmsg_recv(from);
    if (msg && zmsg_send(&msg, to) != 0)
        asy_warn("ingest: a message could not be relayed and was dropped");
    zmsg_destroy(&msg);
}

static void s_on_router(s_front_t *self)
{
    zmsg_t *msg = zmsg_recv(self->router);
    zframe_t *routing_id = msg ? zmsg_first(msg) : NULL;
    if (routing_id && zmsg_send(&msg, self->links[s_worker_of(self, routing_id)]) != 0)
        asy_warn("ingest: a message could not be handed to a worker and was dropped");
    zmsg_destroy(&msg);
}

static void s_serve(s_front_t *self)
{
    while (!self->terminated) {
        void *which = zpoller_wait(self->poller, 1000);
        if (which == self->pipe)
            s_on_pipe(self);
        else if (which == self->router)
            s_on_router(self);
        else if (which)
            s_relay(which, self->router);
    }
}

/* Stops reading the ROUTER, lets every worker finish the batch in hand, then relays the
   replies they left on their links; the ROUTER's linger then lets them leave. */
static void s_drain(s_front_t *self)
{
    for (int i = 0; i < self->count; i++)
        zstr_send(self->workers[i], "$TERM");   /* all at once: they finish in parallel */
    for (int i = 0; i < self->count; i++)
        zactor_destroy(&self->workers[i]);
    for (int i = 0; i < self->count; i++) {
        zsock_set_rcvtimeo(self->links[i], 0);
        zmsg_t *msg;
        while ((msg = zmsg_recv(self->links[i])) != NULL)
            if (zmsg_send(&msg, self->router) != 0)
                zmsg_destroy(&msg);
    }
}

void asy_ingest_actor(zsock_t *pipe, void *args)
{
    s_front_t *self = s_front_new(pipe, (const asy_ingest_args_t *)args);
    zsock_signal(pipe, 0);    /* args are copied: zactor_new() may return */
    if (!self) {
        zstr_sendx(pipe, "FAILED", "cannot start the ingest workers (out of memory)", NULL);
        return;
    }
    char error[512] = "";
    int rc = s_wait_workers(self, error, sizeof error);
    if (rc == 0)
        rc = s_bind(self, error, sizeof error);
    if (rc == ASY_EIO) {
        asy_error("%s", error);
        zstr_sendx(pipe, "FAILED", error, NULL);
        while (!self->terminated)
            s_on_pipe(self);
    }
    else if (rc == 0) {
        char *endpoint = zsock_last_endpoint(self->router);
        asy_info("ingest listening on %s with %d worker(s)", endpoint ? endpoint : self->endpoint,
                 self->count);
        zstr_sendx(pipe, "READY", endpoint ? endpoint : self->endpoint, NULL);
        zstr_free(&endpoint);
        s_serve(self);
        s_drain(self);
    }
    asy_info("ingest stopping");
    s_front_destroy(&self);
}

int asy_ingest_wait_ready(zactor_t *actor, int timeout_ms, char **endpoint, char *error,
                          size_t error_size)
{
    *endpoint = NULL;
    zpoller_t *poller = zpoller_new(actor, NULL);
    if (!poller) {
        snprintf(error, error_size, "out of memory");
        return ASY_EIO;
    }
    void *which = zpoller_wait(poller, timeout_ms);
    zpoller_destroy(&poller);
    if (which != actor)
        return ASY_ERETRY;
    char *status = NULL, *detail = NULL;
    if (zstr_recvx(actor, &status, &detail, NULL) < 1)
        return ASY_ERETRY;
    int rc = 0;
    if (status && streq(status, "READY") && detail)
        *endpoint = strdup(detail);
    else {
        snprintf(error, error_size, "%s", detail ? detail : "ingest actor failed");
        rc = ASY_EIO;
    }
    zstr_free(&status);
    zstr_free(&detail);
    return rc;
}
