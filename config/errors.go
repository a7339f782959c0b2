package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Issue is one thing wrong with a configuration file, at a line of it.
type Issue struct {
	File string
	Line int // 1-based; 0 when the issue concerns the file as a whole
	Msg  string
}

// String formats the issue as "FILE:LINE: what is wrong" ("FILE: what is wrong" when
// it has no line).
func (i Issue) String() string {
	if i.Line <= 0 {
		return fmt.Sprintf("%s: %s", i.File, i.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", i.File, i.Line, i.Msg)
}

// Error is returned by Parse and Load for a file that is refused: it lists every issue
// found, ordered by line.
type Error struct {
	Issues []Issue
}

// Error joins the issues, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// issues collects the problems of one file with their lines.
type issues struct {
	file     string
	ix       *posIndex
	list     []Issue
	warnings []Issue
}

// at records a problem at the line of path (or of its nearest ancestor with a line).
func (is *issues) at(path string, format string, args ...any) {
	is.atLine(is.ix.line(path), format, args...)
}

func (is *issues) atLine(line int, format string, args ...any) {
	is.list = append(is.list, Issue{File: is.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// warnAt records a warning at the line of path: something allowed but likely not
// meant, which ulbd logs.
func (is *issues) warnAt(path string, format string, args ...any) {
	is.warnings = append(is.warnings, Issue{File: is.file, Line: is.ix.line(path), Msg: fmt.Sprintf(format, args...)})
}

// sortedWarnings returns the warnings ordered by line.
func (is *issues) sortedWarnings() []Issue {
	list := slices.Clone(is.warnings)
	slices.SortStableFunc(list, func(a, b Issue) int { return cmp.Compare(a.Line, b.Line) })
	return list
}

func (is *issues) err() error {
	if len(is.list) == 0 {
		return nil
	}
	list := slices.Clone(is.list)
	slices.SortStableFunc(list, func(a, b Issue) int { return cmp.Compare(a.Line, b.Line) })
	return &Error{Issues: list}
}
