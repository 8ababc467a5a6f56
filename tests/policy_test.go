package tests

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	podspec "github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// object is one rendered Kubernetes object: its kind and metadata, the
// pod spec of a pod-creating kind, and the rest decoded by kind where a
// rule needs it. Decoding is strict, so a misspelt field fails the test.
type object struct {
	metav1.TypeMeta
	Meta metav1.ObjectMeta
	pod  *corev1.PodSpec
	raw  []byte
}

func (o object) kind() string { return o.Kind }
func (o object) name() string { return o.Meta.Name }
func (o object) id() string   { return o.kind() + "/" + o.name() }

// podSpec returns the pod spec of any pod-creating object, or nil.
func (o object) podSpec() *corev1.PodSpec { return o.pod }

// parseObject reads one manifest into k8s.io/api types.
func parseObject(t testing.TB, b []byte) object {
	t.Helper()
	var o object
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	o.TypeMeta, o.Meta, o.raw = head.TypeMeta, head.Metadata, b
	if read, ok := podSpecs[o.Kind]; ok {
		pod, err := read(b)
		if err != nil {
			t.Fatalf("%s %s does not decode: %v", o.Kind, o.Meta.Name, err)
		}
		o.pod = pod
	}
	return o
}

// podSpecs read the pod spec of every pod-creating kind, strictly.
var podSpecs = map[string]func([]byte) (*corev1.PodSpec, error){
	"Pod":         podSpecOf(func(x *corev1.Pod) *corev1.PodSpec { return &x.Spec }),
	"Deployment":  podSpecOf(func(x *appsv1.Deployment) *corev1.PodSpec { return &x.Spec.Template.Spec }),
	"StatefulSet": podSpecOf(func(x *appsv1.StatefulSet) *corev1.PodSpec { return &x.Spec.Template.Spec }),
	"DaemonSet":   podSpecOf(func(x *appsv1.DaemonSet) *corev1.PodSpec { return &x.Spec.Template.Spec }),
	"Job":         podSpecOf(func(x *batchv1.Job) *corev1.PodSpec { return &x.Spec.Template.Spec }),
	"CronJob":     podSpecOf(func(x *batchv1.CronJob) *corev1.PodSpec { return &x.Spec.JobTemplate.Spec.Template.Spec }),
}

func podSpecOf[T any](spec func(*T) *corev1.PodSpec) func([]byte) (*corev1.PodSpec, error) {
	return func(b []byte) (*corev1.PodSpec, error) {
		var x T
		if err := yaml.UnmarshalStrict(b, &x); err != nil {
			return nil, err
		}
		return spec(&x), nil
	}
}

// decode reads the whole object as T (a NetworkPolicy, a Role, ...).
func decode[T any](o object) T {
	var x T
	if err := yaml.Unmarshal(o.raw, &x); err != nil {
		panic(fmt.Sprintf("%s: %v", o.id(), err)) // parseObject read it already
	}
	return x
}

// rule is one security rule: check returns a violation per broken item.
// A namespace annotated kcp-tmc.io/policy-exception (with its reason) is
// exempt from the Pod Security rules, for itself and its workloads.
type rule struct {
	name       string
	check      func(o object, all []object) []string
	exceptable bool
}

const policyException = "kcp-tmc.io/policy-exception"

// exception returns the reason o (or its namespace) is exempt, or "".
func exception(o object, all []object) string {
	ns := o.Meta.Namespace
	if o.kind() == "Namespace" {
		ns = o.name()
	}
	for _, n := range all {
		if n.kind() == "Namespace" && n.name() == ns {
			if r, ok := n.Meta.Annotations[policyException]; ok {
				return r
			}
		}
	}
	return ""
}

