package session

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/time/rate"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
)

// Refusals at admission, before any container is considered.
var (
	errUntrustedProxy = ganger.Fail(ganger.RefusedProxy, errors.New("PROXY protocol required, and the peer is not a trusted proxy"))
	errPerIP          = ganger.Fail(ganger.RefusedPerIP, errors.New("client address has per_ip sessions already"))
	errPerIPRate      = ganger.Fail(ganger.RefusedRate, errors.New("client address is over per_ip_rate"))
)

// proxyHeaderTimeout bounds the wait for a PROXY header.
const proxyHeaderTimeout = 5 * time.Second

// proxyHeader reads the PROXY protocol header (v1 or v2) of conn, which must
// come from a trusted proxy, and returns the real client's address, any
// bytes read past the header, and the header's length (the kernel counts
// it among the bytes received: it is not the client's).
func proxyHeader(conn *net.TCPConn, trusted []netip.Prefix) (netip.AddrPort, []byte, int64, error) {
	peer := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	if !contains(trusted, peer.Addr().Unmap()) {
		return peer, nil, 0, errUntrustedProxy
	}
	cr := &countingReader{r: conn}
	br := bufio.NewReader(cr)
	h, err := proxyproto.ReadHeaderTimeout(conn, br, proxyHeaderTimeout)
	if err != nil {
		return peer, nil, 0, ganger.Fail(ganger.RefusedProxy, fmt.Errorf("bad or missing PROXY header: %w", err))
	}
	rest, _ := br.Peek(br.Buffered())
	client := peer
	if src, _, ok := h.TCPAddrs(); ok && h.Command.IsProxy() {
		client = src.AddrPort()
	}
	return client, rest, cr.n - int64(len(rest)), nil
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipLimits caps concurrent and new sessions per client address.
type ipLimits struct {
	max   int // concurrent; 0: none
	rate  rate.Limit
	burst int

	mu       sync.Mutex
	live     map[netip.Addr]int
	limiters map[netip.Addr]*rate.Limiter
}

func newIPLimits(c config.Service) *ipLimits {
	return &ipLimits{
		max: c.PerIP, rate: rate.Limit(c.PerIPRate.Rate), burst: c.PerIPRate.Burst,
		live: map[netip.Addr]int{}, limiters: map[netip.Addr]*rate.Limiter{},
	}
}

// admit counts one more session from ip, or says why not. The caller must
// call done once the session ends, if admit returned nil.
func (l *ipLimits) admit(ip netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.live[ip] >= l.max {
		return errPerIP
	}
	if l.rate > 0 && !l.limiter(ip).Allow() {
		return errPerIPRate
	}
	l.live[ip]++
	return nil
}

func (l *ipLimits) done(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live[ip]--; l.live[ip] <= 0 {
		delete(l.live, ip)
	}
}

// limiter returns ip's token bucket. Buckets that are full again are
// forgotten once there are many, so memory stays bounded.
func (l *ipLimits) limiter(ip netip.Addr) *rate.Limiter {
	if lim := l.limiters[ip]; lim != nil {
		return lim
	}
	if len(l.limiters) >= 4096 {
		now := time.Now()
		for a, lim := range l.limiters {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.limiters, a)
			}
		}
	}
	lim := rate.NewLimiter(l.rate, l.burst)
	l.limiters[ip] = lim
	return lim
}
