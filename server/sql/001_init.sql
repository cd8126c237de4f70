-- 001_init: the core pipeline's tables. Applied once by asy_store_new, in one transaction,
-- under an advisory lock; recorded in schema_migration. Never edit an applied migration:
-- add NNN_name.sql instead.

CREATE TABLE site (
    site_id     text PRIMARY KEY,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An agent is bound to the site it first said HELLO from; a HELLO naming another site is
-- refused.
CREATE TABLE agent (
    agent_id    text PRIMARY KEY,
    site_id     text NOT NULL REFERENCES site,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- The exactly-once guard: each batch moves committed_seq from the value the broker expected
-- to the batch's last seq (compare-and-set) in the same transaction as the batch's rows.
CREATE TABLE agent_stream (
    agent_id       text NOT NULL,
    epoch          bigint NOT NULL,
    committed_seq  bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch)
);

-- Append-only, one row per accepted event, partitioned by month of received_at
-- (event_yYYYYmMM, created by the broker at start for this month and the next two; anything
-- outside falls into event_default). payload is the event's bytes exactly as received, so
-- fields of newer schemas survive and everything can be re-derived. There is deliberately no
-- unique index on event_id: it would halve COPY's rate, and agent_stream is the guard.
CREATE TABLE event (
    agent_id        text NOT NULL,
    epoch           bigint NOT NULL,
    seq             bigint NOT NULL,
    event_id        uuid NOT NULL,
    site_id         text NOT NULL,
    case_id         text NOT NULL,
    person_key      text,
    kind            smallint NOT NULL,
    occurred_at     timestamptz,
    recorded_at     timestamptz,
    schema_version  int NOT NULL,
    received_at     timestamptz NOT NULL,
    payload         bytea NOT NULL,
    PRIMARY KEY (agent_id, epoch, seq, received_at)
) PARTITION BY RANGE (received_at);

CREATE TABLE event_default PARTITION OF event DEFAULT;

-- Everything refused: invalid events of a batch (with their seq) and frames that never became
-- a batch (seq 0). Never dropped silently.
CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    agent_id     text,
    site_id      text,
    epoch        bigint,
    seq          bigint,
    code         smallint NOT NULL,
    code_name    text NOT NULL,
    reason       text NOT NULL,
    payload      bytea
);
CREATE INDEX quarantine_agent ON quarantine (agent_id, epoch, seq);

-- One row per case pseudonym. Every column is a commutative, idempotent merge over the case's
-- events (see the comment at the top of server/store.c), so any arrival order of the same set
-- of events gives the same row. *_ver columns hold the version of the event that set the
-- value: 20-digit zero-padded occurred_at microseconds followed by the event_id text; they
-- compare bytewise (COLLATE "C").
CREATE TABLE case_state (
    case_id                 text COLLATE "C" PRIMARY KEY,
    person_key              text,
    person_key_ver          text COLLATE "C",
    site_id                 text,
    first_ver               text COLLATE "C",
    status                  text,
    status_ver              text COLLATE "C",
    service                 int,
    referral_source         int,
    referral_ver            text COLLATE "C",
    referral_received_at    timestamptz,
    first_contact_at        timestamptz,
    initial_meeting_at      timestamptz,
    eligible                smallint,
    eligible_ver            text COLLATE "C",
    declined_at             timestamptz,
    decline_reason          int,
    declined_ver            text COLLATE "C",
    closed_at               timestamptz,
    closure_reason          int,
    left_before_goals       boolean,
    closed_ver              text COLLATE "C",
    legal_status            int,
    legal_status_ver        text COLLATE "C",
    qualifying              boolean,
    qualifying_ver          text COLLATE "C",
    qualifying_started_at   timestamptz,
    ethnicity_ons           int,
    ethnicity_ons_ver       text COLLATE "C",
    nhs_ethnic              int,
    nhs_ethnic_ver          text COLLATE "C",
    sex                     int,
    sex_ver                 text COLLATE "C",
    gender                  int,
    gender_ver              text COLLATE "C",
    age_band                int,
    age_band_ver            text COLLATE "C",
    disability              int,
    disability_ver          text COLLATE "C",
    religion                int,
    religion_ver            text COLLATE "C",
    sexual_orientation      int,
    sexual_orientation_ver  text COLLATE "C",
    equality_optout         boolean NOT NULL DEFAULT false,
    event_count             bigint NOT NULL DEFAULT 0,
    first_event_at          timestamptz,
    last_event_at           timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_state_site ON case_state (site_id);
CREATE INDEX case_state_status ON case_state (status);
