package etcd

import (
	"strings"
	"testing"

	presource "github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// claimsOn answers the claims as a running stack's state has them: on
// StorageClass class, whatever the program asks for (the claims ignore a
// change of the class, so their state keeps the class they were made on).
type claimsOn struct {
	*mocktest.Recorder
	class string
}

func (m claimsOn) NewResource(args pulumi.MockResourceArgs) (string, presource.PropertyMap, error) {
	id, state, err := m.Recorder.NewResource(args)
	if err == nil && args.TypeToken == pvcType {
		state = state.Copy()
		spec := state["spec"].ObjectValue().Copy()
		spec["storageClassName"] = presource.NewStringProperty(m.class)
		state["spec"] = presource.NewObjectProperty(spec)
	}
	return id, state, err
}

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
			}, pulumi.WithMocks("kcp-tmc", "test", claimsOn{&mocktest.Recorder{}, tc.live}))
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
