package backup

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

func s3Args() Args {
	return Args{
		Namespace: "kcp", ClusterName: "prod", EtcdEndpoints: []string{"https://etcd-0.etcd-headless.kcp.svc:2379"},
		EtcdImage: "quay.io/coreos/etcd:v3.5.35", EtcdURL: "https://etcd.kcp.svc:2379",
		ClientSecret: "etcd-client-backup", EtcdSelector: workload.Labels("etcd"), Target: TargetS3, Protect: true,
		S3: S3{Bucket: "kcp-tmc-prod-etcd-backups", Region: "us-east-1", TransitionDays: 30, ArchiveDays: 90, RetentionDays: 365,
			NoncurrentDays: 30, ObjectLockDays: 30,
			OIDCProviderARN: "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
			OIDCIssuer:      "oidc.eks.us-east-1.amazonaws.com/id/ABC"},
		Resources: workload.Resources{Requests: workload.ResourceList{CPU: "100m", Memory: "128Mi", EphemeralStorage: "1Gi"}, Limits: workload.ResourceList{CPU: "1", Memory: "512Mi", EphemeralStorage: "10Gi"}},
	}
}

func run(t *testing.T, a Args) *mocktest.Recorder {
	t.Helper()
	return mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := NewBackup(ctx, "backup", a)
		return err
	})
}

type policy struct {
	Statement []struct {
		Sid       string
		Effect    string
		Principal any
		Action    any
		Resource  any
		Condition map[string]map[string]any
	}
}

func parse(t *testing.T, doc string) policy {
	t.Helper()
	var p policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	return p
}

func TestBucketAndKey(t *testing.T) {
	rec := run(t, s3Args())
	key := rec.Named(t, "aws:kms/key:Key", "backup-key")
	if key.Input()["enableKeyRotation"] != true || !key.Protect || !key.RetainOnDelete {
		t.Errorf("key: %v protect=%v retain=%v", key.Input(), key.Protect, key.RetainOnDelete)
	}
	if alias := rec.Named(t, "aws:kms/alias:Alias", "backup-key-alias").Input()["name"]; alias != "alias/prod-etcd-backups" {
		t.Errorf("key alias = %v, want alias/<cluster name>-etcd-backups", alias)
	}
	bucket := rec.Named(t, "aws:s3/bucketV2:BucketV2", "backup-bucket")
	if !bucket.Protect || !bucket.RetainOnDelete || bucket.Input()["forceDestroy"] != false || bucket.Input()["objectLockEnabled"] != true {
		t.Errorf("bucket: %v protect=%v retain=%v", bucket.Input(), bucket.Protect, bucket.RetainOnDelete)
	}
	if v := rec.Named(t, "aws:s3/bucketVersioningV2:BucketVersioningV2", "backup-versioning").Input(); mocktest.Dig(v, "versioningConfiguration", "status") != "Enabled" {
		t.Errorf("versioning = %v", v)
	}
	enc := rec.Named(t, "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2", "backup-encryption").Input()
	if mocktest.Dig(enc, "rules", 0, "applyServerSideEncryptionByDefault", "sseAlgorithm") != "aws:kms" ||
		mocktest.Dig(enc, "rules", 0, "applyServerSideEncryptionByDefault", "kmsMasterKeyId") != "arn:aws:kms:us-east-1:123456789012:backup-key" {
		t.Errorf("encryption = %v, want SSE-KMS with the backup key", enc)
	}
	pab := rec.Named(t, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "backup-public-access-block").Input()
	for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
		if pab[k] != true {
			t.Errorf("public access block %s = %v", k, pab[k])
		}
	}
	lc := rec.Named(t, "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2", "backup-lifecycle").Input()
	r := mocktest.Dig(lc, "rules", 0)
	if mocktest.Dig(r, "transitions", 0, "storageClass") != "STANDARD_IA" || mocktest.Dig(r, "transitions", 1, "storageClass") != "GLACIER" ||
		mocktest.Dig(r, "expiration", "days") != float64(365) || mocktest.Dig(r, "noncurrentVersionExpiration", "noncurrentDays") != float64(30) ||
		mocktest.Dig(r, "filter", "prefix") != "etcd/" {
		t.Errorf("lifecycle = %v", r)
	}
	lock := rec.Named(t, "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2", "backup-object-lock").Input()
	if mocktest.Dig(lock, "rule", "defaultRetention", "days") != float64(30) {
		t.Errorf("object lock = %v", lock)
	}
}

