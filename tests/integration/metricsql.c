/*  metricsql.c: the monitor's figures recomputed in SQL. See metricsql.h.

    Written from the metric specification alone (not from the monitor's code), so that the two
    agreeing means something. The steps, each one statement or a few:
      mq_base    one row per case_state row: Europe/London dates, attributes after the
                 equality opt-out, the episode (from the first qualifying status, case_fold.c)
      mq_cal     every day from 10 days before the earliest referral (or today) to 30 days after
                 the latest (or today): working flag from the C calendar, ord = working days <= day
      mq_case    mq_base + SLA deadlines (the working day whose ord is day 0's ord + n) + M3 wait
      mq_period  the months, financial quarters and financial years of the window
      mq_member  (metric, family, period, case, numerator flag): who counts where
      mq_counted members x scopes; for the metrics that count people (M2, M6) one row per
                 person (person_key, or the case itself without one): the latest of their
                 member cases there (received, then case_id), numerator if any of them is;
                 M12 (people) straight from outcome_state, a person's readings joined
      then one GROUP BY over counted rows x breakdowns, plus the always-present totals.  */
#include "metricsql.h"

#include "codec.h"
#include "monitor_msg.h"
#include "stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LEGAL_MAX 1024 /* legal statuses and enum values are looked up in 0..S_LEGAL_MAX-1 */
#define S_CAL_BEFORE 10
#define S_CAL_AFTER 30

/* A growable text buffer; data is NULL after an allocation failure. */
typedef struct {
    char *data;
    size_t length;
    size_t capacity;
} s_text_t;

static void s_text_add(s_text_t *text, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_text_add(s_text_t *text, const char *format, ...)
{
    if (text->capacity > 0 && !text->data)
        return;
    for (;;) {
        size_t room = text->capacity - text->length;
        va_list args;
        va_start(args, format);
        int n = vsnprintf(text->data ? text->data + text->length : NULL, room, format, args);
        va_end(args);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            text->length += (size_t)n;
            return;
        }
        size_t capacity = (text->capacity + (size_t)n + 1) * 2;
        char *data = realloc(text->data, capacity);
        if (!data) {
            free(text->data);
            text->data = NULL;
            text->capacity = 1;
            return;
        }
        text->data = data;
        text->capacity = capacity;
    }
}

/* Runs one statement with text parameters; returns 0 or ASY_EDB (message on stderr). If
   result is not NULL, a PGRES_TUPLES_OK result is handed over (caller clears). */
static int s_run(PGconn *pg, const char *step, const char *sql, int count,
                 const char *const *params, PGresult **result)
{
    PGresult *res = PQexecParams(pg, sql, count, NULL, params, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        fprintf(stderr, "metricsql: %s: %s", step, PQresultErrorMessage(res));
        PQclear(res);
        return ASY_EDB;
    }
    if (result)
        *result = res;
    else
        PQclear(res);
    return 0;
}

static const char *const s_drop_sql =
    "DROP TABLE IF EXISTS mq_base, mq_cal, mq_case, mq_period, mq_member, mq_counted, "
    "mq_breakdown, mq_enum, mq_scope, mq_family";

/* Per case: London dates, the dates held in *_version columns (migration 009: 8 bytes of
   microseconds, then the event id), attributes after the opt-out. The episode as
   case_view.c reads it: from qualifying_started_at to the date of qualifying_version if the
   latest status does not qualify. */
