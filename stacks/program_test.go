package stacks

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/mocktest"
)

const providerType = "pulumi:providers:kubernetes"

func TestProgramDevRendersIntoProject(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "target": `{"mode":"render","renderDir":"rendered/dev"}`})
	rec, err := mocktest.Run(t, "dev", Program)
	if err != nil {
		t.Fatal(err)
	}
	p := rec.Named(t, providerType, "kubernetes")
	dir, _ := p.Input()["renderYamlToDirectory"].(string)
	if !filepath.IsAbs(dir) || !strings.HasSuffix(dir, filepath.Join("rendered", "dev")) {
		t.Errorf("renderYamlToDirectory = %q, want an absolute path ending in rendered/dev", dir)
	}
	ns := rec.Named(t, "kubernetes:core/v1:Namespace", "platform-namespace")
	labels := ns.Input()["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["pod-security.kubernetes.io/enforce"] != "restricted" || labels["kcp-tmc.io/environment"] != "dev" {
		t.Errorf("namespace labels = %v", labels)
	}
	if ns.RetainOnDelete {
		t.Error("dev namespace must be removable by destroy")
	}
	for _, r := range rec.All() {
		if r.Custom && r.Type != providerType && !strings.HasSuffix(r.Provider, "::kubernetes::kubernetes-id") {
			t.Errorf("%s %s does not use the stack's kubernetes provider (provider %q)", r.Type, r.Name, r.Provider)
		}
	}
}

func TestProgramProdUsesSecretKubeconfigAndRetainsNamespace(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "prod", "kubeconfig": "apiVersion: v1\nkind: Config\n"}, "kubeconfig")
	rec, err := mocktest.Run(t, "prod", Program)
	if err != nil {
		t.Fatal(err)
	}
	kc := rec.Named(t, providerType, "kubernetes").Inputs["kubeconfig"]
	if !kc.IsSecret() {
		t.Errorf("kubeconfig reaches the provider as %v, want a secret", kc)
	}
	if !rec.Named(t, "kubernetes:core/v1:Namespace", "platform-namespace").RetainOnDelete {
		t.Error("prod namespace (holding etcd volumes) would be deleted by destroy")
	}
}

func TestProgramBadConfigRegistersNothing(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "prod", "etcd": `{"replicas":2,"storageSize":"100Gb"}`})
	rec, err := mocktest.Run(t, "prod", Program)
	if err == nil {
		t.Fatal("program accepted an invalid prod config")
	}
	for _, want := range []string{"kcp-tmc:etcd.replicas", "kcp-tmc:etcd.storageSize", "kcp-tmc:kubeconfig"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if n := len(rec.All()); n != 0 {
		t.Errorf("%d resources registered before validation failed: a half-applied stack", n)
	}
}
