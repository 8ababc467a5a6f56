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
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

const usage = `usage: kcp-tmc <command> --stack <dev|staging|prod> [flags]

  preview, up, destroy, refresh   the Pulumi operations, progress streamed
  drift          exits 3 when the stack differs from its program (refresh, then
                 preview; --refresh=false for render-mode stacks)
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
  unlock         removes the lock a killed deploy left on the stack's local
                 state (refuses while its process still runs here; a lock
                 taken on another machine needs --other-host)
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

// commonFlags apply to every command; commandFlags lists each command's own.
var (
	commonFlags  = map[string]bool{"stack": true, "project-dir": true}
	commandFlags = map[string][]string{
		"preview":        {"expect-no-changes", "refresh"},
		"up":             {"expect-no-changes", "refresh"},
		"destroy":        {"yes"},
		"refresh":        nil,
		"outputs":        {"json"}, // always JSON; accepted for symmetry
		"drift":          {"refresh", "json"},
		"backup verify":  {"target", "etcd", "json"},
		"drill":          {"target", "etcd", "json"},
		"restore":        {"target", "etcd", "snapshot", "out", "json"},
		"smoke":          {"json", "kcp-kubeconfig", "kcp-server", "kubeconfig", "workload", "load-duration", "load-workers", "load-max-p99", "sync-timeout"},
		"agent-identity": {"kubeconfig", "cluster"},
		"unlock":         {"other-host"},
	}
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

// Run runs one command line (without the program name), streaming engine
// progress and results to stdout and problems to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	// kcp-tmc --help / -h / help print the usage; help <command> is <command> --help.
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) == 1 || args[0] != "help" {
			fmt.Fprint(stdout, usage)
			return nil
		}
		args = append(slices.Clone(args[1:]), "--help")
	}
	command := args[0]
	if command == "backup" {
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprintln(stderr, "kcp-tmc: backup needs a subcommand: backup verify")
			return ErrUsage
		}
		command, args = "backup verify", args[1:]
	}
	allowed, known := commandFlags[command]
	if !known {
		fmt.Fprintf(stderr, "kcp-tmc: unknown command %q\n%s", command, usage)
		return ErrUsage
	}
	fs := flag.NewFlagSet("kcp-tmc "+command, flag.ContinueOnError)
	var help strings.Builder
	fs.SetOutput(&help)
	fs.Usage = func() {
		fmt.Fprintf(&help, "usage: kcp-tmc %s --stack <dev|staging|prod> [flags]\n\nflags:\n", command)
		// Only the flags this command takes.
		fs.VisitAll(func(f *flag.Flag) {
			if !commonFlags[f.Name] && !slices.Contains(allowed, f.Name) {
				return
			}
			fmt.Fprintf(&help, "  --%s\t%s", f.Name, f.Usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(&help, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(&help)
		})
	}
	stack := fs.String("stack", "", "stack to operate on: dev, staging or prod")
	dir := fs.String("project-dir", ".", "directory holding Pulumi.yaml and Pulumi.<stack>.yaml")
	yes := fs.Bool("yes", false, "confirm a destroy")
	expectNoChanges := fs.Bool("expect-no-changes", false, "fail if the operation would change anything")
	refresh := fs.Bool("refresh", true, "drift (default true), preview and up (default false): refresh from the cluster first; false for render-mode stacks, which have no cluster")
	asJSON := fs.Bool("json", false, "print the result as JSON (outputs, drift, backup verify, drill, restore, smoke)")
	target := fs.String("target", "", "backup verify, drill, restore: read snapshots from this s3://bucket/prefix or file:///dir instead of the stack's backup target")
	snapshot := fs.String("snapshot", "latest", "restore: the snapshot's object key, or latest")
	etcdCluster := fs.String("etcd", etcd.Name, "backup verify, drill, restore: the etcd cluster: etcd (the root shard's) or etcd-<shard> (docs/sharding.md)")
	out := fs.String("out", "", "restore: directory for the members' data dirs (must not hold data)")
	cluster := fs.String("cluster", "", "agent-identity: only this cluster of kcp-tmc:clusters (default: every one)")
	otherHost := fs.Bool("other-host", false, "unlock: also remove a lock taken on another machine (no deploy of the stack may run there)")
	var smoke smokeFlags
	smoke.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Asked for: usage on stdout, success.
			fmt.Fprint(stdout, help.String())
			return nil
		}
		fmt.Fprint(stderr, help.String())
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kcp-tmc: unexpected argument %q (flags only)\n", fs.Arg(0))
		return ErrUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name := range set {
		if !commonFlags[name] && !slices.Contains(allowed, name) {
			// A flag another command takes would be silently ignored here.
			fmt.Fprintf(stderr, "kcp-tmc: %s does not take --%s\n", command, name)
			return ErrUsage
		}
	}
	// --refresh defaults to true only for drift; preview and up refresh when asked.
	refreshFirst := *refresh && (command == "drift" || set["refresh"])
	smoke.loadSet = set["load-duration"]
	if *stack == "" {
		fmt.Fprintln(stderr, "kcp-tmc: --stack is required")
		return ErrUsage
	}

	if command == "unlock" { // no engine: the engine refuses a locked stack
		if err := unlock(*dir, *stack, *otherHost, stdout); err != nil {
			return fmt.Errorf("unlock of stack %q failed: %w", *stack, err)
		}
		return nil
	}

	var op func(auto.Stack) error
	switch command {
	case "preview":
		op = func(s auto.Stack) error {
			opts := []optpreview.Option{optpreview.ProgressStreams(stdout), optpreview.ErrorProgressStreams(stderr)}
			if *expectNoChanges {
				opts = append(opts, optpreview.ExpectNoChanges())
			}
			if refreshFirst {
				opts = append(opts, optpreview.Refresh())
			}
			_, err := automation.Preview(ctx, s, opts...)
			return err
		}
	case "up":
		op = func(s auto.Stack) error {
			opts := []optup.Option{optup.ProgressStreams(stdout), optup.ErrorProgressStreams(stderr)}
			if *expectNoChanges {
				opts = append(opts, optup.ExpectNoChanges())
			}
			if refreshFirst {
				opts = append(opts, optup.Refresh())
			}
			_, err := s.Up(ctx, opts...)
			return err
		}
	case "destroy":
		if !*yes {
			fmt.Fprintf(stderr, "kcp-tmc: destroy removes stack %q's unprotected resources; pass --yes to confirm\n", *stack)
			return ErrUsage
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
			return printJSON(stdout, plain)
		}
	case "drift":
		op = func(s auto.Stack) error {
			opts := []optpreview.Option{optpreview.ErrorProgressStreams(stderr)}
			if refreshFirst {
				opts = append(opts, optpreview.Refresh())
			}
			res, err := automation.Preview(ctx, s, opts...)
			if conflicts := applyConflicts(err); len(conflicts) > 0 {
				// A hand edit took ownership of a field the program sets:
				// that is drift, and up would fail until it is undone.
				if *asJSON {
					_ = printJSON(stdout, map[string]any{"stack": *stack, "drift": true, "conflicts": conflicts})
				} else {
					fmt.Fprintf(stdout, "drift: stack %q has hand edits that conflict with its program (server-side apply); undo them "+
						"(or delete the object) and run up (docs/runbook.md#drift):\n  %s\n", *stack, strings.Join(conflicts, "\n  "))
				}
				return ErrDrift
			}
			if err != nil {
				return err
			}
			changed := 0
			for opType, n := range res.ChangeSummary {
				if opType != apitype.OpSame {
					changed += n
				}
			}
			if *asJSON {
				if err := printJSON(stdout, map[string]any{"stack": *stack, "drift": changed > 0, "changes": res.ChangeSummary}); err != nil {
					return err
				}
			} else if changed > 0 {
				fmt.Fprintf(stdout, "drift: stack %q would change %d resource(s): %v\n", *stack, changed, res.ChangeSummary)
			} else {
				fmt.Fprintf(stdout, "no drift: stack %q matches its program\n", *stack)
			}
			if changed > 0 {
				return ErrDrift
			}
			return nil
		}
	case "backup verify", "drill", "restore":
		if command == "restore" && *out == "" {
			fmt.Fprintln(stderr, "kcp-tmc: restore needs --out <dir> for the members' data dirs")
			return ErrUsage
		}
		op = func(s auto.Stack) error {
			cfg, err := automation.Config(ctx, s)
			if err != nil {
				return err
			}
			cluster, err := ops.EtcdClusterOf(cfg, *etcdCluster)
			if err != nil {
				return err
			}
			src, err := backupSource(cfg, cluster.Name, *target)
			if err != nil {
				return err
			}
			return backupOp(ctx, command, cfg, cluster, src, *snapshot, *out, *asJSON, stdout)
		}
	case "smoke":
		op = func(s auto.Stack) error {
			cfg, err := automation.Config(ctx, s)
			if err != nil {
				return err
			}
			return smoke.run(ctx, cfg, *asJSON, stdout)
		}
	case "agent-identity":
		op = func(s auto.Stack) error {
			cfg, err := automation.Config(ctx, s)
			if err != nil {
				return err
			}
			return agentIdentity(ctx, cfg, smoke.kubeconfig, *cluster, stdout)
		}
	default: // commandFlags lists a command this switch does not run
		return fmt.Errorf("kcp-tmc: command %q is not implemented", command)
	}

	// Verbs that read or change existing state need the stack to exist: a
	// mistyped backend must not look like an empty stack.
	stateVerb := command == "outputs" || command == "drift" || command == "refresh" || command == "destroy"
	s, err := automation.Stack(ctx, automation.Options{Stack: *stack, ProjectDir: *dir, MustExist: stateVerb})
	if err == nil {
		err = op(s)
	}
	err = withUnlockHint(err, *stack)
	if err != nil && *asJSON && !errors.Is(err, ErrDrift) && !errors.Is(err, ErrCheck) {
		// Scripts reading --json get a document even when the operation failed.
		_ = printJSON(stdout, map[string]any{"stack": *stack, "command": command, "error": err.Error()})
	}
	if err != nil {
		return fmt.Errorf("%s of stack %q failed: %w", command, *stack, err)
	}
	return nil
}

// backupSource is where an etcd cluster's snapshots are: the stack's backup
// target, or the --target override, under the cluster's snapshot prefix.
func backupSource(cfg *stacks.Config, etcdCluster, target string) (ops.BackupSource, error) {
	if target == "" {
		return ops.BackupSourceOf(cfg, etcdCluster)
	}
	if !strings.HasPrefix(target, "s3://") && !strings.HasPrefix(target, "file:///") {
		return ops.BackupSource{}, fmt.Errorf("--target %q: want s3://bucket/prefix or file:///dir", target)
	}
	// The stack's S3-compatible endpoint belongs to its own target: an
	// override is AWS unless AWS_ENDPOINT_URL says otherwise.
	return ops.BackupSource{Target: target, ClusterName: backup.SnapshotPrefix(stacks.ClusterName(cfg.Environment), etcdCluster), Region: cfg.Backup.Region}, nil
}

// backupOp runs backup verify, drill or restore and reports the result.
func backupOp(ctx context.Context, command string, cfg *stacks.Config, cluster etcd.Cluster, src ops.BackupSource, snapshot, out string, asJSON bool, stdout io.Writer) error {
	var result any
	var problems []string
	switch command {
	case "backup verify":
		v, err := ops.VerifyBackup(ctx, src, ops.DefaultObjectives, time.Now())
		if err != nil {
			return err
		}
		result, problems = v, v.Problems
		if !asJSON {
			fmt.Fprintf(stdout, "snapshot %s\n  taken %s (%s ago, RPO %s), revision %d, restorable: %v\n",
				v.Key, v.Taken.Format(time.RFC3339), v.Age, v.RPO, v.Revision, v.Restorable)
		}
	case "drill":
		r, err := ops.Drill(ctx, src, cfg.Etcd.Replicas, ops.DefaultObjectives, time.Now)
		if err != nil {
			return err
		}
		result, problems = r, r.Problems
		if !asJSON {
			fmt.Fprintf(stdout, "DR drill of %s into %d scratch members:\n  %d keys served at revision %d (snapshot revision %d)\n"+
				"  RPO: snapshot %s old (objective %s)\n  RTO: recovered in %s (objective %s)\n",
				r.Key, r.Members, r.KeysServed, r.Revision, r.Snapshot.Revision, r.Age, r.RPO, r.RecoveryTime, r.RTO)
		}
	case "restore":
		plan, snap, err := ops.Restore(ctx, src, snapshot, out, cluster, cfg.Etcd.Replicas, time.Now())
		if err != nil {
			return err
		}
		result = map[string]any{"snapshot": snap, "token": plan.Token, "initialCluster": plan.InitialCluster(), "members": plan.Members}
		if !asJSON {
			fmt.Fprintf(stdout, "restored %s (revision %d) into %s, cluster token %s:\n", snap.Key, snap.Revision, out, plan.Token)
			for _, m := range plan.Members {
				fmt.Fprintf(stdout, "  %s → %s (copy into the volume data-%s at /var/lib/etcd/data)\n", m.Name, m.DataDir, m.Name)
			}
			fmt.Fprintln(stdout, "next: docs/runbook.md#restore-etcd-from-a-snapshot-rto-objective-15-minutes, step 2")
		}
	}
	if asJSON {
		if err := printJSON(stdout, result); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrCheck, strings.Join(problems, "; "))
	}
	if !asJSON {
		fmt.Fprintln(stdout, "OK")
	}
	return nil
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
