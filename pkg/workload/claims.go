package workload

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// SkipAwait is the Kubernetes provider's documented annotation that makes
// it create or update an object without waiting for it to become ready.
const SkipAwait = "pulumi.com/skipAwait"

// WaitFor is the Kubernetes provider's annotation that makes an apply wait
// until the object meets its condition (`condition=Ready`,
// `jsonpath={…}=value`); skipAwait still wins over it.
const WaitFor = "pulumi.com/waitFor"

// TimeoutSeconds is the Kubernetes provider's annotation that bounds its
// wait for an object (its default for a Job is 10 minutes).
const TimeoutSeconds = "pulumi.com/timeoutSeconds"

// ReplaceUnready is the Kubernetes provider's annotation that replaces a
// Job at the next up while it has not completed (failed, or still
// running): the Job runs again instead of failing the up as it did.
const ReplaceUnready = "pulumi.com/replaceUnready"

// ClaimMeta is a volume claim's metadata: Meta's, and not awaited. The
// Kubernetes provider (v4.32's module, the one the module proxy serves)
// waits after an update of a bound claim on a WaitForFirstConsumer class —
// EKS's gp2/gp3, storage.create's — until it is Pending, which it never is
// again: a resize, or the labels an up gives back to a claim a StatefulSet
// made, failed the up after 5 minutes (pulumi/pulumi-kubernetes#4179, fixed
// upstream after that module; found on the node). A claim's pod waits for
// it anyway, and the up awaits the pods.
func ClaimMeta(name, namespace, component string) *metav1.ObjectMetaArgs {
	m := Meta(name, namespace, component)
	m.Annotations = pulumi.StringMap{SkipAwait: pulumi.String("true")}
	return m
}

// KeepClaimClass is the option of a claim whose StorageClass comes from a
// key: a claim's class cannot change (the API refuses it, after Pulumi has
// dropped the retained claim it meant to replace), so the claim ignores a
// new class and ClaimClass checks the class it is on instead.
var KeepClaimClass = pulumi.IgnoreChanges([]string{"spec.storageClassName"})

// ClaimClass is want, the class the key fld asks of claims made with
// KeepClaimClass; it fails — in the preview, before anything changes — if
// one of them is on another class (as Pulumi last applied or read it;
// unknown before it exists). what names the claims in the error ("the
// members' volumes are"), advice says what to do instead, given the class
// they are on. An output nothing reads is never awaited: register it.
func ClaimClass(fld *field.Path, want, what string, advice func(class string) string, claims ...*corev1.PersistentVolumeClaim) pulumi.StringOutput {
	classes := make([]any, len(claims))
	for i, c := range claims {
		classes[i] = c.Spec.StorageClassName()
	}
	return pulumi.All(classes...).ApplyT(func(live []any) (string, error) {
		return want, sameClass(fld, want, what, advice, live)
	}).(pulumi.StringOutput)
}

func sameClass(fld *field.Path, want, what string, advice func(string) string, live []any) error {
	for _, c := range live {
		if class, ok := c.(*string); ok && class != nil && *class != "" && *class != want {
			return field.Invalid(fld, want, fmt.Sprintf("%s on StorageClass %q, and a volume claim's class cannot change: %s",
				what, *class, advice(*class)))
		}
	}
	return nil
}
