package etcd

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

const (
	jobType  = "kubernetes:batch/v1:Job"
	roleType = "kubernetes:rbac.authorization.k8s.io/v1:Role"
)

// rolloutEnv is the rollout Job's environment, by name.
func rolloutEnv(t *testing.T, rec *mocktest.Recorder) map[string]string {
	t.Helper()
	job := rec.Object(t, jobType, rolloutJob(Name))
	env := map[string]string{}
	for _, e := range mocktest.List(mocktest.Dig(job, "spec", "template", "spec", "containers", 0, "env")) {
		env[mocktest.Dig(e, "name").(string)] = mocktest.Dig(e, "value").(string)
	}
	return env
}

// TestRolloutJob: the StatefulSet restarts nothing itself (OnDelete) and
// is not awaited; the rollout Job comes after it, is awaited for as long
// as it may take, is replaced while not complete (a rollout a down member
// stopped runs again at the next up), and may get and delete the members'
// pods and get the StatefulSet — nothing else.
func TestRolloutJob(t *testing.T) {
	const npType = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	a := baseArgs()
	a.Replicas = 3
	rec := run(t, a)
	sts := rec.Object(t, stsType, Name)
	if got := mocktest.Dig(sts, "spec", "updateStrategy", "type"); got != "OnDelete" {
		t.Errorf("StatefulSet updateStrategy %v, want OnDelete: its own rolling update restarts etcd-2 while etcd-0 is down", got)
	}
	if got := mocktest.Dig(sts, "metadata", "annotations", workload.SkipAwait); got != "true" {
		t.Errorf("StatefulSet skipAwait = %v: the provider's wait (every replica Ready) would fail an up with a member down before the rollout ran", got)
	}

	res := rec.Named(t, jobType, "etcd-rollout")
	if !slices.ContainsFunc(res.DependsOn, func(urn string) bool { return strings.HasSuffix(urn, stsType+"::etcd") }) {
		t.Errorf("the rollout Job does not wait for the StatefulSet: depends on %v", res.DependsOn)
	}
	if !slices.ContainsFunc(res.DependsOn, func(urn string) bool { return strings.HasSuffix(urn, npType+"::etcd-rollout-netpol") }) {
		t.Errorf("the rollout Job does not wait for its NetworkPolicy (its pod's kubectl is denied the API before it): depends on %v", res.DependsOn)
	}
	job := res.Input()
	deadline := 4*RolloutMemberWait + 2*time.Minute
	if got := mocktest.Dig(job, "spec", "activeDeadlineSeconds"); got != float64(deadline.Seconds()) {
		t.Errorf("activeDeadlineSeconds = %v, want %v (a wait per member and one more)", got, deadline.Seconds())
	}
	for k, want := range map[string]string{
		workload.ReplaceUnready: "true",
		workload.TimeoutSeconds: strconv.Itoa(int((deadline + time.Minute).Seconds())),
		workload.NeedsAPIToken:  "true",
	} {
		if got := mocktest.Dig(job, "metadata", "annotations", k); got != want {
			t.Errorf("rollout Job annotation %s = %v, want %s", k, got, want)
		}
	}
	// The script has waited: its failure ends the Job and the up at once
	// (a second pod would double the wait). A podFailurePolicy would do
	// it too, but the provider's await waits out its timeout on a Job it
	// failed.
	if got := mocktest.Dig(job, "spec", "backoffLimit"); got != float64(0) {
		t.Errorf("backoffLimit %v, want 0", got)
	}
	if got := mocktest.Dig(job, "spec", "podFailurePolicy"); got != nil {
		t.Errorf("podFailurePolicy %v: the provider's await would not see the Job fail", got)
	}
	c := mocktest.Dig(job, "spec", "template", "spec", "containers", 0)
	if got := mocktest.Dig(c, "image"); got != DefaultJoinImage {
		t.Errorf("rollout image %v, want etcd.joinImage %s", got, DefaultJoinImage)
	}
	if cmd := mocktest.Strings(mocktest.Dig(c, "command")); len(cmd) != 4 || cmd[2] != rolloutScript {
		t.Errorf("rollout command %q does not run scripts/etcd-rollout.sh", cmd)
	}
	env := rolloutEnv(t, rec)
	for k, want := range map[string]string{"NAMESPACE": "kcp", "STATEFULSET": "etcd", "REPLICAS": "3", "WAIT": "300", "JOIN_IMAGE": DefaultJoinImage} {
		if env[k] != want {
			t.Errorf("rollout env %s = %q, want %q", k, env[k], want)
		}
	}

	role := rec.Object(t, roleType, rolloutJob(Name))
	want := []any{
		map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get", "delete"},
			"resourceNames": []any{"etcd-0", "etcd-1", "etcd-2", "etcd-3", "etcd-4", "etcd-5", "etcd-6"}},
		map[string]any{"apiGroups": []any{"apps"}, "resources": []any{"statefulsets"}, "verbs": []any{"get"}, "resourceNames": []any{"etcd"}},
	}
	if got := mocktest.Dig(role, "rules"); !reflect.DeepEqual(got, want) {
		t.Errorf("rollout Role rules\n%v\nwant\n%v", got, want)
	}
}

// TestRolloutRunsWhenTheTemplateChanges: the Job's spec holds a digest of
// the pod template and the count, so an up that changes either replaces
// it and it runs; one that changes neither (a resize: the claims) leaves
// it alone.
func TestRolloutRunsWhenTheTemplateChanges(t *testing.T) {
	base := baseArgs()
	base.Replicas = 3
	before := rolloutEnv(t, run(t, base))
	tests := []struct {
		name         string
		change       func(*Args)
		template     bool // TEMPLATE_REVISION changes
		replicasSeen string
	}{
		{"resources", func(a *Args) { a.Resources.Requests.CPU = "2" }, true, "3"},
		{"version", func(a *Args) { a.Version = "v3.5.34" }, true, "3"},
		{"joinImage", func(a *Args) { a.JoinImage = "registry.example.com/etcd-tools:1" }, true, "3"},
		{"replicas", func(a *Args) { a.Replicas = 5 }, false, "5"},
		{"storageSize", func(a *Args) { a.StorageSize = "40Gi" }, false, "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base
			tt.change(&a)
			after := rolloutEnv(t, run(t, a))
			if changed := after["TEMPLATE_REVISION"] != before["TEMPLATE_REVISION"]; changed != tt.template {
				t.Errorf("TEMPLATE_REVISION %s → %s: changed %v, want %v", before["TEMPLATE_REVISION"], after["TEMPLATE_REVISION"], changed, tt.template)
			}
			if after["REPLICAS"] != tt.replicasSeen {
				t.Errorf("REPLICAS = %s, want %s", after["REPLICAS"], tt.replicasSeen)
			}
			if after["TEMPLATE_REVISION"] == "" {
				t.Error("no TEMPLATE_REVISION")
			}
		})
	}
}

func TestWithoutNulls(t *testing.T) {
	in := map[string]any{"a": nil, "b": map[string]any{"c": nil, "d": 1.0}, "e": []any{map[string]any{"f": nil, "g": "x"}}}
	want := map[string]any{"b": map[string]any{"d": 1.0}, "e": []any{map[string]any{"g": "x"}}}
	if got := withoutNulls(in); !reflect.DeepEqual(got, want) {
		t.Errorf("withoutNulls = %v, want %v", got, want)
	}
}
