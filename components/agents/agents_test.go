package agents

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/internal/mocktest"
)

var deployments = Resource{Group: "apps", Version: "v1", Kind: "Deployment", Plural: "deployments"}
var services = Resource{Group: "", Version: "v1", Kind: "Service", Plural: "services"}

func args(cluster, kind string) Args {
	a := Args{Cluster: cluster, Kind: kind, KCPServer: "https://kcp.example.com", Workspace: "root:compute",
		Resources: []Resource{deployments, services}, Labels: map[string]string{"topology.kubernetes.io/region": "eu-west-1"},
		ClientCert: pulumi.String("CERT-" + cluster), ClientKey: pulumi.ToSecret(pulumi.String("KEY-" + cluster)).(pulumi.StringOutput),
		ServerCA: pulumi.String("CA")}
	if kind == KindTMCSyncer {
		a.Image = "ghcr.io/kcp-dev/contrib-tmc/syncer:0b1a2c3"
	}
	return a
}

// run deploys agents for several clusters in one program, as stacks does.
func run(t *testing.T, list ...Args) *mocktest.Recorder {
	t.Helper()
	return mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		kcp, err := kubernetes.NewProvider(ctx, "kcp", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		for _, a := range list {
			a.KCPProvider = kcp
			if _, err := NewAgent(ctx, "agent-"+a.Cluster, a); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestIdentitiesDifferPerCluster(t *testing.T) {
	rec := run(t, args("eu", KindSyncAgent), args("us", KindSyncAgent))
	users := map[string]string{}
	for _, s := range rec.OfType("kubernetes:core/v1:Secret") {
		if !s.Inputs["stringData"].IsSecret() && !s.Inputs["stringData"].ObjectValue()["kubeconfig"].IsSecret() {
			t.Errorf("%s: the kubeconfig (with its key) is not a Pulumi secret", s.Name)
		}
		var kc struct {
			Clusters []struct{ Cluster struct{ Server string } }
			Users    []struct {
				Name string
				User map[string]string
			}
		}
		if err := yaml.Unmarshal([]byte(mocktest.Dig(s.Input(), "stringData", "kubeconfig").(string)), &kc); err != nil {
			t.Fatal(err)
		}
		cert, _ := base64.StdEncoding.DecodeString(kc.Users[0].User["client-certificate-data"])
		users[kc.Users[0].Name] = string(cert)
		if kc.Clusters[0].Cluster.Server != "https://kcp.example.com/clusters/root:compute" {
			t.Errorf("server = %s", kc.Clusters[0].Cluster.Server)
		}
	}
	if users["syncer-client-eu"] != "CERT-eu" || users["syncer-client-us"] != "CERT-us" {
		t.Errorf("identities = %v: each cluster must carry its own certificate", users)
	}
}

func TestRBACNamesOnlyTheSyncedResources(t *testing.T) {
	for _, kind := range []string{KindSyncAgent, KindTMCSyncer} {
		t.Run(kind, func(t *testing.T) {
			rec := run(t, args("eu", kind))
			role := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kcp-tmc-"+kind+"-eu")
			synced := map[string]bool{}
			for _, r := range role["rules"].([]any) {
				for _, field := range []string{"apiGroups", "resources", "verbs"} {
					for _, v := range r.(map[string]any)[field].([]any) {
						if v == "*" {
							t.Errorf("wildcard in %s", field)
						}
					}
				}
				for _, res := range r.(map[string]any)["resources"].([]any) {
					if strings.Contains(strings.Join(toStrings(r.(map[string]any)["verbs"]), ","), "delete") {
						synced[res.(string)] = true
					}
				}
			}
			if !reflect.DeepEqual(synced, map[string]bool{"deployments": true, "services": true}) {
				t.Errorf("resources the agent may write = %v, want exactly deployments and services", synced)
			}
		})
	}
}

func TestAgentKinds(t *testing.T) {
	rec := run(t, args("eu", KindSyncAgent), args("us", KindTMCSyncer))
	sa := rec.Object(t, "kubernetes:apps/v1:Deployment", KindSyncAgent)
	saArgs := strings.Join(toStrings(mocktest.Dig(sa, "spec", "template", "spec", "containers", 0, "args")), " ")
	for _, want := range []string{"--agent-name=eu-syncagent", "--apiexport-ref=eu-export", "--enable-leader-election", "--kcp-kubeconfig="} {
		if !strings.Contains(saArgs, want) {
			t.Errorf("api-syncagent args lack %s: %s", want, saArgs)
		}
	}
	if mocktest.Dig(sa, "spec", "replicas") != float64(2) || mocktest.Dig(sa, "spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "path") != "/readyz" {
		t.Errorf("api-syncagent: 2 replicas with probes, got %v", sa["spec"])
	}
	rec.Object(t, "kubernetes:syncagent.kcp.io/v1alpha1:PublishedResource", "deployments.apps")
	sm := rec.Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", KindSyncAgent)
	if mocktest.Dig(sm, "spec", "jobLabel") != "app.kubernetes.io/name" || mocktest.Dig(sm, "spec", "endpoints", 0, "port") != "metrics" {
		t.Errorf("ServiceMonitor = %v: the alerts read job=\"api-syncagent\"", sm["spec"])
	}
	rules := fmt.Sprint(mocktest.Dig(rec.Object(t, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", KindSyncAgent+"-rules"), "spec", "groups"))
	for _, alert := range []string{"SyncerHighErrorRate", "SyncLatencyHigh", `job="api-syncagent"`} {
		if !strings.Contains(rules, alert) {
			t.Errorf("the agent's cluster lacks %s in its PrometheusRule: %s", alert, rules)
		}
	}
	if n := len(rec.OfType("kubernetes:monitoring.coreos.com/v1:PrometheusRule")); n != 1 {
		t.Errorf("%d PrometheusRules: only api-syncagent has metrics (the TMC syncer has none)", n)
	}
	rec.Object(t, "kubernetes:apis.kcp.io/v1alpha1:APIExport", "eu-export")

	ts := rec.Object(t, "kubernetes:apps/v1:Deployment", KindTMCSyncer)
	tsArgs := strings.Join(toStrings(mocktest.Dig(ts, "spec", "template", "spec", "containers", 0, "args")), " ")
	// The uid kcp assigned the SyncTarget (the mocks answer like the apiserver).
	for _, want := range []string{"--sync-target-name=us", "--sync-target-uid=uid-agent-us-synctarget", "--resources=deployments.apps", "--resources=services", "--qps=20", "--burst=30"} {
		if !strings.Contains(tsArgs, want) {
			t.Errorf("tmc-syncer args lack %s: %s", want, tsArgs)
		}
	}
	if mocktest.Dig(ts, "spec", "strategy", "type") != "Recreate" || mocktest.Dig(ts, "spec", "replicas") != float64(1) {
		t.Error("tmc-syncer must run one replica, replaced not rolled")
	}
	st := rec.Object(t, "kubernetes:workload.kcp.io/v1alpha1:SyncTarget", "us")
	if mocktest.Dig(st, "metadata", "labels", "topology.kubernetes.io/region") != "eu-west-1" {
		t.Errorf("SyncTarget labels = %v", mocktest.Dig(st, "metadata", "labels"))
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Args)
		want   string
	}{
		{"name with capitals", func(a *Args) { a.Cluster = "EU" }, `Cluster "EU"`},
		{"name starting with a digit", func(a *Args) { a.Cluster = "1eu" }, `Cluster "1eu"`},
		{"unknown agent", func(a *Args) { a.Kind = "karmada" }, `Kind "karmada"`},
		{"qps for api-syncagent", func(a *Args) { a.QPS = 50 }, "QPS/Burst 50/0"},
		{"no resources", func(a *Args) { a.Resources = nil }, "Resources none"},
		{"resource without kind", func(a *Args) { a.Resources = []Resource{{Group: "apps", Version: "v1", Plural: "deployments"}} }, "Resources[0]"},
		{"duplicate resource", func(a *Args) { a.Resources = []Resource{deployments, deployments} }, "Resources[1]"},
		{"bad workspace", func(a *Args) { a.Workspace = "compute" }, "KCPServer/Workspace"},
		{"unpinned image", func(a *Args) { a.Image = "ghcr.io/kcp-dev/api-syncagent:latest" }, "Image"},
		{"two tmc-syncers", func(a *Args) { a.Kind, a.Image, a.Replicas = KindTMCSyncer, "x/syncer:1", 2 }, "Replicas 2"},
		{"tmc-syncer without image", func(a *Args) { a.Kind = KindTMCSyncer }, `Image ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := args("eu", KindSyncAgent)
			tt.mutate(&a)
			err := a.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

func TestKCPSideUsesTheKCPProvider(t *testing.T) {
	rec := run(t, args("eu", KindSyncAgent))
	for _, r := range rec.All() {
		kcpSide := strings.Contains(r.Name, "-apiexport") || strings.Contains(r.Name, "-kcp-")
		if r.Custom && kcpSide != strings.Contains(r.Provider, "::kcp::") {
			t.Errorf("%s %s goes through provider %q", r.Type, r.Name, r.Provider)
		}
	}
}
