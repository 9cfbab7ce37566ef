package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/autoscale"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
	"github.com/ganger-dev/ganger/internal/view"
)

const (
	scalePrefix   = "/autoscale-test/"
	scaleUpAt     = 0.5
	scaleCooldown = 3 * time.Second
	scaleIdle     = 2 * time.Second // scale_down_idle
	scaleMinAge   = 2 * time.Second
	// scaleSlack is how much earlier than a cooldown after the previous
	// one an up hook's snapshot may be dated: the snapshot is taken a
	// moment before the decision's clock reading that the cooldown is
	// measured by.
	scaleSlack = 250 * time.Millisecond
)

// scaleExtras number the extra daemons the up hook hands out; lower
// numbers belong to other tests.
var scaleExtras = []int{12, 13, 14}

// Autoscaling end to end, through the binary: a node with no daemon of its
// own (daemons: []) and hooks that start and stop `ganger agent` for extra
// dockerds on this machine. The dockerds are started beforehand by the
// test and stay up throughout; the up hook starts only an agent, detached,
// and the down hook stops only the agent (SIGTERM: it drains and
// deregisters).
//
// min_hosts asks for the first host; two sessions on its two places push
// the load to 1 and one up hook runs (max_pending 1 holds a second until
// the host registers); further load adds the third host no sooner than a
// cooldown after the second, then max_hosts holds. Every host takes
// sessions. With the sessions gone hosts are drained and removed, one at a
// time, down to the one standby host; twice a session is opened while a
// host is drained to go: it is never placed there, and the host either is
// put back or has no container when its down hook runs.
func TestAutoscaleHooks(t *testing.T) {
	r := newScaleRig(t)
	held := r.scaleUp()
	for _, s := range held {
		s.end()
	}
	r.waitNoSessions()

	// Three empty hosts, standby_hosts 1: the oldest idle one is drained.
	// A session now goes to one of the other two, and the load without
	// the drained host stays under scale_up_at: its down hook runs.
	first, s1, removed1 := r.raceDrain()
	t.Logf("first drain: %s %s; the session went to %s", first.Host, outcome(removed1), s1.daemon)
	s1.end()
	r.waitNoSessions()

	// Two empty hosts: one is drained; the session opened now fills half
	// the other, so an up is wanted and the drained host is put back
	// (unless the session came after the pass that ran the hook: then
	// the hook's snapshot shows no session, which raceDrain checks).
	second, s2, removed2 := r.raceDrain()
	t.Logf("second drain: %s %s; the session went to %s", second.Host, outcome(removed2), s2.daemon)
	s2.end()
	r.waitNoSessions()

	r.waitStandbyOnly()
	r.checkDowns()
	r.checkDrains()
	if ups := r.runs(autoscale.ActionUp); len(ups) != 3 {
		t.Fatalf("%d up hooks ran; want the 3 of the scale-up", len(ups))
	}

	// Pause and resume through the API: the token is needed, the status
	// says so, and a paused scaler takes no decision.
	if code := call(t, "POST", r.api+"/v1/autoscale/pause", "", nil); code != 401 {
		t.Fatalf("pause without the token: %d; want 401", code)
	}
	var st autoscale.Status
	if code := call(t, "POST", r.api+"/v1/autoscale/pause", token, &st); code != 200 || !st.Paused {
		t.Fatalf("pause: %d %+v", code, st)
	}
	if code := call(t, "POST", r.api+"/v1/autoscale/resume", token, &st); code != 200 || st.Paused {
		t.Fatalf("resume: %d %+v", code, st)
	}
}

func outcome(removed bool) string {
	if removed {
		return "removed by its down hook"
	}
	return "put back"
}

