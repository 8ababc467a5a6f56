package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/proctest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/s3backend"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestMain lets the test binary run as kcp-tmc, so a test can kill a deploy
// from outside as a CI runner's timeout does.
func TestMain(m *testing.M) {
	if os.Getenv("KCP_TMC_TEST_AS_CLI") == "1" {
		os.Exit(ExitCode(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)))
	}
	os.Exit(m.Run())
}

// writeLock writes a lock of stack dev as the engine does, in the local
// backend of projectDir or in the bucket at backend, and returns its path
// or key.
func writeLock(t *testing.T, backend, projectDir string, l automation.StackLock) string {
	t.Helper()
	raw, _ := json.Marshal(l)
	rel := filepath.Join(".pulumi", "locks", "organization", automation.ProjectName, "dev", "lock.json")
	if backend != "" {
		bucket, err := blob.OpenBucket(context.Background(), backend)
		if err != nil {
			t.Fatal(err)
		}
		defer bucket.Close()
		if err := bucket.WriteAll(context.Background(), rel, raw, nil); err != nil {
			t.Fatal(err)
		}
		return rel
	}
	path := filepath.Join(projectDir, automation.StateDir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// deadPid is the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestUnlock(t *testing.T) {
	host, _ := os.Hostname()
	tests := []unlockTest{
		{"not locked", nil, nil, "", false, `stack "dev" is not locked`, false},
		{"owner still runs here", &automation.StackLock{Pid: os.Getpid(), Username: "ci", Hostname: host}, nil, "still runs: wait for it to end", true, "", false},
		{"owner gone", &automation.StackLock{Pid: deadPid(t), Username: "ci", Hostname: host}, nil, "", false, "removed the lock of ci@" + host, false},
		{"owner gone, confirmed", &automation.StackLock{Pid: deadPid(t), Username: "ci", Hostname: host}, []string{"--other-host"}, "", false, "removed the lock of ci@" + host, false},
		{"another machine", &automation.StackLock{Pid: 1, Username: "ci", Hostname: "runner-7"}, nil, "taken on another machine", true, "", false},
		{"another machine, confirmed", &automation.StackLock{Pid: 1, Username: "ci", Hostname: "runner-7"}, []string{"--other-host"}, "", false, "removed the lock of ci@runner-7", false},
		{"another container with this host's name", &automation.StackLock{Pid: deadPid(t), Username: "ci", Hostname: host}, nil, "whose processes kcp-tmc cannot see from here", true, "", true},
		{"another container, confirmed", &automation.StackLock{Pid: deadPid(t), Username: "ci", Hostname: host}, []string{"--other-host"}, "", false, "removed the lock of ci@" + host, true},
	}
	for _, kind := range []string{"file", "s3"} {
		for _, tt := range tests {
			if kind == "s3" && tt.name == "owner gone" {
				// A bucket is shared: this machine's name proves nothing.
				tt.wantErr, tt.wantKept, tt.wantPrint = "in a bucket that other machines may share", true, ""
			}
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				tt.run(t, kind)
			})
		}
	}
}

type unlockTest struct {
	name      string
	lock      *automation.StackLock
	args      []string
	wantErr   string // "" = unlocks
	wantKept  bool
	wantPrint string
	elsewhere bool // the lock is recorded as taken by a killed kcp-tmc's engine in another container
}

func (tt unlockTest) run(t *testing.T, kind string) {
	dir := t.TempDir()
	backend, url := "", "file://"+filepath.Join(dir, automation.StateDir)
	holds := filepath.Join(dir, automation.StateDir, ".kcp-tmc", "stacks")
	if kind == "s3" {
		backend = s3backend.Start(t)
		url = backend
		t.Setenv("PULUMI_BACKEND_URL", backend)
		t.Setenv("XDG_STATE_HOME", t.TempDir())
		var err error
		if holds, err = automation.HoldsDir(backend); err != nil {
			t.Fatal(err)
		}
	}
	var path string
	if tt.lock != nil {
		tt.lock.Timestamp = time.Now()
		path = writeLock(t, backend, dir, *tt.lock)
	}
	if tt.elsewhere {
		record := filepath.Join(holds, "dev.json")
		raw, _ := json.Marshal(map[string]any{"pid": deadPid(t), "identity": "other-container", "command": "up",
			"engines": []map[string]any{{"pid": tt.lock.Pid, "started": 1, "lock": path}}})
		if err := os.MkdirAll(filepath.Dir(record), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(record, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), append([]string{"unlock", "--stack", "dev", "--project-dir", dir}, tt.args...), &stdout, &stderr)
	if tt.wantErr == "" && err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if tt.wantErr != "" && (err == nil || !errors.Is(err, ErrCheck) || !strings.Contains(err.Error(), tt.wantErr)) {
		t.Fatalf("unlock: err = %v, want a refusal saying %q", err, tt.wantErr)
	}
	if path != "" {
		store, err := automation.OpenLocks(url, dir, "dev")
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if left, err := store.List(); err != nil || (len(left) == 1) != tt.wantKept {
			t.Errorf("locks left: %v (%v), want the lock kept: %v", left, err, tt.wantKept)
		}
	}
	if !strings.Contains(stdout.String(), tt.wantPrint) {
		t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantPrint)
	}
}

