package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/etcdlocal"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// localMember is one member of a three-member cluster run as processes
// with exactly the StatefulSet's arguments (Flags), host names, ports and
// mount paths mapped to this machine.
type localMember struct {
	name, dir, client string
	args              []string
	env               []string
	pathFirst         string            // "dir:" searched before the toolchain by the join script
	local             *strings.Replacer // the pod's names, ports and paths → this machine's
	cmd               *exec.Cmd
	log               *bytes.Buffer
	done              chan struct{}
}

func localMembers(t *testing.T, a Args, tlsDir string) []*localMember {
	t.Helper()
	c := a.Cluster()
	names := c.MemberNames(a.Replicas)
	ports := loopback.MustFreePorts(t, 3*len(names))
	client := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[3*i]) }
	peer := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]) }
	var out []*localMember
	for i, name := range names {
		dir := filepath.Join(t.TempDir(), name)
		pairs := []string{
			"$(POD_NAME)", name,
			dataDir, dir,
			serverTLSDir, tlsDir, peerTLSDir, tlsDir,
			fmt.Sprintf("0.0.0.0:%d", ClientPort), client(i), fmt.Sprintf("127.0.0.1:%d", ClientPort), client(i),
			fmt.Sprintf("0.0.0.0:%d", PeerPort), peer(i),
			fmt.Sprintf("0.0.0.0:%d", MetricsPort), fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
		}
		for j, other := range names {
			pairs = append(pairs, fmt.Sprintf("%s:%d", c.MemberHost(other), ClientPort), client(j),
				fmt.Sprintf("%s:%d", c.MemberHost(other), PeerPort), peer(j))
		}
		r := strings.NewReplacer(pairs...)
		m := &localMember{name: name, dir: dir, client: "https://" + client(i), local: r}
		m.args = m.podArgs(a)
		// The init container's environment (podTemplate's), mapped likewise.
		for _, e := range joinEnv() {
			v := e.value
			if e.joinKey != "" {
				v = joinData(a)[e.joinKey]
			}
			m.env = append(m.env, e.name+"="+r.Replace(v))
		}
		m.env = append(m.env, "POD_NAME="+name)
		out = append(out, m)
	}
	return out
}

// podArgs are etcd's arguments in m's pod for the members of a, as the
// kubelet expands them ($(POD_NAME), $(INITIAL_CLUSTER) from the join
// ConfigMap), mapped to this machine.
func (m *localMember) podArgs(a Args) []string {
	var out []string
	for _, f := range Flags(a) {
		f = strings.ReplaceAll(f, "$(POD_NAME)", m.name)
		f = strings.ReplaceAll(f, "$("+initialClusterEnv+")", InitialCluster(a))
		out = append(out, m.local.Replace(f))
	}
	return out
}

func (m *localMember) start(t *testing.T) {
	t.Helper()
	m.log, m.done = &bytes.Buffer{}, make(chan struct{})
	m.cmd = exec.Command(toolchain.Path("etcd"), m.args...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.done)
	t.Cleanup(m.kill)
}

// loseData kills m and removes its data dir: a member lost with its volume.
func (m *localMember) loseData(t *testing.T) {
	t.Helper()
	m.kill()
	if err := os.RemoveAll(m.dir); err != nil {
		t.Fatal(err)
	}
}

// allStarted: etcd-0 lists every member started, lost among them.
func allStarted(t *testing.T, members []*localMember, lost *localMember, tlsDir string) {
	t.Helper()
	list := members[0].etcdctl(t, tlsDir, "member", "list")
	if strings.Count(list, ", started, ") != len(members) || !strings.Contains(list, ", started, "+lost.name+", ") {
		t.Errorf("member list after %s rejoined:\n%s", lost.name, list)
	}
}

func (m *localMember) kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

