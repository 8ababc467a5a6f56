// Package agents connects one physical cluster to kcp: the maintained
// kcp-dev/api-syncagent running on that cluster, its own identity (a
// client certificate of its own, revocable alone), least-privilege RBAC
// for exactly the synced resources, the PublishedResource CRD it reads,
// and what kcp needs for it (an APIExport, its RBAC and workspace access).
// One component per cluster, every name derived from the cluster's, so
// adding or removing a cluster touches nothing else.
//
// The legacy TMC syncer is refused: kcp ≥ 0.12 (this stack runs v0.32.3)
// has no SyncTarget API, so it cannot work against the kcp we deploy
// (docs/migrate-from-tmc.md).
package agents

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:agents:Agent"

// Identities: how an agent authenticates to kcp.
const (
	// IdentityToken: a ServiceAccount of the agent's own in its workspace
	// and its token, created through KCPProvider and written to TokenSecret
	// in the same up. Needs no renewal (kcp's legacy tokens do not expire),
	// is revoked by deleting its token Secret in kcp, and is valid in that
	// one workspace only.
	IdentityToken = "token"
	// IdentityCertificate: a client certificate Pulumi minted (tls.mode
	// self-managed), written to IdentitySecret; renewed by `pulumi up`.
	IdentityCertificate = "certificate"
	// IdentityCopied: a certificate cert-manager issues in kcp's hosting
	// cluster, copied to IdentitySecret by `kcp-tmc agent-identity` (the
	// fallback when the stack does not reach kcp).
	IdentityCopied = "copied"
)

// Agent kinds.
const (
	KindSyncAgent = "api-syncagent" // kcp-dev/api-syncagent (maintained)
	// KindTMCSyncer is refused (see the package comment); named so the
	// error can say why.
	KindTMCSyncer = "tmc-syncer"
)

// TMCRefusal says why a tmc-syncer cannot be deployed.
const TMCRefusal = "api-syncagent: the TMC syncer needs a SyncTarget API, which kcp removed in v0.12 (this stack runs kcp v0.32.3); " +
	"it lives only in the unmaintained kcp-dev/contrib-tmc fork. Move to api-syncagent: docs/migrate-from-tmc.md"

// Defaults and ports.
const (
	// DefaultSyncAgentImage is the release built against kcp's sdk v0.32.0,
	// the match for kcp 0.32 (v0.5 and older take flags v0.7.0 dropped).
	DefaultSyncAgentImage = "ghcr.io/kcp-dev/api-syncagent:v0.7.0"
	DefaultNamespace      = "kcp-agent"
	DefaultWorkspace      = "root:compute"
	MetricsPort           = 8085
	kubeconfigConfigMap   = "kcp-kubeconfig"
	kubeconfigMount       = "/etc/kcp-agent/kcp"
	// IdentitySecret holds the agent's kcp identity on its cluster
	// (kubernetes.io/tls: tls.crt, tls.key, and ca.crt = the CA that verifies
	// kcp); the kubeconfig refers to its files.
	IdentitySecret = "kcp-agent-identity"
	// TokenSecret holds the agent's ServiceAccount token from kcp (token,
	// ca.crt) on its cluster, with IdentityToken.
	TokenSecret   = "kcp-agent-token"
	identityMount = "/etc/kcp-agent/identity"
	// kcpNamespace holds the agents' ServiceAccounts in their workspace (kcp
	// creates it in every workspace).
	kcpNamespace = "default"
	// WorkspaceAccessRole is kcp's ClusterRole that lets a user into a
	// workspace at all (pkg/authorization/bootstrap/policy.go); without a
	// binding to it kcp denies the agent every request in the workspace.
	WorkspaceAccessRole = "system:kcp:workspace:access"
)

// Resource is one kind an agent syncs (the stack key clusters[].resources[]).
type Resource struct {
	// Group is the API group (`apps`; empty for the core group).
	Group string `json:"group"`
	// Version is the API version (`v1`).
	Version string `json:"version"`
	// Kind is the kind (`Deployment`).
	Kind string `json:"kind"`
	// Plural is the resource name (`deployments`).
	Plural string `json:"plural"`
}