static const char *const s_base_sql =
    "CREATE TEMP TABLE mq_base AS SELECT case_id, site_id,"
    " CASE WHEN coalesce(person_key, '') = '' THEN 'c' || case_id ELSE 'p' || person_key END"
    "  AS person,"
    " (referral_received_at AT TIME ZONE 'Europe/London')::date AS received,"
    " (first_contact_at AT TIME ZONE 'Europe/London')::date AS contacted,"
    " (initial_meeting_at AT TIME ZONE 'Europe/London')::date AS met,"
    " (declined_at AT TIME ZONE 'Europe/London')::date AS declined,"
    " (closed_at AT TIME ZONE 'Europe/London')::date AS closed,"
    " closed_at IS NOT NULL AS has_closed, declined_at IS NOT NULL AS has_declined,"
    " initial_meeting_at IS NOT NULL AS has_met,"
    " CASE WHEN eligible IS NOT NULL AND octet_length(eligible_version) = 24 THEN"
    "  ((timestamptz 'epoch' + ('x' || encode(substr(eligible_version, 1, 8), "
    "'hex'))::bit(64)::bigint"
    "    * interval '1 microsecond')"
    "   AT TIME ZONE 'Europe/London')::date END AS eligibility_date,"
    " (qualifying_started_at AT TIME ZONE 'Europe/London')::date AS q_start,"
    " qualifying_started_at IS NOT NULL AS episode,"
    " CASE WHEN qualifying IS TRUE THEN NULL WHEN octet_length(qualifying_version) = 24 THEN"
    "  ((timestamptz 'epoch' +"
    "    ('x' || encode(substr(qualifying_version, 1, 8), 'hex'))::bit(64)::bigint"
    "    * interval '1 microsecond')"
    "   AT TIME ZONE 'Europe/London')::date END AS q_end,"
    " left_before_goals IS TRUE AS left_before_goals,"
    " coalesce(service, 0) AS service, coalesce(referral_source, 0) AS source,"
    " coalesce(referral_reasons, 0) AS reasons,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(ethnicity_ons, 0) END AS ons,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(nhs_ethnic, 0) END AS nhs,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(sex, 0) END AS sex,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(gender, 0) END AS gender,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(age_band, 0) END AS age,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(disability, 0) END AS disability,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(religion, 0) END AS religion,"
    " CASE WHEN equality_optout THEN 0 ELSE coalesce(sexual_orientation, 0) END AS orientation"
    " FROM case_state";

/* $1 = first day, $2 = one '1' (working) or '0' per day from $1, $3 = number of days. */
static const char *const s_cal_sql =
    "CREATE TEMP TABLE mq_cal AS SELECT day, working,"
    " sum(working::int) OVER (ORDER BY day) AS ord FROM"
    " (SELECT $1::date + i AS day, substr($2, i + 1, 1) = '1' AS working"
    "  FROM generate_series(0, $3::int - 1) AS i) AS days";

/* Day 0 of a referral has ord = (working days before received) + 1; day n has ord + n.
   $1 = today, $2 / $3 = contact / meeting working days. */
static const char *const s_case_sql =
    "CREATE TEMP TABLE mq_case AS SELECT b.*,"
    " CASE WHEN b.has_declined THEN b.declined ELSE b.eligibility_date END AS decision,"
    " (SELECT w.day FROM mq_cal w WHERE w.working"
    "   AND w.ord = r.ord - r.working::int + 1 + $2::int) AS contact_deadline,"
    " (SELECT w.day FROM mq_cal w WHERE w.working"
    "   AND w.ord = r.ord - r.working::int + 1 + $3::int) AS meeting_deadline,"
    " CASE WHEN b.received <= $1::date THEN greatest(0, t.ord - (r.ord - r.working::int + 1))"
    "  END AS wait,"
    " CASE WHEN b.ons BETWEEN 1 AND 5 THEN 'ASIAN' WHEN b.ons BETWEEN 6 AND 8 THEN 'BLACK'"
    "  WHEN b.ons BETWEEN 9 AND 12 THEN 'MIXED' WHEN b.ons BETWEEN 13 AND 17 THEN 'WHITE'"
    "  WHEN b.ons BETWEEN 18 AND 19 THEN 'OTHER' WHEN b.ons = 20 THEN 'NOT_STATED'"
    "  WHEN b.ons = 21 THEN 'NOT_KNOWN'"
    "  WHEN b.nhs BETWEEN 1 AND 3 THEN 'WHITE' WHEN b.nhs BETWEEN 4 AND 7 THEN 'MIXED'"
    "  WHEN b.nhs BETWEEN 8 AND 11 THEN 'ASIAN' WHEN b.nhs BETWEEN 12 AND 14 THEN 'BLACK'"
    "  WHEN b.nhs BETWEEN 15 AND 16 THEN 'OTHER' WHEN b.nhs = 17 THEN 'NOT_STATED'"
    "  WHEN b.nhs = 18 THEN 'NOT_KNOWN' ELSE 'NOT_RECORDED' END AS ethnic_group,"
    " b.ons BETWEEN 1 AND 19 OR b.nhs BETWEEN 1 AND 16 AS ethnicity_stated,"
    /* the NHS category as recorded, else from the ONS one (domain brief (b)): each ONS group
       to its own NHS category (Bangladeshi K, Chinese R, Indian H, Pakistani J, other Asian L,
       African N, Caribbean M, other Black P, White and Asian F, White and Black African E,
       White and Black Caribbean D, other Mixed G, British A, Irish B), Gypsy or Irish
       Traveller, Roma and other White C, Arab and any other S, not stated Z, not known 99 */
    " CASE WHEN b.nhs BETWEEN 1 AND 18 THEN b.nhs"
    "  ELSE coalesce((ARRAY[10, 15, 8, 9, 11, 13, 12, 14, 6, 5, 4, 7, 1, 2, 3, 3, 3, 16, 16,"
    "   17, 18])[b.ons], 0) END AS nhs_category"
    " FROM mq_base b LEFT JOIN mq_cal r ON r.day = b.received"
    " CROSS JOIN (SELECT ord FROM mq_cal WHERE day = $1::date) AS t";

