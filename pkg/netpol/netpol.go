// Package netpol writes the NetworkPolicies every kcp-tmc workload gets:
// one allow-<component> policy per workload on top of the namespace's
// default-deny, naming exactly the connections it needs.
package netpol

import (
	"fmt"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// MonitoringNamespace is where Prometheus runs (the monitoring component's
// default): every component's policies let it scrape from there.
const MonitoringNamespace = "monitoring"

// Flow is one allowed connection: pods with these labels (nil = any pod in
// the namespace; Namespace selects another namespace by name, "*" any), or
// the addresses in CIDRs (traffic from outside the cluster), on these TCP
// ports (none: every port).
type Flow struct {
	Pods      map[string]string
	Namespace string
	CIDRs     []string
	Ports     []int
}

// Given is whether f names any peer or port: the zero Flow is "none" where
// a flow is optional (an unset field), not "every pod of the namespace".
func (f Flow) Given() bool {
	return f.Pods != nil || f.Namespace != "" || f.CIDRs != nil || f.Ports != nil
}

// Anywhere is every IPv4 and IPv6 address, for a peer whose address the
// stack cannot know (the Kubernetes API's, an object store, an OIDC
// issuer, a load balancer's clients): an IPv4-only block would cut an
// IPv6 or dual-stack cluster's pods off from it.
func Anywhere(ports ...int) Flow {
	return Flow{CIDRs: []string{"0.0.0.0/0", "::/0"}, Ports: ports}
}

// KubernetesAPIPorts are the API server's: 443 (its Service), 6443 (the
// endpoints that address is translated to, which most CNIs match).
var KubernetesAPIPorts = []int{443, 6443}

// NewAllowPolicy (NetworkPolicy allow-<component>, Pulumi name urnName) lets
// the pods selected by selector accept ingress from and open egress to
// exactly the given flows; everything else stays denied by the namespace's
// default-deny policy. A Job whose pod starts in the same up depends on the
// policy it returns: before it exists, the pod's traffic is denied.
func NewAllowPolicy(ctx *pulumi.Context, urnName, namespace, component string, selector map[string]string, ingress, egress []Flow, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	return NewAnnotatedAllowPolicy(ctx, urnName, namespace, component, selector, ingress, egress, nil, opts...)
}

// NewAnnotatedAllowPolicy is NewAllowPolicy with annotations on the policy.
func NewAnnotatedAllowPolicy(ctx *pulumi.Context, urnName, namespace, component string, selector map[string]string, ingress, egress []Flow, annotations map[string]string, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	var in networkingv1.NetworkPolicyIngressRuleArray
	for _, f := range ingress {
		in = append(in, networkingv1.NetworkPolicyIngressRuleArgs{From: f.peers(), Ports: f.ports()})
	}
	var out networkingv1.NetworkPolicyEgressRuleArray
	for _, f := range egress {
		out = append(out, networkingv1.NetworkPolicyEgressRuleArgs{To: f.peers(), Ports: f.ports()})
	}
	var types []string
	if len(in) > 0 {
		types = append(types, "Ingress")
	}
	if len(out) > 0 {
		types = append(types, "Egress")
	}
	name := "allow-" + component
	p, err := networkingv1.NewNetworkPolicy(ctx, urnName, &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String(namespace),
			Labels:      pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "app.kubernetes.io/managed-by": pulumi.String("pulumi")},
			Annotations: pulumi.ToStringMap(annotations)},
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
			PolicyTypes: pulumi.ToStringArray(types),
			Ingress:     in,
			Egress:      out,
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("NetworkPolicy %s: %w", name, err)
	}
	return p, nil
}

func (f Flow) peers() networkingv1.NetworkPolicyPeerArray {
	if len(f.CIDRs) > 0 {
		var peers networkingv1.NetworkPolicyPeerArray
		for _, cidr := range f.CIDRs {
			peers = append(peers, networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{Cidr: pulumi.String(cidr)}})
		}
		return peers
	}
	peer := networkingv1.NetworkPolicyPeerArgs{}
	if f.Pods != nil {
		peer.PodSelector = metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(f.Pods)}
	}
	switch f.Namespace {
	case "":
		if f.Pods == nil {
			peer.PodSelector = metav1.LabelSelectorArgs{}
		}
	case "*":
		peer.NamespaceSelector = metav1.LabelSelectorArgs{}
	default:
		peer.NamespaceSelector = metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String(f.Namespace)}}
	}
	return networkingv1.NetworkPolicyPeerArray{peer}
}

func (f Flow) ports() networkingv1.NetworkPolicyPortArray {
	var out networkingv1.NetworkPolicyPortArray
	for _, p := range f.Ports {
		out = append(out, networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(p)})
	}
	return out
}
