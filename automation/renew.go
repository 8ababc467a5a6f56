package automation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// The pulumi-tls certificates with an early renewal (tls.mode self-managed):
// the provider replaces one at the first update after its validity end
// minus earlyRenewalHours, and only then — nothing renews it between two
// updates.
var renewableTypes = []string{
	"tls:index/locallySignedCert:LocallySignedCert",
	"tls:index/selfSignedCert:SelfSignedCert",
}

// Certificate is one self-managed certificate of a stack's state.
type Certificate struct {
	URN     string    `json:"urn"`
	Name    string    `json:"name"`
	RenewAt time.Time `json:"renewAt"` // validity end minus earlyRenewalHours
	Expires time.Time `json:"expires"`
}

// Renewals are a stack's self-managed certificates due for renewal at a
// time, the next one due after them (nil when none is), and the ones
// without an early renewal (CAs) that expire within CANotice.
type Renewals struct {
	Due      []Certificate `json:"due"`
	Next     *Certificate  `json:"next,omitempty"`
	Expiring []Certificate `json:"expiring,omitempty"`
}

// CANotice is how long before a CA expires renew reports it: replacing a
// CA re-issues every leaf it signed and restarts what reads it (runbook
// "Certificate expired"), planned work no unattended run does.
const CANotice = 90 * 24 * time.Hour

// renewals reads which certificates of state are due at now. A certificate
// without an early renewal (a CA: kcp-tmc gives CAs none) is never due; it
// is Expiring within CANotice of its end.
func renewals(state apitype.DeploymentV3, now time.Time) (Renewals, error) {
	var r Renewals
	for _, res := range state.Resources {
		if res.Delete || !slices.Contains(renewableTypes, string(res.Type)) {
			continue
		}
		hours, _ := res.Outputs["earlyRenewalHours"].(float64)
		end, _ := res.Outputs["validityEndTime"].(string)
		if end == "" {
			continue
		}
		expires, err := time.Parse(time.RFC3339, end)
		if err != nil {
			return Renewals{}, fmt.Errorf("certificate %s: validityEndTime %q: %w", res.URN.Name(), end, err)
		}
		c := Certificate{URN: string(res.URN), Name: res.URN.Name(), Expires: expires,
			RenewAt: expires.Add(-time.Duration(hours) * time.Hour)}
		if hours <= 0 {
			if now.Add(CANotice).After(expires) {
				r.Expiring = append(r.Expiring, c)
			}
			continue
		}
		ready, _ := res.Outputs["readyForRenewal"].(bool)
		switch {
		case ready || !now.Before(c.RenewAt):
			r.Due = append(r.Due, c)
		case r.Next == nil || c.RenewAt.Before(r.Next.RenewAt):
			r.Next = &c
		}
	}
	return r, nil
}

// exportState reads the stack's state (secrets decrypted, in memory only).
func exportState(ctx context.Context, s auto.Stack) (apitype.DeploymentV3, error) {
	var state apitype.DeploymentV3
	exported, err := s.Export(ctx)
	if err != nil {
		return state, fmt.Errorf("reading the state: %s", stderrOf(err))
	}
	if err := json.Unmarshal(exported.Deployment, &state); err != nil {
		return state, fmt.Errorf("reading the state: %w", err)
	}
	return state, nil
}

// Renew replaces the stack's self-managed certificates due for renewal at
// now, and updates what is built from them (the Secrets they are written
// to, a kubeconfig made of them), in an up targeted at exactly those
// (UpWithDirectUsers): nothing else of the program is changed, so it runs
// unattended while other changes wait for their review. With none due it
// runs no up.
func Renew(ctx context.Context, s auto.Stack, now time.Time, out io.Writer, opts ...optup.Option) (Renewals, error) {
	state, err := exportState(ctx, s)
	if err != nil {
		return Renewals{}, err
	}
	r, err := renewals(state, now)
	if err != nil || len(r.Due) == 0 {
		return r, err
	}
	urns := make([]string, len(r.Due))
	names := make([]string, len(r.Due))
	for i, c := range r.Due {
		urns[i], names[i] = c.URN, c.Name
	}
	fmt.Fprintf(out, "renewing %d certificate(s) due: %s\n", len(urns), strings.Join(names, ", "))
	return r, Up(ctx, s, out, append(opts, optup.Target(withDirectUsers(state, urns)))...)
}

// UpWithDirectUsers is an up of the resources urns and of the resources
// whose inputs are built from their outputs, and of nothing else the
// program would change.
func UpWithDirectUsers(ctx context.Context, s auto.Stack, out io.Writer, urns []string, opts ...optup.Option) error {
	state, err := exportState(ctx, s)
	if err != nil {
		return err
	}
	return Up(ctx, s, out, append(opts, optup.Target(withDirectUsers(state, urns)))...)
}

// withDirectUsers is urns and every resource of state with an input built
// from one of them (its property dependencies). Not the engine's
// --target-dependents: the SDK turns a DependsOn on a component into a
// dependency on every resource in it, so the components that depend on
// the PKI (etcd, kcp, backup, …) and all they hold would come along, with
// any change of theirs still waiting for review.
func withDirectUsers(state apitype.DeploymentV3, urns []string) []string {
	targets := slices.Clone(urns)
	for _, res := range state.Resources {
		if res.Delete || slices.Contains(targets, string(res.URN)) {
			continue
		}
		for _, deps := range res.PropertyDependencies {
			if slices.ContainsFunc(deps, func(u resource.URN) bool { return slices.Contains(urns, string(u)) }) {
				targets = append(targets, string(res.URN))
				break
			}
		}
	}
	return targets
}