/* $1 = today, $2 = history_years. Quarter of month m: (m + 8) % 12 / 3 + 1 (April = Q1). */
static const char *const s_period_sql =
    "CREATE TEMP TABLE mq_period AS"
    " WITH w AS (SELECT make_date(extract(year FROM $1::date)::int"
    "   - CASE WHEN extract(month FROM $1::date) >= 4 THEN 0 ELSE 1 END - ($2::int - 1), 4, 1)"
    "   AS start),"
    " p AS (SELECT d::date AS s, 'month' AS kind FROM w,"
    "   generate_series(w.start::timestamp, $1::date::timestamp, interval '1 month') AS d"
    "  UNION ALL SELECT d::date, 'quarter' FROM w,"
    "   generate_series(w.start::timestamp, $1::date::timestamp, interval '3 months') AS d"
    "  UNION ALL SELECT d::date, 'year' FROM w,"
    "   generate_series(w.start::timestamp, $1::date::timestamp, interval '1 year') AS d),"
    " f AS (SELECT s, kind, extract(month FROM s)::int AS m,"
    "   extract(year FROM s)::int - CASE WHEN extract(month FROM s) >= 4 THEN 0 ELSE 1 END AS fy"
    "   FROM p)"
    " SELECT CASE kind WHEN 'month' THEN to_char(s, 'YYYY-MM')"
    "   ELSE fy::text || '-' || lpad(((fy + 1) % 100)::text, 2, '0')"
    "    || CASE kind WHEN 'quarter' THEN '-Q' || ((m + 8) % 12 / 3 + 1)::text ELSE '' END"
    "   END AS name, s,"
    "  (s + CASE kind WHEN 'month' THEN interval '1 month' WHEN 'quarter' THEN interval '3 months'"
    "   ELSE interval '1 year' END - interval '1 day')::date AS e"
    " FROM f";

