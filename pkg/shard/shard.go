// Package shard owns what a kcp shard is and what it gives its name to: the
// stack resolves its shards once (the root shard, those of kcp.shards, and
// the separate cache server, which runs like one: its own Deployment and
// etcd), and every component derives a shard's objects from here — its
// Deployment and pods, Service, serving certificate, etcd cluster, backup
// jobs, public host and the name of its resources in the stack.
package shard

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// The shards every stack may run besides those of kcp.shards.
const (
	// Root is kcp's root shard (its Shard object's name): it holds the root
	// workspace and is always there.
	Root = "root"
	// Cache is the separate cache server (kcp.cache.mode separate).
	Cache = "cache"
)

// The root shard's object names; another shard's add -<name>.
const (
	// Server names the root shard's kcp Deployment, PDB and pods.
	Server = "kcp"
	// InternalService is the root shard's Service inside the cluster (its
	// --shard-base-url).
	InternalService = "kcp-internal"
	// Etcd names the root shard's etcd cluster.
	Etcd = "etcd"
)

// Shard is one kcp server Deployment with its own etcd cluster, with the
// defaults it takes from kcp.* and etcd.* applied.
type Shard struct {
	Name      string
	Replicas  int
	Resources workload.Resources
	// EtcdMembers, EtcdStorageSize and EtcdStorageClass size its etcd.
	EtcdMembers      int
	EtcdStorageSize  string
	EtcdStorageClass string
}

// IsRoot is whether s is the root shard.
func (s Shard) IsRoot() bool { return s.Name == Root }

// Deployment names the shard's Deployment, PDB and pods: kcp, kcp-<name>
// (kcp-cache for the cache server).
func (s Shard) Deployment() string {
	if s.IsRoot() {
		return Server
	}
	return Server + "-" + s.Name
}

// Service is the Service the shard is reached by (its --shard-base-url).
func (s Shard) Service() string {
	if s.IsRoot() {
		return InternalService
	}
	return s.Deployment()
}

// ServerCert is the Secret of the shard's serving certificate.
func (s Shard) ServerCert() string { return s.Deployment() + "-server" }

// EtcdCluster names the shard's etcd cluster: etcd, etcd-<name>.
func (s Shard) EtcdCluster() string { return EtcdCluster(s.Name) }

// EtcdCluster names the etcd cluster of the shard named shard.
func EtcdCluster(shard string) string {
	if shard == Root {
		return Etcd
	}
	return Etcd + "-" + shard
}

// BackupJob is the backup CronJob (and its pods' app name) of the shard's
// etcd; VerifyJob the CronJob that restores its newest snapshot.
func (s Shard) BackupJob() string { return BackupJob(s.EtcdCluster()) }

// VerifyJob: see BackupJob.
func (s Shard) VerifyJob() string { return VerifyJob(s.EtcdCluster()) }

// BackupJob is the backup CronJob of an etcd cluster.
func BackupJob(etcdCluster string) string { return etcdCluster + "-backup" }

// VerifyJob is the verification CronJob of an etcd cluster.
func VerifyJob(etcdCluster string) string { return BackupJob(etcdCluster) + "-verify" }

// PublicHost is where clients outside the cluster reach a shard besides
// the root directly, below the front-proxy's host: its virtual workspaces
// (the front-proxy routes /services/ to the root shard only), so agents on
// other clusters can serve the workspaces scheduled onto it.
func (s Shard) PublicHost(frontProxyHost string) string { return s.Name + "." + frontProxyHost }

// URN names the shard's kcp resources in the stack: the root shard's and
// the cache server's keep the names they had before there were shards.
func (s Shard) URN() string {
	switch s.Name {
	case Root:
		return "server"
	case Cache:
		return Cache
	}
	return "shard-" + s.Name
}

// Name limits, from the names themselves: the longest name a shard gives
// its name to is its etcd's verify CronJob, and a CronJob's name may have 52
// characters (its Jobs' names add 11).
const (
	maxCronJobName = 52
	// MaxName is the longest shard name whose every object name fits.
	MaxName = maxCronJobName - len("etcd--backup-verify")
)

// reserved are the names that would make kcp-<name> or etcd-<name> an
// object the stack already has (kcp-front-proxy, kcp-server, kcp-internal,
// kcp-cache, etcd-headless, etcd-backup, …); root and cache are implicit.
var reserved = []string{Root, Cache, "front-proxy", "front-proxy-config", "server", "internal", "audit-policy",
	"shard-kubeconfigs", "oidc-ca", "headless", "backup"}

// collidingSuffixes would make a shard's objects another shard's (etcd-a
// and a-headless's etcd-a-headless) or its backup jobs' or load balancer's.
var collidingSuffixes = []string{"-headless", "-backup", "-lb"}

// ValidateNames checks the names of the shards besides the root (fld is the
// list, e.g. kcp.shards): DNS labels within MaxName, unique, none reserved.
func ValidateNames(fld *field.Path, names []string) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, name := range names {
		f := fld.Index(i).Child("name")
		switch {
		case slices.Contains(reserved, name):
			errs = append(errs, field.Invalid(f, name, "a name other than "+strings.Join(slices.Sorted(slices.Values(reserved)), ", ")+
				" (root is implicit; the others would collide with kcp-tmc's own objects)"))
		case slices.ContainsFunc(collidingSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }):
			last := len(collidingSuffixes) - 1
			errs = append(errs, field.Invalid(f, name, "a name not ending in "+strings.Join(collidingSuffixes[:last], ", ")+" or "+collidingSuffixes[last]+
				" (its objects would collide with another shard's etcd Service, backup objects or load balancer)"))
		case seen[name]:
			errs = append(errs, field.Duplicate(f, name))
		default:
			errs = append(errs, check.DNSLabel(f, name, "a DNS label such as shard-1")...)
			if len(name) > MaxName {
				errs = append(errs, field.TooLong(f, name, MaxName))
			}
		}
		seen[name] = true
	}
	return errs
}

// Names are the shards' names.
func Names(shards []Shard) []string {
	out := make([]string, len(shards))
	for i, s := range shards {
		out[i] = s.Name
	}
	return out
}

// Set is a stack's shards, resolved once from its config.
type Set struct {
	Root Shard
	// Shards are the shards besides the root (kcp.shards).
	Shards []Shard
	// Cache is the separate cache server; nil when the root shard serves
	// the cache (kcp.cache.mode embedded).
	Cache *Shard
}

// EtcdClusters are every etcd cluster that holds a shard's data and is
// backed up: the root shard's, then each other shard's. The cache server's
// is not among them: the shards write it again.
func (s Set) EtcdClusters() []Shard { return append([]Shard{s.Root}, s.Shards...) }
