package clustere2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	kcpc "github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TestDisruptionsUnderLoad: the stack's highly available shape — three kcp
// servers, two front-proxies, three etcd members — deployed in one `up`,
// while clients write through kcp's front door without pause. Then what
// every production platform goes through without anyone deciding it: kcp's
// servers replaced one by one (an upgrade, a changed flag, a drained node),
// the front-proxy's weekly restart by its own CronJob, etcd's members
// replaced one by one, and each kcp server killed in turn. The writes that
// failed in each are what clients see, logged against the error-rate
// target (< 0.1 %); none may be refused, and nothing acknowledged lost.
func TestDisruptionsUnderLoad(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	p := newPlatform(t, map[string]any{
		// Requests small enough for the node's two cores with a surge pod.
		"kcp-tmc:kcp": map[string]any{"replicas": 3, "frontProxyReplicas": 2,
			"resources": map[string]any{"requests": map[string]any{"cpu": "100m"}}},
		"kcp-tmc:etcd": map[string]any{"replicas": 3},
	})
	p.destroyAtCleanup()
	p.must("up")
	p.published(ingress.FrontDoorLoadBalancer, host)

	const writers = 4
	w := startKCPWriter(t, p.kcpAdminKubeconfig("https://"+host+":443/clusters/root"), "disruptions", writers, 20*time.Millisecond)
	time.Sleep(5 * time.Second)
	if a, f := w.counts(); a == 0 || f > 0 {
		t.Fatalf("before any disruption: %d writes acknowledged, %d failed %v", a, f, w.failedSince(0))
	}

	rollout := func(kind, name string) func() {
		return func() {
			if _, stderr, err := kube.Kubectl(ctx, nil, "-n", p.ns, "rollout", "restart", kind+"/"+name); err != nil {
				t.Fatalf("rollout restart %s/%s: %v: %s", kind, name, err, stderr)
			}
			if err := kube.WaitRollout(ctx, p.ns, kind+"/"+name, 10*time.Minute); err != nil {
				t.Fatalf("%s/%s rolled: %v", kind, name, err)
			}
		}
	}
	// A pod replaced on purpose drains first (components/kcp drainSeconds):
	// its Service stops sending it connections before it stops listening,
	// so no client is refused (measured 2026-12-05: the front-proxy's
	// restart 5 refused before the drain, none since).
	//
	// kcp v0.32.3 itself fails, from its SIGTERM on, every request it still
	// takes (it roots the per-workspace request contexts in the signal
	// context: docs/design/upstream-kcp-shutdown.md), and each front-proxy
	// is pinned to one kcp pod over one HTTP/2 connection until that pod
	// closes it ≈0.1 s after its SIGTERM. How many writes fail in that
	// window grows with the clients' rate (measured: 3, 10, 0, 3, 30 and 7),
	// so a replaced kcp is judged by the window: at most one burst of
	// failures per server, each within burstMax.
	const burstMax = time.Second
	// etcd hands its leadership over when the leader stops; a write caught
	// in it times out after 7 s (measured: 2, 1, 4, 0, 0, 1): at most one per
	// client and member replaced.
	const members = 3
	for _, d := range []struct {
		what    string
		disrupt func()
		// stopping: the component whose replaced pods must have stopped
		// before the phase's writes are counted (rollout status returns
		// once the last one is told to stop, 10 s before it does).
		stopping string
		allowed  int // failed writes clients may see, unless bursts is set
		bursts   int // if set: at most this many bursts of failed writes, each within burstMax
	}{
		{"kcp's servers replaced one by one (an upgrade, a changed flag, a drained node)", rollout("deployment", kcpc.ServerName), kcpc.ServerName, 0, 3},
		{"the front-proxy's weekly restart by its CronJob", func() { runCronJob(t, p.ns, kcpc.FrontProxyRestartName) }, kcpc.FrontProxyName, writers, 0},
		// etcd's StatefulSet is OnDelete: an up that changes the members'
		// template has its rollout Job restart them, one at a time.
		{"etcd's members replaced one by one (an up that changes their template)", func() { etcdTemplateUp(t, p, "110m") }, "etcd", writers * members, 0},
		// Killed, a server answers nothing more: what was in flight on it
		// fails, and what the front-proxy sent it before it saw its
		// connection gone (measured: 11, 15, 12, 8, 9, 10 for three kills):
		// at most two writes per client and kill.
		{"each kcp server killed in turn (SIGKILL)", func() { killEach(t, p.ns, kcpc.ServerName) }, kcpc.ServerName, 2 * writers * 3, 0},
	} {
		a0, f0 := w.counts()
		began := time.Now()
		d.disrupt()
		waitStopped(t, p.ns, d.stopping)
		time.Sleep(5 * time.Second) // what the last replaced pod's clients do next
		a1, f1 := w.counts()
		failed := w.failedSince(f0)
		total := a1 - a0 + f1 - f0
		spans := bursts(failed, burstMax)
		t.Logf("%s: %s; %d writes, %d failed (%.2f %%) in %d bursts %v", d.what, time.Since(began).Round(time.Second), total, len(failed),
			100*float64(len(failed))/float64(max(total, 1)), len(spans), spans)
		if d.bursts == 0 && len(failed) > d.allowed {
			t.Errorf("%s: %d writes failed (at most %d allowed):\n%s", d.what, len(failed), d.allowed, lines(failed))
		}
		if d.bursts > 0 && (len(spans) > d.bursts || slices.Max(append(spans, 0)) > burstMax) {
			t.Errorf("%s: writes failed in %d bursts %v (at most %d, each within %s):\n%s", d.what, len(spans), spans, d.bursts, burstMax, lines(failed))
		}
		for _, f := range failed {
			if strings.Contains(f.err.Error(), "connection refused") {
				t.Errorf("%s: a client was sent to a pod that had stopped listening (no drain): %s", d.what, f)
				break
			}
		}
		if a1-a0 < 50 {
			t.Errorf("%s: only %d writes acknowledged: the clients did not get through", d.what, a1-a0)
		}
	}
	acked, failed := w.stop()
	t.Logf("in all: %d writes acknowledged, %d failed", len(acked), len(failed))
	w.allStored(t, acked)
	p.must("up", "--expect-no-changes")
}

