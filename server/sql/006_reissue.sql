-- Re-issued epochs (PROTOCOL.md 5.5): an agent whose outbox was restored from a backup or
-- copied gives its unacknowledged events a new epoch. While it sends them, the broker drops
-- those it already holds under (reissue_of_epoch, seq >= reissue_from_seq) of the same agent.
-- Kept here as the record of where the epoch came from; NULL for an ordinary epoch.
ALTER TABLE agent_stream ADD COLUMN reissue_of_epoch bigint, ADD COLUMN reissue_from_seq bigint;
