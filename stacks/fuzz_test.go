package stacks

import (
	"encoding/json"
	"fmt"
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
		return prefixed(clusterConfig("east", "west")), clusterSecrets
	}},
	// The modes the checked-in files do not use: a Gateway front door
	// published in Route 53 with logging on; shards with a separate cache;
	// the AWS cloud layer.
	{"prod", func(testing.TB) (map[string]string, []string) {
		cfg := prefixed(clusterConfig("east"))
		cfg[Namespace+":target"] = `{"mode":"kubeconfig"}`
		cfg[Namespace+":ingress"] = `{"mode":"gateway","gateway":{"className":"eg"},"route53ZoneId":"Z0123456789ABCDEFGHIJ"}`
		cfg[Namespace+":logging"] = `{"enabled":true,"elasticsearchHost":"logs.example.com"}`
		cfg[Namespace+":elasticsearchPassword"] = "fuzz"
		return cfg, append(slices.Clone(clusterSecrets), "elasticsearchPassword")
	}},
	{"prod", func(testing.TB) (map[string]string, []string) {
		cfg := prefixed(clusterConfig())
		cfg[Namespace+":kcp"] = `{"shards":[{"name":"a"},{"name":"b","replicas":2}],"cache":{"mode":"separate"}}`
		return cfg, clusterSecrets
	}},
	{"prod", func(testing.TB) (map[string]string, []string) {
		return prefixed(eksConfig(`{"mode":"eks","owner":"platform","costCenter":"cc-42"}`)), []string{"slackWebhookUrl"}
	}},
}

// prefixed is cfg with every key in kcp-tmc's namespace.
func prefixed(cfg map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range cfg {
		out[Namespace+":"+k] = v
	}
	return out
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
		runFuzzed(t, b, cfg, secrets, fmt.Sprintf("%s:%s = %q", Namespace, key, value))
	})
}

// FuzzStackConfigLeaf is FuzzStackConfig one level down: it replaces one
// leaf of a key's JSON value (a string, number or boolean anywhere in the
// object, chosen by its index among the leaves in key order) with a value,
// so the fuzzer spends its time on what each setting means rather than on
// JSON syntax. The value is taken as JSON when it is a JSON scalar, else as
// a string.
func FuzzStackConfigLeaf(f *testing.F) {
	for i, base := range fuzzBases {
		for _, key := range fuzzKeys(f, base) {
			f.Add(uint8(i), key.name, uint16(0), "0")
			f.Add(uint8(i), key.name, uint16(1), `""`)
		}
	}
	f.Fuzz(func(t *testing.T, base uint8, key string, leaf uint16, value string) {
		b := fuzzBases[int(base)%len(fuzzBases)]
		var raw string
		for _, k := range fuzzKeys(t, b) {
			if k.name == key {
				raw = k.value
			}
		}
		var v any
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Skipf("%q is not one of the object- or list-valued keys this fuzzer changes (FuzzStackConfig covers every key)", key)
		}
		leaves := jsonLeaves(v, nil)
		if len(leaves) == 0 {
			t.Skipf("%s has no scalar to replace (an empty list or object; FuzzStackConfig sets whole values)", raw)
		}
		var scalar any
		if err := json.Unmarshal([]byte(value), &scalar); err != nil {
			scalar = value
		}
		if _, isObject := scalar.(map[string]any); isObject {
			scalar = value
		} else if _, isList := scalar.([]any); isList {
			scalar = value
		}
		leaves[int(leaf)%len(leaves)](scalar)
		changed, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		cfg, secrets := b.config(t)
		cfg[Namespace+":"+key] = string(changed)
		runFuzzed(t, b, cfg, secrets, fmt.Sprintf("%s:%s = %s", Namespace, key, changed))
	})
}

// runFuzzed runs the program on a fuzzed config: it must not panic, and it
// may refuse the config only in its validation, before any resource.
func runFuzzed(t *testing.T, b fuzzBase, cfg map[string]string, secrets []string, what string) {
	t.Helper()
	mocktest.SetConfig(t, cfg, secrets...)
	_, err := mocktest.Run(t, b.stack, ProgramIn(t.TempDir()))
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "panic"):
		t.Fatalf("%s with %s: the program panicked: %v", b.stack, what, err)
	case !strings.Contains(err.Error(), "invalid configuration"):
		t.Fatalf("%s with %s: the config was accepted, then the deploy failed (a half-applied stack in a real up): %v", b.stack, what, err)
	}
}

type fuzzKey struct{ name, value string }

// fuzzKeys are a base's object- and list-valued keys as set, or else at
// the environment's default.
func fuzzKeys(t testing.TB, base fuzzBase) []fuzzKey {
	t.Helper()
	cfg, _ := base.config(t)
	profile, err := Profile(base.stack)
	if err != nil {
		t.Fatal(err)
	}
	var keys []fuzzKey
	for _, field := range configFields(profile) {
		if _, isString := field.ptr.(*string); isString {
			continue
		}
		value, set := cfg[Namespace+":"+field.key]
		if !set {
			raw, err := json.Marshal(field.ptr)
			if err != nil {
				t.Fatal(err)
			}
			value = string(raw)
		}
		keys = append(keys, fuzzKey{field.key, value})
	}
	return keys
}

// jsonLeaves returns a setter for every scalar in v, in key order.
func jsonLeaves(v any, set func(any)) []func(any) {
	switch x := v.(type) {
	case map[string]any:
		var out []func(any)
		for _, k := range slices.Sorted(maps.Keys(x)) {
			out = append(out, jsonLeaves(x[k], func(n any) { x[k] = n })...)
		}
		return out
	case []any:
		var out []func(any)
		for i := range x {
			out = append(out, jsonLeaves(x[i], func(n any) { x[i] = n })...)
		}
		return out
	}
	if set == nil {
		return nil
	}
	return []func(any){set}
}

// TestFuzzBasesDeploy: every base the fuzzers change deploys as it is, so
// what they explore is one change away from a working stack.
func TestFuzzBasesDeploy(t *testing.T) {
	for i, b := range fuzzBases {
		t.Run(fmt.Sprintf("%d-%s", i, b.stack), func(t *testing.T) {
			cfg, secrets := b.config(t)
			mocktest.SetConfig(t, cfg, secrets...)
			if _, err := mocktest.Run(t, b.stack, ProgramIn(t.TempDir())); err != nil {
				t.Fatal(err)
			}
		})
	}
}
