// Package e2e runs what a stack renders as the real programs: etcd, kcp and
// kcp-front-proxy (and the api-syncagent of a cluster entry), started as
// local processes with exactly the args, files and certificates of the
// stack's objects (only file paths, host names and ports mapped to this
// machine), then acts as the stack's users do: an admin through the
// front-proxy, Prometheus as its ServiceMonitor scrapes, an agent syncing.
//
// kcp, kcp-front-proxy, api-syncagent and Traefik come from KCP_BIN,
// KCP_FRONT_PROXY_BIN, API_SYNCAGENT_BIN and TRAEFIK_BIN (README "Real-binary e2e");
// without them the tests skip, saying so. `make e2e` refuses to run without.
package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	cryptotls "crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// binary is the path in env var name, or a skip naming what is missing.
func binary(t testing.TB, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s is not set: the real-binary e2e needs kcp v0.32.3's, api-syncagent v0.7.0's and Traefik v3.7.9's binaries (README \"Real-binary e2e\"; make e2e)", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", env, p, err)
	}
	return p
}

// render runs the program under mocks for the stack with extra config and
// returns its objects. TLS is self-managed so every certificate of the
// PKI catalog is minted with real crypto (internal/test/mocktest), the same
// catalog cert-manager mode issues into Secrets of the same names.
func render(t testing.TB, stack string, config map[string]string, secrets ...string) (objects, []mocktest.Resource) {
	t.Helper()
	mocktest.SetConfig(t, stackValues(stack, config), secrets...)
	rec, err := mocktest.Run(t, stack, stacks.Program)
	if err != nil {
		t.Fatalf("rendering %s: %v", stack, err)
	}
	return objects(rec.Manifests()), rec.All()
}

// stackValues is the stack's config as render sets it: the machine maps
// public host names through the stack's Ingress rules (there is no load
// balancer here), so the e2e renders the legacy ingress mode unless a test
// chooses one.
func stackValues(stack string, config map[string]string) map[string]string {
	values := map[string]string{"environment": stack, "ingress": `{"mode":"passthrough"}`}
	for k, v := range config {
		values[k] = v
	}
	return values
}

// controlPlane is a running etcd, kcp and front-proxy of one stack.
type controlPlane struct {
	objs       objects
	m          *machine
	dir        string
	publicHost string
	admin      *client
	shards     int // kcp server sets started, the root shard's first
	// running is what the test started, by workload name, so a test can
	// kill and start it again as its pod's restart would.
	running map[string]*instance
	order   []string // the workloads in the order they were started
	// owner is the test the programs belong to: a program started again in
	// a subtest must outlive the subtest.
	owner testing.TB
}

// instance is one started program with the command line it was started with.
type instance struct {
	proc *process
	pod  *pod
	bin  string
	args []string
	m    *machine // the ports it listens on (an agent's own, see withOwnPorts)
	// key names it in controlPlane.running: its workload's name, or for
	// programs of one workload per cluster (agents) the workload and cluster.
	key string
}

