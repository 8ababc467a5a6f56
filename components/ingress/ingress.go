// Package ingress publishes kcp at kcp.<domain>. kcp clients authenticate
// with client certificates, so the default keeps TLS end to end: nginx's SSL
// passthrough, or a TCP (NLB) load balancer. Terminating TLS at nginx is
// available only as an explicit mode (see docs/ingress.md for why it breaks
// client-certificate authentication).
package ingress

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:ingress:Ingress"

// Exposure modes.
const (
	ModePassthrough  = "passthrough"  // nginx Ingress, ssl-passthrough: TLS reaches kcp untouched
	ModeLoadBalancer = "loadbalancer" // a LoadBalancer Service (NLB, TCP): TLS reaches kcp untouched
	ModeTerminate    = "terminate"    // nginx terminates TLS and speaks gRPC on: breaks client-cert auth
	// ModeGateway routes by SNI through a Gateway API TLSRoute in
	// passthrough mode: TLS reaches kcp untouched, on any conformant
	// Gateway implementation (ingress-nginx was retired in March 2026).
	ModeGateway = "gateway"
)

// Defaults.
const (
	DefaultClassName         = "nginx"
	DefaultControllerVersion = "4.12.1" // ingress-nginx Helm chart
	DefaultTerminateSecret   = "kcp-tls-cert"
	ControllerNamespace      = "ingress-nginx"
)

// NLBAnnotations make the AWS Load Balancer Controller provision an internet-facing NLB
// that forwards TCP to pod IPs.
var NLBAnnotations = map[string]string{
	"service.beta.kubernetes.io/aws-load-balancer-type":            "external",
	"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
	"service.beta.kubernetes.io/aws-load-balancer-scheme":          "internet-facing",
}

// ExternalDNSPrefixes are the annotation prefixes external-dns reads:
// v0.22.0 reads external-dns.kubernetes.io/ (its
// source/annotations.DefaultAnnotationPrefix), v0.21.0 and older
// external-dns.alpha.kubernetes.io/ only, so both are written.
var ExternalDNSPrefixes = []string{"external-dns.kubernetes.io/", "external-dns.alpha.kubernetes.io/"}

// ExternalDNSTTL is the records' TTL in seconds: short, so a load balancer
// that gets a new address (replaced, recreated) is found again within a
// minute.
const ExternalDNSTTL = 60

// ExternalDNSAnnotations ask external-dns (its `service` source) to publish
// host at the load balancer's address: an A record for an IP, a CNAME (an
// alias on Route 53) for a hostname such as an NLB's. Inert without
// external-dns.
func ExternalDNSAnnotations(host string) map[string]string {
	out := map[string]string{}
	for _, p := range ExternalDNSPrefixes {
		out[p+"hostname"] = host
		out[p+"ttl"] = strconv.Itoa(ExternalDNSTTL)
	}
	return out
}

// ExternalDNSHandsOff tells external-dns's sources to leave an object
// alone: its controller annotation naming another controller than
// external-dns's own (v0.22.0 source/annotations IsControllerMismatch,
// which its gateway route sources check). The TLSRoutes carry it when the
// up publishes their hosts itself (ingress.route53ZoneId): one writer per
// name.
func ExternalDNSHandsOff() map[string]string {
	out := map[string]string{}
	for _, p := range ExternalDNSPrefixes {
		out[p+"controller"] = "kcp-tmc"
	}
	return out
}

