package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/awslb"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestAWSLoadBalancerControllerChartInstalls installs the pinned AWS Load
// Balancer Controller chart — upstream's own files, served as a Helm
// repository — with exactly the values components/awslb gives it, through
// the Kubernetes provider's Helm release on the local apiserver, which
// admits every object. It checks what the controller relies on: the
// ServiceAccount its IAM role trusts, carrying that role; the cluster,
// region, VPC and tags as flags the controller's source declares; two
// replicas under a disruption budget; no webhook that would make every
// Service or Ingress change depend on it. The controller itself cannot run here (it
// calls the EC2 and ELB APIs); without a kubelet nothing waits for its pods.
//
// It starts where a stack of an earlier kcp-tmc is: the chart installed by
// Helm with its crds/ (Helm then never upgrades them), one CRD of an older
// shape and one missing, as a chart upgrade would find them. The up takes
// them over: every CRD is the pinned chart's afterwards, and a destroy
// leaves them, as `helm uninstall` does.
func TestAWSLoadBalancerControllerChartInstalls(t *testing.T) {
	module, err := toolchain.Source(awslb.Chart)
	if err != nil {
		t.Fatal(err)
	}
	repo := chartRepoOf(t, awslb.Chart, map[string]map[string]string{awslb.ChartVersion: chartFiles(t, filepath.Join(module, "helm", awslb.Chart))})
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::123456789012:role/lbc"
	a := awslb.Args{ClusterName: "kcp-tmc-prod", Region: "us-east-1", VPCID: pulumi.String("vpc-0abc"),
		Tags: map[string]string{"environment": "prod", "cost-center": "cc-42", "kcp-tmc.io/cluster": "kcp-tmc-prod"}}
	crds, err := awslb.ChartCRDs()
	if err != nil {
		t.Fatal(err)
	}
	_, opts := testenv.Project(t, "dev", nil)
	provider := func(ctx *pulumi.Context) (pulumi.ResourceOption, error) {
		p, err := kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{Kubeconfig: pulumi.ToSecret(pulumi.String(string(kubeconfig))).(pulumi.StringOutput)})
		return pulumi.Provider(p), err
	}
	// The chart as kcp-tmc installed it before the stack applied its CRDs.
	opts.Program = func(ctx *pulumi.Context) error {
		p, err := provider(ctx)
		if err != nil {
			return err
		}
		_, err = helmrelease.New(ctx, "lbc", helmrelease.Args{
			Name: pulumi.String(awslb.Chart), Chart: pulumi.String(awslb.Chart), Version: pulumi.String(awslb.ChartVersion), Repo: repo,
			Namespace: pulumi.String(awslb.Namespace), Values: awslb.Values(a, pulumi.String(role)),
		}, p, pulumi.Transforms([]pulumi.ResourceTransform{noWait}))
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Its cluster-wide objects (CRDs, webhooks) must not outlive the test;
	// the destroy of the stack that applies the CRDs leaves them, which the
	// test then checks and removes.
	applied := false
	t.Cleanup(func() {
		if _, err := s.Destroy(context.Background(), optdestroy.ProgressStreams(io.Discard)); err != nil {
			t.Errorf("destroy: %v", err)
		}
		for _, crd := range crds {
			name := mocktest.Dig(crd, "metadata", "name").(string)
			out, _, err := kube.Kubectl(context.Background(), nil, "delete", "crd", name, "--ignore-not-found")
			if err == nil && applied && !strings.Contains(out, "deleted") {
				t.Errorf("CRD %s is gone after the destroy: deleting it deletes every object of its kind", name)
			}
		}
	})
	if err := automation.Up(ctx, s, io.Discard, optup.SuppressProgress()); err != nil {
		t.Fatal(err)
	}
	// A chart upgrade's view of them: TargetGroupBinding of an older shape
	// (without spec.vpcID), and a CRD a later version added, missing.
	older, missing := "targetgroupbindings.elbv2.k8s.aws", "albtargetcontrolconfigs.elbv2.k8s.aws"
	if _, stderr, err := kube.Kubectl(ctx, nil, "patch", "crd", older, "--type=json",
		"-p", `[{"op":"remove","path":"/spec/versions/1/schema/openAPIV3Schema/properties/spec/properties/vpcID"}]`); err != nil {
		t.Fatalf("making %s older: %v\n%s", older, err, stderr)
	}
	if _, stderr, err := kube.Kubectl(ctx, nil, "delete", "crd", missing); err != nil {
		t.Fatalf("deleting %s: %v\n%s", missing, err, stderr)
	}

	opts.Program = func(ctx *pulumi.Context) error {
		p, err := provider(ctx)
		if err != nil {
			return err
		}
		_, err = awslb.Install(ctx, "lbc", repo, awslb.Values(a, pulumi.String(role)), p, pulumi.Transforms([]pulumi.ResourceTransform{noWait}))
		return err
	}
	if s, err = automation.Stack(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := automation.Up(ctx, s, io.Discard, optup.SuppressProgress()); err != nil {
		t.Fatal(err)
	}
	applied = true
	for _, crd := range crds {
		name := mocktest.Dig(crd, "metadata", "name").(string)
		var live map[string]any
		getJSON(t, &live, "crd", name)
		versions := mocktest.List(mocktest.Dig(crd, "spec", "versions"))
		if n := len(mocktest.List(mocktest.Dig(live, "spec", "versions"))); n != len(versions) {
			t.Errorf("CRD %s has %d versions, the chart's %d", name, n, len(versions))
		}
		for i, v := range versions {
			want, _ := json.Marshal(mocktest.Dig(v, "schema"))
			if got, _ := json.Marshal(mocktest.Dig(live, "spec", "versions", i, "schema")); !bytes.Equal(got, want) {
				t.Errorf("CRD %s version %v: the schema is not the chart %s's after the up", name, mocktest.Dig(v, "name"), awslb.ChartVersion)
			}
		}
	}

	get := func(args ...string) map[string]any {
		var o map[string]any
		getJSON(t, &o, args...)
		return o
	}
	sa := get("-n", awslb.Namespace, "serviceaccount", awslb.ServiceAccount)
	if got := mocktest.Dig(sa, "metadata", "annotations", "eks.amazonaws.com/role-arn"); got != role {
		t.Errorf("ServiceAccount %s/%s's role = %v, want %s", awslb.Namespace, awslb.ServiceAccount, got, role)
	}
	dep := get("-n", awslb.Namespace, "deployment", awslb.Chart)
	if got := mocktest.Dig(dep, "spec", "replicas"); got != float64(2) {
		t.Errorf("replicas = %v", got)
	}
	if got := mocktest.Dig(dep, "spec", "template", "spec", "serviceAccountName"); got != awslb.ServiceAccount {
		t.Errorf("the controller runs as %v, its role trusts %s", got, awslb.ServiceAccount)
	}
	args := mocktest.Strings(mocktest.Dig(dep, "spec", "template", "spec", "containers", 0, "args"))
	for _, want := range []string{"--cluster-name=kcp-tmc-prod", "--aws-region=us-east-1", "--aws-vpc-id=vpc-0abc",
		"--default-tags=cost-center=cc-42,environment=prod,kcp-tmc.io/cluster=kcp-tmc-prod"} {
		if !slices.Contains(args, want) {
			t.Errorf("controller args %q lack %s", args, want)
		}
	}
	declared := declaredFlags(t, module)
	for _, arg := range args {
		if name := strings.TrimPrefix(strings.SplitN(arg, "=", 2)[0], "--"); !declared[name] {
			t.Errorf("flag --%s is not declared in the controller %s's source", name, awslb.ChartVersion)
		}
	}
	pdb := get("-n", awslb.Namespace, "poddisruptionbudget", awslb.Chart)
	if got := mocktest.Dig(pdb, "spec", "maxUnavailable"); got != float64(1) {
		t.Errorf("disruption budget maxUnavailable = %v", got)
	}
	// Webhooks that would make every Service or Ingress change of the
	// cluster depend on the controller running.
	for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		for _, hooks := range mocktest.List(get(kind)["items"]) {
			for _, w := range mocktest.List(mocktest.Dig(hooks, "webhooks")) {
				if name := mocktest.Dig(w, "name"); name == "mservice.elbv2.k8s.aws" || name == "vingress.elbv2.k8s.aws" {
					t.Errorf("webhook %v is installed (failurePolicy %v)", name, mocktest.Dig(w, "failurePolicy"))
				}
			}
		}
	}
	t.Run("the controller serves kcp's load balancers", func(t *testing.T) {
		runController(t, ctx, args)
	})
}

