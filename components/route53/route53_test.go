package route53

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

func args(addrs ...string) Args {
	a := Args{ZoneID: "Z0123456789ABCDEFGHIJ", TTL: 60}
	hosts := []string{"kcp.example.com", "shard-1.kcp.example.com", "shard-2.kcp.example.com"}
	for i, addr := range addrs {
		a.Records = append(a.Records, Record{Host: hosts[i], Address: pulumi.String(addr)})
	}
	return a
}

// TestRecordPerHost: each host points at its load balancer — an A record
// for an IP, AAAA for IPv6, a CNAME for a hostname such as an NLB's — in
// the zone, with the TTL, taking over a record already there.
func TestRecordPerHost(t *testing.T) {
	rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := New(ctx, "dns", args("192.0.2.10", "k8s-kcp-lb-0123.elb.us-east-1.amazonaws.com", "2001:db8::1"))
		return err
	})
	for _, want := range []struct{ name, typ, target string }{
		{"kcp.example.com", "A", "192.0.2.10"},
		{"shard-1.kcp.example.com", "CNAME", "k8s-kcp-lb-0123.elb.us-east-1.amazonaws.com"},
		{"shard-2.kcp.example.com", "AAAA", "2001:db8::1"},
	} {
		r := rec.Named(t, "aws:route53/record:Record", "dns-"+want.name)
		in := r.Input()
		if in["name"] != want.name || in["type"] != want.typ || in["zoneId"] != "Z0123456789ABCDEFGHIJ" || in["ttl"] != float64(60) || in["allowOverwrite"] != true {
			t.Errorf("record %s = %v", want.name, in)
		}
		if got := mocktest.Strings(in["records"]); len(got) != 1 || got[0] != want.target {
			t.Errorf("record %s points at %v, want %s", want.name, got, want.target)
		}
		if r.ParentName() != "dns" {
			t.Errorf("record %s is not parented to the component", want.name)
		}
	}
}

// TestNoAddressFailsTheUp: a load balancer without an address would publish
// nothing; the up says which host.
func TestNoAddressFailsTheUp(t *testing.T) {
	_, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := New(ctx, "dns", args("192.0.2.10", ""))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "the load balancer of shard-1.kcp.example.com has no address to publish") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, func() Args { return args("192.0.2.10") }, func(a Args) field.ErrorList { return a.Validate(field.NewPath("ingress")) },
		[]fieldtest.Case[Args]{
			{"no zone", func(a *Args) { a.ZoneID = "" }, "ingress.route53ZoneId", "a Route 53 hosted zone id"},
			{"a zone name for its id", func(a *Args) { a.ZoneID = "example.com" }, "ingress.route53ZoneId", "a Route 53 hosted zone id"},
			{"a zone ARN for its id", func(a *Args) { a.ZoneID = "arn:aws:route53:::hostedzone/Z0123" }, "ingress.route53ZoneId", "a Route 53 hosted zone id"},
			{"a TTL of 0", func(a *Args) { a.TTL = 0 }, "ingress.ttl", "1 to 86400 seconds"},
			{"a bad host", func(a *Args) { a.Records[0].Host = "KCP_example" }, "ingress.records[0]", "a DNS name"},
			{"no address", func(a *Args) { a.Records[0].Address = nil }, "ingress.records[0]", "the address of kcp.example.com"},
		})
}

func TestRecordType(t *testing.T) {
	for addr, want := range map[string]string{"192.0.2.10": "A", "2001:db8::1": "AAAA", "lb.elb.amazonaws.com": "CNAME"} {
		if got := RecordType(addr); got != want {
			t.Errorf("RecordType(%s) = %s, want %s", addr, got, want)
		}
	}
}

// TestTarget: a record is made only for a host inside the zone, and a
// CNAME never at the zone's apex (Route 53 refuses it there).
func TestTarget(t *testing.T) {
	for _, tt := range []struct {
		name, zone, host, addr, want string
	}{
		{"in the zone", "example.com", "kcp.example.com", "lb.elb.us-east-1.amazonaws.com", ""},
		{"the API's trailing dot", "example.com.", "kcp.example.com", "192.0.2.10", ""},
		{"an IP at the apex", "kcp.example.com", "kcp.example.com", "192.0.2.10", ""},
		{"no address", "example.com", "kcp.example.com", "", "the load balancer of kcp.example.com has no address"},
		{"another zone", "example.org", "kcp.example.com", "192.0.2.10", "kcp-tmc:ingress.route53ZoneId Z1 is the zone example.org, which does not hold kcp.example.com"},
		{"a suffix that is no parent", "ample.com", "kcp.example.com", "192.0.2.10", "does not hold kcp.example.com"},
		{"a CNAME at the apex", "kcp.example.com", "kcp.example.com", "lb.elb.us-east-1.amazonaws.com", "whose apex cannot hold the CNAME"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Target("Z1", tt.zone, tt.host, tt.addr)
			if tt.want == "" {
				if err != nil || got != tt.addr {
					t.Errorf("Target = %q, %v; want %q", got, err, tt.addr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
