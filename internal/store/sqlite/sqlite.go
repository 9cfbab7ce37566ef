// Package sqlite keeps instance records in one SQLite file (modernc.org/sqlite,
// pure Go): WAL mode, a busy timeout, and write transactions begun with
// BEGIN IMMEDIATE, so that Create's quota check holds across every
// connection and every process that opens the same file.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/ganger-dev/ganger/internal/store"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ganger-dev/ganger/internal/instance"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeout is how long a statement waits for another connection's (or
// process's) lock before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is an instance.Store in a SQLite file.
type Store struct {
	db *sql.DB
	// writer lets one write transaction of this process at a time ask
	// SQLite for the write lock: the others wait here, where ctx can cancel
	// them, instead of spinning in SQLite's busy handler. Other processes
	// are kept out by BEGIN IMMEDIATE itself.
	writer chan struct{}
}

var _ instance.Store = (*Store)(nil)

// Open opens (creating it, mode 0600, if it does not exist) the SQLite file
// at path and brings its schema up to date. A database whose schema is newer
// than this code knows is refused with an error wrapping ErrSchemaNewer.
func Open(path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite store: %q is not a plain file path", path)
	}
	// Create the file ourselves so that it gets mode 0600 whatever the
	// umask; SQLite gives the -wal and -shm files the database's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		f.Close()
	case errors.Is(err, os.ErrExist):
	default:
		return nil, fmt.Errorf("sqlite store: %w", err)
	}

	dsn := path + "?" + strings.Join([]string{
		"_txlock=immediate", // BeginTx (not read-only) is BEGIN IMMEDIATE
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, writer: make(chan struct{}, 1)}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// write runs fn in an IMMEDIATE transaction and commits it if fn returns nil.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writer }()

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op; also when fn panics
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// placeholder is this driver's n-th query argument.
var placeholder = func(n int) string { return "?" + strconv.Itoa(n) }

// Create implements instance.Store.
func (s *Store) Create(ctx context.Context, r instance.Record, perOwner int) error {
	if r.ID == "" {
		return errors.New("sqlite store: create: empty id")
	}
	r.Version = 1
	args, err := values(r)
	if err != nil {
		return fmt.Errorf("sqlite store: create %s: %w", r.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if perOwner > 0 {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM instances
				WHERE service = ? AND owner = ? AND state IN `+store.LiveStates,
				r.Service, r.Owner).Scan(&n)
			if err != nil {
				return err
			}
			if n >= perOwner {
				return instance.ErrQuota
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO instances (`+store.Columns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		return err
	})
	if err == instance.ErrQuota {
		return err
	}
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return fmt.Errorf("sqlite store: create %s: id already taken: %w", r.ID, err)
		}
		return fmt.Errorf("sqlite store: create %s: %w", r.ID, err)
	}
	return nil
}

// Get implements instance.Store.
func (s *Store) Get(ctx context.Context, id string) (instance.Record, error) {
	r, err := scan(s.db.QueryRowContext(ctx, `SELECT `+store.Columns+` FROM instances WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return instance.Record{}, instance.ErrNotFound
	}
	if err != nil {
		return instance.Record{}, fmt.Errorf("sqlite store: get %s: %w", id, err)
	}
	return r, nil
}

// Update implements instance.Store.
func (s *Store) Update(ctx context.Context, id string, f func(*instance.Record) error) (instance.Record, error) {
	var out instance.Record
	var fErr error // f's error, returned unchanged
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := scan(tx.QueryRowContext(ctx, `SELECT `+store.Columns+` FROM instances WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
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
		_, err = tx.ExecContext(ctx, store.UpdateQuery(placeholder), args...)
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
		return instance.Record{}, fmt.Errorf("sqlite store: update %s: %w", id, err)
	}
	return out, nil
}

// List implements instance.Store.
func (s *Store) List(ctx context.Context, f instance.Filter) ([]instance.Record, error) {
	q, args := store.ListQuery(f, placeholder)
	rs, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list: %w", err)
	}
	return rs, nil
}

// Live implements instance.Store.
func (s *Store) Live(ctx context.Context, node string) ([]instance.Record, error) {
	q, args := store.LiveQuery(node, placeholder)
	rs, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: live: %w", err)
	}
	return rs, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]instance.Record, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
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
	var token any
	if len(r.TokenHash) > 0 {
		token = r.TokenHash
	}
	return []any{
		r.ID, r.Service, r.Owner, token, string(r.State), r.Node, r.Daemon, r.Container, r.Host,
		ports, secrets, r.CreatedAt.UnixMicro(), micros(r.ExpiresAt), micros(r.MaxExpiresAt),
		micros(r.ReadyAt), micros(r.EndedAt), r.Extensions, r.BytesIn, r.BytesOut, r.Reason, r.Version,
	}, nil
}

type scanner interface{ Scan(dest ...any) error }

func scan(row scanner) (instance.Record, error) {
	var (
		r                                 instance.Record
		state, ports, secrets             string
		created                           int64
		expires, maxExpires, ready, ended sql.NullInt64
	)
	err := row.Scan(&r.ID, &r.Service, &r.Owner, &r.TokenHash, &state, &r.Node, &r.Daemon,
		&r.Container, &r.Host, &ports, &secrets, &created, &expires, &maxExpires, &ready, &ended,
		&r.Extensions, &r.BytesIn, &r.BytesOut, &r.Reason, &r.Version)
	if err != nil {
		return instance.Record{}, err
	}
	if err := store.Decode(&r, state, []byte(ports), []byte(secrets)); err != nil {
		return instance.Record{}, err
	}
	r.CreatedAt = time.UnixMicro(created).UTC()
	r.ExpiresAt = fromMicros(expires)
	r.MaxExpiresAt = fromMicros(maxExpires)
	r.ReadyAt = fromMicros(ready)
	r.EndedAt = fromMicros(ended)
	return r, nil
}

// micros is t in Unix microseconds, NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}
