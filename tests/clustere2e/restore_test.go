package clustere2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// runbookBlock is the shell block of docs/runbook.md that follows the
// marker `<!-- clustere2e: name -->`, unindented: what an operator pastes.
func runbookBlock(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	marker := "<!-- clustere2e: " + name + " -->"
	i := strings.Index(doc, marker)
	if i < 0 || strings.Count(doc, marker) != 1 {
		t.Fatalf("docs/runbook.md has %d markers %q, want 1", strings.Count(doc, marker), marker)
	}
	lines := strings.Split(doc[i+len(marker):], "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[1]) != "```sh" {
		t.Fatalf("docs/runbook.md: marker %q is not followed by a ```sh block", marker)
	}
	indent := lines[1][:strings.Index(lines[1], "```")]
	var block []string
	for _, l := range lines[2:] {
		if strings.TrimSpace(l) == "```" {
			return strings.Join(block, "\n") + "\n"
		}
		block = append(block, strings.TrimPrefix(l, indent))
	}
	t.Fatalf("docs/runbook.md: the block after %q does not end", marker)
	return ""
}

// runbookShell runs runbook blocks as an operator's shell does after the
// runbook's setup (bash, pipefail): the pinned kubectl with the cluster's
// kubeconfig, jq, kcp-tmc (this test binary as the CLI), the runbook's
// variables, in a directory holding admin.kubeconfig for kcp.
type runbookShell struct {
	t   *testing.T
	dir string
	env []string
	// subst replaces placeholders the runbook leaves to the reader.
	subst *strings.Replacer
}

func newRunbookShell(t *testing.T, p *platform, adminKubeconfig string, vars map[string]string) *runbookShell {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.kubeconfig"), []byte(adminKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := "#!/bin/sh\nKCP_TMC_TEST_AS_CLI=1 exec " + strconv.Quote(os.Args[0]) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "kcp-tmc"), []byte(cli), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+":"+toolchain.Bin()+":"+os.Getenv("PATH"), "KUBECONFIG="+kube.Kubeconfig)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return &runbookShell{t: t, dir: dir, env: env,
		subst: strings.NewReplacer("--stack <s>", "--stack dev --project-dir "+p.dir)}
}

// set gives the blocks run from now on a variable an earlier one printed.
func (r *runbookShell) set(name, value string) { r.env = append(r.env, name+"="+value) }

// run runs the block named name; it returns its trace (stderr) and output.
func (r *runbookShell) run(name string) (trace, out string) {
	r.t.Helper()
	block := r.subst.Replace(runbookBlock(r.t, name))
	if strings.Contains(block, "<s>") {
		r.t.Fatalf("runbook block %s: a placeholder is left: %s", name, block)
	}
	// Each traced command with the time it started, for the RTO (bash
	// running as root takes no PS4 from its environment).
	cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", "PS4='+ $(date +%s.%N) '; set -x\n"+block)
	cmd.Dir, cmd.Env = r.dir, r.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("runbook block %s failed after %s: %v\n%s\n%s", name, time.Since(t0).Round(time.Second), err,
			cluster.Tail(stdout.String(), 3000), cluster.Tail(stderr.String(), 5000))
	}
	r.t.Logf("runbook block %s: %s", name, time.Since(t0).Round(100*time.Millisecond))
	return stderr.String(), stdout.String()
}

// restoreTarget is what the variables of the runbook's restore name: the
// shard whose etcd is restored, its members and a workspace on it.
type restoreTarget struct {
	shard   shard.Shard
	members int
	ws      string
}

// rootEtcd is the root shard's etcd of members members.
func rootEtcd(members int) restoreTarget {
	return restoreTarget{shard: shard.Shard{Name: shard.Root}, members: members, ws: "root"}
}

// vars are the runbook's variables for a restore of r through host, kcp
// and the front-proxy at one replica each (the dev stack's).
func (r restoreTarget) vars(p *platform, host string) map[string]string {
	return map[string]string{"NS": p.ns, "ETCD": r.shard.EtcdCluster(), "SERVER": r.shard.Deployment(), "WS": r.ws,
		"KCP_URL": "https://" + host, "N": strconv.Itoa(r.members), "KCP": "1", "PROXY": "1"}
}

