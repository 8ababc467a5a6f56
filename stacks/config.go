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
	"sort"
	"strings"
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

// Anti-affinity modes for kcp and etcd replicas.
const (
	AntiAffinityNone     = "none"     // no spreading (single-replica dev)
	AntiAffinityHostname = "hostname" // hard: one replica per node
	AntiAffinityZone     = "zone"     // hard: one replica per zone
)

// Config is the whole, typed configuration of one stack. Each field tagged
// `config` is read from the Pulumi config key kcp-tmc:<tag>; objects are
// YAML maps in Pulumi.<stack>.yaml. docs/configuration.md lists every key.
type Config struct {
	// Environment selects the profile whose defaults fill unset keys.
	Environment string `config:"environment"`
	// Target says where Kubernetes objects go.
	Target Target `config:"target"`
	// Domain is the DNS zone kcp is published under (kcp.<domain>).
	Domain string `config:"domain"`
	// Namespace is where kcp, etcd and their jobs run.
	Namespace string `config:"namespace"`
	// Zones lists the availability zones replicas are spread over.
	Zones []string `config:"zones"`
	// PodSecurityVersion pins the Pod Security Standards version enforced.
	PodSecurityVersion string     `config:"podSecurityVersion"`
	KCP                KCP        `config:"kcp"`
	Etcd               Etcd       `config:"etcd"`
	Storage            Storage    `config:"storage"`
	Backup             Backup     `config:"backup"`
	TLS                TLS        `config:"tls"`
	Ingress            Ingress    `config:"ingress"`
	Monitoring         Monitoring `config:"monitoring"`
	Logging            Logging    `config:"logging"`
	// Cloud says where the hosting cluster comes from: existing (kubeconfig or
	// context) or eks (created by the cloud component).
	Cloud Cloud `config:"cloud"`
	// Clusters are the physical clusters connected to kcp, one agent each.
	Clusters []Cluster `config:"clusters"`
	// AgentResources are every agent container's requests and limits.
	AgentResources Resources `config:"agentResources"`
	// ClusterKubeconfigs is the secret kcp-tmc:clusterKubeconfigs (cluster name → kubeconfig).
	ClusterKubeconfigs map[string]string `json:"-"`
	// KCPKubeconfig is the secret kcp-tmc:kcpKubeconfig: kcp's admin access, for the
	// kcp side of the agents once kcp runs.
	KCPKubeconfig string `json:"-"`
	// ExistingCAs is the secret kcp-tmc:existingCAs: CAs brought by the user,
	// by CA name (bring your own CA).
	ExistingCAs map[string]ExistingCA `json:"-"`
	// ExistingCAsIsSecret records whether kcp-tmc:existingCAs was set with --secret.
	ExistingCAsIsSecret bool `json:"-"`
	// Kubeconfig is the secret kcp-tmc:kubeconfig (kubeconfig target only).
	Kubeconfig string `json:"-"`
	// KubeconfigIsSecret records whether kcp-tmc:kubeconfig was set with --secret.
	KubeconfigIsSecret bool `json:"-"`
}

// Target is kcp-tmc:target.
type Target struct {
	// Mode is "render" (write YAML to RenderDir) or "kubeconfig" (a real cluster).
	Mode string `json:"mode"`
	// RenderDir is where render mode writes manifests, relative to the project.
	RenderDir string `json:"renderDir,omitempty"`
	// Context selects a context of the kubeconfig (or of ~/.kube/config).
	Context string `json:"context,omitempty"`
	// SkipAwait stops the provider from waiting for workloads to become ready.
	SkipAwait bool `json:"skipAwait,omitempty"`
}

// KCP is kcp-tmc:kcp.
type KCP struct {
	Image     string    `json:"image"`
	Version   string    `json:"version"`
	Replicas  int       `json:"replicas"`
	Resources Resources `json:"resources"`
	// AntiAffinity spreads kcp replicas: none, hostname or zone (hard).
	AntiAffinity        string      `json:"antiAffinity"`
	FrontProxyReplicas  int         `json:"frontProxyReplicas"`
	FrontProxyResources Resources   `json:"frontProxyResources"`
	Performance         Performance `json:"performance"`
}

// Performance is kcp-tmc:kcp.performance: the seed's knobs as kcp's own
// apiserver flags (docs/configuration.md has the mapping).
type Performance struct {
	MaxRequestsInflight         int    `json:"maxRequestsInflight"`
	MaxMutatingRequestsInflight int    `json:"maxMutatingRequestsInflight"`
	RequestTimeout              string `json:"requestTimeout"`
}

