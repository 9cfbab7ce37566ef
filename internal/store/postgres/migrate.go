package postgres

import (
	"context"
	"embed"
	"fmt"
	"github.com/ganger-dev/ganger/internal/store"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's steps, NNNN_name.sql, numbered from 0001
// without gaps. A step, once released, is never edited: a change is a new
// file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaNewer is store.ErrSchemaNewer: the database is newer than this code.
var ErrSchemaNewer = store.ErrSchemaNewer

// migrationLock is the advisory lock (one bigint key; the quota locks use
// the two-int4 key space, which never meets it) under which migrations run,
// so that front-ends starting together apply each migration once.
const migrationLock int64 = 0x67616e6765720001 // "ganger" 0001

// migrate applies the migrations the database lacks, in one transaction
// holding the migration lock.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := store.LoadMigrations(migrations)
	if err != nil {
		return err
	}
	latest := len(ms)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		return fmt.Errorf("schema_version: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("schema_version: %w", err)
	}
	if current > latest {
		return fmt.Errorf("%w: the database is at version %d, this program knows up to %d; run a newer Ganger",
			ErrSchemaNewer, current, latest)
	}
	for _, m := range ms[current:] {
		// No arguments: pgx sends it as a simple query, several statements at once.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return tx.Commit(ctx)
}
