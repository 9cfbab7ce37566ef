// Package fleettest helps test the fleet and its consumers: Fake is an
// in-memory fleet.Backend whose containers are real TCP echo listeners,
// and RunBackendTests is the one test body every Backend must pass.
package fleettest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
)

var _ fleet.Backend = (*Fake)(nil)

// eventBuffer is how far a subscriber may fall behind before its stream
// fails (as a real one would): the fake never blocks on a slow reader.
const eventBuffer = 256

// Fake is an in-memory daemon whose started containers listen on
// 127.0.0.1 and echo: on the address Start returns and, for each port of
// their Spec.Publish, on a port of their own (see Published). The zero value works; New also cleans up after a
// test. Set the exported fields before first use; a hook whose behaviour
// must change later switches inside itself.
type Fake struct {
	EngineID string // what Engine reports; if empty, an id unique to this Fake
	LogText  string // what Logs returns, cut to the lines asked for
	Unready  bool   // started containers refuse connections (never listen) until they exit

	// Hooks run before the call they name, which their error fails.
	// CreateHook may block, as a slow daemon does.
	CreateHook func(ctx context.Context, spec ganger.Spec) error
	StartHook  func(ctx context.Context, id string) error
	RemoveHook func(idOrName string) error
	PingHook   func() error // Ping's and Engine's
	PullHook   func(ref string) error
	ListHook   func() error // ListManaged's
	// InitHook runs when EnsureInit has to provide ganger-init (its volume
	// is not there yet); it may block, as a slow import does.
	InitHook func(ctx context.Context, in ganger.Init) error

	mu       sync.Mutex
	engineID string
	ctrs     map[string]*fakeContainer // by id
	images   map[string]bool
	networks map[string]ganger.NetworkSpec
	inits    map[string]ganger.Init // by volume: ganger-init provided
	subs     map[*subscription]bool
	calls    map[string]int
	removed  []string
	wg       sync.WaitGroup // accept and echo loops
}

type fakeContainer struct {
	id    string
	spec  ganger.Spec
	state string // created, running, exited
	ln    net.Listener
	pub   map[int]net.Listener // by container port: the listeners of Spec.Publish, while running
	dial  map[int]net.Listener // by container port: the listeners of Spec.Dial, while running
	conns map[net.Conn]bool
}

type subscription struct {
	owner string
	ch    chan ganger.Event
	errc  chan error
	stop  func() bool // stops watching the subscriber's ctx
}

// New returns a Fake holding images that shuts down (see Shutdown) when t
// ends.
func New(t testing.TB, images ...string) *Fake {
	f := &Fake{}
	f.AddImage(images...)
	t.Cleanup(f.Shutdown)
	return f
}

// AddImage makes images present.
func (f *Fake) AddImage(refs ...string) {
	f.lock()
	defer f.mu.Unlock()
	for _, r := range refs {
		f.images[r] = true
	}
}

// lock locks f, making its maps on first use.
func (f *Fake) lock() {
	f.mu.Lock()
	if f.ctrs == nil {
		f.ctrs, f.images, f.subs, f.calls = map[string]*fakeContainer{}, map[string]bool{}, map[*subscription]bool{}, map[string]int{}
		f.networks, f.inits = map[string]ganger.NetworkSpec{}, map[string]ganger.Init{}
		f.engineID = randomHex(16)
	}
}

