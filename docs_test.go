package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"exfilguard/conf"
)

// The documentation is checked against the code and the real binary, so
// that it cannot drift: every setting and its default, every metric family
// with its type and labels, every log message, field and reason word, the
// commands shown with their output, and every link.

// mdBlock is a fenced code block of a Markdown file.
type mdBlock struct {
	lang string
	body string
	line int // of the opening fence
}

// codeBlocks returns the fenced code blocks of md in order.
func codeBlocks(md string) []mdBlock {
	var out []mdBlock
	var cur *mdBlock
	var body strings.Builder
	for i, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &mdBlock{lang: strings.TrimPrefix(line, "```"), line: i + 1}
			body.Reset()
		case cur != nil && line == "```":
			cur.body = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	return out
}

// section returns the part of md after the heading line head, up to the
// next heading of the same or a higher level outside a code block.
func section(tb testing.TB, md, head string) string {
	tb.Helper()
	level := len(head) - len(strings.TrimLeft(head, "#"))
	lines := strings.Split(md, "\n")
	start := slices.Index(lines, head)
	if start < 0 {
		tb.Fatalf("no heading %q", head)
	}
	inFence := false
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if n := len(l) - len(strings.TrimLeft(l, "#")); !inFence && n > 0 && n <= level && strings.HasPrefix(l[n:], " ") {
			return strings.Join(lines[start+1:i], "\n")
		}
	}
	return strings.Join(lines[start+1:], "\n")
}

// mdTable is a Markdown table: its header cells and rows of cells.
type mdTable struct {
	header []string
	rows   [][]string
}

