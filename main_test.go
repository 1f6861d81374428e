package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// binary is the exfilguard binary built once for the tests that run it as
// a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "exfilguard-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "exfilguard")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exfilguard runs the binary and returns its stdout, stderr and exit code.
func exfilguard(tb testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		tb.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// copyTree copies the directory src into a new temporary directory.
func copyTree(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

func replaceInFile(tb testing.TB, path, old, new string) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		tb.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func TestCheckExamples(t *testing.T) {
	for _, name := range []string{"quickstart", "full"} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := exfilguard(t, nil, "check", "--config", filepath.Join("examples", name, "exfilguard.toml"))
			if code != 0 || !strings.HasPrefix(stdout, "configuration OK: ") {
				t.Errorf("check exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
		})
	}
}

func TestCheckSummary(t *testing.T) {
	stdout, _, code := exfilguard(t, nil, "check", "--config", "examples/full/exfilguard.toml")
	want := "configuration OK: 5 clients, 4 policies, 8 rules, 9 policy tests; listen 127.0.0.1:3128\n"
	if code != 0 || stdout != want {
		t.Errorf("check = %d %q, want 0 %q", code, stdout, want)
	}
}

// TestCheckBrokenFull breaks a copy of examples/full in three files and
// expects every problem, with its position and source line, and exit 1.
func TestCheckBrokenFull(t *testing.T) {
	dir := copyTree(t, "examples/full")
	replaceInFile(t, filepath.Join(dir, "exfilguard.toml"), "leaf_ttl = 86400", "leaf_ttl = 0")
	replaceInFile(t, filepath.Join(dir, "clients.d", "10-bastion.toml"), `"package-mirrors"`, `"package-mirror"`)
	replaceInFile(t, filepath.Join(dir, "policies.d", "20-mirrors.toml"), `https://*.githubusercontent.com/**`, `https://*github*.com/**`)
	stdout, stderr, code := exfilguard(t, nil, "check", "--config", filepath.Join(dir, "exfilguard.toml"))
	if code != 1 {
		t.Errorf("check exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	out := strings.ReplaceAll(stdout, dir+"/", "")
	for _, want := range []string{
		"exfilguard.toml:23:12: leaf_ttl must be greater than 0\n    leaf_ttl = 0\n               ^\n",
		"policies.d/20-mirrors.toml:18:15: url_pattern host \"*github*.com\": label \"*github*\" mixes '*' with other characters: wildcards match whole labels only\n    url_pattern = \"https://*github*.com/**\"\n                  ^\n",
		"clients.d/10-bastion.toml:5:12: client \"bastion\" references unknown policy \"package-mirror\"; did you mean \"package-mirrors\"?\n",
		"3 problems found\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q\noutput:\n%s", want, out)
		}
	}
}

func TestRunWithoutProxy(t *testing.T) {
	stdout, stderr, code := exfilguard(t, nil, "--config", "examples/quickstart/exfilguard.toml")
	if code != 1 || !strings.Contains(stdout, "2 clients, 2 policies, 2 rules") || !strings.Contains(stderr, "the proxy is not yet available") {
		t.Errorf("run = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

func TestStartupFailureOnStderr(t *testing.T) {
	stdout, stderr, code := exfilguard(t, []string{"EXFILGUARD__LEAF_TL=1"}, "--config", "examples/quickstart/exfilguard.toml")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "EXFILGUARD__LEAF_TL names no setting; did you mean EXFILGUARD__LEAF_TTL?") {
		t.Errorf("run = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.HasSuffix(stderr, "exfilguard: configuration is invalid; nothing started\n") {
		t.Errorf("stderr does not end with the one-line summary: %q", stderr)
	}
}

func TestNoConfigFound(t *testing.T) {
	cmd := exec.Command(binary, "check")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "neither /etc/exfilguard/exfilguard.toml nor ./exfilguard.toml exists") {
		if _, statErr := os.Stat("/etc/exfilguard/exfilguard.toml"); statErr == nil {
			t.Skip("/etc/exfilguard/exfilguard.toml exists on this machine")
		}
		t.Errorf("check without config: %v\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := exfilguard(t, nil, "--version")
	if code != 0 || !regexp.MustCompile(`^exfilguard \S+\n$`).MatchString(stdout) {
		t.Errorf("--version = %d %q", code, stdout)
	}
}

func TestUnknownCommand(t *testing.T) {
	_, stderr, code := exfilguard(t, nil, "serve")
	if code != 2 || !strings.Contains(stderr, `unknown command "serve"`) {
		t.Errorf("serve = %d %q", code, stderr)
	}
}
