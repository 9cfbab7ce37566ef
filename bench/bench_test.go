// Package bench measures Ganger against a baseline taken in the same run on
// the same daemon, and prints the ratio: the machines are shared and noisy,
// so only same-run ratios mean anything. Run with `make bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/server"
)

// node runs an in-process Ganger with one echo service; cmd is its YAML.
// daemons, if given, is the YAML of its daemons list; the service then
// runs on each daemon's default bridge (extra daemons on one host must not
// make networks of their own: see dockertest.Extra).
func node(b *testing.B, cmd string, daemons ...string) (addr string, nodeID string, d *docker.Daemon) {
	if len(daemons) > 0 {
		return nodeWith(b, "daemons:\n"+daemons[0], "cmd: "+cmd+", network: bridge", io.Discard)
	}
	return nodeWith(b, "", "cmd: "+cmd, io.Discard)
}

// nodeWith runs an in-process Ganger: top is top-level YAML, svc the echo
// service's extra keys (flow style), logs where it logs (info and up).
func nodeWith(b *testing.B, top, svc string, logs io.Writer) (addr string, nodeID string, d *docker.Daemon) {
	d = dockertest.Daemon(b)
	nodeID = dockertest.Node(b, d)
	yml := fmt.Sprintf("node: %s\n%sservices:\n  - {name: echo, listen: 127.0.0.1:0, image: %s, port: 7777, %s}\n", nodeID, top, dockertest.Image, svc)
	srv := serveYAML(b, yml, logs)
	return srv.Addr("echo").String(), nodeID, d
}

// direct is a Daemon handle dialing the given way ("container" or
// "published"), for the baselines.
func direct(b *testing.B, dial ganger.DialMode) *docker.Daemon {
	cfg := server.DockerConfig(config.DaemonFromEnv())
	cfg.Advertise, cfg.PublishIP, cfg.Dial = "127.0.0.1", "127.0.0.1", dial
	d, err := docker.New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// baselineSpec is what Ganger's default service would create: on the
// node's isolated network (Ganger made it when the node started), with
// the same limits.
func baselineSpec(owner string, n int, cmd ...string) ganger.Spec {
	def := config.DefaultService()
	return ganger.Spec{
		Name: fmt.Sprintf("ganger-bench-%s-%d", owner, n), Image: dockertest.Image, Port: 7777, Cmd: cmd,
		Network: ganger.IsolatedNetwork(owner, true),
		Labels:  map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: owner, ganger.LabelService: "bench"},
		Limits: ganger.Limits{Memory: int64(def.Limits.Memory), NanoCPUs: 1e9, Pids: def.Limits.Pids, NoNewPrivileges: true,
			NoFile: def.Limits.NoFile, LogMaxSize: int64(def.Limits.Log.MaxSize), LogMaxFiles: def.Limits.Log.MaxFiles},
	}
}

// dialReady dials addr with the same policy as Ganger's default readiness:
// a doubling backoff from 5ms to 200ms.
func dialReady(addr string) (net.Conn, error) {
	backoff := config.DefaultReadyBackoff
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, config.DefaultBackoffMax)
	}
}

func firstByte(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err
}

func waitGone(b *testing.B, d *docker.Daemon, owner string) {
	dockertest.Eventually(b, time.Minute, "containers not removed", func() bool {
		return len(dockertest.Owned(b, d, owner)) == 0
	})
}

// BenchmarkColdTTFB: connect to first byte with no pool, through Ganger,
// against a minimal create+start+connect loop on the same daemon. The two
// alternate, one op each per iteration; removal is never timed.
func BenchmarkColdTTFB(b *testing.B) {
	addr, owner, d := node(b, `["-banner", "hi"]`)
	base := direct(b, "container")
	var viaGanger, viaLoop, removal []time.Duration
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		c, err := net.Dial("tcp", addr)
		if err == nil {
			err = firstByte(c)
		}
		viaGanger = append(viaGanger, time.Since(t0))
		if err != nil {
			b.Fatalf("through ganger: %v", err)
		}
		b.StopTimer()
		t0 = time.Now()
		c.Close()
		waitGone(b, d, owner) // Ganger removes in the background: not timed, and not overlapping the baseline
		removal = append(removal, time.Since(t0))
		b.StartTimer()

		t0 = time.Now()
		id, err := base.Create(ctx, baselineSpec(owner, i, "-banner", "hi"))
		if err != nil {
			b.Fatal(err)
		}
		a, err := base.Start(ctx, id, 7777)
		if err == nil {
			c, err = dialReady(a)
		}
		if err == nil {
			err = firstByte(c)
		}
		viaLoop = append(viaLoop, time.Since(t0))
		if err != nil {
			b.Fatalf("minimal loop: %v", err)
		}
		c.Close()
		b.StopTimer()
		base.Remove(ctx, id)
		waitGone(b, d, owner)
		b.StartTimer()
	}
	report(b, "ttfb", viaGanger, viaLoop, "minimal loop")
	if b.N > 1 {
		fmt.Printf("client close to container gone (polled every 20ms): p50 %s p90 %s max %s\n", ms(median(removal)), ms(pct(removal, 90)), ms(pct(removal, 100)))
	}
}

