package tests

import (
	"context"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// upRenderedStaging brings up the staging stack on the real engine,
// rendered (protected like any non-dev stack), with what this machine
// lacks turned off and extra config over it; it returns the project dir.
func upRenderedStaging(t *testing.T, extra map[string]any) (string, auto.Stack) {
	t.Helper()
	ctx := context.Background()
	config := map[string]any{
		"kcp-tmc:target":     map[string]any{"mode": "render", "renderDir": "rendered/staging"},
		"kcp-tmc:tls":        map[string]any{"mode": "cert-manager", "installCertManager": false}, // no TLS plugin here
		"kcp-tmc:ingress":    map[string]any{"installController": false},                          // render mode: no Helm
		"kcp-tmc:backup":     map[string]any{"target": "pvc", "pvcSize": "100Gi"},                 // no AWS plugin here
		"kcp-tmc:monitoring": map[string]any{"installStack": false},
	}
	for k, v := range extra {
		config[k] = v
	}
	dir, opts := testenv.Project(t, "staging", config)
	opts.Env["PULUMI_CONFIG_PASSPHRASE"] = "test"
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Up(ctx, optup.SuppressProgress()); err != nil {
		t.Fatalf("up: %v", err)
	}
	return dir, stack
}

// previewOps previews the stack and returns each resource's planned step.
func previewOps(t *testing.T, stack auto.Stack) map[string]apitype.OpType {
	t.Helper()
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
	if _, err := stack.Preview(context.Background(), optpreview.EventStreams(evs)); err != nil {
		t.Fatalf("preview: %v", err)
	}
	<-done
	return ops
}
