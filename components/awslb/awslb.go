// Package awslb installs the AWS Load Balancer Controller on an EKS cluster
// kcp-tmc makes (cloud.mode eks). prod's LoadBalancer Services ask for an NLB
// with `aws-load-balancer-type: external`, which EKS's built-in service
// controller leaves to this controller (cloud-provider-aws isLBExternal):
// without it the front door never gets an address.
package awslb

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/awsiam"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:awslb:LoadBalancerController"

// The chart and the IAM policy are one pin: the policy is the one the
// controller's release documents for exactly this version.
const (
	ChartRepo    = "https://aws.github.io/eks-charts"
	Chart        = "aws-load-balancer-controller"
	ChartVersion = "3.6.2" // app v3.6.2; hack/versions.env AWS_LOAD_BALANCER_CONTROLLER_VERSION
	// Namespace and ServiceAccount are where the controller runs and who it
	// is: the IAM role trusts exactly this ServiceAccount.
	Namespace      = "kube-system"
	ServiceAccount = "aws-load-balancer-controller"
	replicas       = 2
	// ReadinessGateLabel on a namespace has the controller give the pods
	// behind its load balancers a readiness gate: Ready once a healthy
	// target (its pod webhook, failing open).
	ReadinessGateLabel = "elbv2.k8s.aws/pod-readiness-gate-inject"
)

// iamPolicy is docs/install/iam_policy.json of the controller's module
// sigs.k8s.io/aws-load-balancer-controller/v3 at ChartVersion (a test
// compares them), what its install guide has users create: the controller's
// AWS permissions, most of them limited to resources it tagged itself.
//
//go:embed iam_policy.json
var iamPolicy []byte

// Args configures the controller.
type Args struct {
	ClusterName string
	Region      string
	// VPCID is given so the controller needs no instance metadata to find it.
	VPCID pulumi.StringInput
	// OIDCProviderARN and OIDCIssuer (without https://) are the cluster's
	// IRSA provider.
	OIDCProviderARN, OIDCIssuer pulumi.StringInput
	// Tags go on the IAM role and on every AWS resource the controller makes
	// (load balancers, target groups, security groups).
	Tags map[string]string
}

// Validate reports every missing field under fld.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"clusterName", a.ClusterName != ""}, {"region", a.Region != ""}, {"vpcId", a.VPCID != nil},
		{"oidcProviderArn", a.OIDCProviderARN != nil}, {"oidcIssuer", a.OIDCIssuer != nil},
	} {
		if !f.set {
			errs = append(errs, field.Required(fld.Child(f.name), "the cluster's, from the cloud layer"))
		}
	}
	return errs
}

// Controller is the component.
type Controller struct {
	pulumi.ResourceState

	// Release is the installed chart: what depends on the controller (the
	// LoadBalancer Services) depends on it, so it is there first and removed
	// last (the controller deletes the NLB of a Service being deleted).
	Release pulumi.Resource
	RoleARN pulumi.StringOutput `pulumi:"roleArn"`
}

// Policy is the controller's IAM policy document, compacted (IAM counts
// every character but whitespace against a policy's size).
func Policy() (string, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, iamPolicy); err != nil {
		return "", fmt.Errorf("the AWS Load Balancer Controller's IAM policy: %w", err)
	}
	return b.String(), nil
}

// New registers the component: an IRSA role with the controller's policy,
// the chart's CRDs and the chart, with both providers (AWS and Kubernetes)
// in opts.
func New(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Controller, error) {
	comp := &Controller{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("awsLoadBalancerController")), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	policy, err := Policy()
	if err != nil {
		return nil, err
	}
	role, err := iam.NewRole(ctx, name+"-role", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.All(args.OIDCProviderARN, args.OIDCIssuer).ApplyT(func(v []any) (string, error) {
			return awsiam.ServiceAccountTrust(v[0].(string), v[1].(string), Namespace, ServiceAccount)
		}).(pulumi.StringOutput),
		Tags: pulumi.ToStringMap(args.Tags),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("AWS Load Balancer Controller role: %w", err)
	}
	// Inline: it lives and dies with the role, and no account-wide policy
	// name can clash with another cluster's.
	rolePolicy, err := iam.NewRolePolicy(ctx, name+"-policy", &iam.RolePolicyArgs{Role: role.Name, Policy: pulumi.String(policy)}, child)
	if err != nil {
		return nil, fmt.Errorf("AWS Load Balancer Controller policy: %w", err)
	}
	rel, err := Install(ctx, name, ChartRepo, Values(args, role.Arn), child, pulumi.DependsOn([]pulumi.Resource{rolePolicy}))
	if err != nil {
		return nil, err
	}
	comp.Release, comp.RoleARN = rel, role.Arn
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"roleArn": role.Arn}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// Values are the chart's values (its values.yaml at ChartVersion); roleARN
// is the controller's IAM role.
func Values(args Args, roleARN pulumi.StringInput) pulumi.Map {
	return pulumi.Map{
		"clusterName":  pulumi.String(args.ClusterName),
		"region":       pulumi.String(args.Region),
		"vpcId":        args.VPCID,
		"replicaCount": pulumi.Int(replicas),
		// One controller pod may be evicted at a time (node drains, upgrades).
		"podDisruptionBudget": pulumi.Map{"maxUnavailable": pulumi.Int(1)},
		"serviceAccount": pulumi.Map{
			"create": pulumi.Bool(true), "name": pulumi.String(ServiceAccount),
			"annotations": pulumi.StringMap{"eks.amazonaws.com/role-arn": roleARN},
		},
		// Off: it would make the controller the default for every new
		// LoadBalancer Service and, with its failurePolicy Fail, refuse every
		// Service create while the controller is down. kcp-tmc's Services name
		// the controller by annotation.
		"enableServiceMutatorWebhook": pulumi.Bool(false),
		// Off for the same reason: it validates every Ingress of the cluster
		// (for ALBs, which kcp-tmc does not ask for) and fails closed, so kcp's
		// own Ingress (the nginx modes) could not change while it is down.
		"webhookConfig": pulumi.Map{"disableIngressValidation": pulumi.Bool(true)},
		"defaultTags":   pulumi.ToStringMap(args.Tags),
	}
}
