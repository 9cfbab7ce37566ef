package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// BenchmarkPoolTTFB: connect to first byte from a warm pool, against
// straight to an already running container, p50 and p99, alternating.
// Each Ganger op waits (untimed) for the pool to be full again first.
func BenchmarkPoolTTFB(b *testing.B) {
	logs := &dockertest.Logs{}
	addr, node, _ := nodeWith(b, "", "cmd: [-banner, hi], pool: {min: 2}", logs)

	base := direct(b, "container")
	id, err := base.Create(context.Background(), baselineSpec(node, 0, "-banner", "hi"))
	if err != nil {
		b.Fatal(err)
	}
	defer base.Remove(context.Background(), id)
	running, err := base.Start(context.Background(), id, 7777)
	if err != nil {
		b.Fatal(err)
	}
	c, err := dialReady(running) // it answers: from here on it is "already running"
	if err != nil {
		b.Fatal(err)
	}
	c.Close()

	var viaPool, viaDirect []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dockertest.Eventually(b, time.Minute, "pool not refilled", func() bool {
			return len(logs.Lines("pool: container ready")) >= 2+i
		})
		b.StartTimer()
		viaPool = append(viaPool, ttfb(b, addr))
		viaDirect = append(viaDirect, ttfb(b, running))
	}
	b.StopTimer()
	dockertest.Eventually(b, time.Minute, "not every session was served from the pool", func() bool {
		return len(logs.Lines("session end", "from=pool")) >= b.N // end lines follow the client's close
	})
	b.ReportMetric(float64(median(viaPool).Microseconds())/1000, "pool-p50-ms")
	b.ReportMetric(float64(median(viaDirect).Microseconds())/1000, "direct-p50-ms")
	if b.N == 1 {
		return
	}
	fmt.Printf("pool ttfb (n=%d): ganger from the pool p50 %s p99 %s; straight to a running container p50 %s p99 %s; p50 difference %s (goal <= 1ms)\n",
		b.N, us(median(viaPool)), us(pct(viaPool, 99)), us(median(viaDirect)), us(pct(viaDirect, 99)), us(median(viaPool)-median(viaDirect)))
}

func ttfb(b *testing.B, addr string) time.Duration {
	t0 := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := firstByte(c); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

func us(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

// BenchmarkSharedMemory: 5,000 concurrent idle connections through Ganger
// (the real binary, as its own process) to one shared container; Ganger's
// resident memory per connection, from /proc. Goal: under 64 KiB.
func BenchmarkSharedMemory(b *testing.B) {
	const conns = 5000
	d := dockertest.Daemon(b)
	node := dockertest.Node(b, d)
	dir := b.TempDir()
	bin := filepath.Join(dir, "ganger")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ganger").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "g.yaml")
	yml := fmt.Sprintf("node: %s\nservices:\n  - {name: echo, listen: 127.0.0.1:0, image: %s, port: 7777, cmd: [-banner, hi], mode: shared, timeouts: {idle: 0, first_byte: 0}, limits: {nofile: 16384}}\n", node, dockertest.Image)
	os.WriteFile(cfgPath, []byte(yml), 0o644)
	// An idle proxied connection holds its two sockets and no pipe: 10,000
	// descriptors, within the usual limit of 20,000 or more.
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	logs := &dockertest.Logs{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var addr string
	re := regexp.MustCompile(`msg=listening service=echo addr=(\S+)`)
	dockertest.Eventually(b, time.Minute, "ganger never listened", func() bool {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	for range b.N {
		first := openIdle(b, addr, 1) // the shared container starts
		time.Sleep(500 * time.Millisecond)
		before := rss(b, cmd.Process.Pid)
		held := openIdle(b, addr, conns)
		time.Sleep(time.Second) // let the last sessions settle
		after := rss(b, cmd.Process.Pid)
		perConn := float64(after-before) / conns
		b.ReportMetric(perConn/1024, "KiB/conn")
		fmt.Printf("shared mode, %d idle connections: ganger RSS %d KiB before, %d KiB after: %.1f KiB per connection (goal < 64 KiB)\n",
			conns, before/1024, after/1024, perConn/1024)
		for _, c := range append(held, first...) {
			c.Close()
		}
	}
}

// openIdle opens n connections to addr, 50 at a time, each read to its
// banner, and returns them open.
func openIdle(b *testing.B, addr string, n int) []net.Conn {
	out := make([]net.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.SetReadDeadline(time.Now().Add(time.Minute))
				_, err = bufio.NewReader(io.LimitReader(c, 3)).ReadString('\n')
				c.SetReadDeadline(time.Time{})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[i] = c
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("open %d connections: %v", n, firstErr)
	}
	return out
}

// rss is a process's resident memory in bytes.
func rss(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
