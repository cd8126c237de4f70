/*  codec_ids.c: the names of event kinds and reason codes; identifiers (UUIDs, agent and site
    ids, pseudonyms) and ZeroMQ endpoints, checked and made (see codec.h).  */
#include "codec_private.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ---------------------------------------------------------------------------------------------
   Names. */

/* Index = kind - ASY_KIND_FIRST. The dotted name reads the body field's first word group
   (person, referral_out, unmet_need ...) as the noun. */
static const char *const s_kind_names[][2] = {
    {"person.profile_recorded", "person_profile_recorded"},
    {"person.profile_updated", "person_profile_updated"},
    {"person.equality_optout", "person_equality_optout"},
    {"qualifying.started", "qualifying_started"},
    {"qualifying.changed", "qualifying_changed"},
    {"qualifying.ended", "qualifying_ended"},
    {"referral.received", "referral_received"},
    {"referral.eligibility_decided", "referral_eligibility_decided"},
    {"referral.declined", "referral_declined"},
    {"waitlist.joined", "waitlist_joined"},
    {"waitlist.left", "waitlist_left"},
    {"contact.attempted", "contact_attempted"},
    {"contact.made", "contact_made"},
    {"meeting.initial_held", "meeting_initial_held"},
    {"plan.agreed", "plan_agreed"},
    {"plan.reviewed", "plan_reviewed"},
    {"issue.recorded", "issue_recorded"},
    {"meeting.attended", "meeting_attended"},
    {"activity.logged", "activity_logged"},
    {"records.access_requested", "records_access_requested"},
    {"outcome.recorded", "outcome_recorded"},
    {"feedback.received", "feedback_received"},
    {"unmet_need.recorded", "unmet_need_recorded"},
    {"referral_out.sent", "referral_out_sent"},
    {"case.closed", "case_closed"},
    {"record.viewed", "record_viewed"},
    {"record.exported", "record_exported"},
    {"record.erased", "record_erased"},
};
_Static_assert(sizeof s_kind_names / sizeof s_kind_names[0] == ASY_KIND_LAST - ASY_KIND_FIRST + 1,
               "one name per kind");

const char *asy_kind_name(int kind)
{
    if (kind < ASY_KIND_FIRST || kind > ASY_KIND_LAST)
        return NULL;
    return s_kind_names[kind - ASY_KIND_FIRST][0];
}

/* The body field name of a kind ("referral_received"). */
const char *asy_kind_field(int kind)
{
    if (kind < ASY_KIND_FIRST || kind > ASY_KIND_LAST)
        return "body";
    return s_kind_names[kind - ASY_KIND_FIRST][1];
}

int asy_kind_from_name(const char *name)
{
    if (!name)
        return ASY_KIND_NONE;
    for (int kind = ASY_KIND_FIRST; kind <= ASY_KIND_LAST; kind++)
        if (strcmp(name, s_kind_names[kind - ASY_KIND_FIRST][0]) == 0 ||
            strcmp(name, s_kind_names[kind - ASY_KIND_FIRST][1]) == 0)
            return kind;
    return ASY_KIND_NONE;
}

const char *asy_code_name(int code)
{
    switch (code) {
    case ASY_CODE_NONE:
        return "NONE";
    case ASY_CODE_MALFORMED_FRAME:
        return "MALFORMED_FRAME";
    case ASY_CODE_VERSION:
        return "VERSION";
    case ASY_CODE_FRAME_TOO_LARGE:
        return "FRAME_TOO_LARGE";
    case ASY_CODE_BATCH_TOO_LARGE:
        return "BATCH_TOO_LARGE";
    case ASY_CODE_SEQ_GAP:
        return "SEQ_GAP";
    case ASY_CODE_NOT_WELCOMED:
        return "NOT_WELCOMED";
    case ASY_CODE_RETRY_LATER:
        return "RETRY_LATER";
    case ASY_CODE_WRONG_AGENT:
        return "WRONG_AGENT";
    case ASY_CODE_SEQ_CONFLICT:
        return "SEQ_CONFLICT";
    case ASY_CODE_EVENT_UNDECODABLE:
        return "EVENT_UNDECODABLE";
    case ASY_CODE_EVENT_MISSING_FIELD:
        return "EVENT_MISSING_FIELD";
    case ASY_CODE_EVENT_INVALID_FIELD:
        return "EVENT_INVALID_FIELD";
    case ASY_CODE_EVENT_UNKNOWN_KIND:
        return "EVENT_UNKNOWN_KIND";
    case ASY_CODE_EVENT_SEQ_MISMATCH:
        return "EVENT_SEQ_MISMATCH";
    case ASY_CODE_EVENT_WRONG_SITE:
        return "EVENT_WRONG_SITE";
    case ASY_CODE_EVENT_SCHEMA_TOO_NEW:
        return "EVENT_SCHEMA_TOO_NEW";
    case ASY_CODE_EVENT_TOO_LARGE:
        return "EVENT_TOO_LARGE";
    default:
        return "UNKNOWN";
    }
}

/* ---------------------------------------------------------------------------------------------
   Identifiers. */

void asy_uuid_format(const uint8_t bytes[16], char out[ASY_UUID_TEXT + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t at = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[at++] = '-';
        out[at++] = hex[bytes[i] >> 4];
        out[at++] = hex[bytes[i] & 15];
    }
    out[at] = '\0';
}

