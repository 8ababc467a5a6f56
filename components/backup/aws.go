package backup

// The AWS side of an S3 target: the bucket, its key, the IRSA role the jobs
// assume, and the policies that keep the snapshots private.

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/awsiam"
)

// S3 configures an S3 target. With Endpoint set (an S3-compatible server,
// e.g. MinIO) no AWS resources are created: the bucket must exist.
type S3 struct {
	Bucket, Prefix, Region, Endpoint string
	// Lifecycle, in days: to STANDARD_IA, to GLACIER (0 = never), expiry,
	// and expiry of overwritten (noncurrent) versions.
	TransitionDays, ArchiveDays, RetentionDays, NoncurrentDays int
	// ObjectLockDays > 0 turns on Object Lock (governance mode) for that many
	// days: a stolen credential cannot delete recent backups.
	ObjectLockDays int
	// OIDCProviderARN and OIDCIssuer (host/path, no scheme) identify the
	// cluster's IRSA identity provider.
	OIDCProviderARN, OIDCIssuer string
	// IRSA, when set, supplies the provider from the cloud layer's outputs
	// instead (the strings above are then ignored).
	IRSA *IRSAProvider
	// AccessKeyID and SecretAccessKey (a Pulumi secret) are Endpoint's
	// credentials: the transfer steps get them from the Secret CredentialsSecret.
	AccessKeyID     string
	SecretAccessKey pulumi.StringInput
}

// CredentialsSecret holds an S3-compatible server's access key for the
// backup jobs.
const CredentialsSecret = "etcd-backup-s3"

// IRSAProvider is an IAM OIDC provider known only as outputs.
type IRSAProvider struct{ ARN, Issuer pulumi.StringInput }

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func (s S3) validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !bucketName.MatchString(s.Bucket) || strings.Contains(s.Bucket, "..") {
		errs = append(errs, field.Invalid(fld.Child("bucket"), s.Bucket, "an S3 bucket name (3–63 lowercase letters, digits, dots, hyphens)"))
	}
	if s.Prefix == "" || strings.HasPrefix(s.Prefix, "/") || strings.HasSuffix(s.Prefix, "/") {
		errs = append(errs, field.Invalid(fld.Child("prefix"), s.Prefix, "a key prefix without leading or trailing slash"))
	}
	if s.Region == "" {
		errs = append(errs, field.Required(fld.Child("region"), "an AWS region"))
	}
	if s.Endpoint != "" { // an S3-compatible server: its access key, no IRSA
		if s.AccessKeyID == "" {
			errs = append(errs, field.Required(fld.Child("accessKeyId"), "the access key of backup.endpoint's server"))
		}
		if s.SecretAccessKey == nil {
			errs = append(errs, field.Required(fld.Child("secretAccessKey"), "the secret key of backup.accessKeyId"))
		}
		return errs
	}
	if s.AccessKeyID != "" || s.SecretAccessKey != nil {
		errs = append(errs, field.Invalid(fld.Child("accessKeyId"), s.AccessKeyID, "unset without backup.endpoint (AWS S3 is reached through IRSA, never a static key)"))
	}
	if s.IRSA == nil && (!strings.HasPrefix(s.OIDCProviderARN, "arn:aws") || !strings.Contains(s.OIDCProviderARN, ":oidc-provider/")) {
		errs = append(errs, field.Invalid(fld.Child("oidcProviderArn"), s.OIDCProviderARN, "the ARN of the cluster's IAM OIDC provider (arn:aws:iam::<account>:oidc-provider/<issuer>)"))
	}
	if s.IRSA == nil && (s.OIDCIssuer == "" || strings.Contains(s.OIDCIssuer, "://") || !strings.HasSuffix(s.OIDCProviderARN, "/"+s.OIDCIssuer)) {
		errs = append(errs, field.Invalid(fld.Child("oidcIssuer"), s.OIDCIssuer, "the provider's issuer without https://, the end of its ARN"))
	}
	return errs
}

// validateLifecycle checks the snapshot lifecycle's days against each other
// on every target: retentionDays prunes a PVC target too, and a rule on
// values the user wrote holds whatever the target.
func (s S3) validateLifecycle(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.TransitionDays != 0 && s.TransitionDays < 30 {
		errs = append(errs, field.Invalid(fld.Child("transitionDays"), s.TransitionDays, "0 or at least 30 (S3's minimum for STANDARD_IA)"))
	}
	if s.ArchiveDays != 0 && s.ArchiveDays < s.TransitionDays+30 {
		errs = append(errs, field.Invalid(fld.Child("archiveDays"), s.ArchiveDays, "0 or at least transitionDays+30"))
	}
	if s.RetentionDays <= max(s.ArchiveDays, s.TransitionDays) {
		errs = append(errs, field.Invalid(fld.Child("retentionDays"), s.RetentionDays, "longer than transitionDays and archiveDays"))
	}
	if s.NoncurrentDays < 1 {
		errs = append(errs, field.Invalid(fld.Child("noncurrentDays"), s.NoncurrentDays, "at least 1"))
	}
	if s.ObjectLockDays < 0 || s.ObjectLockDays > s.RetentionDays {
		errs = append(errs, field.Invalid(fld.Child("objectLockDays"), s.ObjectLockDays, "0 (off) up to retentionDays"))
	}
	return errs
}

