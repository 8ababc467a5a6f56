package stacks

// The providers: the hosting cluster's, each physical cluster's, kcp's
// per workspace (and the workspaces they write into), AWS's.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/cloud"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// deployAgents connects every configured cluster: a provider per cluster
// (its kubeconfig, or its own render directory) and one agents component.
// kcp's side goes through a provider for kcp: rendered in render mode,
// applied in the same up otherwise (kcpSideLive). Each agent is made after
// published (kcp's DNS records, when the stack makes them).
func deployAgents(ctx *pulumi.Context, cfg *Config, projectDir string, certs *tls.PKI, kcpProviders map[string]pulumi.ProviderResource,
	workspaces map[string]pulumi.Resource, published []pulumi.Resource) error {
	for _, cl := range cfg.Clusters {
		args := providerArgs()
		if cfg.Target.Mode == TargetRender {
			args.RenderYamlToDirectory = pulumi.StringPtr(filepath.Join(renderDir(cfg, projectDir), "clusters", cl.Name))
		} else {
			args.Kubeconfig = pulumi.ToSecret(pulumi.String(cfg.ClusterKubeconfigs[cl.Name])).(pulumi.StringOutput).ToStringPtrOutput()
		}
		provider, err := kubernetes.NewProvider(ctx, "cluster-"+cl.Name, args)
		if err != nil {
			return fmt.Errorf("cluster %s provider: %w", cl.Name, err)
		}
		a := AgentArgs(cfg, cl)
		a.PublicServerCert = cfg.PublicServerCert()
		a.Identity = AgentIdentity(cfg)
		switch a.Identity {
		case agents.IdentityToken:
			if !a.PublicServerCert {
				a.ServerCA = certs.Admin.ServerCA
			}
		case agents.IdentityCertificate:
			id := certs.Identities[cl.Name]
			a.ClientCert, a.ClientKey, a.ServerCA = id.Cert, id.Key, id.ServerCA
		}
		if p, ok := kcpProviders[a.Workspace]; ok {
			a.KCPProvider = p
			a.KCPDependsOn = []pulumi.Resource{workspaces[a.Workspace]}
		}
		opts := []pulumi.ResourceOption{pulumi.Providers(provider)}
		if len(published) > 0 {
			opts = append(opts, pulumi.DependsOn(published))
		}
		if _, err := agents.NewAgent(ctx, "agent-"+cl.Name, a, opts...); err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
	}
	return nil
}

// kcpSideLive says whether this up applies the kcp side to a running kcp:
// not in render mode (which renders it); through kcpKubeconfig when set;
// else unless target.kcpSide is off (unset means auto: a Config built in Go
// before the key existed keeps working) or skipAwait says no kcp will run.
func kcpSideLive(cfg *Config) bool {
	return cfg.Target.Mode != TargetRender &&
		(cfg.KCPKubeconfig != "" || (cfg.Target.KCPSide != KCPSideOff && !cfg.Target.SkipAwait))
}

// AgentIdentity is how the agents authenticate to kcp (docs/agents.md): a
// ServiceAccount token of their own when this up applies the kcp side to a
// running kcp, which needs nobody after it; else the certificate Pulumi
// minted (self-managed) or the one `kcp-tmc agent-identity` copies
// (cert-manager).
func AgentIdentity(cfg *Config) string {
	switch {
	case kcpSideLive(cfg):
		return agents.IdentityToken
	case cfg.TLS.Mode == tls.ModeSelfManaged:
		return agents.IdentityCertificate
	default:
		return agents.IdentityCopied
	}
}