// begin counts a call to method, then runs hook (if set) and checks ctx.
func (f *Fake) begin(ctx context.Context, method string, hook func() error) error {
	f.lock()
	f.calls[method]++
	f.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// bind binds a hook's argument; a nil hook stays nil.
func bind[A any](hook func(A) error, a A) func() error {
	if hook == nil {
		return nil
	}
	return func() error { return hook(a) }
}

// bind2 binds a hook's arguments; a nil hook stays nil.
func bind2[A, B any](hook func(A, B) error, a A, b B) func() error {
	if hook == nil {
		return nil
	}
	return func() error { return hook(a, b) }
}

// Ping answers unless PingHook fails.
func (f *Fake) Ping(ctx context.Context) (string, error) {
	if err := f.begin(ctx, "Ping", f.PingHook); err != nil {
		return "", fmt.Errorf("ping fake daemon: %w", err)
	}
	return "1.52", nil
}

// Engine returns EngineID, or the Fake's own id, unless PingHook fails.
func (f *Fake) Engine(ctx context.Context) (ganger.Engine, error) {
	if err := f.begin(ctx, "Engine", f.PingHook); err != nil {
		return ganger.Engine{}, fmt.Errorf("info of fake daemon: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return ganger.Engine{ID: cmp.Or(f.EngineID, f.engineID), APIVersion: "1.52", Name: "fake"}, nil
}

// EnsureImage succeeds for a present image (unless pull is always), fails
// for a missing one under PullNever, and otherwise pulls it.
func (f *Fake) EnsureImage(ctx context.Context, ref string, pull ganger.PullPolicy) error {
	if err := f.begin(ctx, "EnsureImage", nil); err != nil {
		return err
	}
	f.mu.Lock()
	has := f.images[ref]
	f.mu.Unlock()
	switch {
	case has && pull != ganger.PullAlways:
		return nil
	case !has && pull == ganger.PullNever:
		return fmt.Errorf("image %s is not on the fake daemon, and its pull policy is never", ref)
	}
	if err := f.begin(ctx, "Pull", bind(f.PullHook, ref)); err != nil {
		return fmt.Errorf("image %s cannot be pulled: %w", ref, err)
	}
	f.AddImage(ref)
	return nil
}

// Create records spec and returns a fresh id; a name in use is a conflict.
func (f *Fake) Create(ctx context.Context, spec ganger.Spec) (string, error) {
	if err := f.begin(ctx, "Create", bind2(f.CreateHook, ctx, spec)); err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(spec.Name); c != nil {
		return "", fmt.Errorf("create container %s: Conflict. The container name %q is already in use by container %q", spec.Name, "/"+spec.Name, c.id)
	}
	if _, ok := f.networks[spec.Network]; !ok && spec.Network != "" && spec.Network != "bridge" {
		return "", fmt.Errorf("create container %s: network %s not found", spec.Name, spec.Network)
	}
	if _, ok := f.inits[spec.Init.Volume()]; spec.Init.Enabled() && !ok {
		// Docker would make an empty volume, and the container would fail
		// to start: the fake fails at once.
		return "", fmt.Errorf("create container %s: volume %s holds no ganger-init (EnsureInit first)", spec.Name, spec.Init.Volume())
	}
	spec.Labels = maps.Clone(spec.Labels)
	c := &fakeContainer{id: randomHex(32), spec: spec, state: "created"}
	f.ctrs[c.id] = c
	return c.id, nil
}

// EnsureInit provides ganger-init unless its volume is there: it counts a
// "ProvideInit" call and runs InitHook, which can fail it.
func (f *Fake) EnsureInit(ctx context.Context, in ganger.Init, owner string) error {
	if err := f.begin(ctx, "EnsureInit", nil); err != nil {
		return err
	}
	f.mu.Lock()
	_, ok := f.inits[in.Volume()]
	f.mu.Unlock()
	if ok {
		return nil
	}
	if err := f.begin(ctx, "ProvideInit", bind2(f.InitHook, ctx, in)); err != nil {
		return fmt.Errorf("provide ganger-init %s: %w", in.Digest, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inits[in.Volume()] = in
	return nil
}

// InitVolumes returns the volumes that hold ganger-init, sorted.
func (f *Fake) InitVolumes() []string {
	f.lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.inits))
}

// DropInitVolume removes a volume holding ganger-init, as an operator (or
// a daemon's data wiped) would.
func (f *Fake) DropInitVolume(name string) {
	f.lock()
	defer f.mu.Unlock()
	delete(f.inits, name)
}

// EnsureNetwork records the network unless one of its name exists.
func (f *Fake) EnsureNetwork(ctx context.Context, n ganger.NetworkSpec) error {
	if err := f.begin(ctx, "EnsureNetwork", nil); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.networks[n.Name]; !ok {
		f.networks[n.Name] = n
	}
	return nil
}

// RemoveNetwork forgets a network no container is on; one that is gone is
// no error.
func (f *Fake) RemoveNetwork(ctx context.Context, name string) error {
	if err := f.begin(ctx, "RemoveNetwork", nil); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		if c.spec.Network == name {
			return fmt.Errorf("remove network %s: %w", name, ganger.ErrNetworkInUse)
		}
	}
	delete(f.networks, name)
	return nil
}

// Networks returns the names of the networks that exist.
func (f *Fake) Networks() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.networks))
}

