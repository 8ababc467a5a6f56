// Package component holds what every kcp-tmc component constructor does first.
package component

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Register refuses invalid args (validateErr, from Args.Validate) before
// anything is registered, so bad input never half-applies a stack; then it
// registers comp as a component resource of type typ.
func Register(ctx *pulumi.Context, typ, name string, comp pulumi.ComponentResource, validateErr error, opts ...pulumi.ResourceOption) error {
	if validateErr != nil {
		return validateErr
	}
	if err := ctx.RegisterComponentResource(typ, name, comp, opts...); err != nil {
		return fmt.Errorf("registering %s %q: %w", typ, name, err)
	}
	return nil
}