// policyRules are the security rules of docs/security.md, the intent of
// PodSecurityPolicy and more, checked on every object of every stack.
var policyRules = []rule{
	{"namespaces enforce, audit and warn Pod Security `restricted` at a pinned version", func(o object, _ []object) []string {
		if o.kind() != "Namespace" {
			return nil
		}
		var v []string
		labels := o.Meta.Labels
		for _, mode := range []string{"enforce", "audit", "warn"} {
			if labels["pod-security.kubernetes.io/"+mode] != "restricted" {
				v = append(v, mode+" is not restricted")
			}
			if ver := labels["pod-security.kubernetes.io/"+mode+"-version"]; !strings.HasPrefix(ver, "v1.") {
				v = append(v, mode+"-version "+ver+" is not pinned")
			}
		}
		return v
	}, true},
	{"every namespace has a default-deny NetworkPolicy for ingress and egress", func(o object, all []object) []string {
		if o.kind() != "Namespace" {
			return nil
		}
		for _, p := range all {
			if p.kind() != "NetworkPolicy" || p.Meta.Namespace != o.name() {
				continue
			}
			if spec := decode[networkingv1.NetworkPolicy](p).Spec; len(spec.PodSelector.MatchLabels) == 0 && len(spec.PodSelector.MatchExpressions) == 0 &&
				len(spec.PolicyTypes) == 2 && spec.Ingress == nil {
				return nil
			}
		}
		return []string{"no default-deny policy"}
	}, true},
	{"a NetworkPolicy rule open to every IPv4 address is open to every IPv6 one (IPv6 and dual-stack clusters)", func(o object, _ []object) []string {
		if o.kind() != "NetworkPolicy" {
			return nil
		}
		var v []string
		check := func(dir string, i int, peers []networkingv1.NetworkPolicyPeer) {
			var v4, v6 bool
			for _, p := range peers {
				if p.IPBlock != nil {
					v4 = v4 || p.IPBlock.CIDR == "0.0.0.0/0"
					v6 = v6 || p.IPBlock.CIDR == "::/0"
				}
			}
			if v4 && !v6 {
				v = append(v, fmt.Sprintf("%s rule %d allows 0.0.0.0/0 without ::/0", dir, i))
			}
		}
		spec := decode[networkingv1.NetworkPolicy](o).Spec
		for i, r := range spec.Ingress {
			check("ingress", i, r.From)
		}
		for i, r := range spec.Egress {
			check("egress", i, r.To)
		}
		return v
	}, false},
	{"containers run hardened: non-root, no escalation, no capabilities, RuntimeDefault seccomp, read-only root", func(o object, _ []object) []string {
		pod := o.podSpec()
		if pod == nil {
			return nil
		}
		var v []string
		psc := pod.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if psc.FSGroup == nil || *psc.FSGroup == 0 {
			v = append(v, "pod fsGroup unset or 0")
		}
		for _, c := range append(slices.Clone(pod.Containers), pod.InitContainers...) {
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			// A container's own setting wins over the pod's.
			runAsNonRoot, runAsUser, seccomp := sc.RunAsNonRoot, sc.RunAsUser, sc.SeccompProfile
			if runAsNonRoot == nil {
				runAsNonRoot = psc.RunAsNonRoot
			}
			if runAsUser == nil {
				runAsUser = psc.RunAsUser
			}
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			caps := sc.Capabilities
			checks := map[string]bool{
				"runAsNonRoot":                   runAsNonRoot != nil && *runAsNonRoot,
				"runAsUser non-zero":             runAsUser != nil && *runAsUser != 0,
				"allowPrivilegeEscalation false": sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
				"capabilities drop ALL":          caps != nil && slices.Contains(caps.Drop, "ALL") && caps.Add == nil,
				"seccomp RuntimeDefault":         seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault,
				"readOnlyRootFilesystem":         sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
				"not privileged":                 sc.Privileged == nil || !*sc.Privileged,
			}
			for what, ok := range checks {
				if !ok {
					v = append(v, "container "+c.Name+": "+what)
				}
			}
		}
		sort.Strings(v)
		return v
	}, true},
	{"pods use only the allowed volume types and no host namespaces", func(o object, _ []object) []string {
		pod := o.podSpec()
		if pod == nil {
			return nil
		}
		var v []string
		for _, vol := range pod.Volumes {
			// The volume source's one set field, by its JSON name.
			src := map[string]any{}
			if err := yaml.Unmarshal(must(yaml.Marshal(vol.VolumeSource)), &src); err != nil {
				v = append(v, fmt.Sprintf("volume %s: %v", vol.Name, err))
			}
			for k := range src {
				if !slices.Contains(podspec.AllowedVolumeTypes, k) {
					v = append(v, fmt.Sprintf("volume %s is %s", vol.Name, k))
				}
			}
		}
		for host, on := range map[string]bool{"hostNetwork": pod.HostNetwork, "hostPID": pod.HostPID, "hostIPC": pod.HostIPC} {
			if on {
				v = append(v, host)
			}
		}
		return v
	}, true},
	{"pods run as their own ServiceAccount without an API token", func(o object, _ []object) []string {
		pod := o.podSpec()
		if pod == nil {
			return nil
		}
		var v []string
		if sa := pod.ServiceAccountName; sa == "" || sa == "default" {
			v = append(v, "runs as the default ServiceAccount")
		}
		// A workload that calls the API says so with this annotation.
		if (pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken) && o.Meta.Annotations[podspec.NeedsAPIToken] != "true" {
			v = append(v, "automounts a service-account token")
		}
		return v
	}, false},
	{"containers have pinned images and resource requests and limits", func(o object, _ []object) []string {
		pod := o.podSpec()
		if pod == nil {
			return nil
		}
		var v []string
		for _, c := range append(slices.Clone(pod.Containers), pod.InitContainers...) {
			if i := strings.LastIndex(c.Image, ":"); i < strings.LastIndex(c.Image, "/") || strings.HasSuffix(c.Image, ":latest") {
				v = append(v, "container "+c.Name+": image "+c.Image+" is not pinned")
			}
			for kind, list := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
					if _, ok := list[res]; !ok {
						v = append(v, "container "+c.Name+": no "+string(res)+" "+kind)
					}
				}
			}
		}
		sort.Strings(v)
		return v
	}, false},
	{"RBAC rules name their verbs, resources and API groups (no wildcards)", func(o object, _ []object) []string {
		if o.kind() != "Role" && o.kind() != "ClusterRole" {
			return nil
		}
		var v []string
		for i, r := range decode[rbacv1.ClusterRole](o).Rules { // a Role's rules read the same
			for field, values := range map[string][]string{"verbs": r.Verbs, "resources": r.Resources, "apiGroups": r.APIGroups} {
				if slices.Contains(values, "*") {
					v = append(v, fmt.Sprintf("rule %d: %s has *", i, field))
				}
			}
		}
		sort.Strings(v)
		return v
	}, false},
	{"kcp's Ingress passes TLS through (client certificates reach kcp) unless terminate mode is explicit", func(o object, _ []object) []string {
		if o.kind() != "Ingress" {
			return nil
		}
		a := o.Meta.Annotations
		if a["nginx.ingress.kubernetes.io/ssl-passthrough"] == "true" && a["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS" {
			return nil
		}
		return []string{"TLS is terminated in front of kcp"}
	}, false},
}