// find returns the container with that id or name; f.mu is held.
func (f *Fake) find(idOrName string) *fakeContainer {
	if c := f.ctrs[idOrName]; c != nil {
		return c
	}
	for _, c := range f.ctrs {
		if c.spec.Name == idOrName {
			return c
		}
	}
	return nil
}

// Start starts listening for the container and returns the address.
func (f *Fake) Start(ctx context.Context, id string, port int) (string, error) {
	if err := f.begin(ctx, "Start", bind2(f.StartHook, ctx, id)); err != nil {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil {
		return "", fmt.Errorf("start container %s: No such container: %s", id, id)
	}
	if c.state != "running" {
		lns := []net.Listener{}
		pub := map[int]net.Listener{}
		listen := func(port int) (net.Listener, error) {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return nil, fmt.Errorf("start container %s: %w", id, err)
			}
			lns = append(lns, ln)
			return ln, nil
		}
		ln, err := listen(0)
		if err != nil {
			return "", err
		}
		for _, p := range c.spec.Publish {
			if pub[p] != nil {
				continue
			}
			if pub[p], err = listen(c.spec.HostPorts[p]); err != nil {
				return "", err
			}
		}
		dial := map[int]net.Listener{}
		for _, p := range c.spec.Dial {
			if dial[p] != nil || p == c.spec.Port {
				continue
			}
			if dial[p], err = listen(0); err != nil {
				return "", err
			}
		}
		c.state, c.ln, c.pub, c.dial, c.conns = "running", ln, pub, dial, map[net.Conn]bool{}
		for _, l := range lns {
			if f.Unready {
				l.Close() // its address now refuses
			} else {
				f.wg.Go(func() { f.accept(c, l) })
			}
		}
	}
	return c.ln.Addr().String(), nil
}

// listens reports whether ln is one of the running container's current
// listeners; f.mu is held.
func (c *fakeContainer) listens(ln net.Listener) bool {
	if c.state != "running" {
		return false
	}
	if c.ln == ln {
		return true
	}
	for _, l := range c.pub {
		if l == ln {
			return true
		}
	}
	for _, l := range c.dial {
		if l == ln {
			return true
		}
	}
	return false
}

// accept serves ln until it is closed: each connection echoes.
func (f *Fake) accept(c *fakeContainer, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if !c.listens(ln) {
			f.mu.Unlock()
			conn.Close()
			return
		}
		c.conns[conn] = true
		f.mu.Unlock()
		f.wg.Go(func() { io.Copy(conn, conn); conn.Close() })
	}
}

// stop closes the container's listeners and connections; f.mu is held.
func (c *fakeContainer) stop() {
	c.ln.Close()
	for _, l := range c.pub {
		l.Close()
	}
	for _, l := range c.dial {
		l.Close()
	}
	for conn := range c.conns {
		conn.Close()
	}
	c.state, c.pub, c.dial, c.conns = "exited", nil, nil, nil
}

