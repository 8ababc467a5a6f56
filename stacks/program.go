package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"

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
		return onOwnStack(func() error { return Deploy(ctx, cfg, dir) })
	}
}

// onOwnStack runs fn on a goroutine of its own and waits for it. The SDK
// records every registration's whole Go stack in the state (≈2 KB per
// resource); below the program that stack holds only the host's frames
// (the Automation API's gRPC server, the test runner), which were a quarter
// of each cluster's state and are rewritten with every checkpoint. A panic
// in fn comes back as an error with its stack.
func onOwnStack(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("program panicked: %v\n%s", r, debug.Stack())
			}
		}()
		done <- fn()
	}()
	return <-done
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
	for _, w := range Warnings(cfg) {
		_ = ctx.Log.Warn(w, nil)
	}
	if cfg.Target.SkipAwait {
		if err := ctx.RegisterStackTransform(skipAwaitTransform); err != nil {
			return fmt.Errorf("target.skipAwait: %w", err)
		}
	}
	awsProvider := awsProviders(ctx)
	eks, err := deployCloud(ctx, cfg, awsProvider)
	if err != nil {
		return err
	}
	provider, err := newKubernetesProvider(ctx, cfg, projectDir, eks)
	if err != nil {
		return err
	}
	k8s := pulumi.Providers(provider)

	plat, err := platform.NewPlatform(ctx, "platform", platformArgs(cfg), k8s)
	if err != nil {
		return fmt.Errorf("platform: %w", err)
	}

	certs, err := tls.NewPKI(ctx, "pki", pkiArgs(cfg), k8s, pulumi.DependsOn([]pulumi.Resource{plat}))
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}

	storArgs := storageArgs(cfg)
	if eks != nil && storArgs.Create && storArgs.KMSKeyID == nil {
		storArgs.KMSKeyID = eks.VolumeKeyARN // the cloud layer's volume key
	}
	stor, err := storage.NewStorage(ctx, "storage", storArgs, k8s)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	db, clusters, err := deployEtcds(ctx, cfg, k8s, pulumi.DependsOn([]pulumi.Resource{plat, certs, stor}))
	if err != nil {
		return err
	}
	dbs := append([]pulumi.Resource{plat, certs}, clusters...)
	server, err := kcp.NewKCP(ctx, "kcp", kcpArgs(cfg), k8s, pulumi.DependsOn(dbs))
	if err != nil {
		return fmt.Errorf("kcp: %w", err)
	}
	entryAfter := []pulumi.Resource{server}
	if a, ok := loadBalancerControllerArgs(cfg, eks); ok {
		p, err := awsProvider(cfg.Cloud.Region)
		if err != nil {
			return err
		}
		lbc, err := awslb.New(ctx, "aws-load-balancer-controller", a, pulumi.Providers(p, provider))
		if err != nil {
			return fmt.Errorf("aws load balancer controller: %w", err)
		}
		// The load balancers' Services: made once it serves them, deleted
		// (and their NLBs with them) before it goes.
		entryAfter = append(entryAfter, lbc.Release)
	}
	entry, err := ingress.NewIngress(ctx, "ingress", ingressArgs(cfg), k8s, pulumi.DependsOn(entryAfter))
	if err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	// What the stack writes into kcp goes through its front door: created
	// after it, and destroyed before kcp and the front door go.
	// Named one by one: a component's dependents see only the children the
	// SDK had registered (found by a flaky test: kcp's Deployments were
	// sometimes missing, and destroy could delete them before the kcp side).
	reached := append(append([]pulumi.Resource{server, entry}, server.Workloads...), entry.Routes...)
	kcpProviders, workspaces, err := newKCPProviders(ctx, cfg, projectDir, kcpAccess(cfg, certs, entry), reached...)
	if err != nil {
		return err
	}
	if p, ok := kcpProviders[rootWorkspace]; ok {
		// Aliased: these were children of the kcp component before.
		if err := kcp.MetricsReader(ctx, "kcp", tls.MetricsViewersGroup, pulumi.Provider(p),
			pulumi.Aliases([]pulumi.Alias{{Parent: server}})); err != nil {
			return err
		}
	}

	if cfg.Backup.Enabled {
		if err := deployBackup(ctx, cfg, provider, awsProvider, eks, dbs); err != nil {
			return err
		}
	}

	if err := deployObservability(ctx, cfg, k8s, pulumi.DependsOn([]pulumi.Resource{plat, certs, server})); err != nil {
		return err
	}

	// The agents reach kcp by name: made once the names are published.
	var published []pulumi.Resource
	if a, ok := dnsArgs(cfg, entry.HostAddresses); ok {
		p, err := awsProvider(cfg.Cloud.Region)
		if err != nil {
			return err
		}
		records, err := route53.New(ctx, "dns", a, pulumi.Provider(p))
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		published = records.Published
	}

	if err := deployAgents(ctx, cfg, projectDir, certs, kcpProviders, workspaces, published); err != nil {
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

// deployCloud creates the AWS cloud layer (cloud.mode eks); nil otherwise.
func deployCloud(ctx *pulumi.Context, cfg *Config, awsProvider func(string) (*aws.Provider, error)) (*cloud.EKS, error) {
	if cfg.Cloud.Mode != "eks" {
		return nil, nil
	}
	p, err := awsProvider(cfg.Cloud.Region)
	if err != nil {
		return nil, err
	}
	eks, err := cloud.NewEKS(ctx, "cloud", cloudArgs(cfg), pulumi.Provider(p))
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	ctx.Export("clusterName", eks.ClusterName)
	ctx.Export("oidcProviderArn", eks.OIDCProviderARN)
	return eks, nil
}

// deployEtcds creates every shard's etcd cluster and the separate cache
// server's: the root shard's first (returned on its own), then the rest.
func deployEtcds(ctx *pulumi.Context, cfg *Config, k8s, after pulumi.ResourceOption) (*etcd.Etcd, []pulumi.Resource, error) {
	db, err := etcd.NewEtcd(ctx, "etcd", etcdArgs(cfg), k8s, after)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: %w", err)
	}
	dbs := []pulumi.Resource{db}
	shards := Shards(cfg)
	for i, s := range shards.Shards {
		shardDB, err := etcd.NewEtcd(ctx, s.EtcdCluster(), shardEtcdArgs(cfg, s, shardKey(i)), k8s, after)
		if err != nil {
			return nil, nil, fmt.Errorf("etcd of shard %s: %w", s.Name, err)
		}
		dbs = append(dbs, shardDB)
	}
	if c := shards.Cache; c != nil {
		cacheDB, err := etcd.NewEtcd(ctx, c.EtcdCluster(), cacheEtcdArgs(cfg, *c), k8s, after)
		if err != nil {
			return nil, nil, fmt.Errorf("etcd of the cache server: %w", err)
		}
		dbs = append(dbs, cacheDB)
	}
	return db, dbs, nil
}