// TestSecurityPolicy walks every object of every stack through every rule.
func TestSecurityPolicy(t *testing.T) {
	for _, stack := range judgedStacks {
		t.Run(stack, func(t *testing.T) {
			objs := readObjects(t, stackManifests(t, stack, "kcp-"+stack))
			pods := 0
			for _, o := range objs {
				if o.podSpec() != nil {
					pods++
				}
			}
			if pods == 0 {
				t.Fatal("no workloads found: the policy would pass vacuously")
			}
			for _, r := range policyRules {
				for _, o := range objs {
					for _, violation := range r.check(o, objs) {
						if why := exception(o, objs); r.exceptable && why != "" {
							t.Logf("exception (%s): %s: %s: %s", why, o.id(), r.name, violation)
							continue
						}
						t.Errorf("%s: %s: %s", o.id(), r.name, violation)
					}
				}
			}
		})
	}
}

// TestSecurityPolicyCatchesViolations feeds each rule an object that breaks it.
func TestSecurityPolicyCatchesViolations(t *testing.T) {
	bad := []string{
		`{kind: Namespace, metadata: {name: x, labels: {pod-security.kubernetes.io/enforce: baseline}}}`,
		`{kind: Namespace, metadata: {name: y, labels: {}}}`,
		`{kind: Deployment, metadata: {name: d}, spec: {template: {spec: {securityContext: {fsGroup: 1}, containers: [{name: c, image: "a:1", securityContext: {runAsNonRoot: true, runAsUser: 1, allowPrivilegeEscalation: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}, readOnlyRootFilesystem: true}}]}}}}`,
		`{kind: StatefulSet, metadata: {name: s}, spec: {template: {spec: {volumes: [{name: h, hostPath: {path: /}}]}}}}`,
		`{kind: CronJob, metadata: {name: j}, spec: {jobTemplate: {spec: {template: {spec: {serviceAccountName: default}}}}}}`,
		`{kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: "nginx"}]}}`,
		`{kind: ClusterRole, metadata: {name: r}, rules: [{apiGroups: [""], resources: ["*"], verbs: [get]}]}`,
		`{kind: Ingress, metadata: {name: i, annotations: {nginx.ingress.kubernetes.io/backend-protocol: GRPC}}}`,
		`{kind: NetworkPolicy, metadata: {name: n}, spec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443}]}]}}`,
	}
	var objs []object
	for _, b := range bad {
		objs = append(objs, parseObject(t, []byte(b)))
	}
	for _, r := range policyRules {
		caught := false
		for _, o := range objs {
			if len(r.check(o, objs)) > 0 {
				caught = true
			}
		}
		if !caught {
			t.Errorf("rule %q caught none of the known-bad objects", r.name)
		}
	}
}

func readObjects(t *testing.T, dir string) []object {
	t.Helper()
	var out []object
	for _, f := range yamlFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseObject(t, b))
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
