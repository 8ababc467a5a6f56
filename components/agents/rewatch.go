package agents

// The agent's rewatch CronJob: api-syncagent v0.7.0 (kcp-dev/
// multicluster-provider v0.8.0, pkg/provider/provider.go
// endpointSliceUpdate) starts watching a shard's virtual workspace URL once,
// when the URL first appears in its endpoint slice or when the agent
// starts; if that fails (the shard's DNS name not published yet, the shard
// down or restarting) it logs "failed to watch endpoint" and does not try
// again until the endpoint slice changes. Every workspace on that shard is
// then never synced while the agent stays Ready. Upstream retries since
// multicluster-provider e2bf2b0 (unreleased on 2026-12-06; no api-syncagent
// release has it). Until then a change to the endpoint slice makes the
// agent try again: this CronJob annotates it every RewatchSchedule with the
// agent's own identity.

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

const (
	// RewatchSchedule bounds how long a shard stays unwatched after it
	// became reachable: five minutes.
	RewatchSchedule = "*/5 * * * *"
	// RewatchAnnotation is the endpoint slice's annotation each run sets,
	// to the run's pod name (which run touched it last).
	RewatchAnnotation = "kcp-tmc.io/rewatched-by"
	// rewatchDeadline ends a run that hangs on an unreachable kcp before
	// the next one is due.
	rewatchDeadline = 120
)

// RewatchName names the agent's rewatch CronJob, its pods' component label
// and their NetworkPolicy.
func RewatchName(a Args) string { return a.Kind + "-rewatch" }

// RewatchArgs is the run's kubectl command line: a merge patch of the
// endpoint slice's annotation in the agent's workspace, with the agent's
// kubeconfig for kcp. The value differs in every run (the pod's name), so
// every run changes the object and the agent's informer sees an update.
func RewatchArgs(a Args) []string {
	return []string{
		"--kubeconfig=" + kubeconfigMount + "/kubeconfig",
		"annotate", "--overwrite", "apiexportendpointslices.apis.kcp.io", a.APIExport,
		RewatchAnnotation + "=$(POD_NAME)",
	}
}

// newRewatch registers the CronJob and the NetworkPolicy of its pods (the
// agent's flows to kcp; the 443/6443 of kcp's address also reach their own
// cluster's API, which they cannot use without a token). Its pods mount the agent's kubeconfig and
// identity and need nothing from their own cluster's API.
func newRewatch(ctx *pulumi.Context, name string, a Args, after []pulumi.ResourceOption, identity []pulumi.Resource) error {
	app := RewatchName(a)
	labels := workload.Labels(app)
	meta := workload.Meta(app, a.Namespace, app)
	// Every 5 minutes: a pinned tag is pulled once, and a registry outage
	// must not fail the runs (kube-score wants Always).
	meta.Annotations = pulumi.StringMap{"kube-score/ignore": pulumi.String("container-image-pull-policy")}
	if _, err := batchv1.NewCronJob(ctx, name+"-rewatch", &batchv1.CronJobArgs{
		Metadata: meta,
		Spec: &batchv1.CronJobSpecArgs{
			Schedule:                   pulumi.String(RewatchSchedule),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			StartingDeadlineSeconds:    pulumi.Int(rewatchDeadline),
			SuccessfulJobsHistoryLimit: pulumi.Int(1),
			FailedJobsHistoryLimit:     pulumi.Int(1),
			JobTemplate: batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
				Spec: batchv1.JobSpecArgs{
					// The next run is the retry.
					BackoffLimit:            pulumi.Int(0),
					ActiveDeadlineSeconds:   pulumi.Int(rewatchDeadline),
					TtlSecondsAfterFinished: pulumi.Int(3600),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
						Spec: &corev1.PodSpecArgs{
							RestartPolicy: pulumi.String("Never"),
							// The agent's account, without its token: none of
							// the agent's rights on this cluster reach the pod,
							// and no account more per cluster.
							ServiceAccountName:           pulumi.String(a.Kind),
							AutomountServiceAccountToken: pulumi.Bool(false),
							SecurityContext:              workload.PodSecurityContext(),
							Containers: corev1.ContainerArray{corev1.ContainerArgs{
								Name:            pulumi.String("annotate"),
								Image:           pulumi.String(a.KubectlImage),
								ImagePullPolicy: pulumi.String("IfNotPresent"),
								Args:            pulumi.ToStringArray(RewatchArgs(a)),
								Env: corev1.EnvVarArray{
									corev1.EnvVarArgs{Name: pulumi.String("POD_NAME"),
										ValueFrom: &corev1.EnvVarSourceArgs{FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.name")}}},
									// kubectl caches discovery under $HOME/.kube.
									corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")},
								},
								Resources:       kcp.KubectlResources.Args(),
								SecurityContext: workload.ContainerSecurityContext(),
								VolumeMounts:    kcpMounts,
							}},
							Volumes: kcpVolumes(a),
						},
					},
				}},
		},
	}, append(after, pulumi.DependsOn(identity))...); err != nil { // its pods mount the identity
		return fmt.Errorf("agent rewatch CronJob: %w", err)
	}
	_, err := netpol.NewAllowPolicy(ctx, name+"-rewatch-netpol", a.Namespace, app, labels, nil, kcpFlows(a), after...)
	return err
}

// kcpFlows are the connections to kcp: its public address on 443/6443, and
// the pods behind it where kcp runs in the same cluster (FrontDoor).
func kcpFlows(a Args) []netpol.Flow {
	egress := []netpol.Flow{netpol.Anywhere(netpol.KubernetesAPIPorts...)}
	if a.FrontDoor.Given() {
		egress = append(egress, a.FrontDoor)
	}
	return egress
}
