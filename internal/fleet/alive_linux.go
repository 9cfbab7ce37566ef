package fleet

import (
	"net"

	"golang.org/x/sys/unix"
)

// alive reports whether c is open: not closed or reset by its peer. It
// peeks without blocking and without consuming what is buffered (a banner
// the service sent stays for the client).
func alive(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		ok = n > 0 || err == unix.EAGAIN
		return true
	})
	return ok
}
