// Package cloud is the AWS side of a stack: a VPC across the zones, an EKS
// cluster with encrypted Secrets and control-plane logs, an IAM OIDC
// provider for IRSA, one managed node group per zone (EBS volumes are zonal,
// so every zone always has nodes for its etcd member) and the EBS CSI driver
// with its own IRSA role. Its outputs (kubeconfig, OIDC provider, volume key)
// feed the Kubernetes provider and the components below, which never know
// whether the cluster is EKS or existing.
package cloud

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/eks"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/mod/semver"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/clientcmd/api"

	"github.com/kcp-tmc/kcp-tmc/pkg/awsiam"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/kubeconfig"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:cloud:EKS"

// DefaultKubernetesVersion is the EKS version the stacks pin.
const DefaultKubernetesVersion = "1.33"

// Nodes sizes each zone's node group (the stack key cloud.nodesPerZone).
type Nodes struct {
	// Min is the fewest nodes per zone. With hostname anti-affinity,
	// zones × min must reach the kcp and etcd replicas.
	Min int `json:"min"`
	// Desired is the initial number of nodes per zone.
	Desired int `json:"desired"`
	// Max is the most nodes per zone.
	Max int `json:"max"`
}

// Args configures the AWS side.
type Args struct {
	ClusterName       string
	Region            string
	Zones             []string
	KubernetesVersion string
	VPCCIDR           string // default 10.0.0.0/16; one /20 public and one /19 private per zone
	NATPerZone        bool   // prod: a NAT gateway per zone, so one zone's loss cuts no other zone off
	PublicEndpoint    bool
	PublicCIDRs       []string // who may reach a public endpoint
	InstanceTypes     []string
	NodesPerZone      Nodes
	Tags              map[string]string // environment, owner, cost-center: on every resource
	// ExistingVPC uses an existing network instead of creating one.
	ExistingVPC *ExistingVPC
}

// ExistingVPC names a network by id: a private and a public subnet per zone
// (the stack key cloud.existingVpc).
type ExistingVPC struct {
	// ID is the VPC id, `vpc-…`.
	ID string `json:"id"`
	// PrivateSubnets maps every zone to a private subnet id, `subnet-…`.
	PrivateSubnets map[string]string `json:"privateSubnets"`
	// PublicSubnets maps every zone to a public subnet id, `subnet-…`.
	PublicSubnets map[string]string `json:"publicSubnets"`
}

