package stacks

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/components/storage"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

// Validate checks every key and returns all problems at once (errors.Join of
// *FieldError), so a user fixes a stack file in one round. Each component
// validates its own fields, under the stack keys that set them; the rules
// here are the ones that depend on the environment or join several areas.
func (c *Config) Validate() error {
	v := &validator{}
	if !slices.Contains(Environments, c.Environment) {
		v.add("environment", c.Environment, "one of "+strings.Join(Environments, ", "))
	}
	c.validateTarget(v)
	c.validatePlacement(v)
	// Shared top-level keys, mounted where the components read them.
	shared := []mount{{"platform.namespace", "namespace"}, {"platform.podSecurityVersion", "podSecurityVersion"}, {"kcp.domain", "domain"}}
	v.component(platformArgs(c).WithDefaults().Validate(field.NewPath("platform")), true, shared...)
	v.component(kcpArgs(c).WithDefaults().Validate(field.NewPath("kcp")), true, shared...)
	v.component(etcdArgs(c).WithDefaults().Validate(field.NewPath("etcd")), true)
	c.validateStorage(v)
	c.validateShards(v)
	c.validateBackup(v)
	c.validateTLS(v)
	c.validateIngress(v)
	c.validateMonitoring(v)
	c.validateLogging(v)
	c.validateClusters(v)
	c.validateCloud(v)
	return v.err()
}

func (c *Config) validateTarget(v *validator) {
	t := c.Target
	// Rules on a value given apply in every mode: a key the chosen mode does
	// not read is still refused when it is wrong (a plaintext kubeconfig is a
	// leaked credential whether or not this stack deploys with it).
	if t.Mode == TargetRender || t.RenderDir != "" {
		if t.RenderDir == "" || slices.Contains(strings.Split(filepath.ToSlash(t.RenderDir), "/"), "..") {
			v.add("target.renderDir", t.RenderDir, "a directory inside the project, e.g. rendered/"+c.Environment)
		}
	}
	if t.KCPSide != "" && t.KCPSide != KCPSideAuto && t.KCPSide != KCPSideOff {
		v.add("target.kcpSide", t.KCPSide, KCPSideAuto+" (the kcp side in the same up) or "+KCPSideOff)
	}
	if t.KCPServer != "" {
		if u, err := url.Parse(t.KCPServer); err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.User != nil {
			v.add("target.kcpServer", t.KCPServer, "an https:// URL of kcp's front door without path or credentials, e.g. https://10.0.0.5:443")
		}
	}
	if c.Kubeconfig != "" && !c.KubeconfigIsSecret {
		v.add("kubeconfig", "<plaintext>", "a secret: set it with `pulumi config set --secret kcp-tmc:kubeconfig < kubeconfig`")
	}
	switch t.Mode {
	case TargetRender:
	case TargetKubeconfig:
		if c.Cloud.Mode == "eks" {
			break // the cloud layer provides the kubeconfig
		}
		if c.Kubeconfig == "" && t.Context == "" {
			v.add("kubeconfig", "<unset>", "a kubeconfig set with `pulumi config set --secret kcp-tmc:kubeconfig`, or target.context naming a context of ~/.kube/config")
		}
		if c.Environment == "prod" && c.Kubeconfig == "" {
			v.add("kubeconfig", "<unset>", "prod deploys only with an explicit secret kcp-tmc:kubeconfig, never an ambient context")
		}
	default:
		v.add("target.mode", t.Mode, TargetRender+" or "+TargetKubeconfig)
	}
}

