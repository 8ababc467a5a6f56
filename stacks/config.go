// Package stacks turns a stack's Pulumi configuration into a validated Config
// and builds the kcp-tmc program from it. main.go and the Automation API
// (package automation, cmd/kcp-tmc) both run Program, so `pulumi up -s dev` and
// `kcp-tmc up --stack dev` deploy the same thing from the same stack files.
package stacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/agext/levenshtein"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/cloud"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
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
	// AntiAffinity spreads kcp replicas: `none`, `hostname` (hard: one per
	// node) or `zone` (hard: one per zone, so `zones` needs at least
	// kcp.replicas entries). Prod must use `zone`.
	AntiAffinity string `json:"antiAffinity"`
	// FrontProxyReplicas is the number of front-proxy pods, the only way in:
	// 1 to 9, at least 2 in prod.
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
	// must be one kcp v0.32.3 registers and kcp-tmc does not set.
	ExtraFlags []string `json:"extraFlags"`
	// FrontProxyExtraFlags are appended to the front-proxy's flags, with the
	// same rules.
	FrontProxyExtraFlags []string `json:"frontProxyExtraFlags"`
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
	// JoinImage runs, before etcd in each member of a multi-member cluster,
	// the script that replaces a member whose data is lost so it rejoins by
	// itself (docs/runbook.md): a pinned repository:tag with sh, cut, etcd
	// and etcdctl of etcd.version (hack/backup-image builds one).
	JoinImage string `json:"joinImage"`
	// Replicas is the number of etcd members: odd, 1 to 7; at least 3 outside
	// dev, so quorum survives the loss of a member.
	Replicas int `json:"replicas"`
	// StorageClass is the StorageClass of etcd's volumes (a DNS-1123
	// subdomain); storage.create makes it, otherwise it must exist.
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
	// Delete), where the protected, retained claims are what keeps the data.
	ReclaimPolicy string `json:"reclaimPolicy"`
}

// Backup is kcp-tmc:backup.
type Backup struct {
	// Enabled deploys the backup and verification CronJobs and their storage;
	// must be true in prod.
	Enabled bool `json:"enabled"`
	// Schedule is when a snapshot is taken: a 5-field cron expression or
	// `@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`.
	Schedule string `json:"schedule"`
	// TimeZone is the IANA time zone of the schedules, such as `UTC` or
	// `Europe/Berlin`.
	TimeZone string `json:"timeZone"`
	// VerifySchedule is when the newest snapshot is restored and checked: a
	// 5-field cron expression.
	VerifySchedule string `json:"verifySchedule"`
	// Target is `s3` (AWS, or an S3-compatible endpoint) or `pvc`; prod must
	// use `s3`, since a PVC dies with the cluster it backs up.
	Target string `json:"target"`
	// Image runs the upload and fetch steps: a pinned repository:tag with sh
	// and the aws CLI (default the AWS CLI's official image; hack/backup-image
	// builds an alternative). The snapshot and restore steps run on etcd's
	// own image.
	Image string `json:"image"`
	// Bucket is the S3 bucket name (3–63 lowercase letters, digits, dots,
	// hyphens).
	Bucket string `json:"bucket"`
	// Prefix is the key prefix of the snapshots, without leading or trailing
	// slash.
	Prefix string `json:"prefix"`
	// Region is the bucket's AWS region; an AWS provider in it is created only
	// for AWS S3.
	Region string `json:"region"`
	// Endpoint is an http(s):// S3-compatible server (e.g. MinIO). When set, no
	// AWS resources are created and the IRSA keys are unused; the server's own
	// lifecycle applies (the lifecycle keys are still checked against each
	// other).
	Endpoint string `json:"endpoint"`
	// TransitionDays moves snapshots to STANDARD_IA after this many days (AWS
	// S3): 0 or at least 30.
	TransitionDays int `json:"transitionDays"`
	// ArchiveDays moves snapshots to an archive class after this many days:
	// 0 (never) or at least transitionDays+30.
	ArchiveDays int `json:"archiveDays"`
	// RetentionDays deletes snapshots after this many days (AWS S3: the
	// bucket's lifecycle; `pvc`: each upload prunes its cluster's older
	// snapshots): longer than transitionDays and archiveDays, checked on
	// every target.
	RetentionDays int `json:"retentionDays"`
	// NoncurrentDays deletes overwritten object versions after this many days:
	// at least 1.
	NoncurrentDays int `json:"noncurrentDays"`
	// ObjectLockDays locks new snapshots against deletion (governance mode):
	// 0 (off) up to retentionDays.
	ObjectLockDays int `json:"objectLockDays"`
	// OIDCProviderARN is the ARN of the cluster's IAM OIDC provider
	// (`arn:aws:iam::<account>:oidc-provider/<issuer>`), for IRSA. Required for
	// AWS S3 unless cloud.mode `eks` supplies it.
	OIDCProviderARN string `json:"oidcProviderArn"`
	// OIDCIssuer is that provider's issuer without https://, the end of its
	// ARN. Required with oidcProviderArn.
	OIDCIssuer string `json:"oidcIssuer"`
	// PVCSize sizes the volume of the pvc target.
	PVCSize string `json:"pvcSize"`
	// PVCStorageClass is the StorageClass of the pvc target (unset:
	// etcd.storageClass).
	PVCStorageClass string `json:"pvcStorageClass"`
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
	// shorter than leafDuration.
	RenewBefore string `json:"renewBefore"`
	// ACME is optional: when set (cert-manager mode only), the public
	// front-proxy certificate for `kcp.<domain>` comes from Let's Encrypt;
	// every other certificate stays private.
	ACME *tls.ACME `json:"acme,omitempty"`
}

