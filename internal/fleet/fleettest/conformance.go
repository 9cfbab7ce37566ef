package fleettest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
)

// wait bounds every wait for something asynchronous; it is no claim about
// speed.
const wait = 30 * time.Second

// servicePort is the port the suite's containers listen on.
const servicePort = 7777

// Subject is one backend under test and what the suite needs with it.
type Subject struct {
	Backend fleet.Backend
	// Image is an image whose containers echo on port 7777 (given
	// "-listen :7777"; "-also :7778" adds a second port); its entrypoint
	// is the echo server.
	Image string
	// Kill makes a started container exit as SIGKILL does (code 137).
	Kill func(id string)
	// Init is a ganger-init the backend has not provided yet (the caller
	// removes, when the subtest ends, what providing it leaves).
	Init ganger.Init
}

// RunBackendTests runs the behaviour every fleet.Backend must have.
// newSubject returns the backend under test for one subtest.
func RunBackendTests(t *testing.T, newSubject func(t *testing.T) Subject) {
	run := func(name string, body func(s *suite)) {
		t.Run(name, func(t *testing.T) {
			sub := newSubject(t)
			body(newSuite(t, sub))
		})
	}
	run("RemoveGone", testRemoveGone)
	run("CreateAndListByOwner", testCreateAndList)
	run("StartReturnsDialableAddress", testStart)
	run("ExitIsReported", testExit)
	run("StopEndsIt", testStop)
	run("RemoveEmitsDestroy", testDestroy)
	run("Engine", testEngine)
	run("EventsEndWithContext", testEventsEnd)
	run("PublishedPortsEcho", testPublished)
	run("DialAddrsReachEveryPort", testDialAddrs)
	run("InitProvidedOnceRunsTheCommand", testInit)
}

// suite is one subtest's backend and owner. Every container it creates
// is labelled with a fresh owner and removed when the subtest ends.
type suite struct {
	*testing.T
	ctx   context.Context // bounds the subtest's calls
	b     fleet.Backend
	image string
	kill  func(string)
	init  ganger.Init
	owner string
}

var serial atomic.Int64

func newSuite(t *testing.T, sub Subject) *suite {
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	t.Cleanup(cancel)
	b := sub.Backend
	s := &suite{T: t, ctx: ctx, b: b, image: sub.Image, kill: sub.Kill, init: sub.Init, owner: "conf-" + randomHex(4)}
	t.Cleanup(func() { // runs after every removal below
		if left, err := b.ListManaged(context.Background(), s.owner); err != nil || len(left) > 0 {
			t.Errorf("left behind: %v (list: %v)", left, err)
		}
	})
	return s
}

// create creates a container of owner (the subtest's if "").
func (s *suite) create(owner string) (id, name string) {
	s.Helper()
	return s.createPublishing(owner, nil)
}

// createPublishing creates a container of owner (the subtest's if "")
// that publishes the ports given.
func (s *suite) createPublishing(owner string, publish []int) (id, name string) {
	s.Helper()
	if owner == "" {
		owner = s.owner
	}
	name = fmt.Sprintf("%s-%d", owner, serial.Add(1))
	id, err := s.b.Create(s.ctx, ganger.Spec{
		Name: name, Image: s.image, Port: servicePort, Publish: publish, Cmd: []string{"-listen", fmt.Sprint(":", servicePort)}, Network: "bridge",
		Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: owner, ganger.LabelService: "conformance"},
		Limits: ganger.Limits{Memory: 64 << 20, Pids: 64, NoNewPrivileges: true},
	})
	if err != nil || id == "" {
		s.Fatalf("create %s: id %q, %v", name, id, err)
	}
	s.Cleanup(func() { s.b.Remove(context.Background(), id) })
	return id, name
}

func (s *suite) start(id string) string {
	s.Helper()
	addr, err := s.b.Start(s.ctx, id, servicePort)
	if err != nil {
		s.Fatalf("start: %v", err)
	}
	return addr
}

func (s *suite) remove(idOrName string) {
	s.Helper()
	if err := s.b.Remove(s.ctx, idOrName); err != nil {
		s.Fatalf("remove %s: %v", idOrName, err)
	}
}

