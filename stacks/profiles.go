package stacks

import (
	"strings"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/cloud"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/components/storage"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// storageRangeGi bounds etcd volume sizes per environment: the smallest holds
// etcd's 8 GiB database quota with room for its WAL and snapshots.
var storageRangeGi = map[string][2]int{
	"dev":     {20, 50},
	"staging": {20, 200},
	"prod":    {100, 500},
}

// Profile returns the defaults of an environment: what a stack gets for every
// key it does not set. Values: dev 1 replica on `standard`
// 20Gi, staging 3 replicas 50Gi, prod 3 replicas across 3 zones on fast-ssd
// 100Gi, with requests/limits from its performance section (prod kcp:
// requests 2 CPU / 4Gi, limits 4 CPU / 8Gi).
func Profile(env string) (*Config, error) {
	// The values every environment shares are the components' own
	// defaults: each is written once, in its component, and the profile
	// reads it so that stack files and docs/configuration.md show it.
	kc := kcp.Args{}.WithDefaults()
	ed := etcd.Args{}.WithDefaults()
	st := storage.Args{}.WithDefaults()
	bk := backup.Args{Target: backup.TargetS3}.WithDefaults()
	tl := tls.Args{}.WithDefaults()
	in := ingress.Args{}.WithDefaults()
	mo := monitoring.Args{}.WithDefaults()
	lo := logging.Args{}.WithDefaults()
	cl := cloud.Args{}.WithDefaults()
	base := Config{
		Environment:        env,
		Domain:             "example.com",
		Namespace:          "kcp",
		PodSecurityVersion: platform.Args{}.WithDefaults().PodSecurityVersion,
		KCP:                KCP{Image: kc.Image, Version: kc.Version, KubectlImage: kc.KubectlImage, Cache: Cache{Mode: CacheEmbedded}},
		Backup: Backup{Enabled: true, Schedule: bk.Schedule, TimeZone: bk.TimeZone, VerifySchedule: bk.VerifySchedule,
			Image: bk.Image, Target: backup.TargetS3, Prefix: bk.S3.Prefix, Region: "us-east-1",
			Bucket: ClusterName(env) + "-etcd-backups", TransitionDays: 30, RetentionDays: 90, NoncurrentDays: 30},
		Monitoring: Monitoring{Enabled: true, Namespace: mo.MonitoringNamespace, Interval: mo.Interval, SlackChannel: "#kcp-alerts", StackVersion: mo.StackVersion},
		Logging:    Logging{ElasticsearchPort: lo.ElasticsearchPort, Index: lo.Index, TLS: true, Image: lo.Image},
		Cloud: Cloud{Mode: "existing", Region: "us-east-1", KubernetesVersion: cl.KubernetesVersion,
			VPCCIDR: cl.VPCCIDR, NATPerZone: env == "prod", InstanceTypes: cl.InstanceTypes, NodesPerZone: cl.NodesPerZone},
		Ingress: Ingress{Mode: in.Mode, ClassName: in.ClassName,
			ControllerVersion: in.ControllerVersion, ControllerReplicas: 2},
		TLS: TLS{Mode: tl.Mode, CertManagerVersion: tl.CertManagerVersion,
			CADuration: tls.HoursString(tl.CADuration), LeafDuration: tls.HoursString(tl.LeafDuration), RenewBefore: tls.HoursString(tl.RenewBefore)},
		Storage: Storage{ReclaimPolicy: st.ReclaimPolicy},
	}
	switch env {
	case "dev":
		base.Target = Target{Mode: TargetRender, RenderDir: "rendered/dev"}
		base.Backup.Target, base.Backup.PVCSize = backup.TargetPVC, "20Gi"
		base.KCP.Replicas, base.KCP.FrontProxyReplicas, base.KCP.AntiAffinity = 1, 1, AntiAffinityNone
		base.KCP.Resources = resources("250m", "512Mi", "1", "2Gi")
		base.KCP.FrontProxyResources = resources("100m", "128Mi", "500m", "512Mi")
		base.AgentResources = resources("100m", "128Mi", "500m", "512Mi")
		base.Etcd = Etcd{Replicas: 1, StorageClass: "standard", StorageSize: "20Gi", AntiAffinity: AntiAffinityNone,
			Resources: resources("100m", "256Mi", "500m", "1Gi")}
	case "staging":
		base.Target = Target{Mode: TargetKubeconfig}
		base.TLS.InstallCertManager = true
		base.Monitoring.InstallStack = true
		base.KCP.Replicas, base.KCP.FrontProxyReplicas, base.KCP.AntiAffinity = 3, 2, AntiAffinityHostname
		base.KCP.Resources = resources("1", "2Gi", "2", "4Gi")
		base.KCP.FrontProxyResources = resources("250m", "256Mi", "1", "1Gi")
		base.AgentResources = resources("250m", "512Mi", "1", "2Gi")
		base.Etcd = Etcd{Replicas: 3, StorageClass: "gp2", StorageSize: "50Gi", AntiAffinity: AntiAffinityHostname,
			Resources: resources("500m", "1Gi", "1", "2Gi")}
	case "prod":
		base.Target = Target{Mode: TargetKubeconfig}
		base.TLS.InstallCertManager = true
		base.Ingress.ControllerReplicas = 3
		base.Monitoring.InstallStack = true
		base.Zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}
		base.KCP.Replicas, base.KCP.FrontProxyReplicas, base.KCP.AntiAffinity = 3, 3, AntiAffinityZone
		base.KCP.Resources = resources("2", "4Gi", "4", "8Gi")
		base.KCP.FrontProxyResources = resources("500m", "512Mi", "2", "2Gi")
		base.AgentResources = resources("1", "2Gi", "2", "4Gi") // an agent per cluster syncing thousands of objects
		base.Etcd = Etcd{Replicas: 3, StorageClass: "fast-ssd", StorageSize: "100Gi", AntiAffinity: AntiAffinityZone,
			Resources: resources("1", "2Gi", "2", "4Gi")}
		// A year of dailies; archived after 120 days; recent ones locked against deletion.
		base.Backup.ArchiveDays, base.Backup.RetentionDays, base.Backup.ObjectLockDays = 120, 365, 30
		// gp3 with headroom over its 3000 IOPS / 125 MiB/s baseline: etcd is fsync-bound.
		base.Storage = Storage{Create: true, VolumeType: st.VolumeType, IOPS: 6000, ThroughputMiBps: 250, ReclaimPolicy: st.ReclaimPolicy}
	default:
		return nil, &FieldError{Key: "environment", Value: env, Allowed: "one of " + strings.Join(Environments, ", ")}
	}
	base.Target.KCPSide = KCPSideAuto
	base.Etcd.Image, base.Etcd.Version, base.Etcd.QuotaBackendBytes = ed.Image, ed.Version, ed.QuotaBackendBytes
	base.Etcd.JoinImage = ed.JoinImage
	// Ephemeral-storage budgets are the components' own.
	base.KCP.Resources = budget(base.KCP.Resources, kc.Resources)
	base.KCP.FrontProxyResources = budget(base.KCP.FrontProxyResources, kc.FrontProxyResources)
	base.Etcd.Resources = budget(base.Etcd.Resources, ed.Resources)
	base.AgentResources = budget(base.AgentResources, agents.Args{}.WithDefaults().Container)
	return &base, nil
}

func resources(reqCPU, reqMem, limCPU, limMem string) workload.Resources {
	return workload.Resources{
		Requests: workload.ResourceList{CPU: reqCPU, Memory: reqMem},
		Limits:   workload.ResourceList{CPU: limCPU, Memory: limMem},
	}
}

// budget gives r the ephemeral-storage budget of a component's defaults.
func budget(r, defaults workload.Resources) workload.Resources {
	return r.WithEphemeral(defaults.Requests.EphemeralStorage, defaults.Limits.EphemeralStorage)
}
