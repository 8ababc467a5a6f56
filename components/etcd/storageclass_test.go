package etcd

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// TestStorageClassChangeRefused: etcd.storageClass changed on a running
// stack fails the deployment — in its preview — naming the key, the new
// value and the class the members' volumes are on; the same class passes.
func TestStorageClassChangeRefused(t *testing.T) {
	for _, tc := range []struct {
		live, key, wantKey string
		wantErr            bool
	}{
		{"standard", "", "", false},
		{"gp2", "", "etcd.storageClass", true},
		{"gp2", "kcp.shards[0].etcd", "kcp.shards[0].etcd.storageClass", true},
	} {
		t.Run(tc.live+tc.key, func(t *testing.T) {
			a := baseArgs()
			a.Replicas = 3
			a.Key = tc.key
			err := pulumi.RunErr(func(ctx *pulumi.Context) error {
				_, err := NewEtcd(ctx, "etcd", a)
				return err
			}, pulumi.WithMocks("kcp-tmc", "test", mocktest.ClaimsOn{Recorder: &mocktest.Recorder{}, Class: tc.live}))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("claims on the configured class: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("etcd.storageClass changed on a running stack was accepted")
			}
			for _, want := range []string{tc.wantKey + `: Invalid value: "standard"`, `volumes are on StorageClass "gp2"`, `keep "gp2"`, "Moving etcd to another StorageClass"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
