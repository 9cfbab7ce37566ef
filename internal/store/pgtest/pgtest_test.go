package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, dsn, q string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(ctx, q).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestServer starts a server of its own, gives two fresh databases, and
// checks that Stop leaves neither process nor directory behind.
func TestServer(t *testing.T) {
	srv, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server started in %v (initdb, postgres, first connection)", srv.StartupTime())
	if srv.StartupTime() > 2*time.Second {
		t.Logf("warning: start-up took over 2s")
	}
	dir, pid := srv.dir, srv.cmd.Process.Pid

	var a, b string
	t.Run("databases", func(t *testing.T) {
		dsnA, dsnB := srv.Database(t), srv.Database(t)
		if dsnA == dsnB {
			t.Fatalf("two calls gave the same database %s", dsnA)
		}
		query(t, dsnA, `SELECT current_database()`, &a)
		query(t, dsnB, `SELECT current_database()`, &b)
		var tables int
		query(t, dsnA, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`, &tables)
		if tables != 0 {
			t.Errorf("a fresh database has %d tables", tables)
		}
		var superuser bool
		query(t, dsnA, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`, &superuser)
		if !superuser {
			t.Error("the test role is not a superuser")
		}
	})
	// The databases are dropped at the end of the test that asked for them.
	var n int
	query(t, srv.dsn("postgres"), `SELECT count(*) FROM pg_database WHERE datname IN ('`+a+`', '`+b+`')`, &n)
	if n != 0 {
		t.Errorf("%d test databases left after their test", n)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Error("the data directory is root's: the server should run as postgres")
		}
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Stop: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !os.IsNotExist(err) {
		t.Errorf("postmaster %d still there after Stop", pid)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}

// TestDSN is DSN without Main: a server for the test alone.
func TestDSN(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dsn := DSN(t)
		var one int
		query(t, dsn, `SELECT 1`, &one)
		dir = filepath.Dir(filepath.Dir(socketOf(t, dsn)))
	})
	if dir != "" {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there after the test", dir)
		}
	}
}

func socketOf(t *testing.T, dsn string) string {
	var s string
	query(t, dsn, `SELECT current_setting('unix_socket_directories')`, &s)
	return filepath.Join(s, "x")
}
