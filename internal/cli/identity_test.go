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