// deployBackup creates the backup jobs of every etcd cluster, and on AWS
// their bucket, key and role (trusting the cloud layer's cluster, if any).
func deployBackup(ctx *pulumi.Context, cfg *Config, provider pulumi.ProviderResource, awsProvider func(string) (*aws.Provider, error), eks *cloud.EKS, dbs []pulumi.Resource) error {
	providers := []pulumi.ProviderResource{provider}
	if a := backupArgs(cfg); a.Target == backup.TargetS3 && a.S3.Endpoint == "" {
		p, err := awsProvider(cfg.Backup.Region)
		if err != nil {
			return err
		}
		providers = append(providers, p)
	}
	bArgs := backupArgs(cfg)
	if eks != nil && bArgs.S3.IRSA != nil {
		// The backup role trusts the cluster the cloud layer created.
		bArgs.S3.IRSA = &backup.IRSAProvider{ARN: eks.OIDCProviderARN, Issuer: eks.OIDCIssuer}
	}
	snapshots, err := backup.NewBackup(ctx, "backup", bArgs, pulumi.Providers(providers...), pulumi.DependsOn(dbs))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	ctx.Export("backupTarget", snapshots.Target)
	return nil
}

// deployObservability creates the monitors, rules and dashboards
// (monitoring.enabled) and the log shipping (logging.enabled).
func deployObservability(ctx *pulumi.Context, cfg *Config, k8s, after pulumi.ResourceOption) error {
	if cfg.Monitoring.Enabled {
		if _, err := monitoring.NewMonitoring(ctx, "monitoring", monitoringArgs(cfg), k8s, after); err != nil {
			return fmt.Errorf("monitoring: %w", err)
		}
	}
	if cfg.Logging.Enabled {
		if _, err := logging.NewLogging(ctx, "logging", loggingArgs(cfg), k8s); err != nil {
			return fmt.Errorf("logging: %w", err)
		}
	}
	return nil
}

