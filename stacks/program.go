package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/cloud"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/pki"
	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/components/storage"
	"github.com/kcp-tmc/kcp-tmc/components/workload"
)

// Program is the kcp-tmc Pulumi program as `pulumi up` runs it: relative
// paths resolve against the project root the engine reports (or the working
// directory, which the engine sets to it).
func Program(ctx *pulumi.Context) error { return ProgramIn("")(ctx) }

// ProgramIn is the program for a project in projectDir; the Automation API
// needs it because inline programs run wherever the host process runs. It
// validates the whole stack config before registering any resource, so bad
// input never reaches the engine and never half-applies a stack.
func ProgramIn(projectDir string) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		dir := projectDir
		if dir == "" {
			dir = projectRoot(ctx)
		}
		keys, err := stackConfigKeys(ctx.Stack(), dir)
		if err != nil {
			return fmt.Errorf("stack %q: %w", ctx.Stack(), err)
		}
		cfg, err := Load(programConfig{ctx, keys})
		if err != nil {
			return fmt.Errorf("stack %q: invalid configuration:\n%w", ctx.Stack(), err)
		}
		return Deploy(ctx, cfg, dir)
	}
}

// programConfig is the running program's config and the keys it was given,
// so Load can refuse keys it does not know.
type programConfig struct {
	*pulumi.Context
	keys []string
}

func (p programConfig) ConfigKeys() []string { return p.keys }

