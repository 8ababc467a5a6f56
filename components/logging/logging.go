// Package logging ships every container's logs (kcp and etcd log JSON to
// stdout) to Elasticsearch with fluent-bit: a DaemonSet tailing the nodes'
// container logs, parsing JSON into fields and enriching them with
// Kubernetes metadata, in its own namespace.
package logging

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:logging:Logging"

// Defaults.
const (
	Namespace    = "logging"
	Name         = "fluent-bit"
	DefaultImage = "cr.fluentbit.io/fluent/fluent-bit:3.2.10"
	DefaultIndex = "kcp-logs"
	// DefaultPodLogsDir is the kubelet's default podLogsDir.
	DefaultPodLogsDir = "/var/log/pods"
)

// Args configures log shipping.
type Args struct {
	ElasticsearchHost string
	ElasticsearchPort int
	Index             string
	TLS               bool
	// CACert (PEM) verifies Elasticsearch's serving certificate instead of
	// the image's system CAs: a self-hosted cluster's own CA (ECK makes one).
	CACert    string
	Username  string
	Password  pulumi.StringInput // a Pulumi secret; required with Username
	Image     string
	Resources workload.Resources
	// PodLogsDir is the nodes' kubelet podLogsDir (KubeletConfiguration),
	// where the files /var/log/containers' symlinks point to. Outside
	// /var/log it is mounted too, or every symlink dangles in the pod.
	PodLogsDir string
	// MonitoringNamespace may scrape the shipper's metrics.
	MonitoringNamespace string
}