// scaleUp grows the fleet from nothing to max_hosts and returns the
// sessions that hold it there, each host with at least one.
func (r *scaleRig) scaleUp() []*scaleSession {
	t := r.t
	ups := r.waitUps(1)
	if !strings.Contains(ups[0].input.Reason, "min_hosts 1") {
		t.Fatalf("first up hook's reason %q; want min_hosts", ups[0].input.Reason)
	}
	a := r.waitHostUp(ups[0])
	held := []*scaleSession{r.open(), r.open()}
	if held[0].daemon != a {
		t.Fatalf("first session on %s; want %s, the only host", held[0].daemon, a)
	}
	// Load 1 (or 0.5 before the second session): one up hook, and no
	// second while it is pending, whatever the load.
	ups = r.waitUps(2)
	b := r.waitHostUp(ups[1])
	held = append(held, r.open()) // load 3/4 now if not before: a third host
	ups = r.waitUps(3)
	c := r.waitHostUp(ups[2])
	held = append(held, r.open()) // to c, the emptiest host
	// 4 of 6 places: the load still asks for a host, max_hosts holds.
	r.waitDecision(autoscale.ActionWait, "3 hosts at max_hosts 3")
	for i, up := range ups[1:] {
		if !strings.Contains(up.input.Reason, "load ") || !strings.Contains(up.input.Reason, "≥ 0.50") {
			t.Errorf("up hook %d's reason %q; want the load", i+2, up.input.Reason)
		}
	}
	r.checkUps(ups)
	r.checkPlacement(held, a, b, c)
	return held
}

// checkUps checks the up hooks' records against each other and GET
// /v1/autoscale: one per cooldown at most, each with its own host, each
// settled by that host's registration.
func (r *scaleRig) checkUps(ups []*hookRecord) {
	t := r.t
	for i, up := range ups {
		if i > 0 {
			gap := up.input.Snapshot.At.Sub(ups[i-1].input.Snapshot.At)
			if gap < scaleCooldown-scaleSlack {
				t.Errorf("up hooks %d and %d decided %s apart; cooldown is %s", i, i+1, gap, scaleCooldown)
			}
		}
	}
	st := r.status()
	if tt := st.Totals; tt.UpRequested != len(ups) || tt.UpSettled != len(ups) || len(st.Pending) != 0 {
		t.Fatalf("%d up hooks recorded; status says requested %d, settled %d, pending %v", len(ups), tt.UpRequested, tt.UpSettled, st.Pending)
	}
	for _, up := range ups {
		i := slices.IndexFunc(st.Hooks, func(h autoscale.HookRun) bool { return h.RequestID == up.input.RequestID })
		if i < 0 || st.Hooks[i].Action != autoscale.ActionUp || !st.Hooks[i].Accepted || st.Hooks[i].ExitCode != 0 {
			t.Errorf("up request %s: status shows %+v; want an accepted up run", up.input.RequestID, st.Hooks)
		}
	}
}

// checkPlacement checks that every host took sessions, as the API and the
// host's own dockerd tell.
func (r *scaleRig) checkPlacement(held []*scaleSession, hosts ...string) {
	per := map[string]int{}
	for _, s := range held {
		per[s.daemon]++
	}
	for _, h := range hosts {
		if per[h] == 0 || r.ownedOn(h) != per[h] {
			r.t.Errorf("host %s: %d sessions, %d containers of this node on its dockerd; want the same, at least 1", h, per[h], r.ownedOn(h))
		}
	}
}

// raceDrain waits until a host is drained to go, opens a session at once
// (within the second before the scaler's next pass) and follows the
// removal to its end: the host is removed, its down hook having found no
// container there, or it is put back.
func (r *scaleRig) raceDrain() (autoscale.Removal, *scaleSession, bool) {
	t := r.t
	before := r.status().Totals
	var st autoscale.Status
	dockertest.Eventually(t, 2*time.Minute, "no host was drained to go", func() bool {
		st = r.status()
		return st.Removing != nil && st.Removing.Phase == autoscale.PhaseDraining
	})
	out := *st.Removing
	s := r.open()
	if s.daemon == out.Host {
		t.Fatalf("a session was placed on %s, drained to go", out.Host)
	}
	var down *hookRecord
	dockertest.Eventually(t, time.Minute, "the removal of "+out.Host+" neither ran its down hook nor put it back", func() bool {
		st = r.status()
		down = r.run(out.RequestID)
		return down != nil || st.Removing == nil || st.Removing.RequestID != out.RequestID
	})
	if down != nil {
		r.checkDown(down, s)
		r.waitRemoved(out.Host, before.Removed+1)
	} else {
		r.checkPutBack(out, st, before)
	}
	s.echo(t) // the session lives on, wherever it is
	return out, s, down != nil
}

