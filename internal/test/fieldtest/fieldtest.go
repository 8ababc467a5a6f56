// Package fieldtest asserts on the field.ErrorList a component's Validate
// returns: the path a user sees and what the message says is allowed.
package fieldtest

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Expect fails t unless errs has an error at path whose message contains want.
func Expect(t testing.TB, errs field.ErrorList, path, want string) {
	t.Helper()
	for _, e := range errs {
		if e.Field == path && strings.Contains(e.Error(), want) {
			return
		}
	}
	t.Fatalf("no error at %s containing %q in:\n%v", path, want, errs.ToAggregate())
}

// Case is one row of a component's Validate table: its name, a change to
// valid args, the path the error names and a substring of its message. An
// alias of an unnamed struct, so tables stay positional like local ones.
type Case[A any] = struct {
	Name        string
	Mutate      func(*A)
	Field, Want string
}

// Table checks that valid() passes validate and that every case's change
// makes validate report its error.
func Table[A any](t *testing.T, valid func() A, validate func(A) field.ErrorList, cases []Case[A]) {
	t.Helper()
	if errs := validate(valid()); len(errs) > 0 {
		t.Fatalf("valid args refused: %v", errs)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			a := valid()
			c.Mutate(&a)
			Expect(t, validate(a), c.Field, c.Want)
		})
	}
}