// list returns owner's containers by id.
func (s *suite) list(owner string) map[string]ganger.Managed {
	s.Helper()
	l, err := s.b.ListManaged(s.ctx, owner)
	if err != nil {
		s.Fatalf("list %q: %v", owner, err)
	}
	out := map[string]ganger.Managed{}
	for _, m := range l {
		out[m.ID] = m
	}
	return out
}

// eventually polls cond until it holds or the bound passes.
func (s *suite) eventually(msg string, cond func() bool) {
	s.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.Fatalf("after %s: %s", wait, msg)
		}
	}
}

// subscribe opens the subtest owner's event stream and returns once it is
// live: a probe container's destroy has come through it, and another
// owner's, removed before, has not.
func (s *suite) subscribe() <-chan ganger.Event {
	s.Helper()
	evs, _ := s.b.Events(s.ctx, s.owner)
	other, _ := s.create("conf-other-" + randomHex(4))
	probe, _ := s.create("")
	s.remove(other)
	s.remove(probe)
	s.next(evs, func(e ganger.Event) bool {
		if e.ID == other {
			s.Fatalf("event %s of another owner's container came through", e.Action)
		}
		return e.ID == probe && e.Action == "destroy"
	})
	return evs
}

// next returns the first event that ok accepts, within the bound.
func (s *suite) next(evs <-chan ganger.Event, ok func(ganger.Event) bool) ganger.Event {
	s.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e, open := <-evs:
			if !open {
				s.Fatal("event stream ended")
			}
			if ok(e) {
				return e
			}
		case <-timeout:
			s.Fatalf("no awaited event within %s", wait)
		}
	}
}

func testRemoveGone(s *suite) {
	s.remove("conf-never-" + randomHex(4))
	id, name := s.create("")
	s.remove(id)
	s.remove(id)
	s.remove(name)
}

func testCreateAndList(s *suite) {
	other := s.owner + "-b"
	a, name := s.create("")
	dup := ganger.Spec{Name: name, Image: s.image, Port: servicePort, Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: s.owner}}
	if id, err := s.b.Create(s.ctx, dup); err == nil {
		s.b.Remove(context.Background(), id)
		s.Fatalf("a second create named %s succeeded", name)
	}
	b, _ := s.create(other)
	mine, theirs, all := s.list(s.owner), s.list(other), s.list("")
	if len(mine) != 1 || len(theirs) != 1 || mine[a].ID != a || theirs[b].ID != b {
		s.Fatalf("by owner: got %v and %v; want only %s and only %s", mine, theirs, a, b)
	}
	if all[a].ID != a || all[b].ID != b {
		s.Fatalf("all: %v lacks %s or %s", all, a, b)
	}
	if m := mine[a]; m.Labels[ganger.LabelService] != "conformance" || m.Labels[ganger.LabelOwner] != s.owner || m.State != "created" {
		s.Fatalf("listed %+v; want the labels given, state created", m)
	}
}

func testStart(s *suite) {
	if _, err := s.b.Start(s.ctx, "conf-nosuch-"+randomHex(4), servicePort); err == nil {
		s.Fatal("start of an unknown container succeeded")
	}
	id, _ := s.create("")
	addr := s.start(id)
	s.eventually("no echo from "+addr, func() bool { return echoes(addr) })
	if m := s.list(s.owner)[id]; m.State != "running" {
		s.Fatalf("state %q after start; want running", m.State)
	}
	if _, err := s.b.Logs(s.ctx, id, 10); err != nil {
		s.Fatalf("logs: %v", err)
	}
	ni, err := s.b.NetInfo(s.ctx, id)
	if err != nil || net.ParseIP(ni.IP) == nil || net.ParseIP(ni.Gateway) == nil {
		s.Fatalf("NetInfo: %+v, %v; want an address and a gateway", ni, err)
	}
	if gw, err := s.b.NetworkGateway(s.ctx, "bridge"); err != nil || gw != ni.Gateway {
		s.Fatalf("NetworkGateway(bridge): %q, %v; want the container's gateway %s", gw, err, ni.Gateway)
	}
	if _, err := s.b.NetInfo(s.ctx, "conf-nosuch-"+randomHex(4)); err == nil {
		s.Fatal("NetInfo of an unknown container succeeded")
	}
}

// echoes reports whether what listens at addr echoes: the service itself,
// not a proxy in front of it, answers.
func echoes(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	_, werr := c.Write([]byte("ping"))
	_, rerr := io.ReadFull(c, buf)
	return werr == nil && rerr == nil && string(buf) == "ping"
}

