// Package etcd runs kcp's etcd: a StatefulSet of an odd number of members
// with mutual TLS for clients and peers, its data on PersistentVolumeClaims
// that Pulumi manages explicitly so they can be grown in place and are never
// deleted with the stack.
package etcd

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:etcd:Etcd"

// Names and ports.
const (
	// Name is the default cluster's name: the root shard's etcd.
	Name          = shard.Etcd
	ClientPort    = 2379
	PeerPort      = 2380
	MetricsPort   = 8080
	DataClaimName = "data"
	dataDir       = "/var/lib/etcd"
	// Where the pods mount the etcd-server and etcd-peer certificates.
	serverTLSDir = "/etc/etcd/tls/server"
	peerTLSDir   = "/etc/etcd/tls/peer"
)

// DefaultImage and DefaultVersion pin etcd 3.5 (the kcp helm chart's line).
const (
	DefaultImage   = "quay.io/coreos/etcd"
	DefaultVersion = "v3.5.35"
	// DefaultJoinImage runs the join init container and the membership and
	// rollout Jobs: sh, cut, rm, sleep, etcd and etcdctl of the pinned
	// release (etcd's own image has no shell) and kubectl (the rollout).
	// hack/backup-image builds it; its workflow publishes this tag.
	DefaultJoinImage = "ghcr.io/kcp-tmc/etcd-backup:" + DefaultVersion + "-2"
)

// joinScript runs before etcd in each member of a multi-member cluster: it
// replaces a member whose data is lost, so it rejoins by itself.
//
//go:embed scripts/etcd-join.sh
var joinScript string

// Args configures etcd.
type Args struct {
	// Name names the cluster and everything of it (default Name, "etcd").
	Name      string
	Namespace string
	Replicas  int // odd; default 1
	Image     string
	Version   string
	// JoinImage runs scripts/etcd-join.sh before etcd (every member, with
	// one member too: the pod template ignores Replicas), the membership Job (scripts/etcd-members.sh)
	// and the rollout Job (scripts/etcd-rollout.sh): repository:tag with
	// sh, cut, rm, sleep, etcd and etcdctl of Version, and kubectl.
	JoinImage string
	// StorageClass and StorageSize size each member's volume. Growing
	// StorageSize patches the existing claims in place.
	StorageClass string
	StorageSize  string
	// VolumeAttributesClass, when set, is named by the claims: a new one
	// modifies the members' volumes in place (components/storage).
	VolumeAttributesClass string
	// QuotaBackendBytes caps the database (--quota-backend-bytes), a binary
	// quantity; default 8Gi, etcd's recommended maximum, and less than the volume.
	QuotaBackendBytes string
	Resources         workload.Resources
	Spread            workload.Spread
	// ServerSecret and PeerSecret hold kubernetes.io/tls certificates with ca.crt.
	ServerSecret string
	PeerSecret   string
	// Protect guards the StatefulSet and claims against deletion and
	// replacement; stacks set it outside dev.
	Protect bool
	// Clients are the pod selectors allowed to reach the client port (kcp,
	// backup jobs); MonitoringNamespace may scrape the metrics port.
	Clients             []map[string]string
	MonitoringNamespace string
	// Key is the stack key of this cluster's settings (default "etcd"; a
	// shard's is kcp.shards[i].etcd): errors name their field under it.
	Key string
}

