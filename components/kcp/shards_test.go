package kcp

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

func shardedArgs() Args {
	a := prodArgs()
	a.Shards = []shard.Shard{{Name: "shard-1", Replicas: 2, Resources: a.Resources}}
	return a
}

func podArgs(t *testing.T, rec *mocktest.Recorder, deployment string) []string {
	t.Helper()
	return mocktest.Strings(mocktest.Dig(rec.Object(t, deployType, deployment), "spec", "template", "spec", "containers", 0, "args"))
}

// TestShardFlags: a shard other than root names itself, registers with the
// root shard and replicates through its cache, stores in its own etcd and is
// reached at its own Service; every shard can act on the others' logical
// clusters (kcp's loopback default reaches only itself).
func TestShardFlags(t *testing.T) {
	rec := run(t, shardedArgs())
	for _, tc := range []struct {
		deployment string
		want, not  []string
	}{
		{ServerName, []string{
			"--etcd-servers=https://etcd.kcp.svc:2379",
			"--shard-base-url=https://kcp-internal.kcp.svc:6443",
			"--shard-virtual-workspace-url=https://kcp.example.com:443",
			"--logical-cluster-admin-kubeconfig=/etc/kcp/kubeconfig/logical-cluster-admin.kubeconfig",
			"--external-logical-cluster-admin-kubeconfig=/etc/kcp/kubeconfig/external-logical-cluster-admin.kubeconfig",
		}, []string{"--shard-name", "--root-shard-kubeconfig-file", "--cache-kubeconfig"}},
		{"kcp-shard-1", []string{
			"--etcd-servers=https://etcd-shard-1.kcp.svc:2379",
			"--shard-name=shard-1",
			"--shard-base-url=https://kcp-shard-1.kcp.svc:6443",
			"--shard-external-url=https://kcp.example.com:443",
			"--root-shard-kubeconfig-file=/etc/kcp/kubeconfig/root-shard.kubeconfig",
			"--cache-kubeconfig=/etc/kcp/kubeconfig/cache.kubeconfig",
			"--logical-cluster-admin-kubeconfig=/etc/kcp/kubeconfig/logical-cluster-admin.kubeconfig",
			// Agents reach its virtual workspaces at its own public address.
			"--shard-virtual-workspace-url=https://shard-1.kcp.example.com:443",
		}, nil},
	} {
		args := strings.Join(podArgs(t, rec, tc.deployment), "\n") + "\n"
		for _, w := range tc.want {
			if !strings.Contains(args, w+"\n") {
				t.Errorf("%s lacks %s:\n%s", tc.deployment, w, args)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(args, n+"=") {
				t.Errorf("%s sets %s", tc.deployment, n)
			}
		}
		for _, arg := range podArgs(t, rec, tc.deployment) {
			if name := flagName(arg); !KnownServerFlags()[name] {
				t.Errorf("%s: %s is not a flag kcp v0.32.3 registers", tc.deployment, name)
			}
		}
	}
}

// TestShardObjects: a shard is its own Deployment (its replicas, the root's
// spreading), Service, PDB and policy, and mounts its own serving
// certificate and the shard-admin identity the root shard trusts.
func TestShardObjects(t *testing.T) {
	rec := run(t, shardedArgs())
	d := rec.Object(t, deployType, "kcp-shard-1")
	if got := mocktest.Dig(d, "spec", "replicas"); got != float64(2) {
		t.Errorf("replicas = %v, want 2", got)
	}
	if got := mocktest.Dig(d, "spec", "selector", "matchLabels", "app.kubernetes.io/name"); got != "kcp-shard-1" {
		t.Errorf("selector %v overlaps the root shard's", got)
	}
	pod := mocktest.Dig(d, "spec", "template", "spec")
	if got := mocktest.Dig(pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "labelSelector", "matchLabels", "app.kubernetes.io/name"); got != "kcp-shard-1" {
		t.Errorf("anti-affinity spreads %v, want the shard's own pods", got)
	}
	if got := mocktest.Dig(d, "spec", "template", "metadata", "labels", "kcp-tmc.io/role"); got != "kcp-server" {
		t.Errorf("shard pods lack the server role label: %v", got)
	}
	volumes := fmt.Sprint(mocktest.Dig(pod, "volumes"))
	for _, secret := range []string{"kcp-shard-1-server", "kcp-shard-admin", "kcp-logical-cluster-admin", "kcp-external-logical-cluster-admin"} {
		if !strings.Contains(volumes, "secretName:"+secret+"]") && !strings.Contains(volumes, "secretName:"+secret+" ") {
			t.Errorf("shard does not mount Secret %s: %s", secret, volumes)
		}
	}
	if strings.Contains(fmt.Sprint(mocktest.Dig(rec.Object(t, deployType, ServerName), "spec", "template", "spec", "volumes")), "kcp-shard-admin") {
		t.Error("the root shard mounts the shard-admin identity (system:masters) it never uses")
	}
	svc := rec.Object(t, "kubernetes:core/v1:Service", "kcp-shard-1")
	for k, want := range map[string]string{"app.kubernetes.io/name": ServerName, ShardLabel: "shard-1", "kcp-tmc.io/scrape": "true"} {
		if got := mocktest.Dig(svc, "metadata", "labels", k); got != want {
			t.Errorf("Service kcp-shard-1 label %s = %v, want %s", k, got, want)
		}
	}
	if got := mocktest.Dig(svc, "spec", "selector", "app.kubernetes.io/name"); got != "kcp-shard-1" {
		t.Errorf("Service kcp-shard-1 selects %v", got)
	}
	rec.Object(t, "kubernetes:policy/v1:PodDisruptionBudget", "kcp-shard-1")
	policy := rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-kcp-shard-1")
	if got := mocktest.Dig(policy, "spec", "egress", 0, "to", 0, "podSelector", "matchLabels", "app.kubernetes.io/name"); got != "etcd-shard-1" {
		t.Errorf("shard egress goes to %v, want its own etcd", got)
	}
	// The front-proxy reaches every shard by role, so adding a shard changes
	// no existing policy.
	proxy := fmt.Sprint(mocktest.Dig(rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-kcp-front-proxy"), "spec", "egress"))
	if !strings.Contains(proxy, "kcp-tmc.io/role:kcp-server") {
		t.Errorf("front-proxy egress does not reach every shard: %s", proxy)
	}
}

// TestAddingAShardChangesNoExistingObject: a second shard adds objects and
// leaves every object of the one-shard stack as it was, so it previews as
// additions only.
func TestAddingAShardChangesNoExistingObject(t *testing.T) {
	before, after := run(t, prodArgs()), run(t, shardedArgs())
	added := map[string]mocktest.Resource{}
	for _, r := range after.All() {
		added[r.Type+" "+r.Name] = r
	}
	for _, r := range before.All() {
		got, ok := added[r.Type+" "+r.Name]
		if !ok {
			t.Errorf("%s %s is gone once a shard is added", r.Type, r.Name)
			continue
		}
		if !reflect.DeepEqual(got.Input(), r.Input()) {
			t.Errorf("%s %s changes once a shard is added:\nbefore %v\nafter  %v", r.Type, r.Name, r.Input(), got.Input())
		}
	}
	if len(after.All()) <= len(before.All()) {
		t.Errorf("a shard added no objects")
	}
}

func TestValidateShards(t *testing.T) {
	fieldtest.Table(t, shardedArgs, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("kcp")) }, []fieldtest.Case[Args]{
		{"root is implicit", func(a *Args) { a.Shards[0].Name = "root" }, "kcp.shards[0].name", "a name other than "},
		{"the front-proxy's name", func(a *Args) { a.Shards[0].Name = "front-proxy" }, "kcp.shards[0].name", "collide with kcp-tmc's own objects"},
		{"the cache's name", func(a *Args) { a.Shards[0].Name = "cache" }, "kcp.shards[0].name", "collide"},
		{"the etcd headless Service", func(a *Args) { a.Shards[0].Name = "headless" }, "kcp.shards[0].name", "collide"},
		{"another shard's headless Service", func(a *Args) { a.Shards[0].Name = "shard-1-headless" }, "kcp.shards[0].name", "not ending in -headless"},
		{"backup objects", func(a *Args) { a.Shards[0].Name = "eu-backup" }, "kcp.shards[0].name", "not ending in -headless, -backup or -lb"},
		{"another shard's load balancer", func(a *Args) { a.Shards[0].Name = "eu-lb" }, "kcp.shards[0].name", "not ending in -headless, -backup or -lb"},
		{"the front-proxy's load balancer", func(a *Args) { a.Shards[0].Name = "front-proxy-lb" }, "kcp.shards[0].name", "-lb"},
		{"twice", func(a *Args) { a.Shards = append(a.Shards, a.Shards[0]) }, "kcp.shards[1].name", "Duplicate value"},
		{"not a label", func(a *Args) { a.Shards[0].Name = "Shard_1" }, "kcp.shards[0].name", "a DNS label such as shard-1"},
		{"too long", func(a *Args) { a.Shards[0].Name = strings.Repeat("s", 34) }, "kcp.shards[0].name", "may not be more than 33"},
		{"no replicas", func(a *Args) { a.Shards[0].Replicas = 0 }, "kcp.shards[0].replicas", "1 to 9"},
		{"bad memory", func(a *Args) { a.Shards[0].Resources.Limits.Memory = "8GB" }, "kcp.shards[0].resources.limits.memory", "in Ki, Mi, Gi or Ti"},
		{"no identity", func(a *Args) { a.Certs.ShardAdmin = "" }, "kcp.certs.shardAdmin", "Required value"},
		{"shard flag as extra", func(a *Args) { a.ExtraFlags = []string{"--shard-name=x"} }, "kcp.extraFlags[0]", "a flag kcp-tmc does not already set"},
	})
}
