package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the YAML path of the offending key, e.g. queues[1].deadline.voicemail; for an
	// unknown environment variable it is the variable's name; empty for whole-file problems.
	Path    string
	Message string
	// Where says where the offending value came from: "line 12" of the file, or the name of the
	// CALLBACKD_* variable that set it. Empty when the value is a default or missing.
	Where string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	switch {
	case strings.HasPrefix(p.Where, EnvPrefix):
		b.WriteString(" (from " + p.Where + ")")
	case p.Where != "":
		b.WriteString(" (" + p.Where + ")")
	}
	return b.String()
}

// ValidationError lists every problem found, in the order they were found: file problems in
// file order, then environment problems, then validation problems section by section.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads the YAML file at path, applies CALLBACKD_* overrides found by env (os.LookupEnv in
// the daemon) and validates the result. Problems with the configuration come back as a
// *ValidationError listing all of them.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, env)
}

// LoadEnviron is Load with the complete environment (os.Environ()), which also lets it report
// CALLBACKD_* variables that name no configuration key.
func LoadEnviron(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseEnviron(data, environ)
}

// Parse is Load for a YAML document already in memory. env may be nil.
func Parse(data []byte, env func(string) (string, bool)) (*Config, error) {
	return parse(data, env, nil, UseDaemon)
}

// ParseEnviron is Parse with the complete environment as KEY=VALUE strings.
func ParseEnviron(data []byte, environ []string) (*Config, error) {
	return ParseEnvironFor(UseDaemon, data, environ)
}

// environLookup turns KEY=VALUE strings into a lookup, and nil into an empty environment (so
// unknown CALLBACKD_* variables are still looked for).
func environLookup(environ []string) (func(string) (string, bool), []string) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	if environ == nil {
		environ = []string{}
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }, environ
}

func parse(data []byte, env func(string) (string, bool), environ []string, use Use) (*Config, error) {
	c := Default()
	d := &decoder{where: map[string]string{}}
	root, err := parseDocument(data)
	if err != nil {
		return nil, &ValidationError{Problems: []Problem{{Message: err.Error()}}}
	}
	if root != nil {
		d.decode("", root, reflect.ValueOf(c).Elem())
	}
	d.applyEnv(c, env, environ)
	v := &validator{where: d.where, problems: d.problems, use: use}
	v.normalize(c)
	v.config(c)
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return c, nil
}

// parseDocument returns the root node of the single YAML document in data, or nil for an empty
// file.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil, fmt.Errorf("invalid YAML: line %d: only one document is allowed", extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// Marshal renders c as YAML with secrets masked: what `callbackd config check` prints.
func Marshal(c *Config) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding config as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config as YAML: %w", err)
	}
	return b.Bytes(), nil
}
