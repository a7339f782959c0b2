package wizard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds one answer; a longer line is refused rather than kept in memory.
const maxLine = 4096

// lineReader hands out the lines of an input one at a time. A goroutine reads them, so
// that a question waiting for an answer still ends when its context does (ulbadm's
// context ends on SIGINT, which it catches).
type lineReader struct {
	lines chan lineOrErr
	done  chan struct{}
}

type lineOrErr struct {
	s   string
	err error
}

func newLineReader(in io.Reader) *lineReader {
	r := &lineReader{lines: make(chan lineOrErr), done: make(chan struct{})}
	go r.read(bufio.NewReaderSize(in, maxLine))
	return r
}

func (r *lineReader) read(br *bufio.Reader) {
	defer close(r.lines)
	for {
		s, err := br.ReadString('\n')
		var l lineOrErr
		switch {
		case len(s) > maxLine:
			l.err = fmt.Errorf("an answer is longer than %d bytes", maxLine)
		case err == nil || (errors.Is(err, io.EOF) && s != ""):
			// A last line without its newline is still an answer.
			l.s = strings.TrimSpace(strings.TrimSuffix(s, "\n"))
			err = nil
		default:
			l.err = err
		}
		select {
		case r.lines <- l:
		case <-r.done:
			return
		}
		if l.err != nil {
			return
		}
	}
}

// next returns the next line, trimmed of white space; io.EOF when the input ended.
func (r *lineReader) next(ctx context.Context) (string, error) {
	select {
	case l, ok := <-r.lines:
		if !ok {
			return "", io.EOF
		}
		if l.err != nil && !errors.Is(l.err, io.EOF) {
			return "", fmt.Errorf("reading the answers: %w", l.err)
		}
		return l.s, l.err
	case <-ctx.Done():
		return "", errors.New("interrupted (nothing written)")
	}
}

// stop lets the reading goroutine end.
func (r *lineReader) stop() { close(r.done) }
