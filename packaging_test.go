package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"exfilguard/conf"
)

// The packaging: the static binary make builds, the .deb that make deb
// builds (inspected with dpkg-deb), its maintainer scripts and systemd
// unit, the configuration it installs, and the Dockerfile. Tests that need
// a tool the machine lacks skip, so that `make test` passes with Go alone.

// needTool returns the path of a command, skipping the test without it.
func needTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Skipf("%s is not installed", name)
	}
	return path
}

// command runs name with args and returns its standard output, failing
// the test on a non-zero exit.
func command(tb testing.TB, env []string, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// runMake runs make in the repository as a user would. Under `make test`
// the outer make's MAKEFLAGS and MAKELEVEL would make the inner one print
// "Entering directory" lines into the output the tests read.
func runMake(tb testing.TB, args ...string) string {
	tb.Helper()
	return command(tb, []string{"MAKEFLAGS=", "MAKELEVEL="}, "make", append([]string{"--no-print-directory"}, args...)...)
}

// TestStaticBinary: `make build` makes a static binary without cgo,
// stamped with the version.
func TestStaticBinary(t *testing.T) {
	needTool(t, "make")
	bin := filepath.Join(t.TempDir(), "exfilguard")
	runMake(t, "build", "BIN="+bin, "VERSION=v9.8.7-test")
	info := command(t, nil, "go", "version", "-m", bin)
	for _, want := range []string{"build\tCGO_ENABLED=0\n", "build\t-trimpath=true\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("go version -m %s lacks %q:\n%s", bin, strings.TrimSpace(want), info)
		}
	}
	if out := command(t, nil, bin, "--version"); out != "exfilguard v9.8.7-test\n" {
		t.Errorf("--version = %q", out)
	}
	if runtime.GOOS == "linux" {
		if _, err := exec.LookPath("file"); err == nil {
			if out := command(t, nil, "file", "-b", bin); !strings.Contains(out, "statically linked") {
				t.Errorf("file %s: %s, want statically linked", bin, out)
			}
		}
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("make build: %d bytes (%.1f MiB)", fi.Size(), float64(fi.Size())/(1<<20))
}

// debArch is the Debian architecture of this machine, for the packages
// the tests build.
func debArch(tb testing.TB) string {
	tb.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		tb.Skipf("no Debian package for GOARCH %s", runtime.GOARCH)
	}
	return runtime.GOARCH
}

