package postgres

import (
	"context"
	"errors"
	"github.com/ganger-dev/ganger/internal/store"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ganger-dev/ganger/internal/clusterd"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/store/pgtest"
	"github.com/ganger-dev/ganger/internal/store/storetest"
)

// One PostgreSQL server for the package's tests, a database for each.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) instance.Store {
		return open(t, pgtest.DSN(t))
	})
}

func TestClusters(t *testing.T) {
	storetest.RunClusters(t, func(t *testing.T) clusterd.Store {
		return open(t, pgtest.DSN(t))
	})
}

// A database of schema version 1 (instances only) gets the clusters table
// when opened, its instances kept; cluster records survive a reopen.
func TestMigrateClusters(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	r := instance.Record{ID: "keep", Service: "redis", Owner: "o", State: instance.Running, CreatedAt: time.Now()}
	if err := s.Create(t.Context(), r, 0); err != nil {
		t.Fatal(err)
	}
	// Back to version 1.
	if _, err := s.pool.Exec(t.Context(), `DROP TABLE clusters; DELETE FROM schema_version WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dsn)
	if _, err := s.Get(t.Context(), "keep"); err != nil {
		t.Fatalf("the instance after migrating: %v", err)
	}
	c := clusterd.Record{Node: "node-a", Name: "redis", Size: 1, Epoch: 3,
		Members: []clusterd.MemberRecord{{Ordinal: 0, Incarnation: 1, State: "running"}}}
	if err := s.SaveCluster(t.Context(), c); err != nil {
		t.Fatalf("SaveCluster after migrating: %v", err)
	}
	s.Close()

	s = open(t, dsn)
	defer s.Close()
	rs, err := s.Clusters(t.Context(), "node-a")
	if err != nil || len(rs) != 1 || rs[0].Epoch != 3 || len(rs[0].Members) != 1 {
		t.Fatalf("Clusters after reopening: %+v, %v", rs, err)
	}
	checkVersions(t, dsn)
	// Names sort in byte order, as in SQLite, whatever the server's locale
	// (pgtest's is C, so the ordering test alone cannot tell).
	var coll string
	err = s.pool.QueryRow(t.Context(), `SELECT coalesce(collation_name, '') FROM information_schema.columns
		WHERE table_name = 'clusters' AND column_name = 'name'`).Scan(&coll)
	if err != nil || coll != "C" {
		t.Errorf("clusters.name collation %q, %v; want C", coll, err)
	}
}

// Two Stores are two pools, as two front-ends would have: the quota holds
// across them.
func TestQuotaAcrossStores(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	storetest.QuotaRace(t, a, b)
}

// Front-ends starting at once on an empty database: each migration is
// applied once, and every Open succeeds.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	checkVersions(t, dsn)
}

func checkVersions(t *testing.T, dsn string) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var rows, max int
	if err := c.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	ms, err := store.LoadMigrations(migrations)
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) || max != len(ms) {
		t.Errorf("schema_version: %d rows up to %d, want %d", rows, max, len(ms))
	}
}

func TestReopen(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	r := instance.Record{ID: "keep", Service: "redis", Owner: "o", State: instance.Running,
		Secrets: map[string]string{"password": "p"}, CreatedAt: time.Now()}
	if err := s.Create(t.Context(), r, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s = open(t, dsn)
		got, err := s.Get(t.Context(), "keep")
		if err != nil {
			t.Fatalf("after reopening: %v", err)
		}
		if got.Secrets["password"] != "p" || got.Version != 1 {
			t.Errorf("after reopening: %+v", got)
		}
		s.Close()
		checkVersions(t, dsn)
	}
}

func TestSchemaNewer(t *testing.T) {
	dsn := pgtest.DSN(t)
	open(t, dsn).Close()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(t.Context(), `INSERT INTO schema_version (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	c.Close(t.Context())
	s, err := Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer schema succeeded")
	}
	if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "999") {
		t.Errorf("Open: %v; want ErrSchemaNewer naming version 999", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	if s, err := Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"); err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
	if _, err := Open(ctx, "this is :: not a dsn"); err == nil {
		t.Fatal("Open of a bad DSN succeeded")
	}
}