// tables returns the tables of md.
func tables(md string) []mdTable {
	var out []mdTable
	var cur *mdTable
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		// No table of these documents has a '|' inside a cell.
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case cur == nil:
			cur = &mdTable{header: cells}
		case strings.Trim(line, "|-") == "":
		default:
			cur.rows = append(cur.rows, cells)
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// tableWithHeader returns the table of md whose first header cell is h.
func tableWithHeader(tb testing.TB, md, h string) mdTable {
	tb.Helper()
	for _, t := range tables(md) {
		if t.header[0] == h {
			return t
		}
	}
	tb.Fatalf("no table with the header %q", h)
	return mdTable{}
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// codeNames returns the code spans of a table cell: "`a`, `b`" → a, b.
func codeNames(cell string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

func readDoc(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestDocsSettings: docs/configuration.md has one section per setting of
// conf.Settings, in the struct's order, each with a type, a reload line
// and the default the code applies.
func TestDocsSettings(t *testing.T) {
	md := readDoc(t, "docs/configuration.md")
	heading := regexp.MustCompile("(?m)^### `([a-z0-9_]+)`$")
	var documented []string
	for _, m := range heading.FindAllStringSubmatch(md, -1) {
		documented = append(documented, m[1])
	}
	keys := conf.SettingKeys()
	if !slices.Equal(documented, keys) {
		for _, k := range keys {
			if !slices.Contains(documented, k) {
				t.Errorf("setting %s is not documented in docs/configuration.md", k)
			}
		}
		for _, k := range documented {
			if !slices.Contains(keys, k) {
				t.Errorf("docs/configuration.md documents %s, which is not a setting", k)
			}
		}
		if !t.Failed() {
			t.Errorf("docs/configuration.md lists the settings in the order\n%v\nwant the order of conf.Settings\n%v", documented, keys)
		}
	}

	defaults := loadedDefaults(t)
	for _, key := range keys {
		body := section(t, md, "### `"+key+"`")
		fields := map[string]string{}
		for _, line := range strings.Split(body, "\n") {
			if name, value, ok := strings.Cut(strings.TrimPrefix(line, "- **"), ":** "); ok && strings.HasPrefix(line, "- **") {
				fields[name] = value
			}
		}
		for _, f := range []string{"Type", "Default", "Reload"} {
			if fields[f] == "" {
				t.Errorf("### `%s` has no **%s:** line", key, f)
			}
		}
		if got, want := docDefault(fields["Default"]), defaults[key]; got != want {
			t.Errorf("### `%s`: default %s, want %s (what conf.Load applies)", key, got, want)
		}
		if !strings.Contains(body, "\n\n") || len(strings.TrimSpace(body)) < 80 {
			t.Errorf("### `%s` has no description", key)
		}
	}
}

// docDefault returns the documented default's leading form: a code span,
// "unset" or "none (required)".
func docDefault(s string) string {
	if m := codeSpan.FindStringSubmatchIndex(s); m != nil && m[0] == 0 {
		return s[:m[1]]
	}
	for _, w := range []string{"none (required)", "unset"} {
		if strings.HasPrefix(s, w) {
			return w
		}
	}
	return s
}

// loadedDefaults loads a main file with the required settings only and
// returns each setting's value as the documentation writes a default.
func loadedDefaults(tb testing.TB) map[string]string {
	tb.Helper()
	dir := tb.TempDir()
	for name, text := range map[string]string{
		"exfilguard.toml": "listen = \"127.0.0.1:3128\"\nca_dir = \"ca\"\nclients = \"clients.toml\"\npolicies = \"policies.toml\"\n",
		"clients.toml":    "[[client]]\nname = \"all\"\ncidr = \"0.0.0.0/0\"\npolicies = [\"deny\"]\nfallback = true\n",
		"policies.toml":   "[[policy]]\nname = \"deny\"\n[[policy.rule]]\naction = \"DENY\"\nstatus = 403\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	cfg, err := conf.Load(filepath.Join(dir, "exfilguard.toml"), conf.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	v := reflect.ValueOf(cfg.Settings)
	st := v.Type()
	for i := range st.NumField() {
		tag := strings.Split(st.Field(i).Tag.Get("toml"), ",")
		if tag[0] == "" {
			continue
		}
		if slices.Contains(tag[1:], "required") {
			out[tag[0]] = "none (required)"
			continue
		}
		out[tag[0]] = formatDefault(v.Field(i).Interface())
	}
	return out
}

func formatDefault(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return fmt.Sprintf("`%d`", int64(v/time.Second))
	case int64:
		return fmt.Sprintf("`%d`", v)
	case bool:
		return fmt.Sprintf("`%t`", v)
	case netip.AddrPort:
		if !v.IsValid() {
			return "unset"
		}
		return fmt.Sprintf("`%q`", v.String())
	case []netip.Prefix:
		if v == nil {
			return "unset"
		}
		return fmt.Sprintf("`%v`", v)
	}
	if s := reflect.ValueOf(v); s.Kind() == reflect.String {
		if s.String() == "" {
			return "unset"
		}
		return fmt.Sprintf("`%q`", s.String())
	}
	panic(fmt.Sprintf("formatDefault: no format for %T", v))
}

// TestDocsOperations runs the binary with a metrics endpoint, sends it a
// forwarded, a denied and a malformed request and a CONNECT, reloads and
// stops it, and checks docs/operations.md against what it saw: every
// metric family with its type and labels, every log message with its
// fields, every decision record field and reason word.
func TestDocsOperations(t *testing.T) {
	md := readDoc(t, "docs/operations.md")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	dir := opsConfig(t, allowLocal, allowLocal)
	addr, cmd, logs := startBinary(t, filepath.Join(dir, "exfilguard.toml"), "EXFILGUARD__METRICS_LISTEN=127.0.0.1:0")
	maddr := logAddress(t, logs.String(), "metrics endpoint started")

	if s := proxyGet(t, addr, nil, nil, up.URL+"/x"); s != 200 {
		t.Errorf("allowed request: %d, want 200", s)
	}
	if s := proxyGet(t, addr, nil, nil, "http://example.com/"); s != 403 {
		t.Errorf("denied request: %d, want 403", s)
	}
	for _, raw := range []string{
		"GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n", // refused before it is read whole
		"CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n",         // denied: the policy has no https rule
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, raw)
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Errorf("%q: %v", raw, err)
		}
		c.Close()
	}
	waitLog(t, logs, `"msg":"decision"`, 4)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, logs, "configuration reloaded", 1)
	metricsText := scrape(t, maddr)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}

	t.Run("metric families", func(t *testing.T) {
		checkMetricsTable(t, section(t, md, "## Metrics"), metricsText)
	})
	t.Run("log lines", func(t *testing.T) {
		checkLogDocs(t, md, logs.String())
	})
	t.Run("reason words", func(t *testing.T) {
		documented := map[string]bool{}
		for _, row := range tableWithHeader(t, section(t, md, "### Decision records"), "`reason`").rows {
			documented[codeNames(row[0])[0]] = true
		}
		code := reasonWords(t)
		for _, w := range code {
			if !documented[w] {
				t.Errorf("reason %q is in the code but not in the reason table of docs/operations.md", w)
			}
		}
		for w := range documented {
			if !slices.Contains(code, w) {
				t.Errorf("docs/operations.md documents reason %q, which the code does not have", w)
			}
		}
	})
}

