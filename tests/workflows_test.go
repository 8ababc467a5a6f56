package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

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

// TestWorkflowsRunTheEngineThroughKCPTMC: a workflow that changes a stack
// (up, refresh, destroy) runs kcp-tmc, whose lease lets the next run take
// over from a lost runner and whose up heals what a killed one left; plain
// pulumi (pulumi/actions) may only preview. (The CLI's version pin:
// pkg/toolchain TestWorkflowsPinThePulumiCLI.)
func TestWorkflowsRunTheEngineThroughKCPTMC(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), ".github", "workflows", "*.yml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("workflows: %v %v", files, err)
	}
	changes := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var workflow struct {
			Jobs map[string]struct {
				Steps []struct {
					Name string            `json:"name"`
					Uses string            `json:"uses"`
					Run  string            `json:"run"`
					With map[string]string `json:"with"`
				} `json:"steps"`
			} `json:"jobs"`
		}
		if err := yaml.Unmarshal(data, &workflow); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for job, j := range workflow.Jobs {
			for _, s := range j.Steps {
				if c := s.With["command"]; strings.HasPrefix(s.Uses, "pulumi/actions@") && c != "" && c != "preview" {
					t.Errorf("%s job %s step %q: pulumi/actions runs %q; a change to a stack goes through kcp-tmc (its lease and heal)", filepath.Base(f), job, s.Name, c)
				}
				for _, verb := range []string{" up ", " refresh ", " destroy ", " renew "} {
					if strings.Contains(s.Run, `"$RUNNER_TEMP/kcp-tmc"`+verb) {
						changes++
					}
				}
			}
		}
	}
	// deploy's two ups and drift's renew: the test reads what it should.
	if changes < 3 {
		t.Errorf("found %d kcp-tmc runs that change a stack in the workflows, want at least 3", changes)
	}
}
