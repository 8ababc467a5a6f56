package e2e

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestSyncAgentCluster: a dev stack with one api-syncagent cluster. The
// stack's objects for the cluster are applied to a local kube-apiserver
// standing in for it, its objects for kcp to the running kcp, and the
// agent runs as a real process with the stack's kubeconfig Secret and its
// ServiceAccount's token; a consumer binds the export through the
// front-proxy, a Widget created in kcp appears on the cluster, and the
// status the cluster writes comes back to kcp.
func TestSyncAgentCluster(t *testing.T) { syncAgentCluster(t, "", "") }

// TestSyncAgentOnShard: the same with kcp.shards [shard-1] and the
// cluster's workspace (its APIExport) and the consumer on shard-1: the
// endpoint slice sends the agent to shard-1's own public address (the
// front-proxy routes /services/ to the root shard only), and it syncs.
func TestSyncAgentOnShard(t *testing.T) { syncAgentCluster(t, "shard-1", "shard-1") }

// TestSyncAgentRewatchesAShard: the cluster's workspace on root, the
// consumer on shard-1; it syncs, then the agent restarts while shard-1 is
// down and needs its rewatch CronJob to sync there again
// (rewatchAfterShardOutage).
func TestSyncAgentRewatchesAShard(t *testing.T) { syncAgentCluster(t, shard.Root, "shard-1") }

// syncAgentCluster runs the agent of a cluster whose workspace (its
// APIExport) is on exportShard (the cluster's shard key; "": kcp picks
// one) and whose consumer is on consumerShard ("": root).
func syncAgentCluster(t testing.TB, exportShard, consumerShard string) {
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	agentBin := binary(t, "API_SYNCAGENT_BIN")
	const name, export = "edge", "edge-export"
	config := map[string]string{
		"tls": `{"mode":"self-managed"}`,
		"clusters": `[{"name":"` + name + `","replicas":1,"logDebug":true,
		  "resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]}]`,
	}
	consumer := map[string]any{"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": map[string]any{"name": "consumer"}}
	// The one shard beside root that either names.
	if i := slices.IndexFunc([]string{exportShard, consumerShard}, func(s string) bool { return s != "" && s != shard.Root }); i >= 0 {
		config["kcp"] = `{"shards":[{"name":"` + []string{exportShard, consumerShard}[i] + `"}]}`
	}
	if exportShard != "" {
		config["clusters"] = strings.Replace(config["clusters"], `"replicas":1,`, `"replicas":1,"shard":"`+exportShard+`",`, 1)
	}
	if consumerShard != "" {
		consumer = workspaceOn("consumer", consumerShard)
	}
	objs, rec := render(t, "dev", config)
	cp := startControlPlane(t, objs)
	admin := cp.admin

	pc := startPhysicalCluster(t, rec, name)
	cp.applyKCPSide(t, rec, map[string]string{"kcp-root": "root", "kcp-root-compute": "root:compute"})
	agent := pc.startAgent(t, cp, agentBin)
	// A consumer binds the export through the front door.
	cp.bindExport(t, consumer, export)
	// Where agents are sent (the consumers' shards): the front door for the
	// root shard, the shard's own public address (its Ingress rule) for
	// another.
	want := fmt.Sprintf("https://localhost:%d/services/", cp.m.front(t))
	if consumerShard != "" {
		want = fmt.Sprintf("https://localhost:%d/services/", cp.m.publicPort(t, shard.Shard{Name: consumerShard}.PublicHost(cp.publicHost)))
	}
	admin.eventually(t, "/clusters/root:compute/apis/apis.kcp.io/v1alpha1/apiexportendpointslices/"+export, 2*time.Minute, func(s map[string]any) bool {
		for _, e := range mocktest.List(mocktest.Dig(s, "status", "endpoints")) {
			if strings.HasPrefix(fmt.Sprint(asMap(e)["url"]), want) {
				return true
			}
		}
		return false
	})
	cp.widgetRoundTrip(t, pc, agent, "root:consumer", "w1")
	// clusters[].logDebug reached the agent: its sync controller logged
	// the object's reconciles.
	if b, err := os.ReadFile(agent.log); err != nil || !strings.Contains(string(b), `"msg":"Processing","cluster":`) || !strings.Contains(string(b), `"request":"default/w1"`) {
		t.Errorf("logDebug: no debug line of the sync controller for w1 in the agent's log (%v)", err)
	}

	// Its Prometheus scrapes it as the agent's ServiceMonitor says.
	sm := pc.objs.get(t, "ServiceMonitor", agents.KindSyncAgent)
	if port := mocktest.Dig(sm, "spec", "endpoints", 0, "port"); port != "metrics" {
		t.Fatalf("the agent's ServiceMonitor scrapes port %v", port)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", pc.m.local(t, agents.KindSyncAgent, agents.MetricsPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if rulesFindSeries(t, body, monitoring.JobSyncAgent) == 0 {
		t.Error("no rule reads an api-syncagent series: nothing was checked")
	}

	if consumerShard != exportShard {
		consumers := shard.Shard{Name: cmp.Or(consumerShard, shard.Root)}.Deployment()
		cp.rewatchAfterShardOutage(t, pc, consumers, "root:consumer", "w-after-outage", 30*time.Second, "the rewatch CronJob's run", func() string { return pc.runRewatch(t) })
		// What kcp-tmc smoke does when its object is not synced in 30 s:
		// the same annotation, through kcp's admin.
		cp.rewatchAfterShardOutage(t, pc, consumers, "root:consumer", "w-after-outage-2", 10*time.Second, "the smoke's rewatch", func() string {
			if err := ops.Rewatch(context.Background(), cp.adminConfig(t), "root:compute", export, "kcp-tmc-smoke-e2e"); err != nil {
				t.Fatalf("ops.Rewatch: %v", err)
			}
			return ""
		})
	}

	// The server of the agent's export, told to stop while the agent and
	// the front-proxy hold watches on it, exits by itself before its pod's
	// grace period would kill it.
	server := shard.Shard{Name: cmp.Or(exportShard, shard.Root)}.Deployment()
	took := cp.stop(t, server, syscall.SIGTERM)
	t.Logf("%s exited %s after SIGTERM, watched by the agent", server, took.Round(100*time.Millisecond))
	if took >= kcp.StopSeconds*time.Second {
		t.Errorf("%s took %s to exit after SIGTERM: its pod would be killed at %d s", server, took.Round(100*time.Millisecond), kcp.StopSeconds)
	}
}

