package check

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestLabels(t *testing.T) {
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   []string // "path: detail fragment", in order
	}{
		{"none", nil, nil},
		{"kube-prometheus-stack's", map[string]string{"release": "kube-prometheus-stack", "example.com/team": "platform", "empty": ""}, nil},
		{"a key with a space", map[string]string{"my release": "x"}, []string{"l[my release]: a label key"}},
		{"a prefix that is no subdomain", map[string]string{"Example_com/team": "x"}, []string{"l[Example_com/team]: a label key"}},
		{"a value with a slash, then a long one, in key order", map[string]string{"b": "a/b", "a": strings.Repeat("v", 64)},
			[]string{"l[a]: a label value (must be no more than 63", "l[b]: a label value"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs := Labels(field.NewPath("l"), tt.labels)
			if len(errs) != len(tt.want) {
				t.Fatalf("errors %v, want %d", errs, len(tt.want))
			}
			for i, w := range tt.want {
				path, detail, _ := strings.Cut(w, ": ")
				if errs[i].Field != path || !strings.HasPrefix(errs[i].Detail, detail) {
					t.Errorf("error %d = %s: %s, want %s: %s…", i, errs[i].Field, errs[i].Detail, path, detail)
				}
			}
		})
	}
}

func TestCIDRs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cidrs []string
		want  []string // the paths refused, in order
	}{
		{"none", nil, nil},
		{"IPv4 and IPv6", []string{"203.0.113.0/24", "2001:db8::/32", "0.0.0.0/0"}, nil},
		{"an address, host bits set, a range", []string{"203.0.113.7", "203.0.113.7/24", "10.0.0.0-10.0.0.255"}, []string{"c[0]", "c[1]", "c[2]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs := CIDRs(field.NewPath("c"), tt.cidrs)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
				if !strings.HasPrefix(e.Detail, "a CIDR such as") {
					t.Errorf("%s: %s", e.Field, e.Detail)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("refused %v, want %v (%v)", got, tt.want, errs)
			}
		})
	}
}

func TestDomain(t *testing.T) {
	for _, tt := range []struct {
		domain string
		ok     bool
	}{
		{"example.com", true},
		{"dev.kcp.example.com", true},
		{"xn--bcher-kva.example", true},
		{"example.com.", false}, // found by FuzzStackConfig: the pki component refused it half-way
		{"000.000.", false},
		{"localhost", false}, // one label: no public name
		{"Example.com", false},
		{"ex_ample.com", false},
		{"", false},
		{strings.Repeat("a", 64) + ".com", false},
	} {
		t.Run(tt.domain, func(t *testing.T) {
			errs := Domain(field.NewPath("domain"), tt.domain, "the zone")
			if got := len(errs) == 0; got != tt.ok {
				t.Fatalf("Domain(%q) = %v, want ok=%v", tt.domain, errs, tt.ok)
			}
		})
	}
}
