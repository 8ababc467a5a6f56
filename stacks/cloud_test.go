package stacks

import (
	"slices"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/components/awslb"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
)

func eksConfig(cloud string) map[string]string {
	return map[string]string{"environment": "prod",
		"slackWebhookUrl": "https://hooks.slack.com/services/T/B/X", "cloud": cloud}
}

// TestEKSFeedsTheStack: with cloud.mode eks the cluster's kubeconfig drives
// the Kubernetes provider (no kubeconfig secret needed), its volume key
// encrypts the etcd StorageClass and the backup role trusts its OIDC
// provider (no backup.oidc* config needed).
func TestEKSFeedsTheStack(t *testing.T) {
	mocktest.SetConfig(t, eksConfig(`{"mode":"eks","owner":"platform","costCenter":"cc-42"}`), "slackWebhookUrl")
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	rec.Named(t, "kcp-tmc:cloud:EKS", "cloud")
	if n := len(rec.OfType("aws:eks/nodeGroup:NodeGroup")); n != 3 {
		t.Errorf("%d node groups, want 3 (one per prod zone)", n)
	}
	kc := rec.Named(t, "pulumi:providers:kubernetes", "kubernetes").Inputs["kubeconfig"]
	if !kc.IsSecret() || !strings.Contains(kc.SecretValue().Element.StringValue(), "get-token") {
		t.Errorf("kubernetes provider kubeconfig = %v, want the cloud layer's (secret, aws eks get-token)", kc)
	}
	sc := rec.Object(t, "kubernetes:storage.k8s.io/v1:StorageClass", "fast-ssd")
	if got := mocktest.Dig(sc, "parameters", "kmsKeyId"); got != "arn:aws:kms:us-east-1:123456789012:cloud-volumes-key" {
		t.Errorf("etcd volumes encrypted with %v, want the cloud layer's volume key", got)
	}
	trust := rec.Named(t, "aws:iam/role:Role", "backup-role").Input()["assumeRolePolicy"].(string)
	issuer := "oidc.eks.us-east-1.amazonaws.com/id/MOCKCLOUD-CLUSTER"
	if !strings.Contains(trust, `"`+issuer+`:sub":"system:serviceaccount:kcp:etcd-backup"`) || !strings.Contains(trust, "arn:aws:iam:us-east-1:123456789012:cloud-oidc") {
		t.Errorf("backup role does not trust the cloud layer's OIDC provider: %s", trust)
	}
	for _, r := range rec.OfType("aws:eks/cluster:Cluster") {
		if mocktest.Dig(r.Input(), "tags", "cost-center") != "cc-42" {
			t.Errorf("cluster tags = %v", mocktest.Dig(r.Input(), "tags"))
		}
	}
}