// Args configures the exposure.
type Args struct {
	Mode      string
	Namespace string // kcp's namespace (the front-proxy Service)
	Host      string // kcp.<domain>
	ClassName string
	// BackendService and BackendPort name the front-proxy Service; TargetPort
	// is its container port (for the load balancer).
	BackendService string
	BackendPort    int
	TargetPort     int
	// TerminateSecret is the TLS Secret nginx serves in terminate mode.
	TerminateSecret string
	// NLB annotates load-balancer Services for an AWS NLB (prod).
	NLB bool
	// PublishedByStack: the stack publishes the hosts itself (Route 53), so
	// the load balancers carry no external-dns annotations and the TLSRoutes
	// tell external-dns to leave them alone (one writer per name).
	PublishedByStack bool
	// InstallController installs ingress-nginx with --enable-ssl-passthrough
	// (not in render mode).
	InstallController  bool
	ControllerVersion  string
	ControllerReplicas int
	// PodSecurityVersion and Labels configure the controller's namespace,
	// built like kcp's: Pod Security `restricted`, default deny.
	PodSecurityVersion string
	Labels             map[string]string
	// MonitoringNamespace may scrape the controller's metrics.
	MonitoringNamespace string
	// Gateway is the Gateway the TLSRoute attaches to (mode gateway).
	Gateway Gateway
	// SourceRanges are the only client CIDRs the load balancers accept
	// (mode loadbalancer; none: every address): each LoadBalancer Service's
	// loadBalancerSourceRanges, which the AWS Load Balancer Controller
	// makes the NLB's security group rules and kube-proxy enforces for
	// load balancers that route to the nodes.
	SourceRanges []string
	// Shards are the kcp shards besides the root shard: each gets a route
	// of its public host (below Host) straight to its Service on ShardPort
	// (TLS untouched), where agents reach its virtual workspaces.
	Shards    []shard.Shard
	ShardPort int
}

// Gateway names the Gateway of mode gateway: an existing one (its TLS
// listener in Passthrough mode must allow routes from kcp's namespace), or
// one created here when ClassName is set. It is also the stack key
// kcp-tmc:ingress.gateway.
type Gateway struct {
	// Name is the Gateway the TLSRoute attaches to (default `kcp`).
	Name string `json:"name"`
	// Namespace is the Gateway's namespace (default: kcp's).
	Namespace string `json:"namespace"`
	// Listener is the Gateway's TLS listener (sectionName; default
	// `kcp-tls`); it must be in Passthrough mode and allow routes from kcp's
	// namespace.
	Listener string `json:"listener"`
	// ClassName, when set, creates that Gateway with this GatewayClass: TLS
	// Passthrough listeners on `port` for kcp.<domain> and (shards' own
	// addresses) *.kcp.<domain>.
	ClassName string `json:"className"`
	// Port is the created Gateway's listeners' port (with className only;
	// default 443): the port the implementation's data plane takes for it,
	// the public one for most (Envoy Gateway, Istio, Cilium, NGINX Gateway
	// Fabric), Traefik's entry point's (8443 with its chart, exposed on 443).
	Port int `json:"port"`
}

// ListenerPort is the port of the Gateway's listeners that kcp-tmc
// creates (with ClassName): Port, default DefaultGatewayPort; 0 for an
// existing Gateway, whose listeners have their own.
func (g Gateway) ListenerPort() int {
	switch {
	case g.ClassName == "":
		return g.Port // refused by Validate unless 0
	case g.Port == 0:
		return DefaultGatewayPort
	}
	return g.Port
}

// DefaultGatewayPort is the created Gateway's listeners' port: clients
// reach kcp.<domain> on 443.
const DefaultGatewayPort = 443

// Ingress is the component.
type Ingress struct {
	pulumi.ResourceState

	// URL is where clients reach kcp.
	URL pulumi.StringOutput `pulumi:"url"`
	// Routes are the objects clients reach kcp through, for the DependsOn of
	// what must go through them: depending on the component alone covers
	// only the children the SDK has registered by then (it adds a child once
	// the child's inputs resolve).
	Routes []pulumi.Resource
	// Address is where a client outside DNS reaches the front door, on
	// 443: in loadbalancer mode the load balancer's own IP or hostname once
	// it has one (awaited), in gateway mode with a Gateway of kcp-tmc's the
	// first address its implementation reports (awaited with Programmed),
	// so the program needs no DNS record to reach kcp in the up that
	// creates it; otherwise the public host. The front door serves the
	// public host's certificate either way.
	Address pulumi.StringOutput
	// HostAddresses are each public host's address, what its DNS record
	// points at (IP or hostname; "" while there is none): its own load
	// balancer's in loadbalancer mode, the Gateway's in gateway mode with a
	// Gateway of the stack's; nil in the other modes.
	HostAddresses map[string]pulumi.StringOutput
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Mode, ModeLoadBalancer)
	component.Default(&a.ClassName, DefaultClassName)
	component.Default(&a.TerminateSecret, DefaultTerminateSecret)
	component.Default(&a.ControllerVersion, DefaultControllerVersion)
	if a.Mode == ModeGateway {
		component.Default(&a.Gateway.Name, "kcp")
		component.Default(&a.Gateway.Namespace, a.Namespace)
		component.Default(&a.Gateway.Listener, "kcp-tls")
		a.Gateway.Port = a.Gateway.ListenerPort()
	}
	return a
}

