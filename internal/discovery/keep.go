package discovery

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// keep holds the registration until ctx ends: it renews the lease and,
// each time the registration is lost, registers again.
func (r *Registration) keep(ctx context.Context) {
	defer r.c.wg.Done()
	defer close(r.done)
	for {
		why := r.hold(ctx)
		if ctx.Err() != nil {
			return
		}
		r.held.Store(false)
		r.log.Warn("registration lost; registering again", "why", why)
		if !r.again(ctx) {
			return
		}
	}
}

// hold renews the current lease (the client sends a keepalive every third
// of its TTL) and watches the key, until the lease is lost, the key is
// deleted or taken by another lease, or ctx ends. It says why it returned.
func (r *Registration) hold(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	lease, rev := r.lease, r.rev
	r.mu.Unlock()
	alive, err := r.c.etcd.KeepAlive(ctx, lease)
	if err != nil {
		return fmt.Errorf("keepalive: %w", err)
	}
	events := r.c.etcd.Watch(ctx, r.key, clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-alive:
			if !ok {
				// Expired, revoked, or no answer within the TTL (etcd
				// down, a partition, this process stopped).
				return errors.New("the lease ended or was not renewed within its TTL")
			}
		case wr, ok := <-events:
			if !ok {
				return errors.New("the watch of the key closed")
			}
			if err := wr.Err(); err != nil {
				// Compacted past our revision, or cancelled: see where
				// the key stands and watch again from there.
				if rev, err = r.check(ctx, lease); err != nil {
					return err
				}
				events = r.c.etcd.Watch(ctx, r.key, clientv3.WithRev(rev+1))
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return errors.New("the key was deleted")
				}
				if ev.Kv.Lease != int64(lease) {
					return fmt.Errorf("the key was put under another lease (%x)", ev.Kv.Lease)
				}
			}
		}
	}
}

// check reads the key: an error if it is no longer on our lease, else the
// revision read at.
func (r *Registration) check(ctx context.Context, lease clientv3.LeaseID) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.c.timing.request)
	defer cancel()
	resp, err := r.c.etcd.Get(ctx, r.key)
	switch {
	case err != nil:
		return 0, fmt.Errorf("read %s: %w", r.key, err)
	case len(resp.Kvs) == 0:
		return 0, errors.New("the key was deleted")
	case resp.Kvs[0].Lease != int64(lease):
		return 0, fmt.Errorf("the key is under another lease (%x)", resp.Kvs[0].Lease)
	}
	return resp.Header.Revision, nil
}

// again registers again (create-only, same id) with jittered backoff,
// forever, until it does (true) or ctx ends (false). It logs the first
// failure and each different one after it, not every try.
func (r *Registration) again(ctx context.Context) bool {
	b := r.c.newBackoff()
	var logged string
	for tries := 1; ; tries++ {
		if !sleep(ctx, b.next()) {
			return false
		}
		err := r.register(ctx)
		if err == nil {
			r.mu.Lock()
			lease := r.lease
			r.mu.Unlock()
			r.log.Info("registered again", "lease", fmt.Sprintf("%x", lease), "tries", tries)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if msg := err.Error(); msg != logged {
			r.log.Warn("cannot register again yet; retrying", "err", err, "tries", tries)
			logged = msg
		}
	}
}
