package server_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

func TestEcho(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hello from %h"]`))
	c := h.dial("echo")
	r := bufio.NewReader(c)
	if got := readLine(t, c, r); !strings.HasPrefix(got, "hello from ") {
		t.Fatalf("got banner %q; want hello from <host>", got)
	}
	fmt.Fprintln(c, "ping")
	if got := readLine(t, c, r); got != "ping" {
		t.Fatalf("got %q; want %q", got, "ping")
	}
	owned := dockertest.Owned(t, h.d, h.node)
	if len(owned) != 1 {
		t.Fatalf("got %d containers during the session; want 1", len(owned))
	}
	for _, l := range []string{ganger.LabelManaged, ganger.LabelService, ganger.LabelOwner, ganger.LabelSession} {
		if owned[0].Labels[l] == "" {
			t.Errorf("container lacks label %s: %v", l, owned[0].Labels)
		}
	}
	c.Close()
	h.waitNoContainers()
	end := h.waitLog("session end", "outcome=closed")
	for _, k := range []string{"session=", "client=", "service=echo", "daemon=local", "container=", "ready=", "bytes_in=5", "bytes_out=", "duration="} {
		if !strings.Contains(end, k) {
			t.Errorf("end line lacks %s: %s", k, end)
		}
	}
}

func TestTwoSessionsGetDistinctContainers(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "%h"]`))
	a, b := h.dial("echo"), h.dial("echo")
	hostA := readLine(t, a, bufio.NewReader(a))
	hostB := readLine(t, b, bufio.NewReader(b))
	if hostA == hostB || hostA == "" {
		t.Fatalf("both sessions answered by %q; want distinct containers", hostA)
	}
	owned := dockertest.Owned(t, h.d, h.node)
	if len(owned) != 2 || owned[0].Labels[ganger.LabelSession] == owned[1].Labels[ganger.LabelSession] {
		t.Fatalf("got containers %+v; want two with distinct sessions", owned)
	}
	a.Close()
	b.Close()
	h.waitNoContainers()
}

// Twenty at once, with the reconciler running every 50ms: it must never
// take a container that is starting or serving.
func TestTwentyParallelClients(t *testing.T) {
	h := start(t, svc("echo", `[]`), opts{top: "reconcile: 50ms\n"})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			c := h.dial("echo")
			defer c.Close()
			msg := fmt.Sprintf("client %d\n", i)
			io.WriteString(c, msg)
			c.CloseWrite()
			got := expectClosed(t, c)
			if string(got) != msg {
				errs <- fmt.Errorf("client %d got %q; want %q", i, got, msg)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.waitNoContainers()
	if n := len(h.logs.Lines("session end", "outcome=closed")); n != 20 {
		t.Errorf("got %d closed sessions; want 20", n)
	}
	if n := len(h.logs.Lines("reconcile: removed orphan")); n != 0 {
		t.Errorf("the reconciler removed %d containers of live sessions", n)
	}
}

// A slow service: bytes sent before it listens are kept and delivered, in
// order, even past the 64 KiB Ganger buffers (TCP flow control holds back
// the rest until the container is ready).
func TestSlowStartKeepsEarlyBytes(t *testing.T) {
	h := start(t, svc("slow", `["-delay", "1500ms", "-banner", "ready"]`))
	c := h.dial("slow")
	data := make([]byte, 300<<10)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	got := expectClosed(t, c)
	if want := append([]byte("ready\n"), data...); !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back; want the banner and the %d bytes sent early, in order", len(got), len(data))
	}
}

func TestContainerExitsBeforeReady(t *testing.T) {
	h := start(t, svc("dies", `["-delay", "1m", "-exit-after", "300ms", "-exit-code", "7"]`, "ready: {timeout: 2m}"))
	c := h.dial("dies")
	// The ready timeout is 2m: a close within 30s comes from the exit.
	expectClosed(t, c)
	line := h.waitLog("session end", "outcome=exited")
	if !strings.Contains(line, "exit_code=7") || !strings.Contains(line, "exiting with code 7") {
		t.Fatalf("end line lacks the exit code or the container's last output: %s", line)
	}
	h.waitNoContainers()
}

// A client that leaves while its container starts (RST, or FIN before
// sending anything): the start is abandoned and the container removed.
func TestClientLeavesDuringStart(t *testing.T) {
	for _, rst := range []bool{true, false} {
		t.Run(map[bool]string{true: "RST", false: "FIN"}[rst], func(t *testing.T) {
			h := start(t, svc("slow", `["-delay", "1m"]`, "ready: {timeout: 2m}"))
			c := h.dial("slow")
			dockertest.Eventually(t, 30*time.Second, "container never created", func() bool {
				return len(dockertest.Owned(t, h.d, h.node)) == 1
			})
			if rst {
				c.SetLinger(0)
			}
			c.Close()
			h.waitLog("session end", "outcome=client_gone")
			h.waitNoContainers()
		})
	}
}

// The client shuts its write side: the echo of all it sent still arrives.
func TestHalfCloseFromClient(t *testing.T) {
	h := start(t, svc("echo", `[]`))
	c := h.dial("echo")
	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	got := expectClosed(t, c)
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back; want the %d sent", len(got), len(data))
	}
}

// The container shuts its write side first: the client still delivers.
func TestHalfCloseFromContainer(t *testing.T) {
	h := start(t, svc("sink", `["-banner", "bye", "-close-write-first"]`))
	c := h.dial("sink")
	if got := expectClosed(t, c); string(got) != "bye\n" {
		t.Fatalf("got %q; want banner then EOF", got)
	}
	data := make([]byte, 256<<10)
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write after the container's EOF: %v", err)
	}
	c.CloseWrite()
	h.waitLog("session end", fmt.Sprintf("bytes_in=%d", len(data)), "outcome=closed")
}

func TestIdleTimeout(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`, "timeouts: {idle: 400ms}"))
	c := h.dial("echo")
	if got := expectClosed(t, c); string(got) != "hi\n" {
		t.Fatalf("got %q", got)
	}
	h.waitLog("session end", "outcome=idle")
	h.waitNoContainers()
}

// Traffic keeps the idle timer away, but not the session timeout.
func TestSessionTimeout(t *testing.T) {
	h := start(t, svc("echo", `[]`, "timeouts: {idle: 500ms, session: 2s}"))
	c := h.dial("echo")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := io.WriteString(c, "tick\n"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go io.Copy(io.Discard, c)
	<-done
	h.waitLog("session end", "outcome=timeout")
	if len(h.logs.Lines("outcome=idle")) > 0 {
		t.Fatal("an active session ended as idle")
	}
	h.waitNoContainers()
}
