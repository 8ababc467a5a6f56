package kcp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

const deployType = "kubernetes:apps/v1:Deployment"

func prodArgs() Args {
	return Args{
		Namespace: "kcp", Domain: "example.com", Image: "ghcr.io/kcp-dev/kcp", Version: "v0.32.3",
		Replicas: 3, FrontProxyReplicas: 3,
		Resources:           workload.Resources{Requests: workload.ResourceList{CPU: "2", Memory: "4Gi", EphemeralStorage: "256Mi"}, Limits: workload.ResourceList{CPU: "4", Memory: "8Gi", EphemeralStorage: "2Gi"}},
		FrontProxyResources: workload.Resources{Requests: workload.ResourceList{CPU: "500m", Memory: "512Mi", EphemeralStorage: "128Mi"}, Limits: workload.ResourceList{CPU: "2", Memory: "2Gi", EphemeralStorage: "512Mi"}},
		Spread:              workload.Spread{Mode: workload.SpreadZone, Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"}},
		EtcdURL:             "https://etcd.kcp.svc:2379",
		EtcdSelector:        workload.Labels("etcd"),
		Certs: Certs{Server: "kcp-server", FrontProxy: "kcp-front-proxy", FrontProxyClient: "kcp-front-proxy-client", FrontProxyKubeconfig: "kcp-front-proxy-kubeconfig", EtcdClient: "etcd-client-kcp",
			ServiceAccount: "kcp-service-account", ClientCA: "kcp-client-ca", RequestHeaderCA: "requestheader-ca", ServerCA: "kcp-server-ca",
			ShardAdmin: "kcp-shard-admin", LogicalClusterAdmin: "kcp-logical-cluster-admin", ExternalLogicalClusterAdmin: "kcp-external-logical-cluster-admin"},
	}
}

func run(t *testing.T, a Args) *mocktest.Recorder {
	t.Helper()
	return mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := NewKCP(ctx, "kcp", a)
		return err
	})
}

func TestProdServer(t *testing.T) {
	rec := run(t, prodArgs())
	d := rec.Object(t, deployType, ServerName)
	if mocktest.Dig(d, "spec", "replicas") != float64(3) {
		t.Errorf("replicas = %v", mocktest.Dig(d, "spec", "replicas"))
	}
	pod := mocktest.Dig(d, "spec", "template", "spec")
	if got := mocktest.Dig(pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey"); got != workload.ZoneKey {
		t.Errorf("required anti-affinity on %v, want zones", got)
	}
	terms := mocktest.Dig(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", 0, "matchExpressions", 0)
	if !reflect.DeepEqual(terms, map[string]any{"key": workload.ZoneKey, "operator": "In", "values": []any{"us-east-1a", "us-east-1b", "us-east-1c"}}) {
		t.Errorf("zone node affinity = %v (a list, never a comma-joined nodeSelector)", terms)
	}
	if pod.(map[string]any)["nodeSelector"] != nil {
		t.Error("nodeSelector set: it cannot express several zones")
	}
	if mocktest.Dig(pod, "topologySpreadConstraints", 0, "topologyKey") != workload.ZoneKey {
		t.Error("no zone topology spread")
	}
	c := mocktest.Dig(pod, "containers", 0)
	for probe, path := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/readyz"} {
		if mocktest.Dig(c, probe, "httpGet", "path") != path || mocktest.Dig(c, probe, "httpGet", "scheme") != "HTTPS" || mocktest.Dig(c, probe, "httpGet", "port") != "https" {
			t.Errorf("%s = %v", probe, mocktest.Dig(c, probe))
		}
	}
	if !reflect.DeepEqual(mocktest.Dig(c, "resources", "requests", "cpu"), "2") || mocktest.Dig(c, "resources", "limits", "memory") != "8Gi" {
		t.Errorf("resources = %v, want prod's 2 CPU/4Gi → 4 CPU/8Gi", mocktest.Dig(c, "resources"))
	}
	args := strings.Join(mocktest.Strings(mocktest.Dig(c, "args")), " ")
	for _, want := range []string{
		"--etcd-servers=https://etcd.kcp.svc:2379", "--etcd-certfile=", "--etcd-cafile=", "--client-ca-file=", "--tls-cert-file=",
		"--service-account-key-file=", "--shard-external-url=https://kcp.example.com:443", "--shard-base-url=https://kcp-internal.kcp.svc:6443",
		"--logging-format=json", "--audit-log-maxbackup=10", "--audit-policy-file=", "--enable-leader-election",
		"--enable-home-workspaces=false", "--batteries-included=workspace-types", "--root-ca-file=/etc/kcp/tls/server/ca.crt",
		"--shard-virtual-workspace-url=https://kcp.example.com:443",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("kcp args lack %s", want)
		}
	}
	for _, svc := range []string{ServerService, InternalService, FrontProxyService} {
		rec.Object(t, "kubernetes:core/v1:Service", svc)
	}
	for _, pdb := range []string{ServerName, FrontProxyName} {
		if mocktest.Dig(rec.Object(t, "kubernetes:policy/v1:PodDisruptionBudget", pdb), "spec", "maxUnavailable") != float64(1) {
			t.Errorf("PDB %s missing or not maxUnavailable 1", pdb)
		}
	}
	fp := rec.Object(t, deployType, FrontProxyName)
	if mocktest.Dig(fp, "spec", "replicas") != float64(3) {
		t.Error("front-proxy replicas")
	}
	if mocktest.Dig(d, "metadata", "annotations") != nil {
		t.Error("a 3-replica Deployment suppresses kube-score's replica check")
	}
}

