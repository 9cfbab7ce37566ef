package api

import (
	"net"
	"sync"
)

// DefaultMaxConnections caps the API's open connections when
// API.MaxConnections is zero.
const DefaultMaxConnections = 64

// limitListener caps the connections open at once: while n are open,
// Accept waits, and new connections wait in the kernel's accept queue,
// which costs Ganger no file descriptor.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one per open connection
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once
}

func limit(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, free: l.free}, nil
}

func (l *limitListener) free() { <-l.slots }

// Close closes the listener and wakes a waiting Accept.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when first closed.
type limitConn struct {
	net.Conn
	free      func()
	closeOnce sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.free)
	return err
}
