package mesh

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Entities are marshalled on every change the engine emits, so their JSON is written by hand:
// encoding/json spends most of its time on reflection, on building and sorting the label maps
// and on copying its output. Each AppendJSON below writes exactly the bytes json.Marshal
// writes for the same value (field order, omitempty, HTML-safe escaping, sorted map keys,
// null for nil maps and slices); wire_test.go holds that on random and fuzzed values, so the
// struct tags stay the one definition of the format.

// AppendJSON appends the broker's JSON, as json.Marshal writes it.
func (b *Broker) AppendJSON(dst []byte) ([]byte, error) {
	dst = appendKeyString(dst, '{', "namespace", b.Namespace)
	dst = appendKeyString(dst, ',', "name", b.Name)
	dst = appendKeyString(dst, ',', "uid", b.UID)
	dst = appendStringMap(append(dst, `,"labels":`...), b.Labels)
	dst = appendStringMap(append(dst, `,"annotations":`...), b.Annotations)
	dst = appendStrings(append(dst, `,"providedEventTypes":`...), b.ProvidedEventTypes)
	return b.Graph.appendFields(dst, ',')
}

// AppendJSON appends the EventType's JSON, as json.Marshal writes it.
func (e *EventType) AppendJSON(dst []byte) ([]byte, error) {
	dst = appendKeyString(dst, '{', "namespace", e.Namespace)
	dst = appendKeyString(dst, ',', "name", e.Name)
	dst = appendKeyString(dst, ',', "type", e.Type)
	dst = appendKeyString(dst, ',', "uid", e.UID)
	dst = appendOptional(dst, "description", e.Description)
	dst = appendOptional(dst, "schemaURL", e.SchemaURL)
	dst = appendOptional(dst, "schemaData", e.SchemaData)
	dst = appendStringMap(append(dst, `,"labels":`...), e.Labels)
	dst = appendStringMap(append(dst, `,"annotations":`...), e.Annotations)
	if e.Reference != nil {
		dst = e.Reference.appendJSON(append(dst, `,"reference":`...))
	}
	dst = appendStrings(append(dst, `,"consumedBy":`...), e.ConsumedBy)
	return e.Graph.appendFields(dst, ',')
}

// AppendJSON appends the channel's JSON, as json.Marshal writes it.
func (s *Subscribable) AppendJSON(dst []byte) ([]byte, error) {
	dst = appendKeyString(dst, '{', "namespace", s.Namespace)
	dst = appendKeyString(dst, ',', "name", s.Name)
	dst = appendKeyString(dst, ',', "uid", s.UID)
	dst = appendStringMap(append(dst, `,"labels":`...), s.Labels)
	dst = appendStringMap(append(dst, `,"annotations":`...), s.Annotations)
	dst = appendKeyString(dst, ',', "group", s.Group)
	dst = appendKeyString(dst, ',', "kind", s.Kind)
	dst = appendStrings(append(dst, `,"providedEventTypes":`...), s.ProvidedEventTypes)
	return s.Graph.appendFields(dst, ',')
}

// AppendJSON appends the source's JSON, as json.Marshal writes it.
func (s *Source) AppendJSON(dst []byte) ([]byte, error) {
	dst = appendKeyString(dst, '{', "namespace", s.Namespace)
	dst = appendKeyString(dst, ',', "name", s.Name)
	dst = appendKeyString(dst, ',', "uid", s.UID)
	dst = appendStringMap(append(dst, `,"labels":`...), s.Labels)
	dst = appendStringMap(append(dst, `,"annotations":`...), s.Annotations)
	dst = appendKeyString(dst, ',', "group", s.Group)
	dst = appendKeyString(dst, ',', "kind", s.Kind)
	dst = appendStrings(append(dst, `,"providedEventTypeTypes":`...), s.ProvidedEventTypeTypes)
	dst = appendStrings(append(dst, `,"providedEventTypes":`...), s.ProvidedEventTypes)
	if s.Sink != nil {
		dst = s.Sink.appendJSON(append(dst, `,"sink":`...))
	}
	return s.Graph.appendFields(dst, ',')
}

// AppendJSON appends the element's JSON, as json.Marshal writes it.
func (e *Element) AppendJSON(dst []byte) ([]byte, error) {
	dst = appendKeyString(dst, '{', "namespace", e.Namespace)
	dst = appendKeyString(dst, ',', "name", e.Name)
	dst = appendKeyString(dst, ',', "uid", e.UID)
	dst = appendKeyString(dst, ',', "group", e.Group)
	dst = appendKeyString(dst, ',', "kind", e.Kind)
	dst = appendStringMap(append(dst, `,"labels":`...), e.Labels)
	dst = appendStringMap(append(dst, `,"annotations":`...), e.Annotations)
	return e.Graph.appendFields(dst, ',')
}