// checkDown checks a down hook that ran while s was open: the host had no
// container of anyone's at that moment, s is elsewhere, and the load the
// scaler saw without the host was under scale_up_at.
func (r *scaleRig) checkDown(down *hookRecord, s *scaleSession) {
	t := r.t
	host := down.input.Host
	r.checked[down.input.RequestID] = true
	if down.env["containers"] != "0" {
		t.Errorf("the down hook of %s found %s Ganger containers there", host, down.env["containers"])
	}
	if s != nil && s.daemon == host {
		t.Errorf("the down hook of %s ran with a live session there (%s)", host, s.id)
	}
	snap := down.input.Snapshot
	if i := slices.IndexFunc(snap.Hosts, func(h autoscale.Host) bool { return h.Name == host }); i < 0 {
		t.Errorf("the down hook of %s: the host is not in its snapshot", host)
	} else {
		h := snap.Hosts[i]
		if age := snap.At.Sub(h.Registered); age < scaleMinAge {
			t.Errorf("the down hook of %s ran at age %s; min_age is %s", host, age, scaleMinAge)
		}
		if end := r.lastEnd(host, snap.At); h.IdleSince.Before(end) {
			t.Errorf("the down hook of %s: its snapshot has it idle since %s, but its last session ended at %s",
				host, h.IdleSince.Format(time.StampMilli), end.Format(time.StampMilli))
		}
	}
	if float64(snap.Used+snap.Queued) >= scaleUpAt*float64(snap.Capacity) {
		t.Errorf("the down hook of %s ran at load (%d+%d)/%d ≥ %.2f: an up was wanted, the host should have been put back",
			host, snap.Used, snap.Queued, snap.Capacity, scaleUpAt)
	}
}

// checkPutBack checks a host put back: counted, said, no down hook, and
// up again for new sessions.
func (r *scaleRig) checkPutBack(out autoscale.Removal, st autoscale.Status, before autoscale.Totals) {
	t := r.t
	if st.Totals.PutBack != before.PutBack+1 || st.Totals.DownHooks != before.DownHooks {
		t.Errorf("%s: totals %+v, before %+v; want one more put back and no down hook", out.Host, st.Totals, before)
	}
	// The decision is recorded a moment after the host is put back.
	dockertest.Eventually(t, time.Minute, "no decision says "+out.Host+" was put back", func() bool {
		m := r.status().LastMove
		return m != nil && m.RequestID == out.RequestID && strings.Contains(m.Reason, out.Host+" put back")
	})
	dockertest.Eventually(t, time.Minute, out.Host+" never listed up again", func() bool {
		h, ok := r.host(out.Host)
		return ok && h.State == "up"
	})
}

// waitRemoved waits for host to leave the node's hosts (draining, then
// lost, then gone) and the scaler to count it, and checks that its agent
// has exited.
func (r *scaleRig) waitRemoved(host string, removed int) {
	dockertest.Eventually(r.t, time.Minute, host+" never left GET /v1/hosts", func() bool {
		_, ok := r.host(host)
		return !ok
	})
	dockertest.Eventually(r.t, time.Minute, "the scaler never counted "+host+" removed", func() bool {
		st := r.status()
		return st.Totals.Removed == removed && st.Removing == nil
	})
	dockertest.Eventually(r.t, time.Minute, "the agent of "+host+" never exited", func() bool {
		return !r.agentAlive(host)
	})
}

