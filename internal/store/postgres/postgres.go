// Package postgres keeps instance records in PostgreSQL (pgx, pgxpool), for
// several Ganger front-ends that share state. Create's quota check is
// serialised per (service, owner) by a transaction-scoped advisory lock, so
// it holds across every front-end on the database; Update locks its row
// (SELECT ... FOR UPDATE).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/ganger-dev/ganger/internal/store"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ganger-dev/ganger/internal/instance"
)

// Store is an instance.Store in a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ instance.Store = (*Store)(nil)

// Open connects to the database of dsn (a postgres:// URL or key=value
// string, as pgx takes them) and brings its schema up to date. A database
// whose schema is newer than this code knows is refused with an error
// wrapping ErrSchemaNewer.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// placeholder is this driver's n-th query argument.
var placeholder = func(n int) string { return "$" + strconv.Itoa(n) }

// inTx runs fn in a transaction, committed if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) // after Commit, a no-op; also when fn panics
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Create implements instance.Store.
func (s *Store) Create(ctx context.Context, r instance.Record, perOwner int) error {
	if r.ID == "" {
		return errors.New("postgres store: create: empty id")
	}
	r.Version = 1
	args, err := values(r)
	if err != nil {
		return fmt.Errorf("postgres store: create %s: %w", r.ID, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if perOwner > 0 {
			// Every Create of this (service, owner) with a quota waits here
			// until the one before has committed or rolled back; the count
			// below, a new statement, sees what it committed.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`, r.Service, r.Owner); err != nil {
				return err
			}
			var n int
			err := tx.QueryRow(ctx, `SELECT count(*) FROM instances
				WHERE service = $1 AND owner = $2 AND state IN `+store.LiveStates, r.Service, r.Owner).Scan(&n)
			if err != nil {
				return err
			}
			if n >= perOwner {
				return instance.ErrQuota
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO instances (`+store.Columns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`, args...)
		return err
	})
	if err == instance.ErrQuota {
		return err
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
			return fmt.Errorf("postgres store: create %s: id already taken: %w", r.ID, err)
		}
		return fmt.Errorf("postgres store: create %s: %w", r.ID, err)
	}
	return nil
}

// Get implements instance.Store.
func (s *Store) Get(ctx context.Context, id string) (instance.Record, error) {
	r, err := scan(s.pool.QueryRow(ctx, `SELECT `+store.Columns+` FROM instances WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return instance.Record{}, instance.ErrNotFound
	}
	if err != nil {
		return instance.Record{}, fmt.Errorf("postgres store: get %s: %w", id, err)
	}
	return r, nil
}

// Update implements instance.Store.
func (s *Store) Update(ctx context.Context, id string, f func(*instance.Record) error) (instance.Record, error) {
	var out instance.Record
	var fErr error // f's error, returned unchanged
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := scan(tx.QueryRow(ctx, `SELECT `+store.Columns+` FROM instances WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return instance.ErrNotFound
		}
		if err != nil {
			return err
		}
		version := r.Version
		if err := f(&r); err != nil {
			fErr = err
			return err
		}
		if r.ID != id {
			return fmt.Errorf("the update changed the id to %q", r.ID)
		}
		r.Version = version + 1
		args, err := values(r)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, store.UpdateQuery(placeholder), args...)
		if err != nil {
			return err
		}
		out = store.Normalize(r)
		return nil
	})
	switch {
	case fErr != nil:
		return instance.Record{}, fErr
	case err == instance.ErrNotFound:
		return instance.Record{}, err
	case err != nil:
		return instance.Record{}, fmt.Errorf("postgres store: update %s: %w", id, err)
	}
	return out, nil
}

// List implements instance.Store.
func (s *Store) List(ctx context.Context, f instance.Filter) ([]instance.Record, error) {
	q, args := store.ListQuery(f, placeholder)
	rs, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list: %w", err)
	}
	return rs, nil
}

// Live implements instance.Store.
func (s *Store) Live(ctx context.Context, node string) ([]instance.Record, error) {
	q, args := store.LiveQuery(node, placeholder)
	rs, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: live: %w", err)
	}
	return rs, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]instance.Record, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []instance.Record
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// values are r's store.Columns in the order of store.Columns.
func values(r instance.Record) ([]any, error) {
	ports, err := store.EncodeMap(r.Ports)
	if err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	secrets, err := store.EncodeMap(r.Secrets)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	var token []byte
	if len(r.TokenHash) > 0 {
		token = r.TokenHash
	}
	return []any{
		r.ID, r.Service, r.Owner, token, string(r.State), r.Node, r.Daemon, r.Container, r.Host,
		ports, secrets, r.CreatedAt.Truncate(time.Microsecond), timestamp(r.ExpiresAt), timestamp(r.MaxExpiresAt),
		timestamp(r.ReadyAt), timestamp(r.EndedAt), r.Extensions, r.BytesIn, r.BytesOut, r.Reason, r.Version,
	}, nil
}

func scan(row pgx.Row) (instance.Record, error) {
	var (
		r                                 instance.Record
		state                             string
		ports, secrets                    []byte
		expires, maxExpires, ready, ended pgtype.Timestamptz
	)
	err := row.Scan(&r.ID, &r.Service, &r.Owner, &r.TokenHash, &state, &r.Node, &r.Daemon,
		&r.Container, &r.Host, &ports, &secrets, &r.CreatedAt, &expires, &maxExpires, &ready, &ended,
		&r.Extensions, &r.BytesIn, &r.BytesOut, &r.Reason, &r.Version)
	if err != nil {
		return instance.Record{}, err
	}
	if err := store.Decode(&r, state, ports, secrets); err != nil {
		return instance.Record{}, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.ExpiresAt = fromTimestamp(expires)
	r.MaxExpiresAt = fromTimestamp(maxExpires)
	r.ReadyAt = fromTimestamp(ready)
	r.EndedAt = fromTimestamp(ended)
	return r, nil
}

// timestamp is t to the microsecond, NULL for the zero time.
func timestamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Truncate(time.Microsecond)
}

func fromTimestamp(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid {
		return time.Time{}
	}
	return ts.Time.UTC()
}
