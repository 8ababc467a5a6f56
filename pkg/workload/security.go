package workload

// The hardening every kcp-tmc workload shares: the Pod Security Standards
// `restricted` profile (the intent of the removed PodSecurityPolicy,
// enforced today by Pod Security Admission), a read-only root filesystem,
// and the volume types allowed. Components build pod specs through these
// instead of copying fields.

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NeedsAPIToken annotates a workload whose pods call the Kubernetes API,
// so their automounted service-account token is intended (the security
// policy refuses it on any other).
const NeedsAPIToken = "kcp-tmc.io/needs-api-token"

// UID and GID every container runs as: non-root, above 10000 so it never
// collides with a node's users (kube-score's threshold).
const (
	UID = 65532
	GID = 65532
)

// AllowedVolumeTypes are the volume sources a pod may use: none reaches the
// node's filesystem or a network share.
var AllowedVolumeTypes = []string{"configMap", "emptyDir", "projected", "secret", "downwardAPI", "persistentVolumeClaim"}

// PodSecurityContext runs every container of the pod as UID/GID with files
// group-owned by GID, under the runtime's default seccomp profile.
func PodSecurityContext() *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:        pulumi.Bool(true),
		RunAsUser:           pulumi.Int(UID),
		RunAsGroup:          pulumi.Int(GID),
		FsGroup:             pulumi.Int(GID),
		FsGroupChangePolicy: pulumi.String("OnRootMismatch"),
		SeccompProfile:      &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// ContainerSecurityContext is `restricted` plus a read-only root filesystem:
// writable paths must be emptyDir or persistent volumes.
func ContainerSecurityContext() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		RunAsNonRoot:             pulumi.Bool(true),
		RunAsUser:                pulumi.Int(UID),
		RunAsGroup:               pulumi.Int(GID),
		AllowPrivilegeEscalation: pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		Privileged:               pulumi.Bool(false),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
		SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// SecretVolume mounts a Secret read-only with owner-only file modes.
func SecretVolume(name, secret string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: pulumi.String(secret), DefaultMode: pulumi.Int(0o440),
	}}
}

// EmptyDir is a size-bounded scratch volume for a writable path.
func EmptyDir(name, sizeLimit string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(sizeLimit)}}
}

// ConfigMapVolume mounts a ConfigMap read-only.
func ConfigMapVolume(name, configMap string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
		Name: pulumi.String(configMap), DefaultMode: pulumi.Int(0o444),
	}}
}

// SecretItemsVolume mounts only the named keys of a Secret (e.g. a
// certificate without its private key).
func SecretItemsVolume(name, secret string, keys ...string) corev1.VolumeArgs {
	items := corev1.KeyToPathArray{}
	for _, k := range keys {
		items = append(items, corev1.KeyToPathArgs{Key: pulumi.String(k), Path: pulumi.String(k)})
	}
	return corev1.VolumeArgs{Name: pulumi.String(name), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: pulumi.String(secret), DefaultMode: pulumi.Int(0o440), Items: items,
	}}
}
