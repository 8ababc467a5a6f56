package tls

import (
	"sort"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
)

// Key usages, spelled as cert-manager spells them; pulumi-tls names are
// derived in tlsUsage.
const (
	UsageDigitalSignature = "digital signature"
	UsageKeyEncipherment  = "key encipherment"
	UsageCertSign         = "cert sign"
	UsageCRLSign          = "crl sign"
	UsageServerAuth       = "server auth"
	UsageClientAuth       = "client auth"
)

// The CAs. Trust is split the way the kcp helm chart splits it: a client
// certificate from one CA is worthless to a server trusting another.
const (
	CAEtcd          = "etcd-ca"          // etcd serving, peer and client certs
	CAServer        = "kcp-server-ca"    // kcp and front-proxy serving certs (clients trust it)
	CAClient        = "kcp-client-ca"    // kcp client identities: admin, syncers, metrics viewer
	CARequestHeader = "requestheader-ca" // the front-proxy's identity towards kcp shards
	CAServiceAcct   = "service-account-ca"
)

// Certificate names (also the names of their kubernetes.io/tls Secrets).
const (
	CertKCPServer  = "kcp-server"
	CertFrontProxy = "kcp-front-proxy"
	// CertFrontProxyPublic is the ACME certificate for kcp.<domain> (tls.acme).
	CertFrontProxyPublic = "kcp-front-proxy-public"
	CertFrontProxyClient = "kcp-front-proxy-client"
	// CertFrontProxyKubeconfig is the front-proxy's own identity towards kcp
	// (its --root-kubeconfig/--shards-kubeconfig: shard and workspace
	// discovery). kcp's --client-ca-file must trust it, so the client CA
	// signs it; the requestheader certificate above only vouches for the
	// users it forwards.
	CertFrontProxyKubeconfig = "kcp-front-proxy-kubeconfig"
	CertServiceAccount       = "kcp-service-account"
	CertAdmin                = "kcp-admin"
	CertMetricsViewer        = "kcp-metrics-viewer"
	// The shards' identities towards each other (the kcp component's
	// Certs.ShardAdmin and the logical-cluster admins), in the groups kcp
	// v0.32.3 authorizes them by.
	CertShardAdmin                  = "kcp-shard-admin"
	CertLogicalClusterAdmin         = "kcp-logical-cluster-admin"
	CertExternalLogicalClusterAdmin = "kcp-external-logical-cluster-admin"
	CertEtcdServer                  = "etcd-server"
	CertEtcdPeer                    = "etcd-peer"
	CertEtcdClientKCP               = "etcd-client-kcp"
	CertEtcdClientBackup            = "etcd-client-backup"
	SyncerClientPrefix              = "syncer-client"
)

// MetricsViewersGroup is the metrics-viewer certificate's organization: the
// group kcp lets read /metrics.
const MetricsViewersGroup = "kcp-tmc:metrics-viewers"

// Spec is one certificate: who it is, what it may be used for, who signs it.
// Both modes build exactly these, so the catalog is the one definition.
type Spec struct {
	Name          string // also the Secret name
	CA            string // signing CA's name; "" for a (self-signed) CA
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPAddresses   []string
	Usages        []string
	IsCA          bool
	// KeepKey keeps the private key across renewals (as a CA does): kcp's
	// service-account key signs tokens that must outlive a renewal.
	KeepKey bool
}

// CAs returns the CA specs in a stable order.
func CAs() []Spec {
	names := []string{CAEtcd, CAServer, CAClient, CARequestHeader, CAServiceAcct}
	out := make([]Spec, 0, len(names))
	for _, n := range names {
		out = append(out, Spec{Name: n, CommonName: "kcp-tmc " + n, Organizations: []string{"kcp-tmc"},
			Usages: []string{UsageCertSign, UsageCRLSign, UsageDigitalSignature}, IsCA: true})
	}
	return out
}

var (
	serverUsages = []string{UsageDigitalSignature, UsageKeyEncipherment, UsageServerAuth}
	clientUsages = []string{UsageDigitalSignature, UsageKeyEncipherment, UsageClientAuth}
	bothUsages   = []string{UsageDigitalSignature, UsageKeyEncipherment, UsageServerAuth, UsageClientAuth}
)