// TestBucketPolicyDecides evaluates the bucket policy for the requests the
// backup Job and others make, with IAM's rules for the operators it uses
// (a negated operator matches a request without the key; "…IfExists" does
// not), failing on any other operator rather than guessing. What a request
// without encryption headers gets is the bucket's default encryption: the
// backup key (TestBucketAndKey).
func TestBucketPolicyDecides(t *testing.T) {
	rec := run(t, s3Args())
	p := parse(t, rec.Named(t, "aws:s3/bucketPolicy:BucketPolicy", "backup-bucket-policy").Input()["policy"].(string))
	const key = "arn:aws:kms:us-east-1:123456789012:backup-key"
	tls := map[string]string{"aws:SecureTransport": "true"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"aws:SecureTransport": "true"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		what, action string
		keys         map[string]string
		denied       bool
	}{
		{"a snapshot: PutObject with the backup key", "s3:PutObject", with("s3:x-amz-server-side-encryption", "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id", key), false},
		{"a large snapshot's CreateMultipartUpload", "s3:PutObject", with("s3:x-amz-server-side-encryption", "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id", key), false},
		{"its UploadPart and CompleteMultipartUpload (no encryption headers)", "s3:PutObject", tls, false},
		{"PutObject without headers (the default encryption: the backup key)", "s3:PutObject", tls, false},
		{"PutObject asking for SSE-S3", "s3:PutObject", with("s3:x-amz-server-side-encryption", "AES256"), true},
		{"PutObject with another KMS key", "s3:PutObject", with("s3:x-amz-server-side-encryption", "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:us-east-1:123456789012:other"), true},
		{"a restore's GetObject", "s3:GetObject", tls, false},
		{"GetObject over plain HTTP", "s3:GetObject", map[string]string{"aws:SecureTransport": "false"}, true},
		{"PutObject over plain HTTP", "s3:PutObject", with("aws:SecureTransport", "false", "s3:x-amz-server-side-encryption", "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id", key), true},
	} {
		denied := false
		for _, s := range p.Statement {
			if s.Effect != "Deny" {
				t.Fatalf("statement %s: %s (the bucket policy only denies; the role's policy allows)", s.Sid, s.Effect)
			}
			if actionMatches(s.Action, tc.action) && conditionsMatch(t, s.Sid, s.Condition, tc.keys) {
				denied = true
			}
		}
		if denied != tc.denied {
			t.Errorf("%s: denied = %v, want %v", tc.what, denied, tc.denied)
		}
	}
}

func actionMatches(action any, want string) bool {
	a, _ := action.(string)
	return a == want || a == "s3:*"
}

// conditionsMatch: every operator's every key must match (IAM ANDs them).
func conditionsMatch(t *testing.T, sid string, cond map[string]map[string]any, req map[string]string) bool {
	t.Helper()
	for op, keys := range cond {
		for k, v := range keys {
			want, _ := v.(string)
			got, present := req[k]
			var match bool
			switch op {
			case "Bool", "StringEquals":
				match = present && got == want
			case "StringNotEquals":
				match = !present || got != want
			case "StringNotEqualsIfExists":
				match = present && got != want
			default:
				t.Fatalf("statement %s: condition operator %s: teach this test IAM's rule for it", sid, op)
			}
			if !match {
				return false
			}
		}
	}
	return true
}

func TestIRSATrustIsThatServiceAccountOnly(t *testing.T) {
	rec := run(t, s3Args())
	p := parse(t, rec.Named(t, "aws:iam/role:Role", "backup-role").Input()["assumeRolePolicy"].(string))
	if len(p.Statement) != 1 {
		t.Fatalf("trust policy = %+v", p)
	}
	s := p.Statement[0]
	eq := s.Condition["StringEquals"]
	issuer := "oidc.eks.us-east-1.amazonaws.com/id/ABC"
	if s.Action != "sts:AssumeRoleWithWebIdentity" || mocktest.Dig(s.Principal, "Federated") != s3Args().S3.OIDCProviderARN {
		t.Errorf("trust = %+v", s)
	}
	// Another ServiceAccount (or namespace) presents a different sub, which StringEquals rejects;
	// a token minted for another audience is rejected by aud.
	if eq[issuer+":sub"] != "system:serviceaccount:kcp:etcd-backup" || eq[issuer+":aud"] != "sts.amazonaws.com" || len(eq) != 2 {
		t.Errorf("trust conditions = %v", eq)
	}
	if len(s.Condition) != 1 {
		t.Errorf("extra (looser) condition operators: %v", s.Condition)
	}
	sa := rec.Object(t, "kubernetes:core/v1:ServiceAccount", ServiceAccount)
	if mocktest.Dig(sa, "metadata", "annotations", "eks.amazonaws.com/role-arn") != "arn:aws:iam:us-east-1:123456789012:backup-role" {
		t.Errorf("ServiceAccount annotation = %v", mocktest.Dig(sa, "metadata", "annotations"))
	}
}

