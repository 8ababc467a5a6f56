package ops

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func claim(name, want, has, state, errMsg string) *unstructured.Unstructured {
	status := map[string]any{"phase": "Bound"}
	if has != "" {
		status["currentVolumeAttributesClassName"] = has
	}
	if state != "" {
		status["modifyVolumeStatus"] = map[string]any{"status": state, "targetVolumeAttributesClassName": want}
	}
	if errMsg != "" {
		status["conditions"] = []any{map[string]any{"type": "ModifyVolumeError", "status": "True", "message": errMsg}}
	}
	spec := map[string]any{}
	if want != "" {
		spec["volumeAttributesClassName"] = want
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": name, "namespace": "kcp"}, "spec": spec, "status": status}}
}

func TestVolumeAttributes(t *testing.T) {
	const want, old = "fast-ssd-gp3-9000iops-250mibps", "fast-ssd-gp3-6000iops-250mibps"
	for _, tt := range []struct {
		name    string
		claims  []*unstructured.Unstructured
		ok      bool
		mention []string
	}{
		{"done", []*unstructured.Unstructured{claim("data-etcd-0", want, want, "", ""), claim("data-etcd-1", want, want, "", "")},
			true, []string{"2 volume(s) with their claims' attributes"}},
		{"modifying, in EBS's cooldown", []*unstructured.Unstructured{claim("data-etcd-0", want, old, "InProgress", "rpc error: code = ResourceExhausted")},
			true, []string{"modifying: data-etcd-0 → " + want, "ResourceExhausted"}},
		{"not yet taken up", []*unstructured.Unstructured{claim("data-etcd-0", want, old, "", "")},
			true, []string{"not yet taken up by a resizer: data-etcd-0"}},
		{"refused by the driver", []*unstructured.Unstructured{claim("data-etcd-0", want, want, "", ""),
			claim("data-etcd-1", want, old, "Infeasible", "Invalid mutable parameter key: speed")},
			false, []string{"data-etcd-1: the driver refuses " + want + ": Invalid mutable parameter key: speed", "1 volume(s)"}},
		{"class missing", []*unstructured.Unstructured{claim("data-etcd-0", want, old, "Pending", "")},
			false, []string{"data-etcd-0: " + want + " cannot be applied"}},
		{"claims naming none are not counted", []*unstructured.Unstructured{claim("etcd-backups", "", "", "", "")},
			true, []string{"0 volume(s)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := make([]runtime.Object, len(tt.claims))
			for i, c := range tt.claims {
				objs[i] = c
			}
			c := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{claims: "PersistentVolumeClaimList"}, objs...)
			detail, err := VolumeAttributes(context.Background(), c, "kcp")
			if (err == nil) != tt.ok {
				t.Fatalf("ok = %v, want %v (detail %q, err %v)", err == nil, tt.ok, detail, err)
			}
			got := detail
			if err != nil {
				got = err.Error()
			}
			for _, m := range tt.mention {
				if !strings.Contains(got, m) {
					t.Errorf("%q does not say %q", got, m)
				}
			}
		})
	}
}
