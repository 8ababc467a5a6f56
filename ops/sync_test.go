package ops

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
