package stacks

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // validate backup.timeZone without relying on the host's zoneinfo

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/pki"
	"github.com/kcp-tmc/kcp-tmc/components/storage"
)

var (
	imageRepo    = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$`)
	semverTag    = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	pssVersion   = regexp.MustCompile(`^v1\.[0-9]+$`)
	sizeGi       = regexp.MustCompile(`^([0-9]+)(Gi|Ti)$`)
	cpuQuantity  = regexp.MustCompile(`^([0-9]+)m$|^([0-9]+(\.[0-9]{1,3})?)$`)
	memQuantity  = regexp.MustCompile(`^([0-9]+)(Ki|Mi|Gi|Ti)$`)
	memUnitShift = map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40}
)

// Validate checks every field and returns all problems at once (errors.Join of
// *FieldError), so a user fixes a stack file in one round.
func (c *Config) Validate() error {
	v := &validator{}
	if !slices.Contains(Environments, c.Environment) {
		v.add("environment", c.Environment, "one of "+strings.Join(Environments, ", "))
	}
	c.validateTarget(v)
	c.validatePlacement(v)
	if !isDomain(c.Domain) {
		v.add("domain", c.Domain, "a lowercase DNS name with at least two labels, e.g. example.com")
	}
	if !isDNSLabel(c.Namespace) {
		v.add("namespace", c.Namespace, "a DNS-1123 label (lowercase letters, digits, '-', at most 63 characters)")
	}
	if !pssVersion.MatchString(c.PodSecurityVersion) {
		v.add("podSecurityVersion", c.PodSecurityVersion, `a pinned Pod Security Standards version like "v1.34" ("latest" is not pinned)`)
	}
	if !imageRepo.MatchString(c.KCP.Image) {
		v.add("kcp.image", c.KCP.Image, "an image repository without tag or digest, e.g. ghcr.io/kcp-dev/kcp (the tag is kcp.version)")
	}
	if !semverTag.MatchString(c.KCP.Version) {
		v.add("kcp.version", c.KCP.Version, `a pinned release tag like "v0.32.3"`)
	}
	v.resources("kcp.resources", c.KCP.Resources)
	v.resources("kcp.frontProxyResources", c.KCP.FrontProxyResources)
	// Only the extra-flag rules come from the component (its other fields
	// have stack rules of their own here).
	componentErrors(v, kcpArgs(c).WithDefaults().ValidateExtraFlags(), true, "kcp", map[string]string{
		"ExtraFlags": "kcp.extraFlags", "FrontProxyExtraFlags": "kcp.frontProxyExtraFlags",
	})
	if o := kcpArgs(c).WithDefaults().OIDC; o != nil {
		componentErrors(v, o.Validate(), true, "kcp", map[string]string{
			"OIDC.IssuerURL": "oidc.issuerURL", "OIDC.ClientID": "oidc.clientID", "OIDC.UsernameClaim": "oidc.usernameClaim",
			"OIDC.GroupsClaim": "oidc.groupsClaim", "OIDC.CABundle": "oidc.caBundle",
		})
	}
	v.resources("etcd.resources", c.Etcd.Resources)
	if !imageRepo.MatchString(c.Etcd.Image) {
		v.add("etcd.image", c.Etcd.Image, "an image repository without tag or digest, e.g. quay.io/coreos/etcd")
	}
	if !semverTag.MatchString(c.Etcd.Version) || !strings.HasPrefix(c.Etcd.Version, "v3.5.") {
		v.add("etcd.version", c.Etcd.Version, `a pinned etcd 3.5 release tag like "v3.5.35"`)
	}
	c.validateStorage(v)
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
	if c.KCP.Replicas < 1 || c.KCP.Replicas > 9 {
		v.add("kcp.replicas", strconv.Itoa(c.KCP.Replicas), "1 to 9")
	} else if c.Environment != "dev" && c.KCP.Replicas < 2 {
		v.add("kcp.replicas", strconv.Itoa(c.KCP.Replicas), "at least 2 in "+c.Environment+" (one replica cannot survive a node drain)")
	}
	switch r := c.Etcd.Replicas; {
	case r < 1 || r > 7 || r%2 == 0:
		v.add("etcd.replicas", strconv.Itoa(r), "an odd number from 1 to 7 (an even member count adds no fault tolerance)")
	case c.Environment != "dev" && r < 3:
		v.add("etcd.replicas", strconv.Itoa(r), "at least 3 in "+c.Environment+" (quorum must survive one member loss)")
	}
	if c.KCP.FrontProxyReplicas < 1 || c.KCP.FrontProxyReplicas > 9 {
		v.add("kcp.frontProxyReplicas", strconv.Itoa(c.KCP.FrontProxyReplicas), "1 to 9")
	} else if c.Environment == "prod" && c.KCP.FrontProxyReplicas < 2 {
		v.add("kcp.frontProxyReplicas", strconv.Itoa(c.KCP.FrontProxyReplicas), "at least 2 in prod (it is the only way in)")
	}
	need := 0
	for _, w := range []struct {
		key, mode string
		replicas  int
	}{{"kcp.antiAffinity", c.KCP.AntiAffinity, c.KCP.Replicas}, {"etcd.antiAffinity", c.Etcd.AntiAffinity, c.Etcd.Replicas}} {
		modes := []string{AntiAffinityNone, AntiAffinityHostname, AntiAffinityZone}
		switch {
		case !slices.Contains(modes, w.mode):
			v.add(w.key, w.mode, "one of "+strings.Join(modes, ", "))
		case c.Environment == "prod" && w.mode != AntiAffinityZone:
			v.add(w.key, w.mode, `"zone" in prod (a zone outage must not take quorum or the API down)`)
		case w.mode == AntiAffinityZone:
			need = max(need, w.replicas)
		}
	}
	if len(c.Zones) < need {
		v.add("zones", strings.Join(c.Zones, ","), fmt.Sprintf("at least %d zones: hard zone anti-affinity places one replica per zone", need))
	}
}

func (c *Config) validateStorage(v *validator) {
	if !isDNSSubdomain(c.Etcd.StorageClass) {
		v.add("etcd.storageClass", c.Etcd.StorageClass, "a StorageClass name (DNS-1123 subdomain)")
	}
	st := c.Storage
	componentErrors(v, storage.Args{ClassName: "x", Create: st.Create, VolumeType: st.VolumeType, IOPS: st.IOPS,
		ThroughputMiBps: st.ThroughputMiBps, ReclaimPolicy: st.ReclaimPolicy}.WithDefaults().Validate(), true, "storage", map[string]string{
		"VolumeType": "volumeType", "IOPS": "iops", "ThroughputMiBps": "throughputMiBps", "IOPS/ThroughputMiBps": "iops", "ReclaimPolicy": "reclaimPolicy",
	})
	if c.Environment == "prod" && st.ReclaimPolicy == "Delete" {
		v.add("storage.reclaimPolicy", st.ReclaimPolicy, "Retain in prod (a released etcd volume must survive)")
	}
	if st.KMSKeyID != "" && !st.Create {
		v.add("storage.kmsKeyId", st.KMSKeyID, "unset unless storage.create is true (an existing class has its own key)")
	}
	quota, qok := v.memory("etcd.quotaBackendBytes", c.Etcd.QuotaBackendBytes)
	if qok && quota > 8<<30 {
		v.add("etcd.quotaBackendBytes", c.Etcd.QuotaBackendBytes, "at most 8Gi (etcd's supported maximum)")
	}
	m := sizeGi.FindStringSubmatch(c.Etcd.StorageSize)
	bounds, known := storageRangeGi[c.Environment]
	if m == nil {
		v.add("etcd.storageSize", c.Etcd.StorageSize, `a size in Gi or Ti, e.g. "100Gi" (binary units; "Gb" and "G" are not accepted)`)
		return
	}
	gi, err := strconv.Atoi(m[1])
	if m[2] == "Ti" {
		gi *= 1024
	}
	if qok && err == nil && quota >= int64(gi)<<30 {
		v.add("etcd.quotaBackendBytes", c.Etcd.QuotaBackendBytes, "less than etcd.storageSize ("+c.Etcd.StorageSize+")")
	}
	if err != nil || !known {
		return
	}
	if gi < bounds[0] || gi > bounds[1] {
		v.add("etcd.storageSize", c.Etcd.StorageSize, fmt.Sprintf("%dGi to %dGi in %s", bounds[0], bounds[1], c.Environment))
	}
}

func (c *Config) validateBackup(v *validator) {
	if !c.Backup.Enabled && c.Environment == "prod" {
		v.add("backup.enabled", "false", "true in prod (etcd holds every workspace; it must be backed up)")
	}
	if err := ValidateCron(c.Backup.Schedule); err != nil {
		v.add("backup.schedule", c.Backup.Schedule, "a 5-field cron expression or @daily/@hourly/@weekly/@monthly/@yearly ("+err.Error()+")")
	}
	if err := ValidateCron(c.Backup.VerifySchedule); err != nil {
		v.add("backup.verifySchedule", c.Backup.VerifySchedule, "a 5-field cron expression ("+err.Error()+")")
	}
	if _, err := time.LoadLocation(c.Backup.TimeZone); err != nil || c.Backup.TimeZone == "" || c.Backup.TimeZone == "Local" {
		v.add("backup.timeZone", c.Backup.TimeZone, `an IANA time zone such as "UTC" or "Europe/Berlin"`)
	}
	if c.Backup.Target == backup.TargetPVC && c.Environment == "prod" {
		v.add("backup.target", c.Backup.Target, "s3 in prod (a PVC dies with the cluster it backs up)")
	}
	if c.Backup.Endpoint != "" && !strings.HasPrefix(c.Backup.Endpoint, "https://") && !strings.HasPrefix(c.Backup.Endpoint, "http://") {
		v.add("backup.endpoint", c.Backup.Endpoint, "an http(s):// URL of an S3-compatible server")
	}
	componentErrors(v, backupArgs(c).WithDefaults().Validate(), c.Backup.Enabled, "backup", map[string]string{
		"Target": "target", "Image": "image", "S3.Bucket": "bucket", "S3.Prefix": "prefix", "S3.Region": "region",
		"S3.TransitionDays": "transitionDays", "S3.ArchiveDays": "archiveDays", "S3.RetentionDays": "retentionDays",
		"S3.NoncurrentDays": "noncurrentDays", "S3.ObjectLockDays": "objectLockDays",
		"S3.OIDCProviderARN": "oidcProviderArn", "S3.OIDCIssuer": "oidcIssuer", "PVC": "pvcSize",
	})
}

// componentErrors re-keys a component's Validate errors ("area: Field value:
// want allowed", one per line) to config keys, so the user sees the key to fix.
// inUse is false when the stack does not use the area (disabled, or another
// mode): then a value given must still be valid, but nothing is required and
// rules on fields stacks fills itself (derived, or shared with other areas)
// do not apply.
func componentErrors(v *validator, err error, inUse bool, prefix string, keys map[string]string) {
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		rest := strings.TrimPrefix(line, prefix+": ")
		fieldValue, allowed, ok := strings.Cut(rest, ": want ")
		if !ok {
			continue
		}
		field, value, _ := strings.Cut(fieldValue, " ")
		base, index, indexed := strings.Cut(field, "[")
		key, known := keys[base]
		if !inUse && (!known || slices.Contains([]string{"", `""`, "unset", "none", "[]"}, value)) {
			continue
		}
		switch {
		case !known:
			// A field stacks fills itself: report it against the area.
			v.add(prefix, fieldValue, allowed)
			continue
		case indexed:
			key += "[" + index
		}
		if !strings.Contains(key, "[") { // keys with an index are already absolute
			key = prefix + "." + key
		}
		v.add(key, strings.Trim(value, `"`), allowed)
	}
}