// EKS is the component.
type EKS struct {
	pulumi.ResourceState

	ClusterName pulumi.StringOutput `pulumi:"clusterName"`
	Endpoint    pulumi.StringOutput `pulumi:"endpoint"`
	// Kubeconfig authenticates with `aws eks get-token` (a Pulumi secret).
	Kubeconfig      pulumi.StringOutput `pulumi:"kubeconfig"`
	OIDCProviderARN pulumi.StringOutput `pulumi:"oidcProviderArn"`
	// OIDCIssuer is the issuer without https:// (the IRSA condition prefix).
	OIDCIssuer pulumi.StringOutput `pulumi:"oidcIssuer"`
	// VolumeKeyARN encrypts EBS volumes (the storage component's kmsKeyId).
	VolumeKeyARN pulumi.StringOutput `pulumi:"volumeKeyArn"`
	// VPCID is the cluster's network, made or existing.
	VPCID pulumi.StringOutput `pulumi:"vpcId"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.KubernetesVersion, DefaultKubernetesVersion)
	component.Default(&a.VPCCIDR, "10.0.0.0/16")
	if len(a.InstanceTypes) == 0 {
		a.InstanceTypes = []string{"m6i.xlarge"}
	}
	component.Default(&a.NodesPerZone, Nodes{Min: 1, Desired: 2, Max: 4})
	return a
}

var (
	clusterName = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,99}$`)
	region      = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`)
)

// Validate reports every invalid field under fld, children named by the
// stack's keys (zones is the stack's top-level key: stacks mount it there).
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !clusterName.MatchString(a.ClusterName) {
		errs = append(errs, field.Invalid(fld.Child("clusterName"), a.ClusterName, "an EKS cluster name (letters, digits, '-', starting with a letter)"))
	}
	switch {
	case !region.MatchString(a.Region):
		errs = append(errs, field.Invalid(fld.Child("region"), a.Region, "an AWS region such as us-east-1"))
	case strings.Contains(a.Region, "-gov-") || strings.HasPrefix(a.Region, "cn-"):
		// Their ARNs start arn:aws-us-gov: / arn:aws-cn:; the managed
		// policies and the controllers' policies here name arn:aws:.
		errs = append(errs, field.Invalid(fld.Child("region"), a.Region, "a region of the standard AWS partition (GovCloud and China are not supported)"))
	}
	zones := fld.Child("zones")
	switch {
	case len(a.Zones) == 0:
		errs = append(errs, field.Required(zones, "2 to 4 zones of the region (EKS needs subnets in two)"))
	case len(a.Zones) < 2 || len(a.Zones) > 4:
		errs = append(errs, field.Invalid(zones, strings.Join(a.Zones, ","), "2 to 4 zones (EKS needs subnets in two; one /16 holds four zones' subnets)"))
	}
	seen := map[string]bool{}
	for i, z := range a.Zones {
		if !strings.HasPrefix(z, a.Region) || len(z) != len(a.Region)+1 || seen[z] {
			errs = append(errs, field.Invalid(zones.Index(i), z, "distinct zones of region "+a.Region+", such as "+a.Region+"a"))
		}
		seen[z] = true
	}
	if v := "v" + a.KubernetesVersion + ".0"; !semver.IsValid(v) || semver.Canonical(v) != v || semver.Major(v) != "v1" {
		errs = append(errs, field.Invalid(fld.Child("kubernetesVersion"), a.KubernetesVersion, `a pinned minor version such as "`+DefaultKubernetesVersion+`"`))
	}
	if _, n, err := net.ParseCIDR(a.VPCCIDR); err != nil || !strings.HasSuffix(n.String(), "/16") {
		errs = append(errs, field.Invalid(fld.Child("vpcCidr"), a.VPCCIDR, "a /16 (each zone gets a /20 public and a /19 private subnet)"))
	}
	if a.PublicEndpoint && len(a.PublicCIDRs) == 0 {
		errs = append(errs, field.Required(fld.Child("publicCidrs"), "the CIDRs allowed to reach a public endpoint (never the whole internet by default)"))
	}
	errs = append(errs, check.CIDRs(fld.Child("publicCidrs"), a.PublicCIDRs)...)
	if v := a.ExistingVPC; v != nil {
		p := fld.Child("existingVpc")
		if !strings.HasPrefix(v.ID, "vpc-") {
			errs = append(errs, field.Invalid(p.Child("id"), v.ID, "a VPC id (vpc-...)"))
		}
		for _, z := range a.Zones {
			for _, subnets := range []struct {
				key string
				ids map[string]string
			}{{"privateSubnets", v.PrivateSubnets}, {"publicSubnets", v.PublicSubnets}} {
				// A missing entry is a bad value of existingVpc (given), not an
				// unset key: it is refused even where EKS is not used.
				if id, ok := subnets.ids[z]; !ok {
					errs = append(errs, field.Invalid(p.Child(subnets.key).Key(z), "<none>", "a subnet id (subnet-...) for every zone"))
				} else if !strings.HasPrefix(id, "subnet-") {
					errs = append(errs, field.Invalid(p.Child(subnets.key).Key(z), id, "a subnet id (subnet-...) for every zone"))
				}
			}
		}
	}
	n := a.NodesPerZone
	if n.Min < 1 || n.Desired < n.Min || n.Max < n.Desired {
		errs = append(errs, field.Invalid(fld.Child("nodesPerZone"), fmt.Sprintf("%d/%d/%d", n.Min, n.Desired, n.Max), "1 ≤ min ≤ desired ≤ max (every zone keeps a node for its etcd member)"))
	}
	return errs
}

// ResourceTags are the tags of every AWS resource of the cluster: Tags and
// `kcp-tmc.io/cluster`.
func (a Args) ResourceTags() map[string]string {
	t := map[string]string{"kcp-tmc.io/cluster": a.ClusterName}
	maps.Copy(t, a.Tags)
	return t
}

// subnet returns the /20 (public) or /19 (private) block of zone i.
func subnet(vpc string, i int, public bool) string {
	ip, _, _ := net.ParseCIDR(vpc)
	b := ip.To4()
	if public {
		return fmt.Sprintf("%d.%d.%d.0/20", b[0], b[1], 128+16*i)
	}
	return fmt.Sprintf("%d.%d.%d.0/19", b[0], b[1], 32*i)
}

func assumeRole(service string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"%s"},"Action":"sts:AssumeRole"}]}`, service)
}

