package kcp

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// RootShard is the root shard's name in kcp (its Shard object).
const RootShard = "root"

// Shard is a kcp shard besides the root shard: its own Deployment, Service
// and etcd; it registers itself with the root shard, and the front-proxy
// routes the workspaces scheduled onto it.
type Shard struct {
	// Name is the shard's name in kcp; its objects are kcp-<name>.
	Name      string
	Replicas  int
	Resources workload.Resources
	// EtcdURL is the client endpoint of the shard's own etcd cluster, whose
	// pods EtcdSelector labels.
	EtcdURL      string
	EtcdSelector map[string]string
	// ServerSecret is the shard's serving certificate (its Service's names).
	ServerSecret string
}

// ShardComponent names a shard's Deployment, Service, PDB and pods.
func ShardComponent(shard string) string {
	if shard == RootShard {
		return ServerName
	}
	return ServerName + "-" + shard
}

// ShardPublicHost is where clients outside the cluster reach a shard other
// than the root shard directly: its virtual workspaces (the front-proxy
// routes /services/ to the root shard only), so agents on other clusters
// can serve the workspaces scheduled onto it.
func ShardPublicHost(domain, shard string) string { return shard + "." + PublicHost(domain) }

// shardURN names a shard's resources in the stack: the root shard's keep
// the names they had before there were shards.
func shardURN(shard string) string {
	if shard == RootShard {
		return "server"
	}
	return "shard-" + shard
}

// ShardService is the Service a shard is reached by (its --shard-base-url).
func ShardService(shard string) string {
	if shard == RootShard {
		return InternalService
	}
	return ShardComponent(shard)
}

// ShardBaseURL is a shard's in-cluster address.
func ShardBaseURL(ns, shard string) string {
	return fmt.Sprintf("https://%s.%s.svc:%d", ShardService(shard), ns, APIPort)
}

// ShardURL is the root shard's in-cluster address (its --shard-base-url).
func ShardURL(ns string) string { return ShardBaseURL(ns, RootShard) }

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
func shardFlags(s Shard) []string {
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
func shardKubeconfigs(ns string, separateCache bool) map[string]string {
	frontProxy := fmt.Sprintf("https://%s.%s.svc:443", FrontProxyService, ns)
	return map[string]string{
		// kcp reads the context shard-base of the root shard kubeconfig.
		"root-shard.kubeconfig":                     kubeconfig(ShardURL(ns), "shard-admin", "shard-base"),
		"cache.kubeconfig":                          kubeconfig(CacheURL(ns, separateCache), "shard-admin", "cache"),
		"logical-cluster-admin.kubeconfig":          kubeconfig(ShardURL(ns), "logical-cluster-admin", "base"),
		"external-logical-cluster-admin.kubeconfig": kubeconfig(frontProxy, "external-logical-cluster-admin", "external"),
	}
}

func kubeconfig(server, identity, context string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kcp
  cluster:
    server: %s
    certificate-authority: /etc/kcp/tls/server/ca.crt
users:
- name: %s
  user:
    client-certificate: /etc/kcp/tls/%s/tls.crt
    client-key: /etc/kcp/tls/%s/tls.key
contexts:
- name: %s
  context: {cluster: kcp, user: %s}
current-context: %s
`, server, identity, identity, identity, context, identity, context)
}

// MaxShardName keeps every derived name within Kubernetes' limits: the
// longest, the shard etcd's verify CronJob etcd-<name>-backup-verify, may
// have 52 characters.
const MaxShardName = 33

// reservedShardNames would make kcp-<name> or etcd-<name> an object the
// stack already has (kcp-front-proxy, kcp-server, kcp-internal, kcp-cache,
// etcd-headless, etcd-backup, …).
var reservedShardNames = map[string]bool{RootShard: true, "cache": true, "front-proxy": true, "front-proxy-config": true,
	"server": true, "internal": true, "audit-policy": true, "shard-kubeconfigs": true, "oidc-ca": true, "headless": true, "backup": true}

// validateShards checks kcp.shards (children named by the stack's keys).
func (a Args) validateShards(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, s := range a.Shards {
		f := fld.Index(i)
		switch {
		case reservedShardNames[s.Name]:
			errs = append(errs, field.Invalid(f.Child("name"), s.Name, "a name other than "+strings.Join(slices.Sorted(maps.Keys(reservedShardNames)), ", ")+
				" (root is implicit; the others would collide with kcp-tmc's own objects)"))
		case strings.HasSuffix(s.Name, "-headless") || strings.HasSuffix(s.Name, "-backup") || strings.HasSuffix(s.Name, "-lb"):
			errs = append(errs, field.Invalid(f.Child("name"), s.Name, "a name not ending in -headless, -backup or -lb (its objects would collide with another shard's etcd Service, backup objects or load balancer)"))
		case seen[s.Name]:
			errs = append(errs, field.Duplicate(f.Child("name"), s.Name))
		default:
			// etcd-<name>-backup-verify names a CronJob: at most 52 characters.
			errs = append(errs, check.DNSLabel(f.Child("name"), s.Name, "a DNS label such as shard-1")...)
			if len(s.Name) > MaxShardName {
				errs = append(errs, field.TooLong(f.Child("name"), s.Name, MaxShardName))
			}
		}
		seen[s.Name] = true
		errs = append(errs, a.validateServers(f, s.Replicas, s.Resources, s.EtcdURL, s.EtcdSelector, s.ServerSecret)...)
	}
	return errs
}

// validateServers checks what a shard and the separate cache server both
// have: replicas spread as the root shard's, resources, their own etcd and
// serving certificate.
func (a Args) validateServers(f *field.Path, replicas int, resources workload.Resources, etcdURL string, etcdSelector map[string]string, serverSecret string) field.ErrorList {
	errs := check.Range(f.Child("replicas"), replicas, 1, 9, "")
	errs = append(errs, resources.Validate(f.Child("resources"))...)
	errs = append(errs, a.Spread.Validate(f.Child("replicas"), replicas)...)
	if !strings.HasPrefix(etcdURL, "https://") {
		errs = append(errs, field.Invalid(f.Child("etcdURL"), etcdURL, "an https:// etcd client URL"))
	}
	if len(etcdSelector) == 0 {
		errs = append(errs, field.Required(f.Child("etcdSelector"), "the labels of its etcd pods"))
	}
	if serverSecret == "" {
		errs = append(errs, field.Required(f.Child("serverSecret"), "the pki component's Secret name"))
	}
	return errs
}
