package ops

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

// TestStatefulSetReady: smoke's readiness of a StatefulSet. etcd's is
// OnDelete (its rollout Job restarts the members), whose currentRevision
// the controller never moves on: every replica Ready on the update
// revision is ready; a RollingUpdate one is ready once its rollout is done.
func TestStatefulSetReady(t *testing.T) {
	for _, tt := range []struct {
		name                   string
		strategy               string
		ready, updated         int64
		current, update, wantE string
	}{
		{"OnDelete, every member on the new template", "OnDelete", 3, 3, "etcd-a", "etcd-b", ""},
		{"OnDelete, one member on the old template", "OnDelete", 3, 2, "etcd-a", "etcd-b", "3/3 ready, 2 updated"},
		{"OnDelete, one member down", "OnDelete", 2, 3, "etcd-a", "etcd-b", "2/3 ready"},
		{"RollingUpdate, done", "RollingUpdate", 3, 3, "etcd-b", "etcd-b", ""},
		{"RollingUpdate, still rolling", "RollingUpdate", 3, 3, "etcd-a", "etcd-b", "rolling from revision etcd-a to etcd-b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sts := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet",
				"metadata": map[string]any{"name": "etcd", "namespace": "kcp", "generation": int64(2)},
				"spec":     map[string]any{"replicas": int64(3), "updateStrategy": map[string]any{"type": tt.strategy}},
				"status": map[string]any{"observedGeneration": int64(2), "replicas": int64(3), "readyReplicas": tt.ready,
					"updatedReplicas": tt.updated, "currentRevision": tt.current, "updateRevision": tt.update}}}
			c := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), sts)
			detail, err := workloadReady(context.Background(), c, statefulSets, "kcp", "etcd")
			switch {
			case tt.wantE == "" && err != nil:
				t.Errorf("not ready: %v", err)
			case tt.wantE != "" && (err == nil || !strings.Contains(err.Error(), tt.wantE)):
				t.Errorf("ready = %q, %v; want an error with %q", detail, err, tt.wantE)
			}
		})
	}
}
