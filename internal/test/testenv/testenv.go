// Package testenv gives real-engine tests an isolated copy of the project:
// its stack files in a temp dir with its own state backend and Pulumi home,
// so tests never touch the developer's stacks or state.
package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/automation"
)

// RepoRoot walks up from the working directory to the directory with go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RequireToolchain fails (not skips: the suite must not pass without the real
// engine) when hack/toolchain.sh has not built the pinned binaries.
func RequireToolchain(t testing.TB) {
	t.Helper()
	for _, name := range []string{"pulumi", "pulumi-resource-kubernetes"} {
		if _, err := os.Stat(filepath.Join(automation.ToolchainBin(), name)); err != nil {
			t.Fatalf("%s is not built: run hack/toolchain.sh (make test does): %v", name, err)
		}
	}
}

// Project copies Pulumi.yaml and Pulumi.<stack>.yaml into a temp dir, with
// overrides merged into the stack's config (full keys, e.g. "kcp-tmc:etcd";
// a nil value deletes the key). It returns the project dir and Options with a
// private backend and Pulumi home.
func Project(t testing.TB, stack string, overrides map[string]any) (string, automation.Options) {
	t.Helper()
	RequireToolchain(t)
	root := RepoRoot(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "Pulumi.yaml"), filepath.Join(dir, "Pulumi.yaml"))
	writeStackFile(t, filepath.Join(root, "Pulumi."+stack+".yaml"), filepath.Join(dir, "Pulumi."+stack+".yaml"), overrides)
	state := filepath.Join(dir, ".state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, automation.Options{
		Stack:      stack,
		ProjectDir: dir,
		BackendURL: "file://" + state,
		// A fresh Pulumi home proves the engine needs no cached or downloaded plugin.
		Env: map[string]string{"PULUMI_HOME": filepath.Join(dir, ".pulumi-home")},
	}
}

func writeStackFile(t testing.TB, src, dst string, overrides map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	file := map[string]any{}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	cfg, _ := file["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
	}
	for k, v := range overrides {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	file["config"] = cfg
	out, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Checkpoint is what a test reads of the dev stack's state in the local
// or S3 backend at backendURL: how many resources it holds, and the URNs
// of the operations a killed deploy left pending.
func Checkpoint(t testing.TB, backendURL string) (resources int, pending []string) {
	t.Helper()
	locks, err := automation.OpenLocks(backendURL, "", "dev")
	if err != nil || locks == nil {
		t.Fatalf("opening the dev stack's state in %s: %v", backendURL, err)
	}
	defer locks.Close()
	raw, err := locks.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	var cp struct {
		Checkpoint struct {
			Latest struct {
				Resources         []json.RawMessage `json:"resources"`
				PendingOperations []struct {
					Resource struct {
						URN string `json:"urn"`
					} `json:"resource"`
				} `json:"pending_operations"`
			} `json:"latest"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatal(err)
	}
	for _, op := range cp.Checkpoint.Latest.PendingOperations {
		pending = append(pending, op.Resource.URN)
	}
	return len(cp.Checkpoint.Latest.Resources), pending
}
