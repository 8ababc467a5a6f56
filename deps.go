//go:build tools

// Keeps the provider SDKs that the tls, backup and cloud components build on
// pinned in go.mod before those components exist; never compiled.
package main

import (
	_ "github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	_ "github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
)