/* Membership per metric (spec "Membership per period"). $1 = today. */
static const char *const s_member_sql =
    "CREATE TEMP TABLE mq_member AS"
    " SELECT 'M1' AS metric, '' AS family, p.name AS period, c.case_id, false AS num"
    "  FROM mq_case c JOIN mq_period p ON c.received BETWEEN p.s AND p.e"
    " UNION ALL SELECT 'M13', '', p.name, c.case_id, c.ethnicity_stated"
    "  FROM mq_case c JOIN mq_period p ON c.received BETWEEN p.s AND p.e"
    " UNION ALL SELECT 'M2', '', p.name, c.case_id, false"
    "  FROM mq_case c JOIN mq_period p ON c.received <= p.e"
    "   AND NOT coalesce(c.closed < p.s, false) AND NOT coalesce(c.declined < p.s, false)"
    " UNION ALL SELECT 'M3', '', 'now', c.case_id, false FROM mq_case c"
    "  WHERE c.received <= $1::date AND NOT c.has_closed AND NOT c.has_declined AND NOT c.has_met"
    " UNION ALL SELECT 'M4', '', p.name, c.case_id, coalesce(c.contacted <= c.contact_deadline,"
    "   false) FROM mq_case c JOIN mq_period p ON c.contact_deadline BETWEEN p.s AND p.e"
    "  WHERE c.contact_deadline < $1::date"
    "   AND NOT coalesce(c.declined <= c.contact_deadline, false)"
    " UNION ALL SELECT 'M5', '', p.name, c.case_id, coalesce(c.met <= c.meeting_deadline, false)"
    "  FROM mq_case c JOIN mq_period p ON c.meeting_deadline BETWEEN p.s AND p.e"
    "  WHERE c.meeting_deadline < $1::date"
    "   AND NOT coalesce(c.declined <= c.meeting_deadline, false)"
    " UNION ALL SELECT 'M6', '', p.name, c.case_id, coalesce(c.contacted <= p.e, false)"
    "  FROM mq_case c JOIN mq_period p ON c.episode AND c.q_start <= p.e"
    "   AND (c.q_end IS NULL OR c.q_end >= p.s)"
    " UNION ALL SELECT 'M11', 'declined.', p.name, c.case_id,"
    "   coalesce(c.declined BETWEEN p.s AND p.e, false)"
    "  FROM mq_case c JOIN mq_period p ON c.decision BETWEEN p.s AND p.e"
    " UNION ALL SELECT 'M11', 'left_before_goals.', p.name, c.case_id, c.left_before_goals"
    "  FROM mq_case c JOIN mq_period p ON c.closed BETWEEN p.s AND p.e";

/* Members per scope; people counted once (see the top of the file). M12 is per person from
   the start: in each scope, a person's readings of one area and edition are one series over
   their cases there (first reading by first_ver, latest by last_ver, readings summed); the
   person counts in the period of the latest reading of a series read twice or more, in the
   groups of their latest case holding such a series, improved if any series rose a point. */
static const char *const s_counted_sql =
    "CREATE TEMP TABLE mq_counted AS"
    " WITH s AS (SELECT sc.scope, m.metric, m.family, m.period, m.case_id, m.num, c.person,"
    "  c.received, c.q_start FROM mq_member m JOIN mq_case c USING (case_id)"
    "  CROSS JOIN LATERAL (VALUES ('all'), ('site/' || c.site_id)) AS sc(scope)"
    "  WHERE sc.scope IS NOT NULL),"
    " r AS (SELECT sc.scope, c.person, c.received, o.case_id, o.area, o.edition, o.first_ver,"
    "  o.first_score, o.last_ver, o.last_score, o.readings"
    "  FROM outcome_state o JOIN mq_case c USING (case_id)"
    "  CROSS JOIN LATERAL (VALUES ('all'), ('site/' || c.site_id)) AS sc(scope)"
    "  WHERE sc.scope IS NOT NULL),"
    " series AS (SELECT scope, person, area, edition,"
    "  (array_agg(first_score ORDER BY first_ver))[1] AS first_score,"
    "  (array_agg(last_score ORDER BY last_ver DESC))[1] AS last_score, max(last_ver) AS last_ver"
    "  FROM r GROUP BY scope, person, area, edition HAVING sum(readings) >= 2),"
    " who AS (SELECT DISTINCT ON (r.scope, r.person) r.scope, r.person, r.case_id"
    "  FROM r JOIN series USING (scope, person, area, edition)"
    "  ORDER BY r.scope, r.person, r.received DESC NULLS LAST, r.case_id COLLATE \"C\" DESC)"
    " SELECT scope, metric, family, period, case_id, num FROM s"
    "  WHERE metric NOT IN ('M2', 'M6')"
    /* M6: reached also when an IMHA case of the person (any site) has its first contact from
       the start of their earliest episode counted there up to the period's end */
    " UNION ALL SELECT scope, metric, family, period, case_id, num OR (metric = 'M6' AND EXISTS"
    "  (SELECT 1 FROM mq_case i JOIN mq_period pe ON pe.name = people.period"
    "   WHERE i.person = people.person AND i.service = 1"
    "    AND i.contacted BETWEEN people.first_start AND pe.e)) FROM"
    "  (SELECT DISTINCT ON (scope, metric, family, period, person) scope, metric, family, period,"
    "    case_id, person,"
    "    bool_or(num) OVER (PARTITION BY scope, metric, family, period, person) AS num,"
    "    min(q_start) OVER (PARTITION BY scope, metric, family, period, person) AS first_start"
    "   FROM s WHERE metric IN ('M2', 'M6')"
    "   ORDER BY scope, metric, family, period, person, received DESC NULLS LAST,"
    "    case_id COLLATE \"C\" DESC) AS people"
    " UNION ALL SELECT j.scope, 'M12', '', p.name, j.case_id, j.improved FROM"
    "  (SELECT series.scope, series.person, who.case_id,"
    "    max((to_timestamp(left(series.last_ver, 20)::bigint / 1e6)"
    "     AT TIME ZONE 'Europe/London')::date) AS latest,"
    "    bool_or(series.last_score - series.first_score >= 1) AS improved"
    "   FROM series JOIN who USING (scope, person)"
    "   GROUP BY series.scope, series.person, who.case_id) AS j"
    "  JOIN mq_period p ON j.latest BETWEEN p.s AND p.e";

