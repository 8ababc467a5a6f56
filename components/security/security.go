// Package security is the one place the hardening every kcp-tmc workload
// shares is defined: the Pod Security Standards `restricted` profile (the
// intent of the removed PodSecurityPolicy, enforced today by Pod Security
// Admission), a read-only root filesystem, and the volume types allowed.
// Components build pod specs through it instead of copying fields.
package security

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// UID and GID every container runs as: non-root, above 10000 so it never
// collides with a node's users (kube-score's threshold).
const (
	UID = 65532
	GID = 65532
)

// MonitoringNamespace is where Prometheus runs (the monitoring component's
// default): every component's policies let it scrape from there.
const MonitoringNamespace = "monitoring"

// AllowedVolumeTypes are the volume sources a pod may use: none reaches the
// node's filesystem or a network share.
var AllowedVolumeTypes = []string{"configMap", "emptyDir", "projected", "secret", "downwardAPI", "persistentVolumeClaim"}

// PodSecurityContext runs every container of the pod as UID/GID with files
// group-owned by GID, under the runtime's default seccomp profile.
func PodSecurityContext() *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:        pulumi.Bool(true),
		RunAsUser:           pulumi.Int(UID),
		RunAsGroup:          pulumi.Int(GID),
		FsGroup:             pulumi.Int(GID),
		FsGroupChangePolicy: pulumi.String("OnRootMismatch"),
		SeccompProfile:      &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// ContainerSecurityContext is `restricted` plus a read-only root filesystem:
// writable paths must be emptyDir or persistent volumes.
func ContainerSecurityContext() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		RunAsNonRoot:             pulumi.Bool(true),
		RunAsUser:                pulumi.Int(UID),
		RunAsGroup:               pulumi.Int(GID),
		AllowPrivilegeEscalation: pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		Privileged:               pulumi.Bool(false),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
		SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// SecretVolume mounts a Secret read-only with owner-only file modes.
func SecretVolume(name, secret string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: pulumi.String(secret), DefaultMode: pulumi.Int(0o440),
	}}
}

// EmptyDir is a size-bounded scratch volume for a writable path.
func EmptyDir(name, sizeLimit string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(sizeLimit)}}
}

// ConfigMapVolume mounts a ConfigMap read-only.
func ConfigMapVolume(name, configMap string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
		Name: pulumi.String(configMap), DefaultMode: pulumi.Int(0o444),
	}}
}

// SecretItemsVolume mounts only the named keys of a Secret (e.g. a
// certificate without its private key).
func SecretItemsVolume(name, secret string, keys ...string) corev1.VolumeArgs {
	items := corev1.KeyToPathArray{}
	for _, k := range keys {
		items = append(items, corev1.KeyToPathArgs{Key: pulumi.String(k), Path: pulumi.String(k)})
	}
	return corev1.VolumeArgs{Name: pulumi.String(name), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: pulumi.String(secret), DefaultMode: pulumi.Int(0o440), Items: items,
	}}
}

// Flow is one allowed connection: pods with these labels (nil = any pod in
// the namespace; Namespace selects another namespace by name, "*" any), or
// the addresses in CIDR (traffic from outside the cluster), on these TCP ports.
type Flow struct {
	Pods      map[string]string
	Namespace string
	CIDR      string
	Ports     []int
}

// NewAllowPolicy (NetworkPolicy allow-<component>, Pulumi name urnName) lets
// the pods selected by selector accept ingress from and open egress to
// exactly the given flows; everything else stays denied by the namespace's
// default-deny policy.
func NewAllowPolicy(ctx *pulumi.Context, urnName, namespace, component string, selector map[string]string, ingress, egress []Flow, opts ...pulumi.ResourceOption) error {
	return NewAnnotatedAllowPolicy(ctx, urnName, namespace, component, selector, ingress, egress, nil, opts...)
}

// NewAnnotatedAllowPolicy is NewAllowPolicy with annotations on the policy.
func NewAnnotatedAllowPolicy(ctx *pulumi.Context, urnName, namespace, component string, selector map[string]string, ingress, egress []Flow, annotations map[string]string, opts ...pulumi.ResourceOption) error {
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
	_, err := networkingv1.NewNetworkPolicy(ctx, urnName, &networkingv1.NetworkPolicyArgs{
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
		return fmt.Errorf("NetworkPolicy %s: %w", name, err)
	}
	return nil
}

func (f Flow) peers() networkingv1.NetworkPolicyPeerArray {
	if f.CIDR != "" {
		return networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{Cidr: pulumi.String(f.CIDR)}}}
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
