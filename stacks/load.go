package stacks

// Loading a stack's config: every kcp-tmc:* key decoded over the
// environment's profile, unknown and unsupported keys refused by name.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
)

// ConfigSource is what Load reads: a stack's config values by full key
// ("kcp-tmc:etcd"), and whether a key was set as a secret.
type ConfigSource interface {
	GetConfig(key string) (string, bool)
	IsConfigSecret(key string) bool
}

// SecretKeys maps the `json:"-"` fields that Load reads from their own,
// secret, config keys (by Go field path) to those keys, in the order the
// reference lists them. A `json:"-"` field in neither SecretKeys nor the
// generator's internal fields makes generation fail, so a new secret cannot go undocumented.
var SecretKeys = []struct{ Field, Key string }{
	{"Kubeconfig", "kubeconfig"},
	{"ExistingCAs", "existingCAs"},
	{"Monitoring.SlackWebhookURL", "slackWebhookUrl"},
	{"Monitoring.PagerDutyKey", "pagerDutyKey"},
	{"Logging.Password", "elasticsearchPassword"},
	{"Backup.SecretAccessKey", "backupSecretAccessKey"},
	{"ClusterKubeconfigs", "clusterKubeconfigs"},
	{"KCPKubeconfig", "kcpKubeconfig"},
}

// KeyLister is a ConfigSource that can list every key the stack sets (all
// namespaces). Load refuses the kcp-tmc keys it does not know only when its
// source can list them; every source in this repository can.
type KeyLister interface {
	ConfigKeys() []string
}

// Keys are every kcp-tmc:* key the program reads (without the namespace), sorted.
func Keys() []string {
	var keys []string
	for _, f := range configFields(&Config{}) {
		keys = append(keys, f.key)
	}
	for _, s := range SecretKeys { // the secrets, read from keys of their own
		keys = append(keys, s.Key)
	}
	slices.Sort(keys)
	return keys
}

// UnknownKeyError is a config key the program does not read: a typo that
// would otherwise leave the setting silently at its default.
type UnknownKeyError struct {
	// Key is the full key as set, e.g. "kcp-tmc:etdc".
	Key string
	// Nearest is the known key closest to it.
	Nearest string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("config %s: unknown key; the nearest known key is %s:%s; the valid keys are %s (docs/configuration.md)",
		e.Key, Namespace, e.Nearest, strings.Join(Keys(), ", "))
}

// unknownKeys returns an error for every key in the kcp-tmc namespace, or in
// a namespace one or two typos away from it, that the program does not read.
// Other namespaces (kubernetes:, aws:, ...) belong to providers.
func unknownKeys(keys []string) []error {
	known := Keys()
	var errs []error
	for _, full := range keys {
		ns, key, ok := strings.Cut(full, ":")
		if !ok {
			continue
		}
		if ns == Namespace && slices.Contains(known, key) {
			continue
		}
		if ns != Namespace && levenshtein.Distance(ns, Namespace, nil) > 2 {
			continue
		}
		nearest, best := "", 0
		for _, k := range known {
			if d := keyDistance(key, k); nearest == "" || d < best {
				nearest, best = k, d
			}
		}
		errs = append(errs, &UnknownKeyError{Key: full, Nearest: nearest})
	}
	return errs
}

// keyDistance ranks known keys for "did you mean": edits ignoring case, and a
// key that starts the other (etcdReplicas → etcd, zone → zones)
// counts as one edit.
func keyDistance(typed, known string) int {
	a, b := strings.ToLower(typed), strings.ToLower(known)
	if a != b && (strings.HasPrefix(a, b) || strings.HasPrefix(b, a)) {
		return 1
	}
	return levenshtein.Distance(a, b, nil)
}

