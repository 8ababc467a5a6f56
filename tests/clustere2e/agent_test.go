package clustere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestAgentOnTheSameNode: the dev stack with one api-syncagent cluster entry
// whose physical cluster is the node itself. After up, the kcp side and the
// agent's identity (cert-manager mode: `kcp-tmc agent-identity`), the agent
// runs in the cluster, reaches kcp at its public address through CoreDNS and
// the load balancer, and a Widget created in a consumer workspace reaches
// the node and its status comes back.
func TestAgentOnTheSameNode(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	if err := kube.Apply(ctx, cluster.WidgetCRD); err != nil {
		t.Fatal(err)
	}
	p := newPlatform(t, map[string]any{
		"kcp-tmc:clusters": []any{map[string]any{"name": "local", "replicas": 1,
			"resources": []any{map[string]any{"group": "example.com", "version": "v1", "kind": "Widget", "plural": "widgets"}}}},
	})
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := json.Marshal(map[string]string{"local": string(kubeconfig)})
	p.setSecret("kcp-tmc:clusterKubeconfigs", string(kc))
	p.destroyAtCleanup()

	p.must("up")
	p.publishFrontDoor("kcp-front-proxy-lb", host)
	admin := p.kcpAdminKubeconfig("https://" + host + ":443")
	p.setSecret("kcp-tmc:kcpKubeconfig", admin)
	p.must("up")
	p.must("agent-identity")
	if err := kube.WaitRollout(ctx, "kcp-agent", "deployment/api-syncagent", 5*time.Minute); err != nil {
		logs, _, _ := kube.Kubectl(ctx, nil, "-n", "kcp-agent", "logs", "deployment/api-syncagent", "--tail=40")
		t.Fatalf("the agent did not become Ready: %v\nlog:\n%s", err, logs)
	}
	p.must("up", "--expect-no-changes")

	t.Cleanup(func() {
		if t.Failed() {
			logs, _, _ := kube.Kubectl(ctx, nil, "-n", "kcp-agent", "logs", "deployment/api-syncagent", "--tail=30")
			t.Logf("agent log:\n%s", tail(logs, 6000))
		}
	})
	adminFile := filepath.Join(t.TempDir(), "kcp-admin.kubeconfig")
	if err := os.WriteFile(adminFile, []byte(admin), 0o600); err != nil {
		t.Fatal(err)
	}
	// kcpTry runs the pinned kubectl as kcp's admin in a workspace.
	kcpTry := func(workspace string, stdin string, args ...string) (string, error) {
		var in []byte
		if stdin != "" {
			in = []byte(stdin)
		}
		out, _, err := kube.Kubectl(ctx, in, append([]string{"--kubeconfig=" + adminFile, "--server=https://" + host + ":443/clusters/" + workspace}, args...)...)
		return out, err
	}
	poll := func(workspace, want string, args ...string) func() (bool, string) {
		return func() (bool, string) {
			out, err := kcpTry(workspace, "", args...)
			if err != nil {
				return false, err.Error()
			}
			if want == "" {
				return out != "" && out != "[]", out
			}
			return out == want, out
		}
	}
	kcp := func(workspace string, stdin string, args ...string) {
		t.Helper()
		if _, err := kcpTry(workspace, stdin, args...); err != nil {
			t.Fatal(err)
		}
	}
	kcp("root", `apiVersion: tenancy.kcp.io/v1alpha1
kind: Workspace
metadata: {name: consumer}
`, "create", "-f", "-")
	waitCmd(t, "workspace consumer Ready", 2*time.Minute, poll("root", "Ready", "get", "workspace", "consumer", "-o", "jsonpath={.status.phase}"))
	export := "local-export"
	waitCmd(t, "the agent publishes Widget into "+export, 2*time.Minute,
		poll("root:compute", "", "get", "apiexports.v1alpha1.apis.kcp.io", export, "-o", "jsonpath={.spec.latestResourceSchemas}"))
	kcp("root:consumer", fmt.Sprintf(`apiVersion: apis.kcp.io/v1alpha1
kind: APIBinding
metadata: {name: widgets}
spec: {reference: {export: {path: "root:compute", name: %s}}}
`, export), "create", "-f", "-")
	waitCmd(t, "APIBinding Bound", 2*time.Minute, poll("root:consumer", "Bound", "get", "apibinding", "widgets", "-o", "jsonpath={.status.phase}"))
	waitCmd(t, "a Widget created in kcp", time.Minute, func() (bool, string) {
		out, err := kcpTry("root:consumer", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"default"},"spec":{"size":3}}`, "create", "-f", "-")
		if err != nil {
			return false, err.Error()
		}
		return true, out
	})
	began := time.Now()
	var name, ns string
	waitCmd(t, "the Widget reaches the node", 2*time.Minute, func() (bool, string) {
		out, _, err := kube.Kubectl(ctx, nil, "get", "widgets.example.com", "-A", "-o", `jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{"\n"}{end}`)
		if err != nil || strings.TrimSpace(out) == "" {
			return false, out
		}
		f := strings.Fields(out)
		ns, name = f[0], f[1]
		return true, out
	})
	t.Logf("kcp → node in %s", time.Since(began).Round(100*time.Millisecond))
	began = time.Now()
	if _, _, err := kube.Kubectl(ctx, nil, "-n", ns, "patch", "widgets.example.com", name, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Provisioned"}}`); err != nil {
		t.Fatal(err)
	}
	waitCmd(t, "the status comes back to kcp", 2*time.Minute,
		poll("root:consumer", "Provisioned", "get", "widgets.example.com", "w1", "-n", "default", "-o", "jsonpath={.status.phase}"))
	t.Logf("node → kcp status in %s", time.Since(began).Round(100*time.Millisecond))

	p.destroy()
}

// waitCmd polls check every second until it reports done, failing the test
// with the last detail after timeout.
func waitCmd(t *testing.T, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = check(); ok {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: not after %s (last: %q)", what, timeout, last)
}