// startControlPlane starts the stack's etcd, kcp and front-proxy.
func startControlPlane(t testing.TB, objs objects) *controlPlane {
	t.Helper()
	kcpBin, proxyBin := binary(t, "KCP_BIN"), binary(t, "KCP_FRONT_PROXY_BIN")
	etcdBin, err := toolchain.Find("etcd")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	server := objs.get(t, "Deployment", kcp.ServerName)
	kcpArgs := fmt.Sprint(mocktest.Dig(server, "spec", "template", "spec", "containers", 0, "args"))
	public := regexp.MustCompile(`--shard-external-url=https://([^: \]]+)`).FindStringSubmatch(kcpArgs)
	if public == nil {
		t.Fatalf("kcp has no --shard-external-url: %s", kcpArgs)
	}
	m := newMachine(t, objs, public[1])
	cp := &controlPlane{objs: objs, m: m, dir: dir, publicHost: public[1], running: map[string]*instance{}, owner: t}
	run := func(name, bin string, pd *pod, args []string, timeout time.Duration) time.Duration {
		return cp.launch(t, name, &instance{pod: pd, bin: bin, args: args, m: m}, timeout)
	}

	// Every etcd cluster (the root shard's and each other shard's), then the
	// root shard, the other shards (they register with the root), the front-proxy.
	for _, o := range objs {
		if o["kind"] != "StatefulSet" {
			continue
		}
		name := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
		if r := mocktest.Dig(o, "spec", "replicas"); r != float64(1) {
			t.Fatalf("etcd %s has %v replicas; this e2e runs the dev stack's one", name, r)
		}
		ep := materialize(t, objs, m, name+"-0", o, filepath.Join(dir, name))
		run(name, etcdBin, ep, ep.args, time.Minute)
	}
	// A separate cache server (kcp.cache.mode separate) before every shard.
	if cache := objs.find(kcp.CacheName); cache != nil {
		cacheBin := binary(t, "CACHE_SERVER_BIN")
		cp2 := materialize(t, objs, m, kcp.CacheName+"-0", cache, filepath.Join(dir, kcp.CacheName))
		took := run(kcp.CacheName, cacheBin, cp2, append(cp2.args, "--bind-address=127.0.0.1"), 2*time.Minute)
		t.Logf("%s ready after %s", kcp.CacheName, took.Round(time.Second))
	}
	// The root shard first: the others register with it.
	servers := []map[string]any{server}
	for _, d := range objs {
		name := fmt.Sprint(mocktest.Dig(d, "metadata", "name"))
		if d["kind"] == "Deployment" && name != kcp.ServerName && mocktest.Dig(d, "spec", "template", "metadata", "labels", "kcp-tmc.io/role") == "kcp-server" {
			servers = append(servers, d)
		}
	}
	for _, d := range servers {
		name := fmt.Sprint(mocktest.Dig(d, "metadata", "name"))
		kp := materialize(t, objs, m, name+"-0", d, filepath.Join(dir, name))
		// The container listens on 6443 of its pod; here, on a loopback port.
		listen := []string{fmt.Sprintf("--secure-port=%d", m.local(t, name, kcp.APIPort)), "--bind-address=127.0.0.1"}
		took := run(name, kcpBin, kp, append(kp.args, listen...), 3*time.Minute)
		t.Logf("%s ready after %s", name, took.Round(time.Second))
		cp.shards++
	}

	proxy := objs.get(t, "Deployment", kcp.FrontProxyName)
	fp := materialize(t, objs, m, kcp.FrontProxyName+"-0", proxy, filepath.Join(dir, "front-proxy"))
	took := run("kcp-front-proxy", proxyBin, fp, fp.args, 2*time.Minute)
	t.Logf("front-proxy ready after %s", took.Round(time.Second))

	cp.admin = cp.client(t, tls.CertAdmin, fmt.Sprintf("https://localhost:%d", m.front(t)), "")
	return cp
}

// launch starts in's program for the test that owns the control plane
// (so a program started again in a subtest outlives it), records it under
// its workload and waits for its readiness probe.
func (cp *controlPlane) launch(t testing.TB, name string, in *instance, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	in.proc = start(cp.owner, name, in.bin, in.args, in.pod.dir, in.pod.env...)
	if in.key == "" {
		in.key = in.pod.workload
	}
	if _, known := cp.running[in.key]; !known {
		cp.order = append(cp.order, in.key)
	}
	cp.running[in.key] = in
	waitProbe(t, in.proc, in.pod, in.m, timeout)
	return time.Since(began)
}

// client is an HTTPS client with one of the PKI's client certificates that
// verifies the server with kcp-server-ca, as the stack's kubeconfigs do.
type client struct {
	base  string
	http  *http.Client
	token string // a bearer token instead of a client certificate
}