// stackConfigKeys lists the config keys of the run: PULUMI_CONFIG when the Go
// language host runs main.go (`pulumi up`) or a mock test, else the stack's
// own files, which an inline run through the Automation API reads (the SDK
// does not let an inline program list its config).
func stackConfigKeys(stack, projectDir string) ([]string, error) {
	if env := os.Getenv(pulumi.EnvConfig); env != "" {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal([]byte(env), &cfg); err != nil {
			return nil, fmt.Errorf("reading %s: %w", pulumi.EnvConfig, err)
		}
		return slices.Sorted(maps.Keys(cfg)), nil
	}
	var keys []string
	for _, name := range []string{"Pulumi.yaml", "Pulumi." + stack + ".yaml"} {
		data, err := os.ReadFile(filepath.Join(projectDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var file struct {
			Config map[string]json.RawMessage `json:"config"`
		}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		for k := range file.Config {
			if !strings.Contains(k, ":") {
				k = Namespace + ":" + k // a key without namespace is the project's
			}
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// NewProgram is the program for a Config built in Go rather than read from
// a stack file — for another Go program that runs it with
// auto.UpsertStackInlineSource (examples/embed). Start from Profile(env) so
// unset fields get the environment's defaults; NewProgram validates the whole
// Config before the engine sees anything. Secret fields (Kubeconfig,
// ExistingCAs, webhook URLs, passwords) never pass through a stack file here
// and are registered as Pulumi secrets. projectDir anchors a relative
// target.renderDir.
func NewProgram(cfg Config, projectDir string) (pulumi.RunFunc, error) {
	// Own copies of the slices and maps: the caller changing them later must
	// not bypass the validation below.
	cfg.Zones, cfg.Clusters = slices.Clone(cfg.Zones), slices.Clone(cfg.Clusters)
	cfg.ClusterKubeconfigs, cfg.ExistingCAs = maps.Clone(cfg.ClusterKubeconfigs), maps.Clone(cfg.ExistingCAs)
	cfg.KubeconfigIsSecret, cfg.ExistingCAsIsSecret = true, true
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return func(ctx *pulumi.Context) error {
		dir := projectDir
		if dir == "" {
			dir = projectRoot(ctx)
		}
		return Deploy(ctx, &cfg, dir)
	}, nil
}

// Deploy builds every component of a validated Config; projectDir anchors
// relative paths such as target.renderDir.
func Deploy(ctx *pulumi.Context, cfg *Config, projectDir string) error {
	if cfg.Target.SkipAwait {
		if err := ctx.RegisterStackTransform(skipAwaitTransform); err != nil {
			return fmt.Errorf("target.skipAwait: %w", err)
		}
	}
	awsProvider := awsProviders(ctx)
	var aws *cloud.EKS
	if cfg.Cloud.Mode == "eks" {
		p, err := awsProvider(cfg.Cloud.Region)
		if err != nil {
			return err
		}
		if aws, err = cloud.NewEKS(ctx, "cloud", cloudArgs(cfg), pulumi.Provider(p)); err != nil {
			return fmt.Errorf("cloud: %w", err)
		}
		ctx.Export("clusterName", aws.ClusterName)
		ctx.Export("oidcProviderArn", aws.OIDCProviderARN)
	}
	provider, err := newKubernetesProvider(ctx, cfg, projectDir, aws)
	if err != nil {
		return err
	}
	k8s := pulumi.Providers(provider)

	plat, err := platform.NewPlatform(ctx, "platform", platform.Args{
		Namespace:          cfg.Namespace,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Labels:             map[string]string{"kcp-tmc.io/environment": cfg.Environment},
		RetainOnDelete:     cfg.Environment != "dev",
	}, k8s)
	if err != nil {
		return fmt.Errorf("platform: %w", err)
	}

	certs, err := pki.NewPKI(ctx, "pki", pkiArgs(cfg), k8s, pulumi.DependsOn([]pulumi.Resource{plat}))
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}

	storArgs := storageArgs(cfg)
	if aws != nil && storArgs.Create && storArgs.KMSKeyID == nil {
		storArgs.KMSKeyID = aws.VolumeKeyARN // the cloud layer's volume key
	}
	stor, err := storage.NewStorage(ctx, "storage", storArgs, k8s)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	after := pulumi.DependsOn([]pulumi.Resource{plat, certs, stor})
	db, err := etcd.NewEtcd(ctx, "etcd", etcdArgs(cfg), k8s, after)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	kcpProviders, err := newKCPProviders(ctx, cfg, projectDir)
	if err != nil {
		return err
	}
	kArgs := kcpArgs(cfg)
	kArgs.KCPProvider = kcpProviders[rootWorkspace]
	server, err := kcp.NewKCP(ctx, "kcp", kArgs, k8s, pulumi.DependsOn([]pulumi.Resource{plat, certs, db}))
	if err != nil {
		return fmt.Errorf("kcp: %w", err)
	}
	if m := cfg.Ingress.Mode; m == ingress.ModePassthrough || m == ingress.ModeTerminate {
		_ = ctx.Log.Warn(fmt.Sprintf("kcp-tmc:ingress.mode %s relies on ingress-nginx, retired in March 2026 (no releases, no CVE fixes): "+
			"move to ingress.mode gateway or loadbalancer (docs/ingress.md)", m), nil)
	}
	entry, err := ingress.NewIngress(ctx, "ingress", ingressArgs(cfg), k8s, pulumi.DependsOn([]pulumi.Resource{server}))
	if err != nil {
		return fmt.Errorf("ingress: %w", err)
	}

	if cfg.Backup.Enabled {
		providers := []pulumi.ProviderResource{provider}
		if a := backupArgs(cfg); a.Target == backup.TargetS3 && a.S3.Endpoint == "" {
			p, err := awsProvider(cfg.Backup.Region)
			if err != nil {
				return err
			}
			providers = append(providers, p)
		}
		bArgs := backupArgs(cfg)
		if aws != nil && bArgs.S3.IRSA != nil {
			// The backup role trusts the cluster the cloud layer created.
			bArgs.S3.IRSA = &backup.IRSAProvider{ARN: aws.OIDCProviderARN, Issuer: aws.OIDCIssuer}
		}
		snapshots, err := backup.NewBackup(ctx, "backup", bArgs, pulumi.Providers(providers...),
			pulumi.DependsOn([]pulumi.Resource{plat, certs, db}))
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		ctx.Export("backupTarget", snapshots.Target)
	}

	if cfg.Monitoring.Enabled {
		if _, err := monitoring.NewMonitoring(ctx, "monitoring", monitoringArgs(cfg), k8s,
			pulumi.DependsOn([]pulumi.Resource{plat, certs, server})); err != nil {
			return fmt.Errorf("monitoring: %w", err)
		}
	}

	if cfg.Logging.Enabled {
		if _, err := logging.NewLogging(ctx, "logging", loggingArgs(cfg), k8s); err != nil {
			return fmt.Errorf("logging: %w", err)
		}
	}

	if err := deployAgents(ctx, cfg, projectDir, certs, kcpProviders); err != nil {
		return err
	}

	ctx.Export("environment", pulumi.String(cfg.Environment))
	ctx.Export("tlsSecrets", certs.SecretNames)
	ctx.Export("storageClass", stor.ClassName)
	ctx.Export("etcdURL", db.ClientURL)
	ctx.Export("kcpURL", entry.URL)
	ctx.Export("namespace", plat.Namespace)
	if cfg.Target.Mode == TargetRender {
		ctx.Export("renderDir", pulumi.String(renderDir(cfg, projectDir)))
	}
	return nil
}

// Per-container ephemeral-storage budgets: logs and scratch space (kcp's
// includes its rotated audit log).
var (
	ephemeralKCP   = [2]string{"256Mi", "2Gi"}
	ephemeralSmall = [2]string{"128Mi", "512Mi"}
)

func workloadResources(r Resources, ephemeral [2]string) workload.Resources {
	return workload.Resources{
		RequestCPU: r.Requests.CPU, RequestMemory: r.Requests.Memory,
		LimitCPU: r.Limits.CPU, LimitMemory: r.Limits.Memory,
		RequestEphemeral: ephemeral[0], LimitEphemeral: ephemeral[1],
	}
}

// sizeInGi normalises a validated "<n>Gi" or "<n>Ti" size to Gi.
func sizeInGi(s string) string {
	if strings.HasSuffix(s, "Ti") {
		n, _ := strconv.Atoi(strings.TrimSuffix(s, "Ti"))
		return strconv.Itoa(n*1024) + "Gi"
	}
	return s
}

func spread(mode string, zones []string) workload.Spread {
	return workload.Spread{Mode: mode, Zones: zones}
}

func storageArgs(cfg *Config) storage.Args {
	a := storage.Args{
		ClassName: cfg.Etcd.StorageClass, Create: cfg.Storage.Create, VolumeType: cfg.Storage.VolumeType,
		IOPS: cfg.Storage.IOPS, ThroughputMiBps: cfg.Storage.ThroughputMiBps, ReclaimPolicy: cfg.Storage.ReclaimPolicy,
	}
	if cfg.Storage.KMSKeyID != "" {
		a.KMSKeyID = pulumi.String(cfg.Storage.KMSKeyID)
	}
	return a
}

func etcdArgs(cfg *Config) etcd.Args {
	quota, _ := (&validator{}).memory("", cfg.Etcd.QuotaBackendBytes)
	return etcd.Args{
		Namespace: cfg.Namespace, Replicas: cfg.Etcd.Replicas, Image: cfg.Etcd.Image, Version: cfg.Etcd.Version,
		StorageClass: cfg.Etcd.StorageClass, StorageSize: sizeInGi(cfg.Etcd.StorageSize), QuotaBackendBytes: quota,
		Resources:    workloadResources(cfg.Etcd.Resources, ephemeralSmall),
		Spread:       spread(cfg.Etcd.AntiAffinity, cfg.Zones),
		ServerSecret: pki.CertEtcdServer, PeerSecret: pki.CertEtcdPeer,
		Protect: cfg.Environment != "dev",
		Clients: []map[string]string{kcp.Selector(), BackupSelector},
	}
}

// agentArgs maps one kcp-tmc:clusters entry (identity filled in by the caller).
func agentArgs(cfg *Config, cl Cluster) agents.Args {
	kind := cl.Agent
	if kind == "" {
		kind = agents.KindSyncAgent
	}
	workspace := cl.Workspace
	if workspace == "" {
		workspace = "root:compute"
	}
	labels := map[string]string{}
	if cl.Region != "" {
		labels["topology.kubernetes.io/region"] = cl.Region
	}
	if cl.Zone != "" {
		labels["topology.kubernetes.io/zone"] = cl.Zone
	}
	var res []agents.Resource
	for _, r := range cl.Resources {
		res = append(res, agents.Resource{Group: r.Group, Version: r.Version, Kind: r.Kind, Plural: r.Plural})
	}
	return agents.Args{
		Cluster: cl.Name, Kind: kind, Image: cl.Image, Replicas: cl.Replicas, Namespace: cl.Namespace,
		KCPServer: kcp.PublicURL(cfg.Domain), Workspace: workspace, Resources: res, Labels: labels,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Container:          workloadResources(cfg.AgentResources, ephemeralSmall),
	}
}

// deployAgents connects every configured cluster: a provider per cluster
// (its kubeconfig, or its own render directory) and one agents component.
// kcp's side goes through a provider for kcp: rendered in render mode,
// applied once kcp runs and kcp-tmc:kcpKubeconfig is set.
func deployAgents(ctx *pulumi.Context, cfg *Config, projectDir string, certs *pki.PKI, kcpProviders map[string]pulumi.ProviderResource) error {
	workspaces, err := kcpWorkspaces(ctx, cfg, kcpProviders)
	if err != nil {
		return err
	}
	for _, cl := range cfg.Clusters {
		args := &kubernetes.ProviderArgs{}
		if cfg.Target.Mode == TargetRender {
			args.RenderYamlToDirectory = pulumi.StringPtr(filepath.Join(renderDir(cfg, projectDir), "clusters", cl.Name))
		} else {
			args.Kubeconfig = pulumi.ToSecret(pulumi.String(cfg.ClusterKubeconfigs[cl.Name])).(pulumi.StringOutput).ToStringPtrOutput()
		}
		provider, err := kubernetes.NewProvider(ctx, "cluster-"+cl.Name, args)
		if err != nil {
			return fmt.Errorf("cluster %s provider: %w", cl.Name, err)
		}
		a := agentArgs(cfg, cl)
		// Self-managed: Pulumi minted the key and writes it onto the cluster.
		// cert-manager: the key is issued in kcp's cluster after up, and
		// `kcp-tmc agent-identity` copies it (docs/agents.md).
		a.PublicServerCert = cfg.TLS.ACME != nil
		if id, ok := certs.Identities[cl.Name]; ok {
			a.ClientCert, a.ClientKey, a.ServerCA = id.Cert, id.Key, id.ServerCA
		} else {
			a.CopiedIdentity = true
		}
		if p, ok := kcpProviders[a.Workspace]; ok {
			a.KCPProvider = p
			a.KCPDependsOn = []pulumi.Resource{workspaces[a.Workspace]}
		}
		if _, err := agents.NewAgent(ctx, "agent-"+cl.Name, a, pulumi.Providers(provider)); err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
	}
	return nil
}

// kcpProviderName names the provider (and render directory) of a
// workspace: kcp-<path with dashes>, except that the first cluster's
// workspace keeps the name "kcp" it has had since stacks had clusters, so
// no existing APIExport moves to another provider (which would replace it).
func kcpProviderName(cfg *Config, ws string) string {
	if len(cfg.Clusters) > 0 && ws == agentArgs(cfg, cfg.Clusters[0]).Workspace {
		return "kcp"
	}
	return "kcp-" + strings.ReplaceAll(ws, ":", "-")
}

// kcpWorkspacePaths are the workspaces the stack writes to: the clusters',
// then every ancestor (whose provider creates the workspace below it), then
// root; each once.
func kcpWorkspacePaths(cfg *Config) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ws string) {
		if !seen[ws] {
			seen[ws] = true
			out = append(out, ws)
		}
	}
	for _, cl := range cfg.Clusters {
		add(agentArgs(cfg, cl).Workspace)
	}
	for _, cl := range cfg.Clusters {
		for _, a := range ancestors(agentArgs(cfg, cl).Workspace) {
			add(a)
		}
	}
	add(rootWorkspace)
	return out
}

// rootWorkspace holds kcp's own RBAC (the metrics reader binding).
const rootWorkspace = "root"

// newKCPProviders makes one provider for kcp per workspace the stack writes
// to, so each cluster's APIExport lands in that cluster's workspace, each
// workspace is created through its parent's provider, and kcp's own RBAC
// lands in root: kcp-tmc:kcpKubeconfig with its server path set to
// /clusters/<workspace>. No kcpKubeconfig and no render mode: no kcp side
// yet (a first up installs kcp, a second connects).
func newKCPProviders(ctx *pulumi.Context, cfg *Config, projectDir string) (map[string]pulumi.ProviderResource, error) {
	out := map[string]pulumi.ProviderResource{}
	if cfg.Target.Mode != TargetRender && cfg.KCPKubeconfig == "" {
		return out, nil
	}
	for _, ws := range kcpWorkspacePaths(cfg) {
		name := kcpProviderName(cfg, ws)
		args := &kubernetes.ProviderArgs{}
		if cfg.Target.Mode == TargetRender {
			args.RenderYamlToDirectory = pulumi.StringPtr(filepath.Join(renderDir(cfg, projectDir), name))
		} else {
			kc, err := workspaceKubeconfig(cfg.KCPKubeconfig, ws)
			if err != nil {
				// Never echo the kubeconfig: it holds credentials.
				return nil, fmt.Errorf("kcp-tmc:kcpKubeconfig: %w", err)
			}
			args.Kubeconfig = pulumi.ToSecret(pulumi.String(kc)).(pulumi.StringOutput).ToStringPtrOutput()
		}
		p, err := kubernetes.NewProvider(ctx, name, args)
		if err != nil {
			return nil, fmt.Errorf("kcp provider for workspace %s: %w", ws, err)
		}
		out[ws] = p
	}
	return out, nil
}

// ancestors are the workspace paths above ws, nearest first, down to root
// ("root:a:b" → "root:a", "root").
func ancestors(ws string) []string {
	var out []string
	for i := strings.LastIndex(ws, ":"); i > 0; i = strings.LastIndex(ws, ":") {
		ws = ws[:i]
		out = append(out, ws)
	}
	return out
}

// kcpWorkspaces creates every workspace the clusters use that is not root,
// each through its parent's provider, and returns them by path. A fresh kcp
// has none of them (kcp v0.32.3 has no root:compute), and a workspace's
// content can only be written once it is Ready, so Pulumi waits for that.
// Workspaces hold their users' data: destroy or removing a cluster leaves
// them in kcp.
func kcpWorkspaces(ctx *pulumi.Context, cfg *Config, providers map[string]pulumi.ProviderResource) (map[string]pulumi.Resource, error) {
	out := map[string]pulumi.Resource{}
	var create func(ws string) error
	create = func(ws string) error {
		if _, done := out[ws]; done || ws == rootWorkspace {
			return nil
		}
		parent := ancestors(ws)[0]
		if err := create(parent); err != nil {
			return err
		}
		opts := []pulumi.ResourceOption{pulumi.Provider(providers[parent]), pulumi.RetainOnDelete(true)}
		if p, ok := out[parent]; ok {
			opts = append(opts, pulumi.DependsOn([]pulumi.Resource{p}))
		}
		res, err := apiextensions.NewCustomResource(ctx, "workspace-"+strings.ReplaceAll(ws, ":", "-"), &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("tenancy.kcp.io/v1alpha1"), Kind: pulumi.String("Workspace"),
			Metadata: &metav1.ObjectMetaArgs{
				Name:        pulumi.String(ws[strings.LastIndex(ws, ":")+1:]),
				Annotations: pulumi.StringMap{"pulumi.com/waitFor": pulumi.String("jsonpath={.status.phase}=Ready")},
			},
		}, opts...)
		if err != nil {
			return fmt.Errorf("kcp workspace %s: %w", ws, err)
		}
		out[ws] = res
		return nil
	}
	if len(providers) == 0 {
		return out, nil
	}
	for _, cl := range cfg.Clusters {
		if err := create(agentArgs(cfg, cl).Workspace); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// workspaceKubeconfig points every cluster entry of a kcp kubeconfig at the
// logical cluster ws (https://host/clusters/<ws>).
func workspaceKubeconfig(kubeconfig, ws string) (string, error) {
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil {
		return "", errors.New("not a kubeconfig")
	}
	if len(cfg.Clusters) == 0 {
		return "", errors.New("the kubeconfig names no cluster")
	}
	for name, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("cluster %q: server is not a URL", name)
		}
		u.Path, u.RawPath = "/clusters/"+ws, ""
		c.Server = u.String()
	}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return "", fmt.Errorf("writing the workspace kubeconfig: %w", err)
	}
	return string(b), nil
}

