package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"github.com/ganger-dev/ganger/internal/store"
	"time"
)

// migrations are the schema's steps, NNNN_name.sql, numbered from 0001
// without gaps. A step, once released, is never edited: a change is a new
// file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaNewer is store.ErrSchemaNewer: the database is newer than this code.
var ErrSchemaNewer = store.ErrSchemaNewer

// migrate applies the migrations the database lacks, all in one IMMEDIATE
// transaction: another process opening the same file at the same time waits,
// then finds them applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := store.LoadMigrations(migrations)
	if err != nil {
		return err
	}
	latest := len(ms)
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at TEXT    NOT NULL
		)`)
		if err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		if current > latest {
			return fmt.Errorf("%w: the database is at version %d, this program knows up to %d; run a newer Ganger",
				ErrSchemaNewer, current, latest)
		}
		for _, m := range ms[current:] {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UTC().Format(time.RFC3339))
			if err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}
