package automation_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestCheckpointsOnlyWhereTheyKeepSomething runs the real CLI behind a
// wrapper that logs each engine command with PULUMI_SKIP_CHECKPOINTS:
// automation.Preview turns the per-step checkpoints off (a preview keeps no
// state, and they cost a 100-cluster preview 302 of its 342 s), up keeps
// them (the up after a killed one reads them), and the workspace's
// environment is as before once the preview is done.
func TestCheckpointsOnlyWhereTheyKeepSomething(t *testing.T) {
	_, opts := testenv.Project(t, "dev", nil)
	log := logEngineCommands(t)
	opts.Program = func(ctx *pulumi.Context) error { return nil }
	s := previewed(t, opts)
	if _, err := s.Up(context.Background(), optup.SuppressProgress()); err != nil {
		t.Fatalf("up: %v", err)
	}
	checkEngineCommands(t, log, []string{"preview skip=true", "up skip=unset"})
}

// previewed opens the stack of opts and previews it.
func previewed(t *testing.T, opts automation.Options) auto.Stack {
	t.Helper()
	ctx := context.Background()
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := automation.Preview(ctx, s, optpreview.SuppressProgress()); err != nil {
		t.Fatalf("preview: %v", err)
	}
	return s
}

// logEngineCommands puts a wrapper of the pinned pulumi CLI first, which
// logs each engine command with PULUMI_SKIP_CHECKPOINTS, and returns the
// log's path.
func logEngineCommands(t *testing.T) string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "commands.log")
	wrapEngine(t, func(pulumi string) string {
		return fmt.Sprintf("echo \"$* skip=${PULUMI_SKIP_CHECKPOINTS:-unset}\" >> %q\nexec %q \"$@\"\n", log, pulumi)
	})
	t.Setenv(automation.SkipCheckpointsEnv, "")
	return log
}

