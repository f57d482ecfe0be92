package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
)

// yamlNode reads one JSON document into a YAML node, members in the JSON's order. It reads the
// JSON as JSON: read as YAML (JSON being YAML), a string holding DEL, a C1 control or U+FFFE
// would be refused ("control characters are not allowed"), though the API server accepts
// them. The YAML encoder writes such strings double-quoted, escaped.
func yamlNode(raw []byte) (*yaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	n, err := yamlValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}, nil
}

func yamlValue(dec *json.Decoder) (*yaml.Node, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		var n *yaml.Node
		if t == '{' {
			n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		} else {
			n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, yamlString(k.(string)))
			}
			v, err := yamlValue(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, v)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return yamlString(t), nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(t), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", t)
}

// yamlString is a string scalar; one holding a character unsafe on a terminal is written
// double-quoted, where every such character can be escaped.
func yamlString(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if printable.String(s) != s {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// writeYAML writes the JSON document raw as one YAML document, block style, indented by two.
// No character unsafe on a terminal is written raw: the encoder escapes the controls itself,
// and the few it leaves (bidi controls) can only be inside double-quoted scalars, where they are
// escaped as \uXXXX.
func writeYAML(w io.Writer, raw []byte) error {
	doc, err := yamlNode(raw)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.Write(escapeLeftovers(buf.Bytes()))
	return err
}

// escapeLeftovers escapes the unsafe characters the YAML encoder wrote raw.
func escapeLeftovers(out []byte) []byte {
	var b []byte
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRune(out[i:])
		if r != '\n' && printable.Unsafe(r) {
			if b == nil {
				b = append(make([]byte, 0, len(out)+16), out[:i]...)
			}
			b = fmt.Appendf(b, `\u%04X`, r)
		} else if b != nil {
			b = append(b, out[i:i+size]...)
		}
		i += size
	}
	if b == nil {
		return out
	}
	return b
}
