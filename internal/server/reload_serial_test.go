package server_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// Reloads from two sources at once (SIGHUP and the API, say) run one after
// the other: under the race detector, two goroutines reloading in a loop
// find no data race, and the node ends up with exactly the last
// configuration applied.
func TestConcurrentReloads(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "v0"]`))
	dockertest.Eventually(t, 10*time.Second, "not serving", h.srv.Ready)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range 8 {
				services := svc("echo", fmt.Sprintf(`["-banner", "g%d-%d"]`, g, i))
				if i%2 == 0 {
					services += svc("extra", `["-banner", "x"]`)
				}
				reload(t, h, services)
			}
		})
	}
	wg.Wait()
	reload(t, h, svc("echo", `["-banner", "last"]`))
	if _, got := banner(t, h, "echo"); got != "last" {
		t.Fatalf("after the reloads a session got %q; want the last configuration", got)
	}
	if n := len(h.srv.Services()); n != 1 || h.srv.Addr("extra") != nil {
		t.Fatalf("%d services after the last reload; want echo alone", n)
	}
}

// A reload whose new service cannot listen changes nothing: not the
// service list, not the other services' configurations.
func TestReloadFailingListenChangesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	h := start(t, svc("echo", `["-banner", "v1"]`))
	dockertest.Eventually(t, 10*time.Second, "not serving", h.srv.Ready)
	taken := strings.Replace(svc("taken", `["-banner", "t"]`), "127.0.0.1:0", busy.Addr().String(), 1)
	cfg, err := config.Parse("reload.yaml", []byte(fmt.Sprintf("node: %s\nservices:\n%s%s", h.node, svc("echo", `["-banner", "v2"]`), taken)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = h.srv.Reload(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("reload with an address in use: got %v; want an error naming the service", err)
	}
	if h.srv.Addr("taken") != nil || len(h.srv.Services()) != 1 {
		t.Fatalf("the failed reload added a service: %v", h.srv.Services())
	}
	if _, got := banner(t, h, "echo"); got != "v1" {
		t.Fatalf("a session after the failed reload got %q; want the old configuration", got)
	}
	reload(t, h, svc("echo", `["-banner", "v2"]`)) // the node still reloads
	if _, got := banner(t, h, "echo"); got != "v2" {
		t.Fatalf("got %q after a good reload", got)
	}
}
