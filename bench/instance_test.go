package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/store/pgtest"
	"github.com/ganger-dev/ganger/internal/store/postgres"
	"github.com/ganger-dev/ganger/internal/store/sqlite"
)

// adminToken is api.token of the Ganger processes these benchmarks run.
const adminToken = "bench-admin-token-0123456789abcdef"

// redisArgs are the instance Redis's arguments but its password, as
// cmd/ganger's end-to-end test gives them.
var redisArgs = []string{"--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/tmp"}

// instanceView is an instance as the API shows it.
type instanceView struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	Host       string            `json:"host"`
	Ports      map[string]int    `json:"ports"`
	Secrets    map[string]string `json:"secrets"`
	OwnerToken string            `json:"owner_token"`
	ExpiresAt  time.Time         `json:"expires_at"`
	EndedAt    *time.Time        `json:"ended_at"`
	Reason     string            `json:"reason"`
}

// gangerProc is the real binary (cmd/ganger) serving a configuration,
// with its API on a free port.
type gangerProc struct {
	b      *testing.B
	cmd    *exec.Cmd
	logs   *dockertest.Logs
	api    string // http://host:port
	client *http.Client
	exited chan struct{}
	stop   sync.Once
}

// buildGanger builds cmd/ganger into a temporary directory of b's.
func buildGanger(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "ganger")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ganger").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

var apiAddrRE = regexp.MustCompile(`msg="api listening" addr=(\S+)`)

// startGanger runs bin on the configuration of node whose top-level keys
// besides node and api are yml, and waits for its API. Call its Stop, or
// leave it to b's cleanup (registered after dockertest.Node's, so it runs
// first): it deletes every live instance through the API (instances
// outlive Ganger by design), then stops the process as an operator
// would.
func startGanger(b *testing.B, bin, node, yml string) *gangerProc {
	path := filepath.Join(b.TempDir(), "ganger.yaml")
	cfg := fmt.Sprintf("node: %s\napi: {listen: 127.0.0.1:0, token: %s}\n%s", node, adminToken, yml)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	p := &gangerProc{b: b, logs: &dockertest.Logs{}, exited: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	p.cmd = exec.Command(bin, "serve", "--config", path)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	b.Cleanup(p.Stop)
	dockertest.Eventually(b, time.Minute, "ganger's api never listened", func() bool {
		select {
		case <-p.exited:
			b.Fatalf("ganger exited at start: %v\n%s", p.cmd.ProcessState, p.logs)
		default:
		}
		if m := apiAddrRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.api = "http://" + m[1]
		}
		return p.api != ""
	})
	return p
}