// Etcd is the component.
type Etcd struct {
	pulumi.ResourceState

	// ClientURL is the in-cluster client endpoint (TLS).
	ClientURL pulumi.StringOutput `pulumi:"clientURL"`
	// Endpoints lists every member's client URL, for clients that dial members directly.
	Endpoints pulumi.StringArrayOutput `pulumi:"endpoints"`
	// StorageClass is the members' volumes' class; it fails the deployment
	// if etcd.storageClass differs from the class they are on.
	StorageClass pulumi.StringOutput `pulumi:"storageClass"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Name, Name)
	a.Resources = a.Resources.WithEphemeral("128Mi", "512Mi")
	component.Default(&a.Image, DefaultImage)
	component.Default(&a.Version, DefaultVersion)
	component.Default(&a.JoinImage, DefaultJoinImage)
	component.Default(&a.QuotaBackendBytes, "8Gi")
	component.Default(&a.Spread.Mode, workload.SpreadNone)
	component.Default(&a.MonitoringNamespace, netpol.MonitoringNamespace)
	component.Default(&a.Key, "etcd")
	return a
}

// Validate reports every invalid field under fld, children named by the
// stack's keys.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	errs := check.DNSLabel(fld.Child("namespace"), a.Namespace, "a namespace")
	if a.Replicas < 1 || a.Replicas > MaxReplicas || a.Replicas%2 == 0 {
		errs = append(errs, field.Invalid(fld.Child("replicas"), a.Replicas, "an odd number from 1 to 7 (an even member count adds no fault tolerance)"))
	}
	errs = append(errs, check.Repository(fld.Child("image"), a.Image, DefaultImage)...)
	errs = append(errs, check.Release(fld.Child("version"), a.Version, "v3.5", DefaultVersion)...)
	errs = append(errs, check.Image(fld.Child("joinImage"), a.JoinImage, DefaultJoinImage)...)
	errs = append(errs, check.DNSSubdomain(fld.Child("storageClass"), a.StorageClass, "a StorageClass name")...)
	size, sizeErr := a.volumeBytes(fld.Child("storageSize"))
	quota, quotaErr := a.quotaBytes(fld.Child("quotaBackendBytes"))
	errs = append(append(errs, sizeErr...), quotaErr...)
	if sizeErr == nil && quotaErr == nil && quota >= size {
		errs = append(errs, field.Invalid(fld.Child("quotaBackendBytes"), a.QuotaBackendBytes, "less than storageSize ("+a.StorageSize+"): the database must fit the volume"))
	}
	errs = append(errs, a.Resources.Validate(fld.Child("resources"))...)
	errs = append(errs, a.Spread.Validate(fld.Child("antiAffinity"), a.Replicas)...)
	if a.ServerSecret == "" {
		errs = append(errs, field.Required(fld.Child("serverSecret"), "the etcd-server Secret of the pki component"))
	}
	if a.PeerSecret == "" {
		errs = append(errs, field.Required(fld.Child("peerSecret"), "the etcd-peer Secret of the pki component"))
	}
	return errs
}

// volumeBytes is StorageSize: a whole number of Gi (or Ti), binary units.
func (a Args) volumeBytes(fld *field.Path) (int64, field.ErrorList) {
	q, err := resource.ParseQuantity(a.StorageSize)
	if err != nil || q.Format != resource.BinarySI || q.Sign() <= 0 || q.Value()%(1<<30) != 0 {
		return 0, field.ErrorList{field.Invalid(fld, a.StorageSize, `a whole number of Gi or Ti, e.g. "100Gi" (binary units; "Gb" and "G" are not accepted)`)}
	}
	return q.Value(), nil
}

// volumeSize is the claims' size, always in Gi: a claim template's request
// never changes spelling (1Ti stays 1024Gi), so no update reads as a resize.
func (a Args) volumeSize() string {
	q := resource.MustParse(a.StorageSize)
	return strconv.FormatInt(q.Value()>>30, 10) + "Gi"
}

// quotaBytes is QuotaBackendBytes: at most 8Gi, etcd's supported maximum.
func (a Args) quotaBytes(fld *field.Path) (int64, field.ErrorList) {
	q, err := resource.ParseQuantity(a.QuotaBackendBytes)
	if err != nil || q.Format != resource.BinarySI || q.Sign() <= 0 || q.Value() > 8<<30 {
		return 0, field.ErrorList{field.Invalid(fld, a.QuotaBackendBytes, `a positive memory quantity of at most 8Gi (etcd's supported maximum), such as "8Gi"`)}
	}
	return q.Value(), nil
}