// Ingress is kcp-tmc:ingress: how kcp.<domain> reaches the front-proxy.
type Ingress struct {
	// Mode is `loadbalancer` (a LoadBalancer Service, TCP: an NLB on AWS;
	// on a laptop cluster, its load-balancer add-on), `gateway` (a
	// Gateway API TLSRoute in passthrough mode), or the legacy ingress-nginx
	// modes `passthrough` (SSL passthrough) and `terminate` (TLS ends at
	// nginx, which breaks client-certificate auth); ingress-nginx was retired
	// in March 2026.
	Mode string `json:"mode"`
	// ClassName is the IngressClass name.
	ClassName string `json:"className"`
	// InstallController installs ingress-nginx with `--enable-ssl-passthrough`;
	// not in render mode, nor with mode `loadbalancer`.
	InstallController bool `json:"installController"`
	// ControllerVersion is the pinned ingress-nginx chart version, `X.Y.Z`.
	ControllerVersion string `json:"controllerVersion"`
	// ControllerReplicas is the number of ingress-nginx controllers: 1 to 9, at
	// least 2 in prod when installed.
	ControllerReplicas int `json:"controllerReplicas"`
	// Gateway is the Gateway of mode `gateway`.
	Gateway *ingress.Gateway `json:"gateway"`
}

// Monitoring is kcp-tmc:monitoring. The Slack webhook URL and the PagerDuty
// routing key are the secrets kcp-tmc:slackWebhookUrl and kcp-tmc:pagerDutyKey.
type Monitoring struct {
	// Enabled deploys the ServiceMonitors, alert rules and alert routing; must
	// be true in prod.
	Enabled bool `json:"enabled"`
	// Interval is the scrape interval: 1s to 5m (Prometheus' staleness
	// window) in whole seconds, such as `30s` or `1m`.
	Interval string `json:"interval"`
	// SlackChannel is the `#channel` alerts are posted to.
	SlackChannel string `json:"slackChannel"`
	// InstallStack installs kube-prometheus-stack (not in render mode).
	InstallStack bool `json:"installStack"`
	// StackVersion is the pinned kube-prometheus-stack chart version.
	StackVersion string `json:"stackVersion"`
	// RuleLabels are labels that make an existing Prometheus operator select
	// our monitors and rules (e.g. `release: kube-prometheus-stack`).
	RuleLabels map[string]string `json:"ruleLabels"`

	// SlackWebhookURL is the secret kcp-tmc:slackWebhookUrl: the Slack incoming
	// webhook (https://) alerts go to. Required in prod.
	SlackWebhookURL string `json:"-"`
	// PagerDutyKey is the secret kcp-tmc:pagerDutyKey: a PagerDuty routing key.
	// When set, critical alerts also page.
	PagerDutyKey string `json:"-"`
}

