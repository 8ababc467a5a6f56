package clustere2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	kcpc "github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
)

// TestAgentOnTheSameNode: the dev stack with one api-syncagent cluster entry
// whose physical cluster is the node itself. One up brings it all: kcp, the
// kcp side (workspace, APIExport, RBAC, the agent's ServiceAccount token)
// through the stack's own admin certificate, and the agent, Ready, reaching
// kcp at its public address through CoreDNS and the load balancer. A Widget
// created in a consumer workspace reaches the node and its status comes
// back. cert-manager then renews every certificate the path depends on (the
// service-account key's, the front-proxy's serving and forwarding ones,
// kcp-admin's), kcp restarts (it keeps the service-account key), the
// front-proxy's restart CronJob runs (its image, ServiceAccount and RBAC on
// the node), and the agent keeps syncing with no command run; the next up
// converges.
func TestAgentOnTheSameNode(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	p := newAgentPlatform(t, nil, nil)

	p.must("up") // awaits the agent's rollout: Ready means it reached kcp
	p.published(ingress.FrontDoorLoadBalancer, host)
	p.must("up", "--expect-no-changes")
	// smoke with its defaults: a Widget through the agent's export, in a
	// workspace of its own, to the node and back out; then it cleans up.
	t.Log(p.must("smoke"))
	// The node's Prometheus selects by label (kube-prometheus-stack's
	// default): it scrapes the agent and loads the agent's alerts only
	// because their objects carry the stack's rule labels.
	promTargetsUp(t, []string{monitoring.JobSyncAgent})
	promRulesHealthy(t, "kcp-agent")
	admin := p.kcpAdminAt(host)
	admin.consumerSyncs("w1")

	// Renewals reach nobody's desk: cert-manager renews what the agent's
	// path rests on, and a Widget created afterwards still syncs.
	saKey := func() string {
		out, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "secret", tls.CertServiceAccount, "-o", `jsonpath={.data.tls\.key}`)
		return out
	}
	keyBefore := saKey()
	renew(t, p.ns, tls.CertServiceAccount, tls.CertFrontProxy, tls.CertFrontProxyClient, tls.CertAdmin)
	if keyBefore == "" || saKey() != keyBefore {
		t.Error("kcp's service-account key changed on renewal: every token kcp issued stops verifying once kcp restarts")
	}
	// kcp reads the service-account key at start: a restart (any
	// rescheduling) is when a changed key would lock every agent out.
	if _, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "rollout", "restart", "deployment/"+kcpc.ServerName); err != nil {
		t.Fatal(err)
	}
	if err := kube.WaitRollout(ctx, p.ns, "deployment/"+kcpc.ServerName, 5*time.Minute); err != nil {
		t.Fatalf("kcp after the restart: %v\n%s", err, p.state())
	}
	// The front-proxy reads its forwarding certificate only at start: the
	// stack's CronJob restarts it weekly; its Job now, as the schedule would.
	began := time.Now()
	if _, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "create", "job", "--from=cronjob/"+kcpc.FrontProxyRestartName, "restart-now"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "wait", "--for=condition=complete", "job/restart-now", "--timeout=3m"); err != nil {
		logs, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", "job/restart-now")
		t.Fatalf("the front-proxy's restart Job: %v\n%s\n%s", err, logs, p.state())
	}
	// The Job waits for the rollout: complete means the restarted pods serve.
	if out, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "rollout", "status", "deployment/"+kcpc.FrontProxyName, "--watch=false"); err != nil ||
		!strings.Contains(out, "successfully rolled out") {
		t.Errorf("the restart Job completed before the front-proxy's rollout did (%v): %s\n%s", err, out, p.state())
	}
	if at, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "deployment", kcpc.FrontProxyName, "-o",
		`jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}`); at == "" {
		t.Error("the restart Job completed but did not restart the front-proxy")
	}
	t.Logf("the front-proxy restarted by its CronJob's Job in %s", time.Since(began).Round(time.Second))
	admin.widgetToNode("root:consumer", "w2")
	p.must("up") // reads the renewed admin certificate: an update of the kcp providers, no replacement
	p.must("up", "--expect-no-changes")

	p.destroy()
}

// renew makes cert-manager renew certificates now, as `cmctl renew` does
// (the Issuing condition), and waits until each Secret holds a new
// certificate and its Certificate is Ready again.
func renew(t *testing.T, ns string, certs ...string) {
	t.Helper()
	ctx := context.Background()
	crt := func(name string) string {
		out, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", "secret", name, "-o", `jsonpath={.data.tls\.crt}`)
		return out
	}
	began := time.Now()
	for _, name := range certs {
		before := crt(name)
		patch := `{"status":{"conditions":[{"type":"Issuing","status":"True","reason":"ManuallyTriggered","message":"renewal forced by the test","lastTransitionTime":"` +
			time.Now().UTC().Format(time.RFC3339) + `"}]}}`
		if _, _, err := kube.Kubectl(ctx, nil, "-n", ns, "patch", "certificate", name, "--subresource=status", "--type=merge", "-p", patch); err != nil {
			t.Fatalf("forcing the renewal of %s: %v", name, err)
		}
		waitCmd(t, "certificate "+name+" renewed", 2*time.Minute, func() (bool, string) {
			ready, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", "certificate", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return crt(name) != before && ready == "True", "Ready=" + ready
		})
	}
	t.Logf("renewed %s in %s", strings.Join(certs, ", "), time.Since(began).Round(time.Second))
}

// waitCmd polls check every second until it reports done, failing the test
// with the last detail after timeout.
func waitCmd(t *testing.T, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = check(); ok {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: not after %s (last: %q)", what, timeout, last)
}
