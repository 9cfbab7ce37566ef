package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// unreachable marks a watch that stopped because etcd did not answer.
type unreachable struct{ err error }

func (u unreachable) Error() string { return "etcd does not answer: " + u.err.Error() }
func (u unreachable) Unwrap() error { return u.err }

// hostWatch is the state of one WatchHosts.
type hostWatch struct {
	c         *Client
	fn        func(hosts map[string]Host, connected bool)
	hosts     map[string]Host // the last known set
	connected bool
	called    bool // fn was called at least once
}

// WatchHosts follows <prefix>hosts/ until ctx ends, then returns ctx's
// error. It lists the hosts and calls fn with the full set, then watches
// from the listing's revision and calls fn with the full set after every
// change. When the watch fails (a compaction, a closed stream) it lists
// again and goes on. When etcd does not answer (checked every few
// seconds, each request with a deadline), it calls fn once with the last
// known set and connected=false, and keeps trying with backoff; the next
// listing calls fn with connected=true. A value that is not a Host's JSON
// is left out, and logged. fn is called from WatchHosts's goroutine, one
// call at a time; the map is fn's to keep, its Hosts are read-only.
func (c *Client) WatchHosts(ctx context.Context, fn func(hosts map[string]Host, connected bool)) error {
	w := &hostWatch{c: c, fn: fn, hosts: map[string]Host{}}
	b := c.newBackoff()
	for {
		err := w.follow(ctx, b)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, new(unreachable)) {
			w.lost(err)
		} else {
			c.log.Info("watch of the hosts ended; listing them again", "err", err)
		}
		if !sleep(ctx, b.next()) {
			return ctx.Err()
		}
	}
}

// follow lists the hosts, then watches them until the watch fails or etcd
// stops answering; it says why it returned.
func (w *hostWatch) follow(ctx context.Context, b *backoff) error {
	c := w.c
	hosts, rev, err := c.listHosts(ctx)
	if err != nil {
		return unreachable{err}
	}
	b.reset()
	if !w.connected && w.called {
		c.log.Info("etcd answers again; hosts listed", "hosts", len(hosts))
	}
	w.hosts, w.connected = hosts, true
	w.report()

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	events := c.etcd.Watch(wctx, c.prefix+KindHosts+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	probe := time.NewTicker(c.timing.probe)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-events:
			if !ok {
				return errors.New("the watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			if len(wr.Events) > 0 {
				w.apply(wr.Events)
				w.report()
			}
		case <-probe.C:
			if err := c.probe(ctx); err != nil {
				return unreachable{err}
			}
		}
	}
}

// apply changes the known set by a watch's events.
func (w *hostWatch) apply(events []*clientv3.Event) {
	hosts := maps.Clone(w.hosts)
	for _, ev := range events {
		name := strings.TrimPrefix(string(ev.Kv.Key), w.c.prefix+KindHosts+"/")
		delete(hosts, name)
		if ev.Type == clientv3.EventTypePut {
			if h, ok := w.c.parseHost(name, ev.Kv.Value); ok {
				hosts[name] = h
			}
		}
	}
	w.hosts = hosts
}

// report calls fn with a copy of the known set.
func (w *hostWatch) report() {
	w.called = true
	w.fn(maps.Clone(w.hosts), w.connected)
}

// lost reports the last known set as not connected, once per outage.
func (w *hostWatch) lost(err error) {
	if !w.connected && w.called {
		return
	}
	w.c.log.Warn("etcd does not answer; keeping the last known hosts", "hosts", len(w.hosts), "err", err)
	w.connected = false
	w.report()
}

// probe checks that etcd answers a (linearizable) read.
func (c *Client) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timing.request)
	defer cancel()
	_, err := c.etcd.Get(ctx, c.prefix+KindHosts+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	return err
}

// Hosts lists the registered hosts once.
func (c *Client) Hosts(ctx context.Context) (map[string]Host, error) {
	hosts, _, err := c.listHosts(ctx)
	return hosts, err
}

// listHosts lists the hosts and gives the revision of the listing.
func (c *Client) listHosts(ctx context.Context) (map[string]Host, int64, error) {
	prefix := c.prefix + KindHosts + "/"
	resp, err := c.list(ctx, prefix)
	if err != nil {
		return nil, 0, err
	}
	hosts := make(map[string]Host, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), prefix)
		if h, ok := c.parseHost(name, kv.Value); ok {
			hosts[name] = h
		}
	}
	return hosts, resp.Header.Revision, nil
}

// parseHost reads a host's value; its name is the key's.
func (c *Client) parseHost(name string, value []byte) (Host, bool) {
	var h Host
	if err := json.Unmarshal(value, &h); err != nil {
		c.log.Warn("a host's value is not JSON; skipped", "host", name, "err", err)
		return h, false
	}
	h.Name = name
	return h, true
}

// Nodes lists the registered Ganger nodes once; a value that is not JSON is
// skipped.
func (c *Client) Nodes(ctx context.Context) (map[string]Node, error) {
	prefix := c.prefix + KindNodes + "/"
	resp, err := c.list(ctx, prefix)
	if err != nil {
		return nil, err
	}
	nodes := make(map[string]Node, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), prefix)
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			c.log.Warn("a node's value is not JSON; skipped", "node", name, "err", err)
			continue
		}
		n.Name = name
		nodes[name] = n
	}
	return nodes, nil
}

// list reads every key under prefix, with the request deadline.
func (c *Client) list(ctx context.Context, prefix string) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timing.request)
	defer cancel()
	resp, err := c.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	return resp, nil
}
