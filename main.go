// Command kcp-tmc is the Pulumi program run by `pulumi up -s <stack>`; all of
// it lives in package stacks, which cmd/kcp-tmc also runs inline.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/stacks"
)

func main() {
	stacks.TuneGC()
	pulumi.Run(stacks.Program)
}
