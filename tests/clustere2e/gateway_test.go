package clustere2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestGatewayFrontDoorOnANode: ingress.mode gateway with a Gateway of the
// stack's, served by Traefik running on the node as its chart runs it (the
// websecure entry point on 8443 behind a LoadBalancer Service on 443, the
// Gateways reporting that Service's address), and an api-syncagent whose
// physical cluster is the node. One up brings it all: the Gateway and
// TLSRoutes awaited until Traefik programmed and accepted them, the kcp side
// applied at the Gateway's reported address (no DNS record needed), and the
// agent Ready — it reaches kcp by name, which external-dns's
// gateway-tlsroute source publishes from the TLSRoute at that address. Then
// the smoke test and a Widget synced through the Gateway, both ways.
func TestGatewayFrontDoorOnANode(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	lb, err := kube.InstallTraefik(ctx)
	if err != nil {
		t.Fatalf("Traefik: %v", err)
	}
	t.Cleanup(func() {
		if err := kube.RemoveTraefik(ctx); err != nil {
			t.Errorf("removing Traefik: %v", err)
		}
	})
	p := newAgentPlatform(t, nil, map[string]any{
		"kcp-tmc:ingress": map[string]any{"mode": "gateway",
			"gateway": map[string]any{"className": cluster.TraefikGatewayClass, "port": cluster.TraefikEntryPointPort}},
	})

	began := time.Now()
	p.must("up") // awaits the Gateway, its routes, kcp, the kcp side and the agent
	if got, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "gateway", "kcp", "-o", "jsonpath={.status.addresses[0].value}"); got != lb {
		t.Errorf("the Gateway reports address %q, want Traefik's load balancer %s", got, lb)
	}
	// external-dns published the name from the TLSRoute (no annotations in
	// this mode) at the Gateway's address.
	waitCmd(t, "external-dns publishes "+host+" at "+lb, time.Minute, func() (bool, string) {
		pub, ok := kube.Published(host)
		return ok && pub.IP == lb && !pub.At.Before(began), pub.IP
	})
	p.must("up", "--expect-no-changes")
	t.Log(p.must("smoke"))

	admin := p.kcpAdminAt(host)
	admin.consumerSyncs("w1")
	// What answered was the front-proxy, through Traefik: the Gateway's
	// routes are the only way to kcp.<domain> in this mode.
	if out, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "services", "-o", "jsonpath={.items[*].spec.type}"); strings.Contains(out, "LoadBalancer") {
		t.Errorf("a LoadBalancer Service in kcp's namespace in gateway mode: %s", out)
	}
	p.destroy()
}