// Args configures one cluster's agent.
type Args struct {
	Cluster string // the cluster's name: DNS-1035 label
	Kind    string // api-syncagent (tmc-syncer is refused)
	Image   string // pinned repository:tag
	// KubectlImage runs the rewatch CronJob (rewatch.go): an image whose
	// entrypoint is kubectl (default kcp.DefaultKubectlImage).
	KubectlImage string
	Replicas     int    // default 2 (leader election keeps one active)
	Namespace    string // on the physical cluster
	// KCPServer is kcp's public URL; Workspace the logical cluster path the
	// agent serves (the APIExport's workspace).
	KCPServer, Workspace string
	// APIExport is the export the api-syncagent fills (default
	// <cluster>-export); kcp creates its endpoint slice of the same name.
	APIExport string
	Resources []Resource
	// Labels (region, zone) go on the agent's objects.
	Labels map[string]string
	// Identity is how the agent authenticates to kcp (IdentityToken,
	// IdentityCertificate or IdentityCopied; docs/agents.md weighs them).
	Identity string
	// ClientCert and ClientKey (Pulumi secrets) are the cluster's own client
	// certificate (IdentityCertificate only); ServerCA is the CA that verifies
	// kcp (IdentityToken and IdentityCertificate, unless PublicServerCert).
	ClientCert, ClientKey, ServerCA pulumi.StringInput
	// PublicServerCert: kcp's public address serves a publicly trusted
	// certificate (tls.acme), so the agent verifies it with the system roots
	// of its image, not with the private server CA.
	PublicServerCert bool
	// FrontDoor is kcp's front door as seen from inside kcp's own host
	// cluster: there kube-proxy translates the public address to the pod
	// that serves it (a front-proxy's, a Gateway's data plane; ingress.
	// FrontDoorInside) before any NetworkPolicy judges the connection, so an
	// agent on that cluster reaches kcp only if this flow is open. Every
	// cluster's agent gets it (which one hosts kcp is not known): on the
	// others it opens the same pods and port of their own cluster.
	FrontDoor netpol.Flow
	// LogDebug adds --log-debug: a log line per reconcile and sync step.
	LogDebug bool
	// PrometheusNamespace is where the cluster's Prometheus runs: the only
	// namespace the agent's policy lets scrape its metrics port (default
	// netpol.MonitoringNamespace).
	PrometheusNamespace string
	// RuleLabels go on the agent's ServiceMonitor and PrometheusRule so that
	// the cluster's Prometheus operator selects them (kube-prometheus-stack
	// selects only its own release's: release=<name>); without them a
	// selective Prometheus neither scrapes the agent nor loads its alerts.
	RuleLabels map[string]string
	// Unmonitored: the cluster has no Prometheus operator (its CRDs are
	// missing), so the agent gets no ServiceMonitor and no PrometheusRule,
	// and nothing may reach its metrics port.
	Unmonitored        bool
	Container          workload.Resources
	PodSecurityVersion string
	// KCPProvider, when set, creates the kcp side (the APIExport and its
	// RBAC, and with IdentityToken the agent's ServiceAccount and token)
	// through it; agents' cluster objects use the component's provider.
	KCPProvider pulumi.ProviderResource
	// KCPDependsOn must exist in kcp first (the workspace the provider points into).
	KCPDependsOn []pulumi.Resource
}

