package backup

import (
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/pkitest"
	"github.com/kcp-tmc/kcp-tmc/pkg/etcdlocal"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

const drillKeys = 10000

// TestDisasterRecoveryDrill is the monthly DR drill (docs/backup.md) on real software: a 3-member
// etcd with the pki component's certificates (mTLS), 10,000 keys, the backup
// script uploading to an S3-compatible server over the aws CLI, the cluster
// and its data destroyed, every member restored from the uploaded snapshot,
// and every key and the revision checked. Recovery must take < 15 minutes.
func TestDisasterRecoveryDrill(t *testing.T) {
	for _, bin := range []string{"aws"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not on PATH (.ci/run installs it): %v", bin, err)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	certs := pkitest.Write(t, dir, tls.Args{Namespace: "kcp", Domain: "example.com"})
	tlsFiles := etcdlocal.TLS{
		ServerCert: certs[tls.CertEtcdServer].Cert, ServerKey: certs[tls.CertEtcdServer].Key,
		PeerCert: certs[tls.CertEtcdPeer].Cert, PeerKey: certs[tls.CertEtcdPeer].Key, CA: certs[tls.CertEtcdServer].CA,
	}
	kcpClient, backupClient := certs[tls.CertEtcdClientKCP], certs[tls.CertEtcdClientBackup]
	ports := loopback.MustFreePorts(t, 6)
	cluster := etcdlocal.New(filepath.Join(dir, "data"), 3, ports, tlsFiles)
	cluster.MustStart(t, kcpClient.Cert, kcpClient.Key)

	// Write the keys as kcp would, through kcp's client certificate.
	cli := client(t, cluster.Endpoints(), kcpClient)
	for i := range drillKeys {
		if _, err := cli.Put(ctx, key(i), value(i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	resp, err := cli.Get(ctx, key(0))
	if err != nil {
		t.Fatal(err)
	}
	revision := resp.Header.Revision
	cli.Close()

	// An S3-compatible server on loopback; the script talks to it with the aws CLI.
	s3 := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer s3.Close()
	env := append(os.Environ(),
		"PATH="+toolchain.Bin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID=drill", "AWS_SECRET_ACCESS_KEY=drill-secret", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ENDPOINT_URL="+s3.URL,
		"BACKUP_TARGET=s3://kcp-tmc-backups/etcd", "CLUSTER_NAME=drill",
		"ETCD_ENDPOINTS="+cluster.Endpoints(),
		"ETCDCTL_CACERT="+backupClient.CA, "ETCDCTL_CERT="+backupClient.Cert, "ETCDCTL_KEY="+backupClient.Key,
		"WORK_DIR="+filepath.Join(dir, "work"))
	if out, err := script(env, "", "mb", "s3://kcp-tmc-backups"); err != nil {
		t.Fatalf("creating the bucket: %v\n%s", err, out)
	}
	uploaded, err := script(env, scriptPath(t), "backup")
	if err != nil {
		t.Fatalf("backup script: %v\n%s", err, uploaded)
	}
	objectKey := lastLine(uploaded)
	if !strings.HasPrefix(objectKey, "drill/") || !strings.Contains(objectKey, fmt.Sprintf("-rev%d.db", revision)) {
		t.Errorf("object key %q lacks cluster, timestamp or revision %d", objectKey, revision)
	}

	// Disaster: every member and all data gone.
	start := time.Now()
	cluster.Stop()
	if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}

	// Recovery: the newest snapshot, downloaded with the same script, restored into every member.
	latest, err := script(env, scriptPath(t), "latest")
	if err != nil || lastLine(latest) != objectKey {
		t.Fatalf("latest snapshot = %q (%v), want %q", latest, err, objectKey)
	}
	snapshot := filepath.Join(dir, "restore.db")
	if out, err := script(env, scriptPath(t), "fetch", objectKey, snapshot); err != nil {
		t.Fatalf("fetch: %v\n%s", err, out)
	}
	restored := etcdlocal.New(filepath.Join(dir, "data"), 3, ports, tlsFiles)
	var members []RestoreMember
	for _, m := range restored.Members {
		members = append(members, RestoreMember{Name: m.Name, PeerURL: m.PeerURL, DataDir: m.DataDir})
	}
	plan := NewRestorePlan(snapshot, members, time.Now())
	restored.Token = plan.Token
	if err := plan.Run(ctx, toolchain.Path("etcdutl")); err != nil {
		t.Fatal(err)
	}
	restored.MustStart(t, kcpClient.Cert, kcpClient.Key)

	cli = client(t, restored.Endpoints(), kcpClient)
	defer cli.Close()
	all, err := cli.Get(ctx, "/registry/drill/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	recovery := time.Since(start)
	if int(all.Count) != drillKeys {
		t.Errorf("%d keys after restore, want %d: %d lost", all.Count, drillKeys, drillKeys-int(all.Count))
	}
	lost := 0
	for _, kv := range all.Kvs {
		var i int
		if _, err := fmt.Sscanf(string(kv.Key), "/registry/drill/%08d", &i); err != nil || string(kv.Value) != value(i) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d keys came back with the wrong value", lost)
	}
	if all.Header.Revision < revision {
		t.Errorf("revision after restore %d, want at least %d", all.Header.Revision, revision)
	}
	t.Logf("DR drill: %d keys, revision %d, recovery (destroy → verified) took %s; objective < 15m", all.Count, all.Header.Revision, recovery.Round(time.Millisecond))
	if recovery > 15*time.Minute {
		t.Errorf("recovery took %s, objective is 15m", recovery)
	}

	// The weekly verification job's path: fetch the newest, prove it restores.
	if out, err := script(env, scriptPath(t), "verify-latest"); err != nil || !strings.Contains(out, "OK verified "+objectKey) {
		t.Errorf("verify-latest: %v\n%s", err, out)
	}
}

func TestBackupScriptFailsLoudly(t *testing.T) {
	dir := t.TempDir()
	base := append(os.Environ(), "PATH="+toolchain.Bin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"CLUSTER_NAME=x", "WORK_DIR="+dir)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no healthy member", []string{"BACKUP_TARGET=file://" + dir, "ETCD_ENDPOINTS=https://127.0.0.1:1"}, []string{"backup"}, "no healthy etcd member"},
		{"bad target", []string{"BACKUP_TARGET=ftp://x", "ETCD_ENDPOINTS=https://127.0.0.1:1"}, []string{"latest"}, "BACKUP_TARGET ftp://x"},
		{"missing directory", []string{"BACKUP_TARGET=file://" + dir + "/nowhere"}, []string{"latest"}, "BACKUP_TARGET directory " + dir + "/nowhere does not exist"},
		{"S3 listing refused", []string{"BACKUP_TARGET=s3://no-such-bucket/etcd", "AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y", "AWS_DEFAULT_REGION=us-east-1", "AWS_MAX_ATTEMPTS=1"}, []string{"latest"}, "listing s3://no-such-bucket/etcd/x/"},
		{"nothing to verify", []string{"BACKUP_TARGET=file://" + dir}, []string{"verify-latest"}, "no snapshot of x"},
		{"unknown command", []string{"BACKUP_TARGET=file://" + dir}, []string{"restore"}, "unknown command restore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := script(append(base, tt.env...), scriptPath(t), tt.args...)
			if tt.want == "" {
				if strings.TrimSpace(out) != "" {
					t.Errorf("printed a snapshot for an unusable target: %q", out)
				}
				return
			}
			if err == nil || !strings.Contains(out, "FAILED: "+tt.want) {
				t.Errorf("err = %v, output %q, want FAILED: %s", err, out, tt.want)
			}
		})
	}
}

// TestPVCTargetPrunes: on a file:// target the upload keeps the snapshot it
// wrote and every one younger than RETENTION_DAYS, and deletes the older
// ones of its own cluster only (S3's lifecycle does this for a bucket).
func TestPVCTargetPrunes(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-11 * 24 * time.Hour)
	files := map[string]time.Time{
		"x/2026-01-01T000000Z.db": old,                                 // past retention: pruned
		"x/2026-01-09T000000Z.db": time.Now().Add(-9 * 24 * time.Hour), // within: kept
		"y/2026-01-01T000000Z.db": old,                                 // another cluster's: kept
	}
	for name, mtime := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("snapshot"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(snap, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CLUSTER_NAME=x", "WORK_DIR="+t.TempDir(), "BACKUP_TARGET=file://"+dir, "RETENTION_DAYS=10")
	out, err := script(env, scriptPath(t), "upload", snap)
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			left = append(left, rel)
		}
		return nil
	})
	if len(left) != 4 || slices.Contains(left, "x/2026-01-01T000000Z.db") || slices.Contains(left, "x/2026-01-01T000000Z.db.json") ||
		!slices.Contains(left, "x/2026-01-09T000000Z.db") || !slices.Contains(left, "y/2026-01-01T000000Z.db") {
		t.Errorf("after upload with RETENTION_DAYS=10 the target holds %v, want the new snapshot and its metadata, x's 9-day-old one and y's", left)
	}
	if !strings.Contains(out, "pruned x/2026-01-01T000000Z.db") {
		t.Errorf("upload did not say what it pruned: %q", out)
	}
}

func key(i int) string   { return fmt.Sprintf("/registry/drill/%08d", i) }
func value(i int) string { return fmt.Sprintf("workspace-object-%d", i) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// script runs the backup script (or, with path "", the aws CLI's s3 command).
func script(env []string, path string, args ...string) (string, error) {
	var cmd *exec.Cmd
	if path == "" {
		cmd = exec.Command("aws", append([]string{"--endpoint-url", envValue(env, "AWS_ENDPOINT_URL"), "s3"}, args...)...)
	} else {
		cmd = exec.Command("sh", append([]string{path}, args...)...)
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func client(t *testing.T, endpoints string, f pkitest.Files) *clientv3.Client {
	t.Helper()
	cert, err := cryptotls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(endpoints, ","),
		DialTimeout: 5 * time.Second,
		TLS:         &cryptotls.Config{Certificates: []cryptotls.Certificate{cert}, RootCAs: pool, MinVersion: cryptotls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// scriptPath is the embedded script, written out: exactly what the CronJobs run.
func scriptPath(t *testing.T) string {
	t.Helper()
	p, err := WriteScript(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
