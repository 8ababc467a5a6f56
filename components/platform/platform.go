// Package platform creates the namespace kcp runs in, locked down before any
// workload arrives: Pod Security Admission enforces the `restricted` standard
// at a pinned version, and a default-deny NetworkPolicy blocks all traffic
// that a later component does not explicitly allow (DNS egress excepted).
package platform

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/mod/semver"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:platform:Platform"

// DefaultPodSecurityVersion is the Pod Security Standards version enforced
// when Args.PodSecurityVersion is empty.
const DefaultPodSecurityVersion = "v1.34"

// Pod Security Admission label keys (pod-security.kubernetes.io/<mode>[-version]).
var psaModes = []string{"enforce", "audit", "warn"}

// Args configures the platform.
type Args struct {
	// Namespace is the name of the namespace to create (required).
	Namespace string
	// PodSecurityVersion pins the `restricted` standard's version (default DefaultPodSecurityVersion).
	PodSecurityVersion string
	// Labels are added to the namespace (e.g. the environment).
	Labels map[string]string
	// DenyDNS drops the DNS egress exception from the default-deny policy.
	DenyDNS bool
	// RetainOnDelete keeps the namespace (and the etcd volumes claimed in it)
	// when the stack is destroyed; stacks set it outside dev.
	RetainOnDelete bool
	// EnforceLevel lowers what Pod Security Admission enforces and warns
	// about (audit stays restricted) for a workload that cannot be restricted; it
	// requires ExceptionReason, recorded in the PolicyException annotation.
	EnforceLevel    string
	ExceptionReason string
}

// PolicyException annotates a namespace that cannot meet kcp-tmc's security
// rules, with the reason; the policy test reports it instead of failing.
const PolicyException = "kcp-tmc.io/policy-exception"

// Platform is the component: the namespace and its baseline policies.
type Platform struct {
	pulumi.ResourceState

	// Namespace is the created namespace's name.
	Namespace pulumi.StringOutput `pulumi:"namespace"`
}

// WithDefaults returns a copy of a with every unset optional field defaulted.
func (a Args) WithDefaults() Args {
	component.Default(&a.PodSecurityVersion, DefaultPodSecurityVersion)
	component.Default(&a.EnforceLevel, "restricted")
	return a
}

// Validate reports every invalid field under fld.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	errs := check.DNSLabel(fld.Child("namespace"), a.Namespace, "a namespace")
	errs = append(errs, ValidatePodSecurityVersion(fld.Child("podSecurityVersion"), a.PodSecurityVersion)...)
	errs = append(errs, check.OneOf(fld.Child("enforceLevel"), a.EnforceLevel, "restricted", "baseline", "privileged")...)
	if a.EnforceLevel != "restricted" && a.ExceptionReason == "" {
		errs = append(errs, field.Required(fld.Child("exceptionReason"), "the reason for enforcing anything below restricted"))
	}
	return errs
}

// ValidatePodSecurityVersion accepts a pinned Pod Security Standards version
// v1.N ("latest" is not pinned).
func ValidatePodSecurityVersion(fld *field.Path, v string) field.ErrorList {
	if semver.IsValid(v) && semver.MajorMinor(v) == v && semver.Major(v) == "v1" {
		return nil
	}
	return field.ErrorList{field.Invalid(fld, v, `a pinned Pod Security Standards version like "`+DefaultPodSecurityVersion+`" ("latest" is not pinned)`)}
}

// NewPlatform registers the component and its children.
func NewPlatform(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Platform, error) {
	args = args.WithDefaults()
	comp := &Platform{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("platform")), opts...); err != nil {
		return nil, err
	}
	child := []pulumi.ResourceOption{pulumi.Parent(comp)}

	nsOpts := child
	if args.RetainOnDelete {
		nsOpts = append(nsOpts, pulumi.RetainOnDelete(true))
	}
	ns, err := corev1.NewNamespace(ctx, name+"-namespace", &corev1.NamespaceArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        pulumi.String(args.Namespace),
			Labels:      pulumi.ToStringMap(NamespaceLabels(args)),
			Annotations: exceptionAnnotation(args),
		},
	}, nsOpts...)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", args.Namespace, err)
	}

	policyOpts := append(child, pulumi.DependsOn([]pulumi.Resource{ns}))
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-default-deny", &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String("default-deny"),
			Namespace: ns.Metadata.Name().Elem(),
			Labels:    pulumi.ToStringMap(commonLabels()),
			// kube-score wants a policy to select some pod in its input; this
			// one selects every pod ({}) and exists before any workload does.
			Annotations: pulumi.StringMap{"kube-score/ignore": pulumi.String("networkpolicy-targets-pod")},
		},
		Spec: defaultDenySpec(!args.DenyDNS),
	}, policyOpts...); err != nil {
		return nil, fmt.Errorf("default-deny NetworkPolicy in %q: %w", args.Namespace, err)
	}

	comp.Namespace = ns.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"namespace": comp.Namespace}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// NamespaceLabels are the labels of the namespace: Pod Security Admission at
// `restricted` for every mode (enforce rejects, audit logs, warn tells the
// client), each pinned to the same version, plus the caller's labels.
func NamespaceLabels(args Args) map[string]string {
	labels := commonLabels()
	for k, v := range args.Labels {
		labels[k] = v
	}
	for _, mode := range psaModes {
		labels["pod-security.kubernetes.io/"+mode] = "restricted"
		labels["pod-security.kubernetes.io/"+mode+"-version"] = args.PodSecurityVersion
	}
	if args.EnforceLevel != "" && args.EnforceLevel != "restricted" {
		// Audit keeps recording every gap to restricted; clients are warned
		// only about what the exception does not cover.
		labels["pod-security.kubernetes.io/enforce"] = args.EnforceLevel
		labels["pod-security.kubernetes.io/warn"] = args.EnforceLevel
	}
	return labels
}

func exceptionAnnotation(a Args) pulumi.StringMap {
	if a.EnforceLevel == "restricted" {
		return nil
	}
	return pulumi.StringMap{PolicyException: pulumi.String(a.ExceptionReason)}
}

func commonLabels() map[string]string {
	return map[string]string{
		"app.kubernetes.io/part-of":    "kcp-tmc",
		"app.kubernetes.io/managed-by": "pulumi",
	}
}

// defaultDenySpec selects every pod and allows no ingress and no egress,
// except (when allowDNS) DNS to the cluster's kube-dns pods.
func defaultDenySpec(allowDNS bool) networkingv1.NetworkPolicySpecArgs {
	spec := networkingv1.NetworkPolicySpecArgs{
		PodSelector: metav1.LabelSelectorArgs{},
		PolicyTypes: pulumi.ToStringArray([]string{"Ingress", "Egress"}),
	}
	if allowDNS {
		spec.Egress = networkingv1.NetworkPolicyEgressRuleArray{networkingv1.NetworkPolicyEgressRuleArgs{
			To: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
				NamespaceSelector: metav1.LabelSelectorArgs{
					MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String("kube-system")},
				},
				PodSelector: metav1.LabelSelectorArgs{
					MatchLabels: pulumi.StringMap{"k8s-app": pulumi.String("kube-dns")},
				},
			}},
			Ports: networkingv1.NetworkPolicyPortArray{
				networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("UDP"), Port: pulumi.Int(53)},
				networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(53)},
			},
		}}
	}
	return spec
}