// kcpAccess is the admin kubeconfig (a Pulumi secret) through which the
// program writes the kcp side, or nil without a live kcp side:
// kcpKubeconfig when set, else the stack's own kcp-admin certificate at
// target.kcpServer or the front door's address, verifying kcp.<domain>.
func kcpAccess(cfg *Config, certs *tls.PKI, entry *ingress.Ingress) pulumi.StringInput {
	switch {
	case !kcpSideLive(cfg):
		return nil
	case cfg.KCPKubeconfig != "":
		return pulumi.ToSecret(pulumi.String(cfg.KCPKubeconfig)).(pulumi.StringOutput)
	}
	admin := certs.Admin
	public := cfg.PublicServerCert()
	return pulumi.ToSecret(pulumi.All(admin.Cert, admin.Key, admin.ServerCA, entry.Address).ApplyT(func(v []any) (string, error) {
		server := cfg.Target.KCPServer
		if server == "" {
			server = "https://" + net.JoinHostPort(v[3].(string), "443")
		}
		cluster := &clientcmdapi.Cluster{Server: server, TLSServerName: kcp.PublicHost(cfg.Domain)}
		if !public {
			cluster.CertificateAuthorityData = []byte(v[2].(string))
		}
		kc := clientcmdapi.NewConfig()
		kc.Clusters["kcp"] = cluster
		kc.AuthInfos["kcp-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte(v[0].(string)), ClientKeyData: []byte(v[1].(string))}
		kc.Contexts["kcp"] = &clientcmdapi.Context{Cluster: "kcp", AuthInfo: "kcp-admin"}
		kc.CurrentContext = "kcp"
		out, err := clientcmd.Write(*kc)
		if err != nil {
			return "", fmt.Errorf("kcp admin kubeconfig: %w", err)
		}
		return string(out), nil
	})).(pulumi.StringOutput)
}

// kcpProviderName names the provider (and render directory) of a
// workspace: kcp-<path with dashes>, whatever the order of the clusters, so
// removing or reordering clusters never moves a workspace's objects to
// another provider (which would replace them: a replaced APIExport gets a
// new identity, and its consumers' APIBindings break).
func kcpProviderName(ws string) string { return "kcp-" + strings.ReplaceAll(ws, ":", "-") }

// legacyKCPProvider is the name the first cluster's workspace's provider
// had until providers were named by workspace alone: that provider carries
// it as an alias, so a stack written then renames it in place (nothing is
// replaced) on its first up now.
const legacyKCPProvider = "kcp"

// kcpProviderAliases are the aliases of a workspace's provider.
func kcpProviderAliases(cfg *Config, ws string) []pulumi.Alias {
	if len(cfg.Clusters) > 0 && ws == AgentArgs(cfg, cfg.Clusters[0]).Workspace {
		return []pulumi.Alias{{Name: pulumi.String(legacyKCPProvider)}}
	}
	return nil
}

// kcpWorkspacePaths are the workspaces the stack writes to: the clusters',
// then every ancestor (whose provider creates the workspace below it), then
// root; each once.
func kcpWorkspacePaths(cfg *Config) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ws string) {
		if !seen[ws] {
			seen[ws] = true
			out = append(out, ws)
		}
	}
	for _, cl := range cfg.Clusters {
		add(AgentArgs(cfg, cl).Workspace)
	}
	for _, cl := range cfg.Clusters {
		for _, a := range ancestors(AgentArgs(cfg, cl).Workspace) {
			add(a)
		}
	}
	add(rootWorkspace)
	return out
}

// rootWorkspace holds kcp's own RBAC (the metrics reader binding).
const rootWorkspace = "root"

