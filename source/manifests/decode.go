package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
)

// Object is one decoded manifest and the line it starts on.
type Object struct {
	*unstructured.Unstructured
	Line int
}

// SyntaxError is a manifest that cannot be read, at a 1-based line (0 when unknown).
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// clusterScoped lists the kinds that keep an empty namespace; others default to "default",
// as kubectl apply does.
var clusterScoped = map[string]bool{
	engine.KindCRDObject: true, "Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
}

// InvalidObjects lists the objects of a stream that were left out, each with its line; the
// stream's other objects are valid.
type InvalidObjects []*SyntaxError

func (e InvalidObjects) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Decode reads every object of a YAML or JSON stream: several documents separated by ---, and
// the items of any kind: List. Values keep Kubernetes' YAML reading: timestamps and other
// special scalars stay strings, integers are int64.
//
// An object that is not valid (as the API server would judge it: names, required fields, label
// syntax, sizes) is left out: the others are returned with an InvalidObjects error naming
// every one left out and its line. A stream that cannot be read (YAML syntax, or beyond the
// expansion bounds) returns no objects and a *SyntaxError.
func Decode(data []byte) ([]Object, error) {
	if err := preScan(data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	w := &walker{budget: maxNodes, bytes: maxExpandedBytes} // one budget for the whole file
	var objects []Object
	var invalid InvalidObjects
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			if len(invalid) > 0 {
				return objects, invalid
			}
			return objects, nil
		}
		if err != nil {
			return nil, yamlError(err)
		}
		if len(doc.Content) == 0 {
			continue // empty document
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // "---" followed by nothing but comments
		}
		objs, errs, err := w.documentObjects(root)
		if err != nil {
			return nil, err
		}
		objects = append(objects, objs...)
		invalid = append(invalid, errs...)
	}
}

// documentObjects reads one document's objects, and the errors of those left out; err is a
// document that cannot be read at all (beyond the bounds: the file is refused).
func (w *walker) documentObjects(root *yaml.Node) (objects []Object, invalid []*SyntaxError, err error) {
	v, err := w.value(root)
	var se *SyntaxError
	switch {
	case w.budget < 0 || w.bytes < 0:
		return nil, nil, err
	case errors.As(err, &se):
		return nil, []*SyntaxError{se}, nil
	case err != nil:
		return nil, nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, []*SyntaxError{{root.Line, fmt.Sprintf("a manifest must be a mapping, not %s", describe(root))}}, nil
	}
	kind, _ := m["kind"].(string)
	if items, isList := m["items"]; isList && strings.HasSuffix(kind, "List") {
		list, ok := items.([]any)
		itemsNode := mappingValue(root, "items")
		if !ok || itemsNode == nil || len(itemsNode.Content) != len(list) {
			return nil, []*SyntaxError{{root.Line, kind + ": items must be a list"}}, nil
		}
		for i, item := range list {
			obj, err := object(item, itemsNode.Content[i].Line)
			if err != nil {
				invalid = append(invalid, err)
				continue
			}
			objects = append(objects, obj)
		}
		return objects, invalid, nil
	}
	obj, oerr := object(m, root.Line)
	if oerr != nil {
		return nil, []*SyntaxError{oerr}, nil
	}
	return []Object{obj}, nil, nil
}

