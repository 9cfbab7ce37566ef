package fleettest_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/ganger-dev/ganger"

	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

func TestFakeConformance(t *testing.T) {
	fleettest.RunBackendTests(t, func(t *testing.T) fleettest.Subject {
		f := fleettest.New(t, "ganger-echo:latest")
		return fleettest.Subject{
			Backend: f, Image: "ganger-echo:latest", Kill: func(id string) { f.Exit(id, 137) },
			Init: ganger.Init{Binary: "/ganger-init", Digest: "0123456789ab"},
		}
	})
}

// The fake keeps what only it can show: the limits a create applied, and
// the calls made.
func TestFakeRecords(t *testing.T) {
	f := fleettest.New(t, "img")
	ctx := context.Background()
	lim := ganger.Limits{Memory: 64 << 20, Pids: 32, CapAdd: []string{"NET_BIND_SERVICE"}}
	id, err := f.Create(ctx, ganger.Spec{Name: "a", Image: "img", Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if spec, ok := f.Spec(id); !ok || !reflect.DeepEqual(spec.Limits, lim) {
		t.Fatalf("limits %+v; want %+v", spec.Limits, lim)
	}
	if err := f.EnsureImage(ctx, "other", ganger.PullMissing); err != nil || f.Calls("Pull") != 1 {
		t.Fatalf("pull missing: %v, %d pulls", err, f.Calls("Pull"))
	}
	f.Remove(ctx, "a")
	f.Remove(ctx, "a")
	if f.Live() != 0 || !slices.Equal(f.Removed(), []string{id}) || f.Calls("Remove") != 2 {
		t.Fatalf("live %d, removed %v, %d calls", f.Live(), f.Removed(), f.Calls("Remove"))
	}
}