// TestDebPackage builds the package with `make deb` and inspects it with
// dpkg-deb: its control fields and conffiles, every file with its mode and
// owner, its maintainer scripts, and the configuration it installs, which
// the packaged binary must accept.
func TestDebPackage(t *testing.T) {
	needTool(t, "dpkg-deb")
	needTool(t, "make")
	arch := debArch(t)
	dist := t.TempDir()
	out := runMake(t, "deb", "DIST="+dist, "VERSION=v1.2.3", "ARCH="+arch)
	deb := filepath.Join(dist, "exfilguard_1.2.3_"+arch+".deb")
	if !strings.HasSuffix(out, deb+"\n") {
		t.Fatalf("make deb printed\n%s\nwant it to end with the package path %s", out, deb)
	}

	t.Run("control", func(t *testing.T) {
		fields := map[string]string{
			"Package":      "exfilguard",
			"Version":      "1.2.3",
			"Architecture": arch,
			"Depends":      "adduser, ca-certificates",
			"Section":      "net",
			"Priority":     "optional",
		}
		for name, want := range fields {
			if got := strings.TrimSpace(command(t, nil, "dpkg-deb", "--field", deb, name)); got != want {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
		info := command(t, nil, "dpkg-deb", "--info", deb)
		for _, member := range []string{"control", "conffiles", "postinst", "prerm", "postrm"} {
			if !regexp.MustCompile(`(?m)^ +\d+ bytes, +\d+ lines +\*? *` + member + `\b`).MatchString(info) {
				t.Errorf("dpkg-deb --info lacks the %s member:\n%s", member, info)
			}
		}
		conffiles := command(t, nil, "dpkg-deb", "--info", deb, "conffiles")
		want := "/etc/exfilguard/exfilguard.toml\n/etc/exfilguard/clients.toml\n/etc/exfilguard/policies.toml\n"
		if conffiles != want {
			t.Errorf("conffiles:\n%s\nwant:\n%s", conffiles, want)
		}
	})

	t.Run("contents", func(t *testing.T) {
		want := map[string]string{
			"./":                               "drwxr-xr-x",
			"./etc/":                           "drwxr-xr-x",
			"./etc/exfilguard/":                "drwxr-x---",
			"./etc/exfilguard/clients.d/":      "drwxr-x---",
			"./etc/exfilguard/policies.d/":     "drwxr-x---",
			"./etc/exfilguard/exfilguard.toml": "-rw-r-----",
			"./etc/exfilguard/clients.toml":    "-rw-r-----",
			"./etc/exfilguard/policies.toml":   "-rw-r-----",
			"./usr/":                           "drwxr-xr-x",
			"./usr/lib/":                       "drwxr-xr-x",
			"./usr/lib/systemd/":               "drwxr-xr-x",
			"./usr/lib/systemd/system/":        "drwxr-xr-x",
			"./usr/lib/systemd/system/exfilguard.service": "-rw-r--r--",
			"./usr/sbin/":                          "drwxr-xr-x",
			"./usr/sbin/exfilguard":                "-rwxr-xr-x",
			"./usr/share/":                         "drwxr-xr-x",
			"./usr/share/doc/":                     "drwxr-xr-x",
			"./usr/share/doc/exfilguard/":          "drwxr-xr-x",
			"./usr/share/doc/exfilguard/README.md": "-rw-r--r--",
			"./usr/share/doc/exfilguard/copyright": "-rw-r--r--",
		}
		docs, _ := filepath.Glob("docs/*.md")
		for _, d := range docs {
			want["./usr/share/doc/exfilguard/"+filepath.Base(d)] = "-rw-r--r--"
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(command(t, nil, "dpkg-deb", "--contents", deb)), "\n") {
			// drwxr-xr-x root/root         0 2026-11-26 12:00 ./etc/
			f := strings.Fields(line)
			if len(f) != 6 {
				t.Errorf("unexpected --contents line %q", line)
				continue
			}
			if f[1] != "root/root" {
				t.Errorf("%s is owned by %s, want root/root", f[5], f[1])
			}
			got[f[5]] = f[0]
		}
		if !reflect.DeepEqual(got, want) {
			for path, mode := range got {
				if want[path] != mode {
					t.Errorf("package has %s %s, want %q", mode, path, want[path])
				}
			}
			for path, mode := range want {
				if _, ok := got[path]; !ok {
					t.Errorf("package lacks %s %s", mode, path)
				}
			}
		}
	})

	t.Run("maintainer scripts", func(t *testing.T) {
		ctrl := t.TempDir() + "/DEBIAN"
		command(t, nil, "dpkg-deb", "--control", deb, ctrl)
		for _, name := range []string{"postinst", "prerm", "postrm"} {
			fi, err := os.Stat(filepath.Join(ctrl, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s mode %04o, want 0755", name, fi.Mode().Perm())
			}
			command(t, nil, "sh", "-n", filepath.Join(ctrl, name))
		}
	})

	t.Run("installed configuration", func(t *testing.T) {
		root := t.TempDir()
		command(t, nil, "dpkg-deb", "--extract", deb, root)
		// /var/lib/exfilguard does not exist here: the CA goes elsewhere.
		stdout, stderr, code := exfilguardAt(t, filepath.Join(root, "usr/sbin/exfilguard"),
			"check", "--config", filepath.Join(root, "etc/exfilguard/exfilguard.toml"), "--ca-dir", filepath.Join(t.TempDir(), "ca"))
		want := "configuration OK: 1 client, 1 policy, 1 rule, 2 policy tests; listen 0.0.0.0:3128\n"
		if code != 0 || stdout != want {
			t.Errorf("packaged check = %d\n%s%s\nwant 0 and %q", code, stdout, stderr, want)
		}
		for _, d := range append([]string{"README.md"}, mustGlob(t, "docs/*.md")...) {
			packaged, err := os.ReadFile(filepath.Join(root, "usr/share/doc/exfilguard", filepath.Base(d)))
			if err != nil {
				t.Fatal(err)
			}
			if current, _ := os.ReadFile(d); !bytes.Equal(packaged, current) {
				t.Errorf("the packaged %s differs from %s", filepath.Base(d), d)
			}
		}
	})
}

func mustGlob(tb testing.TB, pattern string) []string {
	tb.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		tb.Fatalf("glob %s: %v %v", pattern, m, err)
	}
	return m
}

// exfilguardAt runs the binary at path, like exfilguard runs the test's.
func exfilguardAt(tb testing.TB, path string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	saved := binary
	binary = path
	defer func() { binary = saved }()
	return exfilguard(tb, nil, args...)
}

// TestDebVersions: the package version comes from git describe, made a
// valid Debian version, and a binary for another architecture is refused.
func TestDebVersions(t *testing.T) {
	needTool(t, "dpkg-deb")
	arch := debArch(t)
	// The ELF header is all build.sh reads of the binary; a package of it
	// builds in a moment.
	elf := make([]byte, 4096)
	f, err := os.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	f.Read(elf)
	f.Close()
	head := filepath.Join(t.TempDir(), "exfilguard")
	if err := os.WriteFile(head, elf, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ version, deb string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4+gabc1234+dirty"},
		{"6b64936-dirty", "0.0.0~git6b64936+dirty"},
		{"abcdef0", "0.0.0~gitabcdef0"},
	} {
		t.Run(tt.version, func(t *testing.T) {
			dist := t.TempDir()
			out := command(t, nil, "packaging/deb/build.sh", head, tt.version, arch, dist)
			want := filepath.Join(dist, "exfilguard_"+tt.deb+"_"+arch+".deb")
			if out != want+"\n" {
				t.Fatalf("build.sh printed %q, want %q", out, want)
			}
			if got := strings.TrimSpace(command(t, nil, "dpkg-deb", "--field", want, "Version")); got != tt.deb {
				t.Errorf("Version %q, want %q", got, tt.deb)
			}
		})
	}
	t.Run("wrong architecture", func(t *testing.T) {
		other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[arch]
		cmd := exec.Command("packaging/deb/build.sh", head, "1.0", other, t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "is not a linux/"+other+" executable") {
			t.Errorf("build.sh with a %s binary as %s: %v\n%s", arch, other, err, out)
		}
	})
}

// TestDebMaintainerScripts runs postinst, prerm and postrm as dpkg would,
// in a scratch root (DPKG_ROOT) with adduser, deluser, delgroup, getent,
// chown and systemctl replaced by stubs that record their arguments, and
// checks what they did to the file system and which commands they ran.
func TestDebMaintainerScripts(t *testing.T) {
	root := t.TempDir()
	stubs := t.TempDir()
	callLog := filepath.Join(t.TempDir(), "calls")
	for _, name := range []string{"adduser", "deluser", "delgroup", "chown", "systemctl", "getent"} {
		// getent finds the user only when GETENT_FOUND is set.
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s\n", name, callLog)
		if name == "getent" {
			script += "[ -n \"$GETENT_FOUND\" ]\n"
		}
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// What dpkg unpacked, plus a file an administrator added and the link
	// `systemctl enable` made.
	etc := filepath.Join(root, "etc/exfilguard")
	for _, f := range []string{"exfilguard.toml", "clients.toml", "policies.toml", "clients.d/10-app.toml"} {
		os.MkdirAll(filepath.Dir(filepath.Join(etc, f)), 0o755)
		os.WriteFile(filepath.Join(etc, f), []byte("# x\n"), 0o644)
	}
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/exfilguard.service")
	os.MkdirAll(filepath.Dir(wants), 0o755)
	os.Symlink("/usr/lib/systemd/system/exfilguard.service", wants)
	os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755) // systemd is running

	run := func(t *testing.T, found bool, script string, args ...string) (calls []string, err error) {
		t.Helper()
		os.Remove(callLog)
		cmd := exec.Command("sh", append([]string{filepath.Join("packaging/deb", script)}, args...)...)
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root, "PATH="+stubs+string(os.PathListSeparator)+os.Getenv("PATH"), "GETENT_FOUND=")
		if found {
			cmd.Env = append(cmd.Env, "GETENT_FOUND=1")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("%s %v: %v\n%s", script, args, err, out)
		}
		b, _ := os.ReadFile(callLog)
		calls = strings.Split(strings.TrimSpace(strings.ReplaceAll(string(b), root, "$DPKG_ROOT")), "\n")
		if len(b) == 0 {
			calls = nil
		}
		return calls, err
	}
	mode := func(t *testing.T, rel string, want fs.FileMode) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %04o, want %04o", rel, fi.Mode().Perm(), want)
		}
	}
	expectCalls := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("commands run:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}

	t.Run("postinst configure, first install", func(t *testing.T) {
		calls, err := run(t, false, "postinst", "configure", "")
		if err != nil {
			t.Fatal(err)
		}
		expectCalls(t, calls,
			"getent passwd exfilguard",
			"adduser --system --group --home /var/lib/exfilguard --no-create-home --shell /usr/sbin/nologin exfilguard",
			"chown exfilguard:exfilguard $DPKG_ROOT/var/lib/exfilguard $DPKG_ROOT/var/lib/exfilguard/ca $DPKG_ROOT/var/lib/exfilguard/certs",
			"chown root:exfilguard $DPKG_ROOT/etc/exfilguard $DPKG_ROOT/etc/exfilguard/clients.d $DPKG_ROOT/etc/exfilguard/policies.d",
			"chown root:exfilguard $DPKG_ROOT/etc/exfilguard/clients.toml",
			"chown root:exfilguard $DPKG_ROOT/etc/exfilguard/exfilguard.toml",
			"chown root:exfilguard $DPKG_ROOT/etc/exfilguard/policies.toml",
			"chown root:exfilguard $DPKG_ROOT/etc/exfilguard/clients.d/10-app.toml",
			"systemctl daemon-reload",
		)
		for _, d := range []string{"var/lib/exfilguard", "var/lib/exfilguard/ca", "var/lib/exfilguard/certs"} {
			mode(t, d, 0o700)
		}
		for _, d := range []string{"etc/exfilguard", "etc/exfilguard/clients.d", "etc/exfilguard/policies.d"} {
			mode(t, d, 0o750)
		}
		for _, f := range []string{"exfilguard.toml", "clients.toml", "policies.toml", "clients.d/10-app.toml"} {
			mode(t, "etc/exfilguard/"+f, 0o640)
		}
	})
	t.Run("postinst configure, upgrade", func(t *testing.T) {
		// An administrator's own mode is kept on upgrade.
		own := filepath.Join(etc, "clients.d/10-app.toml")
		if err := os.Chmod(own, 0o600); err != nil {
			t.Fatal(err)
		}
		calls, err := run(t, true, "postinst", "configure", "1.2.2")
		if err != nil {
			t.Fatal(err)
		}
		mode(t, "etc/exfilguard/clients.d/10-app.toml", 0o600)
		if slices.ContainsFunc(calls, func(c string) bool { return strings.Contains(c, "/etc/exfilguard") }) {
			t.Errorf("an upgrade changed the configuration's ownership: %q", calls)
		}
		if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "adduser") }) {
			t.Errorf("adduser ran although the user exists: %q", calls)
		}
		if !slices.Contains(calls, "systemctl try-restart exfilguard.service") {
			t.Errorf("an upgrade does not restart a running service: %q", calls)
		}
	})
	t.Run("prerm upgrade keeps the service running", func(t *testing.T) {
		calls, err := run(t, true, "prerm", "upgrade", "1.2.4")
		if err != nil || calls != nil {
			t.Errorf("prerm upgrade: %v, ran %q", err, calls)
		}
	})
	t.Run("prerm remove stops the service", func(t *testing.T) {
		calls, err := run(t, true, "prerm", "remove")
		if err != nil {
			t.Fatal(err)
		}
		expectCalls(t, calls, "systemctl stop exfilguard.service")
	})
	t.Run("postrm remove keeps the state", func(t *testing.T) {
		calls, err := run(t, true, "postrm", "remove")
		if err != nil {
			t.Fatal(err)
		}
		expectCalls(t, calls, "systemctl daemon-reload", "systemctl reset-failed exfilguard.service")
		mode(t, "var/lib/exfilguard/ca", 0o700)
	})
	t.Run("postrm purge deletes the state and the user", func(t *testing.T) {
		calls, err := run(t, true, "postrm", "purge")
		if err != nil {
			t.Fatal(err)
		}
		expectCalls(t, calls,
			"systemctl daemon-reload",
			"systemctl reset-failed exfilguard.service",
			"getent passwd exfilguard",
			"deluser --system --quiet exfilguard",
			"getent group exfilguard",
			"delgroup --system --quiet exfilguard",
		)
		for _, gone := range []string{"var/lib/exfilguard", wants} {
			if _, err := os.Lstat(filepath.Join(root, strings.TrimPrefix(gone, root))); err == nil {
				t.Errorf("%s survived the purge", gone)
			}
		}
		mode(t, "etc/exfilguard/clients.d/10-app.toml", 0o600) // the administrator's file stays, as the upgrade left it
	})
	t.Run("without systemd", func(t *testing.T) {
		os.RemoveAll(filepath.Join(root, "run/systemd"))
		calls, err := run(t, true, "postinst", "configure", "1.2.2")
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "systemctl") }) {
			t.Errorf("systemctl ran without systemd: %q", calls)
		}
	})
	t.Run("unknown argument", func(t *testing.T) {
		for _, script := range []string{"postinst", "prerm", "postrm"} {
			if _, err := run(t, true, script, "frobnicate"); err == nil {
				t.Errorf("%s frobnicate succeeded", script)
			}
		}
	})
}

