-- 009_case_state_binary_versions: case_state's *_ver text columns become *_version bytea
-- columns of 24 bytes instead of 56 characters. A version is now occurred_at in microseconds
-- since 1970 (negative clamps to 0) as 8 bytes big-endian, followed by the event_id's 16
-- bytes. bytea compares bytewise, so versions order exactly as the text did (20 zero-padded
-- digits, then the lowercase UUID text): by occurred_at, then event_id, and every merge rule
-- keeps its meaning. The text versions were about 760 of a case row's 1,075 bytes, and every
-- merge writes the whole row again (heap and WAL).
--
-- The new names make a broker that still writes text versions (an older build against this
-- database: it warns of the newer migration at start) fail its batches, nothing committed,
-- instead of storing text that would compare wrongly against these; a CHECK per column would
-- have cost every merge (measured: 9% of the merge statement).
CREATE FUNCTION pg_temp.asy_binary_version(version text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT decode(lpad(to_hex(left(version, 20)::bigint), 16, '0')
                        || replace(substr(version, 21), '-', ''), 'hex') $$;

ALTER TABLE case_state
    ALTER COLUMN person_key_ver TYPE bytea USING pg_temp.asy_binary_version(person_key_ver),
    ALTER COLUMN first_ver TYPE bytea USING pg_temp.asy_binary_version(first_ver),
    ALTER COLUMN status_ver TYPE bytea USING pg_temp.asy_binary_version(status_ver),
    ALTER COLUMN referral_ver TYPE bytea USING pg_temp.asy_binary_version(referral_ver),
    ALTER COLUMN eligible_ver TYPE bytea USING pg_temp.asy_binary_version(eligible_ver),
    ALTER COLUMN declined_ver TYPE bytea USING pg_temp.asy_binary_version(declined_ver),
    ALTER COLUMN closed_ver TYPE bytea USING pg_temp.asy_binary_version(closed_ver),
    ALTER COLUMN legal_status_ver TYPE bytea USING pg_temp.asy_binary_version(legal_status_ver),
    ALTER COLUMN qualifying_ver TYPE bytea USING pg_temp.asy_binary_version(qualifying_ver),
    ALTER COLUMN ethnicity_ons_ver TYPE bytea USING pg_temp.asy_binary_version(ethnicity_ons_ver),
    ALTER COLUMN nhs_ethnic_ver TYPE bytea USING pg_temp.asy_binary_version(nhs_ethnic_ver),
    ALTER COLUMN sex_ver TYPE bytea USING pg_temp.asy_binary_version(sex_ver),
    ALTER COLUMN gender_ver TYPE bytea USING pg_temp.asy_binary_version(gender_ver),
    ALTER COLUMN age_band_ver TYPE bytea USING pg_temp.asy_binary_version(age_band_ver),
    ALTER COLUMN disability_ver TYPE bytea USING pg_temp.asy_binary_version(disability_ver),
    ALTER COLUMN religion_ver TYPE bytea USING pg_temp.asy_binary_version(religion_ver),
    ALTER COLUMN sexual_orientation_ver TYPE bytea USING pg_temp.asy_binary_version(sexual_orientation_ver);

ALTER TABLE case_state RENAME COLUMN person_key_ver TO person_key_version;
ALTER TABLE case_state RENAME COLUMN first_ver TO first_version;
ALTER TABLE case_state RENAME COLUMN status_ver TO status_version;
ALTER TABLE case_state RENAME COLUMN referral_ver TO referral_version;
ALTER TABLE case_state RENAME COLUMN eligible_ver TO eligible_version;
ALTER TABLE case_state RENAME COLUMN declined_ver TO declined_version;
ALTER TABLE case_state RENAME COLUMN closed_ver TO closed_version;
ALTER TABLE case_state RENAME COLUMN legal_status_ver TO legal_status_version;
ALTER TABLE case_state RENAME COLUMN qualifying_ver TO qualifying_version;
ALTER TABLE case_state RENAME COLUMN ethnicity_ons_ver TO ethnicity_ons_version;
ALTER TABLE case_state RENAME COLUMN nhs_ethnic_ver TO nhs_ethnic_version;
ALTER TABLE case_state RENAME COLUMN sex_ver TO sex_version;
ALTER TABLE case_state RENAME COLUMN gender_ver TO gender_version;
ALTER TABLE case_state RENAME COLUMN age_band_ver TO age_band_version;
ALTER TABLE case_state RENAME COLUMN disability_ver TO disability_version;
ALTER TABLE case_state RENAME COLUMN religion_ver TO religion_version;
ALTER TABLE case_state RENAME COLUMN sexual_orientation_ver TO sexual_orientation_version;
