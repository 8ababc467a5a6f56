package clustere2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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

// restoreByTheRunbook restores etcd from the snapshot key with the
// runbook's own commands ("Restore etcd from a snapshot": stop kcp, stop
// etcd, one in-cluster Job per member — the way that reaches dev's backup
// volume — and start kcp with its checks, up to kcp-tmc drift), and
// returns the RTO: from the first command to the end of the request
// through the front-proxy that stops the clock.
func restoreByTheRunbook(t *testing.T, p *platform, admin, key string, members int) time.Duration {
	t.Helper()
	sh := newRunbookShell(t, p, admin, map[string]string{"NS": p.ns, "N": strconv.Itoa(members), "KCP": "1", "PROXY": "1", "KEY": key})
	began := time.Now()
	sh.run("stop-kcp")
	sh.run("stop-etcd")
	sh.run("restore-jobs")
	trace, out := sh.run("start-kcp") // its last command is kcp-tmc drift
	// The clock stops when `get workspaces` through the front-proxy has
	// answered: the start of the command after it.
	m := regexp.MustCompile(`(?m)^\++ ([0-9]+)\.([0-9]+) kcp-tmc drift`).FindStringSubmatch(trace)
	if m == nil {
		t.Fatalf("the start-kcp block's trace has no kcp-tmc drift:\n%s", cluster.Tail(trace, 3000))
	}
	sec, _ := strconv.ParseInt(m[1], 10, 64)
	nsec, _ := strconv.ParseInt((m[2] + "000000000")[:9], 10, 64)
	rto := time.Unix(sec, nsec).Sub(began)
	if !strings.Contains(out, "no drift") {
		t.Errorf("kcp-tmc drift after the restore:\n%s", out)
	}
	t.Logf("restored %s by the runbook: RTO %s (objective %s)", key, rto.Round(time.Second), 15*time.Minute)
	if rto > 15*time.Minute {
		t.Errorf("RTO %s: over the 15-minute objective", rto.Round(time.Second))
	}
	return rto
}

// backupAndRestore: the daily backup and the weekly verification, run
// now; then etcd (members of it) restored from that snapshot by the
// runbook's commands. A namespace of kcp created before the backup is
// back, one created after it is not; the next up changes nothing.
func backupAndRestore(t *testing.T, p *platform, host string, members int) {
	t.Helper()
	admin := p.kcpAdminKubeconfig("https://" + host + "/clusters/root") // the runbook's admin.kubeconfig
	adminFile := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(adminFile, []byte(admin), 0o600); err != nil {
		t.Fatal(err)
	}
	kcpCreate := func(ns string) {
		if _, stderr, err := kube.Kubectl(t.Context(), nil, "--kubeconfig="+adminFile, "create", "namespace", ns); err != nil {
			t.Fatalf("namespace %s in kcp: %v: %s", ns, err, stderr)
		}
	}
	kcpCreate("before-the-backup")
	key := backupsRun(t, p.ns)
	kcpCreate("after-the-backup")
	restoreByTheRunbook(t, p, admin, key, members)
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
