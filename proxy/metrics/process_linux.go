//go:build linux

package metrics

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// userHZ is the unit of the times in /proc/self/stat. sysconf(_SC_CLK_TCK)
// is 100 on every architecture Linux and Go share, and cannot be read
// without cgo; prometheus/procfs makes the same assumption.
const userHZ = 100

// processFamilies returns the conventional process_* families, read from
// /proc/self at scrape time.
func processFamilies() []Collector {
	return []Collector{
		newProcFamily(typeCounter, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
			func() (float64, error) {
				f, err := readStat()
				if err != nil {
					return 0, err
				}
				return float64(f.utime+f.stime) / userHZ, nil
			}),
		newProcFamily(typeGauge, "process_max_fds", "Maximum number of open file descriptors.",
			func() (float64, error) {
				var rl syscall.Rlimit
				if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
					return 0, err
				}
				return float64(rl.Cur), nil
			}),
		newProcFamily(typeGauge, "process_open_fds", "Number of open file descriptors.",
			func() (float64, error) {
				d, err := os.Open("/proc/self/fd")
				if err != nil {
					return 0, err
				}
				defer d.Close()
				names, err := d.Readdirnames(-1)
				// The count includes d's own descriptor, as procfs's does.
				return float64(len(names)), err
			}),
		newProcFamily(typeGauge, "process_resident_memory_bytes", "Resident memory size in bytes.",
			func() (float64, error) {
				f, err := readStat()
				if err != nil {
					return 0, err
				}
				return float64(f.rss * uint64(os.Getpagesize())), nil
			}),
		newProcFamily(typeGauge, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
			startTime),
	}
}

// startTime does not change, so it is read once.
var startTime = sync.OnceValues(func() (float64, error) {
	f, err := readStat()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	_, rest, ok := bytes.Cut(b, []byte("\nbtime "))
	if !ok {
		return 0, errors.New("read /proc/stat: no btime")
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	boot, err := strconv.ParseUint(string(line), 10, 64)
	if err != nil {
		return 0, err
	}
	return float64(boot) + float64(f.starttime)/userHZ, nil
})

// stat is what is used of /proc/self/stat (proc_pid_stat(5)).
type stat struct {
	utime, stime uint64 // fields 14 and 15, in clock ticks
	starttime    uint64 // field 22, clock ticks after boot
	rss          uint64 // field 24, pages
}

func readStat() (stat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return stat{}, err
	}
	// Field 2, the command name, is in parentheses and may hold spaces
	// and parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errors.New("read /proc/self/stat: no command name")
	}
	fields := bytes.Fields(b[i+1:]) // fields[0] is field 3
	field := func(n int) uint64 {
		if n-3 >= len(fields) {
			err = errors.New("read /proc/self/stat: too few fields")
			return 0
		}
		v, perr := strconv.ParseUint(string(fields[n-3]), 10, 64)
		if perr != nil {
			err = perr
		}
		return v
	}
	s := stat{utime: field(14), stime: field(15), starttime: field(22), rss: field(24)}
	return s, err
}
