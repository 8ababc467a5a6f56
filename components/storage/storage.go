// Package storage provides etcd's StorageClass: an existing class by name
// (dev, staging), or one created on the AWS EBS CSI driver (prod: gp3 or io2,
// encrypted with a KMS key, zonal binding, expandable, retained).
package storage

import (
	"fmt"
	"strconv"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	storagev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/storage/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:storage:Storage"

// EBSProvisioner is the AWS EBS CSI driver.
const EBSProvisioner = "ebs.csi.aws.com"

// VolumeTypes are the EBS types fit for etcd (SSD; gp2 for older accounts).
var VolumeTypes = []string{"gp3", "io2", "gp2"}

// Args configures the class.
type Args struct {
	// ClassName is the StorageClass etcd claims use.
	ClassName string
	// Create makes the class; false uses an existing one of that name.
	Create bool
	// VolumeType is the EBS type (Create only): gp3 (default), io2 or gp2.
	VolumeType string
	// IOPS and ThroughputMiBps tune gp3/io2 (0 = the driver's default).
	IOPS            int
	ThroughputMiBps int
	// KMSKeyID encrypts volumes with a customer-managed key (from the cloud layer);
	// unset still encrypts, with the account's default EBS key.
	KMSKeyID pulumi.StringInput
	// ReclaimPolicy is Retain (default: a released etcd volume is kept) or Delete.
	ReclaimPolicy string
}

// Storage is the component.
type Storage struct {
	pulumi.ResourceState

	// ClassName is the StorageClass to claim from.
	ClassName pulumi.StringOutput `pulumi:"className"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.VolumeType, "gp3")
	component.Default(&a.ReclaimPolicy, "Retain")
	return a
}

// Validate reports every invalid field under fld (children are named by the
// stack's keys), with EBS's own limits.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	errs := check.DNSSubdomain(fld.Child("className"), a.ClassName, "a StorageClass name")
	errs = append(errs, check.OneOf(fld.Child("reclaimPolicy"), a.ReclaimPolicy, "Retain", "Delete")...)
	if !a.Create {
		return errs
	}
	errs = append(errs, check.OneOf(fld.Child("volumeType"), a.VolumeType, VolumeTypes...)...)
	iops, tput := fld.Child("iops"), fld.Child("throughputMiBps")
	switch a.VolumeType {
	case "gp3":
		if a.IOPS != 0 {
			errs = append(errs, check.Range(iops, a.IOPS, 3000, 16000, " for gp3 (0: the 3000 baseline)")...)
		}
		if a.ThroughputMiBps != 0 {
			errs = append(errs, check.Range(tput, a.ThroughputMiBps, 125, 1000, " for gp3 (0: the 125 baseline)")...)
		}
	case "io2":
		errs = append(errs, check.Range(iops, a.IOPS, 100, 256000, " for io2 (required: io2 is provisioned IOPS)")...)
		if a.ThroughputMiBps != 0 {
			errs = append(errs, field.Invalid(tput, a.ThroughputMiBps, "unset for io2 (throughput follows IOPS)"))
		}
	case "gp2":
		if a.IOPS != 0 {
			errs = append(errs, field.Invalid(iops, a.IOPS, "unset for gp2"))
		}
		if a.ThroughputMiBps != 0 {
			errs = append(errs, field.Invalid(tput, a.ThroughputMiBps, "unset for gp2"))
		}
	}
	return errs
}

// NewStorage registers the component (and the class, when Create).
func NewStorage(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Storage, error) {
	args = args.WithDefaults()
	comp := &Storage{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("storage")), opts...); err != nil {
		return nil, err
	}
	comp.ClassName = pulumi.String(args.ClassName).ToStringOutput()
	if args.Create {
		sc, err := storagev1.NewStorageClass(ctx, name+"-class", &storagev1.StorageClassArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name:   pulumi.String(args.ClassName),
				Labels: pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "app.kubernetes.io/managed-by": pulumi.String("pulumi")},
			},
			Provisioner: pulumi.String(EBSProvisioner),
			Parameters:  Parameters(args),
			// Bind where the pod lands: EBS volumes are zonal, etcd members are zone-pinned.
			VolumeBindingMode:    pulumi.String("WaitForFirstConsumer"),
			AllowVolumeExpansion: pulumi.Bool(true),
			ReclaimPolicy:        pulumi.String(args.ReclaimPolicy),
		}, pulumi.Parent(comp))
		if err != nil {
			return nil, fmt.Errorf("StorageClass %s: %w", args.ClassName, err)
		}
		comp.ClassName = sc.Metadata.Name().Elem()
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"className": comp.ClassName}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// Parameters are the EBS CSI driver's StorageClass parameters.
func Parameters(a Args) pulumi.StringMap {
	p := pulumi.StringMap{
		"type":                      pulumi.String(a.VolumeType),
		"encrypted":                 pulumi.String("true"),
		"csi.storage.k8s.io/fstype": pulumi.String("ext4"),
	}
	if a.IOPS != 0 {
		p["iops"] = pulumi.String(strconv.Itoa(a.IOPS))
	}
	if a.ThroughputMiBps != 0 {
		p["throughput"] = pulumi.String(strconv.Itoa(a.ThroughputMiBps))
	}
	if a.KMSKeyID != nil {
		p["kmsKeyId"] = a.KMSKeyID
	}
	return p
}
