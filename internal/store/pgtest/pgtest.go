// Package pgtest runs a real PostgreSQL server for tests: Debian's
// postgresql package (/usr/lib/postgresql/N/bin), initdb in a fresh
// temporary directory, the server as the unprivileged postgres user
// (when the tests run as root), on 127.0.0.1 and a free port, its output in
// a log file there, detached from the test's terminal.
//
// DSN(t) gives each caller a fresh database. In a package whose TestMain is
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// all its tests share one server, started on first use and stopped when
// the last test has run; elsewhere DSN starts a server for the test and
// stops it at its end. A server is stopped (immediate shutdown) and its
// directory removed; if the test binary dies first (a -timeout panic, a
// kill), the kernel's parent-death signal shuts the server down, and the
// next Start removes the directory it left.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ganger-dev/ganger/internal/servertest"
)

// BinGlob is where the server's binaries are looked for; PGTEST_BINDIR
// overrides it.
const BinGlob = "/usr/lib/postgresql/*/bin"

// Server is one running PostgreSQL server.
type Server struct {
	dir   string // temporary: data/, sock/, initdb.log, postgres.log
	bin   string
	port  int
	cred  *syscall.Credential // nil: run as ourselves
	cmd   *exec.Cmd
	exit  chan struct{} // closed when the postmaster has exited
	err   error         // its exit status, once exit is closed
	free  chan struct{} // lets go of the OS thread that started it
	stop  sync.Once
	start time.Duration // how long Start took
}

var shared struct {
	main bool // Main is running the tests
	once sync.Once
	srv  *Server
	err  error
}

// Main runs m's tests with one server shared by every DSN call (started on
// the first), stops it, and returns m.Run's exit code.
func Main(m *testing.M) int {
	shared.main = true
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// DSN returns the connection string of a new, empty database on a test
// server, dropped at t's end. It fails t (never skips) if the server cannot
// be run, naming `make test-deps` when the binaries are missing.
func DSN(t testing.TB) string {
	t.Helper()
	var srv *Server
	if shared.main {
		shared.once.Do(func() { shared.srv, shared.err = Start() })
		if shared.err != nil {
			t.Fatalf("pgtest: %v", shared.err)
		}
		srv = shared.srv
	} else {
		srv = NewServer(t)
	}
	return srv.Database(t)
}

// NewServer starts a server for t alone, stopped at t's end.
func NewServer(t testing.TB) *Server {
	t.Helper()
	srv, err := Start()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return srv
}

// Database creates a new, empty database on s, dropped at t's end, and
// returns its DSN.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "t_" + randomHex(8)
	if err := s.admin(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.admin(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.dsn(name)
}

// StartupTime is how long Start took for s.
func (s *Server) StartupTime() time.Duration { return s.start }

// Port is the TCP port s listens on (127.0.0.1).
func (s *Server) Port() int { return s.port }

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func (s *Server) admin(ctx context.Context, sql string) error {
	c, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// binDir finds the newest installed server's binaries.
func binDir() (string, error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("PGTEST_BINDIR=%s: %w", d, err)
		}
		return d, nil
	}
	initdbs, _ := filepath.Glob(filepath.Join(BinGlob, "initdb"))
	if len(initdbs) == 0 {
		return "", fmt.Errorf("PostgreSQL server binaries not found (%s/initdb): run `make test-deps` (scripts/ensure-test-deps.sh installs Debian's postgresql)", BinGlob)
	}
	version := func(p string) int { // /usr/lib/postgresql/15/bin/initdb
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	slices.SortFunc(initdbs, func(a, b string) int { return version(a) - version(b) })
	return filepath.Dir(initdbs[len(initdbs)-1]), nil
}

// Start initialises and starts a server; Stop stops it and removes its files.
func Start() (_ *Server, err error) {
	began := time.Now()
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 { // the server refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, the server needs the postgres user: %v; run `make test-deps`", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	sweep()
	s.dir, err = servertest.Dir("pgtest")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(s.dir)
		}
	}()
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return nil, err
	}
	data, sock := filepath.Join(s.dir, "data"), filepath.Join(s.dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(sock, uid, gid); err != nil {
		return nil, err
	}

	initLog := filepath.Join(s.dir, "initdb.log")
	if err := s.run(initLog, "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, servertest.Tail(initLog))
	}

	log := filepath.Join(s.dir, "postgres.log")
	for attempt := 1; ; attempt++ {
		err := s.startPostgres(data, sock, log)
		if err == nil {
			break
		}
		// Another process may have taken the port between our probe and
		// the server's bind: try another.
		if attempt < 5 && strings.Contains(servertest.Tail(log), "could not bind") {
			continue
		}
		return nil, fmt.Errorf("%v\n%s", err, servertest.Tail(log))
	}
	s.start = time.Since(began)
	return s, nil
}

// run runs one of the server's programs to its end, as the server's user,
// its output in the file log.
func (s *Server) run(log, name string, args ...string) error {
	out, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Stdout, cmd.Stderr = out, out // stdin: /dev/null
	cmd.Env = s.env()
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setsid: true}
	cmd.WaitDelay = time.Second
	return cmd.Run()
}