// Etcd is kcp-tmc:etcd.
type Etcd struct {
	Image        string    `json:"image"`
	Version      string    `json:"version"`
	Replicas     int       `json:"replicas"`
	StorageClass string    `json:"storageClass"`
	StorageSize  string    `json:"storageSize"`
	AntiAffinity string    `json:"antiAffinity"`
	Resources    Resources `json:"resources"`
	// QuotaBackendBytes caps the database, as a quantity ("8Gi").
	QuotaBackendBytes string `json:"quotaBackendBytes"`
}

// Storage is kcp-tmc:storage: whether etcd's StorageClass is created, and how.
type Storage struct {
	// Create makes etcd.storageClass on the AWS EBS CSI driver; false uses an existing class.
	Create          bool   `json:"create"`
	VolumeType      string `json:"volumeType"`
	IOPS            int    `json:"iops"`
	ThroughputMiBps int    `json:"throughputMiBps"`
	// KMSKeyID is a KMS key ARN or id for volume encryption (default: the account's EBS key).
	KMSKeyID      string `json:"kmsKeyId"`
	ReclaimPolicy string `json:"reclaimPolicy"`
}

// Backup is kcp-tmc:backup.
type Backup struct {
	Enabled  bool   `json:"enabled"`
	Schedule string `json:"schedule"`
	TimeZone string `json:"timeZone"`
	// VerifySchedule runs the restore verification of the newest snapshot.
	VerifySchedule string `json:"verifySchedule"`
	// Target is s3 (AWS, or an S3-compatible endpoint) or pvc.
	Target string `json:"target"`
	// Image has sh, etcdctl, etcdutl and the aws CLI (hack/backup-image).
	Image    string `json:"image"`
	Bucket   string `json:"bucket"`
	Prefix   string `json:"prefix"`
	Region   string `json:"region"`
	Endpoint string `json:"endpoint"`
	// Lifecycle in days (S3 on AWS).
	TransitionDays int `json:"transitionDays"`
	ArchiveDays    int `json:"archiveDays"`
	RetentionDays  int `json:"retentionDays"`
	NoncurrentDays int `json:"noncurrentDays"`
	ObjectLockDays int `json:"objectLockDays"`
	// OIDCProviderARN and OIDCIssuer identify the cluster's IRSA provider.
	OIDCProviderARN string `json:"oidcProviderArn"`
	OIDCIssuer      string `json:"oidcIssuer"`
	// PVCSize and PVCStorageClass size the pvc target (class default: etcd.storageClass).
	PVCSize         string `json:"pvcSize"`
	PVCStorageClass string `json:"pvcStorageClass"`
}

// TLS is kcp-tmc:tls: how certificates are issued (components/pki).
type TLS struct {
	// Mode is "cert-manager" or "self-managed" (pulumi-tls).
	Mode string `json:"mode"`
	// InstallCertManager installs cert-manager's Helm chart (not in render mode).
	InstallCertManager bool   `json:"installCertManager"`
	CertManagerVersion string `json:"certManagerVersion"`
	// Durations in hours, Go syntax ("8760h").
	CADuration   string `json:"caDuration"`
	LeafDuration string `json:"leafDuration"`
	RenewBefore  string `json:"renewBefore"`
	// ACME, when set, issues the public front-proxy certificate from Let's Encrypt.
	ACME *ACME `json:"acme,omitempty"`
}

// Ingress is kcp-tmc:ingress: how kcp.<domain> reaches the front-proxy.
type Ingress struct {
	// Mode is passthrough (nginx SSL passthrough), loadbalancer (NLB, TCP) or
	// terminate (TLS ends at nginx: breaks client-certificate auth).
	Mode               string `json:"mode"`
	ClassName          string `json:"className"`
	InstallController  bool   `json:"installController"`
	ControllerVersion  string `json:"controllerVersion"`
	ControllerReplicas int    `json:"controllerReplicas"`
}

// Monitoring is kcp-tmc:monitoring. The Slack webhook URL and the PagerDuty
// routing key are the secrets kcp-tmc:slackWebhookUrl and kcp-tmc:pagerDutyKey.
type Monitoring struct {
	Enabled      bool   `json:"enabled"`
	Interval     string `json:"interval"`
	SlackChannel string `json:"slackChannel"`
	// InstallStack installs kube-prometheus-stack (not in render mode).
	InstallStack bool   `json:"installStack"`
	StackVersion string `json:"stackVersion"`
	// RuleLabels make an existing Prometheus operator select our monitors and rules.
	RuleLabels map[string]string `json:"ruleLabels"`

	SlackWebhookURL string `json:"-"`
	PagerDutyKey    string `json:"-"`
}