// Logging is the component.
type Logging struct {
	pulumi.ResourceState

	// Destination is host:port/index.
	Destination pulumi.StringOutput `pulumi:"destination"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Resources, workload.Resources{
		Requests: workload.ResourceList{CPU: "50m", Memory: "64Mi", EphemeralStorage: "64Mi"},
		Limits:   workload.ResourceList{CPU: "500m", Memory: "256Mi", EphemeralStorage: "256Mi"}})
	component.Default(&a.ElasticsearchPort, 9200)
	component.Default(&a.Index, DefaultIndex)
	component.Default(&a.Image, DefaultImage)
	component.Default(&a.PodLogsDir, DefaultPodLogsDir)
	component.Default(&a.MonitoringNamespace, netpol.MonitoringNamespace)
	return a
}

var indexName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Validate reports every invalid field under fld, children named by the
// stack's keys.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch h := a.ElasticsearchHost; {
	case h == "":
		errs = append(errs, field.Required(fld.Child("elasticsearchHost"), "a host name or IP address, without scheme"))
	case net.ParseIP(h) == nil && len(validation.IsDNS1123Subdomain(h)) > 0:
		errs = append(errs, field.Invalid(fld.Child("elasticsearchHost"), h, "a host name or IP address, without scheme"))
	}
	errs = append(errs, check.Range(fld.Child("elasticsearchPort"), a.ElasticsearchPort, 1, 65535, "")...)
	// Stricter than Elasticsearch: the name is written into fluent-bit's
	// config, where a newline or a space would start another setting.
	if !indexName.MatchString(a.Index) || len(a.Index) > 255 {
		errs = append(errs, field.Invalid(fld.Child("index"), a.Index, "a lowercase Elasticsearch index name (letters, digits, '.', '_', '-', starting with a letter or digit, at most 255)"))
	}
	if a.Username != "" && a.Password == nil {
		errs = append(errs, field.Required(fld.Child("password"), "a Pulumi secret when username is set"))
	}
	switch {
	case a.CACert != "" && !a.TLS:
		errs = append(errs, field.Invalid(fld.Child("caCert"), "<PEM>", "only with logging.tls: true (it verifies Elasticsearch's TLS certificate)"))
	case a.CACert != "":
		if err := parseCertificates(a.CACert); err != nil {
			errs = append(errs, field.Invalid(fld.Child("caCert"), "<PEM>", "PEM CA certificates (-----BEGIN CERTIFICATE-----): "+err.Error()))
		}
	}
	errs = append(errs, validatePodLogsDir(fld.Child("podLogsDir"), a.PodLogsDir)...)
	return append(errs, check.Image(fld.Child("image"), a.Image, DefaultImage)...)
}

// containerLogsDir is where the kubelet links every container's log file
// (fixed in the kubelet); the pod mounts it from the node.
const containerLogsDir = "/var/log"

// podPaths are the pod's own mount points, which the node's podLogsDir,
// mounted at the same path, must neither hide nor sit inside.
var podPaths = []string{containerLogsDir, stateDir, configDir, "/fluent-bit/bin"}

func validatePodLogsDir(fld *field.Path, dir string) field.ErrorList {
	const allowed = "the nodes' kubelet podLogsDir: an absolute, clean path such as /var/log/pods or /data/pod-logs"
	if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
		return field.ErrorList{field.Invalid(fld, dir, allowed)}
	}
	if underVarLog(dir) {
		return nil
	}
	for _, p := range podPaths {
		if within(p, dir) || within(dir, p) {
			return field.ErrorList{field.Invalid(fld, dir, allowed+"; not "+p+", a directory holding it or one inside it (the pod's own)")}
		}
	}
	return nil
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// underVarLog: the /var/log mount already holds dir.
func underVarLog(dir string) bool { return within(dir, containerLogsDir) }

// parseCertificates accepts PEM holding at least one certificate and
// nothing else.
func parseCertificates(data string) error {
	rest, n := []byte(data), 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("a %s block", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no certificate")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return fmt.Errorf("text that is not PEM after %d certificate(s)", n)
	}
	return nil
}

// BufferLimit bounds the chunks waiting for Elasticsearch on a node's disk.
const BufferLimit = "2G"

// MetricsPort (the container port's name) and MetricsPath serve fluent-bit's
// metrics in Prometheus' format (its HTTP server, 2020).
const (
	MetricsPort = "http"
	MetricsPath = "/api/v2/metrics/prometheus"
)

// CAFile is logging.caCert in the pod: the ConfigMap's ca.crt, mounted
// with the configuration.
const CAFile = configDir + "/ca.crt"

// Config is fluent-bit's configuration (classic format). Host, port and
// credentials come from the environment, so the ConfigMap holds no secret.
// tls.verify_hostname: fluent-bit (3.2) checks only the chain by default,
// so any certificate its CAs signed, for any name, would be Elasticsearch.
// Read_from_Head: a file fluent-bit finds at its start with no position in
// its DB (a container started while fluent-bit was down: a rollout, an
// upgrade, a node's reboot) is otherwise read from its end, its lines lost;
// files it has a position for resume there either way.
// Refresh_Interval 5 and Rotate_Wait 30: fluent-bit finds a new file (a
// container started, or the kubelet's next file after it rotated one: the
// link dangles for a moment, so the rotation does not find it) only by
// rescanning, every 60 s by default; a container that fills the kubelet's
// containerLogMaxSize faster lost whole files it never saw (the node e2e:
// 7,550 of 20,000 lines at 1Mi). A rotated file is read for Rotate_Wait
// more seconds, then closed whatever is left unread (default 5).
// Memory and disk stay bounded through an Elasticsearch outage: at most 32
// chunks (≈64 MB) in memory, 20 MB of backlog loaded at a restart (the
// container's limit is 256Mi), BufferLimit on the node's disk, the oldest
// chunks dropped beyond it (counted in fluentbit_output_dropped_records_total),
// retries at most 5 minutes apart once it is back (the default cap is 2000 s).
// Buffer_Size False on the es output: Elasticsearch's answer to a large
// bulk request exceeds fluent-bit's default 512k; fluent-bit then fails to
// parse the truncated answer and sends the whole chunk again (seen: 11,142
// documents for 6,000 lines). Buffer_Size 0 on the kubernetes filter: a
// pod's metadata above its default 32K would ship the pod's lines without
// any. Trace_Error logs what Elasticsearch refused. K8S-Logging.Exclude Off: a pod cannot hide its
// logs with an annotation. Annotations Off: the filter copies every
// annotation of the pod into every line's document (kubectl's
// last-applied-configuration alone is kilobytes); labels stay.
func Config(a Args) string {
	tls := "Off"
	if a.TLS {
		tls = "On"
	}
	auth := ""
	if a.Username != "" {
		auth = "    HTTP_User         ${ES_USER}\n    HTTP_Passwd       ${ES_PASSWORD}\n"
	}
	ca := ""
	if a.CACert != "" {
		ca = "    tls.ca_file       " + CAFile + "\n"
	}
	return `[SERVICE]
    Flush             5
    Log_Level         info
    Daemon            Off
    HTTP_Server       On
    HTTP_Listen       0.0.0.0
    HTTP_Port         2020
    Health_Check      On
    storage.path      ` + stateDir + `/storage
    storage.max_chunks_up 32
    storage.backlog.mem_limit 20M
    scheduler.cap     300

[INPUT]
    Name              tail
    Tag               kube.*
    Path              ` + containerLogsDir + `/containers/*.log
    multiline.parser  cri, docker
    DB                ` + stateDir + `/tail.db
    Read_from_Head    On
    Refresh_Interval  5
    Rotate_Wait       30
    Mem_Buf_Limit     50MB
    Skip_Long_Lines   On
    storage.type      filesystem

[FILTER]
    Name              kubernetes
    Match             kube.*
    Merge_Log         On
    Keep_Log          Off
    K8S-Logging.Parser On
    K8S-Logging.Exclude Off
    Buffer_Size       0
    Annotations       Off

[OUTPUT]
    Name              es
    Match             kube.*
    Host              ${ES_HOST}
    Port              ${ES_PORT}
    Index             ` + a.Index + `
` + auth + `    tls               ` + tls + `
    tls.verify        On
    tls.verify_hostname On
` + ca + `    Suppress_Type_Name On
    Replace_Dots      On
    Retry_Limit       False
    storage.total_limit_size ` + BufferLimit + `
    Buffer_Size       False
    Trace_Error       On
`
}

// NewLogging registers the component and its children.
func NewLogging(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Logging, error) {
	args = args.WithDefaults()
	comp := &Logging{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("logging")), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	// Reading the nodes' log files needs hostPath and root: no Pod Security
	// level but privileged allows that. Audit and warn stay restricted, and
	// the namespace still denies all traffic but fluent-bit's own.
	ns, err := platform.NewPlatform(ctx, name+"-namespace", platform.Args{
		Namespace: Namespace, EnforceLevel: "privileged",
		ExceptionReason: "fluent-bit reads /var/log on every node as root (read-only, no capabilities)",
	}, child)
	if err != nil {
		return nil, fmt.Errorf("logging namespace: %w", err)
	}
	after := []pulumi.ResourceOption{child, pulumi.DependsOn([]pulumi.Resource{ns})}
	if _, err := corev1.NewServiceAccount(ctx, name+"-sa", &corev1.ServiceAccountArgs{
		Metadata: workload.Meta(Name, Namespace, Name),
		// The kubernetes filter reads pod metadata from the API.
		AutomountServiceAccountToken: pulumi.Bool(true),
	}, after...); err != nil {
		return nil, fmt.Errorf("fluent-bit ServiceAccount: %w", err)
	}
	role, err := rbacv1.NewClusterRole(ctx, name+"-role", &rbacv1.ClusterRoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kcp-tmc-fluent-bit")},
		// The kubernetes filter reads one pod at a time (GET
		// /api/v1/namespaces/<ns>/pods/<name>); namespaces only with its
		// namespace_labels, which this config leaves off.
		Rules: rbacv1.PolicyRuleArray{rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.ToStringArray([]string{""}),
			Resources: pulumi.ToStringArray([]string{"pods"}),
			Verbs:     pulumi.ToStringArray([]string{"get"}),
		}},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("fluent-bit ClusterRole: %w", err)
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-binding", &rbacv1.ClusterRoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kcp-tmc-fluent-bit")},
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: role.Metadata.Name().Elem()},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(Name), Namespace: pulumi.String(Namespace)}},
	}, child); err != nil {
		return nil, fmt.Errorf("fluent-bit ClusterRoleBinding: %w", err)
	}
	files := map[string]string{"fluent-bit.conf": Config(args)}
	if args.CACert != "" {
		files["ca.crt"] = args.CACert
	}
	if _, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: workload.Meta(configMapName, Namespace, Name),
		Data:     pulumi.ToStringMap(files),
	}, after...); err != nil {
		return nil, fmt.Errorf("fluent-bit config: %w", err)
	}
	env := corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("ES_HOST"), Value: pulumi.String(args.ElasticsearchHost)},
		corev1.EnvVarArgs{Name: pulumi.String("ES_PORT"), Value: pulumi.String(strconv.Itoa(args.ElasticsearchPort))},
	}
	if args.Username != "" {
		if _, err := corev1.NewSecret(ctx, name+"-credentials", &corev1.SecretArgs{
			Metadata:   workload.Meta("fluent-bit-elasticsearch", Namespace, Name),
			StringData: pulumi.StringMap{"username": pulumi.String(args.Username), "password": pulumi.ToSecret(args.Password).(pulumi.StringOutput)},
		}, after...); err != nil {
			return nil, fmt.Errorf("Elasticsearch credentials: %w", err)
		}
		for key, envName := range map[string]string{"username": "ES_USER", "password": "ES_PASSWORD"} {
			env = append(env, corev1.EnvVarArgs{Name: pulumi.String(envName), ValueFrom: &corev1.EnvVarSourceArgs{
				SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: pulumi.String("fluent-bit-elasticsearch"), Key: pulumi.String(key)},
			}})
		}
	}
	egress := []netpol.Flow{netpol.Anywhere(append([]int{args.ElasticsearchPort}, netpol.KubernetesAPIPorts...)...)} // Elasticsearch and the API
	if _, err := netpol.NewAllowPolicy(ctx, name+"-netpol", Namespace, Name, workload.Labels(Name),
		[]netpol.Flow{{Namespace: args.MonitoringNamespace, Ports: []int{2020}}}, egress, after...); err != nil {
		return nil, err
	}
	if err := newDaemonSet(ctx, name, args, env, files, after); err != nil {
		return nil, err
	}
	comp.Destination = pulumi.Sprintf("%s:%d/%s", args.ElasticsearchHost, args.ElasticsearchPort, args.Index)
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"destination": comp.Destination}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

const configMapName, configDir = "fluent-bit-config", "/fluent-bit/etc"

// stateDir holds fluent-bit's read positions and buffered chunks on the
// node: they survive its restarts.
const stateDir = "/var/lib/fluent-bit"

// ConfigRevision is the pod template's annotation holding a digest of the
// ConfigMap's files: fluent-bit reads them only at start, so a change rolls
// the DaemonSet instead of waiting for the pods' next restart.
const ConfigRevision = "kcp-tmc.io/config-sha256"

func configDigest(files map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s\x00%d\x00%s", k, len(files[k]), files[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// newDaemonSet runs fluent-bit on every node: root only to read the nodes'
// log files, nothing else, its read positions kept on the node.
func newDaemonSet(ctx *pulumi.Context, name string, args Args, env corev1.EnvVarArray, files map[string]string, after []pulumi.ResourceOption) error {
	dsMeta := workload.Meta(Name, Namespace, Name)
	dsMeta.Annotations = pulumi.StringMap{
		workload.NeedsAPIToken: pulumi.String("true"), // the kubernetes filter
		// Root (UID 0) is what reading the nodes' root-owned log files takes.
		"kube-score/ignore": pulumi.String("container-security-context-user-group-id"),
	}
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String("varlog"), MountPath: pulumi.String(containerLogsDir), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("state"), MountPath: pulumi.String(stateDir)},
		corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(configDir), ReadOnly: pulumi.Bool(true)},
	}
	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String("varlog"), HostPath: &corev1.HostPathVolumeSourceArgs{Path: pulumi.String(containerLogsDir)}},
		// Read positions survive restarts, so nothing is shipped twice or lost.
		corev1.VolumeArgs{Name: pulumi.String("state"), HostPath: &corev1.HostPathVolumeSourceArgs{Path: pulumi.String(stateDir), Type: pulumi.String("DirectoryOrCreate")}},
		workload.ConfigMapVolume("config", configMapName),
	}
	if !underVarLog(args.PodLogsDir) {
		// The symlinks' targets, at the path they name.
		mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String("podlogs"), MountPath: pulumi.String(args.PodLogsDir), ReadOnly: pulumi.Bool(true)})
		volumes = append(volumes, corev1.VolumeArgs{Name: pulumi.String("podlogs"), HostPath: &corev1.HostPathVolumeSourceArgs{Path: pulumi.String(args.PodLogsDir), Type: pulumi.String("Directory")}})
	}
	if _, err := appsv1.NewDaemonSet(ctx, name, &appsv1.DaemonSetArgs{
		Metadata: dsMeta,
		Spec: &appsv1.DaemonSetSpecArgs{
			Selector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(workload.Labels(Name))},
			UpdateStrategy: &appsv1.DaemonSetUpdateStrategyArgs{Type: pulumi.String("RollingUpdate")},
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(workload.Labels(Name)),
					Annotations: pulumi.StringMap{ConfigRevision: pulumi.String(configDigest(files))}},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName: pulumi.String(Name),
					// Every node, control-plane and tainted ones included.
					Tolerations: corev1.TolerationArray{corev1.TolerationArgs{Operator: pulumi.String("Exists")}},
					SecurityContext: &corev1.PodSecurityContextArgs{
						SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String(Name),
						Image:           pulumi.String(args.Image),
						ImagePullPolicy: pulumi.String("Always"),
						Args:            pulumi.ToStringArray([]string{"--config=" + configDir + "/fluent-bit.conf"}),
						Env:             env,
						Ports:           corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String(MetricsPort), ContainerPort: pulumi.Int(2020)}},
						LivenessProbe:   &corev1.ProbeArgs{HttpGet: &corev1.HTTPGetActionArgs{Path: pulumi.String("/"), Port: pulumi.String(MetricsPort)}},
						ReadinessProbe:  &corev1.ProbeArgs{HttpGet: &corev1.HTTPGetActionArgs{Path: pulumi.String("/api/v1/health"), Port: pulumi.String(MetricsPort)}},
						Resources:       args.Resources.Args(),
						SecurityContext: &corev1.SecurityContextArgs{
							// Root only to read the nodes' root-owned log files; nothing else.
							RunAsUser:                pulumi.Int(0),
							AllowPrivilegeEscalation: pulumi.Bool(false),
							ReadOnlyRootFilesystem:   pulumi.Bool(true),
							Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
						},
						VolumeMounts: mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}, after...); err != nil {
		return fmt.Errorf("fluent-bit DaemonSet: %w", err)
	}
	return nil
}