// newKCPProviders makes one provider for kcp per workspace the stack writes
// to, so each cluster's APIExport lands in that cluster's workspace, each
// workspace is created through its parent's provider, and kcp's own RBAC
// lands in root: the access kubeconfig (kcpAccess) with its server path set
// to /clusters/<workspace>, or a render directory. No access and no render
// mode: no kcp side. Each provider depends on
// kcp's workloads and its front door (everything written through it is
// created once kcp is reachable and deleted while it still is), and a
// workspace's provider on that workspace: the Kubernetes provider reads a
// cluster's schema when it starts, and a workspace that does not exist yet
// made it "unreachable" for the whole up (found on a real node).
func newKCPProviders(ctx *pulumi.Context, cfg *Config, projectDir string, access pulumi.StringInput, reachedThrough ...pulumi.Resource) (map[string]pulumi.ProviderResource, map[string]pulumi.Resource, error) {
	providers := map[string]pulumi.ProviderResource{}
	if cfg.Target.Mode != TargetRender && access == nil {
		return providers, nil, nil
	}
	provider := func(ws string, deps []pulumi.Resource) error {
		name := kcpProviderName(ws)
		args := providerArgs()
		if cfg.Target.Mode == TargetRender {
			args.RenderYamlToDirectory = pulumi.StringPtr(filepath.Join(renderDir(cfg, projectDir), name))
		} else {
			// Checked before the engine saw anything (validateClusters);
			// the error never echoes the kubeconfig, which holds credentials.
			args.Kubeconfig = pulumi.ToSecret(access.ToStringOutput().ApplyT(func(kc string) (string, error) {
				return workspaceKubeconfig(kc, ws)
			})).(pulumi.StringOutput).ToStringPtrOutput()
			// An update, never a replacement, when the access changes (a
			// renewed admin certificate, or unknown in a preview): replacing
			// the provider would replace everything created through it.
			args.ClusterIdentifier = pulumi.StringPtr("kcp " + kcp.PublicHost(cfg.Domain) + " " + ws)
		}
		p, err := kubernetes.NewProvider(ctx, name, args, pulumi.DependsOn(deps), pulumi.Aliases(kcpProviderAliases(cfg, ws)))
		if err != nil {
			return fmt.Errorf("kcp provider for workspace %s: %w", ws, err)
		}
		providers[ws] = p
		return nil
	}
	if err := provider(rootWorkspace, reachedThrough); err != nil {
		return nil, nil, err
	}
	workspaces, err := kcpWorkspaces(ctx, cfg, providers, func(ws string, created pulumi.Resource) error {
		return provider(ws, append(append([]pulumi.Resource{}, reachedThrough...), created))
	})
	if err != nil {
		return nil, nil, err
	}
	return providers, workspaces, nil
}

// ancestors are the workspace paths above ws, nearest first, down to root
// ("root:a:b" → "root:a", "root").
func ancestors(ws string) []string {
	var out []string
	for i := strings.LastIndex(ws, ":"); i > 0; i = strings.LastIndex(ws, ":") {
		ws = ws[:i]
		out = append(out, ws)
	}
	return out
}

// kcpWorkspaces creates every workspace the clusters use that is not root,
// each through its parent's provider, and returns them by path. A fresh kcp
// has none of them (kcp v0.32.3 has no root:compute), and a workspace's
// content can only be written once it is Ready, so Pulumi waits for that.
// Workspaces hold their users' data: destroy or removing a cluster leaves
// them in kcp.
// Once a workspace exists, created(ws, it) makes its provider.
func kcpWorkspaces(ctx *pulumi.Context, cfg *Config, providers map[string]pulumi.ProviderResource, created func(string, pulumi.Resource) error) (map[string]pulumi.Resource, error) {
	out := map[string]pulumi.Resource{}
	shardOf := map[string]string{} // clusters[].shard: where kcp schedules the workspace
	for _, cl := range cfg.Clusters {
		if cl.Shard != "" {
			shardOf[AgentArgs(cfg, cl).Workspace] = cl.Shard
		}
	}
	var create func(ws string) error
	create = func(ws string) error {
		if _, done := out[ws]; done || ws == rootWorkspace {
			return nil
		}
		parent := ancestors(ws)[0]
		if err := create(parent); err != nil {
			return err
		}
		opts := []pulumi.ResourceOption{pulumi.Provider(providers[parent]), pulumi.RetainOnDelete(true)}
		if p, ok := out[parent]; ok {
			opts = append(opts, pulumi.DependsOn([]pulumi.Resource{p}))
		}
		args := &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("tenancy.kcp.io/v1alpha1"), Kind: pulumi.String("Workspace"),
			Metadata: &metav1.ObjectMetaArgs{
				Name:        pulumi.String(ws[strings.LastIndex(ws, ":")+1:]),
				Annotations: pulumi.StringMap{workload.WaitFor: pulumi.String("jsonpath={.status.phase}=Ready")},
			},
		}
		if shard := shardOf[ws]; shard != "" {
			// A shard is picked by its Shard object's name label.
			args.OtherFields = kubernetes.UntypedArgs{"spec": pulumi.Map{"location": pulumi.Map{"selector": pulumi.Map{
				"matchLabels": pulumi.StringMap{"name": pulumi.String(shard)}}}}}
		}
		res, err := apiextensions.NewCustomResource(ctx, "workspace-"+strings.ReplaceAll(ws, ":", "-"), args, opts...)
		if err != nil {
			return fmt.Errorf("kcp workspace %s: %w", ws, err)
		}
		out[ws] = res
		return created(ws, res)
	}
	if len(providers) == 0 {
		return out, nil
	}
	for _, cl := range cfg.Clusters {
		if err := create(AgentArgs(cfg, cl).Workspace); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// workspaceKubeconfig points every cluster entry of a kcp kubeconfig at the
// logical cluster ws (https://host/clusters/<ws>).
func workspaceKubeconfig(kubeconfig, ws string) (string, error) {
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil {
		return "", errors.New("not a kubeconfig")
	}
	if len(cfg.Clusters) == 0 {
		return "", errors.New("the kubeconfig names no cluster")
	}
	for name, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("cluster %q: server is not a URL", name)
		}
		u.Path, u.RawPath = "/clusters/"+ws, ""
		c.Server = u.String()
	}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return "", fmt.Errorf("writing the workspace kubeconfig: %w", err)
	}
	return string(b), nil
}

