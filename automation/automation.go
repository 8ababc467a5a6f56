// Package automation runs the kcp-tmc program inline through the Pulumi
// Automation API: the Go SDK hosts the language runtime in-process, so the
// only binaries needed are the pulumi CLI and pulumi-resource-kubernetes.
// cmd/kcp-tmc and the tests use it; another Go program can too.
package automation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// DevPassphrase encrypts the dev stack's secrets when PULUMI_CONFIG_PASSPHRASE
// is unset. The dev stack holds no real secret; every other stack refuses to
// run without a passphrase from the environment.
const DevPassphrase = "kcp-tmc-dev-not-a-secret"

// StateDir is the local file backend, relative to the project directory
// (gitignored).
const StateDir = ".pulumi-state"

// Options selects a stack and where its project, state and tools are.
type Options struct {
	// Stack is the stack name: dev, staging or prod.
	Stack string
	// ProjectDir holds Pulumi.yaml and Pulumi.<stack>.yaml (default: the working directory).
	ProjectDir string
	// BackendURL is the state backend (default file://<ProjectDir>/.pulumi-state,
	// or $PULUMI_BACKEND_URL when set).
	BackendURL string
	// Program is the program to run (default stacks.ProgramIn(ProjectDir)).
	Program pulumi.RunFunc
	// Env adds environment variables for the engine.
	Env map[string]string
	// MustExist selects an existing stack instead of creating it.
	MustExist bool
	// Log receives what kcp-tmc does by itself before the engine runs (the
	// lock a killed deploy left, removed); default: nowhere.
	Log io.Writer
}

// ToolchainBin is where hack/toolchain.sh puts the pinned pulumi CLI and
// Kubernetes plugin.
func ToolchainBin() string { return toolchain.Bin() }

// Stack creates or selects the stack with the inline program, reading the
// project's Pulumi.yaml and Pulumi.<stack>.yaml, so this path and
// `pulumi up -s <stack>` share one set of stack files.
func Stack(ctx context.Context, opts Options) (auto.Stack, error) {
	if opts.Stack == "" {
		return auto.Stack{}, errors.New("no stack given: use --stack dev|staging|prod")
	}
	dir, err := filepath.Abs(orDefault(opts.ProjectDir, "."))
	if err != nil {
		return auto.Stack{}, fmt.Errorf("project dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Pulumi.yaml")); err != nil {
		return auto.Stack{}, fmt.Errorf("project dir %s has no Pulumi.yaml: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Pulumi."+opts.Stack+".yaml")); err != nil {
		return auto.Stack{}, fmt.Errorf("stack %q: no Pulumi.%s.yaml in %s", opts.Stack, opts.Stack, dir)
	}
	env, err := engineEnv(dir, opts)
	if err != nil {
		return auto.Stack{}, err
	}
	program := opts.Program
	if program == nil {
		program = stacks.ProgramIn(dir)
	}
	cmd, err := PulumiCommand()
	if err != nil {
		return auto.Stack{}, err
	}
	// Even selecting the stack reads its checkpoint, which a kcp-tmc killed
	// mid-write leaves unreadable: taking the stack's hold repairs it, and
	// removes the lock that kcp-tmc's dead engine left. Held by another
	// kcp-tmc, there is nothing to repair (and reading it is allowed).
	release, err := HoldStack(env["PULUMI_BACKEND_URL"], dir, opts.Stack, "select", opts.Log)
	switch {
	case err == nil:
		release()
	case !errors.Is(err, ErrStackInUse):
		return auto.Stack{}, err
	}
	open := auto.UpsertStackInlineSource
	if opts.MustExist {
		open = auto.SelectStackInlineSource
	}
	s, err := open(ctx, opts.Stack, ProjectName, program, auto.WorkDir(dir), auto.EnvVars(env), auto.Pulumi(cmd))
	if err != nil {
		return auto.Stack{}, fmt.Errorf("selecting stack %q (backend %s): %w", opts.Stack, env["PULUMI_BACKEND_URL"], err)
	}
	return s, nil
}

