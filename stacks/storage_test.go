package stacks

import (
	"slices"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// TestEtcdVolumesNameTheirAttributes: every etcd claim on the class
// kcp-tmc creates names its VolumeAttributesClass — the root's, a shard's,
// the cache server's — so a change of storage.volumeType, iops or
// throughputMiBps reaches the volumes that exist; a claim on another class
// names none. Unset, it is on only where the stack knows the cluster is
// 1.34 or later (the cloud layer's); off, no claim names one.
func TestEtcdVolumesNameTheirAttributes(t *testing.T) {
	const vac = "fast-ssd-gp3-6000iops-250mibps"
	shards := `{"shards":[{"name":"s1","etcd":{"storageClass":"other"}},{"name":"s2"}],"cache":{"mode":"separate"}}`
	for _, tt := range []struct {
		name   string
		config map[string]string
		want   string // what claims on fast-ssd name
		claims int    // 3 members each: root, shards s1 and s2, the cache server
	}{
		{"prod", map[string]string{"kcp": shards, "storage": `{"modifyVolumes":true}`}, vac, 12},
		{"prod, another cluster: unknown version", map[string]string{"kcp": shards}, "", 12},
		{"prod, off", map[string]string{"kcp": shards, "storage": `{"modifyVolumes":false}`}, "", 12},
		{"EKS 1.33 by default", map[string]string{"cloud": `{"mode":"eks"}`, "kubeconfig": "<delete>"}, "", 3},
		{"EKS 1.34", map[string]string{"cloud": `{"mode":"eks","kubernetesVersion":"1.34"}`, "kubeconfig": "<delete>"}, vac, 3},
		{"EKS 1.34, off", map[string]string{"cloud": `{"mode":"eks","kubernetesVersion":"1.34"}`, "kubeconfig": "<delete>", "storage": `{"modifyVolumes":false}`}, "", 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			config := map[string]string{"environment": "prod", "kubeconfig": "apiVersion: v1", "backup": testIRSA,
				"slackWebhookUrl": "https://hooks.slack.com/services/T/B/X"}
			for k, v := range tt.config {
				if v == "<delete>" {
					delete(config, k)
					continue
				}
				config[k] = v
			}
			mocktest.SetConfig(t, config, "kubeconfig", "slackWebhookUrl")
			rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			claims := 0
			for _, c := range rec.OfType("kubernetes:core/v1:PersistentVolumeClaim") {
				in := c.Input()
				name, _ := mocktest.Dig(in, "metadata", "name").(string)
				if !strings.HasPrefix(name, "data-") {
					continue // not an etcd member's
				}
				claims++
				want := ""
				if mocktest.Dig(in, "spec", "storageClassName") == "fast-ssd" {
					want = tt.want
				}
				if got, _ := mocktest.Dig(in, "spec", "volumeAttributesClassName").(string); got != want {
					t.Errorf("claim %s on %v names VolumeAttributesClass %q, want %q", name, mocktest.Dig(in, "spec", "storageClassName"), got, want)
				}
				// Naming none, a claim keeps the class it may name: the API
				// refuses to unset it once its volume has it.
				if kept := slices.Contains(c.IgnoreChanges, "spec.volumeAttributesClassName"); kept != (want == "") {
					t.Errorf("claim %s ignores its attributes class: %v, want %v", name, kept, want == "")
				}
			}
			if claims != tt.claims {
				t.Fatalf("%d etcd claims, want %d", claims, tt.claims)
			}
			vacs := rec.OfType("kubernetes:storage.k8s.io/v1:VolumeAttributesClass")
			if (len(vacs) == 1) != (tt.want != "") {
				t.Errorf("%d VolumeAttributesClasses, want one: %v", len(vacs), tt.want != "")
			}
		})
	}
}
