// Package tests drives the kcp-tmc program through the real Pulumi engine
// (Automation API, inline program, local file backend).
package tests

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestDevStackOnRealEngine previews and ups the dev stack in render mode,
// checks the YAML the Kubernetes provider wrote, and proves a second up is a
// no-op (the program is deterministic, nothing is replaced). The defaults
// print no warning: a user could act on none.
func TestDevStackOnRealEngine(t *testing.T) {
	ctx := context.Background()
	dir, opts := testenv.Project(t, "dev", nil)
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	prev, err := stack.Preview(ctx, optpreview.ProgressStreams(testWriter{t}, &out), optpreview.ErrorProgressStreams(testWriter{t}, &out))
	if err != nil {
		t.Fatalf("preview: %v", err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "warning") {
			t.Errorf("the dev stack's preview warns: %s", strings.TrimSpace(line))
		}
	}
	if prev.ChangeSummary[apitype.OpCreate] < 4 { // stack, provider, component, namespace, policy
		t.Errorf("preview plans %v, want the platform to be created", prev.ChangeSummary)
	}

	up, err := stack.Up(ctx, optup.ProgressStreams(testWriter{t}))
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if got := up.Outputs["namespace"].Value; got != "kcp" {
		t.Errorf("output namespace = %v, want kcp", got)
	}
	renderDir := filepath.Join(dir, "rendered", "dev")
	if got := up.Outputs["renderDir"].Value; got != renderDir {
		t.Errorf("output renderDir = %v, want %s", got, renderDir)
	}

	objs := readRendered(t, renderDir)
	ns := find(t, objs, "Namespace", "kcp")
	labels := ns["metadata"].(map[string]any)["labels"].(map[string]any)
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if labels["pod-security.kubernetes.io/"+mode] != "restricted" {
			t.Errorf("rendered namespace label %s = %v, want restricted", mode, labels["pod-security.kubernetes.io/"+mode])
		}
	}
	np := find(t, objs, "NetworkPolicy", "default-deny")
	if types := np["spec"].(map[string]any)["policyTypes"]; len(types.([]any)) != 2 {
		t.Errorf("rendered default-deny policyTypes = %v, want Ingress and Egress", types)
	}

	again, err := stack.Up(ctx, optup.ProgressStreams(testWriter{t}))
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	for op, n := range *again.Summary.ResourceChanges {
		if op != string(apitype.OpSame) && n > 0 {
			t.Errorf("second up changed something: %v", *again.Summary.ResourceChanges)
		}
	}
	if _, err := stack.Preview(ctx, optpreview.ExpectNoChanges()); err != nil {
		t.Errorf("preview --expect-no-changes after up: %v", err)
	}
}

// TestDevStackWithClusterOnRealEngine: a dev stack with one physical
// cluster renders on the real engine with no pulumi-tls plugin (cert-manager
// mode: the agent's identity is copied by kcp-tmc agent-identity), into one
// directory per cluster and per kcp workspace.
func TestDevStackWithClusterOnRealEngine(t *testing.T) {
	ctx := context.Background()
	dir, opts := testenv.Project(t, "dev", map[string]any{
		"kcp-tmc:clusters": []any{map[string]any{"name": "edge",
			"resources": []any{map[string]any{"group": "example.com", "version": "v1", "kind": "Widget", "plural": "widgets"}}}},
	})
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Up(ctx, optup.ProgressStreams(testWriter{t})); err != nil {
		t.Fatalf("up: %v", err)
	}
	rendered := filepath.Join(dir, "rendered", "dev")
	onCluster := readRendered(t, filepath.Join(rendered, "clusters", "edge"))
	find(t, onCluster, "Deployment", "api-syncagent")
	find(t, onCluster, "CustomResourceDefinition", "publishedresources.syncagent.kcp.io")
	find(t, onCluster, "PublishedResource", "widgets.example.com")
	find(t, onCluster, "ConfigMap", "kcp-kubeconfig")
	for _, o := range onCluster {
		if o["kind"] == "Secret" {
			t.Errorf("a Secret is rendered onto the cluster in cert-manager mode: %v", o["metadata"])
		}
	}
	find(t, readRendered(t, filepath.Join(rendered, "kcp-root-compute")), "APIExport", "edge-export")
	root := readRendered(t, filepath.Join(rendered, "kcp-root"))
	find(t, root, "Workspace", "compute")
	find(t, root, "ClusterRoleBinding", "kcp-tmc:metrics-reader")
}

