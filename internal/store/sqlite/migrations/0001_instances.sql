-- Instances: one row per instance. Times are Unix microseconds (UTC);
-- NULL is the zero time. ports and secrets are JSON objects.
CREATE TABLE instances (
	id             TEXT    PRIMARY KEY,
	service        TEXT    NOT NULL,
	owner          TEXT    NOT NULL,
	token_hash     BLOB,
	state          TEXT    NOT NULL,
	node           TEXT    NOT NULL DEFAULT '',
	daemon         TEXT    NOT NULL DEFAULT '',
	container      TEXT    NOT NULL DEFAULT '',
	host           TEXT    NOT NULL DEFAULT '',
	ports          TEXT    NOT NULL DEFAULT '{}',
	secrets        TEXT    NOT NULL DEFAULT '{}',
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER,
	max_expires_at INTEGER,
	ready_at       INTEGER,
	ended_at       INTEGER,
	extensions     INTEGER NOT NULL DEFAULT 0,
	bytes_in       INTEGER NOT NULL DEFAULT 0,
	bytes_out      INTEGER NOT NULL DEFAULT 0,
	reason         TEXT    NOT NULL DEFAULT '',
	version        INTEGER NOT NULL
) STRICT;

-- Create's quota count.
CREATE INDEX instances_service_owner_state ON instances (service, owner, state);
-- Expiry sweeps.
CREATE INDEX instances_expires_at ON instances (expires_at);
-- Live(node) after a restart.
CREATE INDEX instances_state_node ON instances (state, node);
-- List: newest first.
CREATE INDEX instances_created_at ON instances (created_at DESC, id);
