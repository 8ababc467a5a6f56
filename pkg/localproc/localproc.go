// Package localproc answers whether a process of this machine still runs,
// for the clean-ups that must never take what a live process holds: a
// stack's lock (the engine's a killed kcp-tmc left, kcp-tmc unlock) and the
// private temp directories of kcp-tmc's processes (WorkDir), which a killed
// process leaves behind.
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
	fields, err := stat(pid)
	if err != nil {
		return true // no /proc (not Linux): the signal found it
	}
	return fields[0] != "Z"
}

// Process names one process of this machine: its pid and when it started
// (clock ticks since boot, /proc/<pid>/stat), as the kernel reuses pids.
type Process struct {
	Pid     int    `json:"pid"`
	Started uint64 `json:"started"`
}

// Find returns the running process pid, with its start.
func Find(pid int) (Process, error) {
	fields, err := stat(pid)
	if err != nil {
		return Process{}, err
	}
	started, err := strconv.ParseUint(fields[19], 10, 64) // field 22 of stat(5)
	if err != nil {
		return Process{}, fmt.Errorf("process %d: start time %q: %w", pid, fields[19], err)
	}
	return Process{Pid: pid, Started: started}, nil
}

// Running reports whether p still runs: its pid runs and started when p did.
func (p Process) Running() bool {
	now, err := Find(p.Pid)
	return err == nil && now.Started == p.Started && Running(p.Pid)
}

// Descends reports whether process pid is a child of ancestor, or a child's
// child (a few levels: the pulumi CLI may be started through a shim).
func Descends(pid, ancestor int) bool {
	for range 4 {
		fields, err := stat(pid)
		if err != nil {
			return false
		}
		if pid, err = strconv.Atoi(fields[1]); err != nil || pid <= 1 {
			return false
		}
		if pid == ancestor {
			return true
		}
	}
	return false
}

// Children returns the running children of process pid whose command name
// is name (/proc/<pid>/task/*/children; without it, every process's ppid).
func Children(pid int, name string) []Process {
	var pids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		raw, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(raw)) {
			if child, err := strconv.Atoi(f); err == nil {
				pids = append(pids, child)
			}
		}
	}
	if len(tasks) == 0 { // a kernel without CONFIG_PROC_CHILDREN
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if child, err := strconv.Atoi(e.Name()); err == nil {
				if fields, err := stat(child); err == nil && fields[1] == strconv.Itoa(pid) {
					pids = append(pids, child)
				}
			}
		}
	}
	var children []Process
	for _, child := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		if p, err := Find(child); err == nil {
			children = append(children, p)
		}
	}
	return children
}

// Args returns the command line process pid runs (/proc/<pid>/cmdline).
func Args(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00"), nil
}

// stat is /proc/<pid>/stat after "pid (comm)", which may hold spaces:
// state, ppid, … (stat(5) field 3 on).
func stat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(fields) < 20 {
		return nil, fmt.Errorf("process %d: /proc/%d/stat has %d fields after its name, want 20 or more", pid, pid, len(fields))
	}
	return fields, nil
}

// Identity is where a pid means one process, with Find's start time: this
// machine's name and boot, and on Linux its pid namespace (containers that
// share a hostname and a directory do not see each other's processes).
func Identity() (string, error) {
	id, err := identity()
	if err != nil {
		return "", err
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id, nil
	}
	return id + "/" + strings.TrimSpace(string(boot)), nil
}

// WorkDir creates a private (0700) temp directory for kind's files, to be
// removed by its caller when done. Its name carries this process's pid and
// identity (identity), so that a later kcp-tmc removes it if this process
// is killed before it can (SIGKILL skips deferred clean-ups): WorkDir first
// removes this user's directories of processes with the same identity that
// no longer run. What goes in them is sensitive: etcd snapshots,
// kubeconfigs. (An engine that outlives its killed kcp-tmc loses its
// directory with it; only its Helm releases read from there again, and it
// holds the stack's lock.)
func WorkDir(kind string) (string, error) {
	id, err := identity()
	if err != nil {
		return "", err
	}
	sweep(id)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%s-%d@%s-", workDirPrefix, kind, os.Getpid(), id))
	if err != nil {
		return "", fmt.Errorf("a temp directory for %s: %w", kind, err)
	}
	return dir, nil
}

const workDirPrefix = "kcp-tmc-"

// identity is where a pid means one process: this machine's name and, on
// Linux, its pid namespace (containers that share a hostname and /tmp do
// not see each other's processes).
func identity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("this machine's name, for a temp directory: %w", err)
	}
	ns, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return host, nil
	}
	return host + "~" + strings.Trim(strings.TrimPrefix(ns, "pid:"), "[]"), nil
}

// sweep removes this user's WorkDir directories whose process had identity
// id and runs no more. It is a clean-up of what a killed process left: a
// directory it cannot remove is left for a later one.
func sweep(id string) {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), workDirPrefix)
		kindPid, idRand, found := strings.Cut(rest, "@")
		if !ok || !found || !e.IsDir() || strings.LastIndexByte(idRand, '-') < 0 || idRand[:strings.LastIndexByte(idRand, '-')] != id {
			continue
		}
		pid, err := strconv.Atoi(kindPid[strings.LastIndexByte(kindPid, '-')+1:])
		if err != nil || Running(pid) || !ownedByMe(e) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
	}
}

// ownedByMe reports whether this user owns the directory entry.
func ownedByMe(e os.DirEntry) bool {
	info, err := e.Info()
	if err != nil {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Getuid()
}
