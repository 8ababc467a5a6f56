package cli

import (
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// agentIdentity copies each agent's cert-manager-issued identity from kcp's
// hosting cluster to its physical cluster (all clusters, or only).
func agentIdentity(ctx context.Context, cfg *stacks.Config, hostKubeconfig, only string, stdout io.Writer) error {
	if len(cfg.Clusters) == 0 {
		return fmt.Errorf("the stack has no kcp-tmc:clusters: no agent identity to copy")
	}
	switch stacks.AgentIdentity(cfg) {
	case agents.IdentityToken:
		return fmt.Errorf("stack %q applies the kcp side in its up (target.kcpSide %s): each agent authenticates with a ServiceAccount token "+
			"that `kcp-tmc up` writes, so there is nothing to copy; agent-identity is the fallback with target.kcpSide %s (docs/agents.md)",
			cfg.Environment, cfg.Target.KCPSide, stacks.KCPSideOff)
	case agents.IdentityCertificate:
		// Pulumi writes the Secret itself; a copy would take it over.
		return fmt.Errorf("stack tls.mode is %s: `kcp-tmc up` writes each agent's identity; agent-identity is for tls.mode %s", cfg.TLS.Mode, tls.ModeCertManager)
	}
	host, err := hostConfig(cfg, hostKubeconfig)
	if err != nil {
		return fmt.Errorf("hosting cluster kubeconfig: %w", err)
	}
	copied := 0
	for _, cl := range cfg.Clusters {
		if only != "" && cl.Name != only {
			continue
		}
		kc, ok := cfg.ClusterKubeconfigs[cl.Name]
		if !ok {
			return fmt.Errorf("cluster %q has no kubeconfig in kcp-tmc:clusterKubeconfigs", cl.Name)
		}
		target, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
		if err != nil {
			return fmt.Errorf("kcp-tmc:clusterKubeconfigs[%s]: %w", cl.Name, err)
		}
		ns := stacks.AgentArgs(cfg, cl).Namespace // the namespace the stack deployed the agent in
		if err := ops.CopyAgentIdentity(ctx, ops.IdentityCopy{Cluster: cl.Name, Host: host, Namespace: cfg.Namespace,
			Target: target, AgentNamespace: ns}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cluster %s: secret %s/%s written\n", cl.Name, ns, agents.IdentitySecret)
		copied++
	}
	if copied == 0 {
		return fmt.Errorf("--cluster %q: not a cluster of kcp-tmc:clusters", only)
	}
	return nil
}
