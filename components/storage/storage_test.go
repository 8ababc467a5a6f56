package storage

import (
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fieldtest.Expect(t, tt.args.WithDefaults().Validate(field.NewPath("storage")), tt.field, tt.want)
		})
	}
}
