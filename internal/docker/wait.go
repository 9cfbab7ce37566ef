package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// Wait returns a channel that receives how the container ended, once, when
// it is no longer running (at once if it has already exited). Cancelling
// ctx ends the wait without a value.
func (d *Daemon) Wait(ctx context.Context, id string) <-chan ganger.Exit {
	out := make(chan ganger.Exit, 1)
	res := d.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	go func() {
		select {
		case r := <-res.Result:
			e := ganger.Exit{Code: r.StatusCode}
			if r.Error != nil && r.Error.Message != "" {
				e.Err = errors.New(r.Error.Message)
			}
			out <- e
		case err := <-res.Error:
			if ctx.Err() == nil {
				out <- ganger.Exit{Code: -1, Err: fmt.Errorf("wait for container %s on %s: %w", short(id), d.name, err)}
			}
		case <-ctx.Done():
		}
	}()
	return out
}
