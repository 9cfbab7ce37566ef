package docker

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Logs returns the container's last lines of output, stdout and stderr
// interleaved as well as Docker keeps them.
func (d *Daemon) Logs(ctx context.Context, id string, lines int) (string, error) {
	rc, err := d.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines),
	})
	if err != nil {
		return "", fmt.Errorf("logs of %s on %s: %w", short(id), d.name, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return "", fmt.Errorf("read logs of %s on %s: %w", short(id), d.name, err)
	}
	return strings.TrimRight(out.String(), "\n"), nil
}
