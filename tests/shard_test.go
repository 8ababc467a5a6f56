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

// TestAddingAShardPreviewsAsAdditionsOnly: on the real engine, a staging
// stack (rendered, protected like any non-dev stack) is brought up with the
// root shard only; adding kcp.shards[0] then previews as creates only —
// nothing of the running stack is updated, replaced or deleted — and the up
// renders the shard's kcp, etcd and backup objects.
func TestAddingAShardPreviewsAsAdditionsOnly(t *testing.T) {
	ctx := context.Background()
	dir, opts := testenv.Project(t, "staging", map[string]any{
		"kcp-tmc:target":     map[string]any{"mode": "render", "renderDir": "rendered/staging"},
		"kcp-tmc:tls":        map[string]any{"mode": "cert-manager", "installCertManager": false}, // no TLS plugin here
		"kcp-tmc:ingress":    map[string]any{"installController": false},                          // render mode: no Helm
		"kcp-tmc:backup":     map[string]any{"target": "pvc", "pvcSize": "100Gi"},                 // no AWS plugin here
		"kcp-tmc:monitoring": map[string]any{"installStack": false},
	})
	opts.Env["PULUMI_CONFIG_PASSPHRASE"] = "test"
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up with the root shard: %v", err)
	}
	if err := stack.SetConfigWithOptions(ctx, "kcp-tmc:kcp.shards[0].name", auto.ConfigValue{Value: "shard-1"}, &auto.ConfigOptions{Path: true}); err != nil {
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
		t.Fatalf("preview with a shard: %v", err)
	}
	<-done
	created := 0
	for urn, op := range ops {
		switch op {
		case apitype.OpSame:
		case apitype.OpCreate:
			created++
			if !strings.Contains(urn, "shard-1") {
				t.Errorf("%s is created, but is not the shard's", urn)
			}
		default:
			t.Errorf("%s would be %s: adding a shard must change nothing that runs", urn, op)
		}
	}
	if created < 20 {
		t.Errorf("%d creates: the shard's objects are missing (ops: %v)", created, ops)
	}

	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up with a shard: %v", err)
	}
	for _, f := range []string{"apps_v1-deployment-kcp-kcp-shard-1.yaml", "apps_v1-statefulset-kcp-etcd-shard-1.yaml",
		"batch_v1-cronjob-kcp-etcd-shard-1-backup.yaml", "cert-manager.io_v1-certificate-kcp-kcp-shard-1-server.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, "rendered", "staging", "1-manifest", f)); err != nil {
			t.Errorf("the shard's object is not rendered: %v", err)
		}
	}
}
