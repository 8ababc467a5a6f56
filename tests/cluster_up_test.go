package tests

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/cli"
	"github.com/kcp-tmc/kcp-tmc/internal/test/proctest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
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
	// etcd's rollout Job never runs here: replaced while not complete, it
	// would be replaced at every up (the second up below changes nothing).
	got, _, err = kube.Kubectl(ctx, nil, "get", "job", "etcd-rollout", "-n", ns, "-o",
		`jsonpath={.metadata.annotations.pulumi\.com/skipAwait}/{.metadata.annotations.pulumi\.com/replaceUnready}`)
	if err != nil || got != "true/" {
		t.Errorf("etcd-rollout Job skipAwait/replaceUnready = %q (%v), want %q", got, err, "true/")
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
	return clusterStackWith(t, ns, nil, secretKeys...)
}

// clusterStackWith is clusterStack with more config (full keys).
func clusterStackWith(t *testing.T, ns string, config map[string]any, secretKeys ...string) (string, automation.Options, auto.Stack) {
	t.Helper()
	overrides := map[string]any{
		"kcp-tmc:namespace": ns,
		"kcp-tmc:target":    map[string]any{"mode": "kubeconfig", "skipAwait": true},
	}
	maps.Copy(overrides, config)
	dir, opts := testenv.Project(t, "dev", overrides)
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

// TestKilledUpWithoutCheckpointsRecovers: `kcp-tmc up --skip-checkpoints`
// SIGKILLed while it creates, on the real apiserver, leaves objects in the
// cluster that its state does not know (it writes the state only at its
// end); the next up, which removes the killed one's lock by itself, applies them again by name
// (server-side, forced) without a conflict, an up after it changes
// nothing, and destroy removes them all.
func TestKilledUpWithoutCheckpointsRecovers(t *testing.T) {
	ctx := context.Background()
	const ns = "kcp-killed"
	dir, opts, _ := clusterStack(t, ns, "kcp-tmc:kubeconfig")
	t.Setenv("PULUMI_BACKEND_URL", opts.BackendURL) // the CLI's backend: clusterStack's
	t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })
	killed := exec.Command(os.Args[0], "up", "--skip-checkpoints", "--stack", "dev", "--project-dir", dir)
	killed.Env = append(os.Environ(), "KCP_TMC_TEST_AS_CLI=1")
	if out, err := proctest.KillAfter(killed, "created", 40, 0); err != nil {
		t.Fatalf("killing the up: %v\n%s", err, out)
	}
	const kinds = "serviceaccounts,configmaps,secrets,services,deployments,statefulsets,networkpolicies,roles,rolebindings," +
		"poddisruptionbudgets,certificates.cert-manager.io,issuers.cert-manager.io,servicemonitors,prometheusrules"
	left, _, err := kube.Kubectl(ctx, nil, "get", kinds, "-n", ns, "-l", "app.kubernetes.io/managed-by=pulumi", "-o", "name")
	if err != nil || strings.TrimSpace(left) == "" {
		t.Fatalf("the killed up left no object in %s (%v): it was killed too early to show anything", ns, err)
	}
	if n, _ := testenv.Checkpoint(t, opts.BackendURL); n != 0 {
		t.Fatalf("the state holds %d resources after the killed up, want none: it did not skip its checkpoints", n)
	}
	t.Logf("the killed up left %d objects the state does not know:\n%s", len(strings.Fields(left)), left)

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := cli.Run(ctx, append([]string{args[0], "--stack", "dev", "--project-dir", dir}, args[1:]...), &out, &out)
		return out.String(), err
	}
	if out, err := run("up"); err != nil || !strings.Contains(out, `removed the lock of stack "dev" that a killed kcp-tmc pid `) {
		t.Fatalf("up after the killed one: err = %v, want it to remove the killed one's lock and converge\n%s", err, cluster.Tail(out, 3000))
	}
	if out, err := run("up", "--expect-no-changes"); err != nil {
		t.Fatalf("the up after the recovered one: %v\n%s", err, cluster.Tail(out, 3000))
	}
	if out, err := run("destroy", "--yes"); err != nil {
		t.Fatalf("destroy: %v\n%s", err, cluster.Tail(out, 3000))
	}
	if rest, _, _ := kube.Kubectl(ctx, nil, "get", kinds, "-n", ns, "-l", "app.kubernetes.io/managed-by=pulumi", "-o", "name"); strings.TrimSpace(rest) != "" {
		t.Errorf("after destroy, still in %s:\n%s", ns, rest)
	}
}
