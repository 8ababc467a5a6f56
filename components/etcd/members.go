package etcd

// The membership Job: members that etcd.replicas no longer keeps leave the
// cluster before the StatefulSet deletes their pods (scripts/etcd-members.sh).

import (
	_ "embed"
	"fmt"
	"strings"
	"time"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// MaxReplicas is the most members a cluster may have (etcd.replicas).
const MaxReplicas = 7

// jobResources are a container's of the membership and rollout Jobs: a
// script that waits on etcdctl or kubectl.
var jobResources = workload.Resources{
	Requests: workload.ResourceList{CPU: "10m", Memory: "32Mi", EphemeralStorage: "16Mi"},
	Limits:   workload.ResourceList{CPU: "200m", Memory: "128Mi", EphemeralStorage: "64Mi"},
}

// scriptJob is what differs between the membership and rollout Jobs.
type scriptJob struct {
	name, container, script string
	serviceAccount          pulumi.StringInput
	apiToken                bool // the script calls the Kubernetes API
	retries                 int  // pods after the first (one lost with its node)
	env                     corev1.EnvVarArray
	deadline                time.Duration
	mounts                  corev1.VolumeMountArray
	volumes                 corev1.VolumeArray
}

// scriptJobSpec runs one of the scripts on etcd.joinImage (sh -c, $0 the
// Job's name), at most 1+retries times. (No podFailurePolicy: the
// provider's Job await fails an up only for a Job failed by its backoff
// limit or deadline — cloud-ready-checks v1.3.0 — and would wait out its
// timeout on one failed by a policy.)
func scriptJobSpec(a Args, j scriptJob) batchv1.JobSpecArgs {
	return batchv1.JobSpecArgs{
		BackoffLimit:          pulumi.Int(j.retries),
		ActiveDeadlineSeconds: pulumi.Int(int(j.deadline.Seconds())),
		Template: corev1.PodTemplateSpecArgs{
			Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(workload.Labels(j.name))},
			Spec: &corev1.PodSpecArgs{
				ServiceAccountName:           j.serviceAccount,
				AutomountServiceAccountToken: pulumi.Bool(j.apiToken),
				RestartPolicy:                pulumi.String("Never"),
				SecurityContext:              workload.PodSecurityContext(),
				Containers: corev1.ContainerArray{corev1.ContainerArgs{
					Name:            pulumi.String(j.container),
					Image:           pulumi.String(a.JoinImage),
					ImagePullPolicy: pulumi.String("Always"),
					Command:         pulumi.ToStringArray([]string{"sh", "-c", j.script, j.name}),
					Env:             j.env,
					Resources:       jobResources.Args(),
					SecurityContext: workload.ContainerSecurityContext(),
					VolumeMounts:    j.mounts,
				}},
				Volumes: j.volumes,
			},
		},
	}
}

//go:embed scripts/etcd-members.sh
var membersScript string

// membersJob names the membership Job of a cluster, its pods' component
// label and its NetworkPolicy.
func membersJob(cluster string) string { return cluster + "-members" }

// membersEnv is the Job's environment (scripts/etcd-members.sh): every
// member the cluster can have — a shrink's members to remove are above the
// new count — the peer URLs of those etcd.replicas keeps, and the
// etcd-server certificate for etcdctl.
func membersEnv(a Args) []envVar {
	c := a.Cluster()
	return append([]envVar{
		{name: "ETCD_ENDPOINTS", value: strings.Join(c.MemberURLs(MaxReplicas), ",")},
		{name: "KEEP_PEERS", value: strings.Join(c.PeerURLs(a.Replicas), ",")},
	}, etcdctlEnv...)
}

// newMembersJob registers the membership Job and its NetworkPolicy; the
// StatefulSet depends on the Job, so Pulumi waits for it. Its spec holds
// etcd.replicas, so a change replaces it (Job specs are immutable) and it
// runs again; an up that keeps the count leaves it alone. It succeeds
// without a cluster (a first install) and fails the up, before any pod is
// deleted, when etcd refuses a removal.
func newMembersJob(ctx *pulumi.Context, name string, a Args, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	job := membersJob(a.Name)
	labels := workload.Labels(job)
	var env corev1.EnvVarArray
	for _, e := range membersEnv(a) {
		env = append(env, e.args(a))
	}
	// The members' client port, and nothing else: in place before the pod
	// starts, which would otherwise take etcd for absent.
	policy, err := netpol.NewAllowPolicy(ctx, name+"-members-netpol", a.Namespace, job, labels, nil,
		[]netpol.Flow{{Pods: workload.Labels(a.Name), Ports: []int{ClientPort}}}, opts...)
	if err != nil {
		return nil, err
	}
	j, err := batchv1.NewJob(ctx, name+"-members", &batchv1.JobArgs{
		Metadata: workload.Meta(job, a.Namespace, job),
		// The script retries each removal for 2 minutes itself; a second
		// pod covers one lost with its node.
		Spec: scriptJobSpec(a, scriptJob{name: job, container: "members", script: membersScript,
			serviceAccount: pulumi.String(a.Name), env: env, deadline: 10 * time.Minute, retries: 1,
			mounts: corev1.VolumeMountArray{corev1.VolumeMountArgs{
				Name: pulumi.String("tls-server"), MountPath: pulumi.String(serverTLSDir), ReadOnly: pulumi.Bool(true)}},
			volumes: corev1.VolumeArray{workload.SecretVolume("tls-server", a.ServerSecret)}}),
	}, append(opts, pulumi.DeleteBeforeReplace(true), pulumi.DependsOn([]pulumi.Resource{policy}))...)
	if err != nil {
		return nil, fmt.Errorf("etcd membership Job: %w", err)
	}
	return j, nil
}
