// Package kcp runs the kcp server (HA: several replicas with leader
// election, spread over zones) and the kcp-front-proxy in front of it, wired
// to etcd and to the certificates of the pki component.
package kcp

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/kubeconfig"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:kcp:KCP"

// Names and ports.
const (
	ServerName      = shard.Server
	FrontProxyName  = "kcp-front-proxy"
	ServerService   = "kcp-server"
	InternalService = shard.InternalService
	// APIPort serves the API and, in kcp v0.32.3, the virtual workspaces
	// (/services/) too: kcp runs them in-process on its main port.
	APIPort           = 6443
	FrontProxyPort    = 8443
	FrontProxyService = "kcp-front-proxy"
)

// DefaultImage and DefaultVersion pin kcp: the release the kcp helm chart
// 0.16.x and the kcp-operator deploy, and the one the e2e runs.
const (
	DefaultImage   = "ghcr.io/kcp-dev/kcp"
	DefaultVersion = "v0.32.3"
)

// Certs names the pki component's Secrets kcp mounts.
type Certs struct {
	Server, FrontProxy, FrontProxyClient, EtcdClient, ServiceAccount string
	// FrontProxyKubeconfig is the front-proxy's own identity towards kcp
	// (signed by the client CA; FrontProxyClient is the requestheader one).
	FrontProxyKubeconfig string
	// CA Secrets (only ca.crt is mounted).
	ClientCA, RequestHeaderCA, ServerCA string
	// FrontProxyPublic, when set, is a publicly trusted certificate (ACME)
	// the front-proxy serves to clients asking for kcp.<domain> by SNI; every
	// other name (the in-cluster Service) keeps FrontProxy.
	FrontProxyPublic string
	// The shards' identities towards each other (client CA): ShardAdmin
	// (system:masters) registers a shard with the root shard and reads its
	// cache; LogicalClusterAdmin acts on another shard's logical clusters,
	// ExternalLogicalClusterAdmin does so through the front-proxy.
	ShardAdmin, LogicalClusterAdmin, ExternalLogicalClusterAdmin string
}

// Audit configures the audit log's rotation.
type Audit struct{ MaxAgeDays, MaxSizeMB, MaxBackups int }

// Args configures kcp.
type Args struct {
	Namespace, Domain   string
	Image, Version      string
	Replicas            int
	FrontProxyReplicas  int
	Resources           workload.Resources
	FrontProxyResources workload.Resources
	Spread              workload.Spread
	// EtcdURL is etcd's client endpoint (https).
	EtcdURL string
	Certs   Certs
	Audit   Audit
	// HomeWorkspaces: a private workspace per user on first access
	// (kcp's --enable-home-workspaces, whose own default is on).
	HomeWorkspaces bool
	// OIDC, when set, signs humans in with an OpenID Connect issuer.
	OIDC *OIDC
	// ExtraFlags and FrontProxyExtraFlags are appended to the generated
	// flags: each one kcp v0.32.3 registers and kcp-tmc does not set.
	ExtraFlags, FrontProxyExtraFlags []string
	// EtcdSelector labels etcd's pods (egress is allowed to them only).
	EtcdSelector map[string]string
	// MonitoringNamespace may scrape kcp's metrics.
	MonitoringNamespace string
	// FrontProxyClients may reach the front-proxy (default: any pod in any
	// namespace); the ingress component says who: its controller's namespace,
	// or the internet behind a passthrough load balancer.
	FrontProxyClients []netpol.Flow
	// Shards are the shards besides the root shard (kcp.shards).
	Shards []shard.Shard
	// Cache, when set, runs the cache server on its own (kcp.cache.mode
	// separate); nil keeps it embedded in the root shard.
	Cache *shard.Shard
	// KubectlImage runs the front-proxy's weekly restart (restart.go):
	// an image whose entrypoint is kubectl.
	KubectlImage string
}

