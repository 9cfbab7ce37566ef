package docker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// Events streams the die and destroy events of the containers labelled as
// owned by owner (every Ganger container, if owner is ""), until ctx ends
// or the stream fails. The event channel is closed when it ends; the error
// channel then holds why (nothing if ctx ended). One stream serves every
// container on the daemon: nothing long-polls per container.
func (d *Daemon) Events(ctx context.Context, owner string) (<-chan ganger.Event, <-chan error) {
	f := make(client.Filters).Add("type", "container").Add("event", "die", "destroy").
		Add("label", ganger.LabelManaged+"=true")
	if owner != "" {
		f.Add("label", ganger.LabelOwner+"="+owner)
	}
	res := d.cli.Events(ctx, client.EventsListOptions{Filters: f})
	out, errc := make(chan ganger.Event, 64), make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-res.Messages:
				select {
				case out <- event(m):
				case <-ctx.Done():
					return
				}
			case err := <-res.Err:
				if ctx.Err() == nil {
					errc <- fmt.Errorf("events of %s: %w", d.name, err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}

func event(m events.Message) ganger.Event {
	e := ganger.Event{ID: m.Actor.ID, Name: m.Actor.Attributes["name"], Action: string(m.Action)}
	if m.Action == events.ActionDie {
		e.Exit.Code = -1
		if c, err := strconv.ParseInt(m.Actor.Attributes["exitCode"], 10, 64); err == nil {
			e.Exit.Code = c
		}
	}
	return e
}

// Engine returns what the engine says of itself: its id (two URLs to one
// daemon share it), negotiated API version and host name.
func (d *Daemon) Engine(ctx context.Context) (ganger.Engine, error) {
	v, err := d.Ping(ctx)
	if err != nil {
		return ganger.Engine{}, err
	}
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return ganger.Engine{}, fmt.Errorf("info of daemon %s: %w", d.name, err)
	}
	return ganger.Engine{ID: res.Info.ID, APIVersion: v, Name: res.Info.Name, RootDir: res.Info.DockerRootDir}, nil
}
