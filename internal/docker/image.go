package docker

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// EnsureImage makes sure ref is present on the daemon, under a pull
// policy: "missing" pulls it if absent, "always" pulls it anyway, "never"
// only checks. A pull logs its progress.
func (d *Daemon) EnsureImage(ctx context.Context, ref string, policy ganger.PullPolicy) error {
	img, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		d.remember(ref, img.InspectResponse) // what Create needs of it, fresh at every join
	}
	switch {
	case err != nil && !cerrdefs.IsNotFound(err):
		return fmt.Errorf("inspect image %s on %s: %w", ref, d.name, err)
	case err != nil && policy == ganger.PullNever:
		return fmt.Errorf("image %s is not on daemon %s, and its pull policy is never", ref, d.name)
	case err == nil && policy != ganger.PullAlways:
		return nil
	case err != nil:
		d.log.Info("image missing, pulling", "image", ref)
	default:
		d.log.Info("pulling image (pull: always)", "image", ref)
	}
	return d.pull(ctx, ref)
}

func (d *Daemon) pull(ctx context.Context, ref string) error {
	start := time.Now()
	resp, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: d.creds.For(ref)})
	if err != nil {
		return fmt.Errorf("image %s cannot be pulled onto daemon %s: %w", ref, d.name, err)
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
	d.images.Delete(ref) // the pull may have changed the image it names
	d.log.Info("image pulled", "image", ref, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