// Logging is kcp-tmc:logging: fluent-bit to Elasticsearch. The password is
// the secret kcp-tmc:elasticsearchPassword.
type Logging struct {
	Enabled           bool   `json:"enabled"`
	ElasticsearchHost string `json:"elasticsearchHost"`
	ElasticsearchPort int    `json:"elasticsearchPort"`
	Index             string `json:"index"`
	TLS               bool   `json:"tls"`
	Username          string `json:"username"`
	Image             string `json:"image"`

	Password string `json:"-"`
}

// Cloud is kcp-tmc:cloud (components/cloud).
type Cloud struct {
	Mode              string   `json:"mode"` // existing (default) or eks
	Region            string   `json:"region"`
	KubernetesVersion string   `json:"kubernetesVersion"`
	VPCCIDR           string   `json:"vpcCidr"`
	NATPerZone        bool     `json:"natPerZone"`
	PublicEndpoint    bool     `json:"publicEndpoint"`
	PublicCIDRs       []string `json:"publicCidrs"`
	InstanceTypes     []string `json:"instanceTypes"`
	NodesPerZone      struct {
		Min     int `json:"min"`
		Desired int `json:"desired"`
		Max     int `json:"max"`
	} `json:"nodesPerZone"`
	// Owner and CostCenter tag every AWS resource, with the environment.
	Owner      string `json:"owner"`
	CostCenter string `json:"costCenter"`
	// ExistingVPC uses a network that exists: its id and a private and a
	// public subnet id per zone.
	ExistingVPC *struct {
		ID             string            `json:"id"`
		PrivateSubnets map[string]string `json:"privateSubnets"`
		PublicSubnets  map[string]string `json:"publicSubnets"`
	} `json:"existingVpc,omitempty"`
}

// Cluster is one entry of kcp-tmc:clusters.
type Cluster struct {
	Name string `json:"name"`
	// Agent is api-syncagent (default) or tmc-syncer (legacy).
	Agent     string `json:"agent"`
	Image     string `json:"image"`
	Replicas  int    `json:"replicas"`
	Namespace string `json:"namespace"`
	// Workspace is the kcp workspace the agent serves (default root:compute).
	Workspace string       `json:"workspace"`
	Region    string       `json:"region"`
	Zone      string       `json:"zone"`
	Resources []SyncedKind `json:"resources"`
	// QPS and Burst tune the TMC syncer's kcp client.
	QPS   int `json:"qps"`
	Burst int `json:"burst"`
	// The seed's knobs; no agent has flags for them, so setting one is an error.
	MaxSyncWorkers   int `json:"maxSyncWorkers"`
	SyncBacklogLimit int `json:"syncBacklogLimit"`
	BatchSize        int `json:"batchSize"`
}

// SyncedKind is one resource an agent syncs.
type SyncedKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Plural  string `json:"plural"`
}

// ACME is kcp-tmc:tls.acme.
type ACME struct {
	Email        string `json:"email"`
	Server       string `json:"server,omitempty"`
	IngressClass string `json:"ingressClass,omitempty"`
}

// ExistingCA is one entry of kcp-tmc:existingCAs.
type ExistingCA struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Resources are container requests and limits (Kubernetes quantities).
type Resources struct {
	Requests ResourceList `json:"requests"`
	Limits   ResourceList `json:"limits"`
}

// ResourceList is a CPU and memory pair.
type ResourceList struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

// ConfigSource is what Load reads: a stack's config values by full key
// ("kcp-tmc:etcd"), and whether a key was set as a secret.
type ConfigSource interface {
	GetConfig(key string) (string, bool)
	IsConfigSecret(key string) bool
}

// Load reads every kcp-tmc:* key over the environment's profile and validates
// the result. All problems are returned together, each naming its key.
func Load(src ConfigSource) (*Config, error) {
	envRaw, ok := src.GetConfig(Namespace + ":environment")
	if !ok {
		return nil, &FieldError{Key: "environment", Value: "<unset>", Allowed: "one of " + strings.Join(Environments, ", ")}
	}
	cfg, err := Profile(envRaw)
	if err != nil {
		return nil, err
	}
	var errs []error
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
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
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