func (s *Server) env() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C", "HOME=" + s.dir, "TZ=UTC"}
}

// startPostgres starts the postmaster on a free port and waits until it
// accepts connections.
func (s *Server) startPostgres(data, sock, log string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", data,
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", sock,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning", "-c", "timezone=UTC")
	cmd.Stdout, cmd.Stderr = out, out // stdin: /dev/null
	cmd.Env = s.env()
	cmd.Dir = s.dir
	// Pdeathsig: if this process dies without stopping the server, the
	// kernel sends the postmaster SIGQUIT (immediate shutdown). It follows
	// the OS thread that forked, so that thread is kept until Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setsid: true, Pdeathsig: syscall.SIGQUIT}

	started := make(chan error, 1)
	free := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-free
		}
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd, s.port, s.free = cmd, port, free
	s.exit = make(chan struct{})
	go func() {
		s.err = cmd.Wait()
		close(s.exit)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-s.exit:
			close(free)
			return fmt.Errorf("postgres exited at start: %v", s.err)
		case <-ctx.Done():
			s.kill()
			return fmt.Errorf("postgres did not accept connections in 30s: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill stops the postmaster with SIGQUIT (immediate shutdown), then SIGKILL.
func (s *Server) kill() {
	servertest.Stop(s.cmd, s.exit, syscall.SIGQUIT, 10*time.Second)
	close(s.free)
}

// Stop stops the server (pg_ctl stop -m immediate), waits for it to exit and
// removes its directory.
func (s *Server) Stop() error {
	var err error
	s.stop.Do(func() {
		select {
		case <-s.exit:
			err = fmt.Errorf("postgres had exited before Stop: %v\n%s", s.err, servertest.Tail(filepath.Join(s.dir, "postgres.log")))
			close(s.free)
		default:
			ctlLog := filepath.Join(s.dir, "pg_ctl.log")
			if e := s.run(ctlLog, "pg_ctl", "stop", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "-t", "20"); e != nil {
				err = fmt.Errorf("pg_ctl stop: %v\n%s", e, servertest.Tail(ctlLog))
			}
			s.kill() // no-op but for the wait once pg_ctl has stopped it
		}
		if e := os.RemoveAll(s.dir); e != nil && err == nil {
			err = e
		}
	})
	return err
}

// sweep removes the directories of servers whose test process is gone
// without its cleanup (killed), unless their postmaster still runs.
func sweep() {
	servertest.Sweep("pgtest", func(dir string) bool {
		pm, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
		if err != nil {
			return false
		}
		line, _, _ := strings.Cut(string(pm), "\n")
		p, err := strconv.Atoi(line)
		return err == nil && syscall.Kill(p, 0) != syscall.ESRCH
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
