package config

import (
	"slices"
	"strings"
)

// unsupportedSections are the sections of the design's configuration contract that
// this ulbd does not implement yet. A file using them is refused rather than half
// applied; a section leaves this list when its decoder is added.
var unsupportedSections = []string{"healthcheck"}

func isUnsupported(section string) bool { return slices.Contains(unsupportedSections, section) }

// unsupported reports every table of an unsupported section at its header line.
func (d *decoder) unsupported() {
	for _, s := range unsupportedSections {
		if !d.md.IsDefined(s) {
			continue
		}
		var elems []string
		for _, p := range d.is.ix.occurrences(s) {
			if strings.HasSuffix(p, "]") { // an element: s[0], s[1], ...
				elems = append(elems, p)
			}
		}
		if len(elems) == 0 {
			elems = []string{s}
		}
		for _, p := range elems {
			d.is.at(p, "[[%s]] is not supported yet by this ulbd", s)
		}
	}
}
