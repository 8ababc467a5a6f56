package mocktest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Decode reads recorded inputs (Input, Object) into a typed value, usually a
// k8s.io/api object such as corev1.PersistentVolumeClaim, so assertions use
// fields the compiler checks instead of digging through maps. Unknown fields
// are an error: a misspelt field in what we render fails the test.
func Decode[T any](t testing.TB, in map[string]any) T {
	t.Helper()
	var out T
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("encoding recorded inputs: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decoding recorded inputs into %T: %v\n%s", out, err, raw)
	}
	return out
}

// Objects decodes every recorded resource of typ.
func Objects[T any](t testing.TB, r *Recorder, typ string) []T {
	t.Helper()
	var out []T
	for _, res := range r.OfType(typ) {
		out = append(out, Decode[T](t, res.Input()))
	}
	return out
}
