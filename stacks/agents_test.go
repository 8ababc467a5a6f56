package stacks

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
)

// clusterConfig is a prod stack with n clusters.
func clusterConfig(names ...string) map[string]string {
	var clusters []map[string]any
	kubeconfigs := map[string]string{}
	for _, n := range names {
		// Everything about a cluster derives from its name, never its position.
		h := int(n[len(n)-1])
		c := map[string]any{"name": n, "region": "us-east-1", "zone": fmt.Sprintf("us-east-1%c", 'a'+h%3),
			"resources": []map[string]string{{"group": "apps", "version": "v1", "kind": "Deployment", "plural": "deployments"}}}
		clusters = append(clusters, c)
		kubeconfigs[n] = "apiVersion: v1\nkind: Config\n"
	}
	js, _ := json.Marshal(clusters)
	kc, _ := json.Marshal(kubeconfigs)
	return map[string]string{
		"environment": "prod", "kubeconfig": "apiVersion: v1", "backup": testIRSA,
		"slackWebhookUrl": "https://hooks.slack.com/services/T/B/X",
		"tls":             `{"mode":"self-managed","installCertManager":false}`,
		"clusters":        string(js), "clusterKubeconfigs": string(kc),
	}
}

var clusterSecrets = []string{"kubeconfig", "slackWebhookUrl", "clusterKubeconfigs"}

// TestRemovingAClusterTouchesOnlyIt compares the resources of a stack with
// clusters a, b, c against the same stack without b: exactly b's agent,
// provider and certificate go, and nothing else changes its inputs.
func TestRemovingAClusterTouchesOnlyIt(t *testing.T) {
	inputs := map[string]map[string]string{}
	names := func(clusters ...string) map[string]bool {
		mocktest.SetConfig(t, clusterConfig(clusters...), clusterSecrets...)
		rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		key := strings.Join(clusters, ",")
		inputs[key] = map[string]string{}
		for _, r := range rec.All() {
			out[r.Type+"::"+r.Name] = true
			// Keys and certificates are minted afresh on every mock run, and so is what embeds them.
			if !strings.HasPrefix(r.Type, "tls:") && r.Type != "kubernetes:core/v1:Secret" {
				in := r.Input()
				if r.Type == providerType && strings.HasPrefix(r.Name, "kcp") {
					delete(in, "kubeconfig") // kcp's admin certificate
				}
				b, _ := json.Marshal(in)
				inputs[key][r.Type+"::"+r.Name] = string(b)
			}
		}
		return out
	}
	all, without := names("alpha", "bravo", "charlie"), names("alpha", "charlie")
	var removed, added []string
	for n := range all {
		if !without[n] {
			removed = append(removed, n)
		}
	}
	for n := range without {
		if !all[n] {
			added = append(added, n)
		}
	}
	sort.Strings(removed)
	if len(added) != 0 {
		t.Errorf("removing bravo created resources: %v", added)
	}
	if len(removed) < 10 {
		t.Errorf("only %d resources removed with bravo: %v", len(removed), removed)
	}
	for _, n := range removed {
		if !strings.Contains(n, "bravo") {
			t.Errorf("removing bravo removes %s", n)
		}
		// What a cluster brings, a next up can redo by name, so clusters are
		// added with `kcp-tmc up --skip-checkpoints` (README "Scale").
		if typ := n[:strings.Index(n, "::")]; !strings.HasPrefix(typ, "kubernetes:") && !strings.HasPrefix(typ, "kcp-tmc:") && typ != providerType {
			t.Errorf("a cluster brings %s, which --skip-checkpoints refuses", n)
		}
	}
	before, after := inputs["alpha,bravo,charlie"], inputs["alpha,charlie"]
	for n, in := range after {
		if before[n] != in {
			t.Errorf("removing bravo changes %s", n)
		}
	}
}

func TestClusterConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(map[string]string)
		want   string
	}{
		{"missing kubeconfig for a cluster", func(c map[string]string) { c["clusterKubeconfigs"] = `{"alpha":"x"}` }, `config kcp-tmc:clusterKubeconfigs: invalid value "<no entry for bravo>"`},
		{"a knob the agents lack", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","maxSyncWorkers":8,"resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].maxSyncWorkers: invalid value "8"`},
		{"duplicate cluster", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]},{"name":"alpha","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[1].name: invalid value "alpha"`},
		{"bad cluster name", func(c map[string]string) {
			c["clusters"] = `[{"name":"EU_1","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].name: invalid value "EU_1"`},
		{"resource without a kind", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","resources":[{"group":"apps","version":"v1","plural":"deployments"}]}]`
		}, "config kcp-tmc:clusters[0].resources[0]:"},
		{"qps for api-syncagent", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","qps":50,"resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].qps: invalid value "50"`},
		{"the legacy TMC syncer, which kcp v0.32.3 cannot serve", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","agent":"tmc-syncer","image":"ghcr.io/kcp-dev/contrib-tmc/syncer:0b1a2c3","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].agent: invalid value "tmc-syncer": want api-syncagent: the TMC syncer needs a SyncTarget API`},
		{"logDebug not a boolean", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","logDebug":"yes","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].logDebug: invalid value "a string": want a value of type boolean (true/false)`},
		{"cluster kubeconfigs in plaintext", func(c map[string]string) {}, `config kcp-tmc:clusterKubeconfigs: invalid value "<plaintext>"`},
		{"a cluster's rule label key with a space", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","monitoring":{"ruleLabels":{"my release":"kps"}},"resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].monitoring.ruleLabels[my release]: invalid value "my release": want a label key`},
		{"a cluster's Prometheus namespace", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","monitoring":{"namespace":"Observability"},"resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].monitoring.namespace: invalid value "Observability": want the namespace of the cluster's Prometheus`},
		{"an unmonitored cluster in prod", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","monitoring":{"enabled":false},"resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].monitoring.enabled: invalid value "false": want true in prod`},
		{"an unknown key of a cluster's monitoring", func(c map[string]string) {
			c["clusters"] = `[{"name":"alpha","monitoring":{"labels":{"release":"kps"}},"resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
		}, `config kcp-tmc:clusters[0].monitoring.labels: invalid value "<set>": want no such key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clusterConfig("alpha", "bravo")
			tt.mutate(cfg)
			secrets := clusterSecrets
			if strings.Contains(tt.want, "<plaintext>") {
				secrets = []string{"kubeconfig", "slackWebhookUrl"}
			}
			mocktest.SetConfig(t, cfg, secrets...)
			_, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %s", err, tt.want)
			}
		})
	}
}

// benchClusters are the stack sizes the per-cluster benchmarks measure.
var benchClusters = []int{10, 100, 1000}

// BenchmarkProdStack evaluates the prod stack under mocks with N clusters
// (production target: 100+ clusters). Figures: README "Scale".
func BenchmarkProdStack(b *testing.B) {
	TuneGC() // as main.go and cmd/kcp-tmc do
	for _, n := range benchClusters {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("c%04d", i)
			}
			mocktest.SetConfig(b, clusterConfig(names...), clusterSecrets...)
			dir := b.TempDir()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := pulumi.RunErr(ProgramIn(dir), pulumi.WithMocks("kcp-tmc", "prod", mocktest.Discard{})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKCPSidePerWorkspace: each cluster's kcp-side objects go through a
// provider for its own workspace (kcpKubeconfig pointed at
// /clusters/<workspace>), and a kcpKubeconfig that is not one is refused
// before anything is registered.
func TestKCPSidePerWorkspace(t *testing.T) {
	const kcpKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: kcp, cluster: {server: "https://kcp.example.com/clusters/root"}}]
users: [{name: admin, user: {token: t}}]
contexts: [{name: kcp, context: {cluster: kcp, user: admin}}]
current-context: kcp
`
	cfg := clusterConfig("a", "b", "c")
	var clusters []map[string]any
	if err := json.Unmarshal([]byte(cfg["clusters"]), &clusters); err != nil {
		t.Fatal(err)
	}
	clusters[1]["workspace"], clusters[1]["shard"] = "root:team-b", "shard-1"
	js, _ := json.Marshal(clusters)
	cfg["clusters"], cfg["kcpKubeconfig"] = string(js), kcpKubeconfig
	cfg["kcp"] = `{"shards":[{"name":"shard-1"}]}`
	mocktest.SetConfig(t, cfg, append(clusterSecrets, "kcpKubeconfig")...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{}
	for _, p := range rec.OfType(providerType) {
		if kc, _ := p.Input()["kubeconfig"].(string); strings.HasPrefix(p.Name, "kcp") {
			servers[p.Name] = kc
		}
	}
	// Each workspace's provider is named by its path; the first cluster's
	// carries the name it had before as an alias (a stack written then is
	// renamed in place, not replaced).
	for name, want := range map[string]string{"kcp-root": "https://kcp.example.com/clusters/root", "kcp-root-compute": "https://kcp.example.com/clusters/root:compute",
		"kcp-root-team-b": "https://kcp.example.com/clusters/root:team-b"} {
		if !strings.Contains(servers[name], "server: "+want) {
			t.Errorf("kcp provider %s kubeconfig does not point at %s:\n%s", name, want, servers[name])
		}
	}
	checked := 0
	for _, r := range rec.All() {
		if !strings.HasSuffix(r.Name, "-apiexport") {
			continue
		}
		checked++
		want := "::kcp-root-compute::"
		if strings.HasPrefix(r.Name, "agent-b-") {
			want = "::kcp-root-team-b::"
		}
		if !strings.Contains(r.Provider, want) {
			t.Errorf("%s goes through %s, want the provider %s", r.Name, r.Provider, want)
		}
	}
	if checked != 3 {
		t.Errorf("%d APIExports, want one per cluster", checked)
	}
	// Each workspace is created once, in root, kept when the stack lets go
	// of it, and waited for until kcp says Ready.
	for _, ws := range []string{"compute", "team-b"} {
		r := rec.Named(t, "kubernetes:tenancy.kcp.io/v1alpha1:Workspace", "workspace-root-"+ws)
		if !strings.HasSuffix(r.Provider, "::kcp-root::kcp-root-id") || !r.RetainOnDelete ||
			mocktest.Dig(r.Input(), "metadata", "annotations", "pulumi.com/waitFor") != "jsonpath={.status.phase}=Ready" ||
			mocktest.Dig(r.Input(), "metadata", "name") != ws {
			t.Errorf("workspace %s: provider %s, retained %v, inputs %v", ws, r.Provider, r.RetainOnDelete, r.Input())
		}
	}
	if n := len(rec.OfType("kubernetes:tenancy.kcp.io/v1alpha1:Workspace")); n != 2 {
		t.Errorf("%d workspaces, want 2", n)
	}
	// A workspace's provider starts once the workspace exists: the
	// Kubernetes provider reads a cluster's schema when it starts and marks
	// a missing one unreachable for the whole up (found on a real node).
	for provider, ws := range map[string]string{"kcp-root-compute": "compute", "kcp-root-team-b": "team-b"} {
		deps := strings.Join(rec.Named(t, providerType, provider).DependsOn, " ")
		if !strings.Contains(deps, "Workspace::workspace-root-"+ws) || !strings.Contains(deps, "Deployment::kcp-front-proxy") {
			t.Errorf("provider %s does not wait for workspace %s and kcp's front door; depends on %s", provider, ws, deps)
		}
	}
	// clusters[].shard schedules its workspace onto that shard; the others are kcp's choice.
	for ws, want := range map[string]any{"team-b": "shard-1", "compute": nil} {
		in := rec.Named(t, "kubernetes:tenancy.kcp.io/v1alpha1:Workspace", "workspace-root-"+ws).Input()
		if got := mocktest.Dig(in, "spec", "location", "selector", "matchLabels", "name"); got != want {
			t.Errorf("workspace %s is placed on %v, want %v", ws, got, want)
		}
	}

	cfg["kcpKubeconfig"] = "not: [a kubeconfig"
	mocktest.SetConfig(t, cfg, append(clusterSecrets, "kcpKubeconfig")...)
	rec, err = mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), `kcp-tmc:kcpKubeconfig: invalid value "<secret>"`) || strings.Contains(err.Error(), "not: [a") {
		t.Errorf("bad kcpKubeconfig: err = %v", err)
	}
	if n := len(rec.All()); n != 0 {
		t.Errorf("%d resources registered before the bad kcpKubeconfig was refused", n)
	}
}