func (c *Config) validateTLS(v *validator) {
	t := c.TLS
	if t.Mode != pki.ModeCertManager && t.Mode != pki.ModeSelfManaged {
		v.add("tls.mode", t.Mode, pki.ModeCertManager+" or "+pki.ModeSelfManaged)
	}
	if t.InstallCertManager && c.Target.Mode == TargetRender {
		v.add("tls.installCertManager", "true", "false in render mode (a Helm release cannot be rendered); install cert-manager on the cluster instead")
	}
	if t.InstallCertManager && t.Mode != pki.ModeCertManager {
		v.add("tls.installCertManager", "true", "false unless tls.mode is cert-manager")
	}
	if !semverTag.MatchString(t.CertManagerVersion) {
		v.add("tls.certManagerVersion", t.CertManagerVersion, `a pinned release like "v1.21.2"`)
	}
	ca, okCA := v.hours("tls.caDuration", t.CADuration)
	leaf, okLeaf := v.hours("tls.leafDuration", t.LeafDuration)
	renew, okRenew := v.hours("tls.renewBefore", t.RenewBefore)
	if okCA && okLeaf && leaf > ca {
		v.add("tls.leafDuration", t.LeafDuration, "at most tls.caDuration ("+t.CADuration+")")
	}
	if okLeaf && okRenew && renew >= leaf {
		v.add("tls.renewBefore", t.RenewBefore, "shorter than tls.leafDuration ("+t.LeafDuration+")")
	}
	if t.ACME != nil {
		if t.Mode != pki.ModeCertManager {
			v.add("tls.acme", "<set>", "only with tls.mode cert-manager")
		}
		if at := strings.Index(t.ACME.Email, "@"); at < 1 || !isDomain(t.ACME.Email[at+1:]) {
			v.add("tls.acme.email", t.ACME.Email, "a contact e-mail address for the ACME account")
		}
		if t.ACME.Server != "" && !strings.HasPrefix(t.ACME.Server, "https://") {
			v.add("tls.acme.server", t.ACME.Server, "an https:// ACME directory URL")
		}
	}
	if c.ExistingCAs != nil && !c.ExistingCAsIsSecret {
		v.add("existingCAs", "<plaintext>", "a secret: `pulumi config set --secret kcp-tmc:existingCAs < cas.json`")
	}
	names := make([]string, 0, len(c.ExistingCAs))
	for name := range c.ExistingCAs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ca := c.ExistingCAs[name]
		if err := pki.CheckCA(name, pki.ExistingCA{CertPEM: ca.Cert, KeyPEM: ca.Key}); err != nil {
			v.add("existingCAs."+name, "<secret>", err.Error())
		}
	}
}

