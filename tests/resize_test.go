package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// TestEtcdResizeKeepsData grows etcd's volumes from 100Gi to 200Gi on the
// real engine (the staging stack, rendered; protected like any non-dev
// stack) and proves the preview only updates the claims in place: no
// replace or delete of the StatefulSet or of any claim.
func TestEtcdResizeKeepsData(t *testing.T) {
	ctx := context.Background()
	dir, stack := upRenderedStaging(t, map[string]any{
		"kcp-tmc:etcd":  map[string]any{"storageSize": "100Gi"},
		"kcp-tmc:zones": []string{"us-east-1a", "us-east-1b", "us-east-1c"},
	})
	if err := stack.SetConfigWithOptions(ctx, "kcp-tmc:etcd.storageSize", auto.ConfigValue{Value: "200Gi"}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	ops := previewOps(t, stack)
	claims := 0
	for urn, op := range ops {
		stateful := strings.Contains(urn, "kubernetes:apps/v1:StatefulSet") || strings.Contains(urn, "kubernetes:core/v1:PersistentVolumeClaim")
		if !stateful {
			continue
		}
		switch op {
		case apitype.OpSame, apitype.OpUpdate:
		default:
			t.Errorf("%s would be %s: etcd data at risk", urn, op)
		}
		if strings.Contains(urn, "PersistentVolumeClaim") && op == apitype.OpUpdate {
			claims++
		}
	}
	if claims != 3 {
		t.Errorf("%d claims updated in place, want all 3 (ops: %v)", claims, ops)
	}

	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up at 200Gi: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "rendered", "staging", "1-manifest", "v1-persistentvolumeclaim-kcp-data-etcd-2.yaml"))
	if err != nil || !strings.Contains(string(b), "storage: 200Gi") {
		t.Errorf("rendered claim after resize: %v\n%s", err, b)
	}
}

// TestEtcdStorageClassChangeRefused changes etcd.storageClass on a running
// stack (the staging stack, rendered, on the real engine): the preview
// fails naming the key, the new class and the one the volumes are on — a
// claim's class cannot change, and before the check the up dropped the
// retained claims from the stack and then failed at the API — and an up
// with the class kept still changes nothing.
func TestEtcdStorageClassChangeRefused(t *testing.T) {
	ctx := context.Background()
	const live = "gp2"
	_, stack := upRenderedStaging(t, map[string]any{
		"kcp-tmc:etcd":  map[string]any{"storageClass": live},
		"kcp-tmc:zones": []string{"us-east-1a", "us-east-1b", "us-east-1c"},
	})
	if err := stack.SetConfigWithOptions(ctx, "kcp-tmc:etcd.storageClass", auto.ConfigValue{Value: "fast-ssd"}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	_, err := stack.Preview(ctx)
	if err == nil {
		t.Fatal("the preview of a changed etcd.storageClass succeeded")
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, "etcd.storageClass") {
			t.Logf("preview refused: %s", strings.TrimSpace(line))
			break
		}
	}
	for _, want := range []string{`etcd.storageClass: Invalid value: "fast-ssd"`, `volumes are on StorageClass "` + live + `"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("preview error lacks %q:\n%v", want, err)
		}
	}
	if err := stack.SetConfigWithOptions(ctx, "kcp-tmc:etcd.storageClass", auto.ConfigValue{Value: live}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress(), optup.ExpectNoChanges()); err != nil {
		t.Errorf("up with etcd.storageClass %q kept: %v", live, err)
	}
}