// Validate reports every invalid field under fld, children named by the
// stack's keys.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	errs := check.OneOf(fld.Child("mode"), a.Mode, ModeGateway, ModeLoadBalancer, ModePassthrough, ModeTerminate)
	if a.Mode == ModeGateway {
		g := fld.Child("gateway")
		errs = append(errs, check.DNSLabel(g.Child("name"), a.Gateway.Name, "a Gateway name")...)
		errs = append(errs, check.DNSLabel(g.Child("namespace"), a.Gateway.Namespace, "a namespace")...)
		errs = append(errs, check.DNSLabel(g.Child("listener"), a.Gateway.Listener, "a listener (sectionName)")...)
		if a.Gateway.ClassName != "" {
			errs = append(errs, check.DNSSubdomain(g.Child("className"), a.Gateway.ClassName, "a GatewayClass name")...)
			errs = append(errs, check.Range(g.Child("port"), a.Gateway.Port, 1, 65535, "")...)
		} else if a.Gateway.Port != 0 {
			errs = append(errs, field.Invalid(g.Child("port"), a.Gateway.Port, "unset unless ingress.gateway.className is set (an existing Gateway's listener has its own port)"))
		}
	}
	errs = append(errs, check.DNSSubdomain(fld.Child("host"), a.Host, "a DNS name")...)
	errs = append(errs, validateSourceRanges(fld.Child("sourceRanges"), a.SourceRanges)...)
	if len(a.SourceRanges) > 0 && a.Mode != ModeLoadBalancer {
		errs = append(errs, field.Invalid(fld.Child("sourceRanges"), strings.Join(a.SourceRanges, ","),
			"unset unless ingress.mode is loadbalancer (a Gateway's or an ingress controller's load balancer is not kcp-tmc's)"))
	}
	if a.BackendService == "" || a.BackendPort < 1 || a.TargetPort < 1 {
		errs = append(errs, field.Required(fld.Child("backend"), "the front-proxy Service, its port and target port"))
	}
	errs = append(errs, shard.ValidateNames(fld.Child("shards"), shard.Names(a.Shards))...)
	if len(a.Shards) > 0 && a.ShardPort < 1 {
		errs = append(errs, field.Required(fld.Child("shardPort"), "the port of the shards' Services"))
	}
	switch {
	case a.InstallController && a.Mode == ModeLoadBalancer:
		errs = append(errs, field.Invalid(fld.Child("installController"), true, "false with mode loadbalancer (no ingress controller is involved)"))
	case a.InstallController && a.Mode == ModeGateway:
		errs = append(errs, field.Invalid(fld.Child("installController"), true, "false with mode gateway (it installs ingress-nginx; the Gateway's implementation is installed with its GatewayClass)"))
	}
	errs = append(errs, check.DNSLabel(fld.Child("className"), a.ClassName, "an IngressClass name")...)
	errs = append(errs, check.ChartVersion(fld.Child("controllerVersion"), a.ControllerVersion, DefaultControllerVersion)...)
	return append(errs, check.Range(fld.Child("controllerReplicas"), a.ControllerReplicas, 1, 9, "")...)
}

// FrontProxyClients is who must be able to reach the front-proxy in a mode:
// the controller's namespace, or (load balancer, client IPs preserved) anyone.
func FrontProxyClients(mode string) []netpol.Flow {
	switch mode {
	case ModeLoadBalancer:
		return []netpol.Flow{netpol.Anywhere()}
	case ModeGateway:
		// Where a Gateway's data plane runs depends on its implementation
		// (its own namespace, the Gateway's, a node port): any pod may
		// connect; the front-proxy still demands a client certificate.
		return []netpol.Flow{{Namespace: "*"}}
	}
	return []netpol.Flow{{Namespace: ControllerNamespace}}
}