// checkMetricsTable compares the metrics table with a scrape: the same
// families, each with its # TYPE and the label names of its samples.
func checkMetricsTable(t *testing.T, md, scraped string) {
	type family struct {
		typ    string
		labels []string
	}
	got := map[string]*family{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(scraped, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			got[f[2]] = &family{typ: f[3]}
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		name := m[1]
		if got[name] == nil {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base := strings.TrimSuffix(name, suffix); base != name && got[base] != nil {
					name = base
				}
			}
		}
		fam := got[name]
		if fam == nil {
			t.Errorf("sample %q has no # TYPE line", line)
			continue
		}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "le" && !slices.Contains(fam.labels, l[1]) {
				fam.labels = append(fam.labels, l[1])
			}
		}
	}
	if len(got) < 20 {
		t.Fatalf("scrape has only %d families:\n%s", len(got), scraped)
	}
	documented := map[string]bool{}
	for _, row := range tableWithHeader(t, md, "Family").rows {
		name := codeNames(row[0])[0]
		documented[name] = true
		fam := got[name]
		if fam == nil {
			t.Errorf("docs/operations.md documents metric %s, which the binary does not serve", name)
			continue
		}
		if row[1] != fam.typ {
			t.Errorf("%s: documented as %s, served as %s", name, row[1], fam.typ)
		}
		if doc := codeNames(row[2]); !slices.Equal(doc, fam.labels) {
			t.Errorf("%s: documented labels %q, served %q", name, doc, fam.labels)
		}
		if len(row) < 4 || row[3] == "" {
			t.Errorf("%s has no meaning", name)
		}
	}
	for name := range got {
		if !documented[name] {
			t.Errorf("metric family %s is not documented in docs/operations.md", name)
		}
	}
}

// checkLogDocs checks every JSON log line against the documentation: a
// decision record's fields against the field table, any other line's
// message and fields against the table of other log lines.
func checkLogDocs(t *testing.T, md, logs string) {
	decisionFields := map[string]bool{"time": true, "level": true, "msg": true}
	for _, row := range tableWithHeader(t, section(t, md, "### Decision records"), "Field").rows {
		for _, f := range codeNames(row[0]) {
			decisionFields[f] = true
		}
	}
	others := map[string][]string{}
	for _, row := range tableWithHeader(t, section(t, md, "### Other log lines"), "`msg`").rows {
		others[codeNames(row[0])[0]] = codeNames(row[2])
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		msg, _ := rec["msg"].(string)
		seen[msg] = true
		for k := range rec {
			switch {
			case k == "time" || k == "level" || k == "msg":
			case msg == "decision" && !decisionFields[k]:
				t.Errorf("decision field %q is not documented: %s", k, line)
			case msg != "decision" && others[msg] != nil && !slices.Contains(others[msg], k):
				t.Errorf("field %q of %q is not documented: %s", k, msg, line)
			}
		}
		if _, ok := others[msg]; msg != "decision" && !ok {
			t.Errorf("log message %q is not in the table of other log lines", msg)
		}
	}
	for _, msg := range []string{"decision", "proxy listener started", "metrics endpoint started", "generated new certificate authority material", "configuration reloaded", "shutting down", "stopped"} {
		if !seen[msg] {
			t.Errorf("the run logged no %q line, so its documentation was not checked", msg)
		}
	}
}

// reasonWords returns the decision record reason words the code defines:
// string constants named Reason… or reason…, and the string literals that
// methods named Reason return.
func reasonWords(tb testing.TB) []string {
	tb.Helper()
	name := regexp.MustCompile(`^[Rr]eason[A-Z]`)
	var words []string
	add := func(lit ast.Expr) {
		if bl, ok := lit.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			if w, err := strconv.Unquote(bl.Value); err == nil && !slices.Contains(words, w) {
				words = append(words, w)
			}
		}
	}
	for _, root := range []string{"proxy", "policy"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.ValueSpec:
					for i, id := range n.Names {
						if name.MatchString(id.Name) && i < len(n.Values) {
							add(n.Values[i])
						}
					}
				case *ast.FuncDecl:
					if n.Name.Name == "Reason" && n.Body != nil {
						ast.Inspect(n.Body, func(m ast.Node) bool {
							if r, ok := m.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
								add(r.Results[0])
							}
							return true
						})
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if len(words) < 15 {
		tb.Fatalf("found only %d reason words: %q", len(words), words)
	}
	return words
}

