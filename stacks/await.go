package stacks

import (
	"context"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// SkipAwaitAnnotation is the Kubernetes provider's documented switch that
// makes it create or update an object without waiting for it to become ready.
const SkipAwaitAnnotation = workload.SkipAwait

// skipAwaitTransform annotates every Kubernetes object of the stack with
// pulumi.com/skipAwait=true. It is what target.skipAwait turns on: for
// clusters where workloads are accepted but never run (a control plane
// without nodes, as in CI), or when readiness is checked elsewhere. It
// drops pulumi.com/replaceUnready: a Job that never runs would be replaced
// at every up (no up waits for it to fail, either).
func skipAwaitTransform(_ context.Context, args *pulumi.ResourceTransformArgs) *pulumi.ResourceTransformResult {
	if !args.Custom || len(args.Type) < len("kubernetes:") || args.Type[:len("kubernetes:")] != "kubernetes:" {
		return nil
	}
	meta, ok := args.Props["metadata"].(pulumi.Map)
	if !ok {
		meta = pulumi.Map{}
	}
	annotations := pulumi.Map{}
	switch a := meta["annotations"].(type) {
	case pulumi.Map:
		for k, v := range a {
			annotations[k] = v
		}
	case pulumi.StringMap:
		for k, v := range a {
			annotations[k] = v
		}
	}
	annotations[SkipAwaitAnnotation] = pulumi.String("true")
	delete(annotations, workload.ReplaceUnready)
	newMeta := pulumi.Map{}
	for k, v := range meta {
		newMeta[k] = v
	}
	newMeta["annotations"] = annotations
	props := pulumi.Map{}
	for k, v := range args.Props {
		props[k] = v
	}
	props["metadata"] = newMeta
	return &pulumi.ResourceTransformResult{Props: props, Opts: args.Opts}
}
