package session

import "sync"

// Slots caps the containers on one daemon (its max_containers). A slot is
// held from before a container is created until after it is removed, so the
// cap counts every container that may exist. Services on the same daemon
// share one Slots.
type Slots struct {
	mu   sync.Mutex
	used int
	max  int
}

// NewSlots returns a cap of max containers.
func NewSlots(max int) *Slots { return &Slots{max: max} }

// TryAcquire takes a slot if one is free.
func (s *Slots) TryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used >= s.max {
		return false
	}
	s.used++
	return true
}

// Release frees a slot.
func (s *Slots) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
}

// Used is how many slots are taken.
func (s *Slots) Used() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}
