package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// tlsDaemonNumber is the TLS daemon's number among the extra daemons on
// this machine (see privateExtras; other packages use other numbers).
const tlsDaemonNumber = 9

// A daemon reached over tcp:// with tls {ca, cert, key}, as a remote host's
// would be: a real dockerd with --tlsverify and the userland proxy off.
// Ganger places sessions there and dials their published ports; a CA that
// did not sign the daemon's certificate, or a client certificate the
// daemon does not trust, stops start-up with an error that says which.
func TestTLSDaemon(t *testing.T) {
	dockertest.Daemon(t) // skips under GANGER_SKIP_DOCKER
	d, err := dockertest.StartTLS(tlsDaemonNumber, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	t.Run("serves", func(t *testing.T) { tlsServes(t, d) })
	t.Run("wrong CA", func(t *testing.T) {
		err := tlsStartErr(t, d, d.PKI.WrongCA, d.PKI.ClientCert, d.PKI.ClientKey)
		wantTLSErr(t, err, d.Name, "the daemon's certificate is not trusted by the CA in "+d.PKI.WrongCA+" (tls.ca)")
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		err := tlsStartErr(t, d, d.PKI.CA, d.PKI.WrongClientCert, d.PKI.WrongClientKey)
		wantTLSErr(t, err, d.Name, "the daemon refused Ganger's client certificate "+d.PKI.WrongClientCert+" (tls.cert)")
	})
	// The config cannot leave tls.cert out (ganger check refuses it), so
	// this one is the backend's alone.
	t.Run("no client certificate", func(t *testing.T) {
		cfg := docker.Config{Name: d.Name, Host: d.TCP, TLS: &docker.TLS{CA: d.PKI.CA}, Advertise: d.IP, PublishIP: d.IP, Dial: ganger.DialPublished}
		b, err := docker.New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = b.Ping(ctx)
		wantTLSErr(t, err, d.Name, "the daemon asks for a client certificate, and tls.cert gives none")
	})
}

// tls: on a daemon's plain HTTP port is told as such, not as a daemon
// that does not answer.
func TestTLSToPlainHTTP(t *testing.T) {
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	pki, err := dockertest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	host := "tcp://" + plain.Listener.Addr().String()
	cfg := docker.Config{Name: "plain", Host: host, TLS: &docker.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}, Advertise: "127.0.0.1", PublishIP: "127.0.0.1", Dial: ganger.DialPublished}
	b, err := docker.New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Ping(t.Context())
	wantTLSErr(t, err, "plain", "the daemon does not speak TLS at that address")
}

// tlsServes runs a node on the TLS daemon alone and opens a session there.
func tlsServes(t *testing.T, d *dockertest.TLSDaemon) {
	var node string
	t.Cleanup(func() { // after the node's shutdown: cleanups run last first
		if node != "" {
			noneLeftOn(t, d.Extra, node)
		}
	})
	h := start(t, svc("echo", `["-banner", "hi"]`), opts{daemons: tlsDaemonYAML(d, d.PKI.CA, d.PKI.ClientCert, d.PKI.ClientKey)})
	node = h.node
	c := h.dial("echo")
	if got := readLine(t, c, newReader(c)); got != "hi" {
		t.Fatalf("got %q; want the banner", got)
	}
	list := dockertest.Owned(t, dockertest.DaemonAt(t, d.Host), h.node)
	if len(list) != 1 {
		t.Fatalf("%d of the node's containers on the TLS daemon; want the session's 1", len(list))
	}
	out, err := exec.Command("docker", "-H", d.Host, "port", list[0].ID, "7777/tcp").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), d.IP+":") {
		t.Fatalf("the session's port 7777 published at %q (%v); want on %s, where Ganger dials it", out, err, d.IP)
	}
}

// tlsStartErr is the start-up error of a node whose one daemon is d,
// reached with the given files.
func tlsStartErr(t *testing.T, d *dockertest.TLSDaemon, ca, cert, key string) error {
	t.Helper()
	err := startErr(t, svc("echo", `["-banner", "hi"]`), "daemons:\n"+tlsDaemonYAML(d, ca, cert, key))
	if err == nil {
		t.Fatal("the node started")
	}
	return err
}

func tlsDaemonYAML(d *dockertest.TLSDaemon, ca, cert, key string) string {
	return fmt.Sprintf("  - name: %s\n    host: %s\n    tls: {ca: %q, cert: %q, key: %q}\n    dial: published\n", d.Name, d.TCP, ca, cert, key)
}

// wantTLSErr fails t unless err is a TLS failure that names the daemon and
// says why.
func wantTLSErr(t *testing.T, err error, daemon, why string) {
	t.Helper()
	t.Log(err)
	if !errors.Is(err, docker.ErrTLS) {
		t.Errorf("got %v; want a TLS failure (docker.ErrTLS)", err)
	}
	if msg := fmt.Sprint(err); !strings.Contains(msg, "daemon "+daemon+" ") || !strings.Contains(msg, why) {
		t.Errorf("got:\n%v\nwant it to name daemon %s and say:\n%s", err, daemon, why)
	}
}