// rewatchAfterShardOutage: the agent restarts while the consumers' shard
// (server) is down, as after a node loss that takes both; the shard comes
// back. api-syncagent v0.7.0 tried that shard's URL once, at its start, and
// never again, so a Widget (name) created there is not synced within
// unsynced; rewatch (what the rendered CronJob or the smoke does) makes it
// watch the shard, and the Widget reaches the cluster.
func (cp *controlPlane) rewatchAfterShardOutage(t testing.TB, pc *physicalCluster, server, workspace, name string, unsynced time.Duration, how string, rewatch func() string) {
	t.Helper()
	key := agentKey(pc.name)
	cp.stop(t, server, syscall.SIGTERM)
	cp.stop(t, key, syscall.SIGTERM)
	cp.startAgain(t, key, "while-"+server+"-down-"+name)
	agentLog := cp.running[key].proc.log
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(agentLog)
		if strings.Contains(string(b), `"msg":"failed to watch endpoint"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent started with %s down and logged no failed endpoint watch in 1m; its log:\n%s", server, tail(agentLog, 40))
		}
		time.Sleep(time.Second)
	}
	cp.startAgain(t, server, "after-agent-"+name)

	cp.createWidget(t, workspace, name)
	for began := time.Now(); time.Since(began) < unsynced; time.Sleep(time.Second) {
		if len(pc.copiesOf(t, name)) > 0 {
			t.Errorf("%s reached the cluster without a rewatch: the agent watched %s again by itself, so api-syncagent retries now and the rewatch CronJob may go (docs/agents.md)", name, server)
			return
		}
	}
	t.Logf("%s: not synced in %s with %s back (the agent's one try failed)", name, unsynced, server)

	out := rewatch()
	began := time.Now()
	for len(pc.copiesOf(t, name)) == 0 {
		if time.Since(began) > time.Minute {
			t.Fatalf("%s never reached the cluster after %s (%s); agent log:\n%s", name, how, strings.TrimSpace(out), tail(agentLog, 40))
		}
		time.Sleep(time.Second)
	}
	t.Logf("%s: on the cluster %s after %s", name, time.Since(began).Round(100*time.Millisecond), how)
}

// runRewatch runs the agent's rewatch CronJob's container once as a local
// process: kubectl (the image's entrypoint) from the toolchain with the
// rendered args, env and volumes.
func (pc *physicalCluster) runRewatch(t testing.TB) string {
	t.Helper()
	cronJob := agents.RewatchName(agents.Args{Kind: agents.KindSyncAgent})
	cj := pc.objs.get(t, "CronJob", cronJob)
	template := mocktest.Dig(cj, "spec", "jobTemplate", "spec", "template")
	w := map[string]any{"metadata": cj["metadata"], "spec": map[string]any{"template": template}}
	containers := mocktest.List(mocktest.Dig(template, "spec", "containers"))
	if len(containers) != 1 {
		t.Fatalf("%s has %d containers", cronJob, len(containers))
	}
	p := materializeContainer(t, pc.objs, pc.m, cronJob+"-1", w, asMap(containers[0]), t.TempDir())
	cmd := exec.Command(filepath.Join(toolchain.Bin(), "kubectl"), p.args...)
	cmd.Dir, cmd.Env = p.dir, append(os.Environ(), p.env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: kubectl %s: %v\n%s", cronJob, strings.Join(p.args, " "), err, b)
	}
	return string(b)
}

// physicalCluster is a local kube-apiserver standing in for one of the
// stack's clusters, with the service owner's CRD and what the stack renders
// for the cluster applied (monitoring.coreos.com kinds are judged in tests/;
// this cluster has no Prometheus operator).
type physicalCluster struct {
	name string
	kube *cluster.Cluster
	// objs are the stack's objects for this cluster: its provider's.
	objs objects
	// m is the control plane's machine with the agent's own ports: every
	// cluster's agent is a Deployment of the same name.
	m *machine
}

func startPhysicalCluster(t testing.TB, rec []mocktest.Resource, name string) *physicalCluster {
	t.Helper()
	kube, err := cluster.Start(context.Background(), toolchain.Bin(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Stop)
	pc := &physicalCluster{name: name, kube: kube}
	pc.kubectl(t, cluster.WidgetCRD, "apply", "--server-side", "-f", "-")
	var onCluster []string
	for _, r := range rec {
		if !r.Custom || !strings.Contains(r.Provider, "::pulumi:providers:kubernetes::cluster-"+name+"::") {
			continue
		}
		if obj := r.Input(); obj["kind"] != nil {
			pc.objs = append(pc.objs, obj)
		}
		if strings.HasPrefix(r.Type, "kubernetes:monitoring.coreos.com/") {
			continue
		}
		b, err := json.Marshal(r.Input())
		if err != nil {
			t.Fatal(err)
		}
		onCluster = append(onCluster, string(b))
	}
	if len(onCluster) < 8 {
		t.Fatalf("only %d objects for cluster %s", len(onCluster), name)
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
				pc.kubectl(t, o, "apply", "--server-side", "-f", "-")
			}
		}
		pc.kubectl(t, "", "wait", "--for=condition=Established", "crd/publishedresources.syncagent.kcp.io", "--timeout=60s")
	}
	return pc
}

func (pc *physicalCluster) kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := pc.kube.Kubectl(context.Background(), []byte(stdin), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// startAgent runs the cluster's api-syncagent as its Deployment says, its
// in-cluster identity its ServiceAccount's token (what the kubelet would
// mount), once the stack's kcp side is applied.
func (pc *physicalCluster) startAgent(t testing.TB, cp *controlPlane, bin string) *process {
	t.Helper()
	dep := pc.objs.get(t, "Deployment", agents.KindSyncAgent)
	ns := fmt.Sprint(mocktest.Dig(dep, "metadata", "namespace"))
	// The kubelet renews a pod's token before its hour is up; nothing renews
	// this one, so it must outlive the longest run (make bench-sync's 3 h
	// timeout): with kubectl's default hour the agents lost their own
	// cluster (Unauthorized, then their leader lease) 61 min into a run.
	token := strings.TrimSpace(pc.kubectl(t, "", "create", "token", fmt.Sprint(mocktest.Dig(dep, "spec", "template", "spec", "serviceAccountName")), "-n", ns, "--duration=4h"))
	if left := tokenLifetime(t, token); left < 3*time.Hour {
		t.Fatalf("the agent's ServiceAccount token expires in %s: a run of make bench-sync would outlive it", left.Round(time.Minute))
	}
	dir := t.TempDir()
	inCluster := filepath.Join(dir, "in-cluster.kubeconfig")
	if err := pc.kube.KubeconfigFor(inCluster, token); err != nil {
		t.Fatal(err)
	}
	pc.m = cp.m.withOwnPorts(t, agents.KindSyncAgent)
	ap := materialize(t, pc.objs, pc.m, agents.KindSyncAgent+"-"+pc.name, dep, filepath.Join(dir, "agent"))
	in := &instance{pod: ap, bin: bin, args: append(ap.args, "--kubeconfig="+inCluster), m: pc.m, key: agentKey(pc.name)}
	took := cp.launch(t, "api-syncagent-"+pc.name, in, 2*time.Minute)
	t.Logf("api-syncagent of %s ready after %s", pc.name, took.Round(time.Second))
	return in.proc
}

// bindExport creates the consumer workspace (a Workspace object, in root)
// and binds the export of root:compute in it as "widgets", once the agent
// has published its schema into the export.
func (cp *controlPlane) bindExport(t testing.TB, consumer map[string]any, export string) {
	t.Helper()
	admin := cp.admin
	name := fmt.Sprint(mocktest.Dig(consumer, "metadata", "name"))
	cp.createWorkspace(t, consumer)
	exp := admin.eventually(t, "/clusters/root:compute/apis/apis.kcp.io/v1alpha1/apiexports/"+export, 2*time.Minute, func(e map[string]any) bool {
		return len(mocktest.List(mocktest.Dig(e, "spec", "latestResourceSchemas"))) > 0
	})
	// The consumer accepts what the export claims: api-syncagent always
	// claims events (it records them on the consumer's objects) and
	// namespaces; without them kcp refuses its events.
	var claims []any
	for _, c := range mocktest.List(mocktest.Dig(exp, "spec", "permissionClaims")) {
		accepted := map[string]any{"state": "Accepted"}
		for k, v := range asMap(c) {
			accepted[k] = v
		}
		claims = append(claims, accepted)
	}
	admin.must(t, http.MethodPost, "/clusters/root:"+name+"/apis/apis.kcp.io/v1alpha1/apibindings", map[string]any{
		"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": map[string]any{"name": "widgets"},
		"spec": map[string]any{"reference": map[string]any{"export": map[string]any{"path": "root:compute", "name": export}}, "permissionClaims": claims}})
	admin.eventually(t, "/clusters/root:"+name+"/apis/apis.kcp.io/v1alpha1/apibindings/widgets", 2*time.Minute, func(b map[string]any) bool {
		return mocktest.Dig(b, "status", "phase") == "Bound"
	})
}

// widgetRoundTrip creates Widget name in the consumer workspace through the
// front-proxy, waits for the agent's copy on the cluster, writes its status
// there as the service would and waits for that status in kcp, logging
// both legs.
func (cp *controlPlane) widgetRoundTrip(t testing.TB, pc *physicalCluster, agent *process, workspace, name string) {
	t.Helper()
	widgets := cp.createWidget(t, workspace, name)

	// kcp → cluster: the copy carries the kcp object's name in an annotation.
	began := time.Now()
	var synced map[string]any
	for synced == nil {
		if copies := pc.copiesOf(t, name); len(copies) > 0 {
			synced = copies[0]
			break
		}
		if time.Since(began) > 2*time.Minute {
			t.Fatalf("Widget %s never reached the cluster; agent log:\n%s", name, tail(agent.log, 40))
		}
		time.Sleep(time.Second)
	}
	t.Logf("%s: kcp → cluster in %s", name, time.Since(began).Round(100*time.Millisecond))
	if mocktest.Dig(synced, "spec", "size") != float64(3) {
		t.Errorf("the cluster's copy of %s has spec %v", name, synced["spec"])
	}

	// cluster → kcp: the status the service writes.
	began = time.Now()
	pc.kubectl(t, "", "patch", "widgets.example.com", fmt.Sprint(mocktest.Dig(synced, "metadata", "name")),
		"-n", fmt.Sprint(mocktest.Dig(synced, "metadata", "namespace")),
		"--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Provisioned"}}`)
	cp.admin.eventually(t, widgets+"/"+name, 2*time.Minute, func(w map[string]any) bool {
		return mocktest.Dig(w, "status", "phase") == "Provisioned"
	})
	t.Logf("%s: cluster → kcp status in %s", name, time.Since(began).Round(100*time.Millisecond))
}

