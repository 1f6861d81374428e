package loadtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

var (
	loadDuration = flag.Duration("load", 0, "run TestLoad for this long (0: a short smoke run)")
	loadConns    = flag.Int("load.concurrency", 48, "client connections of TestLoad and TestSoak")
	loadMix      = flag.String("load.mix", defaultMix, "workloads and their weights: "+defaultMix)
	soakDuration = flag.Duration("soak", 0, "run TestSoak for this long (0: skip it)")
	full         = flag.Bool("full", false, "run the abuse tests in their full form (make soak)")
)

// raceEnv names the variable that builds the binary with -race.
const raceEnv = "EXFILGUARD_LOADTEST_RACE"

// binary is the exfilguard binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if spec := os.Getenv(stormEnv); spec != "" {
		// This process is TestMintStorm's attacker, not a test run.
		os.Exit(runStorm(spec))
	}
	if runtime.GOOS != "linux" {
		// Every test reads /proc/<pid>; there is nothing to build for.
		fmt.Println("loadtest: skipped, needs Linux")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "exfilguard-load-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "exfilguard")
	// Built without -race whatever the test binary is: the figures must
	// be those of the binary users run. EXFILGUARD_LOADTEST_RACE=1 builds
	// it with the race detector, to look for races under load; a report
	// on its stderr then fails the test that ran it.
	args := []string{"build", "-o", binary}
	if os.Getenv(raceEnv) == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "exfilguard")...)
	build.Env = os.Environ()
	if os.Getenv(raceEnv) != "1" {
		build.Env = append(build.Env, "CGO_ENABLED=0")
	}
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// scaled returns short in the default (make test) form and long under
// -full.
func scaled[T any](short, long T) T {
	if *full {
		return long
	}
	return short
}

// seconds formats a duration as whole seconds for a settings file.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }
