package stacks

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// fuzzBase is a stack the fuzzer changes one key of: a checked-in stack
// file with the secrets a user adds, or prod with two physical clusters.
type fuzzBase struct {
	stack  string
	config func(testing.TB) (map[string]string, []string)
}

var fuzzBases = []fuzzBase{
	{"dev", func(t testing.TB) (map[string]string, []string) { return stackFileConfig(t, "dev") }},
	{"staging", func(t testing.TB) (map[string]string, []string) { return stackFileConfig(t, "staging") }},
	{"prod", func(t testing.TB) (map[string]string, []string) { return stackFileConfig(t, "prod") }},
	{"prod", func(testing.TB) (map[string]string, []string) {
		cfg := map[string]string{}
		for k, v := range clusterConfig("east", "west") {
			cfg[Namespace+":"+k] = v
		}
		return cfg, clusterSecrets
	}},
}

// FuzzStackConfig sets one key of a stack to an arbitrary value and runs the
// program under mocks. What a user relies on: the program never panics on
// what a stack file holds, and a config it accepts deploys — every bad value
// is refused by the validation that runs before the first resource
// registers, never by a component half-way through the stack.
//
// `go test` runs the seeds: every key each base sets, as set, and every
// top-level key at its environment's default. `go test -fuzz
// FuzzStackConfig ./stacks` explores around them; what it finds lands in
// testdata/fuzz/FuzzStackConfig and is a seed from then on.
func FuzzStackConfig(f *testing.F) {
	for i, base := range fuzzBases {
		cfg, _ := base.config(f)
		for _, key := range slices.Sorted(maps.Keys(cfg)) {
			f.Add(uint8(i), strings.TrimPrefix(key, Namespace+":"), cfg[key])
		}
		profile, err := Profile(base.stack)
		if err != nil {
			f.Fatal(err)
		}
		for _, field := range configFields(profile) {
			if _, set := cfg[Namespace+":"+field.key]; set {
				continue
			}
			raw, err := json.Marshal(field.ptr)
			if err != nil {
				f.Fatal(err)
			}
			if s, isString := field.ptr.(*string); isString {
				raw = []byte(*s) // Pulumi stores plain strings unquoted
			}
			f.Add(uint8(i), field.key, string(raw))
		}
	}
	f.Fuzz(func(t *testing.T, base uint8, key, value string) {
		b := fuzzBases[int(base)%len(fuzzBases)]
		cfg, secrets := b.config(t)
		cfg[Namespace+":"+key] = value
		mocktest.SetConfig(t, cfg, secrets...)
		_, err := mocktest.Run(t, b.stack, ProgramIn(t.TempDir()))
		switch {
		case err == nil:
		case strings.Contains(err.Error(), "panic"):
			t.Fatalf("%s with %s:%s = %q: the program panicked: %v", b.stack, Namespace, key, value, err)
		case !strings.Contains(err.Error(), "invalid configuration"):
			t.Fatalf("%s with %s:%s = %q: the config was accepted, then the deploy failed (a half-applied stack in a real up): %v", b.stack, Namespace, key, value, err)
		}
	})
}
