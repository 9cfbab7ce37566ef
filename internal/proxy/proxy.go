// Package proxy copies bytes between a client and its container.
//
// Each direction moves what is queued in one socket to the other with
// splice(2), so the bytes never enter user space, and holds nothing while
// idle (see copyAvail). When one side sends EOF, only that direction is
// shut (CloseWrite on the other side): a client that half-closes still gets
// the rest of the reply. Idle time is read from the kernel (TCP_INFO)
// rather than counted per read.
package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Outcome says why a pipe ended.
type Outcome string

// Outcomes of Pipe.
const (
	Closed   Outcome = "closed"   // both directions reached EOF
	Reset    Outcome = "reset"    // a side failed (RST, write error): both were closed
	Idle     Outcome = "idle"     // no byte either way for the idle timeout
	MaxTime  Outcome = "timeout"  // the session reached its maximum length
	Canceled Outcome = "canceled" // ctx was cancelled (shutdown, operator)
)

// Options bound a pipe. A zero value means no limit.
type Options struct {
	// Idle ends the pipe when no byte has moved either way for this long.
	Idle time.Duration
	// Max ends the pipe this long after it started.
	Max time.Duration
	// HalfClosed ends the pipe when the client has closed its side (EOF)
	// and upstream has then sent nothing for this long: a client that has
	// left cannot hold its container through an upstream that never
	// closes. The outcome is Idle.
	HalfClosed time.Duration
	// Check is how often idleness is checked. If zero, Idle/10 clamped to
	// [20ms, 5s] (HalfClosed/10 for HalfClosed).
	Check time.Duration
	// Replied, if set, is called once, when the first bytes from upstream
	// have been written to the client (or the pipe ends without any).
	Replied func()
	// Ending, if set, is called once, just before the client can see the
	// end: before its side is shut or closed. What a session holds for
	// its client (a per-address slot) is free by the time it notices.
	Ending func()
}

// Stats is what a pipe moved and how it ended.
type Stats struct {
	In      int64 // bytes client → upstream
	Out     int64 // bytes upstream → client
	Outcome Outcome
	Err     error // the first copy error, for Reset
}

// Pipe copies between client and upstream until both directions are done
// or a limit is hit, then closes both connections.
func Pipe(ctx context.Context, client, upstream *net.TCPConn, opt Options) Stats {
	p := &pipe{client: client, upstream: upstream, replied: opt.Replied, clientEOF: make(chan struct{})}
	if opt.Ending != nil {
		p.ending = sync.OnceFunc(opt.Ending)
	} else {
		p.ending = func() {}
	}
	p.wg.Add(2)
	go p.copyUp()
	go p.copyDown()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()

	outcome := p.watch(ctx, done, opt)
	p.closeBoth()
	<-done
	if p.replied != nil && p.out == 0 {
		p.replied()
	}
	st := Stats{In: p.in, Out: p.out, Outcome: outcome, Err: p.err}
	if outcome == Closed && p.err != nil {
		st.Outcome = Reset
	}
	return st
}

type pipe struct {
	client, upstream *net.TCPConn
	replied          func()        // see Options.Replied; nil once called
	clientEOF        chan struct{} // closed when the client's side reached EOF
	ending           func()        // Options.Ending, once
	wg               sync.WaitGroup
	in, out          int64
	once             sync.Once
	mu               sync.Mutex
	err              error
}

func (p *pipe) copyUp() {
	defer p.wg.Done()
	var eof bool
	p.in, eof = p.copy(p.upstream, p.client, nil)
	if eof {
		close(p.clientEOF)
	}
}

func (p *pipe) copyDown() {
	defer p.wg.Done()
	p.out, _ = p.copy(p.client, p.upstream, p.replied)
}

// copy moves src to dst. On EOF it half-closes dst and reports eof; on
// error it closes both sides, which also ends the other direction.
func (p *pipe) copy(dst, src *net.TCPConn, first func()) (n int64, eof bool) {
	n, err := copyAvail(dst, src, first)
	if err == nil {
		if dst == p.client {
			p.ending()
		}
		dst.CloseWrite()
		return n, true
	}
	if !errors.Is(err, net.ErrClosed) {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
	}
	p.closeBoth()
	return n, false
}

func (p *pipe) closeBoth() {
	p.once.Do(func() {
		p.ending()
		p.client.Close()
		p.upstream.Close()
	})
}

// watch waits for the copies to finish, or for a limit or ctx to end them.
func (p *pipe) watch(ctx context.Context, done <-chan struct{}, opt Options) Outcome {
	var maxC, tickC <-chan time.Time
	if opt.Max > 0 {
		t := time.NewTimer(opt.Max)
		defer t.Stop()
		maxC = t.C
	}
	if opt.Idle > 0 {
		t := time.NewTicker(checkEvery(opt.Check, opt.Idle))
		defer t.Stop()
		tickC = t.C
	}
	var eofC <-chan struct{}
	var halfC <-chan time.Time
	if opt.HalfClosed > 0 {
		eofC = p.clientEOF
	}
	for {
		select {
		case <-done:
			return Closed
		case <-eofC:
			eofC = nil
			t := time.NewTicker(checkEvery(opt.Check, opt.HalfClosed))
			defer t.Stop()
			halfC = t.C
		case <-halfC:
			if d, err := sinceLastData(p.upstream); err == nil && d >= opt.HalfClosed {
				return Idle
			}
		case <-ctx.Done():
			return Canceled
		case <-maxC:
			return MaxTime
		case <-tickC:
			if p.idleFor() >= opt.Idle {
				return Idle
			}
		}
	}
}

func checkEvery(check, limit time.Duration) time.Duration {
	if check > 0 {
		return check
	}
	return min(max(limit/10, 20*time.Millisecond), 5*time.Second)
}

// idleFor is how long since either socket last received data.
func (p *pipe) idleFor() time.Duration {
	a, errA := sinceLastData(p.client)
	b, errB := sinceLastData(p.upstream)
	if errA != nil || errB != nil {
		return 0 // a closed socket: the copies are ending anyway
	}
	return min(a, b)
}