// NewEtcd registers the component and its children.
func NewEtcd(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Etcd, error) {
	args = args.WithDefaults()
	comp := &Etcd{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath(args.Key)), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	ns := args.Namespace
	cluster, app := args.Cluster(), args.Name
	// The claims and the StatefulSet outlive a destroy when protected. A
	// claim is retained rather than protected: lowering etcd.replicas drops
	// the claims of the members removed (the membership Job), which Pulumi
	// would refuse to forget if they were protected; the volume stays, and
	// a later raise adopts it (server-side apply) and its join starts anew.
	claimOpts := []pulumi.ResourceOption{child}
	stateful := []pulumi.ResourceOption{child}
	if args.Protect {
		claimOpts = append(claimOpts, pulumi.RetainOnDelete(true))
		stateful = append(stateful, pulumi.Protect(true), pulumi.RetainOnDelete(true))
	}

	if err := newServices(ctx, name, args, child); err != nil {
		return nil, err
	}
	storageClass, err := newMembers(ctx, name, args, child, claimOpts, stateful)
	if err != nil {
		return nil, err
	}
	self := workload.Labels(app)
	// The join init container reads and changes the membership through
	// the other members' client port (scripts/etcd-join.sh) — open also
	// with one member, so that raising the count does not wait on this policy.
	members := netpol.Flow{Pods: self, Ports: []int{PeerPort, ClientPort}}
	ingress := []netpol.Flow{
		members,
		{Namespace: args.MonitoringNamespace, Ports: []int{MetricsPort}},
	}
	for _, c := range args.Clients {
		ingress = append(ingress, netpol.Flow{Pods: c, Ports: []int{ClientPort}})
	}
	ingress = append(ingress, netpol.Flow{Pods: workload.Labels(membersJob(app)), Ports: []int{ClientPort}})
	if _, err := netpol.NewAllowPolicy(ctx, name+"-netpol", ns, app, self, ingress,
		[]netpol.Flow{members}, child); err != nil {
		return nil, err
	}

	comp.ClientURL = pulumi.String(cluster.ClientURL()).ToStringOutput()
	comp.Endpoints = pulumi.ToStringArray(cluster.MemberURLs(args.Replicas)).ToStringArrayOutput()
	comp.StorageClass = storageClass
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"clientURL": comp.ClientURL, "endpoints": comp.Endpoints, "storageClass": comp.StorageClass}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// newServices registers the cluster's ServiceAccount, its headless Service
// (the members' stable names) and its client Service (also the scraped one).
func newServices(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption) error {
	ns, cluster, app := args.Namespace, args.Cluster(), args.Name
	if _, err := corev1.NewServiceAccount(ctx, name+"-sa", &corev1.ServiceAccountArgs{
		Metadata:                     workload.Meta(app, ns, app),
		AutomountServiceAccountToken: pulumi.Bool(false), // etcd never calls the Kubernetes API
	}, child); err != nil {
		return fmt.Errorf("etcd ServiceAccount: %w", err)
	}
	ports := corev1.ServicePortArray{
		corev1.ServicePortArgs{Name: pulumi.String("client"), Port: pulumi.Int(ClientPort), TargetPort: pulumi.String("client")},
		corev1.ServicePortArgs{Name: pulumi.String("peer"), Port: pulumi.Int(PeerPort), TargetPort: pulumi.String("peer")},
		corev1.ServicePortArgs{Name: pulumi.String("metrics"), Port: pulumi.Int(MetricsPort), TargetPort: pulumi.String("metrics")},
	}
	if _, err := corev1.NewService(ctx, name+"-headless", &corev1.ServiceArgs{
		Metadata: workload.Meta(cluster.HeadlessName(), ns, app),
		Spec: &corev1.ServiceSpecArgs{
			ClusterIP: pulumi.String("None"),
			// Members must resolve each other before they are ready, or the cluster never forms.
			PublishNotReadyAddresses: pulumi.Bool(true),
			Selector:                 pulumi.ToStringMap(workload.Labels(app)),
			Ports:                    ports,
		},
	}, child); err != nil {
		return fmt.Errorf("etcd headless Service: %w", err)
	}
	clientMeta := workload.Meta(app, ns, app)
	// The one Service Prometheus scrapes: every cluster under job etcd (the
	// program, which the alerts select), told apart by its cluster label.
	clientMeta.Labels = pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(Name), "app.kubernetes.io/part-of": pulumi.String("kcp-tmc"),
		"kcp-tmc.io/scrape": pulumi.String("true"), ClusterLabel: pulumi.String(app)}
	if _, err := corev1.NewService(ctx, name+"-client", &corev1.ServiceArgs{
		Metadata: clientMeta,
		Spec: &corev1.ServiceSpecArgs{
			Selector: pulumi.ToStringMap(workload.Labels(app)),
			Ports:    corev1.ServicePortArray{ports[0], ports[2]},
		},
	}, child); err != nil {
		return fmt.Errorf("etcd client Service: %w", err)
	}

	return nil
}

