package clustere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestLostEtcdMemberRejoinsByItself: the dev stack with three etcd members,
// deployed in one `kcp-tmc up`. While a client writes through kcp's front
// door without pause, etcd's leader is lost with its disk: its etcd is
// killed, its pod deleted and, before the StatefulSet starts it again,
// everything on its volume removed. Nobody runs a command: the new pod's
// join init container (etcd.joinImage) replaces the member through the
// cluster's API and syncs it, and it serves again with every key; kcp kept serving through the
// other two; the next up has nothing to change. Then a backup, and all
// three members restored from it by the runbook's commands.
func TestLostEtcdMemberRejoinsByItself(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	p := etcdPlatform(t, 3, host)

	before := etcdMembers(t, p.ns)
	if len(before) != 3 {
		t.Fatalf("after up: %d etcd members, want 3: %+v", len(before), before)
	}
	lost := etcdLeader(t, p.ns, before)
	t.Logf("etcd members %v; the leader, %s, loses its machine and disk", before, lost)

	w := startKCPWriter(t, p.kcpAdminKubeconfig("https://"+host+":443/clusters/root"), "etcd-loss", 1, 100*time.Millisecond)
	time.Sleep(5 * time.Second) // writes acknowledged before the loss, too

	began := time.Now()
	loseEtcdDisk(t, p.ns, lost)
	wiped := time.Now()
	var detail string
	waitCmd(t, lost+" Ready again", 5*time.Minute, func() (bool, string) {
		out, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "pod", lost, "-o",
			`jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		detail = strings.TrimSpace(out)
		return err == nil && detail == "True", detail
	})
	t.Logf("%s lost (etcd killed, pod deleted, data removed in %s); Ready again %s later, no command run",
		lost, wiped.Sub(began).Round(100*time.Millisecond), time.Since(wiped).Round(time.Second))
	join, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", lost, "-c", "join")
	if err != nil {
		t.Fatalf("the join container's log: %v", err)
	}
	for _, want := range []string{"etcd-join: " + lost + ": data lost; replacing member", "joined and synced"} {
		if !strings.Contains(join, want) {
			t.Errorf("the join container's log has no %q:\n%s", want, join)
		}
	}
	after := etcdMembers(t, p.ns)
	if len(after) != 3 || after[lost] == 0 || after[lost] == before[lost] {
		t.Errorf("members after the loss %v, want 3 with %s under a new ID (was %x)", after, lost, before[lost])
	}

	time.Sleep(5 * time.Second) // writes acknowledged after the rejoin, too
	acked, failed := w.stop()
	t.Logf("kcp through the front door while etcd lost its leader: %d writes acknowledged, %d failed %v", len(acked), len(failed), failed)
	// The write in flight when the leader died may fail (etcd answers it
	// "request timed out" after 7 s, during the election): a client retries
	// it. More is an outage the other two members should have prevented.
	if len(failed) > 2 {
		t.Errorf("%d writes through kcp failed while etcd had quorum:\n%s", len(failed), lines(failed))
	}
	if len(acked) < 20 {
		t.Errorf("only %d writes through kcp acknowledged: the writer did not run", len(acked))
	}
	w.allStored(t, acked)
	etcdMembersAgree(t, p.ns, lost, after)

	// The member kept its claim and volume: nothing for Pulumi to redo.
	p.must("up", "--expect-no-changes")

	// A restore of all three members from one snapshot, by the runbook.
	backupAndRestore(t, p, host, 3)
	if m := etcdMembers(t, p.ns); len(m) != 3 {
		t.Errorf("members after the restore: %v, want 3 started", m)
	}

	// etcd.replicas lowered to one member and raised back to three, each
	// by one up and nothing else.
	changeEtcdMembers(t, p, host, 1)
	changeEtcdMembers(t, p, host, 3)

	// etcd moved to another StorageClass one member at a time, by the
	// runbook's commands, while kcp takes writes.
	moveEtcdRollingByTheRunbook(t, p, host, cluster.OtherStorageClass, 3)
}

// etcdPlatform is the dev stack with n etcd members, deployed in one
// `kcp-tmc up` and destroyed at the end, its front door published at host.
func etcdPlatform(t *testing.T, n int, host string) *platform {
	t.Helper()
	p := newPlatform(t, map[string]any{"kcp-tmc:etcd": map[string]any{"replicas": n}})
	p.destroyAtCleanup()
	p.must("up")
	p.published(ingress.FrontDoorLoadBalancer, host)
	return p
}

// changeEtcdMembers sets etcd.replicas to n and runs up while a client
// writes through kcp's front door: afterwards the cluster counts exactly
// n members, all started (a shrink removed the others before their pods
// went: the membership Job's log says so), kcp holds every write it
// acknowledged and takes new ones, and the next up has nothing to change.
func changeEtcdMembers(t *testing.T, p *platform, host string, n int) {
	t.Helper()
	ctx := context.Background()
	before := etcdMembers(t, p.ns)
	runningBefore := memberRuns(t, p.ns)
	if err := p.stack.SetConfigWithOptions(ctx, "kcp-tmc:etcd.replicas", auto.ConfigValue{Value: strconv.Itoa(n)}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	w := startKCPWriter(t, p.kcpAdminKubeconfig("https://"+host+":443/clusters/root"), fmt.Sprintf("etcd-members-%d", n), 1, 200*time.Millisecond)
	began := time.Now()
	p.must("up")
	took := time.Since(began)
	ackedByUp, _ := w.counts()
	// A write in flight when the up returns may still wait on an old kcp
	// pod (a shrink to one member restarts that member): the next one
	// must be taken soon, with nobody doing anything.
	var resumed time.Duration
	for done := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if a, _ := w.counts(); a > ackedByUp {
			resumed = time.Since(done)
			break
		}
		if time.Since(done) > time.Minute {
			t.Errorf("kcp took no write in the minute after the up that set etcd.replicas to %d", n)
			break
		}
	}
	time.Sleep(5 * time.Second)
	acked, failed := w.stop()
	t.Logf("etcd.replicas %d → %d: up in %s; kcp through the front door meanwhile: %d writes acknowledged, %d failed %v; the first write after the up acknowledged %s after it",
		len(before), n, took.Round(time.Second), len(acked), len(failed), failed, resumed.Round(100*time.Millisecond))
	w.allStored(t, acked)
	list, err := ectl(p.ns, "etcd-0", "member", "list")
	if err != nil {
		t.Fatal(err)
	}
	if members := etcdMembers(t, p.ns); len(members) != n || strings.Count(strings.TrimSpace(list), "\n")+1 != n {
		t.Errorf("after etcd.replicas %d → %d: the cluster counts\n%s\nwant %d started members", len(before), n, list, n)
	}
	if strings.Contains(list, ", true") {
		t.Errorf("after etcd.replicas %d → %d a learner is left:\n%s", len(before), n, list)
	}
	// The members the count keeps ran on untouched: same pod, no restart
	// (the template does not change with the count).
	runningAfter := memberRuns(t, p.ns)
	for i := range min(len(before), n) {
		pod := fmt.Sprintf("etcd-%d", i)
		if runningAfter[pod] != runningBefore[pod] {
			t.Errorf("etcd.replicas %d → %d restarted %s: %s, then %s", len(before), n, pod, runningBefore[pod], runningAfter[pod])
		}
	}
	// Each new member joined as a learner and was promoted once synced.
	for i := len(before); i < n; i++ {
		pod := fmt.Sprintf("etcd-%d", i)
		join, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", pod, "-c", "join")
		if err != nil || !strings.Contains(join, "a learner until it has synced") || !strings.Contains(join, "promoted to a voting member") {
			t.Errorf("%s's join container (%v) should have added it as a learner and promoted it:\n%s", pod, err, join)
		}
	}
	job, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", "job/etcd-members")
	if err != nil {
		t.Fatalf("the membership Job's log: %v", err)
	}
	want := fmt.Sprintf("OK: removed %d; the cluster has %d members", max(0, len(before)-n), len(before)-max(0, len(before)-n))
	if !strings.Contains(job, want) {
		t.Errorf("the membership Job's log has no %q:\n%s", want, job)
	}
	p.must("up", "--expect-no-changes")
}

// ectl runs etcdctl in a member's etcd container against that member, with
// the member's own certificate (the runbook's ectl).
func ectl(ns, pod string, args ...string) (string, error) {
	out, stderr, err := kube.Kubectl(context.Background(), nil, append([]string{"-n", ns, "exec", pod, "-c", "etcd", "--",
		"etcdctl", "--endpoints=https://localhost:2379", "--cacert=/etc/etcd/tls/server/ca.crt",
		"--cert=/etc/etcd/tls/server/tls.crt", "--key=/etc/etcd/tls/server/tls.key"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("etcdctl %s in %s: %w: %s", strings.Join(args, " "), pod, err, stderr)
	}
	return out, nil
}

// etcdMembers is the cluster's members that have started (published their
// client URLs): name → ID, as etcd-0 lists them.
func etcdMembers(t *testing.T, ns string) map[string]uint64 {
	t.Helper()
	out, err := ectl(ns, "etcd-0", "member", "list", "-w", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Members []struct {
			ID         uint64   `json:"ID"`
			Name       string   `json:"name"`
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("member list: %v: %s", err, out)
	}
	members := map[string]uint64{}
	for _, m := range list.Members {
		if m.Name != "" && len(m.ClientURLs) > 0 {
			members[m.Name] = m.ID
		}
	}
	return members
}

// memberRuns is each etcd pod's UID and its etcd container's restart
// count: what changes when a member restarts.
func memberRuns(t *testing.T, ns string) map[string]string {
	t.Helper()
	out, _, err := kube.Kubectl(context.Background(), nil, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=etcd", "-o",
		`jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.uid}{" "}{.status.containerStatuses[0].restartCount}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, run, ok := strings.Cut(line, " "); ok {
			runs[name] = "uid/restarts " + run
		}
	}
	return runs
}

