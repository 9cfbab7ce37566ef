package discovery

import (
	"context"
	"strings"
	"testing"
	"time"
)

// etcd restarted mid-watch: while it is down the watcher reports the last
// known set with connected=false; once it is back the watcher converges to
// etcd's list, changes made while it reconnected included.
func TestWatchEtcdRestart(t *testing.T) {
	e := etcd(t)
	for _, h := range []string{"a", "b"} {
		if _, err := e.Ctl("put", "/t/hosts/"+h, `{"id":"`+h+`"}`); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := connect(t, e.Endpoint())
	w := watch(t, c)
	w.waitFor(t, "a,b")

	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watcher never reported etcd gone", func() bool {
		_, connected := w.names()
		return !connected
	})
	w.mu.Lock()
	offline := joinNames(w.offline)
	w.mu.Unlock()
	if offline != "a,b" {
		t.Fatalf("while etcd was down the watcher reported %q; want the last known a,b", offline)
	}

	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl("del", "/t/hosts/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl("put", "/t/hosts/c", `{"id":"c"}`); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "a,c")
	hosts, err := c.Hosts(context.Background())
	if err != nil || joinNames(hosts) != "a,c" {
		t.Fatalf("etcd lists %v, %v", joinNames(hosts), err)
	}
}

// A watch that resumes at a compacted revision fails; the watcher lists
// again and converges. The watcher reaches etcd through a proxy, cut while
// the hosts change and the history is compacted, so that its watch resumes
// behind the compaction when the proxy is back.
func TestWatchCompaction(t *testing.T) {
	e := etcd(t)
	if _, err := e.Ctl("put", "/t/hosts/a", `{"id":"a"}`); err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, strings.TrimPrefix(e.Endpoint(), "http://"))
	c, logs := connect(t, "http://"+p.addr)
	c.timing.probe = time.Hour // let the watch itself find the compaction
	w := watch(t, c)
	w.waitFor(t, "a")

	direct, _ := connect(t, e.Endpoint())
	p.cut()
	ctx := context.Background()
	if _, err := direct.etcd.Delete(ctx, "/t/hosts/a"); err != nil {
		t.Fatal(err)
	}
	resp, err := direct.etcd.Put(ctx, "/t/hosts/b", `{"id":"b"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.etcd.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	p.restore()
	w.waitFor(t, "b")
	if !strings.Contains(logs.String(), "compacted") {
		t.Errorf("the watcher converged without meeting the compaction:\n%s", logs)
	}
}

// Connected from the start but etcd then unreachable: every report until
// it is back carries the last set and connected=false, and the watcher
// keeps trying (no report is lost when it comes back).
func TestWatchPartition(t *testing.T) {
	e := etcd(t)
	if _, err := e.Ctl("put", "/t/hosts/a", `{"id":"a"}`); err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, strings.TrimPrefix(e.Endpoint(), "http://"))
	c, _ := connect(t, "http://"+p.addr)
	w := watch(t, c)
	w.waitFor(t, "a")
	p.cut()
	eventually(t, "the watcher never reported etcd gone", func() bool {
		names, connected := w.names()
		return !connected && names == "a"
	})
	if _, err := e.Ctl("put", "/t/hosts/b", `{"id":"b"}`); err != nil {
		t.Fatal(err)
	}
	p.restore()
	w.waitFor(t, "a,b")
}