func loggingArgs(cfg *Config) logging.Args {
	l := cfg.Logging
	a := logging.Args{ElasticsearchHost: l.ElasticsearchHost, ElasticsearchPort: l.ElasticsearchPort, Index: l.Index,
		TLS: l.TLS, Username: l.Username, Image: l.Image,
		Resources: workload.Resources{RequestCPU: "50m", RequestMemory: "64Mi", LimitCPU: "500m", LimitMemory: "256Mi", RequestEphemeral: "64Mi", LimitEphemeral: "256Mi"}}
	if l.Password != "" {
		a.Password = pulumi.ToSecret(pulumi.String(l.Password)).(pulumi.StringOutput)
	}
	return a
}

func monitoringArgs(cfg *Config) monitoring.Args {
	m := cfg.Monitoring
	a := monitoring.Args{
		Namespace: cfg.Namespace, Interval: m.Interval, RuleLabels: m.RuleLabels,
		ServerCASecret: pki.CAServer, MetricsViewerSecret: pki.CertMetricsViewer,
		SlackChannel: m.SlackChannel, InstallStack: m.InstallStack, StackVersion: m.StackVersion,
		PodSecurityVersion: cfg.PodSecurityVersion,
	}
	if cfg.TLS.Mode == pki.ModeCertManager && cfg.TLS.InstallCertManager {
		a.CertManagerNamespace = "cert-manager" // where the pki component installs it
	}
	if m.SlackWebhookURL != "" {
		a.SlackWebhookURL = pulumi.ToSecret(pulumi.String(m.SlackWebhookURL)).(pulumi.StringOutput)
	}
	if m.PagerDutyKey != "" {
		a.PagerDutyKey = pulumi.ToSecret(pulumi.String(m.PagerDutyKey)).(pulumi.StringOutput)
	}
	return a
}