func TestRolePolicyIsLeastPrivilege(t *testing.T) {
	rec := run(t, s3Args())
	p := parse(t, rec.Named(t, "aws:iam/rolePolicy:RolePolicy", "backup-role-policy").Input()["policy"].(string))
	bucket := "arn:aws:s3:us-east-1:123456789012:backup-bucket"
	for _, s := range p.Statement {
		actions := strings.Join(mocktest.Strings(s.Action), ",")
		if strings.Contains(actions, "*") || strings.Contains(actions, "Delete") {
			t.Errorf("statement %s grants %s", s.Sid, actions)
		}
		switch s.Sid {
		case "Snapshots":
			if s.Resource != bucket+"/etcd/*" {
				t.Errorf("object access on %v, want the prefix only", s.Resource)
			}
		case "ListSnapshots":
			if s.Resource != bucket || s.Condition["StringLike"]["s3:prefix"] == nil {
				t.Errorf("list = %+v", s)
			}
		case "BackupKey":
			if s.Resource != "arn:aws:kms:us-east-1:123456789012:backup-key" || actions != "kms:Encrypt,kms:Decrypt,kms:GenerateDataKey" {
				t.Errorf("key access = %+v", s)
			}
		default:
			t.Errorf("unexpected statement %+v", s)
		}
	}
}

func TestCronJobs(t *testing.T) {
	rec := run(t, s3Args())
	for name, steps := range map[string][]string{
		// Published images only: etcd's own for etcdctl/etcdutl, the AWS CLI's for the transfer.
		Name:       {"snapshot quay.io/coreos/etcd:v3.5.35", "check quay.io/coreos/etcd:v3.5.35", "upload public.ecr.aws/aws-cli/aws-cli:2.22.0"},
		VerifyName: {"fetch public.ecr.aws/aws-cli/aws-cli:2.22.0", "check quay.io/coreos/etcd:v3.5.35", "restore quay.io/coreos/etcd:v3.5.35"},
	} {
		cj := rec.Object(t, "kubernetes:batch/v1:CronJob", name)
		spec := cj["spec"]
		if mocktest.Dig(spec, "concurrencyPolicy") != "Forbid" || mocktest.Dig(spec, "timeZone") != "UTC" ||
			mocktest.Dig(spec, "startingDeadlineSeconds") == nil || mocktest.Dig(spec, "jobTemplate", "spec", "backoffLimit") != float64(2) ||
			mocktest.Dig(spec, "jobTemplate", "spec", "activeDeadlineSeconds") == nil {
			t.Errorf("%s spec = %v", name, spec)
		}
		if mocktest.Dig(spec, "jobTemplate", "metadata", "labels", "app.kubernetes.io/name") != Name {
			t.Errorf("%s: its Jobs are not labelled app.kubernetes.io/name=%s (the runbook selects them so)", name, Name)
		}
		pod := mocktest.Dig(spec, "jobTemplate", "spec", "template", "spec")
		var got []string
		for _, c := range append(mocktest.List(mocktest.Dig(pod, "initContainers")), mocktest.List(mocktest.Dig(pod, "containers"))...) {
			got = append(got, fmt.Sprint(mocktest.Dig(c, "name"), " ", mocktest.Dig(c, "image")))
		}
		if !reflect.DeepEqual(got, steps) {
			t.Errorf("%s steps = %v, want %v", name, got, steps)
		}
	}
	if got := mocktest.Dig(rec.Object(t, "kubernetes:batch/v1:CronJob", Name), "spec", "schedule"); got != "0 2 * * *" {
		t.Errorf("backup schedule = %v", got)
	}
	cm := rec.Object(t, "kubernetes:core/v1:ConfigMap", "etcd-backup-script")
	if mocktest.Dig(cm, "data", "etcd-backup.sh") != Script {
		t.Error("the CronJobs do not run the embedded script")
	}
}

