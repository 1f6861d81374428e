package conf

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// withPolicies appends extra policies text to the base policies file.
func withPolicies(extra string) map[string]string {
	return map[string]string{"policies.toml": basePolicies + extra}
}

func withMain(extra string) map[string]string {
	return map[string]string{"exfilguard.toml": baseMain + extra}
}

// TestInvalidConfig checks that each broken configuration is rejected with
// exactly the expected problems, positions and messages. Line numbers in
// the base files: baseMain has 4 lines, basePolicies 14, baseClients 10.
func TestInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		env   []string
		want  []string
	}{
		// The main settings file.
		{
			name:  "unknown setting with suggestion",
			files: withMain("leaf_tll = 10\n"),
			want:  []string{`exfilguard.toml:5:1: unknown key "leaf_tll" in the settings; did you mean "leaf_ttl"?`},
		},
		{
			name:  "leaf_ttl zero",
			files: withMain("leaf_ttl = 0\n"),
			want:  []string{`exfilguard.toml:5:12: leaf_ttl must be greater than 0`},
		},
		{
			name:  "leaf_ttl longer than clients accept",
			files: withMain("leaf_ttl = 34473601\n"),
			want:  []string{`exfilguard.toml:5:12: leaf_ttl must be at most 34387200 seconds (398 days): clients refuse longer-lived TLS certificates`},
		},
		{
			name:  "negative timeout",
			files: withMain("dns_resolve_timeout = -1\n"),
			want:  []string{`exfilguard.toml:5:23: dns_resolve_timeout must not be negative`},
		},
		{
			name:  "pool capacity zero",
			files: withMain("upstream_pool_capacity = 0\n"),
			want:  []string{`exfilguard.toml:5:26: upstream_pool_capacity must be greater than 0`},
		},
		{
			name:  "max_connections negative",
			files: withMain("max_connections = -1\n"),
			want:  []string{`exfilguard.toml:5:19: max_connections must not be negative`},
		},
		{
			name:  "max_connections_per_ip above max_connections",
			files: withMain("max_connections = 100\nmax_connections_per_ip = 200\n"),
			want:  []string{`exfilguard.toml:6:26: max_connections_per_ip (200) is larger than max_connections (100), so it can never be reached`},
		},
		{
			name: "max_connections_per_ip written as a string",
			env:  []string{"EXFILGUARD__MAX_CONNECTIONS_PER_IP=many"},
			want: []string{`environment variable EXFILGUARD__MAX_CONNECTIONS_PER_IP: max_connections_per_ip: "many" is not a whole number`},
		},
		{
			name:  "boolean written as string",
			files: withMain(`log_queries = "yes"` + "\n"),
			want:  []string{`exfilguard.toml:5:15: log_queries must be a boolean, not a string`},
		},
		{
			name:  "log format in upper case",
			files: withMain(`log = "JSON"` + "\n"),
			want:  []string{`exfilguard.toml:5:7: log must be "json" or "text", not "JSON"`},
		},
		{
			name:  "listen on a host name",
			files: map[string]string{"exfilguard.toml": strings.Replace(baseMain, "127.0.0.1:3128", "localhost:3128", 1)},
			want:  []string{`exfilguard.toml:1:10: listen "localhost:3128" must be IP:port, like 127.0.0.1:3128 or [::1]:3128 (host names are not accepted)`},
		},
		{
			name:  "missing required setting",
			files: map[string]string{"exfilguard.toml": strings.Replace(baseMain, "ca_dir = \"ca\"\n", "", 1)},
			want:  []string{`exfilguard.toml: missing required setting "ca_dir"`},
		},
		{
			name:  "metrics TLS certificate without key",
			files: map[string]string{"exfilguard.toml": baseMain + "metrics_listen = \"127.0.0.1:9090\"\nmetrics_tls_cert = \"m.crt\"\n", "m.crt": "x"},
			want:  []string{`exfilguard.toml:6:20: metrics_tls_cert is set but metrics_tls_key is not: set both or neither`},
		},
		{
			name:  "metrics TLS without metrics_listen",
			files: map[string]string{"exfilguard.toml": baseMain + "metrics_tls_cert = \"m.crt\"\nmetrics_tls_key = \"m.key\"\n", "m.crt": "x", "m.key": "y"},
			want:  []string{`exfilguard.toml:5:20: metrics_tls_cert is set but metrics_listen is not`},
		},
		{
			name:  "metrics TLS key file missing",
			files: map[string]string{"exfilguard.toml": baseMain + "metrics_listen = \"127.0.0.1:9090\"\nmetrics_tls_cert = \"m.crt\"\nmetrics_tls_key = \"m.key\"\n", "m.crt": "x"},
			want:  []string{`exfilguard.toml:7:19: metrics_tls_key m.key cannot be read: no such file or directory`},
		},
		{
			name:  "metrics on the proxy's address",
			files: withMain(`metrics_listen = "127.0.0.1:3128"` + "\n"),
			want:  []string{`exfilguard.toml:5:18: metrics_listen must differ from listen (127.0.0.1:3128)`},
		},
		{
			name:  "proxy protocol without allowed peers",
			files: withMain(`proxy_protocol = "required"` + "\n"),
			want:  []string{`exfilguard.toml:5:18: proxy_protocol = "required" needs proxy_protocol_allowed_cidrs: the peers whose PROXY headers are trusted`},
		},
		{
			name:  "proxy protocol with an empty allowed list",
			files: withMain(`proxy_protocol = "required"` + "\n" + `proxy_protocol_allowed_cidrs = []` + "\n"),
			want:  []string{`exfilguard.toml:6:32: proxy_protocol_allowed_cidrs is empty: proxy_protocol = "required" needs at least one trusted peer`},
		},
		{
			name:  "proxy protocol mode unknown",
			files: withMain(`proxy_protocol = "sometimes"` + "\n"),
			want:  []string{`exfilguard.toml:5:18: proxy_protocol must be "off", "optional" or "required"`},
		},
		{
			name:  "allowed CIDR with host bits",
			files: withMain(`proxy_protocol = "optional"` + "\n" + `proxy_protocol_allowed_cidrs = ["192.0.2.0/24", "10.1.2.3/8"]` + "\n"),
			want:  []string{`exfilguard.toml:6:49: proxy_protocol_allowed_cidrs: "10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`},
		},
		{
			name:  "cache limit zero with cache_dir",
			files: withMain("cache_dir = \"cache\"\ncache_max_entries = 0\n"),
			want:  []string{`exfilguard.toml:6:21: cache_max_entries must be greater than 0 when cache_dir is set`},
		},
		{
			name:  "clients_dir is a file",
			files: withMain(`clients_dir = "policies.toml"` + "\n"),
			want:  []string{`exfilguard.toml:5:15: clients_dir policies.toml is not a directory`},
		},
		{
			name:  "ca_dir is a file",
			files: map[string]string{"exfilguard.toml": strings.Replace(baseMain, `ca_dir = "ca"`, `ca_dir = "clients.toml"`, 1)},
			want:  []string{`exfilguard.toml:2:10: ca_dir clients.toml is not a directory`},
		},
		{
			name:  "clients file missing",
			files: map[string]string{"exfilguard.toml": strings.Replace(baseMain, `"clients.toml"`, `"clients-missing.toml"`, 1)},
			want:  []string{`exfilguard.toml:3:11: cannot read clients-missing.toml: no such file or directory`},
		},
		{
			name:  "float setting",
			files: withMain("leaf_ttl = 1.5\n"),
			want:  []string{`exfilguard.toml:5:12: unsupported TOML value: floats are not supported`},
		},
		{
			name:  "duplicate setting",
			files: withMain("log = \"text\"\nlog = \"json\"\n"),
			want:  []string{`exfilguard.toml:6:1: duplicate key "log" (first defined at line 5)`},
		},
		{
			name: "unknown environment override",
			env:  []string{"EXFILGUARD__LEAF_TIL=5"},
			want: []string{`environment variable EXFILGUARD__LEAF_TIL: EXFILGUARD__LEAF_TIL names no setting; did you mean EXFILGUARD__LEAF_TTL?`},
		},
		{
			name: "environment override not a number",
			env:  []string{"EXFILGUARD__LEAF_TTL=1h"},
			want: []string{`environment variable EXFILGUARD__LEAF_TTL: leaf_ttl: "1h" is not a whole number`},
		},
		{
			name: "environment override zero",
			env:  []string{"EXFILGUARD__LEAF_TTL=0"},
			want: []string{`environment variable EXFILGUARD__LEAF_TTL: leaf_ttl must be greater than 0`},
		},

		// Clients files.
		{
			name:  "two fallback clients",
			files: map[string]string{"clients.toml": baseClients + "\n[[client]]\nname = \"rest6\"\ncidr = \"::/0\"\npolicies = [\"deny\"]\nfallback = true\n"},
			want:  []string{`clients.toml:16:12: client "rest6" is a second fallback client (the first is "rest" at clients.toml:6:1): exactly one is allowed`},
		},
		{
			name:  "no fallback client",
			files: map[string]string{"clients.toml": strings.Replace(strings.Replace(baseClients, "fallback = true", "fallback = false", 1), "0.0.0.0/0", "::/0", 1)},
			want:  []string{`clients.toml: no fallback client: exactly one client must set fallback = true`},
		},
		{
			name:  "overlapping CIDRs",
			files: map[string]string{"clients.toml": baseClients + "\n[[client]]\nname = \"db\"\ncidr = \"10.1.0.0/16\"\npolicies = [\"web\"]\n"},
			want:  []string{`clients.toml:14:8: client "db" (10.1.0.0/16) overlaps client "app" (10.0.0.0/8 at clients.toml:1:1): selectors of non-fallback clients must not overlap`},
		},
		{
			name:  "address inside a CIDR",
			files: map[string]string{"clients.toml": "[[client]]\nname = \"one\"\nip = \"10.9.9.9\"\npolicies = [\"web\"]\n\n" + baseClients},
			want:  []string{`clients.toml:8:8: client "app" (10.0.0.0/8) overlaps client "one" (10.9.9.9/32 at clients.toml:1:1): selectors of non-fallback clients must not overlap`},
		},
		{
			name:  "same address as the fallback",
			files: map[string]string{"clients.toml": baseClients + "\n[[client]]\nname = \"everyone\"\ncidr = \"0.0.0.0/0\"\npolicies = [\"web\"]\n"},
			want:  []string{`clients.toml:14:8: client "everyone" selects 0.0.0.0/0, which is already claimed by client "rest" (clients.toml:6:1)`},
		},
		{
			name:  "unknown policy with suggestion",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `["web"]`, `["webb"]`, 1)},
			want:  []string{`clients.toml:4:13: client "app" references unknown policy "webb"; did you mean "web"?`},
		},
		{
			name:  "client without selector",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, "cidr = \"10.0.0.0/8\"\n", "", 1)},
			want:  []string{`clients.toml:1:1: client "app" must set either ip or cidr`},
		},
		{
			name:  "client with ip and cidr",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, "cidr = \"10.0.0.0/8\"\n", "ip = \"10.0.0.1\"\ncidr = \"10.0.0.0/8\"\n", 1)},
			want:  []string{`clients.toml:4:8: client "app" sets both ip and cidr; use exactly one`},
		},
		{
			name:  "ip written as CIDR",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `cidr = "10.0.0.0/8"`, `ip = "10.0.0.0/8"`, 1)},
			want:  []string{`clients.toml:3:6: ip: "10.0.0.0/8" is a CIDR, not an address`},
		},
		{
			name:  "cidr without prefix length",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `cidr = "10.0.0.0/8"`, `cidr = "10.0.0.0"`, 1)},
			want:  []string{`clients.toml:3:8: cidr: "10.0.0.0" is not a CIDR (it needs a /prefix-length)`},
		},
		{
			name:  "cidr with host bits",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `cidr = "10.0.0.0/8"`, `cidr = "10.1.2.3/8"`, 1)},
			want:  []string{`clients.toml:3:8: cidr: "10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`},
		},
		{
			name:  "octal address",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `cidr = "10.0.0.0/8"`, `ip = "010.0.0.1"`, 1)},
			want:  []string{`clients.toml:3:6: ip: "010.0.0.1" is not an IP address`},
		},
		{
			name:  "IPv4-mapped address",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `cidr = "10.0.0.0/8"`, `ip = "::ffff:10.0.0.1"`, 1)},
			want:  []string{`clients.toml:3:6: ip: "::ffff:10.0.0.1" is an IPv4-mapped IPv6 address; write 10.0.0.1`},
		},
		{
			name:  "client without policies",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `policies = ["web"]`, `policies = []`, 1)},
			want:  []string{`clients.toml:4:12: client "app" must list at least one policy`},
		},
		{
			name:  "unknown client key",
			files: map[string]string{"clients.toml": strings.Replace(baseClients, `policies = ["web"]`, `polices = ["web"]`, 1)},
			want: []string{
				`clients.toml:1:1: client "app" must list at least one policy`,
				`clients.toml:4:1: unknown key "polices" in [[client]]; did you mean "policies"?`,
			},
		},
		{
			name: "duplicate client name across files",
			files: map[string]string{
				"exfilguard.toml":        baseMain + "clients_dir = \"clients.d\"\n",
				"clients.d/20-more.toml": "[[client]]\nname = \"app\"\nip = \"192.0.2.1\"\npolicies = [\"web\"]\n",
			},
			want: []string{`clients.d/20-more.toml:2:8: duplicate client name "app" (first defined at clients.toml:1:1)`},
		},

		// Policies files.
		{
			name:  "DENY without status",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\n"),
			want:  []string{`policies.toml:19:1: DENY rule p#0 needs a status, such as status = 403`},
		},
		{
			name:  "DENY status out of range",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 101\n"),
			want:  []string{`policies.toml:21:10: DENY status 101 must be from 400 to 599`},
		},
		{
			name:  "DENY reason with a newline",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\nreason = \"No\\r\\nSet-Cookie: x\"\n"),
			want:  []string{`policies.toml:22:10: reason must not contain control characters such as CR or LF`},
		},
		{
			name:  "ALLOW with status",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nstatus = 200\n"),
			want:  []string{`policies.toml:21:10: status applies to DENY rules only`},
		},
		{
			name:  "action in lower case",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"allow\"\n"),
			want:  []string{`policies.toml:20:10: action must be "ALLOW" or "DENY" (upper case), not "allow"`},
		},
		{
			name:  "inspect_payload false on a GET rule",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\"]\nurl_pattern = \"https://a.example/**\"\ninspect_payload = false\n"),
			want:  []string{`policies.toml:23:19: inspect_payload = false needs methods = ["CONNECT"]`},
		},
		{
			name:  "tunnel rule without /** path",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"CONNECT\"]\nurl_pattern = \"https://a.example/\"\ninspect_payload = false\n"),
			want:  []string{`policies.toml:23:19: inspect_payload = false needs a url_pattern ending in /**: a tunnel cannot see paths`},
		},
		{
			name:  "CONNECT ALLOW without inspect_payload = false",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"CONNECT\"]\nurl_pattern = \"https://a.example/**\"\n"),
			want:  []string{`policies.toml:21:11: CONNECT ALLOW rules must set inspect_payload = false (HTTPS rules for other methods already allow CONNECT with inspection)`},
		},
		{
			name:  "CONNECT rule after a GET rule",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\"]\n\n[[policy.rule]]\naction = \"DENY\"\nmethods = [\"CONNECT\"]\nstatus = 403\n"),
			want:  []string{`policies.toml:25:11: CONNECT rules must come before the other rules of their policy: rule p#1 follows a non-CONNECT rule`},
		},
		{
			name:  "CONNECT rule with an http pattern",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nmethods = [\"CONNECT\"]\nurl_pattern = \"http://a.example/**\"\nstatus = 403\n"),
			want:  []string{`policies.toml:22:15: a CONNECT rule's url_pattern must use https://: CONNECT is decided on https authorities only`},
		},
		{
			name:  "DENY tunnel rule",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\ninspect_payload = false\n"),
			want:  []string{`policies.toml:22:19: inspect_payload = false applies to ALLOW rules only: a DENY never opens a tunnel`},
		},
		{
			name:  "allow_private_upstream on DENY",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\nallow_private_upstream = true\n"),
			want:  []string{`policies.toml:22:26: allow_private_upstream applies to ALLOW rules only`},
		},
		{
			name:  "partial host wildcard",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"https://a*b.com/\"\n"),
			want:  []string{`policies.toml:21:15: url_pattern host "a*b.com": label "a*b" mixes '*' with other characters: wildcards match whole labels only`},
		},
		{
			name:  "url_pattern with an octal host",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"http://0177.0.0.1/\"\n"),
			want:  []string{`policies.toml:21:15: url_pattern host "0177.0.0.1" is not a valid IPv4 address (only dotted-decimal a.b.c.d is accepted)`},
		},
		{
			name:  "url_pattern with an FTP scheme",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"ftp://a.example/\"\n"),
			want:  []string{`policies.toml:21:15: url_pattern scheme "ftp" must be http or https (lower case)`},
		},
		{
			name:  "url_pattern port out of range",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"https://a.example:65536/\"\n"),
			want:  []string{`policies.toml:21:15: url_pattern port "65536" must be a decimal number from 1 to 65535, or *`},
		},
		{
			name:  "url_pattern with a dot segment",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"https://a.example/ok/../x\"\n"),
			want:  []string{`policies.toml:21:15: url_pattern path segment ".." can never match: request paths are matched after dot-segment removal`},
		},
		{
			name:  "misspelt rule key",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\ninspect_paylod = false\n"),
			want:  []string{`policies.toml:21:1: unknown key "inspect_paylod" in [[policy.rule]]; did you mean "inspect_payload"?`},
		},
		{
			name:  "deprecated splice key",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nsplice = true\n"),
			want:  []string{`policies.toml:21:1: splice is no longer supported; write methods = ["CONNECT"] and inspect_payload = false`},
		},
		{
			name:  "empty methods",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = []\n"),
			want:  []string{`policies.toml:21:11: methods must not be empty; omit it or write ["ANY"] to match every method except CONNECT`},
		},
		{
			name:  "ANY with other methods",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\", \"any\"]\n"),
			want:  []string{`policies.toml:21:19: "ANY" must be the only entry of methods`},
		},
		{
			name:  "CONNECT combined with GET",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\", \"CONNECT\"]\n"),
			want:  []string{`policies.toml:21:19: CONNECT must not be combined with other methods: write a separate CONNECT rule`},
		},
		{
			name:  "duplicate method",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\", \"get\"]\n"),
			want:  []string{`policies.toml:21:19: method "GET" is listed twice`},
		},
		{
			name:  "method that is not a token",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET /\"]\n"),
			want:  []string{`policies.toml:21:12: method "GET /" is not an HTTP token (RFC 9110 §9.1)`},
		},
		{
			name:  "policy without rules",
			files: withPolicies("\n[[policy]]\nname = \"empty\"\n"),
			want:  []string{`policies.toml:16:1: policy "empty" has no rules: add a [[policy.rule]]`},
		},
		{
			name: "duplicate policy name across files",
			files: map[string]string{
				"exfilguard.toml":        baseMain + "policies_dir = \"policies.d\"\n",
				"policies.d/10-web.toml": "[[policy]]\nname = \"web\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\n",
			},
			want: []string{`policies.d/10-web.toml:2:8: duplicate policy name "web" (first defined at policies.toml:1:1)`},
		},
		{
			name:  "cache table on a DENY rule",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\n\n[policy.rule.cache]\n"),
			want:  []string{`policies.toml:23:1: [policy.rule.cache] applies to ALLOW rules for requests, not to DENY or CONNECT rules`},
		},
		{
			name:  "unknown cache key",
			files: withPolicies("\n[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"ALLOW\"\n\n[policy.rule.cache]\nforce_cache_time = 60\n"),
			want:  []string{`policies.toml:23:1: unknown key "force_cache_time" in [policy.rule.cache]; did you mean "force_cache_duration"?`},
		},

		// Policy tests.
		{
			name:  "TUNNEL expected of a GET",
			files: withPolicies("\n[[test]]\nclient = \"10.0.0.1\"\nurl = \"https://example.com/\"\nexpect = \"TUNNEL\"\n"),
			want:  []string{`policies.toml:19:10: expect = "TUNNEL" needs method = "CONNECT"`},
		},
		{
			name:  "test names an unknown rule",
			files: withPolicies("\n[[test]]\nclient = \"10.0.0.1\"\nurl = \"https://example.com/\"\nexpect = \"ALLOW\"\nrule = \"web#3\"\n"),
			want:  []string{`policies.toml:20:8: rule "web#3": policy "web" has 1 rules`},
		},
		{
			name:  "test status with ALLOW",
			files: withPolicies("\n[[test]]\nclient = \"10.0.0.1\"\nurl = \"https://example.com/\"\nexpect = \"ALLOW\"\nstatus = 200\n"),
			want:  []string{`policies.toml:20:10: status is checked for expect = "DENY" only`},
		},
		{
			name:  "test without url",
			files: withPolicies("\n[[test]]\nclient = \"10.0.0.1\"\nexpect = \"ALLOW\"\n"),
			want:  []string{`policies.toml:16:1: [[test]] needs url`},
		},
		{
			name:  "CONNECT test without port",
			files: withPolicies("\n[[test]]\nclient = \"10.0.0.1\"\nmethod = \"CONNECT\"\nurl = \"example.com\"\nexpect = \"BUMP\"\n"),
			want:  []string{`policies.toml:19:7: url "example.com" of a CONNECT test must be host:port`},
		},
		{
			name:  "unknown test key",
			files: withPolicies("\n[[test]]\nclient = \"10.0.0.1\"\nurl = \"https://example.com/\"\nexpect = \"ALLOW\"\nexpected_status = 200\n"),
			want:  []string{`policies.toml:20:1: unknown key "expected_status" in [[test]]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.files)
			_, err := Load(path, Options{Environ: tt.env})
			got := problemLines(err, filepath.Dir(path))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Load problems:\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
	if len(tests) < 40 {
		t.Errorf("only %d invalid-config cases; the issue asks for at least 40", len(tests))
	}
}