// BackupSelector labels the backup job's pods (allowed to reach etcd).
var BackupSelector = workload.Labels(backup.Name)

func backupArgs(cfg *Config) backup.Args {
	b := cfg.Backup
	class := b.PVCStorageClass
	if class == "" {
		class = cfg.Etcd.StorageClass
	}
	var endpoints []string
	for _, m := range etcd.MemberNames(cfg.Etcd.Replicas) {
		endpoints = append(endpoints, etcd.MemberURL(m, cfg.Namespace, etcd.ClientPort))
	}
	a := backup.Args{
		Namespace: cfg.Namespace, ClusterName: ClusterName(cfg.Environment),
		Schedule: b.Schedule, TimeZone: b.TimeZone, VerifySchedule: b.VerifySchedule, Image: b.Image,
		EtcdImage: cfg.Etcd.Image + ":" + cfg.Etcd.Version, EtcdURL: etcd.ClientURL(cfg.Namespace),
		EtcdEndpoints: endpoints, ClientSecret: pki.CertEtcdClientBackup, EtcdSelector: workload.Labels(etcd.Name),
		Target: b.Target,
		S3: backup.S3{Bucket: b.Bucket, Prefix: b.Prefix, Region: b.Region, Endpoint: b.Endpoint,
			TransitionDays: b.TransitionDays, ArchiveDays: b.ArchiveDays, RetentionDays: b.RetentionDays,
			NoncurrentDays: b.NoncurrentDays, ObjectLockDays: b.ObjectLockDays,
			OIDCProviderARN: b.OIDCProviderARN, OIDCIssuer: b.OIDCIssuer},
		PVC:       backup.PVC{StorageClass: class, Size: b.PVCSize},
		Resources: workload.Resources{RequestCPU: "100m", RequestMemory: "128Mi", LimitCPU: "1", LimitMemory: "512Mi", RequestEphemeral: "1Gi", LimitEphemeral: "10Gi"},
		Protect:   cfg.Environment != "dev",
	}
	if cfg.Cloud.Mode == "eks" {
		// Known once the cloud layer exists: Deploy puts its outputs here.
		a.S3.IRSA = &backup.IRSAProvider{ARN: pulumi.String(""), Issuer: pulumi.String("")}
	}
	return a
}