// runController starts the real controller (the toolchain's build of the
// pinned release) with the args the chart rendered, as the chart's
// ServiceAccount (its RBAC), its AWS APIs pointed at a stand-in that records
// each call, says there is no load balancer yet and fails the rest. It must
// become ready and take up a Service annotated as kcp-tmc's load balancers
// are (its service controller builds the NLB's model: no NLB yet, so it
// looks for the VPC's public subnets by their tags), and leave a plain
// LoadBalancer Service alone (its Service-mutating webhook is off).
func runController(t *testing.T, ctx context.Context, chartArgs []string) {
	bin, err := toolchain.Find("aws-load-balancer-controller")
	if err != nil {
		t.Fatal(err)
	}
	// Only the test's own Service counts: other tests of the package leave
	// annotated load balancers on the shared apiserver, which the
	// controller takes up too (the stand-in tells them apart by the
	// service.k8s.aws/stack tag the controller puts on what it creates).
	const ns = "kcp-lbc"
	aws := newAWSStandIn(ns + "/" + ingress.FrontDoorLoadBalancer)
	defer aws.Close()

	dir := t.TempDir()
	token, _, err := kube.Kubectl(ctx, nil, "create", "token", awslb.ServiceAccount, "-n", awslb.Namespace, "--duration=1h")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range admin.AuthInfos {
		*a = clientcmdapi.AuthInfo{Token: strings.TrimSpace(token)}
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*admin, kubeconfig); err != nil {
		t.Fatal(err)
	}
	// The serving certificate the chart made for its webhooks.
	for key, file := range map[string]string{"tls\\.crt": "tls.crt", "tls\\.key": "tls.key"} {
		b64, _, err := kube.Kubectl(ctx, nil, "get", "secret", "-n", awslb.Namespace, "aws-load-balancer-tls", "-o", "jsonpath={.data."+key+"}")
		if err != nil {
			t.Fatal(err)
		}
		pem, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(pem) == 0 {
			t.Fatalf("webhook %s: %v", file, err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ports := loopback.MustFreePorts(t, 3)
	probe := fmt.Sprintf("127.0.0.1:%d", ports[1])
	args := append(slices.Clone(chartArgs),
		// What the pod gets from its cluster, its Secret volume and its ports.
		"--kubeconfig="+kubeconfig, "--leader-election-namespace="+awslb.Namespace,
		"--webhook-cert-dir="+dir, "--webhook-cert-file=tls.crt", "--webhook-key-file=tls.key",
		fmt.Sprintf("--webhook-bind-port=%d", ports[0]), "--health-probe-bind-addr="+probe,
		fmt.Sprintf("--metrics-bind-addr=127.0.0.1:%d", ports[2]),
		// The test's: AWS is the stand-in, each call tried once.
		"--aws-api-endpoints=EC2="+aws.URL+",Elastic Load Balancing v2="+aws.URL+",STS="+aws.URL, "--aws-max-retries=1")
	var log bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("controller log:\n%s", log.String())
		}
	}()
	ready := func() bool {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for deadline := time.Now().Add(time.Minute); !ready(); time.Sleep(500 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("the controller exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the controller is not ready after a minute")
		}
	}

	if _, _, err := kube.Kubectl(ctx, nil, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })
	// The front door's Service as the ingress component renders it for prod
	// (NLB annotations, ingress.sourceRanges), and a plain one.
	rec := mocktest.MustRun(t, func(pctx *pulumi.Context) error {
		_, err := ingress.NewIngress(pctx, "ingress", ingress.Args{Mode: ingress.ModeLoadBalancer, Namespace: ns, Host: "kcp.example.com",
			BackendService: "kcp-front-proxy", BackendPort: 443, TargetPort: 8443, ControllerReplicas: 1, NLB: true, PublishedByStack: true, SourceRanges: sourceRanges})
		return err
	})
	frontDoor, _ := json.Marshal(rec.Object(t, "kubernetes:core/v1:Service", ingress.FrontDoorLoadBalancer))
	plain, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "plain", "namespace": ns},
		"spec": map[string]any{"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": map[string]string{"app": "plain"},
			"ports": []any{map[string]any{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}}}})
	for _, svc := range [][]byte{frontDoor, plain} {
		if _, _, err := kube.Kubectl(ctx, svc, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	// Its attempt at the front door's NLB: an event on that Service.
	events := func(name string) string {
		out, _, _ := kube.Kubectl(ctx, nil, "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
		return out
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if _, _, lb, _ := aws.seen(); lb != nil {
			break
		}
	}
	seen := events(ingress.FrontDoorLoadBalancer)
	asked, subnets, lb, tg := aws.seen()
	if !slices.Contains(asked, "DescribeLoadBalancers") {
		t.Errorf("the controller did not take up %s: its events %q, AWS calls %q", ingress.FrontDoorLoadBalancer, seen, asked)
	}
	// An internet-facing NLB goes into the VPC's subnets tagged for public
	// load balancers: the tags the cloud layer puts on its public subnets.
	if subnets == nil || !hasFilter(subnets, "vpc-id", "vpc-0abc") || !hasFilter(subnets, "tag:kubernetes.io/role/elb", "1") {
		t.Errorf("the controller did not look for the VPC's public subnets: DescribeSubnets %v", subnets)
	}
	// What it asks AWS for: an internet-facing NLB in those subnets, with
	// the stack's tags, sending TCP to the pods' port (IP targets).
	for key, want := range map[string]string{"Type": "network", "Scheme": "internet-facing",
		"SubnetMappings.member.1.SubnetId": "subnet-a", "SubnetMappings.member.2.SubnetId": "subnet-b", "SubnetMappings.member.3.SubnetId": "subnet-c"} {
		if got := lb.Get(key); got != want {
			t.Errorf("CreateLoadBalancer %s = %q, want %q (request %v)", key, got, want, lb)
		}
	}
	for key, want := range map[string]string{"environment": "prod", "cost-center": "cc-42", "kcp-tmc.io/cluster": "kcp-tmc-prod"} {
		if got := awsTag(lb, key); got != want {
			t.Errorf("the NLB's tag %s = %q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]string{"TargetType": "ip", "Protocol": "TCP", "Port": "8443", "VpcId": "vpc-0abc"} {
		if got := tg.Get(key); got != want {
			t.Errorf("CreateTargetGroup %s = %q, want %q (request %v)", key, got, want, tg)
		}
	}
	// Clients reach the NLB only from ingress.sourceRanges: its security
	// group's rules on 443 (the controller's frontend group).
	if got := aws.ingressCIDRs(); !reflect.DeepEqual(got, sourceRanges) {
		t.Errorf("the NLB's security group admits %v on 443, want exactly ingress.sourceRanges %v", got, sourceRanges)
	}
	if other := events("plain"); other != "" {
		t.Errorf("the controller took up a plain LoadBalancer Service: %q", other)
	}
	t.Logf("the controller asked for the NLB of %s: %s", ingress.FrontDoorLoadBalancer, lb.Encode())
}

// sourceRanges are the test stack's ingress.sourceRanges.
var sourceRanges = []string{"198.51.100.0/24", "203.0.113.0/24"}

// awsStandIn answers the EC2 and ELBv2 calls the controller makes for a
// new NLB — no load balancer or target group yet, the VPC's three public
// subnets, the security groups it creates — records what it asks to
// create, and fails every other call (the listener's lookup first).
type awsStandIn struct {
	*httptest.Server
	mu              sync.Mutex
	calls           []string
	subnets, lb, tg url.Values
	securityGroups  map[string]string
	authorized      []url.Values // AuthorizeSecurityGroupIngress requests
	// stack is the service.k8s.aws/stack tag of what the test records
	// (namespace/Service); ours are the security groups made for it.
	stack string
	ours  map[string]bool
}

// ingressCIDRs are the IPv4 and IPv6 ranges the controller allowed on port
// 443 (the listener's) in the test's NLB's security group, sorted, each once (it asks again on every
// reconcile: the stand-in's groups never show the rules).
func (s *awsStandIn) ingressCIDRs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cidrs []string
	for _, f := range s.authorized {
		if !s.ours[f.Get("GroupId")] {
			continue
		}
		for n := 1; f.Has(fmt.Sprintf("IpPermissions.%d.IpProtocol", n)); n++ {
			if f.Get(fmt.Sprintf("IpPermissions.%d.FromPort", n)) != "443" {
				continue
			}
			for _, key := range []string{"IpRanges.%d.CidrIp", "Ipv6Ranges.%d.CidrIpv6"} {
				for m := 1; f.Has(fmt.Sprintf("IpPermissions.%d."+key, n, m)); m++ {
					cidrs = append(cidrs, f.Get(fmt.Sprintf("IpPermissions.%d."+key, n, m)))
				}
			}
		}
	}
	slices.Sort(cidrs)
	return slices.Compact(cidrs)
}

const (
	ec2NS   = "http://ec2.amazonaws.com/doc/2016-11-15/"
	elbv2NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
)

func newAWSStandIn(stack string) *awsStandIn {
	s := &awsStandIn{stack: stack, securityGroups: map[string]string{}, ours: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *awsStandIn) seen() (calls []string, subnets, lb, tg url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), s.subnets, s.lb, s.tg
}

func (s *awsStandIn) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := r.Form
	action := f.Get("Action")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, action)
	var body string
	switch action {
	case "DescribeLoadBalancers":
		body = `<DescribeLoadBalancersResponse xmlns="` + elbv2NS + `"><DescribeLoadBalancersResult><LoadBalancers/></DescribeLoadBalancersResult></DescribeLoadBalancersResponse>`
	case "DescribeTargetGroups":
		body = `<DescribeTargetGroupsResponse xmlns="` + elbv2NS + `"><DescribeTargetGroupsResult><TargetGroups/></DescribeTargetGroupsResult></DescribeTargetGroupsResponse>`
	case "DescribeTargetGroupAttributes", "ModifyTargetGroupAttributes", "DescribeLoadBalancerAttributes", "ModifyLoadBalancerAttributes":
		body = fmt.Sprintf(`<%[1]sResponse xmlns="%[2]s"><%[1]sResult><Attributes/></%[1]sResult></%[1]sResponse>`, action, elbv2NS)
	case "DescribeSubnets":
		if s.subnets == nil {
			s.subnets = f
		}
		var items strings.Builder
		for i, z := range []string{"a", "b", "c"} {
			fmt.Fprintf(&items, `<item><subnetId>subnet-%s</subnetId><vpcId>vpc-0abc</vpcId><availabilityZone>us-east-1%s</availabilityZone><availabilityZoneId>use1-az%d</availabilityZoneId>`+
				`<cidrBlock>10.0.%d.0/20</cidrBlock><availableIpAddressCount>4000</availableIpAddressCount><state>available</state><tagSet>`+
				`<item><key>kubernetes.io/role/elb</key><value>1</value></item><item><key>kubernetes.io/cluster/kcp-tmc-prod</key><value>shared</value></item></tagSet></item>`,
				z, z, i+1, 128+16*i)
		}
		body = `<DescribeSubnetsResponse xmlns="` + ec2NS + `"><subnetSet>` + items.String() + `</subnetSet></DescribeSubnetsResponse>`
	case "DescribeAvailabilityZones":
		// Exactly the zones asked for (more makes v3.6.2 panic).
		var items strings.Builder
		for n := 1; f.Has(fmt.Sprintf("ZoneId.%d", n)); n++ {
			id := f.Get(fmt.Sprintf("ZoneId.%d", n))
			fmt.Fprintf(&items, `<item><zoneName>us-east-1%c</zoneName><zoneId>%s</zoneId><zoneType>availability-zone</zoneType><zoneState>available</zoneState><regionName>us-east-1</regionName></item>`,
				'a'+id[len(id)-1]-'1', id)
		}
		body = `<DescribeAvailabilityZonesResponse xmlns="` + ec2NS + `"><availabilityZoneInfo>` + items.String() + `</availabilityZoneInfo></DescribeAvailabilityZonesResponse>`
	case "CreateSecurityGroup":
		id := fmt.Sprintf("sg-%04d", len(s.securityGroups)+1)
		s.securityGroups[id] = f.Get("GroupName")
		for n := 1; f.Has(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", n)); n++ {
			if f.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", n)) == "service.k8s.aws/stack" && f.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Value", n)) == s.stack {
				s.ours[id] = true
			}
		}
		body = `<CreateSecurityGroupResponse xmlns="` + ec2NS + `"><groupId>` + id + `</groupId></CreateSecurityGroupResponse>`
	case "DescribeSecurityGroups":
		var items strings.Builder
		for n := 1; f.Has(fmt.Sprintf("GroupId.%d", n)); n++ {
			if id := f.Get(fmt.Sprintf("GroupId.%d", n)); s.securityGroups[id] != "" {
				fmt.Fprintf(&items, `<item><groupId>%s</groupId><groupName>%s</groupName><vpcId>vpc-0abc</vpcId><ipPermissions/><ipPermissionsEgress/></item>`, id, s.securityGroups[id])
			}
		}
		body = `<DescribeSecurityGroupsResponse xmlns="` + ec2NS + `"><securityGroupInfo>` + items.String() + `</securityGroupInfo></DescribeSecurityGroupsResponse>`
	case "AuthorizeSecurityGroupIngress", "CreateTags":
		if action == "AuthorizeSecurityGroupIngress" {
			s.authorized = append(s.authorized, f)
		}
		body = fmt.Sprintf(`<%sResponse xmlns="%s"><return>true</return></%sResponse>`, action, ec2NS, action)
	case "CreateTargetGroup":
		if s.tg == nil && awsTag(f, "service.k8s.aws/stack") == s.stack {
			s.tg = f
		}
		body = fmt.Sprintf(`<CreateTargetGroupResponse xmlns="%s"><CreateTargetGroupResult><TargetGroups><member><TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/%s/0123</TargetGroupArn>`+
			`<TargetGroupName>%[2]s</TargetGroupName><Protocol>%s</Protocol><Port>%s</Port><TargetType>%s</TargetType><VpcId>vpc-0abc</VpcId></member></TargetGroups></CreateTargetGroupResult></CreateTargetGroupResponse>`,
			elbv2NS, f.Get("Name"), f.Get("Protocol"), f.Get("Port"), f.Get("TargetType"))
	case "CreateLoadBalancer":
		if s.lb == nil && awsTag(f, "service.k8s.aws/stack") == s.stack {
			s.lb = f
		}
		body = fmt.Sprintf(`<CreateLoadBalancerResponse xmlns="%s"><CreateLoadBalancerResult><LoadBalancers><member><LoadBalancerArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/%s/0123</LoadBalancerArn>`+
			`<LoadBalancerName>%[2]s</LoadBalancerName><DNSName>%[2]s-0123.elb.us-east-1.amazonaws.com</DNSName><Scheme>%s</Scheme><Type>%s</Type><VpcId>vpc-0abc</VpcId><State><Code>provisioning</Code></State></member></LoadBalancers></CreateLoadBalancerResult></CreateLoadBalancerResponse>`,
			elbv2NS, f.Get("Name"), f.Get("Scheme"), f.Get("Type"))
	}
	w.Header().Set("Content-Type", "text/xml")
	if body == "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		body = `<ErrorResponse><Error><Code>ServiceUnavailable</Code><Message>the test's stand-in</Message></Error></ErrorResponse>`
	}
	_, _ = io.WriteString(w, body)
}