// TestKCPSideInTheSameUp: with target.kcpSide auto an up onto a cluster
// also creates the kcp side, through kcp's admin certificate the stack owns
// (cert-manager's, read back once its Certificate is Ready, or Pulumi's own)
// at the front door's address or target.kcpServer, verifying kcp.<domain>;
// the agents then get a ServiceAccount token of their own and nobody runs
// anything after up. Off, or with skipAwait (no kcp will run), there is no
// kcp side and the agents fall back to their certificate.
func TestKCPSideInTheSameUp(t *testing.T) {
	tests := []struct {
		name                 string
		tls, target, ingress string
		wantServer, wantCA   string // "" = no kcp side
		wantIdentity         string
	}{
		{name: "cert-manager", target: `{"mode":"kubeconfig"}`, wantServer: "https://" + mocktest.LoadBalancerIP + ":443",
			wantCA: "CA kcp/kcp-server-ca", wantIdentity: agents.IdentityToken},
		{name: "self-managed", tls: `{"mode":"self-managed","installCertManager":false}`, target: `{"mode":"kubeconfig"}`,
			wantServer: "https://" + mocktest.LoadBalancerIP + ":443", wantCA: "-----BEGIN CERTIFICATE-----", wantIdentity: agents.IdentityToken},
		{name: "a Gateway of the stack's: its address", target: `{"mode":"kubeconfig"}`, ingress: `{"mode":"gateway","gateway":{"className":"eg"}}`,
			wantServer: "https://" + mocktest.GatewayIP + ":443", wantCA: "CA kcp/kcp-server-ca", wantIdentity: agents.IdentityToken},
		{name: "an existing Gateway: the public name", target: `{"mode":"kubeconfig"}`, ingress: `{"mode":"gateway","gateway":{"name":"shared","namespace":"gateways"}}`,
			wantServer: "https://kcp.example.com:443", wantCA: "CA kcp/kcp-server-ca", wantIdentity: agents.IdentityToken},
		{name: "a deployer inside the network", target: `{"mode":"kubeconfig","kcpServer":"https://10.0.0.5:6443"}`,
			wantServer: "https://10.0.0.5:6443", wantCA: "CA kcp/kcp-server-ca", wantIdentity: agents.IdentityToken},
		{name: "off", target: `{"mode":"kubeconfig","kcpSide":"off"}`, wantIdentity: agents.IdentityCopied},
		{name: "off, self-managed", tls: `{"mode":"self-managed","installCertManager":false}`, target: `{"mode":"kubeconfig","kcpSide":"off"}`,
			wantIdentity: agents.IdentityCertificate},
		{name: "skipAwait", target: `{"mode":"kubeconfig","skipAwait":true}`, wantIdentity: agents.IdentityCopied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clusterConfig("alpha")
			delete(cfg, "tls") // prod's default: cert-manager
			if tt.tls != "" {
				cfg["tls"] = tt.tls
			}
			cfg["target"] = tt.target
			if tt.ingress != "" {
				cfg["ingress"] = tt.ingress
			}
			mocktest.SetConfig(t, cfg, clusterSecrets...)
			rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			var kcpProviders []mocktest.Resource
			for _, p := range rec.OfType(providerType) {
				if strings.HasPrefix(p.Name, "kcp") {
					kcpProviders = append(kcpProviders, p)
				}
			}
			if tt.wantServer == "" {
				if len(kcpProviders) > 0 {
					t.Errorf("kcp providers without a kcp side: %v", kcpProviders)
				}
			} else {
				if len(kcpProviders) != 2 { // root's, and root:compute's
					t.Errorf("%d kcp providers, want 2", len(kcpProviders))
				}
				for _, p := range kcpProviders {
					checkAdminAccess(t, p, tt.wantServer, tt.wantCA)
				}
			}
			reads := 0
			for _, r := range rec.OfType("kubernetes:core/v1:Secret") {
				if strings.HasSuffix(r.Name, "-read") {
					reads++
					cert := "::pki-certificate-" + strings.TrimSuffix(strings.TrimPrefix(r.Name, "pki-"), "-read")
					if !slices.ContainsFunc(r.DependsOn, func(u string) bool { return strings.HasSuffix(u, cert) }) {
						t.Errorf("%s reads before its Certificate is Ready: depends on %v", r.Name, r.DependsOn)
					}
				}
			}
			if wantReads := map[bool]int{true: 2}[tt.wantCA == "CA kcp/kcp-server-ca"]; reads != wantReads {
				t.Errorf("%d Secrets read back, want %d", reads, wantReads)
			}
			if tt.wantCA == "CA kcp/kcp-server-ca" {
				for _, name := range []string{"kcp-admin", "kcp-server-ca"} {
					c := rec.Object(t, "kubernetes:cert-manager.io/v1:Certificate", name)
					if mocktest.Dig(c, "metadata", "annotations", "pulumi.com/waitFor") != "condition=Ready" {
						t.Errorf("Certificate %s is read back without waiting for Ready: %v", name, c["metadata"])
					}
				}
			}
			dep := rec.Object(t, "kubernetes:apps/v1:Deployment", "api-syncagent")
			secret := map[string]string{agents.IdentityToken: agents.TokenSecret, agents.IdentityCertificate: agents.IdentitySecret, agents.IdentityCopied: agents.IdentitySecret}[tt.wantIdentity]
			if vols := fmt.Sprint(mocktest.Dig(dep, "spec", "template", "spec", "volumes")); !strings.Contains(vols, "secretName:"+secret) {
				t.Errorf("identity %s: the agent mounts %s", tt.wantIdentity, vols)
			}
			_, hasToken := func() (any, bool) {
				for _, r := range rec.OfType("kubernetes:core/v1:ServiceAccount") {
					if r.Name == "agent-alpha-kcp-sa" {
						return r, true
					}
				}
				return nil, false
			}()
			if hasToken != (tt.wantIdentity == agents.IdentityToken) {
				t.Errorf("identity %s: a ServiceAccount in kcp = %v", tt.wantIdentity, hasToken)
			}
			// A certificate of its own only where the agent uses one.
			minted := slices.ContainsFunc(rec.All(), func(r mocktest.Resource) bool { return strings.Contains(r.Name, "syncer-client-alpha") })
			if minted == (tt.wantIdentity == agents.IdentityToken) {
				t.Errorf("identity %s: a syncer-client-alpha certificate = %v", tt.wantIdentity, minted)
			}
		})
	}
}