// FrontDoorInside is the front door as a pod of kcp's own cluster reaches
// it (an agent there): its connection to kcp's public address is
// translated to the pod that serves the address before a NetworkPolicy
// judges it — the front-proxy's, given as frontProxy, behind kcp-tmc's load
// balancer; a Gateway's data plane, whose pods are its implementation's
// (any pod) and listen on the listener's port (gateway's ListenerPort:
// Traefik's entry point; unknown for an existing Gateway: any port);
// ingress-nginx's controller pods. Every agent gets the flow (which
// cluster hosts kcp is not known): elsewhere it reaches pods of its own
// cluster on that port only, each destination's own policy still deciding.
func FrontDoorInside(mode string, gateway Gateway, frontProxy netpol.Flow) netpol.Flow {
	switch mode {
	case ModeGateway:
		if port := gateway.ListenerPort(); port > 0 {
			return netpol.Flow{Namespace: "*", Ports: []int{port}}
		}
		return netpol.Flow{Namespace: "*"}
	case ModePassthrough, ModeTerminate:
		return netpol.Flow{Namespace: ControllerNamespace}
	}
	return frontProxy
}

// NewIngress registers the component and its children.
func NewIngress(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Ingress, error) {
	args = args.WithDefaults()
	comp := &Ingress{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("ingress")), opts...); err != nil {
		return nil, err
	}
	child := []pulumi.ResourceOption{pulumi.Parent(comp)}
	if args.InstallController {
		rel, err := installController(ctx, name, args, child)
		if err != nil {
			return nil, err
		}
		child = append(child, pulumi.DependsOn([]pulumi.Resource{rel}))
	}

	var err error
	switch args.Mode {
	case ModeLoadBalancer:
		comp.Routes, err = loadBalancer(ctx, name, args, child)
	case ModeGateway:
		comp.Routes, err = gatewayRoute(ctx, name, args, child)
	default:
		comp.Routes, err = ingressObject(ctx, name, args, child)
	}
	if err != nil {
		return nil, err
	}
	comp.URL = pulumi.Sprintf("https://%s", args.Host)
	comp.Address = pulumi.String(args.Host).ToStringOutput()
	switch {
	case args.Mode == ModeLoadBalancer:
		comp.HostAddresses = map[string]pulumi.StringOutput{}
		for i, r := range routes(args) {
			comp.HostAddresses[r.Host] = loadBalancerAddress(comp.Routes[i].(*corev1.Service))
		}
	case args.Mode == ModeGateway && args.Gateway.ClassName != "":
		gw := gatewayAddress(comp.Routes[0].(*apiextensions.CustomResource))
		comp.HostAddresses = map[string]pulumi.StringOutput{}
		for _, r := range routes(args) {
			comp.HostAddresses[r.Host] = gw
		}
	}
	if addr, ok := comp.HostAddresses[args.Host]; ok {
		comp.Address = orHost(addr, args.Host)
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"url": comp.URL}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// Annotations are the Ingress annotations of a mode.
func Annotations(a Args) map[string]string {
	if a.Mode == ModeTerminate {
		// nginx decrypts and speaks gRPC to the backend; the
		// client's certificate ends at nginx.
		return map[string]string{"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}
	}
	return map[string]string{
		"nginx.ingress.kubernetes.io/ssl-passthrough":  "true",
		"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
	}
}

func ingressObject(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) ([]pulumi.Resource, error) {
	var made []pulumi.Resource
	for _, r := range routes(a) {
		meta := workload.Meta(r.object, a.Namespace, "kcp-front-proxy")
		meta.Annotations = pulumi.ToStringMap(Annotations(a))
		spec := &networkingv1.IngressSpecArgs{
			IngressClassName: pulumi.String(a.ClassName),
			Rules: networkingv1.IngressRuleArray{networkingv1.IngressRuleArgs{
				Host: pulumi.String(r.Host),
				Http: &networkingv1.HTTPIngressRuleValueArgs{Paths: networkingv1.HTTPIngressPathArray{networkingv1.HTTPIngressPathArgs{
					Path: pulumi.String("/"), PathType: pulumi.String("Prefix"),
					Backend: networkingv1.IngressBackendArgs{Service: &networkingv1.IngressServiceBackendArgs{
						Name: pulumi.String(r.Service), Port: &networkingv1.ServiceBackendPortArgs{Number: pulumi.Int(r.Port)},
					}},
				}}},
			}},
		}
		if a.Mode == ModeTerminate {
			spec.Tls = networkingv1.IngressTLSArray{networkingv1.IngressTLSArgs{
				Hosts: pulumi.ToStringArray([]string{r.Host}), SecretName: pulumi.String(a.TerminateSecret),
			}}
		}
		ing, err := networkingv1.NewIngress(ctx, name+"-"+r.urn, &networkingv1.IngressArgs{Metadata: meta, Spec: spec}, opts...)
		if err != nil {
			return nil, fmt.Errorf("Ingress for %s: %w", r.Host, err)
		}
		made = append(made, ing)
	}
	return made, nil
}

// route is one public host and what it leads to: the front-proxy's first,
// then each shard's own.
type route struct {
	Name, Host, Service string
	Port                int
	// Selector labels the pods behind the host (the load balancer selects them).
	Selector    map[string]string
	urn, object string // Pulumi name suffix and object name
	lb          string // the LoadBalancer Service's name
	shard       bool
}

// routes are the front-proxy's route and each shard's; object names the
// Ingress or TLSRoute of a host (kcp, kcp-<shard>).
func routes(a Args) []route {
	out := []route{{Name: "kcp", Host: a.Host, Service: a.BackendService, Port: a.BackendPort,
		Selector: workload.Labels("kcp-front-proxy"), urn: "kcp", object: "kcp", lb: FrontDoorLoadBalancer}}
	for _, s := range a.Shards {
		out = append(out, route{Name: s.Name, Host: s.PublicHost(a.Host), Service: s.Service(), Port: a.ShardPort,
			Selector: workload.Labels(s.Deployment()), urn: s.URN(), object: s.Deployment(), lb: ShardLoadBalancer(s), shard: true})
	}
	return out
}

// PublicHosts are the hosts clients reach: kcp.<domain>, then each shard's.
func PublicHosts(a Args) []string {
	var hosts []string
	for _, r := range routes(a) {
		hosts = append(hosts, r.Host)
	}
	return hosts
}

// shardFlows let the ingress controller reach each shard's port.
func shardFlows(a Args) []netpol.Flow {
	var out []netpol.Flow
	for _, s := range a.Shards {
		out = append(out, netpol.Flow{Pods: workload.Labels(s.Deployment()), Namespace: a.Namespace, Ports: []int{a.ShardPort}})
	}
	return out
}

// ShardListener is the listener of the Gateway the shards' routes attach
// to: a created Gateway's second listener (*.<kcp host>), or an existing
// Gateway's listener, whose hostname must then cover the shards' hosts.
func ShardListener(a Args) string {
	if a.Gateway.ClassName != "" {
		return a.Gateway.Listener + "-shards"
	}
	return a.Gateway.Listener
}

// The up waits, through the Kubernetes provider's workload.WaitFor, for
// the Gateway's implementation to program the Gateway it creates and to
// accept each TLSRoute on its parent: a Gateway whose listeners the
// implementation refuses (Traefik's without an entry point on their port),
// or a listener that does not admit routes from kcp's namespace, fails the
// up at that object instead of leaving a front door that answers nothing.
const (
	GatewayProgrammed = "condition=Programmed"
	RouteAccepted     = `jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}=True`
)

// GatewayAddressed is the wait for a Gateway's implementation to report
// an address: Programmed alone may come first (Traefik v3.7.9 programs a
// Gateway whose Service has no load-balancer address yet, with none).
const GatewayAddressed = "jsonpath={.status.addresses[0].value}"

// gatewayWaitFor is what the up awaits of the Gateway it creates:
// Programmed, and with the hosts published by the stack (Route 53) also an
// address to publish them at (the provider's JSON list: every condition).
// Without, an implementation that reports no address still serves.
func gatewayWaitFor(a Args) string {
	if !a.PublishedByStack {
		return GatewayProgrammed
	}
	b, _ := json.Marshal([]string{GatewayProgrammed, GatewayAddressed})
	return string(b)
}

// gatewayRoute attaches a TLSRoute for the host to the Gateway's
// passthrough listener, backed by the front-proxy Service; with a
// GatewayClass it creates that Gateway too.
func gatewayRoute(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) ([]pulumi.Resource, error) {
	var made []pulumi.Resource
	g := a.Gateway
	if g.ClassName != "" {
		meta := workload.Meta(g.Name, g.Namespace, "kcp-front-proxy")
		meta.Annotations = pulumi.StringMap{workload.WaitFor: pulumi.String(gatewayWaitFor(a))}
		gw, err := apiextensions.NewCustomResource(ctx, name+"-gateway", &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("gateway.networking.k8s.io/v1"), Kind: pulumi.String("Gateway"),
			Metadata: meta,
			OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{
				"gatewayClassName": pulumi.String(g.ClassName),
				// kcp.<domain> (the front-proxy) and *.kcp.<domain> (shards'
				// own addresses), both only for routes in kcp's namespace.
				"listeners": pulumi.Array{listener(a, g.Listener, a.Host), listener(a, ShardListener(a), "*."+a.Host)},
			}},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("Gateway %s: %w", g.Name, err)
		}
		opts = append(opts, pulumi.DependsOn([]pulumi.Resource{gw}))
		made = append(made, gw)
	}
	for _, r := range routes(a) {
		urn, section := name+"-tlsroute", g.Listener
		if r.shard {
			urn, section = name+"-tlsroute-"+r.Name, ShardListener(a)
		}
		meta := workload.Meta(r.object, a.Namespace, "kcp-front-proxy")
		annotations := map[string]string{workload.WaitFor: RouteAccepted}
		if a.PublishedByStack {
			maps.Copy(annotations, ExternalDNSHandsOff())
		}
		meta.Annotations = pulumi.ToStringMap(annotations)
		route, err := apiextensions.NewCustomResource(ctx, urn, &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("gateway.networking.k8s.io/v1"), Kind: pulumi.String("TLSRoute"),
			Metadata: meta,
			OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{
				"parentRefs": pulumi.Array{pulumi.Map{"name": pulumi.String(g.Name), "namespace": pulumi.String(g.Namespace),
					"sectionName": pulumi.String(section)}},
				"hostnames": pulumi.ToStringArray([]string{r.Host}),
				"rules": pulumi.Array{pulumi.Map{"backendRefs": pulumi.Array{pulumi.Map{
					"name": pulumi.String(r.Service), "port": pulumi.Int(r.Port)}}}},
			}},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("TLSRoute for %s: %w", r.Host, err)
		}
		made = append(made, route)
	}
	return made, nil
}

