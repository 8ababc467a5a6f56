package stacks

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestIsConfigKey(t *testing.T) {
	for path, want := range map[string]bool{
		"etcd.quotaBackendBytes":                       true,
		"kcp.oidc.issuerURL":                           true,
		"clusters[0].resources[1].kind":                true,
		"cloud.existingVpc.privateSubnets[us-east-1a]": true,
		"monitoring.ruleLabels[app.kubernetes.io/x]":   true,
		"zones[2]":           true,
		"etcd.serverSecret":  false, // derived by the stack
		"kcp.certs.clientCA": false,
		"agentResources.requests.ephemeralStorage": true,
		"kcp.etcdURL":               false,
		"slackWebhookUrl":           false, // a secret: checked by its own rule
		"etcd.quotaBackendBytes[0]": false,
		"nosuchkey":                 false,
	} {
		if got := isConfigKey(path); got != want {
			t.Errorf("isConfigKey(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestComponentErrorsReachTheirKeys: a component's errors keep their paths
// as keys, shared keys are mounted where the stack has them, derived fields
// and (for an unused area) missing values are dropped, and a key with a
// stack error gets no follow-on error.
func TestComponentErrorsReachTheirKeys(t *testing.T) {
	fld := field.NewPath("cloud")
	errs := field.ErrorList{
		field.Invalid(fld.Child("region"), "useast1", "an AWS region"),
		field.Invalid(fld.Child("zones").Index(1), "eu-west-1a", "zones of the region"),
		field.Required(fld.Child("publicCidrs"), "CIDRs"),
		field.Invalid(fld.Child("clusterName"), "", "an EKS cluster name"),
		field.Invalid(fld.Child("vpcCidr"), "", "a /16"),
	}
	tests := []struct {
		name  string
		inUse bool
		want  []string
	}{
		// cloud.region already has the stack's error: no second one.
		{"in use", true, []string{
			`config kcp-tmc:cloud.publicCidrs: invalid value "<unset>": want CIDRs`,
			`config kcp-tmc:cloud.vpcCidr: invalid value "": want a /16`,
			`config kcp-tmc:zones[1]: invalid value "eu-west-1a": want zones of the region`,
		}},
		{"not in use: given values still checked, nothing required", false, []string{
			`config kcp-tmc:zones[1]: invalid value "eu-west-1a": want zones of the region`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &validator{}
			v.add("cloud.region", "useast1", "a region (stack rule)") // the follow-on is dropped
			v.component(errs, tt.inUse, mount{"cloud.zones", "zones"})
			var got []string
			for _, e := range v.errs[1:] {
				got = append(got, e.Error())
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
