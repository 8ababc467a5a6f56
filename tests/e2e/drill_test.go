package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// rtoObjective is the recovery time objective of a whole-platform restore
// (README "Targets"; docs/backup.md).
const rtoObjective = 15 * time.Minute

// TestWholePlatformDisasterRecovery: the documented whole-platform DR
// procedure (docs/runbook.md "Whole platform lost") on the real programs.
// A sharded dev stack (shard-1, the separate cache server) with one
// api-syncagent cluster and S3 backups to an S3-compatible server holds a
// workspace on each shard, an APIBinding and a synced Widget. The stack's
// own backup CronJobs, their steps run as their pods would, snapshot the
// root shard's and shard-1's etcd. Then every program is killed and every
// volume wiped; the ops library behind `kcp-tmc restore` writes each etcd's
// member data dir from the newest snapshot, the data dirs are put where
// the StatefulSets' claims are, and every program starts again with its
// command line. Every workspace, the binding and the Widget are back, an
// object written after the snapshots is not (the snapshots are the restore
// point), the agent reconnects by itself and syncs a Widget created after
// the restore, and the shards fill the (unbacked) cache server again. The
// RTO of each step and the total are printed and must be under 15 minutes.
func TestWholePlatformDisasterRecovery(t *testing.T) {
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	binary(t, "CACHE_SERVER_BIN")
	agentBin := binary(t, "API_SYNCAGENT_BIN")
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("aws not on PATH (.ci/run installs it; the backup Jobs' upload step runs it): %v", err)
	}
	// The backup target: an S3-compatible server on loopback; the Jobs use
	// the stack's access key (backup.accessKeyId, backupSecretAccessKey),
	// the operator has the same for kcp-tmc restore.
	s3 := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3.Close)
	awsEnv := []string{"AWS_ACCESS_KEY_ID=drill", "AWS_SECRET_ACCESS_KEY=drill-secret"}
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	const bucket, shardName, name, export = "kcp-tmc-drill", "shard-1", "edge", "edge-export"
	if out, err := exec.Command("aws", "--endpoint-url", s3.URL, "--region", "us-east-1", "s3", "mb", "s3://"+bucket).CombinedOutput(); err != nil {
		t.Fatalf("creating the bucket: %v\n%s", err, out)
	}
	config := map[string]string{
		"tls": `{"mode":"self-managed"}`,
		"kcp": `{"shards":[{"name":"` + shardName + `"}],"cache":{"mode":"separate"}}`,
		"clusters": `[{"name":"` + name + `","replicas":1,"shard":"` + shardName + `",
		  "resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]}]`,
		"backup":                `{"enabled":true,"target":"s3","bucket":"` + bucket + `","region":"us-east-1","endpoint":"` + s3.URL + `","accessKeyId":"drill"}`,
		"backupSecretAccessKey": "drill-secret",
	}
	objs, rec := render(t, "dev", config, "backupSecretAccessKey")
	cfg, err := stacks.Load(configValues(stackValues("dev", config)))
	if err != nil {
		t.Fatal(err)
	}

	// The platform in use.
	cp := startControlPlane(t, objs)
	pc := startPhysicalCluster(t, rec, name)
	cp.applyKCPSide(t, rec, map[string]string{"kcp-root": "root", "kcp-root-compute": "root:compute"})
	agent := pc.startAgent(t, cp, agentBin)
	cp.bindExport(t, workspaceOn("consumer", shardName), export)
	cp.widgetRoundTrip(t, pc, agent, "root:consumer", "w1")
	cp.createWorkspace(t, workspaceOn("on-root", shard.Root))
	configMaps := "/clusters/root:on-root/api/v1/namespaces/default/configmaps"
	cp.admin.must(t, http.MethodPost, configMaps, configMap("before-backup"))

	// The stack's backup Jobs snapshot every etcd that has them.
	backedUp := []string{etcd.Name, shard.EtcdCluster(shardName)}
	for _, cluster := range backedUp {
		began := time.Now()
		out := cp.runJob(t, shard.BackupJob(cluster), awsEnv...)
		if !strings.Contains(out, "etcd-backup: OK ") {
			t.Fatalf("%s reported no upload:\n%s", shard.BackupJob(cluster), out)
		}
		t.Logf("backup Job %s: %s", shard.BackupJob(cluster), time.Since(began).Round(100*time.Millisecond))
	}
	// Written after the snapshots: the restore point is before them. The
	// Widget's copy on the physical cluster outlives the restore.
	cp.admin.must(t, http.MethodPost, configMaps, configMap("after-backup"))
	cp.widgetRoundTrip(t, pc, agent, "root:consumer", "after-backup")

	// Everything lost: every program killed, every volume (etcd's claims,
	// every emptyDir) gone. The physical cluster is another failure domain.
	for _, key := range slices.Backward(cp.order) {
		cp.stop(t, key, syscall.SIGKILL)
		for _, d := range cp.running[key].pod.scratch {
			if err := os.RemoveAll(d); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}

	type step struct {
		what string
		took time.Duration
	}
	var steps []step
	lost := time.Now()
	timed := func(what string, f func()) {
		t.Helper()
		began := time.Now()
		f()
		steps = append(steps, step{what, time.Since(began)})
		t.Logf("%s: %s", what, time.Since(began).Round(100*time.Millisecond))
	}
	// kcp-tmc restore per etcd, each member's data dir put onto its claim.
	for _, name := range backedUp {
		timed("restore "+name, func() {
			cluster, err := ops.EtcdClusterOf(cfg, name)
			if err != nil {
				t.Fatal(err)
			}
			src, err := ops.BackupSourceOf(cfg, name)
			if err != nil {
				t.Fatal(err)
			}
			plan, snap, err := ops.Restore(context.Background(), src, "latest", filepath.Join(t.TempDir(), "restore"), cluster, cfg.Etcd.Replicas, time.Now())
			if err != nil {
				t.Fatalf("restoring %s: %v", name, err)
			}
			t.Logf("%s: restored %s (revision %d)", name, snap.Key, snap.Revision)
			for _, m := range plan.Members {
				if err := os.Rename(m.DataDir, cp.dataDir(t, name)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// Every program again, in the order the stack needs them.
	for _, key := range cp.order {
		timed("start "+key, func() { cp.startAgain(t, key, "restored") })
	}
	timed("first request through the front-proxy", func() {
		cp.admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", 2*time.Minute, func(map[string]any) bool { return true })
	})
	timed("every workspace Ready, the binding Bound", func() {
		for _, ws := range []string{"on-root", "consumer"} {
			cp.admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/"+ws, 2*time.Minute, func(w map[string]any) bool {
				return mocktest.Dig(w, "status", "phase") == "Ready"
			})
		}
		cp.admin.eventually(t, "/clusters/root:consumer/apis/apis.kcp.io/v1alpha1/apibindings/widgets", 2*time.Minute, func(b map[string]any) bool {
			return mocktest.Dig(b, "status", "phase") == "Bound"
		})
	})
	timed("the agent syncs a Widget created after the restore", func() {
		cp.widgetRoundTrip(t, pc, cp.running[agentKey(name)].proc, "root:consumer", "w2")
	})
	total := time.Since(lost)

	// What was there before the snapshots is back; what came after is not.
	if w := cp.admin.must(t, http.MethodGet, "/clusters/root:consumer/apis/example.com/v1/namespaces/default/widgets/w1", nil); mocktest.Dig(w, "status", "phase") != "Provisioned" {
		t.Errorf("Widget w1 after the restore: %v", w)
	}
	if code, body := cp.admin.do(t, http.MethodGet, configMaps+"/before-backup", nil); code != http.StatusOK {
		t.Errorf("ConfigMap before-backup on the root shard after the restore: HTTP %d: %s", code, body)
	}
	if code, _ := cp.admin.do(t, http.MethodGet, configMaps+"/after-backup", nil); code != http.StatusNotFound {
		t.Errorf("ConfigMap after-backup, written after the snapshots: HTTP %d, want 404 (the etcd data was not replaced by the snapshot)", code)
	}
	if code, _ := cp.admin.do(t, http.MethodGet, "/clusters/root:consumer/apis/example.com/v1/namespaces/default/widgets/after-backup", nil); code != http.StatusNotFound {
		t.Errorf("Widget after-backup, created after the snapshots: HTTP %d in kcp, want 404", code)
	}
	if orphans := pc.copiesOf(t, "after-backup"); len(orphans) != 1 {
		t.Errorf("the cluster's copy of Widget after-backup: %d copies, want the one left behind (docs/backup.md: orphans after a restore)", len(orphans))
	}
	// The cache server's etcd has no backup: the shards write into it again.
	if keys := cp.etcdKeys(t, shard.EtcdCluster(shard.Cache)); !strings.Contains(keys, "workspacetypes") {
		t.Errorf("the cache server's etcd holds no replicated WorkspaceType after the restore:\n%s", keys)
	}

	var table strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&table, "\n  %-55s %s", s.what, s.took.Round(100*time.Millisecond))
	}
	t.Logf("RTO, from the platform lost to a Widget synced after the restore: %s (objective %s)%s", total.Round(time.Second), rtoObjective, table.String())
	if total > rtoObjective {
		t.Errorf("recovery took %s, over the %s objective", total.Round(time.Second), rtoObjective)
	}
}

// configValues is a stack's config as stacks.Load reads it.
type configValues map[string]string

func (c configValues) GetConfig(key string) (string, bool) {
	v, ok := c[strings.TrimPrefix(key, stacks.Namespace+":")]
	return v, ok
}

// IsConfigSecret: the secrets a test sets are set as secrets.
func (c configValues) IsConfigSecret(key string) bool {
	return slices.ContainsFunc(stacks.SecretKeys, func(s struct{ Field, Key string }) bool { return stacks.Namespace+":"+s.Key == key })
}

func configMap(name string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}}
}

