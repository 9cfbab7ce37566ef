package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/server"
)

// RedisImage is the Redis server image `make bench` builds from Debian's
// package (scripts/build-redis-image.sh).
const RedisImage = "ganger-redis:latest"

// services runs an in-process Ganger with the services given as YAML list
// items (flow style, one per line, without the leading "- ").
func services(b *testing.B, logs io.Writer, svcs ...string) (*server.Server, string) {
	d := dockertest.Daemon(b)
	nodeID := dockertest.Node(b, d)
	if err := d.EnsureImage(context.Background(), RedisImage, "never"); err != nil {
		b.Skipf("%s: %v (make bench builds it)", RedisImage, err)
	}
	yml := fmt.Sprintf("node: %s\nservices:\n", nodeID)
	for _, s := range svcs {
		yml += "  - " + s + "\n"
	}
	srv := serveYAML(b, yml, logs)
	return srv, nodeID
}

// ping is one client-speaks-first exchange, as a Redis client makes it:
// connect, send PING, read +PONG; it returns the time from the dial to the
// reply.
func ping(addr string) (time.Duration, error) { return holdPing(addr, 0) }

// holdPing is ping that holds the connection until hold after the dial
// before closing it.
func holdPing(addr string, hold time.Duration) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("answer %q", line)
	}
	time.Sleep(time.Until(t0.Add(hold)))
	return d, nil
}

// redisBaseline starts a Redis container outside Ganger, on the node's
// isolated network, and returns its address once it answers.
func redisBaseline(b *testing.B, owner string) string {
	base := direct(b, "container")
	spec := baselineSpec(owner, 0)
	spec.Image, spec.Port, spec.Cmd = RedisImage, 6379, nil
	ctx := context.Background()
	id, err := base.Create(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { base.Remove(context.Background(), id) })
	addr, err := base.Start(ctx, id, 6379)
	if err != nil {
		b.Fatal(err)
	}
	for range 200 {
		if _, err = ping(addr); err == nil {
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal(err)
	return ""
}

// BenchmarkPoolHit: a client-speaks-first exchange (Redis PING, +PONG)
// through a warm pool, through reuse, through shared mode, and straight to
// a running container, op by op in turn, one connection every 250ms: the
// pool is not waited for between ops, as a user's clients would not.
func BenchmarkPoolHit(b *testing.B) {
	const pace = 250 * time.Millisecond
	redis := "image: " + RedisImage + ", port: 6379"
	srv, owner := services(b, io.Discard,
		"{name: pool, listen: 127.0.0.1:0, "+redis+", pool: {min: 2, max: 4}}",
		"{name: reuse, listen: 127.0.0.1:0, "+redis+", reuse: 1000, pool: {min: 2, max: 4}}",
		"{name: shared, listen: 127.0.0.1:0, "+redis+", mode: shared}",
	)
	targets := []struct{ name, addr string }{
		{"pool", srv.Addr("pool").String()},
		{"reuse", srv.Addr("reuse").String()},
		{"shared", srv.Addr("shared").String()},
		{"direct", redisBaseline(b, owner)},
	}
	// Warm up: the pools fill, the shared container starts.
	for _, t := range targets {
		dockertest.Eventually(b, time.Minute, t.name+" does not answer", func() bool { _, err := ping(t.addr); return err == nil })
	}
	time.Sleep(2 * time.Second)
	got := make([][]time.Duration, len(targets))
	next := time.Now()
	b.ResetTimer()
	for n := range b.N {
		for k := range targets {
			// The order turns each round, so that no target always
			// follows the pool's refill and removal.
			i := (k + n) % len(targets)
			t := targets[i]
			time.Sleep(time.Until(next))
			next = next.Add(pace)
			d, err := ping(t.addr)
			if err != nil {
				b.Fatalf("%s: %v", t.name, err)
			}
			got[i] = append(got[i], d)
		}
	}
	b.StopTimer()
	for i, t := range targets {
		b.ReportMetric(float64(median(got[i]).Microseconds())/1000, t.name+"-p50-ms")
	}
	if b.N == 1 {
		return
	}
	fmt.Printf("pool hit, client speaks first (PING/PONG on %s, n=%d each, one connection every %s):\n", RedisImage, b.N, pace)
	for i, t := range targets {
		fmt.Printf("  %-7s p50 %s p90 %s p99 %s\n", t.name, us(median(got[i])), us(pct(got[i], 90)), us(pct(got[i], 99)))
	}
	for _, v := range srv.Services() {
		if v.Pool != nil {
			fmt.Printf("  %-7s served from the pool: %d of %d sessions\n", v.Name, v.Pool.Hits, v.Pool.Hits+v.Pool.Misses)
		}
	}
	fmt.Printf("  pool - shared: p50 %s (goal <= 0.5ms), p99 %s (goal <= 2ms)\n",
		us(median(got[0])-median(got[2])), us(pct(got[0], 99)-pct(got[2], 99)))
}

// serveYAML runs an in-process Ganger on the configuration yml until the
// benchmark ends; it logs to logs (info and up).
func serveYAML(b *testing.B, yml string, logs io.Writer) *server.Server {
	cfg, err := config.Parse("bench.yaml", []byte(yml))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.NewDocker(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, context.Background()); close(done) }()
	b.Cleanup(func() { stop(); <-done })
	return srv
}