// NewEKS registers the component and its children.
func NewEKS(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*EKS, error) {
	args = args.WithDefaults()
	comp := &EKS{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("cloud")), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	tags := func(extra map[string]string) pulumi.StringMap {
		t := pulumi.ToStringMap(args.ResourceTags())
		for k, v := range extra {
			t[k] = pulumi.String(v)
		}
		return t
	}
	keys, err := newKeys(ctx, name, args, tags, child)
	if err != nil {
		return nil, err
	}

	var public, private pulumi.StringArray
	privateByZone := map[string]pulumi.StringOutput{}
	if v := args.ExistingVPC; v != nil {
		comp.VPCID = pulumi.String(v.ID).ToStringOutput()
		for _, zone := range args.Zones {
			public = append(public, pulumi.String(v.PublicSubnets[zone]))
			private = append(private, pulumi.String(v.PrivateSubnets[zone]))
			privateByZone[zone] = pulumi.String(v.PrivateSubnets[zone]).ToStringOutput()
		}
	} else if comp.VPCID, err = network(ctx, name, args, tags, child, &public, &private, privateByZone); err != nil {
		return nil, err
	}

	cluster, oidc, issuer, err := newControlPlane(ctx, name, args, keys["secrets"], public, private, tags, child)
	if err != nil {
		return nil, err
	}

	if err := nodeGroups(ctx, name, args, cluster, privateByZone, tags, child); err != nil {
		return nil, err
	}
	if err := ebsCSIDriver(ctx, name, cluster, oidc, issuer, tags, child); err != nil {
		return nil, err
	}

	comp.ClusterName = cluster.Name
	comp.Endpoint = cluster.Endpoint
	comp.OIDCProviderARN, comp.OIDCIssuer = oidc.Arn, issuer
	comp.VolumeKeyARN = keys["volumes"].Arn
	comp.Kubeconfig = pulumi.ToSecret(pulumi.All(cluster.Name, cluster.Endpoint, cluster.CertificateAuthority.Data().Elem()).ApplyT(func(v []any) (string, error) {
		return Kubeconfig(v[0].(string), v[1].(string), v[2].(string), args.Region)
	})).(pulumi.StringOutput)
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"clusterName": comp.ClusterName, "endpoint": comp.Endpoint, "kubeconfig": comp.Kubeconfig,
		"oidcProviderArn": comp.OIDCProviderARN, "oidcIssuer": comp.OIDCIssuer, "volumeKeyArn": comp.VolumeKeyARN,
		"vpcId": comp.VPCID,
	}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// attachPolicy attaches an AWS-managed policy to role.
func attachPolicy(ctx *pulumi.Context, urn string, role *iam.Role, policy string, child pulumi.ResourceOption) error {
	_, err := iam.NewRolePolicyAttachment(ctx, urn, &iam.RolePolicyAttachmentArgs{Role: role.Name, PolicyArn: pulumi.String("arn:aws:iam::aws:policy/" + policy)}, child)
	return err
}

