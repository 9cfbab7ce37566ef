package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/server"
)

// handshakeTimeout bounds check's TLS handshake with one daemon.
const handshakeTimeout = 5 * time.Second

func check(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("check", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return fmt.Errorf("%s: %d error(s)", path, len(errs))
	}
	if err != nil {
		return err
	}
	tlsErrs, tlsWarns := checkTLS(path, cfg.Daemons, stderr)
	for _, e := range tlsErrs {
		fmt.Fprintln(stderr, e)
	}
	if len(tlsErrs) > 0 {
		return fmt.Errorf("%s: %d error(s)", path, len(tlsErrs))
	}
	warns := cfg.Warnings()
	for _, w := range tlsWarns {
		warns = append(warns, w.Error())
	}
	for _, w := range warns {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "%s: ok (node %s, %d daemon(s), %d service(s), %d warning(s))\n", path, cfg.Node, len(cfg.Daemons), len(cfg.Services), len(warns))
	return nil
}

// checkTLS checks the TLS files of every tcp:// daemon that has them, the
// daemons side by side: first what can be known offline (see tlsFiles),
// then, with a daemon that answers, the handshake itself. A daemon that
// does not answer is noted on notes; its files are checked offline only.
func checkTLS(file string, daemons []config.Daemon, notes io.Writer) (errs, warns []config.Error) {
	reports := make([]tlsReport, len(daemons))
	var wg sync.WaitGroup
	for i, dc := range daemons {
		if u, err := url.Parse(dc.Host); dc.TLS == nil || err != nil || u.Scheme != "tcp" {
			continue
		}
		wg.Go(func() { reports[i] = checkDaemonTLS(file, i, dc) })
	}
	wg.Wait()
	for _, r := range reports {
		errs = append(errs, r.errs...)
		warns = append(warns, r.warns...)
		if r.note != "" {
			fmt.Fprintln(notes, "note:", r.note)
		}
	}
	return errs, warns
}

// tlsReport is what check found of one daemon's TLS.
type tlsReport struct {
	errs, warns []config.Error
	note        string
}

func checkDaemonTLS(file string, i int, dc config.Daemon) tlsReport {
	var r tlsReport
	p := fmt.Sprintf("daemons[%d].tls.", i)
	f := tlsFiles{file: file, path: p, tls: *dc.TLS}
	signed := f.check()
	if r.errs = f.errs; len(r.errs) > 0 {
		return r
	}
	err := handshake(dc)
	switch {
	case errors.Is(err, docker.ErrTLS):
		r.errs = append(r.errs, config.Error{File: file, Path: p[:len(p)-1], Msg: err.Error()})
	case err != nil:
		r.note = fmt.Sprintf("daemons[%d] (%s) not reached, its TLS files checked offline only: %v", i, dc.Name, err)
		if !signed {
			r.warns = append(r.warns, config.Error{File: file, Path: p + "cert", Msg: fmt.Sprintf("%s is not signed by the CA in %s (tls.ca): the daemon accepts it only if it trusts the CA that signed it (its --tlscacert)", dc.TLS.Cert, dc.TLS.CA)})
		}
	}
	return r
}

// handshake pings the daemon, as `ganger serve` does at start-up.
func handshake(dc config.Daemon) error {
	d, err := docker.New(server.DockerConfig(dc), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	_, err = d.Ping(ctx)
	return err
}

// tlsFiles checks a daemon's client TLS files offline: what Ganger holds
// and can judge alone. Whether the daemon's certificate is signed by
// tls.ca, and whether the daemon trusts the CA that signed tls.cert, only
// the handshake tells.
type tlsFiles struct {
	file, path string // the config file; "daemons[i].tls."
	tls        config.TLS
	errs       []config.Error
}

func (f *tlsFiles) fail(key, format string, args ...any) {
	f.errs = append(f.errs, config.Error{File: f.file, Path: f.path + key, Msg: fmt.Sprintf(format, args...)})
}

// check reports whether tls.cert is signed by tls.ca, after collecting
// on f.errs what is certainly wrong: a CA file with no certificate, a
// certificate and key that do not make a pair, a certificate out of its
// validity or not for a client.
func (f *tlsFiles) check() (signed bool) {
	cas, err := loadCerts(f.tls.CA)
	if err != nil {
		f.fail("ca", "%s: %v", f.tls.CA, err)
	}
	for _, c := range cas {
		f.current("ca", f.tls.CA, c)
	}
	chain, err := loadCerts(f.tls.Cert)
	if err != nil {
		f.fail("cert", "%s: %v", f.tls.Cert, err)
		return false
	}
	if _, err := tls.LoadX509KeyPair(f.tls.Cert, f.tls.Key); err != nil {
		f.fail("key", "%s is not the private key of %s (tls.cert): %v", f.tls.Key, f.tls.Cert, err)
	}
	leaf := chain[0]
	f.current("cert", f.tls.Cert, leaf)
	if len(leaf.ExtKeyUsage) > 0 && !slices.ContainsFunc(leaf.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
		return u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}) {
		f.fail("cert", "%s is not for client authentication (its extended key usage): the daemon will refuse it", f.tls.Cert)
	}
	return len(cas) > 0 && signedBy(chain, cas)
}

// current fails key if c is out of its validity period.
func (f *tlsFiles) current(key, file string, c *x509.Certificate) {
	switch now := time.Now(); {
	case now.After(c.NotAfter):
		f.fail(key, "%s: certificate %q expired on %s", file, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		f.fail(key, "%s: certificate %q is not valid before %s", file, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
}

// signedBy reports whether chain's first certificate chains up to one of
// cas, through the rest of chain.
func signedBy(chain, cas []*x509.Certificate) bool {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// loadCerts returns the certificates of a PEM file, in order.
func loadCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for b, rest := pem.Decode(data); b != nil; b, rest = pem.Decode(rest) {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return out, nil
}

// configFlag parses the one flag serve and check take, --config FILE.
func configFlag(cmd string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig(), "config file (default: $GANGER_CONFIG, else "+systemConfig+" if it exists)")
	if err := fs.Parse(args); err != nil {
		return "", errUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: ganger %s --config FILE (or GANGER_CONFIG, or %s)\n", cmd, systemConfig)
		return "", errUsage
	}
	return *path, nil
}

// systemConfig is where a packaged Ganger (its image, its systemd unit)
// keeps its config.
const systemConfig = "/etc/ganger/ganger.yaml"

// defaultConfig is the config file when --config is not given:
// $GANGER_CONFIG, else systemConfig if it exists, else none.
func defaultConfig() string {
	if p := os.Getenv("GANGER_CONFIG"); p != "" {
		return p
	}
	if _, err := os.Stat(systemConfig); err == nil {
		return systemConfig
	}
	return ""
}
