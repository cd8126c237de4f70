/*  simulate_event.c: a simulated step as a JSON event object (the proto3 JSON mapping of
    advsync.v1.Event), as `submit` reads it. See simulate_private.h.  */
#include "simulate_private.h"

#include <stdio.h>
#include <time.h>

static void s_set_text(json_t *object, const char *key, const char *value)
{
    if (value)
        json_object_set_new(object, key, json_string(value));
}

void asy_sim_format_time(int64_t t, char out[32])
{
    time_t seconds = (time_t)t;
    struct tm tm;
    gmtime_r(&seconds, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void s_set_time(json_t *object, const char *key, int64_t t)
{
    char text[32];
    asy_sim_format_time(t, text);
    json_object_set_new(object, key, json_string(text));
}

static void s_set_date(json_t *object, const char *key, int64_t t)
{
    char text[32];
    asy_sim_format_time(t, text);
    text[10] = '\0';
    json_object_set_new(object, key, json_string(text));
}

static json_t *s_array(const char *a, const char *b)
{
    json_t *array = json_array();
    if (a)
        json_array_append_new(array, json_string(a));
    if (b)
        json_array_append_new(array, json_string(b));
    return array;
}

static json_t *s_profile_json(const asy_sim_case_t *c)
{
    json_t *body = json_object();
    s_set_text(body, "ons2021Ethnicity", c->ons);
    s_set_text(body, "nhsEthnicCategory", c->nhs);
    s_set_text(body, "sex", c->sex);
    s_set_text(body, "gender", c->gender);
    s_set_text(body, "genderIdentity", c->gender_identity);
    s_set_text(body, "ageBand", c->age);
    s_set_text(body, "disability", c->disability);
    s_set_text(body, "religion", c->religion);
    s_set_text(body, "sexualOrientation", c->orientation);
    s_set_text(body, "veteran", c->veteran);
    s_set_text(body, "language", c->language);
    s_set_text(body, "interpreterNeeded", c->interpreter);
    s_set_text(body, "maritalStatus", c->marital);
    return body;
}

static json_t *s_referral_json(const asy_sim_step_t *s)
{
    json_t *body = json_object();
    s_set_text(body, "service", s->v[0]);
    s_set_time(body, "receivedAt", s->t);
    s_set_text(body, "source", s->v[1]);
    json_object_set_new(body, "reasons", s_array(s->v[2], s->v[3]));
    const char *first = asy_sim_priority_of(s->v[2]), *second = asy_sim_priority_of(s->v[3]);
    if (asy_sim_is(s->v[0], "SERVICE_IMHA") && !first)
        first = "PRIORITY_ADMISSION_OR_DISCHARGE";
    if (asy_sim_is(first, second))
        second = NULL;
    if (first || second)
        json_object_set_new(body, "priorityGroups", s_array(first, second));
    s_set_text(body, "consentBasis", s->v[4]);
    return body;
}

/* The fields of a step before the advocate's first contact: the legal status, the referral's
   decisions and the waiting list. Returns false (body untouched) for any other step. */
static bool s_set_intake(json_t *body, const asy_sim_step_t *s, const char **key)
{
    switch (s->kind) {
    case ASY_KIND_QUALIFYING_STARTED:
    case ASY_KIND_QUALIFYING_CHANGED:
    case ASY_KIND_QUALIFYING_ENDED:
        *key = s->kind == ASY_KIND_QUALIFYING_STARTED   ? "qualifyingStarted"
               : s->kind == ASY_KIND_QUALIFYING_CHANGED ? "qualifyingChanged"
                                                        : "qualifyingEnded";
        s_set_text(body, "legalStatus", s->v[0]);
        s_set_time(body, "start", s->n[0]);
        if (s->n[2])
            s_set_time(body, "end", s->n[2]);
        s_set_text(body, "ward", s->v[1]);
        if (s->n[1])
            s_set_time(body, "imhaInfoGivenAt", s->n[1]);
        return true;
    case ASY_KIND_REFERRAL_ELIGIBILITY_DECIDED:
        *key = "referralEligibilityDecided";
        json_object_set_new(body, "eligible", json_boolean(s->n[0]));
        if (s->v[0])
            json_object_set_new(body, "criteriaFailed", s_array(s->v[0], NULL));
        return true;
    case ASY_KIND_REFERRAL_DECLINED:
        *key = "referralDeclined";
        s_set_text(body, "declineReason", s->v[0]);
        s_set_text(body, "writtenReasonSentTo", "referrer");
        json_object_set_new(body, "copiedToContractManager", json_true());
        return true;
    case ASY_KIND_WAITLIST_JOINED:
        *key = "waitlistJoined";
        s_set_text(body, "reasonWaiting", s->v[0]);
        return true;
    case ASY_KIND_WAITLIST_LEFT:
        *key = "waitlistLeft";
        s_set_text(body, "reason", s->v[0]);
        return true;
    default:
        return false;
    }
}

/* The fields of a step of the advocacy itself: contact, meetings, plan, issues and the work
   logged. Returns false (body untouched) for any other step. */
static bool s_set_advocacy(json_t *body, const asy_sim_step_t *s, const char **key)
{
    switch (s->kind) {
    case ASY_KIND_CONTACT_ATTEMPTED:
    case ASY_KIND_CONTACT_MADE:
        *key = s->kind == ASY_KIND_CONTACT_MADE ? "contactMade" : "contactAttempted";
        s_set_text(body, "channel", s->v[0]);
        return true;
    case ASY_KIND_MEETING_INITIAL_HELD:
        *key = "meetingInitialHeld";
        s_set_date(body, "date", s->t);
        s_set_text(body, "venueType", s->v[0]);
        return true;
    case ASY_KIND_PLAN_AGREED:
        *key = "planAgreed";
        json_object_set_new(body, "goals", s_array(s->v[0], s->v[1]));
        s_set_date(body, "nextReviewDue", s->n[0]);
        return true;
    case ASY_KIND_ISSUE_RECORDED:
        *key = "issueRecorded";
        s_set_text(body, "issueCategory", s->v[0]);
        json_object_set_new(body, "mhaRight", json_boolean(s->n[0]));
        return true;
    case ASY_KIND_MEETING_ATTENDED:
        *key = "meetingAttended";
        s_set_text(body, "meetingType", s->v[0]);
        s_set_text(body, "mode", s->v[1]);
        return true;
    case ASY_KIND_ACTIVITY_LOGGED:
        *key = "activityLogged";
        json_object_set_new(body, "minutes", json_integer(s->n[0]));
        s_set_text(body, "mode", s->v[0]);
        json_object_set_new(body, "travelMinutes", json_integer(s->n[1]));
        return true;
    case ASY_KIND_RECORDS_ACCESS_REQUESTED:
        *key = "recordsAccessRequested";
        s_set_text(body, "basis", s->v[0]);
        return true;
    default:
        return false;
    }
}

/* The fields of a step towards the case's end: outcomes, feedback, unmet needs, referrals
   out, and the closure (any step the other helpers do not take). */
static void s_set_closing(json_t *body, const asy_sim_step_t *s, const char **key)
{
    switch (s->kind) {
    case ASY_KIND_OUTCOME_RECORDED:
        *key = "outcomeRecorded";
        s_set_text(body, "framework", "FRAMEWORK_RECOVERY_STAR");
        s_set_text(body, "area", s->v[0]);
        json_object_set_new(body, "score", json_integer(s->n[0]));
        json_object_set_new(body, "edition", json_integer(s->n[1]));
        break;
    case ASY_KIND_FEEDBACK_RECEIVED:
        *key = "feedbackReceived";
        s_set_text(body, "kind", s->v[0]);
        json_object_set_new(body, "consentToPublish", json_boolean(s->n[0]));
        break;
    case ASY_KIND_UNMET_NEED_RECORDED:
        *key = "unmetNeedRecorded";
        s_set_text(body, "category", s->v[0]);
        s_set_text(body, "signpostedTo", s->v[1]);
        break;
    case ASY_KIND_REFERRAL_OUT_SENT:
        *key = "referralOutSent";
        s_set_text(body, "partnerId", s->v[0]);
        s_set_text(body, "purpose", s->v[1]);
        s_set_text(body, "summary", s->v[2]);
        break;
    default: /* ASY_KIND_CASE_CLOSED */
        *key = "caseClosed";
        s_set_text(body, "closureReason", s->v[0]);
        json_object_set_new(body, "goalsMet", json_boolean(s->n[0]));
        json_object_set_new(body, "leftBeforeGoals", json_boolean(s->n[1]));
        break;
    }
}

/* The body of one step; *key gets the body's field name. */
static json_t *s_body_json(const asy_sim_case_t *c, const asy_sim_step_t *s, const char **key)
{
    if (s->kind == ASY_KIND_PERSON_PROFILE_RECORDED) {
        *key = "personProfileRecorded";
        return s_profile_json(c);
    }
    if (s->kind == ASY_KIND_REFERRAL_RECEIVED) {
        *key = "referralReceived";
        return s_referral_json(s);
    }
    json_t *body = json_object();
    if (!s_set_intake(body, s, key) && !s_set_advocacy(body, s, key))
        s_set_closing(body, s, key);
    return body;
}

/* One event object with raw references (caseRef, personRef): submit pseudonymises them. */
json_t *asy_sim_event_json(const asy_sim_t *sim, const asy_sim_case_t *c, const asy_sim_step_t *s)
{
    char reference[160];
    json_t *event = json_object();
    snprintf(reference, sizeof reference, "SIM-%s-%llu-%06llu", sim->site_id,
             (unsigned long long)sim->seed, (unsigned long long)c->number);
    s_set_text(event, "caseRef", reference);
    snprintf(reference, sizeof reference, "P-%s-%llu-%06llu", sim->site_id,
             (unsigned long long)sim->seed, (unsigned long long)c->person);
    s_set_text(event, "personRef", reference);
    s_set_time(event, "occurredAt", s->t);
    bool office = s->kind >= ASY_KIND_QUALIFYING_STARTED && s->kind <= ASY_KIND_QUALIFYING_ENDED;
    s_set_text(event, "actorRole", office ? "ACTOR_MHA_OFFICE" : "ACTOR_ADVOCATE");
    const char *key = "caseClosed";
    json_t *body = s_body_json(c, s, &key);
    json_object_set_new(event, key, body);
    return event;
}