// do makes an API call as the admin; body "" sends none. It returns the
// status and the whole answer.
func (p *gangerProc) do(method, path, body string) (int, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.api+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// list is GET /v1/instances (state=all: with the ended ones).
func (p *gangerProc) list(all bool) ([]instanceView, error) {
	path := "/v1/instances"
	if all {
		path += "?state=all"
	}
	code, body, err := p.do("GET", path, "")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	var l []instanceView
	return l, json.Unmarshal(body, &l)
}

// deleteLive deletes every live instance, eight at a time.
func (p *gangerProc) deleteLive() error {
	live, err := p.list(false)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 8)
	for _, in := range live {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			code, body, err := p.do("DELETE", "/v1/instances/"+in.ID, "")
			if err == nil && code != 200 && code != 409 { // 409: it ended meanwhile
				err = fmt.Errorf("DELETE %s: %d %s", in.ID, code, body)
			}
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// Stop deletes the live instances and stops the process (SIGTERM; SIGKILL
// after a minute). Once; b's cleanup calls it too.
func (p *gangerProc) Stop() {
	p.stop.Do(func() {
		select {
		case <-p.exited:
		default:
			if p.api != "" {
				if err := p.deleteLive(); err != nil {
					p.b.Errorf("deleting the live instances: %v", err)
				}
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(time.Minute):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if p.b.Failed() {
			p.b.Logf("ganger's log:\n%s", p.logs)
		}
	})
}

// redisAuthPing connects to a Redis that requires password, AUTHs and
// PINGs it.
func redisAuthPing(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "AUTH %s\r\nPING\r\n", password); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for _, want := range []string{"+OK\r\n", "+PONG\r\n"} {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line != want {
			return fmt.Errorf("answer %q, want %q", line, want)
		}
	}
	return nil
}

func randomPassword() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b) // 24 characters, letters and digits, as secrets: {password: 24}
}

// BenchmarkInstanceCreate: create to ready of a Redis instance through
// the API of the real binary (POST /v1/services/redis/instances as the
// admin, timed from the request until the 201 is read: Ganger answers once
// Redis accepts a TCP connection), against a minimal loop on the same
// daemon doing what Ganger does for it: create (same image, arguments,
// limits, network, published port), start, dial the container with the
// same backoff until it accepts, inspect its published port. Each side's
// Redis then answers AUTH and PING on the published port (not timed). The
// two alternate op by op, the order turning each op; deletion is never
// timed, and each op waits until the previous container is gone.
func BenchmarkInstanceCreate(b *testing.B) {
	d := dockertest.Daemon(b)
	node := dockertest.Node(b, d)
	if err := d.EnsureImage(context.Background(), RedisImage, "never"); err != nil {
		b.Skipf("%s: %v (make bench builds it)", RedisImage, err)
	}
	args, _ := json.Marshal(append(slices.Clone(redisArgs), "--requirepass", "{{.Secrets.password}}"))
	g := startGanger(b, buildGanger(b), node, fmt.Sprintf(`services:
  - name: redis
    mode: instance
    image: %s
    ports: [6379]
    cmd: %s
    instance: {ttl: 10m, max_ttl: 1h, per_owner: 0, create_rate: {rate: 1000, burst: 1000}, secrets: {password: 24}}
`, RedisImage, args))
	base := direct(b, "container")
	ctx := context.Background()

	viaGanger := func() time.Duration {
		t0 := time.Now()
		code, body, err := g.do("POST", "/v1/services/redis/instances", "")
		took := time.Since(t0)
		if err != nil || code != 201 {
			b.Fatalf("through ganger: %d %v %s", code, err, body)
		}
		b.StopTimer()
		defer b.StartTimer()
		var in instanceView
		if err := json.Unmarshal(body, &in); err != nil {
			b.Fatal(err)
		}
		err = redisAuthPing(net.JoinHostPort(in.Host, strconv.Itoa(in.Ports["6379"])), in.Secrets["password"])
		if code, body, derr := g.do("DELETE", "/v1/instances/"+in.ID, ""); derr != nil || code != 200 {
			b.Fatalf("delete: %d %v %s", code, derr, body)
		}
		if err != nil {
			b.Fatalf("the instance's redis: %v", err)
		}
		waitGone(b, d, node)
		return took
	}
	var made int
	viaLoop := func() time.Duration {
		pw := randomPassword()
		spec := baselineSpec(node, made)
		made++
		spec.Image, spec.Port, spec.Publish = RedisImage, 6379, []int{6379}
		spec.Cmd = append(slices.Clone(redisArgs), "--requirepass", pw)
		t0 := time.Now()
		id, err := base.Create(ctx, spec)
		if err != nil {
			b.Fatalf("minimal loop: %v", err)
		}
		var ports map[int]int
		a, err := base.Start(ctx, id, 6379)
		if err == nil {
			var c net.Conn
			if c, err = dialReady(a); err == nil {
				c.Close()
				ports, err = base.Published(ctx, id)
			}
		}
		took := time.Since(t0)
		b.StopTimer()
		defer b.StartTimer()
		if err == nil {
			err = redisAuthPing(net.JoinHostPort(base.Advertise(), strconv.Itoa(ports[6379])), pw)
		}
		base.Remove(ctx, id)
		if err != nil {
			b.Fatalf("minimal loop: %v", err)
		}
		waitGone(b, d, node)
		return took
	}

	var got, loop []time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			got = append(got, viaGanger())
			loop = append(loop, viaLoop())
		} else {
			loop = append(loop, viaLoop())
			got = append(got, viaGanger())
		}
	}
	b.StopTimer()
	report(b, "instance create to ready (POST until the 201, vs create+start+dial+inspect)", got, loop, "minimal loop")
	if b.N > 1 {
		fmt.Printf("  goal: ratio of medians <= 1.15; difference of medians %s\n", ms(median(got)-median(loop)))
	}
}