// validatePlacement holds the per-environment replica and spreading rules;
// the ranges and the zone count are the components'.
func (c *Config) validatePlacement(v *validator) {
	seen := map[string]bool{}
	for i, z := range c.Zones {
		key := fmt.Sprintf("zones[%d]", i)
		switch {
		case !isDNSLabel(z):
			v.add(key, z, "a zone name such as us-east-1a")
		case seen[z]:
			v.add(key, z, "each zone once")
		}
		seen[z] = true
	}
	if c.Environment != "dev" && c.KCP.Replicas == 1 {
		v.add("kcp.replicas", "1", "at least 2 in "+c.Environment+" (one replica cannot survive a node drain)")
	}
	if c.Environment != "dev" && c.Etcd.Replicas == 1 {
		v.add("etcd.replicas", "1", "at least 3 in "+c.Environment+" (quorum must survive one member loss)")
	}
	if c.Environment == "prod" && c.KCP.FrontProxyReplicas == 1 {
		v.add("kcp.frontProxyReplicas", "1", "at least 2 in prod (it is the only way in)")
	}
	for _, w := range []struct{ key, mode string }{{"kcp.antiAffinity", c.KCP.AntiAffinity}, {"etcd.antiAffinity", c.Etcd.AntiAffinity}} {
		if c.Environment == "prod" && w.mode != AntiAffinityZone {
			v.add(w.key, w.mode, `"zone" in prod (a zone outage must not take quorum or the API down)`)
		}
	}
}

func (c *Config) validateStorage(v *validator) {
	st := c.Storage
	// The class's name is etcd.storageClass's.
	v.component(storageArgs(c).WithDefaults().Validate(field.NewPath("storage")), true, mount{"storage.className", "etcd.storageClass"})
	if c.Environment == "prod" && st.ReclaimPolicy == "Delete" {
		v.add("storage.reclaimPolicy", st.ReclaimPolicy, "Retain in prod (a released etcd volume must survive)")
	}
	if st.KMSKeyID != "" && !st.Create {
		v.add("storage.kmsKeyId", st.KMSKeyID, "unset unless storage.create is true (an existing class has its own key)")
	}
	if m := st.ModifyVolumes; m != nil && *m {
		if !st.Create {
			v.add("storage.modifyVolumes", "true", "unset or false unless storage.create is true (the volumes of an existing class are its own)")
		} else if c.Cloud.Mode == "eks" && olderThan(c.Cloud.KubernetesVersion, storage.ModifyVolumesSince) {
			v.add("storage.modifyVolumes", "true", "false or unset while cloud.kubernetesVersion is "+c.Cloud.KubernetesVersion+
				" (VolumeAttributesClass is served from Kubernetes "+storage.ModifyVolumesSince+")")
		}
	}
	c.validateStorageSize(v, "etcd.storageSize", c.Etcd.StorageSize)
}

// validateStorageSize checks an etcd volume size against the environment's
// range; its syntax is the etcd component's rule.
func (c *Config) validateStorageSize(v *validator, key, value string) {
	size, err := resource.ParseQuantity(value)
	bounds, known := storageRangeGi[c.Environment]
	if err != nil || !known || v.keys[key] {
		return
	}
	if gi := size.Value() >> 30; gi < int64(bounds[0]) || gi > int64(bounds[1]) {
		v.add(key, value, fmt.Sprintf("%dGi to %dGi in %s", bounds[0], bounds[1], c.Environment))
	}
}