// testStop: Stop ends a running container (TERM, or KILL after the grace
// for a PID 1 that ignores TERM: the exit code is the process's) and
// reports it; stopping it again, or
// one that does not exist, is no error.
func testStop(s *suite) {
	evs := s.subscribe()
	id, _ := s.create("")
	s.start(id)
	if err := s.b.Stop(s.ctx, id, time.Second); err != nil {
		s.Fatalf("stop: %v", err)
	}
	e := s.next(evs, func(e ganger.Event) bool { return e.ID == id })
	if e.Action != "die" || e.Exit.Code == 0 {
		s.Fatalf("first event %+v; want die with a non-zero code (the process's answer to TERM, or 137)", e)
	}
	s.eventually("state not exited", func() bool { m := s.list(s.owner)[id]; return m.State == "exited" && !m.Running() })
	if err := s.b.Stop(s.ctx, id, time.Second); err != nil {
		s.Fatalf("stop of a stopped container: %v", err)
	}
	if err := s.b.Stop(s.ctx, "conf-nosuch-"+randomHex(4), time.Second); err != nil {
		s.Fatalf("stop of an unknown container: %v", err)
	}
}

func testExit(s *suite) {
	evs := s.subscribe()
	id, _ := s.create("")
	s.start(id)
	s.kill(id)
	e := s.next(evs, func(e ganger.Event) bool { return e.ID == id })
	if e.Action != "die" || e.Exit.Code != 137 {
		s.Fatalf("first event %+v; want die with code 137", e)
	}
	s.eventually("state not exited", func() bool { m := s.list(s.owner)[id]; return m.State == "exited" && !m.Running() })
}

func testDestroy(s *suite) {
	evs := s.subscribe()
	created, _ := s.create("")
	s.remove(created)
	if e := s.next(evs, func(e ganger.Event) bool { return e.ID == created }); e.Action != "destroy" {
		s.Fatalf("never-started container: first event %+v; want destroy", e)
	}
	running, _ := s.create("")
	s.start(running)
	s.remove(running)
	var got []string
	s.next(evs, func(e ganger.Event) bool {
		if e.ID == running {
			got = append(got, e.Action)
		}
		return e.ID == running && e.Action == "destroy"
	})
	if !slices.Equal(got, []string{"die", "destroy"}) {
		s.Fatalf("running container removed: events %v; want [die destroy]", got)
	}
}

func testEngine(s *suite) {
	e1, err1 := s.b.Engine(s.ctx)
	e2, err2 := s.b.Engine(s.ctx)
	if err1 != nil || err2 != nil || e1.ID == "" || e1.ID != e2.ID {
		s.Fatalf("engine ids %q (%v), %q (%v); want one non-empty id", e1.ID, err1, e2.ID, err2)
	}
	if v, err := s.b.Ping(s.ctx); err != nil || v == "" {
		s.Fatalf("ping: %q, %v", v, err)
	}
	if err := s.b.EnsureImage(s.ctx, s.image, ganger.PullNever); err != nil {
		s.Fatalf("image present, pull never: %v", err)
	}
	if err := s.b.EnsureImage(s.ctx, "ganger-conformance-missing:"+randomHex(4), ganger.PullNever); err == nil {
		s.Fatal("image missing, pull never: no error")
	}
}

func testEventsEnd(s *suite) {
	ctx, cancel := context.WithCancel(context.Background())
	evs, errc := s.b.Events(ctx, s.owner)
	cancel()
	timeout := time.After(wait)
	for open := true; open; {
		select {
		case _, open = <-evs:
		case <-timeout:
			s.Fatalf("event stream still open %s after its context ended", wait)
		}
	}
	select {
	case err := <-errc:
		s.Fatalf("a stream ended by its context reported %v; want nothing", err)
	default:
	}
}

