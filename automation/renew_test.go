package automation

import (
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

// TestRenewals: which self-managed certificates are due is what pulumi-tls
// replaces at the next update — validity end minus earlyRenewalHours
// reached, or readyForRenewal already set by a refresh — and CAs (no early
// renewal), deleted resources and other types never are.
func TestRenewals(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	const leaf, ca = "tls:index/locallySignedCert:LocallySignedCert", "tls:index/selfSignedCert:SelfSignedCert"
	cert := func(name, typ string, expires time.Time, hours float64, extra map[string]any) apitype.ResourceV3 {
		out := map[string]any{"validityEndTime": expires.Format(time.RFC3339), "earlyRenewalHours": hours, "readyForRenewal": false}
		for k, v := range extra {
			out[k] = v
		}
		return apitype.ResourceV3{Type: tokens.Type(typ), Outputs: out,
			URN: resource.NewURN("dev", "kcp-tmc", "kcp-tmc:tls:PKI", tokens.Type(typ), name)}
	}
	in := func(d time.Duration) time.Time { return now.Add(d) }
	for _, tc := range []struct {
		name      string
		resources []apitype.ResourceV3
		due       []string
		next      string
		expiring  []string
	}{
		{"none yet: the soonest is next", []apitype.ResourceV3{
			cert("pki-kcp-server", leaf, in(400*time.Hour), 360, nil),
			cert("pki-kcp-admin", leaf, in(380*time.Hour), 360, nil),
		}, nil, "pki-kcp-admin", nil},
		{"inside renewBefore", []apitype.ResourceV3{
			cert("pki-kcp-server", leaf, in(359*time.Hour), 360, nil),
			cert("pki-kcp-admin", leaf, in(400*time.Hour), 360, nil),
		}, []string{"pki-kcp-server"}, "pki-kcp-admin", nil},
		{"exactly at the renewal time", []apitype.ResourceV3{cert("pki-kcp-server", leaf, in(360*time.Hour), 360, nil)},
			[]string{"pki-kcp-server"}, "", nil},
		{"expired", []apitype.ResourceV3{cert("pki-kcp-server", leaf, in(-time.Hour), 360, nil)}, []string{"pki-kcp-server"}, "", nil},
		{"a refresh found it ready", []apitype.ResourceV3{cert("pki-kcp-server", leaf, in(1000*time.Hour), 360, map[string]any{"readyForRenewal": true})},
			[]string{"pki-kcp-server"}, "", nil},
		{"a CA has no early renewal: expired, it is reported", []apitype.ResourceV3{cert("pki-kcp-server-ca", ca, in(-time.Hour), 0, nil)}, nil, "",
			[]string{"pki-kcp-server-ca"}},
		{"a CA within the notice", []apitype.ResourceV3{cert("pki-kcp-server-ca", ca, in(80*24*time.Hour), 0, nil)}, nil, "", []string{"pki-kcp-server-ca"}},
		{"a CA of years", []apitype.ResourceV3{cert("pki-kcp-server-ca", ca, in(3*365*24*time.Hour), 0, nil)}, nil, "", nil},
		{"a self-signed certificate with one", []apitype.ResourceV3{cert("pki-self", ca, in(time.Hour), 24, nil)}, []string{"pki-self"}, "", nil},
		{"being deleted", []apitype.ResourceV3{func() apitype.ResourceV3 {
			r := cert("pki-old", leaf, in(-time.Hour), 360, nil)
			r.Delete = true
			return r
		}()}, nil, "", nil},
		{"another type", []apitype.ResourceV3{cert("secret", "kubernetes:core/v1:Secret", in(-time.Hour), 360, nil)}, nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renewals(apitype.DeploymentV3{Resources: tc.resources}, now)
			if err != nil {
				t.Fatal(err)
			}
			var due []string
			for _, c := range r.Due {
				due = append(due, c.Name)
			}
			if strings.Join(due, ",") != strings.Join(tc.due, ",") {
				t.Errorf("due %v, want %v", due, tc.due)
			}
			next := ""
			if r.Next != nil {
				next = r.Next.Name
				if want := r.Next.Expires.Add(-360 * time.Hour); !r.Next.RenewAt.Equal(want) {
					t.Errorf("next renewal at %s, want validity end minus 360h: %s", r.Next.RenewAt, want)
				}
			}
			if next != tc.next {
				t.Errorf("next %q, want %q", next, tc.next)
			}
			var expiring []string
			for _, c := range r.Expiring {
				expiring = append(expiring, c.Name)
			}
			if strings.Join(expiring, ",") != strings.Join(tc.expiring, ",") {
				t.Errorf("expiring %v, want %v", expiring, tc.expiring)
			}
		})
	}
	bad := cert("pki-kcp-server", leaf, now, 360, map[string]any{"validityEndTime": "next week"})
	if _, err := renewals(apitype.DeploymentV3{Resources: []apitype.ResourceV3{bad}}, now); err == nil || !strings.Contains(err.Error(), `pki-kcp-server: validityEndTime "next week"`) {
		t.Errorf("an unreadable validity end: %v, want an error naming the certificate and the value", err)
	}
}
