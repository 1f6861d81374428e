package conf

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadBase(t *testing.T) {
	path := writeConfig(t, nil)
	cfg, err := Load(path, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dir := filepath.Dir(path)
	s := cfg.Settings
	if want := netip.MustParseAddrPort("127.0.0.1:3128"); s.Listen != want {
		t.Errorf("Listen = %v, want %v", s.Listen, want)
	}
	// Relative paths are resolved against the main file's directory.
	if want := filepath.Join(dir, "ca"); s.CADir != want {
		t.Errorf("CADir = %q, want %q", s.CADir, want)
	}
	if want := filepath.Join(dir, "clients.toml"); s.ClientsFile != want {
		t.Errorf("ClientsFile = %q, want %q", s.ClientsFile, want)
	}
	// Defaults (reference §1.1 and SPEC §3).
	def := DefaultSettings()
	def.Listen, def.CADir, def.ClientsFile, def.PoliciesFile = s.Listen, s.CADir, s.ClientsFile, s.PoliciesFile
	if !settingsEqual(s, def) {
		t.Errorf("Settings = %+v, want defaults %+v", s, def)
	}
	if s.MaxRequestBodySize != 0 || s.LeafTTL != 86400*time.Second || s.UpstreamIdleTimeout != 90*time.Second || s.ShutdownGracePeriod != 30*time.Second {
		t.Errorf("defaults wrong: body %d leaf %v upstream idle %v grace %v", s.MaxRequestBodySize, s.LeafTTL, s.UpstreamIdleTimeout, s.ShutdownGracePeriod)
	}
	if got := names(cfg.Clients); !slices.Equal(got, []string{"app", "rest"}) {
		t.Errorf("clients = %v", got)
	}
	app := cfg.Clients[0]
	if app.Prefix != netip.MustParsePrefix("10.0.0.0/8") || !app.IsCIDR || app.Fallback || !slices.Equal(app.Policies, []string{"web"}) {
		t.Errorf("client app = %+v", app)
	}
	if app.Pos.String() != filepath.Join(dir, "clients.toml")+":1:1" {
		t.Errorf("client app Pos = %v", app.Pos)
	}
	web := cfg.Policies[0]
	if web.Name != "web" || len(web.Rules) != 1 {
		t.Fatalf("policy web = %+v", web)
	}
	r := web.Rules[0]
	if r.Action != Allow || !slices.Equal(r.Methods, []string{"GET"}) || !r.InspectPayload || r.URLPattern == nil || r.URLPattern.Host != "example.com" || r.URLPattern.Port != 443 || r.URLPattern.Path != "/**" {
		t.Errorf("rule web#0 = %+v (pattern %+v)", r, r.URLPattern)
	}
	if r.Pos.Line != 4 || r.Pos.Col != 1 {
		t.Errorf("rule web#0 Pos = %v, want line 4 col 1", r.Pos)
	}
	if d := cfg.Policies[1].Rules[0]; d.Action != Deny || d.Status != 403 || d.Methods != nil {
		t.Errorf("rule deny#0 = %+v", d)
	}
	if want := []string{path, filepath.Join(dir, "policies.toml"), filepath.Join(dir, "clients.toml")}; !slices.Equal(cfg.Files, want) {
		t.Errorf("Files = %q, want %q", cfg.Files, want)
	}
}

func settingsEqual(a, b Settings) bool {
	return reflect.DeepEqual(a, b)
}

func names[T Client | Policy](list []T) []string {
	var out []string
	for _, x := range list {
		switch v := any(x).(type) {
		case Client:
			out = append(out, v.Name)
		case Policy:
			out = append(out, v.Name)
		}
	}
	return out
}

func TestLoadEveryExample(t *testing.T) {
	paths, err := filepath.Glob("../examples/*/exfilguard.toml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("examples: %v, %v", paths, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			cfg, err := Load(path, Options{})
			if err != nil {
				t.Fatalf("Load(%s):\n%v", path, err)
			}
			if len(cfg.Clients) == 0 || len(cfg.Policies) == 0 || len(cfg.Tests) == 0 {
				t.Errorf("example %s has %d clients, %d policies, %d tests; want some of each", path, len(cfg.Clients), len(cfg.Policies), len(cfg.Tests))
			}
		})
	}
}

