package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Kinds of registration: the keys <prefix>hosts/<name> (agents) and
// <prefix>nodes/<node> (ganger serve).
const (
	KindHosts = "hosts"
	KindNodes = "nodes"
)

// ErrTaken is the error (checked with errors.Is) of a Register whose key
// another process holds: a second agent with the name of a live one, a
// second node with the id of a live one.
var ErrTaken = errors.New("name taken")

// takenError says who holds the key.
type takenError struct{ key, holder string }

func (e *takenError) Error() string {
	if e.holder == "" {
		return fmt.Sprintf("%v: %s is held by another process (its value names no id)", ErrTaken, e.key)
	}
	return fmt.Sprintf("%v: %s is held by another process (id %s)", ErrTaken, e.key, e.holder)
}

func (e *takenError) Unwrap() error { return ErrTaken }

// Registration is one key kept alive under a lease: put create-only, its
// lease renewed at a third of its TTL, put again (create-only, same id)
// whenever the lease is lost, until Revoke or the client's Close.
type Registration struct {
	c     *Client
	key   string
	id    string
	value func() []byte
	ttl   time.Duration
	log   *slog.Logger

	mu    sync.Mutex // held across each put, so that the latest value wins
	lease clientv3.LeaseID
	rev   int64 // revision of our last put
	held  atomic.Bool

	cancel context.CancelFunc
	done   chan struct{} // closed when keep returns
}

// Register puts <prefix><kind>/<name> with a lease of ttl, its value
// value() (JSON whose "id" is id), only if the key does not exist or holds
// id already (this process's, or an earlier life's with the same persistent
// id: it is taken over). If another id holds it, Register tries again until
// waitTaken has passed (a node restarted after kill -9 has a new id and
// waits for its old lease to expire), then returns an error wrapping
// ErrTaken that names the key and the holder. Other failures (etcd not
// answering) are retried until ctx ends, but for etcd's refusals (no
// credentials, permission denied), returned at once.
//
// Once registered, the key is kept alive in the background, independently
// of ctx, until Revoke or the client's Close; value is called again at
// each (re-)registration and Update.
func (c *Client) Register(ctx context.Context, kind, name, id string, value func() []byte, ttl, waitTaken time.Duration) (*Registration, error) {
	if kind != KindHosts && kind != KindNodes {
		return nil, fmt.Errorf("register: kind %q: want %q or %q", kind, KindHosts, KindNodes)
	}
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("register: name %q: want a non-empty name without '/'", name)
	}
	if id == "" || ttl <= 0 {
		return nil, fmt.Errorf("register %s: an id and a positive ttl are needed", name)
	}
	key := c.prefix + kind + "/" + name
	r := &Registration{c: c, key: key, id: id, value: value, ttl: ttl,
		log: c.log.With("key", key, "id", id)}
	if err := r.first(ctx, waitTaken); err != nil {
		return nil, err
	}
	r.log.Info("registered", "lease", fmt.Sprintf("%x", r.lease), "ttl", ttl)
	kctx, cancel := context.WithCancel(c.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	c.wg.Add(1)
	go r.keep(kctx)
	return r, nil
}

// first tries to register until it does, the key stays taken past
// waitTaken, or ctx ends.
func (r *Registration) first(ctx context.Context, waitTaken time.Duration) error {
	b := r.c.newBackoff()
	var takenSince time.Time
	var logged string
	for {
		err := r.register(ctx)
		if err == nil {
			return nil
		}
		wait := b.next()
		var taken *takenError
		switch {
		case errors.As(err, &taken):
			if takenSince.IsZero() {
				takenSince = time.Now()
			}
			left := waitTaken - time.Since(takenSince)
			if left <= 0 {
				return err
			}
			if logged == "" {
				r.log.Info("key held by another id; waiting for its lease to end", "holder", taken.holder, "wait", waitTaken)
				logged = err.Error()
			}
			wait = min(wait, left, time.Second)
		case ctx.Err() != nil:
			return fmt.Errorf("register %s: %w (last error: %v)", r.key, ctx.Err(), err)
		case errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrUserEmpty):
			return fmt.Errorf("register %s: %w", r.key, err) // a setting to mend: no retry
		case err.Error() != logged:
			r.log.Warn("cannot register yet; retrying", "err", err)
			logged = err.Error()
		}
		if !sleep(ctx, wait) {
			return fmt.Errorf("register %s: %w (last error: %v)", r.key, ctx.Err(), err)
		}
	}
}