// TestKilledDeployRecovers: an up SIGKILLed mid-way with every process it
// started (a CI runner whose job times out is torn down whole) leaves the
// stack's lock behind; the next up removes it by itself, since the engine
// that took it runs no more, and converges; a preview then shows no
// changes. So also for an up with --skip-checkpoints, whose work the state
// does not know at all: the next up does it again.
func TestKilledDeployRecovers(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		for _, flags := range [][]string{nil, {"--skip-checkpoints"}} {
			t.Run(backend+"/"+strings.Join(append([]string{"up"}, flags...), " "), func(t *testing.T) {
				killedDeployRecovers(t, backend, flags)
			})
		}
	}
}

func killedDeployRecovers(t *testing.T, backend string, flags []string) {
	dir, _ := testenv.Project(t, "dev", nil)
	url := "file://" + filepath.Join(dir, automation.StateDir)
	if backend == "s3" {
		// Under a path in the bucket, as a shared state bucket is used.
		url = strings.Replace(s3backend.Start(t), "s3://state?", "s3://state/kcp/?", 1)
		t.Setenv("PULUMI_BACKEND_URL", url)
		t.Setenv("XDG_STATE_HOME", t.TempDir()) // kcp-tmc's holds of the bucket's stacks
	}
	cmd := exec.Command(os.Args[0], append([]string{"up", "--stack", "dev", "--project-dir", dir}, flags...)...)
	cmd.Env = append(os.Environ(), "KCP_TMC_TEST_AS_CLI=1")
	if out, err := proctest.KillDuring(cmd, "creating", 0); err != nil {
		t.Fatalf("the up ended before it created anything: %v\n%s", err, out)
	}
	store, err := automation.OpenLocks(url, dir, "dev")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	locks, err := store.List()
	if err != nil || len(locks) != 1 {
		t.Fatalf("locks after the killed up: %v (%v), want the one it took", locks, err)
	}

	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), append([]string{args[0], "--stack", "dev", "--project-dir", dir}, args[1:]...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	out, err := run("up")
	if err != nil {
		t.Fatalf("up after a killed deploy: %v\n%s", err, out)
	}
	if !strings.Contains(out, `removed the lock of stack "dev" that a killed kcp-tmc pid `) {
		t.Errorf("the up did not say it removed the killed deploy's lock:\n%s", out)
	}
	// What the killed up was creating, redone, is no longer pending:
	// the engine does not warn of it on every later up.
	if _, pending := testenv.Checkpoint(t, url); len(pending) != 0 {
		t.Errorf("the state after the recovered up has operations pending: %v\n%s", pending, out)
	}
	if out, err := run("preview", "--expect-no-changes"); err != nil {
		t.Fatalf("preview after the recovered up: %v\n%s", err, out)
	}
}