// Leaves returns every leaf certificate for args (defaults applied).
func Leaves(a Args) []Spec {
	ns, d := a.Namespace, a.Domain
	svc := func(name string) []string { return serviceNames(name, ns) }
	kcpHost := kcp.PublicHost(d)

	serverSANs := append([]string{kcpHost}, svc(kcp.InternalService)...)
	serverSANs = append(serverSANs, svc(kcp.ServerService)...)
	serverSANs = append(serverSANs, "localhost")

	leaves := []Spec{
		{Name: CertKCPServer, CA: CAServer, CommonName: kcpHost, DNSNames: serverSANs, IPAddresses: []string{"127.0.0.1"}, Usages: serverUsages},
		// localhost: `kubectl port-forward svc/kcp-front-proxy 8443:443` reaches kcp
		// without an ingress (dev), as it does for the kcp server.
		{Name: CertFrontProxy, CA: CAServer, CommonName: kcpHost, DNSNames: append(append([]string{kcpHost}, svc(kcp.FrontProxyService)...), "localhost"),
			IPAddresses: []string{"127.0.0.1"}, Usages: serverUsages},
		{Name: CertFrontProxyClient, CA: CARequestHeader, CommonName: "kcp-front-proxy", Usages: clientUsages},
		// As the kcp helm chart and kcp-operator do: the front-proxy reads every
		// shard's index of workspaces and logical clusters.
		{Name: CertFrontProxyKubeconfig, CA: CAClient, CommonName: "kcp-front-proxy", Organizations: []string{"system:masters"}, Usages: clientUsages},
		// kcp verifies service-account tokens (agents' among them) with this
		// key only: a new key on renewal would invalidate every token issued.
		{Name: CertServiceAccount, CA: CAServiceAcct, CommonName: "kcp-service-account", Usages: []string{UsageDigitalSignature, UsageKeyEncipherment}, KeepKey: true},
		{Name: CertAdmin, CA: CAClient, CommonName: CertAdmin, Organizations: []string{"system:kcp:admin"}, Usages: clientUsages},
		{Name: CertMetricsViewer, CA: CAClient, CommonName: "kcp-metrics-viewer", Organizations: []string{MetricsViewersGroup}, Usages: clientUsages},
		{Name: CertShardAdmin, CA: CAClient, CommonName: "kcp-shard-admin", Organizations: []string{"system:masters"}, Usages: clientUsages},
		{Name: CertLogicalClusterAdmin, CA: CAClient, CommonName: "kcp-logical-cluster-admin", Organizations: []string{"system:kcp:logical-cluster-admin"}, Usages: clientUsages},
		{Name: CertExternalLogicalClusterAdmin, CA: CAClient, CommonName: "kcp-external-logical-cluster-admin",
			Organizations: []string{"system:kcp:external-logical-cluster-admin"}, Usages: clientUsages},
	}
	leaves = append(leaves, etcdCerts(etcd.Cluster{Name: etcd.Name, Namespace: ns})...)
	leaves = append(leaves,
		Spec{Name: CertEtcdClientKCP, CA: CAEtcd, CommonName: "kcp", Usages: clientUsages},
		Spec{Name: CertEtcdClientBackup, CA: CAEtcd, CommonName: "etcd-backup", Usages: clientUsages})
	for _, sh := range a.Shards {
		name := sh.Service()
		// Its public name too: agents reach its virtual workspaces there.
		leaves = append(leaves, Spec{Name: sh.ServerCert(), CA: CAServer, CommonName: name,
			DNSNames: append(append([]string{sh.PublicHost(kcp.PublicHost(d))}, svc(name)...), "localhost"), IPAddresses: []string{"127.0.0.1"}, Usages: serverUsages})
		leaves = append(leaves, etcdCerts(etcd.ClusterOf(sh, ns))...)
	}
	if c := a.Cache; c != nil {
		leaves = append(leaves, Spec{Name: c.ServerCert(), CA: CAServer, CommonName: c.Service(),
			DNSNames: append(svc(c.Service()), "localhost"), IPAddresses: []string{"127.0.0.1"}, Usages: serverUsages})
		leaves = append(leaves, etcdCerts(etcd.ClusterOf(*c, ns))...)
	}
	for _, target := range syncTargets(a) {
		name, cn := SyncerClientPrefix, SyncerClientPrefix
		if target != "" {
			name, cn = SyncerClientPrefix+"-"+target, SyncerClientPrefix+"-"+target
		}
		leaves = append(leaves, Spec{Name: name, CA: CAClient, CommonName: cn, Organizations: []string{"kcp-tmc:syncers"}, Usages: clientUsages})
	}
	return leaves
}

// syncTargets is "" (one shared syncer-client) when no targets are named.
func syncTargets(a Args) []string {
	if len(a.SyncTargets) == 0 {
		return []string{""}
	}
	t := append([]string(nil), a.SyncTargets...)
	sort.Strings(t)
	return t
}

// serviceNames are the names a Service is reached by in-cluster.
func serviceNames(name, ns string) []string {
	return []string{name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}
}

// etcdCerts are the server and peer certificates of one etcd cluster.
func etcdCerts(c etcd.Cluster) []Spec {
	svc := serviceNames(c.Name, c.Namespace)
	peers := etcdPeerNames(c)
	return []Spec{
		{Name: c.ServerSecret(), CA: CAEtcd, CommonName: c.ServerSecret(), DNSNames: append(append(svc, "localhost"), peers...), IPAddresses: []string{"127.0.0.1"}, Usages: bothUsages},
		{Name: c.PeerSecret(), CA: CAEtcd, CommonName: c.PeerSecret(), DNSNames: append(peers, "localhost"), IPAddresses: []string{"127.0.0.1"}, Usages: bothUsages},
	}
}

// etcdPeerNames are the stable DNS names of every member a cluster can
// have (etcd.MaxReplicas) behind its headless Service: a change of the
// member count reissues no certificate, and a new member's name is in the
// certificate its peers already present.
func etcdPeerNames(c etcd.Cluster) []string {
	var out []string
	for _, m := range c.MemberNames(etcd.MaxReplicas) {
		base := c.MemberHost(m)
		out = append(out, base, base+".cluster.local")
	}
	return out
}

// SyncerSecretName is the Secret holding a sync target's client certificate.
func SyncerSecretName(target string) string {
	if target == "" {
		return SyncerClientPrefix
	}
	return SyncerClientPrefix + "-" + target
}
