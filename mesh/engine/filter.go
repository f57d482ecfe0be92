package engine

import (
	"fmt"
	"strings"

	"github.com/antlr/antlr4/runtime/Go/antlr"
	cesql "github.com/cloudevents/sdk-go/sql/v2"
	"github.com/cloudevents/sdk-go/sql/v2/gen"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// A Trigger filter is asked whether it *can* match some event of an EventType, knowing only the
// attributes the EventType declares. Each filter answers in three-valued (Kleene) logic: no,
// maybe (depends on an attribute the EventType leaves open), yes. A Trigger consumes an
// EventType unless its filter answers no. The approximation errs towards "can match": it never
// hides a real consumer.

type tri int8

const (
	no tri = iota
	maybe
	yes
)

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

func (t tri) not() tri { return 2 - t }

// attribute is one CloudEvents attribute an EventType declares. A value containing {...} is a
// template (v1beta3): the braces stand for any string.
type attribute struct {
	name   string
	value  string
	pieces []string // literal parts around the {...} holes; nil when the value is concrete
}

// attributes is small (a handful of entries), so a slice beats a map.
type attributes []attribute

// with declares name=value; an empty value declares nothing (any value may occur).
func (as attributes) with(name, value string) attributes {
	if value == "" {
		return as
	}
	a := attribute{name: name, value: value}
	if pieces := templatePieces(value); len(pieces) > 1 {
		a.pieces = pieces
	}
	for i := range as {
		if as[i].name == name {
			as[i] = a
			return as
		}
	}
	return append(as, a)
}

func (as attributes) get(name string) (attribute, bool) {
	for _, a := range as {
		if a.name == name {
			return a, true
		}
	}
	return attribute{}, false
}

func templatePieces(t string) []string {
	var pieces []string
	for {
		open := strings.IndexByte(t, '{')
		if open < 0 {
			return append(pieces, t)
		}
		end := strings.IndexByte(t[open:], '}')
		if end < 0 {
			return append(pieces, t) // an unclosed brace is literal
		}
		pieces = append(pieces, t[:open])
		t = t[open+end+1:]
	}
}

// matchesTemplate reports whether s is one of the values the template's pieces allow.
func matchesTemplate(pieces []string, s string) bool {
	first, last := pieces[0], pieces[len(pieces)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	if len(pieces) == 1 {
		return s == ""
	}
	for _, p := range pieces[1 : len(pieces)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

type filter interface {
	eval(attributes) tri
}

type matchAll struct{}

func (matchAll) eval(attributes) tri { return yes }

type exactFilter struct{ attr, value string }

func (f exactFilter) eval(as attributes) tri {
	a, ok := as.get(f.attr)
	switch {
	case !ok:
		return maybe
	case a.pieces == nil:
		return triOf(a.value == f.value)
	case matchesTemplate(a.pieces, f.value):
		return maybe
	}
	return no
}

type prefixFilter struct{ attr, prefix string }

func (f prefixFilter) eval(as attributes) tri {
	a, ok := as.get(f.attr)
	switch {
	case !ok:
		return maybe
	case a.pieces == nil:
		return triOf(strings.HasPrefix(a.value, f.prefix))
	case strings.HasPrefix(a.pieces[0], f.prefix):
		return yes
	case strings.HasPrefix(f.prefix, a.pieces[0]):
		return maybe
	}
	return no
}

type suffixFilter struct{ attr, suffix string }

func (f suffixFilter) eval(as attributes) tri {
	a, ok := as.get(f.attr)
	last := ""
	if ok && a.pieces != nil {
		last = a.pieces[len(a.pieces)-1]
	}
	switch {
	case !ok:
		return maybe
	case a.pieces == nil:
		return triOf(strings.HasSuffix(a.value, f.suffix))
	case strings.HasSuffix(last, f.suffix):
		return yes
	case strings.HasSuffix(f.suffix, last):
		return maybe
	}
	return no
}

type allFilter []filter

func (fs allFilter) eval(as attributes) tri {
	res := yes
	for _, f := range fs {
		res = min(res, f.eval(as))
		if res == no {
			return no
		}
	}
	return res
}

type anyFilter []filter

func (fs anyFilter) eval(as attributes) tri {
	if len(fs) == 0 {
		return yes // Knative: an empty any passes
	}
	res := no
	for _, f := range fs {
		res = max(res, f.eval(as))
		if res == yes {
			return yes
		}
	}
	return res
}

type notFilter struct{ f filter }

func (f notFilter) eval(as attributes) tri { return f.f.eval(as).not() }

// cesqlFilter evaluates with sdk-go's CESQL engine. When every attribute the expression names is
// declared concretely the answer is exact. Otherwise an evaluation on the declared attributes
// alone (the undeclared ones absent) that yields true proves a match; any other outcome is maybe.
type cesqlFilter struct {
	expr   cesql.Expression
	idents []string
}

// MaxCESQLBytes bounds a CESQL expression: parsing time grows with its length (80,000 terms
// took seconds), and real filters are a few terms.
const MaxCESQLBytes = 4096

func newCESQLFilter(expression string) (f cesqlFilter, err error) {
	if len(expression) > MaxCESQLBytes {
		return cesqlFilter{}, fmt.Errorf("CESQL expression of %d bytes: at most %d are accepted", len(expression), MaxCESQLBytes)
	}
	// Lexing first, with errors collected: sdk-go's lexer would print them to stderr.
	idents, lexErrs := lexCESQL(expression)
	if len(lexErrs) > 0 {
		return cesqlFilter{}, fmt.Errorf("invalid CESQL expression %q: %s", expression, strings.Join(lexErrs, "; "))
	}
	// sdk-go's parser panics on some malformed input (e.g. "type = ").
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid CESQL expression %q: %v", expression, r)
		}
	}()
	expr, err := cesqlparser.Parse(expression)
	if err != nil {
		return cesqlFilter{}, fmt.Errorf("invalid CESQL expression %q: %w", expression, err)
	}
	return cesqlFilter{expr: expr, idents: idents}, nil
}

// lexErrors collects a lexer's errors instead of printing them.
type lexErrors struct {
	*antlr.DefaultErrorListener
	errs []string
}

func (l *lexErrors) SyntaxError(_ antlr.Recognizer, _ any, line, column int, msg string, _ antlr.RecognitionException) {
	l.errs = append(l.errs, fmt.Sprintf("column %d: %s", column+1, msg))
}

// cesqlIdentifiers lists the attribute names an expression reads (function names excluded).
func cesqlIdentifiers(expression string) []string {
	idents, _ := lexCESQL(expression)
	return idents
}

// lexCESQL lists the attribute names an expression reads, and the lexer's errors.
func lexCESQL(expression string) (idents, errs []string) {
	in := cesqlparser.NewCaseChangingStream(antlr.NewInputStream(expression), true)
	lexer := gen.NewCESQLParserLexer(in)
	lexer.RemoveErrorListeners()
	collected := &lexErrors{DefaultErrorListener: antlr.NewDefaultErrorListener()}
	lexer.AddErrorListener(collected)
	tokens := lexer.GetAllTokens()
	for i, t := range tokens {
		tt := t.GetTokenType()
		if tt != gen.CESQLParserLexerIDENTIFIER && tt != gen.CESQLParserLexerIDENTIFIER_WITH_NUMBER {
			continue
		}
		if next := nextVisible(tokens, i); next != nil && next.GetTokenType() == gen.CESQLParserLexerLR_BRACKET {
			continue
		}
		idents = append(idents, strings.ToLower(t.GetText()))
	}
	return idents, collected.errs
}

func nextVisible(tokens []antlr.Token, i int) antlr.Token {
	for _, t := range tokens[i+1:] {
		if t.GetChannel() == antlr.TokenDefaultChannel {
			return t
		}
	}
	return nil
}

func (f cesqlFilter) eval(as attributes) tri {
	exact := true
	for _, id := range f.idents {
		if a, ok := as.get(id); !ok || a.pieces != nil {
			exact = false
			break
		}
	}
	switch matched := f.matches(as); {
	case matched:
		return yes
	case exact:
		return no
	}
	return maybe
}

func (f cesqlFilter) matches(as attributes) (matched bool) {
	defer func() {
		if recover() != nil {
			matched = false // an evaluation that cannot finish does not prove a match
		}
	}()
	v, err := f.expr.Evaluate(eventOf(as))
	return err == nil && v == true
}

// eventOf builds the CloudEvent made of the concretely declared attributes.
func eventOf(as attributes) cloudevents.Event {
	e := cloudevents.NewEvent()
	for _, a := range as {
		if a.pieces != nil {
			continue
		}
		switch a.name {
		case "specversion":
			e.SetSpecVersion(a.value)
		case "id":
			e.SetID(a.value)
		case "type":
			e.SetType(a.value)
		case "source":
			e.SetSource(a.value)
		case "subject":
			e.SetSubject(a.value)
		case "dataschema":
			e.SetDataSchema(a.value)
		case "datacontenttype":
			e.SetDataContentType(a.value)
		case "time":
			// A declared time is a template in practice; leaving it unset keeps the answer sound.
		default:
			e.SetExtension(a.name, a.value)
		}
	}
	return e
}

// parseTriggerFilter reads spec.filters (new style, which wins when present, as in Knative) or
// spec.filter.attributes. Invalid filters are skipped, as Knative's broker skips them, and
// reported.
func parseTriggerFilter(o map[string]any) (filter, []error) {
	if raw, ok := lookup(o, "spec", "filters"); ok {
		list, isList := raw.([]any)
		if !isList {
			return matchAll{}, []error{fmt.Errorf("spec.filters: want a list, got %T", raw)}
		}
		if len(list) > 0 {
			fs, problems := parseFilterList(list, "spec.filters")
			return allFilter(fs), problems
		}
	}
	raw, ok := lookup(o, "spec", "filter", "attributes")
	if !ok {
		return matchAll{}, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return matchAll{}, []error{fmt.Errorf("spec.filter.attributes: want a map, got %T", raw)}
	}
	var fs allFilter
	for k, v := range m {
		s, isString := v.(string)
		if !isString {
			return matchAll{}, []error{fmt.Errorf("spec.filter.attributes.%s: want a string, got %T", k, v)}
		}
		if s != "" { // "" is Knative's "any value"
			fs = append(fs, exactFilter{k, s})
		}
	}
	return fs, nil
}

func parseFilterList(list []any, path string) ([]filter, []error) {
	var fs []filter
	var problems []error
	for i, item := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		m, ok := item.(map[string]any)
		if !ok {
			problems = append(problems, fmt.Errorf("%s: want an object, got %T", p, item))
			continue
		}
		f, errs := parseSubscriptionsAPIFilter(m, p)
		problems = append(problems, errs...)
		if f != nil {
			fs = append(fs, f)
		}
	}
	return fs, problems
}

// parseSubscriptionsAPIFilter mirrors Knative's MaterializeSubscriptionsAPIFilter: one dialect
// per filter, picked in the order exact, prefix, suffix, all, any, not, cesql. nil means skipped.
func parseSubscriptionsAPIFilter(m map[string]any, path string) (filter, []error) {
	for _, dialect := range []string{"exact", "prefix", "suffix"} {
		raw, ok := m[dialect]
		if !ok {
			continue
		}
		attrs, isMap := raw.(map[string]any)
		if !isMap {
			return nil, []error{fmt.Errorf("%s.%s: want a map, got %T", path, dialect, raw)}
		}
		if len(attrs) == 0 {
			continue
		}
		var fs allFilter
		for k, v := range attrs {
			s, _ := v.(string)
			if k == "" || s == "" {
				return nil, []error{fmt.Errorf("%s.%s: attribute %q: name and value must be non-empty strings", path, dialect, k)}
			}
			switch dialect {
			case "exact":
				fs = append(fs, exactFilter{k, s})
			case "prefix":
				fs = append(fs, prefixFilter{k, s})
			default:
				fs = append(fs, suffixFilter{k, s})
			}
		}
		if len(fs) == 1 {
			return fs[0], nil
		}
		return fs, nil
	}
	for _, dialect := range []string{"all", "any"} {
		raw, ok := m[dialect]
		if !ok {
			continue
		}
		list, isList := raw.([]any)
		if !isList {
			return nil, []error{fmt.Errorf("%s.%s: want a list, got %T", path, dialect, raw)}
		}
		if len(list) == 0 {
			continue
		}
		fs, problems := parseFilterList(list, path+"."+dialect)
		if dialect == "all" {
			return allFilter(fs), problems
		}
		return anyFilter(fs), problems
	}
	if raw, ok := m["not"]; ok && raw != nil {
		inner, isMap := raw.(map[string]any)
		if !isMap {
			return nil, []error{fmt.Errorf("%s.not: want an object, got %T", path, raw)}
		}
		f, problems := parseSubscriptionsAPIFilter(inner, path+".not")
		if f == nil {
			return nil, problems
		}
		return notFilter{f}, problems
	}
	if raw, ok := m["cesql"]; ok {
		expression, _ := raw.(string)
		if expression == "" {
			return nil, nil
		}
		f, err := newCESQLFilter(expression)
		if err != nil {
			return nil, []error{fmt.Errorf("%s.cesql: %w", path, err)}
		}
		return f, nil
	}
	return nil, nil
}
