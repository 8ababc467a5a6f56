package clustere2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestEtcdRolloutWithAMemberDown: the dev stack with three etcd members,
// deployed in one `kcp-tmc up`. etcd-0 is cut off from the network (its
// zone lost: the node drops every packet to and from its pod; the kubelet
// still probes it, so it runs on, not Ready), then an up changes the
// members' pod template (etcd.resources) while kcp takes writes through
// its front door. The StatefulSet's own rolling update would restart
// etcd-2 and etcd-1 while etcd-0 is down: the quorum lost twice. The
// rollout Job restarts etcd-0 first and, with it still down, fails the up
// naming it, etcd-1 and etcd-2 untouched and kcp writing. Once the network
// is back, the next up rolls etcd-2 and etcd-1, and the one after has
// nothing to change.
func TestEtcdRolloutWithAMemberDown(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	p := etcdPlatform(t, 3, host)
	if m := etcdMembers(t, p.ns); len(m) != 3 {
		t.Fatalf("after up: %d etcd members, want 3: %v", len(m), m)
	}

	w := startKCPWriter(t, p.kcpAdminKubeconfig("https://"+host+":443/clusters/root"), "etcd-rollout", 1, 200*time.Millisecond)
	time.Sleep(3 * time.Second)
	heal := partition(t, p.ns, "etcd-0")
	waitCmd(t, "etcd-0 not Ready behind its partition", 2*time.Minute, func() (bool, string) {
		r := podReady(p.ns, "etcd-0")
		return r == "False", r
	})
	before := memberRuns(t, p.ns)

	if err := p.stack.SetConfigWithOptions(ctx, "kcp-tmc:etcd.resources.requests.cpu", auto.ConfigValue{Value: "110m"}, &auto.ConfigOptions{Path: true}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out, err := p.cli("up")
	took := time.Since(began)
	job, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", "job/etcd-rollout")
	t.Logf("the up with etcd-0 down returned after %s (err %v); the rollout Job said:\n%s", took.Round(time.Second), err, job)
	if err == nil {
		t.Errorf("the up with etcd-0 down succeeded: the rollout should have stopped at it\n%s", cluster.Tail(out, 6000))
	} else if !strings.Contains(out, "etcd-rollout") {
		t.Errorf("the failed up does not name the rollout Job:\n%s", cluster.Tail(out, 6000))
	}
	for _, want := range []string{"etcd-0 is not Ready and on the previous template: restarting it first", "not Ready for 300 s: etcd-0",
		"not restarting etcd-2 etcd-1"} {
		if !strings.Contains(job, want) {
			t.Errorf("the rollout Job's log has no %q", want)
		}
	}
	degraded := memberRuns(t, p.ns)
	for _, m := range []string{"etcd-1", "etcd-2"} {
		if degraded[m] != before[m] {
			t.Errorf("%s restarted while etcd-0 was down: %s, then %s", m, before[m], degraded[m])
		}
	}
	if degraded["etcd-0"] == before["etcd-0"] {
		t.Errorf("etcd-0 was not restarted onto the new template: %s", degraded["etcd-0"])
	}
	acked, failed := w.counts()
	t.Logf("kcp through the front door while etcd-0 was down and the up ran: %d writes acknowledged, %d failed", acked, failed)

	heal()
	waitCmd(t, "etcd-0 Ready once its network is back", 3*time.Minute, func() (bool, string) {
		r := podReady(p.ns, "etcd-0")
		return r == "True", r
	})
	began = time.Now()
	p.must("up")
	t.Logf("the next up, every member Ready: %s", time.Since(began).Round(time.Second))
	after := memberRuns(t, p.ns)
	for _, m := range []string{"etcd-1", "etcd-2"} {
		if after[m] == before[m] {
			t.Errorf("%s is still on the previous template's pod after the up: %s", m, after[m])
		}
	}
	job, _, _ = kube.Kubectl(ctx, nil, "-n", p.ns, "logs", "job/etcd-rollout")
	for _, want := range []string{"every member Ready: restarting etcd-2", "every member Ready: restarting etcd-1", "OK: all 3 member(s) Ready"} {
		if !strings.Contains(job, want) {
			t.Errorf("the rollout Job's log has no %q:\n%s", want, job)
		}
	}
	time.Sleep(3 * time.Second)
	ackedAll, failedAll := w.stop()
	t.Logf("kcp through the front door over the whole test: %d writes acknowledged, %d failed %v", len(ackedAll), len(failedAll), failedAll)
	// A restart of the leader costs the write in flight during the
	// election; more is an outage the rollout should have prevented.
	if len(failedAll) > 3 {
		t.Errorf("%d writes through kcp failed:\n%s", len(failedAll), lines(failedAll))
	}
	w.allStored(t, ackedAll)
	if m := etcdMembers(t, p.ns); len(m) != 3 {
		t.Errorf("members after the rollout: %v, want 3 started", m)
	}
	p.must("up", "--expect-no-changes")
}

// podReady is the pod's Ready condition ("" when it has none or is gone).
func podReady(ns, pod string) string {
	out, _, _ := kube.Kubectl(context.Background(), nil, "-n", ns, "get", "pod", pod, "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	return strings.TrimSpace(out)
}

// partition drops every packet the node forwards to or from pod (its
// current address, followed when the pod is replaced) until the returned
// heal is called: the member runs on, probed by the kubelet, cut off
// from its peers and its clients as by a lost zone.
func partition(t *testing.T, ns, pod string) (heal func()) {
	t.Helper()
	const table = "kcptmc_partition"
	nft := func(args ...string) error {
		out, err := exec.Command("nft", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"add", "table", "inet", table},
		{"add", "chain", "inet", table, "forward", "{ type filter hook forward priority -300; policy accept; }"},
	} {
		if err := nft(args...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	heal = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := nft("delete", "table", "inet", table); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(heal)
	go func() {
		defer close(done)
		cut := ""
		for ctx.Err() == nil {
			out, _, err := kube.Kubectl(ctx, nil, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
			if ip := strings.TrimSpace(out); err == nil && ip != "" && ip != cut {
				if err := nft("flush", "chain", "inet", table, "forward"); err == nil {
					_ = nft("add", "rule", "inet", table, "forward", "ip", "saddr", ip, "drop")
					_ = nft("add", "rule", "inet", table, "forward", "ip", "daddr", ip, "drop")
					t.Logf("partition: %s at %s cut off", pod, ip)
					cut = ip
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return heal
}
