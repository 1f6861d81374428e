// Command exfilguard is an explicit forward proxy that lets each server
// reach only the outbound HTTP and HTTPS destinations its policy allows.
//
// Usage:
//
//	exfilguard [--config PATH] [--ca-dir DIR]     run the proxy
//	exfilguard check [--config PATH] [--ca-dir DIR]
//	exfilguard explain [--config PATH] --client IP [--method M] [--json] TARGET
//	exfilguard --version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"exfilguard/conf"
)

// version is stamped by the Makefile (-ldflags "-X main.version=...").
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runProxy(args, stdout, stderr)
	case "check":
		return runCheck(args, stdout, stderr)
	case "explain":
		return runExplain(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "exfilguard", versionString())
		return 0
	}
	fmt.Fprintf(stderr, "exfilguard: unknown command %q (commands: check, explain; run without a command to start the proxy)\n", cmd)
	return 2
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// configFlags are the flags every command takes.
type configFlags struct {
	config string
	caDir  string
}

func (f *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "main settings `file` (default: "+strings.Join(conf.DefaultPaths, ", then ")+")")
	fs.StringVar(&f.caDir, "ca-dir", "", "CA `directory`, overriding ca_dir")
}

// load finds and loads the configuration.
func (f *configFlags) load() (*conf.Config, error) {
	path := f.config
	if path == "" {
		var err error
		if path, err = conf.FindConfig(); err != nil {
			return nil, err
		}
	}
	return conf.Load(path, conf.Options{Environ: os.Environ(), CADir: f.caDir})
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and reports whether to go on; status is the exit
// status when not.
func parseFlags(fs *flag.FlagSet, args []string) (ok bool, status int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, 0
		}
		return false, 2
	}
	return true, 0
}

func runProxy(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("exfilguard", stderr)
	var cf configFlags
	cf.register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if *showVersion {
		fmt.Fprintln(stdout, "exfilguard", versionString())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "exfilguard: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := cf.load()
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintln(stderr, "exfilguard: configuration is invalid; nothing started")
		return 1
	}
	fmt.Fprintln(stdout, "exfilguard:", summary(cfg))
	fmt.Fprintln(stderr, "exfilguard: the proxy is not yet available in this build: the configuration was loaded and validated, but no listener was started")
	return 1
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("exfilguard check", stderr)
	var cf configFlags
	cf.register(fs)
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "exfilguard check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := cf.load()
	if err != nil {
		n := printProblems(stdout, err)
		fmt.Fprintf(stdout, "%d problem%s found\n", n, plural(n))
		return 1
	}
	fmt.Fprintln(stdout, "configuration OK:", summary(cfg))
	return 0
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "exfilguard explain: not yet available in this build")
	return 1
}

// printProblems writes every problem in err, each as FILE:LINE:COL:
// message followed by the offending line and a caret, and returns how
// many there were.
func printProblems(w io.Writer, err error) int {
	list := conf.Errors(err)
	for _, e := range list {
		fmt.Fprintln(w, e.Error())
		if ex := e.Excerpt(); ex != "" {
			fmt.Fprintln(w, ex)
		}
	}
	return len(list)
}

func summary(cfg *conf.Config) string {
	rules := 0
	for _, p := range cfg.Policies {
		rules += len(p.Rules)
	}
	return fmt.Sprintf("%d client%s, %d polic%s, %d rule%s, %d policy test%s; listen %s",
		len(cfg.Clients), plural(len(cfg.Clients)),
		len(cfg.Policies), map[bool]string{true: "y", false: "ies"}[len(cfg.Policies) == 1],
		rules, plural(rules),
		len(cfg.Tests), plural(len(cfg.Tests)),
		cfg.Settings.Listen)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
