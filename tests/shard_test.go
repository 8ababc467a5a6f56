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

// TestAddingAShardPreviewsAsAdditionsOnly: on the real engine, a staging
// stack (rendered, protected like any non-dev stack) is brought up with the
// root shard only; adding kcp.shards[0] then previews as creates only —
// nothing of the running stack is updated, replaced or deleted — and the up
// renders the shard's kcp, etcd and backup objects.
func TestAddingAShardPreviewsAsAdditionsOnly(t *testing.T) {
	ctx := context.Background()
	dir, stack := upRenderedStaging(t, nil)
	if err := stack.SetConfigWithOptions(ctx, "kcp-tmc:kcp.shards[0].name", auto.ConfigValue{Value: "shard-1"}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	ops := previewOps(t, stack)
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
