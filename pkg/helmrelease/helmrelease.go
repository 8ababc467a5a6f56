// Package helmrelease registers Helm releases (kubernetes:helm.sh/v3:Release,
// the same resource as the SDK's helm/v3.NewRelease) without importing the
// SDK's helm/v3 package: its Chart type imports the yaml package, and that
// every Kubernetes API group the SDK knows. Measured on a cold 2-core build
// of kcp-tmc, those groups were 600 of 1,170 CPU-seconds — for three Releases.
package helmrelease

import (
	"errors"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/utilities"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Type is the Release's resource type.
const Type = "kubernetes:helm.sh/v3:Release"

// Args are the Release inputs kcp-tmc sets; names and meaning as in the
// SDK's helm/v3.ReleaseArgs.
type Args struct {
	// Name is the release name, required: one the provider picks (the
	// resource name plus a random suffix) is picked again when an up killed
	// during the install is redone, and a second release of the same chart
	// then fails on the first's cluster-wide objects (its CRDs).
	Name pulumi.StringInput
	// Chart and Version pin what is installed, from Repo.
	Chart, Version pulumi.StringInput
	Repo           string
	// Namespace to install into; CreateNamespace creates it.
	Namespace       pulumi.StringInput
	CreateNamespace bool
	// Values are the chart values.
	Values pulumi.Map
	// SkipCRDs leaves the chart's crds/ directory out: for a chart whose
	// CRDs the caller applies itself, as Helm installs them only on the
	// first install and never upgrades them.
	SkipCRDs bool
}

// Release is a registered Helm release; kcp-tmc only depends on it.
type Release struct {
	pulumi.CustomResourceState
}

// New registers the release.
func New(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Release, error) {
	if args.Name == nil || args.Chart == nil || args.Version == nil || args.Repo == "" {
		return nil, errors.New("helm release " + name + ": name, chart, version and repo are required")
	}
	props := pulumi.Map{
		"chart":          args.Chart,
		"version":        args.Version,
		"repositoryOpts": pulumi.Map{"repo": pulumi.String(args.Repo)},
		"values":         args.Values,
		"name":           args.Name,
		// What helm/v3.NewRelease always sets.
		"compat": pulumi.String("true"),
	}
	if args.Namespace != nil {
		props["namespace"] = args.Namespace
	}
	if args.CreateNamespace {
		props["createNamespace"] = pulumi.Bool(true)
	}
	if args.SkipCRDs {
		props["skipCrds"] = pulumi.Bool(true)
	}
	if args.Values == nil {
		props["values"] = pulumi.Map{}
	}
	var r Release
	// A release installed before its name was given keeps the name the
	// provider picked then: renaming it would reinstall the chart.
	opts = append(opts, pulumi.IgnoreChanges([]string{"name"}))
	// The SDK's own defaults: the plugin version this SDK asks for.
	if err := ctx.RegisterResource(Type, name, props, &r, utilities.PkgResourceDefaultOpts(opts)...); err != nil {
		return nil, err
	}
	return &r, nil
}
