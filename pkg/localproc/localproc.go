// Package localproc answers whether a process of this machine still runs,
// for the clean-ups that must never take what a live process holds: a
// stack's lock (kcp-tmc unlock) and the private temp directories of
// kcp-tmc's processes (WorkDir), which a killed process leaves behind.
package localproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Running reports whether process pid runs on this machine. A killed
// process whose parent died too may linger as a zombie until init reaps it:
// that one runs no more.
func Running(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc (not Linux): the signal found it
	}
	// pid (comm) state …: comm may hold spaces.
	after := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(after), "Z")
}

// WorkDir creates a private (0700) temp directory for kind's files, to be
// removed by its caller when done. Its name carries this process's pid and
// this machine's name, so that a later kcp-tmc removes it if this process
// is killed before it can (SIGKILL skips deferred clean-ups): WorkDir first
// removes the directories of processes of this machine that no longer run.
// What goes in them is sensitive: etcd snapshots, kubeconfigs. (An engine
// that outlives its killed kcp-tmc loses its directory with it; only its
// Helm releases read from there again, and it holds the stack's lock.)
func WorkDir(kind string) (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("this machine's name, for a temp directory: %w", err)
	}
	if err := sweep(host); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%s-%d@%s-", workDirPrefix, kind, os.Getpid(), host))
	if err != nil {
		return "", fmt.Errorf("a temp directory for %s: %w", kind, err)
	}
	return dir, nil
}

const workDirPrefix = "kcp-tmc-"

// sweep removes the WorkDir directories whose process ran on host and runs
// no more.
func sweep(host string) error {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return fmt.Errorf("listing %s for the temp directories of killed kcp-tmc processes: %w", os.TempDir(), err)
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), workDirPrefix)
		kindPid, hostRand, found := strings.Cut(rest, "@")
		if !ok || !found || !e.IsDir() || !strings.HasPrefix(hostRand, host+"-") {
			continue
		}
		pid, err := strconv.Atoi(kindPid[strings.LastIndexByte(kindPid, '-')+1:])
		if err != nil || Running(pid) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(os.TempDir(), e.Name())); err != nil {
			return fmt.Errorf("removing the temp directory of a killed kcp-tmc: %w", err)
		}
	}
	return nil
}