// adminConfig is a client-go config of kcp's admin through the front door
// (no workspace: the caller adds /clusters/<path> or lets a helper do it).
func (cp *controlPlane) adminConfig(t testing.TB) *rest.Config {
	t.Helper()
	admin := cp.objs.data(t, "Secret", tls.CertAdmin)
	return &rest.Config{Host: fmt.Sprintf("https://localhost:%d", cp.m.front(t)),
		TLSClientConfig: rest.TLSClientConfig{CAData: []byte(cp.objs.data(t, "Secret", tls.CAServer)["ca.crt"]),
			CertData: []byte(admin["tls.crt"]), KeyData: []byte(admin["tls.key"])}}
}

func (cp *controlPlane) client(t testing.TB, cert, base, serverName string) *client {
	t.Helper()
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM([]byte(cp.objs.data(t, "Secret", tls.CAServer)["ca.crt"])) {
		t.Fatal("no CA certificate in Secret " + tls.CAServer)
	}
	cfg := &cryptotls.Config{RootCAs: ca, ServerName: serverName, MinVersion: cryptotls.VersionTLS12}
	if cert != "" {
		d := cp.objs.data(t, "Secret", cert)
		pair, err := cryptotls.X509KeyPair([]byte(d["tls.crt"]), []byte(d["tls.key"]))
		if err != nil {
			t.Fatalf("Secret %s: %v", cert, err)
		}
		cfg.Certificates = []cryptotls.Certificate{pair}
	}
	return &client{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}}
}

