package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/testenv"
	"github.com/kcp-tmc/kcp-tmc/internal/toolchain"
)

// TestWorkflowsPassActionlint runs the pinned actionlint over every workflow,
// and proves it fails on a broken one.
func TestWorkflowsPassActionlint(t *testing.T) {
	bin := toolchain.Path("actionlint")
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), ".github", "workflows", "*.yml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("workflows: %v %v", files, err)
	}
	if out, err := exec.Command(bin, files...).CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.evnt.name }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "evnt") {
		t.Errorf("actionlint accepted a broken workflow: %v\n%s", err, out)
	}
}
