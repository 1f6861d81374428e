package conf

import (
	"fmt"
	"strings"
	"testing"
)

// policies10k generates a policies file of 100 policies with 100 rules each
// (10,000 rules), in the shapes real files use.
func policies10k() string {
	var b strings.Builder
	for p := range 100 {
		fmt.Fprintf(&b, "[[policy]]\nname = \"policy-%d\"\n\n", p)
		for r := range 100 {
			switch r % 4 {
			case 0:
				fmt.Fprintf(&b, "[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\", \"HEAD\"]\nurl_pattern = \"https://api-%d.example.com/v1/items/*/detail/**\"\n\n", r)
			case 1:
				fmt.Fprintf(&b, "[[policy.rule]]\naction = \"DENY\"\nmethods = [\"POST\"]\nurl_pattern = \"https://*.svc-%d.example.net:8443/admin/**\"\nstatus = 403\nreason = \"Forbidden here\"\nbody = \"no\\n\"\n\n", r)
			case 2:
				fmt.Fprintf(&b, "[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"http://10.%d.%d.1:*/status\"\nallow_private_upstream = true\n\n", p, r)
			case 3:
				fmt.Fprintf(&b, "[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"PUT\", \"PATCH\", \"DELETE\"] # writes\nurl_pattern = \"https://**.store-%d.example.org/buckets/**\"\n\n", r)
			}
		}
	}
	b.WriteString("[[policy]]\nname = \"web\"\n\n[[policy.rule]]\naction = \"ALLOW\"\n\n[[policy]]\nname = \"deny\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\n")
	return b.String()
}

// BenchmarkLoad10kRules loads a configuration whose policies file holds
// 10,000 rules: read, parse, decode and validate.
func BenchmarkLoad10kRules(b *testing.B) {
	text := policies10k()
	path := writeConfig(b, map[string]string{"policies.toml": text})
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Load(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(cfg.Policies); n != 102 {
			b.Fatalf("%d policies", n)
		}
	}
}

// BenchmarkParse10kRules is the TOML parse alone, for comparison.
func BenchmarkParse10kRules(b *testing.B) {
	data := []byte(policies10k())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseTOML(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad10kClients: the overlap check stays O(n log n).
func BenchmarkLoad10kClients(b *testing.B) {
	var c strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&c, "[[client]]\nname = \"c%d\"\ncidr = \"10.%d.%d.0/24\"\npolicies = [\"web\"]\n\n", i, i/256, i%256)
	}
	c.WriteString("[[client]]\nname = \"rest\"\ncidr = \"0.0.0.0/0\"\npolicies = [\"deny\"]\nfallback = true\n")
	path := writeConfig(b, map[string]string{"clients.toml": c.String()})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
