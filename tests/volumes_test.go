package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/ops"
)

// TestEtcdVolumeAttributesChangeInPlace raises storage.iops on a stack
// whose etcd volume exists and is bound (the dev stack with storage.create,
// through the real engine and Kubernetes provider into the local
// apiserver, whose PV controller binds the claim to a volume made for
// it): the claim moves to a new VolumeAttributesClass in place — what the
// EBS CSI driver's resizer turns into a modification of the volume, online
// — the StorageClass is neither replaced nor changed, the old class stays
// for claims made from the StatefulSet's template, and the next up changes
// nothing. Before storage.modifyVolumes the change replaced the
// StorageClass and reached no volume.
func TestEtcdVolumeAttributesChangeInPlace(t *testing.T) {
	ctx := context.Background()
	const ns, class = "kcp-vac", "kcp-vac-ssd"
	storage := func(iops int, modify bool) string {
		return fmt.Sprintf(`{"create":true,"volumeType":"gp3","iops":%d,"modifyVolumes":%v}`, iops, modify)
	}
	_, _, stack := clusterStackWith(t, ns, map[string]any{
		"kcp-tmc:etcd":    map[string]any{"storageClass": class},
		"kcp-tmc:storage": storage(3000, true),
		"kcp-tmc:backup":  map[string]any{"enabled": false},
	}, "kcp-tmc:kubeconfig")
	t.Cleanup(func() {
		if _, err := stack.Destroy(ctx, optdestroy.SuppressProgress()); err != nil {
			t.Errorf("destroy: %v", err)
		}
		// What outlives the stack by design: the retained classes; and the test's volume.
		_, _, _ = kube.Kubectl(ctx, nil, "delete", "volumeattributesclass,persistentvolume", "-l", "kcp-tmc-test="+ns, "--ignore-not-found")
		_, _, _ = kube.Kubectl(ctx, nil, "delete", "volumeattributesclass", class+"-gp3-3000iops-125mibps", class+"-gp3-6000iops-125mibps", "--ignore-not-found")
	})
	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("first up: %v", err)
	}
	get := func(args ...string) string {
		t.Helper()
		out, _, err := kube.Kubectl(ctx, nil, append([]string{"get"}, args...)...)
		if err != nil {
			t.Fatalf("kubectl get %v: %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	const before, after = class + "-gp3-3000iops-125mibps", class + "-gp3-6000iops-125mibps"
	if got := get("-n", ns, "pvc", "data-etcd-0", "-o", "jsonpath={.spec.volumeAttributesClassName}"); got != before {
		t.Fatalf("claim names VolumeAttributesClass %q, want %q", got, before)
	}
	if got := get("volumeattributesclass", before, "-o", "jsonpath={.driverName} {.parameters.type} {.parameters.iops} {.parameters.throughput}"); got != "ebs.csi.aws.com gp3 3000 125" {
		t.Errorf("VolumeAttributesClass %s = %q", before, got)
	}
	classUID := get("storageclass", class, "-o", "jsonpath={.metadata.uid}")

	// A volume for the claim, as the CSI driver would have made it (with
	// the claim's attributes class, which the PV controller matches): the
	// controller binds them — an attributes change is refused on a claim
	// that is not bound.
	pv := fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"%[1]s-etcd-0","labels":{"kcp-tmc-test":"%[1]s"}},
"spec":{"capacity":{"storage":"20Gi"},"accessModes":["ReadWriteOnce"],"storageClassName":"%[2]s","volumeAttributesClassName":"%[3]s",
"persistentVolumeReclaimPolicy":"Retain","csi":{"driver":"ebs.csi.aws.com","volumeHandle":"vol-%[1]s"},"claimRef":{"namespace":"%[1]s","name":"data-etcd-0"}}}`, ns, class, before)
	if _, _, err := kube.Kubectl(ctx, []byte(pv), "create", "-f", "-"); err != nil {
		t.Fatalf("creating the volume: %v", err)
	}
	for i := 0; ; i++ {
		if get("-n", ns, "pvc", "data-etcd-0", "-o", "jsonpath={.status.phase}") == "Bound" {
			break
		}
		if i == 60 {
			t.Fatal("the claim is not bound after 60 s")
		}
		time.Sleep(time.Second)
	}

	if err := stack.SetConfig(ctx, "kcp-tmc:storage", auto.ConfigValue{Value: storage(6000, true)}); err != nil {
		t.Fatal(err)
	}
	planned := previewOps(t, stack)
	for urn, op := range planned {
		parts := strings.Split(urn, "::") // urn:pulumi:stack, project, parent types$type, name
		typ, name := parts[2][strings.LastIndex(parts[2], "$")+1:], parts[3]
		switch {
		case strings.HasSuffix(typ, ":StorageClass"), strings.HasSuffix(typ, ":StatefulSet"):
			if op != apitype.OpSame {
				t.Errorf("%s would be %s: want it left as it is", urn, op)
			}
		case strings.HasSuffix(typ, ":PersistentVolumeClaim") && strings.HasSuffix(name, "data-etcd-0"):
			if op != apitype.OpUpdate {
				t.Errorf("%s would be %s: want an update in place", urn, op)
			}
		}
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up with storage.iops 6000: %v", err)
	}
	if got := get("-n", ns, "pvc", "data-etcd-0", "-o", "jsonpath={.spec.volumeAttributesClassName} {.status.phase}"); got != after+" Bound" {
		t.Errorf("claim after the change = %q, want %q", got, after+" Bound")
	}
	if got := get("volumeattributesclass", after, "-o", "jsonpath={.parameters.iops}"); got != "6000" {
		t.Errorf("new VolumeAttributesClass's iops = %q", got)
	}
	if got := get("volumeattributesclass", before, "-o", "jsonpath={.metadata.name}"); got != before {
		t.Errorf("the old VolumeAttributesClass is gone (%q): a claim made from the StatefulSet's template names it", got)
	}
	if got := get("storageclass", class, "-o", "jsonpath={.metadata.uid} {.parameters.iops}"); got != classUID+" 3000" {
		t.Errorf("StorageClass after the change = %q, want the same object (%s) as it was made", got, classUID)
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress(), optup.ExpectNoChanges()); err != nil {
		t.Errorf("the up after the change changed something: %v", err)
	}

	// What `kcp-tmc smoke` says of it (ops.VolumeAttributes), on the
	// apiserver's own status fields: no resizer runs here, so the claim
	// waits; then as the resizer records the driver's refusal.
	restConfig, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	if detail, err := ops.VolumeAttributes(ctx, client, ns); err != nil || !strings.Contains(detail, "not yet taken up by a resizer: data-etcd-0 → "+after) {
		t.Errorf("smoke check before a resizer took it up: %q, %v", detail, err)
	}
	refused := fmt.Sprintf(`{"status":{"currentVolumeAttributesClassName":%q,"modifyVolumeStatus":{"status":"Infeasible","targetVolumeAttributesClassName":%q},
"conditions":[{"type":"ModifyVolumeError","status":"True","message":"Invalid mutable parameter key: speed"}]}}`, before, after)
	if _, _, err := kube.Kubectl(ctx, nil, "patch", "-n", ns, "pvc", "data-etcd-0", "--subresource=status", "--type=merge", "-p", refused); err != nil {
		t.Fatalf("recording the refusal: %v", err)
	}
	_, err = ops.VolumeAttributes(ctx, client, ns)
	if err == nil || !strings.Contains(err.Error(), "data-etcd-0: the driver refuses "+after+": Invalid mutable parameter key: speed") {
		t.Errorf("smoke check of a refused modification: %v", err)
	}

	// Back to 3000 (what the docs say to do after a refusal): the retained
	// class of that name is created again over itself, the claim moves back.
	upWith := func(iops int, modify bool) {
		t.Helper()
		if err := stack.SetConfig(ctx, "kcp-tmc:storage", auto.ConfigValue{Value: storage(iops, modify)}); err != nil {
			t.Fatal(err)
		}
		if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
			t.Fatalf("up with storage.iops %d, modifyVolumes %v: %v", iops, modify, err)
		}
	}
	upWith(3000, true)
	if got := get("-n", ns, "pvc", "data-etcd-0", "-o", "jsonpath={.spec.volumeAttributesClassName}"); got != before {
		t.Errorf("claim after going back = %q, want %q", got, before)
	}
	// Turned off: the API refuses to unset a claim's class once its volume
	// has one (the status above says it has), so the claim keeps it.
	upWith(3000, false)
	if got := get("-n", ns, "pvc", "data-etcd-0", "-o", "jsonpath={.spec.volumeAttributesClassName}"); got != before {
		t.Errorf("claim after storage.modifyVolumes false = %q, want it kept: %q", got, before)
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress(), optup.ExpectNoChanges()); err != nil {
		t.Errorf("the up after turning it off changed something: %v", err)
	}
}
