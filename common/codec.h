/*  codec.h: events and protocol frames, encoded, decoded and validated.

    The codec is the only module that touches protobuf-c message types (json.c is its helper
    for the proto3 JSON mapping). Everything else sees the opaque asy_event_t, the plain
    asy_event_summary_t and the plain asy_frame_t below.  */
#ifndef ASY_CODEC_H_INCLUDED
#define ASY_CODEC_H_INCLUDED

#include "asy.h"

#include <jansson.h>

/* ----------------------------------------------------------------------------------------------
   Event kinds: one per body field of advsync.v1.Event; the value is the field number. */
typedef enum {
    ASY_KIND_NONE = 0,
    ASY_KIND_PERSON_PROFILE_RECORDED = 100,
    ASY_KIND_PERSON_PROFILE_UPDATED = 101,
    ASY_KIND_PERSON_EQUALITY_OPTOUT = 102,
    ASY_KIND_QUALIFYING_STARTED = 103,
    ASY_KIND_QUALIFYING_CHANGED = 104,
    ASY_KIND_QUALIFYING_ENDED = 105,
    ASY_KIND_REFERRAL_RECEIVED = 106,
    ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED = 107,
    ASY_KIND_REFERRAL_DECLINED = 108,
    ASY_KIND_WAITLIST_JOINED = 109,
    ASY_KIND_WAITLIST_LEFT = 110,
    ASY_KIND_CONTACT_ATTEMPTED = 111,
    ASY_KIND_CONTACT_MADE = 112,
    ASY_KIND_MEETING_INITIAL_HELD = 113,
    ASY_KIND_PLAN_AGREED = 114,
    ASY_KIND_PLAN_REVIEWED = 115,
    ASY_KIND_ISSUE_RECORDED = 116,
    ASY_KIND_MEETING_ATTENDED = 117,
    ASY_KIND_ACTIVITY_LOGGED = 118,
    ASY_KIND_RECORDS_ACCESS_REQUESTED = 119,
    ASY_KIND_OUTCOME_RECORDED = 120,
    ASY_KIND_FEEDBACK_RECEIVED = 121,
    ASY_KIND_UNMET_NEED_RECORDED = 122,
    ASY_KIND_REFERRAL_OUT_SENT = 123,
    ASY_KIND_CASE_CLOSED = 124,
    ASY_KIND_RECORD_VIEWED = 125,
    ASY_KIND_RECORD_EXPORTED = 126,
    ASY_KIND_RECORD_ERASED = 127,
} asy_kind_t;

#define ASY_KIND_FIRST 100
#define ASY_KIND_LAST 127

/* Dotted name of a kind ("referral.received"), or NULL if not a kind. Static string. */
const char *asy_kind_name(int kind);
/* Kind from "referral.received" or "referral_received"; ASY_KIND_NONE if unknown. */
int asy_kind_from_name(const char *name);

/* ----------------------------------------------------------------------------------------------
   Reason codes, shared by NACK (frame level) and Ack.rejected (event level).
   The values are advsync.v1.ErrorCode; codec.c checks that they agree. */
typedef enum {
    ASY_CODE_NONE = 0,
    ASY_CODE_MALFORMED_FRAME = 1,
    ASY_CODE_VERSION = 2,
    ASY_CODE_FRAME_TOO_LARGE = 3,
    ASY_CODE_BATCH_TOO_LARGE = 4,
    ASY_CODE_SEQ_GAP = 5,
    ASY_CODE_NOT_WELCOMED = 6,
    ASY_CODE_RETRY_LATER = 7,
    ASY_CODE_WRONG_AGENT = 8,
    ASY_CODE_SEQ_CONFLICT = 9,
    ASY_CODE_EVENT_UNDECODABLE = 20,
    ASY_CODE_EVENT_MISSING_FIELD = 21,
    ASY_CODE_EVENT_INVALID_FIELD = 22,
    ASY_CODE_EVENT_UNKNOWN_KIND = 23,
    ASY_CODE_EVENT_SEQ_MISMATCH = 24,
    ASY_CODE_EVENT_WRONG_SITE = 25,
    ASY_CODE_EVENT_SCHEMA_TOO_NEW = 26,
    ASY_CODE_EVENT_TOO_LARGE = 27,
} asy_code_t;

