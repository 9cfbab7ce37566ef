package session

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
)

// maxEarly bounds what is read from a client before its container is ready.
// Past it, reading stops and TCP flow control holds the client back.
const maxEarly = 64 << 10

// errClientGone means the client left before its container was ready.
var errClientGone = ganger.Fail(ganger.ClientGone, errors.New("client went away before its container was ready"))

// earlyReader reads what a client sends while its container starts, so the
// bytes can be delivered once it is ready, and notices the client leaving:
// a reset, or EOF before it sent anything. EOF after data is a half-close
// (say, `printf req | nc -N`): the data is delivered and the reply awaited.
type earlyReader struct {
	conn   *net.TCPConn
	gone   func(error) // called once if the client leaves
	done   chan struct{}
	data   chan struct{} // closed once the client has sent something
	once   sync.Once
	mu     sync.Mutex
	buf    []byte
	halfed bool // the client sent data and then EOF
}

// startEarly starts reading conn; buf holds bytes already read from it.
func startEarly(conn *net.TCPConn, buf []byte, gone func(error)) *earlyReader {
	r := &earlyReader{conn: conn, gone: gone, done: make(chan struct{}), data: make(chan struct{}), buf: buf}
	if len(buf) > 0 {
		r.sent()
	}
	go r.run()
	return r
}

func (r *earlyReader) run() {
	defer close(r.done)
	tmp := make([]byte, 4096)
	for {
		n, err := r.conn.Read(tmp)
		if n > 0 {
			r.sent()
		}
		r.mu.Lock()
		r.buf = append(r.buf, tmp[:n]...)
		full, empty := len(r.buf) >= maxEarly, len(r.buf) == 0
		if err == io.EOF && !empty {
			r.halfed = true
		}
		r.mu.Unlock()
		switch {
		case err == nil && !full:
			continue
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded), r.halfed:
			return // full, handed over, or half-closed
		default:
			r.gone(errClientGone)
			return
		}
	}
}

// handOver stops reading and returns what was read and whether the client
// has half-closed. The connection is left ready for the proxy.
func (r *earlyReader) handOver() ([]byte, bool) {
	r.conn.SetReadDeadline(time.Now())
	<-r.done
	r.conn.SetReadDeadline(time.Time{})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf, r.halfed
}

func (r *earlyReader) sent() { r.once.Do(func() { close(r.data) }) }

// firstByte returns a channel closed once the client has sent something.
func (r *earlyReader) firstByte() <-chan struct{} { return r.data }
