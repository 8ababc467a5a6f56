package stacks

import (
	"path/filepath"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// BenchmarkStacks evaluates each checked-in stack file's program under mocks
// (with the secrets a user adds): the program's own cost per `preview`/`up`,
// without the engine. Figures: README "Performance".
func BenchmarkStacks(b *testing.B) {
	TuneGC()
	for _, stack := range Environments {
		b.Run(stack, func(b *testing.B) {
			cfg := mocktest.StackFileConfig(b, filepath.Join("..", "Pulumi."+stack+".yaml"))
			secrets := []string{"kcp-tmc:kubeconfig", "kcp-tmc:slackWebhookUrl", "kcp-tmc:elasticsearchPassword"}
			if stack != "dev" {
				cfg["kcp-tmc:kubeconfig"] = "apiVersion: v1\nkind: Config\n"
				cfg["kcp-tmc:slackWebhookUrl"] = "https://hooks.slack.com/services/T000/B000/bench"
				cfg["kcp-tmc:elasticsearchPassword"] = "bench"
			}
			mocktest.SetConfig(b, cfg, secrets...)
			dir := b.TempDir()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := pulumi.RunErr(ProgramIn(dir), pulumi.WithMocks("kcp-tmc", stack, mocktest.Discard{})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
