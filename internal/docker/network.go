package docker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// EnsureNetwork creates the network unless one of that name exists. Nodes
// creating it at once is no error: an engine older than API 1.44 lets two
// networks share a name, so after creating, every node keeps the oldest of
// that name and removes the others, and all converge on one.
func (d *Daemon) EnsureNetwork(ctx context.Context, n ganger.NetworkSpec) error {
	same, err := d.networksNamed(ctx, n.Name)
	if err != nil {
		return err
	}
	if len(same) == 0 {
		opts := map[string]string{"com.docker.network.bridge.enable_icc": strconv.FormatBool(n.ICC)}
		if n.Bridge != "" {
			opts["com.docker.network.bridge.name"] = n.Bridge
		}
		_, err := d.cli.NetworkCreate(ctx, n.Name, client.NetworkCreateOptions{
			Driver: "bridge", Internal: n.Internal, Options: opts, Labels: n.Labels,
		})
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create network %s on %s: %w", n.Name, d.name, err)
		}
		if same, err = d.networksNamed(ctx, n.Name); err != nil {
			return err
		}
	}
	for _, dup := range same[min(len(same), 1):] { // all but the oldest
		d.cli.NetworkRemove(ctx, dup.ID, client.NetworkRemoveOptions{})
	}
	return nil
}

// NetworkGateway returns the gateway of the named network: where its
// containers reach the daemon's host.
func (d *Daemon) NetworkGateway(ctx context.Context, name string) (string, error) {
	same, err := d.networksNamed(ctx, name)
	if err != nil {
		return "", err
	}
	for _, n := range same {
		for _, c := range n.IPAM.Config {
			if c.Gateway.IsValid() && c.Gateway.Is4() {
				return c.Gateway.String(), nil
			}
		}
	}
	return "", fmt.Errorf("network %s on %s: no IPv4 gateway", name, d.name)
}

// networksNamed lists the networks named name exactly, oldest first.
func (d *Daemon) networksNamed(ctx context.Context, name string) ([]network.Summary, error) {
	res, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, fmt.Errorf("list networks on %s: %w", d.name, err)
	}
	same := slices.DeleteFunc(res.Items, func(s network.Summary) bool { return s.Name != name })
	slices.SortFunc(same, func(a, b network.Summary) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return same, nil
}

// RemoveNetwork removes a network. One that is gone is no error; one that
// containers still use is (ErrNetworkInUse).
func (d *Daemon) RemoveNetwork(ctx context.Context, name string) error {
	_, err := d.cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) || cerrdefs.IsPermissionDenied(err):
		return fmt.Errorf("remove network %s on %s: %w: %v", name, d.name, ganger.ErrNetworkInUse, err)
	}
	return fmt.Errorf("remove network %s on %s: %w", name, d.name, err)
}
