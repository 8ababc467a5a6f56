package automation

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// engineCommand runs every engine command
//   - with TMPDIR set to a directory of its own, removed when the command
//     ends (or by the next kcp-tmc, if this one is killed: localproc.WorkDir).
//     The Kubernetes provider writes the kubeconfig it is configured with,
//     credentials included, to a new temp file each time it starts and never
//     removes it (pulumi-kubernetes v4.32.0 pkg/provider/util.go
//     writeKubeconfigToFile): every operation left one file per cluster, and
//     kcp's admin certificate, in /tmp.
//   - holding the stack (holdStack) when the command takes the stack's lock
//     in a local backend, recording that lock, so that a kill of this
//     process or of the engine never leaves a lock a person must remove.
type engineCommand struct{ auto.PulumiCommand }

func (p engineCommand) Run(ctx context.Context, workdir string, stdin io.Reader, out, errOut []io.Writer,
	env []string, args ...string) (stdout, stderr string, code int, err error) {
	dir, err := localproc.WorkDir("engine")
	if err != nil {
		return "", "", -1, err
	}
	defer os.RemoveAll(dir)
	if command, locks := lockingCommand(args); locks {
		g, holdErr := holdStack(envValue(env, "PULUMI_BACKEND_URL"), workdir, flagValue(args, "--stack"), command, io.MultiWriter(out...))
		if holdErr != nil {
			return "", holdErr.Error(), -1, holdErr
		}
		if g != nil {
			defer g.release()
			w := g.watchEngine()
			defer func() { w.ended(err, stderr) }() // the command's result
		}
	}
	// Last, so it wins over a TMPDIR in the workspace's variables.
	return p.PulumiCommand.Run(ctx, workdir, stdin, out, errOut, append(slices.Clip(env), "TMPDIR="+dir), args...)
}

// envValue is name's value in env as a command started with it sees it:
// the last setting, else this process's.
func envValue(env []string, name string) string {
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return os.Getenv(name)
}

// flagValue is the value of the last flag in args (the Automation API adds
// --stack <name> to every stack command).
func flagValue(args []string, flag string) string {
	for i := len(args) - 2; i >= 0; i-- {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}
