package agents

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

var deployments = Resource{Group: "apps", Version: "v1", Kind: "Deployment", Plural: "deployments"}
var services = Resource{Group: "", Version: "v1", Kind: "Service", Plural: "services"}

func args(cluster, kind string) Args {
	a := Args{Cluster: cluster, Kind: kind, KCPServer: "https://kcp.example.com", Workspace: "root:compute",
		Resources: []Resource{deployments, services}, Labels: map[string]string{"topology.kubernetes.io/region": "eu-west-1"},
		ClientCert: pulumi.String("CERT-" + cluster), ClientKey: pulumi.ToSecret(pulumi.String("KEY-" + cluster)).(pulumi.StringOutput),
		ServerCA: pulumi.String("CA"), Identity: IdentityCertificate,
		Container: workload.Resources{Requests: workload.ResourceList{CPU: "100m", Memory: "128Mi", EphemeralStorage: "128Mi"}, Limits: workload.ResourceList{CPU: "500m", Memory: "512Mi", EphemeralStorage: "512Mi"}}}
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

// TestIdentitiesDifferPerCluster: each cluster's identity Secret carries
// its own certificate, the key only as a Pulumi secret, and the kubeconfig
// (a ConfigMap: no credential in it) points at the workspace with the
// Secret's files.
func TestIdentitiesDifferPerCluster(t *testing.T) {
	rec := run(t, args("eu", KindSyncAgent), args("us", KindSyncAgent))
	certs := map[string]string{}
	for _, s := range rec.OfType("kubernetes:core/v1:Secret") {
		if mocktest.Dig(s.Input(), "metadata", "name") != IdentitySecret {
			continue
		}
		if key := s.Inputs["stringData"]; !key.IsSecret() && !key.ObjectValue()["tls.key"].IsSecret() {
			t.Errorf("%s: the key is not a Pulumi secret", s.Name)
		}
		if mocktest.Dig(s.Input(), "type") != "kubernetes.io/tls" || mocktest.Dig(s.Input(), "stringData", "ca.crt") != "CA" {
			t.Errorf("%s: %v", s.Name, s.Input())
		}
		certs[s.Name] = fmt.Sprint(mocktest.Dig(s.Input(), "stringData", "tls.crt"))
	}
	if certs["agent-eu-identity"] != "CERT-eu" || certs["agent-us-identity"] != "CERT-us" {
		t.Errorf("identities = %v: each cluster must carry its own certificate", certs)
	}
	var kc struct {
		Clusters []struct{ Cluster map[string]string }
		Users    []struct {
			Name string
			User map[string]string
		}
	}
	cm := rec.Named(t, "kubernetes:core/v1:ConfigMap", "agent-eu-kubeconfig")
	if err := yaml.Unmarshal([]byte(fmt.Sprint(mocktest.Dig(cm.Input(), "data", "kubeconfig"))), &kc); err != nil {
		t.Fatal(err)
	}
	if kc.Clusters[0].Cluster["server"] != "https://kcp.example.com/clusters/root:compute" ||
		kc.Clusters[0].Cluster["certificate-authority"] != "/etc/kcp-agent/identity/ca.crt" ||
		kc.Users[0].Name != "syncer-client-eu" || kc.Users[0].User["client-key"] != "/etc/kcp-agent/identity/tls.key" {
		t.Errorf("kubeconfig = %+v", kc)
	}
}

// TestCopiedIdentity: in cert-manager mode Pulumi has no key to write, so
// no identity Secret is managed (kcp-tmc agent-identity copies it) and the
// agent still mounts it.
func TestCopiedIdentity(t *testing.T) {
	a := args("eu", KindSyncAgent)
	a.ClientCert, a.ClientKey, a.ServerCA, a.Identity = nil, nil, nil, IdentityCopied
	rec := run(t, a)
	for _, s := range rec.OfType("kubernetes:core/v1:Secret") {
		t.Errorf("Secret %s managed although the identity is copied", s.Name)
	}
	dep := rec.Object(t, "kubernetes:apps/v1:Deployment", KindSyncAgent)
	if mocktest.Dig(dep, "metadata", "annotations", "pulumi.com/skipAwait") != "true" {
		t.Error("the up that must come before agent-identity would wait for pods that wait for its Secret")
	}
	vols := fmt.Sprint(mocktest.Dig(dep, "spec", "template", "spec", "volumes"))
	if cl, _ := mocktest.Kubeconfig(t, mocktest.Dig(rec.Object(t, "kubernetes:core/v1:ConfigMap", "kcp-kubeconfig"), "data", "kubeconfig")); cl.CertificateAuthority != "/etc/kcp-agent/identity/ca.crt" {
		t.Errorf("kubeconfig does not verify kcp with the private CA: %+v", cl)
	}
	if !strings.Contains(vols, "secretName:"+IdentitySecret) {
		t.Errorf("the agent does not mount %s: %s", IdentitySecret, vols)
	}
}

// TestTokenIdentity: the agent's identity is a ServiceAccount of its own in
// its workspace whose token kcp issues into a token Secret (after the
// account, or kcp deletes it); the token reaches the cluster only as a
// Pulumi secret, beside the CA that verifies kcp, and the agent's
// kubeconfig reads it from the file (so a new token needs no restart). kcp
// grants the ServiceAccount, not a certificate's user.
func TestTokenIdentity(t *testing.T) {
	a := args("eu", KindSyncAgent)
	a.Identity, a.ClientCert, a.ClientKey = IdentityToken, nil, nil
	rec := run(t, a)
	sa := rec.Named(t, "kubernetes:core/v1:ServiceAccount", "agent-eu-kcp-sa")
	tok := rec.Named(t, "kubernetes:core/v1:Secret", "agent-eu-kcp-token")
	for _, r := range []mocktest.Resource{sa, tok} {
		if !strings.Contains(r.Provider, "::kcp::") || mocktest.Dig(r.Input(), "metadata", "namespace") != "default" {
			t.Errorf("%s is not in the workspace's default namespace through kcp's provider: %s %v", r.Name, r.Provider, r.Input())
		}
	}
	if mocktest.Dig(tok.Input(), "type") != "kubernetes.io/service-account-token" ||
		mocktest.Dig(tok.Input(), "metadata", "annotations", "kubernetes.io/service-account.name") != ServiceAccount("eu") ||
		!slices.ContainsFunc(tok.DependsOn, func(u string) bool { return strings.HasSuffix(u, "::agent-eu-kcp-sa") }) {
		t.Errorf("token Secret = %v, depends on %v", tok.Input(), tok.DependsOn)
	}
	onCluster := rec.Named(t, "kubernetes:core/v1:Secret", "agent-eu-token")
	if strings.Contains(onCluster.Provider, "::kcp::") {
		t.Errorf("the token Secret for the agent goes to kcp: %s", onCluster.Provider)
	}
	data := onCluster.Inputs["stringData"]
	if !data.ContainsSecrets() || mocktest.Dig(onCluster.Input(), "stringData", "token") != "TOKEN agent-eu-kcp-token" ||
		mocktest.Dig(onCluster.Input(), "stringData", "ca.crt") != "CA" || mocktest.Dig(onCluster.Input(), "metadata", "name") != TokenSecret {
		t.Errorf("token on the cluster = %v (secret: %v)", onCluster.Input(), data.ContainsSecrets())
	}
	cl, user := mocktest.Kubeconfig(t, mocktest.Dig(rec.Object(t, "kubernetes:core/v1:ConfigMap", "kcp-kubeconfig"), "data", "kubeconfig"))
	if user.TokenFile != "/etc/kcp-agent/identity/token" || cl.CertificateAuthority != "/etc/kcp-agent/identity/ca.crt" {
		t.Errorf("kubeconfig: cluster %+v, user %+v", cl, user)
	}
	dep := rec.Named(t, "kubernetes:apps/v1:Deployment", "agent-eu-deployment")
	if vols := fmt.Sprint(mocktest.Dig(dep.Input(), "spec", "template", "spec", "volumes")); !strings.Contains(vols, "secretName:"+TokenSecret) {
		t.Errorf("the agent does not mount %s: %s", TokenSecret, vols)
	}
	if !slices.ContainsFunc(dep.DependsOn, func(u string) bool { return strings.HasSuffix(u, "::agent-eu-token") }) {
		t.Errorf("the Deployment does not wait for its token: %v", dep.DependsOn)
	}
	if mocktest.Dig(dep.Input(), "metadata", "annotations", "pulumi.com/skipAwait") != nil {
		t.Error("a token identity is there in the same up: the agent's rollout must be awaited")
	}
	for _, name := range []string{"kcp-tmc:agent:eu", "kcp-tmc:agent:eu:access"} {
		b := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", name)
		if s := mocktest.Dig(b, "subjects", 0); fmt.Sprint(s) != fmt.Sprint(map[string]any{"kind": "ServiceAccount", "name": ServiceAccount("eu"), "namespace": "default"}) {
			t.Errorf("%s subjects = %v", name, mocktest.Dig(b, "subjects"))
		}
	}
	for _, s := range rec.OfType("kubernetes:core/v1:Secret") {
		if mocktest.Dig(s.Input(), "metadata", "name") == IdentitySecret {
			t.Error("a token identity also writes a certificate identity")
		}
	}
}

func TestRBACNamesOnlyTheSyncedResources(t *testing.T) {
	for _, kind := range []string{KindSyncAgent} {
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
					if strings.Contains(strings.Join(mocktest.Strings(r.(map[string]any)["verbs"]), ","), "delete") {
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

// TestSyncAgent: api-syncagent v0.7.0's own flags (an endpoint slice, not
// the removed --apiexport-ref), its CRD on its cluster before any
// PublishedResource, its metrics and alerts, and kcp's side with
// workspace access.
func TestSyncAgent(t *testing.T) {
	rec := run(t, args("eu", KindSyncAgent))
	sa := rec.Object(t, "kubernetes:apps/v1:Deployment", KindSyncAgent)
	saArgs := mocktest.Strings(mocktest.Dig(sa, "spec", "template", "spec", "containers", 0, "args"))
	want := []string{"--namespace=kcp-agent", "--agent-name=eu-syncagent", "--kcp-kubeconfig=/etc/kcp-agent/kcp/kubeconfig",
		"--apiexportendpointslice-ref=eu-export", "--enable-leader-election", "--metrics-address=0.0.0.0:8085", "--log-format=JSON"}
	if !reflect.DeepEqual(saArgs, want) {
		t.Errorf("api-syncagent args = %v, want %v", saArgs, want)
	}
	if mocktest.Dig(sa, "spec", "replicas") != float64(2) || mocktest.Dig(sa, "spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "path") != "/metrics" {
		t.Errorf("api-syncagent: 2 replicas with probes, got %v", sa["spec"])
	}
	if img := mocktest.Dig(sa, "spec", "template", "spec", "containers", 0, "image"); img != "ghcr.io/kcp-dev/api-syncagent:v0.7.0" {
		t.Errorf("image %v: v0.7.0 is the release built for kcp 0.32", img)
	}
	crd := rec.Named(t, "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", "agent-eu-publishedresources-crd")
	if mocktest.Dig(crd.Input(), "metadata", "name") != "publishedresources.syncagent.kcp.io" ||
		mocktest.Dig(crd.Input(), "spec", "versions", 0, "name") != "v1alpha1" {
		t.Errorf("PublishedResource CRD = %v", crd.Input()["metadata"])
	}
	pr := rec.Named(t, "kubernetes:syncagent.kcp.io/v1alpha1:PublishedResource", "agent-eu-published-deployments-apps")
	if !slices.ContainsFunc(pr.DependsOn, func(urn string) bool { return strings.HasSuffix(urn, "::"+crd.Name) }) {
		t.Errorf("PublishedResource does not wait for its CRD: depends on %v", pr.DependsOn)
	}
	sm := rec.Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", KindSyncAgent)
	if mocktest.Dig(sm, "spec", "jobLabel") != "app.kubernetes.io/name" || mocktest.Dig(sm, "spec", "endpoints", 0, "port") != "metrics" {
		t.Errorf("ServiceMonitor = %v: the alerts read job=\"api-syncagent\"", sm["spec"])
	}
	rules := fmt.Sprint(mocktest.Dig(rec.Object(t, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", KindSyncAgent+"-rules"), "spec", "groups"))
	// AgentRewatchFailing watches the CronJob by the name this package gives it.
	for _, alert := range []string{"SyncerHighErrorRate", "SyncLatencyHigh", `job="api-syncagent"`, "AgentRewatchFailing",
		`cronjob=~"` + RewatchName(args("eu", KindSyncAgent).WithDefaults()) + `"`} {
		if !strings.Contains(rules, alert) {
			t.Errorf("the agent's cluster lacks %s in its PrometheusRule: %s", alert, rules)
		}
	}
	rec.Object(t, "kubernetes:apis.kcp.io/v1alpha1:APIExport", "eu-export")
	access := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "kcp-tmc:agent:eu:access")
	if mocktest.Dig(access, "roleRef", "name") != WorkspaceAccessRole || mocktest.Dig(access, "subjects", 0, "name") != "syncer-client-eu" {
		t.Errorf("workspace access binding = %v", access)
	}
}

// TestRewatch: the rewatch CronJob annotates the agent's endpoint slice in
// kcp every five minutes with the agent's own kubeconfig and identity, a
// new value each run, its image pulled once (not 288 times a day); its pods are not the agent's (no Deployment, PDB or
// policy of the agent selects them) and carry no token for their cluster;
// kcp lets the agent patch its own slice and nothing else.
func TestRewatch(t *testing.T) {
	for _, identity := range []string{IdentityCertificate, IdentityToken} {
		t.Run(identity, func(t *testing.T) {
			a := args("eu", KindSyncAgent)
			if identity == IdentityToken {
				a.Identity, a.ClientCert, a.ClientKey = IdentityToken, nil, nil
			}
			rec := run(t, a)
			cj := rec.Object(t, "kubernetes:batch/v1:CronJob", RewatchName(a.WithDefaults()))
			if mocktest.Dig(cj, "spec", "schedule") != RewatchSchedule || mocktest.Dig(cj, "spec", "concurrencyPolicy") != "Forbid" {
				t.Errorf("CronJob spec = %v", cj["spec"])
			}
			pod := mocktest.Dig(cj, "spec", "jobTemplate", "spec", "template", "spec")
			c := mocktest.Dig(pod, "containers", 0)
			want := []string{"--kubeconfig=/etc/kcp-agent/kcp/kubeconfig", "annotate", "--overwrite", "apiexportendpointslices.apis.kcp.io", "eu-export", RewatchAnnotation + "=$(POD_NAME)"}
			if got := mocktest.Strings(mocktest.Dig(c, "args")); !reflect.DeepEqual(got, want) {
				t.Errorf("args = %v, want %v", got, want)
			}
			if mocktest.Dig(c, "image") != "registry.k8s.io/kubectl:v1.34.4" || mocktest.Dig(c, "imagePullPolicy") != "IfNotPresent" || mocktest.Dig(c, "env", 0, "name") != "POD_NAME" ||
				mocktest.Dig(c, "env", 0, "valueFrom", "fieldRef", "fieldPath") != "metadata.name" {
				t.Errorf("container = %v: kubectl, with the pod's name as the annotation's value", c)
			}
			// Created after the identity Secret its pods mount.
			secret := map[string]string{IdentityCertificate: "agent-eu-identity", IdentityToken: "agent-eu-token"}[identity]
			if deps := rec.Named(t, "kubernetes:batch/v1:CronJob", "agent-eu-rewatch").DependsOn; !slices.ContainsFunc(deps, func(urn string) bool { return strings.HasSuffix(urn, "::"+secret) }) {
				t.Errorf("the rewatch CronJob does not wait for Secret %s: depends on %v", secret, deps)
			}
			if mocktest.Dig(pod, "automountServiceAccountToken") != false {
				t.Errorf("the rewatch pod mounts a token for its cluster: %v", pod)
			}
			// The same kubeconfig and identity as the agent's pods.
			agentPod := mocktest.Dig(rec.Object(t, "kubernetes:apps/v1:Deployment", KindSyncAgent), "spec", "template", "spec")
			for _, v := range []int{0, 1} {
				if !reflect.DeepEqual(mocktest.Dig(pod, "volumes", v), mocktest.Dig(agentPod, "volumes", v)) {
					t.Errorf("volume %d = %v, the agent's %v", v, mocktest.Dig(pod, "volumes", v), mocktest.Dig(agentPod, "volumes", v))
				}
			}
			labels := mocktest.Dig(cj, "spec", "jobTemplate", "spec", "template", "metadata", "labels").(map[string]any)
			selector := mocktest.Dig(rec.Object(t, "kubernetes:apps/v1:Deployment", KindSyncAgent), "spec", "selector", "matchLabels").(map[string]any)
			if labels["app.kubernetes.io/name"] == selector["app.kubernetes.io/name"] {
				t.Errorf("the rewatch pods' labels %v match the agent's selector %v", labels, selector)
			}
			var patch []string
			for _, r := range mocktest.List(mocktest.Dig(rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kcp-tmc:agent:eu"), "rules")) {
				if slices.Contains(mocktest.Strings(mocktest.Dig(r, "verbs")), "patch") && slices.Contains(mocktest.Strings(mocktest.Dig(r, "resources")), "apiexportendpointslices") {
					patch = append(patch, fmt.Sprint(mocktest.Dig(r, "resourceNames")))
				}
			}
			if !reflect.DeepEqual(patch, []string{"[eu-export]"}) {
				t.Errorf("kcp lets the agent patch endpoint slices %v, want its own: [eu-export]", patch)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, func() Args { return args("eu", KindSyncAgent) }, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("agent")) }, []fieldtest.Case[Args]{
		{"name with capitals", func(a *Args) { a.Cluster = "EU" }, "agent.name", `"EU": a DNS-1035 label`},
		{"name starting with a digit", func(a *Args) { a.Cluster = "1eu" }, "agent.name", `"1eu"`},
		{"unknown agent", func(a *Args) { a.Kind = "karmada" }, "agent.agent", `"karmada": supported values: "api-syncagent"`},
		{"the retired TMC syncer", func(a *Args) { a.Kind = KindTMCSyncer }, "agent.agent", `"tmc-syncer": api-syncagent: the TMC syncer needs a SyncTarget API`},
		{"workspace root itself", func(a *Args) { a.Workspace = "root" }, "agent.workspace", "a workspace under root"},
		{"no resources", func(a *Args) { a.Resources = nil }, "agent.resources", "at least one resource"},
		{"resource without kind", func(a *Args) { a.Resources = []Resource{{Group: "apps", Version: "v1", Plural: "deployments"}} }, "agent.resources[0]", "kind: a CamelCase kind"},
		{"resource with a bad group", func(a *Args) {
			a.Resources = []Resource{{Group: "Apps", Version: "v1", Kind: "Deployment", Plural: "deployments"}}
		}, "agent.resources[0]", "group: a DNS-1123 subdomain"},
		{"duplicate resource", func(a *Args) { a.Resources = []Resource{deployments, deployments} }, "agent.resources[1]", "each {group, plural} once"},
		{"bad workspace", func(a *Args) { a.Workspace = "compute" }, "agent.workspace", `"compute"`},
		{"plain kcp", func(a *Args) { a.KCPServer = "http://kcp.example.com" }, "agent.kcpServer", "https://"},
		{"unpinned image", func(a *Args) { a.Image = "ghcr.io/kcp-dev/api-syncagent:latest" }, "agent.image", "a pinned image"},
		{"unpinned kubectl image", func(a *Args) { a.KubectlImage = "registry.k8s.io/kubectl" }, "agent.kubectlImage", "a pinned image"},
		{"no replicas", func(a *Args) { a.Replicas = -1 }, "agent.replicas", "-1: at least 1"},
		{"memory in decimal units", func(a *Args) { a.Container.Limits.Memory = "1G" }, "agent.container.limits.memory", "in Ki, Mi, Gi or Ti"},
		{"identity both given and copied", func(a *Args) { a.Identity = IdentityCopied }, "agent.identity", "copied: clientCert=true clientKey=true serverCA=true"},
		{"half an identity", func(a *Args) { a.ClientKey = nil }, "agent.identity", "certificate: clientCert=true clientKey=false"},
		{"a token without kcp provider", func(a *Args) { a.Identity, a.ClientCert, a.ClientKey = IdentityToken, nil, nil }, "agent.identity", "token: a kcp provider and the server CA"},
		{"an unknown identity", func(a *Args) { a.Identity = "password" }, "agent.identity", `"password": supported values`},
		{"Prometheus namespace not a label", func(a *Args) { a.PrometheusNamespace = "Monitoring" }, "agent.monitoring.namespace", `"Monitoring": the namespace of the cluster's Prometheus`},
		{"rule label key with a space", func(a *Args) { a.RuleLabels = map[string]string{"my release": "kps"} }, "agent.monitoring.ruleLabels[my release]", `"my release": a label key`},
		{"rule label value too long", func(a *Args) { a.RuleLabels = map[string]string{"release": strings.Repeat("k", 64)} }, "agent.monitoring.ruleLabels[release]", "a label value (must be no more than 63 characters"},
	})
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

// TestPublicServerCertificate: with tls.acme kcp's public address serves a
// Let's Encrypt certificate, which the private server CA cannot verify:
// the agent trusts its image's system roots instead.
func TestPublicServerCertificate(t *testing.T) {
	a := args("eu", KindSyncAgent)
	a.PublicServerCert = true
	rec := run(t, a)
	kc := fmt.Sprint(mocktest.Dig(rec.Object(t, "kubernetes:core/v1:ConfigMap", "kcp-kubeconfig"), "data", "kubeconfig"))
	var parsed map[string]any
	if err := yaml.Unmarshal([]byte(kc), &parsed); err != nil {
		t.Fatalf("%v:\n%s", err, kc)
	}
	if strings.Contains(kc, "certificate-authority") || mocktest.Dig(parsed, "clusters", 0, "cluster", "server") != "https://kcp.example.com/clusters/root:compute" {
		t.Errorf("kubeconfig = %s", kc)
	}
}

// TestFrontDoorEgress: on kcp's own host cluster the agent's connection to
// kcp's public address arrives at a front-proxy pod's port (kube-proxy
// translates it first), so the agent's policy opens that flow when given.
func TestFrontDoorEgress(t *testing.T) {
	door := netpol.Flow{Namespace: "kcp", Pods: map[string]string{"app.kubernetes.io/name": "kcp-front-proxy"}, Ports: []int{8443}}
	for _, tt := range []struct {
		name string
		door netpol.Flow
		want bool
	}{
		{"kcp's host cluster", door, true},
		{"kcp's host cluster behind a Gateway", netpol.Flow{Namespace: "*"}, true},
		{"none given", netpol.Flow{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := args("east", KindSyncAgent)
			a.FrontDoor = tt.door
			rec := run(t, a)
			// The agent and its rewatch CronJob's pods both talk to kcp.
			for _, policy := range []string{"allow-" + KindSyncAgent, "allow-" + RewatchName(a.WithDefaults())} {
				np := mocktest.Decode[networkingv1.NetworkPolicy](t, rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", policy))
				found := false
				for _, r := range np.Spec.Egress {
					for _, p := range r.To {
						switch {
						case tt.door.Namespace == "*": // any pod of any namespace, every port
							found = found || p.NamespaceSelector != nil && len(p.NamespaceSelector.MatchLabels) == 0 &&
								p.PodSelector == nil && p.IPBlock == nil && len(r.Ports) == 0
						default:
							found = found || p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "kcp" &&
								p.PodSelector != nil && reflect.DeepEqual(p.PodSelector.MatchLabels, door.Pods) &&
								len(r.Ports) == 1 && r.Ports[0].Port.IntVal == 8443
						}
					}
				}
				if found != tt.want {
					t.Errorf("%s: egress to the front door's pods %+v: %v, want %v (egress %+v)", policy, tt.door, found, tt.want, np.Spec.Egress)
				}
			}
		})
	}
}

// TestPrometheusFindsTheAgent: a Prometheus operator that selects by label
// (kube-prometheus-stack selects only its release's) finds the agent's
// ServiceMonitor and PrometheusRule by the cluster's rule labels, and its
// Prometheus, in its own namespace, may scrape the agent.
func TestPrometheusFindsTheAgent(t *testing.T) {
	for _, tt := range []struct {
		name       string
		namespace  string
		ruleLabels map[string]string
		wantNS     string
	}{
		{"defaults", "", nil, netpol.MonitoringNamespace},
		{"a kube-prometheus-stack of its own", "observability", map[string]string{"release": "kps"}, "observability"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := args("eu", KindSyncAgent)
			a.PrometheusNamespace, a.RuleLabels = tt.namespace, tt.ruleLabels
			rec := run(t, a)
			for _, obj := range []struct{ typ, name string }{
				{"kubernetes:monitoring.coreos.com/v1:ServiceMonitor", KindSyncAgent},
				{"kubernetes:monitoring.coreos.com/v1:PrometheusRule", KindSyncAgent + "-rules"},
			} {
				labels, _ := mocktest.Dig(rec.Object(t, obj.typ, obj.name), "metadata", "labels").(map[string]any)
				for k, v := range tt.ruleLabels {
					if labels[k] != v {
						t.Errorf("%s %s: label %s=%v, want %s (labels %v)", obj.typ, obj.name, k, labels[k], v, labels)
					}
				}
				if labels["app.kubernetes.io/part-of"] != "kcp-tmc" {
					t.Errorf("%s %s lost the common labels: %v", obj.typ, obj.name, labels)
				}
			}
			np := mocktest.Decode[networkingv1.NetworkPolicy](t, rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-"+KindSyncAgent))
			var from []string
			for _, r := range np.Spec.Ingress {
				for _, p := range r.From {
					if p.NamespaceSelector != nil && len(r.Ports) == 1 && r.Ports[0].Port.IntVal == MetricsPort {
						from = append(from, p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
					}
				}
			}
			if !reflect.DeepEqual(from, []string{tt.wantNS}) {
				t.Errorf("metrics port open to namespaces %v, want [%s] (ingress %+v)", from, tt.wantNS, np.Spec.Ingress)
			}
		})
	}
}

// TestUnmonitoredCluster: a cluster without the Prometheus operator's CRDs
// gets no ServiceMonitor or PrometheusRule (applying them would fail the
// up) and its agent's metrics port stays closed.
func TestUnmonitoredCluster(t *testing.T) {
	a := args("edge", KindSyncAgent)
	a.Unmonitored = true
	rec := run(t, a)
	for _, r := range rec.All() {
		if strings.HasPrefix(r.Type, "kubernetes:monitoring.coreos.com/") {
			t.Errorf("%s %s registered on a cluster without the Prometheus operator", r.Type, r.Name)
		}
	}
	np := mocktest.Decode[networkingv1.NetworkPolicy](t, rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-"+KindSyncAgent))
	if len(np.Spec.Ingress) != 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("ingress %+v (types %v): nothing scrapes an unmonitored agent", np.Spec.Ingress, np.Spec.PolicyTypes)
	}
	rec.Object(t, "kubernetes:apps/v1:Deployment", KindSyncAgent) // the agent itself is unchanged
}