func TestCloudConfigErrors(t *testing.T) {
	tests := []struct {
		name, cloud, want string
		extra             map[string]string
	}{
		{"unknown mode", `{"mode":"gke"}`, `config kcp-tmc:cloud.mode: invalid value "gke"`, nil},
		{"single NAT in prod", `{"mode":"eks","natPerZone":false}`, `config kcp-tmc:cloud.natPerZone: invalid value "false"`, nil},
		{"a GovCloud region", `{"mode":"eks","region":"us-gov-west-1"}`, `config kcp-tmc:cloud.region: invalid value "us-gov-west-1": want a region of the standard AWS partition`, nil},
		{"zone outside the region", `{"mode":"eks","region":"eu-west-1"}`, `config kcp-tmc:zones[0]: invalid value "us-east-1a": want distinct zones of region eu-west-1`, nil},
		{"unpinned EKS version", `{"mode":"eks","kubernetesVersion":"latest"}`, `config kcp-tmc:cloud.kubernetesVersion: invalid value "latest"`, nil},
		{"public endpoint without CIDRs", `{"mode":"eks","publicEndpoint":true}`, `config kcp-tmc:cloud.publicCidrs: invalid value "<unset>"`, nil},
		{"too few nodes", `{"mode":"eks","nodesPerZone":{"min":0,"desired":0,"max":1}}`, `config kcp-tmc:cloud.nodesPerZone: invalid value "0/0/1"`, nil},
		{"existing VPC without subnets", `{"mode":"eks","existingVpc":{"id":"vpc-1"}}`, `config kcp-tmc:cloud.existingVpc.privateSubnets[us-east-1a]: invalid value "<none>"`, nil},
		{"existing VPC with a bad id", `{"mode":"eks","existingVpc":{"id":"net-1"}}`, `config kcp-tmc:cloud.existingVpc.id: invalid value "net-1"`, nil},
		{"too few nodes for per-node anti-affinity", `{"mode":"eks","natPerZone":true,"nodesPerZone":{"min":1,"desired":1,"max":2}}`,
			`config kcp-tmc:cloud.nodesPerZone.min: invalid value "1"`, map[string]string{"zones": `["us-east-1a","us-east-1b"]`,
				"kcp": `{"antiAffinity":"hostname"}`, "etcd": `{"antiAffinity":"hostname"}`}},
		{"too few nodes for per-node anti-affinity of the front-proxies", `{"mode":"eks","natPerZone":true,"nodesPerZone":{"min":1,"desired":1,"max":2}}`,
			`config kcp-tmc:cloud.nodesPerZone.min: invalid value "1": want at least 3 nodes in all (2 zones × min) for 3 replicas`, map[string]string{"zones": `["us-east-1a","us-east-1b"]`,
				"kcp": `{"antiAffinity":"hostname","replicas":1,"frontProxyReplicas":3}`, "etcd": `{"antiAffinity":"hostname","replicas":1}`}},
		{"modifyVolumes on an EKS older than 1.34", `{"mode":"eks","kubernetesVersion":"1.33"}`,
			`config kcp-tmc:storage.modifyVolumes: invalid value "true": want false or unset while cloud.kubernetesVersion is 1.33`,
			map[string]string{"storage": `{"create":true,"iops":6000,"throughputMiBps":250,"modifyVolumes":true}`}},
		{"render target", `{"mode":"eks"}`, `config kcp-tmc:target.mode: invalid value "render"`, map[string]string{"target": `{"mode":"render","renderDir":"r"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := eksConfig(tt.cloud)
			for k, v := range tt.extra {
				cfg[k] = v
			}
			mocktest.SetConfig(t, cfg, "slackWebhookUrl")
			_, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestLoadBalancerControllerServesTheNLBs: on the EKS cluster kcp-tmc
// makes, prod's LoadBalancer Services (annotated for an NLB, which EKS's
// built-in controller leaves alone) are served by the AWS Load Balancer
// Controller it installs, in the cluster's VPC, before them; on a cluster
// the user brings, or without NLB annotations, none is installed.
func TestLoadBalancerControllerServesTheNLBs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		stack   string
		config  map[string]string
		wantVPC string // "" when no controller is installed
	}{
		{"prod on eks", "prod", eksConfig(`{"mode":"eks"}`), "cloud-vpc-id"},
		{"prod on eks in an existing VPC", "prod", eksConfig(`{"mode":"eks","existingVpc":{"id":"vpc-0123",` +
			`"privateSubnets":{"us-east-1a":"subnet-a","us-east-1b":"subnet-b","us-east-1c":"subnet-c"},` +
			`"publicSubnets":{"us-east-1a":"subnet-d","us-east-1b":"subnet-e","us-east-1c":"subnet-f"}}}`), "vpc-0123"},
		{"staging on eks: no NLB annotations", "staging", map[string]string{"environment": "staging",
			"zones": `["us-east-1a","us-east-1b","us-east-1c"]`, "cloud": `{"mode":"eks"}`}, ""},
		{"prod on an existing cluster", "prod", func() map[string]string { c, _ := stackFileConfig(t, "prod"); return c }(), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mocktest.SetConfig(t, tt.config, "slackWebhookUrl", "kcp-tmc:slackWebhookUrl", "kcp-tmc:kubeconfig", "kcp-tmc:elasticsearchPassword")
			rec, err := mocktest.Run(t, tt.stack, ProgramIn(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			ns := rec.Object(t, "kubernetes:core/v1:Namespace", "kcp")
			if gate := mocktest.Dig(ns, "metadata", "labels", awslb.ReadinessGateLabel); (gate == "enabled") != (tt.wantVPC != "") {
				t.Errorf("namespace kcp's readiness-gate label = %v with the controller installed: %v", gate, tt.wantVPC != "")
			}
			releases := rec.OfType(helmrelease.Type)
			i := slices.IndexFunc(releases, func(r mocktest.Resource) bool { return r.Name == "aws-load-balancer-controller" })
			if tt.wantVPC == "" {
				if i >= 0 {
					t.Fatal("AWS Load Balancer Controller installed")
				}
				return
			}
			if i < 0 {
				t.Fatal("no AWS Load Balancer Controller")
			}
			rel := releases[i]
			// The cloud layer's cluster, not an ambient kubeconfig; the role in the stack's account.
			if !strings.Contains(rel.Provider, "pulumi:providers:kubernetes::kubernetes::") {
				t.Errorf("the release goes through provider %q, want the stack's Kubernetes provider", rel.Provider)
			}
			if p := rec.Named(t, "aws:iam/role:Role", "aws-load-balancer-controller-role").Provider; !strings.Contains(p, "pulumi:providers:aws::aws::") {
				t.Errorf("the controller's role goes through provider %q, want the stack's AWS provider", p)
			}
			if got := mocktest.Dig(rel.Input(), "values", "vpcId"); got != tt.wantVPC {
				t.Errorf("controller's VPC = %v, want %s", got, tt.wantVPC)
			}
			if got := mocktest.Dig(rel.Input(), "values", "clusterName"); got != "kcp-tmc-prod" {
				t.Errorf("controller's cluster = %v", got)
			}
			trust := rec.Named(t, "aws:iam/role:Role", "aws-load-balancer-controller-role").Input()["assumeRolePolicy"].(string)
			if !strings.Contains(trust, "arn:aws:iam:us-east-1:123456789012:cloud-oidc") {
				t.Errorf("controller's role does not trust the cloud layer's OIDC provider: %s", trust)
			}
			// The Services are children of the ingress component, which is
			// registered (and so its children made) only once the release is
			// installed, and deleted before it.
			entry := rec.Named(t, "kcp-tmc:ingress:Ingress", "ingress")
			if !slices.ContainsFunc(entry.DependsOn, func(u string) bool { return strings.HasSuffix(u, "::aws-load-balancer-controller") }) {
				t.Errorf("the ingress does not wait for the controller: depends on %v", entry.DependsOn)
			}
			var lbs int
			for _, s := range rec.OfType("kubernetes:core/v1:Service") {
				if mocktest.Dig(s.Input(), "spec", "type") == "LoadBalancer" && s.ParentName() == "ingress" {
					lbs++
				}
			}
			if lbs == 0 {
				t.Error("no LoadBalancer Service")
			}
		})
	}
}

// TestRoute53RecordsBeforeTheAgents: with ingress.route53ZoneId the up
// publishes kcp.<domain> and each shard's host at its own load balancer's
// address, and deploys the agents, which reach kcp by that name, only after.
func TestRoute53RecordsBeforeTheAgents(t *testing.T) {
	for _, tt := range []struct {
		name, ingress, address string
	}{
		{"load balancers", `{"route53ZoneId":"Z0123456789ABCDEFGHIJ"}`, mocktest.LoadBalancerIP},
		{"a Gateway of the stack's", `{"mode":"gateway","gateway":{"className":"eg"},"route53ZoneId":"Z0123456789ABCDEFGHIJ"}`, mocktest.GatewayIP},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clusterConfig("alpha")
			cfg["ingress"] = tt.ingress
			cfg["kcp"] = `{"shards":[{"name":"shard-1"}]}`
			mocktest.SetConfig(t, cfg, clusterSecrets...)
			rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			records := rec.OfType("aws:route53/record:Record")
			var urns []string
			for _, host := range []string{"kcp.example.com", "shard-1.kcp.example.com"} {
				r := rec.Named(t, "aws:route53/record:Record", "dns-"+host)
				in := r.Input()
				if in["zoneId"] != "Z0123456789ABCDEFGHIJ" || in["type"] != "A" || !slices.Equal(mocktest.Strings(in["records"]), []string{tt.address}) {
					t.Errorf("record %s = %v, want an A record at %s", host, in, tt.address)
				}
				if !strings.Contains(r.Provider, "pulumi:providers:aws::aws::") {
					t.Errorf("record %s goes through provider %q, want the stack's AWS provider", host, r.Provider)
				}
				urns = append(urns, "::dns-"+host)
			}
			if len(records) != 2 {
				t.Errorf("%d records, want the front door's and the shard's", len(records))
			}
			// One writer per name: no external-dns annotations on the load
			// balancers, and the routes tell external-dns to keep off.
			for _, svc := range rec.OfType("kubernetes:core/v1:Service") {
				annotations, _ := mocktest.Dig(svc.Input(), "metadata", "annotations").(map[string]any)
				for k := range annotations {
					if strings.HasPrefix(k, "external-dns.") {
						t.Errorf("Service %s carries %s while the stack publishes its host", svc.Name, k)
					}
				}
			}
			// The records need the Gateway's address: the up waits for it,
			// not only for Programmed.
			for _, gw := range rec.OfType("kubernetes:gateway.networking.k8s.io/v1:Gateway") {
				want := `["` + ingress.GatewayProgrammed + `","` + ingress.GatewayAddressed + `"]`
				if got := mocktest.Dig(gw.Input(), "metadata", "annotations", "pulumi.com/waitFor"); got != want {
					t.Errorf("Gateway %s waits for %v, want %s", gw.Name, got, want)
				}
			}
			for _, route := range rec.OfType("kubernetes:gateway.networking.k8s.io/v1:TLSRoute") {
				annotations, _ := mocktest.Dig(route.Input(), "metadata", "annotations").(map[string]any)
				for _, p := range ingress.ExternalDNSPrefixes {
					if annotations[p+"controller"] != "kcp-tmc" {
						t.Errorf("TLSRoute %s: %scontroller = %v, want kcp-tmc (external-dns keeps off)", route.Name, p, annotations[p+"controller"])
					}
				}
			}
			agent := rec.Named(t, "kcp-tmc:agents:Agent", "agent-alpha")
			for _, u := range urns {
				if !slices.ContainsFunc(agent.DependsOn, func(d string) bool { return strings.HasSuffix(d, u) }) {
					t.Errorf("agent alpha does not wait for %s: depends on %v", u, agent.DependsOn)
				}
			}
		})
	}

	// Without the key: no records, and the agents wait for nothing more.
	mocktest.SetConfig(t, clusterConfig("alpha"), clusterSecrets...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.OfType("aws:route53/record:Record")); n != 0 {
		t.Errorf("%d records without ingress.route53ZoneId", n)
	}
}

func TestRoute53ConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, stack string
		config      map[string]string
		want        string
	}{
		{"an existing Gateway", "prod", map[string]string{"ingress": `{"mode":"gateway","route53ZoneId":"Z0123"}`},
			`config kcp-tmc:ingress.route53ZoneId: invalid value "Z0123": want unset unless ingress.mode is loadbalancer, or gateway with ingress.gateway.className`},
		{"ingress-nginx", "prod", map[string]string{"ingress": `{"mode":"passthrough","installController":true,"route53ZoneId":"Z0123"}`},
			`config kcp-tmc:ingress.route53ZoneId: invalid value "Z0123": want unset unless ingress.mode is loadbalancer, or gateway with ingress.gateway.className`},
		{"render mode", "dev", map[string]string{"environment": "dev", "ingress": `{"route53ZoneId":"Z0123"}`},
			`config kcp-tmc:ingress.route53ZoneId: invalid value "Z0123": want unset in render mode`},
		{"skipAwait", "prod", map[string]string{"target": `{"mode":"kubeconfig","skipAwait":true}`, "ingress": `{"route53ZoneId":"Z0123"}`},
			`config kcp-tmc:ingress.route53ZoneId: invalid value "Z0123": want unset with target.skipAwait`},
		{"a zone name", "prod", map[string]string{"ingress": `{"route53ZoneId":"example.com"}`},
			`config kcp-tmc:ingress.route53ZoneId: invalid value "example.com": want a Route 53 hosted zone id`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clusterConfig("alpha")
			for k, v := range tt.config {
				cfg[k] = v
			}
			mocktest.SetConfig(t, cfg, clusterSecrets...)
			rec, err := mocktest.Run(t, tt.stack, ProgramIn(t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			if n := len(rec.All()); n != 0 {
				t.Errorf("%d resources registered", n)
			}
		})
	}
}
