-- A breach notice withdrawn (PROTOCOL.md 12.4): the contact or meeting was on time after all
-- (recorded at the site in time, delivered after the deadline), or the deadline moved.
-- NULL while the notice stands. A withdrawal is published once, also across restarts.
ALTER TABLE monitor_breach ADD COLUMN withdrawn_at timestamptz;
