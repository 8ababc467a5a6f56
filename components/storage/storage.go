// Package storage provides etcd's StorageClass: an existing class by name
// (dev, staging), or one created on the AWS EBS CSI driver (prod: gp3 or io2,
// encrypted with a KMS key, zonal binding, expandable, retained), with a
// VolumeAttributesClass that carries the volumes' type, IOPS and throughput
// to the volumes already made.
package storage

import (
	"cmp"
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

// ModifyVolumesSince is the first Kubernetes minor version that serves
// VolumeAttributesClass by default (GA; 1.31–1.33 have it as a beta API,
// off unless enabled, and the driver's resizer then does not modify).
const ModifyVolumesSince = "1.34"

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
	// ModifyVolumes (Create only) also makes a VolumeAttributesClass of
	// VolumeType, IOPS and ThroughputMiBps for the claims to name: a
	// StorageClass's parameters reach only volumes made after them, so a
	// change would otherwise never reach etcd's existing volumes; a claim
	// that names a new VolumeAttributesClass has its volume modified in
	// place by the CSI driver. Needs Kubernetes 1.34 (the API's GA).
	ModifyVolumes bool
}

// Storage is the component.
type Storage struct {
	pulumi.ResourceState

	// ClassName is the StorageClass to claim from.
	ClassName pulumi.StringOutput `pulumi:"className"`
	// VolumeAttributesClass is the class the claims name ("" without
	// ModifyVolumes).
	VolumeAttributesClass pulumi.StringOutput `pulumi:"volumeAttributesClass"`
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
			errs = append(errs, check.Range(iops, a.IOPS, gp3BaselineIOPS, 16000, fmt.Sprintf(" for gp3 (0: the %d baseline)", gp3BaselineIOPS))...)
		}
		if a.ThroughputMiBps != 0 {
			errs = append(errs, check.Range(tput, a.ThroughputMiBps, gp3BaselineMiBps, 1000, fmt.Sprintf(" for gp3 (0: the %d baseline)", gp3BaselineMiBps))...)
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
	if a.ModifyVolumes && len(errs) == 0 {
		name := VolumeAttributesClassName(a)
		if bad := check.DNSSubdomain(fld.Child("className"), name, "a name"); len(bad) > 0 {
			errs = append(errs, field.Invalid(fld.Child("className"), a.ClassName,
				fmt.Sprintf("a shorter name: its VolumeAttributesClass %s is not a valid name (%s)", name, bad[0].Detail)))
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
	comp.VolumeAttributesClass = pulumi.String("").ToStringOutput()
	if args.Create {
		scOpts := []pulumi.ResourceOption{pulumi.Parent(comp)}
		if args.ModifyVolumes {
			// The volumes' attributes go by the VolumeAttributesClass
			// below: the StorageClass keeps the ones it was made with
			// (its parameters are immutable: a change would delete and
			// recreate it, and reach no volume).
			scOpts = append(scOpts, pulumi.IgnoreChanges([]string{"parameters.type", "parameters.iops", "parameters.throughput"}))
		}
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
		}, scOpts...)
		if err != nil {
			return nil, fmt.Errorf("StorageClass %s: %w", args.ClassName, err)
		}
		comp.ClassName = sc.Metadata.Name().Elem()
	}
	if args.Create && args.ModifyVolumes {
		vac, err := newAttributesClass(ctx, name, args, comp)
		if err != nil {
			return nil, err
		}
		comp.VolumeAttributesClass = vac
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"className": comp.ClassName,
		"volumeAttributesClass": comp.VolumeAttributesClass}); err != nil {
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

// Attributes are the EBS CSI driver's mutable parameters (its
// ControllerModifyVolume's keys: type, iops, throughput) of a: unset IOPS
// and throughput spelled out as gp3's baseline, which the driver would
// otherwise leave as the volume has them.
func Attributes(a Args) map[string]string {
	p := map[string]string{"type": a.VolumeType}
	iops, tput := a.IOPS, a.ThroughputMiBps
	if a.VolumeType == "gp3" {
		iops, tput = cmp.Or(iops, gp3BaselineIOPS), cmp.Or(tput, gp3BaselineMiBps)
	}
	if iops != 0 {
		p["iops"] = strconv.Itoa(iops)
	}
	if tput != 0 {
		p["throughput"] = strconv.Itoa(tput)
	}
	return p
}

// gp3's baseline, included in its price.
const (
	gp3BaselineIOPS  = 3000
	gp3BaselineMiBps = 125
)

// VolumeAttributesClassName is the VolumeAttributesClass of a's
// attributes: named after them, because its parameters are immutable — a
// change makes a new class, and the claims move to it.
func VolumeAttributesClassName(a Args) string {
	at := Attributes(a)
	name := a.ClassName + "-" + at["type"]
	if v, ok := at["iops"]; ok {
		name += "-" + v + "iops"
	}
	if v, ok := at["throughput"]; ok {
		name += "-" + v + "mibps"
	}
	return name
}

// newAttributesClass registers a's VolumeAttributesClass. It is kept in
// the cluster when a change replaces it: a claim the StatefulSet makes
// from its template (a lost member's) names the class the StatefulSet was
// created with, and a claim naming no existing class gets no volume.
func newAttributesClass(ctx *pulumi.Context, name string, a Args, parent pulumi.Resource) (pulumi.StringOutput, error) {
	vac, err := storagev1.NewVolumeAttributesClass(ctx, name+"-attributes", &storagev1.VolumeAttributesClassArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:   pulumi.String(VolumeAttributesClassName(a)),
			Labels: pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "app.kubernetes.io/managed-by": pulumi.String("pulumi")},
		},
		DriverName: pulumi.String(EBSProvisioner),
		Parameters: pulumi.ToStringMap(Attributes(a)),
	}, pulumi.Parent(parent), pulumi.RetainOnDelete(true))
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("VolumeAttributesClass %s: %w", VolumeAttributesClassName(a), err)
	}
	return vac.Metadata.Name().Elem(), nil
}
