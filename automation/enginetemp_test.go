package automation

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blang/semver"
)

// fakeCommand records the TMPDIR an engine command got and leaves a
// kubeconfig there, as the Kubernetes provider does.
type fakeCommand struct{ tmp *string }

func (f fakeCommand) Run(_ context.Context, _ string, _ io.Reader, _, _ []io.Writer, env []string, _ ...string) (string, string, int, error) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "TMPDIR="); ok {
			*f.tmp = v
		}
	}
	return "", "", 0, os.WriteFile(filepath.Join(*f.tmp, "kubeconfig123"), []byte("token: secret"), 0o600)
}

func (fakeCommand) Version() semver.Version { return semver.Version{} }

func TestPrivateTempPerCommand(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var got string
	cmd := engineCommand{fakeCommand{&got}}
	// A TMPDIR among the workspace's variables does not win over the private one.
	if _, _, _, err := cmd.Run(context.Background(), ".", nil, nil, nil, []string{"TMPDIR=/var/tmp"}, "preview"); err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(got) != os.TempDir() || !strings.HasPrefix(filepath.Base(got), "kcp-tmc-engine-") {
		t.Errorf("the command's TMPDIR = %q, want a kcp-tmc-engine-* directory in %s", got, os.TempDir())
	}
	if _, err := os.Stat(got); !os.IsNotExist(err) {
		t.Errorf("%s is still there after the command (err %v): the kubeconfig in it is not removed", got, err)
	}
}

// killedEngine is an engine that takes the stack's lock and is killed, as
// by SIGKILL, before it can remove it.
type killedEngine struct{}

func (killedEngine) Run(_ context.Context, _ string, _ io.Reader, _, _ []io.Writer, env []string, args ...string) (string, string, int, error) {
	state, _ := LocalState(envValue(env, "PULUMI_BACKEND_URL"), "")
	engine := exec.Command("sleep", "60")
	if err := engine.Start(); err != nil {
		return "", "", -1, err
	}
	host, _ := os.Hostname()
	raw, _ := json.Marshal(StackLock{Pid: engine.Process.Pid, Username: currentUser(), Hostname: host, Timestamp: time.Now()})
	if err := os.WriteFile(filepath.Join(LocksDir(state, flagValue(args, "--stack")), "engine.json"), raw, 0o600); err != nil {
		return "", "", -1, err
	}
	_ = engine.Process.Kill()
	return "", "", -1, engine.Wait()
}

func (killedEngine) Version() semver.Version { return semver.Version{} }

// TestKilledEngineLeavesNoLock: an engine command whose engine is killed
// returns with the engine's lock removed, so the next one runs.
func TestKilledEngineLeavesNoLock(t *testing.T) {
	state := t.TempDir()
	var out strings.Builder
	_, _, _, err := engineCommand{killedEngine{}}.Run(context.Background(), ".", nil, []io.Writer{&out}, nil,
		[]string{"PULUMI_BACKEND_URL=file://" + state}, "up", "--yes", "--stack", "dev")
	if err == nil {
		t.Fatal("the killed engine's command succeeded")
	}
	if locks, _ := StackLocks(state, "dev"); len(locks) != 0 || !strings.Contains(out.String(), "its killed engine (pid") {
		t.Errorf("after the killed engine's command the stack has locks %v; it said %q", locks, out.String())
	}
}