/* The breakdowns of each metric, the families (a metric with its name prefix: M11 has two)
   and the scopes. */
static const char *const s_breakdown_sql =
    "CREATE TEMP TABLE mq_breakdown AS SELECT m.metric, b.breakdown FROM (VALUES"
    " ('M1', 'total,source,source_group,service,ethnicity_ons,ethnic_group,nhs_ethnic,age_band,"
    "sex,gender,disability,religion,sexual_orientation,reason'),"
    " ('M2', 'total,service,ethnicity_ons,ethnic_group,age_band,sex,gender,disability'),"
    " ('M3', 'total,service,ethnic_group'),"
    " ('M4', 'total,service,ethnicity_ons,ethnic_group,age_band,sex'),"
    " ('M5', 'total,service,ethnicity_ons,ethnic_group,age_band,sex'),"
    " ('M6', 'total,ethnicity_ons,ethnic_group,nhs_ethnic,age_band,sex,gender,disability'),"
    " ('M11', 'total,ethnic_group,service'),"
    " ('M12', 'total,ethnic_group,service'),"
    " ('M13', 'total,service,ethnic_group')) AS m(metric, list),"
    " unnest(string_to_array(m.list, ',')) AS b(breakdown)";
static const char *const s_family_sql =
    "CREATE TEMP TABLE mq_family AS SELECT * FROM (VALUES ('M1', ''), ('M2', ''), ('M3', ''),"
    " ('M4', ''), ('M5', ''), ('M6', ''), ('M11', 'declined.'), ('M11', 'left_before_goals.'),"
    " ('M12', ''), ('M13', '')) AS f(metric, family)";
static const char *const s_scope_sql =
    "CREATE TEMP TABLE mq_scope AS SELECT 'all' AS scope"
    " UNION SELECT DISTINCT 'site/' || site_id FROM mq_base WHERE site_id IS NOT NULL";

/* Every cell: members x their scopes x their metric's breakdowns, grouped; groups named from
   mq_enum (a value the enum does not have counts as its not-recorded value 0); plus the total
   cells nobody counts in. */
