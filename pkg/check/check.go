// Package check holds the field rules several components share, as
// field.ErrorList under the caller's path, so one rule has one wording.
package check

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"golang.org/x/mod/semver"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Image accepts a pinned image: repository:tag (never "latest") or
// repository@digest; example is the default, as the message shows it.
func Image(fld *field.Path, s, example string) field.ErrorList {
	ref, err := reference.ParseNormalizedNamed(s)
	if err == nil {
		if _, ok := ref.(reference.Digested); ok {
			return nil
		}
		if t, ok := ref.(reference.Tagged); ok && t.Tag() != "latest" {
			return nil
		}
	}
	return field.ErrorList{field.Invalid(fld, s, "a pinned image, repository:tag (not :latest) or repository@sha256:…, such as "+example)}
}

// Repository accepts an image repository without tag or digest (the tag is a
// key of its own).
func Repository(fld *field.Path, s, example string) field.ErrorList {
	// A registry or an organisation in the path: "kcp" alone would be
	// Docker Hub's official-image namespace.
	ref, err := reference.ParseNormalizedNamed(s)
	if err == nil && reference.IsNameOnly(ref) && strings.Contains(s, "/") {
		return nil
	}
	return field.ErrorList{field.Invalid(fld, s, "an image repository with its registry or organisation, without tag or digest, e.g. "+example)}
}

// DNSLabel accepts a DNS-1123 label (namespaces, zone names, IngressClasses).
func DNSLabel(fld *field.Path, s, what string) field.ErrorList {
	if msgs := validation.IsDNS1123Label(s); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(fld, s, what+" (a DNS-1123 label: "+strings.Join(msgs, "; ")+")")}
	}
	return nil
}

// DNSSubdomain accepts a DNS-1123 subdomain (StorageClass and host names).
func DNSSubdomain(fld *field.Path, s, what string) field.ErrorList {
	msgs := validation.IsDNS1123Subdomain(s)
	for _, label := range strings.Split(s, ".") {
		if len(label) > validation.DNS1123LabelMaxLength {
			msgs = append(msgs, "label "+strconv.Quote(label)+" is longer than 63 characters")
		}
	}
	if len(msgs) > 0 {
		return field.ErrorList{field.Invalid(fld, s, what+" (a DNS-1123 subdomain: "+strings.Join(msgs, "; ")+")")}
	}
	return nil
}

// Domain accepts a DNS name of at least two labels, each at most 63
// characters (a public host name, the domain of an e-mail address). A
// trailing dot is refused: the name goes into hosts, certificates' SANs and
// Ingress rules, which take it without one (found by FuzzStackConfig: the
// pki component refused "example.com." half-way through a stack).
func Domain(fld *field.Path, s, what string) field.ErrorList {
	if errs := validation.IsFullyQualifiedDomainName(fld, s); len(errs) > 0 || len(validation.IsDNS1123Subdomain(s)) > 0 {
		return field.ErrorList{field.Invalid(fld, s, what+" (a lowercase DNS name with at least two labels, each at most 63 characters, and no trailing dot, e.g. example.com)")}
	}
	return nil
}

// Range accepts lo ≤ n ≤ hi; why says what the bounds protect.
func Range(fld *field.Path, n, lo, hi int, why string) field.ErrorList {
	if n < lo || n > hi {
		return field.ErrorList{field.Invalid(fld, n, fmt.Sprintf("%d to %d%s", lo, hi, why))}
	}
	return nil
}

// OneOf accepts one of the allowed strings.
func OneOf(fld *field.Path, s string, allowed ...string) field.ErrorList {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(fld, s, allowed)}
}

// Release accepts a pinned release tag vX.Y.Z[-pre] (no short forms such as
// v1.2, no build metadata), optionally on one minor line ("v3.5").
func Release(fld *field.Path, v, line, example string) field.ErrorList {
	if v != "" && semver.Canonical(v) == v && (line == "" || semver.MajorMinor(v) == line) {
		return nil
	}
	what := "a pinned release tag like " + strconv.Quote(example)
	if line != "" {
		what = "a pinned " + line + ".x release tag like " + strconv.Quote(example)
	}
	return field.ErrorList{field.Invalid(fld, v, what)}
}

// ChartVersion accepts a pinned Helm chart version X.Y.Z (no v, no ranges).
func ChartVersion(fld *field.Path, v, example string) field.ErrorList {
	if semver.Canonical("v"+v) == "v"+v && !strings.HasPrefix(v, "v") {
		return nil
	}
	return field.ErrorList{field.Invalid(fld, v, "a pinned chart version like "+strconv.Quote(example))}
}

// Labels accepts Kubernetes labels, each entry checked at fld[key] with the
// apiserver's rules for keys and values, in key order.
func Labels(fld *field.Path, labels map[string]string) field.ErrorList {
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, field.Invalid(fld.Key(k), k, "a label key (a qualified name, optionally prefixed by a DNS subdomain and /: "+strings.Join(msgs, "; ")+")"))
		} else if msgs := validation.IsValidLabelValue(labels[k]); len(msgs) > 0 {
			errs = append(errs, field.Invalid(fld.Key(k), labels[k], "a label value ("+strings.Join(msgs, "; ")+")"))
		}
	}
	return errs
}

// CIDRs accepts IPv4 and IPv6 CIDRs in canonical form (the apiserver's
// rule for new values: 203.0.113.0/24, not 203.0.113.7/24), each checked
// at fld[i].
func CIDRs(fld *field.Path, cidrs []string) field.ErrorList {
	var errs field.ErrorList
	for i, c := range cidrs {
		for _, e := range validation.IsValidCIDR(fld.Index(i), c) {
			e.Detail = "a CIDR such as 203.0.113.0/24 (" + e.Detail + ")"
			errs = append(errs, e)
		}
	}
	return errs
}