// withCert is c presenting ck instead of its client certificate.
func (c *client) withCert(t testing.TB, ck certKey) *client {
	t.Helper()
	pair, err := cryptotls.X509KeyPair(ck.cert, ck.key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.http.Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.Certificates = []cryptotls.Certificate{pair}
	return &client{base: c.base, http: &http.Client{Timeout: c.http.Timeout, Transport: &http.Transport{TLSClientConfig: cfg}}}
}

// do sends a JSON request and returns the status and body; a transport
// error fails the test.
func (c *client) do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	code, b, err := c.try(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

// try is one request that may fail: a transport error is an answer too
// (the failure tests count them).
func (c *client) try(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// must sends a request that must succeed and decodes the answer.
func (c *client) must(t testing.TB, method, path string, body any) map[string]any {
	t.Helper()
	code, b := c.do(t, method, path, body)
	if code/100 != 2 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, code, b)
	}
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// eventually polls get until cond holds on its answer.
func (c *client) eventually(t testing.TB, path string, timeout time.Duration, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []byte
	for time.Now().Before(deadline) {
		code, b := c.do(t, http.MethodGet, path, nil)
		last = b
		if code == http.StatusOK {
			out := map[string]any{}
			if json.Unmarshal(b, &out) == nil && cond(out) {
				return out
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("GET %s: condition not met after %s; last answer: %s", path, timeout, last)
	return nil
}

// workspaceOn is a Workspace in root scheduled onto shard (kcp's Shard
// objects carry their name as label "name").
func workspaceOn(name, shard string) map[string]any {
	return map[string]any{"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"location": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"name": shard}}}}}
}

// createWorkspace creates ws (a Workspace object) in root through the
// front-proxy and waits until it is Ready.
func (cp *controlPlane) createWorkspace(t testing.TB, ws map[string]any) {
	t.Helper()
	cp.admin.must(t, http.MethodPost, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", ws)
	began := time.Now()
	cp.admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/"+fmt.Sprint(mocktest.Dig(ws, "metadata", "name")), 2*time.Minute, func(w map[string]any) bool {
		return mocktest.Dig(w, "status", "phase") == "Ready"
	})
	t.Logf("workspace %v Ready after %s", mocktest.Dig(ws, "metadata", "name"), time.Since(began).Round(time.Second))
}

// applyKCPSide creates in kcp, in registration order, the objects the
// stack sends through its providers for kcp (render mode writes them under
// kcp*/): what `kcp-tmc up` applies once kcp-tmc:kcpKubeconfig is set.
// workspaces maps each such provider's name to the workspace it points
// into. It waits as the provider does for a pulumi.com/waitFor annotation.
func (cp *controlPlane) applyKCPSide(t testing.TB, rec []mocktest.Resource, workspaces map[string]string) {
	t.Helper()
	n := 0
	provider := regexp.MustCompile(`::pulumi:providers:kubernetes::(kcp[^:]*)::`)
	for _, r := range rec {
		p := provider.FindStringSubmatch(r.Provider)
		if p == nil || !r.Custom {
			continue
		}
		ws, ok := workspaces[p[1]]
		if !ok {
			t.Fatalf("%s %s goes through kcp provider %s, which the test does not know", r.Type, r.Name, p[1])
		}
		obj := r.Input()
		gv, kind := fmt.Sprint(obj["apiVersion"]), fmt.Sprint(obj["kind"])
		prefix := "/apis/" + gv
		if !strings.Contains(gv, "/") {
			prefix = "/api/" + gv
		}
		plural := strings.ToLower(kind) + "s"
		path := "/clusters/" + ws + prefix + "/" + plural
		cp.admin.must(t, http.MethodPost, path, obj)
		n++
		switch wait := mocktest.Dig(obj, "metadata", "annotations", "pulumi.com/waitFor"); wait {
		case nil:
		case "jsonpath={.status.phase}=Ready":
			cp.admin.eventually(t, path+"/"+fmt.Sprint(mocktest.Dig(obj, "metadata", "name")), 2*time.Minute, func(o map[string]any) bool {
				return mocktest.Dig(o, "status", "phase") == "Ready"
			})
		default:
			t.Fatalf("%s %s: the test does not know how to wait for %v", kind, r.Name, wait)
		}
	}
	if n == 0 {
		t.Fatal("the stack sends nothing to kcp")
	}
}

// TestDevStackRuns: the dev stack's etcd, kcp and front-proxy start from
// what the stack renders; an admin creates a workspace through the
// front-proxy and uses it; a virtual workspace answers through /services/;
// Prometheus' scrape of kcp returns every series the kcp alerts read.
func TestDevStackRuns(t *testing.T) {
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	// Humans sign in with OIDC, and the escape hatch carries a flag of each program.
	idp := startIssuer(t)
	oidc, _ := json.Marshal(map[string]any{"issuerURL": idp.URL, "clientID": "kcp-e2e", "caBundle": idp.CAPEM})
	extra := `{"oidc":` + string(oidc) + `,"extraFlags":["--v=2"],"frontProxyExtraFlags":["--v=2"]}`
	objs, rec := render(t, "dev", map[string]string{"tls": `{"mode":"self-managed"}`, "kcp": extra})
	t.Run("workloads do not depend on the TLS mode", func(t *testing.T) {
		cm, _ := render(t, "dev", map[string]string{"kcp": extra})
		for _, w := range []struct{ kind, name string }{{"Deployment", kcp.ServerName}, {"Deployment", kcp.FrontProxyName}, {"StatefulSet", etcd.Name}} {
			if a, b := mocktest.Dig(objs.get(t, w.kind, w.name), "spec"), mocktest.Dig(cm.get(t, w.kind, w.name), "spec"); !reflect.DeepEqual(a, b) {
				t.Errorf("%s %s differs between tls modes: the e2e would not run what cert-manager mode deploys", w.kind, w.name)
			}
		}
	})
	cp := startControlPlane(t, objs)
	admin := cp.admin

	t.Run("admin creates a workspace through the front-proxy and uses it", func(t *testing.T) {
		admin.must(t, http.MethodPost, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", map[string]any{
			"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": map[string]any{"name": "e2e"}})
		began := time.Now()
		admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/e2e", 2*time.Minute, func(ws map[string]any) bool {
			return mocktest.Dig(ws, "status", "phase") == "Ready"
		})
		t.Logf("workspace Ready after %s", time.Since(began).Round(time.Second))
		admin.must(t, http.MethodPost, "/clusters/root:e2e/api/v1/namespaces/default/configmaps", map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "hello"}, "data": map[string]any{"from": "e2e"}})
		if got := admin.must(t, http.MethodGet, "/clusters/root:e2e/api/v1/namespaces/default/configmaps/hello", nil); mocktest.Dig(got, "data", "from") != "e2e" {
			t.Errorf("read back %v", got)
		}
	})

	t.Run("a human signs in with an OIDC token through the front-proxy", func(t *testing.T) {
		// Workspace e2e (made above) lets nobody but its creator in.
		list := "/clusters/root:e2e/api/v1/namespaces/default/configmaps"
		forged, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := cp.bearer(t, idp.token(t, forged, "kcp-e2e", "mallory")).do(t, http.MethodGet, list, nil); code != http.StatusUnauthorized {
			t.Errorf("a token the issuer did not sign: HTTP %d: %.200s", code, body)
		}
		if code, body := cp.bearer(t, idp.token(t, idp.key, "another-client", "alice")).do(t, http.MethodGet, list, nil); code != http.StatusUnauthorized {
			t.Errorf("a token for another client: HTTP %d: %.200s", code, body)
		}
		alice := cp.bearer(t, idp.token(t, idp.key, "kcp-e2e", "alice", "devs"))
		// Authenticated as oidc:alice (the prefix), but not allowed anything yet.
		code, body := alice.do(t, http.MethodGet, list, nil)
		if code != http.StatusForbidden || !strings.Contains(string(body), `User \"oidc:alice\"`) {
			t.Fatalf("alice before any binding: HTTP %d: %.300s", code, body)
		}
		admin.must(t, http.MethodPost, "/clusters/root:e2e/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": "e2e-devs"},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
			"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oidc:devs"}}})
		// Her groups claim, prefixed, is what the binding names.
		alice.eventually(t, list, time.Minute, func(map[string]any) bool { return true })
	})

	t.Run("a virtual workspace answers through /services/ at the URL agents are given", func(t *testing.T) {
		admin.must(t, http.MethodPost, "/clusters/root:e2e/apis/apis.kcp.io/v1alpha1/apiexports", map[string]any{
			"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport", "metadata": map[string]any{"name": "e2e.example.com"}, "spec": map[string]any{}})
		// kcp serves an export's virtual workspace once something binds it.
		admin.must(t, http.MethodPost, "/clusters/root:e2e/apis/apis.kcp.io/v1alpha1/apibindings", map[string]any{
			"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": map[string]any{"name": "e2e.example.com"},
			"spec": map[string]any{"reference": map[string]any{"export": map[string]any{"name": "e2e.example.com"}}}})
		slice := admin.eventually(t, "/clusters/root:e2e/apis/apis.kcp.io/v1alpha1/apiexportendpointslices/e2e.example.com", 2*time.Minute, func(s map[string]any) bool {
			return len(mocktest.List(mocktest.Dig(s, "status", "endpoints"))) > 0
		})
		url := fmt.Sprint(mocktest.Dig(slice, "status", "endpoints", 0, "url"))
		front := fmt.Sprintf("https://localhost:%d/services/", cp.m.front(t))
		if !strings.HasPrefix(url, front) {
			t.Fatalf("the endpoint slice sends agents to %s, not through the front door %s", url, front)
		}
		code, body := admin.do(t, http.MethodGet, strings.TrimPrefix(url, admin.base)+"/clusters/*/apis", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s/clusters/*/apis through the front-proxy: HTTP %d: %s", url, code, body)
		}
	})

	t.Run("Prometheus scrapes kcp, the front-proxy and etcd as their ServiceMonitors say and finds what the rules read", func(t *testing.T) {
		cp.applyKCPSide(t, rec, map[string]string{"kcp-root": "root"})
		// kcp measures every client certificate it is shown: one expiring
		// within a day, as a client that missed its renewal presents it,
		// lands where KCPClientCertificateExpiresVerySoon looks.
		short := clientCertExpiring(t, cp, rec, tls.CertMetricsViewer, 12*time.Hour)
		if code, body := cp.scraper(t, monitoring.JobKCP, kcp.ServerName, kcp.APIPort).withCert(t, short).do(t, http.MethodGet, "/metrics", nil); code != http.StatusOK {
			t.Fatalf("kcp's /metrics with a %s certificate expiring in 12 h: HTTP %d: %.200s", tls.CertMetricsViewer, code, body)
		}
		if n := sampleValue(cp.scrape(t, monitoring.JobKCP, kcp.ServerName, kcp.APIPort),
			"apiserver_client_certificate_expiration_seconds_bucket", map[string]string{"le": "86400"}); n < 1 {
			t.Errorf("kcp counted %v requests with a client certificate expiring within a day, want at least 1: the client certificate alerts read nothing", n)
		}
		for _, job := range []struct {
			name, workload string
			port           int // the Service port the endpoint names
		}{{monitoring.JobKCP, kcp.ServerName, kcp.APIPort}, {monitoring.JobFrontProxy, kcp.FrontProxyName, 443}, {monitoring.JobEtcd, etcd.Name, etcd.MetricsPort}} {
			body := cp.scrape(t, job.name, job.workload, job.port)
			if n := rulesFindSeries(t, body, job.name); n == 0 && job.name != monitoring.JobFrontProxy {
				t.Errorf("no rule reads a %s series: nothing was checked", job.name)
			}
		}
		// One client with a bad credential: the front-proxy refuses it
		// itself and kcp sees nothing, so FrontProxyUnauthorized's second
		// condition (kcp failing to authenticate) stays false for it.
		forged, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		errorsBefore, refusedBefore := cp.authenticationErrors(t), cp.frontProxyUnauthorized(t)
		const bad = 5
		for range bad {
			if code, body := cp.bearer(t, idp.token(t, forged, "kcp-e2e", "mallory")).do(t, http.MethodGet, "/clusters/root/api/v1/namespaces", nil); code != http.StatusUnauthorized {
				t.Fatalf("a token the issuer did not sign: HTTP %d: %.200s", code, body)
			}
		}
		if n := cp.frontProxyUnauthorized(t) - refusedBefore; n < bad {
			t.Errorf("the front-proxy counted %v answers with code 401 for %d bad tokens, want %d", n, bad, bad)
		}
		if n := cp.authenticationErrors(t) - errorsBefore; n != 0 {
			t.Errorf("kcp counted %v authentication errors for %d bad tokens the front-proxy refused itself, want 0: FrontProxyUnauthorized would fire for one bad client", n, bad)
		}
	})

	// Last: it restarts kcp and the front-proxy.
	t.Run("a renewed forwarding certificate reaches the front-proxy at its restart, not before", func(t *testing.T) {
		forwardingRenewal(t, cp, rec)
	})
}

// scrape GETs a workload's metrics as the ServiceMonitor's first endpoint
// says (path, scheme, CA, client certificate, server name), retrying while
// kcp's authorizer catches up with a new binding.
func (cp *controlPlane) scrape(t testing.TB, monitor, workload string, port int) []byte {
	t.Helper()
	job := monitor
	sc := cp.scraper(t, monitor, workload, port)
	path := fmt.Sprint(asMap(mocktest.Dig(cp.objs.get(t, "ServiceMonitor", monitor), "spec", "endpoints", 0))["path"])
	var code int
	var body []byte
	for i := 0; i < 30; i++ {
		if code, body = sc.do(t, http.MethodGet, path, nil); code == http.StatusOK {
			return body
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: scrape %s: HTTP %d: %.300s", job, path, code, body)
	return nil
}

// scraper is a client of a workload's metrics as the ServiceMonitor's
// first endpoint says (scheme, CA, client certificate, server name).
func (cp *controlPlane) scraper(t testing.TB, monitor, workload string, port int) *client {
	t.Helper()
	ep := asMap(mocktest.Dig(cp.objs.get(t, "ServiceMonitor", monitor), "spec", "endpoints", 0))
	if ep["scheme"] != "https" {
		return &client{base: fmt.Sprintf("http://127.0.0.1:%d", cp.m.local(t, workload, port)), http: &http.Client{Timeout: 30 * time.Second}}
	}
	tlsCfg := asMap(ep["tlsConfig"])
	if ca := fmt.Sprint(mocktest.Dig(tlsCfg, "ca", "secret", "name")); ca != tls.CAServer {
		t.Fatalf("%s: ServiceMonitor verifies with %s", monitor, ca)
	}
	return cp.client(t, fmt.Sprint(mocktest.Dig(tlsCfg, "cert", "secret", "name")),
		fmt.Sprintf("https://127.0.0.1:%d", cp.m.local(t, workload, port)), fmt.Sprint(tlsCfg["serverName"]))
}

// frontProxyUnauthorized is how many answers the front-proxy counted with
// code 401 (its own refusals and kcp's it passed on).
func (cp *controlPlane) frontProxyUnauthorized(t testing.TB) float64 {
	t.Helper()
	return sampleValue(cp.scrape(t, monitoring.JobFrontProxy, kcp.FrontProxyName, 443), "proxy_request_duration_seconds_count", map[string]string{"code": "401"})
}

// authenticationErrors is how many requests kcp failed to authenticate
// (a credential that did not verify), what FrontProxyUnauthorized reads.
func (cp *controlPlane) authenticationErrors(t testing.TB) float64 {
	t.Helper()
	return sampleValue(cp.scrape(t, monitoring.JobKCP, kcp.ServerName, kcp.APIPort), "authentication_attempts", map[string]string{"result": "error"})
}

// expiredClientCertificates is how many requests showed kcp a client
// certificate that had expired (the le="0" bucket of its measure).
func (cp *controlPlane) expiredClientCertificates(t testing.TB) float64 {
	t.Helper()
	return sampleValue(cp.scrape(t, monitoring.JobKCP, kcp.ServerName, kcp.APIPort), "apiserver_client_certificate_expiration_seconds_bucket", map[string]string{"le": "0"})
}

// sampleValue is the sum of the scrape's samples of name with labels.
func sampleValue(body []byte, name string, labels map[string]string) float64 {
	var sum float64
	for _, s := range samples(body) {
		match := s.name == name
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			sum += s.value
		}
	}
	return sum
}

// rulesFindSeries checks that every series the alerting and recording
// rules read for job is in the scrape body (Prometheus' text format), and
// returns how many reads it checked.
func rulesFindSeries(t testing.TB, body []byte, job string) int {
	t.Helper()
	series := map[string]bool{}
	for _, s := range samples(body) {
		series[s.name] = true
	}
	read := regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="` + regexp.QuoteMeta(job) + `"[,}]`)
	checked := 0
	for _, g := range monitoring.Groups() {
		for _, r := range g.Rules {
			for _, m := range read.FindAllStringSubmatch(r.Expr, -1) {
				if m[1] == "up" { // Prometheus writes it per scrape; no target serves it
					continue
				}
				checked++
				if !series[m[1]] {
					t.Errorf("rule %s%s reads %s, which %s does not serve", r.Alert, r.Record, m[1], job)
				}
			}
		}
	}
	t.Logf("%s: scraped %d series; the %d reads by the rules all found", job, len(series), checked)
	return checked
}