// Agent is the component.
type Agent struct {
	pulumi.ResourceState

	// Namespace holds the agent on its cluster.
	Namespace pulumi.StringOutput `pulumi:"namespace"`
	// User is the agent's identity in kcp (its certificate's CN).
	User pulumi.StringOutput `pulumi:"user"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Namespace, DefaultNamespace)
	component.Default(&a.Kind, KindSyncAgent)
	component.Default(&a.Image, DefaultSyncAgentImage)
	component.Default(&a.KubectlImage, kcp.DefaultKubectlImage)
	component.Default(&a.Replicas, 2)
	component.Default(&a.Workspace, DefaultWorkspace)
	component.Default(&a.PrometheusNamespace, netpol.MonitoringNamespace)
	a.Container = a.Container.WithEphemeral("128Mi", "512Mi")
	component.Default(&a.APIExport, a.Cluster+"-export")
	return a
}

var (
	workspace = regexp.MustCompile(`^root(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// apiVersion is Kubernetes' version naming: v1, v1beta1, v2alpha3.
	apiVersion = regexp.MustCompile(`^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$`)
)

// Validate reports every invalid field under fld (the stack's clusters[i]),
// children named by the stack's keys.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if msgs := validation.IsDNS1035Label(a.Cluster); len(msgs) > 0 || len(a.Cluster) > 40 {
		errs = append(errs, field.Invalid(fld.Child("name"), a.Cluster, "a DNS-1035 label of at most 40 characters (it names the agent, which must never change)"))
	}
	if a.Kind == KindTMCSyncer {
		errs = append(errs, field.Invalid(fld.Child("agent"), a.Kind, TMCRefusal))
	} else {
		errs = append(errs, check.OneOf(fld.Child("agent"), a.Kind, KindSyncAgent)...)
	}
	if a.Replicas < 1 {
		errs = append(errs, field.Invalid(fld.Child("replicas"), a.Replicas, "at least 1 (leader election keeps one active)"))
	}
	errs = append(errs, check.Image(fld.Child("image"), a.Image, DefaultSyncAgentImage)...)
	errs = append(errs, check.Image(fld.Child("kubectlImage"), a.KubectlImage, kcp.DefaultKubectlImage)...)
	errs = append(errs, check.DNSLabel(fld.Child("namespace"), a.Namespace, "a namespace on the cluster")...)
	errs = append(errs, check.DNSLabel(fld.Child("monitoring", "namespace"), a.PrometheusNamespace, "the namespace of the cluster's Prometheus")...)
	errs = append(errs, check.Labels(fld.Child("monitoring", "ruleLabels"), a.RuleLabels)...)
	if !strings.HasPrefix(a.KCPServer, "https://") {
		errs = append(errs, field.Invalid(fld.Child("kcpServer"), a.KCPServer, "kcp's https:// URL"))
	}
	if !workspace.MatchString(a.Workspace) || a.Workspace == "root" {
		errs = append(errs, field.Invalid(fld.Child("workspace"), a.Workspace, `a workspace under root like "root:compute"`))
	}
	if len(a.Resources) == 0 {
		errs = append(errs, field.Required(fld.Child("resources"), "at least one resource to sync"))
	}
	seen := map[string]bool{}
	for i, r := range a.Resources {
		if msg := r.problem(); msg != "" || seen[r.Plural+"."+r.Group] {
			if msg == "" {
				msg = "each {group, plural} once"
			}
			errs = append(errs, field.Invalid(fld.Child("resources").Index(i), fmt.Sprintf("%+v", r), msg+", such as {apps, v1, Deployment, deployments}"))
		}
		seen[r.Plural+"."+r.Group] = true
	}
	errs = append(errs, a.Container.Validate(fld.Child("container"))...)
	return append(errs, a.validateIdentity(fld.Child("identity"))...)
}

// validateIdentity checks that the identity's inputs are exactly those it uses.
func (a Args) validateIdentity(fld *field.Path) field.ErrorList {
	given := fmt.Sprintf("clientCert=%v clientKey=%v serverCA=%v kcpProvider=%v",
		a.ClientCert != nil, a.ClientKey != nil, a.ServerCA != nil, a.KCPProvider != nil)
	ok := false
	switch a.Identity {
	case IdentityToken:
		ok = a.KCPProvider != nil && a.ClientCert == nil && a.ClientKey == nil && (a.ServerCA != nil || a.PublicServerCert)
	case IdentityCertificate:
		ok = a.ClientCert != nil && a.ClientKey != nil && a.ServerCA != nil
	case IdentityCopied:
		ok = a.ClientCert == nil && a.ClientKey == nil && a.ServerCA == nil
	default:
		return check.OneOf(fld, a.Identity, IdentityToken, IdentityCertificate, IdentityCopied)
	}
	if !ok {
		return field.ErrorList{field.Invalid(fld, a.Identity+": "+given,
			"token: a kcp provider and the server CA; certificate: client certificate, key and server CA; copied: none of them")}
	}
	return nil
}