// Logging is kcp-tmc:logging: fluent-bit to Elasticsearch. The password is
// the secret kcp-tmc:elasticsearchPassword.
type Logging struct {
	// Enabled ships logs with fluent-bit.
	Enabled bool `json:"enabled"`
	// ElasticsearchHost is a host name or IP address, without scheme.
	ElasticsearchHost string `json:"elasticsearchHost"`
	// ElasticsearchPort is the port of Elasticsearch, 1 to 65535.
	ElasticsearchPort int `json:"elasticsearchPort"`
	// Index is a lowercase Elasticsearch index name.
	Index string `json:"index"`
	// TLS connects to Elasticsearch over TLS.
	TLS bool `json:"tls"`
	// Username authenticates to Elasticsearch, with the secret
	// elasticsearchPassword.
	Username string `json:"username"`
	// Image is the pinned fluent-bit image.
	Image string `json:"image"`

	// Password is the secret kcp-tmc:elasticsearchPassword: the password of
	// logging.username. Required when the username is set.
	Password string `json:"-"`
}

// Cloud is kcp-tmc:cloud (components/cloud).
type Cloud struct {
	// Mode is `existing` (a cluster reached through the kubeconfig or context)
	// or `eks` (created here; needs target.mode `kubeconfig` and no kubeconfig
	// secret).
	Mode string `json:"mode"`
	// Region is the AWS region; `zones` must be in it.
	Region string `json:"region"`
	// KubernetesVersion is the pinned EKS minor version, such as `1.33`.
	KubernetesVersion string `json:"kubernetesVersion"`
	// VPCCIDR is the VPC's /16; each zone gets a /20 public and a /19 private
	// subnet.
	VPCCIDR string `json:"vpcCidr"`
	// NATPerZone gives each zone its own NAT gateway; must be true in prod with
	// eks, so one zone's NAT cannot cut off the others.
	NATPerZone bool `json:"natPerZone"`
	// PublicEndpoint opens the EKS API endpoint to publicCidrs.
	PublicEndpoint bool `json:"publicEndpoint"`
	// PublicCIDRs are the CIDRs allowed to reach a public endpoint: required
	// with publicEndpoint (never the whole internet by default).
	PublicCIDRs []string `json:"publicCidrs"`
	// InstanceTypes are the node groups' EC2 instance types.
	InstanceTypes []string `json:"instanceTypes"`
	// NodesPerZone sizes the node group of each zone: 1 ≤ min ≤ desired ≤ max.
	NodesPerZone cloud.Nodes `json:"nodesPerZone"`
	// Owner tags every AWS resource (with the environment and costCenter).
	Owner string `json:"owner"`
	// CostCenter tags every AWS resource.
	CostCenter string `json:"costCenter"`
	// ExistingVPC uses a network that exists instead of creating one: its id
	// and a private and a public subnet id for every zone.
	ExistingVPC *cloud.ExistingVPC `json:"existingVpc,omitempty"`
}

// Cluster is one entry of kcp-tmc:clusters.
type Cluster struct {
	// Name names the cluster and its agent, which must never change: a
	// DNS-1035 label of at most 40 characters, used once.
	Name string `json:"name"`
	// Agent is `api-syncagent` (the default and only choice: `tmc-syncer`
	// is refused, kcp v0.32.3 has no SyncTarget API; docs/migrate-from-tmc.md).
	Agent string `json:"agent"`
	// Image is the agent's pinned repository:tag (default
	// ghcr.io/kcp-dev/api-syncagent:v0.7.0, the release for kcp 0.32).
	Image string `json:"image"`
	// Replicas is the number of agent pods: at least 1 (default 2,
	// leader-elected).
	Replicas int `json:"replicas"`
	// Namespace is where the agent runs on its cluster (default `kcp-agent`).
	Namespace string `json:"namespace"`
	// Workspace is the kcp workspace the agent serves (default `root:compute`).
	Workspace string `json:"workspace"`
	// Shard is the kcp shard kcp-tmc schedules that workspace onto when it
	// creates it: `root` or a name of kcp.shards (default: kcp's choice).
	// kcp never moves a workspace, so set it before the workspace exists.
	Shard string `json:"shard,omitempty"`
	// Region labels the cluster `topology.kubernetes.io/region`.
	Region string `json:"region"`
	// Zone labels the cluster `topology.kubernetes.io/zone`.
	Zone string `json:"zone"`
	// Resources are the kinds the agent syncs: at least one, each distinct.
	Resources []agents.Resource `json:"resources"`
	// QPS was the TMC syncer's kcp client rate: setting it is an error
	// (api-syncagent has no such flag).
	QPS int `json:"qps"`
	// Burst was the TMC syncer's kcp client burst: setting it is an error.
	Burst int `json:"burst"`
	// MaxSyncWorkers is a sync-tuning knob no agent has a flag for:
	// setting it is an error (api-syncagent has 4 fixed sync workers).
	MaxSyncWorkers int `json:"maxSyncWorkers"`
	// SyncBacklogLimit is a sync-tuning knob no agent has a flag for:
	// setting it is an error.
	SyncBacklogLimit int `json:"syncBacklogLimit"`
	// BatchSize is a sync-tuning knob no agent has a flag for: setting it
	// is an error.
	BatchSize int `json:"batchSize"`
}