// awsTag is the value of tag key in an ELBv2 request's Tags.member.N.
func awsTag(q url.Values, key string) string {
	for n := 1; q.Has(fmt.Sprintf("Tags.member.%d.Key", n)); n++ {
		if q.Get(fmt.Sprintf("Tags.member.%d.Key", n)) == key {
			return q.Get(fmt.Sprintf("Tags.member.%d.Value", n))
		}
	}
	return ""
}

// hasFilter says whether an EC2 query has Filter.N.Name=name with value
// among its Filter.N.Value.M.
func hasFilter(q url.Values, name, value string) bool {
	for n := 1; q.Has(fmt.Sprintf("Filter.%d.Name", n)); n++ {
		if q.Get(fmt.Sprintf("Filter.%d.Name", n)) != name {
			continue
		}
		for m := 1; q.Has(fmt.Sprintf("Filter.%d.Value.%d", n, m)); m++ {
			if q.Get(fmt.Sprintf("Filter.%d.Value.%d", n, m)) == value {
				return true
			}
		}
	}
	return false
}

// noWait: no kubelet runs the controller's pods here.
func noWait(_ context.Context, args *pulumi.ResourceTransformArgs) *pulumi.ResourceTransformResult {
	if args.Type != helmrelease.Type {
		return nil
	}
	props := pulumi.Map{}
	for k, v := range args.Props {
		props[k] = v
	}
	props["skipAwait"] = pulumi.Bool(true)
	return &pulumi.ResourceTransformResult{Props: props, Opts: args.Opts}
}