func object(v any, line int) (Object, *SyntaxError) {
	m, ok := v.(map[string]any)
	if !ok {
		return Object{}, &SyntaxError{line, fmt.Sprintf("a manifest must be a mapping, not %T", v)}
	}
	u := &unstructured.Unstructured{Object: m}
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	meta, _ := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	namespace, nsOK := meta["namespace"].(string)
	switch {
	case apiVersion == "":
		return Object{}, &SyntaxError{line, "apiVersion is required (a non-empty string)"}
	case kind == "":
		return Object{}, &SyntaxError{line, "kind is required (a non-empty string)"}
	}
	if problem := checkTypeMeta(apiVersion, kind); problem != "" {
		return Object{}, &SyntaxError{line, problem}
	}
	switch {
	case name == "":
		return Object{}, &SyntaxError{line, kind + ": metadata.name is required (a non-empty string)"}
	case meta["namespace"] != nil && !nsOK:
		return Object{}, &SyntaxError{line, kind + " " + name + ": metadata.namespace must be a string"}
	case namespace == "" && !clusterScoped[kind]:
		meta["namespace"] = "default"
	}
	// Names as the API server takes them, so a name no cluster would hold (one MQTT or NATS
	// could not carry, say) never reaches the mesh.
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return Object{}, &SyntaxError{line, fmt.Sprintf("%s %q: metadata.name: %s", kind, name, errs[0])}
	}
	if errs := validation.IsDNS1123Label(namespace); namespace != "" && len(errs) > 0 {
		return Object{}, &SyntaxError{line, fmt.Sprintf("%s %s: metadata.namespace %q: %s", kind, name, namespace, errs[0])}
	}
	for _, f := range []string{"labels", "annotations"} {
		if err := checkStringMap(meta, f); err != nil {
			return Object{}, &SyntaxError{line, fmt.Sprintf("%s %s: metadata.%s: %v", kind, name, f, err)}
		}
	}
	if spec, _ := m["spec"].(map[string]any); kind == engine.KindCRDObject && strings.HasPrefix(apiVersion, "apiextensions.k8s.io/") {
		if problems := checkCRDNames(spec); len(problems) > 0 {
			return Object{}, &SyntaxError{line, fmt.Sprintf("%s %s: %s", kind, name, strings.Join(problems, "; "))}
		}
	}
	// Judged as the API server and Knative's webhooks would, by the kind's declaration.
	if errs := engine.Validate(u); len(errs) > 0 {
		problems := make([]string, len(errs))
		for i, e := range errs {
			problems[i] = e.Error()
		}
		return Object{}, &SyntaxError{line, fmt.Sprintf("%s %s: %s", kind, name, strings.Join(problems, "; "))}
	}
	return Object{Unstructured: u, Line: line}, nil
}

func checkStringMap(meta map[string]any, field string) error {
	raw, ok := meta[field]
	if !ok || raw == nil {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return fmt.Errorf("want a map of strings, got %T", raw)
	}
	for k, v := range m {
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: want a string, got %T (quote it)", k, v)
		}
	}
	return nil
}

// Bounds of one file, aliases expanded: so many values and bytes of strings (a few thousand
// objects' worth), so aliases cannot multiply a small file into a huge one; and one string,
// a little below what the API server stores in a whole object.
const (
	maxNodes         = 1 << 20
	maxExpandedBytes = 64 << 20
	MaxStringBytes   = 1 << 20
)

// maxStructure bounds what one document of a file may hold before it is decoded: the YAML
// parser keeps a node of about 200 bytes per value however short its text ("0," is a value),
// and holds a whole document's nodes at once, so each document is measured first. Every value
// but a document's first follows one of the characters preScan counts, so a document within
// the bound decodes into at most maxStructure nodes. 262,144 of them are about 3 MiB of
// ordinary manifests in one document (a List, say); a file of many documents may be as large
// as the file limit.
const maxStructure = 1 << 18

// maxDecodeBytes is what decoding a document within maxStructure allocates at most (about
// 420 bytes per counted character; TestFileMeasuredBeforeDecoding measures it): the bound
// docs/operations.md states.
const maxDecodeBytes = 128 << 20