// TestDocsCommands runs the `exfilguard check` and `exfilguard explain`
// commands that docs/*.md show with their output, and compares.
func TestDocsCommands(t *testing.T) {
	files, _ := filepath.Glob("docs/*.md")
	ran := 0
	for _, file := range files {
		blocks := codeBlocks(readDoc(t, file))
		for i := 0; i+1 < len(blocks); i++ {
			b, out := blocks[i], blocks[i+1]
			if b.lang != "sh" || out.lang != "text" {
				continue
			}
			args := strings.Fields(b.body)
			if len(args) < 2 || args[0] != "exfilguard" || args[1] != "check" && args[1] != "explain" || strings.Count(b.body, "\n") != 1 {
				t.Errorf("%s:%d: a command shown with its output must be one exfilguard check or explain command", file, b.line)
				continue
			}
			stdout, stderr, _ := exfilguard(t, nil, args[1:]...)
			if stdout != out.body {
				t.Errorf("%s:%d: %s\nprints:\n%s%s\nthe documentation shows:\n%s", file, b.line, strings.TrimSpace(b.body), stdout, stderr, out.body)
			}
			ran++
		}
	}
	if ran == 0 {
		t.Fatal("no documented command was run")
	}
}

// TestDocsLinks: every relative link of README.md and docs/*.md names a
// file that exists and, with a #fragment, a heading of it.
func TestDocsLinks(t *testing.T) {
	files, _ := filepath.Glob("docs/*.md")
	files = append(files, "README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range files {
		md := readDoc(t, file)
		for _, m := range link.FindAllStringSubmatch(md, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
			}
			text, err := os.ReadFile(resolved)
			if err != nil {
				t.Errorf("%s: link %s: %v", file, target, err)
				continue
			}
			if frag != "" && !slices.Contains(headingSlugs(string(text)), frag) {
				t.Errorf("%s: link %s: %s has no heading #%s", file, target, resolved, frag)
			}
		}
	}
}

