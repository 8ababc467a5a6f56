// Command embed shows kcp-tmc embedded in another Go program: the Config is
// built in Go (no Pulumi.<stack>.yaml), turned into a program with
// stacks.NewProgram and run with the Automation API's
// auto.UpsertStackInlineSource.
//
//	go run ./examples/embed -dir /tmp/kcp-embed            # up, render mode
//	go run ./examples/embed -dir /tmp/kcp-embed -destroy   # and tear down
//
// It renders the dev environment's manifests into <dir>/rendered and keeps its
// state in <dir>/state; point Target at a kubeconfig to deploy to a cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "kcp-tmc-embed"), "work directory: rendered manifests and state")
	destroy := flag.Bool("destroy", false, "destroy the stack after the up")
	flag.Parse()
	if err := run(context.Background(), *dir, *destroy, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// config is the platform team's own choice of settings, in Go.
func config(dir string) (stacks.Config, error) {
	cfg, err := stacks.Profile("dev")
	if err != nil {
		return stacks.Config{}, err
	}
	cfg.Domain = "platform.example.org"
	cfg.Target = stacks.Target{Mode: stacks.TargetRender, RenderDir: filepath.Join(dir, "rendered")}
	cfg.Etcd.StorageSize = "30Gi"
	return *cfg, nil
}

func run(ctx context.Context, dir string, destroy bool, progress io.Writer) error {
	cfg, err := config(dir)
	if err != nil {
		return err
	}
	program, err := stacks.NewProgram(cfg, dir)
	if err != nil {
		return err
	}
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	// A rendered dev stack holds no secret; anything that reaches a cluster
	// encrypts its kubeconfig in state, so it needs a real passphrase.
	passphrase := os.Getenv("PULUMI_CONFIG_PASSPHRASE")
	if passphrase == "" {
		if cfg.Target.Mode != stacks.TargetRender {
			return fmt.Errorf("set PULUMI_CONFIG_PASSPHRASE: this stack's secrets are encrypted with it")
		}
		passphrase = automation.DevPassphrase
	}
	pulumiCmd, err := automation.PulumiCommand()
	if err != nil {
		return err
	}
	stack, err := auto.UpsertStackInlineSource(ctx, "dev", "kcp-tmc-embedded", program,
		auto.Pulumi(pulumiCmd),
		auto.EnvVars(map[string]string{
			"PULUMI_BACKEND_URL":       "file://" + state,
			"PULUMI_CONFIG_PASSPHRASE": passphrase,
			"PULUMI_SKIP_UPDATE_CHECK": "true",
			"PATH":                     automation.ToolchainBin() + string(os.PathListSeparator) + os.Getenv("PATH"),
		}))
	if err != nil {
		return fmt.Errorf("selecting stack: %w", err)
	}
	res, err := stack.Up(ctx, optup.ProgressStreams(progress))
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	fmt.Fprintf(progress, "kcp URL: %v, manifests in %v\n", res.Outputs["kcpURL"].Value, res.Outputs["renderDir"].Value)
	if destroy {
		if _, err := stack.Destroy(ctx, optdestroy.ProgressStreams(progress)); err != nil {
			return fmt.Errorf("destroy: %w", err)
		}
	}
	return nil
}
