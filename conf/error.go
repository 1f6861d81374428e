package conf

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a configuration source. Line and Col are 1-based;
// Col counts characters (runes), not bytes. A Pos with Line 0 names a whole
// source (a file, or an environment variable) rather than a place in it.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats p as FILE:LINE:COL, or FILE alone when Line is zero.
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one configuration problem at one position. Source, when set, is
// the text of the offending line, shown under the message with a caret.
type Error struct {
	Pos    Pos
	Msg    string
	Source string
}

// Error returns "FILE:LINE:COL: message".
func (e *Error) Error() string {
	return e.Pos.String() + ": " + e.Msg
}

// Excerpt returns the offending source line and a caret under the column,
// each line indented by four spaces, or "" when the line is unknown.
func (e *Error) Excerpt() string {
	if e.Source == "" || e.Pos.Line == 0 {
		return ""
	}
	var caret strings.Builder
	col := 1
	for _, r := range e.Source {
		if col >= e.Pos.Col {
			break
		}
		// Keep tabs so that the caret lines up under tab-indented text.
		if r == '\t' {
			caret.WriteByte('\t')
		} else {
			caret.WriteByte(' ')
		}
		col++
	}
	caret.WriteByte('^')
	return "    " + e.Source + "\n    " + caret.String()
}

// ErrorList is every problem found in one load, in the order found: file
// by file in load order, and within a file in source order where possible.
type ErrorList []*Error

// Error joins the problems one per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Errors returns the problems in err: every element of an ErrorList, the
// single *Error, or a positionless *Error wrapping any other error.
func Errors(err error) []*Error {
	if err == nil {
		return nil
	}
	var list ErrorList
	if errors.As(err, &list) {
		return list
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return []*Error{{Msg: err.Error()}}
}

// problems collects errors during decoding and validation. Sources maps a
// file name to its contents so that each error can carry its source line.
type problems struct {
	list    ErrorList
	sources map[string][]byte
	order   map[string]int // load order of each file read
}

func (p *problems) add(pos Pos, format string, args ...any) {
	p.list = append(p.list, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...), Source: p.line(pos)})
}

func (p *problems) addError(e *Error) {
	if e.Source == "" {
		e.Source = p.line(e.Pos)
	}
	p.list = append(p.list, e)
}

// line returns the text of pos's line in its file, without the newline.
func (p *problems) line(pos Pos) string {
	data, ok := p.sources[pos.File]
	if !ok || pos.Line < 1 {
		return ""
	}
	for n := 1; ; n++ {
		i := bytes.IndexByte(data, '\n')
		if n == pos.Line {
			if i >= 0 {
				data = data[:i]
			}
			return strings.TrimSuffix(string(data), "\r")
		}
		if i < 0 {
			return ""
		}
		data = data[i+1:]
	}
}

// err returns the problems sorted by file in load order, then line and
// column, or nil. Problems outside any file read (an environment
// variable, a flag) come first.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	slices.SortStableFunc(p.list, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(p.order[a.Pos.File], p.order[b.Pos.File]),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return p.list
}
