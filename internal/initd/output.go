package initd

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"
)

// maxLine is the longest line passed on whole; a longer one is cut, with
// cutMarker, and the rest of it dropped.
const (
	maxLine   = 16 << 10
	cutMarker = " [ganger-init: line cut]"
	ringLines = 1000
)

// sink is one of ganger-init's own outputs (stdout or stderr): each line
// is written with one Write, under a lock, so lines of different
// processes never tear each other.
type sink struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (s *sink) line(name, stream, text string) {
	var b []byte
	if s.json {
		b, _ = json.Marshal(struct {
			Time    string `json:"time"`
			Process string `json:"process"`
			Stream  string `json:"stream"`
			Line    string `json:"line"`
		}{time.Now().UTC().Format(time.RFC3339Nano), name, stream, text})
		b = append(b, '\n')
	} else {
		b = make([]byte, 0, len(name)+len(text)+4)
		b = append(b, '[')
		b = append(b, name...)
		b = append(b, "] "...)
		b = append(b, text...)
		b = append(b, '\n')
	}
	s.mu.Lock()
	s.w.Write(b) // a reader gone (a closed pipe) must not stop the process
	s.mu.Unlock()
}

// ring keeps a process's last lines for the control interface.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lines == nil {
		r.lines = make([]string, ringLines)
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % ringLines
	if r.next == 0 {
		r.full = true
	}
}

// last returns up to n of the last lines, oldest first.
func (r *ring) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if n > 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// pump reads lines from r until EOF and passes each to out and to the
// ring; a line longer than maxLine is cut with a marker.
func pump(r io.Reader, out *sink, name, stream string, keep *ring) {
	br := bufio.NewReaderSize(r, maxLine)
	cut := false
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !cut {
				text := string(b) + cutMarker
				out.line(name, stream, text)
				keep.add(text)
			}
			cut = true
			continue
		case len(b) > 0 && !cut:
			text := string(trimEOL(b))
			out.line(name, stream, text)
			keep.add(text)
		}
		cut = false
		if err != nil {
			return
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
