package e2e

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// traefikController is the controllerName Traefik's Gateway provider
// serves GatewayClasses of (its pkg/provider/kubernetes/gateway).
const traefikController = "traefik.io/gateway-controller"

// TestGatewayFrontDoor: ingress.mode gateway with the Gateway kcp-tmc
// creates (ingress.gateway.className), served by a real Gateway API
// implementation: Traefik (TRAEFIK_BIN), watching a kube-apiserver that
// holds the pinned Gateway API CRDs and the stack's own Gateway, TLSRoutes
// and Services, whose endpoints are the front-proxy's and shard-1's
// processes. Through Traefik's entry point an admin's client certificate
// reaches the front-proxy (TLS passed through: the certificate the client
// sees is the front-proxy's, a request without one is refused by the
// front-proxy itself), and shard-1's own host reaches shard-1 through the
// Gateway's second listener; a name the stack did not route goes nowhere.
// Traefik binds a Gateway listener to the entry point of the same port, so
// the listeners take ingress.gateway.port (the test's free port here,
// 8443 with Traefik's chart).
func TestGatewayFrontDoor(t *testing.T) {
	traefik := binary(t, "TRAEFIK_BIN")
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	entry := loopback.MustFreePorts(t, 1)[0]
	const shardName = "shard-1"
	objs, _ := render(t, "dev", map[string]string{
		"tls":     `{"mode":"self-managed"}`,
		"kcp":     `{"shards":[{"name":"` + shardName + `"}]}`,
		"ingress": fmt.Sprintf(`{"mode":"gateway","gateway":{"className":"traefik","port":%d}}`, entry),
	})
	cp := startControlPlane(t, objs)

	// The Gateway API side: a kube-apiserver with the pinned CRDs and the
	// stack's Gateway, TLSRoutes and the Services they lead to.
	ctx := context.Background()
	kube, err := cluster.Start(ctx, toolchain.Bin(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Stop)
	crds, err := toolchain.Source("gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(stdin []byte, args ...string) string {
		t.Helper()
		out, stderr, err := kube.Kubectl(ctx, stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	kubectl(nil, "apply", "--server-side", "-f", crds)
	kubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	apply := func(o map[string]any) {
		t.Helper()
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		kubectl(b, "apply", "--server-side", "-f", "-")
	}
	var ns string
	routes := 0
	for _, o := range objs {
		switch o["kind"] {
		case "Gateway", "TLSRoute":
			ns = fmt.Sprint(mocktest.Dig(o, "metadata", "namespace"))
			routes++
		}
	}
	if routes != 3 {
		t.Fatalf("%d Gateway/TLSRoute objects rendered, want the Gateway and the TLSRoutes of kcp and %s", routes, shardName)
	}
	apply(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}})
	apply(map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": map[string]any{"name": "traefik"},
		"spec": map[string]any{"controllerName": traefikController}})
	// Each backend Service as rendered, its endpoints the program's address
	// on this machine's own interface (an EndpointSlice may not name a
	// loopback address), as the endpoint controller would list its pod.
	pod := podAddress(t)
	var routeObjs []map[string]any // the Gateway first: the routes name it
	sh := shard.Shard{Name: shardName}
	backends := map[string]bool{kcp.FrontProxyName: true, sh.Service(): true}
	for _, o := range objs {
		name := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
		switch {
		case o["kind"] == "Gateway", o["kind"] == "TLSRoute":
			routeObjs = append(routeObjs, o)
		case o["kind"] == "Service" && backends[name]:
			apply(o)
			var ports []any
			for _, p := range mocktest.List(mocktest.Dig(o, "spec", "ports")) {
				port := int(asMap(p)["port"].(float64))
				ports = append(ports, map[string]any{"name": asMap(p)["name"], "protocol": "TCP",
					"port": forward(t, pod, cp.m.local(t, cp.m.services[name], port))})
			}
			apply(map[string]any{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
				"metadata": map[string]any{"name": name + "-e2e", "namespace": ns, "labels": map[string]any{
					"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "kcp-tmc-e2e"}},
				"addressType": "IPv4", "ports": ports,
				"endpoints": []any{map[string]any{"addresses": []any{pod}, "conditions": map[string]any{"ready": true}}}})
		}
	}

	dir := t.TempDir()
	start(t, "traefik", traefik, []string{
		fmt.Sprintf("--entryPoints.kcp.address=127.0.0.1:%d", entry),
		"--providers.kubernetesGateway=true", "--log.level=DEBUG",
	}, dir, "KUBECONFIG="+kube.Kubeconfig)

	slices.SortStableFunc(routeObjs, func(a, b map[string]any) int { // the Gateway before its routes
		return strings.Compare(fmt.Sprint(a["kind"]), fmt.Sprint(b["kind"]))
	})
	// The Kubernetes provider applies the Gateway and the TLSRoutes as the
	// stack renders them, and returns only once Traefik has programmed the
	// Gateway and accepted each route (their pulumi.com/waitFor).
	began := time.Now()
	if err := upObjects(t, kube.Kubeconfig, routeObjs, nil); err != nil {
		t.Fatalf("the up of the Gateway and its routes: %v\nGateway status: %s", err,
			kubectl(nil, "get", "gateways", "-n", ns, "-o", "jsonpath={.items[*].status}"))
	}
	t.Logf("the up returned %s after Traefik programmed the Gateway and accepted the routes", time.Since(began).Round(100*time.Millisecond))
	var list map[string]any
	_ = json.Unmarshal([]byte(kubectl(nil, "get", "tlsroutes", "-n", ns, "-o", "json")), &list)
	for _, r := range mocktest.List(list["items"]) {
		if !parentCondition(r, "Accepted") {
			t.Errorf("TLSRoute %v is not Accepted after the up: %v", mocktest.Dig(r, "metadata", "name"), mocktest.Dig(r, "status"))
		}
	}

	through := fmt.Sprintf("https://localhost:%d", entry)
	t.Run("an admin reaches kcp through the Gateway, its certificate passed through", func(t *testing.T) {
		admin := cp.client(t, tls.CertAdmin, through, cp.publicHost)
		retry(t, admin, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", func(code int, _ []byte) bool { return code == http.StatusOK })
		if !answeredBy(t, entry, cp.publicHost, cp.objs.data(t, "Secret", tls.CertFrontProxy)["tls.crt"]) {
			t.Errorf("the Gateway did not pass %s's TLS through to the front-proxy (another certificate answered)", cp.publicHost)
		}
		// Without a client certificate the front-proxy, not Traefik, refuses.
		retry(t, cp.client(t, "", through, cp.publicHost), "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", func(code int, _ []byte) bool {
			return code == http.StatusUnauthorized || code == http.StatusForbidden
		})
	})
	t.Run("shard-1's own host reaches shard-1 through the Gateway", func(t *testing.T) {
		// A workspace on shard-1 and an object in it, made through the front
		// door; shard-1 serves it by its logical cluster, the root shard not.
		ws, name := "gw-on-"+shardName, "placed-on-"+shardName
		cp.createWorkspace(t, workspaceOn(ws, shardName))
		cluster := fmt.Sprint(mocktest.Dig(cp.admin.must(t, http.MethodGet, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/"+ws, nil), "spec", "cluster"))
		cp.admin.must(t, http.MethodPost, "/clusters/root:"+ws+"/api/v1/namespaces/default/configmaps", map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"shard": shardName}})
		host := sh.PublicHost(cp.publicHost)
		retry(t, cp.client(t, tls.CertAdmin, through, host), "/clusters/"+cluster+"/api/v1/namespaces/default/configmaps/"+name, func(code int, b []byte) bool {
			return code == http.StatusOK && strings.Contains(string(b), `"shard":"`+shardName+`"`)
		})
		if !answeredBy(t, entry, host, cp.objs.data(t, "Secret", sh.ServerCert())["tls.crt"]) {
			t.Errorf("the Gateway did not pass %s's TLS through to shard-1 (another certificate answered)", host)
		}
	})
	t.Run("a name the stack did not route reaches neither", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", entry), 5*time.Second)
		if err != nil {
			t.Fatalf("Traefik's entry point is not listening: %v", err)
		}
		conn.Close()
		for _, secret := range []string{tls.CertFrontProxy, sh.ServerCert()} {
			if answeredBy(t, entry, "other.example.com", cp.objs.data(t, "Secret", secret)["tls.crt"]) {
				t.Errorf("other.example.com reached the holder of %s", secret)
			}
		}
	})
	t.Run("the up fails when the implementation does not program the Gateway", func(t *testing.T) {
		// The same Gateway under another name, its listeners on 443, where
		// Traefik has no entry point: the up must fail at the Gateway
		// (its wait shortened from the provider's 10 minutes).
		gw := routeObjs[0]
		if gw["kind"] != "Gateway" {
			t.Fatalf("the first object is a %v, want the Gateway", gw["kind"])
		}
		spec, _ := json.Marshal(gw["spec"])
		var on443 map[string]any
		if err := json.Unmarshal([]byte(strings.ReplaceAll(string(spec), fmt.Sprintf(`"port":%d`, entry), `"port":443`)), &on443); err != nil {
			t.Fatal(err)
		}
		other := map[string]any{"apiVersion": gw["apiVersion"], "kind": "Gateway", "spec": on443, "metadata": map[string]any{
			"name": "kcp-unserved", "namespace": ns, "annotations": mocktest.Dig(gw, "metadata", "annotations")}}
		err := upObjects(t, kube.Kubeconfig, []map[string]any{other}, map[string]string{"pulumi.com/timeoutSeconds": "30"})
		if err == nil || !strings.Contains(err.Error(), "Programmed") {
			t.Errorf("the up of a Gateway Traefik cannot program: %v, want a failure naming Programmed", err)
		}
	})
}

// retry polls path until ok holds on the answer; a transport error (Traefik
// still loading the routes it has accepted) is retried too.
func retry(t testing.TB, c *client, path string, ok func(int, []byte) bool) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		code, b, err := c.try(http.MethodGet, path, nil)
		if err == nil && ok(code, b) {
			return
		}
		last = fmt.Sprintf("HTTP %d %.300s %v", code, b, err)
	}
	t.Fatalf("GET %s through the Gateway: no expected answer after a minute; last: %s", path, last)
}

// upObjects applies objects (Gateway API objects as rendered) with the
// real engine and the Kubernetes provider on kubeconfig, with extra
// annotations, and leaves them (the cluster goes with the test).
func upObjects(t testing.TB, kubeconfig string, objs []map[string]any, extra map[string]string) error {
	t.Helper()
	raw, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	_, opts := testenv.Project(t, "dev", nil)
	opts.Program = func(ctx *pulumi.Context) error {
		p, err := kubernetes.NewProvider(ctx, "gateway-api", &kubernetes.ProviderArgs{Kubeconfig: pulumi.ToSecret(pulumi.String(string(raw))).(pulumi.StringOutput)})
		if err != nil {
			return err
		}
		var before []pulumi.Resource
		for _, o := range objs {
			annotations := map[string]string{}
			for k, v := range asMap(mocktest.Dig(o, "metadata", "annotations")) {
				annotations[k] = fmt.Sprint(v)
			}
			maps.Copy(annotations, extra)
			labels := map[string]string{}
			for k, v := range asMap(mocktest.Dig(o, "metadata", "labels")) {
				labels[k] = fmt.Sprint(v)
			}
			name := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
			r, err := apiextensions.NewCustomResource(ctx, fmt.Sprintf("%v-%s", o["kind"], name), &apiextensions.CustomResourceArgs{
				ApiVersion: pulumi.String(fmt.Sprint(o["apiVersion"])), Kind: pulumi.String(fmt.Sprint(o["kind"])),
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String(fmt.Sprint(mocktest.Dig(o, "metadata", "namespace"))),
					Labels: pulumi.ToStringMap(labels), Annotations: pulumi.ToStringMap(annotations)},
				OtherFields: kubernetes.UntypedArgs{"spec": o["spec"]},
			}, pulumi.Provider(p), pulumi.DependsOn(before))
			if err != nil {
				return err
			}
			before = append(before, r)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := automation.Up(ctx, s, &out, optup.SuppressProgress()); err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	return nil
}

// answeredBy says whether the TLS handshake for serverName at the entry
// point is answered with exactly the certificate certPEM begins with.
func answeredBy(t testing.TB, port int, serverName, certPEM string) bool {
	t.Helper()
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		t.Fatalf("no certificate to compare for %s", serverName)
	}
	conn, err := cryptotls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&cryptotls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // the test reads which certificate answers
	if err != nil {
		return false
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	return len(certs) > 0 && bytes.Equal(certs[0].Raw, block.Bytes)
}

// parentCondition says whether a route's status has condition c true for
// a parent.
func parentCondition(route any, c string) bool {
	for _, p := range mocktest.List(mocktest.Dig(route, "status", "parents")) {
		for _, cond := range mocktest.List(mocktest.Dig(p, "conditions")) {
			if mocktest.Dig(cond, "type") == c && mocktest.Dig(cond, "status") == "True" {
				return true
			}
		}
	}
	return false
}

// podAddress is this machine's first non-loopback IPv4 address: where the
// test's endpoints listen, as a pod's address would.
func podAddress(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address on this machine for the Gateway's endpoints")
	return ""
}

// forward listens on addr's free port and copies each connection to the
// loopback port where the program listens: the pod address Traefik dials.
func forward(t testing.TB, addr string, to int) int {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", to))
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
