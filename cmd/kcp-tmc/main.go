// Command kcp-tmc deploys the kcp-tmc stacks through the Pulumi Automation
// API, running the same program as main.go inline (no Go language host).
//
//	kcp-tmc preview --stack dev
//	kcp-tmc up      --stack dev
//	kcp-tmc destroy --stack dev --yes
//
// Exit codes: 0 success, 1 the operation failed, 2 bad usage, 3 drift.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

const usage = `usage: kcp-tmc <preview|up|destroy|refresh|outputs|drift> --stack <dev|staging|prod> [flags]

  drift   exits 3 when the stack differs from its program (refresh, then preview;
          --refresh=false for render-mode stacks)
  outputs prints the stack outputs as JSON (secrets masked)

flags:
`

var (
	errUsage = errors.New("usage")
	errDrift = errors.New("drift detected")
)

func main() {
	stacks.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, errDrift):
		fmt.Fprintln(os.Stderr, "kcp-tmc:", err)
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "kcp-tmc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	command := args[0]
	fs := flag.NewFlagSet("kcp-tmc "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	stack := fs.String("stack", "", "stack to operate on: dev, staging or prod")
	dir := fs.String("project-dir", ".", "directory holding Pulumi.yaml and Pulumi.<stack>.yaml")
	yes := fs.Bool("yes", false, "confirm a destroy")
	expectNoChanges := fs.Bool("expect-no-changes", false, "fail if the operation would change anything")
	refresh := fs.Bool("refresh", true, "drift: refresh from the cluster first (false for render-mode stacks, which have no cluster)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *stack == "" {
		fmt.Fprintln(stderr, "kcp-tmc: --stack is required")
		return errUsage
	}

	var op func(auto.Stack) error
	switch command {
	case "preview":
		op = func(s auto.Stack) error {
			opts := []optpreview.Option{optpreview.ProgressStreams(stdout), optpreview.ErrorProgressStreams(stderr)}
			if *expectNoChanges {
				opts = append(opts, optpreview.ExpectNoChanges())
			}
			_, err := s.Preview(ctx, opts...)
			return err
		}
	case "up":
		op = func(s auto.Stack) error {
			opts := []optup.Option{optup.ProgressStreams(stdout), optup.ErrorProgressStreams(stderr)}
			if *expectNoChanges {
				opts = append(opts, optup.ExpectNoChanges())
			}
			_, err := s.Up(ctx, opts...)
			return err
		}
	case "destroy":
		if !*yes {
			fmt.Fprintf(stderr, "kcp-tmc: destroy removes stack %q's unprotected resources; pass --yes to confirm\n", *stack)
			return errUsage
		}
		op = func(s auto.Stack) error {
			_, err := s.Destroy(ctx, optdestroy.ProgressStreams(stdout), optdestroy.ErrorProgressStreams(stderr))
			return err
		}
	case "refresh":
		op = func(s auto.Stack) error {
			_, err := s.Refresh(ctx, optrefresh.ProgressStreams(stdout), optrefresh.ErrorProgressStreams(stderr))
			return err
		}
	case "outputs":
		op = func(s auto.Stack) error {
			outs, err := s.Outputs(ctx)
			if err != nil {
				return err
			}
			plain := map[string]any{}
			for k, v := range outs {
				if v.Secret {
					plain[k] = "[secret]"
				} else {
					plain[k] = v.Value
				}
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(plain)
		}
	case "drift":
		op = func(s auto.Stack) error {
			opts := []optpreview.Option{optpreview.ErrorProgressStreams(stderr)}
			if *refresh {
				opts = append(opts, optpreview.Refresh())
			}
			res, err := s.Preview(ctx, opts...)
			if err != nil {
				return err
			}
			changed := 0
			for opType, n := range res.ChangeSummary {
				if opType != apitype.OpSame {
					changed += n
				}
			}
			if changed > 0 {
				fmt.Fprintf(stdout, "drift: stack %q would change %d resource(s): %v\n", *stack, changed, res.ChangeSummary)
				return errDrift
			}
			fmt.Fprintf(stdout, "no drift: stack %q matches its program\n", *stack)
			return nil
		}
	default:
		fmt.Fprintf(stderr, "kcp-tmc: unknown command %q\n", command)
		fs.Usage()
		return errUsage
	}

	s, err := automation.Stack(ctx, automation.Options{Stack: *stack, ProjectDir: *dir})
	if err != nil {
		return err
	}
	if err := op(s); err != nil {
		return fmt.Errorf("%s of stack %q failed: %w", command, *stack, err)
	}
	return nil
}
