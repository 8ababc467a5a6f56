package agents

// The agent's Deployment on its cluster: its kubeconfig for kcp, flags,
// pod, and the metrics Service, ServiceMonitor and rules.

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/pkg/kubeconfig"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// kcpKubeconfig points at kcp's workspace with the agent's identity: files of
// TokenSecret or IdentitySecret, mounted at identityMount. client-go reads
// the token file again as it changes, so a new token needs no restart.
func kcpKubeconfig(a Args) (string, error) {
	c := kubeconfig.Config{Context: "kcp", Server: a.KCPServer + "/clusters/" + a.Workspace, User: User(a.Cluster),
		CertFile: identityMount + "/tls.crt", KeyFile: identityMount + "/tls.key"}
	if !a.PublicServerCert {
		c.CAFile = identityMount + "/ca.crt"
	}
	if a.Identity == IdentityToken {
		c.User, c.CertFile, c.KeyFile, c.TokenFile = ServiceAccount(a.Cluster), "", "", identityMount+"/token"
	}
	return c.Render()
}

// Flags are api-syncagent v0.7.0's command line (cmd/api-syncagent/options.go
// of the release; docs/agents.md).
func Flags(a Args) []string {
	flags := []string{
		"--namespace=" + a.Namespace,
		"--agent-name=" + a.Cluster + "-syncagent",
		"--kcp-kubeconfig=" + kubeconfigMount + "/kubeconfig",
		// kcp creates an endpoint slice named after each APIExport; the
		// agent finds its export through it (--apiexport-ref is gone).
		"--apiexportendpointslice-ref=" + a.APIExport,
		"--enable-leader-election",
		fmt.Sprintf("--metrics-address=0.0.0.0:%d", MetricsPort),
		// No --health-address: v0.7.0 registers no health checks, so its
		// probe server answers 404 on /readyz and /healthz (a probe there
		// would never pass and liveness would restart it forever).
		"--log-format=JSON",
	}
	if a.LogDebug {
		flags = append(flags, "--log-debug") // internal/log/zap.go of the release
	}
	return flags
}

// identitySecret is the Secret on the cluster the agent's identity is in.
func identitySecret(a Args) string {
	if a.Identity == IdentityToken {
		return TokenSecret
	}
	return IdentitySecret
}

// kcpMounts are where a pod that talks to kcp as the agent (the agent's,
// the rewatch's) finds its kubeconfig and identity, and a writable /tmp.
var kcpMounts = corev1.VolumeMountArray{
	corev1.VolumeMountArgs{Name: pulumi.String("kcp-kubeconfig"), MountPath: pulumi.String(kubeconfigMount), ReadOnly: pulumi.Bool(true)},
	corev1.VolumeMountArgs{Name: pulumi.String("identity"), MountPath: pulumi.String(identityMount), ReadOnly: pulumi.Bool(true)},
	corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
}

// kcpVolumes are the volumes of kcpMounts.
func kcpVolumes(a Args) corev1.VolumeArray {
	return corev1.VolumeArray{workload.ConfigMapVolume("kcp-kubeconfig", kubeconfigConfigMap),
		workload.SecretVolume("identity", identitySecret(a)), workload.EmptyDir("tmp", "64Mi")}
}

func deploymentMeta(a Args) *metav1.ObjectMetaArgs {
	meta := workload.Meta(a.Kind, a.Namespace, a.Kind)
	annotations := pulumi.StringMap{workload.NeedsAPIToken: pulumi.String("true")} // it syncs its cluster's API
	if a.Replicas == 1 {
		annotations["kube-score/ignore"] = pulumi.String("deployment-replicas") // one replica asked for
	}
	if a.Identity == IdentityCopied {
		// Its pods wait for IdentitySecret, which `kcp-tmc agent-identity`
		// writes after this up: awaiting them would fail the up that has to
		// come first.
		annotations[workload.SkipAwait] = pulumi.String("true")
	}
	meta.Annotations = annotations
	labels := pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(a.Kind), "app.kubernetes.io/part-of": pulumi.String("kcp-tmc"),
		"kcp-tmc.io/cluster": pulumi.String(a.Cluster)}
	for k, v := range a.Labels {
		labels[k] = pulumi.String(v)
	}
	meta.Labels = labels
	return meta
}