/* "SEQ_GAP", "EVENT_MISSING_FIELD", ...; static string ("UNKNOWN" if not a code). */
const char *asy_code_name(int code);

/* Why an event is refused: a code and a sentence that names the field. */
typedef struct {
    int code;           /* asy_code_t */
    char reason[256];   /* e.g. "referral_received.service: required for referral.received" */
    bool identifying;   /* the event carries an NHS number in text: its bytes must not be kept */
} asy_check_t;

/* ----------------------------------------------------------------------------------------------
   Events. */
typedef struct asy_event asy_event_t;

/* Decodes one encoded advsync.v1.Event. Returns 0 and sets *out (caller owns), or ASY_EPROTO
   if the bytes are not a decodable Event (then *out is NULL). Unknown fields are kept. */
int asy_event_decode(const uint8_t *data, size_t size, asy_event_t **out);

/* Encodes the event. Returns 0 and sets *data (caller frees with free()) and *size. */
int asy_event_encode(const asy_event_t *self, uint8_t **data, size_t *size);

#define ASY_EVENT_DIGEST_BYTES 16
/* A digest (BLAKE2b, 16 bytes) of the event without what asy_event_stamp sets or may set
   (site, agent, epoch, seq, schema_version, recorded_at): the same submission gives the same
   digest whenever it is stamped; an event_id reused for other content gives another.
   Returns 0 or ASY_ENOMEM. The event is left as it was. */
int asy_event_content_digest(asy_event_t *self, uint8_t digest[ASY_EVENT_DIGEST_BYTES]);

/* Destroys the event and nulls *self_p; safe on NULL. */
void asy_event_destroy(asy_event_t **self_p);

/* Builds an event from a JSON object in the proto3 JSON mapping of advsync.v1.Event
   (lowerCamelCase or snake_case names; enums by name; Timestamp as RFC 3339 text; Date as
   "YYYY-MM-DD"). Unknown keys are errors. Returns 0 and *out (caller owns), or ASY_EINVAL
   with a message naming the field in error[]. The object is borrowed. */
int asy_event_from_json(json_t *object, asy_event_t **out, char *error, size_t error_size);

/* The event as one line of proto3 JSON (no newline). Caller frees. NULL on ENOMEM. */
char *asy_event_to_json(const asy_event_t *self);

/* Checks the event against the schema's rules (envelope fields present and well formed,
   exactly one known body, kind-specific required fields, value ranges). Does not check the
   agent/site/seq binding: that is the broker's. Returns 0 if valid, else a negative code and
   fills *why. */
int asy_event_validate(const asy_event_t *self, asy_check_t *why);

/* Sets the fields an agent owns: site, agent, epoch, seq, schema_version, and recorded_at
   (now) when absent, and a new UUID v7 event_id when absent. Returns 0 or ASY_ENOMEM. */
int asy_event_stamp(asy_event_t *self, const char *site_id, const char *agent_id,
                    uint64_t epoch, uint64_t seq);

/* Gives an already stamped event a new place: epoch and seq only (a re-issued outbox,
   PROTOCOL.md 5.5); everything else, schema_version included, stays as first stamped. */
void asy_event_renumber(asy_event_t *self, uint64_t epoch, uint64_t seq);

/* Sets case_id / person_key (64 hex pseudonyms). Returns 0 or ASY_ENOMEM. */
int asy_event_set_case_id(asy_event_t *self, const char *case_id);
int asy_event_set_person_key(asy_event_t *self, const char *person_key);

/* Borrowed event_id, or NULL if absent. */
const char *asy_event_id(const asy_event_t *self);

/* True if decoding met fields this schema does not know (a newer writer). */
bool asy_event_has_unknown_fields(const asy_event_t *self);

/* Plain view of the envelope and of the facts that per-case state is derived from.
   Enumerations are the advsync.v1 enum numbers; 0 means "not recorded". */
