package backup

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/pkitest"
	"github.com/kcp-tmc/kcp-tmc/pkg/etcdlocal"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestCronJobStepsRun runs the backup and verify CronJobs' containers, in
// their order, as local processes with their rendered commands and env
// (only /work, the mounts and etcd's Service address mapped to this
// machine): etcdctl and etcdutl as the etcd image has them, sh and the aws
// CLI as the AWS CLI image has them, against a real mTLS etcd and an
// S3-compatible server that behaves as MinIO without a KMS does: it takes
// only the stack's access key (backup.accessKeyId and its secret, which the
// steps read from the rendered Secret) and refuses server-side encryption
// headers. The snapshot is uploaded with its metadata, and the verify Job
// fetches it and restores it.
func TestCronJobStepsRun(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("aws not on PATH (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	// The root shard's etcd and a second shard's, each with its own certificates.
	certs := pkitest.Write(t, dir, tls.Args{Namespace: "kcp", Domain: "example.com", Shards: []shard.Shard{{Name: "shard-1", EtcdMembers: 1}}})
	kcpClient := certs[tls.CertEtcdClientKCP]
	startEtcd := func(name, key string) string {
		tlsFiles := etcdlocal.TLS{ServerCert: certs[name+"-server"].Cert, ServerKey: certs[name+"-server"].Key,
			PeerCert: certs[name+"-peer"].Cert, PeerKey: certs[name+"-peer"].Key, CA: certs[name+"-server"].CA}
		cluster := etcdlocal.New(filepath.Join(dir, name), 1, loopback.MustFreePorts(t, 2), tlsFiles)
		cluster.MustStart(t, kcpClient.Cert, kcpClient.Key)
		cli := client(t, cluster.Endpoints(), kcpClient)
		defer cli.Close()
		if _, err := cli.Put(t.Context(), key, name); err != nil {
			t.Fatal(err)
		}
		return cluster.Endpoints()
	}
	rootEndpoints, shardEndpoints := startEtcd("etcd", "/registry/steps/a"), startEtcd("etcd-shard-1", "/registry/steps/shard")

	const accessKey, secretKey = "backup-access-key", "backup-secret-key"
	fake := gofakes3.New(s3mem.New()).Server()
	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Server-Side-Encryption") != "" {
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprint(w, "<Error><Code>NotImplemented</Code><Message>Server side encryption specified but KMS is not configured</Message></Error>")
			return
		}
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+accessKey+"/") {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, "<Error><Code>InvalidAccessKeyId</Code><Message>The Access Key Id you provided does not exist in our records.</Message></Error>")
			return
		}
		fake.ServeHTTP(w, r)
	}))
	defer s3.Close()
	a := shardedArgs()
	a.S3.Endpoint, a.S3.AccessKeyID, a.S3.SecretAccessKey = s3.URL, accessKey, pulumi.ToSecret(pulumi.String(secretKey)).(pulumi.StringOutput)
	rec := run(t, a)
	credentials := rec.Object(t, "kubernetes:core/v1:Secret", CredentialsSecret)

	// The pod's mounts, here.
	tlsDir, scripts, workDir := filepath.Join(dir, "tls"), filepath.Join(dir, "scripts"), filepath.Join(dir, "work")
	for _, d := range []string{tlsDir, scripts, workDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	backupClient := certs[tls.CertEtcdClientBackup]
	for src, dst := range map[string]string{backupClient.Cert: "tls.crt", backupClient.Key: "tls.key", backupClient.CA: "ca.crt"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tlsDir, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(scripts, "etcd-backup.sh"), []byte(fmt.Sprint(mocktest.Dig(rec.Object(t, "kubernetes:core/v1:ConfigMap", "etcd-backup-script"), "data", "etcd-backup.sh"))), 0o600); err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer("/etc/etcd-backup/tls", tlsDir, ScriptMount, scripts, work, workDir,
		a.EtcdURL, rootEndpoints, etcd.ClusterOf(a.Shards[0], a.Namespace).ClientURL(), shardEndpoints)
	binaries := map[string]string{"etcdctl": toolchain.Path("etcdctl"), "etcdutl": toolchain.Path("etcdutl")}

	runJob := func(name string) string {
		t.Helper()
		pod := mocktest.Dig(rec.Object(t, "kubernetes:batch/v1:CronJob", name), "spec", "jobTemplate", "spec", "template", "spec")
		var out strings.Builder
		for _, c := range append(mocktest.List(mocktest.Dig(pod, "initContainers")), mocktest.List(mocktest.Dig(pod, "containers"))...) {
			var argv []string
			for _, w := range mocktest.List(mocktest.Dig(c, "command")) {
				argv = append(argv, local.Replace(fmt.Sprint(w)))
			}
			if bin, ok := binaries[argv[0]]; ok {
				argv[0] = bin
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = os.Environ()
			for _, e := range mocktest.List(mocktest.Dig(c, "env")) {
				value := local.Replace(fmt.Sprint(mocktest.Dig(e, "value")))
				if ref := mocktest.Dig(e, "valueFrom", "secretKeyRef"); ref != nil {
					if mocktest.Dig(ref, "name") != CredentialsSecret {
						t.Fatalf("step %s reads Secret %v", mocktest.Dig(c, "name"), mocktest.Dig(ref, "name"))
					}
					value = fmt.Sprint(mocktest.Dig(credentials, "stringData", mocktest.Dig(ref, "key")))
				}
				cmd.Env = append(cmd.Env, fmt.Sprint(mocktest.Dig(e, "name"))+"="+value)
			}
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: step %s (%s) failed: %v\n%s", name, mocktest.Dig(c, "name"), strings.Join(argv, " "), err, b)
			}
			out.Write(b)
		}
		return out.String()
	}
	awsCmd := func(args ...string) *exec.Cmd {
		cmd := exec.Command("aws", append([]string{"--endpoint-url", s3.URL}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey, "AWS_DEFAULT_REGION=us-east-1")
		return cmd
	}
	if out, err := awsCmd("s3", "mb", "s3://"+a.S3.Bucket).CombinedOutput(); err != nil {
		t.Fatalf("creating the bucket: %v\n%s", err, out)
	}
	uploaded := runJob(Name)
	if !strings.Contains(uploaded, "etcd-backup: OK prod/") || !strings.Contains(uploaded, "sha256=") {
		t.Fatalf("the backup Job did not report an upload:\n%s", uploaded)
	}
	listing, err := awsCmd("s3", "ls", "--recursive", "s3://"+a.S3.Bucket+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(listing), ".db.json") || strings.Count(string(listing), ".db") < 2 {
		t.Fatalf("bucket after the backup Job: %v\n%s", err, listing)
	}
	if err := os.RemoveAll(workDir); err != nil { // a new pod: fresh /work
		t.Fatal(err)
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := runJob(VerifyName)
	if _, err := os.Stat(filepath.Join(workDir, "verify", "member")); err != nil {
		entries, _ := filepath.Glob(filepath.Join(workDir, "*"))
		t.Errorf("the verify Job restored nothing: %v (work holds %v)\n%s", err, entries, out)
	}

	// The shard's etcd: its own jobs snapshot it under its own prefix, and
	// its verification fetches that snapshot, never the root's.
	if err := os.RemoveAll(workDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if uploaded := runJob(a.Shards[0].BackupJob()); !strings.Contains(uploaded, "etcd-backup: OK prod-etcd-shard-1/") {
		t.Fatalf("the shard's backup Job did not report an upload under its prefix:\n%s", uploaded)
	}
	if err := os.RemoveAll(workDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out = runJob(a.Shards[0].VerifyJob())
	if !strings.Contains(out, "OK fetched prod-etcd-shard-1/") {
		t.Errorf("the shard's verify Job did not fetch the shard's snapshot:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(workDir, "verify", "member")); err != nil {
		t.Errorf("the shard's verify Job restored nothing: %v\n%s", err, out)
	}
}
