package fieldtest

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// recorder is a testing.TB that records a failure instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

// TestExpectCanFail: Expect passes only on the right path with the right
// message, so a Validate table cannot pass vacuously.
func TestExpectCanFail(t *testing.T) {
	errs := field.ErrorList{field.Invalid(field.NewPath("etcd", "replicas"), 2, "an odd number from 1 to 7")}
	for _, tt := range []struct {
		path, want string
		fails      bool
	}{
		{"etcd.replicas", "an odd number", false},
		{"etcd.replicas", "at least 3", true},
		{"etcd.version", "an odd number", true},
		{"etcd.replicas", "", false},
	} {
		r := &recorder{TB: t}
		Expect(r, errs, tt.path, tt.want)
		if r.failed != tt.fails {
			t.Errorf("Expect(%s, %q) failed=%v, want %v", tt.path, tt.want, r.failed, tt.fails)
		}
	}
	r := &recorder{TB: t}
	Expect(r, nil, "etcd.replicas", "")
	if !r.failed {
		t.Error("Expect passed on no errors at all")
	}
}
