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