typedef struct {
    char event_id[ASY_UUID_TEXT + 1];
    uint8_t event_uuid[16]; /* event_id's bytes; all zero if not a UUID */
    uint32_t schema_version;
    char site_id[ASY_ID_MAX + 1];
    char agent_id[ASY_ID_MAX + 1];
    uint64_t epoch;
    uint64_t seq;
    char case_id[ASY_PSEUDONYM_HEX + 1];
    char person_key[ASY_PSEUDONYM_HEX + 1];  /* "" if absent */
    int64_t occurred_at_us;                  /* microseconds since 1970-01-01Z; 0 if absent */
    int64_t recorded_at_us;
    int kind;                                /* asy_kind_t */
    /* referral.received */
    int service;
    int64_t received_at_us;                  /* received_at, or occurred_at if absent */
    int source;
    uint32_t reasons;                        /* bit r for each ReferralReason r in 1..30 */
    /* referral.eligibility_decided: -1 not recorded, 0 not eligible, 1 eligible */
    int eligible;
    /* referral.declined */
    int decline_reason;
    /* case.closed */
    int closure_reason;
    bool left_before_goals;                  /* as given, else derived from the reason */
    /* qualifying.* */
    int legal_status;
    bool qualifying;                         /* legal_status is IMHA-qualifying */
    /* when the status took effect: the body's start (.started, .changed) or end (.ended), if
       from 2000-01-01 to 2 days after occurred_at; else occurred_at */
    int64_t qualifying_at_us;
    /* meeting.initial_held: its date at 12:00 UTC (the same London date) if given, from
       2000-01-01 and before occurred_at; else occurred_at */
    int64_t met_at_us;
    /* person.profile_* (0 = not in this event) */
    int ethnicity_ons;
    int nhs_ethnic;
    int sex;
    int gender;
    int age_band;
    int disability;
    int religion;
    int sexual_orientation;
    /* outcome.recorded */
    int outcome_framework;
    int outcome_area;
    int outcome_score;
    int outcome_edition;
} asy_event_summary_t;

/* Fills *out from the event. Fields absent in the event are zero / "". */
void asy_event_summarise(const asy_event_t *self, asy_event_summary_t *out);

/* True if the legal status makes a patient IMHA-qualifying (s130C; 31 and 32 count as
   qualifying only when stated liable to be detained, so false here). */
bool asy_legal_status_qualifies(int legal_status);

/* New UUID v7 (time-ordered) in canonical text form into out[37]. */
void asy_uuid_v7(char out[ASY_UUID_TEXT + 1]);
/* The 16 bytes of a UUID (version and variant bits already set) in canonical lowercase text
   form into out[37]. */
void asy_uuid_format(const uint8_t bytes[16], char out[ASY_UUID_TEXT + 1]);
/* True if text is a canonical UUID (8-4-4-4-12 hex, any version). */
bool asy_uuid_valid(const char *text);
/* The 16 bytes of a canonical UUID text (hex digits of either case) into out. False, out
   unspecified, if text is not one (asy_uuid_valid). */
bool asy_uuid_parse(const char *text, uint8_t out[16]);
/* True if text is [A-Za-z0-9._-]{1,64}. */
bool asy_id_valid(const char *text);
/* True if text is a ZeroMQ endpoint these programs connect to: tcp://HOST:PORT (HOST not
   empty, PORT 1..65535) or ipc://PATH. asy_endpoint_check(text, false, ...). */
bool asy_endpoint_valid(const char *text);
/* Checks an endpoint to connect to (bind false) or to bind (bind true: the port may also be
   * or 0, any free port, and the host *, every interface). True if valid; otherwise false
   with what is wrong in why (e.g. `has port "99999", not a number 1..65535`), if why is not
   NULL. */
bool asy_endpoint_check(const char *text, bool bind, char *why, size_t why_size);
/* True if text is ipc://PATH and a process accepts connections on PATH now. libzmq's bind
   replaces such a socket file silently, leaving the process that had it unreachable: binders
   ask first and refuse, as a TCP bind on a port in use fails. */
bool asy_ipc_in_use(const char *text);
/* asy_ipc_in_use, with the refusal every binder gives: "cannot bind ENDPOINT: another process
   is listening there" into error[]. */
bool asy_ipc_bind_refused(const char *endpoint, char *error, size_t error_size);

