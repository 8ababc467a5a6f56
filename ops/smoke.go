package ops

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

// SmokeLabel marks every object the smoke test creates, with the run's id.
const SmokeLabel = "kcp-tmc.io/smoke"

var (
	deployments  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulSets = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	configMaps   = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	shardObjects = schema.GroupVersionResource{Group: "core.kcp.io", Version: "v1alpha1", Resource: "shards"}
	// Leases carry the load test: every kcp workspace serves them and no
	// agent syncs them, so load never fans out to the physical clusters.
	leases = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
)

// requestTimeout bounds every request of the smoke test, so a hung kcp fails
// the check instead of blocking a deploy.
const requestTimeout = 30 * time.Second

// SmokeCluster is one physical cluster with its agent.
type SmokeCluster struct {
	Name string
	// AgentKind is the agent's Deployment name (api-syncagent)
	// in AgentNamespace.
	AgentKind, AgentNamespace string
	Config                    *rest.Config
	// SyncedNamespace is where the agent puts synced objects ("": look in
	// every namespace; agents derive it from the workspace).
	SyncedNamespace string
	// Export is the agent's APIExport in Workspace and Published the first
	// resource it publishes: without --workload, the smoke test binds the
	// export in a workspace of its own and creates an object of Published
	// there (api-syncagent syncs nothing else).
	Workspace, Export string
	Published         *PublishedResource
}

// PublishedResource is a kind an agent publishes through its export.
type PublishedResource struct {
	Resource schema.GroupVersionResource
	Kind     string
}

// SmokeTarget is what the smoke test talks to.
type SmokeTarget struct {
	// KCP is an admin of the kcp workspace the test workload goes to.
	KCP *rest.Config
	// Host is the cluster kcp and etcd run on; Namespace holds them.
	Host      *rest.Config
	Namespace string
	// Shards are the shards of kcp.shards: each one's kcp and etcd must be
	// ready and registered with the root shard.
	Shards []shard.Shard
	// Cache, when set (kcp.cache.mode separate): the cache server and its
	// etcd must be ready too.
	Cache    *shard.Shard
	Clusters []SmokeCluster
	// Workload is the object created in kcp to prove syncing (default a
	// ConfigMap); WorkloadResource is its resource, on kcp and downstream.
	Workload         *unstructured.Unstructured
	WorkloadResource schema.GroupVersionResource
	// WorkloadNamespace is where in the kcp workspace the test objects go.
	WorkloadNamespace string
	SyncTimeout       time.Duration
	Load              LoadSpec
	// RunID names this run's objects (default: the start time).
	RunID string
	// VolumeAttributes: etcd's claims name a VolumeAttributesClass
	// (storage.modifyVolumes); their volumes must have it, or be on the way.
	VolumeAttributes bool
}

// LoadSpec is the short load test: Workers loops of create, get, list and
// delete of a Lease in kcp for Duration. A worker backs off after an error
// and gives up after maxConsecutiveErrors in a row, so a failing kcp is not
// hammered.
type LoadSpec struct {
	Duration     time.Duration
	Workers      int
	MaxP99       time.Duration
	MaxErrorRate float64
}

// Check is one smoke check's result.
type Check struct {
	Name   string   `json:"name"`
	OK     bool     `json:"ok"`
	Detail string   `json:"detail"`
	Took   Duration `json:"took"`
}

// LoadResult is what the load test measured.
type LoadResult struct {
	Requests  int      `json:"requests"`
	Errors    int      `json:"errors"`
	PerSecond float64  `json:"perSecond"`
	P50       Duration `json:"p50"`
	P99       Duration `json:"p99"`
	Max       Duration `json:"max"`
}

// SmokeReport is every check, in order.
type SmokeReport struct {
	RunID  string      `json:"runId"`
	Checks []Check     `json:"checks"`
	Load   *LoadResult `json:"load,omitempty"`
}

// OK says whether every check passed.
func (r SmokeReport) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Failed lists the failed checks as "name: detail".
func (r SmokeReport) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return out
}

