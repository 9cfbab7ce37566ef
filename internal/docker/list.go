package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// ListManaged lists every container labelled ganger.managed=true on the
// daemon, running or not; with owner set, only that node's.
func (d *Daemon) ListManaged(ctx context.Context, owner string) ([]ganger.Managed, error) {
	f := make(client.Filters).Add("label", ganger.LabelManaged+"=true")
	if owner != "" {
		f.Add("label", ganger.LabelOwner+"="+owner)
	}
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", d.name, err)
	}
	out := make([]ganger.Managed, 0, len(res.Items))
	for _, c := range res.Items {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, ganger.Managed{
			ID: c.ID, Name: name, Labels: c.Labels, State: string(c.State),
		})
	}
	return out, nil
}