// TestBadConfigFailsPreview proves invalid stack files stop at validation,
// with the key, value and allowed values in the engine's error.
func TestBadConfigFailsPreview(t *testing.T) {
	ctx := context.Background()
	_, opts := testenv.Project(t, "dev", map[string]any{
		"kcp-tmc:etcd": map[string]any{"replicas": 2, "storageSize": "20Gb"},
	})
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stack.Preview(ctx)
	if err == nil {
		t.Fatal("preview succeeded with an even etcd member count")
	}
	for _, want := range []string{
		`config kcp-tmc:etcd.replicas: invalid value "2": want an odd number`,
		`config kcp-tmc:etcd.storageSize: invalid value "20Gb"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("preview error does not contain %q:\n%v", want, err)
		}
	}
	if auto.IsCompilationError(err) {
		t.Errorf("failure was a compilation error, not validation: %v", err)
	}
}

// TestConfigSetOfUnknownKeyFailsPreview: `pulumi config set` (here through
// the Automation API, which runs that command) of a misspelled key is caught
// by the next preview, naming the key and the one meant.
func TestConfigSetOfUnknownKeyFailsPreview(t *testing.T) {
	ctx := context.Background()
	_, opts := testenv.Project(t, "dev", nil)
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.SetConfig(ctx, "kcp-tmc:monitorng", auto.ConfigValue{Value: `{"enabled":false}`}); err != nil {
		t.Fatal(err)
	}
	_, err = stack.Preview(ctx)
	if err == nil || !strings.Contains(err.Error(), "config kcp-tmc:monitorng: unknown key; the nearest known key is kcp-tmc:monitoring") {
		t.Fatalf("preview: %v, want the unknown key refused", err)
	}
}

// readRendered parses every YAML document the provider rendered.
func readRendered(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if obj != nil {
				objs = append(objs, obj)
			}
		}
	})
	if err != nil {
		t.Fatalf("reading rendered manifests: %v", err)
	}
	return objs
}

func find(t *testing.T, objs []map[string]any, kind, name string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["kind"] == kind && o["metadata"].(map[string]any)["name"] == name {
			return o
		}
	}
	t.Fatalf("no rendered %s %q among %d objects", kind, name, len(objs))
	return nil
}

// testWriter streams engine progress into the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestKCPProvidersFollowWorkspacesNotOrder: clusters in two workspaces, up
// on the real engine. A stack written when the first cluster's workspace's
// provider was named "kcp" (its state rewritten to that name here) upgrades
// in place: the next up replaces nothing. Then removing the first cluster
// and reordering the rest deletes that cluster's objects and replaces
// nothing either — a replaced APIExport would get a new identity and break
// its consumers' bindings.
func TestKCPProvidersFollowWorkspacesNotOrder(t *testing.T) {
	ctx := context.Background()
	cluster := func(name, ws string) map[string]any {
		c := map[string]any{"name": name,
			"resources": []any{map[string]any{"group": "example.com", "version": "v1", "kind": "Widget", "plural": "widgets"}}}
		if ws != "" {
			c["workspace"] = ws
		}
		return c
	}
	_, opts := testenv.Project(t, "dev", map[string]any{
		"kcp-tmc:clusters": []any{cluster("alpha", ""), cluster("bravo", "root:team-b"), cluster("charlie", "")},
	})
	stack, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	up := func(what string) map[string]int {
		t.Helper()
		res, err := stack.Up(ctx, optup.ProgressStreams(testWriter{t}))
		if err != nil {
			t.Fatalf("up (%s): %v", what, err)
		}
		changes := map[string]int{}
		if res.Summary.ResourceChanges != nil {
			changes = *res.Summary.ResourceChanges
		}
		return changes
	}
	up("first")

	// The state as the old naming wrote it: root:compute's provider "kcp".
	const provider = "::pulumi:providers:kubernetes::"
	state, err := stack.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(state.Deployment), provider+"kcp-root-compute\"") {
		t.Fatalf("no provider kcp-root-compute in the state")
	}
	state.Deployment = []byte(strings.ReplaceAll(string(state.Deployment), provider+"kcp-root-compute", provider+"kcp"))
	if err := stack.Import(ctx, state); err != nil {
		t.Fatal(err)
	}
	if changes := up("the upgrade"); changes["replace"] != 0 || changes["create"] != 0 || changes["delete"] != 0 {
		t.Errorf("the first up after the provider's rename: %v, want nothing created, deleted or replaced", changes)
	}
	state, err = stack.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state.Deployment), provider+"kcp\"") {
		t.Error("the state still holds the provider kcp after the upgrade")
	}

	// The first cluster removed, the rest reordered: another workspace's
	// cluster first (the old naming then replaced the "kcp" provider, and
	// with it every object of team-b's: "replacing [diff: ~provider]").
	clusters, err := json.Marshal([]any{cluster("bravo", "root:team-b"), cluster("charlie", "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.SetConfig(ctx, "kcp-tmc:clusters", auto.ConfigValue{Value: string(clusters)}); err != nil {
		t.Fatal(err)
	}
	if changes := up("alpha removed, the rest reordered"); changes["replace"] != 0 || changes["delete"] == 0 {
		t.Errorf("removing the first cluster: %v, want alpha's objects deleted and nothing replaced", changes)
	}
}
