package printable

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain text, ünïcode 漢字":    "plain text, ünïcode 漢字",
		"a\x1b]0;t\ab\x1b[2J":       `a\x1b]0;t\x07b\x1b[2J`,
		"line\nforged\r\tx\x7f":     `line\nforged\r\tx\x7f`,
		"\u009b2J\u009d\u009c":      `\u009b2J\u009d\u009c`,
		"\u202egnp.exe\u2066\u2069": `\u202egnp.exe\u2066\u2069`,
		"\ufffe\uffff\ufeff\u2028":  `\ufffe\uffff\ufeff\u2028`,
		"bad \xff\xc3 bytes":        `bad \xff\xc3 bytes`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Text("two\nlines\tand \x1b"); got != "two\nlines\tand \\x1b" {
		t.Errorf("Text keeps newlines and tabs only: %q", got)
	}
}

// FuzzString: no unsafe character survives String, Text keeps only newlines and tabs, JSON
// stays the same document, and the Writer gives what Text gives however the input is split.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\x1b[2J\u009b\u202e\ufffe\n\t", "\xff\xc3", "漢字\u2028"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, split int) {
		for name, out := range map[string]string{"String": String(s), "Text": Text(s)} {
			for _, r := range out {
				if Unsafe(r) && !(name == "Text" && (r == '\n' || r == '\t')) {
					t.Fatalf("%s(%q) = %q keeps %U", name, s, out, r)
				}
			}
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q is not UTF-8", name, s, out)
			}
		}
		doc, _ := json.Marshal(map[string]string{"s": s})
		escaped := JSON(doc)
		var back, want map[string]string
		_ = json.Unmarshal(doc, &want)
		if err := json.Unmarshal(escaped, &back); err != nil || back["s"] != want["s"] {
			t.Fatalf("JSON(%s) = %s reads back as %q (%v)", doc, escaped, back["s"], err)
		}
		for _, r := range string(escaped) {
			if Unsafe(r) {
				t.Fatalf("JSON(%s) = %s keeps %U", doc, escaped, r)
			}
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		at := min(max(split, 0), len(s))
		w.Write([]byte(s[:at]))
		w.Write([]byte(s[at:]))
		if buf.String() != Text(s) && utf8.ValidString(s) {
			t.Fatalf("the Writer split at %d gives %q, Text %q", at, buf.String(), Text(s))
		}
	})
}
