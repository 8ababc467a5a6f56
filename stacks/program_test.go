package stacks

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

const providerType = "pulumi:providers:kubernetes"

func TestProgramDevRendersIntoProject(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "target": `{"mode":"render","renderDir":"rendered/dev"}`})
	rec, err := mocktest.Run(t, "dev", Program)
	if err != nil {
		t.Fatal(err)
	}
	p := rec.Named(t, providerType, "kubernetes")
	dir, _ := p.Input()["renderYamlToDirectory"].(string)
	if !filepath.IsAbs(dir) || !strings.HasSuffix(dir, filepath.Join("rendered", "dev")) {
		t.Errorf("renderYamlToDirectory = %q, want an absolute path ending in rendered/dev", dir)
	}
	ns := rec.Named(t, "kubernetes:core/v1:Namespace", "platform-namespace")
	labels := ns.Input()["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["pod-security.kubernetes.io/enforce"] != "restricted" || labels["kcp-tmc.io/environment"] != "dev" {
		t.Errorf("namespace labels = %v", labels)
	}
	if ns.RetainOnDelete {
		t.Error("dev namespace must be removable by destroy")
	}
	// kcp's own RBAC goes to kcp's root workspace (rendered under kcp/),
	// everything else to the hosting cluster.
	kcpRoot, _ := rec.Named(t, providerType, "kcp-root").Input()["renderYamlToDirectory"].(string)
	if !strings.HasSuffix(kcpRoot, filepath.Join("rendered", "dev", "kcp-root")) {
		t.Errorf("kcp provider renders into %q", kcpRoot)
	}
	onKCP := map[string]bool{}
	for _, r := range rec.All() {
		switch {
		case !r.Custom || r.Type == providerType || strings.HasSuffix(r.Provider, "::kubernetes::kubernetes-id"):
		case strings.HasSuffix(r.Provider, "::pulumi:providers:kubernetes::kcp-root::kcp-root-id"):
			onKCP[r.Type+" "+r.Name] = true
		default:
			t.Errorf("%s %s does not use the stack's kubernetes provider (provider %q)", r.Type, r.Name, r.Provider)
		}
	}
	if want := map[string]bool{"kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding kcp-metrics-reader": true,
		"kubernetes:rbac.authorization.k8s.io/v1:ClusterRole kcp-metrics-reader-role": true}; !reflect.DeepEqual(onKCP, want) {
		t.Errorf("objects in kcp = %v, want %v", onKCP, want)
	}
	// Destroy deletes what is in kcp while kcp is still reachable: the kcp
	// provider depends on the front door (found on a real node: with the
	// LoadBalancer Service gone first, deleting the role failed).
	deps := strings.Join(rec.Named(t, providerType, "kcp-root").DependsOn, " ")
	for _, want := range []string{"kcp-tmc:ingress:Ingress$kubernetes:core/v1:Service::ingress-lb", "Deployment::kcp-server", "Deployment::kcp-front-proxy"} {
		if !strings.Contains(deps, want) {
			t.Errorf("the kcp provider does not depend on %s (it depends on %s)", want, deps)
		}
	}
}

func TestProgramProdUsesSecretKubeconfigAndRetainsNamespace(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "prod", "kubeconfig": "apiVersion: v1\nkind: Config\n", "backup": testIRSA, "slackWebhookUrl": "https://hooks.slack.com/services/T/B/X"}, "kubeconfig", "slackWebhookUrl")
	rec, err := mocktest.Run(t, "prod", Program)
	if err != nil {
		t.Fatal(err)
	}
	kc := rec.Named(t, providerType, "kubernetes").Inputs["kubeconfig"]
	if !kc.IsSecret() {
		t.Errorf("kubeconfig reaches the provider as %v, want a secret", kc)
	}
	if !rec.Named(t, "kubernetes:core/v1:Namespace", "platform-namespace").RetainOnDelete {
		t.Error("prod namespace (holding etcd volumes) would be deleted by destroy")
	}
}

func TestProgramBadConfigRegistersNothing(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "prod", "etcd": `{"replicas":2,"storageSize":"100Gb"}`})
	rec, err := mocktest.Run(t, "prod", Program)
	if err == nil {
		t.Fatal("program accepted an invalid prod config")
	}
	for _, want := range []string{"kcp-tmc:etcd.replicas", "kcp-tmc:etcd.storageSize", "kcp-tmc:kubeconfig"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if n := len(rec.All()); n != 0 {
		t.Errorf("%d resources registered before validation failed: a half-applied stack", n)
	}
}

