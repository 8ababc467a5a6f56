package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestEtcdResizeKeepsData grows etcd's volumes from 100Gi to 200Gi on the
// real engine (the staging stack, rendered; protected like any non-dev
// stack) and proves the preview only updates the claims in place: no
// replace or delete of the StatefulSet or of any claim.
func TestEtcdResizeKeepsData(t *testing.T) {
	ctx := context.Background()
	size := func(s string) map[string]any {
		return map[string]any{
			"kcp-tmc:target":     map[string]any{"mode": "render", "renderDir": "rendered/staging"},
			"kcp-tmc:etcd":       map[string]any{"storageSize": s},
			"kcp-tmc:tls":        map[string]any{"mode": "cert-manager", "installCertManager": false}, // no TLS plugin here
			"kcp-tmc:ingress":    map[string]any{"installController": false},                          // render mode: no Helm
			"kcp-tmc:backup":     map[string]any{"target": "pvc", "pvcSize": "100Gi"},                 // no AWS plugin here
			"kcp-tmc:monitoring": map[string]any{"installStack": false},
			"kcp-tmc:zones":      []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		}
	}
	dir, opts := testenv.Project(t, "staging", size("100Gi"))
	opts.Env["PULUMI_CONFIG_PASSPHRASE"] = "test"
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up at 100Gi: %v", err)
	}
	if err := stack.SetConfigWithOptions(ctx, "kcp-tmc:etcd.storageSize", auto.ConfigValue{Value: "200Gi"}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}

	evs := make(chan events.EngineEvent)
	ops := map[string]apitype.OpType{} // URN → planned op
	done := make(chan struct{})
	go func() {
		for e := range evs {
			if e.ResourcePreEvent != nil {
				ops[e.ResourcePreEvent.Metadata.URN] = e.ResourcePreEvent.Metadata.Op
			}
		}
		close(done)
	}()
	if _, err := stack.Preview(ctx, optpreview.EventStreams(evs)); err != nil {
		t.Fatalf("preview at 200Gi: %v", err)
	}
	<-done
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
