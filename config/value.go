package config

import (
	"fmt"
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