// restoreByTheRunbook restores etcd from the snapshot key with the
// runbook's own commands ("Restore etcd from a snapshot": stop kcp, stop
// etcd, one in-cluster Job per member — the way that reaches dev's backup
// volume — and start kcp with its checks, up to kcp-tmc drift), and
// returns the RTO: from the first command to the end of the request
// through the front-proxy that stops the clock.
func restoreByTheRunbook(t *testing.T, p *platform, host, admin, key string, target restoreTarget) time.Duration {
	t.Helper()
	sh := newRunbookShell(t, p, admin, target.vars(p, host))
	sh.set("KEY", key)
	began := time.Now()
	sh.run("stop-kcp")
	sh.run("stop-etcd")
	sh.run("restore-jobs")
	rto := startKCPByTheRunbook(t, sh, began)
	t.Logf("restored %s by the runbook: RTO %s (objective %s)", key, rto.Round(time.Second), 15*time.Minute)
	if rto > 15*time.Minute {
		t.Errorf("RTO %s: over the 15-minute objective", rto.Round(time.Second))
	}
	return rto
}

// startKCPByTheRunbook runs the start-kcp block, which ends with kcp-tmc
// drift, and returns the time from began to the end of the request
// through the front-proxy that stops the RTO's clock.
func startKCPByTheRunbook(t *testing.T, sh *runbookShell, began time.Time) time.Duration {
	t.Helper()
	trace, out := sh.run("start-kcp")
	// The clock stops when `get workspaces` through the front-proxy has
	// answered: the start of the command after it.
	m := regexp.MustCompile(`(?m)^\++ ([0-9]+)\.([0-9]+) kcp-tmc drift`).FindStringSubmatch(trace)
	if m == nil {
		t.Fatalf("the start-kcp block's trace has no kcp-tmc drift:\n%s", cluster.Tail(trace, 3000))
	}
	sec, _ := strconv.ParseInt(m[1], 10, 64)
	nsec, _ := strconv.ParseInt((m[2] + "000000000")[:9], 10, 64)
	if !strings.Contains(out, "no drift") {
		t.Errorf("kcp-tmc drift after kcp started again:\n%s", out)
	}
	return time.Unix(sec, nsec).Sub(began)
}

// backupAndRestore: the daily backup and the weekly verification, run
// now; then etcd (members of it) restored from that snapshot by the
// runbook's commands. A namespace of kcp created before the backup is
// back, one created after it is not; the next up changes nothing.
func backupAndRestore(t *testing.T, p *platform, host string, members int) {
	t.Helper()
	admin, adminFile := runbookAdmin(t, p, host)
	kcpCreateNamespace(t, adminFile, "before-the-backup")
	key := backupsRun(t, p.ns, shard.Shard{Name: shard.Root})
	kcpCreateNamespace(t, adminFile, "after-the-backup")
	restoreByTheRunbook(t, p, host, admin, key, rootEtcd(members))
	if before, after := kcpNamespace(t, adminFile, "before-the-backup"), kcpNamespace(t, adminFile, "after-the-backup"); !before || after {
		t.Errorf("after the restore: namespace before-the-backup %v (want true), after-the-backup %v (want false)", before, after)
	}
	p.must("up", "--expect-no-changes")
}

// kcpNamespace reports whether namespace name exists in kcp's root
// workspace, asked through the front door as kcp's admin.
func kcpNamespace(t *testing.T, adminFile, name string) bool {
	t.Helper()
	_, stderr, err := kube.Kubectl(t.Context(), nil, "--kubeconfig="+adminFile, "get", "namespace", name)
	if err != nil && strings.Contains(stderr+err.Error(), "NotFound") {
		return false
	}
	if err != nil {
		t.Fatalf("namespace %s in kcp: %v: %s", name, err, stderr)
	}
	return true
}

