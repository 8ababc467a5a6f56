//go:build tools

// Pins what hack/toolchain.sh builds: upstream's cmd/pulumi-resource-kubernetes
// (copied into a scratch dir at build time, because it embeds generated files)
// and the schema package its generator uses.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
	_ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)