static const char *const s_cells_sql =
    "WITH cells AS (SELECT m.scope, m.metric, m.family, m.period, u.breakdown,"
    "  coalesce(u.fixed, e.name, z.name) AS grp, count(*) AS n, count(*) FILTER (WHERE m.num) AS k,"
    "  CASE WHEN m.metric = 'M3' THEN array_agg(c.wait ORDER BY c.wait)::text END AS waits"
    " FROM mq_counted m JOIN mq_case c USING (case_id)"
    " CROSS JOIN LATERAL (VALUES ('total', NULL, 0, 'ALL'),"
    "  ('source', 'ReferralSource', c.source, NULL),"
    /* the MHSDS groups: A1 GP (2) in A primary care (1), B1 self (4) and B2 carer (5) in B
       self (3) */
    "  ('source_group', 'ReferralSource',"
    "   CASE WHEN c.source = 2 THEN 1 WHEN c.source IN (4, 5) THEN 3 ELSE c.source END, NULL),"
    "  ('service', 'ServiceType', c.service, NULL),"
    "  ('ethnicity_ons', 'EthnicityOns2021', c.ons, NULL), ('ethnic_group', NULL, 0, "
    "c.ethnic_group),"
    "  ('nhs_ethnic', 'NhsEthnicCategory', c.nhs_category, NULL), ('age_band', 'AgeBand', c.age, NULL),"
    "  ('sex', 'Sex', c.sex, NULL), ('gender', 'Gender', c.gender, NULL),"
    "  ('disability', 'Disability', c.disability, NULL), ('religion', 'Religion', c.religion, "
    "NULL),"
    "  ('sexual_orientation', 'SexualOrientation', c.orientation, NULL)"
    /* reasons: several per referral, each ReferralReason 1-14 given (bits), else 0 */
    "  UNION ALL SELECT 'reason', 'ReferralReason', r, NULL FROM generate_series(0, 14) AS r"
    "   WHERE CASE WHEN r = 0 THEN c.reasons & 32766 = 0 ELSE c.reasons & (1 << r) <> 0 END)"
    "  AS u(breakdown, which, code, fixed)"
    " JOIN mq_breakdown bd ON bd.metric = m.metric AND bd.breakdown = u.breakdown"
    " LEFT JOIN mq_enum e ON e.which = u.which AND e.code = u.code"
    " LEFT JOIN mq_enum z ON z.which = u.which AND z.code = 0"
    " GROUP BY 1, 2, 3, 4, 5, 6),"
    " totals AS (SELECT sc.scope, f.metric, f.family, p.name AS period, 'total' AS breakdown,"
    "  'ALL' AS grp FROM mq_scope sc CROSS JOIN mq_family f"
    "  JOIN (SELECT name FROM mq_period UNION ALL SELECT 'now') AS p"
    "   ON (p.name = 'now') = (f.metric = 'M3'))"
    " SELECT t.scope || '/' || t.metric || '/' || t.period, t.family || t.breakdown, t.grp,"
    "  t.metric, coalesce(c.n, 0), coalesce(c.k, 0), c.waits"
    " FROM totals t LEFT JOIN cells c USING (scope, metric, family, period, breakdown, grp)"
    " UNION ALL SELECT scope || '/' || metric || '/' || period, family || breakdown, grp,"
    "  metric, n, k, waits FROM cells WHERE breakdown <> 'total'";

static const char *const s_enums[] = {
    "ReferralSource", "ServiceType", "EthnicityOns2021", "NhsEthnicCategory", "AgeBand", "Sex",
    "Gender",         "Disability",  "Religion",         "SexualOrientation", "ReferralReason",
};

/* mq_enum(which, code, name): every named value of the enums groups are named from. */
static int s_load_enums(PGconn *pg)
{
    s_text_t which = {0}, code = {0}, name = {0};
    s_text_add(&which, "{");
    s_text_add(&code, "{");
    s_text_add(&name, "{");
    const char *separator = "";
    for (size_t i = 0; i < sizeof s_enums / sizeof s_enums[0]; i++) {
        if (!asy_enum_value_name(s_enums[i], 0)) {
            fprintf(stderr, "metricsql: enum %s has no value 0\n", s_enums[i]);
            return ASY_EINVAL;
        }
        for (int value = 0; value < S_LEGAL_MAX; value++) {
            const char *text = asy_enum_value_name(s_enums[i], value);
            if (!text)
                continue;
            s_text_add(&which, "%s%s", separator, s_enums[i]);
            s_text_add(&code, "%s%d", separator, value);
            s_text_add(&name, "%s%s", separator, text);
            separator = ",";
        }
    }
    s_text_add(&which, "}");
    s_text_add(&code, "}");
    s_text_add(&name, "}");
    int rc = ASY_ENOMEM;
    if (which.data && code.data && name.data) {
        const char *params[3] = {which.data, code.data, name.data};
        rc = s_run(pg, "mq_enum",
                   "CREATE TEMP TABLE mq_enum AS SELECT * FROM"
                   " unnest($1::text[], $2::int[], $3::text[]) AS e(which, code, name)",
                   3, params, NULL);
    }
    free(which.data);
    free(code.data);
    free(name.data);
    return rc;
}

