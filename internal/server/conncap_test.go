package server_test

import (
	"bufio"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// Connections waiting for their PROXY header hold a connection slot like
// any other: with limits.max_connections taken by silent ones, the next
// client waits in the kernel's queue (no session starts for it) and is
// served as soon as one of them leaves.
func TestWaitingForProxyHeaderIsCapped(t *testing.T) {
	h := start(t, svc("pp", `["-banner", "hi"]`, "proxy_protocol: true", "trusted_proxies: [127.0.0.1/32]"),
		opts{top: "limits: {max_connections: 3}\n"})
	var silent []interface{ Close() error }
	for range 3 {
		silent = append(silent, h.dial("pp"))
	}
	dockertest.Eventually(t, 10*time.Second, "the silent connections never started sessions", func() bool {
		return len(h.logs.Lines("msg=\"session start\"")) == 0 && h.srv.Metrics() != nil && clientConns(t, h) == 3
	})
	next := h.dial("pp")
	hdr, _ := proxyproto.HeaderProxyFromAddrs(1, next.LocalAddr(), next.RemoteAddr()).Format()
	next.Write(hdr)
	time.Sleep(300 * time.Millisecond) // give a wrongly admitted session time to show
	if n := clientConns(t, h); n != 3 {
		t.Fatalf("%d client connections held; want the cap, 3", n)
	}
	silent[0].Close()
	if got := readLine(t, next, bufio.NewReader(next)); got != "hi" {
		t.Fatalf("the waiting client got %q once a slot freed", got)
	}
}

// clientConns reads ganger_client_connections from the node's metrics.
func clientConns(t *testing.T, h *harness) int {
	t.Helper()
	mfs, err := h.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ganger_client_connections" {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	t.Fatal("no ganger_client_connections metric")
	return 0
}