/* Sets error to "cannot bind ENDPOINT: REASON" after a failed bind (zmq_errno), with a hint
   where libzmq's reason misleads: a host name in a tcp:// bind is "No such device". */
void asy_bind_failed(const char *endpoint, char *error, size_t error_size);
/* True if text is exactly 64 lowercase hex digits. */
bool asy_pseudonym_valid(const char *text);

/* ----------------------------------------------------------------------------------------------
   Protocol frames (proto/PROTOCOL.md). A decoded frame borrows strings and event bytes from
   storage it owns; asy_frame_release() frees that storage. */
typedef enum {
    ASY_FRAME_NONE = 0,
    ASY_FRAME_HELLO = 10,
    ASY_FRAME_WELCOME = 11,
    ASY_FRAME_PUBLISH = 12,
    ASY_FRAME_ACK = 13,
    ASY_FRAME_NACK = 14,
    ASY_FRAME_HEARTBEAT = 15,
} asy_frame_type_t;

typedef struct {
    const uint8_t *data;
    size_t size;
} asy_bytes_t;

typedef struct {
    uint32_t version_min;
    uint32_t version_max;
    const char *agent_id;
    const char *site_id;
    uint64_t epoch;
    uint64_t last_seq;
    const char *software;      /* may be NULL */
    uint64_t reissue_of_epoch; /* 0: not a re-issued epoch (PROTOCOL.md 5.5) */
    uint64_t reissue_from_seq;
} asy_hello_t;

typedef struct {
    uint32_t version;
    uint64_t committed_seq;
    uint32_t max_batch_events;
    uint32_t max_frame_bytes;
    uint32_t window;
    uint32_t heartbeat_ms;
    const char *committed_event_id; /* NULL or "" when the centre did not say */
    uint64_t reissue_of_epoch;      /* 0 unless the centre accepted a re-issued epoch */
} asy_welcome_t;

typedef struct {
    const char *agent_id;
    uint64_t epoch;
    uint64_t first_seq;
    size_t count;
    const asy_bytes_t *events;  /* count entries; events[i] has seq first_seq + i */
} asy_publish_t;

typedef struct {
    uint64_t seq;
    int code;                   /* asy_code_t */
    const char *reason;
} asy_rejection_t;

typedef struct {
    const char *agent_id;
    uint64_t epoch;
    uint64_t seq;
    size_t rejected_count;
    const asy_rejection_t *rejected;
    uint32_t duplicates;
} asy_ack_t;

typedef struct {
    int code;                   /* asy_code_t */
    const char *reason;
    uint64_t expected_seq;
    uint64_t first_seq;
    uint32_t retry_after_ms;
} asy_nack_t;

typedef struct {
    int64_t sent_at_ms;
} asy_heartbeat_t;

typedef struct {
    int type;                   /* asy_frame_type_t */
    uint32_t version;
    union {
        asy_hello_t hello;
        asy_welcome_t welcome;
        asy_publish_t publish;
        asy_ack_t ack;
        asy_nack_t nack;
        asy_heartbeat_t heartbeat;
    } u;
    void *storage_;             /* private: what the borrowed pointers point into */
    char nul_field[64];         /* asy_frame_decode's ASY_EINVAL: the string that held a NUL */
} asy_frame_t;

/* Encodes a frame (its version field is written as given; 0 means ASY_PROTOCOL_VERSION).
   Returns 0 and *data (caller frees with free()), or ASY_EINVAL for an unknown type. */
int asy_frame_encode(const asy_frame_t *frame, uint8_t **data, size_t *size);

/* Decodes one frame. Returns 0, ASY_EPROTO if the bytes are not a Frame or carry no known
   kind (frame->type is then ASY_FRAME_NONE), or ASY_EINVAL if a string field holds a NUL byte
   (PROTOCOL 4; frame->nul_field names it, e.g. "hello.agent_id"). Call asy_frame_release() after
   either. Size limits are the caller's to check before decoding. */
int asy_frame_decode(asy_frame_t *frame, const uint8_t *data, size_t size);

/* Frees what a decoded frame borrows from; the frame is zeroed. Safe to call twice. */
void asy_frame_release(asy_frame_t *frame);

/* Self-test entry points live in tests/test_codec.c. */

#endif
