package config

import (
	"strconv"
	"strings"
)

// posIndex maps the path of every key, table and array element of a TOML document to
// the line it starts on. BurntSushi/toml keeps a position per key but does not export
// it, and keys the positions by a path without array indexes, so the second [[port]]'s
// name would share a position with the first's; this small scanner fills the gap.
//
// A path names array elements with an index: "hostname", "port[1]" (the header of the
// second [[port]]), "port[1].address[0]" (its first address). The scanner runs only on
// text the TOML parser has accepted, so it can be lenient about syntax.
type posIndex struct {
	lines map[string]int
	order []string       // paths in document order
	aot   map[string]int // array-of-tables path → number of [[...]] headers seen
}

func newPosIndex(data string) *posIndex {
	ix := &posIndex{lines: make(map[string]int), aot: make(map[string]int)}
	s := scanner{data: data, line: 1, ix: ix}
	s.document()
	return ix
}

// set records the line of a key or table header.
func (ix *posIndex) set(path string, line int) {
	if _, ok := ix.lines[path]; !ok {
		ix.order = append(ix.order, path)
	}
	ix.lines[path] = line
}

// setElement records the line of an element of an array value.
func (ix *posIndex) setElement(path string, line int) { ix.lines[path] = line }

// line returns the line of path or, when the path has no line of its own, of its
// nearest ancestor (the table header); 0 when nothing is known.
func (ix *posIndex) line(path string) int {
	for path != "" {
		if l, ok := ix.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// occurrences returns, in document order, the keys and table headers whose index-free
// path is key: "port.adress" matches "port[0].adress" and "port[3].adress", "rule"
// matches the headers "rule[0]" and "rule[1]"; elements of array values do not match.
func (ix *posIndex) occurrences(key string) []string {
	var out []string
	for _, p := range ix.order {
		if stripIndexes(p) == key {
			out = append(out, p)
		}
	}
	return out
}

// parentPath drops the last element of a path: "a[1].b" → "a[1]" → "a" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// stripIndexes removes every "[n]" from a path.
func stripIndexes(p string) string {
	if !strings.Contains(p, "[") {
		return p
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '[':
			depth++
		case p[i] == ']':
			depth--
		case depth == 0:
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func indexPath(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

type scanner struct {
	data string
	pos  int
	line int
	ix   *posIndex
}

func (s *scanner) eof() bool { return s.pos >= len(s.data) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) advance() {
	if s.data[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

// skipSpace skips blanks, and also newlines and comments when multiline is set.
func (s *scanner) skipSpace(multiline bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case multiline && c == '\n':
			s.advance()
		case multiline && c == '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine skips to the end of the line, leaving the newline.
func (s *scanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *scanner) document() {
	table := ""
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		line := s.line
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			keys := s.keyPath(']')
			table = s.ix.tablePath(keys, array)
			s.ix.set(table, line)
			for s.peek() == ']' || s.peek() == ' ' || s.peek() == '\t' {
				s.advance()
			}
			continue
		}
		keys := s.keyPath('=')
		if len(keys) == 0 { // not a key: cannot happen in accepted TOML
			s.skipLine()
			continue
		}
		p := table
		for _, k := range keys {
			p = joinPath(p, k)
		}
		s.ix.set(p, line)
		if s.peek() == '=' {
			s.advance()
		}
		s.value(p)
		s.skipSpace(false)
		s.skipLine()
	}
}

// tablePath resolves a table header to its indexed path: parents that are arrays of
// tables resolve to their last element, and a [[...]] header opens a new element.
func (ix *posIndex) tablePath(keys []string, array bool) string {
	p := ""
	for i, k := range keys {
		p = joinPath(p, k)
		last := i == len(keys)-1
		if last && array {
			n := ix.aot[p]
			ix.aot[p] = n + 1
			return indexPath(p, n)
		}
		if n, ok := ix.aot[p]; ok && !last {
			p = indexPath(p, n-1)
		}
	}
	return p
}

// keyPath reads a dotted key up to (not including) the terminator.
func (s *scanner) keyPath(term byte) []string {
	var keys []string
	for {
		s.skipSpace(false)
		if s.eof() || s.peek() == term || s.peek() == '\n' {
			return keys
		}
		switch s.peek() {
		case '"':
			start := s.pos
			s.basicString()
			raw := s.data[start:s.pos]
			if k, err := strconv.Unquote(raw); err == nil {
				keys = append(keys, k)
			} else {
				keys = append(keys, strings.Trim(raw, `"`))
			}
		case '\'':
			start := s.pos
			s.literalString()
			keys = append(keys, strings.Trim(s.data[start:s.pos], "'"))
		default:
			start := s.pos
			for !s.eof() && isBare(s.peek()) {
				s.advance()
			}
			if s.pos == start { // unexpected byte: skip it
				s.advance()
				continue
			}
			keys = append(keys, s.data[start:s.pos])
		}
		s.skipSpace(false)
		if s.peek() == '.' {
			s.advance()
		}
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value, recording the lines of array elements and inline-table keys
// below path.
func (s *scanner) value(path string) {
	s.skipSpace(false)
	switch {
	case strings.HasPrefix(s.data[s.pos:], `"""`):
		s.multilineString(`"""`, true)
	case strings.HasPrefix(s.data[s.pos:], `'''`):
		s.multilineString(`'''`, false)
	case s.peek() == '"':
		s.basicString()
	case s.peek() == '\'':
		s.literalString()
	case s.peek() == '[':
		s.advance()
		for i := 0; ; i++ {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == ']' {
				s.advance()
				return
			}
			elem := indexPath(path, i)
			s.ix.setElement(elem, s.line)
			start := s.pos
			s.value(elem)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			} else if s.pos == start { // a stray byte: cannot happen in accepted TOML
				s.advance()
			}
		}
	case s.peek() == '{':
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == '}' {
				s.advance()
				return
			}
			if s.peek() == ',' {
				s.advance()
				continue
			}
			line := s.line
			keys := s.keyPath('=')
			p := path
			for _, k := range keys {
				p = joinPath(p, k)
			}
			s.ix.set(p, line)
			if s.peek() == '=' {
				s.advance()
			}
			s.value(p)
		}
	default: // number, boolean, date: up to a delimiter
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.advance()
		}
	}
}

func (s *scanner) basicString() {
	s.advance() // opening quote
	for !s.eof() {
		switch s.peek() {
		case '\\':
			s.advance()
			if !s.eof() {
				s.advance()
			}
		case '"':
			s.advance()
			return
		case '\n': // unterminated: cannot happen in accepted TOML
			return
		default:
			s.advance()
		}
	}
}

func (s *scanner) literalString() {
	s.advance()
	for !s.eof() {
		c := s.peek()
		if c == '\n' {
			return
		}
		s.advance()
		if c == '\'' {
			return
		}
	}
}

func (s *scanner) multilineString(delim string, escapes bool) {
	for range 3 {
		s.advance()
	}
	for !s.eof() {
		if escapes && s.peek() == '\\' {
			s.advance()
			if !s.eof() {
				s.advance()
			}
			continue
		}
		if strings.HasPrefix(s.data[s.pos:], delim) {
			for range 3 {
				s.advance()
			}
			// Up to two more quotes belong to the string's content.
			for range 2 {
				if s.peek() == delim[0] {
					s.advance()
				}
			}
			return
		}
		s.advance()
	}
}