// dataDir is where the running etcd of cluster keeps its data (its
// --data-dir, on its claim).
func (cp *controlPlane) dataDir(t testing.TB, cluster string) string {
	t.Helper()
	in, ok := cp.running[cluster]
	if !ok {
		t.Fatalf("etcd %s was not started", cluster)
	}
	for _, a := range in.args {
		if d, ok := strings.CutPrefix(a, "--data-dir="); ok {
			return d
		}
	}
	t.Fatalf("etcd %s has no --data-dir: %v", cluster, in.args)
	return ""
}

// runJob runs a CronJob's steps — its init containers, then its container —
// in order as local processes with their rendered commands, env and
// volumes (one directory for the pod, so the steps share /work), the
// commands' programs from the toolchain (etcdctl, etcdutl, as etcd's
// image has them) or PATH (sh, the aws CLI, as the backup image has
// them). A failing step fails the test. It returns the steps' output.
func (cp *controlPlane) runJob(t testing.TB, cronJob string, env ...string) string {
	t.Helper()
	cj := cp.objs.get(t, "CronJob", cronJob)
	template := mocktest.Dig(cj, "spec", "jobTemplate", "spec", "template")
	w := map[string]any{"metadata": cj["metadata"], "spec": map[string]any{"template": template}}
	spec := asMap(mocktest.Dig(template, "spec"))
	dir := t.TempDir()
	var out strings.Builder
	for _, c := range append(mocktest.List(spec["initContainers"]), mocktest.List(spec["containers"])...) {
		c := asMap(c)
		command := mocktest.List(c["command"])
		if len(command) == 0 {
			t.Fatalf("%s: step %v has no command", cronJob, c["name"])
		}
		bin, err := toolchain.Find(fmt.Sprint(command[0]))
		if err != nil {
			if bin, err = exec.LookPath(fmt.Sprint(command[0])); err != nil {
				t.Fatalf("%s: step %v runs %v, which is neither in the toolchain nor on PATH", cronJob, c["name"], command[0])
			}
		}
		p := materializeContainer(t, cp.objs, cp.m, cronJob, w, c, dir)
		cmd := exec.Command(bin, p.args...)
		cmd.Dir, cmd.Env = dir, append(append(os.Environ(), p.env...), env...)
		b, err := cmd.CombinedOutput()
		out.Write(b)
		if err != nil {
			t.Fatalf("%s: step %v (%s %s) failed: %v\n%s", cronJob, c["name"], bin, strings.Join(p.args, " "), err, b)
		}
	}
	return out.String()
}
