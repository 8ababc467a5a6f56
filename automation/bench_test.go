package automation_test

import (
	"context"
	"testing"

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
				if _, err := s.Preview(context.Background(), optpreview.SuppressProgress()); err != nil {
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