// TestPodsDrainBeforeTheyStop: every pod of kcp's Deployments — each
// shard's servers, the front-proxy and the cache server — goes on serving
// for drainSeconds after it is told to stop, while its Service's endpoints
// stop sending it connections, and has StopSeconds left for what is in
// flight. kcp's servers close their open watches then instead of waiting
// for them past StopSeconds (tests/e2e TestSyncAgentOnShard times it); the
// cache server cannot, and is given the 60 s it waits (CacheStopSeconds;
// tests/e2e TestShardedStackWithSeparateCacheRuns times it).
func TestPodsDrainBeforeTheyStop(t *testing.T) {
	rec := run(t, separateCacheArgs())
	for _, tc := range []struct {
		name      string
		kcpServer bool
		stop      int
	}{{ServerName, true, StopSeconds}, {ServerName + "-shard-1", true, StopSeconds}, {FrontProxyName, false, StopSeconds}, {CacheName, false, CacheStopSeconds}} {
		pod := mocktest.Dig(rec.Object(t, deployType, tc.name), "spec", "template", "spec")
		if got := mocktest.Dig(pod, "containers", 0, "lifecycle", "preStop", "sleep", "seconds"); got != float64(drainSeconds) {
			t.Errorf("%s: preStop sleep %v, want %d s", tc.name, got, drainSeconds)
		}
		if grace, _ := mocktest.Dig(pod, "terminationGracePeriodSeconds").(float64); grace != float64(drainSeconds+tc.stop) {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want the %d s drain and %d s", tc.name, grace, drainSeconds, tc.stop)
		}
		args := mocktest.Strings(mocktest.Dig(pod, "containers", 0, "args"))
		if got := slices.Contains(args, "--shutdown-send-retry-after=true"); got != tc.kcpServer {
			t.Errorf("%s: --shutdown-send-retry-after=true set %v, want %v", tc.name, got, tc.kcpServer)
		}
	}
}

// TestFrontProxyPublicCertificate: with an ACME certificate the front-proxy
// serves it for kcp.<domain> by SNI and keeps the internal one otherwise;
// without, nothing public is mounted.
func TestFrontProxyPublicCertificate(t *testing.T) {
	const flag = "--tls-sni-cert-key=/etc/kcp-front-proxy/tls/public/tls.crt,/etc/kcp-front-proxy/tls/public/tls.key:kcp.example.com"
	for _, public := range []string{"kcp-front-proxy-public", ""} {
		a := prodArgs()
		a.Certs.FrontProxyPublic = public
		pod := mocktest.Dig(run(t, a).Object(t, deployType, FrontProxyName), "spec", "template", "spec")
		args := strings.Join(mocktest.Strings(mocktest.Dig(pod, "containers", 0, "args")), " ")
		hasVolume := strings.Contains(fmt.Sprint(mocktest.Dig(pod, "volumes")), "secretName:kcp-front-proxy-public")
		if strings.Contains(args, flag) != (public != "") || hasVolume != (public != "") {
			t.Errorf("public=%q: SNI flag %v, volume %v", public, strings.Contains(args, flag), hasVolume)
		}
		if !strings.Contains(args, "--tls-cert-file=/etc/kcp-front-proxy/tls/server/tls.crt") {
			t.Errorf("public=%q: the internal serving certificate is gone", public)
		}
	}
}