// KCP is the component.
type KCP struct {
	pulumi.ResourceState

	// URL is the public address clients use (through the front-proxy).
	URL pulumi.StringOutput `pulumi:"url"`
	// InternalURL is the shard's in-cluster address.
	InternalURL pulumi.StringOutput `pulumi:"internalURL"`
	// Workloads are the Deployments, for the DependsOn of what needs kcp
	// running: depending on the component alone covers only the children the
	// SDK has registered by then (it adds a child once the child's inputs
	// resolve, and these wait on their ConfigMaps).
	Workloads []pulumi.Resource
}

// Selector returns the labels of the kcp server pods (for other components' policies).
func Selector() map[string]string { return workload.Labels(ServerName) }

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Image, DefaultImage)
	component.Default(&a.Version, DefaultVersion)
	component.Default(&a.KubectlImage, DefaultKubectlImage)
	// Scratch space and logs.
	a.Resources = serverEphemeral(a.Resources)
	a.FrontProxyResources = a.FrontProxyResources.WithEphemeral("128Mi", "512Mi")
	if a.Cache != nil {
		c := *a.Cache
		c.Resources = c.Resources.WithEphemeral("128Mi", "512Mi")
		a.Cache = &c
	}
	a.Shards = slices.Clone(a.Shards)
	for i := range a.Shards {
		a.Shards[i].Resources = serverEphemeral(a.Shards[i].Resources)
	}
	component.Default(&a.Audit, Audit{MaxAgeDays: 30, MaxSizeMB: 100, MaxBackups: 10}) // 30 days × 100 MB × 10 files: a month of audit within 1 GB per pod
	component.Default(&a.Spread.Mode, workload.SpreadNone)
	component.Default(&a.MonitoringNamespace, netpol.MonitoringNamespace)
	if a.OIDC != nil {
		o := a.OIDC.WithDefaults()
		a.OIDC = &o
	}
	return a
}

// serverEphemeral is a shard's default scratch space and logs; kcp's
// includes its rotated audit log.
func serverEphemeral(r workload.Resources) workload.Resources { return r.WithEphemeral("256Mi", "2Gi") }

// FrontProxyPods are the front-proxy pods of kcp in namespace on their
// port: what kcp's public address leads to inside kcp's host cluster.
func FrontProxyPods(namespace string) netpol.Flow {
	return netpol.Flow{Namespace: namespace, Pods: workload.Labels(FrontProxyName), Ports: []int{FrontProxyPort}}
}

// Validate reports every invalid field under fld, children named by the
// stack's keys.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	errs := check.DNSLabel(fld.Child("namespace"), a.Namespace, "a namespace")
	errs = append(errs, check.Domain(fld.Child("domain"), a.Domain, "the DNS zone kcp is published under")...)
	errs = append(errs, check.Repository(fld.Child("image"), a.Image, "ghcr.io/kcp-dev/kcp (the tag is kcp.version)")...)
	errs = append(errs, check.Release(fld.Child("version"), a.Version, "", "v0.32.3")...)
	errs = append(errs, check.Image(fld.Child("kubectlImage"), a.KubectlImage, DefaultKubectlImage)...)
	errs = append(errs, check.Range(fld.Child("replicas"), a.Replicas, 1, 9, "")...)
	errs = append(errs, check.Range(fld.Child("frontProxyReplicas"), a.FrontProxyReplicas, 1, 9, "")...)
	errs = append(errs, a.Resources.Validate(fld.Child("resources"))...)
	errs = append(errs, a.FrontProxyResources.Validate(fld.Child("frontProxyResources"))...)
	errs = append(errs, a.Spread.Validate(fld.Child("antiAffinity"), a.Replicas)...)
	// The front-proxy is spread the same way: a replica more than the
	// zones stays Pending and its PDB then blocks every drain.
	errs = append(errs, a.Spread.Validate(fld.Child("frontProxyReplicas"), a.FrontProxyReplicas)...)
	if !strings.HasPrefix(a.EtcdURL, "https://") {
		errs = append(errs, field.Invalid(fld.Child("etcdURL"), a.EtcdURL, "an https:// etcd client URL"))
	}
	c := a.Certs
	for _, cert := range []struct{ name, secret string }{
		{"server", c.Server}, {"frontProxy", c.FrontProxy}, {"frontProxyClient", c.FrontProxyClient}, {"frontProxyKubeconfig", c.FrontProxyKubeconfig},
		{"etcdClient", c.EtcdClient}, {"serviceAccount", c.ServiceAccount}, {"clientCA", c.ClientCA}, {"requestHeaderCA", c.RequestHeaderCA}, {"serverCA", c.ServerCA},
		{"shardAdmin", c.ShardAdmin}, {"logicalClusterAdmin", c.LogicalClusterAdmin}, {"externalLogicalClusterAdmin", c.ExternalLogicalClusterAdmin},
	} {
		if cert.secret == "" {
			errs = append(errs, field.Required(fld.Child("certs", cert.name), "the pki component's Secret name"))
		}
	}
	if a.OIDC != nil {
		errs = append(errs, a.OIDC.Validate(fld.Child("oidc"))...)
	}
	errs = append(errs, a.validateShards(fld.Child("shards"))...)
	errs = append(errs, a.validateCache(fld.Child("cache"))...)
	return append(errs, a.ValidateExtraFlags(fld)...)
}

