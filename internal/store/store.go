// Package store holds what the stores of instance records (sqlite,
// postgres) share: their versioned migrations and how maps are encoded.
// The Store interface itself is the instance package's, which uses it.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ganger-dev/ganger/internal/instance"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrSchemaNewer means the database was migrated by a newer Ganger than
// this one: its schema_version is past the last migration this code has.
var ErrSchemaNewer = errors.New("database schema is newer than this program knows")

// Migration is one step of a schema, from migrations/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads migrations/*.sql of fsys in order. They are
// numbered from 0001 without gaps; a step, once released, is never edited:
// a change is a new file.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var ms []Migration
	for i, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", base, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	return ms, nil
}

// EncodeMap is m as JSON text, "{}" when empty.
func EncodeMap[M ~map[K]V, K comparable, V any](m M) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// Columns are an instance record's columns, in the order both drivers
// write and scan them.
const Columns = `id, service, owner, token_hash, state, node, daemon, container, host,
	ports, secrets, created_at, expires_at, max_expires_at, ready_at, ended_at,
	extensions, bytes_in, bytes_out, reason, version`

// LiveStates is the SQL list of the live states.
const LiveStates = `('starting', 'running')`

// ListQuery is the SELECT of Store.List for f, newest first, with its
// arguments; arg returns the driver's placeholder for the n-th (from 1).
func ListQuery(f instance.Filter, arg func(n int) string) (string, []any) {
	var where []string
	var args []any
	add := func(v any) string {
		args = append(args, v)
		return arg(len(args))
	}
	if f.Service != "" {
		where = append(where, "service = "+add(f.Service))
	}
	if f.Owner != "" {
		where = append(where, "owner = "+add(f.Owner))
	}
	if f.LiveOnly {
		where = append(where, "state IN "+LiveStates)
	}
	q := `SELECT ` + Columns + ` FROM instances`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id`
	if f.Limit > 0 {
		q += ` LIMIT ` + add(f.Limit)
	}
	return q, args
}

// LiveQuery is the SELECT of Store.Live for node ("" = every node).
func LiveQuery(node string, arg func(n int) string) (string, []any) {
	q := `SELECT ` + Columns + ` FROM instances WHERE state IN ` + LiveStates
	var args []any
	if node != "" {
		q += ` AND node = ` + arg(1)
		args = append(args, node)
	}
	return q + ` ORDER BY created_at DESC, id`, args
}

// UpdateQuery is the UPDATE of Store.Update: every column but id set from
// the arguments in the order of Columns, id (argument 1) selecting the row.
func UpdateQuery(arg func(n int) string) string {
	cols := strings.Split(Columns, ",")
	set := make([]string, 0, len(cols)-1)
	for i, c := range cols[1:] {
		set = append(set, strings.TrimSpace(c)+" = "+arg(i+2))
	}
	return `UPDATE instances SET ` + strings.Join(set, ", ") + ` WHERE id = ` + arg(1)
}

// Decode fills in what a driver scanned as text: the state, and the ports
// and secrets as JSON; an empty token hash and empty maps become nil.
func Decode(r *instance.Record, state string, ports, secrets []byte) error {
	r.State = instance.State(state)
	if len(r.TokenHash) == 0 {
		r.TokenHash = nil
	}
	if err := decodeMap(ports, &r.Ports); err != nil {
		return fmt.Errorf("instance %s: ports: %w", r.ID, err)
	}
	if err := decodeMap(secrets, &r.Secrets); err != nil {
		return fmt.Errorf("instance %s: secrets: %w", r.ID, err)
	}
	return nil
}

func decodeMap[M ~map[K]V, K comparable, V any](b []byte, m *M) error {
	if err := json.Unmarshal(b, m); err != nil {
		return err
	}
	if len(*m) == 0 {
		*m = nil
	}
	return nil
}

// Normalize is r as every store gives it back (see instance.Record): times
// to the microsecond in UTC, empty maps and token hash nil, the hash copied.
func Normalize(r instance.Record) instance.Record {
	if len(r.TokenHash) == 0 {
		r.TokenHash = nil
	} else {
		r.TokenHash = append([]byte(nil), r.TokenHash...)
	}
	if len(r.Ports) == 0 {
		r.Ports = nil
	}
	if len(r.Secrets) == 0 {
		r.Secrets = nil
	}
	for _, t := range []*time.Time{&r.CreatedAt, &r.ExpiresAt, &r.MaxExpiresAt, &r.ReadyAt, &r.EndedAt} {
		if !t.IsZero() {
			*t = time.UnixMicro(t.UnixMicro()).UTC()
		}
	}
	return r
}
