package docker

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// EnsureImage makes sure ref is present on the daemon, pulling it if
// missing and logging the pull's progress.
func (d *Daemon) EnsureImage(ctx context.Context, ref string) error {
	_, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s on %s: %w", ref, d.name, err)
	}
	d.log.Info("image missing, pulling", "image", ref)
	start := time.Now()
	resp, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("image %s is not on daemon %s and cannot be pulled: %w", ref, d.name, err)
	}
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return fmt.Errorf("pull %s on %s: %w", ref, d.name, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("pull %s on %s: %s", ref, d.name, msg.Error.Message)
		}
		// Per-chunk progress would flood the log; layer milestones do not.
		if msg.Status != "" && !strings.HasPrefix(msg.Status, "Downloading") && !strings.HasPrefix(msg.Status, "Extracting") {
			d.log.Info("pull progress", "image", ref, "layer", msg.ID, "status", msg.Status)
		}
	}
	d.log.Info("image pulled", "image", ref, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
