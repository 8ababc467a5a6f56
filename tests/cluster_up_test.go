package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestDevStackUpOnRealAPIServer deploys the dev stack through the real
// Kubernetes provider into the local apiserver (kubeconfig target, with the
// documented target.skipAwait switch because no kubelet runs Pods), then
// proves a second up changes nothing and destroy removes it all.
func TestDevStackUpOnRealAPIServer(t *testing.T) {
	ctx := context.Background()
	const ns = "kcp-up"
	_, opts, stack := clusterStack(t, ns, "kcp-tmc:kubeconfig")

	up, err := stack.Up(ctx, optup.ProgressStreams(testWriter{t}))
	if err != nil {
		t.Fatalf("up against the apiserver: %v", err)
	}
	if n := (*up.Summary.ResourceChanges)[string(apitype.OpCreate)]; n < 4 {
		t.Errorf("up created %d resources, want the platform", n)
	}
	got, _, err := kube.Kubectl(ctx, nil, "get", "namespace", ns, "-o",
		`jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce} {.metadata.annotations.pulumi\.com/skipAwait}`)
	if err != nil {
		t.Fatal(err)
	}
	if got != "restricted true" {
		t.Errorf("namespace enforce label and skipAwait annotation = %q, want %q", got, "restricted true")
	}
	if _, _, err := kube.Kubectl(ctx, nil, "get", "networkpolicy", "default-deny", "-n", ns); err != nil {
		t.Errorf("default-deny policy missing: %v", err)
	}
	assertNotInState(t, opts.BackendURL, "kcp-tmc-test-admin") // the kubeconfig's token

	again, err := stack.Up(ctx, optup.SuppressProgress())
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	for op, n := range *again.Summary.ResourceChanges {
		if op != string(apitype.OpSame) && n > 0 {
			t.Errorf("second up against the apiserver changed something: %v", *again.Summary.ResourceChanges)
		}
	}

	if _, err := stack.Destroy(ctx, optdestroy.ProgressStreams(testWriter{t})); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	// The namespace controller finalizes the namespace; wait for it to go.
	for i := 0; i < 60; i++ {
		if _, _, err := kube.Kubectl(ctx, nil, "get", "namespace", ns); err != nil && strings.Contains(err.Error(), "NotFound") {
			return
		}
		time.Sleep(time.Second)
	}
	t.Errorf("namespace %s still exists after destroy", ns)
}

// assertNotInState fails if secret appears in any file of a file:// backend
// (state, history, backups), i.e. anywhere it would be stored unencrypted.
func assertNotInState(t *testing.T, backendURL, secret string) {
	t.Helper()
	root := strings.TrimPrefix(backendURL, "file://")
	files := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if strings.Contains(string(b), secret) {
			t.Errorf("secret stored in plaintext in %s", p)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("reading the state backend %s: %v (%d files)", root, err, files)
	}
}

// clusterStack is a private copy of the dev stack that deploys into
// namespace ns of the local apiserver (kubeconfig target, skipAwait: no
// kubelet), with the apiserver's admin kubeconfig set as each secret key.
func clusterStack(t *testing.T, ns string, secretKeys ...string) (string, automation.Options, auto.Stack) {
	t.Helper()
	dir, opts := testenv.Project(t, "dev", map[string]any{
		"kcp-tmc:namespace": ns,
		"kcp-tmc:target":    map[string]any{"mode": "kubeconfig", "skipAwait": true},
	})
	stack, err := automation.Stack(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range secretKeys {
		if err := stack.SetConfig(context.Background(), key, auto.ConfigValue{Value: string(kubeconfig), Secret: true}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, opts, stack
}