// unitDirectives are the systemd unit lines the packaging issue asks for.
var unitDirectives = []string{
	"User=exfilguard",
	"ExecStartPre=/usr/sbin/exfilguard check --config /etc/exfilguard/exfilguard.toml",
	"ExecStart=/usr/sbin/exfilguard --config /etc/exfilguard/exfilguard.toml",
	"ExecReload=/bin/kill -HUP $MAINPID",
	"ProtectSystem=strict",
	"ReadWritePaths=/var/lib/exfilguard",
	"ProtectHome=yes",
	"PrivateTmp=yes",
	"PrivateDevices=yes",
	"NoNewPrivileges=yes",
	"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
	// AF_NETLINK beyond the list: net.InterfaceAddrs needs it for
	// a wildcard listen address (see the unit's comment).
	"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
	"SystemCallFilter=@system-service",
	"MemoryDenyWriteExecute=yes",
	"LimitNOFILE=1048576",
}

// TestSystemdUnit checks the unit's directives and, when systemd-analyze
// is installed, that systemd accepts every line of it.
func TestSystemdUnit(t *testing.T) {
	unit := readDoc(t, "packaging/deb/exfilguard.service")
	lines := strings.Split(unit, "\n")
	for _, d := range unitDirectives {
		if !slices.Contains(lines, d) {
			t.Errorf("the unit lacks the line %s", d)
		}
	}

	// verify returns what systemd-analyze says about the lines of a copy
	// of the unit whose /usr/sbin/exfilguard is the test binary (verify
	// wants the executables to exist). systemd reports a bad value or an
	// unknown key only at debug level and still exits 0, so every line
	// that names the unit file is a finding, except the syscalls of the
	// @system-service set that this machine's libseccomp does not know.
	verify := func(t *testing.T, unit string) (findings []string, err error) {
		needTool(t, "systemd-analyze")
		path := filepath.Join(t.TempDir(), "exfilguard.service")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/sbin/exfilguard", binary)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", path)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=debug", "SYSTEMD_LOG_TARGET=console")
		out, err := cmd.CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, path+":") && !strings.Contains(line, "Failed to parse system call") {
				findings = append(findings, line)
			}
		}
		if err != nil {
			findings = append(findings, fmt.Sprintf("exit: %v\n%s", err, out))
		}
		return findings, err
	}
	t.Run("systemd-analyze verify", func(t *testing.T) {
		if findings, _ := verify(t, unit); len(findings) > 0 {
			t.Errorf("systemd-analyze verify:\n%s", strings.Join(findings, "\n"))
		}
	})
	t.Run("systemd-analyze finds a bad line", func(t *testing.T) {
		// So that a silent verify above means something on this systemd.
		bad := strings.Replace(unit, "ProtectSystem=strict", "ProtectSystem=bogus", 1)
		if findings, _ := verify(t, bad); len(findings) == 0 {
			t.Errorf("systemd-analyze verify accepts ProtectSystem=bogus")
		}
	})
}