// awsProviders returns a function giving the program's AWS provider for a
// region, creating one per region on first use.
func awsProviders(ctx *pulumi.Context) func(region string) (*aws.Provider, error) {
	made := map[string]*aws.Provider{}
	return func(region string) (*aws.Provider, error) {
		if p, ok := made[region]; ok {
			return p, nil
		}
		name := "aws"
		if len(made) > 0 {
			name = "aws-" + region
		}
		p, err := aws.NewProvider(ctx, name, &aws.ProviderArgs{Region: pulumi.String(region)})
		if err != nil {
			return nil, fmt.Errorf("aws provider for %s: %w", region, err)
		}
		made[region] = p
		return p, nil
	}
}

// newKubernetesProvider points every Kubernetes resource at the stack's
// target: a directory of rendered YAML, or a cluster through a kubeconfig.
func newKubernetesProvider(ctx *pulumi.Context, cfg *Config, projectDir string, aws *cloud.EKS) (*kubernetes.Provider, error) {
	args := providerArgs()
	if aws != nil {
		args.Kubeconfig = aws.Kubeconfig.ToStringPtrOutput()
	}
	switch cfg.Target.Mode {
	case TargetRender:
		args.RenderYamlToDirectory = pulumi.StringPtr(renderDir(cfg, projectDir))
	case TargetKubeconfig:
		if cfg.Kubeconfig != "" {
			args.Kubeconfig = pulumi.ToSecret(pulumi.String(cfg.Kubeconfig)).(pulumi.StringOutput).ToStringPtrOutput()
		}
		if cfg.Target.Context != "" {
			args.Context = pulumi.StringPtr(cfg.Target.Context)
		}
	}
	p, err := kubernetes.NewProvider(ctx, "kubernetes", args)
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	return p, nil
}

// providerArgs are the settings every Kubernetes provider of the stack
// starts from. Objects are created by server-side apply, upserting one of
// the same name that exists: what an up after a killed one relies on (the
// killed one's objects, unknown to its state, are taken over), as do the
// runbook's "adopt" steps. Since pulumi-kubernetes v4.29 a create fails
// with AlreadyExists instead unless upsertExistingObjects is set (its
// source, v4.32.0, provider/pkg/await/await.go; the module proxy serves
// only an older provider, which always upserted, so the tests here could
// not see it). Its risk — a resource renamed without an alias, created
// anew and then deleted — is one kcp-tmc's aliases and named objects rule
// out; a named object's replacement is deleted first.
func providerArgs() *kubernetes.ProviderArgs {
	return &kubernetes.ProviderArgs{UpsertExistingObjects: pulumi.BoolPtr(true)}
}

// renderDir resolves target.renderDir against the project, so the CLI,
// `pulumi up` and tests write to the same place whatever their working directory.
func renderDir(cfg *Config, projectDir string) string {
	if filepath.IsAbs(cfg.Target.RenderDir) {
		return cfg.Target.RenderDir
	}
	return filepath.Join(projectDir, cfg.Target.RenderDir)
}

func projectRoot(ctx *pulumi.Context) string {
	if root := ctx.RootDirectory(); root != "" {
		return root
	}
	wd, _ := os.Getwd()
	return wd
}