// newControlPlane creates the EKS cluster (private endpoint, Secrets
// encrypted with secretsKey, every log type) and its IAM OIDC provider; it
// returns the provider and its issuer without https:// (IRSA's prefix).
func newControlPlane(ctx *pulumi.Context, name string, args Args, secretsKey *kms.Key, public, private pulumi.StringArray,
	tags func(map[string]string) pulumi.StringMap, child pulumi.ResourceOption) (*eks.Cluster, *iam.OpenIdConnectProvider, pulumi.StringOutput, error) {
	clusterRole, err := iam.NewRole(ctx, name+"-cluster-role", &iam.RoleArgs{AssumeRolePolicy: pulumi.String(assumeRole("eks.amazonaws.com")), Tags: tags(nil)}, child)
	if err != nil {
		return nil, nil, pulumi.StringOutput{}, fmt.Errorf("cluster role: %w", err)
	}
	if err := attachPolicy(ctx, name+"-cluster-policy", clusterRole, "AmazonEKSClusterPolicy", child); err != nil {
		return nil, nil, pulumi.StringOutput{}, err
	}
	endpointCIDRs := args.PublicCIDRs
	cluster, err := eks.NewCluster(ctx, name+"-cluster", &eks.ClusterArgs{
		Name: pulumi.String(args.ClusterName), Version: pulumi.String(args.KubernetesVersion), RoleArn: clusterRole.Arn,
		VpcConfig: &eks.ClusterVpcConfigArgs{
			SubnetIds:             append(append(pulumi.StringArray{}, private...), public...),
			EndpointPrivateAccess: pulumi.Bool(true), EndpointPublicAccess: pulumi.Bool(args.PublicEndpoint),
			PublicAccessCidrs: pulumi.ToStringArray(endpointCIDRs),
		},
		EncryptionConfig: &eks.ClusterEncryptionConfigArgs{
			Provider: eks.ClusterEncryptionConfigProviderArgs{KeyArn: secretsKey.Arn}, Resources: pulumi.ToStringArray([]string{"secrets"}),
		},
		EnabledClusterLogTypes: pulumi.ToStringArray([]string{"api", "audit", "authenticator", "controllerManager", "scheduler"}),
		AccessConfig:           &eks.ClusterAccessConfigArgs{AuthenticationMode: pulumi.String("API")},
		Tags:                   tags(nil),
	}, child)
	if err != nil {
		return nil, nil, pulumi.StringOutput{}, fmt.Errorf("EKS cluster: %w", err)
	}
	issuerURL := cluster.Identities.Index(pulumi.Int(0)).Oidcs().Index(pulumi.Int(0)).Issuer().Elem()
	oidc, err := iam.NewOpenIdConnectProvider(ctx, name+"-oidc", &iam.OpenIdConnectProviderArgs{
		Url: issuerURL, ClientIdLists: pulumi.ToStringArray([]string{"sts.amazonaws.com"}), Tags: tags(nil),
	}, child)
	if err != nil {
		return nil, nil, pulumi.StringOutput{}, fmt.Errorf("OIDC provider: %w", err)
	}
	issuer := issuerURL.ApplyT(func(u string) string { return strings.TrimPrefix(u, "https://") }).(pulumi.StringOutput)
	return cluster, oidc, issuer, nil
}

// newKeys creates the cluster's KMS keys (rotated, protected): secrets
// encrypts its Secrets, volumes its EBS volumes.
func newKeys(ctx *pulumi.Context, name string, args Args, tags func(map[string]string) pulumi.StringMap, child pulumi.ResourceOption) (map[string]*kms.Key, error) {
	keys := map[string]*kms.Key{}
	for _, use := range []string{"secrets", "volumes"} {
		k, err := kms.NewKey(ctx, name+"-"+use+"-key", &kms.KeyArgs{
			Description: pulumi.Sprintf("kcp-tmc %s: EKS %s", args.ClusterName, use), EnableKeyRotation: pulumi.Bool(true),
			DeletionWindowInDays: pulumi.Int(30), Tags: tags(nil),
		}, child, pulumi.Protect(true))
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", use, err)
		}
		keys[use] = k
	}
	return keys, nil
}

