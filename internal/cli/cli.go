// Package cli is the kcp-tmc command: it deploys the kcp-tmc stacks through
// the Pulumi Automation API, running the same program as main.go inline (no
// Go language host), and runs the day-2 operations of package ops. It is a
// package (cmd/kcp-tmc is a thin main) so tests drive it in-process against
// the real engine and the local control plane.
//
//	kcp-tmc preview --stack dev
//	kcp-tmc up      --stack dev
//	kcp-tmc destroy --stack dev --yes
//	kcp-tmc backup verify --stack prod
//	kcp-tmc drill --stack prod --json
//
// Exit codes: 0 success, 1 the operation or check failed, 2 bad usage, 3 drift.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

const usage = `usage: kcp-tmc <command> --stack <dev|staging|prod> [flags]

  preview, up, destroy, refresh   the Pulumi operations, progress streamed
  drift          exits 3 when the stack differs from its program (refresh, then
                 preview; --refresh=false for render-mode stacks)
  renew          run it daily (the drift workflow does): tls.mode self-managed,
                 an up of only the certificates due for renewal and what uses
                 them (nothing due, no up); agents with copied identities,
                 agent-identity again
  outputs        prints the stack outputs as JSON (secrets masked)
  backup verify  fetches the newest etcd snapshot from the stack's backup target,
                 checks and restores it in scratch space, checks its age (RPO)
  drill          the DR drill: newest snapshot restored into a scratch etcd
                 cluster on loopback, data read back, RPO and RTO checked
  restore        writes every etcd member's restored data dir under --out from
                 --snapshot (default: the newest), for docs/runbook.md's restore
  smoke          after a deploy: GET /readyz at kcp's public address (the
                 front-proxy), a list through kcp (a quorum read from etcd),
                 etcd/kcp/front-proxy and every agent ready, a test workload
                 synced to every physical cluster and cleaned up, a short load
                 test (--load-duration)
  agent-identity writes each agent's kcp identity onto its physical cluster
                 (tls.mode cert-manager: the key cert-manager issued in kcp's
                 cluster; run after up and after each renewal; --cluster one)
  unlock         removes a lock a killed deploy left on the stack's local
                 or S3 state that the next command cannot tell is stale
                 (plain pulumi's, another machine's: --other-host);
                 refuses while its process still runs here
  help [command] this text, or a command's flags (also: <command> --help)

every command takes --stack and --project-dir (default .); exit codes: 0 ok,
1 the operation or a check failed, 2 bad usage, 3 drift
`

// Errors Run wraps, for ExitCode and callers.
var (
	ErrUsage = errors.New("usage")
	ErrDrift = errors.New("drift detected")
	// ErrCheck: a check ran and found problems (exit 1, like a failed operation).
	ErrCheck = errors.New("check failed")
)

// ExitCode maps Run's error to the process exit code: 0 success, 1 the
// operation or a check failed, 2 bad usage, 3 drift.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	case errors.Is(err, ErrDrift):
		return 3
	}
	return 1
}

// flags are a command line's parsed flags.
type flags struct {
	stack, dir                          string
	yes, expectNoChanges, asJSON, other bool
	skipCheckpoints                     bool
	refreshFirst                        bool // --refresh, resolved per command
	target, snapshot, etcdCluster, out  string
	cluster                             string
	smoke                               smokeFlags
}