// createWidget creates Widget name (spec.size 3) in workspace through the
// front-proxy, retrying while the binding's API is not served yet, and
// returns the Widgets' collection path.
func (cp *controlPlane) createWidget(t testing.TB, workspace, name string) string {
	t.Helper()
	widgets := "/clusters/" + workspace + "/apis/example.com/v1/namespaces/default/widgets"
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := cp.admin.do(t, http.MethodPost, widgets, map[string]any{
			"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": name}, "spec": map[string]any{"size": 3}})
		if code == http.StatusCreated {
			return widgets
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating Widget %s in kcp: HTTP %d: %s", name, code, body)
		}
		time.Sleep(time.Second)
	}
}

// agentKey names a cluster's agent in controlPlane.running.
func agentKey(cluster string) string { return agents.KindSyncAgent + "-" + cluster }

// copiesOf are the Widgets on the cluster that api-syncagent made of the
// kcp Widget name (its annotation names the original).
func (pc *physicalCluster) copiesOf(t testing.TB, name string) []map[string]any {
	t.Helper()
	var list map[string]any
	if err := json.Unmarshal([]byte(pc.kubectl(t, "", "get", "widgets.example.com", "-A", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, item := range mocktest.List(list["items"]) {
		if mocktest.Dig(item, "metadata", "annotations", remoteNameAnnotation) == name {
			out = append(out, asMap(item))
		}
	}
	return out
}

// tokenLifetime is how long a ServiceAccount token (a JWT) stays valid.
func tokenLifetime(t testing.TB, token string) time.Duration {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("the ServiceAccount token is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("the ServiceAccount token's claims: %v", err)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("the ServiceAccount token's claims: %v", err)
	}
	return time.Until(time.Unix(claims.Exp, 0))
}
