package stacks

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// TestShardNamesNeverCollide renders a prod stack with shard names chosen to
// sit next to kcp-tmc's own names (a prefix of another shard's, the longest
// allowed, names close to reserved ones) and the separate cache: every
// Kubernetes object keeps a distinct kind/namespace/name, every name fits
// its kind's limit, and the kcp objects are each shard's own.
func TestShardNamesNeverCollide(t *testing.T) {
	names := []string{"a", "a-1", "proxy", "front", "internal-1", "verify", strings.Repeat("s", 33)}
	var shards []map[string]any
	for _, n := range names {
		shards = append(shards, map[string]any{"name": n})
	}
	kcpCfg, _ := json.Marshal(map[string]any{"shards": shards, "cache": map[string]any{"mode": "separate"}})
	mocktest.SetConfig(t, map[string]string{"environment": "prod", "kubeconfig": "apiVersion: v1\nkind: Config\n", "backup": testIRSA,
		"slackWebhookUrl": "https://hooks.slack.com/services/T/B/X", "kcp": string(kcpCfg)}, "kubeconfig", "slackWebhookUrl")
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range rec.Manifests() {
		name := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
		key := fmt.Sprintf("%s/%v/%s", o["kind"], mocktest.Dig(o, "metadata", "namespace"), name)
		if seen[key] {
			t.Errorf("two objects are %s", key)
		}
		seen[key] = true
		limit := 253
		switch o["kind"] {
		case "Service", "Namespace":
			limit = 63
		case "CronJob":
			limit = 52
		}
		if len(name) > limit {
			t.Errorf("%s: name longer than %d", key, limit)
		}
	}
	for _, n := range names {
		for _, want := range []string{"Deployment/kcp/kcp-" + n, "StatefulSet/kcp/etcd-" + n, "CronJob/kcp/etcd-" + n + "-backup-verify"} {
			if !seen[want] {
				t.Errorf("no %s", want)
			}
		}
	}
	for _, want := range []string{"Deployment/kcp/kcp-cache", "StatefulSet/kcp/etcd-cache"} {
		if !seen[want] {
			t.Errorf("no %s", want)
		}
	}
	if seen["CronJob/kcp/etcd-cache-backup"] {
		t.Error("the cache's etcd is backed up: it holds only what the shards write again")
	}
}

// TestAddingAShardChangesNothingExisting: in prod (load balancer, S3
// backups, cert-manager, monitoring, logging) and with a created Gateway,
// every resource of the stack without the shard is registered unchanged
// once the shard is added — the engine test proves the preview for the
// rendered staging stack; this covers the other modes' objects.
func TestAddingAShardChangesNothingExisting(t *testing.T) {
	base := map[string]string{"environment": "prod", "kubeconfig": "apiVersion: v1\nkind: Config\n", "backup": testIRSA,
		"slackWebhookUrl": "https://hooks.slack.com/services/T/B/X"}
	for _, tc := range []struct {
		name string
		with map[string]string
	}{
		{"prod", nil},
		{"gateway", map[string]string{"ingress": `{"mode":"gateway","gateway":{"className":"example"}}`}},
		{"separate cache", map[string]string{"kcp": `{"cache":{"mode":"separate"}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			render := func(shard bool) []mocktest.Resource {
				cfg := map[string]string{}
				for k, v := range base {
					cfg[k] = v
				}
				for k, v := range tc.with {
					cfg[k] = v
				}
				if shard {
					var kcp map[string]any
					_ = json.Unmarshal([]byte(cfg["kcp"]+" "), &kcp)
					if kcp == nil {
						kcp = map[string]any{}
					}
					kcp["shards"] = []any{map[string]any{"name": "shard-1"}}
					b, _ := json.Marshal(kcp)
					cfg["kcp"] = string(b)
				}
				mocktest.SetConfig(t, cfg, "kubeconfig", "slackWebhookUrl")
				rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
				if err != nil {
					t.Fatal(err)
				}
				return rec.All()
			}
			after := map[string]mocktest.Resource{}
			for _, r := range render(true) {
				after[r.Type+" "+r.Name] = r
			}
			before := render(false)
			for _, r := range before {
				got, ok := after[r.Type+" "+r.Name]
				if !ok {
					t.Errorf("%s %s is gone once a shard is added", r.Type, r.Name)
					continue
				}
				if fmt.Sprint(got.Input()) != fmt.Sprint(r.Input()) || got.Protect != r.Protect {
					t.Errorf("%s %s changes once a shard is added", r.Type, r.Name)
				}
			}
			if len(after) <= len(before)+20 {
				t.Errorf("%d resources with the shard, %d without: the shard's are missing", len(after), len(before))
			}
		})
	}
}
