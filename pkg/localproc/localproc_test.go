package localproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRunning(t *testing.T) {
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pid  int
		want bool
	}{
		{"this process", os.Getpid(), true},
		{"an exited process", exited.Process.Pid, false},
		{"no pid", 0, false},
	} {
		if got := Running(tc.pid); got != tc.want {
			t.Errorf("%s: Running(%d) = %v, want %v", tc.name, tc.pid, got, tc.want)
		}
	}
}

// TestWorkDirSweepsKilledProcesses: a new WorkDir removes the directories
// of this machine's processes that no longer run, and only those.
func TestWorkDirSweepsKilledProcesses(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	host, err := identity()
	if err != nil {
		t.Fatal(err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	name := func(kind string, pid any, host string) string {
		return fmt.Sprintf("kcp-tmc-%s-%v@%s-123", kind, pid, host)
	}
	dead, live := exited.Process.Pid, os.Getpid()
	tests := []struct {
		name string
		dir  bool
		kept bool
	}{
		{name("engine", dead, host), true, false},
		{name("drill", dead, host), true, false},
		{name("engine", live, host), true, true},
		{name("engine", dead, "another-"+host), true, true}, // its processes cannot be seen from here
		{name("engine", dead, host+"-2"), true, true},       // another machine whose name starts with this one's
		{name("engine", "x", host), true, true},
		{name("engine", dead, host) + "-file", false, true},
		{"kcp-tmc-kube-123", true, true},
		{"kubeconfig999", false, true}, // not kcp-tmc's
	}
	for _, tc := range tests {
		path := filepath.Join(os.TempDir(), tc.name)
		if tc.dir {
			err = os.MkdirAll(filepath.Join(path, "sub"), 0o700)
		} else {
			err = os.WriteFile(path, nil, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	dir, err := WorkDir("engine")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 || !strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("kcp-tmc-engine-%d@%s-", live, host)) {
		t.Errorf("WorkDir = %s (%v, err %v), want a private kcp-tmc-engine-<pid>@<host>-* directory", dir, fi.Mode(), err)
	}
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	for _, tc := range tests {
		if slices.Contains(left, tc.name) != tc.kept {
			t.Errorf("%s: kept = %v, want %v", tc.name, !tc.kept, tc.kept)
		}
	}
}

// TestProcessNamesOneProcess: a Process found while it runs is running
// until it exits; its pid then names nothing, or another process.
func TestProcessNamesOneProcess(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := Find(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	self, err := Find(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    Process
		want bool
	}{
		{"a running child", p, true},
		{"this process", self, true},
		{"the child's pid, started at another time (a reused pid)", Process{Pid: p.Pid, Started: p.Started + 1}, false},
	} {
		if got := tc.p.Running(); got != tc.want {
			t.Errorf("%s: Running() = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !Descends(p.Pid, os.Getpid()) || Descends(os.Getpid(), p.Pid) || Descends(os.Getpid(), os.Getpid()) {
		t.Errorf("Descends: the child descends from this process, and not the other way round")
	}
	if got := Children(os.Getpid(), "sleep"); !slices.Contains(got, p) {
		t.Errorf("Children(this process, sleep) = %v, want the child %v among them", got, p)
	}
	// Start returns once the exec began; the kernel fills in the new
	// command line a moment later (it reads as empty until then).
	args, err := Args(p.Pid)
	for deadline := time.Now().Add(time.Second); err == nil && slices.Equal(args, []string{""}) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		args, err = Args(p.Pid)
	}
	if err != nil || !slices.Equal(args, []string{"sleep", "60"}) {
		t.Errorf("Args(the child) = %q, %v; want sleep 60", args, err)
	}
	if got := Children(os.Getpid(), "pulumi"); len(got) != 0 {
		t.Errorf("Children(this process, pulumi) = %v, want none (the name is matched)", got)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	if p.Running() {
		t.Errorf("the killed child still runs")
	}
}
