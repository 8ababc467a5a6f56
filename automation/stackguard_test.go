package automation

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/internal/test/s3backend"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// TestMain lets the test binary run as a kcp-tmc that holds a stack and
// starts an "engine" that locks it, so that a test can kill them as a CI
// runner's timeout does.
func TestMain(m *testing.M) {
	if os.Getenv("KCP_TMC_TEST_ENGINE") != "" { // an engine that waits to be killed
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	}
	if backend := os.Getenv("KCP_TMC_TEST_HOLD_STACK"); backend != "" {
		holdAndLock(backend)
	}
	os.Exit(m.Run())
}

// holdAndLock holds stack dev of the backend, starts an engine (this
// binary, named pulumi, run as the Automation API runs it: --stack dev) that takes the stack's Pulumi lock as the engine does,
// prints "engine <pid>" once the hold recorded it, and waits to be
// killed. With KCP_TMC_TEST_LOCK_LATER, the engine is recorded as it
// starts and the test writes its lock after the kill.
func holdAndLock(backend string) {
	g, err := holdStack(backend, "", "dev", "up", os.Stdout)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if os.Getenv("KCP_TMC_TEST_LOCK_ITSELF") != "" { // as for the Helm heal
		if _, err := g.lockStack(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Printf("engine %d\n", os.Getpid())
		select {}
	}
	w := g.watchEngine()
	self, err := os.Executable()
	if err == nil {
		err = os.Symlink(self, filepath.Join(os.Getenv("KCP_TMC_TEST_ENGINE_DIR"), engineName))
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	engine := exec.Command(filepath.Join(os.Getenv("KCP_TMC_TEST_ENGINE_DIR"), engineName), "preview", "--stack", "dev")
	engine.Env = append(os.Environ(), "KCP_TMC_TEST_ENGINE=1")
	if err := engine.Start(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	later := os.Getenv("KCP_TMC_TEST_LOCK_LATER") != ""
	host, _ := os.Hostname()
	if !later {
		if err := writeLock(backend, StackLock{Pid: engine.Process.Pid, Username: currentUser(), Hostname: host, Timestamp: time.Now()}); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	for n, locked := g.recorded(); n == 0 || (!later && !locked); n, locked = g.recorded() {
		time.Sleep(10 * time.Millisecond)
	}
	w.stop()
	fmt.Printf("engine %d\n", engine.Process.Pid)
	select {}
}

// writeLock writes lock as stack dev's engine.json in the backend, as the
// engine's blob store does: a local file by a temp file renamed, an object
// whole.
func writeLock(backend string, lock StackLock) error {
	raw, _ := json.Marshal(lock)
	if state, ok := LocalState(backend, ""); ok {
		tmp := filepath.Join(LocksDir(state, "dev"), "engine.json.tmp")
		if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(tmp, raw, 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(LocksDir(state, "dev"), "engine.json"))
	}
	b, err := openS3Locks(backend, "dev")
	if err != nil {
		return err
	}
	defer b.close()
	return b.bucket.WriteAll(context.Background(), b.prefix+"engine.json", raw, nil)
}

// recorded is how many engines g recorded, and whether the first one's
// lock is.
func (g *stackGuard) recorded() (engines int, locked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.rec.Engines), len(g.rec.Engines) > 0 && g.rec.Engines[0].Lock != ""
}

// startHolder runs holdAndLock in a new process and returns it with its
// engine's pid.
func startHolder(t *testing.T, backend string, lockLater, lockItself bool) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KCP_TMC_TEST_HOLD_STACK="+backend, "KCP_TMC_TEST_ENGINE_DIR="+t.TempDir())
	if lockLater {
		cmd.Env = append(cmd.Env, "KCP_TMC_TEST_LOCK_LATER=1")
	}
	if lockItself {
		cmd.Env = append(cmd.Env, "KCP_TMC_TEST_LOCK_ITSELF=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	pid, convErr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "engine ")))
	if err != nil || convErr != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("the holder said %q (%v)", line, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, pid
}

// TestKilledHolderLeavesNothingToUnlock: while a kcp-tmc holds a stack no
// other one may run on it; once it is killed, the next one removes the
// Pulumi lock its engine took if, and only if, that engine runs no more
// and is a process this one can see.
func TestKilledHolderLeavesNothingToUnlock(t *testing.T) {
	tests := []killedHolderCase{
		{name: "holder and engine killed", killEngine: true,
			wantPrinted: `removed the lock of stack "dev" that a killed kcp-tmc pid `},
		{name: "killed before it saw the engine's lock", killEngine: true, lockLater: true,
			wantPrinted: `removed the lock of stack "dev" that a killed kcp-tmc pid `},
		{name: "killed as it held the stack's lock itself", killEngine: true, lockItself: true,
			wantPrinted: `removed the lock of stack "dev" that a killed kcp-tmc pid `},
		{name: "killed mid-write", killEngine: true, midWrite: true,
			wantPrinted: "removed the damaged metadata file "},
		{name: "only the holder killed", wantErr: "the engine (pid ", wantLock: true},
		{name: "killed in another container", killEngine: true, otherPlace: true, wantLock: true,
			wantPrinted: "which this one cannot see: once it runs no more, kcp-tmc unlock --other-host removes it"},
	}
	for _, kind := range []string{"file", "s3"} {
		for _, tt := range tests {
			if tt.midWrite && kind != "file" {
				continue // a bucket replaces each object whole
			}
			t.Run(kind+"/"+tt.name, func(t *testing.T) { tt.run(t, kind) })
		}
	}
}

type killedHolderCase struct {
	name        string
	killEngine  bool
	lockLater   bool // the holder was killed before it saw its engine's lock
	lockItself  bool // the holder took the stack's Pulumi lock itself (g.lockStack), no engine
	otherPlace  bool // the killed holder ran where its pids mean other processes
	midWrite    bool // killed as the engine wrote the checkpoint's metadata (fileblob writes it in place)
	wantErr     string
	wantLock    bool
	wantPrinted string
}

func (tt killedHolderCase) run(t *testing.T, kind string) {
	state := t.TempDir()
	backend := "file://" + state
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // where the holds of a bucket's stacks are, for the child too
	if kind == "s3" {
		backend = s3backend.Start(t)
	}
	locks, err := OpenLocks(backend, "", "dev")
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Close()
	holder, engine := startHolder(t, backend, tt.lockLater, tt.lockItself)
	if _, err := holdStack(backend, "", "dev", "up", nil); !errors.Is(err, ErrStackInUse) ||
		!strings.Contains(err.Error(), fmt.Sprintf("kcp-tmc pid %d on ", holder.Process.Pid)) {
		t.Fatalf("holding a stack another kcp-tmc holds: err = %v, want ErrStackInUse naming it", err)
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	if tt.lockLater {
		host, _ := os.Hostname()
		if err := writeLock(backend, StackLock{Pid: engine, Username: currentUser(), Hostname: host, Timestamp: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if tt.killEngine {
		_ = syscall.Kill(engine, syscall.SIGKILL)
		for localproc.Running(engine) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if tt.otherPlace {
		path := recordPath(locks.holds, "dev")
		raw, _ := os.ReadFile(path)
		if err := os.WriteFile(path, bytes.Replace(raw, []byte(`"identity":"`), []byte(`"identity":"elsewhere`), 1), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sidecar := CheckpointPath(state, "dev") + sidecarExt
	if tt.midWrite {
		if err := os.MkdirAll(filepath.Dir(sidecar), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sidecar, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	g, err := holdStack(backend, "", "dev", "up", &out)
	if tt.wantErr != "" {
		if !errors.Is(err, ErrStackInUse) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Fatalf("err = %v, want ErrStackInUse saying %q", err, tt.wantErr)
		}
	} else {
		if err != nil {
			t.Fatalf("holding the stack after the kill: %v", err)
		}
		g.release()
	}
	if !strings.Contains(out.String(), tt.wantPrinted) {
		t.Errorf("printed %q, want %q", out.String(), tt.wantPrinted)
	}
	left, err := locks.List()
	if err != nil || len(left) > 1 || (len(left) == 1) != tt.wantLock {
		t.Fatalf("the stack's locks after: %v, %v; want the engine's there: %v", left, err, tt.wantLock)
	}
	// A lock kept for its holder elsewhere stays recorded as such, for
	// kcp-tmc unlock to ask for --other-host.
	if where, err := locks.Elsewhere(); err != nil || (len(left) == 1 && (where[left[0].Path] != "") != tt.otherPlace) {
		t.Errorf("Elsewhere = %v, %v; want the engine's lock there: %v", where, err, tt.otherPlace)
	}
	if _, err := os.Stat(sidecar); tt.midWrite && err == nil {
		t.Errorf("the damaged %s is left: every later command fails to load the checkpoint", sidecar)
	}
}

// TestHoldStackShares: the engine commands of one process share its hold;
// the last release lets another take it, and leaves no record.
func TestHoldStackShares(t *testing.T) {
	state := t.TempDir()
	a, err := holdStack("file://"+state, "", "dev", "up", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := holdStack("file://"+state, "", "dev", "preview", nil)
	if err != nil || b != a {
		t.Fatalf("a second hold in the same process: %v, %v; want the first one shared", b, err)
	}
	a.release()
	if _, ok := guards.held[a.file.Name()]; !ok {
		t.Fatal("released while still shared")
	}
	b.release()
	if _, err := os.Stat(filepath.Join(guardDir(state), "dev.json")); !os.IsNotExist(err) {
		t.Errorf("the record is left after the last release (err %v): the next holder would think this one was killed", err)
	}
	if g, err := holdStack("gs://bucket", "", "dev", "up", nil); g != nil || err != nil {
		t.Errorf("a Google Cloud Storage backend: %v, %v; want no hold (kcp-tmc does not read its locks)", g, err)
	}
}

func TestLockingCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--yes"}, "up"},
		{[]string{"preview"}, "preview"},
		{[]string{"stack", "import", "--file", "x"}, "stack import"},
		{[]string{"stack", "export"}, ""},
		{[]string{"stack", "select"}, ""},
		{[]string{"config", "set"}, ""},
		{nil, ""},
	} {
		got, locks := lockingCommand(tc.args)
		if got != tc.want || locks != (tc.want != "") {
			t.Errorf("lockingCommand(%q) = %q, %v; want %q", tc.args, got, locks, tc.want)
		}
	}
}

// TestEngineEnded: as an engine command returns, the lock its engine left
// is removed if, and only if, the engine was killed and the lock is the
// one its pid wrote during the command on this host.
func TestEngineEnded(t *testing.T) {
	run := func(kill bool) (int, error) {
		cmd := exec.Command("sleep", "0.05")
		if kill {
			cmd = exec.Command("sleep", "60")
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kill {
			_ = cmd.Process.Kill()
		}
		return cmd.Process.Pid, cmd.Wait()
	}
	host, _ := os.Hostname()
	tests := []struct {
		name      string
		killed    bool
		stderr    string
		otherPid  bool
		host      string
		earlier   bool // written before the command started
		otherUser bool
		wantKept  bool
	}{
		{name: "killed engine's lock", killed: true, host: host},
		{name: "an engine that exited", host: host, wantKept: true},
		{name: "killed as it found the stack locked", killed: true, stderr: "error: " + LockedMarker + " 1 lock(s)", host: host, wantKept: true},
		{name: "another process's lock", killed: true, otherPid: true, host: host, wantKept: true},
		{name: "a lock written on another host", killed: true, host: "runner-7", wantKept: true},
		{name: "a lock written by another user", killed: true, host: host, otherUser: true, wantKept: true},
		{name: "a lock older than the command", killed: true, host: host, earlier: true, wantKept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			g, err := holdStack("file://"+state, "", "dev", "up", io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer g.release()
			w := g.watchEngine()
			pid, err := run(tt.killed)
			lockPid := pid
			if tt.otherPid {
				lockPid = pid + 1
			}
			written := time.Now()
			if tt.earlier {
				written = w.since.Add(-time.Second)
			}
			user := currentUser()
			if tt.otherUser {
				user = "someone-else"
			}
			raw, _ := json.Marshal(StackLock{Pid: lockPid, Username: user, Hostname: tt.host, Timestamp: written})
			lock := filepath.Join(LocksDir(state, "dev"), "engine.json")
			if err := os.WriteFile(lock, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			w.ended(err, tt.stderr)
			if _, statErr := os.Stat(lock); (statErr == nil) != tt.wantKept {
				t.Errorf("lock kept: %v, want %v (the command's error: %v)", statErr == nil, tt.wantKept, err)
			}
		})
	}
}

// TestStackInUseNamesTheHolder: refused, a command names the kcp-tmc that
// holds the stack, and does not take a killed holder, whose record the
// live one has not replaced yet, for it.
func TestStackInUseNamesTheHolder(t *testing.T) {
	state := t.TempDir()
	if err := os.MkdirAll(guardDir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	// Another open file description: flock excludes it as it would another process.
	f, err := os.OpenFile(filepath.Join(guardDir(state), "dev.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	id, _ := localproc.Identity()
	self, _ := localproc.Find(os.Getpid())
	dead := exec.Command("true")
	_ = dead.Run()
	for _, tc := range []struct {
		name   string
		holder localproc.Process
		want   string
	}{
		{"a live holder", self, fmt.Sprintf("kcp-tmc pid %d on ", os.Getpid())},
		{"the record of a killed one", localproc.Process{Pid: dead.Process.Pid, Started: 1}, "another kcp-tmc, taking over from a killed kcp-tmc pid "},
	} {
		raw, _ := json.Marshal(guardRecord{Process: tc.holder, Host: "vm", Identity: id, Command: "up", Since: time.Now()})
		if err := os.WriteFile(recordPath(guardDir(state), "dev"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := holdStack("file://"+state, "", "dev", "up", nil); !errors.Is(err, ErrStackInUse) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrStackInUse naming %q", tc.name, err, tc.want)
		}
	}
}

// TestStartedRecordsThisStacksEngine: the engine recorded as it starts is
// this stack's (the Automation API names it with --stack), not another
// stack's engine of the same process.
func TestStartedRecordsThisStacksEngine(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	engine := filepath.Join(t.TempDir(), engineName)
	if err := os.Symlink(self, engine); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stack string
		want  bool
	}{{"prod", false}, {"dev", true}} {
		g, err := holdStack("file://"+t.TempDir(), "", "dev", "up", io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		w := g.watchEngine()
		cmd := exec.Command(engine, "up", "--stack", tc.stack)
		cmd.Env = append(os.Environ(), "KCP_TMC_TEST_ENGINE=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second) // found within milliseconds
		for n, _ := g.recorded(); n == 0 && time.Now().Before(deadline); n, _ = g.recorded() {
			time.Sleep(10 * time.Millisecond)
		}
		if n, _ := g.recorded(); (n == 1) != tc.want {
			t.Errorf("an engine of stack %s: recorded %d engines for stack dev, want one: %v", tc.stack, n, tc.want)
		}
		_ = cmd.Process.Kill()
		err = cmd.Wait()
		w.ended(err, "")
		g.release()
	}
}