// register declares every flag on fs; a command accepts the common ones and
// its own (command.flags), and help lists only those.
func (f *flags) register(fs *flag.FlagSet, refresh *bool) {
	fs.StringVar(&f.stack, "stack", "", "stack to operate on: dev, staging or prod")
	fs.StringVar(&f.dir, "project-dir", ".", "directory holding Pulumi.yaml and Pulumi.<stack>.yaml")
	fs.BoolVar(&f.yes, "yes", false, "confirm a destroy")
	fs.BoolVar(&f.expectNoChanges, "expect-no-changes", false, "fail if the operation would change anything")
	fs.BoolVar(refresh, "refresh", true, "drift (default true), preview and up (default false): refresh from the cluster first; false for render-mode stacks, which have no cluster")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON (outputs, drift, renew, backup verify, drill, restore, smoke)")
	fs.StringVar(&f.target, "target", "", "backup verify, drill, restore: read snapshots from this s3://bucket/prefix or file:///dir instead of the stack's backup target")
	fs.StringVar(&f.snapshot, "snapshot", "latest", "restore: the snapshot's object key, or latest")
	fs.StringVar(&f.etcdCluster, "etcd", etcd.Name, "backup verify, drill, restore: the etcd cluster: etcd (the root shard's) or etcd-<shard> (docs/sharding.md)")
	fs.StringVar(&f.out, "out", "", "restore: directory for the members' data dirs (must not hold data)")
	fs.StringVar(&f.cluster, "cluster", "", "agent-identity: only this cluster of kcp-tmc:clusters (default: every one)")
	fs.BoolVar(&f.skipCheckpoints, "skip-checkpoints", false, "up: write the state once, at the end, instead of at every step: for many creates (a first up of many clusters; README \"Scale\"), after a preview that refuses, before anything runs, any change a next up could not redo (only Kubernetes objects with names of their own pass)")
	fs.BoolVar(&f.other, "other-host", false, "unlock: also remove a lock taken on another machine (no deploy of the stack may run there)")
	f.smoke.register(fs)
}

// commonFlags apply to every command.
var commonFlags = map[string]bool{"stack": true, "project-dir": true}

// command is one kcp-tmc command: the flags it takes besides the common
// ones, what it checks of them before anything runs, and what it runs on
// the stack (or, for unlock, without the engine, which refuses a locked one).
type command struct {
	flags []string
	// mustExist: the command reads or changes existing state, so a mistyped
	// backend must not look like an empty stack.
	mustExist bool
	usage     func(f flags) string // a usage problem, or ""
	run       func(ctx context.Context, s auto.Stack, f flags, stdout, stderr io.Writer) error
	direct    func(ctx context.Context, f flags, stdout io.Writer) error
}

// commands is every command kcp-tmc runs.
var commands = map[string]command{
	"preview": {flags: []string{"expect-no-changes", "refresh"}, run: runPreview},
	"up":      {flags: []string{"expect-no-changes", "refresh", "skip-checkpoints"}, run: runUp},
	"destroy": {flags: []string{"yes"}, mustExist: true, run: runDestroy, usage: func(f flags) string {
		if !f.yes {
			return fmt.Sprintf("destroy removes stack %q's unprotected resources; pass --yes to confirm", f.stack)
		}
		return ""
	}},
	"refresh":       {mustExist: true, run: runRefresh},
	"outputs":       {flags: []string{"json"}, mustExist: true, run: runOutputs}, // always JSON; --json accepted for symmetry
	"drift":         {flags: []string{"refresh", "json"}, mustExist: true, run: runDrift},
	"renew":         {flags: []string{"json"}, mustExist: true, run: runRenew},
	"backup verify": {flags: []string{"target", "etcd", "json"}, run: backupCommand("backup verify")},
	"drill":         {flags: []string{"target", "etcd", "json"}, run: backupCommand("drill")},
	"restore": {flags: []string{"target", "etcd", "snapshot", "out", "json"}, run: backupCommand("restore"), usage: func(f flags) string {
		if f.out == "" {
			return "restore needs --out <dir> for the members' data dirs"
		}
		return ""
	}},
	"smoke": {flags: []string{"json", "kcp-kubeconfig", "kcp-server", "kubeconfig", "workload", "load-duration", "load-workers", "load-max-p99", "sync-timeout"},
		run: withConfig(func(ctx context.Context, cfg *stacks.Config, f flags, stdout io.Writer) error {
			return f.smoke.run(ctx, cfg, f.asJSON, stdout)
		})},
	"agent-identity": {flags: []string{"kubeconfig", "cluster"},
		run: withConfig(func(ctx context.Context, cfg *stacks.Config, f flags, stdout io.Writer) error {
			return agentIdentity(ctx, cfg, f.smoke.kubeconfig, f.cluster, stdout)
		})},
	"unlock": {flags: []string{"other-host"}, direct: func(_ context.Context, f flags, stdout io.Writer) error {
		return unlock(f.dir, f.stack, f.other, stdout)
	}},
}

