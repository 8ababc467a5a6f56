package ops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"

	"github.com/kcp-tmc/kcp-tmc/internal/test/backuptest"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// TestVerifyRestoreAndDrill: one real backup in an S3-compatible bucket, then
// what an operator runs: verification, the drill (a restored 3-member
// cluster must serve every seeded key at the snapshot's revision) and a
// restore into member data dirs.
func TestVerifyRestoreAndDrill(t *testing.T) {
	src := BackupSource{Target: "s3://backups/etcd", ClusterName: "kcp-tmc-staging", Region: "us-east-1", Endpoint: backuptest.FakeS3(t, "backups")}
	key := backuptest.Seed(t, src.Target, src.ClusterName, src.Endpoint)
	ctx := context.Background()

	v, err := VerifyBackup(ctx, src, DefaultObjectives, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || !v.Restorable || v.Key != key || v.Revision <= backuptest.Keys {
		t.Errorf("verification = %+v, want OK, restorable, key %s, revision > %d", v, key, backuptest.Keys)
	}
	late, err := VerifyBackup(ctx, src, DefaultObjectives, time.Now().Add(27*time.Hour))
	if err != nil || late.OK() || !strings.Contains(strings.Join(late.Problems, ";"), "RPO is 26h0m0s") {
		t.Errorf("a 27h-old snapshot: %+v (%v), want an RPO problem", late, err)
	}

	r, err := Drill(ctx, src, 3, DefaultObjectives, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.KeysServed != backuptest.Keys || r.Revision < v.Revision {
		t.Errorf("drill = %+v, want OK with %d keys at revision ≥ %d", r, backuptest.Keys, v.Revision)
	}
	t.Logf("drill: %d keys, revision %d, recovery %s", r.KeysServed, r.Revision, r.RecoveryTime)
	slow, err := Drill(ctx, src, 1, Objectives{RPO: time.Hour, RTO: time.Nanosecond}, time.Now)
	if err != nil || slow.OK() || !strings.Contains(strings.Join(slow.Problems, ";"), "RTO missed") {
		t.Errorf("drill with a 1ns RTO: %+v (%v), want RTO missed", slow, err)
	}

	out := t.TempDir()
	plan, snap, err := Restore(ctx, src, key, out, etcd.Cluster{Name: etcd.Name, Namespace: "kcp"}, 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Key != key || len(plan.Members) != 3 || !strings.Contains(plan.InitialCluster(), "etcd-2=https://etcd-2.etcd-headless.kcp.svc:2380") {
		t.Errorf("restore plan %+v for %s", plan, snap.Key)
	}
	for _, m := range plan.Members {
		if _, err := os.Stat(filepath.Join(out, m.Name, "member", "snap", "db")); err != nil {
			t.Errorf("member %s has no restored database: %v", m.Name, err)
		}
	}
	// A shard's cluster restores with its own member names.
	shardPlan, _, err := Restore(ctx, src, key, t.TempDir(), etcd.Cluster{Name: "etcd-shard-1", Namespace: "kcp"}, 3, time.Now())
	if err != nil || !strings.Contains(shardPlan.InitialCluster(), "etcd-shard-1-0=https://etcd-shard-1-0.etcd-shard-1-headless.kcp.svc:2380") {
		t.Errorf("shard restore plan %v: %+v", err, shardPlan)
	}
	if _, _, err := Restore(ctx, src, key, out, etcd.Cluster{Name: etcd.Name, Namespace: "kcp"}, 3, time.Now()); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("a second restore into the same dir: err = %v, want a refusal to overwrite data", err)
	}

	// A snapshot the CronJob uploaded (its upload step has no etcd tools,
	// so its key names no revision) verifies too.
	work := t.TempDir()
	file := filepath.Join(work, "snapshot.db")
	if _, err := src.script(ctx, work, "fetch", key, file); err != nil {
		t.Fatal(err)
	}
	uploaded, err := src.script(ctx, work, "upload", file)
	if err != nil {
		t.Fatal(err)
	}
	uploaded = lastLine(uploaded)
	if strings.Contains(uploaded, "-rev") {
		t.Fatalf("upload key %s names a revision", uploaded)
	}
	cron, err := VerifyBackup(ctx, src, DefaultObjectives, time.Now())
	if err != nil || !cron.OK() || cron.Key != uploaded || cron.Revision != v.Revision {
		t.Errorf("verification of the CronJob's upload = %+v (%v), want OK for %s at revision %d", cron, err, uploaded, v.Revision)
	}
}

// TestBackupFailuresAreNamed: what the operator sees when there is nothing
// usable — every case an error or a problem naming the cause.
func TestBackupFailuresAreNamed(t *testing.T) {
	ctx := context.Background()
	empty := BackupSource{Target: "file://" + t.TempDir(), ClusterName: "kcp-tmc-prod"}
	corruptDir := t.TempDir()
	corruptKey := "kcp-tmc-prod/2026/11/26/etcd-kcp-tmc-prod-20261126T020000Z-rev42.db"
	if err := os.MkdirAll(filepath.Dir(filepath.Join(corruptDir, corruptKey)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corruptDir, corruptKey), []byte("not a bolt database"), 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := BackupSource{Target: "file://" + corruptDir, ClusterName: "kcp-tmc-prod"}
	tests := []struct {
		name string
		src  BackupSource
		key  string
		want string
	}{
		{"no snapshot", empty, "latest", "no snapshot of kcp-tmc-prod"},
		{"corrupt snapshot", corrupt, "latest", "etcdutl snapshot status"},
		{"foreign key", corrupt, "other/2026/11/26/etcd-other-20261126T020000Z-rev1.db", "want kcp-tmc-prod/YYYY"},
		{"missing key", corrupt, "kcp-tmc-prod/2026/11/25/etcd-kcp-tmc-prod-20261125T020000Z-rev7.db", "download of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.Fetch(ctx, tt.key, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Fetch(%s) err = %v, want %q", tt.key, err, tt.want)
			}
		})
	}
}

func TestBackupSourceOf(t *testing.T) {
	prod, _ := stacks.Profile("prod")
	dev, _ := stacks.Profile("dev")
	off, _ := stacks.Profile("staging")
	off.Backup.Enabled = false
	prod.KCP.Shards = []stacks.Shard{{Name: "shard-1"}}
	tests := []struct {
		name, etcd string
		cfg        *stacks.Config
		want       BackupSource
		wantErr    string
	}{
		{"prod s3", "etcd", prod, BackupSource{Target: "s3://kcp-tmc-prod-etcd-backups/etcd", ClusterName: "kcp-tmc-prod", Region: "us-east-1"}, ""},
		{"a shard's etcd", "etcd-shard-1", prod, BackupSource{Target: "s3://kcp-tmc-prod-etcd-backups/etcd", ClusterName: "kcp-tmc-prod-etcd-shard-1", Region: "us-east-1"}, ""},
		{"no such shard", "etcd-shard-2", prod, BackupSource{}, `has no etcd cluster "etcd-shard-2": it has etcd, etcd-shard-1`},
		{"dev pvc", "etcd", dev, BackupSource{}, "kcp-tmc:backup.target is \"pvc\""},
		{"disabled", "etcd", off, BackupSource{}, "kcp-tmc:backup.enabled is false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BackupSourceOf(tt.cfg, tt.etcd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
