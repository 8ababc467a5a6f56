package cluster

// Tearing the node down: its processes, mounts, network namespaces and
// iptables chains, and what a test checks was left behind.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// stopNode undoes the node in the order that lets each part clean up after
// itself: no controller recreates Pods, the kubelet stops every Pod (CNI
// DEL frees addresses and rules), then the processes stop, and whatever a
// kill left behind (containers, mounts, the bridge, rules) is removed.
func (c *Cluster) stopNode() {
	n := c.node
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Nothing publishes names once /etc/hosts is being put back.
	c.stopProcess("external-dns")
	if n.dns != nil {
		n.dns.stop()
	}
	if n.lb != nil {
		n.lb.stop()
	}
	c.stopProcess("kube-controller-manager")
	c.stopProcess("kube-scheduler")
	if c.running("kubelet") {
		// Force-deleted Pods leave the API at once; the kubelet still stops
		// their containers and sandboxes, so wait for containerd to have none running.
		_, _, _ = c.Kubectl(ctx, nil, "delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force", "--wait=false")
		_ = waitFor(ctx, 90*time.Second, "Pods stopped", func() error {
			out, err := c.ctr(ctx, "tasks", "ls")
			if err != nil {
				return nil // containerd gone: nothing to wait for
			}
			if running := strings.Count(out, "RUNNING"); running > 0 {
				return fmt.Errorf("%d tasks running", running)
			}
			return nil
		}, func() string { return "" })
	}
	c.stopProcess("kubelet")
	c.stopProcess("kube-proxy")
	// kube-network-policies (under unshare) cleans up on SIGINT only:
	// its table goes with the node, or the next Pods' traffic would be
	// queued to nobody.
	c.stopProcess("unshare")
	_ = exec.Command("nft", "delete", "table", "inet", netpolTable).Run()
	// kube-proxy's own cleanup removes every rule it wrote.
	if out, err := exec.Command(filepath.Join(c.bin, "kube-proxy"), "--cleanup").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "kube-proxy --cleanup: %v: %s\n", err, out)
	}
	if out, err := c.ctr(ctx, "containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = c.ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id)
			_, _ = c.ctr(ctx, "tasks", "delete", "-f", id)
			_, _ = c.ctr(ctx, "containers", "delete", id)
		}
	}
	c.stopProcess("containerd")
	if n.registries != nil {
		n.registries.Close()
	}
	if n.hosts != nil {
		if err := n.hosts.restore(); err != nil {
			fmt.Fprintln(os.Stderr, "restoring /etc/hosts:", err)
		}
	}
	unmountUnder(n.dir)
	unmountUnder(c.Dir)
	c.removeNetns()
	_ = exec.Command("ip", "link", "delete", bridgeName).Run()
	removeChains()
	for k, v := range n.sysctls {
		_ = os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644)
	}
	for _, l := range logLinksInto(n.dir) {
		_ = os.Remove(l)
	}
	_ = os.RemoveAll(n.dir)
	c.node = nil
}

// containerLogLinks is where the kubelet links each container's log (fixed
// in the kubelet, whatever its podLogsDir): the machine's own directory.
const containerLogLinks = "/var/log/containers"

// logLinksInto lists the links in containerLogLinks pointing under dir: the
// node's Pods', which the kubelet removes only with their containers.
func logLinksInto(dir string) []string {
	entries, err := os.ReadDir(containerLogLinks)
	if err != nil || dir == "" {
		return nil
	}
	var links []string
	for _, e := range entries {
		p := filepath.Join(containerLogLinks, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			links = append(links, p)
		}
	}
	return links
}

// running reports whether a process of that name was started and not stopped.
func (c *Cluster) running(name string) bool {
	for _, p := range c.procs {
		if filepath.Base(p.Path) == name && p.Process != nil && p.ProcessState == nil {
			return true
		}
	}
	return false
}

// stopProcess stops the named process (SIGTERM, then SIGKILL after 20s).
func (c *Cluster) stopProcess(name string) {
	for i, p := range c.procs {
		if filepath.Base(p.Path) != name || p.Process == nil {
			continue
		}
		stopGroup(p, 20*time.Second)
		c.procs = append(c.procs[:i], c.procs[i+1:]...)
		return
	}
}

