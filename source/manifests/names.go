package manifests

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checkTypeMeta judges an object's apiVersion and kind as the API server does: the group a
// DNS-1123 subdomain, the version a DNS-1035 label, the kind a DNS-1035 label up to case
// (CustomResourceDefinition's rule for names.kind). A kind the API server could not serve (one
// with control characters, say) never reaches the mesh, its keys or a terminal.
func checkTypeMeta(apiVersion, kind string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return fmt.Sprintf("apiVersion %q: want group/version or version", apiVersion)
	}
	if gv.Group != "" {
		if errs := validation.IsDNS1123Subdomain(gv.Group); len(errs) > 0 {
			return fmt.Sprintf("apiVersion %q: the group: %s", apiVersion, errs[0])
		}
	}
	if errs := validation.IsDNS1035Label(gv.Version); len(errs) > 0 {
		return fmt.Sprintf("apiVersion %q: the version: %s", apiVersion, errs[0])
	}
	if errs := validation.IsDNS1035Label(strings.ToLower(kind)); len(errs) > 0 {
		return fmt.Sprintf("kind %q: may have mixed case, but should otherwise be a DNS-1035 label: %s", kind, errs[0])
	}
	return ""
}

// checkCRDNames judges a CustomResourceDefinition's spec as the API server does: spec.group
// a DNS-1123 subdomain with a dot, the names DNS-1035 labels (kinds up to case), the versions'
// names DNS-1035 labels. The kind it declares becomes entity keys and event types.
func checkCRDNames(spec map[string]any) []string {
	var problems []string
	group, _ := spec["group"].(string) // missing: the definition is unusable (ignored), as without names
	if errs := validation.IsDNS1123Subdomain(group); group != "" && len(errs) > 0 {
		problems = append(problems, fmt.Sprintf("spec.group %q: %s", group, errs[0]))
	} else if group != "" && !strings.Contains(group, ".") {
		problems = append(problems, fmt.Sprintf("spec.group %q: should be a domain with at least one dot", group))
	}
	names, _ := spec["names"].(map[string]any)
	for _, f := range []struct {
		name  string
		lower bool // plural and singular are lowercase; kinds may have mixed case
	}{{"kind", false}, {"plural", true}, {"listKind", false}, {"singular", true}} {
		// A missing name leaves the definition unusable (the engine ignores it), not invalid.
		raw, present := names[f.name]
		v, isString := raw.(string)
		switch {
		case present && !isString:
			problems = append(problems, fmt.Sprintf("spec.names.%s: want a string", f.name))
			continue
		case v == "":
			continue
		}
		label := v
		if !f.lower {
			label = strings.ToLower(v)
		}
		if errs := validation.IsDNS1035Label(label); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("spec.names.%s %q: %s", f.name, v, errs[0]))
		}
	}
	versions, _ := spec["versions"].([]any)
	for i, raw := range versions {
		v, _ := raw.(map[string]any)
		name, _ := v["name"].(string)
		if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("spec.versions[%d].name %q: %s", i, name, errs[0]))
		}
	}
	return problems
}
