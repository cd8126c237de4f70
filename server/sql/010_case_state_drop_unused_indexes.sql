-- 010_case_state_drop_unused_indexes: drops case_state_site and case_state_status (001).
-- Nothing reads case_state by site or by status: the broker reaches a row by case_id, the
-- monitor reads the whole table at start, and the reports and the dashboard read the
-- monitor's aggregates. Every batch merges its cases into case_state, and an index on a
-- column the merge writes costs each of those writes: status changes over a case's life, so
-- its index also keeps those updates from being HOT. Measured on the 2-core test machine with
-- pg_stat_statements over the ingest benchmark's drain (200,000 events, 58,600 merged rows,
-- two runs each): the merge statement 1,010-1,100 ms before, 860-880 ms after; its WAL 52 MB
-- before, 45 MB after. An operator who needs such a lookup can create the index again; the
-- broker does not depend on its absence.
DROP INDEX IF EXISTS case_state_site;
DROP INDEX IF EXISTS case_state_status;
