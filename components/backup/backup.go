// Package backup takes daily etcd snapshots and proves they restore: an
// encrypted, versioned S3 bucket with a dedicated KMS key and a
// least-privilege IRSA role (or, for dev, a PVC or an S3-compatible
// endpoint), a backup CronJob and a weekly verification CronJob running the
// one script in scripts/etcd-backup.sh, and a restore plan (restore.go).
package backup

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // validate TimeZone without relying on the host's zoneinfo

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:backup:Backup"

// The root shard's etcd's jobs: etcd-backup and etcd-backup-verify.
var (
	Name       = shard.BackupJob(shard.Etcd)
	VerifyName = shard.VerifyJob(shard.Etcd)
)

// Names.
const (
	ServiceAccount = "etcd-backup"
	ScriptMount    = "/scripts"
	// PVCClaim holds the snapshots of a `pvc` target (dev), at /backups.
	PVCClaim = "etcd-backups"
	// DefaultImage runs the script's transfer steps (sh and the aws CLI):
	// the AWS CLI's official image. The etcd steps run on the stack's own
	// etcd image (etcdctl, etcdutl), so no step needs a private image.
	DefaultImage = "public.ecr.aws/aws-cli/aws-cli"
	DefaultTag   = "2.22.0"
)

// Targets.
const (
	TargetS3  = "s3"
	TargetPVC = "pvc"
)

// Args configures backups.
type Args struct {
	Namespace   string
	ClusterName string // in every object key
	Schedule    string // cron, default "0 2 * * *"
	TimeZone    string // default UTC
	// VerifySchedule runs the restore verification (default weekly, Sunday 04:00).
	VerifySchedule string
	// Image runs the upload and fetch steps: repository:tag with sh and the
	// aws CLI (hack/backup-image's, which also has the etcd tools, works too).
	Image string
	// EtcdImage is the pinned etcd image (etcdctl, etcdutl) the snapshot,
	// check and restore steps run on: the one etcd itself runs.
	EtcdImage string
	// EtcdURL is etcd's client Service: it routes to ready members only, so
	// the snapshot comes from a healthy one.
	EtcdURL       string
	EtcdEndpoints []string
	ClientSecret  string // the etcd-client-backup certificate Secret
	EtcdSelector  map[string]string
	Target        string
	S3            S3
	PVC           PVC
	Resources     workload.Resources
	// Protect keeps the bucket, key and PVC through `pulumi destroy`.
	Protect bool
	// Shards are the kcp shards besides the root shard (whose etcd is the
	// one above): each one's etcd is backed up and verified by its own jobs,
	// shard.Shard.BackupJob and VerifyJob, and its snapshots go under
	// <ClusterName>-<its etcd cluster>/, beside (never inside) the root's.
	Shards []shard.Shard

	// job names the jobs, pods and policy of the cluster being rendered.
	job string
}

// SnapshotPrefix is the first path element of an etcd cluster's snapshot
// keys: the stack's cluster name for the root shard's etcd, and
// <clusterName>-<etcdCluster> beside it for another shard's.
func SnapshotPrefix(clusterName, etcdCluster string) string {
	if etcdCluster == etcd.Name {
		return clusterName
	}
	return clusterName + "-" + etcdCluster
}

// forShard is a with the shard's cluster in place of the root's.
func (a Args) forShard(s shard.Shard) Args {
	db := etcd.ClusterOf(s, a.Namespace)
	a.EtcdURL, a.EtcdEndpoints, a.EtcdSelector = db.ClientURL(), db.MemberURLs(s.EtcdMembers), db.Selector()
	a.ClusterName = SnapshotPrefix(a.ClusterName, db.Name)
	a.job = s.BackupJob()
	a.Shards = nil
	return a
}

// jobName is the cluster's backup job name (the root's is Name).
func (a Args) jobName() string {
	if a.job == "" {
		return Name
	}
	return a.job
}

// PVC configures a volume target (dev).
type PVC struct{ StorageClass, Size string }

