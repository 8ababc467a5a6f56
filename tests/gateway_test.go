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
	files, _ := judgeStack(t, dir)
	routes := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "kind: TLSRoute") || strings.Contains(string(b), "kind: Gateway\n") {
			routes++
		}
		if strings.Contains(string(b), "kind: Ingress\n") {
			t.Errorf("an Ingress in gateway mode: %s", f)
		}
	}
	if routes != 2 {
		t.Errorf("%d Gateway/TLSRoute objects rendered, want the Gateway and its TLSRoute", routes)
	}
}
