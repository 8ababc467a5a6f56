package stacks

// The validator collects every config error, each named by its stack key,
// and maps a component's field paths onto the keys that set them.

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// component adds a component's Validate errors, whose paths are already the
// stack's keys. inUse is false when the stack does not use the area
// (disabled, or another mode): then a value given must still be valid, but
// nothing is required. Errors on fields no stack key sets are dropped: the
// stack derives those values, and its own rules cover what they come from
// (the component refuses them again if a derivation were ever wrong). A key
// that already has an error (its syntax, checked by the stack) gets no
// follow-on error from a component.
func (v *validator) component(errs field.ErrorList, inUse bool, mounts ...mount) {
	for _, e := range errs {
		key := e.Field
		for _, m := range mounts {
			if key == m.from || strings.HasPrefix(key, m.from+"[") {
				key = m.to + strings.TrimPrefix(key, m.from)
			}
		}
		unset := e.Type == field.ErrorTypeRequired || e.BadValue == ""
		if !isConfigKey(key) || (!inUse && unset) || v.keys[key] {
			continue
		}
		value := fmt.Sprint(e.BadValue)
		switch {
		case e.Type == field.ErrorTypeRequired:
			value = "<unset>"
		case e.BadValue == nil:
			value = "<set>"
		}
		v.add(key, value, e.Detail)
	}
}

// mount says that a component's field at from is the stack's key to: a
// top-level key several components read (namespace, domain, zones).
type mount struct{ from, to string }

// isConfigKey reports whether path (field.Path syntax: a.b[0].c, m[key])
// names a value a stack file can set.
func isConfigKey(path string) bool {
	if path == "" {
		return false
	}
	t := reflect.TypeOf(Config{})
	for i, seg := range splitPath(path) {
		name, index, indexed := strings.Cut(seg, "[")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		f, ok := fieldByKey(t, name, i == 0)
		if !ok {
			return false
		}
		t = f.Type
		for ; indexed; _, index, indexed = strings.Cut(index, "[") {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Map {
				return false
			}
			t = t.Elem()
		}
	}
	return true
}

// fieldByKey finds the field of t a key names: the `config` tag at the top
// level, the json name below.
func fieldByKey(t reflect.Type, key string, top bool) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); keyName(f, top) == key && key != "" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keyName is the key a stack file sets a field by: the `config` tag of a
// field of Config (top), the json name below; "" for none (secrets,
// bookkeeping).
func keyName(f reflect.StructField, top bool) string {
	tag := f.Tag.Get("json")
	if top {
		tag = f.Tag.Get("config")
	}
	if name, _, _ := strings.Cut(tag, ","); name != "-" {
		return name
	}
	return ""
}

// splitPath splits a field path at the dots outside [map keys].
func splitPath(path string) []string {
	var segs []string
	depth, start := 0, 0
	for i, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == '.' && depth == 0:
			segs = append(segs, path[start:i])
			start = i + 1
		}
	}
	return append(segs, path[start:])
}

type validator struct {
	errs []error
	keys map[string]bool // keys with an error already
}

func (v *validator) add(key, value, allowed string) {
	if v.keys == nil {
		v.keys = map[string]bool{}
	}
	v.keys[key] = true
	v.errs = append(v.errs, &FieldError{Key: key, Value: value, Allowed: allowed})
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return joinSorted(v.errs)
}

func isDNSLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }
