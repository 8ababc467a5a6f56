package tests

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/components/security"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return fmt.Sprint(o["kind"]) }
func (o object) name() string { return fmt.Sprint(dig(o, "metadata", "name")) }
func (o object) id() string   { return o.kind() + "/" + o.name() }

func dig(v any, path ...string) any {
	if o, ok := v.(object); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }

// nonZero reports whether v is a number other than 0 (YAML ints or JSON floats).
func nonZero(v any) bool {
	switch n := v.(type) {
	case int:
		return n != 0
	case float64:
		return n != 0
	}
	return false
}

// podSpec returns the pod spec of any pod-creating object, or nil.
func (o object) podSpec() map[string]any {
	var spec any
	switch o.kind() {
	case "Pod":
		spec = o["spec"]
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		spec = dig(o, "spec", "template", "spec")
	case "CronJob":
		spec = dig(o, "spec", "jobTemplate", "spec", "template", "spec")
	}
	m, _ := spec.(map[string]any)
	return m
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
	ns := fmt.Sprint(dig(o, "metadata", "namespace"))
	if o.kind() == "Namespace" {
		ns = o.name()
	}
	for _, n := range all {
		if n.kind() == "Namespace" && n.name() == ns {
			if r, ok := dig(n, "metadata", "annotations", policyException).(string); ok {
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
		labels, _ := dig(o, "metadata", "labels").(map[string]any)
		for _, mode := range []string{"enforce", "audit", "warn"} {
			if labels["pod-security.kubernetes.io/"+mode] != "restricted" {
				v = append(v, mode+" is not restricted")
			}
			if ver := fmt.Sprint(labels["pod-security.kubernetes.io/"+mode+"-version"]); !strings.HasPrefix(ver, "v1.") {
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
			if p.kind() == "NetworkPolicy" && dig(p, "metadata", "namespace") == o.name() &&
				len(dig(p, "spec", "podSelector").(map[string]any)) == 0 && len(list(dig(p, "spec", "policyTypes"))) == 2 &&
				dig(p, "spec", "ingress") == nil {
				return nil
			}
		}
		return []string{"no default-deny policy"}
	}, true},
	{"containers run hardened: non-root, no escalation, no capabilities, RuntimeDefault seccomp, read-only root", func(o object, _ []object) []string {
		pod := o.podSpec()
		if pod == nil {
			return nil
		}
		var v []string
		psc, _ := pod["securityContext"].(map[string]any)
		if !nonZero(psc["fsGroup"]) {
			v = append(v, "pod fsGroup unset or 0")
		}
		for _, c := range append(list(pod["containers"]), list(pod["initContainers"])...) {
			name := fmt.Sprint(dig(c, "name"))
			sc, _ := dig(c, "securityContext").(map[string]any)
			get := func(k string) any {
				if v, ok := sc[k]; ok {
					return v
				}
				return psc[k]
			}
			checks := map[string]bool{
				"runAsNonRoot":                   get("runAsNonRoot") == true,
				"runAsUser non-zero":             nonZero(get("runAsUser")),
				"allowPrivilegeEscalation false": sc["allowPrivilegeEscalation"] == false,
				"capabilities drop ALL":          slices.Contains(list(dig(sc, "capabilities", "drop")), any("ALL")) && dig(sc, "capabilities", "add") == nil,
				"seccomp RuntimeDefault":         dig(get("seccompProfile"), "type") == "RuntimeDefault",
				"readOnlyRootFilesystem":         sc["readOnlyRootFilesystem"] == true,
				"not privileged":                 sc["privileged"] != true,
			}
			for what, ok := range checks {
				if !ok {
					v = append(v, "container "+name+": "+what)
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
		for _, vol := range list(pod["volumes"]) {
			for k := range vol.(map[string]any) {
				if k != "name" && !slices.Contains(security.AllowedVolumeTypes, k) {
					v = append(v, fmt.Sprintf("volume %v is %s", dig(vol, "name"), k))
				}
			}
		}
		for _, host := range []string{"hostNetwork", "hostPID", "hostIPC"} {
			if pod[host] == true {
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
		if sa := fmt.Sprint(pod["serviceAccountName"]); sa == "" || sa == "<nil>" || sa == "default" {
			v = append(v, "runs as the default ServiceAccount")
		}
		// A workload that calls the API says so with this annotation.
		if pod["automountServiceAccountToken"] != false && dig(o, "metadata", "annotations", "kcp-tmc.io/needs-api-token") != "true" {
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
		for _, c := range append(list(pod["containers"]), list(pod["initContainers"])...) {
			name, image := fmt.Sprint(dig(c, "name")), fmt.Sprint(dig(c, "image"))
			if i := strings.LastIndex(image, ":"); i < strings.LastIndex(image, "/") || strings.HasSuffix(image, ":latest") {
				v = append(v, "container "+name+": image "+image+" is not pinned")
			}
			for _, kind := range []string{"requests", "limits"} {
				for _, res := range []string{"cpu", "memory", "ephemeral-storage"} {
					if dig(c, "resources", kind, res) == nil {
						v = append(v, "container "+name+": no "+res+" "+kind)
					}
				}
			}
		}
		return v
	}, false},
	{"RBAC rules name their verbs, resources and API groups (no wildcards)", func(o object, _ []object) []string {
		if o.kind() != "Role" && o.kind() != "ClusterRole" {
			return nil
		}
		var v []string
		for i, r := range list(o["rules"]) {
			for _, field := range []string{"verbs", "resources", "apiGroups"} {
				if slices.Contains(list(dig(r, field)), any("*")) {
					v = append(v, fmt.Sprintf("rule %d: %s has *", i, field))
				}
			}
		}
		return v
	}, false},
	{"kcp's Ingress passes TLS through (client certificates reach kcp) unless terminate mode is explicit", func(o object, _ []object) []string {
		if o.kind() != "Ingress" {
			return nil
		}
		a, _ := dig(o, "metadata", "annotations").(map[string]any)
		if a["nginx.ingress.kubernetes.io/ssl-passthrough"] == "true" && a["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS" {
			return nil
		}
		return []string{"TLS is terminated in front of kcp"}
	}, false},
}

// TestSecurityPolicy walks every object of every stack through every rule.
func TestSecurityPolicy(t *testing.T) {
	for _, stack := range stacks.Environments {
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

// parseObject decodes into a plain map: yaml.v3 would give nested maps the
// named type too, and the rules walk plain maps.
func parseObject(t *testing.T, b []byte) object {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return object(m)
}