// Load reads every kcp-tmc:* key over the environment's profile and validates
// the result. All problems are returned together, each naming its key.
func Load(src ConfigSource) (*Config, error) {
	var errs []error
	if l, ok := src.(KeyLister); ok {
		errs = unknownKeys(l.ConfigKeys())
	}
	envRaw, ok := src.GetConfig(Namespace + ":environment")
	if !ok {
		return nil, errors.Join(append(errs, &FieldError{Key: "environment", Value: "<unset>", Allowed: "one of " + strings.Join(Environments, ", ")})...)
	}
	cfg, err := Profile(envRaw)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	for _, f := range configFields(cfg) {
		raw, ok := src.GetConfig(Namespace + ":" + f.key)
		if !ok || f.key == "environment" {
			continue
		}
		if err := decodeField(f.key, raw, f.ptr); err != nil {
			errs = append(errs, err)
		}
	}
	for _, sec := range []struct {
		key string
		dst *string
	}{{"slackWebhookUrl", &cfg.Monitoring.SlackWebhookURL}, {"pagerDutyKey", &cfg.Monitoring.PagerDutyKey},
		{"elasticsearchPassword", &cfg.Logging.Password}, {"backupSecretAccessKey", &cfg.Backup.SecretAccessKey}} {
		if v, ok := src.GetConfig(Namespace + ":" + sec.key); ok {
			if !src.IsConfigSecret(Namespace + ":" + sec.key) {
				// Refuse before anything can copy it into state or logs.
				errs = append(errs, &FieldError{Key: sec.key, Value: "<plaintext>", Allowed: "a secret: `pulumi config set --secret kcp-tmc:" + sec.key + "`"})
				continue
			}
			*sec.dst = v
		}
	}
	if raw, ok := src.GetConfig(Namespace + ":clusterKubeconfigs"); ok {
		if !src.IsConfigSecret(Namespace + ":clusterKubeconfigs") {
			errs = append(errs, &FieldError{Key: "clusterKubeconfigs", Value: "<plaintext>", Allowed: "a secret: `pulumi config set --secret kcp-tmc:clusterKubeconfigs < kubeconfigs.json`"})
		} else if err := decodeField("clusterKubeconfigs", raw, &cfg.ClusterKubeconfigs); err != nil {
			errs = append(errs, &FieldError{Key: "clusterKubeconfigs", Value: "<secret>", Allowed: "a map of cluster name to kubeconfig"})
		}
	}
	if v, ok := src.GetConfig(Namespace + ":kcpKubeconfig"); ok {
		if !src.IsConfigSecret(Namespace + ":kcpKubeconfig") {
			errs = append(errs, &FieldError{Key: "kcpKubeconfig", Value: "<plaintext>", Allowed: "a secret: `pulumi config set --secret kcp-tmc:kcpKubeconfig < admin.kubeconfig`"})
		} else {
			cfg.KCPKubeconfig = v
		}
	}
	if kc, ok := src.GetConfig(Namespace + ":kubeconfig"); ok {
		cfg.Kubeconfig = kc
		cfg.KubeconfigIsSecret = src.IsConfigSecret(Namespace + ":kubeconfig")
	}
	if raw, ok := src.GetConfig(Namespace + ":existingCAs"); ok {
		cfg.ExistingCAsIsSecret = src.IsConfigSecret(Namespace + ":existingCAs")
		if err := decodeField("existingCAs", raw, &cfg.ExistingCAs); err != nil {
			// Never echo a secret's content back in an error.
			errs = append(errs, &FieldError{Key: "existingCAs", Value: "<secret>", Allowed: "a map of CA name to {cert, key} PEM strings"})
		}
	}
	if profile, err := Profile(envRaw); err == nil {
		errs = append(errs, emptied(reflect.ValueOf(cfg).Elem(), reflect.ValueOf(profile).Elem(), "")...)
	}
	// A value that did not decode leaves the Config half-set: validating it
	// would report follow-on errors. Otherwise every problem in one round:
	// bad values and unknown keys together.
	decoded := !slices.ContainsFunc(errs, func(err error) bool { _, unknown := err.(*UnknownKeyError); return !unknown })
	if err := cfg.Validate(); err != nil && decoded {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, joined.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return cfg, nil
}

// emptied refuses a string key set to "" where the profile has a value: an
// empty value is no way to ask for a default (the component's may differ
// from the environment's), and every such key needs one.
func emptied(got, profile reflect.Value, prefix string) []error {
	var errs []error
	for i := range got.NumField() {
		name := keyName(got.Type().Field(i), prefix == "")
		if name == "" {
			continue
		}
		switch g, p := got.Field(i), profile.Field(i); g.Kind() {
		case reflect.String:
			if g.String() == "" && p.String() != "" {
				errs = append(errs, &FieldError{Key: prefix + name, Value: "", Allowed: "a value; leave the key out for the " +
					"environment's default (" + p.String() + ")"})
			}
		case reflect.Struct:
			errs = append(errs, emptied(g, p, prefix+name+".")...)
		}
	}
	return errs
}

type configField struct {
	key string
	ptr any
}

// configFields lists the settable top-level keys and where each decodes to.
func configFields(c *Config) []configField {
	return []configField{
		{"environment", &c.Environment},
		{"target", &c.Target},
		{"domain", &c.Domain},
		{"namespace", &c.Namespace},
		{"zones", &c.Zones},
		{"podSecurityVersion", &c.PodSecurityVersion},
		{"kcp", &c.KCP},
		{"etcd", &c.Etcd},
		{"storage", &c.Storage},
		{"backup", &c.Backup},
		{"tls", &c.TLS},
		{"ingress", &c.Ingress},
		{"monitoring", &c.Monitoring},
		{"logging", &c.Logging},
		{"cloud", &c.Cloud},
		{"clusters", &c.Clusters},
		{"agentResources", &c.AgentResources},
	}
}

// decodeField decodes one config value over the profile default already in
// ptr, so only the keys a stack sets override the profile. Plain strings are
// stored unquoted by Pulumi; objects, lists, numbers and booleans as JSON.
func decodeField(key, raw string, ptr any) error {
	if s, isString := ptr.(*string); isString {
		*s = raw
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ptr); err != nil {
		return decodeError(key, raw, err, reflect.TypeOf(ptr))
	}
	return nil
}

// unsupportedKeys are keys a user may expect (from a platform spec or an earlier
// kcp-tmc) that no setting of the pinned programs can honour: refused with why.
var unsupportedKeys = map[string]string{
	"kcp.performance": "unset: kcp v0.32.3 has no flag for it. maxConcurrentOperations, workerPoolSize and operationTimeout " +
		"would be kube-apiserver's --max-requests-inflight, --max-mutating-requests-inflight and --request-timeout, which kcp " +
		"leaves out of the apiserver flags it registers (and exits on); see docs/configuration.md, \"Performance knobs kcp has no flag for\"",
}

// decodeError turns encoding/json errors into FieldErrors with the full key
// path; t is the type decoded into.
func decodeError(key, raw string, err error, t reflect.Type) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		path := key
		if typeErr.Field != "" {
			path = key + "." + typeErr.Field
			// Its path has no list indexes: find the entry.
			if p, ok := mismatchPath(raw, t, typeErr.Field); ok {
				path = key + p
			}
		}
		return &FieldError{Key: path, Value: "a " + typeErr.Value, Allowed: "a value of type " + jsonKind(typeErr.Type.Kind().String())}
	case errors.As(err, &syntaxErr):
		return &FieldError{Key: key, Value: raw, Allowed: "a YAML map, list or scalar of the documented shape"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		// encoding/json names the field alone: find where it stands.
		path, found := unknownFieldPath(raw, t, field)
		if !found {
			path = "." + field
		}
		if why, ok := unsupportedKeys[key+path]; ok {
			return &FieldError{Key: key + path, Value: "<set>", Allowed: why}
		}
		return &FieldError{Key: key + path, Value: "<set>", Allowed: "no such key; see docs/configuration.md for " + key}
	default:
		return &FieldError{Key: key, Value: raw, Allowed: err.Error()}
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32":
		return "integer"
	case "slice":
		return "list"
	case "struct", "map":
		return "map"
	case "bool":
		return "boolean (true/false)"
	}
	return goKind
}

