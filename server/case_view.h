/*  case_view.h: what the monitor needs of one case_state row, decoded once.

    The same select list serves the ingest (RETURNING of the case_state merge, so each
    committed batch hands the monitor the final rows of the cases it touched) and the monitor's
    rebuild at start (SELECT ... FROM case_state). Dates are Europe/London calendar dates
    (asy_date_t), ASY_NO_DATE when absent.  */
#ifndef ASY_CASE_VIEW_H_INCLUDED
#define ASY_CASE_VIEW_H_INCLUDED

#include "asy.h"
#include "calendar.h"

#define ASY_NO_DATE INT32_MIN

/* An event's version text, as outcome_state keeps it: 20-digit zero-padded occurred_at
   microseconds (negative clamps to 0) followed by the event_id in lowercase; versions compare
   bytewise. case_state keeps the same order in 24 bytes (migration 009, case_fold.c). */
#define ASY_CASE_VERSION_SIZE (20 + ASY_UUID_TEXT + 1)

/* The select list, in the column order asy_case_view_parse() reads. */
extern const char ASY_CASE_VIEW_COLUMNS[];

/* Equality attributes, in this order in asy_case_view_t.attr. */
typedef enum {
    ASY_ATTR_ETHNICITY_ONS,
    ASY_ATTR_NHS_ETHNIC,
    ASY_ATTR_SEX,
    ASY_ATTR_GENDER,
    ASY_ATTR_AGE_BAND,
    ASY_ATTR_DISABILITY,
    ASY_ATTR_RELIGION,
    ASY_ATTR_SEXUAL_ORIENTATION,
    ASY_ATTR_COUNT
} asy_attr_t;

typedef struct {
    char case_id[ASY_PSEUDONYM_HEX + 1];
    char site_id[ASY_ID_MAX + 1];
    char person_key[ASY_PSEUDONYM_HEX + 1]; /* "" if not recorded: the case is its own person */
    int64_t version;           /* case_state.event_count: grows with every committed event */
    int service;               /* ServiceType, 0 not recorded */
    int source;                /* ReferralSource, 0 not recorded */
    uint32_t reasons;          /* bit r for each ReferralReason r given (0: none recorded) */
    asy_date_t received;       /* referral received */
    asy_date_t contacted;      /* first contact.made */
    asy_date_t met;            /* initial meeting */
    asy_date_t declined;
    asy_date_t closed;
    asy_date_t decided;        /* eligibility decision (the event that set `eligible`) */
    asy_date_t q_start;        /* qualifying episode, ASY_NO_DATE if none */
    asy_date_t q_end;          /* ASY_NO_DATE while it runs */
    bool left_before_goals;
    int attr[ASY_ATTR_COUNT];  /* enum values; all 0 when the person opted out */
} asy_case_view_t;

/* One row of outcome_state (migration 004): a case's Recovery Star readings in one area and
   edition. readings grows with every reading, so it orders versions of the row. */
typedef struct {
    char case_id[ASY_PSEUDONYM_HEX + 1];
    int area;
    int edition;
    int first_score;
    int last_score;
    int64_t readings;
    asy_date_t last_date; /* of the latest reading */
    char first_ver[ASY_CASE_VERSION_SIZE]; /* the readings' versions: they order the readings */
    char last_ver[ASY_CASE_VERSION_SIZE];  /* of two cases of one person (M12) */
} asy_outcome_view_t;

/* The select list of an outcome_state row, in the order asy_outcome_view_parse() reads. */
extern const char ASY_OUTCOME_VIEW_COLUMNS[];

int asy_outcome_view_parse(int columns, const char *const *values, asy_outcome_view_t *out);

/* Fills *out from one row of ASY_CASE_VIEW_COLUMNS (text values, NULL for SQL NULL).
   Returns 0 or ASY_EINVAL (wrong column count, a malformed number, an over-long id). */
int asy_case_view_parse(int columns, const char *const *values, asy_case_view_t *out);

#endif
