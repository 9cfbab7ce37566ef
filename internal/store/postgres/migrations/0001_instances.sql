-- Instances: one row per instance. NULL is the zero time.
CREATE TABLE instances (
	id             text        COLLATE "C" PRIMARY KEY, -- byte order, as in SQLite
	service        text        NOT NULL,
	owner          text        NOT NULL,
	token_hash     bytea,
	state          text        NOT NULL,
	node           text        NOT NULL DEFAULT '',
	daemon         text        NOT NULL DEFAULT '',
	container      text        NOT NULL DEFAULT '',
	host           text        NOT NULL DEFAULT '',
	ports          jsonb       NOT NULL DEFAULT '{}',
	secrets        jsonb       NOT NULL DEFAULT '{}',
	created_at     timestamptz NOT NULL,
	expires_at     timestamptz,
	max_expires_at timestamptz,
	ready_at       timestamptz,
	ended_at       timestamptz,
	extensions     integer     NOT NULL DEFAULT 0,
	bytes_in       bigint      NOT NULL DEFAULT 0,
	bytes_out      bigint      NOT NULL DEFAULT 0,
	reason         text        NOT NULL DEFAULT '',
	version        bigint      NOT NULL
);

-- Create's quota count.
CREATE INDEX instances_service_owner_state ON instances (service, owner, state);
-- Expiry sweeps.
CREATE INDEX instances_expires_at ON instances (expires_at);
-- Live(node) after a restart.
CREATE INDEX instances_state_node ON instances (state, node);
-- List: newest first.
CREATE INDEX instances_created_at ON instances (created_at DESC, id);
