package helmrelease

import (
	"reflect"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// TestReleaseInputs: the registration carries the inputs the Kubernetes
// provider reads for a helm/v3 Release, under the SDK's own names, and asks
// for the plugin version the SDK would.
func TestReleaseInputs(t *testing.T) {
	// The version every typed resource of the SDK asks for.
	typed := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := corev1.NewNamespace(ctx, "ns", nil)
		return err
	}).OfType("kubernetes:core/v1:Namespace")[0].Version
	if typed == "" {
		t.Fatal("the SDK registered a Namespace without a plugin version")
	}
	tests := []struct {
		name string
		args Args
		want map[string]any
	}{
		{"all set", Args{Name: pulumi.String("rel"), Chart: pulumi.String("c"), Version: pulumi.String("1.2.3"), Repo: "https://charts.example.com",
			Namespace: pulumi.String("ns"), CreateNamespace: true, Values: pulumi.Map{"replicaCount": pulumi.Int(2)}, SkipCRDs: true},
			map[string]any{"skipCrds": true, "name": "rel", "chart": "c", "version": "1.2.3", "repositoryOpts": map[string]any{"repo": "https://charts.example.com"},
				"namespace": "ns", "createNamespace": true, "values": map[string]any{"replicaCount": float64(2)}, "compat": "true"}},
		{"defaults", Args{Name: pulumi.String("rel"), Chart: pulumi.String("c"), Version: pulumi.String("1.2.3"), Repo: "https://charts.example.com"},
			map[string]any{"name": "rel", "chart": "c", "version": "1.2.3", "repositoryOpts": map[string]any{"repo": "https://charts.example.com"},
				"values": map[string]any{}, "compat": "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
				_, err := New(ctx, "x", tt.args)
				return err
			})
			rels := rec.OfType(Type)
			if len(rels) != 1 {
				t.Fatalf("%d releases registered", len(rels))
			}
			if got := rels[0].Input(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("inputs\n got %v\nwant %v", got, tt.want)
			}
			// A release named by the provider before names were given keeps it.
			if !reflect.DeepEqual(rels[0].IgnoreChanges, []string{"name"}) {
				t.Errorf("ignoreChanges %q, want [name]", rels[0].IgnoreChanges)
			}
			if rels[0].Version != typed {
				t.Errorf("plugin version %q, want the SDK's %s", rels[0].Version, typed)
			}
		})
	}
	for _, args := range []Args{
		{Chart: pulumi.String("c")},
		{Chart: pulumi.String("c"), Version: pulumi.String("1.2.3"), Repo: "https://charts.example.com"}, // no name
	} {
		if _, err := New(nil, "x", args); err == nil {
			t.Errorf("a release without name, version or repo was accepted: %+v", args)
		}
	}
}
