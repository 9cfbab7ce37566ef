package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/ganger-dev/ganger/internal/store"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ganger-dev/ganger/internal/clusterd"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/store/storetest"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) instance.Store {
		return open(t, filepath.Join(t.TempDir(), "ganger.db"))
	})
}

func TestClusters(t *testing.T) {
	storetest.RunClusters(t, func(t *testing.T) clusterd.Store {
		return open(t, filepath.Join(t.TempDir(), "ganger.db"))
	})
}

// A database of schema version 1 (instances only) gets the clusters table
// when opened, its instances kept; cluster records survive a reopen.
func TestMigrateClusters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ganger.db")
	s := open(t, path)
	r := instance.Record{ID: "keep", Service: "redis", Owner: "o", State: instance.Running, CreatedAt: time.Now()}
	if err := s.Create(t.Context(), r, 0); err != nil {
		t.Fatal(err)
	}
	// Back to version 1.
	if _, err := s.db.Exec(`DROP TABLE clusters; DELETE FROM schema_version WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path)
	if _, err := s.Get(t.Context(), "keep"); err != nil {
		t.Fatalf("the instance after migrating: %v", err)
	}
	c := clusterd.Record{Node: "node-a", Name: "redis", Size: 1, Epoch: 3,
		Members: []clusterd.MemberRecord{{Ordinal: 0, Incarnation: 1, State: "running"}}}
	if err := s.SaveCluster(t.Context(), c); err != nil {
		t.Fatalf("SaveCluster after migrating: %v", err)
	}
	s.Close()

	s = open(t, path)
	defer s.Close()
	rs, err := s.Clusters(t.Context(), "node-a")
	if err != nil || len(rs) != 1 || rs[0].Epoch != 3 || len(rs[0].Members) != 1 {
		t.Fatalf("Clusters after reopening: %+v, %v", rs, err)
	}
	var versions int
	if err := s.db.QueryRow(`SELECT count(*) FROM schema_version`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if ms, _ := store.LoadMigrations(migrations); versions != len(ms) {
		t.Errorf("schema_version has %d rows, want %d", versions, len(ms))
	}
}

// Two Stores on one file hold their own connections and their own writer
// slot: only SQLite's locking keeps the quota.
func TestQuotaAcrossStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ganger.db")
	a, b := open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	storetest.QuotaRace(t, a, b)
}

const helperEnv = "GANGER_SQLITE_QUOTA_HELPER"

// TestQuotaAcrossProcesses runs the quota race in two processes (this test
// binary again) sharing one file.
func TestQuotaAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ganger.db")
	s := open(t, path) // migrated before the children start
	defer s.Close()
	goFile := filepath.Join(dir, "go")

	const procs, perProc = 2, 10
	outs := make([]strings.Builder, procs)
	cmds := make([]*exec.Cmd, procs)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestQuotaHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|p%d|%d", helperEnv, path, goFile, i, perProc))
		cmd.Stdout = &outs[i]
		cmd.Stderr = &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	// Both have opened the file when both ready files exist.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		ready := 0
		for i := range procs {
			if _, err := os.Stat(fmt.Sprintf("%s.ready.p%d", goFile, i)); err == nil {
				ready++
			}
		}
		if ready == procs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper processes never got ready")
		}
	}
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i].String())
		}
		var n int
		for line := range strings.Lines(outs[i].String()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "created="); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		t.Logf("process %d created %d", i, n)
		total += n
	}
	if total != 2 {
		t.Fatalf("%d processes × %d concurrent creates with perOwner 2 created %d, want 2", procs, perProc, total)
	}
	rs, err := s.List(t.Context(), instance.Filter{Owner: "racer"})
	if err != nil || len(rs) != 2 {
		t.Fatalf("List: %d records, %v; want 2", len(rs), err)
	}
}

// TestQuotaHelperProcess is one process of TestQuotaAcrossProcesses.
func TestQuotaHelperProcess(t *testing.T) {
	v := os.Getenv(helperEnv)
	if v == "" {
		t.Skip("helper process for TestQuotaAcrossProcesses")
	}
	f := strings.Split(v, "|")
	path, goFile, prefix := f[0], f[1], f[2]
	n, _ := strconv.Atoi(f[3])
	s := open(t, path)
	defer s.Close()
	if err := os.WriteFile(goFile+".ready."+prefix, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never told to go")
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	created := 0
	for i := range n {
		wg.Go(func() {
			r := instance.Record{ID: fmt.Sprintf("%s-%d", prefix, i), Service: "redis", Owner: "racer",
				State: instance.Starting, CreatedAt: time.Now()}
			err := s.Create(context.Background(), r, 2)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case !errors.Is(err, instance.ErrQuota):
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	fmt.Printf("created=%d\n", created)
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ganger.db")
	s := open(t, path)
	r := instance.Record{ID: "keep", Service: "redis", Owner: "o", State: instance.Running,
		Ports: map[int]int{6379: 40000}, CreatedAt: time.Now()}
	if err := s.Create(t.Context(), r, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(t.Context(), "keep", func(r *instance.Record) error { r.Extensions = 2; return nil }); err != nil {
		t.Fatal(err)
	}
	// The file and its WAL companions are the owner's only.
	for _, name := range []string{"ganger.db", "ganger.db-wal", "ganger.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, perm)
		}
	}
	var mode string
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", mode, err)
	}
	var busy int
	if err := s.db.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != int(busyTimeout.Milliseconds()) {
		t.Errorf("busy_timeout %d, %v; want %d", busy, err, busyTimeout.Milliseconds())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		s = open(t, path)
		got, err := s.Get(t.Context(), "keep")
		if err != nil {
			t.Fatalf("after reopening: %v", err)
		}
		if got.Extensions != 2 || got.Version != 2 || got.Ports[6379] != 40000 {
			t.Errorf("after reopening: %+v", got)
		}
		// The quota still counts it.
		r2 := r
		r2.ID = "second"
		if err := s.Create(t.Context(), r2, 1); !errors.Is(err, instance.ErrQuota) {
			t.Errorf("after reopening, a create over the quota: %v", err)
		}
		var versions int
		if err := s.db.QueryRow(`SELECT count(*) FROM schema_version`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		ms, err := store.LoadMigrations(migrations)
		if err != nil {
			t.Fatal(err)
		}
		if versions != len(ms) {
			t.Errorf("schema_version has %d rows, want %d (one per migration)", versions, len(ms))
		}
		s.Close()
	}
}

func TestSchemaNewer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ganger.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_version (version, name, applied_at) VALUES (999, '0999_future.sql', 'later')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer schema succeeded")
	}
	if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "999") {
		t.Errorf("Open: %v; want ErrSchemaNewer naming version 999", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
	if s, err := Open(filepath.Join(t.TempDir(), "missing", "dir", "ganger.db")); err == nil {
		s.Close()
		t.Error("Open in a missing directory succeeded")
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := store.LoadMigrations(migrations)
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(ms), err)
	}
	gap := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("SELECT 1")},
		"migrations/0003_c.sql": {Data: []byte("SELECT 1")},
	}
	if _, err := store.LoadMigrations(gap); err == nil {
		t.Error("migrations with a gap loaded")
	}
}