// ClusterName is the stack's name for its cluster: the EKS cluster, the
// backup objects' key prefix, the AWS resources' names.
func ClusterName(env string) string { return "kcp-tmc-" + env }

func ingressArgs(cfg *Config) ingress.Args {
	a := ingress.Args{
		Mode: cfg.Ingress.Mode, Namespace: cfg.Namespace, Host: kcp.PublicHost(cfg.Domain), ClassName: cfg.Ingress.ClassName,
		BackendService: kcp.FrontProxyService, BackendPort: 443, TargetPort: kcp.FrontProxyPort,
		NLB:               cfg.Environment == "prod",
		InstallController: cfg.Ingress.InstallController, ControllerVersion: cfg.Ingress.ControllerVersion,
		ControllerReplicas: cfg.Ingress.ControllerReplicas,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Labels:             map[string]string{"kcp-tmc.io/environment": cfg.Environment},
	}
	if g := cfg.Ingress.Gateway; g != nil {
		a.Gateway = ingress.Gateway{Name: g.Name, Namespace: g.Namespace, Listener: g.Listener, ClassName: g.ClassName}
	}
	return a
}

func oidcArgs(o *OIDC) *kcp.OIDC {
	if o == nil {
		return nil
	}
	return &kcp.OIDC{IssuerURL: o.IssuerURL, ClientID: o.ClientID, UsernameClaim: o.UsernameClaim, UsernamePrefix: o.UsernamePrefix,
		GroupsClaim: o.GroupsClaim, GroupsPrefix: o.GroupsPrefix, CABundle: o.CABundle}
}

