package automation_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestCheckpointsOnlyWhereTheyKeepSomething runs the real CLI behind a
// wrapper that logs each engine command with PULUMI_SKIP_CHECKPOINTS:
// automation.Preview turns the per-step checkpoints off (a preview keeps no
// state, and they cost a 100-cluster preview 302 of its 342 s), up keeps
// them (the up after a killed one reads them), and the workspace's
// environment is as before once the preview is done.
func TestCheckpointsOnlyWhereTheyKeepSomething(t *testing.T) {
	_, opts := testenv.Project(t, "dev", nil)
	cache, log := t.TempDir(), filepath.Join(t.TempDir(), "commands.log")
	if err := os.Mkdir(filepath.Join(cache, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	const plugin = "pulumi-resource-kubernetes"
	if err := os.Symlink(filepath.Join(automation.ToolchainBin(), plugin), filepath.Join(cache, "bin", plugin)); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\necho \"$* skip=${PULUMI_SKIP_CHECKPOINTS:-unset}\" >> %q\nexec %q \"$@\"\n",
		log, filepath.Join(automation.ToolchainBin(), "pulumi"))
	if err := os.WriteFile(filepath.Join(cache, "bin", "pulumi"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KCP_TMC_CACHE", cache)
	t.Setenv(automation.SkipCheckpointsEnv, "")
	opts.Program = func(ctx *pulumi.Context) error { return nil }
	ctx := context.Background()
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := automation.Preview(ctx, s, optpreview.SuppressProgress()); err != nil {
		t.Fatalf("preview: %v", err)
	}
	if _, err := s.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up: %v", err)
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"preview": "skip=true", "up": "skip=unset"}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		for _, command := range []string{"preview", "up"} {
			if strings.Contains(" "+line+" ", " "+command+" ") {
				if !strings.HasSuffix(line, want[command]) {
					t.Errorf("%s ran with %s, want %s", command, line[strings.LastIndex(line, " ")+1:], want[command])
				}
				delete(want, command)
			}
		}
	}
	for command := range want {
		t.Errorf("no %s in the engine commands:\n%s", command, raw)
	}
}
