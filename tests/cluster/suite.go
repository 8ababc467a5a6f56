package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RunSuite starts a cluster with start in a directory of its own, hands it
// to started (nil when none started, with the start's error) and runs the
// package's tests on it; then it stops the cluster and fails when the
// stopped cluster left anything on this machine. Ctrl-C or a timeout's
// SIGTERM still stops the cluster — its containers, mounts and rules would
// outlive the test otherwise; while the cluster starts, the signal cancels
// the start, which stops what it started. what names the cluster in the log.
func RunSuite(m *testing.M, what string, start func(ctx context.Context, dir string) (*Cluster, error), started func(*Cluster, error)) (code int) {
	dir, err := os.MkdirTemp("", "kcp-tmc-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	starting, cancelStart := context.WithCancel(context.Background())
	defer cancelStart()
	var (
		mu      sync.Mutex
		kube    *Cluster
		startOK bool // the start returned
	)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "%s: stopping the cluster\n", s)
		mu.Lock()
		if !startOK {
			cancelStart()
			mu.Unlock()
			return
		}
		k := kube
		mu.Unlock()
		if k != nil {
			k.Stop()
		}
		os.Exit(1)
	}()
	k, err := start(starting, dir)
	mu.Lock()
	kube, startOK = k, true
	if err == nil && starting.Err() != nil {
		err = errors.New("interrupted")
	}
	mu.Unlock()
	started(k, err)
	if k != nil {
		defer func() {
			t1 := time.Now()
			k.Stop()
			fmt.Fprintf(os.Stderr, "cluster stopped in %s\n", time.Since(t1).Round(time.Second))
			if left := k.Leftovers(); len(left) > 0 {
				fmt.Fprintf(os.Stderr, "FAIL: the stopped cluster left behind:\n  %s\n", strings.Join(left, "\n  "))
				code = 1
			}
		}()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the cluster:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s ready in %s\n", what, time.Since(t0).Round(time.Second))
	return m.Run()
}
