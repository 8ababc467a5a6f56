// Package component holds what every kcp-tmc component constructor does first.
package component

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Register refuses invalid args (errs, from Args.Validate) before anything is
// registered, so bad input never half-applies a stack; then it registers comp
// as a component resource of type typ.
func Register(ctx *pulumi.Context, typ, name string, comp pulumi.ComponentResource, errs field.ErrorList, opts ...pulumi.ResourceOption) error {
	if len(errs) > 0 {
		return fmt.Errorf("%s %q: %w", typ, name, errs.ToAggregate())
	}
	if err := ctx.RegisterComponentResource(typ, name, comp, opts...); err != nil {
		return fmt.Errorf("registering %s %q: %w", typ, name, err)
	}
	return nil
}

// Default sets *field to value when it holds its zero value: the one line
// each optional Args field's default takes in WithDefaults.
func Default[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}
