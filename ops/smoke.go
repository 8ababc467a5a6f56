package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
			return syncWorkload(ctx, t, kcpClient, clients)
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
	switch {
	case want == 0:
		return "", fmt.Errorf("scaled to 0")
	case status("observedGeneration") < obj.GetGeneration():
		return "", fmt.Errorf("%s: generation %d not yet observed (controller behind)", detail, obj.GetGeneration())
	case ready < want || updated < want:
		return "", fmt.Errorf("%s", detail)
	case total > want:
		return "", fmt.Errorf("%s: a rollout is still replacing old replicas", detail)
	case gvr == statefulSets && current != "" && current != update:
		return "", fmt.Errorf("%s: rolling from revision %s to %s", detail, current, update)
	}
	return detail, nil
}

// syncWorkload creates the test workload in kcp and waits for an object of
// the same resource carrying its label on every cluster (both agents copy
// labels to the objects they sync), then deletes it and waits for every
// copy to go. Leftovers of an earlier, interrupted run are removed first.
func syncWorkload(ctx context.Context, t SmokeTarget, kcpClient dynamic.Interface, clusters map[string]dynamic.Interface) (detail string, err error) {
	for _, cl := range t.Clusters {
		if clusters[cl.Name] == nil {
			return "", fmt.Errorf("no client for cluster %s (see its agent check)", cl.Name)
		}
	}
	res := kcpClient.Resource(t.WorkloadResource).Namespace(t.WorkloadNamespace)
	swept, err := sweep(ctx, res, t.RunID)
	if err != nil {
		return "", err
	}
	if swept > 0 {
		defer func() {
			note := fmt.Sprintf("removed %d leftover(s) of earlier runs", swept)
			if err != nil {
				err = fmt.Errorf("%w; %s", err, note)
			} else {
				detail += "; " + note
			}
		}()
	}
	obj := t.Workload.DeepCopy()
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[SmokeLabel] = t.RunID
	obj.SetLabels(labels)
	if _, err := res.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating %s %s/%s in kcp: %w", obj.GetKind(), t.WorkloadNamespace, obj.GetName(), err)
	}
	deleted := false
	defer func() {
		if deleted {
			return
		}
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		defer cancel()
		if derr := res.Delete(cleanup, obj.GetName(), metav1.DeleteOptions{}); derr != nil && !apierrors.IsNotFound(derr) {
			err = fmt.Errorf("%w; and the test workload %s/%s is left in kcp: %v", err, t.WorkloadNamespace, obj.GetName(), derr)
		}
	}()
	selector := metav1.ListOptions{LabelSelector: SmokeLabel + "=" + t.RunID}
	namespaces := map[string]string{}
	for _, cl := range t.Clusters {
		namespaces[cl.Name] = cl.SyncedNamespace
	}
	copies := func(name string, c dynamic.Interface) (int, error) {
		l, err := c.Resource(t.WorkloadResource).Namespace(namespaces[name]).List(ctx, selector)
		if err != nil {
			return 0, err
		}
		return len(l.Items), nil
	}
	start := time.Now()
	if err := waitAll(ctx, t.SyncTimeout, clusters, func(name string, c dynamic.Interface) (bool, error) { n, err := copies(name, c); return n > 0, err }); err != nil {
		return "", fmt.Errorf("%s %s not synced: %w", obj.GetKind(), obj.GetName(), err)
	}
	synced := time.Since(start)
	if err := res.Delete(ctx, obj.GetName(), metav1.DeleteOptions{}); err != nil {
		return "", fmt.Errorf("deleting the test workload in kcp: %w", err)
	}
	deleted = true
	if err := waitAll(ctx, t.SyncTimeout, clusters, func(name string, c dynamic.Interface) (bool, error) { n, err := copies(name, c); return n == 0, err }); err != nil {
		return "", fmt.Errorf("%s %s not cleaned up downstream after its deletion: %w", obj.GetKind(), obj.GetName(), err)
	}
	return fmt.Sprintf("%s synced to %d cluster(s) in %s, removed in %s", obj.GetKind(), len(clusters),
		Duration(synced), Duration(time.Since(start)-synced)), nil
}

