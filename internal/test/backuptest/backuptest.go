// Package backuptest makes real etcd backups for tests: a 3-member etcd with
// known keys, snapshotted by the backup script into an S3-compatible server
// on loopback (through the aws CLI, as the CronJob does) or a directory.
package backuptest

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/pkg/etcdlocal"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// Keys is how many keys Seed writes.
const Keys = 500

// Seed runs a real 3-member etcd with Keys keys and the backup script's
// `backup` into target (s3://… with endpoint, or file:///…) under clusterName,
// as the CronJob does; it returns the snapshot's object key.
func Seed(t *testing.T, target, clusterName, endpoint string) string {
	t.Helper()
	dir := t.TempDir()
	files, cert, key, err := etcdlocal.ScratchTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cluster := etcdlocal.New(filepath.Join(dir, "data"), 3, loopback.MustFreePorts(t, 6), files)
	cluster.MustStart(t, cert, key)
	etcdctl := func(args ...string) {
		t.Helper()
		base := []string{"--endpoints=" + cluster.Endpoints(), "--cacert=" + files.CA, "--cert=" + cert, "--key=" + key}
		if out, err := exec.Command(toolchain.Path("etcdctl"), append(base, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
		}
	}
	// Keys as kcp stores them (a few hundred: etcdctl per key is fast enough).
	for i := range Keys {
		etcdctl("put", "/registry/ops/"+strings.Repeat("k", 1+i%7)+"/"+strconv.Itoa(i), "object-"+strconv.Itoa(i))
	}
	script, err := backup.WriteScript(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", script, "backup")
	cmd.Env = append(os.Environ(), "PATH="+toolchain.Bin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BACKUP_TARGET="+target, "CLUSTER_NAME="+clusterName, "WORK_DIR="+filepath.Join(dir, "work"),
		"ETCD_ENDPOINTS="+cluster.Endpoints(), "ETCDCTL_CACERT="+files.CA, "ETCDCTL_CERT="+cert, "ETCDCTL_KEY="+key,
		"AWS_ENDPOINT_URL="+endpoint, "AWS_DEFAULT_REGION=us-east-1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// FakeS3 is an S3-compatible server on loopback with one bucket; the aws CLI
// (what the script uses) talks to it with throwaway credentials. It returns
// the endpoint URL.
func FakeS3(t *testing.T, bucket string) string {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("aws CLI not on PATH (.ci/run installs it): %v", err)
	}
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "ops-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ops-test-secret")
	if out, err := exec.Command("aws", "--endpoint-url", srv.URL, "--region", "us-east-1", "s3", "mb", "s3://"+bucket).CombinedOutput(); err != nil {
		t.Fatalf("creating the bucket: %v\n%s", err, out)
	}
	return srv.URL
}
