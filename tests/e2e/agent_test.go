package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/internal/toolchain"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestSyncAgentCluster: a dev stack with one api-syncagent cluster. The
// stack's objects for the cluster are applied to a local kube-apiserver
// standing in for it, its objects for kcp to the running kcp, and the
// agent runs as a real process with the stack's kubeconfig Secret and its
// ServiceAccount's token; a consumer binds the export through the
// front-proxy, a Widget created in kcp appears on the cluster, and the
// status the cluster writes comes back to kcp.
func TestSyncAgentCluster(t *testing.T) { syncAgentCluster(t, "") }

// TestSyncAgentOnShard: the same with kcp.shards [shard-1] and the
// cluster's workspace (its APIExport) and the consumer on shard-1: the
// endpoint slice sends the agent to shard-1's own public address (the
// front-proxy routes /services/ to the root shard only), and it syncs.
func TestSyncAgentOnShard(t *testing.T) { syncAgentCluster(t, "shard-1") }

func syncAgentCluster(t *testing.T, shard string) {
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	agentBin := binary(t, "API_SYNCAGENT_BIN")
	const name, export = "edge", "edge-export"
	config := map[string]string{
		"tls": `{"mode":"self-managed"}`,
		"clusters": `[{"name":"` + name + `","replicas":1,
		  "resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]}]`,
	}
	consumer := map[string]any{"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": map[string]any{"name": "consumer"}}
	if shard != "" {
		config["kcp"] = `{"shards":[{"name":"` + shard + `"}]}`
		config["clusters"] = strings.Replace(config["clusters"], `"replicas":1,`, `"replicas":1,"shard":"`+shard+`",`, 1)
		consumer["spec"] = map[string]any{"location": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"name": shard}}}}
	}
	objs, rec := render(t, "dev", config)
	cp := startControlPlane(t, objs)
	admin := cp.admin

	// The physical cluster, with the service owner's CRD and what the stack
	// renders for it (monitoring.coreos.com kinds are judged in tests/;
	// this cluster has no Prometheus operator).
	kube, err := cluster.Start(context.Background(), toolchain.Bin(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Stop)
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, stderr, err := kube.Kubectl(context.Background(), []byte(stdin), args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	kubectl(cluster.WidgetCRD, "apply", "--server-side", "-f", "-")
	var onCluster []string
	for _, r := range rec {
		if !r.Custom || !strings.Contains(r.Provider, "::pulumi:providers:kubernetes::cluster-"+name+"::") ||
			strings.HasPrefix(r.Type, "kubernetes:monitoring.coreos.com/") {
			continue
		}
		b, err := json.Marshal(r.Input())
		if err != nil {
			t.Fatal(err)
		}
		onCluster = append(onCluster, string(b))
	}
	if len(onCluster) < 8 {
		t.Fatalf("only %d objects for the cluster", len(onCluster))
	}
	// Namespaces and CRDs first, as the provider's dependencies order them.
	for _, phase := range []func(string) bool{
		func(o string) bool {
			return strings.Contains(o, `"kind":"Namespace"`) || strings.Contains(o, `"kind":"CustomResourceDefinition"`)
		},
		func(o string) bool {
			return !strings.Contains(o, `"kind":"Namespace"`) && !strings.Contains(o, `"kind":"CustomResourceDefinition"`)
		},
	} {
		for _, o := range onCluster {
			if phase(o) {
				kubectl(o, "apply", "--server-side", "-f", "-")
			}
		}
		kubectl("", "wait", "--for=condition=Established", "crd/publishedresources.syncagent.kcp.io", "--timeout=60s")
	}

	cp.applyKCPSide(t, rec, map[string]string{"kcp-root": "root", "kcp": "root:compute"})

	// The agent: the Deployment's container, in-cluster identity = its
	// ServiceAccount's token (what the kubelet would mount).
	dep := objs.get(t, "Deployment", agents.KindSyncAgent)
	ns := fmt.Sprint(mocktest.Dig(dep, "metadata", "namespace"))
	token := strings.TrimSpace(kubectl("", "create", "token", fmt.Sprint(mocktest.Dig(dep, "spec", "template", "spec", "serviceAccountName")), "-n", ns))
	dir := t.TempDir()
	inCluster := filepath.Join(dir, "in-cluster.kubeconfig")
	if err := kube.KubeconfigFor(inCluster, token); err != nil {
		t.Fatal(err)
	}
	ap := materialize(t, objs, cp.m, agents.KindSyncAgent+"-0", dep, filepath.Join(dir, "agent"))
	t.Setenv("NAMESPACE", ns) // the Deployment's env (downward API)
	agent := start(t, "api-syncagent", agentBin, append(ap.args, "--kubeconfig="+inCluster), ap.dir)
	took := waitProbe(t, agent, ap, cp.m, 2*time.Minute)
	t.Logf("api-syncagent ready after %s", took.Round(time.Second))

	// A consumer binds the export through the front door.
	admin.must(t, http.MethodPost, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", consumer)
	admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/consumer", 2*time.Minute, func(ws map[string]any) bool {
		return mocktest.Dig(ws, "status", "phase") == "Ready"
	})
	// The agent publishes the Widget schema into the export first.
	admin.eventually(t, "/clusters/root:compute/apis/apis.kcp.io/v1alpha1/apiexports/"+export, 2*time.Minute, func(e map[string]any) bool {
		return len(mocktest.List(mocktest.Dig(e, "spec", "latestResourceSchemas"))) > 0
	})
	admin.must(t, http.MethodPost, "/clusters/root:consumer/apis/apis.kcp.io/v1alpha1/apibindings", map[string]any{
		"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": map[string]any{"name": "widgets"},
		"spec": map[string]any{"reference": map[string]any{"export": map[string]any{"path": "root:compute", "name": export}}}})
	admin.eventually(t, "/clusters/root:consumer/apis/apis.kcp.io/v1alpha1/apibindings/widgets", 2*time.Minute, func(b map[string]any) bool {
		return mocktest.Dig(b, "status", "phase") == "Bound"
	})
	// Where agents are sent: the front door for the root shard, the
	// shard's own public address (its Ingress rule) for another.
	want := fmt.Sprintf("https://localhost:%d/services/", cp.m.front(t))
	if shard != "" {
		want = fmt.Sprintf("https://localhost:%d/services/", cp.m.publicPort(t, kcp.ShardPublicHost(strings.TrimPrefix(cp.publicHost, "kcp."), shard)))
	}
	admin.eventually(t, "/clusters/root:compute/apis/apis.kcp.io/v1alpha1/apiexportendpointslices/"+export, 2*time.Minute, func(s map[string]any) bool {
		for _, e := range mocktest.List(mocktest.Dig(s, "status", "endpoints")) {
			if strings.HasPrefix(fmt.Sprint(asMap(e)["url"]), want) {
				return true
			}
		}
		return false
	})
	widgets := "/clusters/root:consumer/apis/example.com/v1/namespaces/default/widgets"
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := admin.do(t, http.MethodPost, widgets, map[string]any{
			"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w1"}, "spec": map[string]any{"size": 3}})
		if code == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating a Widget in kcp: HTTP %d: %s", code, body)
		}
		time.Sleep(time.Second)
	}

	// kcp → cluster.
	began := time.Now()
	var synced map[string]any
	for synced == nil {
		var list map[string]any
		if err := json.Unmarshal([]byte(kubectl("", "get", "widgets.example.com", "-A", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if items := mocktest.List(list["items"]); len(items) > 0 {
			synced = asMap(items[0])
			break
		}
		if time.Since(began) > 2*time.Minute {
			t.Fatalf("the Widget never reached the cluster; agent log:\n%s", tail(agent.log, 40))
		}
		time.Sleep(time.Second)
	}
	t.Logf("kcp → cluster in %s", time.Since(began).Round(100*time.Millisecond))
	if mocktest.Dig(synced, "spec", "size") != float64(3) {
		t.Errorf("the cluster's copy has spec %v", synced["spec"])
	}

	// cluster → kcp: the status the service writes.
	began = time.Now()
	kubectl("", "patch", "widgets.example.com", fmt.Sprint(mocktest.Dig(synced, "metadata", "name")),
		"-n", fmt.Sprint(mocktest.Dig(synced, "metadata", "namespace")),
		"--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Provisioned"}}`)
	admin.eventually(t, widgets+"/w1", 2*time.Minute, func(w map[string]any) bool {
		return mocktest.Dig(w, "status", "phase") == "Provisioned"
	})
	t.Logf("cluster → kcp status in %s", time.Since(began).Round(100*time.Millisecond))

	// Its Prometheus scrapes it as the agent's ServiceMonitor says.
	sm := objs.get(t, "ServiceMonitor", agents.KindSyncAgent)
	if port := mocktest.Dig(sm, "spec", "endpoints", 0, "port"); port != "metrics" {
		t.Fatalf("the agent's ServiceMonitor scrapes port %v", port)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", cp.m.local(t, agents.KindSyncAgent, agents.MetricsPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if rulesFindSeries(t, body, monitoring.JobSyncAgent) == 0 {
		t.Error("no rule reads an api-syncagent series: nothing was checked")
	}
}
