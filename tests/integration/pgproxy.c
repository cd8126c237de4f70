/*  pgproxy.c: see pgproxy.h. One thread, poll(2) over the listening socket and every pair of
    (client, server) sockets. Bytes pass through unchanged; the proxy only reads the message
    framing of the protocol (type byte, then a 4-byte length that counts itself; the client's
    first message, the startup packet, has no type byte) to see CopyData ('d') from the client
    and CommandComplete ('C') "COMMIT" from the server.  */
#include "pgproxy.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define S_PAIRS 32
#define S_BUFFER 65536

/* One direction's framing: where the next message starts. */
typedef struct {
    bool typed;        /* false until the client's startup packet has gone by */
    uint8_t header[5]; /* type byte (if typed) and length, as they come */
    size_t header_got;
    uint64_t body_left; /* bytes of the current message still to pass */
    bool holding;       /* a server CommandComplete, held until whole */
    uint8_t held[80];
    size_t held_used;
} s_framing_t;

typedef struct {
    int client, server;   /* -1: closed */
    bool copied;          /* CopyData sent since the last COMMIT */
    s_framing_t up, down; /* client -> server, server -> client */
} s_pair_t;

struct asy_test_pg_proxy {
    pthread_t thread;
    int listener;
    int wake[2]; /* a byte on wake[1] ends the thread */
    char host[512];
    char port[16];
    atomic_int armed;
    atomic_int dropped;
    s_pair_t pairs[S_PAIRS];
};

/* A socket of family connected to address, or -1. */
static int s_dial(int family, const void *address, socklen_t length)
{
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)address, length) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static int s_connect_server(const asy_test_pg_proxy_t *self)
{
    if (self->host[0] == '/') {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        snprintf(address.sun_path, sizeof address.sun_path, "%s/.s.PGSQL.%s", self->host,
                 self->port);
        return s_dial(AF_UNIX, &address, sizeof address);
    }
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(self->port))};
    if (inet_pton(AF_INET, strcmp(self->host, "localhost") == 0 ? "127.0.0.1" : self->host,
                  &address.sin_addr) != 1)
        return -1;
    return s_dial(AF_INET, &address, sizeof address);
}

static void s_close(s_pair_t *pair)
{
    if (pair->client >= 0)
        close(pair->client);
    if (pair->server >= 0)
        close(pair->server);
    pair->client = pair->server = -1;
}

static bool s_write_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        size -= (size_t)n;
    }
    return true;
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Passes in[0..size) from one side to the other (to), reading the framing as it goes: notes
   the client's CopyData, and holds each server CommandComplete until it is whole, to drop the
   connection instead at an armed COMMIT. Returns false to close the pair. */
static bool s_pass(asy_test_pg_proxy_t *self, s_pair_t *pair, bool upward, const uint8_t *in,
                   size_t size, int to)
{
    s_framing_t *f = upward ? &pair->up : &pair->down;
    if (!upward)
        f->typed = true;
    uint8_t out[S_BUFFER + sizeof f->held];
    size_t used = 0;
    size_t at = 0;
    while (at < size) {
        if (f->body_left > 0) {
            size_t n = size - at < f->body_left ? size - at : (size_t)f->body_left;
            if (f->holding) {
                memcpy(f->held + f->held_used, in + at, n);
                f->held_used += n;
            } else {
                memcpy(out + used, in + at, n);
                used += n;
            }
            at += n;
            f->body_left -= n;
        } else {
            size_t header = f->typed ? 5 : 4;
            f->header[f->header_got++] = in[at++];
            if (f->header_got < header)
                continue;
            uint32_t length = s_be32(f->header + header - 4);
            uint8_t type = f->typed ? f->header[0] : 0;
            f->header_got = 0;
            f->typed = true;
            f->body_left = length >= 4 ? length - 4 : 0;
            if (upward && type == 'd')
                pair->copied = true;
            f->holding = !upward && type == 'C' && f->body_left + header <= sizeof f->held;
            if (f->holding) {
                memcpy(f->held, f->header, header);
                f->held_used = header;
            } else {
                memcpy(out + used, f->header, header);
                used += header;
            }
        }
        if (f->holding && f->body_left == 0) {
            bool commit = f->held_used == 5 + 7 && memcmp(f->held + 5, "COMMIT", 7) == 0;
            f->holding = false;
            if (commit && pair->copied) {
                int expected = 1;
                if (atomic_compare_exchange_strong(&self->armed, &expected, 0)) {
                    atomic_fetch_add(&self->dropped, 1);
                    return false; /* committed by the server; the client never hears it */
                }
            }
            if (commit)
                pair->copied = false;
            memcpy(out + used, f->held, f->held_used);
            used += f->held_used;
        }
    }
    return s_write_all(to, out, used);
}

