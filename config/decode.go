package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the work a document may cause; YAML aliases can otherwise expand a small
// file into billions of nodes.
const maxNodes = 100000

var (
	durationType = reflect.TypeOf(Duration(0))
	asteriskType = reflect.TypeOf(Asterisk{})
	queueType    = reflect.TypeOf(Queue{})
	webhookType  = reflect.TypeOf(Webhook{})
	allowType    = reflect.TypeOf(Allow{})
)

// decoder copies a yaml.Node tree into a Config by walking both together. It is hand-rolled
// rather than yaml.Decoder so that every unknown key and every bad value is reported with its
// YAML path, all in one pass, instead of stopping at the first.
type decoder struct {
	problems []Problem
	// where records, per YAML path that was set, where its value came from ("line 12" or
	// "CALLBACKD_X"); validation problems point there.
	where map[string]string
	nodes int
	// merging holds the mappings whose merge keys are being applied, to catch a mapping that
	// merges itself (`base: &b {<<: *b}`), which would otherwise recurse forever.
	merging map[*yaml.Node]bool
}

func (d *decoder) add(path, where, format string, args ...any) {
	d.problems = append(d.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...), Where: where})
}

func line(n *yaml.Node) string { return "line " + strconv.Itoa(n.Line) }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode stores n into v. A null value leaves v as it was, so `password:` with nothing after it
// keeps the default rather than silently becoming something else.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.add(path, line(n), "document too large or too many aliases (more than %d values)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.add(path, line(n), "unresolved alias")
			return
		}
		d.decode(path, n.Alias, v)
		return
	}
	if isNull(n) {
		return
	}
	if _, ok := d.where[path]; !ok && path != "" {
		d.where[path] = line(n)
	}
	t := v.Type()
	switch {
	case t == durationType || t.Kind() == reflect.String || t.Kind() == reflect.Int ||
		t.Kind() == reflect.Float64 || t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.add(path, line(n), "expected %s, got a %s", describe(t), kindName(n))
			return
		}
		if err := setScalar(v, n.Value); err != nil {
			d.add(path, line(n), "%v", err)
		}
	case t == allowType && n.Kind == yaml.SequenceNode:
		// dialer.allow's older form: a plain list of patterns.
		d.decodeSlice(path, n, v.FieldByName("Patterns"))
	case t.Kind() == reflect.Struct:
		d.decodeStruct(path, n, v)
	case t.Kind() == reflect.Slice:
		d.decodeSlice(path, n, v)
	default:
		// Only reachable if a field of an unsupported type is added to Config.
		d.add(path, line(n), "internal error: cannot decode into %s", t)
	}
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.add(path, line(n), "expected a mapping of keys, got a %s", kindName(n))
		return
	}
	// Merge keys (<<: *anchor) are applied first so that keys written out explicitly win,
	// whatever their order in the file.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && (k.Tag == "!!merge" || k.Value == "<<") {
			d.decodeMerge(path, val, v)
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(path, line(k), "keys must be plain words, got a %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" || k.Value == "<<" {
			continue
		}
		key := k.Value
		p := joinKey(path, key)
		if seen[key] {
			d.add(p, line(k), "duplicate key")
			continue
		}
		seen[key] = true
		f, ok := fieldByTag(v, key)
		if !ok {
			d.add(p, line(k), "unknown key")
			continue
		}
		// The key's line, not the value's: for a nested mapping the value starts a line later,
		// and a problem with the section as a whole belongs to the line that names it.
		if !isNull(val) {
			d.where[p] = line(k)
		}
		d.decode(p, val, f)
	}
}

func (d *decoder) decodeMerge(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		if d.merging[n] {
			d.add(path, line(n), "merge key (<<) refers to a mapping that is being merged already (an anchor merged into itself)")
			return
		}
		if d.merging == nil {
			d.merging = map[*yaml.Node]bool{}
		}
		d.merging[n] = true
		d.decodeStruct(path, n, v)
		delete(d.merging, n)
	case yaml.SequenceNode:
		for _, m := range n.Content {
			d.decodeMerge(path, m, v)
		}
	default:
		d.add(path, line(n), "merge key (<<) needs a mapping or a list of mappings, got a %s", kindName(n))
	}
}