// stopGroup signals a process group and waits, killing it after grace.
func stopGroup(p *exec.Cmd, grace time.Duration) {
	_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		// Octal escapes (\040 for a space) never occur in the harness's paths.
		mp := fields[4]
		if mp == real || strings.HasPrefix(mp, real+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unmountUnder(dir string) {
	// A bind mount can stack; repeat until nothing is left.
	for range 5 {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return
		}
		for _, mp := range mps {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
}

// removeNetns removes network namespaces containerd created and left behind.
func (c *Cluster) removeNetns() {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		if c.node.netnsSeen[e.Name()] || !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		p := filepath.Join("/var/run/netns", e.Name())
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
		_ = os.Remove(p)
	}
}

// removeChains deletes the iptables chains named KUBE-… or CNI-… that
// kube-proxy's cleanup leaves (the kubelet's own: KUBE-FIREWALL,
// KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and those of a Pod whose sandbox
// went without a CNI DEL: first the jumps to them, then their rules, then them.
func removeChains() {
	for _, table := range []string{"nat", "filter", "mangle"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		var ours []string
		builtin := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, ":") {
				continue
			}
			ch := strings.Fields(line[1:])[0]
			if strings.HasPrefix(ch, "KUBE-") || strings.HasPrefix(ch, "CNI-") {
				ours = append(ours, ch)
			} else {
				builtin[ch] = true
			}
		}
		if len(ours) == 0 {
			continue
		}
		for ch := range builtin {
			deleteJumps(table, ch)
		}
		for _, ch := range ours {
			_ = exec.Command("iptables", "-t", table, "-F", ch).Run()
		}
		for _, ch := range ours {
			_ = exec.Command("iptables", "-t", table, "-X", ch).Run()
		}
	}
}

// deleteJumps deletes, by number and from the last, the rules of chain
// that jump to a KUBE-… or CNI-… chain.
func deleteJumps(table, chain string) {
	out, err := exec.Command("iptables", "-t", table, "-L", chain, "-n", "--line-numbers").Output()
	if err != nil {
		return
	}
	lines := strings.Split(string(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) < 2 || (!strings.HasPrefix(f[1], "KUBE-") && !strings.HasPrefix(f[1], "CNI-")) {
			continue
		}
		_ = exec.Command("iptables", "-t", table, "-D", chain, f[0]).Run()
	}
}

// Leftovers lists what a stopped node left on the machine: processes
// started from its directories (or containerd's shims), mounts under them,
// the bridge or any veth, network namespaces, and kube-proxy's or CNI's
// iptables chains. Empty after a clean Stop.
func (c *Cluster) Leftovers() []string {
	var left []string
	for _, d := range []string{c.Dir, c.nodeDir} {
		for _, mp := range mountsUnder(d) {
			left = append(left, "mount "+mp)
		}
		for _, l := range logLinksInto(d) {
			left = append(left, "log link "+l)
		}
		if out, err := exec.Command("pgrep", "-a", "-f", d).Output(); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				left = append(left, "process "+line)
			}
		}
	}
	// pgrep -x matches 15 characters of a name at most: match the command line.
	if out, err := exec.Command("pgrep", "-a", "-f", "containerd-shim-runc-v2").Output(); err == nil {
		left = append(left, "process "+strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, bridgeName) || strings.Contains(line, ": veth") {
				left = append(left, "link "+strings.TrimSpace(line))
			}
		}
	}
	if entries, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "cni-") {
				left = append(left, "netns "+e.Name())
			}
		}
	}
	if exec.Command("nft", "list", "table", "inet", netpolTable).Run() == nil {
		left = append(left, "nftables table inet "+netpolTable)
	}
	for _, table := range []string{"nat", "filter", "mangle"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, ":KUBE-") || strings.HasPrefix(line, ":CNI-") {
				left = append(left, "iptables "+table+" chain "+strings.Fields(line[1:])[0])
			}
		}
	}
	return left
}
