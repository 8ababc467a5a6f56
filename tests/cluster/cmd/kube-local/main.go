// Command kube-local starts the same local control plane the tests use
// (etcd, kube-apiserver, kube-controller-manager on loopback) and keeps it
// running until interrupted, for poking at it by hand:
//
//	go run ./tests/cluster/cmd/kube-local
//	export KUBECONFIG=<printed path>; kubectl get ns
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "kube-local-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := cluster.Start(ctx, automation.ToolchainBin(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube-local:", err)
		os.Exit(1)
	}
	defer c.Stop()
	fmt.Printf("control plane up at %s\nexport KUBECONFIG=%s\nexport PATH=%s:$PATH\nlogs: %s/*.log — Ctrl-C stops it\n",
		c.Server, c.Kubeconfig, automation.ToolchainBin(), filepath.Clean(dir))
	<-ctx.Done()
}
