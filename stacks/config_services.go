package stacks

// The config schema of what surrounds the control plane: backups, the
// front door, monitoring, logging, the cloud layer and the physical
// clusters (config.go has the control plane's).

import (
	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/cloud"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
)

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
	// lifecycle and encryption apply (the lifecycle keys are still checked
	// against each other; uploads ask for no server-side encryption).
	Endpoint string `json:"endpoint"`
	// AccessKeyID is the access key of backup.endpoint's server, with the
	// secret backupSecretAccessKey: both required with backup.endpoint,
	// refused without it (AWS S3 is reached through IRSA, never a static key).
	AccessKeyID string `json:"accessKeyId"`
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
	// etcd.storageClass). Fixed once the volume exists (the snapshots are
	// on it): a change, also of etcd.storageClass while this is unset, is
	// refused, naming the class to set here.
	PVCStorageClass string `json:"pvcStorageClass"`

	// SecretAccessKey is the secret kcp-tmc:backupSecretAccessKey: the
	// secret key of backup.accessKeyId. Required with backup.endpoint.
	SecretAccessKey string `json:"-"`
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
	// Route53ZoneID is the Route 53 hosted zone of `domain` (`Z…`), with
	// mode `loadbalancer`, or `gateway` with `gateway.className`: the up
	// publishes `kcp.<domain>` and each shard's host there at its load
	// balancer's address, or the address the Gateway's implementation
	// reports (TTL 60 s; a record of the same type already there is taken
	// over; the zone must hold the hosts) before it deploys the agents,
	// which reach kcp by that name; external-dns is told to leave those
	// names alone. Uses the AWS provider of cloud.region; not in render
	// mode nor with target.skipAwait (the addresses are known only once
	// awaited). Unset: no records (external-dns, or by hand: docs/ingress.md).
	Route53ZoneID string `json:"route53ZoneId,omitempty"`
	// SourceRanges are the only client CIDRs kcp's load balancers accept,
	// with mode `loadbalancer` (unset: every address): 1 to 60 IPv4 CIDRs in
	// canonical form — the agents' clusters' egress addresses, your
	// operators' and CI's (the up reaches kcp through its load balancer). On
	// AWS the NLBs' security groups allow only these.
	SourceRanges []string `json:"sourceRanges,omitempty"`
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
	// Namespace is where Prometheus and Alertmanager run on kcp's cluster
	// (installStack installs them there): the only namespace the stack's
	// NetworkPolicies let scrape kcp, etcd, the ingress controller and the
	// log shipper, and where the Alertmanager config Secret goes; not a
	// namespace kcp-tmc creates (kcp's, `logging`, `ingress-nginx`,
	// `cert-manager`). Physical clusters take it too, unless a cluster sets
	// `clusters[].monitoring.namespace`.
	Namespace string `json:"namespace"`
	// RuleLabels are labels that make an existing Prometheus operator select
	// our monitors and rules (e.g. `release: kube-prometheus-stack`); the
	// agents' on physical clusters too, unless a cluster sets
	// `clusters[].monitoring.ruleLabels`.
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
	// TLS connects to Elasticsearch over TLS, verifying its certificate and
	// that it names elasticsearchHost.
	TLS bool `json:"tls"`
	// CACert is the PEM CA certificate(s) that sign Elasticsearch's serving
	// certificate, when not a public CA's (a self-hosted cluster: ECK makes
	// its own CA). Unset: the fluent-bit image's system CAs. Only with tls.
	CACert string `json:"caCert"`
	// Username authenticates to Elasticsearch, with the secret
	// elasticsearchPassword.
	Username string `json:"username"`
	// Image is the pinned fluent-bit image.
	Image string `json:"image"`
	// PodLogsDir is the nodes' kubelet `podLogsDir` (KubeletConfiguration),
	// where the kubelet writes container logs: an absolute path. Set it when
	// your nodes keep pod logs outside /var/log (a separate disk); fluent-bit
	// mounts it read-only. Default /var/log/pods.
	PodLogsDir string `json:"podLogsDir"`

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
	// Region is the AWS region; `zones` must be in it. A region of the
	// standard partition (not GovCloud or China) with mode `eks`.
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
	// PublicCIDRs are the CIDRs allowed to reach a public endpoint, in
	// canonical form (203.0.113.0/24, not 203.0.113.7/24): required with
	// publicEndpoint (never the whole internet by default).
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
	// With kcp.oidc and kcp.shards it must be `root` (docs/sharding.md).
	Shard string `json:"shard,omitempty"`
	// Region labels the cluster `topology.kubernetes.io/region`.
	Region string `json:"region"`
	// Zone labels the cluster `topology.kubernetes.io/zone`.
	Zone string `json:"zone"`
	// Resources are the kinds the agent syncs: at least one, each distinct.
	Resources []agents.Resource `json:"resources"`
	// LogDebug runs the agent with `--log-debug` (default false): a log line
	// per reconcile and per step of each object's sync, which shows where
	// an object waits (README "Sync at scale"); several lines per object.
	LogDebug bool `json:"logDebug"`
	// Monitoring is how the cluster's own Prometheus operator finds the
	// agent's ServiceMonitor and alert rules (docs/monitoring.md).
	Monitoring ClusterMonitoring `json:"monitoring"`
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

// ClusterMonitoring is clusters[].monitoring.
type ClusterMonitoring struct {
	// Enabled installs the agent's ServiceMonitor and alert rules, which
	// need the Prometheus operator's CRDs on the cluster (unset:
	// `monitoring.enabled`). false for a cluster without them (not in
	// prod): its agent is then watched by nothing — no SyncerDown, no sync
	// alerts.
	Enabled *bool `json:"enabled"`
	// Namespace is where the cluster's Prometheus runs: the only namespace
	// allowed to scrape the agent. Unset: `monitoring.namespace`.
	Namespace string `json:"namespace"`
	// RuleLabels go on the agent's ServiceMonitor and PrometheusRule so that
	// the cluster's Prometheus operator selects them (kube-prometheus-stack:
	// `release: <its release>`). Unset: `monitoring.ruleLabels`; `{}`: none.
	RuleLabels map[string]string `json:"ruleLabels"`
}

// ExistingCA is one entry of kcp-tmc:existingCAs.
type ExistingCA struct {
	// Cert is the CA certificate, PEM.
	Cert string `json:"cert"`
	// Key is the CA's private key, PEM.
	Key string `json:"key"`
}
