// Command kcp-tmc deploys the kcp-tmc stacks through the Pulumi Automation
// API and runs their day-2 operations; `kcp-tmc` alone prints the commands.
//
// Exit codes: 0 success, 1 the operation or a check failed, 2 bad usage, 3 drift.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kcp-tmc/kcp-tmc/internal/cli"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

func main() {
	stacks.TuneGC()
	// SIGTERM too (CI cancellation, timeout): the defers remove fetched
	// snapshots and smoke objects.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, cli.ErrUsage) {
		fmt.Fprintln(os.Stderr, "kcp-tmc:", err)
	}
	os.Exit(cli.ExitCode(err))
}
