package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

// initContainer is what `docker inspect` says of a container under
// ganger-init.
type initContainer struct {
	Path   string
	Args   []string
	Config struct{ Env []string }
	Mounts []struct {
		Type, Name, Destination string
		RW                      bool
	}
}

func inspectInit(t *testing.T, id string) initContainer {
	t.Helper()
	out, err := exec.Command("docker", "inspect", id).Output()
	var got []initContainer
	if err != nil || json.Unmarshal(out, &got) != nil || len(got) != 1 {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return got[0]
}

// provided builds a ganger-init of the test's own, provides it on d, and
// removes what that leaves when the test ends.
func provided(t *testing.T, d *docker.Daemon, node string) ganger.Init {
	t.Helper()
	in := fleettest.BuildInit(t, true)
	t.Cleanup(func() { removeInit(t, d.Host(), in) })
	if err := d.EnsureInit(context.Background(), in, node); err != nil {
		t.Fatal(err)
	}
	return in
}

// A container under ganger-init runs it from its volume, read-only, and
// ganger-init runs what Docker would have run without it: the image's
// entrypoint and cmd, the service's cmd after the image's entrypoint, or
// the service's entrypoint and cmd; with a config, its processes, from
// the environment.
func TestInitCommand(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	in := provided(t, d, node)
	multi := in
	multi.Config = "processes:\n  a: {cmd: [/ganger-echo]}\n"
	ctx := context.Background()
	for i, tt := range []struct {
		entrypoint, cmd []string
		in              ganger.Init
		want            []string
	}{
		{nil, nil, in, []string{"--", "/ganger-echo"}},
		{nil, []string{"-listen", ":7777"}, in, []string{"--", "/ganger-echo", "-listen", ":7777"}},
		{[]string{"/ganger-echo", "-banner", "x"}, nil, in, []string{"--", "/ganger-echo", "-banner", "x"}},
		{[]string{"/ganger-echo"}, []string{"-banner", "y"}, in, []string{"--", "/ganger-echo", "-banner", "y"}},
		{nil, nil, multi, []string{"--config-env", docker.InitConfigEnv, "--control", "none"}},
	} {
		id, err := d.Create(ctx, ganger.Spec{
			Name: fmt.Sprintf("ganger-init-%s-%d", node, i), Image: dockertest.Image, Port: 7777, Network: "bridge",
			Entrypoint: tt.entrypoint, Cmd: tt.cmd, Env: []string{"A=1"}, Init: tt.in,
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node},
			Limits: ganger.Limits{Memory: 64 << 20, Pids: 32, NoNewPrivileges: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Remove(ctx, id)
		c := inspectInit(t, id)
		if c.Path != "/.ganger-init/ganger-init" || !slices.Equal(c.Args, tt.want) {
			t.Errorf("case %d: runs %s %q; want /.ganger-init/ganger-init %q", i, c.Path, c.Args, tt.want)
		}
		if len(c.Mounts) != 1 || c.Mounts[0].Type != "volume" || c.Mounts[0].Name != in.Volume() || c.Mounts[0].Destination != "/.ganger-init" || c.Mounts[0].RW {
			t.Errorf("case %d: mounts %+v; want %s read-only at /.ganger-init", i, c.Mounts, in.Volume())
		}
		env := strings.Join(c.Config.Env, "\n")
		if has := strings.Contains(env, docker.InitConfigEnv+"="+multi.Config); has != (tt.in.Config != "") || !strings.Contains(env, "A=1") {
			t.Errorf("case %d: environment %q", i, c.Config.Env)
		}
	}
}

// A volume of ganger-init's name that Ganger did not fill (Docker makes
// an empty one for a container that names it) is replaced, and the
// binary then runs from it.
func TestInitReplacesAnEmptyVolume(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	in := fleettest.BuildInit(t, true)
	t.Cleanup(func() { removeInit(t, d.Host(), in) })
	if out, err := exec.Command("docker", "volume", "create", in.Volume()).CombinedOutput(); err != nil {
		t.Fatalf("volume create: %v: %s", err, out)
	}
	ctx := context.Background()
	if err := d.EnsureInit(ctx, in, node); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("docker", "volume", "inspect", "-f", "{{index .Labels \""+ganger.LabelInit+"\"}}", in.Volume()).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != in.Digest {
		t.Fatalf("volume labelled %q (%v); want the digest %s", got, err, in.Digest)
	}
	id, err := d.Create(ctx, ganger.Spec{Name: "ganger-init-empty-" + node, Image: dockertest.Image, Port: 7777, Network: "bridge",
		Cmd: []string{"-listen", ":7777"}, Init: in, Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node},
		Limits: ganger.Limits{Memory: 64 << 20, Pids: 32, NoNewPrivileges: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(ctx, id)
	if _, err := d.Start(ctx, id, 7777); err != nil {
		t.Fatalf("start under ganger-init from the replaced volume: %v", err)
	}
}

// A binary that is not the one the digest names (rebuilt since the
// configuration was loaded) is refused, and nothing is left.
func TestInitBinaryChanged(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	in := fleettest.BuildInit(t, true)
	in.Digest = "000000000000"
	err := d.EnsureInit(context.Background(), in, node)
	if err == nil || !strings.Contains(err.Error(), "changed since the configuration was loaded") {
		t.Fatalf("got %v; want the change named", err)
	}
	if exec.Command("docker", "volume", "inspect", in.Volume()).Run() == nil {
		exec.Command("docker", "volume", "rm", in.Volume()).Run()
		t.Fatalf("volume %s left", in.Volume())
	}
}

// A reference re-tagged to an image with another command is asked about
// again: the first container created after the re-tag shows the change
// when it starts, and the next one runs the new command.
func TestInitImageRetagged(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	in := provided(t, d, node)
	ref := "ganger-echo:retag-" + node
	tag := func(banner string) {
		imp := exec.Command("sh", "-c", `tar -C ../../bin -c ganger-echo | docker import --change 'ENTRYPOINT ["/ganger-echo", "-banner", "`+banner+`"]' - `+ref)
		if out, err := imp.CombinedOutput(); err != nil {
			t.Fatalf("import: %v: %s", err, out)
		}
	}
	tag("one")
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })
	ctx := context.Background()
	run := func(i int) []string {
		id, err := d.Create(ctx, ganger.Spec{Name: fmt.Sprintf("ganger-retag-%s-%d", node, i), Image: ref, Port: 7777, Network: "bridge",
			Init: in, Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node}, Limits: ganger.Limits{Memory: 64 << 20, Pids: 32}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Remove(ctx, id)
		if _, err := d.Start(ctx, id, 7777); err != nil {
			t.Fatal(err)
		}
		return inspectInit(t, id).Args
	}
	if got := run(0); !slices.Contains(got, "one") {
		t.Fatalf("args %q; want the banner one", got)
	}
	tag("two")
	run(1) // created from the new image with what was known of the old
	if got := run(2); !slices.Contains(got, "two") {
		t.Fatalf("args %q after the re-tag; want the banner two", got)
	}
}