// PulumiCommand prefers the pinned CLI from the toolchain cache over whatever
// pulumi is on PATH, so runs are reproducible. Each of its commands runs
// with a private temp directory, holding the stack (engineCommand).
func PulumiCommand() (auto.PulumiCommand, error) {
	opts := &auto.PulumiCommandOptions{SkipVersionCheck: false}
	if _, err := os.Stat(filepath.Join(ToolchainBin(), "pulumi")); err == nil {
		opts.Root = filepath.Dir(ToolchainBin()) // Root/bin/pulumi
	}
	cmd, err := auto.NewPulumiCommand(opts)
	if err != nil {
		return nil, fmt.Errorf("no usable pulumi CLI (run hack/toolchain.sh, or install Pulumi): %w", err)
	}
	return engineCommand{cmd}, nil
}

func engineEnv(dir string, opts Options) (map[string]string, error) {
	env := map[string]string{"PULUMI_SKIP_UPDATE_CHECK": "true"}
	backend := BackendURL(dir, opts)
	if state, ok := LocalState(backend, dir); ok && state == filepath.Join(dir, StateDir) {
		if err := os.MkdirAll(state, 0o700); err != nil {
			return nil, fmt.Errorf("creating local state backend: %w", err)
		}
	}
	env["PULUMI_BACKEND_URL"] = backend
	// The stack owns its objects: an apply takes fields over instead of
	// failing on another field manager's. A deploy killed mid-create leaves
	// objects the state does not know, and the next up creates them again
	// under a new random field manager: without force that failed with
	// "Server-Side Apply field conflict" (found on a real node). The
	// Kubernetes provider reads this (pulumi-kubernetes await.patchForce).
	env[PatchForceEnv] = "true"
	if os.Getenv("PULUMI_CONFIG_PASSPHRASE") == "" && os.Getenv("PULUMI_CONFIG_PASSPHRASE_FILE") == "" &&
		opts.Env["PULUMI_CONFIG_PASSPHRASE"] == "" {
		if opts.Stack != "dev" {
			return nil, fmt.Errorf("stack %q: set PULUMI_CONFIG_PASSPHRASE (or _FILE) to the stack's secrets passphrase", opts.Stack)
		}
		env["PULUMI_CONFIG_PASSPHRASE"] = DevPassphrase
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	home := env["PULUMI_HOME"]
	if home == "" {
		home = os.Getenv("PULUMI_HOME")
	}
	linked, err := linkKubernetesPlugin(home)
	if err != nil {
		return nil, err
	}
	if linked {
		// The Automation API puts the CLI's directory, which also holds the
		// toolchain's plugin, first on PATH: take the plugin from the cache.
		env["PULUMI_IGNORE_AMBIENT_PLUGINS"] = "true"
	}
	return env, nil
}

// PatchForceEnv makes the Kubernetes provider force server-side applies.
const PatchForceEnv = "PULUMI_K8S_ENABLE_PATCH_FORCE"

// SkipCheckpointsEnv turns off the engine's per-step state checkpoints.
const SkipCheckpointsEnv = "PULUMI_SKIP_CHECKPOINTS"

// Preview is s.Preview without per-step checkpoints. With a file or S3
// backend the engine serializes the whole state after every step, also in
// a preview, which writes nothing (pulumi v3.274: backend/diy uses a
// DiscardPersister, the SnapshotManager serializes anyway): quadratic in
// the resources, 302 s of a 100-cluster preview's 342 s here. A preview
// has no state to keep, so nothing is lost. Up keeps its checkpoints: they
// are what lets the up after a killed one know what was created.
func Preview(ctx context.Context, s auto.Stack, opts ...optpreview.Option) (auto.PreviewResult, error) {
	ws := s.Workspace()
	ws.SetEnvVar(SkipCheckpointsEnv, "true")
	defer ws.UnsetEnvVar(SkipCheckpointsEnv)
	return s.Preview(ctx, opts...)
}

// CheckpointPath is where a local (file://) backend under stateDir keeps
// the stack's checkpoint (pulumi v3.274 backend/diy, project layout).
func CheckpointPath(stateDir, stack string) string {
	return filepath.Join(stateDir, ".pulumi", "stacks", ProjectName, stack+".json")
}

// LocksDir is where a local (file://) backend under stateDir keeps the
// stack's lock files (pulumi v3.274 backend/diy/lock.go).
func LocksDir(stateDir, stack string) string {
	return filepath.Join(stateDir, ".pulumi", "locks", "organization", ProjectName, stack)
}

// BackendURL is the stack's state backend: opts.BackendURL, else
// $PULUMI_BACKEND_URL, else the local directory <project dir>/.pulumi-state.
func BackendURL(projectDir string, opts Options) string {
	if opts.BackendURL != "" {
		return opts.BackendURL
	}
	if b := os.Getenv("PULUMI_BACKEND_URL"); b != "" {
		return b
	}
	return "file://" + filepath.Join(projectDir, StateDir)
}

// LocalState is the directory of a local (file://) backend as the engine,
// run in projectDir, resolves it (pulumi v3.274 backend/diy
// massageBlobPath: the query is options, ~ is the home directory, a
// relative path is relative to the working directory); ok is false for
// any other backend.
func LocalState(backendURL, projectDir string) (state string, ok bool) {
	path, ok := strings.CutPrefix(backendURL, "file://")
	if !ok {
		return "", false
	}
	path, _, _ = strings.Cut(path, "?")
	if rest, tilde := strings.CutPrefix(path, "~"); tilde {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", false
		}
		path = filepath.Join(home, strings.TrimPrefix(rest, "/"))
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(projectDir, path)
	}
	return filepath.Clean(path), path != ""
}