// register makes one attempt: grant a lease, put the key create-only (or
// take it over if it holds our id). On success the registration holds the
// new lease and any lease it held before is revoked.
func (r *Registration) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.c.timing.request)
	defer cancel()
	grant, err := r.c.etcd.Grant(ctx, ttlSeconds(r.ttl))
	if err != nil {
		return fmt.Errorf("grant a lease: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rev, err := r.put(ctx, grant.ID)
	if err != nil {
		r.revokeLease(grant.ID)
		return err
	}
	old := r.lease
	r.lease, r.rev = grant.ID, rev
	r.held.Store(true)
	if old != 0 && old != grant.ID {
		r.revokeLease(old) // the key is on the new lease: this deletes nothing
	}
	return nil
}

// put writes the key under lease if it is absent, or if it holds our id
// and has not changed since read. It returns the revision of the write.
func (r *Registration) put(ctx context.Context, lease clientv3.LeaseID) (int64, error) {
	kv := r.c.etcd
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0)).
		Then(clientv3.OpPut(r.key, string(r.value()), clientv3.WithLease(lease))).
		Else(clientv3.OpGet(r.key)).Commit()
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", r.key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return 0, fmt.Errorf("create %s: it went while read; trying again", r.key)
	}
	cur := kvs[0]
	if holder := idOf(cur.Value); holder != r.id {
		return 0, &takenError{key: r.key, holder: holder}
	}
	// Our own earlier registration (this process's, or a previous life's):
	// take it over, unless it changed since read.
	resp, err = kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(r.key), "=", cur.ModRevision)).
		Then(clientv3.OpPut(r.key, string(r.value()), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return 0, fmt.Errorf("take over %s: %w", r.key, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("take over %s: it changed while read; trying again", r.key)
	}
	return resp.Header.Revision, nil
}

// revokeLease revokes a lease we no longer use, best effort: if it fails
// the lease expires on its own.
func (r *Registration) revokeLease(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(r.c.ctx, r.c.timing.request)
	defer cancel()
	r.c.etcd.Revoke(ctx, id)
}

// idOf reads the "id" of a registered value; "" if there is none.
func idOf(value []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	json.Unmarshal(value, &v)
	return v.ID
}

// ttlSeconds rounds ttl up to whole seconds, at least 1 (etcd raises it to
// its own minimum, about 2s).
func ttlSeconds(ttl time.Duration) int64 {
	return max(1, int64((ttl+time.Second-1)/time.Second))
}

// Registered says whether the key is held now: false from the moment the
// lease is found lost until it is registered again, and after Revoke.
func (r *Registration) Registered() bool { return r.held.Load() }

// Key is the registered key.
func (r *Registration) Key() string { return r.key }

// Update puts the current value() again (under the same lease): for a
// change such as draining. While the registration is lost it does nothing:
// the next registration puts the current value.
func (r *Registration) Update(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.held.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.c.timing.request)
	defer cancel()
	resp, err := r.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(r.key), "=", r.lease)).
		Then(clientv3.OpPut(r.key, string(r.value()), clientv3.WithLease(r.lease))).Commit()
	if err != nil {
		return fmt.Errorf("update %s: %w", r.key, err)
	}
	if resp.Succeeded {
		r.rev = resp.Header.Revision
	}
	return nil
}

// Revoke stops keeping the key alive and revokes its lease, which deletes
// the key. It may be called more than once.
func (r *Registration) Revoke(ctx context.Context) error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	lease := r.lease
	r.lease = 0
	r.held.Store(false)
	if lease == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.c.timing.request)
	defer cancel()
	if _, err := r.c.etcd.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke the lease of %s: %w", r.key, err)
	}
	r.log.Info("registration revoked")
	return nil
}
