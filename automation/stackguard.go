package automation

// A deploy killed mid-way (a CI job's timeout, SIGKILL, a lost runner)
// leaves its stack's Pulumi lock behind, and every later operation refuses
// to run until a person removes it. Pulumi's lock names a pid and a host,
// which cannot tell a dead process from one in another container that
// shares the host's name. kcp-tmc's own hold of the stack can: a kernel
// lock that goes when its process goes however it dies, and a record of
// the engine processes it started and the Pulumi locks they took. The next
// kcp-tmc on the stack removes a lock whose engine it can see no longer
// runs, and repairs what a kill mid-write leaves, by itself.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// StackLock is one lock file of a local backend, as the engine writes it
// (pulumi v3.274 backend/diy/lock.go: lockContent).
type StackLock struct {
	Path      string    `json:"-"`
	Pid       int       `json:"pid"`
	Username  string    `json:"username"`
	Hostname  string    `json:"hostname"`
	Timestamp time.Time `json:"timestamp"`
}

func (l StackLock) String() string {
	return fmt.Sprintf("%s@%s (pid %d) since %s", l.Username, l.Hostname, l.Pid, l.Timestamp.Format(time.RFC3339))
}

// StackLocks reads the lock files of stack in the local backend under state.
func StackLocks(state, stack string) ([]StackLock, error) { return locksIn(LocksDir(state, stack)) }

// locksIn reads the lock files in dir.
func locksIn(dir string) ([]StackLock, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the locks in %s: %w", dir, err)
	}
	var locks []StackLock
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		l, err := readLock(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // its operation ended
		}
		if err != nil {
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

func readLock(path string) (StackLock, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return StackLock{}, fmt.Errorf("reading lock %s: %w", path, err)
	}
	l := StackLock{Path: path}
	if err := json.Unmarshal(raw, &l); err != nil {
		return StackLock{}, fmt.Errorf("lock %s is not a Pulumi lock: %w", path, err)
	}
	return l, nil
}

// RemoveLock removes a lock file and its blob store metadata sidecar.
func RemoveLock(path string) error {
	for _, f := range []string{path, path + sidecarExt} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing lock %s: %w", f, err)
		}
	}
	return nil
}

// guardRecord is what a holder of a stack writes beside its kernel lock:
// who holds it, and the engines it started with the Pulumi lock each took.
// A holder that ends removes it; one that is killed leaves it for the next.
type guardRecord struct {
	localproc.Process
	Host     string       `json:"host"`
	Identity string       `json:"identity"` // where the pids mean these processes: localproc.Identity
	Command  string       `json:"command"`
	Since    time.Time    `json:"since"`
	Engines  []engineLock `json:"engines,omitempty"`
}

// engineLock is an engine process and the Pulumi lock it took: recorded
// as the process starts, before it locks, its lock once seen (Lock "": the
// lock is the stack's lock of that pid on the holder's host, written since).
type engineLock struct {
	localproc.Process
	Since time.Time `json:"since"` // before it started
	Lock  string    `json:"lock,omitempty"`
	// Elsewhere is the identity of the killed holder that started the engine
	// when it is not the record's: kept from a holder on another machine,
	// boot or pid namespace, whose engine this process cannot see.
	Elsewhere string `json:"elsewhere,omitempty"`
}

func (r guardRecord) String() string {
	return fmt.Sprintf("kcp-tmc pid %d on %s, `%s` since %s", r.Pid, r.Host, r.Command, r.Since.Format(time.RFC3339))
}

// stackGuard is this process's hold of one stack: an exclusive flock(2)
// on <holds>/<stack>.lock (for a local backend, <state>/.kcp-tmc/stacks),
// whose file is closed on exec so that only this process holds it, and the
// record at <stack>.json. Engine commands of the process share it (refs).
type stackGuard struct {
	*Locks
	file *os.File
	out  io.Writer
	refs int // under guards' lock

	mu  sync.Mutex // the record
	rec guardRecord

	// A bucket's stack: this holder's lease there, and its keeper (lease.go).
	leaseKey               string
	leaseEvery, leaseLapse time.Duration
	stopKeeper             func()
}

var guards = struct {
	sync.Mutex
	held map[string]*stackGuard
}{held: map[string]*stackGuard{}}

// ErrStackInUse: another kcp-tmc, or the engine of a killed one, runs an
// operation on the stack.
var ErrStackInUse = errors.New("stack in use")

// thisIdentity is where this process's pids mean its processes
// (localproc.Identity); a test stands in for another machine with it.
var thisIdentity = localproc.Identity