func (t *SmokeTarget) defaults() {
	if t.RunID == "" {
		t.RunID = time.Now().UTC().Format("20060102t150405")
	}
	if t.WorkloadNamespace == "" {
		t.WorkloadNamespace = "default"
	}
	if t.SyncTimeout == 0 {
		t.SyncTimeout = 2 * time.Minute
	}
	if t.Workload == nil {
		t.Workload = &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "kcp-tmc-smoke-" + t.RunID},
			"data":     map[string]any{"purpose": "kcp-tmc smoke test: synced to every physical cluster, then deleted"},
		}}
		t.WorkloadResource = configMaps
	}
	if t.Load.Workers == 0 {
		t.Load.Workers = 4
	}
	if t.Load.MaxP99 == 0 {
		t.Load.MaxP99 = time.Second
	}
	if t.Load.MaxErrorRate == 0 {
		t.Load.MaxErrorRate = 0.01
	}
}

// Smoke runs the smoke test after a deploy: kcp's front door ready, a quorum
// read through kcp, kcp, front-proxy and etcd workloads fully ready, every agent ready, a test
// workload created in kcp reaching every physical cluster and being removed
// from it after its deletion, then a short load test. Every check runs even
// when an earlier one failed, so one report names every problem.
func Smoke(ctx context.Context, t SmokeTarget) (SmokeReport, error) {
	throughExports := t.Workload == nil && slices.ContainsFunc(t.Clusters, func(c SmokeCluster) bool { return c.Published != nil })
	t.defaults()
	// client-go's default 5 requests/s would measure the client, not kcp.
	kcpConfig := withTimeout(t.KCP)
	kcpConfig.QPS, kcpConfig.Burst = 1000, 2000
	kcpClient, err := dynamic.NewForConfig(kcpConfig)
	if err != nil {
		return SmokeReport{}, fmt.Errorf("kcp client: %w", err)
	}
	host, err := dynamic.NewForConfig(withTimeout(t.Host))
	if err != nil {
		return SmokeReport{}, fmt.Errorf("host cluster client: %w", err)
	}
	r := SmokeReport{RunID: t.RunID}
	check := func(name string, fn func() (string, error)) {
		start := time.Now()
		detail, err := fn()
		c := Check{Name: name, OK: err == nil, Detail: detail, Took: Duration(time.Since(start))}
		if err != nil {
			c.Detail = err.Error()
		}
		r.Checks = append(r.Checks, c)
	}

	check("kcp front door ready", func() (string, error) { return readyz(ctx, kcpConfig, "/readyz") })
	check("kcp serves its API (a quorum read from etcd)", func() (string, error) {
		start := time.Now()
		l, err := kcpClient.Resource(configMaps).Namespace(t.WorkloadNamespace).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return "", fmt.Errorf("listing configmaps in %s: %w", t.WorkloadNamespace, err)
		}
		return fmt.Sprintf("list at resourceVersion %s in %s", l.GetResourceVersion(), Duration(time.Since(start))), nil
	})
	type workload struct {
		gvr  schema.GroupVersionResource
		name string
	}
	workloads := []workload{{statefulSets, etcd.Name}, {deployments, kcp.ServerName}, {deployments, kcp.FrontProxyName}}
	servers := t.Shards
	if t.Cache != nil {
		servers = append(slices.Clone(servers), *t.Cache)
	}
	for _, s := range servers {
		workloads = append(workloads, workload{statefulSets, s.EtcdCluster()}, workload{deployments, s.Deployment()})
	}
	if len(t.Shards) > 0 {
		check("every shard registered with the root shard", func() (string, error) {
			return shardsRegistered(ctx, t.KCP, shard.Names(t.Shards))
		})
	}
	for _, w := range workloads {
		check(fmt.Sprintf("%s %s/%s ready", strings.TrimSuffix(w.gvr.Resource, "s"), t.Namespace, w.name), func() (string, error) {
			return workloadReady(ctx, host, w.gvr, t.Namespace, w.name)
		})
	}
	if t.VolumeAttributes {
		check("etcd volumes have the attributes their claims name", func() (string, error) {
			return VolumeAttributes(ctx, host, t.Namespace)
		})
	}
	clients := map[string]dynamic.Interface{}
	for _, cl := range t.Clusters {
		check(fmt.Sprintf("agent %s ready on cluster %s", cl.AgentKind, cl.Name), func() (string, error) {
			c, err := dynamic.NewForConfig(withTimeout(cl.Config))
			if err != nil {
				return "", fmt.Errorf("client: %w", err)
			}
			clients[cl.Name] = c
			return workloadReady(ctx, c, deployments, cl.AgentNamespace, cl.AgentKind)
		})
	}
	switch {
	case throughExports:
		for _, cl := range t.Clusters {
			check(fmt.Sprintf("a %s through export %s synced to cluster %s and cleaned up", cl.Published.Kind, cl.Export, cl.Name), func() (string, error) {
				return syncThroughExport(ctx, t, cl, clients[cl.Name])
			})
		}
	case len(t.Clusters) > 0:
		check("test workload synced to every cluster and cleaned up", func() (string, error) {
			return syncWorkload(ctx, t, kcpClient, clients, nil)
		})
	}
	if t.Load.Duration > 0 {
		check(fmt.Sprintf("load: %d workers for %s", t.Load.Workers, t.Load.Duration), func() (string, error) {
			res, err := load(ctx, kcpClient, t)
			r.Load = &res
			return fmt.Sprintf("%d requests, %.0f/s, p50 %s, p99 %s, %d errors", res.Requests, res.PerSecond, res.P50, res.P99, res.Errors), err
		})
	}
	return r, nil
}

