-- Clusters: one row per (node, name), the record of clusterd.Record written
-- whole. members is a JSON array of member records; updated_at is Unix
-- microseconds (UTC), NULL the zero time.
CREATE TABLE clusters (
	node       TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	size       INTEGER NOT NULL,
	last_inc   INTEGER NOT NULL,
	epoch      INTEGER NOT NULL,
	secret     TEXT    NOT NULL,
	members    TEXT    NOT NULL DEFAULT '[]',
	updated_at INTEGER,
	PRIMARY KEY (node, name)
) STRICT;
