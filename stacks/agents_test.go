package stacks

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
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
				b, _ := json.Marshal(r.Input())
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
		{"seed knob the agents lack", func(c map[string]string) {
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
		{"cluster kubeconfigs in plaintext", func(c map[string]string) {}, `config kcp-tmc:clusterKubeconfigs: invalid value "<plaintext>"`},
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

// BenchmarkProdStack evaluates the prod stack under mocks with N clusters
// (seed KPI: 100+ clusters). Figures: README "Scale".
func BenchmarkProdStack(b *testing.B) {
	TuneGC() // as main.go and cmd/kcp-tmc do
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("c%04d", i)
			}
			mocktest.SetConfig(b, clusterConfig(names...), clusterSecrets...)
			dir := b.TempDir()
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
	// The first cluster's workspace keeps the provider name "kcp" it always had.
	for name, want := range map[string]string{"kcp-root": "https://kcp.example.com/clusters/root", "kcp": "https://kcp.example.com/clusters/root:compute",
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
		want := "::kcp::"
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
	for provider, ws := range map[string]string{"kcp": "compute", "kcp-root-team-b": "team-b"} {
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

// TestClustersInCertManagerMode: a stack with clusters needs no pulumi-tls
// (whose plugin a machine may not be able to fetch): the agents' keys are
// issued by cert-manager and copied by `kcp-tmc agent-identity`, so Pulumi
// manages no identity Secret and mints nothing.
func TestClustersInCertManagerMode(t *testing.T) {
	cfg := clusterConfig("alpha")
	delete(cfg, "tls") // prod's default: cert-manager
	mocktest.SetConfig(t, cfg, clusterSecrets...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.All() {
		if strings.HasPrefix(r.Type, "tls:") || r.Name == "agent-alpha-identity" {
			t.Errorf("%s %s registered in cert-manager mode", r.Type, r.Name)
		}
	}
	cert := rec.Object(t, "kubernetes:cert-manager.io/v1:Certificate", "syncer-client-alpha")
	if mocktest.Dig(cert, "spec", "secretName") != "syncer-client-alpha" {
		t.Errorf("the agent's certificate = %v", cert["spec"])
	}
	rec.Named(t, "kubernetes:apps/v1:Deployment", "agent-alpha-deployment")
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
