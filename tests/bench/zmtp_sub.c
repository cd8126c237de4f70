/*  zmtp_sub.c: a minimal ZMTP 3.0 subscriber; see zmtp_sub.h for why it exists.  */
#include "zmtp_sub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define S_GREETING 64
#define S_FRAME_MAX (16u << 20)
#define S_BUFFER_MIN 65536

struct asy_zmtp_sub_t {
    int fd;
    uint8_t *buffer; /* bytes read after the handshake, not yet consumed: [0, used) */
    size_t used, capacity;
};

/* Writes the header of a short frame (RFC 23: flags, then a 1-byte size; every frame this
   subscriber sends is under 256 bytes) to out; returns its size. */
static size_t s_short_frame_header(uint8_t *out, uint8_t flags, size_t size)
{
    out[0] = flags;
    out[1] = (uint8_t)size;
    return 2;
}

static int s_send_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return -1;
        data += sent;
        size -= (size_t)sent;
    }
    return 0;
}

/* The greeting (signature, version 3.0, NULL mechanism, as-server 0) and READY with
   Socket-Type SUB, in one write. */
static int s_send_greeting(int fd)
{
    static const uint8_t ready[] = "\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB";
    uint8_t out[S_GREETING + 2 + sizeof ready] = {0};
    out[0] = 0xFF;
    out[8] = 0x01; /* the 8-byte length 1 of ZMTP 1.0, for peers that sniff it */
    out[9] = 0x7F;
    out[10] = 3;
    out[11] = 0;
    memcpy(out + 12, "NULL", 4);
    size_t at = S_GREETING + s_short_frame_header(out + S_GREETING, 0x04, sizeof ready - 1);
    memcpy(out + at, ready, sizeof ready - 1);
    return s_send_all(fd, out, at + sizeof ready - 1);
}

/* Reads (blocking) the peer's greeting and its READY command, leaving any later bytes in the
   buffer. libzmq takes a message sent before the handshake is over for a stray command and
   drops the connection, so subscriptions wait for this. */
static int s_await_ready(asy_zmtp_sub_t *self)
{
    for (;;) {
        if (self->used >= S_GREETING + 2) {
            const uint8_t *frame = self->buffer + S_GREETING;
            if (self->buffer[0] != 0xFF || (self->buffer[9] & 1) == 0 || self->buffer[10] < 3 ||
                frame[0] != 0x04 || frame[1] < 6 ||
                (self->used >= S_GREETING + 8 && memcmp(frame + 2, "\x05READY", 6) != 0)) {
                errno = EPROTO;
                return -1;
            }
            size_t end = S_GREETING + 2 + frame[1];
            if (self->used >= end) {
                memmove(self->buffer, self->buffer + end, self->used - end);
                self->used -= end;
                return 0;
            }
        }
        ssize_t got = recv(self->fd, self->buffer + self->used, self->capacity - self->used, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got == 0)
            errno = ECONNRESET;
        if (got <= 0)
            return -1;
        self->used += (size_t)got;
    }
}

/* One subscription message (a first byte 1, then the prefix) per prefix, in one write. */
static int s_subscribe(int fd, const char *const *prefixes)
{
    size_t size = 0;
    for (size_t p = 0; prefixes[p]; p++) {
        size_t length = strlen(prefixes[p]);
        if (length > 254) {
            errno = EINVAL;
            return -1;
        }
        size += 2 + 1 + length;
    }
    uint8_t *out = malloc(size);
    if (!out)
        return -1;
    size_t at = 0;
    for (size_t p = 0; prefixes[p]; p++) {
        size_t length = strlen(prefixes[p]);
        at += s_short_frame_header(out + at, 0x00, length + 1);
        out[at++] = 1;
        memcpy(out + at, prefixes[p], length);
        at += length;
    }
    int rc = s_send_all(fd, out, at);
    free(out);
    return rc;
}