func TestPVCTargetHasNoAWS(t *testing.T) {
	a := s3Args()
	a.Target, a.PVC, a.Protect = TargetPVC, PVC{StorageClass: "standard", Size: "20Gi"}, false
	rec := run(t, a)
	for _, r := range rec.All() {
		if strings.HasPrefix(r.Type, "aws:") {
			t.Errorf("pvc target created %s", r.Type)
		}
	}
	env := mocktest.Dig(rec.Object(t, "kubernetes:batch/v1:CronJob", Name), "spec", "jobTemplate", "spec", "template", "spec", "containers", 0, "env")
	want := map[string]string{"BACKUP_TARGET": "file:///backups", "RETENTION_DAYS": strconv.Itoa(a.S3.RetentionDays)}
	for _, e := range env.([]any) {
		if v, ok := want[mocktest.Dig(e, "name").(string)]; ok && mocktest.Dig(e, "value") == v {
			delete(want, mocktest.Dig(e, "name").(string))
		}
	}
	if len(want) > 0 {
		t.Errorf("pvc target env = %v, missing %v", env, want)
	}
	pvc := rec.Object(t, "kubernetes:core/v1:PersistentVolumeClaim", "etcd-backups")
	if got := mocktest.Dig(pvc, "metadata", "annotations", workload.SkipAwait); got != "true" {
		t.Errorf("backup claim skipAwait = %v: an update of it would hang the up (workload.ClaimMeta)", got)
	}
}

