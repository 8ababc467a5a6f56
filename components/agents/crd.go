package agents

// The PublishedResource CRD each physical cluster needs: embedded from
// api-syncagent v0.7.0, parsed once, applied per cluster.

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"
)

// publishedResourceCRD is api-syncagent v0.7.0's PublishedResource CRD
// (deploy/crd/kcp.io of the release; crds/README.md says how it was taken).
//
//go:embed crds/syncagent.kcp.io_publishedresources.yaml
var publishedResourceCRD []byte

// publishedResourceDefinition installs the agent's CRD on its cluster: the
// agent reads PublishedResources and exits without their API.
func publishedResourceDefinition(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	crd, err := publishedResourceCRDObject()
	if err != nil {
		return nil, fmt.Errorf("PublishedResource CRD: %w", err)
	}
	res, err := apiextensions.NewCustomResource(ctx, name+"-publishedresources-crd", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("apiextensions.k8s.io/v1"), Kind: pulumi.String("CustomResourceDefinition"),
		Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(crd.name), Annotations: crd.annotations},
		OtherFields: kubernetes.UntypedArgs{"spec": crd.spec},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("PublishedResource CRD: %w", err)
	}
	return res, nil
}

// crdObject is the parts of the embedded CRD the component applies.
type crdObject struct {
	name        string
	annotations pulumi.StringMap
	spec        any
}

// publishedResourceCRDObject parses the embedded CRD once per process (it
// is the same on every cluster; parsing it per cluster was an eighth of a
// 100-cluster stack's time) and drops the schema's descriptions: they are
// two thirds of its size, carried through the engine and the state once
// per cluster, and the agent needs none of them (`kubectl explain
// publishedresources` on a physical cluster shows no field docs; the
// release's file, crds/, has them).
var publishedResourceCRDObject = sync.OnceValues(func() (crdObject, error) {
	var crd map[string]any
	if err := yaml.Unmarshal(publishedResourceCRD, &crd); err != nil {
		return crdObject{}, err
	}
	meta, _ := crd["metadata"].(map[string]any)
	annotations := pulumi.StringMap{}
	for k, v := range meta["annotations"].(map[string]any) {
		annotations[k] = pulumi.String(fmt.Sprint(v))
	}
	return crdObject{name: fmt.Sprint(meta["name"]), annotations: annotations, spec: withoutDescriptions(crd["spec"])}, nil
})

// withoutDescriptions copies an OpenAPI schema tree without its
// "description" fields. A property that is itself named "description" is
// kept: it sits in a "properties" map, whose keys are names, not keywords.
func withoutDescriptions(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if k == "properties" {
				props := map[string]any{}
				for name, schema := range e.(map[string]any) {
					props[name] = withoutDescriptions(schema)
				}
				out[k] = props
				continue
			}
			if k != "description" {
				out[k] = withoutDescriptions(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = withoutDescriptions(e)
		}
		return out
	}
	return v
}
