package cli

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// TestAgentIdentityRefusesWhatItWouldBreak: in self-managed mode Pulumi
// owns the Secret (a copy would take it over), a stack whose up applies the
// kcp side gives its agents tokens, and a stack without clusters has
// nothing to copy; each is said plainly before any cluster is touched.
func TestAgentIdentityRefusesWhatItWouldBreak(t *testing.T) {
	for _, tt := range []struct {
		cfg  stacks.Config
		want string
	}{
		{stacks.Config{TLS: stacks.TLS{Mode: tls.ModeSelfManaged}, Clusters: []stacks.Cluster{{Name: "edge"}},
			Target: stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideOff}}, "`kcp-tmc up` writes each agent's identity"},
		{stacks.Config{TLS: stacks.TLS{Mode: tls.ModeCertManager}}, "no kcp-tmc:clusters"},
		{stacks.Config{Environment: "prod", TLS: stacks.TLS{Mode: tls.ModeCertManager}, Clusters: []stacks.Cluster{{Name: "edge"}},
			Target: stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideAuto}}, "each agent authenticates with a ServiceAccount token"},
	} {
		err := agentIdentity(context.Background(), &tt.cfg, "", "", io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}

// TestRenewCopiesIdentities: renew copies the agents' identities again only
// where agent-identity is how they get one and a cluster is reachable.
func TestRenewCopiesIdentities(t *testing.T) {
	edge := []stacks.Cluster{{Name: "edge"}}
	certManager, selfManaged := stacks.TLS{Mode: tls.ModeCertManager}, stacks.TLS{Mode: tls.ModeSelfManaged}
	for _, tt := range []struct {
		name string
		cfg  stacks.Config
		want bool
	}{
		{"copied identities on a cluster", stacks.Config{TLS: certManager, Clusters: edge,
			Target: stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideOff}}, true},
		{"tokens: the up writes them", stacks.Config{TLS: certManager, Clusters: edge,
			Target: stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideAuto}}, false},
		{"self-managed: Pulumi's certificates", stacks.Config{TLS: selfManaged, Clusters: edge,
			Target: stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideOff}}, false},
		{"render mode: no cluster to copy from", stacks.Config{TLS: certManager, Clusters: edge,
			Target: stacks.Target{Mode: stacks.TargetRender, KCPSide: stacks.KCPSideOff}}, false},
		{"no clusters", stacks.Config{TLS: certManager, Target: stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideOff}}, false},
	} {
		if got := renewsCopiedIdentities(&tt.cfg); got != tt.want {
			t.Errorf("%s: renew copies identities = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAgentIdentityTriesEveryCluster: a cluster whose copy fails (here: no
// kubeconfig for it; an unreachable one fails the same way) does not stop
// the copy to the clusters after it; the error names each that failed.
func TestAgentIdentityTriesEveryCluster(t *testing.T) {
	unreachable := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	cfg := stacks.Config{Environment: "dev", Namespace: "kcp", TLS: stacks.TLS{Mode: tls.ModeCertManager},
		Target:             stacks.Target{Mode: stacks.TargetKubeconfig, KCPSide: stacks.KCPSideOff},
		Kubeconfig:         unreachable,
		Clusters:           []stacks.Cluster{{Name: "alpha"}, {Name: "bravo"}, {Name: "charlie"}},
		ClusterKubeconfigs: map[string]string{"bravo": unreachable, "charlie": unreachable}}
	var out strings.Builder
	err := agentIdentity(context.Background(), &cfg, "", "", &out)
	if err == nil || !strings.Contains(err.Error(), "3 of 3 agent identities not copied") {
		t.Fatalf("err = %v", err)
	}
	for _, cl := range []string{"alpha", "bravo", "charlie"} {
		if !strings.Contains(err.Error(), "cluster "+cl+":") || !strings.Contains(out.String(), "cluster "+cl+": secret") {
			t.Errorf("cluster %s was not tried after the first failure:\nerr: %v\nout: %s", cl, err, out.String())
		}
	}
}
