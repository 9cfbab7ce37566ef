package session

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/ganger-dev/ganger/internal/fleet"
)

// Target takes over accepted connections: a service's sessions today;
// routes to existing containers later. HandleConn returns when it is done
// with the connection.
type Target interface {
	HandleConn(net.Conn)
}

// Accept accepts connections on ln and hands each to t in its own
// goroutine until closing is closed (it then returns nil) or ln fails.
// Each connection holds one of slots (nil: no cap) while t has it; with
// none free, Accept waits and new clients wait in the kernel's queue.
// Running out of file descriptors pauses accepting; it is not an error.
func Accept(ln net.Listener, t Target, slots *Slots, closing <-chan struct{}, log *slog.Logger) error {
	backoff := 5 * time.Millisecond
	for {
		if !slots.acquire(closing) {
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			slots.release()
			select {
			case <-closing:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if fleet.OutOfFiles(err) {
				log.Warn("accept: out of file descriptors; pausing", "retry_in", backoff, "hint", "lower limits.max_connections or raise the open-file limit")
			} else {
				log.Warn("accept failed", "err", err, "retry_in", backoff)
			}
			select {
			case <-time.After(backoff):
			case <-closing:
				return nil
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		go serveConn(t, c, slots)
	}
}

func serveConn(t Target, c net.Conn, slots *Slots) {
	defer slots.release()
	t.HandleConn(c)
}

// Slots caps the client connections open at once. A nil *Slots caps
// nothing.
type Slots struct{ ch chan struct{} }

// NewSlots returns a cap of n connections.
func NewSlots(n int) *Slots { return &Slots{ch: make(chan struct{}, n)} }

// acquire takes a slot, waiting until one is free or closing is closed.
func (s *Slots) acquire(closing <-chan struct{}) bool {
	if s == nil {
		return true
	}
	select {
	case s.ch <- struct{}{}:
		return true
	case <-closing:
		return false
	}
}

func (s *Slots) release() {
	if s != nil {
		<-s.ch
	}
}

// InUse returns the slots held.
func (s *Slots) InUse() int {
	if s == nil {
		return 0
	}
	return len(s.ch)
}