// shardsRegistered lists the Shard objects in kcp's root workspace (each
// shard creates its own when it starts) and wants every shard there.
func shardsRegistered(ctx context.Context, kcpConfig *rest.Config, shards []string) (string, error) {
	root := rest.CopyConfig(withTimeout(kcpConfig))
	if i := strings.Index(root.Host, "/clusters/"); i >= 0 {
		root.Host = root.Host[:i]
	}
	root.Host = strings.TrimSuffix(root.Host, "/") + "/clusters/root"
	c, err := dynamic.NewForConfig(root)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	l, err := c.Resource(shardObjects).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing shards in root: %w", err)
	}
	registered := map[string]bool{}
	for _, s := range l.Items {
		registered[s.GetName()] = true
	}
	var missing []string
	for _, s := range append([]string{shard.Root}, shards...) {
		if !registered[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("not registered: %s", strings.Join(missing, ", "))
	}
	return fmt.Sprintf("%d shards", len(shards)+1), nil
}

// readyz GETs a health endpoint at the root of the server (a kubeconfig for
// kcp points into a workspace, /clusters/<path>; health lives at the root,
// answered by whatever serves kcp's address: the front-proxy).
func readyz(ctx context.Context, cfg *rest.Config, path string) (string, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return "", err
	}
	root, err := url.Parse(cfg.Host)
	if err != nil {
		return "", fmt.Errorf("server %q: %w", cfg.Host, err)
	}
	root.Path, root.RawQuery = path, "verbose"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, root.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return "", fmt.Errorf("GET %s: reading the answer: %w", path, err)
	}
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		var failed []string
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "[-]") {
				failed = append(failed, line)
			}
		}
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.Join(failed, "; "))
	}
	return fmt.Sprintf("GET %s: %d checks passed", path, strings.Count(text, "[+]")), nil
}

// workloadReady: every desired replica ready, on the current generation.
func workloadReady(ctx context.Context, c dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) (string, error) {
	obj, err := c.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	want, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	status := func(field string) int64 { v, _, _ := unstructured.NestedInt64(obj.Object, "status", field); return v }
	ready, updated, total := status("readyReplicas"), status("updatedReplicas"), status("replicas")
	detail := fmt.Sprintf("%d/%d ready, %d updated, %d running", ready, want, updated, total)
	current, _, _ := unstructured.NestedString(obj.Object, "status", "currentRevision")
	update, _, _ := unstructured.NestedString(obj.Object, "status", "updateRevision")
	// An OnDelete StatefulSet (etcd's: its rollout Job restarts the
	// members) never moves currentRevision on; updatedReplicas says it all.
	strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "updateStrategy", "type")
	switch {
	case want == 0:
		return "", fmt.Errorf("scaled to 0")
	case status("observedGeneration") < obj.GetGeneration():
		return "", fmt.Errorf("%s: generation %d not yet observed (controller behind)", detail, obj.GetGeneration())
	case ready < want || updated < want:
		return "", fmt.Errorf("%s", detail)
	case total > want:
		return "", fmt.Errorf("%s: a rollout is still replacing old replicas", detail)
	case gvr == statefulSets && strategy != "OnDelete" && current != "" && current != update:
		return "", fmt.Errorf("%s: rolling from revision %s to %s", detail, current, update)
	}
	return detail, nil
}

// withTimeout is cfg with every request bounded by requestTimeout.
func withTimeout(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Timeout = requestTimeout
	return c
}
