-- Rollout semantics (reconciler): a waiting rollout's next maintenance
-- window (or the end of its current soak) and the blue-green group serving
-- traffic as the rollout left it. Operator requests (pause, resume, abort)
-- and sent notifications are transcripts looked up by (kind, ref).

ALTER TABLE rollouts ADD COLUMN wait_until TEXT;
ALTER TABLE rollouts ADD COLUMN active_group TEXT NOT NULL DEFAULT '';

CREATE INDEX transcripts_kind_ref ON transcripts (kind, ref, id);