// checkAdminAccess: a kcp provider reaches kcp at server (path
// /clusters/<its workspace>) as kcp-admin, verifying the certificate of
// kcp.example.com with caPrefix's CA; the kubeconfig is a secret, and the
// provider is never replaced for a change of it.
func checkAdminAccess(t *testing.T, p mocktest.Resource, server, caPrefix string) {
	t.Helper()
	if !p.Inputs["kubeconfig"].ContainsSecrets() {
		t.Errorf("%s: the kubeconfig is not a Pulumi secret", p.Name)
	}
	kc, err := clientcmd.Load([]byte(fmt.Sprint(p.Input()["kubeconfig"])))
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	c := kc.Clusters["kcp"]
	if c == nil || !strings.HasPrefix(c.Server, server+"/clusters/root") || c.TLSServerName != "kcp.example.com" || !strings.HasPrefix(string(c.CertificateAuthorityData), caPrefix) {
		t.Errorf("%s: cluster = %+v", p.Name, c)
	}
	if u := kc.AuthInfos["kcp-admin"]; u == nil || len(u.ClientCertificateData) == 0 || len(u.ClientKeyData) == 0 {
		t.Errorf("%s: user = %+v", p.Name, u)
	}
	if id := p.Input()["clusterIdentifier"]; id == nil || !strings.HasPrefix(fmt.Sprint(id), "kcp kcp.example.com root") {
		t.Errorf("%s: clusterIdentifier = %v", p.Name, id)
	}
}