// join runs the init container's script as the pod does: sh, the etcd
// tools on PATH, the container's environment, etcd's arguments.
func (m *localMember) join(t *testing.T) string {
	t.Helper()
	out, err := m.joinCmd().CombinedOutput()
	if err != nil {
		t.Fatalf("%s: the join script failed: %v\n%s", m.name, err, out)
	}
	return string(out)
}

func (m *localMember) joinCmd() *exec.Cmd {
	cmd := exec.Command("sh", append([]string{filepath.Join("scripts", "etcd-join.sh")}, m.args...)...)
	cmd.Env = append(os.Environ(), m.env...)
	cmd.Env = append(cmd.Env, "PATH="+m.pathFirst+toolchain.Bin()+":"+os.Getenv("PATH"))
	return cmd
}

// joinKilledAfter runs the join script as join does and SIGKILLs it, with
// the etcd it started, as soon as its output has line: a pod deleted or a
// node lost in the middle of the join.
func (m *localMember) joinKilledAfter(t *testing.T, line string) string {
	t.Helper()
	return m.joinKilledWhen(t, func(out string) bool { return strings.Contains(out, line) })
}

// joinKilledWhen runs the join script and SIGKILLs it, with the etcd it
// started, once done(its output so far) holds (within a minute).
func (m *localMember) joinKilledWhen(t *testing.T, done func(out string) bool) string {
	t.Helper()
	cmd := m.joinCmd()
	var mu sync.Mutex
	var out bytes.Buffer
	cmd.Stdout = lockedWriter{&mu, &out}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	reached := false
	for deadline := time.Now().Add(time.Minute); !reached && time.Now().Before(deadline); {
		if reached = done(output()); !reached {
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	if !reached {
		t.Fatalf("%s: the join never reached the test's point:\n%s", m.name, output())
	}
	return output()
}

// writer puts keys without pause, each through the member target(i)
// names, and records which were acknowledged and which failed, when.
type writer struct {
	mu     sync.Mutex
	acked  []string
	failed []writeFailure
	stop   chan struct{}
	wg     sync.WaitGroup
}

type writeFailure struct {
	at  time.Time
	why string
}

func startWriter(tlsDir, prefix string, target func(i int) *localMember) *writer {
	w := &writer{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			key := fmt.Sprintf("%s%06d", prefix, i)
			out, err := etcdctlCmd(context.Background(), tlsDir, target(i).client, "--command-timeout=5s", "put", key, "v").CombinedOutput()
			w.mu.Lock()
			if err == nil && strings.TrimSpace(string(out)) == "OK" {
				w.acked = append(w.acked, key)
			} else {
				w.failed = append(w.failed, writeFailure{time.Now(), fmt.Sprintf("%s: %v %s", key, err, out)})
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// halt stops the writer and returns what it wrote.
func (w *writer) halt() ([]string, []writeFailure) {
	close(w.stop)
	w.wg.Wait()
	return w.acked, w.failed
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// etcdctlCmd is etcdctl against one member with the scratch certificates.
func etcdctlCmd(ctx context.Context, tlsDir, endpoint string, args ...string) *exec.Cmd {
	base := []string{"--endpoints=" + endpoint, "--cacert=" + filepath.Join(tlsDir, "ca.crt"),
		"--cert=" + filepath.Join(tlsDir, "tls.crt"), "--key=" + filepath.Join(tlsDir, "tls.key")}
	return exec.CommandContext(ctx, toolchain.Path("etcdctl"), append(base, args...)...)
}

func (m *localMember) etcdctl(t *testing.T, tlsDir string, args ...string) string {
	t.Helper()
	out, err := etcdctlCmd(context.Background(), tlsDir, m.client, append([]string{"--command-timeout=10s"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl %v on %s: %v\n%s", args, m.name, err, out)
	}
	return string(out)
}

// TestLostMemberRejoinsByItself: a three-member cluster from the
// StatefulSet's arguments, with the join script run before each member as
// the init container does. While a client writes without pause, one
// member is killed and its data directory wiped (a replaced volume); its
// pod's restart — the script, then etcd with the same arguments — brings
// it back as a member with the data. Quorum is never lost (no write
// fails) and no acknowledged key is missing from the new member.
func TestLostMemberRejoinsByItself(t *testing.T) {
	members, tlsDir := startThree(t)

	// A client writing without pause through the two members that stay.
	w := startWriter(tlsDir, "/registry/rejoin/", func(i int) *localMember { return members[2*(i%2)] }) // etcd-0 and etcd-2
	time.Sleep(2 * time.Second)

	lost := members[1]
	// If the lost member leads, the others elect a new leader: writes in
	// flight then may time out (5 s) — quorum holds, a client retries.
	var status []struct {
		Status struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Leader uint64 `json:"leader"`
		}
	}
	if err := json.Unmarshal([]byte(lost.etcdctl(t, tlsDir, "endpoint", "status", "-w", "json")), &status); err != nil || len(status) != 1 {
		t.Fatalf("endpoint status of %s: %v %v", lost.name, err, status)
	}
	leader := status[0].Status.Leader == status[0].Status.Header.MemberID
	killed := time.Now()
	lost.loseData(t)
	began := time.Now()
	out := lost.join(t)
	if !strings.Contains(out, "replacing member") || !strings.Contains(out, "joined and synced") {
		t.Fatalf("%s with its data lost: %s", lost.name, out)
	}
	lost.start(t)
	waitHealthy(t, lost, tlsDir)
	t.Logf("%s back %s after its pod restarted with an empty data dir", lost.name, time.Since(began).Round(100*time.Millisecond))
	time.Sleep(2 * time.Second)
	acked, failed := w.halt()

	const election = 8 * time.Second // the new leader's election plus a write's 5 s timeout
	var outside []string
	for _, f := range failed {
		if !leader || f.at.Sub(killed) > election {
			outside = append(outside, fmt.Sprintf("%s after the kill: %s", f.at.Sub(killed).Round(10*time.Millisecond), f.why))
		}
	}
	if len(outside) > 0 {
		t.Errorf("%d of %d writes failed while a member was replaced (lost member led: %v; quorum must hold): %v",
			len(outside), len(failed)+len(acked), leader, outside[:min(3, len(outside))])
	}
	allStarted(t, members, lost, tlsDir)
	// Every acknowledged key, read from the new member alone.
	missingKeys(t, lost, tlsDir, "/registry/rejoin/", acked)
	t.Logf("%d keys written while %s (leader: %v) was lost and replaced, %d failed during an election, every acknowledged one on the new member",
		len(acked), lost.name, leader, len(failed))

	// The next restart of that member is an ordinary one.
	lost.kill()
	if out := lost.join(t); !strings.Contains(out, "has its data") {
		t.Fatalf("%s restarted with its data: %s", lost.name, out)
	}
	lost.start(t)
	waitHealthy(t, lost, tlsDir)
	if t.Failed() {
		for _, m := range members {
			t.Logf("%s log:\n%s", m.name, tailLines(m.log.String(), 20))
		}
	}
}

// scratchTLS checks that etcd is built and returns a directory with
// scratch certificates the members and etcdctl use.
func scratchTLS(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(toolchain.Path("etcd")); err != nil {
		t.Fatalf("etcd is not built: run hack/toolchain.sh (make test does): %v", err)
	}
	tlsDir := t.TempDir()
	if _, _, _, err := etcdlocal.ScratchTLS(tlsDir); err != nil {
		t.Fatal(err)
	}
	return tlsDir
}

// startThree starts a three-member cluster from the StatefulSet's
// arguments as a parallel StatefulSet starts it: two members up before the
// third's init container runs, which must leave it alone.
func startThree(t *testing.T) ([]*localMember, string) {
	t.Helper()
	tlsDir := scratchTLS(t)
	a := Args{Namespace: "kcp", Replicas: 3, StorageSize: "10Gi", ServerSecret: "s", PeerSecret: "p"}.WithDefaults()
	members := localMembers(t, a, tlsDir)
	for _, m := range members[:2] {
		if out := m.join(t); !strings.Contains(out, "first start") {
			t.Fatalf("%s, first start: %s", m.name, out)
		}
		m.start(t)
	}
	waitHealthy(t, members[0], tlsDir)
	if out := members[2].join(t); !strings.Contains(out, "never ran") {
		t.Fatalf("%s, first start with its peers up: %s", members[2].name, out)
	}
	members[2].start(t)
	waitHealthy(t, members[2], tlsDir)
	return members, tlsDir
}

// TestInterruptedJoinStartsOver: a member lost its data, and its join was
// cut short after it had replaced the member in the cluster and its
// syncing etcd had made member/snap but no WAL yet (its pod deleted, its
// node lost). The next run of the script starts that directory over and
// joins as the member it added: etcd would otherwise take the directory
// for a new cluster's (it looks for a WAL) and be refused for good.
func TestInterruptedJoinStartsOver(t *testing.T) {
	members, tlsDir := startThree(t)
	lost := members[1]
	lost.loseData(t)
	lost.joinKilledAfter(t, "added as a new member")
	// What etcd 3.5 leaves when it is killed before it has the WAL: the
	// data dir and member/snap (etcdserver.NewServer makes them first).
	member := filepath.Join(lost.dir, "data", "member")
	if err := os.RemoveAll(filepath.Join(member, "wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(member, "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	rejoins(t, members, lost, tlsDir, "a sync cut short", "joined and synced")
}

// TestJoinStartsAnEarlyExitAgain: the join's syncing etcd exits before
// it has written its WAL — as it does while the peers refuse a new pod's
// address that DNS does not have yet ("does not match any of DNSNames") —
// leaving member/snap behind. The script removes that and starts etcd
// again, which then joins.
func TestJoinStartsAnEarlyExitAgain(t *testing.T) {
	members, tlsDir := startThree(t)
	lost := members[1]
	lost.loseData(t)
	// etcd as the join script finds it on PATH: the first start makes
	// member/snap, as etcd does first, and exits; later ones are etcd.
	bin := t.TempDir()
	lost.wrap(t, bin, "etcd", `#!/bin/sh
for a do case "$a" in --data-dir=*) data=${a#--data-dir=} ;; esac; done
if [ ! -e `+bin+`/started ]; then
	touch `+bin+`/started
	mkdir -p "$data/member/snap"
	echo "discovery failed (the test's first start)" >&2
	exit 1
fi
exec `+toolchain.Path("etcd")+` "$@"
`)
	rejoins(t, members, lost, tlsDir, "again in 5 s", "joined and synced")
}

// wrap puts script as tool in dir, which m's join searches before the
// toolchain: a tool that misbehaves as the test needs.
func (m *localMember) wrap(t *testing.T, dir, tool, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m.pathFirst = dir + ":"
}

// rejoins runs lost's join, which must log each of wants, then starts it:
// it serves, and every member is started.
func rejoins(t *testing.T, members []*localMember, lost *localMember, tlsDir string, wants ...string) {
	t.Helper()
	out := lost.join(t)
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s's join has no %q:\n%s", lost.name, want, out)
		}
	}
	lost.start(t)
	waitHealthy(t, lost, tlsDir)
	allStarted(t, members, lost, tlsDir)
}

func waitHealthy(t *testing.T, m *localMember, tlsDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if err := etcdctlCmd(ctx, tlsDir, m.client, "--dial-timeout=2s", "endpoint", "health").Run(); err == nil {
			return
		}
		select {
		case <-m.done:
			t.Fatalf("%s exited:\n%s", m.name, tailLines(m.log.String(), 30))
		case <-ctx.Done():
			t.Fatalf("%s not healthy after a minute:\n%s", m.name, tailLines(m.log.String(), 30))
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