// NewKCP registers the component and its children.
func NewKCP(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*KCP, error) {
	args = args.WithDefaults()
	comp := &KCP{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("kcp")), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	files, err := newConfigs(ctx, name, args, child)
	if err != nil {
		return nil, err
	}
	if comp.Workloads, err = newDeployments(ctx, name, args, child, pulumi.DependsOn(files)); err != nil {
		return nil, err
	}
	if err := newServices(ctx, name, args, child); err != nil {
		return nil, err
	}
	if err := newPolicies(ctx, name, args, child); err != nil {
		return nil, err
	}
	if err := newFrontProxyRestart(ctx, name, args, child); err != nil {
		return nil, err
	}
	comp.URL = pulumi.String(PublicURL(args.Domain)).ToStringOutput()
	comp.InternalURL = pulumi.String(ShardURL(args.Namespace)).ToStringOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"url": comp.URL, "internalURL": comp.InternalURL}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// MetricsReaderRole is kcp-tmc's ClusterRole in root for GET /metrics.
const MetricsReaderRole = "kcp-tmc:metrics-reader"

// metricsReplicationMarker is a WorkspaceType name no workspace type has.
const metricsReplicationMarker = "kcp-tmc-replicate-metrics-reader"

// MetricsReader, through a provider for kcp's root workspace, lets group scrape every shard: without it kcp answers 403
// to the ServiceMonitors and no kcp alert can fire. kcp v0.32.3 authorizes
// a shard's /metrics against root; a shard other than the root shard sees
// root's RBAC only through the cache server, and kcp replicates a role and
// its bindings there only if the role may "use" a WorkspaceType
// (pkg/reconciler/tenancy/replicateclusterrole). kcp's own
// system:kcp:metrics-reader has no such rule, so a binding to it works on
// the root shard alone (proven by tests/e2e). This role adds a "use" rule
// limited to a type name that does not exist: it grants nothing, and it
// makes kcp replicate the role and binding to every shard.
func MetricsReader(ctx *pulumi.Context, name, group string, opts ...pulumi.ResourceOption) error {
	role, err := rbacv1.NewClusterRole(ctx, name+"-metrics-reader-role", &rbacv1.ClusterRoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(MetricsReaderRole)},
		Rules: rbacv1.PolicyRuleArray{
			rbacv1.PolicyRuleArgs{NonResourceURLs: pulumi.ToStringArray([]string{"/metrics"}), Verbs: pulumi.ToStringArray([]string{"get"})},
			rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{"tenancy.kcp.io"}), Resources: pulumi.ToStringArray([]string{"workspacetypes"}),
				ResourceNames: pulumi.ToStringArray([]string{metricsReplicationMarker}), Verbs: pulumi.ToStringArray([]string{"use"})},
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("kcp metrics reader role: %w", err)
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-metrics-reader", &rbacv1.ClusterRoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kcp-tmc:metrics-reader")},
		RoleRef: rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"),
			Name: pulumi.String(MetricsReaderRole)},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("Group"), Name: pulumi.String(group),
			ApiGroup: pulumi.String("rbac.authorization.k8s.io")}},
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{role}))...); err != nil {
		return fmt.Errorf("kcp metrics reader binding: %w", err)
	}
	return nil
}