// etcdLeader is the name of the member etcd-0 knows as leader.
func etcdLeader(t *testing.T, ns string, members map[string]uint64) string {
	t.Helper()
	out, err := ectl(ns, "etcd-0", "endpoint", "status", "-w", "json")
	if err != nil {
		t.Fatal(err)
	}
	var status []struct {
		Status struct {
			Leader uint64 `json:"leader"`
		} `json:"Status"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || len(status) != 1 {
		t.Fatalf("endpoint status: %v: %s", err, out)
	}
	for name, id := range members {
		if id == status[0].Status.Leader {
			return name
		}
	}
	t.Fatalf("leader %x is none of %v", status[0].Status.Leader, members)
	return ""
}

// loseEtcdDisk does what a machine lost with its disk does to a member:
// its etcd is killed (SIGKILL, no leadership handed over) and its pod
// deleted (held by a finalizer so the StatefulSet cannot start the next one
// yet); once its containers have stopped, everything on its volume is
// removed, and the pod is let go.
func loseEtcdDisk(t *testing.T, ns, pod string) {
	t.Helper()
	ctx := context.Background()
	kubectl := func(args ...string) string {
		t.Helper()
		out, stderr, err := kube.Kubectl(ctx, nil, append([]string{"-n", ns}, args...)...)
		if err != nil {
			t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr)
		}
		return strings.TrimSpace(out)
	}
	pv, dir := claimVolume(t, ns, "data-"+pod)
	const hold = "kcp-tmc.test/hold"
	kubectl("patch", "pod", pod, "--type=merge", "-p", `{"metadata":{"finalizers":["`+hold+`"]}}`)
	release := func() {
		_, _, _ = kube.Kubectl(ctx, nil, "-n", ns, "patch", "pod", pod, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	}
	t.Cleanup(release) // never leave the finalizer behind
	uid := kubectl("get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
	pids := memberPIDs(ns, pod)
	if len(pids) != 1 {
		t.Fatalf("%d etcd processes of member %s on this node, want 1: %v", len(pids), pod, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s's etcd (pid %d): %v", pod, pids[0], err)
	}
	kubectl("delete", "pod", pod, "--wait=false")
	// The kubelet has stopped every container of the pod once it deletes
	// it with no grace left (the finalizer keeps the object); and no etcd
	// of the member runs (the kubelet may have restarted the killed one
	// before it saw the deletion).
	waitCmd(t, pod+" stopped by the kubelet", 2*time.Minute, func() (bool, string) {
		out, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}")
		left := memberPIDs(ns, pod)
		return strings.TrimSpace(out) == "0" && len(left) == 0, fmt.Sprintf("grace %q, etcd processes %v", out, left)
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatalf("%s's volume %s (%s) is empty before its loss", pod, pv, dir)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	release()
	followJoin(t, ns, pod, uid)
}

// followJoin keeps the log of every run of the join container of the pod
// that replaces the one with uid (a failed run's log goes with its
// container), and shows them when the test fails.
func followJoin(t *testing.T, ns, pod, oldUID string) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	runs := map[string]string{} // container ID → its log
	var order []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
			out, _, err := kube.Kubectl(ctx, nil, "-n", ns, "get", "pod", pod, "-o",
				`jsonpath={.metadata.uid} {.status.initContainerStatuses[0].containerID}`)
			uid, id, _ := strings.Cut(strings.TrimSpace(out), " ")
			if err != nil || uid == oldUID || id == "" {
				continue
			}
			logs, _, err := kube.Kubectl(ctx, nil, "-n", ns, "logs", pod, "-c", "join")
			if err != nil {
				continue
			}
			mu.Lock()
			if _, seen := runs[id]; !seen {
				order = append(order, id)
			}
			if len(logs) >= len(runs[id]) {
				runs[id] = logs
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		for i, id := range order {
			var script []string // the script's own lines, not etcd's
			for _, l := range strings.Split(runs[id], "\n") {
				if strings.HasPrefix(l, "etcd-join: ") {
					script = append(script, l)
				}
			}
			t.Logf("%s's join container, run %d: %s", pod, i+1, strings.Join(script, " | "))
			if t.Failed() {
				t.Logf("its log (%s):\n%s", id, cluster.Tail(runs[id], 6000))
			}
		}
	})
}

// memberPIDs are the etcd processes of member pod in namespace ns on this
// node: etcd itself, or the join container's syncing etcd.
func memberPIDs(ns, pod string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) == "etcd" && slices.Contains(args, "--name="+pod) &&
			slices.Contains(args, "--initial-cluster-token=kcp-tmc-"+ns) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// kcpWriter creates ConfigMaps in a namespace of kcp's root workspace
// through the front door: each of its writers one after the other, with a
// pause between two, until stopped.
type kcpWriter struct {
	client *kubernetes.Clientset
	ns     string
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	acked  []string
	failed []writeFailure
}

// writeFailure is a write a client saw fail.
type writeFailure struct {
	name string
	at   time.Time
	took time.Duration
	err  error
}

func (f writeFailure) String() string {
	return fmt.Sprintf("%s at %s (%s): %v", f.name, f.at.Format("15:04:05.000"), f.took.Round(time.Millisecond), f.err)
}

func startKCPWriter(t *testing.T, kubeconfig, ns string, writers int, pause time.Duration) *kcpWriter {
	t.Helper()
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 200
	w := &kcpWriter{client: kubernetes.NewForConfigOrDie(cfg), ns: ns, done: make(chan struct{})}
	ctx := context.Background()
	if _, err := w.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s in kcp's root workspace: %v", w.ns, err)
	}
	for k := range writers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-w.done:
					return
				case <-time.After(pause):
				}
				name := fmt.Sprintf("w%d-%05d", k, i)
				rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				t0 := time.Now()
				_, err := w.client.CoreV1().ConfigMaps(w.ns).Create(rctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"at": t0.UTC().Format(time.RFC3339Nano)}}, metav1.CreateOptions{})
				cancel()
				w.mu.Lock()
				if err != nil {
					w.failed = append(w.failed, writeFailure{name: name, at: t0, took: time.Since(t0), err: err})
				} else {
					w.acked = append(w.acked, name)
				}
				w.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { w.stop() })
	return w
}

// counts is how many writes were acknowledged and how many failed so far.
func (w *kcpWriter) counts() (acked, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), len(w.failed)
}

// failedSince is the failures after the first n.
func (w *kcpWriter) failedSince(n int) []writeFailure {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.failed[n:])
}

// stop ends the writes; it returns the names acknowledged and the failures.
func (w *kcpWriter) stop() (acked []string, failed []writeFailure) {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
	return w.acked, w.failed
}

// allStored: every acknowledged ConfigMap is in kcp.
func (w *kcpWriter) allStored(t *testing.T, acked []string) {
	t.Helper()
	list, err := w.client.CoreV1().ConfigMaps(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	var missing []string
	for _, name := range acked {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged writes are not in kcp: %v", len(missing), missing)
	}
}

// etcdMembersAgree: at one revision, read by each member from its own
// data (serializable), every member holds as many keys as the others —
// the member that lost its disk has every key again.
func etcdMembersAgree(t *testing.T, ns, lost string, members map[string]uint64) {
	t.Helper()
	head := func(pod string, args ...string) (rev, count int64, err error) {
		// --count-only prints only as fields: `"Revision" : 123` lines.
		out, err := ectl(ns, pod, append([]string{"get", "", "--prefix", "--count-only", "-w", "fields"}, args...)...)
		if err != nil {
			return 0, 0, err
		}
		found := 0
		for _, line := range strings.Split(out, "\n") {
			k, v, ok := strings.Cut(line, " : ")
			var dst *int64
			switch strings.Trim(strings.TrimSpace(k), `"`) {
			case "Revision":
				dst = &rev
			case "Count":
				dst = &count
			}
			if ok && dst != nil {
				if *dst, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
					return 0, 0, fmt.Errorf("%s: %w", line, err)
				}
				found++
			}
		}
		if found != 2 {
			return 0, 0, fmt.Errorf("no revision and count in %q", out)
		}
		return rev, count, nil
	}
	rev, _, err := head(lost) // linearizable: the cluster's revision now
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for name := range members {
		waitCmd(t, name+" at revision "+fmt.Sprint(rev), time.Minute, func() (bool, string) {
			_, n, err := head(name, "--consistency=s", fmt.Sprintf("--rev=%d", rev))
			if err != nil {
				return false, err.Error()
			}
			counts[name] = n
			return true, ""
		})
	}
	for name, n := range counts {
		if n != counts[lost] || n == 0 {
			t.Errorf("keys at revision %d read from each member's own data: %v (%s differs)", rev, counts, name)
			return
		}
	}
	t.Logf("keys at revision %d read from each member's own data: %v", rev, counts)
}
