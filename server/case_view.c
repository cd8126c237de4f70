/*  case_view.c: one case_state row as the monitor sees it. See case_view.h.  */
#include "case_view.h"

#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* date_part is float8, exact here (checked against extract's numeric over 2M random instants
   2000-2040 with microseconds) and half the cost: 7 per row of every batch's RETURNING */
#define S_MICROS(column) "(date_part('epoch', " column ") * 1000000)::int8"
/* the microseconds that open a case_state version (migration 009: 8 bytes big-endian) */
#define S_VER_MICROS(column) "('x' || encode(substr(" column ", 1, 8), 'hex'))::bit(64)::int8"

// clang-format off
const char ASY_CASE_VIEW_COLUMNS[] =
    "case_id, site_id, event_count, service, referral_source, "
    S_MICROS("referral_received_at") ", "
    S_MICROS("first_contact_at") ", "
    S_MICROS("initial_meeting_at") ", "
    S_MICROS("declined_at") ", "
    S_MICROS("closed_at") ", "
    "eligible, " S_VER_MICROS("eligible_version") ", "
    "qualifying, " S_VER_MICROS("qualifying_version") ", "
    S_MICROS("qualifying_started_at") ", "
    "legal_status, left_before_goals, equality_optout, ethnicity_ons, nhs_ethnic, sex, gender, "
    "age_band, disability, religion, sexual_orientation, person_key, referral_reasons";
// clang-format on

enum {
    S_CASE_ID,
    S_SITE_ID,
    S_VERSION,
    S_SERVICE,
    S_SOURCE,
    S_RECEIVED,
    S_CONTACTED,
    S_MET,
    S_DECLINED,
    S_CLOSED,
    S_ELIGIBLE,
    S_ELIGIBLE_VER,
    S_QUALIFYING,
    S_QUALIFYING_VER,
    S_Q_START,
    S_LEGAL_STATUS,
    S_LEFT_BEFORE_GOALS,
    S_OPTOUT,
    S_ATTR_FIRST,
    S_PERSON_KEY = S_ATTR_FIRST + ASY_ATTR_COUNT,
    S_REASONS,
    S_COLUMNS
};

static bool s_int64(const char *text, int64_t *out)
{
    if (!text) {
        *out = 0;
        return true;
    }
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = value;
    return true;
}

static bool s_int(const char *text, int *out)
{
    int64_t value;
    if (!s_int64(text, &value) || value < INT32_MIN || value > INT32_MAX)
        return false;
    *out = (int)value;
    return true;
}

/* The London date of a microsecond column; ASY_NO_DATE for NULL. */
static bool s_date(const char *text, asy_date_t *out)
{
    int64_t micros;
    if (!s_int64(text, &micros))
        return false;
    *out = text ? asy_london_date(micros) : ASY_NO_DATE;
    return true;
}

static bool s_true(const char *text)
{
    return text && text[0] == 't';
}

static bool s_copy(char *out, size_t size, const char *text)
{
    size_t length = text ? strlen(text) : 0;
    if (length >= size)
        return false;
    memcpy(out, text ? text : "", length + 1);
    return true;
}

int asy_case_view_parse(int columns, const char *const *v, asy_case_view_t *out)
{
    memset(out, 0, sizeof *out);
    if (columns != S_COLUMNS || !v[S_CASE_ID])
        return ASY_EINVAL;
    int eligible = -1, legal_status = 0, reasons = 0;
    bool ok = s_copy(out->case_id, sizeof out->case_id, v[S_CASE_ID]) &&
              s_copy(out->site_id, sizeof out->site_id, v[S_SITE_ID]) &&
              s_copy(out->person_key, sizeof out->person_key, v[S_PERSON_KEY]) &&
              s_int64(v[S_VERSION], &out->version) && s_int(v[S_SERVICE], &out->service) &&
              s_int(v[S_SOURCE], &out->source) && s_int(v[S_REASONS], &reasons) &&
              s_date(v[S_RECEIVED], &out->received) &&
              s_date(v[S_CONTACTED], &out->contacted) && s_date(v[S_MET], &out->met) &&
              s_date(v[S_DECLINED], &out->declined) && s_date(v[S_CLOSED], &out->closed) &&
              (!v[S_ELIGIBLE] || s_int(v[S_ELIGIBLE], &eligible)) &&
              s_int(v[S_LEGAL_STATUS], &legal_status) && s_date(v[S_Q_START], &out->q_start);
    out->decided = ASY_NO_DATE;
    if (ok && eligible >= 0)
        ok = s_date(v[S_ELIGIBLE_VER], &out->decided);
    /* An episode: from the first qualifying status (case_fold.c) to the latest status
       change, if that one does not qualify (.ended, or .changed to informal), else open. One
       episode per case: a readmission within the same case spans the gap. */
    bool qualifying = s_true(v[S_QUALIFYING]);
    out->q_end = ASY_NO_DATE;
    if (ok && out->q_start != ASY_NO_DATE && !qualifying)
        ok = s_date(v[S_QUALIFYING_VER], &out->q_end);
    out->reasons = (uint32_t)reasons;
    out->left_before_goals = s_true(v[S_LEFT_BEFORE_GOALS]);
    bool optout = s_true(v[S_OPTOUT]);
    for (int a = 0; ok && a < ASY_ATTR_COUNT; a++) {
        ok = s_int(v[S_ATTR_FIRST + a], &out->attr[a]);
        if (optout)
            out->attr[a] = 0;
    }
    return ok ? 0 : ASY_EINVAL;
}

const char ASY_OUTCOME_VIEW_COLUMNS[] =
    "case_id, area, edition, first_score, last_score, readings, first_ver, last_ver";

int asy_outcome_view_parse(int columns, const char *const *v, asy_outcome_view_t *out)
{
    memset(out, 0, sizeof *out);
    if (columns != 8 || !v[0] || !v[6] || !v[7] || strlen(v[7]) < 20)
        return ASY_EINVAL;
    char micros[21];
    memcpy(micros, v[7], 20);
    micros[20] = '\0';
    bool ok = s_copy(out->case_id, sizeof out->case_id, v[0]) && s_int(v[1], &out->area) &&
              s_int(v[2], &out->edition) && s_int(v[3], &out->first_score) &&
              s_int(v[4], &out->last_score) && s_int64(v[5], &out->readings) &&
              s_copy(out->first_ver, sizeof out->first_ver, v[6]) &&
              s_copy(out->last_ver, sizeof out->last_ver, v[7]) && s_date(micros, &out->last_date);
    return ok ? 0 : ASY_EINVAL;
}
