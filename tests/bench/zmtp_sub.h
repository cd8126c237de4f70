/*  zmtp_sub.h: a minimal ZMTP 3.0 subscriber (NULL mechanism, TCP) for bench_monitor.

    Why not a libzmq SUB: the benchmark runs 1,000 subscribers on the broker's own two cores.
    A libzmq SUB hands every message from its I/O thread to the application thread (a pipe
    write, an eventfd signal, a wake-up and the ZMQ_EVENTS / recv calls that follow). On a
    machine where a system call or a cross-core wake-up is dear, those hand-offs of 1,000
    subscribers cost more CPU than the broker spends publishing, and the figure measures the
    harness. This subscriber is one TCP socket read by the caller's own thread: one recv() per
    wake-up. It speaks the wire of proto/PROTOCOL.md part II as any ZMTP peer must (RFC 23
    greeting, READY with Socket-Type SUB, subscriptions as messages whose first byte is 1)
    and never writes after the handshake. bench_monitor still measures libzmq SUBs too.  */
#ifndef ASY_ZMTP_SUB_H_INCLUDED
#define ASY_ZMTP_SUB_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct asy_zmtp_sub_t asy_zmtp_sub_t;

/* Called once per complete message: its first part (the topic) and its second (the body; empty
   if the message had one part). Parts after the second are dropped. Both are borrowed. */
typedef void(asy_zmtp_message_fn)(void *arg, const uint8_t *topic, size_t topic_size,
                                  const uint8_t *body, size_t body_size);

/* Connects to endpoint ("tcp://A.B.C.D:PORT", IPv4 only), sends the greeting and READY, waits
   (up to 10 s) for the peer's, then sends one subscription per prefix (a NULL-terminated list,
   each at most 254 bytes) and leaves the socket non-blocking. Returns NULL (errno set) if the
   endpoint does not parse, the connection fails or the peer's handshake is not ZMTP 3 NULL. */
asy_zmtp_sub_t *asy_zmtp_sub_new(const char *endpoint, const char *const *prefixes);

/* Closes the connection and frees the subscriber; *self_p becomes NULL. Idempotent. */
void asy_zmtp_sub_destroy(asy_zmtp_sub_t **self_p);

/* The socket, for epoll or poll (readable: call asy_zmtp_sub_read). */
int asy_zmtp_sub_fd(const asy_zmtp_sub_t *self);

/* Reads what the socket holds without blocking and calls on_message for every complete
   message. Returns 0, or -1 if the peer closed the connection, the read failed or the peer
   broke the framing (unknown flag bits, a frame over 16 MiB, a command inside a message). */
int asy_zmtp_sub_read(asy_zmtp_sub_t *self, asy_zmtp_message_fn *on_message, void *arg);

#endif
