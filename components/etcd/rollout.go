package etcd

// The rollout Job: the members move onto a new pod template without the
// rollout ever costing etcd its quorum (scripts/etcd-rollout.sh). The
// StatefulSet's own rolling update restarts the highest ordinal first
// whatever the state of the others.

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

//go:embed scripts/etcd-rollout.sh
var rolloutScript string

// RolloutMemberWait is how long the rollout waits for a member to be Ready
// (back from its restart, or down when it began) before it stops: the
// members' startup probe allows a start 5 minutes too.
const RolloutMemberWait = 5 * time.Minute

// rolloutJob names a cluster's rollout Job, its ServiceAccount, Role,
// pods' component label and NetworkPolicy.
func rolloutJob(cluster string) string { return cluster + "-rollout" }

// rolloutDeadline bounds the Job's one pod: one full wait per member and
// one for a member down at its start, plus the API's answers.
func rolloutDeadline(replicas int) time.Duration {
	return time.Duration(replicas+1)*RolloutMemberWait + 2*time.Minute
}

// templateRevision is a digest of the members' pod template. The rollout
// Job's spec holds it, so every change of the template replaces the Job
// and it runs again; an up that keeps the template and the count leaves
// it alone.
func templateRevision(template *corev1.PodTemplateSpecArgs) pulumi.StringOutput {
	return template.ToPodTemplateSpecOutput().ApplyT(func(t corev1.PodTemplateSpec) (string, error) {
		// Unset fields left out: an SDK that adds fields keeps the digest.
		b, err := json.Marshal(t)
		var v any
		if err == nil {
			err = json.Unmarshal(b, &v)
		}
		if err == nil {
			b, err = json.Marshal(withoutNulls(v))
		}
		if err != nil {
			return "", fmt.Errorf("etcd pod template digest: %w", err)
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:8]), nil
	}).(pulumi.StringOutput)
}

// withoutNulls is v (decoded JSON) without its null members.
func withoutNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				x[k] = withoutNulls(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = withoutNulls(e)
		}
	}
	return v
}

// newRollout registers the rollout Job after the StatefulSet, its
// ServiceAccount with the two permissions it needs (read the StatefulSet,
// read and delete the members' pods, by name), and its NetworkPolicy (the
// Kubernetes API only). The up waits for the Job: it fails, with the
// members that kept the old template still serving, when a member stays
// down; it is replaced at the next up while not complete.
func newRollout(ctx *pulumi.Context, name string, a Args, template *corev1.PodTemplateSpecArgs, child pulumi.ResourceOption, after pulumi.Resource) error {
	ns, job := a.Namespace, rolloutJob(a.Name)
	account, err := workload.NewAccount(ctx, name+"-rollout", ns, job, rbacv1.PolicyRuleArray{
		workload.Rule("", "pods", a.Cluster().MemberNames(MaxReplicas), []string{"get", "delete"}),
		workload.Rule("apps", "statefulsets", []string{a.Name}, []string{"get"}),
	}, child)
	if err != nil {
		return fmt.Errorf("etcd rollout: %w", err)
	}
	labels := workload.Labels(job)
	policy, err := netpol.NewAllowPolicy(ctx, name+"-rollout-netpol", ns, job, labels, nil,
		[]netpol.Flow{netpol.Anywhere(netpol.KubernetesAPIPorts...)}, child)
	if err != nil {
		return err
	}

	deadline := rolloutDeadline(a.Replicas)
	meta := workload.Meta(job, ns, job)
	meta.Annotations = pulumi.StringMap{
		workload.NeedsAPIToken:  pulumi.String("true"), // kubectl reads and deletes the members' pods
		workload.ReplaceUnready: pulumi.String("true"),
		workload.TimeoutSeconds: pulumi.String(strconv.Itoa(int((deadline + time.Minute).Seconds()))),
	}
	env := corev1.EnvVarArray{}
	for _, e := range []envVar{
		{name: "NAMESPACE", value: ns}, {name: "STATEFULSET", value: a.Name}, {name: "REPLICAS", value: strconv.Itoa(a.Replicas)},
		{name: "WAIT", value: strconv.Itoa(int(RolloutMemberWait.Seconds()))}, {name: "JOIN_IMAGE", value: a.JoinImage},
		{name: "HOME", value: "/tmp"}, // kubectl caches discovery under $HOME/.kube
	} {
		env = append(env, e.args(a))
	}
	// Not read by the script: it makes the Job's spec change with the template.
	env = append(env, corev1.EnvVarArgs{Name: pulumi.String("TEMPLATE_REVISION"), Value: templateRevision(template)})
	if _, err := batchv1.NewJob(ctx, name+"-rollout", &batchv1.JobArgs{
		Metadata: meta,
		// The script waits itself: its failure fails the Job (and the up)
		// at once, a pod lost with its node too; the next up runs it again.
		Spec: scriptJobSpec(a, scriptJob{name: job, container: "rollout", script: rolloutScript,
			serviceAccount: account.Name, apiToken: true, env: env, deadline: deadline,
			mounts:  corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}},
			volumes: corev1.VolumeArray{workload.EmptyDir("tmp", "64Mi")}}),
	}, child, pulumi.DependsOn([]pulumi.Resource{after, account.Binding, policy}), pulumi.DeleteBeforeReplace(true)); err != nil {
		return fmt.Errorf("etcd rollout Job: %w", err)
	}
	return nil
}
