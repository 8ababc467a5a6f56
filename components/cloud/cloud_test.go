package cloud

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

func args(natPerZone bool) Args {
	return Args{ClusterName: "kcp-tmc-prod", Region: "us-east-1", Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		NATPerZone: natPerZone, NodesPerZone: Nodes{Min: 1, Desired: 2, Max: 4},
		Tags: map[string]string{"environment": "prod", "owner": "platform", "cost-center": "cc-42"}}
}

func run(t *testing.T, a Args) (*mocktest.Recorder, *EKS) {
	t.Helper()
	var out *EKS
	rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		var err error
		out, err = NewEKS(ctx, "cloud", a)
		return err
	})
	return rec, out
}

func TestNodeGroupPerZone(t *testing.T) {
	rec, _ := run(t, args(true))
	groups := rec.OfType("aws:eks/nodeGroup:NodeGroup")
	if len(groups) != 3 {
		t.Fatalf("%d node groups, want one per zone", len(groups))
	}
	subnetZone := map[string]string{}
	for _, s := range rec.OfType("aws:ec2/subnet:Subnet") {
		subnetZone[s.Name+"-id"] = s.Input()["availabilityZone"].(string)
	}
	zones := map[string]bool{}
	for _, g := range groups {
		subnets := g.Input()["subnetIds"].([]any)
		if len(subnets) != 1 || !strings.Contains(subnets[0].(string), "private") {
			t.Errorf("%s spans %v: want exactly its zone's private subnet", g.Name, subnets)
			continue
		}
		zones[subnetZone[subnets[0].(string)]] = true
	}
	if len(zones) != 3 {
		t.Errorf("node groups cover zones %v", zones)
	}
}

func TestNATPerZoneOnlyInProd(t *testing.T) {
	for _, tt := range []struct {
		perZone bool
		want    int
	}{{true, 3}, {false, 1}} {
		rec, _ := run(t, args(tt.perZone))
		if n := len(rec.OfType("aws:ec2/natGateway:NatGateway")); n != tt.want {
			t.Errorf("NATPerZone=%v: %d NAT gateways, want %d", tt.perZone, n, tt.want)
		}
	}
}

func TestClusterHardening(t *testing.T) {
	rec, out := run(t, args(true))
	c := rec.Named(t, "aws:eks/cluster:Cluster", "cloud-cluster").Input()
	if mocktest.Dig(c, "encryptionConfig", "resources", 0) != "secrets" || mocktest.Dig(c, "encryptionConfig", "provider", "keyArn") == nil {
		t.Errorf("Secrets not envelope-encrypted: %v", c["encryptionConfig"])
	}
	if len(c["enabledClusterLogTypes"].([]any)) != 5 {
		t.Errorf("control-plane logs = %v", c["enabledClusterLogTypes"])
	}
	if mocktest.Dig(c, "vpcConfig", "endpointPublicAccess") != false || mocktest.Dig(c, "vpcConfig", "endpointPrivateAccess") != true {
		t.Errorf("endpoint access = %v", c["vpcConfig"])
	}
	if c["version"] != DefaultKubernetesVersion {
		t.Errorf("version = %v", c["version"])
	}
	for _, k := range rec.OfType("aws:kms/key:Key") {
		if k.Input()["enableKeyRotation"] != true {
			t.Errorf("%s without rotation", k.Name)
		}
	}
	var attached []string
	for _, a := range rec.OfType("aws:iam/rolePolicyAttachment:RolePolicyAttachment") {
		if strings.Contains(a.Name, "-node-") {
			attached = append(attached, a.Input()["policyArn"].(string))
		}
	}
	if len(attached) != 3 {
		t.Errorf("node role policies = %v, want exactly the worker, CNI and ECR read-only policies", attached)
	}
	_, user := mocktest.Kubeconfig(t, waitString(t, out.Kubeconfig))
	if user.Exec == nil || user.Exec.Command != "aws" || !slices.Contains(user.Exec.Args, "get-token") || user.Token != "" || user.TokenFile != "" {
		t.Errorf("kubeconfig does not use aws eks get-token: %+v", user)
	}
}

func TestEBSCSIRoleTrustsOnlyItsServiceAccount(t *testing.T) {
	rec, out := run(t, args(true))
	addon := rec.Named(t, "aws:eks/addon:Addon", "cloud-ebs-csi").Input()
	if addon["addonName"] != "aws-ebs-csi-driver" || addon["serviceAccountRoleArn"] == nil {
		t.Errorf("EBS CSI add-on = %v", addon)
	}
	var trust struct {
		Statement []struct {
			Principal map[string]string
			Action    string
			Condition map[string]map[string]string
		}
	}
	doc := rec.Named(t, "aws:iam/role:Role", "cloud-ebs-csi-role").Input()["assumeRolePolicy"].(string)
	if err := json.Unmarshal([]byte(doc), &trust); err != nil {
		t.Fatal(err)
	}
	issuer := "oidc.eks.us-east-1.amazonaws.com/id/MOCKCLOUD-CLUSTER"
	eq := trust.Statement[0].Condition["StringEquals"]
	if len(trust.Statement) != 1 || trust.Statement[0].Action != "sts:AssumeRoleWithWebIdentity" ||
		eq[issuer+":sub"] != "system:serviceaccount:kube-system:ebs-csi-controller-sa" || eq[issuer+":aud"] != "sts.amazonaws.com" || len(eq) != 2 {
		t.Errorf("trust = %s", doc)
	}
	if got := waitString(t, out.OIDCIssuer); got != issuer {
		t.Errorf("OIDCIssuer output = %q, want %q (no scheme)", got, issuer)
	}
}