// validateShards checks what kcp.shards adds beyond the kcp component's
// rules: each shard's etcd cluster and the environment's rules for both.
func (c *Config) validateShards(v *validator) {
	shards := Shards(c)
	for i, s := range shards.Shards {
		key := shardKey(i)
		a := shardEtcdArgs(c, s, key).WithDefaults()
		v.component(a.Validate(field.NewPath(a.Key)), true)
		if c.Environment != "dev" && s.Replicas == 1 {
			v.add(key.Child("replicas").String(), "1", "at least 2 in "+c.Environment+" (one replica cannot survive a node drain)")
		}
		c.validateStorageSize(v, key.Child("etcd", "storageSize").String(), s.EtcdStorageSize)
	}
	if len(c.KCP.Shards) > 0 && c.TLS.ACME != nil {
		// An agent's kubeconfig then trusts the public roots only, and a
		// shard's own address serves a kcp-server-ca certificate.
		v.add("tls.acme", "<set>", "unset with kcp.shards: agents reach a shard's virtual workspaces at its own address, whose certificate kcp-server-ca signs (docs/sharding.md)")
	}
	cache := c.KCP.Cache
	if cache.Mode != CacheSeparate {
		if cache.Mode != CacheEmbedded {
			v.add("kcp.cache.mode", cache.Mode, CacheEmbedded+" or "+CacheSeparate)
		}
		if cache.Replicas != nil || cache.Resources != nil || cache.Etcd != (ShardEtcd{}) {
			// Set but never read would be silently ignored.
			v.add("kcp.cache", "<set>", "replicas, resources and etcd only with kcp.cache.mode "+CacheSeparate)
		}
		return
	}
	s := *shards.Cache
	key := cacheKey
	a := cacheEtcdArgs(c, s).WithDefaults()
	v.component(a.Validate(field.NewPath(a.Key)), true)
	if c.Environment != "dev" && s.Replicas == 1 {
		v.add(key.Child("replicas").String(), "1", "at least 2 in "+c.Environment+" (every shard needs it)")
	}
	c.validateStorageSize(v, key.Child("etcd", "storageSize").String(), s.EtcdStorageSize)
}

func (c *Config) validateBackup(v *validator) {
	if !c.Backup.Enabled && c.Environment == "prod" {
		v.add("backup.enabled", "false", "true in prod (etcd holds every workspace; it must be backed up)")
	}
	if c.Backup.Target == backup.TargetPVC && c.Environment == "prod" {
		v.add("backup.target", c.Backup.Target, "s3 in prod (a PVC dies with the cluster it backs up)")
	}
	// The secret has a key of its own (the component checks accessKeyId).
	switch b := c.Backup; {
	case b.Enabled && b.Target == backup.TargetS3 && b.Endpoint != "" && b.SecretAccessKey == "":
		v.add("backupSecretAccessKey", "<unset>", "the secret key of backup.accessKeyId, set with `pulumi config set --secret kcp-tmc:backupSecretAccessKey`")
	case b.Endpoint == "" && b.SecretAccessKey != "":
		v.add("backupSecretAccessKey", "<secret>", "unset without backup.endpoint (AWS S3 is reached through IRSA, never a static key)")
	}
	var derived []mount
	if c.Backup.PVCStorageClass == "" {
		derived = append(derived, mount{"backup.pvcStorageClass", "etcd.storageClass"}) // its default
	}
	v.component(backupArgs(c).WithDefaults().Validate(field.NewPath("backup")), c.Backup.Enabled, derived...)
}

func (c *Config) validateTLS(v *validator) {
	t := c.TLS
	if t.InstallCertManager && c.Target.Mode == TargetRender {
		v.add("tls.installCertManager", "true", "false in render mode (a Helm release cannot be rendered); install cert-manager on the cluster instead")
	}
	if t.InstallCertManager && t.Mode != tls.ModeCertManager {
		v.add("tls.installCertManager", "true", "false unless tls.mode is cert-manager")
	}
	// The stack spells durations as Go strings: checked here with the pki
	// component's rule, so errors quote the user's spelling; their order is
	// the component's rule.
	for _, d := range []struct{ key, value string }{{"tls.caDuration", t.CADuration}, {"tls.leafDuration", t.LeafDuration}, {"tls.renewBefore", t.RenewBefore}} {
		if n, err := time.ParseDuration(d.value); err != nil || !tls.WholeHours(n) {
			v.add(d.key, d.value, tls.WholeHoursRule)
		}
	}
	v.component(pkiArgs(c).WithDefaults().Validate(field.NewPath("tls")), true)
	if c.ExistingCAs != nil && !c.ExistingCAsIsSecret {
		v.add("existingCAs", "<plaintext>", "a secret: `pulumi config set --secret kcp-tmc:existingCAs < cas.json`")
	}
	for _, name := range slices.Sorted(maps.Keys(c.ExistingCAs)) {
		ca := c.ExistingCAs[name]
		if err := tls.CheckCA(name, tls.ExistingCA{CertPEM: ca.Cert, KeyPEM: ca.Key}); err != nil {
			v.add("existingCAs."+name, "<secret>", err.Error())
		}
	}
}

