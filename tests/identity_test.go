package tests

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/ops"
)

// TestAgentIdentityCopy: kcp-tmc agent-identity on a real apiserver (both
// "clusters" are the local one, in different namespaces): the agent's
// Secret gets the certificate cert-manager issued and the CA that verifies
// kcp; a renewal copied again replaces it; a certificate not yet issued is
// an error naming the Secret.
func TestAgentIdentityCopy(t *testing.T) {
	ctx := context.Background()
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, stderr, err := kube.Kubectl(ctx, []byte(stdin), args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	for _, ns := range []string{"identity-kcp", "identity-agent"} {
		kubectl("", "create", "namespace", ns)
		t.Cleanup(func() { _, _, _ = kube.Kubectl(ctx, nil, "delete", "namespace", ns, "--wait=false") })
	}
	issued := func(cert string) {
		kubectl(`{"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/tls","metadata":{"name":"`+tls.SyncerSecretName("edge")+`","namespace":"identity-kcp"},
		  "stringData":{"tls.crt":"`+cert+`","tls.key":"KEY","ca.crt":"CLIENT-CA"}}`, "apply", "--server-side", "-f", "-")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	copyIt := func() error {
		return ops.CopyAgentIdentity(ctx, ops.IdentityCopy{Cluster: "edge", Host: rc, Namespace: "identity-kcp", Target: rc, AgentNamespace: "identity-agent"})
	}
	if err := copyIt(); err == nil || !strings.Contains(err.Error(), "identity-kcp/syncer-client-edge") {
		t.Fatalf("copy before cert-manager issued the certificate: err = %v", err)
	}
	issued("CERT-1")
	kubectl(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"`+tls.CAServer+`","namespace":"identity-kcp"},"stringData":{"ca.crt":"SERVER-CA"}}`,
		"apply", "--server-side", "-f", "-")
	read := func() map[string]string {
		var s struct {
			Type string
			Data map[string][]byte
		}
		if err := json.Unmarshal([]byte(kubectl("", "get", "secret", agents.IdentitySecret, "-n", "identity-agent", "-o", "json")), &s); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{"type": s.Type}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out
	}
	for _, cert := range []string{"CERT-1", "CERT-2"} {
		issued(cert) // CERT-2: cert-manager renewed it
		if err := copyIt(); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"type": "kubernetes.io/tls", "tls.crt": cert, "tls.key": "KEY", "ca.crt": "SERVER-CA"}
		if got := read(); !maps.Equal(got, want) {
			t.Errorf("agent identity = %v, want %v", got, want)
		}
	}
}
