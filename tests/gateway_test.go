package tests

import (
	"os"
	"strings"
	"testing"
)

// TestGatewayStack renders a prod stack with ingress.mode gateway (the
// Gateway created with a GatewayClass) and holds its objects to the same
// judges as every stack: server-side applied to a real apiserver with the
// pinned Gateway API CRDs (standard channel) installed, zero warnings,
// kube-score, and the security policy.
func TestGatewayStack(t *testing.T) {
	dir := stackManifestsWith(t, "prod", "kcp-gateway", map[string]string{
		"kcp-tmc:ingress": `{"mode":"gateway","gateway":{"className":"eg"}}`,
	})
	var files []string
	routes := 0
	for _, f := range yamlFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kcpObject := false
		for _, g := range kcpGroups {
			kcpObject = kcpObject || strings.Contains(string(b), "apiVersion: "+g)
		}
		if kcpObject {
			continue
		}
		if strings.Contains(string(b), "kind: TLSRoute") || strings.Contains(string(b), "kind: Gateway\n") {
			routes++
		}
		if strings.Contains(string(b), "kind: Ingress\n") {
			t.Errorf("an Ingress in gateway mode: %s", f)
		}
		files = append(files, f)
	}
	if routes != 2 {
		t.Fatalf("%d Gateway/TLSRoute objects rendered, want the Gateway and its TLSRoute", routes)
	}
	if stderr := applyInOrder(t, files); strings.Contains(stderr, "Warning") {
		t.Errorf("the apiserver warned:\n%s", stderr)
	}
	if findings := kubeScore(t, files...); len(findings) > 0 {
		t.Errorf("kube-score findings:\n%s", strings.Join(findings, "\n"))
	}
	objs := readObjects(t, dir)
	for _, r := range policyRules {
		for _, o := range objs {
			for _, violation := range r.check(o, objs) {
				if why := exception(o, objs); !(r.exceptable && why != "") {
					t.Errorf("%s: %s: %s", o.id(), r.name, violation)
				}
			}
		}
	}
}
