package bench

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
)

// BenchmarkHostDiscovery measures what an operator of discovered hosts
// meets: the time from starting `ganger agent` on a host to the first
// session placed there (the agent's start and registration, etcd's watch,
// the node's join of the host: ping, images, sweep, then the container's
// cold start), against a session on the host once joined (the cold start
// alone), in the same run; and the time from the agent's death (kill -9)
// to the host taking no new session, against the configured ttl +
// lost_grace, and from a clean stop (SIGTERM: the agent marks the host
// draining) to the same. One local daemon, registered in turn by the
// rounds (a node refuses one engine under two names, so each round waits
// for the last to leave). Run with -benchtime 1x: b.N == 1 is the run.
func BenchmarkHostDiscovery(b *testing.B) {
	const rounds = 5
	ttl, grace := 2*time.Second, 2*time.Second
	d := dockertest.Daemon(b)
	node := dockertest.Node(b, d)
	e := etcdtest.New(b)
	bin := buildGanger(b)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	startGanger(b, bin, node, fmt.Sprintf(`daemons: []
discovery:
  etcd: {endpoints: [%s], ttl: %s, lost_grace: %s}
services:
  - name: echo
    listen: %s
    image: %s
    port: 7777
    network: bridge
    cmd: ["-banner", "hi"]
    queue: {max: 10, timeout: 100ms, reject_message: none}
`, e.Endpoint(), ttl, grace, addr, dockertest.Image))

	// session dials once: "hi" (placed), "none" (refused), or "".
	session := func() string {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return ""
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if len(line) > 0 {
			line = line[:len(line)-1]
		}
		return line
	}
	agent := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, "agent", "--etcd", e.Endpoint(), "--name", name, "--docker", config.DaemonFromEnv().Host,
			"--advertise", "127.0.0.1", "--ttl", ttl.String(), "--state-dir", filepath.Join(b.TempDir(), name), "--max-containers", "100000")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	// until polls f every 5ms until it is true, and returns when it was.
	until := func(what string, f func() bool) time.Time {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if f() {
				return time.Now()
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: not within 2m", what)
			}
		}
	}
	for range b.N {
		var join, cold, died, stopped []time.Duration
		for i := range rounds {
			t0 := time.Now()
			a := agent(fmt.Sprintf("h%d", i))
			join = append(join, until("first session on a new host", func() bool { return session() == "hi" }).Sub(t0))
			t1 := time.Now()
			if session() != "hi" {
				b.Fatal("a session on the joined host failed")
			}
			cold = append(cold, time.Since(t1))
			t2 := time.Now()
			if i%2 == 0 {
				a.Process.Kill()
				died = append(died, until("no new session after the agent died", func() bool { return session() == "none" }).Sub(t2))
			} else {
				a.Process.Signal(syscall.SIGTERM)
				stopped = append(stopped, until("no new session after the agent stopped", func() bool { return session() == "none" }).Sub(t2))
			}
			a.Wait()
			// The host leaves the fleet once lost and empty; the next round
			// registers the same engine again.
			time.Sleep(ttl + grace + 6*time.Second)
		}
		slices.Sort(join)
		slices.Sort(cold)
		fmt.Printf("host discovery, %d rounds (ttl %s, lost_grace %s):\n", rounds, ttl, grace)
		fmt.Printf("  agent start -> first session on its host: p50 %s max %s\n", ms(median(join)), ms(pct(join, 100)))
		fmt.Printf("  a session on the joined host (the cold start alone): p50 %s\n", ms(median(cold)))
		fmt.Printf("  so discovery and join add: p50 %s\n", ms(median(join)-median(cold)))
		fmt.Printf("  agent killed -9 -> no new session: %v (ttl + lost_grace = %s)\n", msList(died), ttl+grace)
		fmt.Printf("  agent stopped (SIGTERM, draining) -> no new session: %v\n", msList(stopped))
		b.ReportMetric(float64(median(join).Microseconds())/1000, "join-p50-ms")
		b.ReportMetric(float64((median(join)-median(cold)).Microseconds())/1000, "join-over-cold-ms")
		b.ReportMetric(float64(pct(died, 100).Microseconds())/1000, "death-max-ms")
		b.ReportMetric(float64(pct(stopped, 100).Microseconds())/1000, "stop-max-ms")
	}
}

func msList(d []time.Duration) []string {
	out := make([]string, len(d))
	for i, v := range d {
		out[i] = ms(v)
	}
	return out
}
