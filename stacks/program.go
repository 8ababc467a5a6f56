package stacks

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/platform"
)

// Program is the kcp-tmc Pulumi program. It validates the whole stack config
// before registering any resource, so bad input never reaches the engine and
// never half-applies a stack.
func Program(ctx *pulumi.Context) error {
	cfg, err := Load(ctx)
	if err != nil {
		return fmt.Errorf("stack %q: invalid configuration:\n%w", ctx.Stack(), err)
	}
	return Deploy(ctx, cfg)
}

// Deploy builds every component of a validated Config.
func Deploy(ctx *pulumi.Context, cfg *Config) error {
	provider, err := newKubernetesProvider(ctx, cfg)
	if err != nil {
		return err
	}
	k8s := pulumi.Providers(provider)

	plat, err := platform.NewPlatform(ctx, "platform", platform.Args{
		Namespace:          cfg.Namespace,
		PodSecurityVersion: cfg.PodSecurityVersion,
		Labels:             map[string]string{"kcp-tmc.io/environment": cfg.Environment},
		RetainOnDelete:     cfg.Environment != "dev",
	}, k8s)
	if err != nil {
		return fmt.Errorf("platform: %w", err)
	}

	ctx.Export("environment", pulumi.String(cfg.Environment))
	ctx.Export("namespace", plat.Namespace)
	if cfg.Target.Mode == TargetRender {
		ctx.Export("renderDir", pulumi.String(renderDir(ctx, cfg)))
	}
	return nil
}

// newKubernetesProvider points every Kubernetes resource at the stack's
// target: a directory of rendered YAML, or a cluster through a kubeconfig.
func newKubernetesProvider(ctx *pulumi.Context, cfg *Config) (*kubernetes.Provider, error) {
	args := &kubernetes.ProviderArgs{}
	switch cfg.Target.Mode {
	case TargetRender:
		args.RenderYamlToDirectory = pulumi.StringPtr(renderDir(ctx, cfg))
	case TargetKubeconfig:
		if cfg.Kubeconfig != "" {
			args.Kubeconfig = pulumi.ToSecret(pulumi.String(cfg.Kubeconfig)).(pulumi.StringOutput).ToStringPtrOutput()
		}
		if cfg.Target.Context != "" {
			args.Context = pulumi.StringPtr(cfg.Target.Context)
		}
	}
	p, err := kubernetes.NewProvider(ctx, "kubernetes", args)
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	return p, nil
}

// renderDir resolves target.renderDir against the project root (where
// Pulumi.yaml is), so the CLI, `pulumi up` and tests write to the same place
// whatever their working directory.
func renderDir(ctx *pulumi.Context, cfg *Config) string {
	if filepath.IsAbs(cfg.Target.RenderDir) {
		return cfg.Target.RenderDir
	}
	root := ctx.RootDirectory()
	if root == "" {
		root, _ = os.Getwd()
	}
	return filepath.Join(root, cfg.Target.RenderDir)
}
