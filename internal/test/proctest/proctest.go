// Package proctest kills a command the way a CI runner's timeout does: the
// process and every process below it, with SIGKILL, in the middle of its work.
package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillDuring starts cmd and, once a line of its stdout contains marker,
// waits delay and SIGKILLs cmd and its descendants (the Automation API
// starts pulumi in a process group of its own, so killing cmd's group
// would leave pulumi running). It returns cmd's output up to the kill, and
// an error if cmd ended before it could be killed.
func KillDuring(cmd *exec.Cmd, marker string, delay time.Duration) (string, error) {
	return KillAfter(cmd, marker, 1, delay)
}

// KillAfter is KillDuring at the nth line that contains marker.
func KillAfter(cmd *exec.Cmd, marker string, nth int, delay time.Duration) (string, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var seen bytes.Buffer
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		seen.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), marker) {
			if nth--; nth > 0 {
				continue
			}
			time.Sleep(delay)
			for _, pid := range Tree(cmd.Process.Pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = cmd.Wait()
			return seen.String(), nil
		}
	}
	_ = cmd.Wait()
	return seen.String(), fmt.Errorf("%s ended before %q appeared %d times", cmd.Path, marker, nth)
}

// Tree is pid and every process below it, read from /proc.
func Tree(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so read after its ")".
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 {
			parent[p], _ = strconv.Atoi(fields[1])
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		for p, pp := range parent {
			if pp == tree[i] {
				tree = append(tree, p)
			}
		}
	}
	return tree
}
