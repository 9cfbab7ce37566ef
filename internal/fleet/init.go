package fleet

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/ganger-dev/ganger"
)

// provideTimeout bounds providing ganger-init on one daemon: an image
// import, a volume, a short-lived container.
const provideTimeout = 2 * time.Minute

// provision is ganger-init being provided on one daemon, or provided.
type provision struct {
	done chan struct{} // closed when the attempt is over
	err  error         // why it failed, once done
}

// failed reports whether the attempt is over and failed.
func (p *provision) failed() bool {
	select {
	case <-p.done:
		return p.err != nil
	default:
		return false
	}
}

// PrepareInit makes ganger-init (in) available on every daemon that is up,
// in the background, and on every daemon that joins from now on. A
// launch under it waits for its daemon's provision, so nothing is copied
// when a container starts. A zero in does nothing.
func (f *Fleet) PrepareInit(in ganger.Init) {
	if !in.Enabled() {
		return
	}
	f.knowInit(in)
	for _, m := range f.memberList() {
		if f.isUp(m.name) {
			m.provide(in)
		}
	}
}

// knowInit records in among those a joining daemon is given.
func (f *Fleet) knowInit(in ganger.Init) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inits[in.Digest] = in
}

func (f *Fleet) initList() []ganger.Init {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Values(f.inits))
}

// ensureInit waits until in is provided on the daemon (starting that if
// need be), or ctx ends.
func (m *member) ensureInit(ctx context.Context, in ganger.Init) error {
	m.f.knowInit(in)
	p := m.provide(in)
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// provide returns the daemon's provision of in: the one under way or
// done, or, if there is none or it failed, a new one. A provision runs in
// the background, within the fleet's life: callers that stop waiting do
// not stop it.
func (m *member) provide(in ganger.Init) *provision {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.inits[in.Digest]; p != nil && !p.failed() {
		return p
	}
	p := &provision{done: make(chan struct{})}
	m.inits[in.Digest] = p
	m.f.prep.Go(func() { m.runProvision(in, p) })
	return p
}

func (m *member) runProvision(in ganger.Init, p *provision) {
	defer close(p.done)
	ctx, cancel := context.WithTimeout(m.f.ctx, provideTimeout)
	defer cancel()
	p.err = m.b.EnsureInit(ctx, in, m.f.opt.Node)
	if p.err != nil && m.f.ctx.Err() == nil {
		m.f.log.Error("daemon cannot provide ganger-init: containers under it cannot start there until it does (tried again at the next)", "daemon", m.name, "init", in.Digest, "err", p.err)
	}
}

// providing reports whether ganger-init of that digest is being provided
// on the daemon now: what that creates for a while is not an orphan.
func (m *member) providing(digest string) bool {
	m.mu.Lock()
	p := m.inits[digest]
	m.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// forgetInits makes the next launch under ganger-init ask the daemon
// again whether it has it (once; then it is known again): after the
// daemon was away, or when a container under it failed early (its volume
// may have gone).
func (m *member) forgetInits(digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d, p := range m.inits {
		if digest != "" && d != digest {
			continue
		}
		select {
		case <-p.done:
			delete(m.inits, d)
		default: // under way: its result stands
		}
	}
}

// provideInits provides every known ganger-init on a joining daemon.
func (m *member) provideInits(ctx context.Context) {
	m.forgetInits("")
	for _, in := range m.f.initList() {
		m.ensureInit(ctx, in) // a failure is logged; launches try again
	}
}
