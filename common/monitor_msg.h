/*  monitor_msg.h: the messages of ASM/1, the monitor stream (proto/PROTOCOL.md part II), as
    plain C structs, with their encoding (codec_monitor.c is the only user of the generated
    protobuf-c types for them) and their proto3 JSON form.

    A decoded or built asy_mmsg_t owns its cells array; release it with asy_mmsg_release().  */
#ifndef ASY_MONITOR_MSG_H_INCLUDED
#define ASY_MONITOR_MSG_H_INCLUDED

#include "asy.h"

#define ASY_MONITOR_VERSION 1
#define ASY_TOPIC_MAX 160
#define ASY_MNAME_MAX 48 /* breakdown and group names */
#define ASY_HEARTBEAT_TOPIC "heartbeat"
/* the largest message a snapshot service takes (a request holds a subtree of at most 159
   bytes); a peer sending a larger one is disconnected unanswered (PROTOCOL.md 11 rule 6) */
#define ASY_SNAPSHOT_REQUEST_MAX 4096

/* One cell of a metric (MetricCell). has_* say which optional fields are present. */
typedef struct {
    char breakdown[ASY_MNAME_MAX];
    char group[ASY_MNAME_MAX];
    bool has_count, has_numerator, has_denominator, has_value, has_interval, has_expected,
        has_p90;
    int64_t count;
    int64_t numerator;
    int64_t denominator;
    double value;
    double lower; /* with upper, present when has_interval */
    double upper;
    double expected;
    double p90;
    bool suppressed;
    bool withheld; /* not on the wire: a value the public render left out (M10) */
} asy_mcell_t;

/* MetricUpdate. Dates are asy_date_t values (days since 1970-01-01), INT32_MIN if absent. */
typedef struct {
    char topic[ASY_TOPIC_MAX];
    char metric[8];
    char scope[ASY_ID_MAX + 1];
    char period[16];
    int32_t period_start;
    int32_t period_end;
    int64_t as_of_us; /* microseconds since 1970-01-01Z */
    bool exact;
    char unit[16];
    asy_mcell_t *cells; /* owned (malloc) */
    size_t cell_count;
    size_t cell_capacity;
} asy_mupdate_t;

typedef enum {
    ASY_BREACH_CONTACT = 1,
    ASY_BREACH_MEETING = 2,
} asy_breach_kind_t;

/* BreachNotice. */
typedef struct {
    char case_id[ASY_PSEUDONYM_HEX + 1];
    char site_id[ASY_ID_MAX + 1];
    int kind; /* asy_breach_kind_t */
    int32_t received;
    int32_t deadline;
    int64_t detected_at_us;
    int service;
    bool withdrawn; /* the earlier notice of (case_id, kind) no longer stands */
} asy_mbreach_t;

typedef enum {
    ASY_MMSG_NONE = 0,
    ASY_MMSG_UPDATE,
    ASY_MMSG_BREACH,
    ASY_MMSG_SNAPSHOT_REQUEST,
    ASY_MMSG_SNAPSHOT_END,
    ASY_MMSG_HEARTBEAT,
    ASY_MMSG_ERROR,
} asy_mmsg_kind_t;

/* MonitorMessage: the envelope and whichever body kind says. */
typedef struct {
    asy_mmsg_kind_t kind;
    uint32_t version;
    uint64_t seq;
    uint64_t incarnation;        /* the sending broker process (PROTOCOL.md 9); 0: not said (an
                                    older broker), so a monitor never uses 0 */
    asy_mupdate_t update;        /* ASY_MMSG_UPDATE */
    asy_mbreach_t breach;        /* ASY_MMSG_BREACH */
    char subtree[ASY_TOPIC_MAX]; /* ASY_MMSG_SNAPSHOT_REQUEST */
    uint32_t topics;             /* ASY_MMSG_SNAPSHOT_END (seq is the envelope's) */
    int64_t sent_at_us;          /* ASY_MMSG_HEARTBEAT (seq is the envelope's) */
    uint32_t interval_ms;        /* ASY_MMSG_HEARTBEAT */
    int exact;                   /* SNAPSHOT_END, HEARTBEAT: the stream's, 1 restricted
                                    (exact), 0 public, -1 not said (an older broker) */
    char reason[256];            /* ASY_MMSG_ERROR */
} asy_mmsg_t;

/* Zeroes *msg for kind, version ASY_MONITOR_VERSION, dates absent. */
void asy_mmsg_init(asy_mmsg_t *msg, asy_mmsg_kind_t kind);

/* Frees the cells of an update and zeroes the message; safe to call twice. */
void asy_mmsg_release(asy_mmsg_t *msg);

/* Appends a zeroed cell with breakdown and group to the update; returns it, or NULL on
   ENOMEM. The pointer is valid until the next append. */
asy_mcell_t *asy_mupdate_add_cell(asy_mupdate_t *update, const char *breakdown,
                                  const char *group);

/* Encodes the message. Returns 0 and *data (caller frees) / *size, or ASY_ENOMEM. */
int asy_mmsg_encode(const asy_mmsg_t *msg, uint8_t **data, size_t *size);

/* Decodes a MonitorMessage into *msg (initialised here; release it afterwards). Returns 0 or
   ASY_EPROTO (not a decodable MonitorMessage, no body, or a field too long), with *msg
   then of kind ASY_MMSG_NONE. */
int asy_mmsg_decode(asy_mmsg_t *msg, const uint8_t *data, size_t size);

/* The encoded message as one line of proto3 JSON (no newline), through the generic mapper.
   Caller frees. NULL if the bytes do not decode or on ENOMEM. */
char *asy_mmsg_json(const uint8_t *data, size_t size);

/* Name of an enum value of advsync.proto, as groups are named on the stream: which is the
   enum's proto name ("EthnicityOns2021", "NhsEthnicCategory", "AgeBand", "Sex", "Gender",
   "Disability", "Religion", "SexualOrientation", "ServiceType", "ReferralSource",
   "BreachKind"). Returns NULL for an unknown enum or value. */
const char *asy_enum_value_name(const char *which, int value);

#endif