// Warnings are what a valid configuration does that its owner may not
// expect; every preview and up prints them.
func Warnings(cfg *Config) []string {
	var out []string
	if m := cfg.Ingress.Mode; m == ingress.ModePassthrough || m == ingress.ModeTerminate {
		out = append(out, fmt.Sprintf("kcp-tmc:ingress.mode %s relies on ingress-nginx, retired in March 2026 (no releases, no CVE fixes): "+
			"move to ingress.mode gateway or loadbalancer (docs/ingress.md)", m))
	}
	// Without its config Secret the installed Alertmanager runs
	// prometheus-operator's default: one receiver that sends nothing.
	if m := cfg.Monitoring; m.Enabled && m.InstallStack && m.SlackWebhookURL == "" {
		out = append(out, "kcp-tmc:monitoring.installStack installs an Alertmanager that sends alerts nowhere without a receiver: "+
			"set `pulumi config set --secret kcp-tmc:slackWebhookUrl` (docs/monitoring.md \"Alertmanager\")")
	}
	// The machine that runs the up (it reaches the EKS API from
	// cloud.publicCidrs) reaches kcp through the load balancer too, for the
	// kcp side: outside ingress.sourceRanges that fails.
	if outside := uncovered(deployerCIDRs(cfg), cfg.Ingress.SourceRanges); len(outside) > 0 && kcpSideLive(cfg) && cfg.Target.KCPServer == "" && cfg.KCPKubeconfig == "" {
		out = append(out, fmt.Sprintf("kcp-tmc:ingress.sourceRanges leaves out cloud.publicCidrs %s, from where this up reaches the EKS API: "+
			"the up applies the kcp side through kcp's load balancer, which will not admit it; add them, or set target.kcpServer "+
			"to an address inside the network (docs/ingress.md \"Who may reach kcp\")", strings.Join(outside, ", ")))
	}
	if cfg.Storage.Create && !cfg.ModifiesVolumes() {
		out = append(out, "kcp-tmc:storage.volumeType, iops and throughputMiBps reach only etcd volumes made after a change: "+
			"on Kubernetes "+storage.ModifyVolumesSince+" or later set storage.modifyVolumes: true "+
			"(docs/control-plane.md \"Changing the volumes' type, IOPS or throughput\")")
	}
	return out
}

// uncovered are the CIDRs of from that no range of ranges contains; none
// when ranges is unset (every address is admitted).
func uncovered(from, ranges []string) []string {
	if len(ranges) == 0 {
		return nil
	}
	var out []string
	for _, f := range from {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			continue // refused by validation, naming its key
		}
		if !slices.ContainsFunc(ranges, func(r string) bool {
			q, err := netip.ParsePrefix(r)
			return err == nil && q.Bits() <= p.Bits() && q.Contains(p.Addr())
		}) {
			out = append(out, f)
		}
	}
	return out
}

// deployerCIDRs are where the machine running the up is known to be: the
// CIDRs allowed to the public endpoint of the EKS cluster the stack makes.
func deployerCIDRs(cfg *Config) []string {
	if cfg.Cloud.Mode != "eks" || !cfg.Cloud.PublicEndpoint {
		return nil
	}
	return cfg.Cloud.PublicCIDRs
}
