package proxy

import (
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// copyAvail copies src to dst until EOF or an error, like io.Copy, but
// holds nothing while src is idle. It parks until src is readable (without
// reading), then moves exactly the bytes queued in the socket with one
// ReadFrom of that length, which Linux does with splice(2). io.Copy would
// keep a splice pipe (two descriptors) for the connection's whole life; an
// idle proxied connection here costs its two sockets and nothing more.
func copyAvail(dst, src *net.TCPConn) (int64, error) {
	raw, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		queued, err := waitQueued(raw)
		if err != nil {
			return total, err
		}
		if queued == 0 { // readable with nothing queued: EOF, or an error
			var b [1]byte
			n, err := src.Read(b[:])
			if n > 0 { // data arrived after all
				if _, werr := dst.Write(b[:n]); werr != nil {
					return total, werr
				}
				total += int64(n)
				continue
			}
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(queued)})
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 { // EOF within ReadFrom
			return total, nil
		}
	}
}

// waitQueued waits until the socket is readable and returns how many bytes
// are queued: 0 at EOF. A socket error (a reset) is returned as such: the
// kernel reports it once, and the peek is where it is seen.
func waitQueued(raw interface {
	Read(func(fd uintptr) bool) error
}) (int, error) {
	queued := 0
	var peekErr error
	err := raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false // not readable yet: park on the poller
		case err != nil:
			peekErr = err
		case n > 0:
			queued, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			queued = max(queued, 1)
		}
		return true
	})
	if err == nil {
		err = peekErr
	}
	return queued, err
}
