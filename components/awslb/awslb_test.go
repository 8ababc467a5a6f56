package awslb

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
)

func args() Args {
	return Args{ClusterName: "kcp-tmc-prod", Region: "us-east-1", VPCID: pulumi.String("vpc-0abc"),
		OIDCProviderARN: pulumi.String("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X"),
		OIDCIssuer:      pulumi.String("oidc.eks.us-east-1.amazonaws.com/id/X"),
		Tags:            map[string]string{"environment": "prod", "kcp-tmc.io/cluster": "kcp-tmc-prod"}}
}

// TestControllerInstall: the role only the chart's ServiceAccount may
// assume, the controller's policy on it, and the chart pinned with what the
// controller needs to run without instance metadata.
func TestControllerInstall(t *testing.T) {
	rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := New(ctx, "lbc", args())
		return err
	})
	comp := rec.Named(t, TypeToken, "lbc")
	for _, r := range rec.All() {
		if r.Name != comp.Name && r.ParentName() != "lbc" {
			t.Errorf("%s %s is not parented to the component", r.Type, r.Name)
		}
	}

	role := rec.Named(t, "aws:iam/role:Role", "lbc-role").Input()
	var trust struct{ Statement []map[string]any }
	if err := json.Unmarshal([]byte(role["assumeRolePolicy"].(string)), &trust); err != nil {
		t.Fatal(err)
	}
	cond := mocktest.Dig(trust.Statement[0], "Condition", "StringEquals").(map[string]any)
	if got := cond["oidc.eks.us-east-1.amazonaws.com/id/X:sub"]; got != "system:serviceaccount:kube-system:aws-load-balancer-controller" {
		t.Errorf("role trusts sub %v, want the chart's ServiceAccount", got)
	}
	if got := cond["oidc.eks.us-east-1.amazonaws.com/id/X:aud"]; got != "sts.amazonaws.com" {
		t.Errorf("role trusts aud %v", got)
	}
	if mocktest.Dig(role, "tags", "environment") != "prod" {
		t.Errorf("role tags = %v", role["tags"])
	}

	pol := rec.Named(t, "aws:iam/rolePolicy:RolePolicy", "lbc-policy").Input()
	if pol["role"] != "lbc-role" {
		t.Errorf("policy attached to %v, want the controller's role", pol["role"])
	}
	var doc struct {
		Statement []struct {
			Action   any
			Resource any
		}
	}
	if err := json.Unmarshal([]byte(pol["policy"].(string)), &doc); err != nil {
		t.Fatalf("policy is not JSON: %v", err)
	}
	var actions []string
	for _, s := range doc.Statement {
		actions = append(actions, mocktest.Strings(s.Action)...)
		if s, ok := s.Action.(string); ok {
			actions = append(actions, s)
		}
	}
	// What an NLB for a Service with IP targets needs.
	for _, a := range []string{"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
		"elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeleteLoadBalancer", "ec2:CreateSecurityGroup",
		"ec2:AuthorizeSecurityGroupIngress", "ec2:DescribeSubnets"} {
		if !slices.Contains(actions, a) {
			t.Errorf("policy lacks %s", a)
		}
	}

	rel := rec.Named(t, helmrelease.Type, "lbc")
	in := rel.Input()
	for k, want := range map[string]any{"chart": Chart, "version": ChartVersion, "namespace": "kube-system", "name": Chart} {
		if in[k] != want {
			t.Errorf("release %s = %v, want %v", k, in[k], want)
		}
	}
	if got := mocktest.Dig(in, "repositoryOpts", "repo"); got != ChartRepo {
		t.Errorf("release repo = %v", got)
	}
	v := in["values"].(map[string]any)
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"clusterName"}, "kcp-tmc-prod"},
		{[]any{"region"}, "us-east-1"},
		{[]any{"vpcId"}, "vpc-0abc"},
		{[]any{"replicaCount"}, float64(2)},
		{[]any{"podDisruptionBudget", "maxUnavailable"}, float64(1)},
		{[]any{"serviceAccount", "name"}, ServiceAccount},
		{[]any{"serviceAccount", "annotations", "eks.amazonaws.com/role-arn"}, "arn:aws:iam:us-east-1:123456789012:lbc-role"},
		{[]any{"enableServiceMutatorWebhook"}, false},
		{[]any{"webhookConfig", "disableIngressValidation"}, true},
		{[]any{"defaultTags", "kcp-tmc.io/cluster"}, "kcp-tmc-prod"},
	} {
		if got := mocktest.Dig(v, c.path...); got != c.want {
			t.Errorf("values %v = %v, want %v", c.path, got, c.want)
		}
	}
	// The chart is installed once its role can do what it needs.
	if !slices.ContainsFunc(rel.DependsOn, func(u string) bool { return strings.HasSuffix(u, "::lbc-policy") }) {
		t.Errorf("release depends on %v, want the role policy", rel.DependsOn)
	}
}

