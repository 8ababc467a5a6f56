package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/cli"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// kube is the local control plane every test in this package shares: started
// once per `go test` run, torn down at the end.
var kube *cluster.Cluster

func TestMain(m *testing.M) {
	// The test binary runs as kcp-tmc, so a test can kill a deploy from
	// outside as a CI runner's timeout does.
	if os.Getenv("KCP_TMC_TEST_AS_CLI") == "1" {
		os.Exit(cli.ExitCode(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)))
	}
	os.Exit(runWithCluster(m))
}

func runWithCluster(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "kcp-tmc-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Every engine command, kcp-tmc and test of this package gets a temp
	// directory of its own, which must be empty at the end: the Kubernetes
	// provider left a kubeconfig with credentials there per cluster and
	// operation before automation gave each engine command a private one.
	tmp, err := os.MkdirTemp("", "kcp-tmc-tests-tmp-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	os.Setenv("TMPDIR", tmp)
	start := time.Now()
	kube, err = cluster.Start(ctx, automation.ToolchainBin(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane (run hack/toolchain.sh, or make test):", err)
		return 1
	}
	defer kube.Stop()
	if err := installCRDs(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "installing upstream CRDs:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "local control plane ready with CRDs in %s\n", time.Since(start).Round(time.Millisecond))
	if code := m.Run(); code != 0 {
		return code
	}
	return leftInTemp(tmp)
}

// leftInTemp fails the run when something is left in the package's temp
// directory once every test is done.
func leftInTemp(tmp string) int {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, e := range entries {
		fmt.Fprintf(os.Stderr, "FAIL: %s was left in the tests' temp directory %s\n", e.Name(), tmp)
	}
	if len(entries) > 0 {
		return 1
	}
	return 0
}

// crdSources are the upstream CRD directories hack/toolchain.sh links from the
// pinned modules in the Go module cache.
var crdSources = []string{"cert-manager", "prometheus-operator", "gateway-api"}

func installCRDs(ctx context.Context) error {
	for _, src := range crdSources {
		dir, err := toolchain.Source(src)
		if err != nil {
			return err
		}
		// Several prometheus-operator CRDs exceed the client-side apply annotation limit.
		if _, _, err := kube.Kubectl(ctx, nil, "apply", "--server-side", "--field-manager=kcp-tmc-test", "-f", dir); err != nil {
			return err
		}
	}
	_, _, err := kube.Kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	return err
}

// getJSON reads an object (or list) of the shared control plane:
// kubectl get -o json ARGS into out.
func getJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	stdout, stderr, err := kube.Kubectl(context.Background(), nil, append([]string{"get", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("kubectl get %v: %v\n%s", args, err, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("kubectl get %v: %v", args, err)
	}
}
