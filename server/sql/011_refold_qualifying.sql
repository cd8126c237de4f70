-- 3c15e05 changed how case_state derives the IMHA-qualifying episode and the first meeting
-- (deploy/README.md, "case_state"): qualifying_started_at from the first QUALIFYING status
-- only, legal status and the qualifying flag ordered by when the status took effect, and
-- initial_meeting_at from the meeting's own date. Rows written before keep the old values,
-- which the monitor would now misread (an s4-only case would count as an episode). This table
-- asks the broker to re-derive those columns from the stored events once (server/store_refold.c,
-- right after the migrations, in one transaction that drops the table). A database without
-- cases (a new one) has nothing to re-derive and gets no table.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM case_state) THEN
        CREATE TABLE case_state_refold (pending boolean PRIMARY KEY);
        INSERT INTO case_state_refold VALUES (true);
    END IF;
END
$$;