/* mq_base: one row per case. */
static int s_load_base(PGconn *pg)
{
    return s_run(pg, "mq_base", s_base_sql, 0, NULL, NULL);
}

/* Reads one integer column (NULL -> fallback). */
static int32_t s_int_or(const PGresult *res, int column, int32_t fallback)
{
    return PQgetisnull(res, 0, column) ? fallback
                                       : (int32_t)strtol(PQgetvalue(res, 0, column), NULL, 10);
}

/* mq_cal over [min(received, today) - 10, max(received, today) + 30] from the C calendar. */
static int s_load_calendar(PGconn *pg, int32_t today, const asy_calendar_t *cal)
{
    PGresult *res = NULL;
    int rc = s_run(pg, "received range",
                   "SELECT min(received) - date '1970-01-01', max(received) - date '1970-01-01'"
                   " FROM mq_base",
                   0, NULL, &res);
    if (rc != 0)
        return rc;
    int32_t low = s_int_or(res, 0, today), high = s_int_or(res, 1, today);
    PQclear(res);
    low = (low < today ? low : today) - S_CAL_BEFORE;
    high = (high > today ? high : today) + S_CAL_AFTER;
    if (low < asy_date_from_civil(1, 1, 1) || high > asy_date_from_civil(9999, 12, 31)) {
        fprintf(stderr, "metricsql: a referral date is outside years 1..9999\n");
        return ASY_EINVAL;
    }
    size_t days = (size_t)(high - low) + 1;
    char *flags = malloc(days + 1);
    if (!flags)
        return ASY_ENOMEM;
    for (size_t i = 0; i < days; i++)
        flags[i] = asy_calendar_is_working_day(cal, low + (int32_t)i) ? '1' : '0';
    flags[days] = '\0';
    char first[ASY_DATE_TEXT], count[24];
    asy_date_format(low, first);
    snprintf(count, sizeof count, "%zu", days);
    const char *params[3] = {first, flags, count};
    rc = s_run(pg, "mq_cal", s_cal_sql, 3, params, NULL);
    free(flags);
    if (rc == 0)
        rc = s_run(pg, "mq_cal index", "CREATE INDEX ON mq_cal (ord) WHERE working", 0, NULL, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_cal index", "CREATE UNIQUE INDEX ON mq_cal (day)", 0, NULL, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_cal analyze", "ANALYZE mq_cal", 0, NULL, NULL);
    return rc;
}