// awsTarget is true when this component owns AWS resources.
func (a Args) awsTarget() bool { return a.Target == TargetS3 && a.S3.Endpoint == "" }

func (b *Backup) aws(ctx *pulumi.Context, name string, a Args, keep []pulumi.ResourceOption) error {
	child := keep[0]
	s := a.S3
	key, err := kms.NewKey(ctx, name+"-key", &kms.KeyArgs{
		Description:          pulumi.Sprintf("kcp-tmc etcd backups of %s", a.ClusterName),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
	}, keep...)
	if err != nil {
		return fmt.Errorf("KMS key: %w", err)
	}
	if _, err := kms.NewAlias(ctx, name+"-key-alias", &kms.AliasArgs{
		Name: pulumi.Sprintf("alias/%s-etcd-backups", a.ClusterName), TargetKeyId: key.KeyId,
	}, child); err != nil {
		return fmt.Errorf("KMS alias: %w", err)
	}
	bucket, err := newBucket(ctx, name, s, key, keep)
	if err != nil {
		return err
	}
	role, err := newRole(ctx, name, a, bucket, key, child)
	if err != nil {
		return err
	}
	b.BucketARN, b.KeyARN, b.RoleARN = bucket.Arn, key.Arn, role.Arn
	return nil
}

// newBucket creates the snapshots' bucket: versioned, encrypted with key,
// never public, TLS only, expiring by the lifecycle (and locked against
// deletion with ObjectLockDays).
func newBucket(ctx *pulumi.Context, name string, s S3, key *kms.Key, keep []pulumi.ResourceOption) (*s3.BucketV2, error) {
	bucket, err := s3.NewBucketV2(ctx, name+"-bucket", &s3.BucketV2Args{
		Bucket:            pulumi.String(s.Bucket),
		ObjectLockEnabled: pulumi.Bool(s.ObjectLockDays > 0),
		ForceDestroy:      pulumi.Bool(false),
	}, keep...)
	if err != nil {
		return nil, fmt.Errorf("bucket: %w", err)
	}
	if _, err := s3.NewBucketVersioningV2(ctx, name+"-versioning", &s3.BucketVersioningV2Args{
		Bucket: bucket.ID(), VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, keep...); err != nil {
		return nil, fmt.Errorf("bucket versioning: %w", err)
	}
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name+"-encryption", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm: pulumi.String("aws:kms"), KmsMasterKeyId: key.Arn,
			},
			BucketKeyEnabled: pulumi.Bool(true),
		}},
	}, keep...); err != nil {
		return nil, fmt.Errorf("bucket encryption: %w", err)
	}
	if _, err := s3.NewBucketPublicAccessBlock(ctx, name+"-public-access-block", &s3.BucketPublicAccessBlockArgs{
		Bucket: bucket.ID(), BlockPublicAcls: pulumi.Bool(true), BlockPublicPolicy: pulumi.Bool(true),
		IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true),
	}, keep...); err != nil {
		return nil, fmt.Errorf("public access block: %w", err)
	}
	if _, err := s3.NewBucketPolicy(ctx, name+"-bucket-policy", &s3.BucketPolicyArgs{
		Bucket: bucket.ID(),
		Policy: pulumi.All(bucket.Arn, key.Arn).ApplyT(func(v []any) (string, error) {
			return BucketPolicy(v[0].(string), v[1].(string))
		}).(pulumi.StringOutput),
	}, keep...); err != nil {
		return nil, fmt.Errorf("bucket policy: %w", err)
	}
	if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name+"-lifecycle", &s3.BucketLifecycleConfigurationV2Args{
		Bucket: bucket.ID(), Rules: lifecycle(s),
	}, keep...); err != nil {
		return nil, fmt.Errorf("bucket lifecycle: %w", err)
	}
	if s.ObjectLockDays > 0 {
		if _, err := s3.NewBucketObjectLockConfigurationV2(ctx, name+"-object-lock", &s3.BucketObjectLockConfigurationV2Args{
			Bucket: bucket.ID(),
			Rule: &s3.BucketObjectLockConfigurationV2RuleArgs{DefaultRetention: s3.BucketObjectLockConfigurationV2RuleDefaultRetentionArgs{
				Mode: pulumi.String("GOVERNANCE"), Days: pulumi.Int(s.ObjectLockDays),
			}},
		}, keep...); err != nil {
			return nil, fmt.Errorf("object lock: %w", err)
		}
	}
	return bucket, nil
}