// nodeGroups creates the nodes' role (only what nodes need) and one managed
// node group per zone, in that zone's private subnet.
func nodeGroups(ctx *pulumi.Context, name string, args Args, cluster *eks.Cluster, privateByZone map[string]pulumi.StringOutput,
	tags func(map[string]string) pulumi.StringMap, child pulumi.ResourceOption) error {
	nodeRole, err := iam.NewRole(ctx, name+"-node-role", &iam.RoleArgs{AssumeRolePolicy: pulumi.String(assumeRole("ec2.amazonaws.com")), Tags: tags(nil)}, child)
	if err != nil {
		return fmt.Errorf("node role: %w", err)
	}
	// Only what nodes need: join the cluster, run the VPC CNI, pull images.
	for _, p := range []string{"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"} {
		if err := attachPolicy(ctx, name+"-node-"+p, nodeRole, p, child); err != nil {
			return err
		}
	}
	for _, zone := range args.Zones {
		if _, err := eks.NewNodeGroup(ctx, name+"-nodes-"+zone, &eks.NodeGroupArgs{
			ClusterName: cluster.Name, NodeGroupName: pulumi.String(args.ClusterName + "-" + zone), NodeRoleArn: nodeRole.Arn,
			SubnetIds:     pulumi.StringArray{privateByZone[zone]},
			InstanceTypes: pulumi.ToStringArray(args.InstanceTypes),
			ScalingConfig: eks.NodeGroupScalingConfigArgs{MinSize: pulumi.Int(args.NodesPerZone.Min), DesiredSize: pulumi.Int(args.NodesPerZone.Desired), MaxSize: pulumi.Int(args.NodesPerZone.Max)},
			Tags:          tags(map[string]string{"topology.kubernetes.io/zone": zone}),
		}, child); err != nil {
			return fmt.Errorf("node group %s: %w", zone, err)
		}
	}
	return nil
}

// ebsCSIDriver installs the EBS CSI add-on with an IRSA role that only its
// controller's ServiceAccount may assume.
func ebsCSIDriver(ctx *pulumi.Context, name string, cluster *eks.Cluster, oidc *iam.OpenIdConnectProvider, issuer pulumi.StringOutput,
	tags func(map[string]string) pulumi.StringMap, child pulumi.ResourceOption) error {
	csiRole, err := iam.NewRole(ctx, name+"-ebs-csi-role", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.All(oidc.Arn, issuer).ApplyT(func(v []any) (string, error) {
			return awsiam.ServiceAccountTrust(v[0].(string), v[1].(string), "kube-system", "ebs-csi-controller-sa")
		}).(pulumi.StringOutput),
		Tags: tags(nil),
	}, child)
	if err != nil {
		return fmt.Errorf("EBS CSI role: %w", err)
	}
	if _, err := iam.NewRolePolicyAttachment(ctx, name+"-ebs-csi-policy", &iam.RolePolicyAttachmentArgs{
		Role: csiRole.Name, PolicyArn: pulumi.String("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy")}, child); err != nil {
		return err
	}
	if _, err := eks.NewAddon(ctx, name+"-ebs-csi", &eks.AddonArgs{
		ClusterName: cluster.Name, AddonName: pulumi.String("aws-ebs-csi-driver"), ServiceAccountRoleArn: csiRole.Arn,
		ResolveConflictsOnUpdate: pulumi.String("OVERWRITE"), Tags: tags(nil),
	}, child); err != nil {
		return fmt.Errorf("EBS CSI add-on: %w", err)
	}
	return nil
}

// Kubeconfig authenticates with `aws eks get-token`: no long-lived
// credential in it. caData is the cluster's CA as EKS reports it (base64).
func Kubeconfig(cluster, endpoint, caData, region string) (string, error) {
	ca, err := base64.StdEncoding.DecodeString(caData)
	if err != nil {
		return "", fmt.Errorf("the CA of EKS cluster %s is not base64: %w", cluster, err)
	}
	return kubeconfig.Config{Context: cluster, Server: endpoint, CAData: ca, Exec: &api.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1beta1", Command: "aws",
		Args:            []string{"eks", "get-token", "--cluster-name", cluster, "--region", region},
		InteractiveMode: api.NeverExecInteractiveMode,
	}}.Render()
}

