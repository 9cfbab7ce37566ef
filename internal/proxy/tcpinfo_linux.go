package proxy

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// sinceLastData is how long ago c last received data, from TCP_INFO. It
// counts from the connection's start when nothing has been received yet.
func sinceLastData(c *net.TCPConn) (time.Duration, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	err = raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return time.Duration(info.Last_data_recv) * time.Millisecond, nil
}

// Counts returns the bytes c has received and the bytes it has sent that
// its peer acknowledged, from TCP_INFO: a live session's traffic so far,
// without counting in the copy loops.
func Counts(c *net.TCPConn) (in, out int64) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0
	}
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			in, out = int64(info.Bytes_received), int64(info.Bytes_acked)
		}
	})
	return in, out
}