func (d *decoder) decodeSlice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.add(path, line(n), "expected a list, got a %s", kindName(n))
		return
	}
	t := v.Type()
	if len(n.Content) == 0 {
		// nil, not empty: an empty list and an absent one mean the same, and compare equal.
		v.Set(reflect.Zero(t))
		return
	}
	out := reflect.MakeSlice(t, len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		elem := out.Index(i)
		elem.Set(itemDefault(t.Elem()))
		if t.Elem().Kind() == reflect.String {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				d.add(p, line(item), "expected a string, got a %s", describeNode(item))
				continue
			}
			d.where[p] = line(item)
			elem.SetString(item.Value)
			continue
		}
		d.decode(p, item, elem)
	}
	v.Set(out)
}

// itemDefault is the value a new list entry starts from, so that per-entry defaults apply to
// every entry of the asterisk and queues lists.
func itemDefault(t reflect.Type) reflect.Value {
	switch t {
	case asteriskType:
		return reflect.ValueOf(DefaultAsterisk())
	case queueType:
		return reflect.ValueOf(DefaultQueue())
	case webhookType:
		return reflect.ValueOf(DefaultWebhook())
	}
	return reflect.Zero(t)
}

// fieldByTag finds the field of struct v whose yaml tag is key.
func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if yamlName(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// setScalar parses s into the scalar v; the YAML file and the environment share it so both
// accept exactly the same spellings.
func setScalar(v reflect.Value, s string) error {
	t := v.Type()
	switch {
	case t == durationType:
		dur, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.String:
		v.SetString(s)
	case t.Kind() == reflect.Int:
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(int64(i))
	case t.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		// []string and lists of named string types such as []Role alike.
		words := splitList(s)
		if words == nil {
			v.Set(reflect.Zero(t))
			break
		}
		out := reflect.MakeSlice(t, len(words), len(words))
		for i, w := range words {
			out.Index(i).SetString(w)
		}
		v.Set(out)
	default:
		return fmt.Errorf("internal error: cannot set %s", t)
	}
	return nil
}

// parseBool accepts the spellings PBX administrators use in Asterisk configs as well as YAML's.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (use true or false)", s)
}

// splitList splits an environment value on commas that are not inside (), [] or {}, so regexps
// such as ^[0-9]{2,6}$ survive being put in one variable.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Int:
		return "an integer"
	case t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	}
	return t.String()
}

func describeNode(n *yaml.Node) string {
	if isNull(n) {
		return "empty value"
	}
	return kindName(n)
}

// EnvPrefix starts every environment override.
const EnvPrefix = "CALLBACKD_"

// envLeaf is one configuration key that an environment variable can set.
type envLeaf struct {
	path, name string
	v          reflect.Value
}

// envLeaves lists every settable key of c in file order: scalars and string lists, and the
// fields of list entries that exist after the file was read (entries are added in the file,
// not from the environment, because an index alone cannot say what the entry is).
func envLeaves(v reflect.Value, path, name string, out []envLeaf) []envLeaf {
	t := v.Type()
	switch {
	case t == allowType:
		// CALLBACKD_DIALER_ALLOW keeps setting the patterns, as it did when the key was a list.
		out = append(out, envLeaf{path: path, name: name, v: v.FieldByName("Patterns")})
		fallthrough
	case t.Kind() == reflect.Struct && t != durationType:
		for i := 0; i < t.NumField(); i++ {
			key := yamlName(t.Field(i))
			if key == "" {
				continue
			}
			out = envLeaves(v.Field(i), joinKey(path, key), name+"_"+strings.ToUpper(key), out)
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		for i := 0; i < v.Len(); i++ {
			out = envLeaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%s_%d", name, i), out)
		}
	default:
		out = append(out, envLeaf{path: path, name: name, v: v})
	}
	return out
}

// applyEnv sets every key whose CALLBACKD_* variable lookup finds. When environ is not nil it
// is the complete environment, and CALLBACKD_* variables that name no key are reported too:
// a typo in a variable name must not silently leave a password at its default.
func (d *decoder) applyEnv(c *Config, lookup func(string) (string, bool), environ []string) {
	leaves := envLeaves(reflect.ValueOf(c).Elem(), "", strings.TrimSuffix(EnvPrefix, "_"), nil)
	known := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		known[l.name] = true
		if lookup == nil {
			continue
		}
		s, ok := lookup(l.name)
		if !ok {
			continue
		}
		d.where[l.path] = l.name
		if err := setScalar(l.v, s); err != nil {
			d.add(l.path, l.name, "%v", err)
		}
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && !known[name] {
			d.add(name, "", "environment variable names no configuration key")
		}
	}
}