asy_zmtp_sub_t *asy_zmtp_sub_new(const char *endpoint, const char *const *prefixes)
{
    char host[64];
    unsigned port = 0;
    struct sockaddr_in address = {.sin_family = AF_INET};
    const char *colon = strrchr(endpoint, ':');
    if (strncmp(endpoint, "tcp://", 6) != 0 || !colon || colon - endpoint - 6 <= 0 ||
        (size_t)(colon - endpoint - 6) >= sizeof host || sscanf(colon + 1, "%u", &port) != 1 ||
        port == 0 || port > 65535) {
        errno = EINVAL;
        return NULL;
    }
    memcpy(host, endpoint + 6, (size_t)(colon - endpoint - 6));
    host[colon - endpoint - 6] = 0;
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        errno = EINVAL;
        return NULL;
    }
    address.sin_port = htons((uint16_t)port);

    asy_zmtp_sub_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = S_BUFFER_MIN;
    self->buffer = malloc(self->capacity);
    self->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval timeout = {.tv_sec = 10}; /* for the handshake: a silent peer fails it */
    if (!self->buffer || self->fd < 0 ||
        setsockopt(self->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
        connect(self->fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        s_send_greeting(self->fd) != 0 || s_await_ready(self) != 0 ||
        s_subscribe(self->fd, prefixes) != 0 ||
        fcntl(self->fd, F_SETFL, fcntl(self->fd, F_GETFL) | O_NONBLOCK) != 0) {
        int saved = errno;
        asy_zmtp_sub_destroy(&self);
        errno = saved;
        return NULL;
    }
    return self;
}

void asy_zmtp_sub_destroy(asy_zmtp_sub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    asy_zmtp_sub_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    free(self->buffer);
    free(self);
    *self_p = NULL;
}

int asy_zmtp_sub_fd(const asy_zmtp_sub_t *self)
{
    return self->fd;
}

/* Delivers every complete message in the buffer and drops the bytes it consumed. Sets *need to
   the buffer size the next incomplete message needs (at least what it holds). Returns -1 on a
   framing error. */
static int s_parse(asy_zmtp_sub_t *self, asy_zmtp_message_fn *on_message, void *arg, size_t *need)
{
    size_t start = 0; /* the first byte of the message being parsed */
    *need = 0;
    for (;;) {
        size_t at = start, parts = 0;
        const uint8_t *topic = NULL, *body = NULL;
        size_t topic_size = 0, body_size = 0;
        bool complete = false;
        while (!complete) {
            size_t left = self->used - at;
            if (left < 2)
                goto incomplete;
            uint8_t flags = self->buffer[at];
            size_t header = (flags & 0x02) ? 9 : 2;
            if (left < header)
                goto incomplete;
            uint64_t size = 0;
            if (flags & 0x02)
                for (size_t b = 1; b < 9; b++)
                    size = size << 8 | self->buffer[at + b];
            else
                size = self->buffer[at + 1];
            if (size > S_FRAME_MAX || (flags & 0xF8))
                return -1;
            if (left - header < size) {
                *need = at - start + header + (size_t)size;
                goto incomplete;
            }
            const uint8_t *data = self->buffer + at + header;
            at += header + (size_t)size;
            if (flags & 0x04) { /* a command (READY, PING): only between messages */
                if (parts)
                    return -1;
                start = at;
                continue;
            }
            if (parts == 0) {
                topic = data;
                topic_size = (size_t)size;
            } else if (parts == 1) {
                body = data;
                body_size = (size_t)size;
            }
            parts++;
            complete = !(flags & 0x01);
        }
        on_message(arg, topic, topic_size, body ? body : (const uint8_t *)"", body_size);
        start = at;
    }
incomplete:
    memmove(self->buffer, self->buffer + start, self->used - start);
    self->used -= start;
    if (*need < self->used + 1)
        *need = self->used + 1;
    return 0;
}

int asy_zmtp_sub_read(asy_zmtp_sub_t *self, asy_zmtp_message_fn *on_message, void *arg)
{
    for (;;) {
        size_t need;
        if (s_parse(self, on_message, arg, &need) != 0)
            return -1;
        if (need > self->capacity) {
            size_t capacity = self->capacity;
            while (capacity < need)
                capacity *= 2;
            uint8_t *buffer = realloc(self->buffer, capacity);
            if (!buffer)
                return -1;
            self->buffer = buffer;
            self->capacity = capacity;
        }
        size_t space = self->capacity - self->used;
        ssize_t got = recv(self->fd, self->buffer + self->used, space, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (got <= 0)
            return -1;
        self->used += (size_t)got;
        if ((size_t)got < space) /* drained (level-triggered callers are woken again) */
            return s_parse(self, on_message, arg, &need);
    }
}