// ExistingCA is one entry of kcp-tmc:existingCAs.
type ExistingCA struct {
	// Cert is the CA certificate, PEM.
	Cert string `json:"cert"`
	// Key is the CA's private key, PEM.
	Key string `json:"key"`
}

// ConfigSource is what Load reads: a stack's config values by full key
// ("kcp-tmc:etcd"), and whether a key was set as a secret.
type ConfigSource interface {
	GetConfig(key string) (string, bool)
	IsConfigSecret(key string) bool
}

// SecretKeys maps the `json:"-"` fields that Load reads from their own,
// secret, config keys (by Go field path) to those keys, in the order the
// reference lists them. A `json:"-"` field in neither SecretKeys nor the
// generator's internal fields makes generation fail, so a new secret cannot go undocumented.
var SecretKeys = []struct{ Field, Key string }{
	{"Kubeconfig", "kubeconfig"},
	{"ExistingCAs", "existingCAs"},
	{"Monitoring.SlackWebhookURL", "slackWebhookUrl"},
	{"Monitoring.PagerDutyKey", "pagerDutyKey"},
	{"Logging.Password", "elasticsearchPassword"},
	{"ClusterKubeconfigs", "clusterKubeconfigs"},
	{"KCPKubeconfig", "kcpKubeconfig"},
}

// KeyLister is a ConfigSource that can list every key the stack sets (all
// namespaces). Load refuses the kcp-tmc keys it does not know only when its
// source can list them; every source in this repository can.
type KeyLister interface {
	ConfigKeys() []string
}

// Keys are every kcp-tmc:* key the program reads (without the namespace), sorted.
func Keys() []string {
	var keys []string
	for _, f := range configFields(&Config{}) {
		keys = append(keys, f.key)
	}
	for _, s := range SecretKeys { // the secrets, read from keys of their own
		keys = append(keys, s.Key)
	}
	slices.Sort(keys)
	return keys
}

// UnknownKeyError is a config key the program does not read: a typo that
// would otherwise leave the setting silently at its default.
type UnknownKeyError struct {
	// Key is the full key as set, e.g. "kcp-tmc:etdc".
	Key string
	// Nearest is the known key closest to it.
	Nearest string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("config %s: unknown key; the nearest known key is %s:%s; the valid keys are %s (docs/configuration.md)",
		e.Key, Namespace, e.Nearest, strings.Join(Keys(), ", "))
}

// unknownKeys returns an error for every key in the kcp-tmc namespace, or in
// a namespace one or two typos away from it, that the program does not read.
// Other namespaces (kubernetes:, aws:, ...) belong to providers.
func unknownKeys(keys []string) []error {
	known := Keys()
	var errs []error
	for _, full := range keys {
		ns, key, ok := strings.Cut(full, ":")
		if !ok {
			continue
		}
		if ns == Namespace && slices.Contains(known, key) {
			continue
		}
		if ns != Namespace && levenshtein.Distance(ns, Namespace, nil) > 2 {
			continue
		}
		nearest, best := "", 0
		for _, k := range known {
			if d := keyDistance(key, k); nearest == "" || d < best {
				nearest, best = k, d
			}
		}
		errs = append(errs, &UnknownKeyError{Key: full, Nearest: nearest})
	}
	return errs
}