// chartFiles are a chart directory's files by their path in it, without
// those its .helmignore leaves out of the package Helm makes (the chart's
// crds/kustomization.yaml, which Helm would apply as a CRD).
func chartFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ignore, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	// Helm's rules: a pattern with a slash matches the path, one without the
	// name; a trailing slash matches a directory.
	ignored := func(rel string, isDir bool) bool {
		for _, p := range strings.Split(string(ignore), "\n") {
			p = strings.TrimSpace(p)
			if p == "" || strings.HasPrefix(p, "#") {
				continue
			}
			if strings.HasSuffix(p, "/") {
				if !isDir {
					continue
				}
				p = strings.TrimSuffix(p, "/")
			}
			target := filepath.Base(rel)
			if strings.Contains(p, "/") {
				target = rel
			}
			if ok, _ := filepath.Match(p, target); ok {
				return true
			}
		}
		return false
	}
	files := map[string]string{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case ignored(rel, d.IsDir()) && d.IsDir():
			return filepath.SkipDir
		case ignored(rel, d.IsDir()) || d.IsDir():
			return nil
		}
		raw, err := os.ReadFile(path)
		files[rel] = string(raw)
		return err
	})
	if err != nil || files["Chart.yaml"] == "" {
		t.Fatalf("chart %s: %v", dir, err)
	}
	return files
}

var flagConst = regexp.MustCompile(`\bflag\w*\s*=\s*"([a-z0-9-]+)"`)

// declaredFlags are the flag names the controller's packages declare (its
// flag constants, `flagK8sClusterName = "cluster-name"`).
func declaredFlags(t *testing.T, module string) map[string]bool {
	t.Helper()
	flags := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(module, "pkg"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range flagConst.FindAllStringSubmatch(string(raw), -1) {
			flags[m[1]] = true
		}
		return nil
	})
	if err != nil || !flags["cluster-name"] {
		t.Fatalf("no flag constants found under %s/pkg: %v", module, err)
	}
	return flags
}