func TestLoadDirectories(t *testing.T) {
	path := writeConfig(t, map[string]string{
		"exfilguard.toml":              baseMain + "clients_dir = \"clients.d\"\npolicies_dir = \"policies.d\"\n",
		"clients.d/b.toml":             "[[client]]\nname = \"b\"\nip = \"192.0.2.2\"\npolicies = [\"web\"]\n",
		"clients.d/a.TOML":             "[[client]]\nname = \"a\"\nip = \"192.0.2.1\"\npolicies = [\"web\"]\n",
		"clients.d/B.toml":             "[[client]]\nname = \"B\"\nip = \"192.0.2.3\"\npolicies = [\"web\"]\n",
		"clients.d/notes.txt":          "not toml",
		"clients.d/.hidden.toml":       "not [[ toml",
		"clients.d/sub.toml/":          "",
		"policies.d/":                  "",
		"policies.d/z.toml":            "[[policy]]\nname = \"z\"\n\n[[policy.rule]]\naction = \"ALLOW\"\n",
		"policies.d/skipped.toml.orig": "[[ broken",
		"policies.d/0-first.toml":      "[[policy]]\nname = \"first\"\n\n[[policy.rule]]\naction = \"ALLOW\"\n",
		"policies.d/tests-only.toml":   "[[test]]\nclient = \"192.0.2.1\"\nurl = \"https://example.com/x\"\nexpect = \"ALLOW\"\n",
		"policies.d/empty.toml":        "",
		"policies.d/comment-only.toml": "# nothing here\n",
		"clients.d/link.toml.target/":  "",
	})
	dir := filepath.Dir(path)
	// A link to a regular file counts (Kubernetes ConfigMap mounts); a
	// link to a directory does not.
	if err := os.WriteFile(filepath.Join(dir, "linked.toml"), []byte("[[client]]\nname = \"linked\"\nip = \"192.0.2.9\"\npolicies = [\"web\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "linked.toml"), filepath.Join(dir, "clients.d", "link.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "clients.d", "link.toml.target"), filepath.Join(dir, "clients.d", "dirlink.toml")); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// Byte-wise order: upper case sorts before lower case.
	if got, want := names(cfg.Clients), []string{"app", "rest", "B", "a", "b", "linked"}; !slices.Equal(got, want) {
		t.Errorf("clients = %v, want %v", got, want)
	}
	if got, want := names(cfg.Policies), []string{"web", "deny", "first", "z"}; !slices.Equal(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
	if len(cfg.Tests) != 1 || cfg.Tests[0].Pos.File != filepath.Join(dir, "policies.d", "tests-only.toml") {
		t.Errorf("tests = %+v", cfg.Tests)
	}
}

func TestLoadMissingDirectoryIsFine(t *testing.T) {
	path := writeConfig(t, map[string]string{"exfilguard.toml": baseMain + "clients_dir = \"nowhere.d\"\n"})
	if _, err := Load(path, Options{}); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	path := writeConfig(t, nil)
	dir := filepath.Dir(path)
	cfg, err := Load(path, Options{Environ: []string{
		"HOME=/root",
		"EXFILGUARD__LISTEN=[::1]:8080",
		"EXFILGUARD__LOG=text",
		"EXFILGUARD__LOG_QUERIES=TRUE",
		"EXFILGUARD__LEAF_TTL=3600",
		"EXFILGUARD__CERT_CACHE_DIR=certs",
		"EXFILGUARD__PROXY_PROTOCOL=true",
		"EXFILGUARD__PROXY_PROTOCOL_ALLOWED_CIDRS=10.0.0.0/8, 2001:db8::/32",
		"exfilguard__max_request_body_size=1024",
	}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	s := cfg.Settings
	if s.Listen != netip.MustParseAddrPort("[::1]:8080") || s.Log != LogText || !s.LogQueries || s.LeafTTL != time.Hour || s.MaxRequestBodySize != 1024 {
		t.Errorf("overrides not applied: %+v", s)
	}
	// Paths from the environment are relative to the main file too.
	if want := filepath.Join(dir, "certs"); s.CertCacheDir != want {
		t.Errorf("CertCacheDir = %q, want %q", s.CertCacheDir, want)
	}
	if s.ProxyProtocol != ProxyProtocolRequired || !slices.Equal(s.ProxyProtocolAllowedCIDRs, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}) {
		t.Errorf("proxy protocol = %v %v", s.ProxyProtocol, s.ProxyProtocolAllowedCIDRs)
	}
}

func TestCADirOption(t *testing.T) {
	path := writeConfig(t, nil)
	cfg, err := Load(path, Options{CADir: "/var/lib/exfilguard/ca"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Settings.CADir != "/var/lib/exfilguard/ca" {
		t.Errorf("CADir = %q", cfg.Settings.CADir)
	}
}

// TestAllProblemsReported breaks three files at once: every problem is
// reported, in load order (main file, policies, clients).
func TestAllProblemsReported(t *testing.T) {
	path := writeConfig(t, map[string]string{
		"exfilguard.toml": baseMain + "leaf_ttl = 0\n",
		"policies.toml":   strings.Replace(basePolicies, "status = 403", "status = 403\ninspect_paylod = true", 1),
		"clients.toml":    strings.Replace(baseClients, `cidr = "10.0.0.0/8"`, `cidr = "10.0.0.0/33"`, 1),
	})
	_, err := Load(path, Options{})
	want := []string{
		`exfilguard.toml:5:12: leaf_ttl must be greater than 0`,
		`policies.toml:15:1: unknown key "inspect_paylod" in [[policy.rule]]; did you mean "inspect_payload"?`,
		`clients.toml:3:8: cidr: "10.0.0.0/33" is not a valid CIDR`,
	}
	if got := problemLines(err, filepath.Dir(path)); !slices.Equal(got, want) {
		t.Errorf("problems:\n got: %q\nwant: %q", got, want)
	}
}

// TestSyntaxErrorsInSeveralFiles: a syntax error stops only its own file.
func TestSyntaxErrorsInSeveralFiles(t *testing.T) {
	path := writeConfig(t, map[string]string{
		"policies.toml": basePolicies + "[[policy]\n",
		"clients.toml":  baseClients + "name = \"again\"\n",
	})
	_, err := Load(path, Options{})
	got := problemLines(err, filepath.Dir(path))
	if len(got) != 2 || !strings.HasPrefix(got[0], "policies.toml:15:") || !strings.HasPrefix(got[1], "clients.toml:11:1: duplicate key \"name\"") {
		t.Errorf("problems = %q, want one in policies.toml line 15 and one in clients.toml line 11", got)
	}
}

func TestErrorExcerpt(t *testing.T) {
	path := writeConfig(t, map[string]string{"policies.toml": strings.Replace(basePolicies, "status = 403", "\tstatus = 403\n\tinspect_paylod = true", 1)})
	_, err := Load(path, Options{})
	list := Errors(err)
	if len(list) != 1 {
		t.Fatalf("problems = %v", err)
	}
	want := "    \tinspect_paylod = true\n    \t^"
	if got := list[0].Excerpt(); got != want {
		t.Errorf("Excerpt() =\n%s\nwant\n%s", got, want)
	}
}

func TestReloadPolicies(t *testing.T) {
	path := writeConfig(t, nil)
	cfg, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	// The main file is not read again: breaking it changes nothing.
	if err := os.WriteFile(path, []byte("not = [valid"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies.toml"), []byte(strings.Replace(basePolicies, "status = 403", "status = 451", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := cfg.ReloadPolicies()
	if err != nil {
		t.Fatalf("ReloadPolicies: %v", err)
	}
	if next.Policies[1].Rules[0].Status != 451 || !settingsEqual(next.Settings, cfg.Settings) {
		t.Errorf("reloaded: status %d, settings changed %v", next.Policies[1].Rules[0].Status, !settingsEqual(next.Settings, cfg.Settings))
	}
	if cfg.Policies[1].Rules[0].Status != 403 {
		t.Errorf("old config changed")
	}
	if err := os.WriteFile(filepath.Join(dir, "clients.toml"), []byte(baseClients+"[[client]]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.ReloadPolicies(); err == nil {
		t.Errorf("ReloadPolicies accepted a client without name, selector or policies")
	}
}

func TestSettingKeysAreUnique(t *testing.T) {
	keys := SettingKeys()
	if len(keys) != 42 {
		t.Errorf("%d settings, want 42 (reference §1.1, SPEC §3's additions, and issue 8's connection limits)", len(keys))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("setting %q twice", k)
		}
		seen[k] = true
	}
}
