package cli

// backup verify, drill and restore: the etcd snapshots of a stack.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// backupCommand runs backup verify, drill or restore on the --etcd cluster's
// snapshots.
func backupCommand(name string) func(context.Context, auto.Stack, flags, io.Writer, io.Writer) error {
	return withConfig(func(ctx context.Context, cfg *stacks.Config, f flags, stdout io.Writer) error {
		cluster, err := ops.EtcdClusterOf(cfg, f.etcdCluster)
		if err != nil {
			return err
		}
		src, err := backupSource(cfg, cluster.Name, f.target)
		if err != nil {
			return err
		}
		return backupOp(ctx, name, cfg, cluster, src, f.snapshot, f.out, f.asJSON, stdout)
	})
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