// TestRolloutFitsTheSpread: with one replica per zone in exactly as many
// zones, a surge pod could never schedule and every rollout would stall, so
// hard spreading replaces one pod at a time instead.
func TestRolloutFitsTheSpread(t *testing.T) {
	tests := []struct {
		mode               string
		surge, unavailable float64
	}{
		{workload.SpreadZone, 0, 1},
		{workload.SpreadHostname, 0, 1},
		{workload.SpreadNone, 1, 0},
	}
	for _, tt := range tests {
		a := prodArgs()
		a.Spread.Mode = tt.mode
		rec := run(t, a)
		for _, name := range []string{ServerName, FrontProxyName} {
			ru := mocktest.Dig(rec.Object(t, deployType, name), "spec", "strategy", "rollingUpdate")
			if mocktest.Dig(ru, "maxSurge") != tt.surge || mocktest.Dig(ru, "maxUnavailable") != tt.unavailable {
				t.Errorf("%s with spread %s: rollingUpdate %v, want maxSurge %v maxUnavailable %v", name, tt.mode, ru, tt.surge, tt.unavailable)
			}
		}
	}
}

// TestFrontProxyRouting: the front-proxy reaches kcp as itself with a
// certificate kcp's --client-ca-file trusts (kcp refused the requestheader
// one), and sends both workspaces and virtual workspaces to kcp's API port,
// the only port kcp v0.32.3 listens on.
func TestFrontProxyRouting(t *testing.T) {
	rec := run(t, prodArgs())
	cm := rec.Object(t, "kubernetes:core/v1:ConfigMap", "kcp-front-proxy-config")
	cl, user := mocktest.Kubeconfig(t, mocktest.Dig(cm, "data", "kubeconfig"))
	if user.ClientCertificate != "/etc/kcp-front-proxy/tls/kubeconfig/tls.crt" || cl.Server != "https://kcp-internal.kcp.svc:6443" {
		t.Errorf("front-proxy kubeconfig: server %s, client certificate %s", cl.Server, user.ClientCertificate)
	}
	mapping := fmt.Sprint(mocktest.Dig(cm, "data", "mapping.yaml"))
	for _, path := range []string{"/services/", "/clusters/"} {
		if !strings.Contains(mapping, "- path: "+path+"\n  backend: https://kcp-internal.kcp.svc:6443\n") {
			t.Errorf("mapping does not send %s to kcp's API port:\n%s", path, mapping)
		}
	}
	volumes := fmt.Sprint(mocktest.Dig(rec.Object(t, deployType, FrontProxyName), "spec", "template", "spec", "volumes"))
	if !strings.Contains(volumes, "secretName:kcp-front-proxy-kubeconfig") {
		t.Errorf("front-proxy does not mount its kubeconfig identity: %s", volumes)
	}
	for _, svc := range []string{InternalService, ServerService} {
		if ports := mocktest.Dig(rec.Object(t, "kubernetes:core/v1:Service", svc), "spec", "ports"); len(ports.([]any)) != 1 {
			t.Errorf("Service %s exposes %v: kcp listens on %d only", svc, ports, APIPort)
		}
	}
}

