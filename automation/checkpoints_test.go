package automation

import (
	"slices"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

func TestNotRedoable(t *testing.T) {
	const stack = "urn:pulumi:prod::kcp-tmc::"
	named := map[string]any{"metadata": map[string]any{"name": "kcp"}}
	autonamed := map[string]any{"metadata": map[string]any{"name": "kcp-x7f2a",
		"annotations": map[string]any{"pulumi.com/autonamed": "true"}}}
	step := func(op apitype.OpType, typ, name string, custom bool, inputs map[string]any) apitype.StepEventMetadata {
		return apitype.StepEventMetadata{Op: op, Type: typ, URN: stack + typ + "::" + name,
			New: &apitype.StepEventStateMetadata{Type: typ, Custom: custom, Inputs: inputs}}
	}
	tests := []struct {
		name string
		step apitype.StepEventMetadata
		want []string // nil: the next up redoes it
	}{
		{"a named Kubernetes object created", step(apitype.OpCreate, "kubernetes:apps/v1:Deployment", "agent-c1", true, named), nil},
		{"a named Kubernetes object replaced", step(apitype.OpReplace, "kubernetes:core/v1:Service", "kcp", true, named), nil},
		{"a Kubernetes object deleted", apitype.StepEventMetadata{Op: apitype.OpDelete, Type: "kubernetes:core/v1:ConfigMap", URN: stack + "kubernetes:core/v1:ConfigMap::old",
			Old: &apitype.StepEventStateMetadata{Custom: true, Inputs: autonamed}}, nil},
		{"a provider", step(apitype.OpCreate, "pulumi:providers:kubernetes", "cluster-c1", true, nil), nil},
		{"a component", step(apitype.OpCreate, "kcp-tmc:agents:Agent", "agent-c1", false, nil), nil},
		{"a pulumi-tls key unchanged", step(apitype.OpSame, "tls:index/privateKey:PrivateKey", "kcp-ca", true, nil), nil},
		{"a pulumi-tls key minted", step(apitype.OpCreate, "tls:index/privateKey:PrivateKey", "kcp-ca", true, nil),
			[]string{"create tls:index/privateKey:PrivateKey kcp-ca"}},
		{"an AWS bucket changed", step(apitype.OpUpdate, "aws:s3/bucketV2:BucketV2", "backup", true, nil),
			[]string{"update aws:s3/bucketV2:BucketV2 backup"}},
		{"an AWS key deleted", apitype.StepEventMetadata{Op: apitype.OpDelete, Type: "aws:kms/key:Key", URN: stack + "aws:kms/key:Key::backup",
			Old: &apitype.StepEventStateMetadata{Custom: true}}, []string{"delete aws:kms/key:Key backup"}},
		{"a Helm release", step(apitype.OpCreate, "kubernetes:helm.sh/v3:Release", "cert-manager", true, named),
			[]string{"create kubernetes:helm.sh/v3:Release cert-manager"}},
		{"an object the provider names", step(apitype.OpCreate, "kubernetes:core/v1:ConfigMap", "scratch", true, autonamed),
			[]string{"create kubernetes:core/v1:ConfigMap scratch"}},
		{"an object without a name", step(apitype.OpCreate, "kubernetes:core/v1:ConfigMap", "scratch", true, map[string]any{}),
			[]string{"create kubernetes:core/v1:ConfigMap scratch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotRedoable([]Change{changeOf(tt.step)}); !slices.Equal(got, tt.want) {
				t.Errorf("NotRedoable = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestChanged: drift counts what --expect-no-changes counts; a stack that
// reads objects back (the kcp-admin Secret, with the kubeconfig target)
// has read steps in every preview, which are no drift.
func TestChanged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		summary map[apitype.OpType]int
		want    int
	}{
		{"nothing", nil, 0},
		{"same only", map[apitype.OpType]int{apitype.OpSame: 81}, 0},
		{"reads back", map[apitype.OpType]int{apitype.OpSame: 81, apitype.OpRead: 2}, 0},
		{"read replaced or discarded", map[apitype.OpType]int{apitype.OpReadReplacement: 1, apitype.OpReadDiscard: 1}, 0},
		{"an update among reads", map[apitype.OpType]int{apitype.OpSame: 80, apitype.OpRead: 2, apitype.OpUpdate: 1}, 1},
		{"creates, deletes, replaces", map[apitype.OpType]int{apitype.OpCreate: 2, apitype.OpDelete: 1, apitype.OpReplace: 3}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Changed(tc.summary); got != tc.want {
				t.Errorf("Changed(%v) = %d, want %d", tc.summary, got, tc.want)
			}
		})
	}
}
