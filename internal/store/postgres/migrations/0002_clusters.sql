-- Clusters: one row per (node, name), the record of clusterd.Record written
-- whole. members is a JSON array of member records; NULL is the zero time.
CREATE TABLE clusters (
	node       text        COLLATE "C" NOT NULL, -- byte order, as in SQLite
	name       text        COLLATE "C" NOT NULL,
	size       bigint      NOT NULL,
	last_inc   bigint      NOT NULL,
	epoch      bigint      NOT NULL,
	secret     text        NOT NULL,
	members    jsonb       NOT NULL DEFAULT '[]',
	updated_at timestamptz,
	PRIMARY KEY (node, name)
);
