package loadtest

import (
	"os"
	"syscall"
)

// growPipe enlarges the pipe of f to 1 MiB (F_SETPIPE_SZ, fcntl(2)). The
// proxy writes a decision record per request to its stdout, this pipe,
// and the write blocks while the pipe is full: with the default 64 KiB a
// moment's delay of the test's reader stalls every request in the proxy,
// which would then be counted against it.
func growPipe(f *os.File) {
	const setPipeSize = 1031 // F_SETPIPE_SZ
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.Syscall(syscall.SYS_FCNTL, fd, setPipeSize, 1<<20)
	})
}