// AppendJSON appends the graph part alone as a JSON object, as json.Marshal writes it.
func (g *Graph) AppendJSON(dst []byte) ([]byte, error) { return g.appendFields(dst, '{') }

// AppendJSONFields appends the graph's fields to an object whose own fields dst ends with
// (without its closing brace), and closes it: an entity's JSON is its upstream JSON without
// the closing brace, then this.
func (g *Graph) AppendJSONFields(dst []byte) ([]byte, error) { return g.appendFields(dst, ',') }

// appendFields appends the graph's fields, the first after sep (',' after an entity's own
// fields, '{' when the graph stands alone), and closes the object.
func (g *Graph) appendFields(dst []byte, sep byte) ([]byte, error) {
	if g.Ready != nil {
		dst = appendKeyString(appendKey(dst, sep, "ready"), '{', "status", g.Ready.Status)
		if g.Ready.Reason != "" {
			dst = appendKeyString(dst, ',', "reason", g.Ready.Reason)
		}
		dst, sep = append(dst, '}'), ','
	}
	if g.Address != nil {
		dst = appendKeyString(appendKey(dst, sep, "address"), '{', "url", g.Address.URL)
		if g.Address.Audience != "" {
			dst = appendKeyString(dst, ',', "audience", g.Address.Audience)
		}
		dst, sep = append(dst, '}'), ','
	}
	if len(g.Edges) > 0 {
		dst = append(appendKey(dst, sep, "edges"), '[')
		for i := range g.Edges {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = g.Edges[i].appendJSON(dst); err != nil {
				return dst, err
			}
		}
		dst, sep = append(dst, ']'), ','
	}
	if sep == '{' {
		dst = append(dst, '{') // no field
	}
	return append(dst, '}'), nil
}

func (e *Edge) appendJSON(dst []byte) ([]byte, error) {
	dst = appendKeyString(dst, '{', "role", string(e.Role))
	if e.Index != nil {
		dst = strconv.AppendInt(appendKey(dst, ',', "index"), int64(*e.Index), 10)
	}
	if e.Ref != nil {
		dst = e.Ref.appendJSON(append(dst, `,"ref":`...))
	}
	if e.URI != "" {
		dst = appendKeyString(dst, ',', "uri", e.URI)
	}
	if e.Dangling {
		dst = append(dst, `,"dangling":true`...)
	}
	if e.Hidden {
		dst = append(dst, `,"hidden":true`...)
	}
	for _, raw := range []struct {
		key   string
		value json.RawMessage
	}{{`,"filter":`, e.Filter}, {`,"selector":`, e.Selector}} {
		if len(raw.value) == 0 {
			continue
		}
		b, err := json.Marshal(raw.value) // as written in an object: rare, and compacted as encoding/json does
		if err != nil {
			return dst, err
		}
		dst = append(append(dst, raw.key...), b...)
	}
	if e.Subject != "" {
		dst = appendKeyString(dst, ',', "sub", e.Subject)
	}
	return append(dst, '}'), nil
}

func (r *GroupKindNamespacedName) appendJSON(dst []byte) []byte {
	dst = appendKeyString(dst, '{', "group", r.Group)
	dst = appendKeyString(dst, ',', "kind", r.Kind)
	dst = appendKeyString(dst, ',', "namespace", r.Namespace)
	dst = appendKeyString(dst, ',', "name", r.Name)
	return append(dst, '}')
}

// appendKey appends sep and the key of a field. Keys are the struct tags' names: plain ASCII,
// written as they are.
func appendKey(dst []byte, sep byte, key string) []byte {
	return append(append(append(dst, sep, '"'), key...), '"', ':')
}

// appendKeyString appends sep, the key and the value as a JSON string.
func appendKeyString(dst []byte, sep byte, key, value string) []byte {
	return AppendJSONString(appendKey(dst, sep, key), value)
}

func appendOptional(dst []byte, key string, value *string) []byte {
	if value == nil {
		return dst
	}
	return appendKeyString(dst, ',', key, *value)
}

func appendStrings(dst []byte, list []string) []byte {
	if list == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, s)
	}
	return append(dst, ']')
}

// appendStringMap writes m with its keys sorted, as encoding/json does.
func appendStringMap(dst []byte, m map[string]string) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(AppendJSONString(dst, k), ':')
		dst = AppendJSONString(dst, m[k])
	}
	return append(dst, '}')
}

// AppendJSONString appends s as a JSON string, escaped exactly as json.Marshal escapes it:
// HTML-safe (<, > and & as \u003c...), U+2028 and U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= ' ' && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(append(dst, s[start:i]...), `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(append(dst, s[start:i]...), '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(dst, s[start:]...), '"')
}
