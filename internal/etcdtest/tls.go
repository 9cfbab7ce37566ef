package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// ClientTLS names the PEM files a client of a TLS server needs: the CA
// that signed the server's certificate, and a client certificate (with
// its key) that the server accepts.
type ClientTLS struct{ CA, Cert, Key string }

// NewTLS is New for a server that serves its clients over TLS only and
// requires a client certificate signed by its own CA; the certificates are
// made in its directory and named by ClientTLS.
func NewTLS(t testing.TB) *Etcd {
	t.Helper()
	e, err := start(true)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	cleanup(t, e)
	return e
}

// ClientTLS is what a client needs to reach a server made by NewTLS; nil
// for a plain one.
func (e *Etcd) ClientTLS() *ClientTLS { return e.tls }

// makePKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir (dockertest's PKI: one maker of test
// certificates); it returns the server's files and the client's.
func makePKI(dir string) (server, client *ClientTLS, err error) {
	p, err := dockertest.NewPKI(dir, "127.0.0.1", "localhost")
	if err != nil {
		return nil, nil, err
	}
	return &ClientTLS{CA: p.CA, Cert: p.ServerCert, Key: p.ServerKey}, &ClientTLS{CA: p.CA, Cert: p.ClientCert, Key: p.ClientKey}, nil
}

func (c *ClientTLS) tlsConfig() (*tls.Config, error) {
	pemCA, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}
