package proxy

import (
	"io"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// chunk is the most one read moves through user space. What arrives in
// one go (a request, a reply) is read and written with two system calls;
// past a chunk, the rest of what is queued is moved with splice(2).
const chunk = 16 << 10

var chunks = sync.Pool{New: func() any { return new([chunk]byte) }}

// copyAvail copies src to dst until EOF or an error, like io.Copy, but
// holds nothing while src is idle: it parks on the poller until src is
// readable and only then takes a buffer from a pool, reads what is there,
// writes it and gives the buffer back. A read that fills the buffer is the
// sign of a bulk transfer: the bytes then still queued are moved with one
// ReadFrom of that length, which Linux does with splice(2), never entering
// user space. io.Copy would keep a splice pipe (two descriptors) for the
// connection's whole life; an idle proxied connection here costs its two
// sockets and nothing more.
//
// first, if not nil, is called after the first bytes are written.
func copyAvail(dst, src *net.TCPConn, first func()) (int64, error) {
	raw, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		buf, n, err := readReady(raw)
		if n > 0 {
			_, werr := dst.Write(buf[:n])
			total += int64(n)
			chunks.Put(buf)
			if first != nil {
				first()
				first = nil
			}
			if werr != nil {
				return total, werr
			}
		} else if buf != nil {
			chunks.Put(buf)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if n < chunk {
			continue
		}
		queued, err := inq(raw)
		if err != nil || queued == 0 {
			continue // the next read reports what is wrong, or waits
		}
		m, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(queued)})
		total += m
		if err != nil {
			return total, err
		}
	}
}

// readReady waits until the socket is readable, then reads once into a
// pooled buffer: n > 0 bytes, or io.EOF, or the socket's error (a reset:
// the kernel reports it once, and this read is where it is seen).
func readReady(raw interface {
	Read(func(fd uintptr) bool) error
}) (*[chunk]byte, int, error) {
	var buf *[chunk]byte
	var n int
	var rerr error
	err := raw.Read(func(fd uintptr) bool {
		b := chunks.Get().(*[chunk]byte)
		m, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			chunks.Put(b)
			return false // not readable yet: park on the poller
		case err != nil:
			chunks.Put(b)
			rerr = err
		case m == 0:
			chunks.Put(b)
			rerr = io.EOF
		default:
			buf, n = b, m
		}
		return true
	})
	if err != nil {
		if buf != nil {
			chunks.Put(buf)
		}
		return nil, 0, err
	}
	return buf, n, rerr
}

// inq returns how many bytes are queued on the socket.
func inq(raw interface {
	Control(func(fd uintptr)) error
}) (int, error) {
	var n int
	var ierr error
	err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	if err == nil {
		err = ierr
	}
	return n, err
}

// AwaitData waits, reading nothing, until the client has sent something
// (nil), closed its side (io.EOF) or failed (its error; a read deadline
// that passes gives os.ErrDeadlineExceeded). What it sent stays queued in
// the socket for the proxy.
func AwaitData(c *net.TCPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false // nothing yet: park on the poller
		case err != nil:
			perr = err
		case n == 0:
			perr = io.EOF
		}
		return true
	})
	if err != nil {
		return err
	}
	return perr
}
