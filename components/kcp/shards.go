package kcp

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/kubeconfig"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

// server is a shard as kcp runs it: the shard, and the etcd and serving
// certificate its pods use (the root shard's come from Args, the others'
// from the shard's names).
type server struct {
	shard.Shard
	etcdURL      string
	etcdSelector map[string]string
	serverSecret string
}

// serverOf is a shard besides the root as kcp runs it.
func serverOf(ns string, s shard.Shard) server {
	db := etcd.ClusterOf(s, ns)
	return server{Shard: s, etcdURL: db.ClientURL(), etcdSelector: db.Selector(), serverSecret: s.ServerCert()}
}

// BaseURL is a shard's in-cluster address.
func BaseURL(ns string, s shard.Shard) string {
	return fmt.Sprintf("https://%s.%s.svc:%d", s.Service(), ns, APIPort)
}

// ShardURL is the root shard's in-cluster address (its --shard-base-url).
func ShardURL(ns string) string { return BaseURL(ns, shard.Shard{Name: shard.Root}) }

// ServerRole labels the pods of every shard: shards call each other (the
// root shard and cache, logical-cluster admin) and the front-proxy calls
// them all, so policies allow the role, and a shard added later needs no
// change to the others.
var ServerRole = map[string]string{"kcp-tmc.io/role": "kcp-server"}

// ShardLabel on a shard's scraped Service names the shard (root for the
// root shard): each shard is scraped under its own serving name.
const ShardLabel = "kcp-tmc.io/shard"

// Where a server pod finds the shard kubeconfigs and their identities.
const (
	kubeconfigDir     = "/etc/kcp/kubeconfig"
	shardKubeconfigCM = "kcp-shard-kubeconfigs"
)

// shardFlags are what makes a pod of shard s a non-root shard: its name, the
// root shard it registers with and the cache it replicates through (the
// root shard's embedded cache server, at the root's base URL).
func shardFlags(s server) []string {
	return []string{
		"--shard-name=" + s.Name,
		"--root-shard-kubeconfig-file=" + kubeconfigDir + "/root-shard.kubeconfig",
		cacheKubeconfigFlag,
	}
}

// cacheKubeconfigFlag points a shard at the cache (CacheURL).
const cacheKubeconfigFlag = "--cache-kubeconfig=" + kubeconfigDir + "/cache.kubeconfig"

// adminFlags let every shard act on logical clusters of the others: directly
// (the shard's base URL replaces the kubeconfig's server) and through the
// front-proxy. kcp's default, the loopback client, reaches only itself.
func adminFlags() []string {
	return []string{
		"--logical-cluster-admin-kubeconfig=" + kubeconfigDir + "/logical-cluster-admin.kubeconfig",
		"--external-logical-cluster-admin-kubeconfig=" + kubeconfigDir + "/external-logical-cluster-admin.kubeconfig",
	}
}

// shardWiredFlags are set per shard; kcp.extraFlags may not set them.
var shardWiredFlags = []string{"--shard-name", "--root-shard-kubeconfig-file", "--cache-kubeconfig"}

// shardKubeconfigs are the server pods' kubeconfigs, file references into
// the mounted Secrets only: the keys stay in their Secrets.
func shardKubeconfigs(ns string, cache *shard.Shard) (map[string]string, error) {
	frontProxy := fmt.Sprintf("https://%s.%s.svc:443", FrontProxyService, ns)
	out := map[string]string{}
	for file, c := range map[string]struct{ server, identity, context string }{
		// kcp reads the context shard-base of the root shard kubeconfig.
		"root-shard.kubeconfig":                     {ShardURL(ns), "shard-admin", "shard-base"},
		"cache.kubeconfig":                          {CacheURL(ns, cache), "shard-admin", "cache"},
		"logical-cluster-admin.kubeconfig":          {ShardURL(ns), "logical-cluster-admin", "base"},
		"external-logical-cluster-admin.kubeconfig": {frontProxy, "external-logical-cluster-admin", "external"},
	} {
		k, err := kubeconfig.Config{Context: c.context, Cluster: "kcp", User: c.identity, Server: c.server,
			CAFile: "/etc/kcp/tls/server/ca.crt", CertFile: "/etc/kcp/tls/" + c.identity + "/tls.crt", KeyFile: "/etc/kcp/tls/" + c.identity + "/tls.key"}.Render()
		if err != nil {
			return nil, err
		}
		out[file] = k
	}
	return out, nil
}

// validateShards checks kcp.shards (children named by the stack's keys).
func (a Args) validateShards(fld *field.Path) field.ErrorList {
	errs := shard.ValidateNames(fld, shard.Names(a.Shards))
	for i, s := range a.Shards {
		errs = append(errs, a.validateServers(fld.Index(i), s)...)
	}
	return errs
}

// validateServers checks what a shard and the separate cache server both
// have: replicas spread as the root shard's, and resources.
func (a Args) validateServers(f *field.Path, s shard.Shard) field.ErrorList {
	errs := check.Range(f.Child("replicas"), s.Replicas, 1, 9, "")
	errs = append(errs, s.Resources.Validate(f.Child("resources"))...)
	return append(errs, a.Spread.Validate(f.Child("replicas"), s.Replicas)...)
}
