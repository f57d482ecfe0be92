package mesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Summary says in one line what an update changed, field by field
// (`consumedBy: [] → ["shipping"]`); it is empty for adds and deletes.
func (c Change) Summary() string {
	if c.Op != OpUpdated {
		return ""
	}
	var before, after map[string]json.RawMessage
	if json.Unmarshal(c.Previous, &before) != nil || json.Unmarshal(c.Entity, &after) != nil {
		return ""
	}
	var names []string
	for name := range after {
		names = append(names, name)
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var parts []string
	for _, name := range names {
		if !bytes.Equal(before[name], after[name]) {
			parts = append(parts, fmt.Sprintf("%s: %s → %s", name, short(before[name]), short(after[name])))
		}
	}
	return strings.Join(parts, "; ")
}

func short(v json.RawMessage) string {
	const limit = 120
	if v == nil {
		return "∅"
	}
	if len(v) > limit {
		return string(v[:limit]) + "…"
	}
	return string(v)
}
