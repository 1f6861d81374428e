//go:build linux

package proxy

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// sinceLastData reports how long ago the kernel last sent or received
// data on c, from tcp_info's tcpi_last_data_sent and tcpi_last_data_recv
// (milliseconds; see tcp(7), TCP_INFO). A spliced tunnel's bytes never
// pass through user space, so this is the only place its activity shows.
func sinceLastData(c *net.TCPConn) (time.Duration, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info syscall.TCPInfo
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil || errno != 0 {
		return 0, false
	}
	ms := min(info.Last_data_sent, info.Last_data_recv)
	return time.Duration(ms) * time.Millisecond, true
}
