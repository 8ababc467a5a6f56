package kcp

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

func separateCacheArgs() Args {
	a := shardedArgs()
	a.Cache = &shard.Shard{Name: shard.Cache, Replicas: 2, Resources: a.FrontProxyResources}
	return a
}

// TestSeparateCache: the cache server runs on its own with only flags
// cache-server v0.32.3 registers, on its own etcd, and every shard — the
// root shard too — replicates through it with the shard-admin identity.
func TestSeparateCache(t *testing.T) {
	rec := run(t, separateCacheArgs())
	args := podArgs(t, rec, CacheName)
	for _, arg := range args {
		if !KnownCacheServerFlags()[flagName(arg)] {
			t.Errorf("cache server: %s is not a flag cache-server v0.32.3 registers", flagName(arg))
		}
	}
	if !strings.Contains(strings.Join(args, " "), "--etcd-servers=https://etcd-cache.kcp.svc:2379") {
		t.Errorf("cache server args %v", args)
	}
	for _, d := range []string{ServerName, "kcp-shard-1"} {
		if !strings.Contains(strings.Join(podArgs(t, rec, d), " "), "--cache-kubeconfig=/etc/kcp/kubeconfig/cache.kubeconfig") {
			t.Errorf("%s does not use the separate cache", d)
		}
		if !strings.Contains(fmt.Sprint(mocktest.Dig(rec.Object(t, deployType, d), "spec", "template", "spec", "volumes")), "kcp-shard-admin") {
			t.Errorf("%s lacks the shard-admin identity the cache authorizes", d)
		}
	}
	kubeconfigs := rec.Object(t, "kubernetes:core/v1:ConfigMap", shardKubeconfigCM)
	if cl, _ := mocktest.Kubeconfig(t, mocktest.Dig(kubeconfigs, "data", "cache.kubeconfig")); cl.Server != "https://kcp-cache.kcp.svc:6443" {
		t.Errorf("cache kubeconfig's server = %s", cl.Server)
	}
	policy := rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-kcp-cache")
	if got := mocktest.Dig(policy, "spec", "egress", 0, "to", 0, "podSelector", "matchLabels", "app.kubernetes.io/name"); got != "etcd-cache" {
		t.Errorf("cache egress to %v, want its etcd", got)
	}
	if got := mocktest.Dig(policy, "spec", "ingress", 0, "from", 0, "podSelector", "matchLabels", "kcp-tmc.io/role"); got != "kcp-server" {
		t.Errorf("cache ingress from %v, want the shards", got)
	}
	rec.Object(t, "kubernetes:core/v1:Service", CacheName)
	rec.Object(t, "kubernetes:policy/v1:PodDisruptionBudget", CacheName)

	// Embedded (no Cache): the root shard runs it, the shards use the root's base URL.
	embedded := run(t, shardedArgs())
	// kcp reads the kubeconfig once: switching the mode must roll every shard.
	for _, d := range []string{ServerName, "kcp-shard-1"} {
		before := mocktest.Dig(embedded.Object(t, deployType, d), "spec", "template", "metadata", "annotations", CacheAnnotation)
		after := mocktest.Dig(rec.Object(t, deployType, d), "spec", "template", "metadata", "annotations", CacheAnnotation)
		if before != "https://kcp-internal.kcp.svc:6443" || after != "https://kcp-cache.kcp.svc:6443" {
			t.Errorf("%s pod template names cache %v (embedded) and %v (separate)", d, before, after)
		}
	}
	if strings.Contains(strings.Join(podArgs(t, embedded, ServerName), " "), "--cache-kubeconfig") {
		t.Error("the root shard with the embedded cache points at a cache")
	}
	if cl, _ := mocktest.Kubeconfig(t, mocktest.Dig(embedded.Object(t, "kubernetes:core/v1:ConfigMap", shardKubeconfigCM), "data", "cache.kubeconfig")); cl.Server != "https://kcp-internal.kcp.svc:6443" {
		t.Errorf("embedded cache kubeconfig's server = %s", cl.Server)
	}
}

func TestValidateCache(t *testing.T) {
	fieldtest.Table(t, separateCacheArgs, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("kcp")) }, []fieldtest.Case[Args]{
		{"no replicas", func(a *Args) { a.Cache.Replicas = 0 }, "kcp.cache.replicas", "1 to 9"},
		{"bad cpu", func(a *Args) { a.Cache.Resources.Requests.CPU = "lots" }, "kcp.cache.resources.requests.cpu", "a positive CPU quantity"},
	})
}
