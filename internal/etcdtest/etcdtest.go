// Package etcdtest runs real etcd clusters (the pinned binary from the test
// toolchain) on loopback with mutual TLS, for the TLS and backup tests.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/internal/toolchain"
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

// FreePorts reserves n distinct loopback ports, holding them all until it returns.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// New describes a cluster of n members with data under dir, on the given
// ports (2 per member); Start runs it.
func New(dir string, n int, ports []int, tls TLS) *Cluster {
	c := &Cluster{TLS: tls, Token: "etcdtest"}
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

// Start launches every member with client and peer mTLS and waits until the
// cluster is healthy through clientCert/clientKey.
func (c *Cluster) Start(t testing.TB, clientCert, clientKey string) {
	t.Helper()
	if _, err := os.Stat(toolchain.Path("etcd")); err != nil {
		t.Fatalf("etcd not built (run hack/toolchain.sh judges): %v", err)
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
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range c.Members {
				if m.log != nil {
					t.Logf("%s log:\n%s", m.Name, m.log.String())
				}
			}
		}
		c.Stop()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, toolchain.Path("etcdctl"), "--endpoints="+c.Endpoints(),
			"--cacert="+c.TLS.CA, "--cert="+clientCert, "--key="+clientKey,
			"endpoint", "health", "--dial-timeout=2s").CombinedOutput()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("etcd cluster not healthy within 30s: %s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Stop kills every member (as a crash would) and waits for them.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		if m.cmd == nil || m.cmd.Process == nil {
			continue
		}
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		_ = m.cmd.Wait()
		m.cmd = nil
	}
}
