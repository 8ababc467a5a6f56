package cli

// unlock: a deploy killed mid-way (a CI runner's timeout, SIGKILL) leaves the
// Pulumi lock of its stack behind, and every later operation refuses to run.
// kcp-tmc's users have no pulumi on PATH, so kcp-tmc removes the lock itself,
// but never one whose owner still runs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// The engine's errors for a stack another operation holds, and for a
// checkpoint (or its metadata) a killed deploy left half-written.
const (
	lockedMarker     = "the stack is currently locked by"
	checkpointMarker = "failed to load checkpoint"
)

// withUnlockHint names the kcp-tmc command for a stale lock (the engine's
// error names `pulumi cancel`) or a checkpoint it cannot read.
func withUnlockHint(err error, stack string) error {
	if err == nil || (!strings.Contains(err.Error(), lockedMarker) && !strings.Contains(err.Error(), checkpointMarker)) {
		return err
	}
	return fmt.Errorf("%w\nif no deploy of stack %q runs any more (one was killed), run: kcp-tmc unlock --stack %s "+
		"(it refuses while the lock's process still runs on this machine; docs/runbook.md#a-killed-deploy)", err, stack, stack)
}

// stackLock is one lock file of the local state backend, as the engine
// writes it (pkg/backend/diy/lock.go: lockContent).
type stackLock struct {
	Path      string    `json:"-"`
	Pid       int       `json:"pid"`
	Username  string    `json:"username"`
	Hostname  string    `json:"hostname"`
	Timestamp time.Time `json:"timestamp"`
}

func (l stackLock) String() string {
	return fmt.Sprintf("%s@%s (pid %d) since %s", l.Username, l.Hostname, l.Pid, l.Timestamp.Format(time.RFC3339))
}

// stackLocks reads the lock files of stack in the local backend under state:
// <state>/.pulumi/locks/organization/<project>/<stack>/<id>.json.
func stackLocks(state, stack string) ([]stackLock, error) {
	dir := automation.LocksDir(state, stack)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the locks of stack %q: %w", stack, err)
	}
	var locks []stackLock
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading lock %s: %w", path, err)
		}
		l := stackLock{Path: path}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("lock %s is not a Pulumi lock: %w", path, err)
		}
		locks = append(locks, l)
	}
	return locks, nil
}

// running reports whether the lock's process still runs on this machine.
func (l stackLock) running(host string) bool {
	return l.Hostname == host && localproc.Running(l.Pid)
}

// unlock removes the stale locks of a stack in a local backend. It refuses
// while a lock's process runs on this machine, and a lock taken on another
// machine unless otherHost (kcp-tmc cannot see that machine's processes).
func unlock(projectDir, stack string, otherHost bool, stdout io.Writer) error {
	dir, err := filepath.Abs(projectDir)
	if err != nil {
		return err
	}
	backend := automation.BackendURL(dir, automation.Options{Stack: stack})
	state, ok := strings.CutPrefix(backend, "file://")
	if !ok {
		return fmt.Errorf("%w: the backend %s is not a local directory: remove the stale lock object the error of the "+
			"killed deploy names (under .pulumi/locks/) once no deploy runs", ErrCheck, backend)
	}
	locks, err := stackLocks(state, stack)
	if err != nil {
		return err
	}
	if len(locks) == 0 {
		fmt.Fprintf(stdout, "stack %q is not locked\n", stack)
		return repairState(state, stack, stdout)
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("this machine's name, to compare with the locks': %w", err)
	}
	var refuse []string
	for _, l := range locks {
		switch {
		case l.running(host):
			refuse = append(refuse, fmt.Sprintf("%s still runs: wait for it to end, or stop it first", l))
		case l.Hostname != host && !otherHost:
			refuse = append(refuse, fmt.Sprintf("%s was taken on another machine, whose processes kcp-tmc cannot see: "+
				"make sure no deploy of stack %q runs there, then pass --other-host", l, stack))
		}
	}
	if len(refuse) > 0 {
		return fmt.Errorf("%w: not unlocking stack %q:\n  %s", ErrCheck, stack, strings.Join(refuse, "\n  "))
	}
	for _, l := range locks {
		for _, f := range []string{l.Path, l.Path + sidecarExt} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("removing lock %s: %w", f, err)
			}
		}
		fmt.Fprintf(stdout, "removed the lock of %s\n", l)
	}
	if err := repairState(state, stack, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stack %q unlocked: run kcp-tmc up --stack %s, which finishes what the killed deploy began\n", stack, stack)
	return nil
}

// repairState undoes what a deploy killed mid-write leaves in a local
// backend. The engine's blob store (gocloud's fileblob) replaces a file
// atomically, but writes its metadata sidecar (<file>.attrs) in place first:
// killed in between, the sidecar is empty and every later read of the file
// fails ("failed to load checkpoint: EOF"). A missing sidecar reads as the
// defaults, so a damaged one is removed. A checkpoint damaged all the same
// (copied by hand, a network filesystem) is restored from the engine's .bak.
func repairState(state, stack string, stdout io.Writer) error {
	if err := removeDamagedSidecars(filepath.Join(state, ".pulumi"), stdout); err != nil {
		return err
	}
	return repairCheckpoint(state, stack, stdout)
}

// removeDamagedSidecars removes every metadata sidecar under dir that is not
// the JSON fileblob writes.
func removeDamagedSidecars(dir string, stdout io.Writer) error {
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, sidecarExt) {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if json.Valid(raw) {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing the damaged %s: %w", path, err)
		}
		fmt.Fprintf(stdout, "removed the damaged metadata file %s: a deploy was killed while writing it\n", path)
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil // no state yet
	}
	return err
}

// sidecarExt is the suffix of fileblob's metadata files (gocloud.dev/blob/fileblob attrs.go).
const sidecarExt = ".attrs"

// repairCheckpoint restores the stack's checkpoint from the engine's own
// backup (<stack>.json.bak, the state before the last write) when it is
// empty or cut short. The next up then finishes what the killed one began.
func repairCheckpoint(state, stack string, stdout io.Writer) error {
	file := automation.CheckpointPath(state, stack)
	raw, err := os.ReadFile(file)
	if err != nil || json.Valid(raw) {
		return nil // no checkpoint yet, or an intact one
	}
	bak, err := os.ReadFile(file + ".bak")
	if err != nil || !json.Valid(bak) {
		return fmt.Errorf("%w: the checkpoint %s is damaged (a deploy was killed while writing it) and has no intact "+
			".bak beside it: restore it from .pulumi/history", ErrCheck, file)
	}
	tmp := file + ".repair"
	if err := os.WriteFile(tmp, bak, 0o600); err != nil {
		return fmt.Errorf("restoring the checkpoint: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("restoring the checkpoint: %w", err)
	}
	fmt.Fprintf(stdout, "restored the checkpoint %s from its .bak: a deploy was killed while writing it\n", file)
	return nil
}