func TestNetworkPolicies(t *testing.T) {
	rec := run(t, prodArgs())
	server := rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-kcp")
	if got := mocktest.Dig(server, "spec", "egress", 0, "to", 0, "podSelector", "matchLabels", "app.kubernetes.io/name"); got != "etcd" {
		t.Errorf("kcp egress goes to %v, want etcd", got)
	}
	if got := mocktest.Dig(server, "spec", "egress", 0, "ports", 0, "port"); got != float64(2379) {
		t.Errorf("kcp egress port %v, want 2379", got)
	}
	proxy := rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-kcp-front-proxy")
	if got := mocktest.Dig(proxy, "spec", "ingress", 0, "ports", 0, "port"); got != float64(FrontProxyPort) {
		t.Errorf("front-proxy ingress port %v", got)
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, prodArgs, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("kcp")) }, []fieldtest.Case[Args]{
		{"plain etcd", func(a *Args) { a.EtcdURL = "http://etcd:2379" }, "kcp.etcdURL", "an https:// etcd client URL"},
		{"missing cert", func(a *Args) { a.Certs.ClientCA = "" }, "kcp.certs.clientCA", "Required value"},
		{"too few zones", func(a *Args) { a.Spread.Zones = a.Spread.Zones[:2] }, "kcp.antiAffinity", "at least 3 entries in zones"},
		{"too many replicas", func(a *Args) { a.Replicas = 10 }, "kcp.replicas", "1 to 9"},
		{"more front-proxies than zones", func(a *Args) { a.FrontProxyReplicas = 4 }, "kcp.frontProxyReplicas", "at least 4 entries in zones"},
		{"tag in the repository", func(a *Args) { a.Image = "ghcr.io/kcp-dev/kcp:v0.32.3" }, "kcp.image", "without tag or digest"},
		{"unpinned version", func(a *Args) { a.Version = "latest" }, "kcp.version", `a pinned release tag like "v0.32.3"`},
		{"one-label domain", func(a *Args) { a.Domain = "localhost" }, "kcp.domain", "at least two labels"},
		{"cpu not a quantity", func(a *Args) { a.FrontProxyResources.Limits.CPU = "two" }, "kcp.frontProxyResources.limits.cpu", "a positive CPU quantity"},
		{"unpinned kubectl", func(a *Args) { a.KubectlImage = "registry.k8s.io/kubectl" }, "kcp.kubectlImage", "a pinned image"},
	})
}

// TestFlagsAreOnesKCPRegisters: kcp and the front-proxy exit at once on a
// flag they do not register (kcp registers only an allow-list of
// kube-apiserver's flags), so every flag we render must be on the pinned
// release's own list — and not one kcp-tmc refuses (one that breaks kcp
// behind its front-proxy, or that kcp never reads).
func TestFlagsAreOnesKCPRegisters(t *testing.T) {
	rec := run(t, prodArgs())
	for _, tc := range []struct {
		deployment string
		known      map[string]bool
		refused    map[string]string
	}{
		{ServerName, KnownServerFlags(), refusedFlags},
		{FrontProxyName, KnownFrontProxyFlags(), frontProxyRefusedFlags},
	} {
		if len(tc.known) < 50 {
			t.Fatalf("%s: %d known flags: not a flag list", tc.deployment, len(tc.known))
		}
		known := tc.known
		d := rec.Object(t, "kubernetes:apps/v1:Deployment", tc.deployment)
		args := mocktest.Strings(mocktest.Dig(d, "spec", "template", "spec", "containers", 0, "args"))
		if len(args) == 0 {
			t.Fatalf("%s has no args", tc.deployment)
		}
		for _, arg := range args {
			flag, _, _ := strings.Cut(arg, "=")
			if !known[flag] {
				t.Errorf("%s: %s is not a flag kcp v0.32.3 registers (components/kcp/flags/)", tc.deployment, flag)
			}
			if why := tc.refused[flag]; why != "" {
				t.Errorf("%s: renders %s, which it refuses from users: %s", tc.deployment, flag, why)
			}
		}
	}
}