// headingSlugs returns the anchors GitHub makes for the headings of md:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-'.
func headingSlugs(md string) []string {
	var out []string
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestTour runs the README's five-minute tour as written: each command of
// its sh blocks in order, comparing the output of a block's last command
// with the text block that follows it and the decision record with the
// log block. Three commands cannot run literally in a test and are
// translated: `make build` (the test binary stands in for bin/exfilguard),
// starting the proxy with `&` (it listens on a free port instead of 3128,
// which the commands are pointed at, and keeps its CA in a temporary
// directory) and `kill … $!` (the test signals the process it started, and
// waits for the reload to be logged before the next command, where a
// person would be slower than the proxy).
func TestTour(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	readme := readDoc(t, "README.md")
	top := codeBlocks(readme)[0]
	if want := "go run . --config examples/quickstart/exfilguard.toml   # run the proxy on the quickstart config\nmake test                                                 # run the tests\n"; top.body != want {
		t.Errorf("README's first block is\n%s\nwant the two commands\n%s", top.body, want)
	}

	const tourPath = "/tmp/exfilguard-tour"
	tour := t.TempDir() + "/tour"
	tmp := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		// The commands must see neither overrides nor proxy exemptions.
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "EXFILGUARD__") && !strings.EqualFold(k, "no_proxy") {
			env = append(env, kv)
		}
	}
	var (
		proxy     *exec.Cmd
		logs      syncBuffer
		proxyAddr string
		lastOut   string
		lastCmd   string
		ran       []string
	)
	defer func() {
		if proxy != nil && proxy.ProcessState == nil {
			proxy.Process.Kill()
			proxy.Wait()
		}
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; log:\n%s", what, logs.String())
			}
		}
	}

	blocks := codeBlocks(section(t, readme, "## Five-minute tour"))
	// Report README line numbers, not the section's.
	offset := slices.Index(strings.Split(readme, "\n"), "## Five-minute tour") + 1
	for i := range blocks {
		blocks[i].line += offset
	}
	for i, b := range blocks {
		switch b.lang {
		case "sh":
			lines := strings.Split(strings.TrimSpace(b.body), "\n")
			for j, line := range lines {
				// A command whose output the README shows may fail (a
				// check that finds a problem); any other must succeed.
				shown := j == len(lines)-1 && i+1 < len(blocks) && blocks[i+1].lang == "text"
				lastCmd, lastOut = line, ""
				ran = append(ran, line)
				switch {
				case line == "make build":
				case strings.HasPrefix(line, "bin/exfilguard ") && strings.HasSuffix(line, " &"):
					args := strings.Fields(strings.ReplaceAll(strings.TrimSuffix(line, " &"), tourPath, tour))[1:]
					proxy = exec.Command(binary, args...)
					proxy.Env = append(env, "EXFILGUARD__LISTEN=127.0.0.1:0", "EXFILGUARD__CA_DIR="+tmp+"/ca", "EXFILGUARD__CERT_CACHE_DIR="+tmp+"/certs")
					proxy.Stdout, proxy.Stderr = &logs, &logs
					if err := proxy.Start(); err != nil {
						t.Fatal(err)
					}
					started := regexp.MustCompile(`msg="proxy listener started" address=(\S+)`)
					waitFor("the proxy to listen", func() bool { return started.MatchString(logs.String()) })
					proxyAddr = started.FindStringSubmatch(logs.String())[1]
				case line == "kill -HUP $!":
					n := strings.Count(logs.String(), "configuration reload")
					proxy.Process.Signal(syscall.SIGHUP)
					waitFor("the reload", func() bool { return strings.Count(logs.String(), "configuration reload") > n })
				case line == "kill $!":
					proxy.Process.Signal(syscall.SIGTERM)
					if err := proxy.Wait(); err != nil {
						t.Errorf("proxy exit after SIGTERM: %v\n%s", err, logs.String())
					}
				default:
					cmdline := strings.ReplaceAll(line, tourPath, tour)
					cmdline = strings.ReplaceAll(cmdline, "bin/exfilguard", binary)
					if proxyAddr != "" {
						cmdline = strings.ReplaceAll(cmdline, "127.0.0.1:3128", proxyAddr)
					}
					c := exec.Command("sh", "-c", cmdline)
					c.Env = env
					var stdout, stderr strings.Builder
					c.Stdout, c.Stderr = &stdout, &stderr
					err := c.Run()
					lastOut = strings.ReplaceAll(stdout.String(), "\r\n", "\n")
					if err != nil && !shown {
						t.Errorf("%s: %v\n%s%s", line, err, lastOut, stderr.String())
					}
				}
			}
		case "text":
			want := strings.ReplaceAll(b.body, tourPath, tour)
			if lastOut != want {
				t.Errorf("README:%d: %s\nprints:\n%s\nthe README shows:\n%s", b.line, lastCmd, lastOut, want)
			}
		case "log":
			checkLogSample(t, b, &logs)
		}
	}
	if proxy == nil || proxy.ProcessState == nil {
		t.Errorf("the tour does not stop the proxy it starts")
	}
	if len(ran) < 10 {
		t.Errorf("the tour ran only %d commands: %q", len(ran), ran)
	}
}

// checkLogSample compares a README log block (text format, "…" for the
// values that change from run to run) with the decision records, waiting
// for one that agrees: the record is written just after the response.
func checkLogSample(t *testing.T, b mdBlock, logs *syncBuffer) {
	t.Helper()
	var last, mismatch string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, " msg=decision ") {
				last = line
			}
		}
		got := map[string]string{}
		for _, kv := range strings.Fields(last) {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		mismatch = ""
		for _, kv := range strings.Fields(b.body) {
			k, v, _ := strings.Cut(kv, "=")
			if gv, ok := got[k]; !ok || v != "…" && gv != v {
				mismatch = fmt.Sprintf("%s=%s, where the decision record has %s=%q", k, v, k, gv)
				break
			}
		}
		if mismatch == "" {
			return
		}
	}
	t.Errorf("README:%d: the log block shows %s:\n%s", b.line, mismatch, last)
}
