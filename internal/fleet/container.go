package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/sched"
)

// callTimeout bounds one create or start call on a stuck daemon. The call
// is never cut short by a client leaving: the daemon would finish it
// anyway, and the container would be left behind.
const callTimeout = 2 * time.Minute

// Container is one container of this node: from the moment its daemon is
// chosen until the daemon confirms it is gone. The fleet owns it; a
// consumer (a session, a pool, a shared set) holds it and calls Destroy
// when done with it, once or more.
type Container struct {
	f       *Fleet
	m       *member
	ref     Ref
	service string
	lease   *sched.Lease
	born    time.Time
	keep    bool // outlives this process (Request.Keep, Adopt)

	booted chan struct{}      // closed when the create and start calls are over
	gone   chan struct{}      // closed when its removal is over (see Gone)
	life   context.Context    // done when it is known to have exited (or been removed)
	end    context.CancelFunc // ends life

	mu        sync.Mutex
	id        string
	addr      string
	warm      *net.TCPConn // the connection that proved it ready, for its first user
	created   bool         // a create call was made
	uncertain bool         // the create call timed out: the daemon may have made it
	exit      ganger.Exit
	destroyed bool
}

// Ref is the container's daemon and name.
func (c *Container) Ref() Ref { return c.ref }

// Daemon is the name of the container's daemon.
func (c *Container) Daemon() string { return c.ref.Daemon }

// Service is the service the container runs.
func (c *Container) Service() string { return c.service }

// ID is the container's id on its daemon ("" before it is created).
func (c *Container) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Addr is where Ganger dials it.
func (c *Container) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Exited is closed once the container is known to have exited: its
// daemon's event stream said so, or a listing after the stream
// reconnected did, or it was removed.
func (c *Container) Exited() <-chan struct{} { return c.life.Done() }

// Life is a context that ends when Exited is closed: a watcher can use
// context.AfterFunc on it and hold no goroutine.
func (c *Container) Life() context.Context { return c.life }

// Exit is how it exited, once Exited is closed.
func (c *Container) Exit() ganger.Exit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exit
}

func (c *Container) died(e ganger.Exit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.life.Err() == nil {
		c.exit = e
		c.end()
	}
}

// Dial returns a connection to the container: the one that proved it
// ready, if it is still open and not handed out yet, else a new one.
func (c *Container) Dial() (*net.TCPConn, error) {
	c.mu.Lock()
	w, addr := c.warm, c.addr
	c.warm = nil
	c.mu.Unlock()
	if w != nil {
		if alive(w) {
			return w, nil
		}
		w.Close()
	}
	if c.life.Err() != nil {
		return nil, ganger.Fail(ganger.Died, errors.New("container exited"))
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// Destroy removes the container in the background, forced, retried until
// its daemon confirms it is gone, and then frees its slot. It is safe to
// call more than once and from any goroutine: one removal runs, ever. The
// container counts as this node's until it is gone.
func (c *Container) Destroy() {
	c.mu.Lock()
	if c.destroyed {
		c.mu.Unlock()
		return
	}
	c.destroyed = true
	w := c.warm
	c.warm = nil
	c.mu.Unlock()
	if w != nil {
		w.Close()
	}
	c.f.removals.Go(c.remove)
}

// Gone is closed once a Destroy is over: the daemon confirmed the
// container is gone (or, at shutdown, removal was given up and left to the
// next start-up sweep), and its slot is free.
func (c *Container) Gone() <-chan struct{} { return c.gone }

// remove waits for the create and start calls to be over (a removal that
// ran before a create landed would find nothing, and the container would
// appear after it), then removes the container until the daemon says it
// is gone. Only then is its slot freed and its reference dropped.
func (c *Container) remove() {
	f := c.f
	defer close(c.gone)
	defer c.lease.Release()
	defer f.untrack(c)
	<-c.booted
	c.mu.Lock()
	created, uncertain, target := c.created, c.uncertain, c.id
	c.mu.Unlock()
	defer c.died(ganger.Exit{Code: -1, Err: errors.New("container removed")})
	if !created {
		return // left before its turn: no Docker call was made
	}
	if target == "" {
		target = c.ref.Name
	}
	c.removeUntilGone(target)
	if uncertain {
		c.recheck()
	}
	c.m.forget(c)
}

// removeUntilGone removes target, retrying with a capped backoff until the
// daemon confirms it, or the fleet closes and a few more tries failed (the
// next start-up sweep then takes it).
func (c *Container) removeUntilGone(target string) {
	f := c.f
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.m.b.Remove(ctx, target)
		cancel()
		if err == nil {
			return
		}
		if f.ctx.Err() != nil && attempt >= 3 {
			f.log.Error("cannot remove container; the next start-up sweep will", "daemon", c.ref.Daemon, "container", c.ref.Name, "err", err)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			f.log.Warn("remove container failed, retrying until the daemon confirms", "daemon", c.ref.Daemon, "container", c.ref.Name, "attempt", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-f.ctx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// recheck looks for a container whose create call timed out and that the
// daemon made after all, and removes it.
func (c *Container) recheck() {
	for range 5 {
		select {
		case <-time.After(2 * time.Second):
		case <-c.f.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		list, err := c.m.b.ListManaged(ctx, c.f.opt.Node)
		cancel()
		if err != nil {
			continue
		}
		for _, mc := range list {
			if mc.Name == c.ref.Name {
				c.removeUntilGone(mc.ID)
			}
		}
	}
}

// track registers a container about to be made on m for the service.
func (f *Fleet) track(m *member, lease *sched.Lease, service, name string) *Container {
	c := &Container{
		f: f, m: m, ref: Ref{Daemon: m.name, Name: name}, service: service, lease: lease, born: time.Now(),
		booted: make(chan struct{}), gone: make(chan struct{}),
	}
	c.life, c.end = context.WithCancel(context.Background())
	f.mu.Lock()
	f.owned[c.ref] = c
	f.mu.Unlock()
	return c
}

func (f *Fleet) untrack(c *Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owned[c.ref] == c {
		delete(f.owned, c.ref)
	}
}

// ExitError is a container that exited before it was ready.
type ExitError struct {
	Exit ganger.Exit

	once   sync.Once
	output func() string
	logs   string
}

// Output returns the container's last lines of output. It asks the daemon
// on first use, not when the error is made: the client is told of the
// failure at once, and the log line that reports it waits for the daemon.
func (e *ExitError) Output() string {
	e.once.Do(func() { e.logs = e.output() })
	return e.logs
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("container exited with code %d before it was ready", e.Exit.Code)
}
