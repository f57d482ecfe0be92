package config_test

import (
	"os/exec"
	"strings"
	"testing"
)

// config maps files, flags and the environment onto the parts' settings without importing any
// part: no source, no transport, not the engine, not even through another package.
func TestImportsNoPart(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to list config's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/event-mesh-broadcaster/broadcaster/"
	for _, path := range strings.Fields(string(out)) {
		rel, ours := strings.CutPrefix(path, module)
		if !ours {
			continue
		}
		for _, forbidden := range []string{"source", "transports", "mesh/engine"} {
			if rel == forbidden || strings.HasPrefix(rel, forbidden+"/") {
				t.Errorf("config depends on %s", path)
			}
		}
	}
	if !strings.Contains(string(out), module+"config/option\n") {
		t.Errorf("go list -deps lists no config/option: is the test looking at config?\n%s", out)
	}
}
