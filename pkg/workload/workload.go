// Package workload holds the pod-spec pieces kcp and etcd share: labels,
// resources, zone/host spreading and disruption budgets, so placement rules
// are written once.
package workload

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Spreading modes.
const (
	SpreadNone     = "none"
	SpreadHostname = "hostname"
	SpreadZone     = "zone"
)

// Topology keys.
const (
	ZoneKey     = "topology.kubernetes.io/zone"
	HostnameKey = "kubernetes.io/hostname"
)

// Resources are a container's requests and limits, ephemeral storage
// included (kubelets evict pods that overrun an unset ephemeral-storage
// budget). It is also the shape of the stack's resources keys.
type Resources struct {
	// Requests are what the scheduler reserves; each at most its limit.
	Requests ResourceList `json:"requests"`
	// Limits are the most the container may use.
	Limits ResourceList `json:"limits"`
}

// ResourceList is one side of Resources.
type ResourceList struct {
	// CPU is a CPU quantity such as `500m` or `2`.
	CPU string `json:"cpu"`
	// Memory is a memory quantity in Ki, Mi, Gi or Ti, such as `512Mi`.
	Memory string `json:"memory"`
	// EphemeralStorage is the container's scratch space and logs, in Ki,
	// Mi, Gi or Ti (default: the component's budget).
	EphemeralStorage string `json:"ephemeralStorage,omitempty"`
}

// WithEphemeral fills an unset ephemeral-storage request and limit: each
// component's own budget.
func (r Resources) WithEphemeral(request, limit string) Resources {
	if r.Requests.EphemeralStorage == "" {
		r.Requests.EphemeralStorage = request
	}
	if r.Limits.EphemeralStorage == "" {
		r.Limits.EphemeralStorage = limit
	}
	return r
}

// Args converts to the Kubernetes type.
func (r Resources) Args() *corev1.ResourceRequirementsArgs {
	list := func(l ResourceList) pulumi.StringMap {
		return pulumi.StringMap{"cpu": pulumi.String(l.CPU), "memory": pulumi.String(l.Memory), "ephemeral-storage": pulumi.String(l.EphemeralStorage)}
	}
	return &corev1.ResourceRequirementsArgs{Requests: list(r.Requests), Limits: list(r.Limits)}
}

// Labels are the selector labels of one workload.
func Labels(component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     component,
		"app.kubernetes.io/instance": "kcp-tmc",
	}
}

// Meta is object metadata with the common labels, and extra ones (such as
// the labels a Prometheus operator selects by).
func Meta(name, namespace, component string, extra ...map[string]string) *metav1.ObjectMetaArgs {
	labels := Labels(component)
	labels["app.kubernetes.io/part-of"] = "kcp-tmc"
	labels["app.kubernetes.io/managed-by"] = "pulumi"
	for _, e := range extra {
		maps.Copy(labels, e)
	}
	return &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String(namespace), Labels: pulumi.ToStringMap(labels)}
}

// Spread says how replicas are kept apart.
type Spread struct {
	// Mode: SpreadZone (one replica per zone, hard), SpreadHostname (one per
	// node, hard) or SpreadNone (best effort).
	Mode string
	// Zones restricts scheduling to these zones (node affinity with a list:
	// a nodeSelector cannot name several zones).
	Zones []string
}

// Affinity builds node affinity to the zones and pod anti-affinity for the mode.
// A preferred per-node rule is always present, so even zone-spread replicas
// avoid sharing a node when a zone has several.
func Affinity(selector map[string]string, s Spread) *corev1.AffinityArgs {
	sel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)}
	anti := &corev1.PodAntiAffinityArgs{
		PreferredDuringSchedulingIgnoredDuringExecution: corev1.WeightedPodAffinityTermArray{corev1.WeightedPodAffinityTermArgs{
			Weight:          pulumi.Int(100),
			PodAffinityTerm: corev1.PodAffinityTermArgs{LabelSelector: sel, TopologyKey: pulumi.String(HostnameKey)},
		}},
	}
	switch s.Mode {
	case SpreadZone, SpreadHostname:
		key := HostnameKey
		if s.Mode == SpreadZone {
			key = ZoneKey
		}
		anti.RequiredDuringSchedulingIgnoredDuringExecution = corev1.PodAffinityTermArray{
			corev1.PodAffinityTermArgs{LabelSelector: sel, TopologyKey: pulumi.String(key)},
		}
	}
	aff := &corev1.AffinityArgs{PodAntiAffinity: anti}
	if len(s.Zones) > 0 {
		aff.NodeAffinity = &corev1.NodeAffinityArgs{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelectorArgs{
				NodeSelectorTerms: corev1.NodeSelectorTermArray{corev1.NodeSelectorTermArgs{
					MatchExpressions: corev1.NodeSelectorRequirementArray{corev1.NodeSelectorRequirementArgs{
						Key: pulumi.String(ZoneKey), Operator: pulumi.String("In"), Values: pulumi.ToStringArray(s.Zones),
					}},
				}},
			},
		}
	}
	return aff
}