// newMembers registers the members: their claims, the join script, the
// membership Job, the StatefulSet and its PDB. It returns the members'
// StorageClass, which fails if their claims are on another.
func newMembers(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption, claimOpts, stateful []pulumi.ResourceOption) (pulumi.StringOutput, error) {
	ns, cluster, app := args.Namespace, args.Cluster(), args.Name
	// The claims the StatefulSet would create, created by Pulumi instead (same
	// names, so the StatefulSet adopts them): a size change then patches each
	// claim in place, where a volumeClaimTemplates change would replace the
	// StatefulSet.
	// A claim's class cannot change: the claims keep theirs, checked
	// against etcd.storageClass (workload.ClaimClass).
	var before []pulumi.Resource // what the StatefulSet's pods need first
	var claims []*corev1.PersistentVolumeClaim
	claimOpts = append(slices.Clip(claimOpts), workload.KeepClaimClass)
	if args.VolumeAttributesClass == "" {
		// Kubernetes refuses to unset a claim's attributes class once its
		// volume has it: turned off (or on a class kcp-tmc does not make),
		// a claim keeps the one it names, and changes reach new volumes only.
		claimOpts = append(claimOpts, pulumi.IgnoreChanges([]string{"spec.volumeAttributesClassName"}))
	}
	for _, member := range cluster.MemberNames(args.Replicas) {
		pvc, err := corev1.NewPersistentVolumeClaim(ctx, name+"-"+DataClaimName+"-"+member, &corev1.PersistentVolumeClaimArgs{
			Metadata: workload.ClaimMeta(DataClaimName+"-"+member, ns, app),
			Spec:     claimSpec(args),
		}, claimOpts...)
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("etcd claim for %s: %w", member, err)
		}
		before = append(before, pvc)
		claims = append(claims, pvc)
	}
	storageClass := workload.ClaimClass(field.NewPath(args.Key, "storageClass"), args.StorageClass, "the members' volumes are",
		func(class string) string {
			return fmt.Sprintf("keep %q (moving etcd's data to another class, and the refresh that tells the stack it moved: docs/runbook.md \"Moving etcd to another StorageClass\")", class)
		}, claims...)

	// What the pods read of etcd.replicas (joinData). It changes before the
	// membership Job runs and before the StatefulSet: a pod of a larger
	// count recreated while the count goes down must read the new count
	// (the join script's replicas guard), a new member the new membership.
	script, err := corev1.NewConfigMap(ctx, name+"-join-script", &corev1.ConfigMapArgs{
		Metadata: workload.Meta(joinConfigMap(app), ns, app),
		Data:     pulumi.ToStringMap(joinData(args)),
	}, child)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("etcd join script: %w", err)
	}
	before = append(before, script)
	job, err := newMembersJob(ctx, name, args, child, pulumi.DependsOn([]pulumi.Resource{script}))
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	before = append(before, job)
	stsOpts := append(stateful, pulumi.DependsOn(before),
		// volumeClaimTemplates is immutable: sizes are changed on the claims above.
		pulumi.IgnoreChanges([]string{"spec.volumeClaimTemplates"}))
	// The rollout Job restarts the members onto a new template, and the up
	// waits for it instead: the provider's wait for an OnDelete StatefulSet
	// (every replica Ready) would fail an up while a member is down, before
	// the Job could run.
	stsMeta := workload.Meta(app, ns, app)
	stsMeta.Annotations = pulumi.StringMap{workload.SkipAwait: pulumi.String("true")}
	template := podTemplate(args)
	sts, err := appsv1.NewStatefulSet(ctx, name, &appsv1.StatefulSetArgs{
		Metadata: stsMeta,
		Spec: &appsv1.StatefulSetSpecArgs{
			Replicas:    pulumi.Int(args.Replicas),
			ServiceName: pulumi.String(cluster.HeadlessName()),
			Selector:    &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(workload.Labels(app))},
			// All members start together: an initial cluster needs its quorum up at once.
			PodManagementPolicy: pulumi.String("Parallel"),
			// Pods move onto a new template only when the rollout Job
			// restarts them (rollout.go): never a Ready member while
			// another is down.
			UpdateStrategy: &appsv1.StatefulSetUpdateStrategyArgs{Type: pulumi.String("OnDelete")},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs{
				WhenDeleted: pulumi.String("Retain"), WhenScaled: pulumi.String("Retain"),
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(DataClaimName), Labels: pulumi.ToStringMap(workload.Labels(app))},
				Spec:     claimSpec(args),
			}},
			Template: template,
		},
	}, stsOpts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("etcd StatefulSet: %w", err)
	}
	if err := newRollout(ctx, name, args, template, child, sts); err != nil {
		return pulumi.StringOutput{}, err
	}
	if err := workload.NewPDB(ctx, name+"-pdb", ns, app, child); err != nil {
		return pulumi.StringOutput{}, err
	}
	return storageClass, nil
}