// killEach kills the process of each pod of component in turn (SIGKILL: no
// shutdown, as a node's OOM killer or a crash ends it) and waits until the
// kubelet has it Ready again before the next.
func killEach(t *testing.T, ns, component string) {
	t.Helper()
	ctx := context.Background()
	selector := labelSelector(workload.Labels(component))
	out, stderr, err := kube.Kubectl(ctx, nil, "-n", ns, "get", "pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		t.Fatalf("pods of %s: %v: %s", component, err, stderr)
	}
	for _, pod := range strings.Fields(out) {
		restarts := func() string {
			out, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", "pod", pod, "-o",
				`jsonpath={.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type=="Ready")].status}`)
			return strings.TrimSpace(out)
		}
		before, _, _ := strings.Cut(restarts(), " ")
		pids := podPIDs(pod)
		if len(pids) != 1 {
			t.Fatalf("%d processes of pod %s on this node, want 1: %v", len(pids), pod, pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatalf("killing %s (pid %d): %v", pod, pids[0], err)
		}
		killed := time.Now()
		waitCmd(t, pod+" restarted and Ready", 5*time.Minute, func() (bool, string) {
			now := restarts()
			count, ready, _ := strings.Cut(now, " ")
			return count != before && ready == "True", now
		})
		t.Logf("%s killed: Ready again %s later", pod, time.Since(killed).Round(time.Second))
	}
}