/* Builds every TEMP table up to mq_counted. */
static int s_build_tables(PGconn *pg, int32_t today, const asy_calendar_t *cal, int history_years)
{
    char today_text[ASY_DATE_TEXT], years[16], contact[16], meeting[16];
    asy_date_format(today, today_text);
    snprintf(years, sizeof years, "%d", history_years);
    snprintf(contact, sizeof contact, "%d", ASY_SLA_CONTACT_WORKING_DAYS);
    snprintf(meeting, sizeof meeting, "%d", ASY_SLA_MEETING_WORKING_DAYS);
    const char *case_params[3] = {today_text, contact, meeting};
    const char *period_params[2] = {today_text, years};
    const char *member_params[1] = {today_text};

    int rc = s_run(pg, "drop", s_drop_sql, 0, NULL, NULL);
    if (rc == 0)
        rc = s_load_enums(pg);
    if (rc == 0)
        rc = s_load_base(pg);
    if (rc == 0)
        rc = s_load_calendar(pg, today, cal);
    if (rc == 0)
        rc = s_run(pg, "mq_case", s_case_sql, 3, case_params, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_period", s_period_sql, 2, period_params, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_member", s_member_sql, 1, member_params, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_counted", s_counted_sql, 0, NULL, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_breakdown", s_breakdown_sql, 0, NULL, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_family", s_family_sql, 0, NULL, NULL);
    if (rc == 0)
        rc = s_run(pg, "mq_scope", s_scope_sql, 0, NULL, NULL);
    return rc;
}

/* Copies text into a field of size bytes; ASY_EINVAL if it does not fit. */
static int s_copy(char *field, size_t size, const char *text)
{
    size_t length = strlen(text);
    if (length >= size) {
        fprintf(stderr, "metricsql: name too long for its field: %s\n", text);
        return ASY_EINVAL;
    }
    memcpy(field, text, length + 1);
    return 0;
}

/* Median and p90 of the waits "{1,2,3}" (asy_stats_percentile, type 7). */
static int s_waits(const char *text, int64_t count, asy_expect_t *cell)
{
    cell->median = cell->p90 = NAN;
    if (count == 0)
        return 0;
    double *waits = malloc((size_t)count * sizeof *waits);
    if (!waits)
        return ASY_ENOMEM;
    const char *cursor = text ? text : "";
    int64_t n = 0;
    while (*cursor && n < count) {
        if (*cursor == '{' || *cursor == ',') {
            cursor++;
            continue;
        }
        char *end;
        long value = strtol(cursor, &end, 10);
        if (end == cursor)
            break;
        waits[n++] = (double)value;
        cursor = end;
    }
    int rc = 0;
    if (n != count) {
        fprintf(stderr, "metricsql: %lld waits expected, got \"%s\"\n", (long long)count,
                text ? text : "(null)");
        rc = ASY_EDB;
    }
    if (rc == 0)
        rc = asy_stats_percentile(waits, (size_t)n, 0.5, &cell->median);
    if (rc == 0)
        rc = asy_stats_percentile(waits, (size_t)n, 0.9, &cell->p90);
    free(waits);
    return rc;
}

/* One result row into a cell. */
static int s_cell(const PGresult *res, int row, asy_expect_t *cell)
{
    memset(cell, 0, sizeof *cell);
    int rc = s_copy(cell->topic, sizeof cell->topic, PQgetvalue(res, row, 0));
    if (rc == 0)
        rc = s_copy(cell->breakdown, sizeof cell->breakdown, PQgetvalue(res, row, 1));
    if (rc == 0)
        rc = s_copy(cell->group, sizeof cell->group, PQgetvalue(res, row, 2));
    if (rc != 0)
        return rc;
    const char *metric = PQgetvalue(res, row, 3);
    int64_t n = strtoll(PQgetvalue(res, row, 4), NULL, 10);
    int64_t k = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    if (strcmp(metric, "M1") == 0 || strcmp(metric, "M2") == 0 || strcmp(metric, "M3") == 0)
        cell->count = n;
    else {
        cell->numerator = k;
        cell->denominator = n;
    }
    if (strcmp(metric, "M3") == 0)
        return s_waits(PQgetisnull(res, row, 6) ? NULL : PQgetvalue(res, row, 6), n, cell);
    return 0;
}

static int s_compare(const void *a, const void *b)
{
    const asy_expect_t *x = a, *y = b;
    int order = strcmp(x->topic, y->topic);
    if (order == 0)
        order = strcmp(x->breakdown, y->breakdown);
    return order != 0 ? order : strcmp(x->group, y->group);
}

int asy_metricsql_compute(PGconn *pg, int32_t today, const asy_calendar_t *cal, int history_years,
                          asy_expect_t **out, size_t *count)
{
    if (out)
        *out = NULL;
    if (count)
        *count = 0;
    if (!pg || !cal || !out || !count || history_years < 1) {
        fprintf(stderr, "metricsql: NULL argument or history_years %d < 1\n", history_years);
        return ASY_EINVAL;
    }
    if (today < asy_date_from_civil(1, 1, 1) || today > asy_date_from_civil(9999, 12, 31)) {
        fprintf(stderr, "metricsql: today is outside years 1..9999\n");
        return ASY_EINVAL;
    }
    int rc = s_build_tables(pg, today, cal, history_years);
    PGresult *res = NULL;
    if (rc == 0)
        rc = s_run(pg, "cells", s_cells_sql, 0, NULL, &res);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(res);
    asy_expect_t *cells = calloc(rows ? rows : 1, sizeof *cells);
    if (!cells) {
        PQclear(res);
        return ASY_ENOMEM;
    }
    for (size_t i = 0; i < rows && rc == 0; i++)
        rc = s_cell(res, (int)i, &cells[i]);
    PQclear(res);
    if (rc != 0) {
        free(cells);
        return rc;
    }
    qsort(cells, rows, sizeof *cells, s_compare);
    *out = cells;
    *count = rows;
    return 0;
}
