package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/client-go/rest"
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
	// Every cluster is tried: one unreachable cluster must not leave the
	// others' agents on a certificate that is about to expire.
	tried := 0
	var failed []error
	for _, cl := range cfg.Clusters {
		if only != "" && cl.Name != only {
			continue
		}
		tried++
		ns := stacks.AgentArgs(cfg, cl).Namespace // the namespace the stack deployed the agent in
		if err := copyIdentity(ctx, cfg, host, cl.Name, ns); err != nil {
			fmt.Fprintf(stdout, "cluster %s: secret %s/%s NOT written: %v\n", cl.Name, ns, agents.IdentitySecret, err)
			failed = append(failed, fmt.Errorf("cluster %s: %w", cl.Name, err))
			continue
		}
		fmt.Fprintf(stdout, "cluster %s: secret %s/%s written\n", cl.Name, ns, agents.IdentitySecret)
	}
	switch {
	case tried == 0:
		return fmt.Errorf("--cluster %q: not a cluster of kcp-tmc:clusters", only)
	case len(failed) > 0:
		return fmt.Errorf("%d of %d agent identities not copied (the others were): %w", len(failed), tried, errors.Join(failed...))
	}
	return nil
}

// copyIdentity copies one cluster's agent identity.
func copyIdentity(ctx context.Context, cfg *stacks.Config, host *rest.Config, cluster, agentNamespace string) error {
	kc, ok := cfg.ClusterKubeconfigs[cluster]
	if !ok {
		return fmt.Errorf("no kubeconfig in kcp-tmc:clusterKubeconfigs")
	}
	target, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
	if err != nil {
		return fmt.Errorf("kcp-tmc:clusterKubeconfigs[%s]: %w", cluster, err)
	}
	return ops.CopyAgentIdentity(ctx, ops.IdentityCopy{Cluster: cluster, Host: host, Namespace: cfg.Namespace,
		Target: target, AgentNamespace: agentNamespace})
}