// waitStandbyOnly waits until one host is left, empty: the standby, which
// the scaler keeps.
func (r *scaleRig) waitStandbyOnly() {
	dockertest.Eventually(r.t, 2*time.Minute, "the fleet never shrank to one host", func() bool {
		return len(r.hosts()) == 1 && r.status().Removing == nil
	})
	r.waitDecision(autoscale.ActionNone, "1 empty hosts, standby_hosts 1")
	h := r.hosts()[0]
	if h.State != "up" || h.Source != "etcd" || h.Containers != 0 || !r.agentAlive(h.Name) {
		r.t.Fatalf("the standby host: %+v (agent alive: %v)", h, r.agentAlive(h.Name))
	}
}

// checkDowns checks every down hook's record against GET /v1/autoscale:
// each found its host empty and removed it.
func (r *scaleRig) checkDowns() {
	t := r.t
	downs := r.runs(autoscale.ActionDown)
	st := r.status()
	if st.Totals.DownHooks != len(downs) || st.Totals.Removed != len(downs) {
		t.Errorf("%d down hooks recorded; status totals %+v", len(downs), st.Totals)
	}
	for _, d := range downs {
		if !r.checked[d.input.RequestID] {
			r.checkDown(d, nil)
		}
		if _, ok := r.host(d.input.Host); ok || r.agentAlive(d.input.Host) {
			t.Errorf("%s still listed or its agent still runs after its down hook", d.input.Host)
		}
	}
}

// checkDrains checks every drain status showed: the host had been idle
// scale_down_idle at least, by the sessions that had run there.
func (r *scaleRig) checkDrains() {
	if len(r.drains) < 2 {
		r.t.Errorf("status showed %d hosts drained to go; want the 2 removed at least", len(r.drains))
	}
	for _, out := range r.drains {
		end := r.lastEnd(out.Host, out.Since)
		if out.Since.Sub(end) < scaleIdle {
			r.t.Errorf("%s was drained to go at %s, %s after its last session ended (%s); scale_down_idle is %s",
				out.Host, out.Since.Format(time.StampMilli), out.Since.Sub(end).Round(time.Millisecond), end.Format(time.StampMilli), scaleIdle)
		}
	}
}

// lastEnd is when the last session on host that began before at ended (a
// session live on it counts as ending now), zero if none did.
func (r *scaleRig) lastEnd(host string, at time.Time) time.Time {
	var list struct{ Live, Recent []view.Session }
	if code := call(r.t, "GET", r.api+"/v1/sessions", token, &list); code != 200 {
		r.t.Fatalf("GET /v1/sessions: %d", code)
	}
	var end time.Time
	for _, s := range append(list.Live, list.Recent...) {
		if s.Daemon != host || !s.Start.Before(at) {
			continue
		}
		e := s.Start.Add(time.Duration(s.Duration * float64(time.Second)))
		if s.Live {
			e = time.Now()
		}
		if e.After(end) {
			end = e
		}
	}
	return end
}

// scaleRig is the node under test, its extra daemons, and the directory
// the hooks work in: their records (runs/), the daemons they hand out, the
// agents' pid files, logs and state.
type scaleRig struct {
	t      *testing.T
	node   string
	p      *proc
	api    string
	addr   string // the echo service
	dir    string
	names  []string // the extra daemons' names, in the order handed out
	extras map[string]*dockertest.Extra
	// drains are the removals status has seen at their first step, by
	// request id: when each host was drained to go.
	drains map[string]autoscale.Removal
	// checked are the down hooks' records checked so far.
	checked map[string]bool
}

