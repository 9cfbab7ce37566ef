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
