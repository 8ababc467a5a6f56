package ops

// The smoke test's sync check: a test object created in kcp reaches every
// physical cluster through its agent, and its removal follows.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
)

// rewatchAfter is how long the smoke waits for a copy before it makes the
// agent go through its shards again (what its rewatch CronJob does every 5
// minutes): a sync takes about a second when the agent watches the shard.
const rewatchAfter = 30 * time.Second

// syncWorkload creates the test workload in kcp and waits for an object of
// the same resource carrying its label on every cluster (both agents copy
// labels to the objects they sync), then deletes it and waits for every
// copy to go. Leftovers of an earlier, interrupted run are removed first.
// With rewatch set, a copy still missing after rewatchAfter (at most half
// the sync timeout) has rewatch run once, and the wait goes on either way;
// the detail (or the error) says so, with rewatch's note on success.
func syncWorkload(ctx context.Context, t SmokeTarget, kcpClient dynamic.Interface, clusters map[string]dynamic.Interface, rewatch func(context.Context) (string, error)) (detail string, err error) {
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
	present := func(name string, c dynamic.Interface) (bool, error) { n, err := copies(name, c); return n > 0, err }
	start := time.Now()
	first, note := t.SyncTimeout, ""
	if rewatch != nil {
		first = min(rewatchAfter, t.SyncTimeout/2)
	}
	err = waitAll(ctx, first, clusters, present)
	if err != nil && rewatch != nil && ctx.Err() == nil {
		what, rerr := rewatch(ctx)
		if rerr != nil {
			note = fmt.Sprintf("; not there after %s, and the smoke's rewatch failed: %v", first, rerr)
		} else {
			note = fmt.Sprintf("; not there after %s, so the smoke rewatched the export's endpoint slice%s", first, what)
		}
		if err = waitAll(ctx, t.SyncTimeout-first, clusters, present); err != nil {
			return "", fmt.Errorf("%s %s not synced in %s%s: %w", obj.GetKind(), obj.GetName(), t.SyncTimeout, note, err)
		}
	}
	if err != nil {
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
	return fmt.Sprintf("%s synced to %d cluster(s) in %s, removed in %s%s", obj.GetKind(), len(clusters),
		Duration(synced), Duration(time.Since(start)-synced), note), nil
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
	where := ""
	if w, err := workspaces.Get(ctx, ws, metav1.GetOptions{}); err == nil {
		where = placement(w)
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
	// api-syncagent v0.7.0 tries a shard once, when its first binding
	// appears: one that was not reachable then (its DNS name not yet
	// published) is watched only after the agent's rewatch CronJob, up to
	// 5 minutes later. The smoke does what the CronJob does instead of
	// failing or waiting (docs/agents.md "Shards the agent could not reach").
	rewatch := func(ctx context.Context) (string, error) {
		if err := Rewatch(ctx, t.KCP, cl.Workspace, cl.Export, "kcp-tmc-smoke-"+t.RunID); err != nil {
			return "", err
		}
		return fmt.Sprintf(" (workspace root:%s %s; the agent's rewatch CronJob does the same every 5 minutes)",
			ws, cmp.Or(where, "not yet placed")), nil
	}
	detail, err := syncWorkload(ctx, one, wsClient, map[string]dynamic.Interface{cl.Name: downstream}, rewatch)
	if err != nil && apierrors.IsInvalid(err) {
		err = fmt.Errorf("%w (its schema wants fields an empty object lacks: pass --workload with a valid one)", err)
	} else if err != nil && where != "" {
		err = fmt.Errorf("%w (workspace root:%s %s; %s)", err, ws, where, unwatchedHint(cl))
	}
	return detail, err
}

// unwatchedHint is where to look when the agent did not sync a workspace
// even after a rewatch: its log says which shard URL it cannot watch, and
// why (the name not resolvable from its cluster, a NetworkPolicy, the
// shard down).
func unwatchedHint(cl SmokeCluster) string {
	return fmt.Sprintf("the agent's log names each shard it cannot watch: kubectl -n %s logs deploy/%s | grep 'failed to watch endpoint' on cluster %s",
		cl.AgentNamespace, cl.AgentKind, cl.Name)
}

// Rewatch makes every agent of an export go through the shards in its
// endpoint slice again and watch those it is missing, as the agents'
// rewatch CronJob does: it sets the slice's rewatch annotation in
// workspace to a new value (by and the time), an update each agent's
// informer sees. kcpConfig is an admin's (or the agent's) kcp config.
func Rewatch(ctx context.Context, kcpConfig *rest.Config, workspace, slice, by string) error {
	cfg, err := workspaceConfig(kcpConfig, workspace)
	if err != nil {
		return err
	}
	c, err := dynamic.NewForConfig(withTimeout(cfg))
	if err != nil {
		return fmt.Errorf("client for %s: %w", workspace, err)
	}
	return rewatchSlice(ctx, c, slice, by)
}

// rewatchSlice sets the annotation to by and the time: a new value on
// every call, or the agents would see no update.
func rewatchSlice(ctx context.Context, c dynamic.Interface, slice, by string) error {
	value := by + " " + time.Now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{agents.RewatchAnnotation: value}}})
	if err != nil {
		return err
	}
	if _, err := c.Resource(endpointSlices).Patch(ctx, slice, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotating APIExportEndpointSlice %s: %w", slice, err)
	}
	return nil
}

// placement says where kcp put a workspace: its logical cluster, the name
// the agent's log uses for it, and its shard's address (which shard serves
// it matters on a sharded stack).
func placement(ws *unstructured.Unstructured) string {
	cluster, _, _ := unstructured.NestedString(ws.Object, "spec", "cluster")
	if cluster == "" {
		return ""
	}
	out := "is logical cluster " + cluster
	raw, _, _ := unstructured.NestedString(ws.Object, "spec", "URL")
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		out += " on shard " + u.Host
	}
	return out
}

var (
	workspaceResource = schema.GroupVersionResource{Group: "tenancy.kcp.io", Version: "v1alpha1", Resource: "workspaces"}
	apiBindings       = schema.GroupVersionResource{Group: "apis.kcp.io", Version: "v1alpha1", Resource: "apibindings"}
	endpointSlices    = schema.GroupVersionResource{Group: "apis.kcp.io", Version: "v1alpha1", Resource: "apiexportendpointslices"}
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
