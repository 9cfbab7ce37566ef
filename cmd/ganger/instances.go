package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/api"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/view"
)

// instances is the API's view of the instance manager: records become
// view.Instance, and the manager's errors answers a client understands.
type instances struct {
	m    *instance.Manager
	svcs map[string]config.Service
}

func newInstances(m *instance.Manager, cfg *config.Config) *instances {
	in := &instances{m: m, svcs: map[string]config.Service{}}
	for _, sc := range cfg.Services {
		if sc.Mode == ganger.Instance {
			in.svcs[sc.Name] = sc
		}
	}
	return in
}

func (in *instances) Public(service string) (bool, bool) {
	sc, ok := in.svcs[service]
	return ok, ok && sc.Instance.Public
}

func (in *instances) Create(ctx context.Context, service, owner string, ttl time.Duration) (view.Instance, bool, error) {
	rec, token, existing, err := in.m.Create(ctx, service, owner, ttl)
	if err != nil {
		return view.Instance{}, false, in.failure(ctx, err, service, owner)
	}
	v := in.view(rec)
	v.OwnerToken = token
	return v, existing, nil
}

func (in *instances) Get(ctx context.Context, id, token string) (view.Instance, bool, error) {
	rec, err := in.m.Get(ctx, id)
	if err != nil {
		return view.Instance{}, false, in.failure(ctx, err, "", "")
	}
	return in.view(rec), token != "" && instance.Owns(rec, token), nil
}

func (in *instances) List(ctx context.Context, owner string, all bool) ([]view.Instance, error) {
	recs, err := in.m.List(ctx, instance.Filter{Owner: owner, LiveOnly: !all})
	if err != nil {
		return nil, err
	}
	out := make([]view.Instance, 0, len(recs))
	for _, r := range recs {
		out = append(out, in.view(r))
	}
	return out, nil
}

func (in *instances) Extend(ctx context.Context, id string) (view.Instance, error) {
	rec, err := in.m.Extend(ctx, id)
	if err != nil {
		return view.Instance{}, in.failure(ctx, err, "", "")
	}
	return in.view(rec), nil
}

func (in *instances) Restart(ctx context.Context, id string) (view.Instance, error) {
	rec, err := in.m.Restart(ctx, id)
	if err != nil {
		return view.Instance{}, in.failure(ctx, err, "", "")
	}
	return in.view(rec), nil
}

func (in *instances) Delete(ctx context.Context, id string) (view.Instance, error) {
	rec, err := in.m.Delete(ctx, id)
	if err != nil {
		return view.Instance{}, in.failure(ctx, err, "", "")
	}
	return in.view(rec), nil
}

func (in *instances) view(r instance.Record) view.Instance {
	v := view.Instance{
		ID: r.ID, Service: r.Service, State: string(r.State), Owner: r.Owner, Daemon: r.Daemon, Host: r.Host,
		Secrets: r.Secrets, Connect: in.m.Connect(r), CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		MaxExpiresAt: r.MaxExpiresAt, Reason: r.Reason, BytesIn: r.BytesIn, BytesOut: r.BytesOut,
	}
	if len(r.Ports) > 0 {
		v.Ports = map[string]int{}
		for p, q := range r.Ports {
			v.Ports[strconv.Itoa(p)] = q
		}
	}
	if sc, ok := in.svcs[r.Service]; ok {
		v.ExtendsLeft = max(sc.Instance.Extend.Max-r.Extensions, 0)
	}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt
		v.EndedAt = &t
	}
	return v
}

// failure turns a manager's error into the answer a client gets.
func (in *instances) failure(ctx context.Context, err error, service, owner string) error {
	var rate *instance.RateError
	switch o := ganger.OutcomeOf(err, ""); {
	case errors.As(err, &rate):
		return &api.InstanceError{Status: 429, Reason: "too many creations from this owner; try again later", RetryAfter: rate.RetryAfter}
	case errors.Is(err, instance.ErrQuota):
		return &api.InstanceError{Status: 429, Reason: fmt.Sprintf("this owner holds all the live instances of %s it may (per_owner %d)", service, in.svcs[service].Instance.PerOwner),
			RetryAfter: in.untilOneEnds(ctx, service, owner)}
	case errors.Is(err, instance.ErrUnknownService), errors.Is(err, instance.ErrNotFound):
		return &api.InstanceError{Status: 404, Reason: err.Error()}
	case errors.Is(err, instance.ErrBadTTL):
		return &api.InstanceError{Status: 400, Reason: err.Error()}
	case errors.Is(err, instance.ErrNoExtensions), errors.Is(err, instance.ErrAtMaxTTL), errors.Is(err, instance.ErrNotLive), errors.Is(err, instance.ErrElsewhere):
		return &api.InstanceError{Status: 409, Reason: err.Error()}
	case errors.Is(err, instance.ErrNoPort):
		return &api.InstanceError{Status: 503, Reason: "no room for a new instance now: " + err.Error(), RetryAfter: 10 * time.Second}
	case errors.Is(err, instance.ErrRemove):
		return &api.InstanceError{Status: 503, Reason: "its container cannot be removed now (its daemon does not answer); try again", RetryAfter: 10 * time.Second}
	case o == ganger.QueueFull || o == ganger.QueueTimeout:
		return &api.InstanceError{Status: 503, Reason: "no room for a new instance now: " + err.Error(), RetryAfter: 10 * time.Second}
	case o != "":
		return &api.InstanceError{Status: 502, Reason: "the instance did not start: " + err.Error()}
	}
	return err
}

// untilOneEnds is how long until the owner's soonest live instance of the
// service expires.
func (in *instances) untilOneEnds(ctx context.Context, service, owner string) time.Duration {
	recs, err := in.m.List(ctx, instance.Filter{Service: service, Owner: owner, LiveOnly: true})
	if err != nil || len(recs) == 0 {
		return 0
	}
	soonest := recs[0].ExpiresAt
	for _, r := range recs {
		if r.ExpiresAt.Before(soonest) {
			soonest = r.ExpiresAt
		}
	}
	return max(time.Until(soonest), time.Second)
}
