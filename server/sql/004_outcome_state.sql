-- 004_outcome_state: Recovery Star readings per case, outcome area and edition, for metric M12
-- (people with a rise of at least one point between their first and latest reading in the
-- same area and edition, among people with two readings or more). Merged in the ingest
-- transaction with order-independent rules, like case_state: the first and the latest reading
-- by version (20-digit occurred_at microseconds || event_id, compared bytewise), readings
-- summed. Only outcome.recorded events with framework FRAMEWORK_RECOVERY_STAR, an area and a
-- score count. Readings stored before this migration are not in it.
CREATE TABLE outcome_state (
    case_id      text COLLATE "C" NOT NULL,
    area         smallint NOT NULL,
    edition      smallint NOT NULL,
    first_ver    text COLLATE "C" NOT NULL,
    first_score  smallint NOT NULL,
    last_ver     text COLLATE "C" NOT NULL,
    last_score   smallint NOT NULL,
    readings     bigint NOT NULL,
    PRIMARY KEY (case_id, area, edition)
) WITH (fillfactor = 70);