// TestWorkspacePathsStayDistinct: provider and workspace resources are
// named by the path with dashes, so root:a-b and root:a:b would collide;
// the stack says so instead of failing with a duplicate URN.
func TestWorkspacePathsStayDistinct(t *testing.T) {
	cfg := clusterConfig("a", "b")
	cfg["clusters"] = `[{"name":"a","workspace":"root:x-y","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]},
	 {"name":"b","workspace":"root:x:y","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
	mocktest.SetConfig(t, cfg, clusterSecrets...)
	_, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), `config kcp-tmc:clusters[].workspace: invalid value "root:x:y"`) {
		t.Errorf("err = %v", err)
	}
}

// TestClusterLogDebug: clusters[].logDebug is api-syncagent's --log-debug,
// on that cluster's agent only.
func TestClusterLogDebug(t *testing.T) {
	cfg := clusterConfig("alpha", "bravo")
	cfg["clusters"] = strings.Replace(cfg["clusters"], `"name":"alpha"`, `"logDebug":true,"name":"alpha"`, 1)
	mocktest.SetConfig(t, cfg, clusterSecrets...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"alpha-syncagent": true, "bravo-syncagent": false}
	for _, r := range rec.All() {
		if r.Type != "kubernetes:apps/v1:Deployment" {
			continue
		}
		args := mocktest.Strings(mocktest.Dig(r.Input(), "spec", "template", "spec", "containers", 0, "args"))
		for agent, debug := range want {
			if slices.Contains(args, "--agent-name="+agent) {
				if slices.Contains(args, "--log-debug") != debug {
					t.Errorf("%s: --log-debug in %v, want %v", agent, args, debug)
				}
				delete(want, agent)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("no Deployment for %v", want)
	}
}

// TestClusterRuleLabels: each cluster's ServiceMonitor and PrometheusRule
// carry the labels its own Prometheus operator selects by — the stack's
// monitoring.ruleLabels unless the cluster names its own ({} for none) —
// and its Prometheus' namespace may scrape the agent.
func TestClusterRuleLabels(t *testing.T) {
	cfg := clusterConfig("alpha", "bravo", "charlie")
	cfg["monitoring"] = `{"enabled":true,"ruleLabels":{"release":"kps"}}`
	cfg["clusters"] = strings.Replace(cfg["clusters"], `"name":"bravo"`, `"monitoring":{"namespace":"observability","ruleLabels":{"release":"edge","team":"platform"}},"name":"bravo"`, 1)
	cfg["clusters"] = strings.Replace(cfg["clusters"], `"name":"charlie"`, `"monitoring":{"ruleLabels":{}},"name":"charlie"`, 1)
	mocktest.SetConfig(t, cfg, clusterSecrets...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cluster, release, namespace string
	}{{"alpha", "kps", "monitoring"}, {"bravo", "edge", "observability"}, {"charlie", "", "monitoring"}} {
		for suffix, typ := range map[string]string{"-servicemonitor": "ServiceMonitor", "-rules": "PrometheusRule"} {
			labels, _ := mocktest.Dig(rec.Named(t, "kubernetes:monitoring.coreos.com/v1:"+typ, "agent-"+tt.cluster+suffix).Input(), "metadata", "labels").(map[string]any)
			if got, _ := labels["release"].(string); got != tt.release {
				t.Errorf("%s%s: release=%q, want %q (labels %v)", tt.cluster, suffix, got, tt.release, labels)
			}
		}
		np := rec.Named(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "agent-"+tt.cluster+"-netpol")
		if got := fmt.Sprint(mocktest.Dig(np.Input(), "spec", "ingress", 0, "from", 0, "namespaceSelector", "matchLabels")); !strings.Contains(got, tt.namespace) {
			t.Errorf("%s: metrics ingress from %s, want namespace %s", tt.cluster, got, tt.namespace)
		}
	}
}

// TestStackRuleLabelsCheckedOnce: a bad monitoring.ruleLabels is reported
// at that key, not again at every cluster that inherits it.
func TestStackRuleLabelsCheckedOnce(t *testing.T) {
	cfg := clusterConfig("alpha", "bravo")
	cfg["monitoring"] = `{"enabled":true,"ruleLabels":{"release":"kube prometheus"}}`
	mocktest.SetConfig(t, cfg, clusterSecrets...)
	_, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), `config kcp-tmc:monitoring.ruleLabels[release]: invalid value "kube prometheus": want a label value`) ||
		strings.Contains(err.Error(), "clusters[") {
		t.Errorf("err = %v\nwant monitoring.ruleLabels[release] refused once", err)
	}
}

// TestMonitoringNamespace: with Prometheus in a namespace of the user's
// (monitoring.namespace), every NetworkPolicy of the stack lets that
// namespace scrape — kcp, etcd, the ingress controller, the log shipper, the
// agents on their clusters — and none still names `monitoring`; the
// Alertmanager config and the kube-prometheus-stack install go there too.
func TestMonitoringNamespace(t *testing.T) {
	cfg := clusterConfig("alpha")
	cfg["monitoring"] = `{"enabled":true,"namespace":"observability"}`
	cfg["logging"] = `{"enabled":true,"elasticsearchHost":"logs.example.com"}`
	cfg["ingress"] = `{"mode":"passthrough","installController":true}`
	mocktest.SetConfig(t, cfg, clusterSecrets...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{} // policy name → open to observability
	for _, r := range rec.OfType("kubernetes:networking.k8s.io/v1:NetworkPolicy") {
		np := mocktest.Decode[networkingv1.NetworkPolicy](t, r.Input())
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.From {
				if p.NamespaceSelector == nil {
					continue
				}
				switch ns := p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; ns {
				case "monitoring":
					t.Errorf("NetworkPolicy %s/%s still admits namespace monitoring", np.Namespace, np.Name)
				case "observability":
					scraped[np.Name] = true
				}
			}
		}
	}
	for _, name := range []string{"allow-kcp", "allow-etcd", "allow-kcp-front-proxy", "allow-ingress-nginx", "allow-fluent-bit", "allow-api-syncagent"} {
		if !scraped[name] {
			t.Errorf("%s does not let namespace observability in (open to it: %v)", name, scraped)
		}
	}
	secret := rec.Named(t, "kubernetes:core/v1:Secret", "monitoring-alertmanager")
	if ns := mocktest.Dig(secret.Input(), "metadata", "namespace"); ns != "observability" {
		t.Errorf("Alertmanager config Secret in namespace %v, want observability", ns)
	}
	if ns := mocktest.Dig(rec.Named(t, "kubernetes:core/v1:Namespace", "monitoring-namespace").Input(), "metadata", "name"); ns != "observability" {
		t.Errorf("kube-prometheus-stack installed into namespace %v, want observability", ns)
	}
}

// TestClusterMonitoringArgs: what each clusters[].monitoring setting gives
// the cluster's agent, the stack's monitoring keys filling in what it leaves
// unset.
func TestClusterMonitoringArgs(t *testing.T) {
	off, on := false, true
	cfg, err := Profile("staging")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Monitoring.Namespace, cfg.Monitoring.RuleLabels = "observability", map[string]string{"release": "kps"}
	for _, tt := range []struct {
		name        string
		m           ClusterMonitoring
		unmonitored bool
		namespace   string
		labels      map[string]string
	}{
		{"unset: the stack's", ClusterMonitoring{}, false, "observability", map[string]string{"release": "kps"}},
		{"its own", ClusterMonitoring{Enabled: &on, Namespace: "prom", RuleLabels: map[string]string{"release": "edge"}}, false, "prom", map[string]string{"release": "edge"}},
		{"no labels", ClusterMonitoring{RuleLabels: map[string]string{}}, false, "observability", map[string]string{}},
		{"no Prometheus operator", ClusterMonitoring{Enabled: &off}, true, "observability", map[string]string{"release": "kps"}},
		{"the stack's monitoring off", ClusterMonitoring{}, true, "observability", map[string]string{"release": "kps"}},
		{"the stack's monitoring off, the cluster's on", ClusterMonitoring{Enabled: &on}, false, "observability", map[string]string{"release": "kps"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg.Monitoring.Enabled = !strings.HasPrefix(tt.name, "the stack's monitoring off")
			a := AgentArgs(cfg, Cluster{Name: "edge", Monitoring: tt.m})
			if a.Unmonitored != tt.unmonitored || a.PrometheusNamespace != tt.namespace || fmt.Sprint(a.RuleLabels) != fmt.Sprint(tt.labels) {
				t.Errorf("unmonitored %v, namespace %q, labels %v; want %v, %q, %v", a.Unmonitored, a.PrometheusNamespace, a.RuleLabels, tt.unmonitored, tt.namespace, tt.labels)
			}
		})
	}
}

// TestAgentFrontDoorFollowsTheMode: an agent on kcp's own cluster may open
// the connection its kcp address turns into there — to the front-proxy's
// pods behind kcp-tmc's load balancer, to a Gateway's data plane (any pod,
// any port: the implementation's), to ingress-nginx's controller.
func TestAgentFrontDoorFollowsTheMode(t *testing.T) {
	cfg, err := Profile("prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode    string
		gateway *ingress.Gateway
		want    netpol.Flow
	}{
		{ingress.ModeLoadBalancer, nil, kcp.FrontProxyPods(cfg.Namespace)},
		{ingress.ModeGateway, &ingress.Gateway{ClassName: "traefik", Port: 8443}, netpol.Flow{Namespace: "*", Ports: []int{8443}}},
		{ingress.ModeGateway, &ingress.Gateway{Name: "shared", Namespace: "gateways"}, netpol.Flow{Namespace: "*"}},
		{ingress.ModePassthrough, nil, netpol.Flow{Namespace: ingress.ControllerNamespace}},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			cfg.Ingress.Mode, cfg.Ingress.Gateway = tt.mode, tt.gateway
			if got := AgentArgs(cfg, Cluster{Name: "edge"}).FrontDoor; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FrontDoor = %+v, want %+v", got, tt.want)
			}
		})
	}
}