// ProjectName is the Pulumi project of every kcp-tmc stack (Pulumi.yaml).
const ProjectName = "kcp-tmc"

// linkKubernetesPlugin installs the toolchain's pulumi-resource-kubernetes
// as the engine's plugin of its version (<PULUMI_HOME>/plugins/
// resource-kubernetes-v<version>, the version the SDK in go.mod asks for:
// pkg/toolchain's test keeps them equal), linked rather than copied, so
// the engine neither downloads it nor warns "using … from $PATH" on every
// run, as it does for a plugin found on PATH. It reports whether the cache
// holds the plugin now; without the toolchain it does nothing.
func linkKubernetesPlugin(home string) (bool, error) {
	const name = "pulumi-resource-kubernetes"
	// hack/toolchain.sh keeps each tool in <cache>/<name>-<version>/.
	bin, err := filepath.EvalSymlinks(filepath.Join(ToolchainBin(), name))
	if err != nil {
		return false, nil // the engine installs the plugin as for any Pulumi program
	}
	version, ok := strings.CutPrefix(filepath.Base(filepath.Dir(bin)), name+"-")
	if !ok {
		return false, fmt.Errorf("%s is not in a %s-<version> directory of the toolchain", bin, name)
	}
	if home == "" {
		userHome, err := os.UserHomeDir()
		if err != nil {
			return false, fmt.Errorf("finding the Pulumi home for the Kubernetes plugin: %w", err)
		}
		home = filepath.Join(userHome, ".pulumi")
	}
	dir := filepath.Join(home, "plugins", "resource-kubernetes-v"+version)
	link := filepath.Join(dir, name)
	if fi, err := os.Lstat(link); err == nil {
		if target, _ := os.Readlink(link); fi.Mode()&os.ModeSymlink == 0 || target == bin {
			return true, nil // installed by pulumi, or linked already
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("installing the Kubernetes plugin: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", link, os.Getpid()) // concurrent runs each rename a whole link
	if err := os.Symlink(bin, tmp); err != nil {
		return false, fmt.Errorf("installing the Kubernetes plugin: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return false, fmt.Errorf("installing the Kubernetes plugin: %w", err)
	}
	return true, nil
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// Config is the stack's validated, typed configuration, read from its stack
// file with secrets decrypted (for operations that act on the deployed stack,
// like the backup drill and the smoke test).
func Config(ctx context.Context, s auto.Stack) (*stacks.Config, error) {
	all, err := s.GetAllConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading stack %q config: %w", s.Name(), err)
	}
	cfg, err := stacks.Load(configMap(all))
	if err != nil {
		return nil, fmt.Errorf("stack %q: invalid configuration:\n%w", s.Name(), err)
	}
	return cfg, nil
}

type configMap auto.ConfigMap

func (m configMap) GetConfig(key string) (string, bool) {
	v, ok := m[key]
	return v.Value, ok
}

func (m configMap) IsConfigSecret(key string) bool { return m[key].Secret }

func (m configMap) ConfigKeys() []string { return slices.Sorted(maps.Keys(m)) }
