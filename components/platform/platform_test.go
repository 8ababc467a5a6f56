package platform

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

func run(t *testing.T, args Args) (*mocktest.Recorder, error) {
	t.Helper()
	return mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := NewPlatform(ctx, "platform", args)
		return err
	})
}

func TestNamespaceEnforcesRestrictedPodSecurity(t *testing.T) {
	rec, err := run(t, Args{Namespace: "kcp", PodSecurityVersion: "v1.33", Labels: map[string]string{"team": "platform"}})
	if err != nil {
		t.Fatal(err)
	}
	ns := rec.Named(t, "kubernetes:core/v1:Namespace", "platform-namespace")
	meta := ns.Input()["metadata"].(map[string]any)
	if meta["name"] != "kcp" {
		t.Errorf("namespace name = %v, want kcp", meta["name"])
	}
	labels := meta["labels"].(map[string]any)
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if got := labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
			t.Errorf("label %s = %v, want restricted", mode, got)
		}
		if got := labels["pod-security.kubernetes.io/"+mode+"-version"]; got != "v1.33" {
			t.Errorf("label %s-version = %v, want the pinned v1.33", mode, got)
		}
	}
	if labels["team"] != "platform" {
		t.Errorf("caller label lost: %v", labels)
	}
	if ns.RetainOnDelete {
		t.Error("namespace retained on delete although RetainOnDelete was not asked for")
	}
}

func TestDefaultDenyPolicy(t *testing.T) {
	dnsEgress := []any{map[string]any{
		"to": []any{map[string]any{
			"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "kube-system"}},
			"podSelector":       map[string]any{"matchLabels": map[string]any{"k8s-app": "kube-dns"}},
		}},
		"ports": []any{
			map[string]any{"protocol": "UDP", "port": float64(53)},
			map[string]any{"protocol": "TCP", "port": float64(53)},
		},
	}}
	tests := []struct {
		name       string
		denyDNS    bool
		wantEgress any
	}{
		{"dns allowed by default", false, dnsEgress},
		{"dns denied on request", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := run(t, Args{Namespace: "kcp", DenyDNS: tt.denyDNS})
			if err != nil {
				t.Fatal(err)
			}
			np := rec.Named(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "platform-default-deny")
			spec := np.Input()["spec"].(map[string]any)
			if sel := spec["podSelector"].(map[string]any); len(sel) != 0 {
				t.Errorf("podSelector = %v, want {} (every pod)", sel)
			}
			if got := spec["policyTypes"]; !reflect.DeepEqual(got, []any{"Ingress", "Egress"}) {
				t.Errorf("policyTypes = %v, want both directions denied", got)
			}
			if spec["ingress"] != nil {
				t.Errorf("ingress rules = %v, want none", spec["ingress"])
			}
			if !reflect.DeepEqual(spec["egress"], tt.wantEgress) {
				t.Errorf("egress = %#v, want %#v", spec["egress"], tt.wantEgress)
			}
			if ns := np.Input()["metadata"].(map[string]any)["namespace"]; ns != "kcp" {
				t.Errorf("policy namespace = %v, want kcp", ns)
			}
		})
	}
}

func TestChildrenAreParentedAndTyped(t *testing.T) {
	rec, err := run(t, Args{Namespace: "kcp", RetainOnDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	comp := rec.Named(t, TypeToken, "platform")
	if comp.Custom {
		t.Error("platform registered as a custom resource, want a component")
	}
	for _, r := range rec.All() {
		if r.Type == TypeToken {
			continue
		}
		if r.ParentName() != "platform" {
			t.Errorf("%s %s has parent %q, want platform", r.Type, r.Name, r.ParentURN)
		}
	}
	if !rec.Named(t, "kubernetes:core/v1:Namespace", "platform-namespace").RetainOnDelete {
		t.Error("RetainOnDelete namespace (holding etcd PVCs) would be deleted by destroy")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name        string
		args        Args
		field, want string // "" = valid
	}{
		{"defaults are valid", Args{Namespace: "kcp"}, "", ""},
		{"empty namespace", Args{}, "platform.namespace", `""`},
		{"uppercase namespace", Args{Namespace: "KCP"}, "platform.namespace", `"KCP"`},
		{"namespace too long", Args{Namespace: strings.Repeat("a", 64)}, "platform.namespace", "DNS-1123"},
		{"unpinned version", Args{Namespace: "kcp", PodSecurityVersion: "latest"}, "platform.podSecurityVersion", `"latest": a pinned`},
		{"a patch version", Args{Namespace: "kcp", PodSecurityVersion: "v1.34.1"}, "platform.podSecurityVersion", "a pinned"},
		{"privileged without a reason", Args{Namespace: "kcp", EnforceLevel: "privileged"}, "platform.exceptionReason", "Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.args.WithDefaults().Validate(field.NewPath("platform"))
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			fieldtest.Expect(t, errs, tt.field, tt.want)
			if _, runErr := run(t, tt.args); runErr == nil {
				t.Error("NewPlatform accepted args that Validate rejects")
			}
		})
	}
}
