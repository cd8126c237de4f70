/*  clone_pub.h: the server side of one ASM/1 stream (proto/PROTOCOL.md part II, the ZeroMQ
    Clone pattern): an XPUB for updates and heartbeats, a ROUTER for snapshots, the stream's
    sequence number, and the last value published under every topic (what a snapshot sends).

    The monitor has two: the public (disclosure-controlled) and the restricted (exact) stream.
    Each owns its two sockets and its topic cache; used from the monitor's thread only.  */
#ifndef ASY_CLONE_PUB_H_INCLUDED
#define ASY_CLONE_PUB_H_INCLUDED

#include "asy.h"
#include "monitor_msg.h"

#include <czmq.h>

typedef struct asy_clone_pub asy_clone_pub_t;

/* Binds the XPUB to pub_endpoint and the ROUTER to snapshot_endpoint (resolved[0] and [1] get
   the endpoints as bound, e.g. the port chosen for "*"). NULL with error set if either cannot
   be bound or memory runs out. */
asy_clone_pub_t *asy_clone_pub_new(const char *pub_endpoint, const char *snapshot_endpoint,
                                   char resolved[2][256], char *error, size_t error_size);
void asy_clone_pub_destroy(asy_clone_pub_t **self_p);

/* The sockets, for the owner's poller: the XPUB is readable when a subscription arrives
   (asy_clone_pub_take_subscription), the ROUTER when a snapshot is asked for
   (asy_clone_pub_serve_snapshot). */
zsock_t *asy_clone_pub_xpub(const asy_clone_pub_t *self);
zsock_t *asy_clone_pub_router(const asy_clone_pub_t *self);

/* Publishes msg (an UPDATE) under topic with the next sequence number and keeps it as the
   topic's last value, unless its content (all but seq and as_of) equals that last value:
   then nothing is sent. msg's seq and as_of_us are left as they came, its incarnation set to
   the stream's. Returns true if sent. */
bool asy_clone_pub_update(asy_clone_pub_t *self, const char *topic, asy_mmsg_t *msg);

/* From hold to release, the updates published are kept and then sent together, one right
   after another: a subscriber's connection then takes a pass's updates in one send, not one
   send each while the next are rendered (libzmq's I/O thread sends what a pipe holds when it
   comes to it). Notices and heartbeats send what is held before themselves. Used from the
   owner's thread, which releases before it polls again. */
void asy_clone_pub_hold(asy_clone_pub_t *self);
void asy_clone_pub_release(asy_clone_pub_t *self);

/* Publishes msg under topic with the next sequence number without keeping it: a notice (a
   breach), not a topic's value, so snapshots do not carry it. msg's incarnation is set to the
   stream's. Returns true if sent. */
bool asy_clone_pub_notice(asy_clone_pub_t *self, const char *topic, asy_mmsg_t *msg);

/* Says which stream this is (true: exact figures, the restricted one) in every heartbeat and
   SnapshotEnd, so that a subscriber can tell a publisher and a snapshot service of different
   streams apart even before any update. Unset: not said. */
void asy_clone_pub_set_exact(asy_clone_pub_t *self, bool exact);

/* Says which broker process this is (PROTOCOL.md 11): incarnation (non-zero) goes on every
   message sent from now on, live or snapshot reply; call it before anything is published.
   Unset: not said (0). */
void asy_clone_pub_set_incarnation(asy_clone_pub_t *self, uint64_t incarnation);

/* Sends a heartbeat carrying the current sequence number. */
void asy_clone_pub_heartbeat(asy_clone_pub_t *self, int64_t sent_at_us, int interval_ms);

/* Answers the request waiting on the ROUTER: a SnapshotRequest gets the last value of every
   topic under its subtree, then a SnapshotEnd with the sequence number they are as of;
   anything else gets a MonitorError. */
void asy_clone_pub_serve_snapshot(asy_clone_pub_t *self);

/* Reads a subscription (or unsubscription) message off the XPUB: nothing depends on them. */
void asy_clone_pub_take_subscription(asy_clone_pub_t *self);

#endif
