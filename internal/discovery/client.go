package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is where keys live when Options.Prefix is empty.
const DefaultPrefix = "/ganger/"

// Options says how to reach etcd.
type Options struct {
	// Endpoints are etcd's client URLs (http:// or https://).
	Endpoints []string
	// Prefix comes before every key: <prefix>hosts/<name>,
	// <prefix>nodes/<node>. If empty, DefaultPrefix; a missing final "/"
	// is added.
	Prefix string
	// TLS: client certificates and the CA that signed etcd's; nil: none.
	TLS *TLSFiles
	// Username and Password, when etcd's authentication is on.
	Username, Password string
	// Log receives what discovery has to say; nil: nothing is logged.
	Log *slog.Logger
}

// TLSFiles names the PEM files of etcd's client TLS. Any may be empty: no
// CA means the system's roots, no Cert and Key no client certificate.
type TLSFiles struct{ CA, Cert, Key string }

// Client is a connection to etcd. It owns the goroutines that keep its
// registrations alive; Close ends them.
type Client struct {
	etcd   *clientv3.Client
	prefix string
	log    *slog.Logger
	timing timing

	ctx    context.Context // ends at Close: registrations' keepalive loops
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// timing holds the client's delays; tests shorten them.
type timing struct {
	request    time.Duration // deadline of one request: a dead endpoint never blocks longer
	probe      time.Duration // how often a watch checks that etcd answers
	backoffMin time.Duration // first wait before a retry (jittered, doubled up to backoffMax)
	backoffMax time.Duration
}

var defaultTiming = timing{request: 5 * time.Second, probe: 5 * time.Second,
	backoffMin: 200 * time.Millisecond, backoffMax: 5 * time.Second}

// Connect makes a client for o's endpoints and checks, within ctx, that one
// of them answers.
func Connect(ctx context.Context, o Options) (*Client, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoint")
	}
	tc, err := o.TLS.config()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: defaultTiming.request,
		// gRPC pings find a connection that died without a word (a
		// partition) so that watches and keepalives move on; etcd refuses
		// pings more often than every 5s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		TLS:                  tc,
		Username:             o.Username,
		Password:             o.Password,
		// The client's own retries would log a line per attempt; what
		// matters is logged here, through o.Log.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Client{etcd: cli, prefix: normalPrefix(o.Prefix), log: log.With("component", "discovery"), timing: defaultTiming}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ping asks each endpoint for its status until one answers.
func (c *Client) ping(ctx context.Context) error {
	var errs []error
	for _, ep := range c.etcd.Endpoints() {
		rctx, cancel := context.WithTimeout(ctx, c.timing.request)
		_, err := c.etcd.Status(rctx, ep)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return fmt.Errorf("no etcd endpoint answers: %w", errors.Join(errs...))
}

// Prefix is the prefix of every key the client reads and writes.
func (c *Client) Prefix() string { return c.prefix }

// Close stops keeping registrations alive (without revoking them: their
// keys go when their leases expire; Revoke first to remove them at once)
// and closes the connection.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return c.etcd.Close()
}

func normalPrefix(p string) string {
	if p == "" {
		return DefaultPrefix
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// config reads the files into a tls.Config; nil for nil.
func (f *TLSFiles) config() (*tls.Config, error) {
	if f == nil {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd tls ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd tls ca %s: no PEM certificate", f.CA)
		}
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd tls cert/key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
