package initd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// probe runs a check once: nil if it passes.
func (s *Supervisor) probe(ctx context.Context, c *Check) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	switch {
	case c.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return err
		}
		conn.Close()
		return nil
	case c.HTTP != "":
		return httpCheck(ctx, c.HTTP)
	default:
		return s.execCheck(ctx, c.Exec)
	}
}

// execCheck runs a command through the reaper (never exec.Cmd.Wait: the
// reaper owns every wait4) and passes if it exits 0 in time.
func (s *Supervisor) execCheck(ctx context.Context, argv []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	pid, done, err := s.reaper.Start(path, argv, &syscall.ProcAttr{Env: os.Environ(),
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		return err
	}
	select {
	case st := <-done:
		if !st.OK() {
			return fmt.Errorf("%s: %s", argv[0], st)
		}
		return nil
	case <-ctx.Done():
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s: timed out", argv[0])
	}
}

// httpCheck GETs the URL: a 2xx or 3xx status passes.
func httpCheck(ctx context.Context, raw string) error {
	code, _, err := httpDo(ctx, "GET", raw, "", nil, false)
	if err != nil {
		return fmt.Errorf("%s: %w", raw, err)
	}
	if code >= 400 {
		return fmt.Errorf("%s answered %d", raw, code)
	}
	return nil
}

// sleep waits d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