// Run runs one command line (without the program name), streaming engine
// progress and results to stdout and problems to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name, args, err := commandOf(args, stdout, stderr)
	if err != nil || name == "" {
		return err
	}
	cmd := commands[name]
	f, err := parseFlags(name, cmd, args, stdout, stderr)
	if err != nil || f == nil {
		return err
	}
	if cmd.usage != nil {
		if problem := cmd.usage(*f); problem != "" {
			fmt.Fprintln(stderr, "kcp-tmc: "+problem)
			return ErrUsage
		}
	}
	if cmd.direct != nil {
		if err := cmd.direct(ctx, *f, stdout); err != nil {
			return fmt.Errorf("%s of stack %q failed: %w", name, f.stack, err)
		}
		return nil
	}
	log := stdout
	if f.asJSON {
		log = stderr // stdout is one JSON document
	}
	s, err := automation.Stack(ctx, automation.Options{Stack: f.stack, ProjectDir: f.dir, MustExist: cmd.mustExist, Log: log})
	if err == nil {
		err = cmd.run(ctx, s, *f, stdout, stderr)
	}
	err = withUnlockHint(err, f.stack)
	if err != nil && f.asJSON && !errors.Is(err, ErrDrift) && !errors.Is(err, ErrCheck) {
		// Scripts reading --json get a document even when the operation failed.
		_ = printJSON(stdout, map[string]any{"stack": f.stack, "command": name, "error": err.Error()})
	}
	if err != nil {
		return fmt.Errorf("%s of stack %q failed: %w", name, f.stack, err)
	}
	return nil
}

// commandOf picks the command out of args and returns the rest; "" with no
// error when it printed the usage it was asked for.
func commandOf(args []string, stdout, stderr io.Writer) (string, []string, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return "", nil, ErrUsage
	}
	// kcp-tmc --help / -h / help print the usage; help <command> is <command> --help.
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) == 1 || args[0] != "help" {
			fmt.Fprint(stdout, usage)
			return "", nil, nil
		}
		args = append(slices.Clone(args[1:]), "--help")
	}
	name := args[0]
	if name == "backup" {
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprintln(stderr, "kcp-tmc: backup needs a subcommand: backup verify")
			return "", nil, ErrUsage
		}
		name, args = "backup verify", args[1:]
	}
	if _, known := commands[name]; !known {
		fmt.Fprintf(stderr, "kcp-tmc: unknown command %q\n%s", name, usage)
		return "", nil, ErrUsage
	}
	return name, args[1:], nil
}

// parseFlags parses a command's flags, refusing the flags of other commands
// (silently ignored otherwise); nil with no error when it printed the help
// asked for.
func parseFlags(name string, cmd command, args []string, stdout, stderr io.Writer) (*flags, error) {
	fs := flag.NewFlagSet("kcp-tmc "+name, flag.ContinueOnError)
	var help strings.Builder
	fs.SetOutput(&help)
	takes := func(flagName string) bool { return commonFlags[flagName] || slices.Contains(cmd.flags, flagName) }
	fs.Usage = func() {
		fmt.Fprintf(&help, "usage: kcp-tmc %s --stack <dev|staging|prod> [flags]\n\nflags:\n", name)
		fs.VisitAll(func(fl *flag.Flag) {
			if !takes(fl.Name) {
				return
			}
			fmt.Fprintf(&help, "  --%s\t%s", fl.Name, fl.Usage)
			if fl.DefValue != "" && fl.DefValue != "false" {
				fmt.Fprintf(&help, " (default %s)", fl.DefValue)
			}
			fmt.Fprintln(&help)
		})
	}
	f := &flags{}
	var refresh bool
	f.register(fs, &refresh)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Asked for: usage on stdout, success.
			fmt.Fprint(stdout, help.String())
			return nil, nil
		}
		fmt.Fprint(stderr, help.String())
		return nil, ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kcp-tmc: unexpected argument %q (flags only)\n", fs.Arg(0))
		return nil, ErrUsage
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for flagName := range set {
		if !takes(flagName) {
			fmt.Fprintf(stderr, "kcp-tmc: %s does not take --%s\n", name, flagName)
			return nil, ErrUsage
		}
	}
	// --refresh defaults to true only for drift; preview and up refresh when asked.
	f.refreshFirst = refresh && (name == "drift" || set["refresh"])
	f.smoke.loadSet = set["load-duration"]
	if f.stack == "" {
		fmt.Fprintln(stderr, "kcp-tmc: --stack is required")
		return nil, ErrUsage
	}
	return f, nil
}

