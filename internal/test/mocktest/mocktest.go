// Package mocktest runs Pulumi programs against the SDK's mock monitor and
// records every resource registration, so tests can assert on what a user
// would see in a preview: types, names, inputs, parents and options.
package mocktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Resource is one recorded registration.
type Resource struct {
	Type           string
	Name           string
	Custom         bool
	Inputs         resource.PropertyMap
	ParentURN      string
	Provider       string
	Protect        bool
	RetainOnDelete bool
	IgnoreChanges  []string
	DependsOn      []string
	// Version is the provider plugin version the registration asks for.
	Version string
}

// Input returns a plain-Go view of the inputs (secrets unwrapped).
func (r Resource) Input() map[string]any { return plain(r.Inputs) }

// plain converts a property map to Go values, unwrapping secrets and
// outputs (unknown values become nil).
func plain(props resource.PropertyMap) map[string]any {
	var unwrap func(resource.PropertyValue) (any, bool)
	unwrap = func(v resource.PropertyValue) (any, bool) {
		switch {
		case v.IsSecret():
			return v.SecretValue().Element.MapRepl(nil, unwrap), true
		case v.IsOutput():
			if !v.OutputValue().Known {
				return nil, true
			}
			return v.OutputValue().Element.MapRepl(nil, unwrap), true
		case v.IsComputed():
			return nil, true
		}
		return nil, false
	}
	return props.MapRepl(nil, unwrap)
}

// ParentName is the logical name of the parent resource ("" for the stack).
func (r Resource) ParentName() string {
	if i := strings.LastIndex(r.ParentURN, "::"); i >= 0 && !strings.Contains(r.ParentURN, "pulumi:pulumi:Stack") {
		return r.ParentURN[i+2:]
	}
	return ""
}

// Recorder implements pulumi.MockResourceMonitor.
type Recorder struct {
	mu        sync.Mutex
	resources []Resource
	urns      map[string]bool
}

// urn is the URN the engine would give res (type chain of its parents and
// name), so a duplicate fails under mocks as it fails on the engine.
func urn(res Resource) string {
	typ := res.Type
	if parts := strings.Split(res.ParentURN, "::"); len(parts) == 4 && !strings.HasPrefix(parts[2], "pulumi:pulumi:Stack") {
		typ = parts[2] + "$" + typ
	}
	return typ + "::" + res.Name
}