func newScaleRig(t *testing.T) *scaleRig {
	d := dockertest.Daemon(t)
	r := &scaleRig{t: t, node: dockertest.Node(t, d), dir: t.TempDir(),
		extras: map[string]*dockertest.Extra{}, drains: map[string]autoscale.Removal{}, checked: map[string]bool{}}
	e := etcdtest.New(t)
	r.startExtras()
	t.Cleanup(r.noneLeft) // after the agents are killed, before the daemons stop
	r.writeHooks(e)
	t.Cleanup(r.killAgents) // after the node has stopped
	r.p, r.api = startInstanceProc(t, r.writeConfig(e))
	r.addr = r.p.addr()
	t.Cleanup(r.dump) // first: while the node still answers
	return r
}

// startExtras starts the extra daemons side by side, each stopped at the
// test's end. Their Stop (and the next start of the same number) also
// kills a leftover agent: its command line names the daemon's directory.
func (r *scaleRig) startExtras() {
	list := make([]*dockertest.Extra, len(scaleExtras))
	errs := make([]error, len(scaleExtras))
	var wg sync.WaitGroup
	for i, n := range scaleExtras {
		wg.Go(func() { list[i], errs[i] = dockertest.StartExtra(n, false) })
	}
	wg.Wait()
	for _, e := range list {
		if e != nil {
			r.t.Cleanup(e.Stop)
			r.names = append(r.names, e.Name)
			r.extras[e.Name] = e
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.t.Fatalf("extra daemons: %v", err)
	}
}

// upHook records its input, starts `ganger agent` for the first extra
// daemon no earlier run took, detached (a session of its own, no stdin,
// output to a file, its pid in a file), and exits 0 at once.
const upHook = `#!/bin/sh
set -eu
dir='%s' ganger='%s' etcd='%s' prefix='%s'
id=$GANGER_REQUEST_ID
cat > "$dir/runs/$id.json"
while read -r host sock; do
	mkdir "$dir/claims/$host" 2>/dev/null || continue
	setsid sh -c 'echo $$ > "$1"; shift; exec "$@"' agent "$dir/$host.pid" \
		"$ganger" agent --etcd "$etcd" --prefix "$prefix" --name "$host" --docker "$sock" \
		--advertise 127.0.0.1 --state-dir "$dir/state-$host" --ttl 2s --max-containers 2 \
		</dev/null >"$dir/$host.log" 2>&1 &
	printf 'action=%%s\nrequest_id=%%s\nhost=%%s\n' "$GANGER_ACTION" "$id" "$host" > "$dir/runs/$id.tmp"
	mv "$dir/runs/$id.tmp" "$dir/runs/$id.env"
	echo "agent started for $host"
	exit 0
done < "$dir/daemons"
echo "no extra daemon left" >&2
exit 1
`

// downHook records its input and how many Ganger containers (anyone's)
// the host's dockerd holds at this moment, then sends SIGTERM to the
// host's agent, which drains the host and deregisters it.
const downHook = `#!/bin/sh
set -eu
dir='%s'
id=$GANGER_REQUEST_ID
cat > "$dir/runs/$id.json"
sock=
while read -r host s; do
	if [ "$host" = "$GANGER_HOST" ]; then sock=$s; fi
done < "$dir/daemons"
if [ -z "$sock" ]; then echo "no extra daemon $GANGER_HOST" >&2; exit 1; fi
ids=$(docker -H "$sock" ps -aq --filter label=ganger.managed=true)
n=$(printf '%%s' "$ids" | grep -c . || true)
printf 'action=%%s\nrequest_id=%%s\nhost=%%s\ncontainers=%%s\n' "$GANGER_ACTION" "$id" "$GANGER_HOST" "$n" > "$dir/runs/$id.tmp"
mv "$dir/runs/$id.tmp" "$dir/runs/$id.env"
kill -TERM "$(cat "$dir/$GANGER_HOST.pid")"
echo "SIGTERM sent to the agent of $GANGER_HOST"
`

func (r *scaleRig) writeHooks(e *etcdtest.Etcd) {
	var daemons strings.Builder
	for _, n := range r.names {
		fmt.Fprintf(&daemons, "%s %s\n", n, r.extras[n].Host)
	}
	for _, sub := range []string{"runs", "claims"} {
		if err := os.Mkdir(filepath.Join(r.dir, sub), 0o755); err != nil {
			r.t.Fatal(err)
		}
	}
	r.write("daemons", daemons.String(), 0o644)
	r.write("up.sh", fmt.Sprintf(upHook, r.dir, binary, e.Endpoint(), scalePrefix), 0o755)
	r.write("down.sh", fmt.Sprintf(downHook, r.dir), 0o755)
}

func (r *scaleRig) write(name, body string, mode os.FileMode) {
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(body), mode); err != nil {
		r.t.Fatal(err)
	}
}

