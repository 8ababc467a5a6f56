package kcp

import (
	"fmt"
	"time"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// The front-proxy reads the certificate it forwards requests to the shards
// with (the mapping's proxy_client_cert/key, Certs.FrontProxyClient) and
// the shards' CA once, at start, into a fixed transport (kcp v0.32.3
// pkg/proxy/proxy.go; kcp-dev/kcp#1308); every other certificate kcp-tmc
// mounts is read again when it changes (docs/tls.md "Renewals"). So a
// renewal of that one reaches the front-proxy only through a restart: a
// CronJob restarts it, rolling, every week, which is within the renewal
// window tls.renewBefore must leave (FrontProxyRestartEvery).
const (
	// FrontProxyRestartName names the CronJob and everything of it.
	FrontProxyRestartName = "kcp-front-proxy-restart"
	// FrontProxyRestartSchedule is weekly (Mondays 03:30 UTC), off the
	// backups' hours.
	FrontProxyRestartSchedule = "30 3 * * 1"
	frontProxyRestartTimeZone = "Etc/UTC"
	// FrontProxyRestartEvery is the time between two scheduled restarts.
	FrontProxyRestartEvery = 7 * 24 * time.Hour
	// FrontProxyRestartLate is how long after the last successful restart
	// the next one is missed: the schedule's week, the CronJob's starting
	// deadline (1 h) and the Job's (15 min), with slack. The alert
	// FrontProxyRestartStale fires then.
	FrontProxyRestartLate = FrontProxyRestartEvery + 3*time.Hour
	// MinRenewBefore is the least tls.renewBefore: a renewal just after a
	// restart reaches the front-proxy at the next one, a week later; when
	// that one is missed, FrontProxyRestartStale leaves an operator about
	// 20 hours before the old certificate expires.
	MinRenewBefore = FrontProxyRestartEvery + 24*time.Hour
	// frontProxyRolloutTimeout bounds the wait for the restarted pods to
	// be ready, inside the Job's deadline (frontProxyRestartDeadline).
	frontProxyRolloutTimeout  = 10 * time.Minute
	frontProxyRestartDeadline = 15 * time.Minute
	// DefaultKubectlImage runs the restart: Kubernetes' own kubectl image
	// (entrypoint kubectl), at the version the tests' control plane pins.
	DefaultKubectlImage = "registry.k8s.io/kubectl:v1.34.4"
)

// KubectlResources are a container of DefaultKubectlImage's that runs one
// short kubectl command (this restart, the agents' rewatch).
var KubectlResources = workload.Resources{
	Requests: workload.ResourceList{CPU: "10m", Memory: "32Mi", EphemeralStorage: "16Mi"},
	Limits:   workload.ResourceList{CPU: "100m", Memory: "128Mi", EphemeralStorage: "64Mi"},
}

// frontProxyRestartArgs are the restart Job's two kubectl steps: a rolling
// restart, as `kubectl rollout restart` does it by hand, then the wait for
// it to finish, so that the Job succeeds only once pods holding the renewed
// certificate serve (a rollout stuck on a pod that cannot start fails the
// Job, and FrontProxyRestartFailed fires, while the old pods still serve).
func frontProxyRestartArgs(namespace string) (restart, status []string) {
	deployment, ns := "deployment/"+FrontProxyName, "--namespace="+namespace
	return []string{"rollout", "restart", deployment, ns},
		[]string{"rollout", "status", deployment, ns, "--timeout=" + frontProxyRolloutTimeout.String()}
}

// newFrontProxyRestart registers the CronJob, its ServiceAccount with the
// one permission it needs (restart the front-proxy's Deployment and watch
// its rollout), and its NetworkPolicy (the Kubernetes API only).
func newFrontProxyRestart(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption) error {
	ns, app := args.Namespace, FrontProxyRestartName
	// list and watch by name: rollout status watches with a metadata.name
	// field selector, which resourceNames allows.
	account, err := workload.NewAccount(ctx, name+"-restart", ns, app, rbacv1.PolicyRuleArray{
		workload.Rule("apps", "deployments", []string{FrontProxyName}, []string{"get", "patch", "list", "watch"}),
	}, child)
	if err != nil {
		return err
	}
	restart, status := frontProxyRestartArgs(ns)
	kubectl := func(name string, cmd []string) corev1.ContainerArgs {
		return corev1.ContainerArgs{
			Name:            pulumi.String(name),
			Image:           pulumi.String(args.KubectlImage),
			ImagePullPolicy: pulumi.String("Always"),
			Args:            pulumi.ToStringArray(cmd),
			// kubectl caches discovery under $HOME/.kube.
			Env:             corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")}},
			Resources:       KubectlResources.Args(),
			SecurityContext: workload.ContainerSecurityContext(),
			VolumeMounts:    corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}},
		}
	}
	labels := pulumi.ToStringMap(workload.Labels(app))
	meta := workload.Meta(app, ns, app)
	meta.Annotations = pulumi.StringMap{workload.NeedsAPIToken: pulumi.String("true")} // kubectl patches the Deployment
	if _, err := batchv1.NewCronJob(ctx, name+"-restart", &batchv1.CronJobArgs{
		Metadata: meta,
		Spec: &batchv1.CronJobSpecArgs{
			Schedule:                   pulumi.String(FrontProxyRestartSchedule),
			TimeZone:                   pulumi.String(frontProxyRestartTimeZone),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			StartingDeadlineSeconds:    pulumi.Int(3600),
			SuccessfulJobsHistoryLimit: pulumi.Int(1),
			FailedJobsHistoryLimit:     pulumi.Int(3),
			JobTemplate: batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels},
				Spec: batchv1.JobSpecArgs{
					// One retry, for a failure of the restart's API call: after
					// a rollout that did not finish in its 10 minutes, the Job's
					// 15 are nearly over, and a retry would restart again.
					BackoffLimit:            pulumi.Int(1),
					ActiveDeadlineSeconds:   pulumi.Int(int(frontProxyRestartDeadline.Seconds())),
					TtlSecondsAfterFinished: pulumi.Int(7 * 24 * 3600),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: labels},
						Spec: &corev1.PodSpecArgs{
							ServiceAccountName: account.Name,
							RestartPolicy:      pulumi.String("Never"),
							SecurityContext:    workload.PodSecurityContext(),
							InitContainers:     corev1.ContainerArray{kubectl("restart", restart)},
							Containers:         corev1.ContainerArray{kubectl("rollout-status", status)},
							Volumes:            corev1.VolumeArray{workload.EmptyDir("tmp", "64Mi")},
						},
					},
				}},
		},
	}, child, pulumi.DependsOn([]pulumi.Resource{account.Binding})); err != nil {
		return fmt.Errorf("CronJob %s: %w", app, err)
	}
	// The Kubernetes API's address is the cluster's: any, on its ports.
	_, err = netpol.NewAllowPolicy(ctx, name+"-restart-netpol", ns, app, workload.Labels(app), nil,
		[]netpol.Flow{netpol.Anywhere(netpol.KubernetesAPIPorts...)}, child)
	return err
}
