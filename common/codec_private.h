/*  codec_private.h: what the files of the codec share (codec.c: events; codec_validate.c:
    their checks; codec_ids.c: names and identifiers). Not for other modules: it exposes the
    protobuf-c types generated from proto/advsync.proto.  */
#ifndef ASY_CODEC_PRIVATE_H_INCLUDED
#define ASY_CODEC_PRIVATE_H_INCLUDED

#include "codec.h"

#include "advsync.pb-c.h"

struct asy_event {
    Advsync__V1__Event *message;
    /* asy_event_decode: the first string field whose bytes held a NUL ("" if none), refused by
       asy_event_validate (the decoded string stops at the NUL: no later check sees the rest) */
    char nul_field[96];
};

/* The body field name of a kind ("referral_received"); "body" if not a kind. Static string. */
const char *asy_kind_field(int kind);

/* A protobuf Timestamp in microseconds since 1970; 0 for NULL. Out-of-range seconds are
   clamped, never overflow. */
int64_t asy_codec_micros(const Advsync__V1__Timestamp *stamp);

#endif