func runPreview(ctx context.Context, s auto.Stack, f flags, stdout, stderr io.Writer) error {
	opts := []optpreview.Option{optpreview.ProgressStreams(stdout), optpreview.ErrorProgressStreams(stderr)}
	if f.expectNoChanges {
		opts = append(opts, optpreview.ExpectNoChanges())
	}
	if f.refreshFirst {
		opts = append(opts, optpreview.Refresh())
	}
	_, err := automation.Preview(ctx, s, opts...)
	return err
}

func runUp(ctx context.Context, s auto.Stack, f flags, stdout, stderr io.Writer) error {
	opts := []optup.Option{optup.ProgressStreams(stdout), optup.ErrorProgressStreams(stderr)}
	if f.expectNoChanges {
		opts = append(opts, optup.ExpectNoChanges())
	}
	if f.refreshFirst {
		opts = append(opts, optup.Refresh())
	}
	if !f.skipCheckpoints {
		return automation.Up(ctx, s, stdout, opts...)
	}
	preview := []optpreview.Option{optpreview.ErrorProgressStreams(stderr)}
	if f.refreshFirst {
		preview = append(preview, optpreview.Refresh())
	}
	fmt.Fprintln(stdout, "--skip-checkpoints: previewing what the up would change")
	err := automation.UpSkippingCheckpoints(ctx, s, stdout, preview, opts...)
	if errors.Is(err, automation.ErrNotRedoable) {
		return fmt.Errorf("%w\nrun up without --skip-checkpoints", err)
	}
	return err
}

func runDestroy(ctx context.Context, s auto.Stack, _ flags, stdout, stderr io.Writer) error {
	_, err := s.Destroy(ctx, optdestroy.ProgressStreams(stdout), optdestroy.ErrorProgressStreams(stderr))
	return err
}

func runRefresh(ctx context.Context, s auto.Stack, _ flags, stdout, stderr io.Writer) error {
	_, err := s.Refresh(ctx, optrefresh.ProgressStreams(stdout), optrefresh.ErrorProgressStreams(stderr))
	return err
}

func runOutputs(ctx context.Context, s auto.Stack, _ flags, stdout, _ io.Writer) error {
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
	return printJSON(stdout, plain)
}

func runDrift(ctx context.Context, s auto.Stack, f flags, stdout, stderr io.Writer) error {
	opts := []optpreview.Option{optpreview.ErrorProgressStreams(stderr)}
	if f.refreshFirst {
		opts = append(opts, optpreview.Refresh())
	}
	res, err := automation.Preview(ctx, s, opts...)
	if conflicts := applyConflicts(err); len(conflicts) > 0 {
		// A hand edit took ownership of a field the program sets: that is
		// drift, and up would fail until it is undone.
		if f.asJSON {
			_ = printJSON(stdout, map[string]any{"stack": f.stack, "drift": true, "conflicts": conflicts})
		} else {
			fmt.Fprintf(stdout, "drift: stack %q has hand edits that conflict with its program (server-side apply); undo them "+
				"(or delete the object) and run up (docs/runbook.md#drift):\n  %s\n", f.stack, strings.Join(conflicts, "\n  "))
		}
		return ErrDrift
	}
	if err != nil {
		return err
	}
	changed := automation.Changed(res.ChangeSummary)
	switch {
	case f.asJSON:
		if err := printJSON(stdout, map[string]any{"stack": f.stack, "drift": changed > 0, "changes": res.ChangeSummary}); err != nil {
			return err
		}
	case changed > 0:
		fmt.Fprintf(stdout, "drift: stack %q would change %d resource(s): %v\n", f.stack, changed, res.ChangeSummary)
	default:
		fmt.Fprintf(stdout, "no drift: stack %q matches its program\n", f.stack)
	}
	if changed > 0 {
		return ErrDrift
	}
	return nil
}