// NewResource records the registration and echoes inputs back as state;
// pulumi-tls resources get the outputs the real provider would compute
// (see EmulateTLS), so certificates flow into Secrets as in a real run.
func (r *Recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	res := Resource{Type: args.TypeToken, Name: args.Name, Custom: args.Custom, Inputs: args.Inputs, Provider: args.Provider}
	if rpc := args.RegisterRPC; rpc != nil {
		res.ParentURN = rpc.GetParent()
		res.Protect = rpc.GetProtect()
		res.RetainOnDelete = rpc.GetRetainOnDelete()
		res.IgnoreChanges = rpc.GetIgnoreChanges()
		res.DependsOn = rpc.GetDependencies()
		res.Version = rpc.GetVersion()
	}
	if rpc := args.ReadRPC; rpc != nil { // a resource read by ID (a Get)
		res.ParentURN, res.DependsOn, res.Version = rpc.GetParent(), rpc.GetDependencies(), rpc.GetVersion()
	}
	r.mu.Lock()
	if r.urns == nil {
		r.urns = map[string]bool{}
	}
	dup := r.urns[urn(res)]
	r.urns[urn(res)] = true
	r.resources = append(r.resources, res)
	r.mu.Unlock()
	if dup {
		return "", nil, fmt.Errorf("Duplicate resource URN %q; try giving it a unique name", urn(res))
	}
	state := args.Inputs
	if strings.HasPrefix(args.TypeToken, "tls:") {
		outputs, err := EmulateTLS(args.TypeToken, plain(args.Inputs))
		if err != nil {
			return "", nil, fmt.Errorf("%s %s: %w", args.TypeToken, args.Name, err)
		}
		state = args.Inputs.Copy()
		for k, v := range outputs {
			state[resource.PropertyKey(k)] = resource.NewProperty(v)
		}
	}
	if args.TypeToken == "kubernetes:core/v1:Secret" {
		state = secretData(args, state)
	}
	if args.TypeToken == "kubernetes:core/v1:Service" && Dig(plain(state), "spec", "type") == "LoadBalancer" {
		// What a load-balancer controller reports once it serves the Service.
		state = state.Copy()
		state["status"] = resource.NewProperty(resource.PropertyMap{"loadBalancer": resource.NewProperty(resource.PropertyMap{
			"ingress": resource.NewProperty([]resource.PropertyValue{resource.NewProperty(resource.PropertyMap{"ip": resource.NewProperty(LoadBalancerIP)})}),
		})})
	}
	if args.TypeToken == "kubernetes:gateway.networking.k8s.io/v1:Gateway" {
		// What a Gateway API implementation reports once it has programmed
		// the Gateway: the address its data plane serves.
		state = state.Copy()
		state["status"] = resource.NewProperty(resource.PropertyMap{"addresses": resource.NewProperty([]resource.PropertyValue{
			resource.NewProperty(resource.PropertyMap{"type": resource.NewProperty("IPAddress"), "value": resource.NewProperty(GatewayIP)})})})
	}
	if meta, ok := state["metadata"]; ok && strings.HasPrefix(args.TypeToken, "kubernetes:") && meta.IsObject() {
		// What the apiserver assigns every object: a uid.
		state = state.Copy()
		m := meta.ObjectValue().Copy()
		m["uid"] = resource.NewProperty("uid-" + args.Name)
		state["metadata"] = resource.NewProperty(m)
	}
	if strings.HasPrefix(args.TypeToken, "aws:") {
		// What AWS would assign: an ARN (and a key id) derived from the name.
		state = state.Copy()
		mod := strings.Split(args.TypeToken, ":")[1]
		state["arn"] = resource.NewProperty(fmt.Sprintf("arn:aws:%s:us-east-1:123456789012:%s", strings.Split(mod, "/")[0], args.Name))
		state["keyId"] = resource.NewProperty(args.Name + "-key-id")
		if _, ok := state["name"]; !ok {
			state["name"] = resource.NewProperty(args.Name)
		}
		if args.TypeToken == "aws:eks/cluster:Cluster" {
			// What EKS reports for a new cluster: its OIDC issuer, endpoint and CA.
			state["identities"] = resource.NewProperty([]resource.PropertyValue{resource.NewProperty(resource.PropertyMap{
				"oidcs": resource.NewProperty([]resource.PropertyValue{resource.NewProperty(resource.PropertyMap{
					"issuer": resource.NewProperty("https://oidc.eks.us-east-1.amazonaws.com/id/MOCK" + strings.ToUpper(args.Name)),
				})}),
			})})
			state["endpoint"] = resource.NewProperty("https://" + args.Name + ".gr7.us-east-1.eks.amazonaws.com")
			state["certificateAuthority"] = resource.NewProperty(resource.PropertyMap{"data": resource.NewProperty("Q0EtREFUQQ==")})
		}
	}
	return args.Name + "-id", state, nil
}

// LoadBalancerIP is the address every LoadBalancer Service gets under mocks.
const LoadBalancerIP = "192.0.2.10"

// GatewayIP is the address every Gateway reports under mocks.
const GatewayIP = "192.0.2.20"

// secretData is what the cluster puts into Secrets it fills: a token in a
// service-account-token Secret (kcp's token controller), and for a Secret
// read back by ID (cert-manager's) a certificate, key and CA naming it.
func secretData(args pulumi.MockResourceArgs, state resource.PropertyMap) resource.PropertyMap {
	b64 := func(s string) resource.PropertyValue {
		return resource.NewProperty(base64.StdEncoding.EncodeToString([]byte(s)))
	}
	switch {
	case args.ID != "":
		state = state.Copy()
		state["data"] = resource.NewProperty(resource.PropertyMap{
			"tls.crt": b64("CERT " + args.ID), "tls.key": b64("KEY " + args.ID), "ca.crt": b64("CA " + args.ID)})
	case state["type"].IsString() && state["type"].StringValue() == "kubernetes.io/service-account-token":
		state = state.Copy()
		state["data"] = resource.NewProperty(resource.PropertyMap{"token": b64("TOKEN " + args.Name)})
	}
	return state
}

// Call answers invokes with their arguments.
func (r *Recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	if args.Token == "aws:route53/getZone:getZone" {
		// What Route 53 says of any zone id here: the zone of the stacks' domain.
		out := args.Args.Copy()
		out["name"] = resource.NewProperty(Route53ZoneName)
		return out, nil
	}
	return args.Args, nil
}

// Route53ZoneName is the name of every hosted zone looked up under mocks.
const Route53ZoneName = "example.com"

// All returns every recorded resource.
func (r *Recorder) All() []Resource {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Resource(nil), r.resources...)
}