// preScan counts, per document, the characters that can start a value (flow separators and
// brackets, line ends, colons, "- ", "? ") and refuses the file when one document has more than
// maxStructure, before the parser allocates anything. It over-counts (commas in strings,
// comments), never under-counts.
func preScan(data []byte) error {
	count, line := 0, 1
	for i, c := range data {
		switch c {
		case '\n':
			line++
			if rest := data[i+1:]; bytes.HasPrefix(rest, []byte("---")) || bytes.HasPrefix(rest, []byte("...")) {
				if len(rest) == 3 || rest[3] == ' ' || rest[3] == '\n' || rest[3] == '\r' || rest[3] == '\t' {
					count = 0 // a new document: the parser is done with the last one
				}
			}
		case ',', '[', '{', ':': // ':' anywhere: JSON's {"a":1} has no space after it
		case '-', '?':
			if i+1 < len(data) && data[i+1] != ' ' && data[i+1] != '\n' && data[i+1] != '\r' && data[i+1] != '\t' {
				continue
			}
		default:
			continue
		}
		if count++; count > maxStructure {
			return &SyntaxError{line, fmt.Sprintf("the document holds more than %d values, lines or separators by here: "+
				"split it into smaller documents or files", maxStructure)}
		}
	}
	return nil
}

type walker struct{ budget, bytes int }

func (w *walker) value(n *yaml.Node) (any, error) {
	if w.budget--; w.budget < 0 {
		return nil, &SyntaxError{n.Line, fmt.Sprintf("the file expands to more than %d values (an alias loop or bomb?)", maxNodes)}
	}
	if n.Kind == yaml.ScalarNode {
		if w.bytes -= len(n.Value); w.bytes < 0 {
			return nil, &SyntaxError{n.Line, fmt.Sprintf("the file expands to more than %d bytes of strings (aliases of long strings?)", maxExpandedBytes)}
		}
		if len(n.Value) > MaxStringBytes {
			return nil, &SyntaxError{n.Line, fmt.Sprintf("a string of %d bytes: at most %d are accepted", len(n.Value), MaxStringBytes)}
		}
	}
	switch n.Kind {
	case yaml.AliasNode:
		return w.value(n.Alias)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return w.value(n.Content[0])
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := w.value(c)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				if err := w.merge(m, vn); err != nil {
					return nil, err
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &SyntaxError{k.Line, fmt.Sprintf("mapping keys must be strings, not %s", describe(k))}
			}
			if _, dup := m[k.Value]; dup {
				return nil, &SyntaxError{k.Line, fmt.Sprintf("key %q appears twice in one mapping", k.Value)}
			}
			v, err := w.value(vn)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, &SyntaxError{n.Line, "unsupported YAML node"}
}

func (w *walker) merge(into map[string]any, n *yaml.Node) error {
	sources := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		sources = n.Content
	}
	for _, s := range sources {
		v, err := w.value(s)
		if err != nil {
			return err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return &SyntaxError{s.Line, "a merge key (<<) must point at a mapping"}
		}
		for k, v := range m {
			if _, exists := into[k]; !exists {
				into[k] = v
			}
		}
	}
	return nil
}

func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &SyntaxError{n.Line, err.Error()}
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return nil, &SyntaxError{n.Line, fmt.Sprintf("integer %q out of range", n.Value)}
		}
		return i, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, &SyntaxError{n.Line, err.Error()}
		}
		if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
			return nil, &SyntaxError{n.Line, fmt.Sprintf("%q is not a JSON number", n.Value)}
		}
		return f, nil
	}
	return n.Value, nil // strings, timestamps, binary: the text as written
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			n := m.Content[i+1]
			for n.Kind == yaml.AliasNode {
				n = n.Alias
			}
			return n
		}
	}
	return nil
}

// yamlError turns the YAML library's "yaml: line N: msg" into a SyntaxError.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if line, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				text := strings.TrimSpace(rest[i+1:])
				if strings.HasPrefix(text, "did not find expected") {
					line++ // the library counts parser (not scanner) error lines from 0
				}
				return &SyntaxError{line, text}
			}
		}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return &SyntaxError{0, strings.Join(te.Errors, "; ")}
	}
	return &SyntaxError{0, msg}
}