// writeConfig: no daemon of the node's own, hosts from etcd, an echo
// service on each daemon's default bridge (see dockertest.Extra), and
// autoscale with the hooks.
func (r *scaleRig) writeConfig(e *etcdtest.Etcd) string {
	path := filepath.Join(r.t.TempDir(), "ganger.yaml")
	y := fmt.Sprintf(`node: %s
log: {level: debug}
api: {listen: 127.0.0.1:0, token: %s}
daemons: []
discovery:
  etcd: {endpoints: [%s], prefix: %s, lost_grace: 2s, ttl: 2s}
autoscale:
  interval: 1s
  min_hosts: 1
  max_hosts: 3
  standby_hosts: 1
  scale_up_at: %v
  scale_down_idle: %s
  min_age: %s
  cooldown: %s
  max_pending: 1
  provision_timeout: 60s
  up: {command: [%s], timeout: 30s}
  down: {command: [%s], timeout: 30s}
services:
  - name: echo
    listen: 127.0.0.1:0
    image: %s
    port: 7777
    network: bridge
    cmd: ["-banner", "hi"]
    timeouts: {drain: 1s}
`, r.node, token, e.Endpoint(), scalePrefix, scaleUpAt, scaleIdle, scaleMinAge, scaleCooldown,
		filepath.Join(r.dir, "up.sh"), filepath.Join(r.dir, "down.sh"), dockertest.Image)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// hookRecord is one run of a hook as the hook wrote it down: its stdin
// and what it adds (env: action, request_id, host, containers).
type hookRecord struct {
	env   map[string]string
	input struct {
		Action    autoscale.Action `json:"action"`
		RequestID string           `json:"request_id"`
		Host      string           `json:"host"`
		Reason    string           `json:"reason"`
		Snapshot  struct {
			At       time.Time        `json:"at"`
			Hosts    []autoscale.Host `json:"hosts"`
			Used     int              `json:"used"`
			Capacity int              `json:"capacity"`
			Queued   int              `json:"queued"`
		} `json:"snapshot"`
	}
}

// runs returns the recorded runs of action's hook, by the time of their
// decision.
func (r *scaleRig) runs(action autoscale.Action) []*hookRecord {
	paths, _ := filepath.Glob(filepath.Join(r.dir, "runs", "*.env"))
	var out []*hookRecord
	for _, p := range paths {
		if rec := r.run(strings.TrimSuffix(filepath.Base(p), ".env")); rec.input.Action == action {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b *hookRecord) int { return a.input.Snapshot.At.Compare(b.input.Snapshot.At) })
	return out
}

// run reads the record of request id, nil if its hook has not written it
// (yet). Its stdin and its environment must agree.
func (r *scaleRig) run(id string) *hookRecord {
	env, err := os.ReadFile(filepath.Join(r.dir, "runs", id+".env"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	in, err2 := os.ReadFile(filepath.Join(r.dir, "runs", id+".json"))
	if err = errors.Join(err, err2); err != nil {
		r.t.Fatal(err)
	}
	rec := &hookRecord{env: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		rec.env[k] = v
	}
	if err := json.Unmarshal(in, &rec.input); err != nil {
		r.t.Fatalf("hook input of %s: %v\n%s", id, err, in)
	}
	if i := rec.input; string(i.Action) != rec.env["action"] || i.RequestID != id || rec.env["request_id"] != id ||
		i.Action == autoscale.ActionDown && i.Host != rec.env["host"] {
		r.t.Fatalf("hook run %s: stdin %s disagrees with GANGER_ACTION, GANGER_REQUEST_ID or GANGER_HOST: %v", id, in, rec.env)
	}
	return rec
}

// waitUps waits until n up hooks have run and returns them; one more is
// a failure.
func (r *scaleRig) waitUps(n int) []*hookRecord {
	var ups []*hookRecord
	dockertest.Eventually(r.t, time.Minute, fmt.Sprintf("up hook %d never ran", n), func() bool {
		ups = r.runs(autoscale.ActionUp)
		return len(ups) >= n
	})
	if len(ups) > n {
		r.t.Fatalf("%d up hooks ran; want %d", len(ups), n)
	}
	return ups
}

// waitHostUp waits until the host the up hook started an agent for is up
// in the node's hosts, found in etcd, and returns its name.
func (r *scaleRig) waitHostUp(up *hookRecord) string {
	name := up.env["host"]
	dockertest.Eventually(r.t, time.Minute, "host "+name+" never listed up", func() bool {
		h, ok := r.host(name)
		return ok && h.State == "up" && h.Source == "etcd"
	})
	return name
}

// waitDecision waits for a decision of action whose reason says why.
func (r *scaleRig) waitDecision(action autoscale.Action, why string) {
	dockertest.Eventually(r.t, time.Minute, fmt.Sprintf("no decision %s %q", action, why), func() bool {
		last := r.status().Last
		return last.Action == action && strings.Contains(last.Reason, why)
	})
}

// status reads GET /v1/autoscale and checks what always holds: at most
// max_pending requests, every request accounted for, no hook failed.
func (r *scaleRig) status() autoscale.Status {
	var st autoscale.Status
	if code := call(r.t, "GET", r.api+"/v1/autoscale", token, &st); code != 200 {
		r.t.Fatalf("GET /v1/autoscale: %d", code)
	}
	tt := st.Totals
	switch {
	case len(st.Pending) > 1:
		r.t.Fatalf("%d up requests pending; max_pending is 1: %+v", len(st.Pending), st.Pending)
	case tt.UpRequested != tt.UpSettled+tt.UpFailed+tt.UpExpired+len(st.Pending):
		r.t.Fatalf("up requests unaccounted for: totals %+v, pending %+v", tt, st.Pending)
	case tt.UpFailed+tt.UpExpired+tt.DownFailed > 0:
		r.t.Fatalf("a hook failed or a request expired: totals %+v, hooks %+v", tt, st.Hooks)
	}
	if out := st.Removing; out != nil && out.Phase == autoscale.PhaseDraining {
		r.drains[out.RequestID] = *out
	}
	return st
}

func (r *scaleRig) hosts() []view.Host {
	var hosts []view.Host
	if code := call(r.t, "GET", r.api+"/v1/hosts", token, &hosts); code != 200 {
		r.t.Fatalf("GET /v1/hosts: %d", code)
	}
	return hosts
}

func (r *scaleRig) host(name string) (view.Host, bool) {
	for _, h := range r.hosts() {
		if h.Name == name {
			return h, true
		}
	}
	return view.Host{}, false
}

func (r *scaleRig) liveSessions() []view.Session {
	var list struct{ Live []view.Session }
	if code := call(r.t, "GET", r.api+"/v1/sessions", token, &list); code != 200 {
		r.t.Fatalf("GET /v1/sessions: %d", code)
	}
	return list.Live
}

func (r *scaleRig) waitNoSessions() {
	dockertest.Eventually(r.t, time.Minute, "sessions still live after their clients closed", func() bool {
		return len(r.liveSessions()) == 0
	})
}

// ownedOn counts this node's containers on the named extra daemon, as
// that dockerd lists them.
func (r *scaleRig) ownedOn(name string) int {
	out := dockertest.Docker(r.t, "-H", r.extras[name].Host, "ps", "-aq", "--filter", "label="+ganger.LabelOwner+"="+r.node)
	return len(strings.Fields(out))
}

// scaleSession is an open session and where the node placed it.
type scaleSession struct {
	c          net.Conn
	r          *bufio.Reader
	id, daemon string
}

// open opens a session, sends a line (past the first-byte timeout) and
// finds its host in GET /v1/sessions by the client's address.
func (r *scaleRig) open() *scaleSession {
	c, br := openSession(r.t, r.addr)
	s := &scaleSession{c: c, r: br}
	s.echo(r.t)
	client := c.LocalAddr().String()
	dockertest.Eventually(r.t, time.Minute, "no live session of client "+client, func() bool {
		for _, l := range r.liveSessions() {
			if l.Client == client {
				s.id, s.daemon = l.ID, l.Daemon
				return true
			}
		}
		return false
	})
	return s
}

// echo checks that the session still works.
func (s *scaleSession) echo(t *testing.T) {
	t.Helper()
	s.c.SetDeadline(time.Now().Add(30 * time.Second))
	defer s.c.SetDeadline(time.Time{})
	if _, err := io.WriteString(s.c, "ping\n"); err != nil {
		t.Fatalf("session %s: %v", s.id, err)
	}
	if line, err := s.r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("session %s on %s: echo %q, %v", s.id, s.daemon, line, err)
	}
}

// end closes the client's side; the session ends with it.
func (s *scaleSession) end() { s.c.Close() }

// agentAlive says whether the host's agent runs: its pid file names a
// process that is that agent (not another that took its pid) and not a
// zombie (it was detached from the hook: whoever inherits it may be slow
// to reap it).
func (r *scaleRig) agentAlive(host string) bool {
	pid := r.agentPID(host)
	if pid == 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00agent\x00") || !strings.Contains(string(cmdline), "\x00--name\x00"+host+"\x00") {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func (r *scaleRig) agentPID(host string) int {
	b, err := os.ReadFile(filepath.Join(r.dir, host+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// killAgents kills the agents still running (the node has stopped), and
// shows their logs if the test failed.
func (r *scaleRig) killAgents() {
	for _, host := range r.names {
		if r.agentAlive(host) {
			syscall.Kill(r.agentPID(host), syscall.SIGKILL)
		}
		for i := 0; r.agentAlive(host) && i < 100; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if r.agentAlive(host) {
			r.t.Errorf("the agent of %s survived SIGKILL", host)
		}
		if b, err := os.ReadFile(filepath.Join(r.dir, host+".log")); err == nil && r.t.Failed() {
			r.t.Logf("agent %s log:\n%s", host, b)
		}
	}
}

// noneLeft checks that the extra daemons hold no Ganger container, and
// removes any.
func (r *scaleRig) noneLeft() {
	for _, name := range r.names {
		host := r.extras[name].Host
		out, err := exec.Command("docker", "-H", host, "ps", "-aq", "--filter", "label="+ganger.LabelManaged+"=true").CombinedOutput()
		if err != nil {
			r.t.Errorf("list containers on %s: %v: %s", name, err, out)
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			r.t.Errorf("container %s left on %s", id, name)
			exec.Command("docker", "-H", host, "rm", "-f", id).Run()
		}
	}
}

// dump shows, if the test failed, what the node says of autoscaling and
// its hosts, and the hooks' records.
func (r *scaleRig) dump() {
	if !r.t.Failed() {
		return
	}
	for _, path := range []string{"/v1/autoscale", "/v1/hosts", "/v1/sessions"} {
		req, _ := http.NewRequest("GET", r.api+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r.t.Logf("GET %s:\n%s", path, b)
		}
	}
	paths, _ := filepath.Glob(filepath.Join(r.dir, "runs", "*"))
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		r.t.Logf("%s:\n%s", filepath.Base(p), b)
	}
}