// TestProgramRefusesUnknownKeys: under `pulumi up` the program sees its
// config in PULUMI_CONFIG; a misspelled key stops it before any resource.
func TestProgramRefusesUnknownKeys(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "domain": "dev.example.com",
		"target": `{"mode":"render","renderDir":"out"}`, "etdc": `{"replicas":3}`, "kubernetes:context": "x"})
	rec, err := mocktest.Run(t, "dev", Program)
	if err == nil || !strings.Contains(err.Error(), "config kcp-tmc:etdc: unknown key; the nearest known key is kcp-tmc:etcd") {
		t.Fatalf("err = %v, want kcp-tmc:etdc refused", err)
	}
	if strings.Contains(err.Error(), "kubernetes:context") {
		t.Errorf("a provider's key was refused: %v", err)
	}
	if n := len(rec.All()); n != 0 {
		t.Errorf("%d resources registered before validation failed", n)
	}
}

// TestNewProgramFromGoConfig: an embedder's Go Config is validated up front
// (bad values named by key) and its kubeconfig is registered as a secret.
func TestNewProgramFromGoConfig(t *testing.T) {
	bad, _ := Profile("prod")
	bad.Etcd.Replicas = 2
	if _, err := NewProgram(*bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "kcp-tmc:etcd.replicas") {
		t.Fatalf("NewProgram(etcd.replicas=2) err = %v, want an error naming kcp-tmc:etcd.replicas", err)
	}
	good, _ := Profile("staging")
	good.Kubeconfig = "apiVersion: v1\nkind: Config\n"
	good.Backup.OIDCProviderARN, good.Backup.OIDCIssuer = "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/T", "oidc.example/id/T"
	program, err := NewProgram(*good, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := mocktest.Run(t, "staging", program)
	if err != nil {
		t.Fatal(err)
	}
	if kc := rec.Named(t, providerType, "kubernetes").Inputs["kubeconfig"]; !kc.IsSecret() {
		t.Errorf("the kubeconfig from a Go Config reaches the provider as %v, want a secret", kc)
	}
}

// TestStacksPerEnvironment checks what each environment deploys: dev one
// etcd member on an existing `standard` class, prod three members and three
// kcp replicas one per zone on a created, encrypted fast-ssd class.
func TestStacksPerEnvironment(t *testing.T) {
	tests := []struct {
		env              string
		config           map[string]string
		etcd, kcp, proxy float64
		class, size      string
		attributes       string
		createsClass     bool
		zoneSpread       bool
		kcpCPU           string
	}{
		{"dev", map[string]string{"environment": "dev"}, 1, 1, 1, "standard", "20Gi", "", false, false, "250m"},
		{"prod", map[string]string{"environment": "prod", "kubeconfig": "apiVersion: v1", "backup": testIRSA, "slackWebhookUrl": "https://hooks.slack.com/services/T/B/X",
			"storage": `{"modifyVolumes":true}`}, 3, 3, 3, "fast-ssd", "100Gi", "fast-ssd-gp3-6000iops-250mibps", true, true, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			mocktest.SetConfig(t, tt.config, "kubeconfig", "slackWebhookUrl")
			rec, err := mocktest.Run(t, tt.env, ProgramIn(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			sts := rec.Object(t, "kubernetes:apps/v1:StatefulSet", "etcd")
			kcpDeploy := rec.Object(t, "kubernetes:apps/v1:Deployment", "kcp")
			proxy := rec.Object(t, "kubernetes:apps/v1:Deployment", "kcp-front-proxy")
			got := []any{mocktest.Dig(sts, "spec", "replicas"), mocktest.Dig(kcpDeploy, "spec", "replicas"), mocktest.Dig(proxy, "spec", "replicas")}
			if want := []any{tt.etcd, tt.kcp, tt.proxy}; !reflect.DeepEqual(got, want) {
				t.Errorf("etcd/kcp/front-proxy replicas = %v, want %v", got, want)
			}
			pvc := rec.Object(t, "kubernetes:core/v1:PersistentVolumeClaim", "data-etcd-0")
			if mocktest.Dig(pvc, "spec", "storageClassName") != tt.class || mocktest.Dig(pvc, "spec", "resources", "requests", "storage") != tt.size {
				t.Errorf("etcd claim = %v", pvc["spec"])
			}
			// The volumes' attributes: the claims and the StatefulSet's
			// template (what a lost member's new claim is made from).
			for what, spec := range map[string]any{"claim": pvc["spec"], "template": mocktest.Dig(sts, "spec", "volumeClaimTemplates", 0, "spec")} {
				if got, _ := mocktest.Dig(spec, "volumeAttributesClassName").(string); got != tt.attributes {
					t.Errorf("etcd %s's volumeAttributesClassName = %q, want %q", what, got, tt.attributes)
				}
			}
			if created := len(rec.OfType("kubernetes:storage.k8s.io/v1:StorageClass")) == 1; created != tt.createsClass {
				t.Errorf("StorageClass created = %v, want %v", created, tt.createsClass)
			}
			key := mocktest.Dig(kcpDeploy, "spec", "template", "spec", "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey")
			if (key == "topology.kubernetes.io/zone") != tt.zoneSpread {
				t.Errorf("kcp hard anti-affinity on %v, zone spread wanted: %v", key, tt.zoneSpread)
			}
			if got := mocktest.Dig(kcpDeploy, "spec", "template", "spec", "containers", 0, "resources", "requests", "cpu"); got != tt.kcpCPU {
				t.Errorf("kcp CPU request = %v, want %s", got, tt.kcpCPU)
			}
			if len(rec.OfType("kubernetes:policy/v1:PodDisruptionBudget")) != 3 {
				t.Error("want PDBs for etcd, kcp and the front-proxy")
			}
		})
	}
}

// TestHomeWorkspaces: kcp's home workspaces (on by kcp's own default) stay
// off unless kcp-tmc:kcp.homeWorkspaces turns them on.
func TestHomeWorkspaces(t *testing.T) {
	for _, tc := range []struct {
		kcp, want string
	}{
		{`{}`, "--enable-home-workspaces=false"},
		{`{"homeWorkspaces":true}`, "--enable-home-workspaces=true"},
	} {
		mocktest.SetConfig(t, map[string]string{"environment": "dev", "target": `{"mode":"render","renderDir":"rendered/dev"}`, "kcp": tc.kcp})
		rec, err := mocktest.Run(t, "dev", Program)
		if err != nil {
			t.Fatal(err)
		}
		d := rec.Object(t, "kubernetes:apps/v1:Deployment", "kcp")
		args := fmt.Sprint(mocktest.Dig(d, "spec", "template", "spec", "containers", 0, "args"))
		if !strings.Contains(args, tc.want) || !strings.Contains(args, "--batteries-included=workspace-types") {
			t.Errorf("kcp %s: args %s lack %s or the explicit batteries", tc.kcp, args, tc.want)
		}
	}
}

// TestOnOwnStack: the program's body runs on its own goroutine and what it
// returns — or a panic, as an error naming it — comes back to the caller.
func TestOnOwnStack(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fn   func() error
		want string
	}{
		{"nil", func() error { return nil }, ""},
		{"error", func() error { return boom }, "boom"},
		{"panic", func() error { panic("bad index") }, "program panicked: bad index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := onOwnStack(tc.fn)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("onOwnStack = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestEveryKubernetesObjectNamed: every Kubernetes object of every stack
// file, and of a prod stack's agents, has a name of its own (a Helm
// release too), never one the provider picks with a random suffix. An up after a killed one applies the
// same objects again by name, and `kcp-tmc up --skip-checkpoints` is
// refused for any other (automation.NotRedoable) — through providers that
// upsert (pulumi-kubernetes ≥ v4.29 fails the create of an existing object
// otherwise).
func TestEveryKubernetesObjectNamed(t *testing.T) {
	type stackConfig struct {
		stack  string
		config func(t *testing.T) (map[string]string, []string)
	}
	cases := map[string]stackConfig{
		"prod with clusters": {"prod", func(*testing.T) (map[string]string, []string) { return clusterConfig("a", "b"), clusterSecrets }},
	}
	for _, stack := range Environments {
		cases[stack] = stackConfig{stack, func(t *testing.T) (map[string]string, []string) { return stackFileConfig(t, stack) }}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, secrets := c.config(t)
			mocktest.SetConfig(t, cfg, secrets...)
			rec, err := mocktest.Run(t, c.stack, ProgramIn(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			objects, providers := 0, 0
			for _, r := range rec.All() {
				if r.Type == providerType {
					providers++
					if v := r.Input()["upsertExistingObjects"]; v != true && v != "true" {
						t.Errorf("provider %s: upsertExistingObjects = %v, want true: an up after a killed one could not apply its objects again", r.Name, v)
					}
				}
				if !r.Custom || !strings.HasPrefix(r.Type, "kubernetes:") {
					continue
				}
				objects++
				path := []any{"metadata", "name"}
				if strings.HasPrefix(r.Type, "kubernetes:helm.sh/") {
					path = []any{"name"} // a release's own name
				}
				if name, _ := mocktest.Dig(r.Input(), path...).(string); name == "" {
					t.Errorf("%s %s has no %v: the provider would pick one, a new one on every create", r.Type, r.Name, path)
				}
			}
			if objects < 20 || providers == 0 {
				t.Errorf("%d Kubernetes objects and %d providers, want the stack's", objects, providers)
			}
		})
	}
}

// TestWarnings: a valid configuration that would surprise its owner is
// told so on every preview; the checked-in stacks say only what applies.
func TestWarnings(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*Config)
		want   []string // fragments, one per warning
	}{
		{"dev", func(*Config) {}, nil},
		{"retired ingress-nginx", func(c *Config) { c.Ingress.Mode = "passthrough" }, []string{"ingress.mode passthrough relies on ingress-nginx"}},
		{"installed Alertmanager without a receiver", func(c *Config) { c.Monitoring.InstallStack = true },
			[]string{"installs an Alertmanager that sends alerts nowhere"}},
		{"installed Alertmanager with Slack", func(c *Config) {
			c.Monitoring.InstallStack, c.Monitoring.SlackWebhookURL = true, "https://hooks.slack.com/services/T/B/X"
		}, nil},
		{"monitoring off", func(c *Config) { c.Monitoring.InstallStack, c.Monitoring.Enabled = true, false }, nil},
		{"volumes not modified", func(c *Config) { c.Storage.Create, c.Storage.ModifyVolumes = true, new(bool) },
			[]string{"storage.volumeType, iops and throughputMiBps reach only etcd volumes made after a change"}},
		{"volumes modified", func(c *Config) { c.Storage.Create, c.Storage.ModifyVolumes = true, new(true) }, nil},
		{"source ranges that leave out the deployer", func(c *Config) {
			c.Target.Mode, c.Cloud.Mode, c.Cloud.PublicEndpoint = TargetKubeconfig, "eks", true
			c.Cloud.PublicCIDRs, c.Ingress.SourceRanges = []string{"192.0.2.0/28", "203.0.113.8/29"}, []string{"203.0.113.0/24"}
		}, []string{"ingress.sourceRanges leaves out cloud.publicCidrs 192.0.2.0/28, from where this up reaches the EKS API"}},
		{"source ranges that cover the deployer", func(c *Config) {
			c.Target.Mode, c.Cloud.Mode, c.Cloud.PublicEndpoint = TargetKubeconfig, "eks", true
			c.Cloud.PublicCIDRs, c.Ingress.SourceRanges = []string{"192.0.2.0/28", "203.0.113.8/29"}, []string{"203.0.113.0/24", "192.0.2.0/24"}
		}, nil},
		{"source ranges, the kcp side reached inside the network", func(c *Config) {
			c.Target.Mode, c.Cloud.Mode, c.Cloud.PublicEndpoint = TargetKubeconfig, "eks", true
			c.Cloud.PublicCIDRs, c.Ingress.SourceRanges = []string{"192.0.2.0/28"}, []string{"203.0.113.0/24"}
			c.Target.KCPServer = "https://10.0.0.5:443"
		}, nil},
		{"volumes on a cluster of unknown version", func(c *Config) { c.Storage.Create = true },
			[]string{"on Kubernetes 1.34 or later set storage.modifyVolumes: true"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Profile("dev")
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(cfg)
			got := Warnings(cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q, want it to say %q", got[i], w)
				}
			}
		})
	}
}
