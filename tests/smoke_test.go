package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/internal/cli"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

// TestCLIOnLocalControlPlane drives the CLI as an operator would against a
// real apiserver (which also stands in for kcp: kcp is a generic apiserver,
// and cannot run here): up, refresh, drift (none; then a hand edit is
// detected with exit 3 and healed by up), smoke (fails while no Pod is ready
// — no kubelet — and passes once the test plays the kubelet), destroy.
func TestCLIOnLocalControlPlane(t *testing.T) {
	ctx := context.Background()
	const ns = "kcp-cli"
	dir, opts, _ := clusterStack(t, ns, "kcp-tmc:kubeconfig")
	for k, v := range opts.Env {
		t.Setenv(k, v)
	}
	t.Setenv("PULUMI_BACKEND_URL", opts.BackendURL)
	kcpCLI := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := cli.Run(ctx, append([]string{args[0], "--stack", "dev", "--project-dir", dir}, args[1:]...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := kcpCLI(args...)
		if err != nil {
			t.Fatalf("kcp-tmc %v: %v\n%s", args, err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if out, err := kcpCLI("destroy", "--yes"); err != nil {
			t.Errorf("destroy: %v\n%s", err, out)
		}
	})

	mustCLI("up")
	mustCLI("refresh")
	if out := mustCLI("drift"); !strings.Contains(out, "no drift") {
		t.Fatalf("drift right after up:\n%s", out)
	}
	// Hand edits on the cluster: drift (with its refresh) must see each, and
	// the documented remedy must converge again.
	kubectl := func(args ...string) {
		t.Helper()
		if _, _, err := kube.Kubectl(ctx, nil, append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	edits := []struct {
		name, want string
		edit, undo []string
	}{
		{"deleted object", `"create": 1`, []string{"delete", "networkpolicy", "default-deny"}, nil},
		// kcp-tmc forces server-side applies (the stack owns its objects):
		// a hand edit of a field the program sets is drift that up takes back.
		{"hand-edited field", `"update": 1`,
			[]string{"label", "networkpolicy", "default-deny", "app.kubernetes.io/managed-by=hand", "--overwrite"},
			[]string{"label", "networkpolicy", "default-deny", "app.kubernetes.io/managed-by-"}},
	}
	for _, e := range edits {
		kubectl(e.edit...)
		out, err := kcpCLI("drift", "--json")
		if !errors.Is(err, cli.ErrDrift) || cli.ExitCode(err) != 3 || !strings.Contains(out, `"drift": true`) || !strings.Contains(out, e.want) {
			t.Fatalf("drift after a hand edit (%s): err = %v (exit %d), want %s\n%s", e.name, err, cli.ExitCode(err), e.want, out)
		}
		if e.undo != nil {
			kubectl(e.undo...)
		}
		mustCLI("up", "--refresh")
		if out := mustCLI("drift"); !strings.Contains(out, "no drift") {
			t.Fatalf("drift after healing the %s:\n%s", e.name, out)
		}
	}

	// kcp's admin access as the stack keeps it on the hosting cluster: the
	// kcp-admin certificate and kcp-server-ca (here: accepted by the apiserver
	// that stands in for kcp).
	kcpServer := "--kcp-server=" + kube.Server
	if out, err := kcpCLI("smoke", kcpServer); err == nil || !strings.Contains(out+err.Error(), "secret "+ns+"/kcp-admin") {
		t.Fatalf("smoke without kcp admin access: %v\n%s", err, out)
	}
	crt, key, err := kube.ClientCert("kcp-admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	secretDir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(secretDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kubectl("create", "secret", "tls", "kcp-admin", "--cert="+filepath.Join(secretDir, "tls.crt"), "--key="+filepath.Join(secretDir, "tls.key"))
	kubectl("create", "secret", "generic", "kcp-server-ca", "--from-file=ca.crt="+kube.CAFile)

	// No kubelet: no Pod is ever ready, and smoke must say which workloads.
	out, err := kcpCLI("smoke", kcpServer, "--load-duration", "0")
	if !errors.Is(err, cli.ErrCheck) || cli.ExitCode(err) != 1 {
		t.Fatalf("smoke with no ready Pod: err = %v, want a failed check\n%s", err, out)
	}
	for _, want := range []string{"ok   kcp front door ready", "ok   kcp serves its API", "FAIL statefulset " + ns + "/etcd ready", "FAIL deployment " + ns + "/kcp ready", "0/1 ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("smoke output lacks %q:\n%s", want, out)
		}
	}

	playKubelet(t, ns, "statefulset/etcd", "deployment/kcp", "deployment/kcp-front-proxy")
	out = mustCLI("smoke", kcpServer, "--json", "--load-duration", "3s")
	var report ops.SmokeReport
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &report); err != nil {
		t.Fatalf("smoke --json: %v\n%s", err, out)
	}
	if !report.OK() || report.Load == nil || report.Load.Requests < 10 || report.Load.Errors != 0 {
		t.Errorf("smoke after the workloads are ready: %+v", report)
	}
	t.Logf("load test on the local apiserver: %+v", *report.Load)
	assertNoSmokeObjects(t, "configmaps", "leases")
}

// assertNoSmokeObjects fails when objects a smoke run created are left.
func assertNoSmokeObjects(t *testing.T, resources ...string) {
	t.Helper()
	for _, r := range resources {
		left, _, err := kube.Kubectl(context.Background(), nil, "get", r, "-A", "-l", ops.SmokeLabel, "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(left) != "" {
			t.Errorf("smoke left objects behind:\n%s", left)
		}
	}
}

// playKubelet marks every Pod of the namespace Running and Ready, as a
// kubelet would once containers pass their probes, until the controllers
// report the workloads ready.
func playKubelet(t *testing.T, ns string, workloads ...string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods, _, err := kube.Kubectl(ctx, nil, "-n", ns, "get", "pods", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		for _, pod := range strings.Fields(pods) {
			_, _, _ = kube.Kubectl(ctx, nil, "-n", ns, "patch", pod, "--subresource=status", "--type=merge", "-p",
				`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
		}
		ready := 0
		for _, w := range workloads {
			got, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", w, "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas}")
			if parts := strings.Split(got, "/"); len(parts) == 2 && parts[0] == parts[1] {
				ready++
			}
		}
		if ready == len(workloads) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workloads %v not ready after marking their Pods ready", workloads)
		}
		time.Sleep(time.Second)
	}
}

// TestSmokeSyncCheck proves the sync check both ways on the real apiserver:
// a stand-in agent that copies labelled ConfigMaps from the "kcp" namespace
// to the "physical cluster" namespace (and removes copies whose source is
// gone) passes it; without the agent it fails naming the cluster.
func TestSmokeSyncCheck(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"smoke-kcp", "smoke-downstream", "smoke-agent"} {
		if _, _, err := kube.Kubectl(ctx, nil, "create", "namespace", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })
	}
	if _, _, err := kube.Kubectl(ctx, nil, "-n", "smoke-agent", "create", "deployment", "api-syncagent", "--image=ghcr.io/kcp-dev/api-syncagent:v0.5.0"); err != nil {
		t.Fatal(err)
	}
	playKubelet(t, "smoke-agent", "deployment/api-syncagent")
	rc, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	target := func(id string) ops.SmokeTarget {
		return ops.SmokeTarget{KCP: rc, Host: rc, Namespace: "smoke-host", WorkloadNamespace: "smoke-kcp", RunID: id,
			SyncTimeout: 5 * time.Second,
			Clusters:    []ops.SmokeCluster{{Name: "east", AgentKind: "api-syncagent", AgentNamespace: "smoke-agent", Config: rc, SyncedNamespace: "smoke-downstream"}}}
	}
	check := func(r ops.SmokeReport, prefix string) ops.Check {
		for _, c := range r.Checks {
			if strings.HasPrefix(c.Name, prefix) {
				return c
			}
		}
		t.Fatalf("no check %q in %+v", prefix, r)
		return ops.Check{}
	}

	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() { standInAgent(agentCtx, "smoke-kcp", "smoke-downstream"); close(agentDone) }()
	r, err := ops.Smoke(ctx, target("with-agent"))
	stopAgent()
	<-agentDone // the no-agent run below must really have no agent
	if err != nil {
		t.Fatal(err)
	}
	if c := check(r, "agent api-syncagent ready on cluster east"); !c.OK {
		t.Errorf("agent check: %+v", c)
	}
	if c := check(r, "test workload synced"); !c.OK || !strings.Contains(c.Detail, "synced to 1 cluster(s)") {
		t.Errorf("sync check with an agent: %+v", c)
	}
	if c := check(r, "deployment smoke-host/kcp ready"); c.OK {
		t.Errorf("a missing kcp Deployment passed: %+v", c)
	}
	// A sharded stack's smoke also wants each shard's kcp and etcd ready and registered.
	sharded := target("sharded")
	sharded.Shards, sharded.Cache = []shard.Shard{{Name: "shard-1"}}, &shard.Shard{Name: shard.Cache}
	r, err = ops.Smoke(ctx, sharded)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"deployment smoke-host/kcp-shard-1 ready", "statefulset smoke-host/etcd-shard-1 ready", "every shard registered",
		"deployment smoke-host/kcp-cache ready", "statefulset smoke-host/etcd-cache ready"} {
		if c := check(r, name); c.OK {
			t.Errorf("%s passed on a cluster without it: %+v", name, c)
		}
	}

	r, err = ops.Smoke(ctx, target("no-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if c := check(r, "test workload synced"); c.OK || !strings.Contains(c.Detail, "not synced") || !strings.Contains(c.Detail, "on: east") {
		t.Errorf("sync check without an agent: %+v", c)
	}
	// A copy the agent made before it stopped stays downstream (no agent to
	// remove it), but nothing may stay in "kcp".
	left, _, err := kube.Kubectl(ctx, nil, "-n", "smoke-kcp", "get", "configmaps", "-l", ops.SmokeLabel, "-o", "name")
	if err != nil || strings.TrimSpace(left) != "" {
		t.Errorf("a failed smoke left its workload in kcp: %s (%v)", left, err)
	}

	// A run killed mid-way leaves its workload; the next run removes it.
	if _, _, err := kube.Kubectl(ctx, nil, "-n", "smoke-kcp", "create", "configmap", "kcp-tmc-smoke-killed"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kube.Kubectl(ctx, nil, "-n", "smoke-kcp", "label", "configmap", "kcp-tmc-smoke-killed", ops.SmokeLabel+"=killed"); err != nil {
		t.Fatal(err)
	}
	r, err = ops.Smoke(ctx, target("after-kill"))
	if err != nil {
		t.Fatal(err)
	}
	if c := check(r, "test workload synced"); !strings.Contains(c.Detail, "removed 1 leftover(s)") {
		t.Errorf("leftover of a killed run not swept: %+v", c)
	}
}

// standInAgent is a minimal syncer: labelled ConfigMaps in from appear in to
// (labels copied, as api-syncagent and the TMC syncer do), and copies whose
// source is gone are deleted.
func standInAgent(ctx context.Context, from, to string) {
	for ctx.Err() == nil {
		src, _, _ := kube.Kubectl(ctx, nil, "-n", from, "get", "configmaps", "-l", ops.SmokeLabel, "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.kcp-tmc\.io/smoke}{"\n"}{end}`)
		dst, _, _ := kube.Kubectl(ctx, nil, "-n", to, "get", "configmaps", "-l", ops.SmokeLabel, "-o", `jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}`)
		want := map[string]bool{}
		for _, line := range strings.Fields(src) {
			name, id, _ := strings.Cut(line, "=")
			want[name] = true
			if !strings.Contains(dst, name) {
				_, _, _ = kube.Kubectl(ctx, nil, "-n", to, "create", "configmap", name)
				_, _, _ = kube.Kubectl(ctx, nil, "-n", to, "label", "configmap", name, ops.SmokeLabel+"="+id)
			}
		}
		for _, name := range strings.Fields(dst) {
			if !want[name] {
				_, _, _ = kube.Kubectl(ctx, nil, "-n", to, "delete", "configmap", name)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}
