package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// DefaultPaths are tried in order when no --config is given.
var DefaultPaths = []string{"/etc/exfilguard/exfilguard.toml", "./exfilguard.toml"}

// EnvPrefix starts the names of environment variables that override a
// setting of the main file: EXFILGUARD__LEAF_TTL=3600 sets leaf_ttl.
const EnvPrefix = "EXFILGUARD__"

// Options adjust a load.
type Options struct {
	// Environ is the environment as os.Environ returns it. Only variables
	// named EXFILGUARD__<KEY> are read; nil means no overrides.
	Environ []string
	// CADir, when not empty, replaces ca_dir (the --ca-dir flag). It is
	// taken as given, relative to the working directory.
	CADir string
}

// FindConfig returns the first of DefaultPaths that exists.
func FindConfig() (string, error) {
	for _, p := range DefaultPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no configuration file: neither %s nor %s exists (use --config PATH)", DefaultPaths[0], DefaultPaths[1])
}

// Load reads the main settings file at path, applies environment
// overrides, resolves relative paths against the file's directory, reads
// every clients and policies file and validates the whole. On failure the
// error is an ErrorList holding every problem found in every file.
func Load(path string, opts Options) (*Config, error) {
	p := &problems{sources: map[string][]byte{}}
	c := &Config{File: path, Dir: filepath.Dir(path), Settings: DefaultSettings()}
	root := p.parseFile(path, Pos{File: path})
	if root == nil {
		return nil, p.err()
	}
	c.Files = append(c.Files, path)
	applyEnv(p, root, opts.Environ)
	t := newTable(p, path, root, "the settings")
	decodeSettings(t, &c.Settings)
	c.settingPos = t.pos
	for _, f := range settingFields {
		if f.required && !t.pos.has(f.key) {
			p.add(Pos{File: path}, "missing required setting %q", f.key)
		}
	}
	c.resolvePaths()
	if opts.CADir != "" {
		c.Settings.CADir = opts.CADir
		c.settingPos["ca_dir"] = Pos{File: "--ca-dir"}
	}
	c.validateSettings(p)
	c.loadPolicyFiles(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// ReloadPolicies re-reads and validates the clients and policies files
// named by c's settings; the main file is not read again. It returns a
// new Config sharing c's settings, or every problem found.
func (c *Config) ReloadPolicies() (*Config, error) {
	p := &problems{sources: map[string][]byte{}}
	n := &Config{File: c.File, Dir: c.Dir, Settings: c.Settings, Files: []string{c.File}, settingPos: c.settingPos}
	n.loadPolicyFiles(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return n, nil
}

// parseFile reads and parses one file. Problems reading it are reported
// at from (where the file was named); syntax errors at their position.
func (p *problems) parseFile(path string, from Pos) *node {
	data, err := os.ReadFile(path)
	if err != nil {
		p.add(from, "cannot read %s: %v", path, unwrapPathError(err))
		return nil
	}
	p.sources[path] = data
	if p.order == nil {
		p.order = map[string]int{}
	}
	if _, ok := p.order[path]; !ok {
		p.order[path] = len(p.order) + 1
	}
	root, err := parseTOML(data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Msg: err.Error()}
		}
		e.Pos.File = path
		p.addError(e)
		return nil
	}
	return root
}

// unwrapPathError drops the path from an *fs.PathError, which the message
// already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// resolvePaths makes every relative path setting relative to the main
// file's directory (reference §1.2), after environment overrides.
func (c *Config) resolvePaths() {
	v := reflect.ValueOf(&c.Settings).Elem()
	for _, f := range settingFields {
		if !f.path {
			continue
		}
		fv := v.Field(f.index)
		if s := fv.String(); s != "" && !filepath.IsAbs(s) {
			fv.SetString(filepath.Join(c.Dir, s))
		}
	}
}

// loadPolicyFiles reads the policies files, then the clients files (so
// that policy errors come first, as in the original), each base file
// followed by its directory's *.toml files in byte-wise name order, then
// validates them together.
func (c *Config) loadPolicyFiles(p *problems) {
	s := &c.Settings
	if s.PoliciesFile == "" || s.ClientsFile == "" {
		return // already reported as missing
	}
	// A file that could not be read or parsed makes the set incomplete:
	// checks over the whole set (is there a fallback client, does a named
	// policy exist) would then report consequences, not causes.
	var complete completeness
	complete.policies, complete.clients = true, true
	for _, f := range c.dirFiles(p, s.PoliciesFile, s.PoliciesDir, "policies_dir") {
		root := p.parseFile(f.path, f.from)
		if root == nil {
			complete.policies = false
			continue
		}
		c.Files = append(c.Files, f.path)
		policies, tests := decodePolicies(newTable(p, f.path, root, "a policies file"))
		c.Policies = append(c.Policies, policies...)
		c.Tests = append(c.Tests, tests...)
	}
	for _, f := range c.dirFiles(p, s.ClientsFile, s.ClientsDir, "clients_dir") {
		root := p.parseFile(f.path, f.from)
		if root == nil {
			complete.clients = false
			continue
		}
		c.Files = append(c.Files, f.path)
		c.Clients = append(c.Clients, decodeClients(newTable(p, f.path, root, "a clients file"))...)
	}
	c.validatePolicies(p, complete)
}

type sourceFile struct {
	path string
	from Pos // where the file was named
}

// dirFiles returns base followed by the *.toml regular files of dir in
// byte-wise order. A missing dir is fine; a dir that is not a directory
// is an error. A symbolic link counts when it leads to a regular file
// (Kubernetes mounts ConfigMap files as links); names starting with '.'
// (editor and backup files) are skipped.
func (c *Config) dirFiles(p *problems, base, dir, dirKey string) []sourceFile {
	baseKey := "clients"
	if dirKey == "policies_dir" {
		baseKey = "policies"
	}
	files := []sourceFile{{base, c.settingPos.at(baseKey, Pos{File: c.File})}}
	if dir == "" {
		return files
	}
	dirPos := c.settingPos.at(dirKey, Pos{File: c.File})
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return files
	case err != nil:
		p.add(dirPos, "%s %s: %v", dirKey, dir, unwrapPathError(err))
		return files
	case !fi.IsDir():
		p.add(dirPos, "%s %s is not a directory", dirKey, dir)
		return files
	}
	entries, err := os.ReadDir(dir) // sorted by name, byte-wise
	if err != nil {
		p.add(dirPos, "%s %s: %v", dirKey, dir, unwrapPathError(err))
		return files
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.EqualFold(filepath.Ext(name), ".toml") {
			continue
		}
		path := filepath.Join(dir, name)
		if e.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				p.add(Pos{File: path}, "cannot follow link: %v", unwrapPathError(err))
				continue
			}
			if !fi.Mode().IsRegular() {
				continue
			}
		} else if !e.Type().IsRegular() {
			continue
		}
		files = append(files, sourceFile{path, Pos{File: path}})
	}
	return files
}

