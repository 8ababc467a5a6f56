package stacks

// The mapping of the stack config to each component's Args.

import (
	"cmp"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/awslb"
	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/cloud"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/components/route53"
	"github.com/kcp-tmc/kcp-tmc/components/storage"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

func spread(mode string, zones []string) workload.Spread {
	return workload.Spread{Mode: mode, Zones: zones}
}

func platformArgs(cfg *Config) platform.Args {
	labels := map[string]string{"kcp-tmc.io/environment": cfg.Environment}
	if installsLoadBalancerController(cfg) {
		// The NLB sends to pod IPs: a front-proxy or shard pod of a rollout
		// is Ready only once the NLB has it as a healthy target, so a
		// rollout never leaves the NLB without one.
		labels[awslb.ReadinessGateLabel] = "enabled"
	}
	return platform.Args{
		Namespace:          cfg.Namespace,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Labels:             labels,
		RetainOnDelete:     cfg.Environment != "dev",
	}
}

func storageArgs(cfg *Config) storage.Args {
	a := storage.Args{
		ClassName: cfg.Etcd.StorageClass, Create: cfg.Storage.Create, VolumeType: cfg.Storage.VolumeType,
		IOPS: cfg.Storage.IOPS, ThroughputMiBps: cfg.Storage.ThroughputMiBps, ReclaimPolicy: cfg.Storage.ReclaimPolicy,
		ModifyVolumes: cfg.ModifiesVolumes(),
	}
	if cfg.Storage.KMSKeyID != "" {
		a.KMSKeyID = pulumi.String(cfg.Storage.KMSKeyID)
	}
	return a
}

// ModifiesVolumes is storage.modifyVolumes as it applies: only with
// storage.create; unset, true where the stack knows the cluster serves
// VolumeAttributesClass — the one the cloud layer makes, at
// storage.ModifyVolumesSince or later. Another cluster's version is not
// known before the up, and on an older one the up would fail half-way (the
// Kubernetes provider's preview does not look the kind up; seen on a real
// apiserver with the API off).
func (c *Config) ModifiesVolumes() bool {
	if !c.Storage.Create {
		return false
	}
	if m := c.Storage.ModifyVolumes; m != nil {
		return *m
	}
	return c.Cloud.Mode == "eks" && !olderThan(c.Cloud.KubernetesVersion, storage.ModifyVolumesSince)
}

// olderThan reports whether Kubernetes version v (such as "1.33") is older
// than since; an unparsable v (refused by its own key's check) is not.
func olderThan(v, since string) bool {
	got, err := version.ParseGeneric(v)
	return err == nil && got.LessThan(version.MustParseGeneric(since))
}

// volumeAttributesClass is what the claims of an etcd on StorageClass
// class name: the created class's VolumeAttributesClass, or none.
func volumeAttributesClass(cfg *Config, class string) string {
	if st := storageArgs(cfg); st.ModifyVolumes && class == st.ClassName {
		return storage.VolumeAttributesClassName(st.WithDefaults())
	}
	return ""
}

// rootEtcd is the root shard's etcd cluster.
func rootEtcd(cfg *Config) etcd.Cluster { return etcd.ClusterOf(Shards(cfg).Root, cfg.Namespace) }

// Shards resolves the stack's shards once — the root shard, kcp.shards and
// the separate cache server of kcp.cache — with the defaults each takes
// from kcp.* and etcd.*: every component reads a shard from here.
func Shards(cfg *Config) shard.Set {
	set := shard.Set{Root: shard.Shard{Name: shard.Root, Replicas: cfg.KCP.Replicas, Resources: cfg.KCP.Resources,
		EtcdMembers: cfg.Etcd.Replicas, EtcdStorageSize: cfg.Etcd.StorageSize, EtcdStorageClass: cfg.Etcd.StorageClass}}
	for _, s := range cfg.KCP.Shards {
		set.Shards = append(set.Shards, resolve(set.Root, s.Name, s.Replicas, s.Resources, s.Etcd))
	}
	if c := cfg.KCP.Cache; c.Mode == CacheSeparate {
		// The cache server is sized like the front-proxy unless set.
		base := set.Root
		base.Replicas, base.Resources = cfg.KCP.FrontProxyReplicas, cfg.KCP.FrontProxyResources
		cache := resolve(base, shard.Cache, c.Replicas, c.Resources, c.Etcd)
		set.Cache = &cache
	}
	return set
}

// resolve is the shard named name: base with the values its entry sets.
func resolve(base shard.Shard, name string, replicas *int, resources *workload.Resources, e ShardEtcd) shard.Shard {
	s := base
	s.Name = name
	if replicas != nil {
		s.Replicas = *replicas
	}
	if resources != nil {
		s.Resources = *resources
	}
	if e.StorageSize != "" {
		s.EtcdStorageSize = e.StorageSize
	}
	if e.StorageClass != "" {
		s.EtcdStorageClass = e.StorageClass
	}
	return s
}

// EtcdClusters are the stack's backed-up etcd clusters: the root shard's,
// then each other shard's (all with etcd.replicas members).
func EtcdClusters(cfg *Config) []etcd.Cluster {
	var out []etcd.Cluster
	for _, s := range Shards(cfg).EtcdClusters() {
		out = append(out, etcd.ClusterOf(s, cfg.Namespace))
	}
	return out
}

// shardKey is the stack key of the i-th of Shards(cfg).Shards; cacheKey
// the separate cache server's.
func shardKey(i int) *field.Path { return field.NewPath("kcp", "shards").Index(i) }

var cacheKey = field.NewPath("kcp", "cache")

// shardEtcdArgs is a shard's etcd cluster (its settings under key): etcd.*
// but for its name, its volumes and its clients (that shard's kcp and
// backup jobs).
func shardEtcdArgs(cfg *Config, s shard.Shard, key *field.Path) etcd.Args {
	a := etcdArgs(cfg)
	a.Key = key.Child("etcd").String()
	db := etcd.ClusterOf(s, cfg.Namespace)
	a.Name, a.StorageSize, a.StorageClass = db.Name, s.EtcdStorageSize, s.EtcdStorageClass
	a.VolumeAttributesClass = volumeAttributesClass(cfg, a.StorageClass)
	a.ServerSecret, a.PeerSecret = db.ServerSecret(), db.PeerSecret()
	a.Clients = []map[string]string{workload.Labels(s.Deployment()), workload.Labels(s.BackupJob())}
	return a
}

// cacheEtcdArgs is the separate cache server's etcd: etcd.* but for its
// name, volumes and its one client. It holds only what the shards replicate
// into it, so it is not backed up: the shards write it again.
func cacheEtcdArgs(cfg *Config, c shard.Shard) etcd.Args {
	a := shardEtcdArgs(cfg, c, cacheKey)
	a.Clients = []map[string]string{workload.Labels(c.Deployment())}
	return a
}

func etcdArgs(cfg *Config) etcd.Args {
	return etcd.Args{
		Name: rootEtcd(cfg).Name, Namespace: cfg.Namespace, Replicas: cfg.Etcd.Replicas, Image: cfg.Etcd.Image, Version: cfg.Etcd.Version,
		JoinImage:    cfg.Etcd.JoinImage,
		StorageClass: cfg.Etcd.StorageClass, StorageSize: cfg.Etcd.StorageSize, QuotaBackendBytes: cfg.Etcd.QuotaBackendBytes,
		VolumeAttributesClass: volumeAttributesClass(cfg, cfg.Etcd.StorageClass),
		Resources:             cfg.Etcd.Resources,
		Spread:                spread(cfg.Etcd.AntiAffinity, cfg.Zones),
		ServerSecret:          tls.CertEtcdServer, PeerSecret: tls.CertEtcdPeer,
		Protect:             cfg.Environment != "dev",
		Clients:             []map[string]string{kcp.Selector(), BackupSelector},
		MonitoringNamespace: cfg.Monitoring.Namespace,
	}
}

// AgentArgs maps one kcp-tmc:clusters entry (identity filled in by the
// caller), with the agents component's defaults applied: the workspace it
// picks is the one the kcp side is created in, and the CLI's day-2 verbs
// find the agent by the same names.
func AgentArgs(cfg *Config, cl Cluster) agents.Args {
	m := clusterMonitoring(cfg, cl)
	labels := map[string]string{}
	if cl.Region != "" {
		labels["topology.kubernetes.io/region"] = cl.Region
	}
	if cl.Zone != "" {
		labels["topology.kubernetes.io/zone"] = cl.Zone
	}
	return agents.Args{
		Cluster: cl.Name, Kind: cl.Agent, Image: cl.Image, KubectlImage: cfg.KCP.KubectlImage, Replicas: cl.Replicas, Namespace: cl.Namespace,
		KCPServer: kcp.PublicURL(cfg.Domain), FrontDoor: frontDoorInside(cfg),
		Workspace: cl.Workspace, Resources: cl.Resources, Labels: labels,
		PodSecurityVersion:  cfg.PodSecurityVersion,
		Container:           cfg.AgentResources,
		LogDebug:            cl.LogDebug,
		PrometheusNamespace: m.Namespace,
		RuleLabels:          m.RuleLabels,
		Unmonitored:         !*m.Enabled,
	}.WithDefaults()
}

// clusterMonitoring is a cluster's monitoring with what it leaves unset
// taken from the stack's: monitoring.enabled, .namespace, .ruleLabels.
func clusterMonitoring(cfg *Config, cl Cluster) ClusterMonitoring {
	m := cl.Monitoring
	if m.Enabled == nil {
		m.Enabled = &cfg.Monitoring.Enabled
	}
	m.Namespace = cmp.Or(m.Namespace, cfg.Monitoring.Namespace)
	if m.RuleLabels == nil {
		m.RuleLabels = cfg.Monitoring.RuleLabels
	}
	return m
}

func loggingArgs(cfg *Config) logging.Args {
	l := cfg.Logging
	a := logging.Args{ElasticsearchHost: l.ElasticsearchHost, ElasticsearchPort: l.ElasticsearchPort, Index: l.Index,
		TLS: l.TLS, CACert: l.CACert, Username: l.Username, Image: l.Image, PodLogsDir: l.PodLogsDir, MonitoringNamespace: cfg.Monitoring.Namespace}
	if l.Password != "" {
		a.Password = pulumi.ToSecret(pulumi.String(l.Password)).(pulumi.StringOutput)
	}
	return a
}

func monitoringArgs(cfg *Config) monitoring.Args {
	m := cfg.Monitoring
	a := monitoring.Args{
		Namespace: cfg.Namespace, Interval: m.Interval, RuleLabels: m.RuleLabels, Shards: Shards(cfg).Shards, Cache: Shards(cfg).Cache,
		ServerCASecret: tls.CAServer, MetricsViewerSecret: tls.CertMetricsViewer,
		SlackChannel: m.SlackChannel, InstallStack: m.InstallStack, StackVersion: m.StackVersion,
		PodSecurityVersion: cfg.PodSecurityVersion, MonitoringNamespace: m.Namespace,
	}
	if cfg.Logging.Enabled {
		a.LoggingNamespace = logging.Namespace
	}
	if cfg.TLS.Mode == tls.ModeCertManager && cfg.TLS.InstallCertManager {
		a.CertManagerNamespace = tls.CertManagerNamespace
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
	endpoints := rootEtcd(cfg).MemberURLs(cfg.Etcd.Replicas)
	a := backup.Args{
		Namespace: cfg.Namespace, ClusterName: ClusterName(cfg.Environment),
		Schedule: b.Schedule, TimeZone: b.TimeZone, VerifySchedule: b.VerifySchedule, Image: b.Image,
		EtcdImage: cfg.Etcd.Image + ":" + cfg.Etcd.Version, EtcdURL: rootEtcd(cfg).ClientURL(),
		EtcdEndpoints: endpoints, ClientSecret: tls.CertEtcdClientBackup, EtcdSelector: workload.Labels(etcd.Name),
		Target: b.Target,
		S3: backup.S3{Bucket: b.Bucket, Prefix: b.Prefix, Region: b.Region, Endpoint: b.Endpoint,
			TransitionDays: b.TransitionDays, ArchiveDays: b.ArchiveDays, RetentionDays: b.RetentionDays,
			NoncurrentDays: b.NoncurrentDays, ObjectLockDays: b.ObjectLockDays,
			OIDCProviderARN: b.OIDCProviderARN, OIDCIssuer: b.OIDCIssuer, AccessKeyID: b.AccessKeyID},
		PVC:     backup.PVC{StorageClass: class, Size: b.PVCSize},
		Protect: cfg.Environment != "dev",
	}
	if b.SecretAccessKey != "" {
		a.S3.SecretAccessKey = pulumi.ToSecret(pulumi.String(b.SecretAccessKey)).(pulumi.StringOutput)
	}
	a.Shards = Shards(cfg).Shards
	if cfg.Cloud.Mode == "eks" {
		// Known once the cloud layer exists: Deploy puts its outputs here.
		a.S3.IRSA = &backup.IRSAProvider{ARN: pulumi.String(""), Issuer: pulumi.String("")}
	}
	return a
}

// ClusterName is the stack's name for its cluster: the EKS cluster, the
// backup objects' key prefix, the AWS resources' names.
func ClusterName(env string) string { return "kcp-tmc-" + env }

// nlb: prod's LoadBalancer Services ask the AWS Load Balancer Controller
// for an NLB.
func nlb(cfg *Config) bool { return cfg.Environment == "prod" }

// installsLoadBalancerController: the stack installs the AWS Load Balancer
// Controller (below).
func installsLoadBalancerController(cfg *Config) bool { return cfg.Cloud.Mode == "eks" && nlb(cfg) }

// loadBalancerControllerArgs configure the AWS Load Balancer Controller kcp-tmc
// installs on the EKS cluster it makes when the stack's Services ask for an
// NLB (nothing else on that cluster would serve them); eks holds the cloud
// layer's outputs.
func loadBalancerControllerArgs(cfg *Config, eks *cloud.EKS) (awslb.Args, bool) {
	if !installsLoadBalancerController(cfg) {
		return awslb.Args{}, false
	}
	c := cloudArgs(cfg)
	return awslb.Args{ClusterName: c.ClusterName, Region: c.Region, VPCID: eks.VPCID,
		OIDCProviderARN: eks.OIDCProviderARN, OIDCIssuer: eks.OIDCIssuer, Tags: c.ResourceTags()}, true
}

// dnsArgs publish the front door's and every shard's host at its address
// (lbs: the ingress's HostAddresses, nil when only validating) when
// ingress.route53ZoneId is set.
func dnsArgs(cfg *Config, lbs map[string]pulumi.StringOutput) (route53.Args, bool) {
	if cfg.Ingress.Route53ZoneID == "" {
		return route53.Args{}, false
	}
	a := route53.Args{ZoneID: cfg.Ingress.Route53ZoneID, TTL: ingress.ExternalDNSTTL}
	for _, h := range ingress.PublicHosts(ingressArgs(cfg)) {
		var addr pulumi.StringInput = pulumi.String("")
		if lb, ok := lbs[h]; ok {
			addr = lb
		}
		a.Records = append(a.Records, route53.Record{Host: h, Address: addr})
	}
	return a, true
}

// frontDoorInside is kcp's front door as an agent on kcp's own cluster
// reaches it (ingress.FrontDoorInside).
func frontDoorInside(cfg *Config) netpol.Flow {
	var gw ingress.Gateway
	if cfg.Ingress.Gateway != nil {
		gw = *cfg.Ingress.Gateway
	}
	return ingress.FrontDoorInside(cfg.Ingress.Mode, gw, kcp.FrontProxyPods(cfg.Namespace))
}

func ingressArgs(cfg *Config) ingress.Args {
	a := ingress.Args{
		Mode: cfg.Ingress.Mode, Namespace: cfg.Namespace, Host: kcp.PublicHost(cfg.Domain), ClassName: cfg.Ingress.ClassName,
		BackendService: kcp.FrontProxyService, BackendPort: 443, TargetPort: kcp.FrontProxyPort,
		NLB:               nlb(cfg),
		PublishedByStack:  cfg.Ingress.Route53ZoneID != "",
		SourceRanges:      cfg.Ingress.SourceRanges,
		InstallController: cfg.Ingress.InstallController, ControllerVersion: cfg.Ingress.ControllerVersion,
		ControllerReplicas:  cfg.Ingress.ControllerReplicas,
		PodSecurityVersion:  cfg.PodSecurityVersion,
		Labels:              map[string]string{"kcp-tmc.io/environment": cfg.Environment},
		MonitoringNamespace: cfg.Monitoring.Namespace,
	}
	if g := cfg.Ingress.Gateway; g != nil {
		a.Gateway = *g
	}
	a.Shards, a.ShardPort = Shards(cfg).Shards, kcp.APIPort
	return a
}

func kcpArgs(cfg *Config) kcp.Args {
	return kcp.Args{
		Namespace: cfg.Namespace, Domain: cfg.Domain, Image: cfg.KCP.Image, Version: cfg.KCP.Version,
		Replicas: cfg.KCP.Replicas, FrontProxyReplicas: cfg.KCP.FrontProxyReplicas, HomeWorkspaces: cfg.KCP.HomeWorkspaces,
		ExtraFlags: cfg.KCP.ExtraFlags, FrontProxyExtraFlags: cfg.KCP.FrontProxyExtraFlags, OIDC: cfg.KCP.OIDC,
		KubectlImage:        cfg.KCP.KubectlImage,
		Resources:           cfg.KCP.Resources,
		FrontProxyResources: cfg.KCP.FrontProxyResources,
		Spread:              spread(cfg.KCP.AntiAffinity, cfg.Zones),
		EtcdURL:             rootEtcd(cfg).ClientURL(),
		EtcdSelector:        workload.Labels(etcd.Name),
		Certs: kcp.Certs{
			Server: tls.CertKCPServer, FrontProxy: tls.CertFrontProxy, FrontProxyClient: tls.CertFrontProxyClient,
			FrontProxyKubeconfig: tls.CertFrontProxyKubeconfig,
			EtcdClient:           tls.CertEtcdClientKCP, ServiceAccount: tls.CertServiceAccount,
			ClientCA: tls.CAClient, RequestHeaderCA: tls.CARequestHeader, ServerCA: tls.CAServer,
			FrontProxyPublic: frontProxyPublic(cfg),
			ShardAdmin:       tls.CertShardAdmin, LogicalClusterAdmin: tls.CertLogicalClusterAdmin,
			ExternalLogicalClusterAdmin: tls.CertExternalLogicalClusterAdmin,
		},
		FrontProxyClients:   ingress.FrontProxyClients(cfg.Ingress.Mode),
		Shards:              Shards(cfg).Shards,
		Cache:               Shards(cfg).Cache,
		MonitoringNamespace: cfg.Monitoring.Namespace,
	}
}

// certifiedClusters are the clusters whose agents authenticate with a
// certificate of their own: none when they get tokens (AgentIdentity), so
// no unused per-cluster credential is minted (nor its cost paid per cluster).
func certifiedClusters(cfg *Config) []string {
	if AgentIdentity(cfg) == agents.IdentityToken {
		return nil
	}
	var names []string
	for _, cl := range cfg.Clusters {
		names = append(names, cl.Name)
	}
	return names
}

func cloudArgs(cfg *Config) cloud.Args {
	c := cfg.Cloud
	return cloud.Args{
		ExistingVPC: c.ExistingVPC,
		ClusterName: ClusterName(cfg.Environment), Region: c.Region, Zones: cfg.Zones, KubernetesVersion: c.KubernetesVersion,
		VPCCIDR: c.VPCCIDR, NATPerZone: c.NATPerZone, PublicEndpoint: c.PublicEndpoint, PublicCIDRs: c.PublicCIDRs,
		InstanceTypes: c.InstanceTypes,
		NodesPerZone:  c.NodesPerZone,
		Tags:          map[string]string{"environment": cfg.Environment, "owner": c.Owner, "cost-center": c.CostCenter},
	}
}

// pkiArgs maps the validated kcp-tmc:tls and kcp-tmc:existingCAs keys.
func pkiArgs(cfg *Config) tls.Args {
	hours := func(s string) time.Duration { d, _ := time.ParseDuration(s); return d }
	args := tls.Args{
		Mode:               cfg.TLS.Mode,
		Namespace:          cfg.Namespace,
		Domain:             cfg.Domain,
		SyncTargets:        certifiedClusters(cfg),
		Shards:             Shards(cfg).Shards,
		Cache:              Shards(cfg).Cache,
		CADuration:         hours(cfg.TLS.CADuration),
		LeafDuration:       hours(cfg.TLS.LeafDuration),
		RenewBefore:        hours(cfg.TLS.RenewBefore),
		InstallCertManager: cfg.TLS.InstallCertManager,
		CertManagerVersion: cfg.TLS.CertManagerVersion,
		// The kcp side needs the admin identity and the agents kcp's CA.
		ReadAdmin: kcpSideLive(cfg) && cfg.TLS.Mode == tls.ModeCertManager,
	}
	args.ACME = cfg.TLS.ACME // WithDefaults copies before it fills
	for name, ca := range cfg.ExistingCAs {
		if args.ExistingCAs == nil {
			args.ExistingCAs = map[string]tls.ExistingCA{}
		}
		args.ExistingCAs[name] = tls.ExistingCA{CertPEM: ca.Cert, KeyPEM: ca.Key}
	}
	return args
}

// frontProxyPublic is the ACME certificate the front-proxy serves for
// kcp.<domain>, when tls.acme asks for one.
func frontProxyPublic(cfg *Config) string {
	if cfg.TLS.ACME != nil {
		return tls.CertFrontProxyPublic
	}
	return ""
}