// TestDeployKilledWithItsMachineRecovers: an up on an S3 backend killed
// with everything it ran (a CI runner lost with its job: kcp-tmc, its
// engine and its lease's keeper) is taken over by the next up on another
// machine once the killed one's lease lapses, with no unlock. The other
// machine is a new UTS and pid namespace, with another host name and its
// own state directory: it sees none of the killed processes, nor their
// pids' meaning.
func TestDeployKilledWithItsMachineRecovers(t *testing.T) {
	asAnotherMachine := []string{"unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c", `hostname runner-b && exec "$0" "$@"`}
	if out, err := exec.Command(asAnotherMachine[0], append(asAnotherMachine[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("another machine is a new UTS and pid namespace here, which needs unshare(1) as root: %v: %s", err, out)
	}
	dir, _ := testenv.Project(t, "dev", nil)
	url := strings.Replace(s3backend.Start(t), "s3://state?", "s3://state/kcp/?", 1)
	t.Setenv("PULUMI_BACKEND_URL", url)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("KCP_TMC_LEASE_LAPSE", "5s")
	cmd := exec.Command(os.Args[0], "up", "--stack", "dev", "--project-dir", dir)
	cmd.Env = append(os.Environ(), "KCP_TMC_TEST_AS_CLI=1")
	if out, err := proctest.KillDuring(cmd, "creating", 0); err != nil { // its whole tree, the keeper too
		t.Fatalf("the up ended before it created anything: %v\n%s", err, out)
	}

	t.Setenv("XDG_STATE_HOME", t.TempDir())
	other := exec.Command(asAnotherMachine[0], append(asAnotherMachine[1:], os.Args[0], "up", "--stack", "dev", "--project-dir", dir)...)
	other.Env = append(os.Environ(), "KCP_TMC_TEST_AS_CLI=1")
	start := time.Now()
	raw, err := other.CombinedOutput()
	out := string(raw)
	if err != nil {
		t.Fatalf("up on another machine after one killed with its machine: %v\n%s", err, out)
	}
	for _, want := range []string{"waiting for the lease of kcp-tmc pid ", "its lease was last renewed ",
		`removed the lock of stack "dev" by `} {
		if !strings.Contains(out, want) {
			t.Errorf("the up on another machine did not say %q:\n%s", want, out)
		}
	}
	if took := time.Since(start); took < 4*time.Second {
		t.Errorf("the up on another machine took %s, less than the killed one's lease of 5s: it did not wait for it", took)
	}
	if _, pending := testenv.Checkpoint(t, url); len(pending) != 0 {
		t.Errorf("the state after the recovered up has operations pending: %v\n%s", pending, out)
	}
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"preview", "--stack", "dev", "--project-dir", dir, "--expect-no-changes"}, &stdout, &stderr); err != nil {
		t.Fatalf("preview after the recovered up: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}

// TestUnlockRepairsWhatAKillMidWriteLeaves: the engine (gocloud's fileblob)
// replaces a checkpoint atomically but writes its metadata sidecar in place,
// so a kill at the wrong moment leaves the sidecar empty. The real engine
// then refuses the stack ("failed to load checkpoint: EOF", what CI saw from
// TestKilledDeployRecovers); unlock removes the sidecar and the next up works.
func TestUnlockRepairsWhatAKillMidWriteLeaves(t *testing.T) {
	dir, _ := testenv.Project(t, "dev", nil)
	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), append([]string{args[0], "--stack", "dev", "--project-dir", dir}, args[1:]...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	if out, err := run("up"); err != nil {
		t.Fatalf("first up: %v\n%s", err, out)
	}
	sidecar := automation.CheckpointPath(filepath.Join(dir, automation.StateDir), "dev") + ".attrs"
	if err := os.WriteFile(sidecar, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("up"); err == nil || !strings.Contains(err.Error(), "failed to load checkpoint") || !strings.Contains(err.Error(), "kcp-tmc unlock --stack dev") {
		t.Fatalf("up with an empty sidecar: err = %v, want the damaged checkpoint named with kcp-tmc unlock\n%s", err, out)
	}
	if out, err := run("unlock"); err != nil || !strings.Contains(out, "removed the damaged metadata file "+sidecar) {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	if out, err := run("preview", "--expect-no-changes"); err != nil {
		t.Fatalf("preview after unlock: %v\n%s", err, out)
	}
}

// TestUnlockRestoresATruncatedCheckpoint: a deploy killed while the engine
// wrote its checkpoint leaves it empty; unlock puts the engine's .bak back.
func TestUnlockRestoresATruncatedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	file := automation.CheckpointPath(filepath.Join(dir, automation.StateDir), "dev")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".bak", []byte(`{"version":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"unlock", "--stack", "dev", "--project-dir", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if got, _ := os.ReadFile(file); string(got) != `{"version":3}` || !strings.Contains(stdout.String(), "restored the checkpoint") {
		t.Errorf("checkpoint after unlock = %q, output %q", got, stdout.String())
	}
}
