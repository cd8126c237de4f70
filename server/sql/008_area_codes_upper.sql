-- 008_area_codes_upper: area codes in capitals. advsync-ctl has upper-cased them since
-- December 2026; before, `e09000004` and `E09000004` were two areas, and the populations of
-- both entered the rates. Where an area was loaded under more than one spelling, the
-- spelling loaded last is kept (a load replaces the rows of its areas), capitals on a tie.
WITH spelling AS (
    SELECT area_code, max(loaded_at) AS loaded FROM denominator GROUP BY area_code
), kept AS (
    SELECT DISTINCT ON (upper(area_code COLLATE "C")) area_code
    FROM spelling
    ORDER BY upper(area_code COLLATE "C"), loaded DESC, area_code COLLATE "C"
)
DELETE FROM denominator d WHERE d.area_code NOT IN (SELECT area_code FROM kept);

-- COLLATE "C": ASCII letters only, as advsync-ctl upper-cases them, whatever the locale
UPDATE denominator SET area_code = upper(area_code COLLATE "C")
WHERE area_code <> upper(area_code COLLATE "C");