func kcpArgs(cfg *Config) kcp.Args {
	return kcp.Args{
		Namespace: cfg.Namespace, Domain: cfg.Domain, Image: cfg.KCP.Image, Version: cfg.KCP.Version,
		Replicas: cfg.KCP.Replicas, FrontProxyReplicas: cfg.KCP.FrontProxyReplicas, HomeWorkspaces: cfg.KCP.HomeWorkspaces,
		ExtraFlags: cfg.KCP.ExtraFlags, FrontProxyExtraFlags: cfg.KCP.FrontProxyExtraFlags, OIDC: oidcArgs(cfg.KCP.OIDC),
		Resources:           workloadResources(cfg.KCP.Resources, ephemeralKCP),
		FrontProxyResources: workloadResources(cfg.KCP.FrontProxyResources, ephemeralSmall),
		Spread:              spread(cfg.KCP.AntiAffinity, cfg.Zones),
		EtcdURL:             etcd.ClientURL(cfg.Namespace),
		EtcdSelector:        workload.Labels(etcd.Name),
		Certs: kcp.Certs{
			Server: pki.CertKCPServer, FrontProxy: pki.CertFrontProxy, FrontProxyClient: pki.CertFrontProxyClient,
			FrontProxyKubeconfig: pki.CertFrontProxyKubeconfig,
			EtcdClient:           pki.CertEtcdClientKCP, ServiceAccount: pki.CertServiceAccount,
			ClientCA: pki.CAClient, RequestHeaderCA: pki.CARequestHeader, ServerCA: pki.CAServer,
			FrontProxyPublic: frontProxyPublic(cfg),
		},
		MetricsGroup:      pki.MetricsViewersGroup,
		FrontProxyClients: ingress.FrontProxyClients(cfg.Ingress.Mode),
	}
}

