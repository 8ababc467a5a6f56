package stacks

// The mapping of the stack config to each component's Args.

import (
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

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

func spread(mode string, zones []string) workload.Spread {
	return workload.Spread{Mode: mode, Zones: zones}
}

func platformArgs(cfg *Config) platform.Args {
	return platform.Args{
		Namespace:          cfg.Namespace,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Labels:             map[string]string{"kcp-tmc.io/environment": cfg.Environment},
		RetainOnDelete:     cfg.Environment != "dev",
	}
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

// rootEtcd is the root shard's etcd cluster.
func rootEtcd(cfg *Config) etcd.Cluster {
	return etcd.Cluster{Name: etcd.Name, Namespace: cfg.Namespace}
}

func etcdArgs(cfg *Config) etcd.Args {
	return etcd.Args{
		Name: rootEtcd(cfg).Name, Namespace: cfg.Namespace, Replicas: cfg.Etcd.Replicas, Image: cfg.Etcd.Image, Version: cfg.Etcd.Version,
		StorageClass: cfg.Etcd.StorageClass, StorageSize: cfg.Etcd.StorageSize, QuotaBackendBytes: cfg.Etcd.QuotaBackendBytes,
		Resources:    cfg.Etcd.Resources,
		Spread:       spread(cfg.Etcd.AntiAffinity, cfg.Zones),
		ServerSecret: pki.CertEtcdServer, PeerSecret: pki.CertEtcdPeer,
		Protect: cfg.Environment != "dev",
		Clients: []map[string]string{kcp.Selector(), BackupSelector},
	}
}

// agentArgs maps one kcp-tmc:clusters entry (identity filled in by the
// caller), with the agents component's defaults applied: the workspace it
// picks is the one the kcp side is created in.
func agentArgs(cfg *Config, cl Cluster) agents.Args {
	labels := map[string]string{}
	if cl.Region != "" {
		labels["topology.kubernetes.io/region"] = cl.Region
	}
	if cl.Zone != "" {
		labels["topology.kubernetes.io/zone"] = cl.Zone
	}
	return agents.Args{
		Cluster: cl.Name, Kind: cl.Agent, Image: cl.Image, Replicas: cl.Replicas, Namespace: cl.Namespace,
		KCPServer: kcp.PublicURL(cfg.Domain), Workspace: cl.Workspace, Resources: cl.Resources, Labels: labels,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Container:          cfg.AgentResources,
	}.WithDefaults()
}

func loggingArgs(cfg *Config) logging.Args {
	l := cfg.Logging
	a := logging.Args{ElasticsearchHost: l.ElasticsearchHost, ElasticsearchPort: l.ElasticsearchPort, Index: l.Index,
		TLS: l.TLS, Username: l.Username, Image: l.Image}
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
		a.CertManagerNamespace = pki.CertManagerNamespace
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
	for _, m := range rootEtcd(cfg).MemberNames(cfg.Etcd.Replicas) {
		endpoints = append(endpoints, rootEtcd(cfg).MemberURL(m, etcd.ClientPort))
	}
	a := backup.Args{
		Namespace: cfg.Namespace, ClusterName: ClusterName(cfg.Environment),
		Schedule: b.Schedule, TimeZone: b.TimeZone, VerifySchedule: b.VerifySchedule, Image: b.Image,
		EtcdImage: cfg.Etcd.Image + ":" + cfg.Etcd.Version, EtcdURL: rootEtcd(cfg).ClientURL(),
		EtcdEndpoints: endpoints, ClientSecret: pki.CertEtcdClientBackup, EtcdSelector: workload.Labels(etcd.Name),
		Target: b.Target,
		S3: backup.S3{Bucket: b.Bucket, Prefix: b.Prefix, Region: b.Region, Endpoint: b.Endpoint,
			TransitionDays: b.TransitionDays, ArchiveDays: b.ArchiveDays, RetentionDays: b.RetentionDays,
			NoncurrentDays: b.NoncurrentDays, ObjectLockDays: b.ObjectLockDays,
			OIDCProviderARN: b.OIDCProviderARN, OIDCIssuer: b.OIDCIssuer},
		PVC:     backup.PVC{StorageClass: class, Size: b.PVCSize},
		Protect: cfg.Environment != "dev",
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
		a.Gateway = *g
	}
	return a
}

func kcpArgs(cfg *Config) kcp.Args {
	return kcp.Args{
		Namespace: cfg.Namespace, Domain: cfg.Domain, Image: cfg.KCP.Image, Version: cfg.KCP.Version,
		Replicas: cfg.KCP.Replicas, FrontProxyReplicas: cfg.KCP.FrontProxyReplicas, HomeWorkspaces: cfg.KCP.HomeWorkspaces,
		ExtraFlags: cfg.KCP.ExtraFlags, FrontProxyExtraFlags: cfg.KCP.FrontProxyExtraFlags, OIDC: cfg.KCP.OIDC,
		Resources:           cfg.KCP.Resources,
		FrontProxyResources: cfg.KCP.FrontProxyResources,
		Spread:              spread(cfg.KCP.AntiAffinity, cfg.Zones),
		EtcdURL:             rootEtcd(cfg).ClientURL(),
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
	args.ACME = cfg.TLS.ACME // WithDefaults copies before it fills
	for name, ca := range cfg.ExistingCAs {
		if args.ExistingCAs == nil {
			args.ExistingCAs = map[string]pki.ExistingCA{}
		}
		args.ExistingCAs[name] = pki.ExistingCA{CertPEM: ca.Cert, KeyPEM: ca.Key}
	}
	return args
}

// frontProxyPublic is the ACME certificate the front-proxy serves for
// kcp.<domain>, when tls.acme asks for one.
func frontProxyPublic(cfg *Config) string {
	if cfg.TLS.ACME != nil {
		return pki.CertFrontProxyPublic
	}
	return ""
}