// Backup is the component.
type Backup struct {
	pulumi.ResourceState

	// Target is where snapshots go (s3://bucket/prefix or a PVC path).
	Target pulumi.StringOutput `pulumi:"target"`
	// BucketARN, KeyARN and RoleARN are set for AWS S3 targets.
	BucketARN pulumi.StringOutput `pulumi:"bucketArn"`
	KeyARN    pulumi.StringOutput `pulumi:"keyArn"`
	RoleARN   pulumi.StringOutput `pulumi:"roleArn"`
	// VolumeStorageClass is the pvc target's class ("" for S3); it fails the
	// deployment if backup.pvcStorageClass differs from the class the
	// volume is on.
	VolumeStorageClass pulumi.StringOutput `pulumi:"volumeStorageClass"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Schedule, "0 2 * * *")
	// A snapshot is staged on the pod's scratch space before upload.
	component.Default(&a.Resources, workload.Resources{
		Requests: workload.ResourceList{CPU: "100m", Memory: "128Mi", EphemeralStorage: "1Gi"},
		Limits:   workload.ResourceList{CPU: "1", Memory: "512Mi", EphemeralStorage: "10Gi"}})
	component.Default(&a.TimeZone, "UTC")
	component.Default(&a.VerifySchedule, "0 4 * * 0")
	component.Default(&a.Image, DefaultImage+":"+DefaultTag)
	if a.Target == TargetS3 && a.S3.Prefix == "" {
		a.S3.Prefix = "etcd"
	}
	return a
}

// Validate reports every invalid field under fld, children named by the
// stack's keys (the S3 fields sit directly under backup there).
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, req := range []struct {
		key string
		set bool
	}{{"namespace", a.Namespace != ""}, {"clusterName", a.ClusterName != ""}, {"clientSecret", a.ClientSecret != ""}, {"etcdEndpoints", len(a.EtcdEndpoints) > 0}} {
		if !req.set {
			errs = append(errs, field.Required(fld.Child(req.key), "set by the stack"))
		}
	}
	if err := ValidateCron(a.Schedule); err != nil {
		errs = append(errs, field.Invalid(fld.Child("schedule"), a.Schedule, "a 5-field cron expression or @daily/@hourly/@weekly/@monthly/@yearly ("+err.Error()+")"))
	}
	if err := ValidateCron(a.VerifySchedule); err != nil {
		errs = append(errs, field.Invalid(fld.Child("verifySchedule"), a.VerifySchedule, "a 5-field cron expression ("+err.Error()+")"))
	}
	if _, err := time.LoadLocation(a.TimeZone); err != nil || a.TimeZone == "" || a.TimeZone == "Local" {
		errs = append(errs, field.Invalid(fld.Child("timeZone"), a.TimeZone, `an IANA time zone such as "UTC" or "Europe/Berlin"`))
	}
	errs = append(errs, check.Image(fld.Child("image"), a.Image, DefaultImage+":"+DefaultTag)...)
	errs = append(errs, check.Image(fld.Child("etcdImage"), a.EtcdImage, "quay.io/coreos/etcd:v3.5.35")...)
	if !strings.HasPrefix(a.EtcdURL, "https://") {
		errs = append(errs, field.Invalid(fld.Child("etcdURL"), a.EtcdURL, "etcd's https:// client Service URL"))
	}
	errs = append(errs, shard.ValidateNames(fld.Child("shards"), shard.Names(a.Shards))...)
	for i, sh := range a.Shards {
		if sh.EtcdMembers < 1 {
			errs = append(errs, field.Invalid(fld.Child("shards").Index(i).Child("etcdMembers"), sh.EtcdMembers, "at least 1"))
		}
	}
	if e := a.S3.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, field.Invalid(fld.Child("endpoint"), e, "an http(s):// URL of an S3-compatible server"))
		}
	}
	errs = append(errs, a.S3.validateLifecycle(fld)...)
	switch a.Target {
	case TargetPVC:
		errs = append(errs, a.PVC.validate(fld)...)
	case TargetS3:
		errs = append(errs, a.S3.validate(fld)...)
	default:
		errs = append(errs, field.NotSupported(fld.Child("target"), a.Target, []string{TargetS3, TargetPVC}))
	}
	return errs
}

func (p PVC) validate(fld *field.Path) field.ErrorList {
	errs := check.DNSSubdomain(fld.Child("pvcStorageClass"), p.StorageClass, "a StorageClass name")
	if q, err := resource.ParseQuantity(p.Size); err != nil || q.Sign() <= 0 || q.Format != resource.BinarySI {
		errs = append(errs, field.Invalid(fld.Child("pvcSize"), p.Size, `a volume size in binary units such as "20Gi"`))
	}
	return errs
}

// validate checks the S3 target's bucket and identity.
// NewBackup registers the component and its children. AWS resources use the
// aws provider passed in opts (pulumi.Providers).
func NewBackup(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Backup, error) {
	args = args.WithDefaults()
	comp := &Backup{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("backup")), opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)
	keep := []pulumi.ResourceOption{child}
	if args.Protect {
		keep = append(keep, pulumi.Protect(true), pulumi.RetainOnDelete(true))
	}
	comp.BucketARN = pulumi.String("").ToStringOutput()
	comp.KeyARN, comp.RoleARN, comp.VolumeStorageClass = comp.BucketARN, comp.BucketARN, comp.BucketARN
	comp.Target = pulumi.String("file:///backups").ToStringOutput()
	if args.Target == TargetS3 {
		comp.Target = pulumi.Sprintf("s3://%s/%s", args.S3.Bucket, args.S3.Prefix).ToStringOutput()
	}
	if args.awsTarget() {
		if err := comp.aws(ctx, name, args, keep); err != nil {
			return nil, err
		}
	}
	if err := comp.kubernetes(ctx, name, args, keep); err != nil {
		return nil, err
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"target": comp.Target, "bucketArn": comp.BucketARN, "keyArn": comp.KeyARN, "roleArn": comp.RoleARN,
		"volumeStorageClass": comp.VolumeStorageClass,
	}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

func (b *Backup) kubernetes(ctx *pulumi.Context, name string, a Args, keep []pulumi.ResourceOption) error {
	child := keep[0]
	ns := a.Namespace
	saMeta := workload.Meta(ServiceAccount, ns, Name)
	if a.awsTarget() {
		// IRSA: the EKS webhook injects a projected web-identity token for this role.
		saMeta.Annotations = pulumi.StringMap{"eks.amazonaws.com/role-arn": b.RoleARN}
	}
	if _, err := corev1.NewServiceAccount(ctx, name+"-sa", &corev1.ServiceAccountArgs{
		Metadata: saMeta, AutomountServiceAccountToken: pulumi.Bool(false),
	}, child); err != nil {
		return fmt.Errorf("backup ServiceAccount: %w", err)
	}
	if _, err := corev1.NewConfigMap(ctx, name+"-script", &corev1.ConfigMapArgs{
		Metadata: workload.Meta("etcd-backup-script", ns, Name),
		Data:     pulumi.StringMap{"etcd-backup.sh": pulumi.String(Script)},
	}, child); err != nil {
		return fmt.Errorf("backup script ConfigMap: %w", err)
	}
	if a.Target == TargetPVC {
		// The snapshots' volume keeps its class (a replacement would lose
		// them, and the API refuses a claim's new class anyway): a new
		// backup.pvcStorageClass — or a new etcd.storageClass, its default —
		// is refused in the preview instead.
		pvc, err := corev1.NewPersistentVolumeClaim(ctx, name+"-pvc", &corev1.PersistentVolumeClaimArgs{
			Metadata: workload.ClaimMeta(PVCClaim, ns, Name),
			Spec: &corev1.PersistentVolumeClaimSpecArgs{
				AccessModes:      pulumi.ToStringArray([]string{"ReadWriteOnce"}),
				StorageClassName: pulumi.String(a.PVC.StorageClass),
				Resources:        &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(a.PVC.Size)}},
			},
		}, append(slices.Clip(keep), workload.KeepClaimClass)...)
		if err != nil {
			return fmt.Errorf("backup PVC: %w", err)
		}
		b.VolumeStorageClass = workload.ClaimClass(field.NewPath("backup", "pvcStorageClass"), a.PVC.StorageClass,
			"the backup volume (claim "+PVCClaim+", the snapshots) is", func(class string) string {
				return fmt.Sprintf("set backup.pvcStorageClass to %q (unset, it follows etcd.storageClass; the snapshots stay on their volume)", class)
			}, pvc)
	}
	if a.s3Compatible() {
		if _, err := corev1.NewSecret(ctx, name+"-s3-credentials", &corev1.SecretArgs{
			Metadata: workload.Meta(CredentialsSecret, ns, Name),
			Type:     pulumi.String("Opaque"),
			StringData: pulumi.StringMap{
				"AWS_ACCESS_KEY_ID":     pulumi.String(a.S3.AccessKeyID),
				"AWS_SECRET_ACCESS_KEY": pulumi.ToSecret(a.S3.SecretAccessKey).(pulumi.StringOutput),
			},
		}, child); err != nil {
			return fmt.Errorf("backup S3 credentials Secret: %w", err)
		}
	}
	if err := b.jobs(ctx, name, a, child); err != nil {
		return err
	}
	for _, sh := range a.Shards {
		if err := b.jobs(ctx, name+"-"+sh.EtcdCluster(), a.forShard(sh), child); err != nil {
			return err
		}
	}
	return nil
}

// jobs are one etcd cluster's backup and verification CronJobs and the
// policy that lets their pods reach that cluster only.
func (b *Backup) jobs(ctx *pulumi.Context, name string, a Args, child pulumi.ResourceOption) error {
	ns, app := a.Namespace, a.jobName()
	for _, job := range []struct {
		name, schedule, urn string
		steps               []Step
	}{
		{app, a.Schedule, "backup", BackupSteps(a)},
		{app + "-verify", a.VerifySchedule, "verify-latest", VerifySteps(a)},
	} {
		if _, err := batchv1.NewCronJob(ctx, name+"-"+job.urn, &batchv1.CronJobArgs{
			Metadata: workload.Meta(job.name, ns, app),
			Spec: &batchv1.CronJobSpecArgs{
				Schedule:                   pulumi.String(job.schedule),
				TimeZone:                   pulumi.String(a.TimeZone),
				ConcurrencyPolicy:          pulumi.String("Forbid"),
				StartingDeadlineSeconds:    pulumi.Int(600),
				SuccessfulJobsHistoryLimit: pulumi.Int(3),
				FailedJobsHistoryLimit:     pulumi.Int(5),
				JobTemplate: batchv1.JobTemplateSpecArgs{
					// Labelled like their pods, so `kubectl get jobs -l app.kubernetes.io/name=etcd-backup` finds them.
					Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(workload.Labels(app))},
					Spec: batchv1.JobSpecArgs{
						BackoffLimit:            pulumi.Int(2),
						ActiveDeadlineSeconds:   pulumi.Int(3600),
						TtlSecondsAfterFinished: pulumi.Int(7 * 24 * 3600),
						Template:                podTemplate(a, b, job.steps),
					}},
			},
		}, child); err != nil {
			return fmt.Errorf("CronJob %s: %w", job.name, err)
		}
	}
	egress := []netpol.Flow{{Pods: a.EtcdSelector, Ports: []int{2379}}}
	if a.Target == TargetS3 {
		egress = append(egress, netpol.Anywhere(s3Ports(a.S3.Endpoint)...))
	}
	_, err := netpol.NewAllowPolicy(ctx, name+"-netpol", ns, app, workload.Labels(app), nil, egress, child)
	return err
}

// Step is one container of a backup pod: all but the last run as init
// containers, in order, sharing /work; any failure fails the Job.
type Step struct {
	Name, Image string
	Command     []string
}

const work = "/work"

// BackupSteps: etcdctl takes the snapshot through the client Service and
// etcdutl checks it (hash, readable) on the etcd image; the script uploads
// it with the aws CLI.
func BackupSteps(a Args) []Step {
	snap := work + "/snapshot.db"
	return []Step{
		{"snapshot", a.EtcdImage, []string{"etcdctl", "--endpoints=" + a.EtcdURL, "--dial-timeout=10s", "--command-timeout=10m", "snapshot", "save", snap}},
		{"check", a.EtcdImage, []string{"etcdutl", "snapshot", "status", snap, "-w", "json"}},
		{"upload", a.Image, []string{"sh", ScriptMount + "/etcd-backup.sh", "upload", snap}},
	}
}

// VerifySteps: the script fetches the newest snapshot; etcdutl checks it
// and restores it into scratch space, as a recovery would.
func VerifySteps(a Args) []Step {
	latest := work + "/latest.db"
	return []Step{
		{"fetch", a.Image, []string{"sh", ScriptMount + "/etcd-backup.sh", "fetch-latest", latest}},
		{"check", a.EtcdImage, []string{"etcdutl", "snapshot", "status", latest, "-w", "json"}},
		{"restore", a.EtcdImage, []string{"etcdutl", "snapshot", "restore", latest, "--data-dir", work + "/verify"}},
	}
}

func podTemplate(a Args, b *Backup, steps []Step) corev1.PodTemplateSpecArgs {
	env := corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("ETCD_ENDPOINTS"), Value: pulumi.String(strings.Join(a.EtcdEndpoints, ","))},
		corev1.EnvVarArgs{Name: pulumi.String("ETCDCTL_CACERT"), Value: pulumi.String("/etc/etcd-backup/tls/ca.crt")},
		corev1.EnvVarArgs{Name: pulumi.String("ETCDCTL_CERT"), Value: pulumi.String("/etc/etcd-backup/tls/tls.crt")},
		corev1.EnvVarArgs{Name: pulumi.String("ETCDCTL_KEY"), Value: pulumi.String("/etc/etcd-backup/tls/tls.key")},
		corev1.EnvVarArgs{Name: pulumi.String("BACKUP_TARGET"), Value: b.Target},
		corev1.EnvVarArgs{Name: pulumi.String("CLUSTER_NAME"), Value: pulumi.String(a.ClusterName)},
		corev1.EnvVarArgs{Name: pulumi.String("WORK_DIR"), Value: pulumi.String(work)},
		corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String(work)}, // the aws CLI writes a cache
	}
	if a.Target == TargetPVC {
		// S3's lifecycle expires snapshots in the bucket; a volume only
		// empties when the upload step prunes it.
		env = append(env, corev1.EnvVarArgs{Name: pulumi.String("RETENTION_DAYS"), Value: pulumi.String(strconv.Itoa(a.S3.RetentionDays))})
	}
	if a.Target == TargetS3 {
		env = append(env,
			corev1.EnvVarArgs{Name: pulumi.String("AWS_REGION"), Value: pulumi.String(a.S3.Region)},
			corev1.EnvVarArgs{Name: pulumi.String("SSE_KMS_KEY_ID"), Value: b.KeyARN})
		if a.S3.Endpoint != "" {
			env = append(env, corev1.EnvVarArgs{Name: pulumi.String("AWS_ENDPOINT_URL"), Value: pulumi.String(a.S3.Endpoint)})
		}
	}
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String("script"), MountPath: pulumi.String(ScriptMount), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("tls"), MountPath: pulumi.String("/etc/etcd-backup/tls"), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("work"), MountPath: pulumi.String("/work")},
	}
	volumes := corev1.VolumeArray{
		workload.ConfigMapVolume("script", "etcd-backup-script"),
		workload.SecretVolume("tls", a.ClientSecret),
		workload.EmptyDir("work", "10Gi"), // a snapshot is at most the 8Gi quota
	}
	if a.Target == TargetPVC {
		mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String("backups"), MountPath: pulumi.String("/backups")})
		volumes = append(volumes, corev1.VolumeArgs{Name: pulumi.String("backups"),
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSourceArgs{ClaimName: pulumi.String(PVCClaim)}})
	}
	// An S3-compatible server's key, for the steps that reach it (the
	// transfer steps, on Image) and no other.
	transferEnv := env
	if a.s3Compatible() {
		transferEnv = append(corev1.EnvVarArray{}, env...)
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			transferEnv = append(transferEnv, corev1.EnvVarArgs{Name: pulumi.String(k), ValueFrom: &corev1.EnvVarSourceArgs{
				SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: pulumi.String(CredentialsSecret), Key: pulumi.String(k)}}})
		}
	}
	var containers corev1.ContainerArray
	for _, st := range steps {
		stepEnv := env
		if st.Image == a.Image {
			stepEnv = transferEnv
		}
		containers = append(containers, corev1.ContainerArgs{
			Name:            pulumi.String(st.Name),
			Image:           pulumi.String(st.Image),
			ImagePullPolicy: pulumi.String("Always"),
			Command:         pulumi.ToStringArray(st.Command),
			Env:             stepEnv,
			Resources:       a.Resources.Args(),
			SecurityContext: workload.ContainerSecurityContext(),
			VolumeMounts:    mounts,
		})
	}
	return corev1.PodTemplateSpecArgs{
		Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(workload.Labels(a.jobName()))},
		Spec: &corev1.PodSpecArgs{
			ServiceAccountName:           pulumi.String(ServiceAccount),
			AutomountServiceAccountToken: pulumi.Bool(false),
			RestartPolicy:                pulumi.String("Never"),
			SecurityContext:              workload.PodSecurityContext(),
			InitContainers:               containers[:len(containers)-1],
			Containers:                   containers[len(containers)-1:],
			Volumes:                      volumes,
		},
	}
}

// s3Compatible says whether the target is an S3-compatible server
// (backup.endpoint), reached with its access key.
func (a Args) s3Compatible() bool { return a.Target == TargetS3 && a.S3.Endpoint != "" }

// s3Ports are the ports the backup jobs reach storage on: 443 for AWS (S3
// and STS), plus an S3-compatible endpoint's own port.
func s3Ports(endpoint string) []int {
	ports := []int{443}
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil {
		return ports
	}
	port := 443
	if u.Scheme == "http" {
		port = 80
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = p
	}
	if port != 443 {
		ports = append(ports, port)
	}
	return ports
}