// bursts groups failures, in the order they began, into runs in which each
// began within gap of the end of the one before; it returns each run's
// span from its first start to its last end.
func bursts(failed []writeFailure, gap time.Duration) []time.Duration {
	failed = slices.Clone(failed)
	slices.SortFunc(failed, func(a, b writeFailure) int { return a.at.Compare(b.at) })
	var spans []time.Duration
	var start, end time.Time
	for i, f := range failed {
		if i > 0 && f.at.Sub(end) > gap {
			spans = append(spans, end.Sub(start).Round(time.Millisecond))
			start = time.Time{}
		}
		if start.IsZero() {
			start, end = f.at, f.at
		}
		if e := f.at.Add(f.took); e.After(end) {
			end = e
		}
	}
	if len(failed) > 0 {
		spans = append(spans, end.Sub(start).Round(time.Millisecond))
	}
	return spans
}

// lines is one failure per line.
func lines(failed []writeFailure) string {
	s := make([]string, len(failed))
	for i, f := range failed {
		s[i] = f.String()
	}
	return strings.Join(s, "\n")
}

// waitStopped waits until no pod of component is stopping (deleted, still
// draining or shutting down).
func waitStopped(t *testing.T, ns, component string) {
	t.Helper()
	waitCmd(t, "the replaced pods of "+component+" stopped", 3*time.Minute, func() (bool, string) {
		out, stderr, err := kube.Kubectl(context.Background(), nil, "-n", ns, "get", "pods", "-l", labelSelector(workload.Labels(component)),
			"-o", `jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name} {end}`)
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, stderr)
		}
		return strings.TrimSpace(out) == "", "stopping: " + out
	})
}

// podPIDs are the processes on this node whose environment names pod as
// their host (Kubernetes sets HOSTNAME to the pod's name), pause excluded.
func podPIDs(pod string) []int {
	var pids []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, e := range envs {
		raw, err := os.ReadFile(e)
		if err != nil || !strings.Contains("\x00"+string(raw)+"\x00", "\x00HOSTNAME="+pod+"\x00") {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(e), "cmdline"))
		argv0, _, _ := strings.Cut(string(cmd), "\x00")
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(e)), "%d", &pid); err == nil && filepath.Base(argv0) != "pause" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// labelSelector spells labels as kubectl's -l takes them.
func labelSelector(labels map[string]string) string {
	var s []string
	for k, v := range labels {
		s = append(s, k+"="+v)
	}
	return strings.Join(s, ",")
}

// TestBursts: how TestDisruptionsUnderLoad groups failed writes (no
// cluster needed).
func TestBursts(t *testing.T) {
	at := func(ms int) time.Time {
		return time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	f := func(ms, took int) writeFailure {
		return writeFailure{at: at(ms), took: time.Duration(took) * time.Millisecond}
	}
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		name   string
		failed []writeFailure
		want   []time.Duration
	}{
		{"none", nil, nil},
		{"one", []writeFailure{f(0, 70)}, ms(70)},
		{"one burst, out of order", []writeFailure{f(100, 50), f(0, 70), f(400, 20)}, ms(420)},
		{"a slow one ends a burst later", []writeFailure{f(0, 7000), f(6500, 10)}, ms(7000)},
		{"two replaced servers", []writeFailure{f(0, 70), f(130, 20), f(26000, 90), f(26100, 400)}, ms(150, 500)},
		{"gap of exactly a second", []writeFailure{f(0, 0), f(1000, 0)}, ms(1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bursts(tc.failed, time.Second); !slices.Equal(got, tc.want) {
				t.Errorf("bursts = %v, want %v", got, tc.want)
			}
		})
	}
}

// etcdTemplateUp changes the etcd members' pod template (their CPU
// request) by one up: the rollout Job restarts them one at a time, each
// only with every member Ready.
func etcdTemplateUp(t *testing.T, p *platform, cpu string) {
	t.Helper()
	if err := p.stack.SetConfigWithOptions(context.Background(), "kcp-tmc:etcd.resources.requests.cpu", auto.ConfigValue{Value: cpu}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	p.must("up")
}