func (c *Config) validateIngress(v *validator) {
	in := c.Ingress
	if in.Gateway != nil && in.Mode != ingress.ModeGateway {
		v.add("ingress.gateway", "<set>", "unset unless ingress.mode is gateway")
	}
	if in.InstallController && c.Target.Mode == TargetRender {
		v.add("ingress.installController", "true", "false in render mode (a Helm release cannot be rendered)")
	}
	if c.Environment == "prod" && in.InstallController && in.ControllerReplicas == 1 {
		v.add("ingress.controllerReplicas", "1", "at least 2 in prod")
	}
	if in.Route53ZoneID != "" {
		switch {
		case in.Mode != ingress.ModeLoadBalancer && (in.Mode != ingress.ModeGateway || in.Gateway == nil || in.Gateway.ClassName == ""):
			v.add("ingress.route53ZoneId", in.Route53ZoneID, "unset unless ingress.mode is loadbalancer, or gateway with ingress.gateway.className (the records point at an address the stack awaits; an existing Gateway's or an ingress controller's is not)")
		case c.Target.Mode == TargetRender:
			v.add("ingress.route53ZoneId", in.Route53ZoneID, "unset in render mode (the records point at the front door's addresses, which only a cluster reports)")
		case c.Target.SkipAwait:
			v.add("ingress.route53ZoneId", in.Route53ZoneID, "unset with target.skipAwait (the front door's addresses are known only once awaited)")
		default:
			a, _ := dnsArgs(c, nil)
			v.component(a.Validate(field.NewPath("ingress")), true)
		}
	}
	var derived []mount
	if in.Gateway == nil || in.Gateway.Namespace == "" {
		derived = append(derived, mount{"ingress.gateway.namespace", "namespace"}) // its default
	}
	v.component(ingressArgs(c).WithDefaults().Validate(field.NewPath("ingress")), true, derived...)
}

func (c *Config) validateMonitoring(v *validator) {
	m := c.Monitoring
	if !m.Enabled && c.Environment == "prod" {
		v.add("monitoring.enabled", "false", "true in prod")
	}
	if m.InstallStack && c.Target.Mode == TargetRender {
		v.add("monitoring.installStack", "true", "false in render mode (a Helm release cannot be rendered)")
	}
	if m.Enabled && c.Environment == "prod" && m.SlackWebhookURL == "" {
		v.add("slackWebhookUrl", "<unset>", "a Slack incoming-webhook URL in prod, set with `pulumi config set --secret kcp-tmc:slackWebhookUrl`")
	}
	// The namespaces the stack creates deny by default what their
	// policies do not allow, and installStack would create it a second time.
	owned := map[string]string{c.Namespace: "kcp's (namespace)"}
	if c.Logging.Enabled {
		owned[logging.Namespace] = "the log shipper's"
	}
	if c.Ingress.InstallController {
		owned[ingress.ControllerNamespace] = "the ingress controller's"
	}
	if c.TLS.InstallCertManager {
		owned[tls.CertManagerNamespace] = "cert-manager's"
	}
	if whose, ok := owned[m.Namespace]; ok {
		v.add("monitoring.namespace", m.Namespace, "a namespace of Prometheus' own, not "+whose+", which kcp-tmc creates")
	}
	if m.SlackWebhookURL != "" && !strings.HasPrefix(m.SlackWebhookURL, "https://") {
		v.add("slackWebhookUrl", "<secret>", "an https:// webhook URL")
	}
	v.component(monitoringArgs(c).WithDefaults().Validate(field.NewPath("monitoring")), m.Enabled)
}