// applyEnv replaces settings of root with EXFILGUARD__<KEY> variables. A
// variable that names no setting is an error: a mistyped override must
// not be silently ignored.
func applyEnv(p *problems, root *node, environ []string) {
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if len(name) < len(EnvPrefix) || !strings.EqualFold(name[:len(EnvPrefix)], EnvPrefix) {
			continue
		}
		pos := Pos{File: "environment variable " + name}
		key := strings.ToLower(name[len(EnvPrefix):])
		var field *settingField
		for i := range settingFields {
			if settingFields[i].key == key {
				field = &settingFields[i]
			}
		}
		if field == nil {
			msg := fmt.Sprintf("%s names no setting", name)
			if s := suggest(key, SettingKeys()); s != "" {
				msg += fmt.Sprintf("; did you mean %s%s?", EnvPrefix, strings.ToUpper(s))
			}
			p.add(pos, "%s", msg)
			continue
		}
		n, err := envNode(reflect.TypeFor[Settings]().Field(field.index).Type, value)
		if err != nil {
			p.add(pos, "%s: %v", key, err)
			continue
		}
		n.pos, n.keyPos = pos, pos
		for _, e := range n.array {
			e.pos, e.keyPos = pos, pos
		}
		if _, ok := root.fields[key]; !ok {
			root.keys = append(root.keys, key)
		}
		root.fields[key] = n
	}
}

// envNode types an environment value by the setting it overrides: a
// boolean is true or false, a number plain decimal digits, a list
// comma-separated.
func envNode(t reflect.Type, value string) (*node, error) {
	switch {
	case t == typePrefixes:
		n := &node{kind: kindArray}
		for _, item := range strings.Split(value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				return nil, errors.New("empty item in comma-separated list")
			}
			n.array = append(n.array, &node{kind: kindString, str: item})
		}
		return n, nil
	case t == typeProxyProt && (strings.EqualFold(value, "true") || strings.EqualFold(value, "false")):
		// The file accepts a boolean here (true = required), so the
		// environment does too.
		return &node{kind: kindBool, boolean: strings.EqualFold(value, "true")}, nil
	case t.Kind() == reflect.Bool:
		switch strings.ToLower(value) {
		case "true":
			return &node{kind: kindBool, boolean: true}, nil
		case "false":
			return &node{kind: kindBool}, nil
		}
		return nil, fmt.Errorf("%q is not true or false", value)
	case t.Kind() == reflect.Int64:
		var n int64
		if value == "" || len(value) > 18 {
			return nil, fmt.Errorf("%q is not a whole number", value)
		}
		for i := 0; i < len(value); i++ {
			if value[i] < '0' || value[i] > '9' {
				return nil, fmt.Errorf("%q is not a whole number", value)
			}
			n = n*10 + int64(value[i]-'0')
		}
		return &node{kind: kindInteger, integer: n}, nil
	}
	return &node{kind: kindString, str: value}, nil
}
