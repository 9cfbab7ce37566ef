package server

import "golang.org/x/sys/unix"

// fileReserve is how many descriptors the connection cap leaves for the
// API, the daemons' clients, listeners and logs.
const fileReserve = 128

// RaiseFileLimit raises the soft open-file limit to the hard one and
// returns the limit in force.
func RaiseFileLimit() (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
			return l.Cur, err
		}
	}
	return l.Cur, nil
}

// DefaultMaxConnections derives the connection cap from the open-file
// limit: a session holds two descriptors (client and container), and a
// reserve stays free so that the API and the daemons' clients still work
// when every slot is taken.
func DefaultMaxConnections() int {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 100_000
	}
	reserve := max(fileReserve, int(l.Cur)/8)
	return max(int(l.Cur)-reserve, 16) / 2
}