// TestExtraFlags: the escape hatch takes any flag the pinned release has
// and kcp-tmc does not set, appends it, and refuses the rest by name.
func TestExtraFlags(t *testing.T) {
	tests := []struct {
		name          string
		server, proxy []string
		field, want   string // "" = accepted
	}{
		{"feature gates", []string{"--feature-gates=WorkspaceMounts=true"}, nil, "", ""},
		{"a list flag twice", nil, []string{"--tls-sni-cert-key=/a.crt,/a.key:a.example.com", "--tls-sni-cert-key=/b.crt,/b.key:b.example.com"}, "", ""},
		{"OIDC has its key", []string{"--oidc-issuer-url=https://id.example.com"}, nil, "kcp.extraFlags[0]", `"--oidc-issuer-url=https://id.example.com": kcp-tmc:kcp.oidc`},
		{"front-proxy verbosity", nil, []string{"--v=4"}, "", ""},
		{"a flag kcp does not have", []string{"--max-requests-inflight=800"}, nil, "kcp.extraFlags[0]", `"--max-requests-inflight=800": a flag kcp v0.32.3 registers`},
		{"a flag kcp-tmc sets", []string{"--batteries-included=admin"}, nil, "kcp.extraFlags[0]", `"--batteries-included=admin": a flag kcp-tmc does not already set`},
		{"pinned clients rotated", []string{"--goaway-chance=0.001"}, nil, "kcp.extraFlags[0]", `"--goaway-chance=0.001": not --goaway-chance: kcp-front-proxy v0.32.3 cannot retry`},
		{"a flag kcp never reads", []string{"--external-hostname=kcp.example.com:443"}, nil, "kcp.extraFlags[0]", `not --external-hostname: kcp v0.32.3 registers it only as a deprecated no-op`},
		{"serving on after SIGTERM", []string{"--shutdown-delay-duration=5s"}, nil, "kcp.extraFlags[0]", `"--shutdown-delay-duration=5s": not --shutdown-delay-duration: kcp v0.32.3 fails every request`},
		{"the pod's port", []string{"--secure-port=7443"}, nil, "kcp.extraFlags[0]", "a flag kcp-tmc does not already set"},
		{"front-proxy mapping", nil, []string{"--mapping-file=/x"}, "kcp.frontProxyExtraFlags[0]", `"--mapping-file=/x"`},
		{"front-proxy token checks", nil, []string{"--service-account-key-file=/x"}, "kcp.frontProxyExtraFlags[0]", `not --service-account-key-file: kcp-tmc sets it on the front-proxy only with kcp.oidc`},
		{"not a flag", []string{"v=2"}, nil, "kcp.extraFlags[0]", `"v=2": --name or --name=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := prodArgs()
			a.ExtraFlags, a.FrontProxyExtraFlags = tt.server, tt.proxy
			errs := a.WithDefaults().Validate(field.NewPath("kcp"))
			if tt.field != "" {
				fieldtest.Expect(t, errs, tt.field, tt.want)
				return
			}
			if len(errs) > 0 {
				t.Fatalf("refused: %v", errs)
			}
			rec := run(t, a)
			for d, extra := range map[string][]string{ServerName: tt.server, FrontProxyName: tt.proxy} {
				args := mocktest.Strings(mocktest.Dig(rec.Object(t, deployType, d), "spec", "template", "spec", "containers", 0, "args"))
				if len(extra) > 0 && !reflect.DeepEqual(args[len(args)-len(extra):], extra) {
					t.Errorf("%s args end %v, want %v appended", d, args[len(args)-len(extra):], extra)
				}
			}
		})
	}
}

// TestFrontProxyVerifiesTokensOnlyWithOIDC: without a token authenticator
// of its own the front-proxy passes ServiceAccount tokens to the shard that
// holds the workspace, which verifies them (kcp v0.32.3 looks their
// Secrets up across shards; the front-proxy on the root shard only: an
// agent on another shard got 401 through the front door). With OIDC it must
// verify them itself, with the public key alone.
func TestFrontProxyVerifiesTokensOnlyWithOIDC(t *testing.T) {
	for _, tc := range []struct {
		name string
		oidc *OIDC
		want bool
	}{
		{"no OIDC: the shards verify", nil, false},
		{"OIDC: the front-proxy verifies", &OIDC{IssuerURL: "https://id.example.com", ClientID: "kcp"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := prodArgs()
			a.OIDC = tc.oidc
			pod := mocktest.Dig(run(t, a).Object(t, deployType, FrontProxyName), "spec", "template", "spec")
			args := strings.Join(mocktest.Strings(mocktest.Dig(pod, "containers", 0, "args")), " ")
			if got := strings.Contains(args, "--service-account-key-file=/etc/kcp-front-proxy/tls/service-account/tls.crt"); got != tc.want {
				t.Errorf("front-proxy --service-account-key-file: %v, want %v (%s)", got, tc.want, args)
			}
			var volume any
			for _, v := range mocktest.List(mocktest.Dig(pod, "volumes")) {
				if mocktest.Dig(v, "name") == "tls-service-account" {
					volume = v
				}
			}
			if (volume != nil) != tc.want {
				t.Fatalf("front-proxy service-account volume: %v, want one: %v", volume, tc.want)
			}
			if volume != nil && !reflect.DeepEqual(mocktest.Dig(volume, "secret", "items"), []any{map[string]any{"key": "tls.crt", "path": "tls.crt"}}) {
				t.Errorf("the front-proxy mounts more of the service-account key pair than its certificate: %v", volume)
			}
		})
	}
}

// TestOIDC: sign-in flags on kcp and on the front-proxy (which
// authenticates callers), the CA bundle mounted into both, egress to the
// issuer, and every bad field refused by name.
func TestOIDC(t *testing.T) {
	ca := testCAPEM(t)
	a := prodArgs()
	a.OIDC = &OIDC{IssuerURL: "https://id.example.com:8443/realms/kcp", ClientID: "kcp", CABundle: ca}
	rec := run(t, a)
	for _, tc := range []struct{ deployment, dir string }{{ServerName, "/etc/kcp/oidc"}, {FrontProxyName, "/etc/kcp-front-proxy/oidc"}} {
		pod := mocktest.Dig(rec.Object(t, deployType, tc.deployment), "spec", "template", "spec")
		args := strings.Join(mocktest.Strings(mocktest.Dig(pod, "containers", 0, "args")), " ")
		for _, want := range []string{"--oidc-issuer-url=https://id.example.com:8443/realms/kcp", "--oidc-client-id=kcp",
			"--oidc-username-claim=sub", "--oidc-username-prefix=oidc:", "--oidc-groups-claim=groups", "--oidc-groups-prefix=oidc:",
			"--oidc-ca-file=" + tc.dir + "/ca.crt"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s lacks %s", tc.deployment, want)
			}
		}
		if !strings.Contains(fmt.Sprint(mocktest.Dig(pod, "containers", 0, "volumeMounts")), "mountPath:"+tc.dir) {
			t.Errorf("%s does not mount the CA bundle at %s", tc.deployment, tc.dir)
		}
	}
	if got := mocktest.Dig(rec.Object(t, "kubernetes:core/v1:ConfigMap", oidcCAConfigMap), "data", "ca.crt"); got != ca {
		t.Errorf("CA bundle ConfigMap = %v", got)
	}
	for _, policy := range []string{"allow-kcp", "allow-kcp-front-proxy"} {
		if egress := fmt.Sprint(mocktest.Dig(rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", policy), "spec", "egress")); !strings.Contains(egress, "port:8443") {
			t.Errorf("%s lets no traffic out to the issuer's port 8443: %s", policy, egress)
		}
	}
	o := OIDC{IssuerURL: "https://id.example.com", ClientID: "kcp", UsernamePrefix: "-", GroupsPrefix: "-"}
	if f := strings.Join(o.WithDefaults().flags("/x"), " "); !strings.Contains(f, "--oidc-username-prefix=- ") || !strings.HasSuffix(f, "--oidc-groups-prefix=") {
		t.Errorf(`"-" must turn both prefixes off: %s`, f)
	}
	a.ExtraFlags = []string{"--oidc-client-id=other"}
	fieldtest.Expect(t, a.WithDefaults().Validate(field.NewPath("kcp")), "kcp.extraFlags[0]", "a flag kcp-tmc does not already set")

	for _, tt := range []struct {
		name        string
		o           OIDC
		field, want string
	}{
		{"plain http", OIDC{IssuerURL: "http://id.example.com", ClientID: "kcp"}, "kcp.oidc.issuerURL", `"http://id.example.com": the issuer's https:// URL`},
		{"no client", OIDC{IssuerURL: "https://id.example.com"}, "kcp.oidc.clientID", `"": the client id`},
		{"blank claim", OIDC{IssuerURL: "https://id.example.com", ClientID: "kcp", UsernameClaim: " "}, "kcp.oidc.usernameClaim", `" ": a claim name`},
		{"CA not PEM", OIDC{IssuerURL: "https://id.example.com", ClientID: "kcp", CABundle: "nope"}, "kcp.oidc.caBundle", `"<not PEM>"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := prodArgs()
			o := tt.o
			a.OIDC = &o
			fieldtest.Expect(t, a.WithDefaults().Validate(field.NewPath("kcp")), tt.field, tt.want)
		})
	}
}

func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestFrontProxyRestart: the front-proxy reads its forwarding certificate
// only at start, so a weekly CronJob restarts it, rolling, and waits for the
// rollout, with kubectl allowed nothing but that (one Deployment, by name)
// and egress to the Kubernetes API only.
func TestFrontProxyRestart(t *testing.T) {
	rec := run(t, prodArgs())
	cron := rec.Object(t, "kubernetes:batch/v1:CronJob", FrontProxyRestartName)
	if got := mocktest.Dig(cron, "spec", "schedule"); got != FrontProxyRestartSchedule {
		t.Errorf("schedule %v, want %s", got, FrontProxyRestartSchedule)
	}
	if got := mocktest.Dig(cron, "spec", "timeZone"); got != "Etc/UTC" {
		t.Errorf("timeZone %v, want Etc/UTC (the documented Mondays 03:30 UTC)", got)
	}
	if got := mocktest.Dig(cron, "spec", "concurrencyPolicy"); got != "Forbid" {
		t.Errorf("concurrencyPolicy %v, want Forbid", got)
	}
	pod := mocktest.Dig(cron, "spec", "jobTemplate", "spec", "template", "spec")
	// The restart, then the wait for its rollout: the Job succeeds only
	// once the restarted pods are ready, within the Job's deadline.
	steps := []struct{ list, args string }{
		{"initContainers", "[rollout restart deployment/kcp-front-proxy --namespace=kcp]"},
		{"containers", "[rollout status deployment/kcp-front-proxy --namespace=kcp --timeout=10m0s]"},
	}
	for _, s := range steps {
		c := mocktest.Dig(pod, s.list, 0)
		if got := mocktest.Dig(c, "image"); got != DefaultKubectlImage {
			t.Errorf("%s image %v, want %s", s.list, got, DefaultKubectlImage)
		}
		if got := fmt.Sprint(mocktest.Dig(c, "args")); got != s.args {
			t.Errorf("%s args %s, want %s", s.list, got, s.args)
		}
		if got := mocktest.Dig(c, "securityContext", "readOnlyRootFilesystem"); got != true {
			t.Errorf("%s readOnlyRootFilesystem %v", s.list, got)
		}
	}
	if got := fmt.Sprint(mocktest.Dig(cron, "spec", "jobTemplate", "spec", "activeDeadlineSeconds")); got != "900" {
		t.Errorf("activeDeadlineSeconds %s, want 900: above the rollout's 10 minutes", got)
	}
	if got := mocktest.Dig(pod, "serviceAccountName"); got != FrontProxyRestartName {
		t.Errorf("serviceAccountName %v", got)
	}
	if got := mocktest.Dig(pod, "automountServiceAccountToken"); got == false {
		t.Error("the restart pod has no token: kubectl cannot reach the API")
	}
	role := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:Role", FrontProxyRestartName)
	rules := mocktest.List(mocktest.Dig(role, "rules"))
	if len(rules) != 1 || fmt.Sprint(mocktest.Dig(rules[0], "resourceNames")) != "[kcp-front-proxy]" ||
		fmt.Sprint(mocktest.Dig(rules[0], "verbs")) != "[get patch list watch]" || fmt.Sprint(mocktest.Dig(rules[0], "resources")) != "[deployments]" {
		t.Errorf("role rules %v, want get, patch, list and watch of deployment kcp-front-proxy only", rules)
	}
	binding := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", FrontProxyRestartName)
	if got := mocktest.Dig(binding, "subjects", 0, "name"); got != FrontProxyRestartName {
		t.Errorf("binding subject %v", got)
	}
	policy := rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-"+FrontProxyRestartName)
	if got := fmt.Sprint(mocktest.Dig(policy, "spec", "egress", 0, "ports")); !strings.Contains(got, "443") || !strings.Contains(got, "6443") {
		t.Errorf("egress ports %s, want the API's 443 and 6443", got)
	}
	if ingress := mocktest.List(mocktest.Dig(policy, "spec", "ingress")); len(ingress) != 0 {
		t.Errorf("the restart pod accepts ingress: %v", ingress)
	}

	a := prodArgs()
	a.KubectlImage = "mirror.example.com/kubectl:v1.34.4"
	pod = mocktest.Dig(run(t, a).Object(t, "kubernetes:batch/v1:CronJob", FrontProxyRestartName), "spec", "jobTemplate", "spec", "template", "spec")
	for _, s := range steps {
		if got := mocktest.Dig(pod, s.list, 0, "image"); got != a.KubectlImage {
			t.Errorf("kcp.kubectlImage %s ignored: %s image %v", a.KubectlImage, s.list, got)
		}
	}
}
