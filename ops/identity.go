package ops

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
)

var secrets = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// IdentityCopy is one agent identity to copy: from kcp's hosting cluster
// (where cert-manager issued it) to the agent's cluster.
type IdentityCopy struct {
	// Cluster names the physical cluster (kcp-tmc:clusters[].name).
	Cluster string
	// Host is kcp's hosting cluster; Namespace kcp's namespace there.
	Host      *rest.Config
	Namespace string
	// Target is the physical cluster; AgentNamespace the agent's namespace.
	Target         *rest.Config
	AgentNamespace string
}

// CopyAgentIdentity writes the agent's Secret agents.IdentitySecret on its
// cluster from the certificate cert-manager issued in kcp's namespace
// (syncer-client-<cluster>: tls.crt, tls.key) and the CA that verifies kcp
// (kcp-server-ca's ca.crt). It applies server-side, so running it again
// after cert-manager renews the certificate updates the copy in place.
func CopyAgentIdentity(ctx context.Context, c IdentityCopy) error {
	host, err := dynamic.NewForConfig(c.Host)
	if err != nil {
		return fmt.Errorf("hosting cluster client: %w", err)
	}
	read := func(name string, keys ...string) (map[string]string, error) {
		s, err := host.Resource(secrets).Namespace(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("secret %s/%s on kcp's cluster (issued by cert-manager after `kcp-tmc up`): %w", c.Namespace, name, err)
		}
		out := map[string]string{}
		for _, k := range keys {
			v, _, _ := unstructured.NestedString(s.Object, "data", k)
			if v == "" {
				return nil, fmt.Errorf("secret %s/%s has no %s yet (is its Certificate Ready?)", c.Namespace, name, k)
			}
			out[k] = v // already base64, as a Secret's data wants it
		}
		return out, nil
	}
	pair, err := read(tls.SyncerSecretName(c.Cluster), "tls.crt", "tls.key")
	if err != nil {
		return err
	}
	ca, err := read(tls.CAServer, "ca.crt")
	if err != nil {
		return err
	}
	target, err := dynamic.NewForConfig(c.Target)
	if err != nil {
		return fmt.Errorf("cluster %s client: %w", c.Cluster, err)
	}
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata": map[string]any{"name": agents.IdentitySecret, "namespace": c.AgentNamespace,
			"labels": map[string]any{"app.kubernetes.io/name": agents.KindSyncAgent, "app.kubernetes.io/part-of": "kcp-tmc"}},
		"data": map[string]any{"tls.crt": pair["tls.crt"], "tls.key": pair["tls.key"], "ca.crt": ca["ca.crt"]},
	}}
	body, err := secret.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	if _, err := target.Resource(secrets).Namespace(c.AgentNamespace).Patch(ctx, agents.IdentitySecret, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "kcp-tmc-agent-identity", Force: &force}); err != nil {
		return fmt.Errorf("writing secret %s/%s on cluster %s: %w", c.AgentNamespace, agents.IdentitySecret, c.Cluster, err)
	}
	return nil
}
