// Package stacks turns a stack's Pulumi configuration into a validated Config
// and builds the kcp-tmc program from it. main.go and the Automation API
// (package automation, cmd/kcp-tmc) both run Program, so `pulumi up -s dev` and
// `kcp-tmc up --stack dev` deploy the same thing from the same stack files.
package stacks

import (
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// Namespace is the Pulumi config namespace (the project name) of every key.
const Namespace = "kcp-tmc"

// Environments names the allowed values of kcp-tmc:environment.
var Environments = []string{"dev", "staging", "prod"}

// Target modes.
const (
	TargetRender     = "render"
	TargetKubeconfig = "kubeconfig"
)

// target.kcpSide modes.
const (
	KCPSideAuto = "auto"
	KCPSideOff  = "off"
)

// Anti-affinity modes for kcp and etcd replicas.
const (
	AntiAffinityNone     = "none"     // no spreading (single-replica dev)
	AntiAffinityHostname = "hostname" // hard: one replica per node
	AntiAffinityZone     = "zone"     // hard: one replica per zone
)

// Config is the whole, typed configuration of one stack. Each field tagged
// `config` is read from the Pulumi config key kcp-tmc:<tag>; objects are
// YAML maps in Pulumi.<stack>.yaml. Fields tagged `json:"-"` are secrets read
// by Load under their own keys, or bookkeeping.
//
// docs/configuration.md is generated from these types, their doc comments and
// the profiles (go run ./hack/gen-config-docs): every field needs a doc comment
// saying what it does and which values are allowed.
type Config struct {
	// Environment selects the profile whose defaults fill every key a stack
	// does not set. Required: `dev`, `staging` or `prod`.
	Environment string `config:"environment"`
	// Target says where Kubernetes objects go: rendered to YAML files, or
	// applied to a cluster.
	Target Target `config:"target"`
	// Domain is the DNS zone kcp is published under (`kcp.<domain>`): a
	// lowercase DNS name with at least two labels.
	Domain string `config:"domain"`
	// Namespace is where kcp, etcd and their jobs run: a DNS-1123 label.
	Namespace string `config:"namespace"`
	// Zones lists the availability zones replicas are spread over: distinct
	// zone names. With zone anti-affinity, at least as many as the larger of
	// kcp.replicas and etcd.replicas; with cloud.mode `eks`, 2 to 4 zones of
	// cloud.region.
	Zones []string `config:"zones"`
	// PodSecurityVersion pins the Pod Security Standards version enforced on
	// the namespace: `v1.N` (`latest` is not pinned).
	PodSecurityVersion string `config:"podSecurityVersion"`
	// KCP sizes and places the kcp servers and the front-proxy
	// (docs/control-plane.md).
	KCP KCP `config:"kcp"`
	// Etcd sizes and places the etcd cluster that stores every workspace.
	Etcd Etcd `config:"etcd"`
	// Storage says whether etcd's StorageClass is created on the AWS EBS CSI
	// driver, and how, or an existing class is used.
	Storage Storage `config:"storage"`
	// Backup schedules etcd snapshots and their restore verification, to S3 or
	// a PVC (docs/backup.md).
	Backup Backup `config:"backup"`
	// TLS says how certificates are issued (docs/tls.md).
	TLS TLS `config:"tls"`
	// Ingress says how `kcp.<domain>` reaches the front-proxy (docs/ingress.md).
	Ingress Ingress `config:"ingress"`
	// Monitoring scrapes kcp and etcd and routes alerts to Slack and PagerDuty
	// (docs/monitoring.md). The webhook and the routing key are the secrets
	// slackWebhookUrl and pagerDutyKey.
	Monitoring Monitoring `config:"monitoring"`
	// Logging ships container logs with fluent-bit to Elasticsearch
	// (docs/monitoring.md). The password is the secret elasticsearchPassword.
	Logging Logging `config:"logging"`
	// Cloud says where the hosting cluster comes from: `existing` (kubeconfig or
	// context) or `eks` (created by the cloud component, docs/cloud.md).
	Cloud Cloud `config:"cloud"`
	// Clusters are the physical clusters connected to kcp, one agent each
	// (docs/agents.md). In kubeconfig mode each needs its kubeconfig in the
	// secret clusterKubeconfigs; with the kcp side in the same up
	// (target.kcpSide) each agent gets a ServiceAccount token of its own.
	Clusters []Cluster `config:"clusters"`
	// AgentResources are every agent container's requests and limits (checked
	// only when `clusters` is set).
	AgentResources workload.Resources `config:"agentResources"`
	// ClusterKubeconfigs is the secret kcp-tmc:clusterKubeconfigs: a JSON map of
	// cluster name to kubeconfig. In kubeconfig mode, every entry of `clusters`
	// needs one.
	ClusterKubeconfigs map[string]string `json:"-"`
	// KCPKubeconfig is the secret kcp-tmc:kcpKubeconfig: an admin kubeconfig
	// of kcp that replaces the stack's own kcp-admin certificate for the kcp
	// side (target.kcpSide): kcp's own RBAC (the metrics reader binding) in
	// root, and per cluster its workspace, APIExport, RBAC and agent token
	// (the servers' path is set to /clusters/<workspace>). Optional.
	KCPKubeconfig string `json:"-"`
	// ExistingCAs is the secret kcp-tmc:existingCAs: CAs brought by the user
	// (bring your own CA), as a JSON map of CA name to `{cert, key}`. Names:
	// `etcd-ca`, `kcp-server-ca`, `kcp-client-ca`, `requestheader-ca`,
	// `service-account-ca`.
	ExistingCAs map[string]ExistingCA `json:"-"`
	// ExistingCAsIsSecret records whether kcp-tmc:existingCAs was set with --secret.
	ExistingCAsIsSecret bool `json:"-"`
	// Kubeconfig is the secret kcp-tmc:kubeconfig: the hosting cluster's
	// kubeconfig in kubeconfig mode (or target.context). Required in prod,
	// which never deploys through an ambient context.
	Kubeconfig string `json:"-"`
	// KubeconfigIsSecret records whether kcp-tmc:kubeconfig was set with --secret.
	KubeconfigIsSecret bool `json:"-"`
}

// Target is kcp-tmc:target.
type Target struct {
	// Mode is `render` (write YAML under renderDir; no cluster needed) or
	// `kubeconfig` (apply to a real cluster). cloud.mode `eks` needs kubeconfig.
	Mode string `json:"mode"`
	// RenderDir is where render mode writes manifests: a directory inside the
	// project (no `..`).
	RenderDir string `json:"renderDir,omitempty"`
	// Context selects a context of the kubeconfig secret or, without that
	// secret (not in prod), of ~/.kube/config.
	Context string `json:"context,omitempty"`
	// SkipAwait annotates every object `pulumi.com/skipAwait: "true"`, so the
	// provider does not wait for workloads to become ready (control planes
	// without nodes, e.g. CI).
	SkipAwait bool `json:"skipAwait,omitempty"`
	// KCPSide says whether an up in kubeconfig mode also creates what the
	// stack puts into kcp (the metrics reader binding in root; per cluster
	// its workspace, APIExport, RBAC and the agent's token): `auto` does it in
	// the same up once kcp is Ready, as kcp's admin through the stack's own
	// kcp-admin certificate at target.kcpServer; `off` leaves it to an up
	// with the secret kcpKubeconfig, which replaces the certificate whenever
	// it is set; unset is `auto`. With skipAwait no kcp runs, so only
	// kcpKubeconfig applies it.
	KCPSide string `json:"kcpSide,omitempty"`
	// KCPServer is the https:// URL at which this program reaches kcp's front
	// door for the kcp side, for a deployer inside the network (an internal
	// load balancer, a port-forward). Default: the load balancer's own
	// address in ingress.mode `loadbalancer` (no DNS record needed), else
	// https://kcp.<domain>. Whatever the address, the certificate is
	// verified for kcp.<domain>.
	KCPServer string `json:"kcpServer,omitempty"`
}

// KCP is kcp-tmc:kcp.
type KCP struct {
	// Image is the image repository of kcp, without tag or digest (the tag is
	// kcp.version).
	Image string `json:"image"`
	// Version is the kcp release tag, `vX.Y.Z[-pre]`.
	Version string `json:"version"`
	// Replicas is the number of kcp servers: 1 to 9, at least 2 outside dev.
	Replicas int `json:"replicas"`
	// Resources are each kcp server's requests and limits.
	Resources workload.Resources `json:"resources"`
	// AntiAffinity spreads kcp replicas and the front-proxies: `none`,
	// `hostname` (hard: one per node) or `zone` (hard: one per zone, so
	// `zones` needs at least kcp.replicas and kcp.frontProxyReplicas
	// entries). Prod must use `zone`.
	AntiAffinity string `json:"antiAffinity"`
	// FrontProxyReplicas is the number of front-proxy pods, the only way in:
	// 1 to 9, at least 2 in prod; spread as kcp.antiAffinity says.
	FrontProxyReplicas int `json:"frontProxyReplicas"`
	// FrontProxyResources are each front-proxy pod's requests and limits.
	FrontProxyResources workload.Resources `json:"frontProxyResources"`
	// HomeWorkspaces turns on kcp's home workspaces
	// (`--enable-home-workspaces`): every authenticated user, agents'
	// identities included, gets a private workspace on first access in which
	// it is cluster-admin. Off by default, unlike kcp's own default.
	HomeWorkspaces bool `json:"homeWorkspaces"`
	// OIDC signs humans in with an OpenID Connect issuer, on kcp and the
	// front-proxy (clients keep their certificates too).
	OIDC *kcp.OIDC `json:"oidc"`
	// ExtraFlags are appended to kcp's generated flags: the escape hatch for
	// what no typed key covers (`--oidc-*`, `--feature-gates`, `--v`). Each
	// must be one kcp v0.32.3 registers and kcp-tmc does not set;
	// `--goaway-chance` and `--shutdown-delay-duration` are refused (they
	// fail writes through the front-proxy: docs/control-plane.md), and
	// `--external-hostname` (a no-op kcp never reads).
	ExtraFlags []string `json:"extraFlags"`
	// FrontProxyExtraFlags are appended to the front-proxy's flags, with the
	// same rules.
	FrontProxyExtraFlags []string `json:"frontProxyExtraFlags"`
	// KubectlImage restarts the front-proxy weekly, rolling, so that it
	// picks up its renewed forwarding certificate, which it reads only at
	// start (docs/tls.md "Renewals"), and runs each agent's rewatch
	// CronJob on its cluster (docs/agents.md "Shards the agent could not
	// reach"): an image whose entrypoint is kubectl, repository:tag
	// (Kubernetes' own by default; a mirror of it offline, reachable from
	// kcp's cluster and every agent's).
	KubectlImage string `json:"kubectlImage"`
	// Shards are more kcp shards beside the root shard (which is always there
	// and holds the root workspace): each runs its own kcp Deployment and
	// its own etcd cluster, registers with the root shard and is reached
	// through the one front-proxy (docs/sharding.md). Default: none.
	Shards []Shard `json:"shards,omitempty"`
	// Cache is where the shards replicate what they all share (APIExports,
	// workspace types, their RBAC): kcp's cache server.
	Cache Cache `json:"cache,omitempty"`
}

// Cache is kcp.cache.
type Cache struct {
	// Mode is `embedded` (the root shard serves the cache; default) or
	// `separate`: a cache server Deployment `kcp-cache` with its own etcd
	// `etcd-cache`, which takes that load off the root shard in large
	// stacks.
	Mode string `json:"mode,omitempty"`
	// Replicas is the number of cache servers in separate mode (default
	// kcp.frontProxyReplicas).
	Replicas *int `json:"replicas,omitempty"`
	// Resources are each cache server's requests and limits in separate
	// mode (default kcp.frontProxyResources).
	Resources *workload.Resources `json:"resources,omitempty"`
	// Etcd sizes its etcd in separate mode; its members, image, resources
	// and spreading are etcd.*'s.
	Etcd ShardEtcd `json:"etcd,omitempty"`
}

// Cache modes.
const (
	CacheEmbedded = "embedded"
	CacheSeparate = "separate"
)

// Shard is one entry of kcp.shards.
type Shard struct {
	// Name is the shard's name in kcp (a Workspace picks it with
	// `spec.location.selector.matchLabels.name`) and names its objects
	// (`kcp-<name>`, `etcd-<name>`): a DNS label of at most 33 characters,
	// not `root`, `cache` or a name of kcp-tmc's own objects, not ending in
	// `-headless`, `-backup` or `-lb`.
	Name string `json:"name"`
	// Replicas is the number of the shard's kcp servers (default
	// kcp.replicas; the same rules).
	Replicas *int `json:"replicas,omitempty"`
	// Resources are each of its servers' requests and limits (default
	// kcp.resources).
	Resources *workload.Resources `json:"resources,omitempty"`
	// Etcd sizes the shard's own etcd cluster; its members, image,
	// resources and spreading are etcd.*'s.
	Etcd ShardEtcd `json:"etcd,omitempty"`
}

// ShardEtcd is kcp.shards[].etcd.
type ShardEtcd struct {
	// StorageSize is each member's volume (default etcd.storageSize; the
	// same rules).
	StorageSize string `json:"storageSize,omitempty"`
	// StorageClass is the StorageClass of its volumes (default
	// etcd.storageClass).
	StorageClass string `json:"storageClass,omitempty"`
}

// Etcd is kcp-tmc:etcd.
type Etcd struct {
	// Image is the image repository of etcd, without tag or digest (the tag
	// is etcd.version).
	Image string `json:"image"`
	// Version is a pinned etcd 3.5 release tag, `v3.5.x`.
	Version string `json:"version"`
	// JoinImage runs, before etcd in each member (one member too: the pod
	// template does not change with etcd.replicas), the script that adds new
	// members and replaces a member whose data is lost so it rejoins by
	// itself; the membership Job that removes the members a lower
	// etcd.replicas drops; and the rollout Job that restarts the members onto
	// a changed pod template without costing etcd its quorum
	// (docs/runbook.md): a pinned repository:tag with sh, cut, rm, sleep, etcd
	// and etcdctl of etcd.version, and kubectl (hack/backup-image builds one).
	JoinImage string `json:"joinImage"`
	// Replicas is the number of etcd members: odd, 1 to 7; at least 3 outside
	// dev, so quorum survives the loss of a member. May be raised or lowered
	// on a running cluster: a lower count removes the members it drops from
	// the cluster before their pods go (the `etcd-members` Job;
	// docs/runbook.md "Changing the number of etcd members").
	Replicas int `json:"replicas"`
	// StorageClass is the StorageClass of etcd's volumes (a DNS-1123
	// subdomain); storage.create makes it, otherwise it must exist. Fixed
	// once the volumes exist: a change is refused until they are moved
	// (docs/runbook.md "Moving etcd to another StorageClass").
	StorageClass string `json:"storageClass"`
	// StorageSize is each member's volume, `<n>Gi` or `<n>Ti`: dev 20–50Gi,
	// staging 20–200Gi, prod 100–500Gi.
	StorageSize string `json:"storageSize"`
	// AntiAffinity spreads etcd members: `none`, `hostname` or `zone`, as
	// kcp.antiAffinity. Prod must use `zone`.
	AntiAffinity string `json:"antiAffinity"`
	// Resources are each etcd member's requests and limits.
	Resources workload.Resources `json:"resources"`
	// QuotaBackendBytes caps the database (`--quota-backend-bytes`), as a
	// memory quantity such as `8Gi`: at most 8Gi, and less than
	// etcd.storageSize.
	QuotaBackendBytes string `json:"quotaBackendBytes"`
}

// Storage is kcp-tmc:storage: whether etcd's StorageClass is created, and how.
type Storage struct {
	// Create makes etcd.storageClass on the AWS EBS CSI driver; false uses an
	// existing class of that name.
	Create bool `json:"create"`
	// VolumeType is the EBS volume type when creating: `gp3` (the default when
	// unset), `io2` or `gp2`.
	VolumeType string `json:"volumeType"`
	// IOPS are the volumes' provisioned IOPS: gp3 3000–16000 (0: the 3000
	// baseline); io2 100–256000, required; gp2 none.
	IOPS int `json:"iops"`
	// ThroughputMiBps is the volumes' throughput: gp3 125–1000 (0: the 125
	// baseline); io2 and gp2 none.
	ThroughputMiBps int `json:"throughputMiBps"`
	// KMSKeyID is a KMS key id or ARN for volume encryption; only with
	// storage.create. Unset: the cloud layer's volume key with cloud.mode
	// `eks`, otherwise the account's EBS key.
	KMSKeyID string `json:"kmsKeyId"`
	// ReclaimPolicy is `Retain` or `Delete`; prod must keep `Retain`, so a
	// released etcd volume survives. It applies only to a class kcp-tmc
	// creates (storage.create); an existing class keeps its own (EKS's gp2:
	// Delete), where the retained claims are what keeps the data.
	ReclaimPolicy string `json:"reclaimPolicy"`
	// ModifyVolumes carries storage.volumeType, iops and throughputMiBps
	// to etcd's existing volumes (storage.create only): through a
	// VolumeAttributesClass the claims name, which the EBS CSI driver
	// applies to each volume in place, online. Needs Kubernetes 1.34 or
	// later (on an older cluster the up fails). Unset: true when cloud.mode
	// `eks` makes a cluster of 1.34 or later, otherwise false, and every
	// preview warns that a change reaches only volumes made after it (a
	// StorageClass's parameters apply when a volume is made).
	ModifyVolumes *bool `json:"modifyVolumes"`
}

// TLS is kcp-tmc:tls: how certificates are issued (components/tls).
type TLS struct {
	// Mode is `cert-manager` (issued and renewed in-cluster) or `self-managed`
	// (pulumi-tls, rotated by `pulumi up`).
	Mode string `json:"mode"`
	// InstallCertManager installs cert-manager's Helm chart: only in
	// cert-manager mode, and not in render mode.
	InstallCertManager bool `json:"installCertManager"`
	// CertManagerVersion is the pinned cert-manager release, `vX.Y.Z`.
	CertManagerVersion string `json:"certManagerVersion"`
	// CADuration is the CAs' lifetime in whole hours, Go syntax (`87600h`): at
	// least leafDuration.
	CADuration string `json:"caDuration"`
	// LeafDuration is the leaf certificates' lifetime in whole hours (`8760h`).
	LeafDuration string `json:"leafDuration"`
	// RenewBefore is how long before expiry a leaf is renewed, in whole hours:
	// shorter than leafDuration and at least 192h (the front-proxy takes its
	// renewed forwarding certificate at its weekly restart).
	RenewBefore string `json:"renewBefore"`
	// ACME is optional: when set (cert-manager mode only), the public
	// front-proxy certificate for `kcp.<domain>` comes from Let's Encrypt;
	// every other certificate stays private.
	ACME *tls.ACME `json:"acme,omitempty"`
}

// PublicServerCert is whether kcp's public address serves a publicly
// trusted certificate (tls.acme): its clients then verify it with the
// system's roots, not with kcp-server-ca.
func (c *Config) PublicServerCert() bool { return c.TLS.ACME != nil }
