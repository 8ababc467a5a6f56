package ingress

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

func args(mode string) Args {
	return Args{Mode: mode, Namespace: "kcp", Host: "kcp.example.com", BackendService: "kcp-front-proxy", BackendPort: 443, TargetPort: 8443, ControllerReplicas: 2}
}

func run(t *testing.T, a Args) *mocktest.Recorder {
	t.Helper()
	return mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := NewIngress(ctx, "ingress", a)
		return err
	})
}

func TestModes(t *testing.T) {
	tests := []struct {
		name        string
		args        Args
		annotations map[string]any
		tlsSecret   any
		lb          bool
	}{
		{"passthrough keeps client certificates", args(ModePassthrough),
			map[string]any{"nginx.ingress.kubernetes.io/ssl-passthrough": "true", "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}, nil, false},
		{"terminate speaks gRPC to the backend", args(ModeTerminate),
			map[string]any{"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}, "kcp-tls-cert", false},
		{"load balancer passes TCP through", func() Args { a := args(ModeLoadBalancer); a.NLB = true; return a }(), nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := run(t, tt.args)
			if tt.lb {
				svc := rec.Object(t, "kubernetes:core/v1:Service", "kcp-front-proxy-lb")
				if mocktest.Dig(svc, "spec", "type") != "LoadBalancer" || mocktest.Dig(svc, "spec", "ports", 0, "targetPort") != float64(8443) ||
					mocktest.Dig(svc, "metadata", "annotations", "service.beta.kubernetes.io/aws-load-balancer-type") != "external" {
					t.Errorf("load balancer = %v", svc)
				}
				// external-dns, old and new, publishes the host at its address.
				for _, prefix := range []string{"external-dns.kubernetes.io/", "external-dns.alpha.kubernetes.io/"} {
					if got := mocktest.Dig(svc, "metadata", "annotations", prefix+"hostname"); got != "kcp.example.com" {
						t.Errorf("%shostname = %v", prefix, got)
					}
					if got := mocktest.Dig(svc, "metadata", "annotations", prefix+"ttl"); got != "60" {
						t.Errorf("%sttl = %v", prefix, got)
					}
				}
				if len(rec.OfType("kubernetes:networking.k8s.io/v1:Ingress")) != 0 {
					t.Error("an Ingress exists in load-balancer mode")
				}
				return
			}
			ing := rec.Object(t, "kubernetes:networking.k8s.io/v1:Ingress", "kcp")
			if got := mocktest.Dig(ing, "metadata", "annotations"); !reflect.DeepEqual(got, tt.annotations) {
				t.Errorf("annotations = %v, want %v", got, tt.annotations)
			}
			if mocktest.Dig(ing, "spec", "rules", 0, "host") != "kcp.example.com" ||
				mocktest.Dig(ing, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "name") != "kcp-front-proxy" {
				t.Errorf("rule = %v", mocktest.Dig(ing, "spec", "rules"))
			}
			if got := mocktest.Dig(ing, "spec", "tls", 0, "secretName"); got != tt.tlsSecret {
				t.Errorf("TLS secret = %v, want %v", got, tt.tlsSecret)
			}
		})
	}
}

func TestControllerInstall(t *testing.T) {
	a := args(ModePassthrough)
	a.InstallController, a.ControllerReplicas, a.NLB = true, 3, true
	rec := run(t, a)
	rel := rec.OfType("kubernetes:helm.sh/v3:Release")
	if len(rel) != 1 {
		t.Fatalf("%d releases", len(rel))
	}
	values := mocktest.Dig(rel[0].Input(), "values", "controller")
	if mocktest.Dig(values, "extraArgs", "enable-ssl-passthrough") != "true" || mocktest.Dig(values, "replicaCount") != float64(3) ||
		mocktest.Dig(values, "podDisruptionBudget", "enabled") != true ||
		mocktest.Dig(values, "service", "annotations", "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type") != "ip" ||
		mocktest.Dig(values, "topologySpreadConstraints", 0, "topologyKey") != "topology.kubernetes.io/zone" {
		t.Errorf("controller values = %v", values)
	}
	ns := rec.Object(t, "kubernetes:core/v1:Namespace", ControllerNamespace)
	if mocktest.Dig(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "restricted" {
		t.Error("controller namespace is not restricted")
	}
	rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-ingress-nginx")
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name        string
		a           Args
		field, want string
	}{
		{"unknown mode", args("http"), "ingress.mode", `"http": supported values`},
		{"bad host", func() Args { a := args(ModePassthrough); a.Host = "kcp_example"; return a }(), "ingress.host", `"kcp_example"`},
		{"controller for a load balancer", func() Args { a := args(ModeLoadBalancer); a.InstallController = true; return a }(), "ingress.installController", "false with mode loadbalancer"},
		{"unpinned chart", func() Args { a := args(ModePassthrough); a.ControllerVersion = "latest"; return a }(), "ingress.controllerVersion", `"latest": a pinned chart version`},
		{"chart version with v", func() Args { a := args(ModePassthrough); a.ControllerVersion = "v4.12.1"; return a }(), "ingress.controllerVersion", "a pinned chart version"},
		{"gateway in another namespace, misspelt", func() Args {
			a := args(ModeGateway)
			a.Gateway = Gateway{Name: "kcp", Namespace: "Gateways", Listener: "tls"}
			return a
		}(), "ingress.gateway.namespace", `"Gateways"`},
		{"a port for an existing Gateway", func() Args {
			a := args(ModeGateway)
			a.Gateway = Gateway{Name: "shared", Port: 8443}
			return a
		}(), "ingress.gateway.port", "unset unless ingress.gateway.className is set"},
		{"an IPv6 source range", func() Args {
			a := args(ModeLoadBalancer)
			a.SourceRanges = []string{"203.0.113.0/24", "2001:db8::/32"}
			return a
		}(), "ingress.sourceRanges[1]", "an IPv4 CIDR"},
		{"an empty list of source ranges", func() Args {
			a := args(ModeLoadBalancer)
			a.SourceRanges = []string{}
			return a
		}(), "ingress.sourceRanges", "or unset for every address"},
		{"more source ranges than a security group takes", func() Args {
			a := args(ModeLoadBalancer)
			for i := range MaxSourceRanges + 1 {
				a.SourceRanges = append(a.SourceRanges, fmt.Sprintf("10.%d.0.0/16", i))
			}
			return a
		}(), "ingress.sourceRanges", "must have at most 60 items"},
		{"a port beyond TCP's", func() Args {
			a := args(ModeGateway)
			a.Gateway = Gateway{ClassName: "traefik", Port: 70000}
			return a
		}(), "ingress.gateway.port", "70000: 1 to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fieldtest.Expect(t, tt.a.WithDefaults().Validate(field.NewPath("ingress")), tt.field, tt.want)
		})
	}
}

// TestGatewayPassthrough: mode gateway attaches a TLSRoute for the host to
// the Gateway's passthrough listener, backed by the front-proxy Service;
// with a GatewayClass the Gateway comes too, accepting routes from kcp's
// namespace only. No Ingress and no ingress-nginx.
func TestGatewayPassthrough(t *testing.T) {
	a := args(ModeGateway)
	a.Gateway = Gateway{ClassName: "eg"}
	rec := run(t, a)
	route := rec.Object(t, "kubernetes:gateway.networking.k8s.io/v1:TLSRoute", "kcp")
	want := map[string]any{
		"parentRefs": []any{map[string]any{"name": "kcp", "namespace": "kcp", "sectionName": "kcp-tls"}},
		"hostnames":  []any{"kcp.example.com"},
		"rules":      []any{map[string]any{"backendRefs": []any{map[string]any{"name": "kcp-front-proxy", "port": float64(443)}}}},
	}
	if !reflect.DeepEqual(route["spec"], want) {
		t.Errorf("TLSRoute spec = %v\nwant %v", route["spec"], want)
	}
	l := mocktest.Dig(rec.Object(t, "kubernetes:gateway.networking.k8s.io/v1:Gateway", "kcp"), "spec", "listeners", 0)
	if mocktest.Dig(l, "tls", "mode") != "Passthrough" || mocktest.Dig(l, "protocol") != "TLS" || mocktest.Dig(l, "hostname") != "kcp.example.com" ||
		mocktest.Dig(l, "port") != float64(443) ||
		mocktest.Dig(l, "allowedRoutes", "namespaces", "selector", "matchLabels", "kubernetes.io/metadata.name") != "kcp" {
		t.Errorf("listener = %v", l)
	}
	// Traefik's listeners take its entry point's port (8443 with its chart).
	a.Gateway.Port = 8443
	listeners := mocktest.List(mocktest.Dig(run(t, a).Object(t, "kubernetes:gateway.networking.k8s.io/v1:Gateway", "kcp"), "spec", "listeners"))
	if len(listeners) != 2 {
		t.Fatalf("%d listeners, want kcp.<domain>'s and the shards'", len(listeners))
	}
	for i, l := range listeners {
		if got := mocktest.Dig(l, "port"); got != float64(8443) {
			t.Errorf("listener %d's port = %v, want ingress.gateway.port", i, got)
		}
	}
	if n := len(rec.OfType("kubernetes:networking.k8s.io/v1:Ingress")); n != 0 {
		t.Errorf("%d Ingresses in gateway mode", n)
	}
	// The up waits for the implementation to program the Gateway and accept the route.
	for typ, want := range map[string]string{"Gateway": GatewayProgrammed, "TLSRoute": RouteAccepted} {
		if got := mocktest.Dig(rec.Object(t, "kubernetes:gateway.networking.k8s.io/v1:"+typ, "kcp"), "metadata", "annotations", workload.WaitFor); got != want {
			t.Errorf("%s %s = %v, want %s", typ, workload.WaitFor, got, want)
		}
	}
	// An existing Gateway elsewhere: only the route, pointing at it.
	a.Gateway = Gateway{Name: "shared", Namespace: "gateways", Listener: "tls"}
	rec = run(t, a)
	if n := len(rec.OfType("kubernetes:gateway.networking.k8s.io/v1:Gateway")); n != 0 {
		t.Errorf("a Gateway was created although one exists")
	}
	if got := mocktest.Dig(rec.Object(t, "kubernetes:gateway.networking.k8s.io/v1:TLSRoute", "kcp"), "spec", "parentRefs", 0); !reflect.DeepEqual(got,
		map[string]any{"name": "shared", "namespace": "gateways", "sectionName": "tls"}) {
		t.Errorf("parentRef = %v", got)
	}
	a.InstallController = true
	fieldtest.Expect(t, a.WithDefaults().Validate(field.NewPath("ingress")), "ingress.installController", "false with mode gateway")
}

// TestShardRoutes: in every mode a shard's public host leads straight to its
// own Service (TLS untouched, so its client-certificate and token checks
// stay), as its own object beside the front-proxy's.
func TestShardRoutes(t *testing.T) {
	sh := shard.Shard{Name: "shard-1"}
	gw := args(ModeGateway)
	gw.Gateway = Gateway{ClassName: "example"}
	tests := []struct {
		name, typ, object string
		args              Args
		host, backend     []any // path to the host and to the backend name
		port              []any
		want              any // the backend port
	}{
		{"passthrough", "kubernetes:networking.k8s.io/v1:Ingress", "kcp-shard-1", args(ModePassthrough),
			[]any{"spec", "rules", 0, "host"}, []any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"},
			[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"}, float64(6443)},
		{"gateway", "kubernetes:gateway.networking.k8s.io/v1:TLSRoute", "kcp-shard-1", gw,
			[]any{"spec", "hostnames", 0}, []any{"spec", "rules", 0, "backendRefs", 0, "name"},
			[]any{"spec", "rules", 0, "backendRefs", 0, "port"}, float64(6443)},
		{"load balancer", "kubernetes:core/v1:Service", "kcp-shard-1-lb", args(ModeLoadBalancer),
			[]any{"metadata", "annotations", "external-dns.kubernetes.io/hostname"}, []any{"spec", "selector", "app.kubernetes.io/name"},
			[]any{"spec", "ports", 0, "targetPort"}, float64(6443)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.args
			a.Shards, a.ShardPort = []shard.Shard{sh}, 6443
			o := run(t, a).Object(t, tt.typ, tt.object)
			if mocktest.Dig(o, tt.host...) != "shard-1.kcp.example.com" {
				t.Errorf("host = %v", mocktest.Dig(o, tt.host...))
			}
			if got := mocktest.Dig(o, tt.backend...); got != "kcp-shard-1" {
				t.Errorf("backend = %v, want the shard's", got)
			}
			if got := mocktest.Dig(o, tt.port...); got != tt.want {
				t.Errorf("port = %v, want %v", got, tt.want)
			}
		})
	}
	// The controller kcp-tmc installs may reach each shard's port.
	ctl := args(ModePassthrough)
	ctl.InstallController, ctl.Shards, ctl.ShardPort = true, []shard.Shard{sh}, 6443
	egress := fmt.Sprint(mocktest.Dig(run(t, ctl).Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-ingress-nginx"), "spec", "egress"))
	if !strings.Contains(egress, "app.kubernetes.io/name:kcp-shard-1") || !strings.Contains(egress, "port:6443") {
		t.Errorf("the controller cannot reach the shard: %s", egress)
	}
	// A created Gateway listens for the shards' hosts too, and the shard's
	// route attaches to that listener.
	gw.Shards, gw.ShardPort = []shard.Shard{sh}, 6443
	rec := run(t, gw)
	if got := mocktest.Dig(rec.Object(t, "kubernetes:gateway.networking.k8s.io/v1:Gateway", "kcp"), "spec", "listeners", 1, "hostname"); got != "*.kcp.example.com" {
		t.Errorf("Gateway's shard listener hostname = %v", got)
	}
	if got := mocktest.Dig(rec.Object(t, "kubernetes:gateway.networking.k8s.io/v1:TLSRoute", "kcp-shard-1"), "spec", "parentRefs", 0, "sectionName"); got != "kcp-tls-shards" {
		t.Errorf("shard route attaches to %v", got)
	}
}

// TestSourceRanges: every load balancer kcp-tmc makes (the front door's and
// each shard's) accepts only ingress.sourceRanges; without the key the
// field stays unset, so stacks without it see no change.
func TestSourceRanges(t *testing.T) {
	a := args(ModeLoadBalancer)
	a.Shards, a.ShardPort = []shard.Shard{{Name: "shard-1"}}, 6443
	for _, tt := range []struct {
		name   string
		ranges []string
		want   any
	}{
		{"unset", nil, nil},
		{"two ranges", []string{"203.0.113.0/24", "198.51.100.0/24"}, []any{"203.0.113.0/24", "198.51.100.0/24"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a.SourceRanges = tt.ranges
			rec := run(t, a)
			for _, lb := range []string{FrontDoorLoadBalancer, ShardLoadBalancer(a.Shards[0])} {
				if got := mocktest.Dig(rec.Object(t, "kubernetes:core/v1:Service", lb), "spec", "loadBalancerSourceRanges"); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s loadBalancerSourceRanges = %v, want %v", lb, got, tt.want)
				}
			}
		})
	}
	a.SourceRanges = []string{"203.0.113.7/24"}
	fieldtest.Expect(t, a.WithDefaults().Validate(field.NewPath("ingress")), "ingress.sourceRanges[0]", "must not have bits set beyond the prefix length")
}

// TestFirstGatewayAddress: the kcp side reaches a Gateway of the stack's
// at the first IP or hostname its implementation reports.
func TestFirstGatewayAddress(t *testing.T) {
	addr := func(typ, value string) map[string]any {
		a := map[string]any{"value": value}
		if typ != "" {
			a["type"] = typ
		}
		return a
	}
	status := func(addrs ...map[string]any) map[string]any {
		l := []any{}
		for _, a := range addrs {
			l = append(l, a)
		}
		return map[string]any{"status": map[string]any{"addresses": l}}
	}
	tests := []struct {
		name string
		gw   map[string]any
		want string
	}{
		{"no status yet", map[string]any{"spec": map[string]any{}}, ""},
		{"no addresses", status(), ""},
		{"an IP", status(addr("IPAddress", "198.51.100.10")), "198.51.100.10"},
		{"type unset: an IP", status(addr("", "198.51.100.10")), "198.51.100.10"},
		{"a hostname", status(addr("Hostname", "k8s-traefik-1234.elb.us-east-1.amazonaws.com")), "k8s-traefik-1234.elb.us-east-1.amazonaws.com"},
		{"a named address first: not a host", status(addr("NamedAddress", "prod-pool"), addr("IPAddress", "198.51.100.11")), "198.51.100.11"},
		{"an empty value skipped", status(addr("IPAddress", ""), addr("Hostname", "gw.example.com")), "gw.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := firstGatewayAddress(tt.gw); got != tt.want {
				t.Errorf("firstGatewayAddress = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFrontDoorInside: a pod on kcp's own cluster reaches kcp's public
// address at the pod that serves it, whose flow depends on the mode.
func TestFrontDoorInside(t *testing.T) {
	frontProxy := netpol.Flow{Namespace: "kcp", Pods: map[string]string{"app.kubernetes.io/name": "kcp-front-proxy"}, Ports: []int{8443}}
	tests := []struct {
		name, mode string
		gateway    Gateway
		want       netpol.Flow
	}{
		{"load balancer", ModeLoadBalancer, Gateway{}, frontProxy},
		// The data plane's pods are the implementation's; they listen on the listener's port.
		{"a Gateway of the stack's", ModeGateway, Gateway{ClassName: "eg"}, netpol.Flow{Namespace: "*", Ports: []int{443}}},
		{"Traefik's entry point", ModeGateway, Gateway{ClassName: "traefik", Port: 8443}, netpol.Flow{Namespace: "*", Ports: []int{8443}}},
		{"an existing Gateway: its port unknown", ModeGateway, Gateway{Name: "shared"}, netpol.Flow{Namespace: "*"}},
		{"passthrough", ModePassthrough, Gateway{}, netpol.Flow{Namespace: ControllerNamespace}},
		{"terminate", ModeTerminate, Gateway{}, netpol.Flow{Namespace: ControllerNamespace}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FrontDoorInside(tt.mode, tt.gateway, frontProxy); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FrontDoorInside(%s, %+v) = %+v, want %+v", tt.mode, tt.gateway, got, tt.want)
			}
		})
	}
}
