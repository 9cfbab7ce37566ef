package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// A setting that weakens isolation is printed as a warning; the file is
// still valid, so check exits 0.
func TestCheckWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warn.yaml")
	y := "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: x\n    port: 7777\n    limits:\n      cap_add: [sys_admin]\n"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "check", "--config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	want := "warning: " + path + ":7: services[0].limits.cap_add[0]: sys_admin lets the container"
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "ok (") {
		t.Fatalf("got:\n%s\nwant a line starting:\n%s\nand ok", out, want)
	}
}

// tlsConfig writes a config whose one daemon is at host with the given TLS
// files, and returns its path.
func tlsConfig(t *testing.T, host, ca, cert, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tls.yaml")
	y := fmt.Sprintf("daemons:\n  - name: remote\n    host: %s\n    tls: {ca: %q, cert: %q, key: %q}\nservices:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: x\n    port: 7777\n", host, ca, cert, key)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPort is a tcp:// address on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "tcp://" + ln.Addr().String()
}

// checkOut runs ganger check on path and returns its output and whether it
// passed.
func checkOut(t *testing.T, path string) (string, bool) {
	t.Helper()
	out, err := exec.Command(binary, "check", "--config", path).CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return string(out), err == nil
}

// What check can know of a daemon's TLS files without the daemon: the CA
// parses, the certificate and key make a pair, the certificate is for a
// client. Whether the daemon trusts the client certificate's CA it cannot
// know: a certificate that tls.ca did not sign is only a warning.
func TestCheckTLSFilesOffline(t *testing.T) {
	pki, err := dockertest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		ok            bool
		want          string // a line of the output, after the config's path
	}{
		{"good", pki.CA, pki.ClientCert, pki.ClientKey, true, ": ok (node"},
		{"client certificate of another CA", pki.CA, pki.WrongClientCert, pki.WrongClientKey, true,
			": daemons[0].tls.cert: " + pki.WrongClientCert + " is not signed by the CA in " + pki.CA + " (tls.ca): the daemon accepts it only if"},
		{"CA not PEM", notPEM, pki.ClientCert, pki.ClientKey, false,
			": daemons[0].tls.ca: " + notPEM + ": no PEM certificate in it"},
		{"key of another certificate", pki.CA, pki.ClientCert, pki.WrongClientKey, false,
			": daemons[0].tls.key: " + pki.WrongClientKey + " is not the private key of " + pki.ClientCert + " (tls.cert)"},
		{"server certificate as the client's", pki.CA, pki.ServerCert, pki.ServerKey, false,
			": daemons[0].tls.cert: " + pki.ServerCert + " is not for client authentication"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tlsConfig(t, closedPort(t), tc.ca, tc.cert, tc.key)
			out, ok := checkOut(t, path)
			if ok != tc.ok || !strings.Contains(out, path+tc.want) {
				t.Fatalf("passed %v, got:\n%s\nwant passed %v and a line with:\n%s", ok, out, tc.ok, path+tc.want)
			}
			if tc.ok && !strings.Contains(out, "note: daemons[0] (remote) not reached, its TLS files checked offline only") {
				t.Fatalf("got:\n%s\nwant a note that the daemon was not reached", out)
			}
		})
	}
}

// With a daemon that answers, check makes the handshake, as serve's
// start-up would: a wrong CA, or a client certificate the daemon does not
// trust, is an error naming the daemon and the file.
func TestCheckTLSHandshake(t *testing.T) {
	dockertest.Daemon(t) // skips under GANGER_SKIP_DOCKER
	// Number 10: no other package's extra daemon has it.
	d, err := dockertest.StartTLS(10, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	pki := d.PKI
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		ok            bool
		want          string
	}{
		{"good", pki.CA, pki.ClientCert, pki.ClientKey, true, ": ok (node"},
		{"wrong CA", pki.WrongCA, pki.ClientCert, pki.ClientKey, false,
			": daemons[0].tls: ping daemon remote (" + d.TCP + "): TLS handshake failed: the daemon's certificate is not trusted by the CA in " + pki.WrongCA + " (tls.ca)"},
		{"client certificate of another CA", pki.CA, pki.WrongClientCert, pki.WrongClientKey, false,
			": daemons[0].tls: ping daemon remote (" + d.TCP + "): TLS handshake failed: the daemon refused Ganger's client certificate " + pki.WrongClientCert + " (tls.cert)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tlsConfig(t, d.TCP, tc.ca, tc.cert, tc.key)
			out, ok := checkOut(t, path)
			if ok != tc.ok || !strings.Contains(out, path+tc.want) {
				t.Fatalf("passed %v, got:\n%s\nwant passed %v and a line with:\n%s", ok, out, tc.ok, path+tc.want)
			}
			if strings.Contains(out, "note:") || strings.Contains(out, "warning:") {
				t.Fatalf("got:\n%s\nwant no note and no warning: the daemon answered", out)
			}
		})
	}
}