// TopologySpread keeps replicas balanced across zones: strictly in zone
// mode, best effort otherwise.
func TopologySpread(selector map[string]string, s Spread) corev1.TopologySpreadConstraintArray {
	when := "ScheduleAnyway"
	if s.Mode == SpreadZone {
		when = "DoNotSchedule"
	}
	return corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
		MaxSkew:           pulumi.Int(1),
		TopologyKey:       pulumi.String(ZoneKey),
		WhenUnsatisfiable: pulumi.String(when),
		LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
	}}
}

// NewPDB allows at most one replica of the workload to be disrupted at once.
func NewPDB(ctx *pulumi.Context, name, namespace, component string, opts ...pulumi.ResourceOption) error {
	_, err := policyv1.NewPodDisruptionBudget(ctx, name, &policyv1.PodDisruptionBudgetArgs{
		Metadata: Meta(component, namespace, component),
		Spec: &policyv1.PodDisruptionBudgetSpecArgs{
			MaxUnavailable: pulumi.Int(1),
			Selector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(Labels(component))},
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("PodDisruptionBudget %s: %w", component, err)
	}
	return nil
}

// Validate checks the quantities under fld as the stack spells them
// (requests.cpu, limits.memory, …): positive, memory in binary units, and
// each request at most its limit.
func (r Resources) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, pair := range []struct {
		name, req, lim string
		binary         bool
	}{{"cpu", r.Requests.CPU, r.Limits.CPU, false}, {"memory", r.Requests.Memory, r.Limits.Memory, true},
		{"ephemeralStorage", r.Requests.EphemeralStorage, r.Limits.EphemeralStorage, true}} {
		req, reqErr := quantity(fld.Child("requests", pair.name), pair.req, pair.binary)
		lim, limErr := quantity(fld.Child("limits", pair.name), pair.lim, pair.binary)
		errs = append(append(errs, reqErr...), limErr...)
		if reqErr == nil && limErr == nil && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(fld.Child("requests", pair.name), pair.req, "at most limits."+pair.name+" ("+pair.lim+")"))
		}
	}
	return errs
}

// quantity parses a positive Kubernetes quantity; memory and storage must use
// binary suffixes (Ki…Ei), since "512M" and "2G" are usually meant as Mi/Gi.
func quantity(fld *field.Path, s string, binary bool) (resource.Quantity, field.ErrorList) {
	q, err := resource.ParseQuantity(s)
	// CPU in cores or millicores only: "1Gi", "2k" or "1e3" cores parse, but
	// no pod asking for them would ever be scheduled.
	cores := strings.TrimSuffix(s, "m")
	plainCPU := strings.Trim(cores, "0123456789.") == ""
	switch {
	case err == nil && q.Sign() > 0 && binary && q.Format == resource.BinarySI:
		return q, nil
	case err == nil && q.Sign() > 0 && !binary && plainCPU:
		return q, nil
	case binary:
		return q, field.ErrorList{field.Invalid(fld, s, `a positive quantity in Ki, Mi, Gi or Ti such as "512Mi" ("GB" and "G" are not accepted)`)}
	default:
		return q, field.ErrorList{field.Invalid(fld, s, `a positive CPU quantity such as "500m" or "2"`)}
	}
}

// Validate checks the spreading mode under fld (the stack's antiAffinity
// key): zone mode places one of replicas per zone, so it needs that many.
func (s Spread) Validate(fld *field.Path, replicas int) field.ErrorList {
	if !slices.Contains([]string{SpreadNone, SpreadHostname, SpreadZone}, s.Mode) {
		return field.ErrorList{field.NotSupported(fld, s.Mode, []string{SpreadNone, SpreadHostname, SpreadZone})}
	}
	if s.Mode == SpreadZone && len(s.Zones) < replicas {
		return field.ErrorList{field.Invalid(fld, s.Mode, fmt.Sprintf("at least %d entries in zones for one replica per zone (zones has %d)", replicas, len(s.Zones)))}
	}
	return nil
}
