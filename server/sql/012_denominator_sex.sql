-- M10 is an age/sex-standardised rate (domain brief (c)), so the population may now be given
-- by sex as well: sex uses the numbers of the Sex enum of proto/advsync.proto (1 male,
-- 2 female); 0 means "persons" (both sexes), as every row loaded before this migration is.
-- `advsync-ctl denominators load` refuses a file that gives one area's group and band both as
-- persons and by sex (the two would be counted twice).
ALTER TABLE denominator
    ADD COLUMN sex smallint NOT NULL DEFAULT 0 CHECK (sex IN (0, 1, 2)),
    DROP CONSTRAINT denominator_pkey,
    ADD PRIMARY KEY (area_code, ethnicity_ons, age_band, sex);