// BenchmarkThroughput: one bulk stream (each op sends 64 MiB and reads the
// echo back) through Ganger, against straight to the container's published
// port (Docker's userland proxy), and straight to the container's own IP.
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	addr, owner, _ := node(b, `[]`)
	pub := direct(b, "published")
	ctx := context.Background()
	id, err := pub.Create(ctx, baselineSpec(owner, 0))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Remove(ctx, id)
	pubAddr, err := pub.Start(ctx, id, 7777)
	if err != nil {
		b.Fatal(err)
	}
	ipAddr, err := direct(b, "container").Start(ctx, id, 7777) // already started: inspect only
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var viaGanger, viaPublished, viaIP []time.Duration
	b.ResetTimer()
	for range b.N {
		viaGanger = append(viaGanger, stream(b, addr, buf, size))
		viaPublished = append(viaPublished, stream(b, pubAddr, buf, size))
		viaIP = append(viaIP, stream(b, ipAddr, buf, size))
	}
	b.StopTimer()
	mbps := func(d []time.Duration) float64 { return float64(size) / median(d).Seconds() / 1e6 }
	b.ReportMetric(mbps(viaGanger), "ganger-MB/s")
	b.ReportMetric(mbps(viaPublished), "published-MB/s")
	b.ReportMetric(mbps(viaIP), "container-ip-MB/s")
	b.ReportMetric(mbps(viaGanger)/mbps(viaPublished), "ratio-vs-published")
	if b.N == 1 {
		return // the calibration run
	}
	fmt.Printf("throughput (median of %d, 64 MiB echoed each): ganger %.0f MB/s, published port %.0f MB/s, container IP %.0f MB/s; ratio ganger/published %.3f, ganger/container-ip %.3f\n",
		b.N, mbps(viaGanger), mbps(viaPublished), mbps(viaIP), mbps(viaGanger)/mbps(viaPublished), mbps(viaGanger)/mbps(viaIP))
}

// stream sends size bytes to an echo server at addr and reads them back;
// it times from the first byte written to the last byte read, after a
// one-byte round trip that proves the container is ready.
func stream(b *testing.B, addr string, buf []byte, size int) time.Duration {
	c, err := dialReady(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		b.Fatal(err)
	}
	if err := firstByte(c); err != nil {
		b.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
	t0 := time.Now()
	go func() {
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	n, err := io.Copy(io.Discard, c)
	d := time.Since(t0)
	if err != nil || n != int64(size) {
		b.Fatalf("read back %d of %d bytes: %v", n, size, err)
	}
	return d
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func report(b *testing.B, what string, got, base []time.Duration, baseName string) {
	b.ReportMetric(float64(median(got).Microseconds())/1000, "ganger-ms")
	b.ReportMetric(float64(median(base).Microseconds())/1000, "baseline-ms")
	b.ReportMetric(float64(median(got))/float64(median(base)), "ratio")
	if b.N == 1 {
		return // the calibration run
	}
	fmt.Printf("%s (n=%d): ganger p50 %s p90 %s; %s p50 %s p90 %s; ratio of medians %.3f\n", what, len(got),
		ms(median(got)), ms(pct(got, 90)), baseName, ms(median(base)), ms(pct(base, 90)), float64(median(got))/float64(median(base)))
}

func ms(d time.Duration) string {
	return strings.TrimSuffix(d.Round(100*time.Microsecond).String(), "0")
}