// instanceRecords are n ended instance records such as a busy node
// leaves: three services, 40 owners, a day of creations, ports and a
// secret each.
func instanceRecords(n int) []instance.Record {
	services := []string{"redis", "postgres", "echo"}
	start := time.Now().Add(-24 * time.Hour).UTC()
	rng := mrand.New(mrand.NewPCG(1, 2))
	recs := make([]instance.Record, n)
	for i := range recs {
		created := start.Add(time.Duration(rng.Int64N(int64(23 * time.Hour))))
		ready := created.Add(time.Duration(150+rng.IntN(300)) * time.Millisecond)
		expires := ready.Add(time.Duration(1+rng.IntN(120)) * time.Minute)
		id := make([]byte, 8)
		rand.Read(id)
		container := make([]byte, 32)
		rand.Read(container)
		sum := sha256.Sum256(id)
		recs[i] = instance.Record{
			ID: hex.EncodeToString(id), Service: services[i%len(services)], Owner: fmt.Sprintf("addr:192.0.2.%d", rng.IntN(40)),
			TokenHash: sum[:], State: instance.Expired, Node: "bench-list", Daemon: "local", Container: hex.EncodeToString(container),
			Host: "127.0.0.1", Ports: map[int]int{6379: 32768 + i}, Secrets: map[string]string{"password": randomPassword()},
			CreatedAt: created, ReadyAt: ready, ExpiresAt: expires, MaxExpiresAt: created.Add(12 * time.Hour),
			EndedAt: expires.Add(time.Duration(100+rng.IntN(200)) * time.Millisecond), Reason: "its lifetime ended",
		}
	}
	return recs
}