// OfType returns the resources of one type token.
func (r *Recorder) OfType(typ string) []Resource {
	var out []Resource
	for _, res := range r.All() {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	return out
}

// Object returns the Kubernetes object (inputs) of the given type with
// metadata.name name, failing the test if absent.
func (r *Recorder) Object(t testing.TB, typ, name string) map[string]any {
	t.Helper()
	for _, res := range r.OfType(typ) {
		in := res.Input()
		if meta, ok := in["metadata"].(map[string]any); ok && meta["name"] == name {
			return in
		}
	}
	t.Fatalf("no %s object named %q was registered", typ, name)
	return nil
}

// Named returns the resource with the given type and name, failing the test if absent.
func (r *Recorder) Named(t testing.TB, typ, name string) Resource {
	t.Helper()
	for _, res := range r.OfType(typ) {
		if res.Name == name {
			return res
		}
	}
	t.Fatalf("no %s named %q was registered", typ, name)
	return Resource{}
}

// Run runs fn under mocks for the given project and stack and returns what
// was registered along with fn's error.
func Run(t testing.TB, stack string, fn pulumi.RunFunc) (*Recorder, error) {
	t.Helper()
	rec := &Recorder{}
	err := pulumi.RunErr(fn, pulumi.WithMocks("kcp-tmc", stack, rec))
	return rec, err
}

// SetConfig makes the next Run see the given config (keys without the
// "kcp-tmc:" prefix get it) and marks secretKeys as secrets.
func SetConfig(t testing.TB, values map[string]string, secretKeys ...string) {
	t.Helper()
	full := map[string]string{}
	for k, v := range values {
		if !strings.Contains(k, ":") {
			k = "kcp-tmc:" + k
		}
		full[k] = v
	}
	cfg, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(pulumi.EnvConfig, string(cfg))
	var secrets []string
	for _, k := range secretKeys {
		if !strings.Contains(k, ":") {
			k = "kcp-tmc:" + k
		}
		secrets = append(secrets, k)
	}
	keys, err := json.Marshal(secrets)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(pulumi.EnvConfigSecretKeys, string(keys))
}

// Manifests returns every Kubernetes object registered (the inputs of each
// kubernetes:* resource that carries apiVersion and kind; Helm releases do
// not), in registration order: what the provider would send to a cluster.
func (r *Recorder) Manifests() []map[string]any {
	var out []map[string]any
	for _, res := range r.All() {
		if !res.Custom || !strings.HasPrefix(res.Type, "kubernetes:") {
			continue
		}
		if in := res.Input(); in["apiVersion"] != nil && in["kind"] != nil {
			out = append(out, in)
		}
	}
	return out
}

// StackFileConfig reads a Pulumi.<stack>.yaml the way the engine hands it to
// a program: keys in full ("kcp-tmc:etcd"), strings as they are, everything
// else (maps, lists, numbers, booleans) as JSON.
func StackFileConfig(t testing.TB, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{}
	for k, v := range file.Config {
		if s, ok := v.(string); ok {
			out[k] = s
			continue
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, k, err)
		}
		out[k] = string(js)
	}
	return out
}

// Dig walks maps by string keys and lists by int indexes; nil if absent.
func Dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// MustRun is Run for programs that must succeed: it fails the test otherwise.
func MustRun(t testing.TB, fn pulumi.RunFunc) *Recorder {
	t.Helper()
	rec, err := Run(t, "test", fn)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// Discard is a mock monitor for benchmarks: it keeps nothing and answers
// pulumi-tls resources with fixed placeholder PEMs, so what is measured is
// the program's own evaluation, not the mocks' bookkeeping or key minting.
type Discard struct{}

// NewResource echoes inputs (plus placeholder TLS outputs).
func (Discard) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if !strings.HasPrefix(args.TypeToken, "tls:") && !strings.HasPrefix(args.TypeToken, "aws:") {
		return args.Name + "-id", args.Inputs, nil
	}
	state := args.Inputs.Copy()
	for _, k := range []string{"privateKeyPem", "certRequestPem", "certPem", "arn", "keyId"} {
		state[resource.PropertyKey(k)] = resource.NewProperty("placeholder-" + k)
	}
	return args.Name + "-id", state, nil
}

// Call answers invokes with their arguments.
func (Discard) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) { return args.Args, nil }

// Strings is a recorded list (or a single string) as []string: args,
// verbs, hostnames.
func Strings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

// List is a recorded list, or nil when v is none.
func List(v any) []any {
	l, _ := v.([]any)
	return l
}

// Kubeconfig loads a rendered kubeconfig as client-go does and returns the
// cluster and user of its current context.
func Kubeconfig(t testing.TB, raw any) (*clientcmdapi.Cluster, *clientcmdapi.AuthInfo) {
	t.Helper()
	cfg, err := clientcmd.Load([]byte(fmt.Sprint(raw)))
	if err != nil {
		t.Fatalf("client-go cannot load the kubeconfig: %v\n%v", err, raw)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil || cfg.AuthInfos[ctx.AuthInfo] == nil {
		t.Fatalf("the kubeconfig's current context %q names no cluster and user:\n%v", cfg.CurrentContext, raw)
	}
	return cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
}