func deploymentSpec(a Args, labels map[string]string) *appsv1.DeploymentSpecArgs {
	// Probed where v0.7.0 really serves: its metrics endpoint answers once
	// the manager runs.
	readiness := &corev1.ProbeArgs{HttpGet: &corev1.HTTPGetActionArgs{Path: pulumi.String("/metrics"), Port: pulumi.String("metrics")}, PeriodSeconds: pulumi.Int(10)}
	liveness := &corev1.ProbeArgs{TcpSocket: &corev1.TCPSocketActionArgs{Port: pulumi.String("metrics")}, PeriodSeconds: pulumi.Int(20), FailureThreshold: pulumi.Int(3)}
	return &appsv1.DeploymentSpecArgs{
		Replicas: pulumi.Int(a.Replicas),
		Selector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(labels)},
		Strategy: &appsv1.DeploymentStrategyArgs{Type: pulumi.String("RollingUpdate"),
			RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxUnavailable: pulumi.Int(1), MaxSurge: pulumi.Int(0)}},
		Template: corev1.PodTemplateSpecArgs{
			Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
			Spec: &corev1.PodSpecArgs{
				ServiceAccountName: pulumi.String(a.Kind),
				SecurityContext:    workload.PodSecurityContext(),
				Affinity:           workload.Affinity(labels, workload.Spread{Mode: workload.SpreadNone}),
				Containers: corev1.ContainerArray{corev1.ContainerArgs{
					Name: pulumi.String(a.Kind), Image: pulumi.String(a.Image), ImagePullPolicy: pulumi.String("Always"),
					Args: pulumi.ToStringArray(Flags(a)),
					Ports: corev1.ContainerPortArray{
						corev1.ContainerPortArgs{Name: pulumi.String("metrics"), ContainerPort: pulumi.Int(MetricsPort)},
					},
					Env: corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("NAMESPACE"),
						ValueFrom: &corev1.EnvVarSourceArgs{FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.namespace")}}}},
					LivenessProbe: liveness, ReadinessProbe: readiness,
					Resources:       a.Container.Args(),
					SecurityContext: workload.ContainerSecurityContext(),
					VolumeMounts:    kcpMounts,
				}},
				Volumes: kcpVolumes(a),
			},
		},
	}
}

// metrics publishes api-syncagent's controller-runtime metrics to the
// cluster's Prometheus operator as job "api-syncagent" (what the alerts read).
func metrics(ctx *pulumi.Context, name string, a Args, labels map[string]string, opts []pulumi.ResourceOption) error {
	meta := workload.Meta(a.Kind+"-metrics", a.Namespace, a.Kind)
	meta.Labels = pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(a.Kind), "app.kubernetes.io/part-of": pulumi.String("kcp-tmc")}
	if _, err := corev1.NewService(ctx, name+"-metrics", &corev1.ServiceArgs{
		Metadata: meta,
		Spec: &corev1.ServiceSpecArgs{Selector: pulumi.ToStringMap(labels), Ports: corev1.ServicePortArray{corev1.ServicePortArgs{
			Name: pulumi.String("metrics"), Port: pulumi.Int(MetricsPort), TargetPort: pulumi.String("metrics")}}},
	}, opts...); err != nil {
		return fmt.Errorf("agent metrics Service: %w", err)
	}
	if _, err := apiextensions.NewCustomResource(ctx, name+"-servicemonitor", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("monitoring.coreos.com/v1"), Kind: pulumi.String("ServiceMonitor"),
		Metadata: workload.Meta(a.Kind, a.Namespace, a.Kind, a.RuleLabels),
		OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{
			"jobLabel":  pulumi.String("app.kubernetes.io/name"),
			"selector":  pulumi.Map{"matchLabels": pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(a.Kind)}},
			"endpoints": pulumi.Array{pulumi.Map{"port": pulumi.String("metrics"), "interval": pulumi.String("30s")}},
		}},
	}, opts...); err != nil {
		return fmt.Errorf("agent ServiceMonitor: %w", err)
	}
	// The agent alerts where the agent's metrics are: this cluster's Prometheus.
	if _, err := apiextensions.NewCustomResource(ctx, name+"-rules", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("monitoring.coreos.com/v1"), Kind: pulumi.String("PrometheusRule"),
		Metadata:    workload.Meta(a.Kind+"-rules", a.Namespace, a.Kind, a.RuleLabels),
		OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{"groups": monitoring.RuleGroups([]monitoring.Group{monitoring.AgentGroup()})}},
	}, opts...); err != nil {
		return fmt.Errorf("agent PrometheusRule: %w", err)
	}
	return nil
}
