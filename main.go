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
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"exfilguard/conf"
	"exfilguard/policy"
	"exfilguard/proxy"
	"exfilguard/proxy/metrics"
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

// load finds, loads and validates the configuration, compiles it and
// runs its policy tests. Every problem is in the returned error.
func (f *configFlags) load() (*conf.Config, *policy.Ruleset, error) {
	return f.loadTests(true)
}

// loadTests is load, running the policy tests only when tests is set.
func (f *configFlags) loadTests(tests bool) (*conf.Config, *policy.Ruleset, error) {
	path := f.config
	if path == "" {
		var err error
		if path, err = conf.FindConfig(); err != nil {
			return nil, nil, err
		}
	}
	cfg, err := conf.Load(path, conf.Options{Environ: os.Environ(), CADir: f.caDir})
	if err != nil {
		return nil, nil, err
	}
	rs, err := policy.Compile(cfg)
	if err != nil {
		return nil, nil, err
	}
	if !tests {
		return cfg, rs, nil
	}
	if err := runPolicyTests(rs, cfg.Tests); err != nil {
		return nil, nil, err
	}
	return cfg, rs, nil
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
	cfg, rs, err := cf.load()
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintln(stderr, "exfilguard: configuration is invalid; nothing started")
		return 1
	}
	if err := serve(cfg, rs, stdout); err != nil {
		fmt.Fprintln(stderr, "exfilguard:", err)
		return 1
	}
	return 0
}

// serve runs the proxy until SIGTERM or SIGINT, reloading clients and
// policies on SIGHUP.
func serve(cfg *conf.Config, rs *policy.Ruleset, stdout io.Writer) error {
	s := &cfg.Settings
	log := newLogger(s.Log, stdout)
	var policies atomic.Pointer[policy.Ruleset]
	policies.Store(rs)

	ln, err := net.Listen("tcp", s.Listen.String())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Listen, err)
	}
	bound, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen on %s: %w", s.Listen, err)
	}
	set := metrics.New(metrics.Options{Version: versionString()})
	set.Loaded(policyInfo(cfg), time.Now())
	listening := []netip.AddrPort{bound}
	var metricsSrv *metrics.Server
	if s.MetricsListen.IsValid() {
		mln, err := net.Listen("tcp", s.MetricsListen.String())
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics_listen on %s: %w", s.MetricsListen, err)
		}
		if metricsSrv, err = metrics.NewServer(set.Handler(), s.MetricsTLSCert, s.MetricsTLSKey, slog.NewLogLogger(log.Handler(), slog.LevelWarn)); err != nil {
			ln.Close()
			mln.Close()
			return fmt.Errorf("metrics TLS: %w", err)
		}
		mbound, _ := netip.ParseAddrPort(mln.Addr().String())
		listening = append(listening, mbound)
		go metricsSrv.Serve(mln)
		defer metricsSrv.Close()
		log.Info("metrics endpoint started", slog.String("address", mbound.String()), slog.Bool("tls", s.MetricsTLSCert != ""))
	}
	srv, err := proxy.New(s, &policies, log, listening, set)
	if err != nil {
		ln.Close()
		return err
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("proxy listener started", slog.String("address", bound.String()), slog.String("version", versionString()), slog.String("summary", summary(cfg)))

	for {
		select {
		case err := <-served:
			srv.Close()
			return fmt.Errorf("serve: %w", err)
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				reload(cfg, &policies, log, set)
				continue
			}
			log.Info("shutting down", slog.String("signal", sig.String()), slog.Duration("grace_period", s.ShutdownGracePeriod))
			ctx, cancel := context.WithTimeout(context.Background(), s.ShutdownGracePeriod)
			go func() {
				// A second signal stops at once.
				select {
				case <-signals:
					srv.Close()
				case <-ctx.Done():
				}
			}()
			err := srv.Shutdown(ctx)
			cancel()
			<-served
			if err != nil {
				log.Warn("shutdown grace period ended; remaining connections closed")
			}
			log.Info("stopped")
			return nil
		}
	}
}

// reload re-reads the clients and policies files (not the main file),
// validates and compiles them and runs their policy tests; only then does
// the new snapshot replace the old one (SPEC §8).
func reload(cfg *conf.Config, policies *atomic.Pointer[policy.Ruleset], log *slog.Logger, set *metrics.Set) {
	log.Info("received SIGHUP; reloading clients and policies")
	next, err := cfg.ReloadPolicies()
	var rs *policy.Ruleset
	if err == nil {
		rs, err = policy.Compile(next)
	}
	if err == nil {
		err = runPolicyTests(rs, next.Tests)
	}
	if err != nil {
		var b strings.Builder
		printProblems(&b, err)
		log.Error("configuration reload failed; the previous policies stay in force", slog.String("problems", strings.TrimSpace(b.String())))
		set.ReloadFailed()
		return
	}
	policies.Store(rs)
	set.Reloaded(policyInfo(next), time.Now())
	log.Info("configuration reloaded", slog.Int("client_count", len(next.Clients)), slog.Int("policy_count", len(next.Policies)))
}

