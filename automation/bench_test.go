package automation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// BenchmarkPreview runs a real-engine preview of the dev stack and of an
// empty program on the same project: the empty one is the engine's fixed
// cost (CLI start, plugin start, state), the difference is kcp-tmc's.
// Figures and their ratio: README "Performance".
func BenchmarkPreview(b *testing.B) {
	for _, bench := range []struct {
		name    string
		program func(dir string) pulumi.RunFunc
	}{
		{"empty", func(string) pulumi.RunFunc { return func(*pulumi.Context) error { return nil } }},
		{"dev", stacks.ProgramIn},
	} {
		b.Run(bench.name, func(b *testing.B) {
			dir, opts := testenv.Project(b, "dev", nil)
			opts.Program = bench.program(dir)
			s, err := automation.Stack(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := automation.Preview(context.Background(), s, optpreview.SuppressProgress()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNoOpUp is `up` on a converged dev stack: it must change nothing,
// and what it costs is what every deploy without a change costs.
func BenchmarkNoOpUp(b *testing.B) {
	_, opts := testenv.Project(b, "dev", nil)
	s, err := automation.Stack(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Up(context.Background(), optup.SuppressProgress()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		res, err := s.Up(context.Background(), optup.SuppressProgress())
		if err != nil {
			b.Fatal(err)
		}
		for op, n := range *res.Summary.ResourceChanges {
			if op != string(apitype.OpSame) && n > 0 {
				b.Fatalf("no-op up changed something: %v", *res.Summary.ResourceChanges)
			}
		}
	}
}

// clusterList is kcp-tmc:clusters with n clusters, each syncing Deployments.
func clusterList(n int) []any {
	list := make([]any, n)
	for i := range list {
		list[i] = map[string]any{"name": fmt.Sprintf("c%04d", i), "region": "us-east-1",
			"resources": []any{map[string]any{"group": "apps", "version": "v1", "kind": "Deployment", "plural": "deployments"}}}
	}
	return list
}

// clustersJSON is clusterList as the value of `pulumi config set`.
func clustersJSON(b *testing.B, n int) string {
	raw, err := json.Marshal(clusterList(n))
	if err != nil {
		b.Fatal(err)
	}
	return string(raw)
}

// renderedStaging is the staging stack file (prod's shape: three zones,
// three kcp replicas and etcd members) with N physical clusters, rendered
// (no cluster needed) and with what this machine has no plugin for turned
// off: cert-manager instead of pulumi-tls, a PVC instead of S3 (which prod
// refuses). What stays is what a prod-like stack registers and diffs per
// cluster.
func renderedStaging(b *testing.B, clusters int) auto.Stack {
	b.Helper()
	list := clusterList(clusters)
	_, opts := testenv.Project(b, "staging", map[string]any{
		"kcp-tmc:target":     map[string]any{"mode": "render", "renderDir": "rendered/staging"},
		"kcp-tmc:tls":        map[string]any{"mode": "cert-manager", "installCertManager": false},
		"kcp-tmc:ingress":    map[string]any{"installController": false},
		"kcp-tmc:backup":     map[string]any{"target": "pvc", "pvcSize": "100Gi"},
		"kcp-tmc:monitoring": map[string]any{"installStack": false},
		"kcp-tmc:clusters":   list,
	})
	opts.Env["PULUMI_CONFIG_PASSPHRASE"] = "bench"
	s, err := automation.Stack(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPreviewProd is a real-engine preview of a prod-like stack with 100
// physical clusters (rendered): what a pull request's `preview` costs a
// user with the production target's cluster count. README "Scale".
func BenchmarkPreviewProd(b *testing.B) {
	s := renderedStaging(b, 100)
	b.ResetTimer()
	for range b.N {
		if _, err := automation.Preview(context.Background(), s, optpreview.SuppressProgress()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpProd is the first `up` of the same stack (rendered) with N
// clusters, with per-step checkpoints as users run it, and as `kcp-tmc up
// --skip-checkpoints` runs it (a preview that checks every change is one a
// next up can redo, then the up with the state written once): with a file
// or S3 backend the engine rewrites the whole state at each step's start
// and end, so that part grows with the square of the clusters. Not in
// `make bench` (minutes, not seconds); pick a size with -bench
// 'BenchmarkUpProd/clusters=40/'. README "Scale".
func BenchmarkUpProd(b *testing.B) {
	for _, n := range []int{20, 40, 100} {
		for _, checkpoints := range []bool{true, false} {
			b.Run(fmt.Sprintf("clusters=%d/checkpoints=%t", n, checkpoints), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					s := renderedStaging(b, n)
					b.StartTimer()
					var err error
					if checkpoints {
						_, err = s.Up(context.Background(), optup.SuppressProgress())
					} else {
						err = automation.UpSkippingCheckpoints(context.Background(), s, io.Discard,
							[]optpreview.Option{optpreview.SuppressProgress()}, optup.SuppressProgress())
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkAddCluster is the day-2 `up` that adds one cluster to the same
// stack (rendered) with 100, with per-step checkpoints and as `kcp-tmc up
// --skip-checkpoints` runs it. The 100-cluster stack is brought up first,
// untimed. Not in `make bench`; README "Scale".
func BenchmarkAddCluster(b *testing.B) {
	ctx := context.Background()
	for _, checkpoints := range []bool{true, false} {
		b.Run(fmt.Sprintf("checkpoints=%t", checkpoints), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				s := renderedStaging(b, 100)
				if err := automation.UpSkippingCheckpoints(ctx, s, io.Discard, nil, optup.SuppressProgress()); err != nil {
					b.Fatal(err)
				}
				if err := s.SetConfig(ctx, "kcp-tmc:clusters", auto.ConfigValue{Value: clustersJSON(b, 101)}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				var err error
				if checkpoints {
					_, err = s.Up(ctx, optup.SuppressProgress())
				} else {
					err = automation.UpSkippingCheckpoints(ctx, s, io.Discard, []optpreview.Option{optpreview.SuppressProgress()}, optup.SuppressProgress())
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpReadsState is what automation.Up (kcp-tmc up) adds before the
// engine runs when no Helm operation is pending: it reads the local
// backend's checkpoint file for one a killed up left, here of the same
// stack with 100 clusters, brought up first, untimed. (Reading it with
// `pulumi stack export` instead, as the first version did: 5.5 s.) Not in
// `make bench`; README "Scale".
func BenchmarkUpReadsState(b *testing.B) {
	ctx := context.Background()
	s := renderedStaging(b, 100)
	if err := automation.UpSkippingCheckpoints(ctx, s, io.Discard, nil, optup.SuppressProgress()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		automation.HealKilledHelmOperations(ctx, s, io.Discard)
	}
}

// BenchmarkClearRedoneCreates: what kcp-tmc up adds after an up that
// redid what a killed one was creating, at 100 clusters: the refresh that
// clears the pending creates (of the stack's root alone). The pending
// create, of a resource the state holds, is written into the checkpoint
// before each run, untimed. Not in `make bench`; README "Scale".
func BenchmarkClearRedoneCreates(b *testing.B) {
	ctx := context.Background()
	s := renderedStaging(b, 100)
	if err := automation.UpSkippingCheckpoints(ctx, s, io.Discard, nil, optup.SuppressProgress()); err != nil {
		b.Fatal(err)
	}
	file := automation.CheckpointPath(strings.TrimPrefix(s.Workspace().GetEnvVars()["PULUMI_BACKEND_URL"], "file://"), s.Name())
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	var cp map[string]any
	if err := json.Unmarshal(raw, &cp); err != nil {
		b.Fatal(err)
	}
	latest := cp["checkpoint"].(map[string]any)["latest"].(map[string]any)
	resources := latest["resources"].([]any)
	latest["pending_operations"] = []any{map[string]any{"resource": resources[len(resources)-1], "type": "creating"}}
	pending, err := json.Marshal(cp)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := os.WriteFile(file, pending, 0o600); err != nil {
			b.Fatal(err)
		}
		_ = os.Remove(file + ".attrs") // its checksum is of the file the engine wrote
		var out bytes.Buffer
		b.StartTimer()
		automation.ClearRedoneCreates(ctx, s, &out)
		if !strings.Contains(out.String(), "cleared the creates") {
			b.Fatalf("nothing cleared: %s", out.String())
		}
	}
}

// BenchmarkStatePerCluster brings up rendered prod-like stacks with 5 and 25
// clusters and reports what each added cluster adds to the state file
// (the fixed part cancels out). One up each, whatever b.N: the figure is a
// size, not a time.
func BenchmarkStatePerCluster(b *testing.B) {
	size := func(clusters int) int {
		s := renderedStaging(b, clusters)
		ctx := context.Background()
		if _, err := s.Up(ctx, optup.SuppressProgress()); err != nil {
			b.Fatal(err)
		}
		state, err := s.Export(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// The file and S3 backends store the checkpoint as compact JSON;
		// `pulumi stack export` indents it, which inflates deeply nested
		// objects (a CRD's schema) several times over.
		var compact bytes.Buffer
		if err := json.Compact(&compact, state.Deployment); err != nil {
			b.Fatal(err)
		}
		return compact.Len()
	}
	few, more := size(5), size(25)
	b.ReportMetric(float64(more-few)/20, "state-bytes/cluster")
	b.ReportMetric(float64(more), "state-bytes/25-clusters")
}