// guardDir is where a local backend under state keeps kcp-tmc's holds of
// its stacks (outside .pulumi/locks, where the engine counts every file
// as a lock).
func guardDir(state string) string { return filepath.Join(state, ".kcp-tmc", "stacks") }

// holdStack takes this process's hold of stack for command, or shares the
// one it has, and returns it; nil for a backend whose locks kcp-tmc does
// not read (OpenLocks). Taking it first removes the Pulumi locks a killed
// holder's engines left, once they run no more, and repairs the state a
// kill mid-write leaves (RepairState), saying so on out. It fails with
// ErrStackInUse while another holds the stack.
func holdStack(backendURL, projectDir, stack, command string, out io.Writer) (*stackGuard, error) {
	if stack == "" {
		return nil, nil
	}
	if out == nil {
		out = io.Discard
	}
	locks, err := OpenLocks(backendURL, projectDir, stack)
	if locks == nil {
		return nil, err
	}
	key := filepath.Join(locks.holds, stack+".lock") // the record beside it: recordPath
	guards.Lock()
	defer guards.Unlock()
	if g := guards.held[key]; g != nil {
		locks.Close()
		g.refs++
		return g, nil
	}
	g := &stackGuard{Locks: locks, out: out, refs: 1}
	if err := os.MkdirAll(locks.holds, 0o700); err != nil {
		locks.Close()
		return nil, fmt.Errorf("stack %q: creating %s: %w", stack, locks.holds, err)
	}
	if g.file, err = os.OpenFile(key, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		locks.Close()
		return nil, fmt.Errorf("stack %q: %w", stack, err)
	}
	if err := syscall.Flock(int(g.file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		g.close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			by := "another kcp-tmc"
			if prev, _ := readRecord(g.holds, g.stack); prev != nil {
				by = prev.String()
				// The record is still the killed holder's while the new one
				// takes over from it.
				if id, _ := localproc.Identity(); prev.Identity == id && !prev.Process.Running() {
					by = "another kcp-tmc, taking over from a killed " + by + ","
				}
			}
			return nil, fmt.Errorf("%w: %s runs an operation on stack %q (it holds %s): wait for it to end", ErrStackInUse, by, stack, key)
		}
		return nil, fmt.Errorf("stack %q: locking %s: %w", stack, key, err)
	}
	if err := g.take(command); err != nil {
		g.close()
		return nil, err
	}
	if b, ok := g.lockStore.(*s3Locks); ok {
		if err := g.takeLease(b, backendURL, g.rec.Identity); err != nil {
			if g.leaseKey != "" {
				_ = b.removeLease(g.leaseKey)
			}
			g.close()
			return nil, err
		}
	}
	guards.held[key] = g
	return g, nil
}

// HoldStack is holdStack for a caller outside the engine's commands
// (kcp-tmc unlock, Up): release gives the hold up.
func HoldStack(backendURL, projectDir, stack, command string, out io.Writer) (release func(), err error) {
	g, err := holdStack(backendURL, projectDir, stack, command, out)
	if err != nil {
		return nil, err
	}
	return g.release, nil
}

// take clears what a killed holder left and records this one.
func (g *stackGuard) take(command string) error {
	prev, err := readRecord(g.holds, g.stack)
	if err != nil {
		fmt.Fprintf(g.out, "ignoring %v\n", err)
	}
	id, err := thisIdentity()
	if err != nil {
		return err
	}
	var elsewhere []engineLock
	if prev != nil {
		if elsewhere, err = g.clearKilled(*prev, id); err != nil {
			return err
		}
		// A kill mid-write leaves the checkpoint or its metadata damaged;
		// not while an engine this process cannot see may still write.
		if len(elsewhere) == 0 {
			if err := g.Repair(g.out); err != nil {
				return err
			}
		}
	}
	self, err := localproc.Find(os.Getpid())
	if err != nil {
		self = localproc.Process{Pid: os.Getpid()}
	}
	host, _ := os.Hostname()
	g.rec = guardRecord{Process: self, Host: host, Identity: id, Command: command, Since: time.Now(), Engines: elsewhere}
	return g.writeRecord()
}