// TestCRDsAppliedByTheStack: every CRD of the chart is a server-side apply
// of the stack's, forced (it takes over what a Helm install created), and
// the chart goes on without its crds/ (Helm would install them once and
// never upgrade them), after them.
func TestCRDsAppliedByTheStack(t *testing.T) {
	rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := New(ctx, "lbc", args())
		return err
	})
	crds, err := ChartCRDs()
	if err != nil {
		t.Fatal(err)
	}
	patches := rec.OfType(CRDPatchType)
	if len(patches) != len(crds) || len(crds) < 7 {
		t.Fatalf("%d CRD patches registered for the chart's %d CRDs", len(patches), len(crds))
	}
	rel := rec.Named(t, helmrelease.Type, "lbc")
	if rel.Input()["skipCrds"] != true {
		t.Errorf("the release installs the chart's crds/ too (skipCrds %v)", rel.Input()["skipCrds"])
	}
	for _, crd := range crds {
		name := mocktest.Dig(crd, "metadata", "name").(string)
		r := rec.Named(t, CRDPatchType, "lbc-crd-"+name)
		if !r.RetainOnDelete {
			t.Errorf("CRD %s is deleted with the stack (and every object of its kind)", name)
		}
		p := r.Input()
		if p["kind"] != "CustomResourceDefinition" || mocktest.Dig(p, "metadata", "name") != name {
			t.Errorf("patch lbc-crd-%s applies %v %v", name, p["kind"], mocktest.Dig(p, "metadata", "name"))
		}
		if got := mocktest.Dig(p, "metadata", "annotations", patchForce); got != "true" {
			t.Errorf("CRD %s: %s = %v, want true (Helm's install owns its fields)", name, patchForce, got)
		}
		want, _ := json.Marshal(crd["spec"])
		if got, _ := json.Marshal(p["spec"]); string(got) != string(want) {
			t.Errorf("CRD %s's spec is not the chart's", name)
		}
		if !slices.ContainsFunc(rel.DependsOn, func(u string) bool { return strings.HasSuffix(u, "::lbc-crd-"+name) }) {
			t.Errorf("the release does not wait for CRD %s", name)
		}
	}
}

// TestPolicyFitsARole: IAM refuses a role whose inline policies exceed
// 10,240 characters (whitespace not counted).
func TestPolicyFitsARole(t *testing.T) {
	p, err := Policy()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p); n > 10240 {
		t.Errorf("policy is %d characters, IAM allows a role 10,240", n)
	}
	if strings.ContainsAny(p, "\n\t") {
		t.Error("policy not compacted")
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, args, func(a Args) field.ErrorList { return a.Validate(field.NewPath("awsLoadBalancerController")) },
		[]fieldtest.Case[Args]{
			{"no cluster", func(a *Args) { a.ClusterName = "" }, "awsLoadBalancerController.clusterName", "Required value"},
			{"no region", func(a *Args) { a.Region = "" }, "awsLoadBalancerController.region", "Required value"},
			{"no VPC", func(a *Args) { a.VPCID = nil }, "awsLoadBalancerController.vpcId", "from the cloud layer"},
			{"no OIDC provider", func(a *Args) { a.OIDCProviderARN = nil }, "awsLoadBalancerController.oidcProviderArn", "Required value"},
			{"no OIDC issuer", func(a *Args) { a.OIDCIssuer = nil }, "awsLoadBalancerController.oidcIssuer", "Required value"},
		})
}