// network creates the VPC, its per-zone public and private subnets, the
// internet gateway and NAT, and reports the VPC's id and the subnets.
func network(ctx *pulumi.Context, name string, args Args, tags func(map[string]string) pulumi.StringMap, child pulumi.ResourceOption,
	public, private *pulumi.StringArray, privateByZone map[string]pulumi.StringOutput) (pulumi.StringOutput, error) {
	var none pulumi.StringOutput
	vpc, err := ec2.NewVpc(ctx, name+"-vpc", &ec2.VpcArgs{CidrBlock: pulumi.String(args.VPCCIDR),
		EnableDnsHostnames: pulumi.Bool(true), EnableDnsSupport: pulumi.Bool(true), Tags: tags(map[string]string{"Name": args.ClusterName})}, child)
	if err != nil {
		return none, fmt.Errorf("VPC: %w", err)
	}
	igw, err := ec2.NewInternetGateway(ctx, name+"-igw", &ec2.InternetGatewayArgs{VpcId: vpc.ID(), Tags: tags(nil)}, child)
	if err != nil {
		return none, fmt.Errorf("internet gateway: %w", err)
	}
	publicRT, err := ec2.NewRouteTable(ctx, name+"-public", &ec2.RouteTableArgs{VpcId: vpc.ID(),
		Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), GatewayId: igw.ID()}}, Tags: tags(nil)}, child)
	if err != nil {
		return none, fmt.Errorf("public route table: %w", err)
	}
	clusterTag := "kubernetes.io/cluster/" + args.ClusterName
	var nat *ec2.NatGateway
	for i, zone := range args.Zones {
		pub, err := ec2.NewSubnet(ctx, name+"-public-"+zone, &ec2.SubnetArgs{VpcId: vpc.ID(), AvailabilityZone: pulumi.String(zone),
			CidrBlock: pulumi.String(subnet(args.VPCCIDR, i, true)), MapPublicIpOnLaunch: pulumi.Bool(false),
			Tags: tags(map[string]string{"kubernetes.io/role/elb": "1", clusterTag: "shared"})}, child)
		if err != nil {
			return none, fmt.Errorf("public subnet %s: %w", zone, err)
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, name+"-public-"+zone, &ec2.RouteTableAssociationArgs{SubnetId: pub.ID(), RouteTableId: publicRT.ID()}, child); err != nil {
			return none, err
		}
		if nat == nil || args.NATPerZone {
			eip, err := ec2.NewEip(ctx, name+"-nat-"+zone, &ec2.EipArgs{Domain: pulumi.String("vpc"), Tags: tags(nil)}, child)
			if err != nil {
				return none, fmt.Errorf("NAT address %s: %w", zone, err)
			}
			if nat, err = ec2.NewNatGateway(ctx, name+"-nat-"+zone, &ec2.NatGatewayArgs{AllocationId: eip.ID(), SubnetId: pub.ID(), Tags: tags(nil)}, child); err != nil {
				return none, fmt.Errorf("NAT gateway %s: %w", zone, err)
			}
		}
		priv, err := ec2.NewSubnet(ctx, name+"-private-"+zone, &ec2.SubnetArgs{VpcId: vpc.ID(), AvailabilityZone: pulumi.String(zone),
			CidrBlock: pulumi.String(subnet(args.VPCCIDR, i, false)),
			Tags:      tags(map[string]string{"kubernetes.io/role/internal-elb": "1", clusterTag: "shared"})}, child)
		if err != nil {
			return none, fmt.Errorf("private subnet %s: %w", zone, err)
		}
		rt, err := ec2.NewRouteTable(ctx, name+"-private-"+zone, &ec2.RouteTableArgs{VpcId: vpc.ID(),
			Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), NatGatewayId: nat.ID()}}, Tags: tags(nil)}, child)
		if err != nil {
			return none, fmt.Errorf("private route table %s: %w", zone, err)
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, name+"-private-"+zone, &ec2.RouteTableAssociationArgs{SubnetId: priv.ID(), RouteTableId: rt.ID()}, child); err != nil {
			return none, err
		}
		*public = append(*public, pub.ID().ToStringOutput())
		*private = append(*private, priv.ID().ToStringOutput())
		privateByZone[zone] = priv.ID().ToStringOutput()
	}
	return vpc.ID().ToStringOutput(), nil
}
