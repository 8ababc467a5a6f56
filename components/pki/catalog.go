package pki

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
	CertEtcdServer           = "etcd-server"
	CertEtcdPeer             = "etcd-peer"
	CertEtcdClientKCP        = "etcd-client-kcp"
	CertEtcdClientBackup     = "etcd-client-backup"
	SyncerClientPrefix       = "syncer-client"
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
	svc := func(name string) []string {
		return []string{name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}
	}
	kcpHost := kcp.PublicHost(d)

	serverSANs := append([]string{kcpHost}, svc(kcp.InternalService)...)
	serverSANs = append(serverSANs, svc(kcp.ServerService)...)
	serverSANs = append(serverSANs, "localhost")

	etcdSANs := append(svc(etcd.Name), "localhost")
	etcdPeers := etcdPeerNames(ns, a.EtcdReplicas)
	etcdSANs = append(etcdSANs, etcdPeers...)

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
		{Name: CertServiceAccount, CA: CAServiceAcct, CommonName: "kcp-service-account", Usages: []string{UsageDigitalSignature, UsageKeyEncipherment}},
		{Name: CertAdmin, CA: CAClient, CommonName: CertAdmin, Organizations: []string{"system:kcp:admin"}, Usages: clientUsages},
		{Name: CertMetricsViewer, CA: CAClient, CommonName: "kcp-metrics-viewer", Organizations: []string{MetricsViewersGroup}, Usages: clientUsages},
		{Name: CertEtcdServer, CA: CAEtcd, CommonName: "etcd-server", DNSNames: etcdSANs, IPAddresses: []string{"127.0.0.1"}, Usages: bothUsages},
		{Name: CertEtcdPeer, CA: CAEtcd, CommonName: "etcd-peer", DNSNames: append(etcdPeers, "localhost"), IPAddresses: []string{"127.0.0.1"}, Usages: bothUsages},
		{Name: CertEtcdClientKCP, CA: CAEtcd, CommonName: "kcp", Usages: clientUsages},
		{Name: CertEtcdClientBackup, CA: CAEtcd, CommonName: "etcd-backup", Usages: clientUsages},
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

// etcdPeerNames are the stable DNS names of StatefulSet members behind the
// headless Service etcd-headless.
func etcdPeerNames(ns string, replicas int) []string {
	var out []string
	c := etcd.Cluster{Name: etcd.Name, Namespace: ns}
	for _, m := range c.MemberNames(replicas) {
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