// wrapEngine makes the engine command a shell script around the pinned
// pulumi CLI (the script's body, given that CLI's path), beside the pinned
// Kubernetes plugin.
func wrapEngine(t *testing.T, body func(pulumi string) string) {
	t.Helper()
	cache := t.TempDir()
	if err := os.Mkdir(filepath.Join(cache, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	const plugin = "pulumi-resource-kubernetes"
	if err := os.Symlink(filepath.Join(automation.ToolchainBin(), plugin), filepath.Join(cache, "bin", plugin)); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" + body(filepath.Join(automation.ToolchainBin(), "pulumi"))
	if err := os.WriteFile(filepath.Join(cache, "bin", "pulumi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KCP_TMC_CACHE", cache)
}

// checkEngineCommands: the preview and up commands in the log, in order,
// each "<command> skip=<PULUMI_SKIP_CHECKPOINTS>".
func checkEngineCommands(t *testing.T, log string, want []string) {
	t.Helper()
	raw, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		for _, command := range []string{"preview", "up"} {
			if strings.Contains(" "+line+" ", " "+command+" ") {
				got = append(got, command+" "+line[strings.LastIndex(line, " ")+1:])
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("engine commands = %q, want %q\n%s", got, want, raw)
	}
}

// TestUpSkippingCheckpoints on the real engine: the dev stack's first up
// runs without checkpoints (the engine command says so) and leaves a
// complete state (a preview after it plans nothing); a program that would
// create an object the Kubernetes provider names itself (random suffix) is
// refused before any up runs, naming that object and only it.
func TestUpSkippingCheckpoints(t *testing.T) {
	ctx := context.Background()
	t.Run("dev stack", func(t *testing.T) {
		_, opts := testenv.Project(t, "dev", nil)
		log := logEngineCommands(t)
		s, err := automation.Stack(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := automation.UpSkippingCheckpoints(ctx, s, &out, []optpreview.Option{optpreview.SuppressProgress()}, optup.SuppressProgress()); err != nil {
			t.Fatalf("up: %v", err)
		}
		if !strings.Contains(out.String(), "changes planned, each one a next up can redo") {
			t.Errorf("up said %q, want how many changes it plans", out.String())
		}
		if _, err := automation.Preview(ctx, s, optpreview.SuppressProgress(), optpreview.ExpectNoChanges()); err != nil {
			t.Errorf("preview after the up: %v", err)
		}
		checkEngineCommands(t, log, []string{"preview skip=true", "up skip=true", "preview skip=true"})
	})
	t.Run("autonamed object refused", func(t *testing.T) {
		_, opts := testenv.Project(t, "dev", nil)
		log := logEngineCommands(t)
		render := t.TempDir()
		opts.Program = func(ctx *pulumi.Context) error {
			p, err := kubernetes.NewProvider(ctx, "render", &kubernetes.ProviderArgs{RenderYamlToDirectory: pulumi.String(render)})
			if err != nil {
				return err
			}
			for name, meta := range map[string]*metav1.ObjectMetaArgs{
				"named":   {Name: pulumi.String("named"), Namespace: pulumi.String("default")},
				"unnamed": {Namespace: pulumi.String("default")},
			} {
				if _, err := corev1.NewConfigMap(ctx, name, &corev1.ConfigMapArgs{Metadata: meta}, pulumi.Provider(p)); err != nil {
					return err
				}
			}
			return nil
		}
		s, err := automation.Stack(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		err = automation.UpSkippingCheckpoints(ctx, s, io.Discard, []optpreview.Option{optpreview.SuppressProgress()}, optup.SuppressProgress())
		if !errors.Is(err, automation.ErrNotRedoable) || !strings.Contains(err.Error(), "create kubernetes:core/v1:ConfigMap unnamed") ||
			strings.Contains(err.Error(), "ConfigMap named") {
			t.Fatalf("err = %v, want ErrNotRedoable naming the unnamed ConfigMap only", err)
		}
		checkEngineCommands(t, log, []string{"preview skip=true"})
	})
}

// TestEngineLeavesNoCredentialsInTemp on the real engine: the Kubernetes
// provider writes the kubeconfig it is given to a temp file (seen here in
// the TMPDIR the engine command ran with), and nothing of it stays in the
// user's temp directory once the preview is done.
func TestEngineLeavesNoCredentialsInTemp(t *testing.T) {
	const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	_, opts := testenv.Project(t, "dev", nil)
	seen := filepath.Join(t.TempDir(), "seen.log")
	// Lists what the engine command left in its TMPDIR when it ends.
	wrapEngine(t, func(pulumi string) string {
		return fmt.Sprintf("%q \"$@\"\nrc=$?\nls \"$TMPDIR\" >> %q\nexit $rc\n", pulumi, seen)
	})
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	opts.Program = func(ctx *pulumi.Context) error {
		p, err := kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{Kubeconfig: pulumi.ToSecret(pulumi.String(kubeconfig)).(pulumi.StringOutput)})
		if err != nil {
			return err
		}
		_, err = corev1.NewConfigMap(ctx, "cm", &corev1.ConfigMapArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("cm"), Namespace: pulumi.String("default")}}, pulumi.Provider(p))
		return err
	}
	previewed(t, opts)
	raw, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "kubeconfig") {
		t.Errorf("the provider wrote no kubeconfig to the engine's TMPDIR (it left %q): if pulumi-kubernetes stopped writing it, the private TMPDIR is no longer needed", raw)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("the preview left %s in the user's temp directory", e.Name())
	}
}

func TestLocalState(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url, want string
		ok        bool
	}{
		{"file:///srv/state", "/srv/state", true},
		{"file:///srv/state?no_tmp_dir=true", "/srv/state", true},
		{"file://~/state", filepath.Join(home, "state"), true},
		{"file://~", home, true},
		{"file://state", "/project/state", true}, // relative to where the engine runs
		{"s3://bucket", "", false},
		{"https://api.pulumi.com", "", false},
	} {
		if got, ok := automation.LocalState(tc.url, "/project"); got != tc.want || ok != tc.ok {
			t.Errorf("LocalState(%q) = %q, %v; want %q, %v", tc.url, got, ok, tc.want, tc.ok)
		}
	}
}

// TestUpWithDirectUsers on the real engine, in the program's shape: a PKI
// component holds a certificate and the Secret written from it, and another
// component DependsOn the PKI (as etcd and kcp do). An up of the
// certificate and its direct users (what kcp-tmc renew does with the
// certificates due) changes both and leaves the other component's pending
// change for a later up — which --target-dependents would have applied: the
// SDK makes DependsOn on a component a dependency on each resource in it.
func TestUpWithDirectUsers(t *testing.T) {
	ctx := context.Background()
	_, opts := testenv.Project(t, "dev", nil)
	render := t.TempDir()
	gen, other := "1", "1"
	opts.Program = func(ctx *pulumi.Context) error {
		p, err := kubernetes.NewProvider(ctx, "render", &kubernetes.ProviderArgs{RenderYamlToDirectory: pulumi.String(render)})
		if err != nil {
			return err
		}
		configMap := func(name string, data pulumi.StringInput, parent pulumi.Resource) (*corev1.ConfigMap, error) {
			return corev1.NewConfigMap(ctx, name, &corev1.ConfigMapArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String("default")},
				Data:     pulumi.StringMap{"v": data},
			}, pulumi.Provider(p), pulumi.Parent(parent))
		}
		component := func(name string, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
			c := &struct{ pulumi.ResourceState }{}
			return c, ctx.RegisterComponentResource("kcp-tmc:test:Component", name, c, opts...)
		}
		pki, err := component("pki")
		if err != nil {
			return err
		}
		cert, err := configMap("cert", pulumi.String(gen), pki)
		if err != nil {
			return err
		}
		if _, err := configMap("secret", cert.Data.MapIndex(pulumi.String("v")), pki); err != nil { // as a Secret holds its certificate
			return err
		}
		etcd, err := component("etcd", pulumi.DependsOn([]pulumi.Resource{pki}))
		if err != nil {
			return err
		}
		_, err = configMap("other", pulumi.String(other), etcd)
		return err
	}
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := automation.Up(ctx, s, io.Discard, optup.SuppressProgress()); err != nil {
		t.Fatal(err)
	}
	outs, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var urn string
	for _, line := range strings.Split(string(outs.Deployment), `"`) {
		if strings.HasSuffix(line, "$kubernetes:core/v1:ConfigMap::cert") {
			urn = line
		}
	}
	if urn == "" {
		t.Fatalf("no ConfigMap cert in the state:\n%s", outs.Deployment)
	}
	gen, other = "2", "2"
	if err := automation.UpWithDirectUsers(ctx, s, io.Discard, []string{urn}, optup.SuppressProgress()); err != nil {
		t.Fatal(err)
	}
	rendered := func(name string) string {
		b, err := os.ReadFile(filepath.Join(render, "1-manifest", "v1-configmap-default-"+name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, want := range map[string]string{"cert": "v: \"2\"", "secret": "v: \"2\"", "other": "v: \"1\""} {
		if got := rendered(name); !strings.Contains(got, want) {
			t.Errorf("ConfigMap %s after the targeted up:\n%s\nwant %s", name, got, want)
		}
	}
	res, err := automation.Preview(ctx, s, optpreview.SuppressProgress())
	if err != nil {
		t.Fatal(err)
	}
	// A ConfigMap's data change is a replace for the Kubernetes provider.
	if res.ChangeSummary["replace"] != 1 || len(res.ChangeSummary) != 2 {
		t.Errorf("after the targeted up the program still changes %v, want the one change it did not target", res.ChangeSummary)
	}
}
