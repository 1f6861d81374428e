package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Base files of a small valid configuration; tests replace some of them.
const (
	baseMain = `listen = "127.0.0.1:3128"
ca_dir = "ca"
clients = "clients.toml"
policies = "policies.toml"
`
	baseClients = `[[client]]
name = "app"
cidr = "10.0.0.0/8"
policies = ["web"]

[[client]]
name = "rest"
cidr = "0.0.0.0/0"
policies = ["deny"]
fallback = true
`
	basePolicies = `[[policy]]
name = "web"

[[policy.rule]]
action = "ALLOW"
methods = ["GET"]
url_pattern = "https://example.com/**"

[[policy]]
name = "deny"

[[policy.rule]]
action = "DENY"
status = 403
`
)

// writeConfig writes the base configuration with files replaced or added
// (a name ending in "/" makes a directory) into a temporary directory and
// returns the main file's path.
func writeConfig(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	all := map[string]string{
		"exfilguard.toml": baseMain,
		"clients.toml":    baseClients,
		"policies.toml":   basePolicies,
	}
	for name, text := range files {
		all[name] = text
	}
	for name, text := range all {
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return filepath.Join(dir, "exfilguard.toml")
}

// problemLines returns err's problems as "FILE:LINE:COL: message" with
// FILE relative to dir.
func problemLines(err error, dir string) []string {
	var out []string
	for _, e := range Errors(err) {
		out = append(out, strings.ReplaceAll(e.Error(), dir+string(filepath.Separator), ""))
	}
	return out
}
