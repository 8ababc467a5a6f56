package cli

// unlock: a deploy killed mid-way (a CI runner's timeout, SIGKILL) leaves the
// Pulumi lock of its stack behind, and every later operation refuses to run.
// kcp-tmc's users have no pulumi on PATH, so kcp-tmc removes the lock itself,
// but never one whose owner still runs.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// The engine's errors for a stack another operation holds, and for a
// checkpoint (or its metadata) a killed deploy left half-written.
const (
	lockedMarker     = automation.LockedMarker
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

// running reports whether the lock's process still runs on this machine.
func running(l automation.StackLock, host string) bool {
	return l.Hostname == host && localproc.Running(l.Pid)
}

// unlock removes the stale locks of a stack in a local or S3 backend. It
// refuses while a lock's process runs on this machine, and a lock taken on
// another machine unless otherHost (kcp-tmc cannot see that machine's
// processes).
func unlock(projectDir, stack string, otherHost bool, stdout io.Writer) error {
	dir, err := filepath.Abs(projectDir)
	if err != nil {
		return err
	}
	backend := automation.BackendURL(dir, automation.Options{Stack: stack})
	store, err := automation.OpenLocks(backend, dir, stack)
	if err != nil {
		return err
	}
	if store == nil {
		return fmt.Errorf("%w: kcp-tmc does not read the locks of the backend %s: remove the stale lock object the error "+
			"of the killed deploy names (under .pulumi/locks/) once no deploy runs", ErrCheck, backend)
	}
	defer store.Close()
	// Holding the stack removes the locks of a killed kcp-tmc's engines
	// that run no more, and repairs the state; it refuses while a kcp-tmc
	// or its engine runs on the stack.
	release, err := automation.HoldStack(backend, dir, stack, "unlock", stdout)
	if errors.Is(err, automation.ErrStackInUse) {
		return fmt.Errorf("%w: not unlocking: %w", ErrCheck, err)
	}
	if err != nil {
		return err
	}
	defer release()
	locks, err := store.List()
	if err != nil {
		return err
	}
	if len(locks) == 0 {
		fmt.Fprintf(stdout, "stack %q is not locked\n", stack)
		return repairState(store, stdout)
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("this machine's name, to compare with the locks': %w", err)
	}
	// A lock a killed kcp-tmc's engine took in another container that shares
	// this host's name: its pid means nothing here.
	elsewhere, err := store.Elsewhere()
	if err != nil {
		return err
	}
	var refuse []string
	for _, l := range locks {
		switch {
		case running(l, host):
			refuse = append(refuse, fmt.Sprintf("%s still runs: wait for it to end, or stop it first", l))
		case elsewhere[l.Path] != "" && !otherHost:
			refuse = append(refuse, fmt.Sprintf("%s was taken by the engine of a killed kcp-tmc on another machine, boot or "+
				"container (%s), whose processes kcp-tmc cannot see from here: make sure it runs no more, then pass "+
				"--other-host", l, elsewhere[l.Path]))
		case l.Hostname != host && !otherHost:
			refuse = append(refuse, fmt.Sprintf("%s was taken on another machine, whose processes kcp-tmc cannot see: "+
				"make sure no deploy of stack %q runs there, then pass --other-host", l, stack))
		case !store.Local() && !otherHost:
			// Machines that share a bucket may share a name (containers).
			refuse = append(refuse, fmt.Sprintf("%s is in a bucket that other machines may share under this machine's "+
				"name: make sure no deploy of stack %q runs on any of them, then pass --other-host", l, stack))
		}
	}
	if len(refuse) > 0 {
		return fmt.Errorf("%w: not unlocking stack %q:\n  %s", ErrCheck, stack, strings.Join(refuse, "\n  "))
	}
	for _, l := range locks {
		if err := store.Remove(l); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed the lock of %s\n", l)
	}
	if err := repairState(store, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stack %q unlocked: run kcp-tmc up --stack %s, which finishes what the killed deploy began\n", stack, stack)
	return nil
}

// repairState is Locks.Repair, a damaged state it cannot repair being a
// failed check.
func repairState(store *automation.Locks, stdout io.Writer) error {
	if err := store.Repair(stdout); err != nil {
		return fmt.Errorf("%w: %w", ErrCheck, err)
	}
	return nil
}
