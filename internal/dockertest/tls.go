package dockertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PKI is a test's certificates, as PEM files in one directory: a CA; a
// server certificate it signs for 127.0.0.1, localhost and the hosts
// asked for; a client certificate it signs; and a second, unrelated CA
// (the wrong CA) with a client certificate of its own, neither of which a
// daemon started with CA trusts.
type PKI struct {
	CA                    string // ca.pem
	ServerCert, ServerKey string // server-cert.pem, server-key.pem
	ClientCert, ClientKey string // cert.pem, key.pem
	WrongCA               string // wrong-ca.pem
	// WrongClientCert and WrongClientKey are a client certificate signed
	// by the wrong CA.
	WrongClientCert, WrongClientKey string
}

// NewPKI makes the certificates in dir. The certificates are valid from an
// hour ago for a day.
func NewPKI(dir string, hosts ...string) (*PKI, error) {
	p := &PKI{
		CA:              filepath.Join(dir, "ca.pem"),
		ServerCert:      filepath.Join(dir, "server-cert.pem"),
		ServerKey:       filepath.Join(dir, "server-key.pem"),
		ClientCert:      filepath.Join(dir, "cert.pem"),
		ClientKey:       filepath.Join(dir, "key.pem"),
		WrongCA:         filepath.Join(dir, "wrong-ca.pem"),
		WrongClientCert: filepath.Join(dir, "wrong-cert.pem"),
		WrongClientKey:  filepath.Join(dir, "wrong-key.pem"),
	}
	ca, err := newCA("ganger test CA", p.CA)
	if err != nil {
		return nil, err
	}
	wrong, err := newCA("ganger test wrong CA", p.WrongCA)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		by        *issuer
		tmpl      *x509.Certificate
		cert, key string
	}{
		{ca, serverTemplate(hosts), p.ServerCert, p.ServerKey},
		{ca, clientTemplate("ganger test client"), p.ClientCert, p.ClientKey},
		{wrong, clientTemplate("ganger test wrong client"), p.WrongClientCert, p.WrongClientKey},
	} {
		if err := c.by.issue(c.tmpl, c.cert, c.key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// issuer is a CA that signs certificates.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newCA makes a self-signed CA and writes its certificate to certFile.
func newCA(name, certFile string) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := template(name)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &issuer{cert: cert, key: key}, writePEM(certFile, "CERTIFICATE", der)
}

// issue signs tmpl with a fresh key and writes the certificate and the key.
func (ca *issuer) issue(tmpl *x509.Certificate, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("sign %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(keyFile, "EC PRIVATE KEY", keyDER)
}

func template(name string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func serverTemplate(hosts []string) *x509.Certificate {
	t := template("ganger test daemon")
	t.KeyUsage = x509.KeyUsageDigitalSignature
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	t.DNSNames = []string{"localhost"}
	t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, h)
		}
	}
	return t
}

func clientTemplate(name string) *x509.Certificate {
	t := template(name)
	t.KeyUsage = x509.KeyUsageDigitalSignature
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return t
}

func writePEM(path, typ string, der []byte) error {
	mode := os.FileMode(0o644)
	if typ != "CERTIFICATE" {
		mode = 0o600
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// TLSDaemon is an extra daemon that serves its API over TLS with
// --tlsverify, as a remote host's daemon would: Ganger reaches it at TCP
// with PKI's CA and client certificate, and the ports it publishes at IP.
// Its unix socket (Host) is for the test's own calls and clean-up.
type TLSDaemon struct {
	*Extra
	TCP string // tcp://10.252.i.2:2376
	IP  string // 10.252.i.2: its API's and its published ports' address
	PKI *PKI
}

// tlsPort is the TLS daemon's API port (Docker's usual one for TLS).
const tlsPort = "2376"

// StartTLS starts extra daemon number i (see StartExtra; the same number
// space) serving its API with --tlsverify on tcp://10.252.i.2:2376, with
// the certificates of a PKI of its own, and --userland-proxy=false; it
// loads the demo image into it unless bare. Stop stops it and removes
// everything it made, its network namespace included.
//
// It runs in a network namespace of its own, joined to the host by a veth
// pair. With the userland proxy off, Docker publishes ports through
// iptables alone, and a dockerd with iptables on flushes Docker's chains
// when it starts: in the host's namespace it would wipe the local daemon's
// port mappings and isolation rules under every test running alongside.
// In its own namespace the chains, and its docker0, are its own; its API
// and its published ports are reached at 10.252.i.2, as a remote host's.
func StartTLS(i int, bare bool) (*TLSDaemon, error) {
	e := newExtra(i)
	e.Name = fmt.Sprintf("tls%d", i)
	n := &tlsNet{
		ns:     fmt.Sprintf("gtls%d", i),
		hostIf: fmt.Sprintf("gtlsh%d", i),
		peerIf: fmt.Sprintf("gtlsp%d", i),
		hostIP: fmt.Sprintf("10.252.%d.1", i),
		peerIP: fmt.Sprintf("10.252.%d.2", i),
	}
	e.tls = n
	setup := func() error {
		dir := filepath.Join(e.root, "tls")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		pki, err := NewPKI(dir, n.peerIP)
		if err != nil {
			return err
		}
		n.pki = pki
		return n.setup()
	}
	if err := e.boot(setup, bare); err != nil {
		return nil, err
	}
	return &TLSDaemon{Extra: e, TCP: "tcp://" + net.JoinHostPort(n.peerIP, tlsPort), IP: n.peerIP, PKI: n.pki}, nil
}

// tlsNet is what a TLS daemon has beyond an Extra's: a network namespace
// reached over a veth pair, and certificates.
type tlsNet struct {
	ns, hostIf, peerIf string
	hostIP, peerIP     string
	pki                *PKI
}

// setup makes the namespace and the veth pair.
func (n *tlsNet) setup() error {
	for _, args := range [][]string{
		{"netns", "add", n.ns},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", n.peerIf},
		{"link", "set", n.peerIf, "netns", n.ns},
		{"addr", "add", n.hostIP + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.ns, "addr", "add", n.peerIP + "/30", "dev", n.peerIf},
		{"-n", n.ns, "link", "set", n.peerIf, "up"},
		{"-n", n.ns, "link", "set", "lo", "up"},
		{"-n", n.ns, "route", "add", "default", "via", n.hostIP},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// command is dockerd in the namespace (nsenter joins the network
// namespace alone: `ip netns exec` would also remount /sys, and the cgroup
// file systems under it with it), serving TLS besides the unix socket.
func (n *tlsNet) command(args []string) *exec.Cmd {
	args = append(args,
		"--host", "tcp://"+net.JoinHostPort(n.peerIP, tlsPort),
		"--tlsverify",
		"--tlscacert", n.pki.CA,
		"--tlscert", n.pki.ServerCert,
		"--tlskey", n.pki.ServerKey,
		"--userland-proxy=false",
	)
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.ns, "dockerd"}, args...)...)
}

// cleanup removes the veth pair and the namespace, with the iptables
// chains and the docker0 the daemon made there.
func (n *tlsNet) cleanup() {
	exec.Command("ip", "link", "del", n.hostIf).Run()
	exec.Command("ip", "netns", "del", n.ns).Run()
}