// singleReplicaOK tells kube-score that one replica is intended: only dev
// runs one (stack validation demands more elsewhere).
func singleReplicaOK(meta *metav1.ObjectMetaArgs, replicas int) *metav1.ObjectMetaArgs {
	if replicas == 1 {
		meta.Annotations = pulumi.StringMap{"kube-score/ignore": pulumi.String("deployment-replicas")}
	}
	return meta
}

// auditPolicy records who did what (metadata) for every request except the
// read-only health and discovery noise.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  nonResourceURLs: ["/livez*", "/readyz*", "/healthz*", "/metrics", "/version", "/openapi*"]
- level: Metadata
`

// frontProxyMapping routes workspaces (/clusters/, to the shard that holds
// each: the front-proxy's index) and virtual workspaces (/services/, which
// kcp v0.32.3 serves on its API port) to the shard, presenting the
// requestheader certificate with the caller's identity in headers.
func frontProxyMapping(ns string) string {
	var b strings.Builder
	for _, path := range []string{"/services/", "/clusters/"} {
		fmt.Fprintf(&b, `- path: %s
  backend: %s
  backend_server_ca: /etc/kcp-front-proxy/tls/server-ca/ca.crt
  proxy_client_cert: /etc/kcp-front-proxy/tls/client/tls.crt
  proxy_client_key: /etc/kcp-front-proxy/tls/client/tls.key
`, path, ShardURL(ns))
	}
	return b.String()
}

// PublicHost is the name clients (and agents on other clusters) reach kcp
// by: the front-proxy's, behind the ingress.
func PublicHost(domain string) string { return "kcp." + domain }

// PublicURL is https://PublicHost.
func PublicURL(domain string) string { return "https://" + PublicHost(domain) }

// frontProxyKubeconfig points at the shard with file references only: the
// certificates stay in their Secrets.
func frontProxyKubeconfig(ns string) (string, error) {
	return kubeconfig.Config{Context: "shard", User: "front-proxy", Server: ShardURL(ns),
		CAFile:   "/etc/kcp-front-proxy/tls/server-ca/ca.crt",
		CertFile: "/etc/kcp-front-proxy/tls/kubeconfig/tls.crt", KeyFile: "/etc/kcp-front-proxy/tls/kubeconfig/tls.key"}.Render()
}

// rollout replaces one replica at a time. Without hard spreading a new pod
// starts before an old one stops (never below the desired count). With hard
// one-per-zone or one-per-node anti-affinity a surge pod has nowhere to go
// when replicas fill the zones, so an old pod stops first (the PDB allows
// one): the others keep serving, and kcp's leader election keeps its
// controllers single-active meanwhile.
func rollout(s workload.Spread) *appsv1.DeploymentStrategyArgs {
	surge, unavailable := 1, 0
	if s.Mode == workload.SpreadZone || s.Mode == workload.SpreadHostname {
		surge, unavailable = 0, 1
	}
	return &appsv1.DeploymentStrategyArgs{Type: pulumi.String("RollingUpdate"), RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{
		MaxUnavailable: pulumi.Int(unavailable), MaxSurge: pulumi.Int(surge),
	}}
}