// syncThroughExport is the smoke test of one api-syncagent cluster as its
// users see it: a workspace of the test's own (kcp-tmc-smoke-<cluster>,
// under root) binds the cluster's export, an object of its first published
// resource created there reaches the cluster and goes after its deletion,
// then the workspace is deleted. A leftover workspace of an interrupted run
// is reused and its objects swept.
func syncThroughExport(ctx context.Context, t SmokeTarget, cl SmokeCluster, downstream dynamic.Interface) (string, error) {
	if downstream == nil {
		return "", fmt.Errorf("no client for cluster %s (see its agent check)", cl.Name)
	}
	root, err := workspaceConfig(t.KCP, "root")
	if err != nil {
		return "", err
	}
	rootClient, err := dynamic.NewForConfig(withTimeout(root))
	if err != nil {
		return "", err
	}
	ws := "kcp-tmc-smoke-" + cl.Name
	workspaces := rootClient.Resource(workspaceResource)
	if _, err := workspaces.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
		"metadata": map[string]any{"name": ws, "labels": map[string]any{SmokeLabel: t.RunID}},
	}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating workspace root:%s: %w", ws, err)
	}
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		defer cancel()
		_ = workspaces.Delete(cleanup, ws, metav1.DeleteOptions{})
	}()
	if err := waitPhase(ctx, workspaces, ws, "Ready", t.SyncTimeout); err != nil {
		return "", fmt.Errorf("workspace root:%s: %w", ws, err)
	}
	wsConfig, err := workspaceConfig(t.KCP, "root:"+ws)
	if err != nil {
		return "", err
	}
	wsClient, err := dynamic.NewForConfig(withTimeout(wsConfig))
	if err != nil {
		return "", err
	}
	bindings := wsClient.Resource(apiBindings)
	if _, err := bindings.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding",
		"metadata": map[string]any{"name": cl.Export},
		"spec":     map[string]any{"reference": map[string]any{"export": map[string]any{"path": cl.Workspace, "name": cl.Export}}},
	}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("binding export %s:%s in root:%s: %w", cl.Workspace, cl.Export, ws, err)
	}
	if err := waitPhase(ctx, bindings, cl.Export, "Bound", t.SyncTimeout); err != nil {
		return "", fmt.Errorf("APIBinding %s in root:%s: %w", cl.Export, ws, err)
	}
	one := t
	one.Clusters = []SmokeCluster{cl}
	one.WorkloadResource, one.WorkloadNamespace = cl.Published.Resource, "default"
	one.Workload = &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": cl.Published.Resource.GroupVersion().String(), "kind": cl.Published.Kind,
		"metadata": map[string]any{"name": "kcp-tmc-smoke-" + t.RunID},
	}}
	// The bound resource is served a moment after the binding is Bound.
	if err := waitServed(ctx, wsClient.Resource(one.WorkloadResource).Namespace("default"), t.SyncTimeout); err != nil {
		return "", fmt.Errorf("%s in root:%s: %w", one.WorkloadResource.Resource, ws, err)
	}
	detail, err := syncWorkload(ctx, one, wsClient, map[string]dynamic.Interface{cl.Name: downstream})
	if err != nil && apierrors.IsInvalid(err) {
		err = fmt.Errorf("%w (its schema wants fields an empty object lacks: pass --workload with a valid one)", err)
	}
	return detail, err
}

var (
	workspaceResource = schema.GroupVersionResource{Group: "tenancy.kcp.io", Version: "v1alpha1", Resource: "workspaces"}
	apiBindings       = schema.GroupVersionResource{Group: "apis.kcp.io", Version: "v1alpha1", Resource: "apibindings"}
)

// workspaceConfig is cfg pointed at the logical cluster ws of the same kcp.
func workspaceConfig(cfg *rest.Config, ws string) (*rest.Config, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("kcp's URL %q: not a URL", cfg.Host)
	}
	u.Path, u.RawPath = "/clusters/"+ws, ""
	out := rest.CopyConfig(cfg)
	out.Host = u.String()
	return out, nil
}