// BenchmarkInstanceList: GET /v1/instances?state=all as the admin over
// 1,000 instance records, on SQLite and on PostgreSQL (a real server,
// pgtest), through the real binary; the baseline, in the same run and op
// by op in turn: the same store's List of the same records (Filter{}),
// timed in this process, so that the ratio is what the API adds (records
// to views, JSON, HTTP). The records are written straight into the store
// (expired: no container) before Ganger starts on it. n requests each.
func BenchmarkInstanceList(b *testing.B) {
	const records = 1000
	b.StopTimer() // only the loops below are timed
	d := dockertest.Daemon(b)
	node := dockertest.Node(b, d)
	bin := buildGanger(b)
	ctx := context.Background()
	recs := instanceRecords(records)
	type result struct {
		driver    string
		api, list []time.Duration
		size      int
	}
	var results []result
	for _, driver := range []string{"sqlite", "postgres"} {
		var st instance.Store
		var storeYAML string
		switch driver {
		case "sqlite":
			path := filepath.Join(b.TempDir(), "instances.db")
			s, err := sqlite.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			st, storeYAML = s, fmt.Sprintf("store: {driver: sqlite, path: %q}\n", path)
		case "postgres":
			dsn := pgtest.DSN(b)
			s, err := postgres.Open(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			st, storeYAML = s, fmt.Sprintf("store: {driver: postgres, dsn: %q}\n", dsn)
		}
		for _, r := range recs {
			if err := st.Create(ctx, r, 0); err != nil {
				b.Fatalf("%s: %v", driver, err)
			}
		}
		g := startGanger(b, bin, node, storeYAML+fmt.Sprintf(`services:
  - {name: echo, mode: instance, image: %s, ports: [7777], instance: {ttl: 1m}}
`, dockertest.Image))
		res := result{driver: driver}
		apiOnce := func() time.Duration {
			t0 := time.Now()
			code, body, err := g.do("GET", "/v1/instances?state=all", "")
			took := time.Since(t0)
			if err != nil || code != 200 {
				b.Fatalf("%s: GET /v1/instances?state=all: %d %v", driver, code, err)
			}
			var l []json.RawMessage
			if err := json.Unmarshal(body, &l); err != nil || len(l) != records {
				b.Fatalf("%s: the API listed %d instances, want %d (%v)", driver, len(l), records, err)
			}
			res.size = len(body)
			return took
		}
		listOnce := func() time.Duration {
			t0 := time.Now()
			l, err := st.List(ctx, instance.Filter{})
			took := time.Since(t0)
			if err != nil || len(l) != records {
				b.Fatalf("%s: List gave %d records, want %d (%v)", driver, len(l), records, err)
			}
			return took
		}
		apiOnce() // warm up: the connection, the pools, the caches
		listOnce()
		b.StartTimer()
		for i := range b.N {
			if i%2 == 0 {
				res.api = append(res.api, apiOnce())
				res.list = append(res.list, listOnce())
			} else {
				res.list = append(res.list, listOnce())
				res.api = append(res.api, apiOnce())
			}
		}
		b.StopTimer()
		g.Stop()
		st.Close()
		results = append(results, res)
	}
	for _, r := range results {
		b.ReportMetric(float64(median(r.api).Microseconds())/1000, r.driver+"-api-p50-ms")
		b.ReportMetric(float64(median(r.list).Microseconds())/1000, r.driver+"-list-p50-ms")
	}
	if b.N == 1 {
		return // the calibration run
	}
	fmt.Printf("instance list, %d records, GET /v1/instances?state=all (admin, real binary) vs the store's List in process (n=%d each, alternating):\n", records, b.N)
	for _, r := range results {
		fmt.Printf("  %-8s API p50 %s p99 %s (%d KiB of JSON); store List p50 %s p99 %s; ratio of medians %.2f, API adds %s\n",
			r.driver, us(median(r.api)), us(pct(r.api, 99)), r.size>>10, us(median(r.list)), us(pct(r.list, 99)),
			float64(median(r.api))/float64(median(r.list)), us(median(r.api)-median(r.list)))
	}
}

// BenchmarkInstanceExpiry: expiry precision. 200 instances of the echo
// image are created through the API of the real binary (eight requests
// at a time), each with a ttl drawn in [5s, 25s]; every instance's
// lateness is its record's ended_at (when it stopped serving: Ganger saw
// its container dead) minus its expires_at, read from GET
// /v1/instances?state=all once all have ended (the state says expired
// only once the container is gone: that lateness, to the daemon's
// destroy event, is given too). Goal: max < 1s. Creation and expiry overlap, as they would
// on a busy node: the figures are given for all, and apart for those
// whose time came while creates still ran and those whose time came
// after. Docker's events split each lateness into expires_at to the
// daemon's kill (Ganger's timer, its store read, the remove call reaching
// the daemon), kill to destroy (the daemon's removal: docker rm -f), and
// destroy to ended_at (Ganger learning it and writing the record). The
// baseline, in the same run and process, under the same load: a plain Go
// timer (time.AfterFunc) set for each instance's expires_at as its 201
// arrives: what the scheduling alone can do on this machine.
//
// One run takes over a minute, so the framework never calls it twice:
// b.N == 1 is the measurement, not a calibration, and it prints its
// summary then. Run it with -benchtime 1x.
func BenchmarkInstanceExpiry(b *testing.B) {
	const (
		count          = 200
		parallel       = 8
		minTTL, maxTTL = 5 * time.Second, 25 * time.Second
	)
	d := dockertest.Daemon(b)
	node := dockertest.Node(b, d)
	g := startGanger(b, buildGanger(b), node, fmt.Sprintf(`daemons: [{name: local, host: %q, max_containers: 1000}]
services:
  - name: echo
    mode: instance
    image: %s
    ports: [7777]
    cmd: ["-banner", "hi"]
    limits: {memory: 16MiB}
    queue: {max: 1000, timeout: 5m}
    instance: {ttl: 1m, max_ttl: 10m, per_owner: 0, create_rate: {rate: 1000, burst: 1000}}
`, d.Host(), dockertest.Image))

	for range b.N {
		type made struct {
			id         string
			ttl        time.Duration
			expires    time.Time
			timerFired time.Time
		}
		insts := make([]made, count)
		rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
		for i := range insts {
			insts[i].ttl = minTTL + time.Duration(rng.Int64N(int64(maxTTL-minTTL)))/time.Millisecond*time.Millisecond
		}
		// The host's memory, sampled while the instances live.
		lowMem := memAvailable()
		sampling, sampled := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-sampling:
					return
				case <-time.After(500 * time.Millisecond):
					lowMem = min(lowMem, memAvailable())
				}
			}
		}()

		var timers sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		next := make(chan int)
		var workers sync.WaitGroup
		t0 := time.Now()
		events := watchEvents(b, d, node, t0.Add(-time.Second))
		for range parallel {
			workers.Go(func() {
				for i := range next {
					code, body, err := g.do("POST", "/v1/services/echo/instances", fmt.Sprintf(`{"ttl": %q}`, insts[i].ttl))
					var in instanceView
					if err == nil && code == 201 {
						err = json.Unmarshal(body, &in)
					} else if err == nil {
						err = fmt.Errorf("create: %d %s", code, body)
					}
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						continue
					}
					insts[i].id, insts[i].expires = in.ID, in.ExpiresAt
					timers.Add(1)
					time.AfterFunc(time.Until(in.ExpiresAt), func() {
						insts[i].timerFired = time.Now()
						timers.Done()
					})
				}
			})
		}
		for i := range insts {
			next <- i
		}
		close(next)
		workers.Wait()
		created := time.Now()
		if firstErr != nil {
			b.Fatalf("creating %d instances: %v", count, firstErr)
		}

		// Wait for every instance to have ended.
		byID := map[string]instanceView{}
		deadline := time.Now().Add(maxTTL + 5*time.Minute)
		for {
			l, err := g.list(true)
			if err != nil {
				b.Fatal(err)
			}
			ended := 0
			for _, in := range l {
				byID[in.ID] = in
				if in.State != "starting" && in.State != "running" {
					ended++
				}
			}
			if len(l) == count && ended == count {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("after %s: %d of %d instances ended", time.Since(t0).Round(time.Second), ended, count)
			}
			time.Sleep(time.Second)
		}
		timers.Wait()
		allGone := time.Now()
		close(sampling)
		<-sampled
		evs := events.stop()

		var late, timerLate, own, toKill, killToDie, dieToGone, dieToEnd, removed, lateDuring, lateAfter []time.Duration
		states := map[string]int{}
		type edge struct {
			at time.Time
			n  int
		}
		var edges []edge // container starts and ends, for the peak of live instances
		for _, m := range insts {
			in := byID[m.id]
			states[in.State]++
			timerLate = append(timerLate, m.timerFired.Sub(m.expires))
			if in.State != "expired" || in.EndedAt == nil {
				continue
			}
			l := in.EndedAt.Sub(in.ExpiresAt)
			late = append(late, l)
			if in.ExpiresAt.Before(created) {
				lateDuring = append(lateDuring, l)
			} else {
				lateAfter = append(lateAfter, l)
			}
			ev := evs[m.id]
			if !ev.start.IsZero() {
				edges = append(edges, edge{ev.start, 1})
			}
			if !ev.destroy.IsZero() {
				edges = append(edges, edge{ev.destroy, -1})
			}
			if !ev.kill.IsZero() && !ev.die.IsZero() && !ev.destroy.IsZero() {
				toKill = append(toKill, ev.kill.Sub(in.ExpiresAt))
				killToDie = append(killToDie, ev.die.Sub(ev.kill))
				dieToGone = append(dieToGone, ev.destroy.Sub(ev.die))
				dieToEnd = append(dieToEnd, in.EndedAt.Sub(ev.die))
				removed = append(removed, ev.destroy.Sub(in.ExpiresAt))
				own = append(own, ev.kill.Sub(in.ExpiresAt)+in.EndedAt.Sub(ev.die))
			}
		}
		slices.SortFunc(edges, func(a, b edge) int { return a.at.Compare(b.at) })
		peak, live := 0, 0
		for _, e := range edges {
			live += e.n
			peak = max(peak, live)
		}
		if len(late) != count {
			b.Errorf("%d of %d instances expired; states %v", len(late), count, states)
		}
		if len(late) == 0 {
			b.FailNow()
		}
		b.ReportMetric(float64(pct(late, 100).Microseconds())/1000, "max-late-ms")
		b.ReportMetric(float64(pct(late, 99).Microseconds())/1000, "p99-late-ms")
		b.ReportMetric(float64(median(late).Microseconds())/1000, "p50-late-ms")
		b.ReportMetric(float64(pct(timerLate, 100).Microseconds())/1000, "timer-max-late-ms")
		if len(removed) > 0 {
			b.ReportMetric(float64(pct(removed, 100).Microseconds())/1000, "max-removed-late-ms")
		}
		// b.N == 1 is the measurement (see above): print now.
		fmt.Printf("instance expiry, %d echo instances, ttl random in [%s, %s], created %d at a time through the API in %s; at most %d live at once; host MemAvailable at least %.1f GiB; all ended %s after the first create:\n",
			count, minTTL, maxTTL, parallel, created.Sub(t0).Round(time.Millisecond), peak, float64(lowMem)/(1<<30), allGone.Sub(t0).Round(time.Second))
		line := func(name string, d []time.Duration) {
			if len(d) == 0 {
				fmt.Printf("  %-46s (none)\n", name)
				return
			}
			fmt.Printf("  %-46s n=%3d max %s p99 %s p50 %s min %s\n", name, len(d), ms(pct(d, 100)), ms(pct(d, 99)), ms(median(d)), ms(pct(d, 0)))
		}
		line("lateness, ended_at (seen dead) - expires_at:", late)
		line("  of those whose time came while creates ran:", lateDuring)
		line("  of those whose time came after the last:", lateAfter)
		line("  expires_at -> daemon's kill event:", toKill)
		line("  kill -> die event:", killToDie)
		line("  die -> destroy event:", dieToGone)
		line("  die event -> ended_at:", dieToEnd)
		line("  Ganger's own part (all but kill -> die):", own)
		line("removed (destroy event) - expires_at:", removed)
		line("baseline, time.AfterFunc in this process:", timerLate)
		fmt.Printf("  goal: max lateness < 1s: max %s (%s while creates ran, %s after); timer max %s\n",
			ms(pct(late, 100)), maxOf(lateDuring), maxOf(lateAfter), ms(pct(timerLate, 100)))
		if len(late) < count {
			fmt.Printf("  states: %v\n", states)
		}
	}
}