// listener is a TLS passthrough listener for routes in kcp's namespace.
func listener(a Args, name, host string) pulumi.Map {
	return pulumi.Map{
		"name": pulumi.String(name), "protocol": pulumi.String("TLS"), "port": pulumi.Int(a.Gateway.Port),
		"hostname": pulumi.String(host),
		"tls":      pulumi.Map{"mode": pulumi.String("Passthrough")},
		"allowedRoutes": pulumi.Map{
			"kinds": pulumi.Array{pulumi.Map{"group": pulumi.String("gateway.networking.k8s.io"), "kind": pulumi.String("TLSRoute")}},
			"namespaces": pulumi.Map{"from": pulumi.String("Selector"), "selector": pulumi.Map{"matchLabels": pulumi.StringMap{
				"kubernetes.io/metadata.name": pulumi.String(a.Namespace)}}},
		},
	}
}

// MaxSourceRanges is a security group's default quota of inbound rules:
// the AWS Load Balancer Controller makes one per range on the NLB's.
const MaxSourceRanges = 60

// validateSourceRanges accepts IPv4 CIDRs only: kcp-tmc's load balancers
// are single-stack IPv4, an IPv6 range would leave their IPv4 side open
// (kube-proxy filters per family) and the AWS controller refuses one on an
// NLB that is not dual-stack. An explicit empty list would mean everyone,
// as unset does: it is refused rather than read as "nobody".
func validateSourceRanges(fld *field.Path, ranges []string) field.ErrorList {
	if ranges != nil && len(ranges) == 0 {
		return field.ErrorList{field.Invalid(fld, "[]", "at least one IPv4 CIDR, or unset for every address")}
	}
	if len(ranges) > MaxSourceRanges {
		return field.ErrorList{field.TooMany(fld, len(ranges), MaxSourceRanges)}
	}
	errs := check.CIDRs(fld, ranges)
	for i, r := range ranges {
		if p, err := netip.ParsePrefix(r); err == nil && !p.Addr().Is4() {
			errs = append(errs, field.Invalid(fld.Index(i), r, "an IPv4 CIDR (kcp's load balancers are IPv4 only)"))
		}
	}
	return errs
}