func clusterNames(cfg *Config) []string {
	var names []string
	for _, cl := range cfg.Clusters {
		names = append(names, cl.Name)
	}
	return names
}

// awsProviders returns a function giving the program's AWS provider for a
// region, creating one per region on first use.
func awsProviders(ctx *pulumi.Context) func(region string) (*aws.Provider, error) {
	made := map[string]*aws.Provider{}
	return func(region string) (*aws.Provider, error) {
		if p, ok := made[region]; ok {
			return p, nil
		}
		name := "aws"
		if len(made) > 0 {
			name = "aws-" + region
		}
		p, err := aws.NewProvider(ctx, name, &aws.ProviderArgs{Region: pulumi.String(region)})
		if err != nil {
			return nil, fmt.Errorf("aws provider for %s: %w", region, err)
		}
		made[region] = p
		return p, nil
	}
}

func cloudArgs(cfg *Config) cloud.Args {
	c := cfg.Cloud
	var existing *cloud.ExistingVPC
	if v := c.ExistingVPC; v != nil {
		existing = &cloud.ExistingVPC{ID: v.ID, PrivateSubnets: v.PrivateSubnets, PublicSubnets: v.PublicSubnets}
	}
	return cloud.Args{
		ExistingVPC: existing,
		ClusterName: ClusterName(cfg.Environment), Region: c.Region, Zones: cfg.Zones, KubernetesVersion: c.KubernetesVersion,
		VPCCIDR: c.VPCCIDR, NATPerZone: c.NATPerZone, PublicEndpoint: c.PublicEndpoint, PublicCIDRs: c.PublicCIDRs,
		InstanceTypes: c.InstanceTypes,
		NodesPerZone:  cloud.Nodes{Min: c.NodesPerZone.Min, Desired: c.NodesPerZone.Desired, Max: c.NodesPerZone.Max},
		Tags:          map[string]string{"environment": cfg.Environment, "owner": c.Owner, "cost-center": c.CostCenter},
	}
}

