package clustere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// kcpAdmin runs the pinned kubectl as kcp's admin (the stack's kcp-admin
// certificate) against a public address of kcp: the front door, or a
// shard's own.
type kcpAdmin struct {
	t      *testing.T
	file   string // the admin kubeconfig
	server string // https://<host>:443
}

// kcpAdminAt writes an admin kubeconfig for https://host:443.
func (p *platform) kcpAdminAt(host string) *kcpAdmin {
	p.t.Helper()
	k := &kcpAdmin{t: p.t, file: filepath.Join(p.t.TempDir(), "kcp-admin.kubeconfig"), server: "https://" + host + ":443"}
	if err := os.WriteFile(k.file, []byte(p.kcpAdminKubeconfig(k.server)), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return k
}

// try runs kubectl args in workspace with stdin (when not empty).
func (k *kcpAdmin) try(workspace, stdin string, args ...string) (string, error) {
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	// The error carries kubectl's stderr (NotFound, Forbidden, …).
	out, _, err := kube.Kubectl(context.Background(), in, append([]string{"--kubeconfig=" + k.file, "--server=" + k.server + "/clusters/" + workspace}, args...)...)
	return out, err
}

// must is try, failing the test on error.
func (k *kcpAdmin) must(workspace, stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.try(workspace, stdin, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// poll is a waitCmd check: done once kubectl's output is want, or, with
// want "", anything but empty.
func (k *kcpAdmin) poll(workspace, want string, args ...string) func() (bool, string) {
	return func() (bool, string) {
		out, err := k.try(workspace, "", args...)
		if err != nil {
			return false, err.Error()
		}
		if want == "" {
			return out != "" && out != "[]", out
		}
		return out == want, out
	}
}

// createWorkspace creates the workspace name in root, on the shard named
// onShard ("" for kcp's choice), and waits until it is Ready.
func (k *kcpAdmin) createWorkspace(name, onShard string) {
	k.t.Helper()
	spec := ""
	if onShard != "" {
		spec = fmt.Sprintf("\nspec: {location: {selector: {matchLabels: {name: %s}}}}", onShard)
	}
	k.must("root", "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata: {name: "+name+"}"+spec+"\n", "create", "-f", "-")
	waitCmd(k.t, "workspace "+name+" Ready", 2*time.Minute, k.poll("root", "Ready", "get", "workspace", name, "-o", "jsonpath={.status.phase}"))
}

// bind binds the APIExport export of the workspace exportPath into
// workspace, accepting what the export claims as a consumer does
// (api-syncagent claims events and namespaces: without them kcp refuses
// the events it records), and waits until the binding is Bound.
func (k *kcpAdmin) bind(workspace, exportPath, export string) {
	k.t.Helper()
	var exp struct {
		Spec struct {
			PermissionClaims []map[string]any `json:"permissionClaims"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(k.must(exportPath, "", "get", "apiexports.v1alpha1.apis.kcp.io", export, "-o", "json")), &exp); err != nil {
		k.t.Fatalf("APIExport %s: %v", export, err)
	}
	for _, c := range exp.Spec.PermissionClaims {
		c["state"] = "Accepted"
	}
	binding, _ := json.Marshal(map[string]any{"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": map[string]any{"name": export},
		"spec": map[string]any{"reference": map[string]any{"export": map[string]any{"path": exportPath, "name": export}}, "permissionClaims": exp.Spec.PermissionClaims}})
	k.must(workspace, string(binding), "create", "-f", "-")
	waitCmd(k.t, "APIBinding "+export+" in "+workspace+" Bound", 2*time.Minute, k.poll(workspace, "Bound", "get", "apibinding", export, "-o", "jsonpath={.status.phase}"))
}

// widgetToNode creates the Widget name in workspace (namespace default)
// and returns where the agent put it on the node, logging how long that
// took.
func (k *kcpAdmin) widgetToNode(workspace, name string) (ns, nodeName string) {
	k.t.Helper()
	ctx := context.Background()
	waitCmd(k.t, "Widget "+name+" created in "+workspace, time.Minute, func() (bool, string) {
		out, err := k.try(workspace, fmt.Sprintf(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":%q,"namespace":"default"},"spec":{"size":3}}`, name), "create", "-f", "-")
		if err != nil {
			return false, err.Error()
		}
		return true, out
	})
	began := time.Now()
	waitCmd(k.t, "Widget "+name+" reaches the node", 2*time.Minute, func() (bool, string) {
		out, _, err := kube.Kubectl(ctx, nil, "get", "widgets.example.com", "-A", "-o", "json")
		if err != nil {
			return false, err.Error()
		}
		var list struct {
			Items []struct {
				Metadata struct {
					Name, Namespace string
					Annotations     map[string]string
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err.Error()
		}
		for _, w := range list.Items {
			// api-syncagent v0.7.0 notes the kcp object's name here (internal/sync/types.go).
			if w.Metadata.Annotations["syncagent.kcp.io/remote-object-name"] == name {
				ns, nodeName = w.Metadata.Namespace, w.Metadata.Name
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d widgets on the node, none from %s", len(list.Items), name)
	})
	k.t.Logf("Widget %s in %s: kcp → node in %s", name, workspace, time.Since(began).Round(100*time.Millisecond))
	return ns, nodeName
}

// statusBack writes a status onto the node's copy of the Widget name and
// waits until kcp's object in workspace has it.
func (k *kcpAdmin) statusBack(workspace, name, ns, nodeName, phase string) {
	k.t.Helper()
	began := time.Now()
	if _, _, err := kube.Kubectl(context.Background(), nil, "-n", ns, "patch", "widgets.example.com", nodeName, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"`+phase+`"}}`); err != nil {
		k.t.Fatal(err)
	}
	waitCmd(k.t, "the status of "+name+" comes back to "+workspace, 2*time.Minute,
		k.poll(workspace, phase, "get", "widgets.example.com", name, "-n", "default", "-o", "jsonpath={.status.phase}"))
	k.t.Logf("Widget %s: node → %s status in %s", name, workspace, time.Since(began).Round(100*time.Millisecond))
}

// newAgentPlatform is the dev stack (newPlatform, with overrides) and one
// api-syncagent cluster entry "local" whose physical cluster is the node
// itself, syncing Widgets, with entry's extra keys; destroyed when the test
// ends, and the agent's log shown if it failed.
func newAgentPlatform(t *testing.T, entry, overrides map[string]any) *platform {
	t.Helper()
	ctx := context.Background()
	if err := kube.Apply(ctx, cluster.WidgetCRD); err != nil {
		t.Fatal(err)
	}
	local := map[string]any{"name": "local", "replicas": 1,
		"resources": []any{map[string]any{"group": "example.com", "version": "v1", "kind": "Widget", "plural": "widgets"}}}
	maps.Copy(local, entry)
	cfg := map[string]any{"kcp-tmc:clusters": []any{local}}
	maps.Copy(cfg, overrides)
	p := newPlatform(t, cfg)
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := json.Marshal(map[string]string{"local": string(kubeconfig)})
	p.setSecret("kcp-tmc:clusterKubeconfigs", string(kc))
	p.destroyAtCleanup()
	t.Cleanup(func() {
		if t.Failed() {
			logs := keepLogs(t, map[string][]string{
				"api-syncagent": {"-n", "kcp-agent", "deployment/api-syncagent"},
				"kcp":           {"-n", "kcp", "-l", "app.kubernetes.io/instance=kcp-tmc", "--prefix", "--tail=-1", "--max-log-requests=30"},
			})
			t.Logf("agent log:\n%s", cluster.Tail(logs["api-syncagent"], 6000))
		}
	})
	return p
}

// keepLogs returns each workload's whole log (kubectl logs args) and writes
// it to a file that outlives the cluster, for a failure the log tails do
// not explain.
func keepLogs(t *testing.T, workloads map[string][]string) map[string]string {
	dir, err := os.MkdirTemp("", "kcp-tmc-"+filepath.Base(t.Name())+"-logs-")
	if err != nil {
		t.Logf("keeping logs: %v", err)
	}
	all := map[string]string{}
	for name, args := range workloads {
		logs, stderr, _ := kube.Kubectl(context.Background(), nil, append([]string{"logs"}, args...)...)
		all[name] = logs + stderr
		if dir == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name+".log"), []byte(all[name]), 0o600); err != nil {
			t.Logf("keeping %s's log: %v", name, err)
		}
	}
	if dir != "" {
		t.Logf("whole logs kept in %s", dir)
	}
	return all
}

// consumerSyncs binds the node agent's export (local-export in
// root:compute) in a new workspace root:consumer and follows a Widget
// created there to the node and its status back.
func (k *kcpAdmin) consumerSyncs(widget string) {
	k.t.Helper()
	k.createWorkspace("consumer", "")
	export := "local-export"
	waitCmd(k.t, "the agent publishes Widget into "+export, 2*time.Minute,
		k.poll("root:compute", "", "get", "apiexports.v1alpha1.apis.kcp.io", export, "-o", "jsonpath={.spec.latestResourceSchemas}"))
	k.bind("root:consumer", "root:compute", export)
	ns, name := k.widgetToNode("root:consumer", widget)
	k.statusBack("root:consumer", widget, ns, name, "Provisioned")
}
