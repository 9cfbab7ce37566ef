package main

import (
	"context"
	"errors"

	"github.com/ganger-dev/ganger/internal/api"
	"github.com/ganger-dev/ganger/internal/cluster"
	"github.com/ganger-dev/ganger/internal/clusterd"
	"github.com/ganger-dev/ganger/internal/initproto"
	"github.com/ganger-dev/ganger/internal/view"
)

// clusters is the API's view of the cluster manager: its errors become
// answers a client understands.
type clusters struct{ m *clusterd.Manager }

func (c clusters) Statuses() []view.Cluster { return c.m.Statuses() }

func (c clusters) Status(name string) (view.Cluster, error) {
	s, err := c.m.Status(name)
	return s, clusterError(err)
}

func (c clusters) Scale(name string, size int) error { return clusterError(c.m.Scale(name, size)) }

func (c clusters) Replace(name string, ordinal int) error {
	return clusterError(c.m.Replace(name, ordinal))
}

func (c clusters) View(ctx context.Context, name string, ordinal int, token string, after int64, released bool) (initproto.View, error) {
	v, err := c.m.View(ctx, name, ordinal, token, after, released)
	return v, clusterError(err)
}

func (c clusters) Report(name string, ordinal int, token string, r initproto.Report) error {
	return clusterError(c.m.Report(name, ordinal, token, r))
}

func (c clusters) Control(name string, ordinal int) (*initproto.Client, error) {
	cl, err := c.m.Control(name, ordinal)
	return cl, clusterError(err)
}

// clusterError maps the manager's errors to the API's answers.
func clusterError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, clusterd.ErrUnknown), errors.Is(err, clusterd.ErrNoMember), errors.Is(err, cluster.ErrNoMember):
		return &api.ClusterError{Status: 404, Reason: err.Error()}
	case errors.Is(err, clusterd.ErrToken):
		return &api.ClusterError{Status: 401, Reason: err.Error()}
	case errors.Is(err, clusterd.ErrBadReport):
		return &api.ClusterError{Status: 400, Reason: err.Error()}
	case errors.Is(err, clusterd.ErrNotLive), errors.Is(err, cluster.ErrState), errors.Is(err, cluster.ErrStale):
		return &api.ClusterError{Status: 409, Reason: err.Error()}
	}
	return err
}
