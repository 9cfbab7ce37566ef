package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
// certificate into dir; it returns the server's files and the client's.
func makePKI(dir string) (server, client *ClientTLS, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	caTmpl := template("etcdtest CA")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca := filepath.Join(dir, "ca.pem")
	if err := writePEM(ca, "CERTIFICATE", caDER); err != nil {
		return nil, nil, err
	}
	srv := template("etcdtest server")
	srv.IPAddresses, srv.DNSNames = []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}
	srv.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	cli := template("etcdtest client")
	cli.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	server, client = &ClientTLS{CA: ca}, &ClientTLS{CA: ca}
	for _, c := range []struct {
		tmpl *x509.Certificate
		into *ClientTLS
		name string
	}{{srv, server, "server"}, {cli, client, "client"}} {
		c.into.Cert, c.into.Key = filepath.Join(dir, c.name+"-cert.pem"), filepath.Join(dir, c.name+"-key.pem")
		if err := issue(c.tmpl, caCert, caKey, c.into.Cert, c.into.Key); err != nil {
			return nil, nil, err
		}
	}
	return server, client, nil
}

func template(cn string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return &x509.Certificate{SerialNumber: serial,
		Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
}

// issue signs tmpl with the CA and writes the certificate and its key.
func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(keyFile, "PRIVATE KEY", kb)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// tlsConfig is a client's configuration for c's files.
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