// clearKilled removes each Pulumi lock the engines of the killed holder
// prev took, once that engine runs no more. One that still runs (only its
// kcp-tmc was killed) holds the stack: ErrStackInUse. The engines this
// process cannot see (started on another machine, boot or pid namespace
// than id) are returned with their lock still there, to stay recorded:
// kcp-tmc unlock asks for --other-host before it removes those.
func (g *stackGuard) clearKilled(prev guardRecord, id string) (elsewhere []engineLock, err error) {
	for _, e := range prev.Engines {
		l, err := g.lockOf(e, prev.Host, currentUser(), true)
		if err != nil {
			return nil, err
		}
		if e.Elsewhere == "" {
			e.Elsewhere = prev.Identity
		}
		ownLeft := e.Elsewhere == id && e.Pid == os.Getpid() && e.Running() // this process's lockStack, left by a failed removal
		switch {
		case l == nil && (e.Lock != "" || e.Elsewhere != id || !e.Running()):
			continue // the engine removed its lock, or took none
		case ownLeft:
			if err := g.remove(l.Path); err != nil {
				return nil, err
			}
			fmt.Fprintf(g.out, "removed the lock of stack %q that this kcp-tmc could not remove before\n", g.stack)
		case e.Elsewhere != id:
			fmt.Fprintf(g.out, "the lock of stack %q by %s is of the engine (pid %d) of a killed kcp-tmc on another machine, "+
				"boot or container (%s), which this one cannot see: once it runs no more, kcp-tmc unlock --other-host "+
				"removes it\n", g.stack, l, e.Pid, e.Elsewhere)
			e.Lock = l.Path
			elsewhere = append(elsewhere, e)
		case e.Running():
			return nil, fmt.Errorf("%w: the engine (pid %d) of a killed %s still runs and holds stack %q: it ends by itself, "+
				"or stop it", ErrStackInUse, e.Pid, prev, g.stack)
		default:
			if err := g.remove(l.Path); err != nil {
				return nil, err
			}
			fmt.Fprintf(g.out, "removed the lock of stack %q that a killed %s left: its engine (pid %d) runs no more\n",
				g.stack, prev, e.Pid)
		}
	}
	return elsewhere, nil
}

// lockOf is the stack's lock that engine e took, nil if there is none: the
// one recorded, while it is still e's; else one written by e's pid, as
// user, on host, within engineLocksWithin of e's start, whose pid, when e
// ran here, no process has now (the pid alone does not tell e from a
// process that got it since, nor from a machine that shares the host's
// name).
func (g *stackGuard) lockOf(e engineLock, host, user string, here bool) (*StackLock, error) {
	if e.Lock != "" {
		l, err := g.read(e.Lock)
		if errors.Is(err, os.ErrNotExist) || (err == nil && l.Pid != e.Pid) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &l, nil
	}
	locks, err := g.list()
	if err != nil {
		return nil, err
	}
	for _, l := range locks {
		if l.Pid == e.Pid && l.Hostname == host && l.Username == user && !l.Timestamp.Before(e.Since) &&
			l.Timestamp.Before(e.Since.Add(engineLocksWithin)) && !(here && localproc.Running(l.Pid)) {
			return &l, nil
		}
	}
	return nil, nil
}

// engineLocksWithin bounds when an engine takes the stack's lock after it
// starts: it does so once its plugins and backend are loaded, in about a
// second here. One that took longer leaves its lock to kcp-tmc unlock.
const engineLocksWithin = 5 * time.Minute

// currentUser is the user name the engine writes into its locks (pulumi
// v3.274 backend/diy/lock.go newLockContent: user.Current).
func currentUser() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.Username
}

