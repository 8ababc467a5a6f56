package ops

import (
	"strings"
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

// TestRewatchHint: a sync failure on a sharded stack tells how to make the
// agent watch the shard now, with the CronJob's name as the agents
// component gives it and the agent's namespace and cluster.
func TestRewatchHint(t *testing.T) {
	got := rewatchHint(SmokeCluster{Name: "east", AgentKind: "api-syncagent", AgentNamespace: "edge-agent"})
	if want := "kubectl -n edge-agent create job --from=cronjob/api-syncagent-rewatch rewatch-now-$(date +%s) on cluster east"; !strings.HasSuffix(got, want) {
		t.Errorf("hint = %q, want it to end with %q", got, want)
	}
}
