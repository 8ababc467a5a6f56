package awslb

// The chart's CRDs, applied by the stack rather than by Helm: Helm installs
// a chart's crds/ directory on the first install only and never upgrades or
// removes it, so a later chart version would run its controller against the
// first version's CRDs (the chart's README has users apply them by hand).

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sync"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/utilities"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
)

// chartCRDFiles is the chart's crds/ directory at ChartVersion, unchanged
// (a test compares it with the pinned module's): every file Helm would
// install.
//
//go:embed crds/*.yaml
var chartCRDFiles embed.FS

// CRDPatchType is the Kubernetes provider's server-side-apply patch of a
// CRD (the SDK's apiextensions/v1 CustomResourceDefinitionPatch). A patch,
// not a CustomResourceDefinition resource: it is always an apply, so it
// takes over the CRDs an earlier Helm install created (the provider's
// create of a plain resource refuses an existing object since v4.29), and
// it is registered with retainOnDelete, so a destroy leaves the CRDs and
// their objects as `helm uninstall` does (deleting a CRD deletes every
// object of its kind; and a patch's delete, giving up its fields, fails on
// a CRD whose required fields it alone owns).
const CRDPatchType = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinitionPatch"

// patchForce has the apply take the fields the Helm install owned.
const patchForce = "pulumi.com/patchForce"

// ChartCRDs are the chart's CRDs as objects, parsed once per process.
var ChartCRDs = sync.OnceValues(func() ([]map[string]any, error) {
	var crds []map[string]any
	err := fs.WalkDir(chartCRDFiles, "crds", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := chartCRDFiles.ReadFile(path)
		if err != nil {
			return err
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			var o map[string]any
			if err := yaml.Unmarshal(doc, &o); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if o == nil { // an empty document between separators
				continue
			}
			if o["kind"] != "CustomResourceDefinition" {
				return fmt.Errorf("%s: a %v, not a CustomResourceDefinition", path, o["kind"])
			}
			crds = append(crds, o)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("the AWS Load Balancer Controller chart's CRDs: %w", err)
	}
	return crds, nil
})

// Install registers the controller on its cluster: the chart's CRDs,
// applied by the stack so that each chart version brings its own, then the
// chart without them from repo (ChartRepo; the tests serve the pinned
// module's chart). The stack and the tests install it through this one
// function.
func Install(ctx *pulumi.Context, name, repo string, values pulumi.Map, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	crds, err := ChartCRDs()
	if err != nil {
		return nil, err
	}
	var applied []pulumi.Resource
	for _, crd := range crds {
		meta := maps.Clone(crd["metadata"].(map[string]any))
		crdName := fmt.Sprint(meta["name"])
		annotations := map[string]any{}
		if a, ok := meta["annotations"].(map[string]any); ok {
			maps.Copy(annotations, a)
		}
		annotations[patchForce] = "true"
		meta["annotations"] = annotations
		props := kubernetes.UntypedArgs{"apiVersion": crd["apiVersion"], "kind": crd["kind"], "metadata": meta, "spec": crd["spec"]}
		var res pulumi.CustomResourceState
		crdOpts := append(slices.Clip(opts), pulumi.RetainOnDelete(true))
		if err := ctx.RegisterResource(CRDPatchType, name+"-crd-"+crdName, props, &res, utilities.PkgResourceDefaultOpts(crdOpts)...); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", crdName, err)
		}
		applied = append(applied, &res)
	}
	rel, err := helmrelease.New(ctx, name, helmrelease.Args{
		Name: pulumi.String(Chart), Chart: pulumi.String(Chart), Version: pulumi.String(ChartVersion), Repo: repo,
		Namespace: pulumi.String(Namespace),
		Values:    values,
		SkipCRDs:  true,
	}, append(slices.Clip(opts), pulumi.DependsOn(applied))...)
	if err != nil {
		return nil, fmt.Errorf("AWS Load Balancer Controller release: %w", err)
	}
	return rel, nil
}