// runbookAdmin is the runbook's admin.kubeconfig for kcp at host, and a
// file holding it.
func runbookAdmin(t *testing.T, p *platform, host string) (admin, file string) {
	t.Helper()
	admin = p.kcpAdminKubeconfig("https://" + host + "/clusters/root")
	file = filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(file, []byte(admin), 0o600); err != nil {
		t.Fatal(err)
	}
	return admin, file
}

// kcpCreateNamespace creates namespace name in kcp's root workspace
// through the front door, as kcp's admin.
func kcpCreateNamespace(t *testing.T, adminFile, name string) {
	t.Helper()
	if _, stderr, err := kube.Kubectl(t.Context(), nil, "--kubeconfig="+adminFile, "create", "namespace", name); err != nil {
		t.Fatalf("namespace %s in kcp: %v: %s", name, err, stderr)
	}
}

// moveEtcdByTheRunbook moves etcd's members to StorageClass class by the
// runbook's commands ("Moving etcd to another StorageClass": stop kcp, a
// snapshot now, stop etcd, the claims and the StatefulSet's template on
// the new class, the restore Jobs, etcd.storageClass set, kcp started,
// the state refreshed). What kcp acknowledged before is kept; every claim
// is on the new class, as is the StatefulSet's template; the old volumes
// stay with their data; the next up changes nothing.
func moveEtcdByTheRunbook(t *testing.T, p *platform, host, class string, members int) {
	t.Helper()
	admin, adminFile := runbookAdmin(t, p, host)
	kcpCreateNamespace(t, adminFile, "before-the-move")
	oldVolumes := etcdVolumes(t, p.ns, members)
	sh := newRunbookShell(t, p, admin, rootEtcd(members).vars(p, host))
	sh.set("CLASS", class)
	began := time.Now()
	sh.run("stop-kcp")
	_, out := sh.run("move-snapshot")
	m := regexp.MustCompile(`(?m)^KEY=(\S+\.db)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the move-snapshot block printed no KEY=<key>.db:\n%s", cluster.Tail(out, 2000))
	}
	sh.set("KEY", m[1])
	sh.run("stop-etcd")
	sh.run("move-claims")
	sh.run("restore-jobs")
	setMovedClass(t, p, class, oldVolumes[0])
	down := startKCPByTheRunbook(t, sh, began)
	sh.run("move-refresh")
	t.Logf("moved etcd (%d members) to StorageClass %s by the runbook from snapshot %s: kcp answered again %s after it was stopped",
		members, class, m[1], down.Round(time.Second))
	if !kcpNamespace(t, adminFile, "before-the-move") {
		t.Error("after the move, namespace before-the-move is gone from kcp")
	}
	movedTo(t, p, class, oldVolumes)
}

// setMovedClass sets what the runbook's move says to: etcd.storageClass
// the new class, and dev's backup volume kept on the class it is on (that
// of oldVolume, etcd's old class: backup.pvcStorageClass follows
// etcd.storageClass unset).
func setMovedClass(t *testing.T, p *platform, class, oldVolume string) {
	t.Helper()
	oldClass, _, err := kube.Kubectl(context.Background(), nil, "get", "pv", oldVolume, "-o", "jsonpath={.spec.storageClassName}")
	if err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{"kcp-tmc:etcd.storageClass": class, "kcp-tmc:backup.pvcStorageClass": oldClass} {
		if err := p.stack.SetConfigWithOptions(context.Background(), key, auto.ConfigValue{Value: value}, &auto.ConfigOptions{Path: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// etcdVolumes is the volume of each member's claim.
func etcdVolumes(t *testing.T, ns string, members int) []string {
	t.Helper()
	var volumes []string
	for i := range members {
		pv, _ := claimVolume(t, ns, fmt.Sprintf("data-etcd-%d", i))
		volumes = append(volumes, pv)
	}
	return volumes
}

// movedTo checks a move of etcd to class: every member's claim and volume
// on it, as is the StatefulSet's claim template; the old volumes stayed
// with their data; every member healthy, none a learner; the next up
// changes nothing.
func movedTo(t *testing.T, p *platform, class string, oldVolumes []string) {
	t.Helper()
	ctx := context.Background()
	for i, old := range oldVolumes {
		claim := fmt.Sprintf("data-etcd-%d", i)
		pv, _ := claimVolume(t, p.ns, claim)
		got, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "pvc", claim, "-o", "jsonpath={.spec.storageClassName}")
		vc, _, err2 := kube.Kubectl(ctx, nil, "get", "pv", pv, "-o", "jsonpath={.spec.storageClassName}")
		if err != nil || err2 != nil || got != class || vc != class {
			t.Errorf("after the move, claim %s is on class %q and its volume %s on %q (%v, %v), want %q", claim, got, pv, vc, err, err2, class)
		}
		etcdDataRetained(t, old, "the move")
	}
	tmpl, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "statefulset", "etcd", "-o", "jsonpath={.spec.volumeClaimTemplates[*].spec.storageClassName}")
	if err != nil || tmpl != class {
		t.Errorf("after the move, the StatefulSet's claim template is on class %q (%v), want %q", tmpl, err, class)
	}
	if out, err := ectl(p.ns, "etcd-0", "endpoint", "health", "--cluster"); err != nil || strings.Count(out, "is healthy") != len(oldVolumes) {
		t.Errorf("after the move, etcd's members: %v\n%s", err, out)
	}
	if list, err := ectl(p.ns, "etcd-0", "member", "list"); err != nil || strings.Contains(list, ", true") {
		t.Errorf("after the move, a learner is left (or no list: %v):\n%s", err, list)
	}
	p.must("up", "--expect-no-changes")
}

// moveEtcdRollingByTheRunbook moves a cluster of three or more members to
// StorageClass class one member at a time by the runbook's commands
// (move-rolling, then etcd.storageClass set and the state refreshed) while
// a client writes through kcp's front door: no more writes fail than one
// election per member explains, every acknowledged one is kept, and each
// member's join replaced it.
func moveEtcdRollingByTheRunbook(t *testing.T, p *platform, host, class string, members int) {
	t.Helper()
	ctx := context.Background()
	admin, _ := runbookAdmin(t, p, host)
	oldVolumes := etcdVolumes(t, p.ns, members)
	before := etcdMembers(t, p.ns)
	sh := newRunbookShell(t, p, admin, rootEtcd(members).vars(p, host))
	sh.set("CLASS", class)
	w := startKCPWriter(t, p.kcpAdminKubeconfig("https://"+host+":443/clusters/root"), "etcd-move", 1, 100*time.Millisecond)
	time.Sleep(3 * time.Second)
	began := time.Now()
	sh.run("move-rolling")
	took := time.Since(began)
	time.Sleep(3 * time.Second)
	acked, failed := w.stop()
	t.Logf("moved etcd (%d members) to StorageClass %s one member at a time by the runbook in %s; kcp through the front door meanwhile: %d writes acknowledged, %d failed %v",
		members, class, took.Round(time.Second), len(acked), len(failed), failed)
	// A write in flight when the leader's member goes may time out (7 s)
	// in the election; more is an outage the others should have prevented.
	if len(failed) > members {
		t.Errorf("%d writes through kcp failed while etcd moved one member at a time:\n%s", len(failed), lines(failed))
	}
	w.allStored(t, acked)
	after := etcdMembers(t, p.ns)
	for name, id := range before {
		if after[name] == 0 || after[name] == id {
			t.Errorf("after the move %s is %x (was %x): its join should have replaced it", name, after[name], id)
		}
		join, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", name, "-c", "join")
		if err != nil || !strings.Contains(join, "data lost; replacing member") || !strings.Contains(join, "promoted to a voting member") {
			t.Errorf("%s's join (%v) should have replaced it as a learner and promoted it:\n%s", name, err, join)
		}
	}
	setMovedClass(t, p, class, oldVolumes[0])
	sh.run("move-refresh")
	movedTo(t, p, class, oldVolumes)
}
