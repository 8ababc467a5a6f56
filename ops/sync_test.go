package ops

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
)

func TestPlacement(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec map[string]any
		want string
	}{
		{"sharded", map[string]any{"cluster": "2x8k1", "URL": "https://kcp-shard-1.kcp.example.com/clusters/2x8k1"},
			"is logical cluster 2x8k1 on shard kcp-shard-1.kcp.example.com"},
		{"no URL yet", map[string]any{"cluster": "2x8k1"}, "is logical cluster 2x8k1"},
		{"URL not a URL", map[string]any{"cluster": "2x8k1", "URL": "::"}, "is logical cluster 2x8k1"},
		{"not scheduled", map[string]any{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := &unstructured.Unstructured{Object: map[string]any{"spec": tc.spec}}
			if got := placement(ws); got != tc.want {
				t.Errorf("placement = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSyncWorkloadRewatches: a copy that is missing after the first
// window has the smoke rewatch once and wait on, and the report says so; a
// copy that arrives at once needs no rewatch; a copy that never arrives, or
// a rewatch that fails, fails the check naming both.
func TestSyncWorkloadRewatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		// syncs: when the agent copies the object (0 never).
		syncs      string
		rewatchErr error
		wantErr    string
		wantDetail string
		rewatches  int
	}{
		{name: "synced at once", syncs: "at once", wantDetail: "ConfigMap synced to 1 cluster(s) in", rewatches: 0},
		{name: "synced after the rewatch", syncs: "after rewatch", wantDetail: "; not there after 1s, so the smoke rewatched the export's endpoint slice (shard x)", rewatches: 1},
		{name: "never synced", syncs: "never", wantErr: "not synced in 2s; not there after 1s, so the smoke rewatched the export's endpoint slice (shard x): within 1s on: east", rewatches: 1},
		{name: "rewatch fails, never synced", syncs: "never", rewatchErr: errors.New("forbidden"), wantErr: "not synced in 2s; not there after 1s, and the smoke's rewatch failed: forbidden: within 1s on: east", rewatches: 1},
		{name: "rewatch fails, synced later", syncs: "later", rewatchErr: errors.New("forbidden"), wantDetail: "; not there after 1s, and the smoke's rewatch failed: forbidden", rewatches: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			lists := map[schema.GroupVersionResource]string{configMaps: "ConfigMapList"}
			kcpClient := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists)
			downstream := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists)
			copyTo := func(obj *unstructured.Unstructured) {
				c := obj.DeepCopy()
				c.SetNamespace("synced")
				c.SetResourceVersion("")
				if _, err := downstream.Resource(configMaps).Namespace("synced").Create(ctx, c, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
			}
			var created *unstructured.Unstructured
			kcpClient.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
				created = a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
				if tc.syncs == "at once" {
					copyTo(created)
				}
				return false, nil, nil
			})
			// The agent removes its copy when the object goes in kcp.
			kcpClient.PrependReactor("delete", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
				_ = downstream.Resource(configMaps).Namespace("synced").Delete(ctx, a.(k8stesting.DeleteAction).GetName(), metav1.DeleteOptions{})
				return false, nil, nil
			})
			rewatches := 0
			rewatch := func(context.Context) (string, error) {
				rewatches++
				if tc.syncs == "later" {
					// A slow agent: the copy comes while the smoke waits on.
					time.AfterFunc(300*time.Millisecond, func() { copyTo(created) })
				}
				if tc.rewatchErr != nil {
					return "", tc.rewatchErr
				}
				if tc.syncs == "after rewatch" {
					copyTo(created)
				}
				return " (shard x)", nil
			}
			target := SmokeTarget{RunID: "r1", SyncTimeout: 2 * time.Second, Clusters: []SmokeCluster{{Name: "east", SyncedNamespace: "synced"}}}
			target.defaults()
			detail, err := syncWorkload(ctx, target, kcpClient, map[string]dynamic.Interface{"east": downstream}, rewatch)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(detail, tc.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", detail, tc.wantDetail)
			}
			if tc.syncs == "at once" && strings.Contains(detail, "rewatch") {
				t.Errorf("detail = %q mentions a rewatch that was not needed", detail)
			}
			if rewatches != tc.rewatches {
				t.Errorf("rewatched %d times, want %d", rewatches, tc.rewatches)
			}
			if l, err := kcpClient.Resource(configMaps).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
				t.Errorf("test workloads left in kcp: %v %v", l, err)
			}
		})
	}
}

// TestRewatchSlice: the rewatch sets the agents' annotation on the
// endpoint slice to who did it and a new value on every run (an unchanged
// value is no update for the agents), and leaves the rest of the slice alone.
func TestRewatchSlice(t *testing.T) {
	ctx := context.Background()
	slice := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExportEndpointSlice",
		"metadata": map[string]any{"name": "east-export", "annotations": map[string]any{"other": "kept"}},
		"spec":     map[string]any{"export": map[string]any{"name": "east-export", "path": "root:compute"}},
	}}
	c := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{endpointSlices: "APIExportEndpointSliceList"}, slice)
	seen := map[string]bool{}
	for range 2 {
		if err := rewatchSlice(ctx, c, "east-export", "kcp-tmc-smoke-r1"); err != nil {
			t.Fatal(err)
		}
		got, err := c.Resource(endpointSlices).Get(ctx, "east-export", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a := got.GetAnnotations()
		value := a[agents.RewatchAnnotation]
		if !strings.HasPrefix(value, "kcp-tmc-smoke-r1 ") || seen[value] || a["other"] != "kept" || len(a) != 2 {
			t.Errorf("annotations = %v: want %s = a new value starting with the rewatcher, and the other kept", a, agents.RewatchAnnotation)
		}
		seen[value] = true
		if path, _, _ := unstructured.NestedString(got.Object, "spec", "export", "path"); path != "root:compute" {
			t.Errorf("spec.export.path = %q after the rewatch", path)
		}
	}
	if err := rewatchSlice(ctx, c, "west-export", "x"); err == nil || !strings.Contains(err.Error(), "annotating APIExportEndpointSlice west-export") {
		t.Errorf("missing slice: error = %v", err)
	}
}

// TestUnwatchedHint: a sync failure after the rewatch says where the agent
// says which shard it cannot watch, with its namespace and cluster.
func TestUnwatchedHint(t *testing.T) {
	got := unwatchedHint(SmokeCluster{Name: "east", AgentKind: "api-syncagent", AgentNamespace: "edge-agent"})
	if want := "kubectl -n edge-agent logs deploy/api-syncagent | grep 'failed to watch endpoint' on cluster east"; !strings.HasSuffix(got, want) {
		t.Errorf("hint = %q, want it to end with %q", got, want)
	}
}
