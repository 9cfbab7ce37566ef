package clusterd

import (
	"fmt"

	"github.com/ganger-dev/ganger/internal/cluster"
	"github.com/ganger-dev/ganger/internal/view"
)

// Status is a cluster as the API and the status page show it.
func (m *Manager) Status(name string) (view.Cluster, error) {
	r, err := m.run(name)
	if err != nil {
		return view.Cluster{}, err
	}
	if r.c == nil {
		return view.Cluster{Name: name}, nil
	}
	spec := r.c.Spec()
	epoch := r.c.Epoch()
	out := view.Cluster{Name: name, Image: r.svc.Spec.Image, Size: r.c.Target(), MinReady: spec.MinReady,
		Rollout: string(spec.Rollout), Epoch: epoch, Members: []view.ClusterMember{}}
	if l, ok := r.c.Leader(); ok {
		out.Leader = &l.Ordinal
	}
	r.mu.Lock()
	reports := map[int]viewReport{}
	for o, rep := range r.reports {
		vr := viewReport{state: rep.State, reason: rep.Reason}
		for _, p := range rep.Processes {
			vr.procs = append(vr.procs, view.Process{Name: p.Name, State: p.State, PID: p.PID, Restarts: p.Restarts, Ready: p.Ready, Healthy: p.Healthy})
		}
		reports[o] = vr
	}
	out.Problem = r.renderErr
	deps := r.m.depsOf(spec)
	r.mu.Unlock()
	out.DependsOn = deps
	var waiting, silent []int
	for _, mem := range r.c.Members() {
		if _, reported := reports[mem.Ordinal]; mem.State == cluster.Running && !reported && !mem.Healthy {
			silent = append(silent, mem.Ordinal)
		}
		v := r.c.View(mem.Ordinal)
		vm := view.ClusterMember{Ordinal: mem.Ordinal, Incarnation: mem.Incarnation, State: mem.State.String(),
			Daemon: mem.Daemon, Container: shortID(mem.Container), IP: mem.IP, Host: mem.Host, Ports: mem.Ports,
			Ready: mem.Ready, Healthy: mem.Healthy, Leader: out.Leader != nil && *out.Leader == mem.Ordinal && mem.Ready,
			Released: v.Release, Acked: mem.Acked}
		if rep, ok := reports[mem.Ordinal]; ok {
			vm.Report, vm.Reason, vm.Processes = rep.state, rep.reason, rep.procs
		}
		if mem.Ready {
			out.Ready++
		}
		if mem.State == cluster.Running && mem.Acked < epoch {
			waiting = append(waiting, mem.Ordinal)
		}
		out.Members = append(out.Members, vm)
	}
	switch {
	case len(silent) > 0:
		out.Pending = fmt.Sprintf("members %v have not reported yet (do they reach Ganger's API?)", silent)
	case epoch == 0:
		out.Pending = "bootstrap: waiting for the members to start"
	case r.c.Damping():
		out.Pending = fmt.Sprintf("a change is being damped into epoch %d", epoch+1)
	case len(waiting) > 0:
		out.Pending = fmt.Sprintf("epoch %d: members %v have not applied it yet", epoch, waiting)
	case len(out.Members) != out.Size:
		out.Pending = fmt.Sprintf("scaling from %d to %d, one member at a time", len(out.Members), out.Size)
	}
	return out, nil
}

type viewReport struct {
	state, reason string
	procs         []view.Process
}

// depsOf is how each dependency of spec stands.
func (m *Manager) depsOf(spec cluster.Spec) []view.ClusterDep {
	var out []view.ClusterDep
	for _, d := range spec.DependsOn {
		vd := view.ClusterDep{Cluster: d.Cluster, MinReady: d.MinReady}
		if o := m.runs[d.Cluster]; o != nil {
			vd.Ready = o.readyCount()
		}
		out = append(out, vd)
	}
	return out
}

func (r *run) readyCount() int {
	if r.c == nil {
		return 0
	}
	n := 0
	for _, mem := range r.c.Members() {
		if mem.State == cluster.Running && mem.Ready {
			n++
		}
	}
	return n
}

// Statuses are every cluster's, by name.
func (m *Manager) Statuses() []view.Cluster {
	var out []view.Cluster
	for _, name := range m.Names() {
		if s, err := m.Status(name); err == nil {
			out = append(out, s)
		}
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