func (c *Config) validateIngress(v *validator) {
	in := c.Ingress
	modes := []string{ingress.ModeGateway, ingress.ModeLoadBalancer, ingress.ModePassthrough, ingress.ModeTerminate}
	if !slices.Contains(modes, in.Mode) {
		v.add("ingress.mode", in.Mode, "one of "+strings.Join(modes, ", ")+" (gateway and loadbalancer keep TLS end to end without the retired ingress-nginx)")
	}
	if in.Gateway != nil && in.Mode != ingress.ModeGateway {
		v.add("ingress.gateway", "<set>", "unset unless ingress.mode is gateway")
	}
	if in.Mode == ingress.ModeGateway {
		componentErrors(v, ingressArgs(c).WithDefaults().Validate(), true, "ingress", map[string]string{
			"Gateway.Name": "gateway.name", "Gateway.Namespace": "gateway.namespace", "Gateway.Listener": "gateway.listener",
			"Gateway.ClassName": "gateway.className", "InstallController": "installController",
		})
	}
	if !isDNSLabel(in.ClassName) {
		v.add("ingress.className", in.ClassName, "an IngressClass name")
	}
	if in.InstallController && c.Target.Mode == TargetRender {
		v.add("ingress.installController", "true", "false in render mode (a Helm release cannot be rendered)")
	}
	if in.InstallController && in.Mode == ingress.ModeLoadBalancer {
		v.add("ingress.installController", "true", "false with ingress.mode loadbalancer (no controller is involved)")
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(in.ControllerVersion) {
		v.add("ingress.controllerVersion", in.ControllerVersion, `a pinned ingress-nginx chart version like "4.12.1"`)
	}
	if in.ControllerReplicas < 1 || in.ControllerReplicas > 9 {
		v.add("ingress.controllerReplicas", strconv.Itoa(in.ControllerReplicas), "1 to 9")
	} else if c.Environment == "prod" && in.InstallController && in.ControllerReplicas < 2 {
		v.add("ingress.controllerReplicas", strconv.Itoa(in.ControllerReplicas), "at least 2 in prod")
	}
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
	if m.SlackWebhookURL != "" && !strings.HasPrefix(m.SlackWebhookURL, "https://") {
		v.add("slackWebhookUrl", "<secret>", "an https:// webhook URL")
	}
	componentErrors(v, monitoringArgs(c).WithDefaults().Validate(), m.Enabled, "monitoring", map[string]string{
		"Interval": "interval", "SlackChannel": "slackChannel", "StackVersion": "stackVersion",
	})
}

func (c *Config) validateLogging(v *validator) {
	l := c.Logging
	if l.Username != "" && l.Password == "" {
		v.add("elasticsearchPassword", "<unset>", "the password of logging.username, set with `pulumi config set --secret kcp-tmc:elasticsearchPassword`")
	}
	componentErrors(v, loggingArgs(c).WithDefaults().Validate(), l.Enabled, "logging", map[string]string{
		"ElasticsearchHost": "elasticsearchHost", "ElasticsearchPort": "elasticsearchPort", "Index": "index", "Image": "image",
	})
}

func (c *Config) validateClusters(v *validator) {
	v.resources("agentResources", c.AgentResources)
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
	for i, cl := range c.Clusters {
		key := fmt.Sprintf("clusters[%d]", i)
		if seen[cl.Name] {
			v.add(key+".name", cl.Name, "a name used once")
		}
		seen[cl.Name] = true
		for _, knob := range []struct {
			key string
			val int
		}{{"maxSyncWorkers", cl.MaxSyncWorkers}, {"syncBacklogLimit", cl.SyncBacklogLimit}, {"batchSize", cl.BatchSize}, {"qps", cl.QPS}, {"burst", cl.Burst}} {
			if knob.val != 0 {
				v.add(key+"."+knob.key, strconv.Itoa(knob.val), "unset: api-syncagent v0.7.0 has no such flag (4 fixed sync workers; qps and burst were the retired TMC syncer's)")
			}
		}
		if c.Target.Mode == TargetKubeconfig && c.ClusterKubeconfigs[cl.Name] == "" {
			v.add("clusterKubeconfigs", "<no entry for "+cl.Name+">", "a kubeconfig for every cluster in kcp-tmc:clusters")
		}
		a := agentArgs(c, cl)
		if c.TLS.Mode == pki.ModeSelfManaged {
			a.ClientCert, a.ClientKey, a.ServerCA = pulumi.String("x"), pulumi.String("x"), pulumi.String("x")
		} else {
			a.CopiedIdentity = true
		}
		componentErrors(v, a.WithDefaults().Validate(), true, "agents", map[string]string{
			"Cluster": key + ".name", "Kind": key + ".agent", "Image": key + ".image", "Replicas": key + ".replicas",
			"KCPServer/Workspace": key + ".workspace", "Resources": key + ".resources",
		})
	}
}

func (c *Config) validateCloud(v *validator) {
	eks := c.Cloud.Mode == "eks"
	if !eks && c.Cloud.Mode != "existing" {
		v.add("cloud.mode", c.Cloud.Mode, "existing (a kubeconfig or context) or eks (created here)")
	}
	// The cloud.* values are checked in every mode; what EKS itself needs
	// (zones of the region, nodes for the replicas, NAT per zone) only with eks.
	keys := map[string]string{
		"Region": "region", "KubernetesVersion": "kubernetesVersion",
		"VPCCIDR": "vpcCidr", "PublicCIDRs": "publicCidrs", "NodesPerZone": "nodesPerZone",
		"ExistingVPC.ID": "existingVpc.id", "ExistingVPC.Subnets": "existingVpc",
	}
	if eks {
		keys["ClusterName"], keys["Zones"] = "clusterName", "zones"
	}
	componentErrors(v, cloudArgs(c).WithDefaults().Validate(), eks, "cloud", keys)
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
	}{{c.KCP.AntiAffinity, c.KCP.Replicas}, {c.Etcd.AntiAffinity, c.Etcd.Replicas}} {
		if w.mode == AntiAffinityHostname && len(c.Zones)*c.Cloud.NodesPerZone.Min < w.replicas {
			v.add("cloud.nodesPerZone.min", strconv.Itoa(c.Cloud.NodesPerZone.Min),
				fmt.Sprintf("at least %d nodes in all (%d zones × min) for %d replicas with hard per-node anti-affinity", w.replicas, len(c.Zones), w.replicas))
		}
	}
	if c.Environment == "prod" && !c.Cloud.NATPerZone {
		v.add("cloud.natPerZone", "false", "true in prod (one zone's NAT must not cut off the others)")
	}
}

