// Package ops holds the day-2 operations the kcp-tmc CLI runs against a
// deployed stack — backup verification, restore, the DR drill and the smoke
// test — as a library, so an embedding Go program can run them too.
package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// Objectives are the recovery targets the drill and verification check.
type Objectives struct {
	// RPO is the most data a restore may lose: the age of the newest
	// snapshot (daily backups + grace; the EtcdBackupStale alert uses it too).
	RPO time.Duration
	// RTO is the longest a restore may take, from "we have nothing" to a
	// restored cluster serving the data.
	RTO time.Duration
}

// DefaultObjectives are docs/runbook.md's: RPO 26 hours, RTO 15 minutes.
var DefaultObjectives = Objectives{RPO: 26 * time.Hour, RTO: 15 * time.Minute}

// BackupSource is where a stack's snapshots are, as the backup CronJobs see it.
type BackupSource struct {
	// Target is s3://bucket/prefix, or file:///dir for a local copy.
	Target string
	// ClusterName is the first path element of every snapshot key.
	ClusterName string
	// Region and Endpoint (an S3-compatible server) for s3 targets.
	Region, Endpoint string
}

// BackupSourceOf is where the snapshots of one etcd cluster of a stack
// (etcd, the root shard's, or etcd-<shard>) are. Snapshots on an in-cluster
// PVC are not reachable from here: verify those with the cluster's verify
// CronJob.
func BackupSourceOf(cfg *stacks.Config, etcdCluster string) (BackupSource, error) {
	if _, err := EtcdClusterOf(cfg, etcdCluster); err != nil {
		return BackupSource{}, err
	}
	b := cfg.Backup
	switch {
	case !b.Enabled:
		return BackupSource{}, fmt.Errorf("stack %q: kcp-tmc:backup.enabled is false: no snapshots to use", cfg.Environment)
	case b.Target != backup.TargetS3:
		return BackupSource{}, fmt.Errorf("stack %q: kcp-tmc:backup.target is %q: snapshots live on an in-cluster volume; "+
			"run `kubectl -n %s create job --from=cronjob/%s %s-manual-$(date +%%s)`, or copy them out and pass --target file:///dir",
			cfg.Environment, b.Target, cfg.Namespace, shard.VerifyJob(etcdCluster), shard.VerifyJob(etcdCluster))
	}
	return BackupSource{
		Target:      "s3://" + b.Bucket + "/" + strings.Trim(b.Prefix, "/"),
		ClusterName: backup.SnapshotPrefix(stacks.ClusterName(cfg.Environment), etcdCluster),
		Region:      b.Region, Endpoint: b.Endpoint,
	}, nil
}

