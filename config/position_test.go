package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestPosIndex(t *testing.T) {
	doc := `# a comment with [brackets] and = signs
top = "x" # trailing comment
"quoted.key" = 1
dotted.inner = 2
text = """
first [line]
second = line ""
"""
lit = '''
[[not a header]]
'''
list = [
  "a", # comment
  [1, 2],
  { k = "v", n.m = 3 },
]

[table]
key = 'v'

[[port]]
name = "a"

[[port]]
name = "b"
server = [{ address = "x" },
          { address = "y" }]

[port.sub]
deep = true

[[port.nested]]
x = 1
[[port.nested]]
x = 2
`
	if _, err := toml.Decode(doc, new(map[string]any)); err != nil {
		t.Fatalf("test document is not TOML: %v", err)
	}
	ix := newPosIndex(doc)
	want := map[string]int{
		"top":                       2,
		"quoted.key":                3,
		"dotted.inner":              4,
		"text":                      5,
		"lit":                       9,
		"list":                      12,
		"list[0]":                   13,
		"list[1]":                   14,
		"list[1][1]":                14,
		"list[2]":                   15,
		"list[2].k":                 15,
		"list[2].n.m":               15,
		"table":                     18,
		"table.key":                 19,
		"port[0]":                   21,
		"port[0].name":              22,
		"port[1]":                   24,
		"port[1].name":              25,
		"port[1].server[0].address": 26,
		"port[1].server[1]":         27,
		"port[1].server[1].address": 27,
		"port[1].sub":               29,
		"port[1].sub.deep":          30,
		"port[1].nested[0].x":       33,
		"port[1].nested[1]":         34,
		"port[1].nested[1].x":       35,
		// Paths without a line of their own take their table's.
		"port[1].mtu":   24,
		"port[0].x.y.z": 21,
		"nothing":       0,
	}
	for path, line := range want {
		if got := ix.line(path); got != line {
			t.Errorf("line(%q) = %d, want %d", path, got, line)
		}
	}
	if got, want := strings.Join(ix.occurrences("port.name"), " "), "port[0].name port[1].name"; got != want {
		t.Errorf("occurrences(port.name) = %q, want %q", got, want)
	}
	if got, want := strings.Join(ix.occurrences("port.nested"), " "), "port[1].nested[0] port[1].nested[1]"; got != want {
		t.Errorf("occurrences(port.nested) = %q, want %q", got, want)
	}
	if got := ix.occurrences("list"); len(got) != 1 {
		t.Errorf("occurrences(list) = %q: array elements must not count", got)
	}
}

// FuzzParse checks that no input panics and that every refusal is a *Error whose lines
// lie within the file.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/full.toml", "testdata/syntax.toml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(ports + "[[route]]\nto = \"0.0.0.0/0\"\nvia = \"198.51.100.1\"\n"))
	f.Add([]byte("a = \"\"\"\n\"\"\"\"\nb = [\n{ c = 1 },\n]\n[[d]]\n[d.e]\nf = '''x'''"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScannerFindsKeys(t, data)
		cfg, err := Parse("f.toml", data)
		if err == nil {
			if cfg == nil || len(cfg.Ports) == 0 {
				t.Fatalf("accepted a file without ports: %+v", cfg)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Issues) == 0 {
			t.Fatalf("error %v is not a *Error with issues", err)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, is := range ce.Issues {
			if is.Line < 0 || is.Line > lines {
				t.Fatalf("issue %v is beyond the file's %d lines", is, lines)
			}
		}
	})
}

// checkScannerFindsKeys fails when a key the TOML parser reports (with bare segments)
// has no line in the position index, or a line beyond the file.
func checkScannerFindsKeys(t *testing.T, data []byte) {
	md, err := toml.Decode(string(data), new(map[string]any))
	if err != nil {
		return
	}
	ix := newPosIndex(string(data))
	lines := strings.Count(string(data), "\n") + 1
keys:
	for _, k := range md.Keys() {
		for _, seg := range k {
			if seg == "" { // a legal but empty key: the index has no path for it
				continue keys
			}
			for i := 0; i < len(seg); i++ {
				if !isBare(seg[i]) {
					continue keys
				}
			}
		}
		key := strings.Join(k, ".")
		occ := ix.occurrences(key)
		if len(occ) == 0 {
			t.Fatalf("key %q has no position; index %v", key, ix.lines)
		}
		for _, p := range occ {
			if l := ix.line(p); l < 1 || l > lines {
				t.Fatalf("key %q at line %d of %d", p, l, lines)
			}
		}
	}
}
