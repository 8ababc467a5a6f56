package automation

import (
	"context"
	"io"
	"os"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// privateTemp runs every engine command with TMPDIR set to a directory of
// its own, removed when the command ends (or by the next kcp-tmc, if this
// one is killed: localproc.WorkDir). The Kubernetes provider writes the
// kubeconfig it is configured with, credentials included, to a new temp
// file each time it starts and never removes it (pulumi-kubernetes v4.32.0
// pkg/provider/util.go writeKubeconfigToFile): every operation left one
// file per cluster, and kcp's admin certificate, in /tmp.
type privateTemp struct{ auto.PulumiCommand }

func (p privateTemp) Run(ctx context.Context, workdir string, stdin io.Reader, out, errOut []io.Writer,
	env []string, args ...string) (string, string, int, error) {
	dir, err := localproc.WorkDir("engine")
	if err != nil {
		return "", "", -1, err
	}
	defer os.RemoveAll(dir)
	// Last, so it wins over a TMPDIR in the workspace's variables.
	return p.PulumiCommand.Run(ctx, workdir, stdin, out, errOut, append(slices.Clip(env), "TMPDIR="+dir), args...)
}