static void *s_run(void *arg)
{
    asy_test_pg_proxy_t *self = arg;
    while (true) {
        struct pollfd fds[2 + 2 * S_PAIRS];
        size_t n = 0;
        fds[n++] = (struct pollfd){.fd = self->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = self->listener, .events = POLLIN};
        for (int i = 0; i < S_PAIRS; i++) {
            fds[n++] = (struct pollfd){.fd = self->pairs[i].client, .events = POLLIN};
            fds[n++] = (struct pollfd){.fd = self->pairs[i].server, .events = POLLIN};
        }
        if (poll(fds, n, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if (fds[1].revents & POLLIN) {
            int client = accept(self->listener, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < S_PAIRS && slot < 0; i++)
                if (self->pairs[i].client < 0)
                    slot = i;
            int server = client >= 0 && slot >= 0 ? s_connect_server(self) : -1;
            if (server < 0) {
                if (client >= 0)
                    close(client);
            } else {
                s_pair_t *pair = &self->pairs[slot];
                memset(pair, 0, sizeof *pair);
                pair->client = client;
                pair->server = server;
            }
        }
        for (int i = 0; i < S_PAIRS; i++) {
            s_pair_t *pair = &self->pairs[i];
            short from_client = fds[2 + 2 * i].revents, from_server = fds[3 + 2 * i].revents;
            if (pair->client < 0)
                continue;
            bool ok = true;
            uint8_t chunk[S_BUFFER];
            if (from_client & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t got = read(pair->client, chunk, sizeof chunk);
                ok = got > 0 && s_pass(self, pair, true, chunk, (size_t)got, pair->server);
            }
            if (ok && (from_server & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t got = read(pair->server, chunk, sizeof chunk);
                ok = got > 0 && s_pass(self, pair, false, chunk, (size_t)got, pair->client);
            }
            if (!ok)
                s_close(pair);
        }
    }
    for (int i = 0; i < S_PAIRS; i++)
        s_close(&self->pairs[i]);
    return NULL;
}

asy_test_pg_proxy_t *asy_test_pg_proxy_start(const char *conninfo, char *proxy_conninfo,
                                             size_t size)
{
    asy_test_pg_proxy_t *self = calloc(1, sizeof *self);
    cr_assert_not_null(self);
    for (int i = 0; i < S_PAIRS; i++)
        self->pairs[i].client = self->pairs[i].server = -1;
    char *error = NULL;
    PQconninfoOption *options = PQconninfoParse(conninfo, &error);
    cr_assert_not_null(options, "%s", error ? error : "conninfo");
    char rest[1024] = "";
    snprintf(self->host, sizeof self->host, "/var/run/postgresql");
    snprintf(self->port, sizeof self->port, "5432");
    for (PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            snprintf(self->host, sizeof self->host, "%s", o->val);
        else if (strcmp(o->keyword, "port") == 0)
            snprintf(self->port, sizeof self->port, "%s", o->val);
        else if (strcmp(o->keyword, "dbname") == 0 || strcmp(o->keyword, "user") == 0 ||
                 strcmp(o->keyword, "password") == 0)
            snprintf(rest + strlen(rest), sizeof rest - strlen(rest), " %s='%s'", o->keyword,
                     o->val);
    }
    PQconninfoFree(options);
    self->listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    cr_assert(self->listener >= 0 &&
              bind(self->listener, (struct sockaddr *)&address, sizeof address) == 0 &&
              listen(self->listener, 16) == 0 &&
              getsockname(self->listener, (struct sockaddr *)&address, &length) == 0);
    cr_assert_eq(pipe(self->wake), 0);
    snprintf(proxy_conninfo, size, "host=127.0.0.1 port=%d sslmode=disable gssencmode=disable%s",
             ntohs(address.sin_port), rest);
    cr_assert_eq(pthread_create(&self->thread, NULL, s_run, self), 0);
    return self;
}

void asy_test_pg_proxy_drop_next_batch_commit(asy_test_pg_proxy_t *self)
{
    atomic_store(&self->armed, 1);
}

int asy_test_pg_proxy_dropped(asy_test_pg_proxy_t *self)
{
    return atomic_load(&self->dropped);
}

void asy_test_pg_proxy_stop(asy_test_pg_proxy_t **self_p)
{
    asy_test_pg_proxy_t *self = *self_p;
    if (!self)
        return;
    (void)!write(self->wake[1], "x", 1);
    pthread_join(self->thread, NULL);
    close(self->wake[0]);
    close(self->wake[1]);
    close(self->listener);
    free(self);
    *self_p = NULL;
}
