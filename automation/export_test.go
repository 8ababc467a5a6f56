package automation

import (
	"context"
	"io"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
)

// HealKilledHelmOperations is Up's state read, for BenchmarkUpReadsState.
func HealKilledHelmOperations(ctx context.Context, s auto.Stack, out io.Writer) {
	g, err := holdStack(s.Workspace().GetEnvVars()["PULUMI_BACKEND_URL"], s.Workspace().WorkDir(), s.Name(), "up", out)
	if err != nil {
		panic(err)
	}
	defer g.release()
	healKilledHelmOperations(ctx, s, g, out)
}

// ClearRedoneCreates is Up's last step, for BenchmarkClearRedoneCreates.
func ClearRedoneCreates(ctx context.Context, s auto.Stack, out io.Writer) {
	locks, err := OpenLocks(s.Workspace().GetEnvVars()["PULUMI_BACKEND_URL"], s.Workspace().WorkDir(), s.Name())
	if err != nil {
		panic(err)
	}
	defer locks.Close()
	clearRedoneCreates(ctx, s, locks, out)
}