func TestTagsEverywhere(t *testing.T) {
	rec, _ := run(t, args(false))
	tagged := 0
	for _, r := range rec.All() {
		if !strings.HasPrefix(r.Type, "aws:") {
			continue
		}
		tags, ok := r.Input()["tags"].(map[string]any)
		if !ok {
			// Only associations and attachments take no tags.
			if !strings.Contains(r.Type, "Association") && !strings.Contains(r.Type, "Attachment") {
				t.Errorf("%s %s carries no tags", r.Type, r.Name)
			}
			continue
		}
		tagged++
		for _, k := range []string{"environment", "owner", "cost-center"} {
			if tags[k] == nil {
				t.Errorf("%s %s lacks tag %s", r.Type, r.Name, k)
			}
		}
	}
	if tagged < 20 {
		t.Errorf("only %d tagged resources", tagged)
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, func() Args { return args(true) }, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("cloud")) }, []fieldtest.Case[Args]{
		{"zone of another region", func(a *Args) { a.Zones[2] = "eu-west-1a" }, "cloud.zones[2]", `"eu-west-1a": distinct zones of region us-east-1`},
		{"one zone", func(a *Args) { a.Zones = a.Zones[:1] }, "cloud.zones", "2 to 4 zones"},
		{"bad region", func(a *Args) { a.Region = "useast1" }, "cloud.region", `"useast1"`},
		{"unpinned version", func(a *Args) { a.KubernetesVersion = "latest" }, "cloud.kubernetesVersion", `"latest": a pinned minor version`},
		{"a patch version", func(a *Args) { a.KubernetesVersion = "1.33.1" }, "cloud.kubernetesVersion", "a pinned minor version"},
		{"public endpoint open to all", func(a *Args) { a.PublicEndpoint = true }, "cloud.publicCidrs", "Required value"},
		{"VPC too small", func(a *Args) { a.VPCCIDR = "10.0.0.0/24" }, "cloud.vpcCidr", "a /16"},
		{"no nodes", func(a *Args) { a.NodesPerZone = Nodes{Min: 0, Desired: 0, Max: 3} }, "cloud.nodesPerZone", `"0/0/3"`},
	})
}

// waitString reads a (known) output under mocks.
func waitString(t *testing.T, o pulumi.StringOutput) string {
	t.Helper()
	ch := make(chan string, 1)
	o.ApplyT(func(s string) string { ch <- s; return s })
	return <-ch
}

func TestExistingVPC(t *testing.T) {
	a := args(true)
	a.ExistingVPC = &ExistingVPC{ID: "vpc-0abc",
		PrivateSubnets: map[string]string{"us-east-1a": "subnet-a1", "us-east-1b": "subnet-b1", "us-east-1c": "subnet-c1"},
		PublicSubnets:  map[string]string{"us-east-1a": "subnet-a2", "us-east-1b": "subnet-b2", "us-east-1c": "subnet-c2"}}
	rec, _ := run(t, a)
	for _, r := range rec.All() {
		if strings.HasPrefix(r.Type, "aws:ec2/") {
			t.Errorf("existing VPC, yet %s %s was created", r.Type, r.Name)
		}
	}
	for _, g := range rec.OfType("aws:eks/nodeGroup:NodeGroup") {
		subnets := g.Input()["subnetIds"].([]any)
		if len(subnets) != 1 || !strings.HasSuffix(subnets[0].(string), "1") {
			t.Errorf("%s uses %v, want its zone's existing private subnet", g.Name, subnets)
		}
	}
	a.ExistingVPC.PublicSubnets = map[string]string{}
	fieldtest.Expect(t, a.WithDefaults().Validate(field.NewPath("cloud")), "cloud.existingVpc.publicSubnets[us-east-1a]", "a subnet id")
}

// TestKubeconfigKeepsTheProvidersCluster: the EKS kubeconfig was YAML text
// until the stack rendered it from client-go's types (JSON). The Kubernetes
// provider (v4, DiffConfig) replaces itself — and with it every object it
// manages — only when the kubeconfig's active cluster changes; an existing
// stack's next up must see the same cluster in the new text.
func TestKubeconfigKeepsTheProvidersCluster(t *testing.T) {
	ca := base64.StdEncoding.EncodeToString([]byte("CA-DATA"))
	before := `apiVersion: v1
kind: Config
clusters:
- name: kcp-tmc-prod
  cluster:
    server: https://x.eks.amazonaws.com
    certificate-authority-data: ` + ca + `
users:
- name: kcp-tmc-prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, kcp-tmc-prod, --region, us-east-1]
      interactiveMode: Never
contexts:
- name: kcp-tmc-prod
  context: {cluster: kcp-tmc-prod, user: kcp-tmc-prod}
current-context: kcp-tmc-prod
`
	now, err := Kubeconfig("kcp-tmc-prod", "https://x.eks.amazonaws.com", ca, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	oldCluster, _ := mocktest.Kubeconfig(t, before)
	newCluster, _ := mocktest.Kubeconfig(t, now)
	if !reflect.DeepEqual(oldCluster, newCluster) {
		t.Errorf("the active cluster changed, so the provider would be replaced:\nbefore %#v\nnow    %#v", oldCluster, newCluster)
	}
	if _, err := Kubeconfig("c", "https://x", "not base64!", "us-east-1"); err == nil {
		t.Error("a CA that is not base64 was accepted")
	}
}
