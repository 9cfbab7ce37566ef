package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// Where ganger-init is, in the image that fills its volume and in the
// containers that run under it.
const (
	initFillDir = "/ganger"       // in the image: /ganger/ganger-init, copied into the volume
	initDir     = "/.ganger-init" // in a container: the volume, read-only
	initPath    = initDir + "/ganger-init"
	// InitConfigEnv is the environment variable that holds init_config
	// in a container (ganger-init --config-env).
	InitConfigEnv = "GANGER_INIT_CONFIG"
)

// EnsureInit makes ganger-init available to containers on the daemon: the
// volume in.Volume(), holding the binary, which a container under init
// mounts. It does nothing if that volume exists. Otherwise it imports the
// image in.Image() (FROM scratch, /ganger/ganger-init) from in.Binary
// unless present, and fills the volume the way Docker fills an empty named
// volume: a short-lived container of that image mounts it at /ganger and
// runs the copy (ganger-init version), which proves the copy. That
// container is labelled as owner's, so a sweep removes it if this is
// interrupted. Nothing is copied when a container starts.
func (d *Daemon) EnsureInit(ctx context.Context, in ganger.Init, owner string) error {
	ok, err := d.initVolumeReady(ctx, in)
	if err != nil || ok {
		return err
	}
	t0 := time.Now()
	if err := d.ensureInitImage(ctx, in); err != nil {
		return err
	}
	if err := d.fillInitVolume(ctx, in, owner); err != nil {
		d.removeVolume(in.Volume()) // so that the next try starts afresh
		return err
	}
	d.log.Info("ganger-init provisioned", "volume", in.Volume(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// initVolumeReady reports whether the volume exists, filled by Ganger (it
// carries the digest). One without that label is not Ganger's doing:
// Docker makes an empty volume for a container that names a missing one.
// It is removed, to be filled anew.
func (d *Daemon) initVolumeReady(ctx context.Context, in ganger.Init) (bool, error) {
	res, err := d.cli.VolumeInspect(ctx, in.Volume(), client.VolumeInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect volume %s on %s: %w", in.Volume(), d.name, err)
	case res.Volume.Labels[ganger.LabelInit] == in.Digest:
		return true, nil
	}
	d.log.Warn("volume of ganger-init not made by Ganger (empty?): replacing it", "volume", in.Volume())
	if _, err := d.cli.VolumeRemove(ctx, in.Volume(), client.VolumeRemoveOptions{}); err != nil {
		return false, fmt.Errorf("remove volume %s on %s, not made by Ganger: %w", in.Volume(), d.name, err)
	}
	return false, nil
}

// ensureInitImage imports the image that fills the volume, unless present.
func (d *Daemon) ensureInitImage(ctx context.Context, in ganger.Init) error {
	if _, err := d.cli.ImageInspect(ctx, in.Image()); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s on %s: %w", in.Image(), d.name, err)
	}
	layer, err := initLayer(in)
	if err != nil {
		return err
	}
	res, err := d.cli.ImageImport(ctx, client.ImageImportSource{Source: layer, SourceName: "-"}, in.Image(), client.ImageImportOptions{
		Changes: []string{"LABEL " + ganger.LabelManaged + "=true", "LABEL " + ganger.LabelInit + "=" + in.Digest},
	})
	if err != nil {
		return fmt.Errorf("import image %s on %s: %w", in.Image(), d.name, err)
	}
	defer res.Close()
	if err := importError(res); err != nil {
		return fmt.Errorf("import image %s on %s: %w", in.Image(), d.name, err)
	}
	return nil
}

// initLayer is the image's only layer: /ganger/ganger-init, read from
// in.Binary, which must still be the binary the digest names.
func initLayer(in ganger.Init) (io.Reader, error) {
	bin, err := os.ReadFile(in.Binary)
	if err != nil {
		return nil, fmt.Errorf("read ganger-init: %w", err)
	}
	if got := ganger.InitDigest(bin); got != in.Digest {
		return nil, fmt.Errorf("ganger-init %s changed since the configuration was loaded (digest %s, not %s): reload", in.Binary, got, in.Digest)
	}
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(initFillDir, "/")
	w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755})
	w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/ganger-init", Mode: 0o755, Size: int64(len(bin))})
	w.Write(bin)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("pack ganger-init: %w", err)
	}
	return &buf, nil
}

// importError reads an import's progress stream to its end and returns
// the error it reports, if any.
func importError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		switch err := dec.Decode(&msg); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		case msg.ErrorDetail.Message != "":
			return errors.New(msg.ErrorDetail.Message)
		case msg.Error != "":
			return errors.New(msg.Error)
		}
	}
}

// fillInitVolume creates the volume by creating a container that mounts
// it where the image holds the binary (Docker copies it in), runs the
// copy to prove it, and removes the container.
func (d *Daemon) fillInitVolume(ctx context.Context, in ganger.Init, owner string) error {
	name := in.Volume() + "-fill-" + owner
	labels := map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: owner, ganger.LabelInit: in.Digest}
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		d.Remove(ctx, name)
	}
	cleanup() // one left by an interrupted run
	defer cleanup()
	pids := int64(16)
	_, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image: in.Image(), Entrypoint: []string{initFillDir + "/ganger-init", "version"},
			User: nobody, Labels: labels, NetworkDisabled: true,
		},
		HostConfig: &container.HostConfig{
			NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges=true"},
			Resources: container.Resources{Memory: 64 << 20, PidsLimit: &pids},
			Mounts: []mount.Mount{{
				Type: mount.TypeVolume, Source: in.Volume(), Target: initFillDir,
				VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelInit: in.Digest}},
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("create %s on %s: %w", name, d.name, err)
	}
	return d.proveInit(ctx, name)
}

// proveInit runs the filling container: ganger-init, run from the volume,
// must answer.
func (d *Daemon) proveInit(ctx context.Context, name string) error {
	wait := d.cli.ContainerWait(ctx, name, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := d.cli.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("ganger-init does not run from its volume on %s: %w", d.name, err)
	}
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		return fmt.Errorf("wait for %s on %s: %w", name, d.name, err)
	}
	out, err := d.Logs(ctx, name, 5)
	if err != nil {
		return err
	}
	if code != 0 || !strings.HasPrefix(out, "ganger-init ") {
		return fmt.Errorf("ganger-init from its volume on %s: exit code %d, output %q: not a ganger-init binary?", d.name, code, out)
	}
	return nil
}

func (d *Daemon) removeVolume(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{})
}