// runRenew renews the stack's self-managed certificates that are due, in an
// up of them and what is built from them only, so it runs unattended
// (pulumi-tls renews only at an update: without one, a certificate simply
// expires); copies copied agent identities again; fails naming a CA near
// its end.
func runRenew(ctx context.Context, s auto.Stack, f flags, stdout, stderr io.Writer) error {
	progress := stdout
	if f.asJSON {
		progress = stderr
	}
	r, err := automation.Renew(ctx, s, time.Now(), progress, optup.ProgressStreams(progress), optup.ErrorProgressStreams(stderr))
	if err != nil {
		return err
	}
	cfg, err := automation.Config(ctx, s)
	if err != nil {
		return err
	}
	copied := []string{}
	if renewsCopiedIdentities(cfg) {
		// cert-manager renews a copied identity in kcp's cluster only: copy
		// it to the agents' clusters again (the same content is no change).
		if err := agentIdentity(ctx, cfg, "", "", progress); err != nil {
			return fmt.Errorf("copying the agents' identities: %w", err)
		}
		for _, cl := range cfg.Clusters {
			copied = append(copied, cl.Name)
		}
	}
	// A CA is replaced by a plan, not unattended: the run fails, naming it.
	var expiring []string
	for _, c := range r.Expiring {
		expiring = append(expiring, c.Name+" expires "+c.Expires.UTC().Format(time.RFC3339))
	}
	var caErr error
	if len(expiring) > 0 {
		caErr = fmt.Errorf("%w: replace the CA(s) of stack %q (docs/runbook.md \"Certificate expired\"): %s", ErrCheck, f.stack, strings.Join(expiring, "; "))
	}
	if f.asJSON {
		if err := printJSON(stdout, map[string]any{"stack": f.stack, "renewed": append([]automation.Certificate{}, r.Due...), "next": r.Next,
			"identitiesCopied": copied, "expiringCAs": append([]automation.Certificate{}, r.Expiring...)}); err != nil {
			return err
		}
		return caErr
	}
	switch {
	case len(r.Due) > 0:
		fmt.Fprintf(stdout, "renewed %d certificate(s) of stack %q\n", len(r.Due), f.stack)
	case r.Next == nil:
		fmt.Fprintf(stdout, "stack %q has no self-managed certificate to renew (tls.mode cert-manager renews in the cluster)\n", f.stack)
	default:
		fmt.Fprintf(stdout, "no certificate of stack %q is due for renewal; the next is %s, due %s\n", f.stack, r.Next.Name, r.Next.RenewAt.UTC().Format(time.RFC3339))
	}
	return caErr
}

// renewsCopiedIdentities: the stack's agents use identities agent-identity
// copies from kcp's cluster (tls.mode cert-manager without a kcp side), and
// kcp-tmc reaches that cluster (not render mode).
func renewsCopiedIdentities(cfg *stacks.Config) bool {
	return len(cfg.Clusters) > 0 && stacks.AgentIdentity(cfg) == agents.IdentityCopied && cfg.Target.Mode != stacks.TargetRender
}

// withConfig runs a day-2 command on the stack's validated config.
func withConfig(run func(ctx context.Context, cfg *stacks.Config, f flags, stdout io.Writer) error) func(context.Context, auto.Stack, flags, io.Writer, io.Writer) error {
	return func(ctx context.Context, s auto.Stack, f flags, stdout, _ io.Writer) error {
		cfg, err := automation.Config(ctx, s)
		if err != nil {
			return err
		}
		return run(ctx, cfg, f, stdout)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// applyConflicts picks the server-side apply conflicts out of a failed
// preview: which object, and which other field manager owns what.
func applyConflicts(err error) []string {
	if err == nil || !strings.Contains(err.Error(), "Server-Side Apply field conflict") {
		return nil
	}
	var out []string
	object := ""
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "kubernetes:") && strings.HasSuffix(line, "):"):
			object = strings.TrimSuffix(line, ":")
		case strings.Contains(line, "conflict with"):
			out = append(out, object+": "+line[strings.Index(line, "conflict with"):])
		}
	}
	if len(out) == 0 {
		out = append(out, "server-side apply field conflict (see the preview's diagnostics)")
	}
	return out
}
