// Package route53 publishes kcp's public hosts in a Route 53 hosted zone,
// each at its load balancer's address, as part of the up that makes them:
// what connects to kcp by name (the agents on the physical clusters) is
// made after its record is live, so no resolver caches the name as missing
// (Route 53's negative-caching TTL is the SOA's, 900 s by default).
package route53

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/route53"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:route53:Records"

// Record is one host and the address it points at: a load balancer's IP (an
// A record) or hostname (a CNAME), known once the load balancer has one.
type Record struct {
	Host    string
	Address pulumi.StringInput
}

// Args configures the records.
type Args struct {
	// ZoneID is the hosted zone holding the hosts (the stack key
	// ingress.route53ZoneId).
	ZoneID  string
	TTL     int
	Records []Record
}

// zoneID is a Route 53 hosted zone id as the console and API show it.
var zoneID = regexp.MustCompile(`^Z[A-Z0-9]{1,31}$`)

// Validate reports every invalid field under fld; the zone id is
// route53ZoneId under it.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !zoneID.MatchString(a.ZoneID) {
		errs = append(errs, field.Invalid(fld.Child("route53ZoneId"), a.ZoneID, "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ"))
	}
	errs = append(errs, check.Range(fld.Child("ttl"), a.TTL, 1, 86400, " seconds")...)
	for i, r := range a.Records {
		errs = append(errs, check.DNSSubdomain(fld.Child("records").Index(i), r.Host, "a DNS name")...)
		if r.Address == nil {
			errs = append(errs, field.Required(fld.Child("records").Index(i), "the address of "+r.Host))
		}
	}
	return errs
}

// Records is the component.
type Records struct {
	pulumi.ResourceState

	// Published are the records: what needs the names depends on them.
	Published []pulumi.Resource
}

// New registers the component and a record per host.
func New(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Records, error) {
	comp := &Records{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("ingress")), opts...); err != nil {
		return nil, err
	}
	// The provider would quietly append the zone's name to a host outside
	// it (a wrong zone id publishes a name nobody asks for).
	zone := route53.LookupZoneOutput(ctx, route53.LookupZoneOutputArgs{ZoneId: pulumi.String(args.ZoneID)}, pulumi.Parent(comp)).Name()
	for _, r := range args.Records {
		host := r.Host
		target := pulumi.All(r.Address, zone).ApplyT(func(v []any) (string, error) {
			return Target(args.ZoneID, v[1].(string), host, v[0].(string))
		}).(pulumi.StringOutput)
		rec, err := route53.NewRecord(ctx, name+"-"+host, &route53.RecordArgs{
			ZoneId: pulumi.String(args.ZoneID), Name: pulumi.String(host),
			Type:    target.ApplyT(RecordType).(pulumi.StringOutput),
			Records: pulumi.StringArray{target}, Ttl: pulumi.IntPtr(args.TTL),
			// The name is the stack's: a record of the same type made by hand
			// is taken over, not a reason to fail the up.
			AllowOverwrite: pulumi.BoolPtr(true),
		}, pulumi.Parent(comp))
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", host, err)
		}
		comp.Published = append(comp.Published, rec)
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

// Target is what host's record in zone (named zoneName) points at: addr,
// once it is known, the host inside the zone, and a CNAME not at its apex.
func Target(zoneID, zoneName, host, addr string) (string, error) {
	zoneName = strings.TrimSuffix(zoneName, ".")
	switch {
	case addr == "":
		return "", fmt.Errorf("the load balancer of %s has no address to publish", host)
	case !strings.HasSuffix(host, "."+zoneName) && host != zoneName:
		return "", fmt.Errorf("kcp-tmc:ingress.route53ZoneId %s is the zone %s, which does not hold %s: want the hosted zone of domain", zoneID, zoneName, host)
	case host == zoneName && RecordType(addr) == "CNAME":
		return "", fmt.Errorf("kcp-tmc:ingress.route53ZoneId %s is the zone %s, whose apex cannot hold the CNAME %s needs for %s: want the zone above it", zoneID, zoneName, host, addr)
	}
	return addr, nil
}

// RecordType is the record an address needs: A for an IPv4 address, AAAA
// for IPv6, a CNAME for a hostname (an NLB's).
func RecordType(addr string) string {
	ip := net.ParseIP(addr)
	switch {
	case ip == nil:
		return "CNAME"
	case ip.To4() != nil:
		return "A"
	}
	return "AAAA"
}