// problem says what is wrong with a synced kind, with the apiserver's own
// rules for group, version, kind and resource names; "" when nothing is.
func (r Resource) problem() string {
	switch {
	case r.Group != "" && len(validation.IsDNS1123Subdomain(r.Group)) > 0:
		return "group: a DNS-1123 subdomain or empty (core)"
	case !apiVersion.MatchString(r.Version):
		return "version: an API version such as v1 or v1beta1"
	case r.Kind == "" || !unicode.IsUpper(rune(r.Kind[0])) || len(validation.IsDNS1035Label(strings.ToLower(r.Kind))) > 0 || strings.Contains(r.Kind, "-"):
		return "kind: a CamelCase kind such as Deployment"
	case len(validation.IsDNS1035Label(r.Plural)) > 0:
		return "plural: a lowercase resource name such as deployments"
	}
	return ""
}

// User is the agent's user name in kcp with a certificate: its common name.
func User(cluster string) string { return "syncer-client-" + cluster }

// ServiceAccount is the agent's ServiceAccount in its workspace's default
// namespace (IdentityToken); its token Secret is ServiceAccount(c)+"-token".
func ServiceAccount(cluster string) string { return "syncagent-" + cluster }

// UserOf is the agent's user name in kcp with its identity.
func UserOf(a Args) string {
	if a.Identity == IdentityToken {
		return "system:serviceaccount:" + kcpNamespace + ":" + ServiceAccount(a.Cluster)
	}
	return User(a.Cluster)
}

// NewAgent registers the component and its children.
func NewAgent(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Agent, error) {
	args = args.WithDefaults()
	comp := &Agent{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("agent")), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	ns, err := platform.NewPlatform(ctx, name+"-platform", platform.Args{
		Namespace: args.Namespace, PodSecurityVersion: args.PodSecurityVersion, Labels: args.Labels,
	}, child)
	if err != nil {
		return nil, fmt.Errorf("agent namespace: %w", err)
	}
	after := []pulumi.ResourceOption{child, pulumi.DependsOn([]pulumi.Resource{ns})}
	labels := workload.Labels(args.Kind)
	if err := rbac(ctx, name, args, after); err != nil {
		return nil, err
	}
	identity, err := newIdentity(ctx, name, args, comp, after)
	if err != nil {
		return nil, err
	}
	if err := newPublishedResources(ctx, name, args, labels, child); err != nil {
		return nil, err
	}
	// The agent talks to its cluster's API and to kcp over 443/6443 only,
	// or to the front-proxy pods where kcp runs in the same cluster.
	egress := kcpFlows(args)
	var ingress []netpol.Flow
	if !args.Unmonitored {
		ingress = append(ingress, netpol.Flow{Namespace: args.PrometheusNamespace, Ports: []int{MetricsPort}})
	}
	if _, err := netpol.NewAllowPolicy(ctx, name+"-netpol", args.Namespace, args.Kind, labels, ingress, egress, after...); err != nil {
		return nil, err
	}
	if _, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: deploymentMeta(args),
		Spec:     deploymentSpec(args, labels),
	}, child, pulumi.DependsOn(append([]pulumi.Resource{ns}, identity...))); err != nil {
		return nil, fmt.Errorf("agent Deployment: %w", err)
	}
	if err := newRewatch(ctx, name, args, after, identity); err != nil {
		return nil, err
	}
	if !args.Unmonitored {
		if err := metrics(ctx, name, args, labels, after); err != nil {
			return nil, err
		}
	}
	if args.Replicas > 1 {
		if err := workload.NewPDB(ctx, name+"-pdb", args.Namespace, args.Kind, after...); err != nil {
			return nil, err
		}
	}
	comp.Namespace = pulumi.String(args.Namespace).ToStringOutput()
	comp.User = pulumi.String(UserOf(args)).ToStringOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"namespace": comp.Namespace, "user": comp.User}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// newIdentity registers the agent's kubeconfig for kcp and what it
