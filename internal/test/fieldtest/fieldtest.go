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
