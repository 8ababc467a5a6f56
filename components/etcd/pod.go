package etcd

// The members' pod: etcd's flags, the join init container that lets a
// member whose data was lost rejoin by itself, and the claim template.

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

func claimSpec(a Args) *corev1.PersistentVolumeClaimSpecArgs {
	spec := &corev1.PersistentVolumeClaimSpecArgs{
		AccessModes:      pulumi.ToStringArray([]string{"ReadWriteOnce"}),
		StorageClassName: pulumi.String(a.StorageClass),
		Resources:        &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(a.volumeSize())}},
	}
	if a.VolumeAttributesClass != "" {
		// Changeable on a bound claim (Kubernetes 1.34): the CSI driver
		// then modifies the volume to the class's attributes.
		spec.VolumeAttributesClassName = pulumi.String(a.VolumeAttributesClass)
	}
	return spec
}

// Flags returns etcd's command line for the members of a.
func Flags(a Args) []string {
	quota := resource.MustParse(a.QuotaBackendBytes) // validated
	host := a.Cluster().MemberHost("$(POD_NAME)")
	return []string{
		"--name=$(POD_NAME)",
		"--data-dir=" + dataDir + "/data",
		fmt.Sprintf("--listen-client-urls=https://0.0.0.0:%d", ClientPort),
		fmt.Sprintf("--advertise-client-urls=https://%s:%d", host, ClientPort),
		fmt.Sprintf("--listen-peer-urls=https://0.0.0.0:%d", PeerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=https://%s:%d", host, PeerPort),
		// From the join ConfigMap (InitialCluster), not written here: the
		// pod template then does not change with etcd.replicas, so a new
		// count restarts no running member. etcd reads it only to bootstrap.
		"--initial-cluster=$(" + initialClusterEnv + ")",
		"--initial-cluster-state=new",
		"--initial-cluster-token=kcp-tmc-" + a.Namespace,
		// Clients (kcp, backups) and peers both present certificates from etcd-ca.
		"--client-cert-auth",
		"--cert-file=" + serverTLSDir + "/tls.crt",
		"--key-file=" + serverTLSDir + "/tls.key",
		"--trusted-ca-file=" + serverTLSDir + "/ca.crt",
		"--peer-client-cert-auth",
		"--peer-cert-file=" + peerTLSDir + "/tls.crt",
		"--peer-key-file=" + peerTLSDir + "/tls.key",
		"--peer-trusted-ca-file=" + peerTLSDir + "/ca.crt",
		// Plain HTTP on its own port, for probes and Prometheus only.
		fmt.Sprintf("--listen-metrics-urls=http://0.0.0.0:%d", MetricsPort),
		"--quota-backend-bytes=" + strconv.FormatInt(quota.Value(), 10),
		"--auto-compaction-mode=periodic",
		"--auto-compaction-retention=1h",
		"--snapshot-count=10000",
		"--logger=zap",
		"--log-outputs=stderr",
	}
}

// InitialCluster is etcd's --initial-cluster for the members of a: every
// member's name and peer URL.
func InitialCluster(a Args) string {
	c := a.Cluster()
	var initial []string
	for _, m := range c.MemberNames(a.Replicas) {
		initial = append(initial, m+"="+c.MemberURL(m, PeerPort))
	}
	return strings.Join(initial, ",")
}

// The join ConfigMap: its keys — the join script and what depends on
// etcd.replicas (the count, every member's client URL, the initial
// cluster) — the script's mount path, and the variable the pods'
// --initial-cluster reads.
const (
	joinScriptKey         = "etcd-join.sh"
	joinReplicasKey       = "replicas"
	joinEndpointsKey      = "endpoints"
	joinInitialClusterKey = "initial-cluster"
	joinMount             = "/scripts"
	initialClusterEnv     = "INITIAL_CLUSTER"
)

func joinConfigMap(cluster string) string { return cluster + "-join" }

// joinData is the join ConfigMap's content. It changes with etcd.replicas
// before the StatefulSet does (the StatefulSet depends on it); a pod reads
// it when it starts, a running one is not restarted for it.
func joinData(a Args) map[string]string {
	return map[string]string{
		joinScriptKey:         joinScript,
		joinReplicasKey:       strconv.Itoa(a.Replicas),
		joinEndpointsKey:      strings.Join(a.Cluster().MemberURLs(a.Replicas), ","),
		joinInitialClusterKey: InitialCluster(a),
	}
}

// joinContainer runs scripts/etcd-join.sh with etcd's own arguments, the
// member's volume and certificates: a member whose data is lost is
// replaced through the cluster's API and synced before etcd starts.
func joinContainer(a Args, mounts corev1.VolumeMountArray) corev1.ContainerArgs {
	env := corev1.EnvVarArray{podNameEnv()}
	for _, e := range joinEnv() {
		env = append(env, e.args(a))
	}
	return corev1.ContainerArgs{
		Name:            pulumi.String("join"),
		Image:           pulumi.String(a.JoinImage),
		ImagePullPolicy: pulumi.String("Always"),
		Command:         pulumi.ToStringArray([]string{"sh", joinMount + "/" + joinScriptKey}),
		Args:            pulumi.ToStringArray(Flags(a)),
		Env:             env,
		Resources:       a.Resources.Args(),
		SecurityContext: workload.ContainerSecurityContext(),
		VolumeMounts: append(mounts, corev1.VolumeMountArgs{
			Name: pulumi.String("join-script"), MountPath: pulumi.String(joinMount), ReadOnly: pulumi.Bool(true)}),
	}
}

func podNameEnv() corev1.EnvVarArgs {
	return corev1.EnvVarArgs{
		Name:      pulumi.String("POD_NAME"),
		ValueFrom: &corev1.EnvVarSourceArgs{FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.name")}},
	}
}

// envVar is one environment variable of a container: a value, or the
// join ConfigMap's key joinKey.
type envVar struct{ name, value, joinKey string }

func (e envVar) args(a Args) corev1.EnvVarArgs {
	if e.joinKey == "" {
		return corev1.EnvVarArgs{Name: pulumi.String(e.name), Value: pulumi.String(e.value)}
	}
	return corev1.EnvVarArgs{Name: pulumi.String(e.name), ValueFrom: &corev1.EnvVarSourceArgs{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelectorArgs{Name: pulumi.String(joinConfigMap(a.Name)), Key: pulumi.String(e.joinKey)}}}
}

// initialClusterVar fills --initial-cluster (Flags) in etcd's and the join's container.
var initialClusterVar = envVar{name: initialClusterEnv, joinKey: joinInitialClusterKey}

// joinEnv is the join init container's environment besides POD_NAME
// (scripts/etcd-join.sh): every member's client URL, its own, the count
// as the ConfigMap has it now, and the etcd-server certificate (server
// and client auth) for etcdctl.
func joinEnv() []envVar {
	return append([]envVar{
		initialClusterVar,
		{name: "ETCD_ENDPOINTS", joinKey: joinEndpointsKey},
		{name: "LOCAL_ENDPOINT", value: fmt.Sprintf("https://127.0.0.1:%d", ClientPort)},
		{name: "REPLICAS_FILE", value: joinMount + "/" + joinReplicasKey},
	}, etcdctlEnv...)
}

// etcdctlEnv has etcdctl present the etcd-server certificate (server and
// client auth), mounted at serverTLSDir.
var etcdctlEnv = []envVar{
	{name: "ETCDCTL_CACERT", value: serverTLSDir + "/ca.crt"},
	{name: "ETCDCTL_CERT", value: serverTLSDir + "/tls.crt"},
	{name: "ETCDCTL_KEY", value: serverTLSDir + "/tls.key"},
}

func podTemplate(a Args) *corev1.PodTemplateSpecArgs {
	labels := workload.Labels(a.Name)
	probe := func(path string, period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			HttpGet:          &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String("metrics")},
			PeriodSeconds:    pulumi.Int(period),
			TimeoutSeconds:   pulumi.Int(5),
			FailureThreshold: pulumi.Int(failures),
		}
	}
	startup := probe("/readyz", 5, 60) // up to 5 minutes to join or replay the WAL
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String(DataClaimName), MountPath: pulumi.String(dataDir)},
		corev1.VolumeMountArgs{Name: pulumi.String("tls-server"), MountPath: pulumi.String(serverTLSDir), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("tls-peer"), MountPath: pulumi.String(peerTLSDir), ReadOnly: pulumi.Bool(true)},
	}
	// The join container also with one member: the template must not
	// change when etcd.replicas does (it would restart the members).
	volumes := corev1.VolumeArray{
		workload.SecretVolume("tls-server", a.ServerSecret),
		workload.SecretVolume("tls-peer", a.PeerSecret),
		workload.ConfigMapVolume("join-script", joinConfigMap(a.Name)),
	}
	return &corev1.PodTemplateSpecArgs{
		Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
		Spec: &corev1.PodSpecArgs{
			ServiceAccountName:            pulumi.String(a.Name),
			AutomountServiceAccountToken:  pulumi.Bool(false),
			SecurityContext:               workload.PodSecurityContext(),
			Affinity:                      workload.Affinity(labels, a.Spread),
			TopologySpreadConstraints:     workload.TopologySpread(labels, a.Spread),
			TerminationGracePeriodSeconds: pulumi.Int(60),
			InitContainers:                corev1.ContainerArray{joinContainer(a, mounts)},
			Containers: corev1.ContainerArray{corev1.ContainerArgs{
				Name:            pulumi.String(Name), // the program; the cluster is a.Name
				Image:           pulumi.String(a.Image + ":" + a.Version),
				ImagePullPolicy: pulumi.String("Always"),
				Command:         pulumi.ToStringArray([]string{"etcd"}),
				Args:            pulumi.ToStringArray(Flags(a)),
				Env:             corev1.EnvVarArray{podNameEnv(), initialClusterVar.args(a)},
				Ports: corev1.ContainerPortArray{
					corev1.ContainerPortArgs{Name: pulumi.String("client"), ContainerPort: pulumi.Int(ClientPort)},
					corev1.ContainerPortArgs{Name: pulumi.String("peer"), ContainerPort: pulumi.Int(PeerPort)},
					corev1.ContainerPortArgs{Name: pulumi.String("metrics"), ContainerPort: pulumi.Int(MetricsPort)},
				},
				StartupProbe:    startup,
				LivenessProbe:   probe("/livez", 10, 3),
				ReadinessProbe:  probe("/readyz", 5, 3),
				Resources:       a.Resources.Args(),
				SecurityContext: workload.ContainerSecurityContext(),
				VolumeMounts:    mounts,
			}},
			Volumes: volumes,
		},
	}
}