// keyDistance ranks known keys for "did you mean": edits ignoring case, and a
// key that starts the other (etcdReplicas → etcd, zone → zones)
// counts as one edit.
func keyDistance(typed, known string) int {
	a, b := strings.ToLower(typed), strings.ToLower(known)
	if a != b && (strings.HasPrefix(a, b) || strings.HasPrefix(b, a)) {
		return 1
	}
	return levenshtein.Distance(a, b, nil)
}

// Load reads every kcp-tmc:* key over the environment's profile and validates
// the result. All problems are returned together, each naming its key.
func Load(src ConfigSource) (*Config, error) {
	var errs []error
	if l, ok := src.(KeyLister); ok {
		errs = unknownKeys(l.ConfigKeys())
	}
	envRaw, ok := src.GetConfig(Namespace + ":environment")
	if !ok {
		return nil, errors.Join(append(errs, &FieldError{Key: "environment", Value: "<unset>", Allowed: "one of " + strings.Join(Environments, ", ")})...)
	}
	cfg, err := Profile(envRaw)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	for _, f := range configFields(cfg) {
		raw, ok := src.GetConfig(Namespace + ":" + f.key)
		if !ok || f.key == "environment" {
			continue
		}
		if err := decodeField(f.key, raw, f.ptr); err != nil {
			errs = append(errs, err)
		}
	}
	for _, sec := range []struct {
		key string
		dst *string
	}{{"slackWebhookUrl", &cfg.Monitoring.SlackWebhookURL}, {"pagerDutyKey", &cfg.Monitoring.PagerDutyKey},
		{"elasticsearchPassword", &cfg.Logging.Password}} {
		if v, ok := src.GetConfig(Namespace + ":" + sec.key); ok {
			if !src.IsConfigSecret(Namespace + ":" + sec.key) {
				// Refuse before anything can copy it into state or logs.
				errs = append(errs, &FieldError{Key: sec.key, Value: "<plaintext>", Allowed: "a secret: `pulumi config set --secret kcp-tmc:" + sec.key + "`"})
				continue
			}
			*sec.dst = v
		}
	}
	if raw, ok := src.GetConfig(Namespace + ":clusterKubeconfigs"); ok {
		if !src.IsConfigSecret(Namespace + ":clusterKubeconfigs") {
			errs = append(errs, &FieldError{Key: "clusterKubeconfigs", Value: "<plaintext>", Allowed: "a secret: `pulumi config set --secret kcp-tmc:clusterKubeconfigs < kubeconfigs.json`"})
		} else if err := decodeField("clusterKubeconfigs", raw, &cfg.ClusterKubeconfigs); err != nil {
			errs = append(errs, &FieldError{Key: "clusterKubeconfigs", Value: "<secret>", Allowed: "a map of cluster name to kubeconfig"})
		}
	}
	if v, ok := src.GetConfig(Namespace + ":kcpKubeconfig"); ok {
		if !src.IsConfigSecret(Namespace + ":kcpKubeconfig") {
			errs = append(errs, &FieldError{Key: "kcpKubeconfig", Value: "<plaintext>", Allowed: "a secret: `pulumi config set --secret kcp-tmc:kcpKubeconfig < admin.kubeconfig`"})
		} else {
			cfg.KCPKubeconfig = v
		}
	}
	if kc, ok := src.GetConfig(Namespace + ":kubeconfig"); ok {
		cfg.Kubeconfig = kc
		cfg.KubeconfigIsSecret = src.IsConfigSecret(Namespace + ":kubeconfig")
	}
	if raw, ok := src.GetConfig(Namespace + ":existingCAs"); ok {
		cfg.ExistingCAsIsSecret = src.IsConfigSecret(Namespace + ":existingCAs")
		if err := decodeField("existingCAs", raw, &cfg.ExistingCAs); err != nil {
			// Never echo a secret's content back in an error.
			errs = append(errs, &FieldError{Key: "existingCAs", Value: "<secret>", Allowed: "a map of CA name to {cert, key} PEM strings"})
		}
	}
	if profile, err := Profile(envRaw); err == nil {
		errs = append(errs, emptied(reflect.ValueOf(cfg).Elem(), reflect.ValueOf(profile).Elem(), "")...)
	}
	// A value that did not decode leaves the Config half-set: validating it
	// would report follow-on errors. Otherwise every problem in one round:
	// bad values and unknown keys together.
	decoded := !slices.ContainsFunc(errs, func(err error) bool { _, unknown := err.(*UnknownKeyError); return !unknown })
	if err := cfg.Validate(); err != nil && decoded {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, joined.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return cfg, nil
}

// emptied refuses a string key set to "" where the profile has a value: an
// empty value is no way to ask for a default (the component's may differ
// from the environment's), and every such key needs one.
func emptied(got, profile reflect.Value, prefix string) []error {
	var errs []error
	for i := range got.NumField() {
		name := keyName(got.Type().Field(i), prefix == "")
		if name == "" {
			continue
		}
		switch g, p := got.Field(i), profile.Field(i); g.Kind() {
		case reflect.String:
			if g.String() == "" && p.String() != "" {
				errs = append(errs, &FieldError{Key: prefix + name, Value: "", Allowed: "a value; leave the key out for the " +
					"environment's default (" + p.String() + ")"})
			}
		case reflect.Struct:
			errs = append(errs, emptied(g, p, prefix+name+".")...)
		}
	}
	return errs
}

type configField struct {
	key string
	ptr any
}

// configFields lists the settable top-level keys and where each decodes to.
func configFields(c *Config) []configField {
	return []configField{
		{"environment", &c.Environment},
		{"target", &c.Target},
		{"domain", &c.Domain},
		{"namespace", &c.Namespace},
		{"zones", &c.Zones},
		{"podSecurityVersion", &c.PodSecurityVersion},
		{"kcp", &c.KCP},
		{"etcd", &c.Etcd},
		{"storage", &c.Storage},
		{"backup", &c.Backup},
		{"tls", &c.TLS},
		{"ingress", &c.Ingress},
		{"monitoring", &c.Monitoring},
		{"logging", &c.Logging},
		{"cloud", &c.Cloud},
		{"clusters", &c.Clusters},
		{"agentResources", &c.AgentResources},
	}
}

// decodeField decodes one config value over the profile default already in
// ptr, so only the keys a stack sets override the profile. Plain strings are
// stored unquoted by Pulumi; objects, lists, numbers and booleans as JSON.
func decodeField(key, raw string, ptr any) error {
	if s, isString := ptr.(*string); isString {
		*s = raw
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ptr); err != nil {
		return decodeError(key, raw, err)
	}
	return nil
}

// unsupportedKeys are keys a user may expect (from a platform spec or an earlier
// kcp-tmc) that no setting of the pinned programs can honour: refused with why.
var unsupportedKeys = map[string]string{
	"kcp.performance": "unset: kcp v0.32.3 has no flag for it. maxConcurrentOperations, workerPoolSize and operationTimeout " +
		"would be kube-apiserver's --max-requests-inflight, --max-mutating-requests-inflight and --request-timeout, which kcp " +
		"leaves out of the apiserver flags it registers (and exits on); see docs/configuration.md, \"Performance knobs kcp has no flag for\"",
}

// decodeError turns encoding/json errors into FieldErrors with the full key path.
func decodeError(key, raw string, err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		path := key
		if typeErr.Field != "" {
			path = key + "." + typeErr.Field
		}
		return &FieldError{Key: path, Value: "a " + typeErr.Value, Allowed: "a value of type " + jsonKind(typeErr.Type.Kind().String())}
	case errors.As(err, &syntaxErr):
		return &FieldError{Key: key, Value: raw, Allowed: "a YAML map, list or scalar of the documented shape"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if why, ok := unsupportedKeys[key+"."+field]; ok {
			return &FieldError{Key: key + "." + field, Value: "<set>", Allowed: why}
		}
		return &FieldError{Key: key + "." + field, Value: "<set>", Allowed: "no such key; see docs/configuration.md for " + key}
	default:
		return &FieldError{Key: key, Value: raw, Allowed: err.Error()}
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32":
		return "integer"
	case "slice":
		return "list"
	case "struct", "map":
		return "map"
	case "bool":
		return "boolean (true/false)"
	}
	return goKind
}

// FieldError is one invalid config value: which key, what it was, what is allowed.
type FieldError struct {
	Key     string
	Value   string
	Allowed string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config %s:%s: invalid value %q: want %s", Namespace, e.Key, e.Value, e.Allowed)
}

// joinSorted joins errors in key order so that messages are stable.
func joinSorted(errs []error) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}