// hours parses a Go duration that is a positive whole number of hours.
func (v *validator) hours(key, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Hour != 0 {
		v.add(key, s, `a positive whole number of hours such as "8760h"`)
		return 0, false
	}
	return d, true
}

type validator struct{ errs []error }

func (v *validator) add(key, value, allowed string) {
	v.errs = append(v.errs, &FieldError{Key: key, Value: value, Allowed: allowed})
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return joinSorted(v.errs)
}

// resources checks quantities and that requests never exceed limits.
func (v *validator) resources(key string, r Resources) {
	reqCPU, ok1 := v.cpu(key+".requests.cpu", r.Requests.CPU)
	limCPU, ok2 := v.cpu(key+".limits.cpu", r.Limits.CPU)
	if ok1 && ok2 && reqCPU > limCPU {
		v.add(key+".requests.cpu", r.Requests.CPU, "at most limits.cpu ("+r.Limits.CPU+")")
	}
	reqMem, ok1 := v.memory(key+".requests.memory", r.Requests.Memory)
	limMem, ok2 := v.memory(key+".limits.memory", r.Limits.Memory)
	if ok1 && ok2 && reqMem > limMem {
		v.add(key+".requests.memory", r.Requests.Memory, "at most limits.memory ("+r.Limits.Memory+")")
	}
}

// cpu parses "500m" or "2" / "1.5" into millicores.
func (v *validator) cpu(key, q string) (int64, bool) {
	m := cpuQuantity.FindStringSubmatch(q)
	if m != nil {
		if m[1] != "" {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err == nil && n > 0 {
				return n, true
			}
		} else if f, err := strconv.ParseFloat(m[2], 64); err == nil && f > 0 {
			return int64(f * 1000), true
		}
	}
	v.add(key, q, `a positive CPU quantity such as "500m" or "2"`)
	return 0, false
}

// memory parses binary-suffixed quantities into bytes.
func (v *validator) memory(key, q string) (int64, bool) {
	if m := memQuantity.FindStringSubmatch(q); m != nil {
		if n, err := strconv.ParseInt(m[1], 10, 64); err == nil && n > 0 {
			return n << memUnitShift[m[2]], true
		}
	}
	v.add(key, q, `a positive memory quantity in Ki, Mi, Gi or Ti such as "512Mi" ("GB" is not accepted)`)
	return 0, false
}

func isDNSLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }

func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func isDomain(s string) bool { return strings.Contains(s, ".") && isDNSSubdomain(s) }
