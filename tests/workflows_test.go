package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
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

// TestAffectedStacks: the pull-request workflow previews only the stacks a
// change can affect.
func TestAffectedStacks(t *testing.T) {
	script := filepath.Join(testenv.RepoRoot(t), "hack", "affected-stacks.sh")
	tests := []struct {
		name    string
		changed []string
		want    string
	}{
		{"docs only", []string{"README.md", "docs/runbook.md"}, `[]`},
		{"one stack file", []string{"Pulumi.prod.yaml"}, `["prod"]`},
		{"two stack files and docs", []string{"Pulumi.prod.yaml", "docs/backup.md", "Pulumi.dev.yaml"}, `["dev","prod"]`},
		{"code", []string{"components/etcd/etcd.go"}, `["dev","staging","prod"]`},
		{"project file", []string{"Pulumi.yaml"}, `["dev","staging","prod"]`},
		{"stack file and code", []string{"Pulumi.staging.yaml", "go.mod"}, `["dev","staging","prod"]`},
		{"unknown stack file", []string{"Pulumi.qa.yaml"}, `["dev","staging","prod"]`},
		{"nothing", nil, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", script)
			cmd.Stdin = strings.NewReader(strings.Join(tt.changed, "\n"))
			out, err := cmd.Output()
			if err != nil || strings.TrimSpace(string(out)) != tt.want {
				t.Errorf("affected-stacks %v = %q (%v), want %s", tt.changed, out, err, tt.want)
			}
		})
	}
}
