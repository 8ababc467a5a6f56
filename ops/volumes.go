package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var claims = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}

// VolumeAttributes checks the volumes of namespace ns whose claims name a
// VolumeAttributesClass (storage.modifyVolumes): done when the claim's
// current class is the one it names; modifying (Kubernetes' InProgress,
// which also covers EBS's cooldown and retries) or not yet taken up by a
// resizer is reported, not failed; the driver refusing the attributes
// (Infeasible) or a class that does not exist (Pending) fails, with the
// claim's ModifyVolumeError condition. Bound claims only: an unbound claim's
// attributes are set when its volume is made.
func VolumeAttributes(ctx context.Context, c dynamic.Interface, ns string) (string, error) {
	list, err := c.Resource(claims).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing volume claims in %s: %w", ns, err)
	}
	var done, modifying, waiting, failed []string
	for _, pvc := range list.Items {
		want, _, _ := unstructured.NestedString(pvc.Object, "spec", "volumeAttributesClassName")
		phase, _, _ := unstructured.NestedString(pvc.Object, "status", "phase")
		if want == "" || phase != "Bound" {
			continue
		}
		has, _, _ := unstructured.NestedString(pvc.Object, "status", "currentVolumeAttributesClassName")
		state, _, _ := unstructured.NestedString(pvc.Object, "status", "modifyVolumeStatus", "status")
		name := pvc.GetName()
		switch {
		case has == want:
			done = append(done, name)
		case state == "Infeasible":
			failed = append(failed, fmt.Sprintf("%s: the driver refuses %s%s", name, want, modifyError(pvc)))
		case state == "Pending":
			failed = append(failed, fmt.Sprintf("%s: %s cannot be applied (does the class exist?)%s", name, want, modifyError(pvc)))
		case state == "InProgress":
			modifying = append(modifying, name+" → "+want+modifyError(pvc))
		default:
			waiting = append(waiting, name+" → "+want)
		}
	}
	slices.Sort(done)
	detail := fmt.Sprintf("%d volume(s) with their claims' attributes", len(done))
	if len(modifying) > 0 {
		detail += "; modifying: " + strings.Join(modifying, ", ")
	}
	if len(waiting) > 0 {
		// Right after an up; for good, the CSI driver's resizer does not
		// modify volumes (docs/control-plane.md).
		detail += "; not yet taken up by a resizer: " + strings.Join(waiting, ", ")
	}
	if len(failed) > 0 {
		return "", fmt.Errorf("%s; %s", strings.Join(failed, "; "), detail)
	}
	return detail, nil
}

// modifyError is the claim's ModifyVolumeError condition, as ": message".
func modifyError(pvc unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(pvc.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "ModifyVolumeError" {
			return fmt.Sprintf(": %v", m["message"])
		}
	}
	return ""
}
