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
	// FrontProxyRestartEvery is the longest time between two restarts.
	FrontProxyRestartEvery = 7 * 24 * time.Hour
	// DefaultKubectlImage runs the restart: Kubernetes' own kubectl image
	// (entrypoint kubectl), at the version the tests' control plane pins.
	DefaultKubectlImage = "registry.k8s.io/kubectl:v1.34.4"
)

// frontProxyRestartArgs are the restart Job's kubectl arguments: a rolling
// restart, as `kubectl rollout restart` does it by hand.
func frontProxyRestartArgs(namespace string) []string {
	return []string{"rollout", "restart", "deployment/" + FrontProxyName, "--namespace=" + namespace}
}

// newFrontProxyRestart registers the CronJob, its ServiceAccount with the
// one permission it needs (get and patch the front-proxy's Deployment),
// and its NetworkPolicy (the Kubernetes API only).
func newFrontProxyRestart(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption) error {
	ns, app := args.Namespace, FrontProxyRestartName
	sa, err := corev1.NewServiceAccount(ctx, name+"-restart-sa", &corev1.ServiceAccountArgs{
		Metadata: workload.Meta(app, ns, app),
	}, child)
	if err != nil {
		return fmt.Errorf("ServiceAccount %s: %w", app, err)
	}
	role, err := rbacv1.NewRole(ctx, name+"-restart-role", &rbacv1.RoleArgs{
		Metadata: workload.Meta(app, ns, app),
		Rules: rbacv1.PolicyRuleArray{rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.ToStringArray([]string{"apps"}), Resources: pulumi.ToStringArray([]string{"deployments"}),
			ResourceNames: pulumi.ToStringArray([]string{FrontProxyName}), Verbs: pulumi.ToStringArray([]string{"get", "patch"}),
		}},
	}, child)
	if err != nil {
		return fmt.Errorf("Role %s: %w", app, err)
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name+"-restart-binding", &rbacv1.RoleBindingArgs{
		Metadata: workload.Meta(app, ns, app),
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem()},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(ns)}},
	}, child); err != nil {
		return fmt.Errorf("RoleBinding %s: %w", app, err)
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
					BackoffLimit:            pulumi.Int(3),
					ActiveDeadlineSeconds:   pulumi.Int(600),
					TtlSecondsAfterFinished: pulumi.Int(7 * 24 * 3600),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: labels},
						Spec: &corev1.PodSpecArgs{
							ServiceAccountName: sa.Metadata.Name().Elem(),
							RestartPolicy:      pulumi.String("Never"),
							SecurityContext:    workload.PodSecurityContext(),
							Containers: corev1.ContainerArray{corev1.ContainerArgs{
								Name:            pulumi.String("restart"),
								Image:           pulumi.String(args.KubectlImage),
								ImagePullPolicy: pulumi.String("Always"),
								Args:            pulumi.ToStringArray(frontProxyRestartArgs(ns)),
								// kubectl caches discovery under $HOME/.kube.
								Env: corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")}},
								Resources: workload.Resources{
									Requests: workload.ResourceList{CPU: "10m", Memory: "32Mi", EphemeralStorage: "16Mi"},
									Limits:   workload.ResourceList{CPU: "100m", Memory: "128Mi", EphemeralStorage: "64Mi"},
								}.Args(),
								SecurityContext: workload.ContainerSecurityContext(),
								VolumeMounts:    corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}},
							}},
							Volumes: corev1.VolumeArray{workload.EmptyDir("tmp", "64Mi")},
						},
					},
				}},
		},
	}, child); err != nil {
		return fmt.Errorf("CronJob %s: %w", app, err)
	}
	// The Kubernetes API's address is the cluster's: any, on its ports.
	return netpol.NewAllowPolicy(ctx, name+"-restart-netpol", ns, app, workload.Labels(app), nil,
		[]netpol.Flow{{CIDR: "0.0.0.0/0", Ports: []int{443, 6443}}}, child)
}
