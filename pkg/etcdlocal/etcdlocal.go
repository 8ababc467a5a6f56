// Package etcdlocal runs real etcd clusters (the pinned binary from the
// toolchain) on loopback with mutual TLS: the TLS and backup tests use it, and
// so does `kcp-tmc drill`, which restores a stack's newest snapshot into one.
package etcdlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TLS names the PEM files a cluster runs with.
type TLS struct {
	ServerCert, ServerKey, PeerCert, PeerKey, CA string
}

// Member is one etcd member.
type Member struct {
	Name, ClientURL, PeerURL, DataDir string
	cmd                               *exec.Cmd
	log                               *bytes.Buffer
	// exited is closed when the process ends (its Wait has returned).
	exited chan struct{}
}

// Cluster is a running cluster.
type Cluster struct {
	Members []*Member
	TLS     TLS
	Token   string
}

// Endpoints are the members' client URLs, comma-separated.
func (c *Cluster) Endpoints() string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return strings.Join(eps, ",")
}

// InitialCluster is the --initial-cluster value.
func (c *Cluster) InitialCluster() string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.Name+"="+m.PeerURL)
	}
	return strings.Join(out, ",")
}

// New describes a cluster of n members with data under dir, on the given
// ports (2 per member); Start runs it.
func New(dir string, n int, ports []int, tls TLS) *Cluster {
	c := &Cluster{TLS: tls, Token: "etcdlocal"}
	for i := range n {
		c.Members = append(c.Members, &Member{
			Name:      fmt.Sprintf("etcd-%d", i),
			ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("https://127.0.0.1:%d", ports[2*i+1]),
			DataDir:   filepath.Join(dir, fmt.Sprintf("etcd-%d", i)),
		})
	}
	return c
}

// Start launches every member with client and peer mTLS and waits (up to
// 30s) until the cluster is healthy through clientCert/clientKey. On failure
// the members are stopped and the error carries their logs.
func (c *Cluster) Start(ctx context.Context, clientCert, clientKey string) error {
	if _, err := os.Stat(toolchain.Path("etcd")); err != nil {
		return fmt.Errorf("etcd not built (run hack/toolchain.sh judges): %w", err)
	}
	for _, m := range c.Members {
		m.log = &bytes.Buffer{}
		m.cmd = exec.Command(toolchain.Path("etcd"),
			"--name="+m.Name, "--data-dir="+m.DataDir,
			"--listen-client-urls="+m.ClientURL, "--advertise-client-urls="+m.ClientURL,
			"--listen-peer-urls="+m.PeerURL, "--initial-advertise-peer-urls="+m.PeerURL,
			"--initial-cluster="+c.InitialCluster(), "--initial-cluster-state=new", "--initial-cluster-token="+c.Token,
			"--cert-file="+c.TLS.ServerCert, "--key-file="+c.TLS.ServerKey,
			"--trusted-ca-file="+c.TLS.CA, "--client-cert-auth",
			"--peer-cert-file="+c.TLS.PeerCert, "--peer-key-file="+c.TLS.PeerKey,
			"--peer-trusted-ca-file="+c.TLS.CA, "--peer-client-cert-auth",
			"--log-level=warn", "--unsafe-no-fsync")
		m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			c.Stop()
			return fmt.Errorf("starting %s: %w", m.Name, err)
		}
		m.exited = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.exited)
	}
	deadline, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctx = deadline
	for {
		// A member that died (a port taken, bad flags) will not come back.
		for _, m := range c.Members {
			select {
			case <-m.exited:
				logs := c.Logs()
				c.Stop()
				return fmt.Errorf("etcd member %s exited while starting:\n%s", m.Name, logs)
			default:
			}
		}
		out, err := exec.CommandContext(ctx, toolchain.Path("etcdctl"), "--endpoints="+c.Endpoints(),
			"--cacert="+c.TLS.CA, "--cert="+clientCert, "--key="+clientKey,
			"endpoint", "health", "--dial-timeout=2s").CombinedOutput()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			logs := c.Logs()
			c.Stop()
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("starting etcd: %w", ctx.Err())
			}
			return fmt.Errorf("etcd cluster not healthy within 30s: %s\n%s", out, logs)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Logs are every member's output so far.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, m := range c.Members {
		if m.log != nil {
			fmt.Fprintf(&b, "%s log:\n%s\n", m.Name, m.log.String())
		}
	}
	return b.String()
}

// Stop kills every member (as a crash would) and waits for them.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		if m.cmd == nil || m.cmd.Process == nil {
			continue
		}
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
		m.cmd = nil
	}
}

// TB is the part of testing.TB the test helpers use (kept out of the
// non-test API so the CLI does not link the testing package).
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
}

// MustStart is Start for tests: it stops the cluster at cleanup and prints
// the members' logs when the test failed.
func (c *Cluster) MustStart(t TB, clientCert, clientKey string) {
	t.Helper()
	if err := c.Start(context.Background(), clientCert, clientKey); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", c.Logs())
		}
		c.Stop()
	})
}
