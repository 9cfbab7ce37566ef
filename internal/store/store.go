// Package store holds what the stores of instance records (sqlite,
// postgres) share: their versioned migrations and how maps are encoded.
// The Store interface itself is the instance package's, which uses it.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
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