// waitPhase polls an object until its status.phase is want.
func waitPhase(ctx context.Context, res dynamic.ResourceInterface, name, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		obj, err := res.Get(ctx, name, metav1.GetOptions{})
		phase := ""
		if err == nil {
			phase, _, _ = unstructured.NestedString(obj.Object, "status", "phase")
			if phase == want {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("not %s within %s: %w", want, timeout, err)
			}
			return fmt.Errorf("not %s within %s (phase %q)", want, timeout, phase)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitServed polls until a list of res succeeds.
func waitServed(ctx context.Context, res dynamic.ResourceInterface, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := res.List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not served within %s: %w", timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sweep deletes smoke objects of other runs (an interrupted run leaves its
// workload behind) and says how many it found.
func sweep(ctx context.Context, res dynamic.ResourceInterface, runID string) (int, error) {
	old, err := res.List(ctx, metav1.ListOptions{LabelSelector: SmokeLabel + "," + SmokeLabel + "!=" + runID})
	if err != nil {
		return 0, fmt.Errorf("listing leftovers of earlier smoke runs: %w", err)
	}
	for _, o := range old.Items {
		if err := res.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("removing %s, left by an earlier smoke run: %w", o.GetName(), err)
		}
	}
	return len(old.Items), nil
}

// waitAll polls cond on every cluster until it holds on all, or timeout; the
// error names the clusters where it never held.
func waitAll(ctx context.Context, timeout time.Duration, clusters map[string]dynamic.Interface, cond func(string, dynamic.Interface) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	pending := map[string]error{}
	for name := range clusters {
		pending[name] = nil
	}
	for {
		for name := range pending {
			ok, err := cond(name, clusters[name])
			if ok {
				delete(pending, name)
			} else {
				pending[name] = err
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var names []string
			for name, err := range pending {
				if err != nil {
					name += " (" + err.Error() + ")"
				}
				names = append(names, name)
			}
			slices.Sort(names)
			return fmt.Errorf("within %s on: %s", timeout, strings.Join(names, ", "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// maxConsecutiveErrors stops a load worker that only gets errors.
const maxConsecutiveErrors = 20

// load runs the short load test against kcp and cleans up after itself.
func load(ctx context.Context, c dynamic.Interface, t SmokeTarget) (LoadResult, error) {
	res := c.Resource(leases).Namespace(t.WorkloadNamespace)
	label := SmokeLabel + "=" + t.RunID + "-load"
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		defer cancel()
		_ = res.DeleteCollection(cleanup, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})
	}()
	var mu sync.Mutex
	var latencies []time.Duration
	errs := 0
	var firstErr error
	record := func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		latencies = append(latencies, d)
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	timed := func(fn func() error) error {
		start := time.Now()
		err := fn()
		record(time.Since(start), err)
		return err
	}
	start := time.Now()
	stop := start.Add(t.Load.Duration)
	var wg sync.WaitGroup
	for w := range t.Load.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures := 0
			for i := 0; time.Now().Before(stop) && ctx.Err() == nil && failures < maxConsecutiveErrors; i++ {
				name := fmt.Sprintf("kcp-tmc-load-%s-%d-%d", t.RunID, w, i)
				lease := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
					"metadata": map[string]any{"name": name, "labels": map[string]any{SmokeLabel: t.RunID + "-load"}},
					"spec":     map[string]any{"holderIdentity": fmt.Sprintf("kcp-tmc-smoke-%d", w), "leaseDurationSeconds": int64(15)},
				}}
				if timed(func() error { _, err := res.Create(ctx, lease, metav1.CreateOptions{}); return err }) != nil {
					failures++
					time.Sleep(time.Duration(failures) * 50 * time.Millisecond) // back off a failing kcp
					continue
				}
				failures = 0
				_ = timed(func() error { _, err := res.Get(ctx, name, metav1.GetOptions{}); return err })
				_ = timed(func() error { _, err := res.List(ctx, metav1.ListOptions{LabelSelector: label, Limit: 50}); return err })
				_ = timed(func() error {
					err := res.Delete(ctx, name, metav1.DeleteOptions{})
					if apierrors.IsNotFound(err) {
						return nil
					}
					return err
				})
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	out := LoadResult{Requests: len(latencies), Errors: errs, PerSecond: float64(len(latencies)) / elapsed.Seconds()}
	if len(latencies) == 0 {
		return out, errors.New("no request completed")
	}
	slices.Sort(latencies)
	pct := func(p float64) Duration { return Duration(latencies[int(p*float64(len(latencies)-1))]) }
	out.P50, out.P99, out.Max = pct(0.50), pct(0.99), Duration(latencies[len(latencies)-1])
	var problems []string
	if rate := float64(errs) / float64(len(latencies)); rate > t.Load.MaxErrorRate {
		problems = append(problems, fmt.Sprintf("error rate %.1f%% > %.1f%% (first: %v)", 100*rate, 100*t.Load.MaxErrorRate, firstErr))
	}
	if time.Duration(out.P99) > t.Load.MaxP99 {
		problems = append(problems, fmt.Sprintf("p99 %s > %s", out.P99, Duration(t.Load.MaxP99)))
	}
	if len(problems) > 0 {
		return out, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// withTimeout is cfg with every request bounded by requestTimeout.
func withTimeout(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Timeout = requestTimeout
	return c
}