// TestPVCStorageClassChangeRefused: a pvc target's volume keeps its class
// (the snapshots are on it): a new backup.pvcStorageClass — or a new
// etcd.storageClass, its default — on a running stack fails the preview,
// naming the key and the class the volume is on; the same class passes.
func TestPVCStorageClassChangeRefused(t *testing.T) {
	for _, tc := range []struct {
		live    string
		wantErr bool
	}{
		{"standard", false},
		{"gp2", true},
	} {
		t.Run(tc.live, func(t *testing.T) {
			a := s3Args()
			a.Target, a.PVC, a.Protect = TargetPVC, PVC{StorageClass: "standard", Size: "20Gi"}, false
			err := pulumi.RunErr(func(ctx *pulumi.Context) error {
				_, err := NewBackup(ctx, "backup", a)
				return err
			}, pulumi.WithMocks("kcp-tmc", "test", mocktest.ClaimsOn{Recorder: &mocktest.Recorder{}, Class: tc.live}))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("the volume on the configured class: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("backup.pvcStorageClass changed on a running stack was accepted")
			}
			for _, want := range []string{`backup.pvcStorageClass: Invalid value: "standard"`, `(claim etcd-backups, the snapshots) is on StorageClass "gp2"`,
				`set backup.pvcStorageClass to "gp2"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, s3Args, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("backup")) }, []fieldtest.Case[Args]{
		{"unknown target", func(a *Args) { a.Target = "gcs" }, "backup.target", `"gcs": supported values: "s3", "pvc"`},
		{"bad bucket", func(a *Args) { a.S3.Bucket = "Backups_Bucket" }, "backup.bucket", "an S3 bucket name"},
		{"IA too early", func(a *Args) { a.S3.TransitionDays = 10 }, "backup.transitionDays", "10: 0 or at least 30"},
		{"glacier right after IA", func(a *Args) { a.S3.ArchiveDays = 40 }, "backup.archiveDays", "40: 0 or at least transitionDays+30"},
		{"expire before archive", func(a *Args) { a.S3.RetentionDays = 60 }, "backup.retentionDays", "60: longer than"},
		{"no IRSA provider", func(a *Args) { a.S3.OIDCProviderARN = "" }, "backup.oidcProviderArn", `"": the ARN`},
		{"issuer with scheme", func(a *Args) { a.S3.OIDCIssuer = "https://oidc" }, "backup.oidcIssuer", `"https://oidc"`},
		{"issuer of another provider", func(a *Args) { a.S3.OIDCIssuer = "oidc.eks.us-east-1.amazonaws.com/id/OTHER" }, "backup.oidcIssuer", "the end of its ARN"},
		{"lock longer than retention", func(a *Args) { a.S3.ObjectLockDays = 400 }, "backup.objectLockDays", "400: 0 (off) up to retentionDays"},
		{"unpinned image", func(a *Args) { a.Image = "etcd-backup:latest" }, "backup.image", "a pinned image, repository:tag"},
		{"endpoint without scheme", func(a *Args) { a.S3.Endpoint = "minio:9000" }, "backup.endpoint", "an http(s):// URL"},
		{"four-field cron", func(a *Args) { a.Schedule = "0 2 * *" }, "backup.schedule", "a 5-field cron expression"},
		{"local time", func(a *Args) { a.TimeZone = "Local" }, "backup.timeZone", "an IANA time zone"},
		{"pvc target: expire before IA", func(a *Args) {
			a.Target, a.PVC, a.S3.RetentionDays = TargetPVC, PVC{StorageClass: "standard", Size: "20Gi"}, 10
		}, "backup.retentionDays", "10: longer than transitionDays"},
		{"S3-compatible: lock longer than retention", func(a *Args) {
			a.S3.Endpoint, a.S3.ObjectLockDays, a.S3.AccessKeyID, a.S3.SecretAccessKey = "http://minio:9000", 400, "k", pulumi.String("s")
		}, "backup.objectLockDays", "400"},
		{"S3-compatible without an access key", func(a *Args) { a.S3.Endpoint = "http://minio:9000" }, "backup.accessKeyId", "the access key of backup.endpoint's server"},
		{"S3-compatible without the secret key", func(a *Args) { a.S3.Endpoint, a.S3.AccessKeyID = "http://minio:9000", "k" }, "backup.secretAccessKey", "the secret key"},
		{"a static key for AWS S3", func(a *Args) { a.S3.AccessKeyID = "AKIAEXAMPLE" }, "backup.accessKeyId", "unset without backup.endpoint"},
		{"pvc in decimal units", func(a *Args) { a.Target, a.PVC = TargetPVC, PVC{StorageClass: "standard", Size: "20G"} }, "backup.pvcSize", "binary units"},
	})
}

// TestS3Ports: the backup jobs' egress reaches AWS on 443 and an
// S3-compatible endpoint on its own port.
func TestS3Ports(t *testing.T) {
	tests := []struct {
		endpoint string
		want     []int
	}{
		{"", []int{443}},
		{"https://minio.example.com", []int{443}},
		{"http://minio.storage.svc", []int{443, 80}},
		{"https://minio.storage.svc:9000", []int{443, 9000}},
		{"http://10.0.0.5:9000/", []int{443, 9000}},
	}
	for _, tt := range tests {
		if got := s3Ports(tt.endpoint); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("s3Ports(%q) = %v, want %v", tt.endpoint, got, tt.want)
		}
	}
}

// TestS3CompatibleCredentials: an S3-compatible server's access key reaches
// the steps that talk to it — from a Secret whose secret key is a Pulumi
// secret — and no other step; AWS S3 renders neither (IRSA).
func TestS3CompatibleCredentials(t *testing.T) {
	for _, tt := range []struct {
		name     string
		endpoint string
	}{{"S3-compatible", "https://minio.example.com:9000"}, {"AWS S3", ""}} {
		t.Run(tt.name, func(t *testing.T) {
			a := s3Args()
			if tt.endpoint != "" {
				a.S3.Endpoint, a.S3.AccessKeyID, a.S3.SecretAccessKey = tt.endpoint, "backup-key", pulumi.ToSecret(pulumi.String("backup-secret")).(pulumi.StringOutput)
			}
			rec := run(t, a)
			var secrets []mocktest.Resource
			for _, s := range rec.OfType("kubernetes:core/v1:Secret") {
				if mocktest.Dig(s.Input(), "metadata", "name") == CredentialsSecret {
					secrets = append(secrets, s)
				}
			}
			if (len(secrets) == 1) != (tt.endpoint != "") {
				t.Fatalf("%d Secrets %s, want one only with an endpoint", len(secrets), CredentialsSecret)
			}
			if len(secrets) == 1 {
				sd := secrets[0].Inputs["stringData"]
				whole := sd.IsSecret()
				if whole {
					sd = sd.SecretValue().Element
				}
				data := sd.ObjectValue()
				if !(whole || data["AWS_SECRET_ACCESS_KEY"].IsSecret()) || fmt.Sprint(secrets[0].Input()["stringData"].(map[string]any)["AWS_ACCESS_KEY_ID"]) != "backup-key" {
					t.Errorf("credentials Secret %v: the secret key must be a Pulumi secret", data)
				}
			}
			pod := mocktest.Decode[batchv1.CronJob](t, rec.Object(t, "kubernetes:batch/v1:CronJob", Name)).Spec.JobTemplate.Spec.Template.Spec
			for _, c := range append(pod.InitContainers, pod.Containers...) {
				var keys []string
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == CredentialsSecret {
						keys = append(keys, e.Name)
					}
				}
				transfer := c.Image == a.WithDefaults().Image && tt.endpoint != ""
				if want := []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}; transfer != slices.Equal(keys, want) || (!transfer && len(keys) > 0) {
					t.Errorf("step %s (%s) gets %v from %s", c.Name, c.Image, keys, CredentialsSecret)
				}
			}
		})
	}
}