// Published returns, for a running container, the port of 127.0.0.1 each
// port of its Spec.Publish listens on.
func (f *Fake) Published(ctx context.Context, id string) (map[int]int, error) {
	if err := f.begin(ctx, "Published", nil); err != nil {
		return nil, fmt.Errorf("published ports of %s: %w", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	switch {
	case c == nil:
		return nil, fmt.Errorf("published ports of %s: No such container: %s", id, id)
	case c.state != "running":
		return nil, fmt.Errorf("published ports of %s: it is not running (%s)", id, c.state)
	}
	out := make(map[int]int, len(c.pub))
	for p, l := range c.pub {
		out[p] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// DialAddrs returns, for a running container, the address of 127.0.0.1
// where each of ports listens.
func (f *Fake) DialAddrs(ctx context.Context, id string, ports []int) (map[int]string, error) {
	if err := f.begin(ctx, "DialAddrs", nil); err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	switch {
	case c == nil:
		return nil, fmt.Errorf("inspect container %s: No such container: %s", id, id)
	case c.state != "running":
		return nil, fmt.Errorf("container %s: no network settings (did it exit at once?)", id)
	}
	out := make(map[int]string, len(ports))
	for _, p := range ports {
		switch {
		case p == c.spec.Port:
			out[p] = c.ln.Addr().String()
		case c.dial[p] != nil:
			out[p] = c.dial[p].Addr().String()
		default:
			return nil, fmt.Errorf("container %s: port %d/tcp is not published (did it exit at once?)", id, p)
		}
	}
	return out, nil
}

// NetworkGateway is 127.0.0.1 for any network: the Fake's containers
// listen there.
func (f *Fake) NetworkGateway(ctx context.Context, name string) (string, error) {
	if err := f.begin(ctx, "NetworkGateway", nil); err != nil {
		return "", err
	}
	return "127.0.0.1", nil
}

// NetInfo says a running container is at 127.0.0.1, its gateway too (its
// listeners are there).
func (f *Fake) NetInfo(ctx context.Context, id string) (ganger.NetInfo, error) {
	if err := f.begin(ctx, "NetInfo", nil); err != nil {
		return ganger.NetInfo{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	switch {
	case c == nil:
		return ganger.NetInfo{}, fmt.Errorf("inspect container %s: No such container: %s", id, id)
	case c.state != "running":
		return ganger.NetInfo{}, fmt.Errorf("container %s: no IP address on any network (did it exit at once?)", id)
	}
	return ganger.NetInfo{IP: "127.0.0.1", Gateway: "127.0.0.1"}, nil
}

// Advertise is where the Fake's published ports are: 127.0.0.1.
func (f *Fake) Advertise() string { return "127.0.0.1" }

// Exit makes a running container exit with code: it stops listening, and
// a "die" event reports the code.
func (f *Fake) Exit(id string, code int64) {
	f.lock()
	defer f.mu.Unlock()
	if c := f.find(id); c != nil && c.state == "running" {
		c.stop()
		f.emit(c, "die", code)
	}
}

// Stop makes a running container exit as a TERM would (code 143); one
// not running, or gone, is no error.
func (f *Fake) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := f.begin(ctx, "Stop", nil); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	f.lock()
	defer f.mu.Unlock()
	if c := f.find(id); c != nil && c.state == "running" {
		c.stop()
		f.emit(c, "die", 143)
	}
	return nil
}

// Remove removes a container by id or name, killing it first if it runs
// ("die" with code 137, then "destroy"). One that is gone is no error.
func (f *Fake) Remove(ctx context.Context, idOrName string) error {
	if err := f.begin(ctx, "Remove", bind(f.RemoveHook, idOrName)); err != nil {
		return fmt.Errorf("remove container %s: %w", idOrName, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(idOrName)
	if c == nil {
		return nil
	}
	if c.state == "running" {
		c.stop()
		f.emit(c, "die", 137)
	}
	delete(f.ctrs, c.id)
	f.removed = append(f.removed, c.id)
	f.emit(c, "destroy", 0)
	return nil
}

// ListManaged lists the containers labelled managed; with owner set, only
// that owner's.
func (f *Fake) ListManaged(ctx context.Context, owner string) ([]ganger.Managed, error) {
	if err := f.begin(ctx, "ListManaged", f.ListHook); err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ganger.Managed
	for _, c := range f.ctrs {
		if matches(c.spec.Labels, owner) {
			out = append(out, ganger.Managed{ID: c.id, Name: c.spec.Name, Labels: maps.Clone(c.spec.Labels), State: c.state})
		}
	}
	return out, nil
}

func matches(labels map[string]string, owner string) bool {
	return labels[ganger.LabelManaged] == "true" && (owner == "" || labels[ganger.LabelOwner] == owner)
}

// Logs returns the last lines of LogText.
func (f *Fake) Logs(ctx context.Context, id string, lines int) (string, error) {
	if err := f.begin(ctx, "Logs", nil); err != nil {
		return "", fmt.Errorf("logs of %s: %w", id, err)
	}
	if _, ok := f.Spec(id); !ok {
		return "", fmt.Errorf("logs of %s: No such container: %s", id, id)
	}
	all := strings.Split(strings.TrimRight(f.LogText, "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n"), nil
}

// Events streams the die and destroy events of owner's containers (every
// managed one if owner is "") from the call on, until ctx ends or Close.
func (f *Fake) Events(ctx context.Context, owner string) (<-chan ganger.Event, <-chan error) {
	f.lock()
	defer f.mu.Unlock()
	f.calls["Events"]++ // with the subscription: it is live once counted
	s := &subscription{owner: owner, ch: make(chan ganger.Event, eventBuffer), errc: make(chan error, 1)}
	f.subs[s] = true
	s.stop = context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.end(s, nil)
	})
	return s.ch, s.errc
}

// end ends a subscription, with err unless nil; f.mu is held.
func (f *Fake) end(s *subscription, err error) {
	if !f.subs[s] {
		return
	}
	delete(f.subs, s)
	if err != nil {
		s.errc <- err
	}
	close(s.ch)
	s.stop()
}

// emit sends an event to the subscribers it concerns; one that fell
// eventBuffer behind loses its stream. f.mu is held.
func (f *Fake) emit(c *fakeContainer, action string, code int64) {
	e := ganger.Event{ID: c.id, Name: c.spec.Name, Action: action}
	if action == "die" {
		e.Exit.Code = code
	}
	for s := range f.subs {
		if matches(c.spec.Labels, s.owner) {
			select {
			case s.ch <- e:
			default:
				f.end(s, errors.New("events of fake daemon: subscriber fell behind"))
			}
		}
	}
}

// Close ends every event stream with an error, as a closed client would.
// Containers live on, as on a real daemon.
func (f *Fake) Close() error {
	f.lock()
	defer f.mu.Unlock()
	f.calls["Close"]++
	for s := range f.subs {
		f.end(s, errors.New("events of fake daemon: client closed"))
	}
	return nil
}

// Shutdown stops every container (they are still listed, exited), ends
// every event stream and waits for the Fake's goroutines.
func (f *Fake) Shutdown() {
	f.lock()
	for _, c := range f.ctrs {
		if c.state == "running" {
			c.stop()
		}
	}
	for s := range f.subs {
		f.end(s, errors.New("fake daemon shut down"))
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Calls returns how many times method was called: "Create", "Events",
// and so on, "Pull" for each pull EnsureImage made, and "ProvideInit"
// for each time EnsureInit had to provide ganger-init.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Removed returns the ids of the containers removed, in order.
func (f *Fake) Removed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

// Live returns how many containers exist, running or not.
func (f *Fake) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ctrs)
}

// Spec returns the spec a container was created with, limits included.
func (f *Fake) Spec(idOrName string) (ganger.Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(idOrName); c != nil {
		return c.spec, true
	}
	return ganger.Spec{}, false
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitRemovals waits, at most a minute, until every removal the fleet has
// begun is over, failing t otherwise.
func WaitRemovals(t testing.TB, f *fleet.Fleet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.WaitRemovals(ctx); err != nil {
		t.Fatalf("removals not over: %v", err)
	}
}
