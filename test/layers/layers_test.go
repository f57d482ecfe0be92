// Package layers checks that imports point down the data flow (source → mesh → codec →
// transports, with the wire contract at the bottom), so that a consumer, a transport or the
// configuration never compiles more of the broadcaster than it needs. docs/architecture.md
// draws the same picture.
package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/event-mesh-broadcaster/broadcaster/"

// deps lists what pkg compiles, itself excluded: the module's packages (without the module
// prefix) and the others outside the standard library.
func deps(t *testing.T, pkg string) (own, others []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == module+pkg:
		case strings.HasPrefix(dep, module):
			own = append(own, strings.TrimPrefix(dep, module))
		default:
			others = append(others, dep)
		}
	}
	return own, others
}

func packages(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", module+pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(p, "/internal/") {
			pkgs = append(pkgs, strings.TrimPrefix(p, module))
		}
	}
	if len(pkgs) == 0 {
		t.Fatalf("no packages match %s", pattern)
	}
	return pkgs
}

func TestImportsPointDownTheDataFlow(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pkgs string // a package or a pattern
		// only, when set, lists every package of the module pkg may compile (by prefix);
		// never lists what it must not compile (by prefix).
		only, never []string
		// stdlibOnly: nothing outside the standard library and the module.
		stdlibOnly bool
	}{
		// The wire contract and the options helper are leaves every package may import.
		{pkgs: "mesh", only: []string{}, stdlibOnly: true},
		{pkgs: "config/option", only: []string{}, stdlibOnly: true},
		// The change log reads the contract only.
		{pkgs: "mesh/changelog", only: []string{"mesh", "config/option"}, stdlibOnly: true},
		// The engine is pure: no sources, no transports, no codec.
		{pkgs: "mesh/engine", never: []string{"source", "transports", "codec", "config", "mesh/hub"}},
		// The configuration maps files, flags and environment; it builds no part.
		{pkgs: "config", never: []string{"source", "transports", "mesh/engine", "mesh/hub"}},
		// Transports read the mesh through the contract (mesh.State), never the engine.
		{pkgs: "transports/...", never: []string{"mesh/engine", "mesh/hub", "source"}},
		// The codec and the consumer library: the contract only.
		{pkgs: "codec/...", never: []string{"mesh/", "source", "transports"}},
		// Sources feed the engine; they know no transport.
		{pkgs: "source/...", never: []string{"transports", "codec"}},
	} {
		for _, pkg := range packages(t, tt.pkgs) {
			t.Run(pkg, func(t *testing.T) {
				t.Parallel()
				own, others := deps(t, pkg)
				for _, dep := range own {
					if tt.only != nil && !hasPrefix(dep, tt.only) {
						t.Errorf("%s imports %s; it may import only %q", pkg, dep, tt.only)
					}
					if hasPrefix(dep, tt.never) {
						t.Errorf("%s imports %s, against the data flow", pkg, dep)
					}
				}
				if tt.stdlibOnly && len(others) > 0 {
					t.Errorf("%s compiles %d packages outside the standard library: %q", pkg, len(others), others)
				}
			})
		}
	}
}

// hasPrefix reports whether dep is one of prefixes or below one (a prefix ending in "/"
// matches only below it).
func hasPrefix(dep string, prefixes []string) bool {
	for _, p := range prefixes {
		if dep == p || strings.HasPrefix(dep, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}