// lockStack takes the stack's Pulumi lock as the engine does (pulumi
// v3.274 backend/diy lock.go Lock: refused while a lock is there; written;
// given up if another appeared meanwhile), for what kcp-tmc changes
// outside the engine that no engine, on any machine, may run beside. It is
// recorded as taken by this process, so that the next holder removes it if
// this one is killed; unlock removes it. ErrStackInUse while locked.
func (g *stackGuard) lockStack() (unlock func(), err error) {
	locked := func(held []StackLock, err error) error {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: stack %q is locked by %v", ErrStackInUse, g.stack, held)
	}
	if held, err := g.list(); err != nil || len(held) > 0 {
		return nil, locked(held, err)
	}
	self := g.rec.Process // this process, as take recorded it
	host, _ := os.Hostname()
	l := StackLock{Pid: os.Getpid(), Username: currentUser(), Hostname: host, Timestamp: time.Now()}
	raw, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("kcp-tmc-%d-%d.json", l.Pid, l.Timestamp.UnixNano())
	key := g.lockPath(name)
	// Recorded first: a kill between the two leaves no lock unrecorded (a
	// recorded lock that is not there counts as gone).
	g.mu.Lock()
	g.addEngine(engineLock{Process: self, Since: l.Timestamp, Lock: key})
	g.mu.Unlock()
	unlock = func() {
		var err error
		for try := range 3 {
			time.Sleep(time.Duration(try) * time.Second)
			if err = g.remove(key); err == nil {
				break
			}
		}
		if err != nil {
			fmt.Fprintf(g.out, "%v\n", err) // recorded: the next holder removes it
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.rec.Engines = slices.DeleteFunc(g.rec.Engines, func(e engineLock) bool { return e.Lock == key })
		if err := g.writeRecord(); err != nil {
			fmt.Fprintf(g.out, "%v\n", err)
		}
	}
	if err := g.write(name, raw); err != nil {
		unlock()
		return nil, err
	}
	if held, err := g.list(); err != nil || len(held) != 1 || held[0].Path != key {
		unlock()
		return nil, locked(held, err)
	}
	return unlock, nil
}

// engineWatch is one engine command's watch for its engine and the lock
// that engine takes.
type engineWatch struct {
	g          *stackGuard
	host, user string
	since      time.Time
	before     map[string]bool // the locks there before the engine started
	children   []localproc.Process
	stop       func()
}

// watchEngine records the engine this process starts next, as it starts,
// and the Pulumi lock it takes, until the returned watch ends. The engine
// does not say when it locks; it does so within a second of its start, and
// can get far within milliseconds (to its first "creating" in about 20 ms
// here). Its process is found first (a new child named pulumi, every 5 ms:
// it locks only once its plugins and backend are loaded), so that the
// next kcp-tmc finds its lock by pid whenever this one is killed; the lock
// itself as it appears: a local directory is watched (inotify on Linux), a
// bucket listed every 100 ms. A lock counts as this engine's when it
// appeared since, was written on this host at or after since, and by a
// process that descends from this one.
func (g *stackGuard) watchEngine() *engineWatch {
	w := &engineWatch{g: g, since: time.Now(), before: map[string]bool{}}
	w.host, _ = os.Hostname()
	w.user = currentUser()
	w.children = localproc.Children(os.Getpid(), engineName)
	if locks, err := g.list(); err == nil {
		for _, l := range locks {
			w.before[l.Path] = true
		}
	}
	stopStart := poll(5*time.Millisecond, w.started)
	stopLock, err := g.watch(w.record)
	if err != nil {
		fmt.Fprintf(g.out, "not watching for the engine's lock of stack %q in %s: %v\n", g.stack, g.lockStore, err)
		stopLock = func() {}
	}
	w.stop = func() { stopStart(); stopLock() }
	return w
}

// engineName is the engine's command name (/proc/<pid>/comm).
const engineName = "pulumi"

// started records the engines this process started on the stack since
// the watch began (the Automation API names it with --stack; another
// stack's engine of this process is not this one's), and reports whether
// it found one.
func (w *engineWatch) started() bool {
	found := false
	for _, p := range localproc.Children(os.Getpid(), engineName) {
		if slices.Contains(w.children, p) {
			continue
		}
		if args, err := localproc.Args(p.Pid); err != nil || flagValue(args, "--stack") != w.g.stack {
			continue
		}
		found = true
		w.g.mu.Lock()
		w.g.addEngine(engineLock{Process: p, Since: w.since})
		w.g.mu.Unlock()
	}
	return found
}

// addEngine records engine e, or the lock of the engine recorded as it
// started (under g.mu).
func (g *stackGuard) addEngine(e engineLock) {
	i := slices.IndexFunc(g.rec.Engines, func(r engineLock) bool { return r.Process == e.Process })
	switch {
	case i < 0:
		g.rec.Engines = append(g.rec.Engines, e)
	case g.rec.Engines[i].Lock == "" && e.Lock != "":
		g.rec.Engines[i].Lock = e.Lock
	default:
		return
	}
	if err := g.writeRecord(); err != nil {
		fmt.Fprintf(g.out, "%v\n", err)
	}
}

// ours reports whether lock l appeared during the watch, written by this
// user on this host since it began.
func (w *engineWatch) ours(l StackLock) bool {
	return !w.before[l.Path] && l.Hostname == w.host && l.Username == w.user && !l.Timestamp.Before(w.since)
}

// record records the new locks of this process's engine, and reports
// whether it found one.
func (w *engineWatch) record() bool {
	g := w.g
	locks, err := g.list()
	if err != nil {
		return false
	}
	found := false
	for _, l := range locks {
		if !w.ours(l) || !localproc.Descends(l.Pid, os.Getpid()) {
			continue
		}
		p, err := localproc.Find(l.Pid)
		if err != nil {
			continue
		}
		g.mu.Lock()
		g.addEngine(engineLock{Process: p, Since: w.since, Lock: l.Path})
		g.mu.Unlock()
		found = true
	}
	return found
}

// ended ends the watch once the engine's command has returned with err:
// the engine exited (the Automation API waits for it). An engine that ends
// removes its lock itself, also when it fails, and one that found the
// stack locked took none; one killed by a signal leaves its lock, which is
// removed here (the lock its pid wrote during the watch), with what a kill
// mid-write left (RepairState).
func (w *engineWatch) ended(err error, stderr string) {
	w.stop()
	g := w.g
	var exit *exec.ExitError
	killed := errors.As(err, &exit) && exit.ProcessState != nil && !exit.Exited() &&
		!strings.Contains(stderr, LockedMarker)
	g.mu.Lock()
	defer g.mu.Unlock()
	keep := false // the killed engine, while its lock may be left: for the next holder
	if killed {
		pid := exit.Pid()
		locks, err := g.list()
		if err != nil {
			fmt.Fprintf(g.out, "%v\n", err)
			keep = true
		}
		removed := false
		for _, l := range locks {
			if l.Pid != pid || !w.ours(l) {
				continue
			}
			if err := g.remove(l.Path); err != nil {
				fmt.Fprintf(g.out, "%v\n", err)
				keep = true
				continue
			}
			removed = true
			fmt.Fprintf(g.out, "removed the lock of stack %q that its killed engine (pid %d) left\n", g.stack, pid)
		}
		if removed {
			if err := g.Repair(g.out); err != nil {
				fmt.Fprintf(g.out, "%v\n", err)
			}
		}
	}
	g.rec.Engines = slices.DeleteFunc(g.rec.Engines, func(e engineLock) bool {
		return e.Elsewhere == "" && !e.Running() && !(keep && e.Pid == exit.Pid())
	})
	if err := g.writeRecord(); err != nil {
		fmt.Fprintf(g.out, "%v\n", err)
	}
}

// LockedMarker is the engine's error for a stack another operation holds.
const LockedMarker = "the stack is currently locked by"

// release gives up this process's share of the hold; the last one removes
// the record (unless it keeps engines of a holder elsewhere) and the
// kernel lock.
func (g *stackGuard) release() {
	if g == nil {
		return
	}
	guards.Lock()
	defer guards.Unlock()
	if g.refs--; g.refs > 0 {
		return
	}
	delete(guards.held, g.file.Name())
	g.endLease()
	g.mu.Lock()
	if len(g.rec.Engines) == 0 {
		_ = os.Remove(recordPath(g.holds, g.stack))
	}
	g.mu.Unlock()
	g.close()
}

// close gives up the kernel lock and the locks' store.
func (g *stackGuard) close() {
	if g.file != nil {
		_ = syscall.Flock(int(g.file.Fd()), syscall.LOCK_UN)
		g.file.Close()
	}
	g.Locks.Close()
}

// recordPath is where the holder of stack records itself, in the holds'
// directory.
func recordPath(holds, stack string) string { return filepath.Join(holds, stack+".json") }

// readRecord reads the record a holder of stack left: nil when there is none.
func readRecord(holds, stack string) (*guardRecord, error) {
	raw, err := os.ReadFile(recordPath(holds, stack))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the record of stack %q's last holder: %w", stack, err)
	}
	var r guardRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("the record of stack %q's last holder %s: %w", stack, recordPath(holds, stack), err)
	}
	return &r, nil
}

// writeRecord replaces the record whole, so that a kill mid-write leaves
// the old one or the new one.
func (g *stackGuard) writeRecord() error {
	raw, err := json.Marshal(g.rec)
	if err != nil {
		return err
	}
	tmp := recordPath(g.holds, g.stack) + ".new"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("recording stack %q's holder: %w", g.stack, err)
	}
	if err := os.Rename(tmp, recordPath(g.holds, g.stack)); err != nil {
		return fmt.Errorf("recording stack %q's holder: %w", g.stack, err)
	}
	return nil
}

// lockingCommand reports whether the pulumi command args takes the stack's
// lock in a local backend (pulumi v3.274 backend/diy: Preview, Update,
// Import, Refresh, Destroy, Watch, ImportDeployment, RemoveStack, rename),
// and names it. (The Automation API names the stack of `stack rm` and
// `stack rename` without --stack: those are not held.)
func lockingCommand(args []string) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	switch args[0] {
	case "preview", "up", "update", "refresh", "destroy", "import", "watch":
		return args[0], true
	case "stack":
		if len(args) > 1 && slices.Contains([]string{"import", "rm", "rename"}, args[1]) {
			return "stack " + args[1], true
		}
	}
	return "", false
}