// testPublished: a port of Spec.Publish is published whatever the dial
// mode, Published tells on which host port, and a client reaches the
// service there, at the backend's advertise address.
func testPublished(s *suite) {
	id, _ := s.createPublishing("", []int{servicePort})
	if p, err := s.b.Published(s.ctx, id); err == nil {
		s.Fatalf("published ports of a container not started: %v; want an error", p)
	}
	addr := s.start(id)
	s.eventually("no echo from "+addr, func() bool { return echoes(addr) })
	var ports map[int]int
	var err error
	s.eventually("published ports never known", func() bool { ports, err = s.b.Published(s.ctx, id); return err == nil })
	hp, ok := ports[servicePort]
	if !ok || hp <= 0 || hp > 65535 || len(ports) != 1 {
		s.Fatalf("published ports %v; want only %d, on a host port", ports, servicePort)
	}
	pub := net.JoinHostPort(s.b.Advertise(), strconv.Itoa(hp))
	var got string
	s.eventually("no line echoed from published "+pub, func() bool {
		got, err = echoLine(pub, "hello, published\n")
		return err == nil
	})
	if got != "hello, published\n" {
		s.Fatalf("published %s echoed %q", pub, got)
	}
	s.remove(id)
	if p, err := s.b.Published(s.ctx, id); err == nil {
		s.Fatalf("published ports of a removed container: %v; want an error", p)
	}
}

// testDialAddrs: DialAddrs gives an address for Spec.Port and each port
// of Spec.Dial, and a client reaches the service at each; before the
// start it fails.
func testDialAddrs(s *suite) {
	name := fmt.Sprintf("%s-%d", s.owner, serial.Add(1))
	other := servicePort + 1
	id, err := s.b.Create(s.ctx, ganger.Spec{
		Name: name, Image: s.image, Port: servicePort, Dial: []int{other}, Network: "bridge",
		Cmd:    []string{"-listen", fmt.Sprint(":", servicePort), "-also", fmt.Sprint(":", other)},
		Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: s.owner, ganger.LabelService: "conformance"},
		Limits: ganger.Limits{Memory: 64 << 20, Pids: 64, NoNewPrivileges: true},
	})
	if err != nil {
		s.Fatalf("create %s: %v", name, err)
	}
	s.Cleanup(func() { s.b.Remove(context.Background(), id) })
	if a, err := s.b.DialAddrs(s.ctx, id, []int{servicePort, other}); err == nil {
		s.Fatalf("addresses of a container not started: %v; want an error", a)
	}
	s.start(id)
	addrs, err := s.b.DialAddrs(s.ctx, id, []int{servicePort, other})
	if err != nil || len(addrs) != 2 || addrs[servicePort] == addrs[other] {
		s.Fatalf("DialAddrs: %v, %v; want two addresses", addrs, err)
	}
	for p, addr := range addrs {
		line := fmt.Sprintf("hello, port %d\n", p)
		var got string
		s.eventually(fmt.Sprintf("no line echoed from port %d at %s", p, addr), func() bool {
			got, err = echoLine(addr, line)
			return err == nil
		})
		if got != line {
			s.Fatalf("port %d at %s echoed %q", p, addr, got)
		}
	}
	s.remove(id)
}

// testInit: EnsureInit provides ganger-init, and again is no error (nor
// work); a container under it runs the image's own command (the echo
// server) and one given by the spec, and nothing of the provision is
// left among the owner's containers (the suite checks at the end).
func testInit(s *suite) {
	for range 2 {
		if err := s.b.EnsureInit(s.ctx, s.init, s.owner); err != nil {
			s.Fatalf("EnsureInit: %v", err)
		}
	}
	if left := s.list(s.owner); len(left) > 0 {
		s.Fatalf("left after EnsureInit: %v", left)
	}
	for _, cmd := range [][]string{{"-listen", fmt.Sprint(":", servicePort)}, nil} {
		name := fmt.Sprintf("%s-%d", s.owner, serial.Add(1))
		id, err := s.b.Create(s.ctx, ganger.Spec{
			Name: name, Image: s.image, Port: servicePort, Cmd: cmd, Network: "bridge", Init: s.init,
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: s.owner, ganger.LabelService: "conformance"},
			Limits: ganger.Limits{Memory: 64 << 20, Pids: 64, NoNewPrivileges: true, ReadOnly: true},
		})
		if err != nil {
			s.Fatalf("create %s under ganger-init: %v", name, err)
		}
		s.Cleanup(func() { s.b.Remove(context.Background(), id) })
		addr := s.start(id)
		s.eventually(fmt.Sprintf("no echo from %s under ganger-init (cmd %q)", addr, cmd), func() bool { return echoes(addr) })
		s.remove(id)
	}
}

// echoLine writes line to what listens at addr and returns the line it
// reads back.
func echoLine(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}