// FrontDoorLoadBalancer is the front-proxy's LoadBalancer Service
// (ingress.mode loadbalancer).
const FrontDoorLoadBalancer = "kcp-front-proxy-lb"

// ShardLoadBalancer is the LoadBalancer Service of a shard's own public
// address (ingress.mode loadbalancer), s not the root shard.
func ShardLoadBalancer(s shard.Shard) string { return s.Deployment() + "-lb" }

// loadBalancer is one LoadBalancer Service for the front-proxy and one per
// shard (each host's DNS record points at its own).
func loadBalancer(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) ([]pulumi.Resource, error) {
	var made []pulumi.Resource
	for _, r := range routes(a) {
		// The load balancer sends TCP to the pods' own port.
		urn, object, port := name+"-lb", r.lb, a.TargetPort
		if r.shard {
			urn, port = name+"-lb-"+r.Name, r.Port
		}
		meta := workload.Meta(object, a.Namespace, "kcp-front-proxy")
		annotations := map[string]string{}
		if !a.PublishedByStack {
			annotations = ExternalDNSAnnotations(r.Host)
		}
		if a.NLB {
			maps.Copy(annotations, NLBAnnotations)
		}
		meta.Annotations = pulumi.ToStringMap(annotations)
		var sourceRanges pulumi.StringArrayInput // unset, not empty: no diff on stacks without the key
		if len(a.SourceRanges) > 0 {
			sourceRanges = pulumi.ToStringArray(a.SourceRanges)
		}
		svc, err := corev1.NewService(ctx, urn, &corev1.ServiceArgs{
			Metadata: meta,
			Spec: &corev1.ServiceSpecArgs{
				Type:                     pulumi.String("LoadBalancer"),
				ExternalTrafficPolicy:    pulumi.String("Local"), // no second hop through another node
				LoadBalancerSourceRanges: sourceRanges,
				Selector:                 pulumi.ToStringMap(r.Selector),
				Ports: corev1.ServicePortArray{corev1.ServicePortArgs{
					Name: pulumi.String("https"), Protocol: pulumi.String("TCP"), Port: pulumi.Int(443), TargetPort: pulumi.Int(port),
				}},
			},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("LoadBalancer Service %s: %w", object, err)
		}
		made = append(made, svc)
	}
	return made, nil
}

// orHost is addr, or host while addr is "" (no address yet: render mode,
// an implementation that reports none).
func orHost(addr pulumi.StringOutput, host string) pulumi.StringOutput {
	return addr.ApplyT(func(a string) string {
		if a == "" {
			return host
		}
		return a
	}).(pulumi.StringOutput)
}

// gatewayAddress is the address a Gateway's implementation reports.
func gatewayAddress(gw *apiextensions.CustomResource) pulumi.StringOutput {
	return gw.OtherFields.ApplyT(firstGatewayAddress).(pulumi.StringOutput)
}

// firstGatewayAddress is the first IP or hostname in a Gateway's
// status.addresses (Gateway API v1), "" while it lists none.
func firstGatewayAddress(gw map[string]any) string {
	status, _ := gw["status"].(map[string]any)
	addrs, _ := status["addresses"].([]any)
	for _, a := range addrs {
		a, _ := a.(map[string]any)
		switch v, _ := a["value"].(string); a["type"] {
		case nil, "IPAddress", "Hostname": // unset is IPAddress; a NamedAddress is no host
			if v != "" {
				return v
			}
		}
	}
	return ""
}

// loadBalancerAddress is the IP or hostname a LoadBalancer Service's load
// balancer reports, "" until it has one.
func loadBalancerAddress(svc *corev1.Service) pulumi.StringOutput {
	return svc.Status.LoadBalancer().Ingress().ApplyT(func(ins []corev1.LoadBalancerIngress) string {
		for _, in := range ins {
			if in.Ip != nil && *in.Ip != "" {
				return *in.Ip
			}
			if in.Hostname != nil && *in.Hostname != "" {
				return *in.Hostname
			}
		}
		return ""
	}).(pulumi.StringOutput)
}

// installController installs ingress-nginx with SSL passthrough enabled,
// spread over zones, with a disruption budget and (prod) an NLB in front.
func installController(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) (pulumi.Resource, error) {
	labels := pulumi.StringMap{"app.kubernetes.io/name": pulumi.String("ingress-nginx"), "app.kubernetes.io/component": pulumi.String("controller")}
	controller := pulumi.Map{
		"replicaCount":         pulumi.Int(a.ControllerReplicas),
		"extraArgs":            pulumi.Map{"enable-ssl-passthrough": pulumi.String("true")},
		"ingressClassResource": pulumi.Map{"name": pulumi.String(a.ClassName)},
		"topologySpreadConstraints": pulumi.Array{pulumi.Map{
			"maxSkew": pulumi.Int(1), "topologyKey": pulumi.String(workload.ZoneKey),
			"whenUnsatisfiable": pulumi.String("ScheduleAnyway"), "labelSelector": pulumi.Map{"matchLabels": labels},
		}},
		"podDisruptionBudget": pulumi.Map{"enabled": pulumi.Bool(a.ControllerReplicas > 1), "maxUnavailable": pulumi.Int(1)},
	}
	if a.NLB {
		controller["service"] = pulumi.Map{"annotations": pulumi.ToStringMap(NLBAnnotations), "externalTrafficPolicy": pulumi.String("Local")}
	}
	// `restricted` allows adding NET_BIND_SERVICE, the one capability nginx needs.
	controller["image"] = pulumi.Map{"allowPrivilegeEscalation": pulumi.Bool(false)}
	controller["containerSecurityContext"] = pulumi.Map{
		"runAsNonRoot": pulumi.Bool(true), "runAsUser": pulumi.Int(101), "runAsGroup": pulumi.Int(82),
		"allowPrivilegeEscalation": pulumi.Bool(false), "seccompProfile": pulumi.Map{"type": pulumi.String("RuntimeDefault")},
		"capabilities": pulumi.Map{"drop": pulumi.ToStringArray([]string{"ALL"}), "add": pulumi.ToStringArray([]string{"NET_BIND_SERVICE"})},
	}
	ns, err := platform.NewPlatform(ctx, name+"-controller", platform.Args{
		Namespace: ControllerNamespace, PodSecurityVersion: a.PodSecurityVersion, Labels: a.Labels,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("controller namespace: %w", err)
	}
	monitoring := a.MonitoringNamespace
	if monitoring == "" {
		monitoring = netpol.MonitoringNamespace
	}
	// kube-score cannot see the controller's pods: the Helm release creates them.
	ignore := map[string]string{"kube-score/ignore": "networkpolicy-targets-pod"}
	if _, err := netpol.NewAnnotatedAllowPolicy(ctx, name+"-controller-netpol", ControllerNamespace, "ingress-nginx",
		map[string]string{"app.kubernetes.io/name": "ingress-nginx"},
		[]netpol.Flow{
			netpol.Anywhere(80, 443),
			netpol.Anywhere(8443), // admission webhook, called by the API server
			{Namespace: monitoring, Ports: []int{10254}},
		},
		append([]netpol.Flow{
			{Pods: workload.Labels("kcp-front-proxy"), Namespace: a.Namespace, Ports: []int{a.TargetPort}},
			netpol.Anywhere(netpol.KubernetesAPIPorts...), // the Kubernetes API (its address differs per cluster)
		}, shardFlows(a)...), ignore, append(opts, pulumi.DependsOn([]pulumi.Resource{ns}))...); err != nil {
		return nil, err
	}
	rel, err := helmrelease.New(ctx, name+"-ingress-nginx", helmrelease.Args{
		Name:      pulumi.String("ingress-nginx"),
		Chart:     pulumi.String("ingress-nginx"),
		Version:   pulumi.String(a.ControllerVersion),
		Namespace: ns.Namespace,
		Repo:      "https://kubernetes.github.io/ingress-nginx",
		Values:    pulumi.Map{"controller": controller},
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{ns}))...)
	if err != nil {
		return nil, fmt.Errorf("ingress-nginx release: %w", err)
	}
	return rel, nil
}
