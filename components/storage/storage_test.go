package storage

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

const scType = "kubernetes:storage.k8s.io/v1:StorageClass"

func TestStorageClass(t *testing.T) {
	tests := []struct {
		name   string
		args   Args
		create bool
		params map[string]any
	}{
		{"existing class is only referenced", Args{ClassName: "standard"}, false, nil},
		{"prod gp3 with KMS", Args{ClassName: "fast-ssd", Create: true, IOPS: 6000, ThroughputMiBps: 250, KMSKeyID: pulumi.String("arn:aws:kms:us-east-1:1:key/k")}, true,
			map[string]any{"type": "gp3", "encrypted": "true", "iops": "6000", "throughput": "250", "kmsKeyId": "arn:aws:kms:us-east-1:1:key/k", "csi.storage.k8s.io/fstype": "ext4"}},
		{"io2 without KMS still encrypted", Args{ClassName: "fast-ssd", Create: true, VolumeType: "io2", IOPS: 20000}, true,
			map[string]any{"type": "io2", "encrypted": "true", "iops": "20000", "csi.storage.k8s.io/fstype": "ext4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
				_, err := NewStorage(ctx, "storage", tt.args)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			classes := rec.OfType(scType)
			if (len(classes) == 1) != tt.create {
				t.Fatalf("%d StorageClasses registered, create=%v", len(classes), tt.create)
			}
			if !tt.create {
				return
			}
			sc := classes[0].Input()
			if sc["provisioner"] != EBSProvisioner || sc["volumeBindingMode"] != "WaitForFirstConsumer" || sc["allowVolumeExpansion"] != true || sc["reclaimPolicy"] != "Retain" {
				t.Errorf("class = %v", sc)
			}
			if got := sc["parameters"].(map[string]any); len(got) != len(tt.params) {
				t.Errorf("parameters = %v, want %v", got, tt.params)
			} else {
				for k, v := range tt.params {
					if got[k] != v {
						t.Errorf("parameter %s = %v, want %v", k, got[k], v)
					}
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name        string
		args        Args
		field, want string
	}{
		{"gp3 iops too low", Args{ClassName: "x", Create: true, IOPS: 100}, "storage.iops", "3000 to 16000 for gp3"},
		{"gp3 throughput too high", Args{ClassName: "x", Create: true, ThroughputMiBps: 2000}, "storage.throughputMiBps", "125 to 1000"},
		{"io2 without iops", Args{ClassName: "x", Create: true, VolumeType: "io2"}, "storage.iops", "required: io2 is provisioned IOPS"},
		{"io2 with throughput", Args{ClassName: "x", Create: true, VolumeType: "io2", IOPS: 1000, ThroughputMiBps: 200}, "storage.throughputMiBps", "unset for io2"},
		{"gp2 with iops", Args{ClassName: "x", Create: true, VolumeType: "gp2", IOPS: 1000}, "storage.iops", "unset for gp2"},
		{"hdd", Args{ClassName: "x", Create: true, VolumeType: "sc1"}, "storage.volumeType", `"sc1": supported values: "gp3", "io2", "gp2"`},
		{"bad reclaim", Args{ClassName: "x", ReclaimPolicy: "Recycle"}, "storage.reclaimPolicy", `"Recycle"`},
		{"bad name", Args{ClassName: "Fast SSD"}, "storage.className", "a StorageClass name"},
		{"no room for the attributes class", Args{ClassName: strings.Repeat("a", 50), Create: true, ModifyVolumes: true}, "storage.className",
			"a shorter name: its VolumeAttributesClass " + strings.Repeat("a", 50) + "-gp3-3000iops-125mibps is not a valid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fieldtest.Expect(t, tt.args.WithDefaults().Validate(field.NewPath("storage")), tt.field, tt.want)
		})
	}
}

const vacType = "kubernetes:storage.k8s.io/v1:VolumeAttributesClass"

// TestVolumeAttributesClass: with ModifyVolumes, the volumes' type, IOPS
// and throughput also go into a VolumeAttributesClass named after them
// (its parameters are immutable), which stays in the cluster when a change
// replaces it, and the StorageClass ignores them (a change would recreate
// it and reach no volume).
func TestVolumeAttributesClass(t *testing.T) {
	tests := []struct {
		name   string
		args   Args
		want   string // "" = no VolumeAttributesClass
		params map[string]any
	}{
		{"prod gp3", Args{ClassName: "fast-ssd", Create: true, IOPS: 6000, ThroughputMiBps: 250, ModifyVolumes: true},
			"fast-ssd-gp3-6000iops-250mibps", map[string]any{"type": "gp3", "iops": "6000", "throughput": "250"}},
		// Unset means gp3's baseline: the driver leaves a parameter it is
		// not given as the volume has it, so going back to 0 must say 3000.
		{"gp3 baseline spelled out", Args{ClassName: "fast-ssd", Create: true, ModifyVolumes: true},
			"fast-ssd-gp3-3000iops-125mibps", map[string]any{"type": "gp3", "iops": "3000", "throughput": "125"}},
		{"io2", Args{ClassName: "fast-ssd", Create: true, VolumeType: "io2", IOPS: 20000, ModifyVolumes: true},
			"fast-ssd-io2-20000iops", map[string]any{"type": "io2", "iops": "20000"}},
		{"gp2", Args{ClassName: "fast-ssd", Create: true, VolumeType: "gp2", ModifyVolumes: true},
			"fast-ssd-gp2", map[string]any{"type": "gp2"}},
		{"off", Args{ClassName: "fast-ssd", Create: true, IOPS: 6000}, "", nil},
		{"existing class", Args{ClassName: "gp2", ModifyVolumes: true}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
				s, err := NewStorage(ctx, "storage", tt.args)
				if err != nil {
					return err
				}
				s.VolumeAttributesClass.ApplyT(func(v string) string { got = v; return v })
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("output volumeAttributesClass = %q, want %q", got, tt.want)
			}
			vacs := rec.OfType(vacType)
			if tt.want == "" {
				if len(vacs) != 0 {
					t.Errorf("%d VolumeAttributesClasses registered, want none", len(vacs))
				}
				for _, sc := range rec.OfType(scType) {
					if len(sc.IgnoreChanges) != 0 {
						t.Errorf("StorageClass ignores %v without ModifyVolumes: a change must show", sc.IgnoreChanges)
					}
				}
				return
			}
			if len(vacs) != 1 {
				t.Fatalf("%d VolumeAttributesClasses registered, want 1", len(vacs))
			}
			vac := vacs[0]
			in := vac.Input()
			if mocktest.Dig(in, "metadata", "name") != tt.want || in["driverName"] != EBSProvisioner {
				t.Errorf("VolumeAttributesClass = %v", in)
			}
			if p, _ := in["parameters"].(map[string]any); !maps.Equal(p, tt.params) {
				t.Errorf("parameters = %v, want %v", p, tt.params)
			}
			if !vac.RetainOnDelete {
				t.Error("VolumeAttributesClass not retained on delete: a claim made from the StatefulSet's template would name a class that is gone")
			}
			if vac.ParentName() != "storage" {
				t.Errorf("VolumeAttributesClass parented to %q", vac.ParentName())
			}
			sc := rec.OfType(scType)[0]
			if want := []string{"parameters.type", "parameters.iops", "parameters.throughput"}; !slices.Equal(sc.IgnoreChanges, want) {
				t.Errorf("StorageClass ignores %v, want %v", sc.IgnoreChanges, want)
			}
		})
	}
}
