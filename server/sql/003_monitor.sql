-- 003_monitor: what the live monitor needs besides case_state.

-- Bank holidays the rules do not give (a new one-off proclamation) or that the rules give
-- wrongly for a year (a moved holiday): 'added' makes the date a holiday, 'removed' makes it
-- a working day, overriding the rules and the built-in table. Maintained with
-- `advsync-ctl holidays`; read by the broker at start and every minute after.
CREATE TABLE holiday (
    day         date PRIMARY KEY,
    change      text NOT NULL CHECK (change IN ('added', 'removed')),
    note        text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Resident population by area, ONS 2021 ethnic group and age band (the shape of Census 2021
-- TS021, with an age band added). ethnicity_ons and age_band use the numbers of the
-- EthnicityOns2021 and AgeBand enums of proto/advsync.proto; 0 means "all groups" / "all
-- ages". Loaded with `advsync-ctl denominators load FILE.csv`, which replaces the rows of the
-- areas in the file.
CREATE TABLE denominator (
    area_code      text NOT NULL,
    area_name      text,
    ethnicity_ons  smallint NOT NULL CHECK (ethnicity_ons BETWEEN 0 AND 19),
    age_band       smallint NOT NULL CHECK (age_band BETWEEN 0 AND 6),
    population     bigint NOT NULL CHECK (population >= 0),
    source         text,
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (area_code, ethnicity_ons, age_band)
);

-- Response-time breaches the monitor has announced (kind 1 = first contact by working day 3,
-- 2 = initial meeting by working day 10), so that a breach whose deadline passed while the
-- broker was down is announced once when it comes back, and never twice.
CREATE TABLE monitor_breach (
    case_id       text COLLATE "C" NOT NULL,
    kind          smallint NOT NULL CHECK (kind IN (1, 2)),
    site_id       text,
    deadline      date NOT NULL,
    announced_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, kind)
);