func (c *Config) validateLogging(v *validator) {
	l := c.Logging
	if l.Username != "" && l.Password == "" {
		v.add("elasticsearchPassword", "<unset>", "the password of logging.username, set with `pulumi config set --secret kcp-tmc:elasticsearchPassword`")
	}
	v.component(loggingArgs(c).WithDefaults().Validate(field.NewPath("logging")), l.Enabled)
}

func (c *Config) validateClusters(v *validator) {
	// Every agent's container gets these (the components' copies are
	// derived, so their errors are dropped): checked once, at their key.
	v.component(agents.Args{Container: c.AgentResources}.WithDefaults().Container.Validate(field.NewPath("agentResources")), true)
	names := map[string]bool{}
	for _, cl := range c.Clusters {
		names[cl.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(c.ClusterKubeconfigs)) {
		if !names[name] {
			// An entry no cluster uses would be silently ignored.
			v.add("clusterKubeconfigs", "<entry for "+name+">", "entries only for clusters in kcp-tmc:clusters ("+strings.Join(slices.Sorted(maps.Keys(names)), ", ")+")")
		}
	}
	if c.KCPKubeconfig != "" {
		if _, err := workspaceKubeconfig(c.KCPKubeconfig, "root"); err != nil {
			// The kubeconfig itself is never echoed: it holds credentials.
			v.add("kcpKubeconfig", "<secret>", "a kubeconfig for kcp whose clusters have https:// servers ("+err.Error()+")")
		}
	}
	// Provider and workspace resources are named by the path with dashes.
	byName := map[string]string{}
	for _, ws := range kcpWorkspacePaths(c) {
		n := strings.ReplaceAll(ws, ":", "-")
		if other, ok := byName[n]; ok {
			v.add("clusters[].workspace", ws, "workspace paths that stay distinct with \":\" read as \"-\" ("+other+" and "+ws+" do not)")
		}
		byName[n] = ws
	}
	seen := map[string]bool{}
	shardOf := map[string]string{} // workspace → the shard a cluster puts it on
	known := append([]string{shard.Root}, shard.Names(Shards(c).Shards)...)
	for i, cl := range c.Clusters {
		key := field.NewPath("clusters").Index(i)
		// kcp v0.32.3's front-proxy, once it verifies tokens (kcp.oidc),
		// finds ServiceAccounts on the root shard only: an agent's token
		// from a workspace on another shard gets 401 at the front door.
		if c.KCP.OIDC != nil && len(known) > 1 && cl.Shard != shard.Root {
			v.add(key.Child("shard").String(), cmp.Or(cl.Shard, "<unset>"), "root with kcp.oidc and kcp.shards (the front-proxy verifies the agent's ServiceAccount token against the root shard only; docs/sharding.md)")
		}
		if cl.Shard != "" {
			ws := AgentArgs(c, cl).Workspace
			switch {
			case !slices.Contains(known, cl.Shard):
				v.add(key.Child("shard").String(), cl.Shard, "root or a name of kcp.shards ("+strings.Join(known, ", ")+")")
			case shardOf[ws] != "" && shardOf[ws] != cl.Shard:
				v.add(key.Child("shard").String(), cl.Shard, "the shard the other clusters of workspace "+ws+" name ("+shardOf[ws]+")")
			}
			shardOf[ws] = cl.Shard
		}
		if seen[cl.Name] {
			v.add(key.Child("name").String(), cl.Name, "a name used once")
		}
		seen[cl.Name] = true
		for _, knob := range []struct {
			key string
			val int
		}{{"maxSyncWorkers", cl.MaxSyncWorkers}, {"syncBacklogLimit", cl.SyncBacklogLimit}, {"batchSize", cl.BatchSize}, {"qps", cl.QPS}, {"burst", cl.Burst}} {
			if knob.val != 0 {
				v.add(key.Child(knob.key).String(), strconv.Itoa(knob.val), "unset: api-syncagent v0.7.0 has no such flag (4 fixed sync workers; qps and burst were the retired TMC syncer's)")
			}
		}
		if e := cl.Monitoring.Enabled; e != nil && !*e && c.Environment == "prod" {
			v.add(key.Child("monitoring", "enabled").String(), "false", "true in prod: the agent's alerts (SyncerDown, the sync alerts) run in the cluster's own Prometheus")
		}
		if c.Target.Mode == TargetKubeconfig && c.ClusterKubeconfigs[cl.Name] == "" {
			v.add("clusterKubeconfigs", "<no entry for "+cl.Name+">", "a kubeconfig for every cluster in kcp-tmc:clusters")
		}
		a := AgentArgs(c, cl)
		// The identity is wired by Deploy from the PKI and the kcp side, not
		// from a key: the user's input is checked without it.
		a.Identity = agents.IdentityCopied
		// Inherited values are checked at the stack's keys.
		if cl.Monitoring.RuleLabels == nil {
			a.RuleLabels = nil
		}
		if cl.Monitoring.Namespace == "" {
			a.PrometheusNamespace = ""
		}
		a.KubectlImage = "" // kcp.kubectlImage's, checked there
		v.component(a.WithDefaults().Validate(key), true)
	}
}

func (c *Config) validateCloud(v *validator) {
	eks := c.Cloud.Mode == "eks"
	if !eks && c.Cloud.Mode != "existing" {
		v.add("cloud.mode", c.Cloud.Mode, "existing (a kubeconfig or context) or eks (created here)")
	}
	// The cloud.* values are checked in every mode; what EKS itself needs
	// (zones of the region, nodes for the replicas) only with eks.
	errs := cloudArgs(c).WithDefaults().Validate(field.NewPath("cloud"))
	if !eks {
		// zones serve kcp and etcd here, not EKS: its rules for them wait.
		errs = errs.Filter(func(err error) bool {
			f := err.(*field.Error).Field
			return f == "cloud.zones" || strings.HasPrefix(f, "cloud.zones[")
		})
	}
	v.component(errs, eks, mount{"cloud.zones", "zones"})
	if !eks {
		return
	}
	if c.Target.Mode != TargetKubeconfig {
		v.add("target.mode", c.Target.Mode, "kubeconfig with cloud.mode eks (the cluster's kubeconfig comes from the cloud layer)")
	}
	// Hard per-node anti-affinity needs as many nodes as replicas, even at the
	// node groups' minimum.
	for _, w := range []struct {
		mode     string
		replicas int
	}{{c.KCP.AntiAffinity, c.KCP.Replicas}, {c.KCP.AntiAffinity, c.KCP.FrontProxyReplicas}, {c.Etcd.AntiAffinity, c.Etcd.Replicas}, {c.KCP.AntiAffinity, maxShardReplicas(c)}} {
		if w.mode == AntiAffinityHostname && len(c.Zones)*c.Cloud.NodesPerZone.Min < w.replicas {
			v.add("cloud.nodesPerZone.min", strconv.Itoa(c.Cloud.NodesPerZone.Min),
				fmt.Sprintf("at least %d nodes in all (%d zones × min) for %d replicas with hard per-node anti-affinity", w.replicas, len(c.Zones), w.replicas))
		}
	}
	if c.Environment == "prod" && !c.Cloud.NATPerZone {
		v.add("cloud.natPerZone", "false", "true in prod (one zone's NAT must not cut off the others)")
	}
}

// maxShardReplicas is the most replicas any shard besides the root, or the
// separate cache server, runs (all spread as kcp.antiAffinity says).
func maxShardReplicas(c *Config) int {
	n := 0
	shards := Shards(c)
	for _, s := range shards.Shards {
		n = max(n, s.Replicas)
	}
	if cache := shards.Cache; cache != nil {
		n = max(n, cache.Replicas)
	}
	return n
}
