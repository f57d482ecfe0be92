package printable

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a terminal raw: C0 and C1 controls, DEL, the
// bidirectional controls (which reorder what follows them), the line and paragraph separators,
// the byte-order mark and the non-characters U+FFFE and U+FFFF.
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true // bidi marks, embeddings, overrides and isolates
	case r == 0x2028, r == 0x2029, r == 0xfeff, r == 0xfffe, r == 0xffff:
		return true
	}
	return false
}

// String is s for one line of a terminal: every unsafe character (newlines and tabs included)
// as a Go-style escape (\n, \x1b, \u202e), bytes that are not UTF-8 as \xNN.
func String(s string) string { return escape(s, false) }

// Text is s for a terminal, keeping its newlines and tabs: for multi-line messages.
func Text(s string) string { return escape(s, true) }

func escape(s string, keepLines bool) string {
	if safe(s, keepLines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case !Unsafe(r):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

func safe(s string, keepLines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(keepLines && (c == '\n' || c == '\t')) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if Unsafe(r) || (r == utf8.RuneError && size == 1) {
			return false
		}
		i += size
	}
	return true
}

// JSON returns the JSON document doc with every unsafe character inside its strings escaped
// as \uXXXX: the same document to a JSON reader, and nothing raw for a terminal. doc must be
// valid JSON (encoding/json's output): outside strings it holds no such character, and inside
// them no raw C0 control.
func JSON(doc []byte) []byte {
	if safe(string(doc), true) {
		return doc
	}
	out := make([]byte, 0, len(doc)+32)
	for i := 0; i < len(doc); {
		r, size := utf8.DecodeRune(doc[i:])
		invalid := r == utf8.RuneError && size == 1 // not UTF-8: JSON readers take it as U+FFFD
		if invalid || (Unsafe(r) && r != '\n' && r != '\t' && r != '\r') {
			if r > 0xffff {
				a, b := utf16.EncodeRune(r)
				out = fmt.Appendf(out, `\u%04x\u%04x`, a, b)
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		} else {
			out = append(out, doc[i:i+size]...)
		}
		i += size
	}
	return out
}

// Writer escapes what is written to it as Text does before passing it on: for outputs made of
// many writes (an effective configuration). A character split between two writes is held
// until the next one; Flush is not needed, since whole lines are written.
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer passing text on to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) Write(p []byte) (int, error) {
	data := append(w.pending, p...)
	w.pending = nil
	// Hold back an incomplete character at the end.
	for back := 1; back <= 3 && back <= len(data); back++ {
		c := data[len(data)-back]
		if c < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(data[len(data)-back:]) {
				w.pending = append([]byte(nil), data[len(data)-back:]...)
				data = data[:len(data)-back]
			}
			break
		}
	}
	if _, err := io.WriteString(w.w, Text(string(data))); err != nil {
		return 0, err
	}
	return len(p), nil
}