// authenticates with: a token of its ServiceAccount in kcp (written here
// when the up applies the kcp side) or its certificate. It returns what the
// agent's pods mount.
func newIdentity(ctx *pulumi.Context, name string, args Args, comp *Agent, after []pulumi.ResourceOption) ([]pulumi.Resource, error) {
	// The kubeconfig holds no credential, only paths into IdentitySecret.
	kcpConfig, err := kcpKubeconfig(args)
	if err != nil {
		return nil, err
	}
	if _, err := corev1.NewConfigMap(ctx, name+"-kubeconfig", &corev1.ConfigMapArgs{
		Metadata: workload.Meta(kubeconfigConfigMap, args.Namespace, args.Kind),
		Data:     pulumi.StringMap{"kubeconfig": pulumi.String(kcpConfig)},
	}, after...); err != nil {
		return nil, fmt.Errorf("kcp kubeconfig ConfigMap: %w", err)
	}
	var identity []pulumi.Resource // what the agent's pods mount
	if args.KCPProvider != nil {
		token, err := kcpSide(ctx, name, args, pulumi.Parent(comp), pulumi.Provider(args.KCPProvider), pulumi.DependsOn(args.KCPDependsOn))
		if err != nil {
			return nil, err
		}
		if args.Identity == IdentityToken {
			data := pulumi.StringMap{"token": token}
			if args.ServerCA != nil {
				data["ca.crt"] = args.ServerCA.ToStringOutput()
			}
			sec, err := corev1.NewSecret(ctx, name+"-token", &corev1.SecretArgs{
				Metadata: workload.Meta(TokenSecret, args.Namespace, args.Kind), Type: pulumi.String("Opaque"), StringData: data,
			}, after...)
			if err != nil {
				return nil, fmt.Errorf("agent token Secret: %w", err)
			}
			identity = append(identity, sec)
		}
	}
	if args.Identity == IdentityCertificate {
		meta := workload.Meta(IdentitySecret, args.Namespace, args.Kind)
		sec, err := corev1.NewSecret(ctx, name+"-identity", &corev1.SecretArgs{
			Metadata: meta, Type: pulumi.String("kubernetes.io/tls"),
			StringData: pulumi.StringMap{
				"tls.crt": args.ClientCert.ToStringOutput(),
				"tls.key": pulumi.ToSecret(args.ClientKey).(pulumi.StringOutput),
				"ca.crt":  args.ServerCA.ToStringOutput(),
			},
		}, after...)
		if err != nil {
			return nil, fmt.Errorf("agent identity Secret: %w", err)
		}
		identity = append(identity, sec)
	}
	return identity, nil
}

// newPublishedResources installs the PublishedResource CRD and one
// PublishedResource per resource the agent syncs.
func newPublishedResources(ctx *pulumi.Context, name string, args Args, labels map[string]string, child pulumi.ResourceOption) error {
	crd, err := publishedResourceDefinition(ctx, name, child)
	if err != nil {
		return err
	}
	for _, r := range args.Resources {
		if _, err := apiextensions.NewCustomResource(ctx, name+"-published-"+r.Plural+"-"+dashed(r.Group), &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("syncagent.kcp.io/v1alpha1"), Kind: pulumi.String("PublishedResource"),
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(r.Plural + "." + dashedOrCore(r.Group)), Labels: pulumi.ToStringMap(labels)},
			OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{"resource": pulumi.Map{
				"apiGroup": pulumi.String(r.Group), "versions": pulumi.ToStringArray([]string{r.Version}), "kind": pulumi.String(r.Kind),
			}}},
		}, child, pulumi.DependsOn([]pulumi.Resource{crd})); err != nil {
			return fmt.Errorf("PublishedResource %s: %w", r.Plural, err)
		}
	}
	return nil
}

func dashed(g string) string {
	if g == "" {
		return "core"
	}
	return strings.ReplaceAll(g, ".", "-")
}

func dashedOrCore(g string) string {
	if g == "" {
		return "core"
	}
	return g
}
