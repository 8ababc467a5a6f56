package etcd

// Cluster names one etcd cluster's objects: every name a client, a
// certificate or a backup job derives comes from here.

import (
	_ "embed"
	"fmt"

	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// Cluster names one etcd cluster: its StatefulSet, Services, members and
// the DNS names clients and certificates use. Every derived name comes from
// here, so a second cluster (another shard's) never collides with the first.
type Cluster struct{ Name, Namespace string }

// HeadlessName is the headless Service that gives members stable names.
func (c Cluster) HeadlessName() string { return c.Name + "-headless" }

// MemberNames are the StatefulSet's pod names.
func (c Cluster) MemberNames(replicas int) []string {
	out := make([]string, replicas)
	for i := range replicas {
		out[i] = fmt.Sprintf("%s-%d", c.Name, i)
	}
	return out
}

// MemberHost is a member's stable DNS name behind the headless Service.
func (c Cluster) MemberHost(member string) string {
	return fmt.Sprintf("%s.%s.%s.svc", member, c.HeadlessName(), c.Namespace)
}

// MemberURL is https://MemberHost:port.
func (c Cluster) MemberURL(member string, port int) string {
	return fmt.Sprintf("https://%s:%d", c.MemberHost(member), port)
}

// ClientURL is the in-cluster client address (the client Service; TLS).
func (c Cluster) ClientURL() string {
	return fmt.Sprintf("https://%s.%s.svc:%d", c.Name, c.Namespace, ClientPort)
}

// ClusterLabel on the scraped Service names the etcd cluster.
const ClusterLabel = "kcp-tmc.io/etcd-cluster"

// ClusterOf is the etcd cluster of a kcp shard.
func ClusterOf(s shard.Shard, namespace string) Cluster {
	return Cluster{Name: s.EtcdCluster(), Namespace: namespace}
}

// Selector labels the cluster's pods.
func (c Cluster) Selector() map[string]string { return workload.Labels(c.Name) }

// MemberURLs are the members' client URLs, for clients that dial members
// directly.
func (c Cluster) MemberURLs(replicas int) []string { return c.memberURLs(replicas, ClientPort) }

// PeerURLs are the members' peer URLs, as the member list shows them.
func (c Cluster) PeerURLs(replicas int) []string { return c.memberURLs(replicas, PeerPort) }

func (c Cluster) memberURLs(replicas, port int) []string {
	out := make([]string, 0, replicas)
	for _, m := range c.MemberNames(replicas) {
		out = append(out, c.MemberURL(m, port))
	}
	return out
}

// ServerSecret and PeerSecret name the cluster's certificates (the root's:
// etcd-server, etcd-peer).
func (c Cluster) ServerSecret() string { return c.Name + "-server" }

// PeerSecret: see ServerSecret.
func (c Cluster) PeerSecret() string { return c.Name + "-peer" }

// Cluster is the etcd cluster a describes.
func (a Args) Cluster() Cluster { return Cluster{Name: a.Name, Namespace: a.Namespace} }