// policyInfo describes the loaded clients and policies for the metrics:
// their names, and a SHA-256 of the files they came from.
func policyInfo(cfg *conf.Config) metrics.Policies {
	h := sha256.New()
	for _, f := range cfg.Files[1:] {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	p := metrics.Policies{Hash: hex.EncodeToString(h.Sum(nil))[:16]}
	for _, c := range cfg.Clients {
		p.Clients = append(p.Clients, c.Name)
	}
	for _, pol := range cfg.Policies {
		p.Policies = append(p.Policies, pol.Name)
		for i := range pol.Rules {
			p.Rules = append(p.Rules, fmt.Sprintf("%s#%d", pol.Name, i))
		}
	}
	return p
}

// runPolicyTests runs the [[test]]s against rs and joins their failures
// into one error, nil when all pass (SPEC §9: startup and reload refuse a
// policy whose tests fail).
func runPolicyTests(rs *policy.Ruleset, tests []conf.Test) error {
	failures := policy.RunTests(rs, tests)
	errs := make([]error, len(failures))
	for i, f := range failures {
		errs[i] = f
	}
	return errors.Join(errs...)
}

// newLogger returns the process logger: JSON or text on stdout.
func newLogger(format conf.LogFormat, w io.Writer) *slog.Logger {
	if format == conf.LogText {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
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
	cfg, _, err := cf.load()
	if err == nil {
		err = checkFiles(&cfg.Settings)
	}
	if err != nil {
		n := printProblems(stdout, err)
		fmt.Fprintf(stdout, "%d problem%s found\n", n, plural(n))
		return 1
	}
	fmt.Fprintln(stdout, "configuration OK:", summary(cfg))
	return 0
}

// flatten lists the errors inside err, however deeply errors.Join nested
// them.
func flatten(err error) []error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		errs = append(errs, flatten(e)...)
	}
	return errs
}

// checkFiles reads the files the settings name the way startup does,
// without writing anything, so that `check` (and the packaged unit's
// reload, which runs it first) catches what would stop the proxy: those
// proxy.New reads, and the metrics TLS pair.
func checkFiles(s *conf.Settings) error {
	err := proxy.CheckFiles(s)
	if s.MetricsTLSCert != "" {
		if _, terr := tls.LoadX509KeyPair(s.MetricsTLSCert, s.MetricsTLSKey); terr != nil {
			err = errors.Join(err, fmt.Errorf("metrics TLS: %w", terr))
		}
	}
	return err
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("exfilguard explain", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: exfilguard explain [--config PATH] --client IP [--method M] [--json] TARGET")
		fmt.Fprintln(stderr, "TARGET is a URL (https://api.example.com/v1/x) or a CONNECT authority (host:port).")
		fs.PrintDefaults()
	}
	var cf configFlags
	cf.register(fs)
	clientFlag := fs.String("client", "", "source `IP` of the request (required)")
	method := fs.String("method", "", "request `method` (default GET; CONNECT for a host:port target)")
	asJSON := fs.Bool("json", false, "print the explanation as JSON")
	// Flags may come before or after TARGET.
	var targets []string
	for {
		if ok, status := parseFlags(fs, args); !ok {
			return status
		}
		if fs.NArg() == 0 {
			break
		}
		targets = append(targets, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(targets) != 1 || *clientFlag == "" {
		fs.Usage()
		return 2
	}
	target := targets[0]
	client, err := netip.ParseAddr(*clientFlag)
	if err != nil {
		fmt.Fprintf(stderr, "exfilguard explain: --client %q is not an IP address\n", *clientFlag)
		return 2
	}
	m := *method
	switch connect := !strings.Contains(target, "://"); {
	case m == "" && connect:
		m = "CONNECT"
	case m == "":
		m = "GET"
	case connect && m != "CONNECT":
		fmt.Fprintf(stderr, "exfilguard explain: %s needs a URL; a host:port target is explained as a CONNECT\n", m)
		return 2
	}
	req, err := policy.NewRequest(client, m, target)
	if err != nil {
		fmt.Fprintf(stderr, "exfilguard explain: %v\n", err)
		return 2
	}
	// Policy tests are not run: explain is how one debugs a failing test.
	_, rs, err := cf.loadTests(false)
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintln(stderr, "exfilguard explain: configuration is invalid")
		return 1
	}
	ex := rs.Explain(req)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(ex)
	} else {
		err = ex.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "exfilguard explain: %v\n", err)
		return 1
	}
	return 0
}

// printProblems writes every problem in err, each as FILE:LINE:COL:
// message, configuration problems followed by the offending line and a
// caret, and returns how many there were.
func printProblems(w io.Writer, err error) int {
	n := 0
	for _, err := range flatten(err) {
		var list conf.ErrorList
		var one *conf.Error
		if !errors.As(err, &list) && !errors.As(err, &one) {
			fmt.Fprintln(w, err)
			n++
			continue
		}
		for _, e := range conf.Errors(err) {
			fmt.Fprintln(w, e.Error())
			if ex := e.Excerpt(); ex != "" {
				fmt.Fprintln(w, ex)
			}
			n++
		}
	}
	return n
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
