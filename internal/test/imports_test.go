package test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoRuntimePackageImportsATestHelper: only tests and the helpers
// themselves import internal/test/... (go list's Imports excludes test files).
func TestNoRuntimePackageImportsATestHelper(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", "github.com/kcp-tmc/kcp-tmc/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const helpers = "github.com/kcp-tmc/kcp-tmc/internal/test/"
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		checked++
		if strings.HasPrefix(pkg, helpers) {
			continue
		}
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, helpers) {
				t.Errorf("%s (not a test) imports the test helper %s", pkg, imp)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("go list listed %d packages", checked)
	}
}

// TestLayersImportDownward: the runtime packages form layers, and an import
// may only point down (or sideways within a layer): libraries (pkg/) know no
// component, components know no stack, the program knows neither the engine
// driver nor the day-2 verbs, and only the CLI's entry point knows the CLI.
func TestLayersImportDownward(t *testing.T) {
	const module = "github.com/kcp-tmc/kcp-tmc"
	layers := []struct {
		dir  string
		name string
		rank int
	}{
		{"pkg", "libraries", 0}, {"components", "components", 1}, {"stacks", "the program", 2},
		{"automation", "the engine driver", 3}, {"ops", "the day-2 verbs", 3}, {"internal/cli", "the CLI", 4},
	}
	rank := map[string]int{}
	for _, l := range layers {
		rank[l.name] = l.rank
	}
	layerOf := func(pkg string) (string, bool) {
		rel, _ := strings.CutPrefix(pkg, module+"/")
		for _, l := range layers {
			if rel == l.dir || strings.HasPrefix(rel, l.dir+"/") {
				return l.name, true
			}
		}
		return "", false // entry points, tests, hack: above every layer
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		from, layered := layerOf(pkg)
		if !layered {
			continue
		}
		seen[from] = true
		for _, imp := range strings.Split(imports, ",") {
			if to, ok := layerOf(imp); ok && rank[to] > rank[from] {
				t.Errorf("%s (%s) imports %s (%s): an import must point down", pkg, from, imp, to)
			}
		}
	}
	for name := range rank {
		if !seen[name] {
			t.Errorf("no package found in layer %q: the layer table is out of date", name)
		}
	}
}