// EtcdClusterOf is the stack's etcd cluster of that name, or an error
// listing the stack's clusters.
func EtcdClusterOf(cfg *stacks.Config, name string) (etcd.Cluster, error) {
	var names []string
	for _, c := range stacks.EtcdClusters(cfg) {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return etcd.Cluster{}, fmt.Errorf("stack %q has no etcd cluster %q: it has %s", cfg.Environment, name, strings.Join(names, ", "))
}

// Snapshot is one etcd snapshot, downloaded and checked by etcdutl.
type Snapshot struct {
	Key      string    `json:"key"`
	Taken    time.Time `json:"taken"`
	Revision int64     `json:"revision"`
	// TotalKeys counts every entry in the snapshot (all buckets, all revisions).
	TotalKeys int64  `json:"totalKeys"`
	Hash      uint64 `json:"hash"`
	// File is where it was downloaded.
	File string `json:"-"`
}

// snapshotKey matches the backup script's object keys:
// <cluster>/YYYY/MM/DD/etcd-<cluster>-<YYYYMMDDTHHMMSSZ>[-rev<revision>].db
// (the CronJobs' upload step runs without etcd's tools, so its keys carry
// no revision; the all-in-one `backup` command's do).
var snapshotKey = regexp.MustCompile(`-(\d{8}T\d{6}Z)(?:-rev(\d+))?\.db$`)

// script runs the embedded backup script (the CronJobs' own) against the source.
func (s BackupSource) script(ctx context.Context, work string, args ...string) (string, error) {
	path, err := backup.WriteScript(work)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "sh", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(),
		"PATH="+toolchain.Bin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BACKUP_TARGET="+s.Target, "CLUSTER_NAME="+s.ClusterName, "WORK_DIR="+filepath.Join(work, "script"))
	if s.Region != "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		cmd.Env = append(cmd.Env, "AWS_DEFAULT_REGION="+s.Region)
	}
	if s.Endpoint != "" {
		cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL="+s.Endpoint)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("etcd-backup.sh %s on %s: %w: %s", strings.Join(args, " "), s.Target, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Fetch downloads a snapshot into dir/snapshot.db ("" or "latest": the
// newest of the cluster) and reads its status with etcdutl, which fails on
// a corrupt file.
func (s BackupSource) Fetch(ctx context.Context, key, dir string) (Snapshot, error) {
	if key == "" || key == "latest" {
		latest, err := s.script(ctx, dir, "latest")
		if err != nil {
			return Snapshot{}, err
		}
		if latest == "" {
			return Snapshot{}, fmt.Errorf("no snapshot of %s under %s (the listing succeeded, so credentials are fine)", s.ClusterName, s.Target)
		}
		key = lastLine(latest)
	}
	m := snapshotKey.FindStringSubmatch(key)
	if m == nil || !strings.HasPrefix(key, s.ClusterName+"/") {
		return Snapshot{}, fmt.Errorf("snapshot key %q: want %s/YYYY/MM/DD/etcd-%s-<YYYYMMDDTHHMMSSZ>[-rev<N>].db", key, s.ClusterName, s.ClusterName)
	}
	taken, _ := time.Parse("20060102T150405Z", m[1])
	snap := Snapshot{Key: key, Taken: taken, File: filepath.Join(dir, "snapshot.db")}
	if _, err := s.script(ctx, dir, "fetch", key, snap.File); err != nil {
		return Snapshot{}, err
	}
	var stderr strings.Builder
	status := exec.CommandContext(ctx, toolchain.Path("etcdutl"), "snapshot", "status", snap.File, "-w", "json")
	status.Stderr = &stderr
	out, err := status.Output()
	if err != nil {
		return Snapshot{}, fmt.Errorf("etcdutl snapshot status %s: %w: %s", key, err, stderr.String())
	}
	var st struct {
		Hash     uint64 `json:"hash"`
		Revision int64  `json:"revision"`
		TotalKey int64  `json:"totalKey"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return Snapshot{}, fmt.Errorf("etcdutl snapshot status %s: %w: %s", key, err, out)
	}
	if want, _ := strconv.ParseInt(m[2], 10, 64); m[2] != "" && st.Revision != want {
		return Snapshot{}, fmt.Errorf("snapshot %s holds revision %d, its name says %d", key, st.Revision, want)
	}
	snap.Hash, snap.Revision, snap.TotalKeys = st.Hash, st.Revision, st.TotalKey
	return snap, nil
}

// Verification is the result of VerifyBackup.
type Verification struct {
	Snapshot
	Age Duration `json:"age"`
	RPO Duration `json:"rpo"`
	// Restorable: etcdutl restored it into a scratch data dir.
	Restorable bool     `json:"restorable"`
	Problems   []string `json:"problems,omitempty"`
}

// OK says whether the newest snapshot restores and is within the RPO.
func (v Verification) OK() bool { return len(v.Problems) == 0 }

// VerifyBackup fetches the newest snapshot, checks it with etcdutl, restores
// it into a scratch data dir and compares its age with the RPO. An error
// means it could not check; Problems list what the check found.
func VerifyBackup(ctx context.Context, src BackupSource, obj Objectives, now time.Time) (Verification, error) {
	work, err := localproc.WorkDir("verify")
	if err != nil {
		return Verification{}, err
	}
	defer os.RemoveAll(work)
	snap, err := src.Fetch(ctx, "latest", work)
	if err != nil {
		return Verification{}, err
	}
	v := Verification{Snapshot: snap, Age: Duration(now.Sub(snap.Taken)), RPO: Duration(obj.RPO)}
	if out, err := exec.CommandContext(ctx, toolchain.Path("etcdutl"), "snapshot", "restore", snap.File,
		"--data-dir", filepath.Join(work, "restored")).CombinedOutput(); err != nil {
		v.Problems = append(v.Problems, fmt.Sprintf("etcdutl snapshot restore failed: %v: %s", err, out))
	} else {
		v.Restorable = true
	}
	if time.Duration(v.Age) > obj.RPO {
		v.Problems = append(v.Problems, fmt.Sprintf("newest snapshot is %s old, RPO is %s", v.Age, v.RPO))
	}
	return v, nil
}

// Restore fetches a snapshot and writes every member's restored data dir
// under out (out/etcd-<i>), with the in-cluster member names and peer URLs
// and one fresh cluster token, ready to be copied onto the members' volumes
// (docs/runbook.md). It refuses to overwrite existing data.
func Restore(ctx context.Context, src BackupSource, key, out string, cluster etcd.Cluster, replicas int, now time.Time) (backup.RestorePlan, Snapshot, error) {
	// Refuse before downloading gigabytes: out must be new or empty (never a
	// shared directory like /tmp), and only its owner may read the data.
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return backup.RestorePlan{}, Snapshot{}, fmt.Errorf("restore dir %s is not empty: give a new directory", out)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return backup.RestorePlan{}, Snapshot{}, fmt.Errorf("restore dir: %w", err)
	}
	if err := os.Chmod(out, 0o700); err != nil {
		return backup.RestorePlan{}, Snapshot{}, fmt.Errorf("restore dir: %w", err)
	}
	work, err := localproc.WorkDir("restore")
	if err != nil {
		return backup.RestorePlan{}, Snapshot{}, err
	}
	defer os.RemoveAll(work) // the downloaded snapshot: the data lives on in out
	snap, err := src.Fetch(ctx, key, work)
	if err != nil {
		return backup.RestorePlan{}, Snapshot{}, err
	}
	members := backup.InClusterMembers(cluster, replicas)
	for i := range members {
		members[i].DataDir = filepath.Join(out, members[i].Name)
	}
	plan := backup.NewRestorePlan(snap.File, members, now)
	if err := plan.Run(ctx, toolchain.Path("etcdutl")); err != nil {
		return plan, snap, err
	}
	return plan, snap, nil
}

// Duration prints and marshals as Go duration text, rounded to seconds
// (milliseconds below 10s).
type Duration time.Duration

func (d Duration) String() string {
	if time.Duration(d) < 10*time.Second {
		return time.Duration(d).Round(time.Millisecond).String()
	}
	return time.Duration(d).Round(time.Second).String()
}

// MarshalText makes JSON output readable ("26h0m0s", not nanoseconds).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what MarshalText wrote, so reports round-trip.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