// pkiArgs maps the validated kcp-tmc:tls and kcp-tmc:existingCAs keys.
func pkiArgs(cfg *Config) pki.Args {
	hours := func(s string) time.Duration { d, _ := time.ParseDuration(s); return d }
	args := pki.Args{
		Mode:               cfg.TLS.Mode,
		Namespace:          cfg.Namespace,
		Domain:             cfg.Domain,
		EtcdReplicas:       cfg.Etcd.Replicas,
		SyncTargets:        clusterNames(cfg),
		CADuration:         hours(cfg.TLS.CADuration),
		LeafDuration:       hours(cfg.TLS.LeafDuration),
		RenewBefore:        hours(cfg.TLS.RenewBefore),
		InstallCertManager: cfg.TLS.InstallCertManager,
		CertManagerVersion: cfg.TLS.CertManagerVersion,
	}
	if a := cfg.TLS.ACME; a != nil {
		args.ACME = &pki.ACME{Email: a.Email, Server: a.Server, IngressClass: a.IngressClass}
	}
	for name, ca := range cfg.ExistingCAs {
		if args.ExistingCAs == nil {
			args.ExistingCAs = map[string]pki.ExistingCA{}
		}
		args.ExistingCAs[name] = pki.ExistingCA{CertPEM: ca.Cert, KeyPEM: ca.Key}
	}
	return args
}

// newKubernetesProvider points every Kubernetes resource at the stack's
// target: a directory of rendered YAML, or a cluster through a kubeconfig.
func newKubernetesProvider(ctx *pulumi.Context, cfg *Config, projectDir string, aws *cloud.EKS) (*kubernetes.Provider, error) {
	args := &kubernetes.ProviderArgs{}
	if aws != nil {
		args.Kubeconfig = aws.Kubeconfig.ToStringPtrOutput()
	}
	switch cfg.Target.Mode {
	case TargetRender:
		args.RenderYamlToDirectory = pulumi.StringPtr(renderDir(cfg, projectDir))
	case TargetKubeconfig:
		if cfg.Kubeconfig != "" {
			args.Kubeconfig = pulumi.ToSecret(pulumi.String(cfg.Kubeconfig)).(pulumi.StringOutput).ToStringPtrOutput()
		}
		if cfg.Target.Context != "" {
			args.Context = pulumi.StringPtr(cfg.Target.Context)
		}
	}
	p, err := kubernetes.NewProvider(ctx, "kubernetes", args)
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	return p, nil
}

// renderDir resolves target.renderDir against the project, so the CLI,
// `pulumi up` and tests write to the same place whatever their working directory.
func renderDir(cfg *Config, projectDir string) string {
	if filepath.IsAbs(cfg.Target.RenderDir) {
		return cfg.Target.RenderDir
	}
	return filepath.Join(projectDir, cfg.Target.RenderDir)
}

func projectRoot(ctx *pulumi.Context) string {
	if root := ctx.RootDirectory(); root != "" {
		return root
	}
	wd, _ := os.Getwd()
	return wd
}

// frontProxyPublic is the ACME certificate the front-proxy serves for
// kcp.<domain>, when tls.acme asks for one.
func frontProxyPublic(cfg *Config) string {
	if cfg.TLS.ACME != nil {
		return pki.CertFrontProxyPublic
	}
	return ""
}
