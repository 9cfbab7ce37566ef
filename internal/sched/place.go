package sched

// place picks a daemon for one more container of svc, or nil if no daemon
// can take it now. The caller holds s.mu.
func (s *Scheduler) place(svc *service) *daemon {
	if s.maxTotal > 0 && s.total >= s.maxTotal {
		return nil
	}
	if svc.lim.MaxContainers > 0 && svc.used >= svc.lim.MaxContainers {
		return nil
	}
	n := len(s.daemons)
	var best *daemon
	bestAt := 0
	for i := range n {
		at := i
		if svc.lim.Policy == Spread {
			at = (s.rr + i) % n // equals take turns
		}
		d := s.daemons[at]
		if !d.fits(svc.name) {
			continue
		}
		if best == nil || better(svc.lim.Policy, d, best) {
			best, bestAt = d, at
		}
	}
	if best != nil && svc.lim.Policy == Spread {
		s.rr = (bestAt + 1) % n
	}
	return best
}

func (d *daemon) fits(service string) bool {
	return d.up && !d.drained && d.images[service] && d.used+d.others < d.max
}

// better reports whether a beats b under the policy: strictly lower
// utilisation for spread, strictly higher for binpack. Utilisations are
// compared as fractions, without rounding.
func better(p Policy, a, b *daemon) bool {
	ua, ub := (a.used+a.others)*b.max, (b.used+b.others)*a.max
	if p == Binpack {
		return ua > ub
	}
	return ua < ub
}