func maxOf(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	return ms(pct(d, 100))
}

type removalEvents struct{ start, kill, die, destroy time.Time }

// eventWatch is `docker events` following node's containers, run from the
// benchmark (the daemon keeps only its last 256 events, far fewer than
// 200 containers make).
type eventWatch struct {
	cmd *exec.Cmd
	out bytes.Buffer
	b   *testing.B
}

// watchEvents follows the daemon's start, kill, die and destroy events
// of node's containers from since on, until stop.
func watchEvents(b *testing.B, d *docker.Daemon, node string, since time.Time) *eventWatch {
	w := &eventWatch{b: b}
	w.cmd = exec.Command("docker", "-H", d.Host(), "events", "--since", since.Format(time.RFC3339Nano),
		"--filter", "type=container", "--filter", "label="+ganger.LabelOwner+"="+node,
		"--filter", "event=start", "--filter", "event=kill", "--filter", "event=die", "--filter", "event=destroy", "--format", "{{json .}}")
	w.cmd.Stdout = &w.out
	if err := w.cmd.Start(); err != nil {
		b.Fatalf("docker events: %v", err)
	}
	b.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	})
	return w
}

// stop ends the watch and returns the start, kill, die and destroy
// times of each instance's container, by instance id.
func (w *eventWatch) stop() map[string]removalEvents {
	time.Sleep(time.Second) // the last events on their way
	w.cmd.Process.Kill()
	w.cmd.Wait()
	evs := map[string]removalEvents{}
	for _, l := range bytes.Split(bytes.TrimSpace(w.out.Bytes()), []byte("\n")) {
		var e struct {
			Action   string `json:"Action"`
			TimeNano int64  `json:"timeNano"`
			Actor    struct {
				Attributes map[string]string `json:"Attributes"`
			} `json:"Actor"`
		}
		if len(l) == 0 || json.Unmarshal(l, &e) != nil {
			continue
		}
		id := e.Actor.Attributes[ganger.LabelInstance]
		at := time.Unix(0, e.TimeNano)
		r := evs[id]
		switch {
		case e.Action == "start":
			r.start = at
		case e.Action == "kill" && r.kill.IsZero():
			r.kill = at
		case e.Action == "die":
			r.die = at
		case e.Action == "destroy":
			r.destroy = at
		}
		evs[id] = r
	}
	return evs
}

// memAvailable is the host's MemAvailable, in bytes (0 if unknown).
func memAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