void asy_uuid_v7(char out[ASY_UUID_TEXT + 1])
{
    if (sodium_init() < 0) {
        // libsodium cannot work without a random source; there is nothing safer to do
        abort();
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    // RFC 9562 method 3: the 12 rand_a bits carry the sub-millisecond fraction, so ids made
    // in one process sort by time to about 250 ns
    uint32_t fraction = (uint32_t)(((uint64_t)now.tv_nsec % 1000000u) * 4096u / 1000000u);
    uint8_t bytes[16];
    randombytes_buf(bytes + 8, 8);
    for (int i = 0; i < 6; i++)
        bytes[i] = (uint8_t)(ms >> (40 - 8 * i));
    bytes[6] = (uint8_t)(0x70 | (fraction >> 8));
    bytes[7] = (uint8_t)(fraction & 0xff);
    bytes[8] = (uint8_t)(0x80 | (bytes[8] & 0x3f));
    asy_uuid_format(bytes, out);
}

static bool s_is_hex(char c, bool lower_only)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (!lower_only && c >= 'A' && c <= 'F');
}

static int s_hex_value(char c)
{
    return c <= '9' ? c - '0' : c <= 'F' ? c - 'A' + 10 : c - 'a' + 10;
}

bool asy_uuid_parse(const char *text, uint8_t out[16])
{
    if (!text)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < ASY_UUID_TEXT; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return false;
            continue;
        }
        /* text[i + 1] is read only after text[i] proved a digit, never past the end */
        if (!s_is_hex(text[i], false) || !s_is_hex(text[i + 1], false))
            return false;
        out[n++] = (uint8_t)(s_hex_value(text[i]) << 4 | s_hex_value(text[i + 1]));
        i++;
    }
    return text[ASY_UUID_TEXT] == '\0';
}

bool asy_uuid_valid(const char *text)
{
    uint8_t ignored[16];
    return asy_uuid_parse(text, ignored);
}

bool asy_endpoint_check(const char *text, bool bind, char *why, size_t why_size)
{
    char ignored[8];
    if (!why) {
        why = ignored;
        why_size = sizeof ignored;
    }
    if (!text || (strncmp(text, "tcp://", 6) != 0 && strncmp(text, "ipc://", 6) != 0)) {
        snprintf(why, why_size, "must start with tcp:// or ipc://");
        return false;
    }
    if (strncmp(text, "ipc://", 6) == 0) {
        if (!text[6])
            snprintf(why, why_size, "needs a path after ipc://");
        return text[6] != '\0';
    }
    /* tcp://[SOURCE;]HOST:PORT: libzmq would take a port of 99999 modulo 65536, or 5570x
       as 5570, and a missing host as a lookup that fails on every attempt */
    const char *source_end = strrchr(text, ';');
    const char *address = source_end ? source_end + 1 : text + 6;
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address) {
        snprintf(why, why_size, "needs a host and a port (tcp://HOST:PORT)");
        return false;
    }
    const char *port = colon + 1;
    if (bind && (strcmp(port, "*") == 0 || strcmp(port, "0") == 0))
        return true;
    size_t digits = strspn(port, "0123456789");
    long number = digits > 0 && digits <= 5 && !port[digits] ? strtol(port, NULL, 10) : -1;
    if (number < 1 || number > 65535) {
        snprintf(why, why_size, "has port \"%s\", not a number 1..65535%s", port,
                 bind ? " (or * for any free port)" : "");
        return false;
    }
    return true;
}

bool asy_ipc_in_use(const char *text)
{
    if (!text || strncmp(text, "ipc://", 6) != 0 || text[6] == '@' || text[6] == '\0')
        return false;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(text + 6) >= sizeof address.sun_path)
        return false; /* libzmq refuses it itself */
    memcpy(address.sun_path, text + 6, strlen(text + 6) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool in_use = connect(fd, (struct sockaddr *)&address, sizeof address) == 0;
    close(fd);
    return in_use;
}

bool asy_ipc_bind_refused(const char *endpoint, char *error, size_t error_size)
{
    if (!asy_ipc_in_use(endpoint))
        return false;
    snprintf(error, error_size, "cannot bind %s: another process is listening there", endpoint);
    return true;
}

void asy_bind_failed(const char *endpoint, char *error, size_t error_size)
{
    int code = zmq_errno();
    snprintf(error, error_size, "cannot bind %s: %s%s", endpoint, zmq_strerror(code),
             code == ENODEV && strncmp(endpoint, "tcp://", 6) == 0
                 ? " (a bind takes an IP address, an interface name or *, not a host name)"
                 : "");
}

bool asy_endpoint_valid(const char *text)
{
    return asy_endpoint_check(text, false, NULL, 0);
}

bool asy_id_valid(const char *text)
{
    if (!text)
        return false;
    /* a loop, not strspn: glibc builds strspn's table of 65 characters at every call, and
       the broker checks two ids per event */
    size_t length = 0;
    for (; text[length]; length++) {
        char c = text[length];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || length == ASY_ID_MAX)
            return false;
    }
    return length >= 1;
}

bool asy_pseudonym_valid(const char *text)
{
    if (!text || strlen(text) != ASY_PSEUDONYM_HEX)
        return false;
    for (int i = 0; i < ASY_PSEUDONYM_HEX; i++)
        if (!s_is_hex(text[i], true))
            return false;
    return true;
}