// newRole creates the IRSA role the jobs assume: only their ServiceAccount
// may, and it may only write, read and list snapshots under the prefix.
func newRole(ctx *pulumi.Context, name string, a Args, bucket *s3.BucketV2, key *kms.Key, child pulumi.ResourceOption) (*iam.Role, error) {
	s := a.S3
	irsa := s.IRSA
	if irsa == nil {
		irsa = &IRSAProvider{ARN: pulumi.String(s.OIDCProviderARN), Issuer: pulumi.String(s.OIDCIssuer)}
	}
	trust := pulumi.All(irsa.ARN, irsa.Issuer).ApplyT(func(v []any) (string, error) {
		return awsiam.ServiceAccountTrust(v[0].(string), v[1].(string), a.Namespace, ServiceAccount)
	}).(pulumi.StringOutput)
	role, err := iam.NewRole(ctx, name+"-role", &iam.RoleArgs{
		Description:      pulumi.Sprintf("etcd backups of %s (IRSA: %s/%s only)", a.ClusterName, a.Namespace, ServiceAccount),
		AssumeRolePolicy: trust,
	}, child)
	if err != nil {
		return nil, fmt.Errorf("IAM role: %w", err)
	}
	if _, err := iam.NewRolePolicy(ctx, name+"-role-policy", &iam.RolePolicyArgs{
		Role: role.ID(),
		Policy: pulumi.All(bucket.Arn, key.Arn).ApplyT(func(v []any) (string, error) {
			return AccessPolicy(v[0].(string), s.Prefix, v[1].(string))
		}).(pulumi.StringOutput),
	}, child); err != nil {
		return nil, fmt.Errorf("IAM role policy: %w", err)
	}
	return role, nil
}

func lifecycle(s S3) s3.BucketLifecycleConfigurationV2RuleArray {
	var transitions s3.BucketLifecycleConfigurationV2RuleTransitionArray
	if s.TransitionDays > 0 {
		transitions = append(transitions, s3.BucketLifecycleConfigurationV2RuleTransitionArgs{Days: pulumi.Int(s.TransitionDays), StorageClass: pulumi.String("STANDARD_IA")})
	}
	if s.ArchiveDays > 0 {
		transitions = append(transitions, s3.BucketLifecycleConfigurationV2RuleTransitionArgs{Days: pulumi.Int(s.ArchiveDays), StorageClass: pulumi.String("GLACIER")})
	}
	return s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{
		Id:                             pulumi.String("etcd-snapshots"),
		Status:                         pulumi.String("Enabled"),
		Filter:                         &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String(s.Prefix + "/")},
		Transitions:                    transitions,
		Expiration:                     &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{Days: pulumi.Int(s.RetentionDays)},
		NoncurrentVersionExpiration:    &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{NoncurrentDays: pulumi.Int(s.NoncurrentDays)},
		AbortIncompleteMultipartUpload: &s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{DaysAfterInitiation: pulumi.Int(7)},
	}}
}

// AccessPolicy allows writing, reading and listing snapshots under the
// prefix only, with the backup key only. No delete: expiry is the lifecycle's job.
func AccessPolicy(bucketARN, prefix, keyARN string) (string, error) {
	return awsiam.Policy(
		awsiam.Statement{Sid: "Snapshots", Effect: "Allow", Action: []string{"s3:PutObject", "s3:GetObject"}, Resource: bucketARN + "/" + prefix + "/*"},
		awsiam.Statement{Sid: "ListSnapshots", Effect: "Allow", Action: "s3:ListBucket", Resource: bucketARN,
			Condition: map[string]any{"StringLike": map[string]any{"s3:prefix": []string{prefix + "/*", prefix + "/"}}}},
		awsiam.Statement{Sid: "BackupKey", Effect: "Allow", Action: []string{"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"}, Resource: keyARN},
	)
}

// BucketPolicy refuses plain-HTTP access and any upload that asks for
// another encryption than the backup key. An upload that asks for none is
// encrypted with the key by the bucket's default encryption — and must be
// let through: a multipart upload's parts (UploadPart, authorized as
// s3:PutObject) never carry the encryption headers, which S3 takes from
// the upload's start only, so requiring the header on every PutObject
// refused every snapshot larger than the AWS CLI's multipart threshold
// (8 MiB; boto/botocore#471).
func BucketPolicy(bucketARN, keyARN string) (string, error) {
	return awsiam.Policy(
		awsiam.Statement{Sid: "DenyInsecureTransport", Effect: "Deny", Principal: "*", Action: "s3:*",
			Resource: []string{bucketARN, bucketARN + "/*"}, Condition: map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}}},
		awsiam.Statement{Sid: "DenyOtherEncryption", Effect: "Deny", Principal: "*", Action: "s3:PutObject", Resource: bucketARN + "/*",
			Condition: map[string]any{"StringNotEqualsIfExists": map[string]string{"s3:x-amz-server-side-encryption": "aws:kms"}}},
		awsiam.Statement{Sid: "DenyOtherKeys", Effect: "Deny", Principal: "*", Action: "s3:PutObject", Resource: bucketARN + "/*",
			Condition: map[string]any{"StringNotEqualsIfExists": map[string]string{"s3:x-amz-server-side-encryption-aws-kms-key-id": keyARN}}},
	)
}