// FieldError is one invalid config value: which key, what it was, what is allowed.
type FieldError struct {
	Key     string
	Value   string
	Allowed string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config %s:%s: invalid value %q: want %s", Namespace, e.Key, e.Value, e.Allowed)
}

// joinSorted joins errors in key order so that messages are stable.
func joinSorted(errs []error) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// unknownFieldPath is where the JSON raw names field although the type t
// it decodes into has no such key, as a path below the config key
// (".monitoring.labels", "[0].monitoring.labels").
func unknownFieldPath(raw string, t reflect.Type, field string) (string, bool) {
	return findMember(raw, t, func(key string, _ any, f *reflect.StructField, _ string) bool {
		return f == nil && key == field
	})
}

// mismatchPath is where the JSON raw holds a value of the wrong type for
// the field encoding/json names by its dotted path (no list indexes).
func mismatchPath(raw string, t reflect.Type, fieldPath string) (string, bool) {
	return findMember(raw, t, func(_ string, v any, f *reflect.StructField, fields string) bool {
		if f == nil || fields != fieldPath {
			return false
		}
		b, _ := json.Marshal(v)
		return json.Unmarshal(b, reflect.New(f.Type).Interface()) != nil
	})
}

// findMember walks the JSON raw along the type t it decodes into, object
// members in key order, and returns the path of the first member match
// accepts; match gets the member's struct field (nil for a key t has no
// field for) and its dotted field path without list indexes.
func findMember(raw string, t reflect.Type, match func(key string, v any, f *reflect.StructField, fields string) bool) (string, bool) {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return "", false
	}
	return walkMembers(v, t, "", "", match)
}

func walkMembers(v any, t reflect.Type, path, fields string, match func(string, any, *reflect.StructField, string) bool) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch val := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(val)) {
			switch t.Kind() {
			case reflect.Map:
				if p, ok := walkMembers(val[k], t.Elem(), path+"["+k+"]", fields, match); ok {
					return p, true
				}
			case reflect.Struct:
				f, known := jsonField(t, k)
				sub := strings.TrimPrefix(fields+"."+k, ".")
				var fp *reflect.StructField
				if known {
					fp = &f
				}
				if match(k, val[k], fp, sub) {
					return path + "." + k, true
				}
				if known {
					if p, ok := walkMembers(val[k], f.Type, path+"."+k, sub, match); ok {
						return p, true
					}
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range val {
				if p, ok := walkMembers(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), fields, match); ok {
					return p, true
				}
			}
		}
	}
	return "", false
}

// jsonField is the field of struct t that encoding/json decodes key into
// (names match case-insensitively, as there).
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