// TestPackagedConfig checks the configuration the package and the image
// install: it passes check and denies everyone (its policy tests say so),
// its "#setting = value" lines are the defaults the code applies, and its
// "# ..." examples are valid once uncommented.
func TestPackagedConfig(t *testing.T) {
	const dir = "packaging/deb/etc/exfilguard"
	ca := filepath.Join(t.TempDir(), "ca")
	stdout, stderr, code := exfilguard(t, nil, "check", "--config", dir+"/exfilguard.toml", "--ca-dir", ca)
	if want := "configuration OK: 1 client, 1 policy, 1 rule, 2 policy tests; listen 0.0.0.0:3128\n"; code != 0 || stdout != want {
		t.Errorf("check = %d\n%s%s\nwant 0 and %q", code, stdout, stderr, want)
	}
	cfg, err := conf.Load(dir+"/exfilguard.toml", conf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Settings.CADir != "/var/lib/exfilguard/ca" || cfg.Settings.CertCacheDir != "/var/lib/exfilguard/certs" {
		t.Errorf("ca_dir %s, cert_cache_dir %s: want both under /var/lib/exfilguard", cfg.Settings.CADir, cfg.Settings.CertCacheDir)
	}

	// uncomment copies the configuration with the lines that match re
	// uncommented (the comment marker and one space removed).
	uncomment := func(t *testing.T, re *regexp.Regexp) (string, int) {
		t.Helper()
		out := copyTree(t, dir)
		n := 0
		for _, name := range []string{"exfilguard.toml", "clients.toml", "policies.toml"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			lines := strings.Split(string(b), "\n")
			for i, l := range lines {
				if re.MatchString(l) {
					lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
					n++
				}
			}
			if err := os.WriteFile(filepath.Join(out, name), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return out, n
	}
	t.Run("commented defaults", func(t *testing.T) {
		// Both files in one directory, so that their paths resolve alike.
		out := copyTree(t, dir)
		b, _ := os.ReadFile(filepath.Join(dir, "exfilguard.toml"))
		lines := strings.Split(string(b), "\n")
		n := 0
		for i, l := range lines {
			if regexp.MustCompile(`^#[a-z_]+ = `).MatchString(l) {
				lines[i] = l[1:]
				n++
			}
		}
		if n < 20 {
			t.Fatalf("only %d commented defaults", n)
		}
		if err := os.WriteFile(filepath.Join(out, "defaults.toml"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		written, err := conf.Load(filepath.Join(out, "defaults.toml"), conf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		implied, err := conf.Load(filepath.Join(out, "exfilguard.toml"), conf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(written.Settings, implied.Settings) {
			t.Errorf("a #setting line is not the default:\nuncommented %+v\ndefaults    %+v", written.Settings, implied.Settings)
		}
	})
	t.Run("examples", func(t *testing.T) {
		out, n := uncomment(t, regexp.MustCompile(`^# (\[\[|[a-z_]+ = )`))
		if n < 20 {
			t.Fatalf("only %d example lines", n)
		}
		stdout, stderr, code := exfilguard(t, nil, "check", "--config", filepath.Join(out, "exfilguard.toml"), "--ca-dir", ca)
		if want := "configuration OK: 2 clients, 3 policies, 3 rules, 2 policy tests; listen 0.0.0.0:3128\n"; code != 0 || stdout != want {
			t.Errorf("check with the examples = %d\n%s%s\nwant 0 and %q", code, stdout, stderr, want)
		}
	})
}

// TestDockerfile checks what can be checked of packaging/Dockerfile without
// a container engine: a static build, a scratch image running as a
// numeric non-root user with the CA bundle, the packaged configuration and
// the state volume, and sources that exist.
func TestDockerfile(t *testing.T) {
	df := readDoc(t, "packaging/Dockerfile")
	stages := regexp.MustCompile(`(?m)^FROM `).Split(df, -1)
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final, "scratch\n") {
		t.Errorf("the last stage is FROM %s, want scratch", strings.SplitN(final, "\n", 2)[0])
	}
	for _, want := range []string{
		"COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n",
		"COPY --from=build /out/usr/sbin/exfilguard /usr/sbin/exfilguard\n",
		"COPY --from=build /out/etc/exfilguard/ /etc/exfilguard/\n",
		`VOLUME ["/var/lib/exfilguard"]` + "\n",
		`ENTRYPOINT ["/usr/sbin/exfilguard"]` + "\n",
	} {
		if !strings.Contains(final, want) {
			t.Errorf("the final stage lacks %q", strings.TrimSpace(want))
		}
	}
	if m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(final); m == nil || m[1] == "0" {
		t.Errorf("the final stage must run as a numeric non-root USER uid:gid")
	}
	build := stages[1]
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=$VERSION"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage lacks %s", want)
		}
	}
	// The sources the build stage installs from must exist.
	for _, src := range regexp.MustCompile(`packaging/[^\s\\]+`).FindAllString(build, -1) {
		if _, err := os.Stat(src); err != nil {
			t.Errorf("the build stage uses %s: %v", src, err)
		}
	}
	goMod := readDoc(t, "go.mod")
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	if goLine == nil || !strings.Contains(df, "ARG GO_VERSION="+goLine[1]+"\n") {
		t.Errorf("ARG GO_VERSION does not match go.mod's go %v", goLine)
	}
	ignore := readDoc(t, "packaging/Dockerfile.dockerignore")
	for _, p := range []string{".git", "bin", "dist"} {
		if !slices.Contains(strings.Split(ignore, "\n"), p) {
			t.Errorf("packaging/Dockerfile.dockerignore does not exclude %s", p)
		}
	}
}
