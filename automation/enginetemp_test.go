package automation

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
