package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// value holds one key's raw TOML value. Decoding into it never fails, so a wrong type
// becomes an issue at the key's line instead of stopping the decoder at the first
// mistake; the typed getters below do the checking.
type value struct {
	v   any
	set bool
}

// UnmarshalTOML implements toml.Unmarshaler.
func (v *value) UnmarshalTOML(data any) error {
	v.v, v.set = data, true
	return nil
}

// tomlType names the TOML type of a raw value for messages.
func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %g", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case time.Time:
		return "datetime"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	}
	return fmt.Sprintf("%T", v)
}

// The getters below take the key's path (for the line) and what to call it in a
// message ("mtu", or `port "a": mtu`).

// str returns a string value; ok is false when the key is absent or has another type
// (then an issue is recorded).
func (is *issues) str(v value, path, what string) (s string, ok bool) {
	if !v.set {
		return "", false
	}
	s, ok = v.v.(string)
	if !ok {
		is.at(path, "%s must be a string, not %s", what, tomlType(v.v))
	}
	return s, ok
}

// integer returns an integer value; ok is false when the key is absent or has another
// type (then an issue is recorded).
func (is *issues) integer(v value, path, what string) (n int64, ok bool) {
	if !v.set {
		return 0, false
	}
	n, ok = v.v.(int64)
	if !ok {
		is.at(path, "%s must be an integer, not %s", what, tomlType(v.v))
	}
	return n, ok
}

// strList returns a list of strings with the path of each element; a single string is
// taken as a list of one. Elements of another type are reported and left out.
func (is *issues) strList(v value, path, what string) (list []string, paths []string) {
	if !v.set {
		return nil, nil
	}
	switch x := v.v.(type) {
	case string:
		return []string{x}, []string{path}
	case []any:
		for i, e := range x {
			ep := indexPath(path, i)
			s, ok := e.(string)
			if !ok {
				is.at(ep, "%s[%d] must be a string, not %s", what, i, tomlType(e))
				continue
			}
			list = append(list, s)
			paths = append(paths, ep)
		}
		return list, paths
	}
	is.at(path, "%s must be a list of strings, not %s", what, tomlType(v.v))
	return nil, nil
}

// boolean returns a boolean value; ok is false when the key is absent or has another
// type (then an issue is recorded).
func (is *issues) boolean(v value, path, what string) (b bool, ok bool) {
	if !v.set {
		return false, false
	}
	b, ok = v.v.(bool)
	if !ok {
		is.at(path, "%s must be true or false, not %s", what, tomlType(v.v))
	}
	return b, ok
}

// duration returns a Go duration string's value ("90s", "15m"), which must lie in
// [min, max]; ok is false when the key is absent or wrong (then an issue is recorded).
func (is *issues) duration(v value, path, what string, min, max time.Duration) (d time.Duration, ok bool) {
	if !v.set {
		return 0, false
	}
	s, ok := v.v.(string)
	if !ok {
		is.at(path, "%s must be a duration string like \"60s\", not %s", what, tomlType(v.v))
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		is.at(path, "%s %q is not a duration (like \"90s\", \"15m\" or \"1h30m\")", what, s)
		return 0, false
	case d < min || d > max:
		is.at(path, "%s %s out of range %s..%s", what, s, fmtDuration(min), fmtDuration(max))
		return 0, false
	}
	return d, true
}

// fmtDuration prints a duration without the zero units time.Duration.String adds
// ("24h" rather than "24h0m0s").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// table returns the keys of an inline or standard table value; ok is false when the key
// is absent or not a table (then an issue is recorded).
func (is *issues) table(v value, path, what string) (map[string]any, bool) {
	if !v.set {
		return nil, false
	}
	m, ok := v.v.(map[string]any)
	if !ok {
		is.at(path, "%s must be a table, not %s", what, tomlType(v.v))
	}
	return m, ok
}

// unknownIn reports the keys of m that are not in known, in sorted order, at their
// lines below path; section names the table in the message.
func (is *issues) unknownIn(m map[string]any, known []string, path, section string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			is.at(joinPath(path, k), "unknown key %q in %s (keys: %s)", k, section, strings.Join(known, ", "))
		}
	}
}
