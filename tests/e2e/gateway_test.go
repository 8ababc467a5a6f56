package e2e

import (
	"context"
	cryptotls "crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
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
	sh := shard.Shard{Name: shardName}
	backends := map[string]bool{kcp.FrontProxyName: true, sh.Service(): true}
	for _, o := range objs {
		name := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
		switch {
		case o["kind"] == "Gateway", o["kind"] == "TLSRoute":
			apply(o)
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

	// Traefik accepts the routes once it has an entry point for the
	// listeners' port and finds their Services' endpoints.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list map[string]any
		_ = json.Unmarshal([]byte(kubectl(nil, "get", "tlsroutes", "-n", ns, "-o", "json")), &list)
		var pending []string
		for _, r := range mocktest.List(list["items"]) {
			for _, c := range []string{"Accepted", "ResolvedRefs"} {
				if !parentCondition(r, c) {
					pending = append(pending, fmt.Sprintf("%v: %s", mocktest.Dig(r, "metadata", "name"), c))
				}
			}
		}
		if len(pending) == 0 && len(mocktest.List(list["items"])) == 2 {
			break
		}
		if time.Now().After(deadline) {
			gw := kubectl(nil, "get", "gateways", "-n", ns, "-o", "jsonpath={.items[*].status}")
			t.Fatalf("Traefik did not accept kcp's routes: %s not true\nGateway status: %s", strings.Join(pending, ", "), gw)
		}
		time.Sleep(time.Second)
	}

	through := fmt.Sprintf("https://localhost:%d", entry)
	t.Run("an admin reaches kcp through the Gateway, its certificate passed through", func(t *testing.T) {
		admin := cp.client(t, tls.CertAdmin, through, cp.publicHost)
		admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", time.Minute, func(map[string]any) bool { return true })
		if got := peerNames(t, entry, cp.publicHost); !strings.Contains(got, cp.publicHost) {
			t.Errorf("the Gateway answered %s with a certificate for %s, not the front-proxy's", cp.publicHost, got)
		}
		// Without a client certificate the front-proxy, not Traefik, refuses.
		if code, body := cp.client(t, "", through, cp.publicHost).do(t, http.MethodGet, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", nil); code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("an anonymous request through the Gateway: HTTP %d %s, want the front-proxy's 401/403", code, body)
		}
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
		cp.client(t, tls.CertAdmin, through, host).eventually(t, "/clusters/"+cluster+"/api/v1/namespaces/default/configmaps/"+name, time.Minute,
			func(cm map[string]any) bool { return mocktest.Dig(cm, "data", "shard") == shardName })
		if got := peerNames(t, entry, host); !strings.Contains(got, host) {
			t.Errorf("the Gateway answered %s with a certificate for %s, not shard-1's", host, got)
		}
	})
	t.Run("a name the stack did not route goes nowhere", func(t *testing.T) {
		if got := peerNames(t, entry, "other.example.com"); strings.Contains(got, cp.publicHost) {
			t.Errorf("other.example.com reached the front-proxy (%s)", got)
		}
	})
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

// peerNames is the DNS names of the certificate that answers a TLS
// handshake for serverName at the entry point ("" when none answers).
func peerNames(t testing.TB, port int, serverName string) string {
	t.Helper()
	conn, err := cryptotls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&cryptotls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // the test reads which certificate answers
	if err != nil {
		return ""
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return strings.Join(certs[0].DNSNames, ",")
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
