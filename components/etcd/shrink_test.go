package etcd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// runMembersJob runs scripts/etcd-members.sh as the membership Job of a
// cluster of `replicas` does, with its environment mapped to this machine
// (the members it cannot have do not resolve, as on a cluster).
func runMembersJob(t *testing.T, via *localMember, replicas int) (string, error) {
	t.Helper()
	out, err := membersJobCmd(membersArgs(replicas), toolchain.Bin(), via.local.Replace).CombinedOutput()
	return string(out), err
}

func membersArgs(replicas int) Args {
	return Args{Namespace: "kcp", Replicas: replicas, StorageSize: "10Gi", ServerSecret: "s", PeerSecret: "p"}.WithDefaults()
}

// membersJobCmd is the membership Job's script with its environment, the
// tools in bin found first and each value passed through local.
func membersJobCmd(a Args, bin string, local func(string) string) *exec.Cmd {
	cmd := exec.Command("sh", "-c", membersScript, "etcd-members")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	for _, e := range membersEnv(a) {
		cmd.Env = append(cmd.Env, e.name+"="+local(e.value))
	}
	return cmd
}

// TestMembersJobWaitsOutAnElection: after removing the leader the cluster
// elects a new one and a member list times out meanwhile (seen on the node,
// where the Job then logged "the cluster has 0 members"). The Job asks
// again and counts the members that answer; with no member answering at
// all it removes nothing. etcdctl is a stand-in here, so the timing of the
// election is the test's to choose.
func TestMembersJobWaitsOutAnElection(t *testing.T) {
	a := membersArgs(1)
	peers := a.Cluster().PeerURLs(2)
	for _, tc := range []struct {
		name string
		// lists failing before the first answer, and after the removal
		failBefore, failAfter int
		// the removal is committed but its answer is an error
		removeAnswerLost bool
		want             string
		removes          bool
	}{
		{name: "answers at once", want: "OK: removed 1; the cluster has 1 members", removes: true},
		{name: "an election after the removal", failAfter: 2, want: "OK: removed 1; the cluster has 1 members", removes: true},
		{name: "one unanswered list before", failBefore: 1, want: "OK: removed 1; the cluster has 1 members", removes: true},
		{name: "no member answers", failBefore: 3, want: "no member answers: nothing to change"},
		// Seen in CI: the removed member answered, stopped ("server
		// stopped"), and every later try got "member not found".
		{name: "the removal's answer lost", removeAnswerLost: true, want: "OK: removed 1; the cluster has 1 members", removes: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			state := t.TempDir()
			// Lists fail while a countdown file for the phase holds a
			// number above 0; a removal switches to the phase after it.
			for phase, n := range map[string]int{"before": tc.failBefore, "after": tc.failAfter} {
				if err := os.WriteFile(filepath.Join(state, phase), []byte(strconv.Itoa(n)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.removeAnswerLost {
				if err := os.WriteFile(filepath.Join(state, "answer-lost"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			script := `#!/bin/sh
s=` + state + `
phase=before; [ -e $s/removed ] && phase=after
case "$*" in
*"member remove"*)
	if [ -e $s/removed ]; then echo "Error: etcdserver: member not found" >&2; exit 1; fi
	echo "$*" >> $s/removed
	if [ -e $s/answer-lost ]; then echo "Error: etcdserver: server stopped" >&2; exit 1; fi
	exit 0 ;;
*"member list"*)
	n=$(cat $s/$phase)
	if [ "$n" -gt 0 ]; then echo $((n - 1)) > $s/$phase; echo "context deadline exceeded" >&2; exit 1; fi
	echo "8e9e05c52164694d, started, etcd-0, ` + peers[0] + `, https://etcd-0:2379, false"
	[ $phase = after ] || echo "91bc3c398fb3c146, started, etcd-1, ` + peers[1] + `, https://etcd-1:2379, false"
	exit 0 ;;
esac
echo "unexpected: etcdctl $*" >&2; exit 2
`
			if err := os.WriteFile(filepath.Join(bin, "etcdctl"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := membersJobCmd(a, bin, func(v string) string { return v }).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("the Job: %v, want %q in:\n%s", err, tc.want, out)
			}
			removed, _ := os.ReadFile(filepath.Join(state, "removed"))
			if got := strings.Contains(string(removed), "member remove 91bc3c398fb3c146"); got != tc.removes || strings.Count(string(removed), "\n") > 1 {
				t.Errorf("removals %q, want etcd-1's removed: %v", removed, tc.removes)
			}
		})
	}
}

// TestShrinkRemovesMembersFirst: etcd.replicas lowered from 3 to 1 on a
// running cluster, as an up does it: the membership Job first, then the
// StatefulSet deletes the pods above the new count. Under a client writing
// without pause, no write fails outside a leader election (the quorum is
// never lost) and the member that stays serves alone. Raised back to 3,
// the removed members' pods come back on their old volumes: their join
// starts them anew and they sync every acknowledged key. With no cluster
// (a first install), the Job succeeds at once.
func TestShrinkRemovesMembersFirst(t *testing.T) {
	members, tlsDir := startThree(t)
	stay := members[0]

	w := startWriter(tlsDir, "/registry/shrink/", func(int) *localMember { return stay })
	time.Sleep(2 * time.Second)

	out, err := runMembersJob(t, stay, 1)
	if err != nil || strings.Count(out, "removing member") != 2 || !strings.Contains(out, "OK: removed 2; the cluster has 1 members") {
		t.Fatalf("the membership Job for 1 member: %v\n%s", err, out)
	}
	// The StatefulSet, now for one member, deletes the other pods.
	for _, m := range members[1:] {
		m.kill()
	}
	time.Sleep(3 * time.Second)
	acked, failed := w.halt()
	// Removing the leader makes the member that stays elect itself: a
	// write in flight may time out then (one client retry).
	if len(failed) > 2 || len(acked) == 0 {
		t.Errorf("%d of %d writes failed while the cluster shrank (the quorum must hold): %v", len(failed), len(failed)+len(acked), failed)
	}
	if list := stay.etcdctl(t, tlsDir, "member", "list"); strings.Count(strings.TrimSpace(list), "\n") != 0 || !strings.Contains(list, ", started, "+stay.name+", ") {
		t.Fatalf("member list after the shrink:\n%s", list)
	}
	stay.etcdctl(t, tlsDir, "put", "/registry/shrink/alone", "v")
	// The Job of an unchanged count changes nothing.
	if out, err := runMembersJob(t, stay, 1); err != nil || !strings.Contains(out, "OK: removed 0; the cluster has 1 members") {
		t.Errorf("the membership Job again: %v\n%s", err, out)
	}

	// A pod of the old size recreated after the Job and before the
	// StatefulSet shrank (evicted, its node lost): the join ConfigMap
	// already says 1, so its join adds nothing back.
	count := filepath.Join(t.TempDir(), joinReplicasKey)
	setCount := func(n int) {
		if err := os.WriteFile(count, []byte(strconv.Itoa(n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setCount(1)
	for _, m := range members[1:] {
		m.env = append(m.env, "REPLICAS_FILE="+count)
	}
	if out, err := members[2].joinCmd().CombinedOutput(); err == nil || !strings.Contains(string(out), "above etcd.replicas (1): not joining") {
		t.Errorf("the join of a pod above the new count: %v\n%s", err, out)
	}
	if list := stay.etcdctl(t, tlsDir, "member", "list"); strings.Count(strings.TrimSpace(list), "\n") != 0 {
		t.Fatalf("a removed member came back:\n%s", list)
	}

	// Raised back to 3: the Job has nobody to remove; the pods return on
	// their old volumes, which hold removed members' data.
	setCount(3)
	if out, err := runMembersJob(t, stay, 3); err != nil || !strings.Contains(out, "OK: removed 0") {
		t.Fatalf("the membership Job for 3 members: %v\n%s", err, out)
	}
	for i := 1; i < len(members); i++ {
		rejoins(t, members[:i+1], members[i], tlsDir, "has the data of a member the cluster removed", "added as a new member", "joined and synced")
	}
	missingKeys(t, members[2], tlsDir, "/registry/shrink/", append(acked, "/registry/shrink/alone"))
	t.Logf("shrunk 3 → 1 under %d writes (%d failed), raised back to 3 on the old volumes", len(acked)+len(failed), len(failed))

	// A first install: no member exists.
	for _, m := range members {
		m.kill()
	}
	began := time.Now()
	if out, err := runMembersJob(t, stay, 3); err != nil || !strings.Contains(out, "no member answers") {
		t.Errorf("the membership Job without a cluster: %v\n%s", err, out)
	}
	t.Logf("the Job without a cluster took %s", time.Since(began).Round(100*time.Millisecond))
}
