/*  pb_scan.h: checks on a protobuf message's encoded bytes that its decoded form can no longer
    answer. Private to libadvsync (it speaks protobuf-c's descriptor types).  */
#ifndef ASY_PB_SCAN_H_INCLUDED
#define ASY_PB_SCAN_H_INCLUDED

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if a string field of desc, or of a message nested in it, holds a NUL byte in the
   encoded bytes (data, size). protobuf-c hands a string over as a C string, so every check of
   it would stop at the NUL while the stored bytes keep what follows (PROTOCOL 4: strings hold
   no NUL). Then path (unless path_size is 0) gets the field's dotted name, e.g.
   "referral_received.referrer_org". Unknown fields and bytes fields are not looked into. The
   bytes must already have been unpacked as desc without error. */
bool asy_pb_nul_in_string(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size,
                          char *path, size_t path_size);

#endif
