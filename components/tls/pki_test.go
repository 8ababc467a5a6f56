package tls

import (
	cryptotls "crypto/tls"
	"crypto/x509"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

const (
	secretType      = "kubernetes:core/v1:Secret"
	certManagerType = "kubernetes:cert-manager.io/v1:"
	testNS, testDom = "kcp", "example.com"
)

func testArgs(mode string) Args {
	return Args{Mode: mode, Namespace: testNS, Domain: testDom, SyncTargets: []string{"us-east", "eu-west"}}
}

func run(t *testing.T, args Args) *mocktest.Recorder {
	t.Helper()
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := NewPKI(ctx, "pki", args)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// bundle is what a consumer finds in a certificate's Secret.
type bundle struct {
	cert    *x509.Certificate
	certPEM string
	keyPEM  string
	caPEM   string
}

// selfManagedBundles runs self-managed mode (with pulumi-tls emulated by the
// mocks) and returns every Secret's contents by name.
func selfManagedBundles(t *testing.T, args Args) map[string]bundle {
	t.Helper()
	rec := run(t, args)
	out := map[string]bundle{}
	for _, s := range rec.OfType(secretType) {
		in := s.Input()
		data := in["stringData"].(map[string]any)
		name := in["metadata"].(map[string]any)["name"].(string)
		b := bundle{certPEM: fmt.Sprint(data["tls.crt"]), caPEM: fmt.Sprint(data["ca.crt"])}
		if k, ok := data["tls.key"].(string); ok {
			b.keyPEM = k
			sd := s.Inputs["stringData"]
			if !sd.IsSecret() && !sd.ObjectValue()["tls.key"].IsSecret() {
				t.Errorf("Secret %s: tls.key is not a Pulumi secret", name)
			}
		}
		cert, err := mocktest.ParseCertificate(b.certPEM)
		if err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		b.cert = cert
		out[name] = b
	}
	return out
}

// certManagerBundles runs cert-manager mode and mints, from the recorded
// Certificate and Issuer objects, the certificates cert-manager would issue:
// each Certificate's spec becomes the same key/CSR/signing requests the
// self-managed mode makes, signed by the CA its issuerRef resolves to.
func certManagerBundles(t *testing.T, args Args) map[string]bundle {
	t.Helper()
	rec := run(t, args)
	issuers := map[string]map[string]any{} // Issuer name → spec
	var certs []map[string]any
	for _, r := range certManagerObjects(rec) {
		in := r.Input()
		name := in["metadata"].(map[string]any)["name"].(string)
		switch in["kind"] {
		case "Issuer":
			issuers[name] = in["spec"].(map[string]any)
		case "Certificate":
			certs = append(certs, in["spec"].(map[string]any))
		}
	}
	out := map[string]bundle{}
	// CAs (issued by the self-signed bootstrap issuer) first, then leaves.
	slices.SortStableFunc(certs, func(a, b map[string]any) int {
		return boolInt(b["isCA"] == true) - boolInt(a["isCA"] == true)
	})
	for _, spec := range certs {
		issuerName := spec["issuerRef"].(map[string]any)["name"].(string)
		issuer, ok := issuers[issuerName]
		if !ok {
			t.Fatalf("Certificate %v: issuer %q not defined", spec["secretName"], issuerName)
		}
		out[spec["secretName"].(string)] = mintFromCertManager(t, spec, issuer, out)
	}
	return out
}

func certManagerObjects(rec *mocktest.Recorder) []mocktest.Resource {
	var out []mocktest.Resource
	for _, r := range rec.All() {
		if strings.HasPrefix(r.Type, certManagerType) {
			out = append(out, r)
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mintFromCertManager(t *testing.T, spec, issuer map[string]any, minted map[string]bundle) bundle {
	t.Helper()
	emulate := func(typ string, in map[string]any) map[string]string {
		out, err := mocktest.EmulateTLS(typ, in)
		if err != nil {
			t.Fatalf("minting %v: %v", spec["secretName"], err)
		}
		return out
	}
	d, err := time.ParseDuration(spec["duration"].(string))
	if err != nil {
		t.Fatal(err)
	}
	uses := []any{}
	tlsNames := map[string]string{UsageDigitalSignature: "digital_signature", UsageKeyEncipherment: "key_encipherment",
		UsageCertSign: "cert_signing", UsageCRLSign: "crl_signing", UsageServerAuth: "server_auth", UsageClientAuth: "client_auth"}
	for _, u := range spec["usages"].([]any) {
		uses = append(uses, tlsNames[u.(string)])
	}
	subject := map[string]any{"commonName": spec["commonName"]}
	if s, ok := spec["subject"].(map[string]any); ok {
		subject["organization"] = s["organizations"].([]any)[0]
	}
	key := emulate("tls:index/privateKey:PrivateKey", map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"})["privateKeyPem"]
	common := map[string]any{"allowedUses": uses, "validityPeriodHours": d.Hours(), "isCaCertificate": spec["isCA"] == true}
	var certPEM, caPEM string
	if _, selfSigned := issuer["selfSigned"]; selfSigned {
		in := map[string]any{"privateKeyPem": key, "subject": subject, "dnsNames": spec["dnsNames"], "ipAddresses": spec["ipAddresses"]}
		for k, v := range common {
			in[k] = v
		}
		certPEM = emulate("tls:index/selfSignedCert:SelfSignedCert", in)["certPem"]
		caPEM = certPEM // cert-manager's self-signed ca.crt is the certificate itself
	} else {
		ca := minted[issuer["ca"].(map[string]any)["secretName"].(string)]
		csr := emulate("tls:index/certRequest:CertRequest", map[string]any{"privateKeyPem": key, "subject": subject,
			"dnsNames": spec["dnsNames"], "ipAddresses": spec["ipAddresses"]})["certRequestPem"]
		in := map[string]any{"certRequestPem": csr, "caCertPem": ca.certPEM, "caPrivateKeyPem": ca.keyPEM}
		for k, v := range common {
			in[k] = v
		}
		certPEM, caPEM = emulate("tls:index/locallySignedCert:LocallySignedCert", in)["certPem"], ca.certPEM
	}
	cert, err := mocktest.ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{cert: cert, certPEM: certPEM, keyPEM: key, caPEM: caPEM}
}

var modes = []struct {
	name    string
	bundles func(*testing.T, Args) map[string]bundle
}{
	{ModeSelfManaged, selfManagedBundles},
	{ModeCertManager, certManagerBundles},
}

// TestEveryLeafVerifiesAgainstItsCA checks, in both modes, each catalog
// certificate's CN, SANs, key usages and chain: it verifies against its own
// CA for every SAN and its intended usage, and fails against any other CA or
// for the usage it is not meant for.
func TestEveryLeafVerifiesAgainstItsCA(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			args := testArgs(mode.name).WithDefaults()
			got := mode.bundles(t, args)
			for _, spec := range Leaves(args) {
				t.Run(spec.Name, func(t *testing.T) {
					b, ok := got[spec.Name]
					if !ok {
						t.Fatalf("no Secret %s", spec.Name)
					}
					assertLeaf(t, spec, b, got, args)
				})
			}
		})
	}
}

func assertLeaf(t *testing.T, spec Spec, b bundle, all map[string]bundle, args Args) {
	t.Helper()
	c := b.cert
	if c.Subject.CommonName != spec.CommonName {
		t.Errorf("CN = %q, want %q", c.Subject.CommonName, spec.CommonName)
	}
	if !reflect.DeepEqual(c.Subject.Organization, spec.Organizations) && len(spec.Organizations)+len(c.Subject.Organization) > 0 {
		t.Errorf("O = %v, want %v", c.Subject.Organization, spec.Organizations)
	}
	if !reflect.DeepEqual(c.DNSNames, spec.DNSNames) {
		t.Errorf("DNS SANs = %v, want %v", c.DNSNames, spec.DNSNames)
	}
	if c.IsCA {
		t.Error("a leaf certificate is a CA")
	}
	if want := args.LeafDuration; c.NotAfter.Sub(c.NotBefore).Round(time.Hour) != want {
		t.Errorf("validity = %s, want %s", c.NotAfter.Sub(c.NotBefore), want)
	}
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 || c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Errorf("key usage %b lacks digital signature or key encipherment", c.KeyUsage)
	}
	server, client := slices.Contains(spec.Usages, UsageServerAuth), slices.Contains(spec.Usages, UsageClientAuth)
	if slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) != server || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) != client {
		t.Errorf("extended key usage %v, want server=%v client=%v", c.ExtKeyUsage, server, client)
	}
	if _, err := cryptotls.X509KeyPair([]byte(b.certPEM), []byte(b.keyPEM)); err != nil {
		t.Errorf("tls.crt and tls.key do not match: %v", err)
	}
	own := pool(t, b.caPEM)
	if ca := all[spec.CA]; ca.caPEM != "" && ca.caPEM != b.caPEM {
		t.Errorf("ca.crt is not the %s certificate", spec.CA)
	}
	for _, usage := range []struct {
		want bool
		eku  x509.ExtKeyUsage
	}{{server, x509.ExtKeyUsageServerAuth}, {client, x509.ExtKeyUsageClientAuth}} {
		_, err := c.Verify(x509.VerifyOptions{Roots: own, KeyUsages: []x509.ExtKeyUsage{usage.eku}})
		if usage.want && err != nil {
			t.Errorf("does not verify against %s for %v: %v", spec.CA, usage.eku, err)
		}
		// A certificate without extended key usages is valid for any (RFC 5280).
		if !usage.want && err == nil && len(c.ExtKeyUsage) > 0 {
			t.Errorf("verifies for %v, which it must not be usable for", usage.eku)
		}
	}
	for _, name := range append(append([]string{}, spec.DNSNames...), spec.IPAddresses...) {
		if _, err := c.Verify(x509.VerifyOptions{Roots: own, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("SAN %s does not verify: %v", name, err)
		}
	}
	for _, other := range CAs() {
		if other.Name == spec.CA {
			continue
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(t, all[other.Name].caPEM), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			t.Errorf("verifies against the wrong CA %s", other.Name)
		}
	}
}

func pool(t *testing.T, pemData string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM([]byte(pemData)) {
		t.Fatalf("no CA certificate in %q", pemData)
	}
	return p
}

// TestEtcdCertificatesIgnoreMemberCount: an etcd cluster's server and
// peer certificates name every member it can have, so changing
// etcd.replicas (or a shard's etcd members) reissues no certificate, and a
// new member's name is already in the certificate its peers present.
func TestEtcdCertificatesIgnoreMemberCount(t *testing.T) {
	leaves := func(members int) map[string]Spec {
		a := testArgs(ModeCertManager)
		a.Shards = []shard.Shard{{Name: "shard-1", EtcdMembers: members}}
		out := map[string]Spec{}
		for _, s := range Leaves(a.WithDefaults()) {
			if strings.HasPrefix(s.Name, "etcd-") {
				out[s.Name] = s
			}
		}
		return out
	}
	one, seven := leaves(1), leaves(7)
	if len(one) == 0 || !reflect.DeepEqual(one, seven) {
		t.Errorf("etcd certificates differ between 1 and 7 members:\n%v\n%v", one, seven)
	}
	for _, name := range []string{CertEtcdPeer, "etcd-shard-1-peer"} {
		cluster := strings.TrimSuffix(name, "-peer")
		if last := cluster + "-6." + cluster + "-headless.kcp.svc"; !slices.Contains(one[name].DNSNames, last) {
			t.Errorf("%s does not name the seventh member %s: %v", name, last, one[name].DNSNames)
		}
	}
}

func TestCatalog(t *testing.T) {
	args := testArgs(ModeCertManager)
	args.Shards = []shard.Shard{{Name: "shard-1", EtcdMembers: 3}}
	args.Cache = &shard.Shard{Name: shard.Cache, EtcdMembers: 3}
	args = args.WithDefaults()
	byName := map[string]Spec{}
	for _, s := range Leaves(args) {
		byName[s.Name] = s
	}
	tests := []struct {
		cert, ca, cn string
		sans         []string // must be present
		usages       []string
	}{
		{CertKCPServer, CAServer, "kcp.example.com", []string{"kcp.example.com", "kcp-internal.kcp.svc.cluster.local", "kcp-server.kcp.svc"}, serverUsages},
		{CertFrontProxy, CAServer, "kcp.example.com", []string{"kcp.example.com", "kcp-front-proxy.kcp.svc.cluster.local", "localhost"}, serverUsages},
		{CertEtcdServer, CAEtcd, "etcd-server", []string{"etcd.kcp.svc.cluster.local", "etcd-0.etcd-headless.kcp.svc", "etcd-2.etcd-headless.kcp.svc.cluster.local"}, bothUsages},
		{CertEtcdPeer, CAEtcd, "etcd-peer", []string{"etcd-1.etcd-headless.kcp.svc.cluster.local"}, bothUsages},
		{CertEtcdClientKCP, CAEtcd, "kcp", nil, clientUsages},
		{CertEtcdClientBackup, CAEtcd, "etcd-backup", nil, clientUsages},
		{CertFrontProxyClient, CARequestHeader, "kcp-front-proxy", nil, clientUsages},
		{CertFrontProxyKubeconfig, CAClient, "kcp-front-proxy", nil, clientUsages},
		{CertAdmin, CAClient, "kcp-admin", nil, clientUsages},
		{CertMetricsViewer, CAClient, "kcp-metrics-viewer", nil, clientUsages},
		{"syncer-client-us-east", CAClient, "syncer-client-us-east", nil, clientUsages},
		{"syncer-client-eu-west", CAClient, "syncer-client-eu-west", nil, clientUsages},
		{CertServiceAccount, CAServiceAcct, "kcp-service-account", nil, []string{UsageDigitalSignature, UsageKeyEncipherment}},
		{CertShardAdmin, CAClient, "kcp-shard-admin", nil, clientUsages},
		{CertLogicalClusterAdmin, CAClient, "kcp-logical-cluster-admin", nil, clientUsages},
		{CertExternalLogicalClusterAdmin, CAClient, "kcp-external-logical-cluster-admin", nil, clientUsages},
		// A shard's own serving certificate and etcd cluster: adding a shard
		// adds certificates and changes none.
		{"kcp-shard-1-server", CAServer, "kcp-shard-1", []string{"shard-1.kcp.example.com", "kcp-shard-1.kcp.svc", "kcp-shard-1.kcp.svc.cluster.local", "localhost"}, serverUsages},
		{"etcd-shard-1-server", CAEtcd, "etcd-shard-1-server", []string{"etcd-shard-1.kcp.svc", "etcd-shard-1-2.etcd-shard-1-headless.kcp.svc"}, bothUsages},
		{"etcd-shard-1-peer", CAEtcd, "etcd-shard-1-peer", []string{"etcd-shard-1-0.etcd-shard-1-headless.kcp.svc.cluster.local"}, bothUsages},
		// The separate cache server and its etcd.
		{"kcp-cache-server", CAServer, "kcp-cache", []string{"kcp-cache.kcp.svc", "localhost"}, serverUsages},
		{"etcd-cache-server", CAEtcd, "etcd-cache-server", []string{"etcd-cache.kcp.svc", "etcd-cache-0.etcd-cache-headless.kcp.svc"}, bothUsages},
		{"etcd-cache-peer", CAEtcd, "etcd-cache-peer", []string{"etcd-cache-2.etcd-cache-headless.kcp.svc"}, bothUsages},
	}
	// The groups kcp v0.32.3 authorizes the shards' identities by.
	for cert, org := range map[string]string{CertShardAdmin: "system:masters", CertLogicalClusterAdmin: "system:kcp:logical-cluster-admin",
		CertExternalLogicalClusterAdmin: "system:kcp:external-logical-cluster-admin", CertAdmin: "system:kcp:admin"} {
		if got := byName[cert].Organizations; !reflect.DeepEqual(got, []string{org}) {
			t.Errorf("%s organizations = %v, want %s", cert, got, org)
		}
	}
	if slices.Contains(byName[CertEtcdServer].DNSNames, "etcd-shard-1.kcp.svc") {
		t.Error("the root etcd's certificate names a shard's etcd: adding a shard would reissue it")
	}
	for _, tt := range tests {
		t.Run(tt.cert, func(t *testing.T) {
			s, ok := byName[tt.cert]
			if !ok {
				t.Fatalf("catalog has no %s", tt.cert)
			}
			if s.CA != tt.ca || s.CommonName != tt.cn || !reflect.DeepEqual(s.Usages, tt.usages) {
				t.Errorf("got CA %s CN %s usages %v", s.CA, s.CommonName, s.Usages)
			}
			for _, san := range tt.sans {
				if !slices.Contains(s.DNSNames, san) {
					t.Errorf("SAN %s missing from %v", san, s.DNSNames)
				}
			}
		})
	}
	if len(byName) != len(tests) {
		t.Errorf("catalog has %d leaves, test knows %d: cover the new ones", len(byName), len(tests))
	}
	if _, ok := byName[SyncerClientPrefix]; ok {
		t.Error("a shared syncer-client exists although every target has its own")
	}
}

func TestCertManagerObjects(t *testing.T) {
	args := testArgs(ModeCertManager)
	args.ACME = &ACME{Email: "ops@example.com"}
	rec := run(t, args)
	certs, issuers := map[string]map[string]any{}, map[string]map[string]any{}
	for _, r := range certManagerObjects(rec) {
		in := r.Input()
		name := in["metadata"].(map[string]any)["name"].(string)
		switch in["kind"] {
		case "Certificate":
			certs[name] = in["spec"].(map[string]any)
		case "Issuer", "ClusterIssuer":
			issuers[name] = in["spec"].(map[string]any)
		}
		if r.ParentName() != "pki" {
			t.Errorf("%s %s not parented to the component", in["kind"], name)
		}
	}
	for _, ca := range CAs() {
		c := certs[ca.Name]
		if c["isCA"] != true || c["issuerRef"].(map[string]any)["name"] != "kcp-tmc-bootstrap" || c["duration"] != "87600h0m0s" {
			t.Errorf("CA certificate %s = %v", ca.Name, c)
		}
		if issuers[ca.Name]["ca"].(map[string]any)["secretName"] != ca.Name {
			t.Errorf("CA issuer %s does not sign with its CA secret", ca.Name)
		}
		if pk := c["privateKey"].(map[string]any); pk["rotationPolicy"] != "Never" {
			t.Errorf("CA %s gets a new key on renewal: every leaf it signed would stop verifying", ca.Name)
		}
	}
	for _, leaf := range Leaves(args.WithDefaults()) {
		c := certs[leaf.Name]
		if c["duration"] != "8760h0m0s" || c["renewBefore"] != "360h0m0s" || c["issuerRef"].(map[string]any)["name"] != leaf.CA {
			t.Errorf("leaf %s: duration %v renewBefore %v issuer %v", leaf.Name, c["duration"], c["renewBefore"], c["issuerRef"])
		}
		// Only the service-account key outlives a renewal: kcp's tokens
		// (the agents') are signed with it and verified against it alone.
		want := map[bool]string{false: "Always", true: "Never"}[leaf.Name == CertServiceAccount]
		if pk := c["privateKey"].(map[string]any); pk["rotationPolicy"] != want {
			t.Errorf("leaf %s: rotationPolicy %v, want %s", leaf.Name, pk["rotationPolicy"], want)
		}
	}
	if _, ok := issuers["kcp-tmc-bootstrap"]["selfSigned"]; !ok {
		t.Error("no self-signed bootstrap issuer")
	}
	pub := certs["kcp-front-proxy-public"]
	if pub == nil || pub["issuerRef"].(map[string]any)["kind"] != "ClusterIssuer" || !reflect.DeepEqual(pub["dnsNames"], []any{"kcp.example.com"}) {
		t.Errorf("public ACME certificate = %v", pub)
	}
	if len(rec.OfType("kubernetes:helm.sh/v3:Release")) != 0 {
		t.Error("cert-manager installed although InstallCertManager is false")
	}
	if n := len(rec.OfType("tls:index/privateKey:PrivateKey")); n != 0 {
		t.Errorf("cert-manager mode created %d pulumi-tls keys", n)
	}
}

// TestCertManagerInstall: the installed cert-manager exposes its metrics
// Service (the monitoring component scrapes it) without a ServiceMonitor of
// its own, which would precede the prometheus-operator CRDs, and keeps its
// CRDs (and so every Certificate) on uninstall.
func TestCertManagerInstall(t *testing.T) {
	args := testArgs("cert-manager")
	args.InstallCertManager, args.CertManagerVersion = true, "v1.21.2"
	rel := run(t, args).OfType("kubernetes:helm.sh/v3:Release")
	if len(rel) != 1 {
		t.Fatalf("%d cert-manager releases", len(rel))
	}
	v := rel[0].Input()["values"]
	if mocktest.Dig(v, "prometheus", "enabled") != true || mocktest.Dig(v, "prometheus", "servicemonitor", "enabled") != false || mocktest.Dig(v, "crds", "keep") != true {
		t.Errorf("cert-manager values %v", v)
	}
}

func TestSelfManagedRotation(t *testing.T) {
	args := testArgs(ModeSelfManaged)
	args.RenewBefore = 720 * time.Hour
	rec := run(t, args)
	for _, r := range rec.OfType("tls:index/locallySignedCert:LocallySignedCert") {
		in := r.Input()
		if in["earlyRenewalHours"] != float64(720) || in["validityPeriodHours"] != float64(8760) {
			t.Errorf("%s: earlyRenewalHours %v validityPeriodHours %v", r.Name, in["earlyRenewalHours"], in["validityPeriodHours"])
		}
	}
	for _, r := range rec.OfType("tls:index/selfSignedCert:SelfSignedCert") {
		if in := r.Input(); in["earlyRenewalHours"] != nil || in["validityPeriodHours"] != float64(87600) {
			t.Errorf("CA %s would rotate with the leaves: %v", r.Name, in)
		}
	}
	// No CA private key is written into the cluster in this mode.
	for _, s := range rec.OfType(secretType) {
		in := s.Input()
		name := in["metadata"].(map[string]any)["name"].(string)
		if strings.HasSuffix(name, "-ca") && in["stringData"].(map[string]any)["tls.key"] != nil {
			t.Errorf("CA Secret %s carries the CA key", name)
		}
	}
}

func TestExistingCA(t *testing.T) {
	// Mint a CA the way a user's own PKI would hand it over.
	key, err := mocktest.EmulateTLS("tls:index/privateKey:PrivateKey", map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := mocktest.EmulateTLS("tls:index/selfSignedCert:SelfSignedCert", map[string]any{
		"privateKeyPem": key["privateKeyPem"], "subject": map[string]any{"commonName": "corp-ca"},
		"isCaCertificate": true, "allowedUses": []any{"cert_signing"}, "validityPeriodHours": float64(1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	args := testArgs(ModeSelfManaged)
	args.ExistingCAs = map[string]ExistingCA{CAClient: {CertPEM: ca["certPem"], KeyPEM: key["privateKeyPem"]}}
	got := selfManagedBundles(t, args)
	if got[CertAdmin].caPEM != ca["certPem"] {
		t.Error("admin certificate's ca.crt is not the brought CA")
	}
	if _, err := got[CertAdmin].cert.Verify(x509.VerifyOptions{Roots: pool(t, ca["certPem"]), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate not signed by the brought CA: %v", err)
	}
	rec := run(t, args)
	for _, r := range rec.OfType("tls:index/selfSignedCert:SelfSignedCert") {
		if strings.Contains(r.Name, CAClient) {
			t.Error("a kcp-client-ca was generated although one was brought")
		}
	}
}

func TestValidate(t *testing.T) {
	notCA, _ := mocktest.EmulateTLS("tls:index/privateKey:PrivateKey", map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"})
	fieldtest.Table(t, func() Args { return testArgs(ModeCertManager) }, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("tls")) }, []fieldtest.Case[Args]{
		{"unknown mode", func(a *Args) { a.Mode = "vault" }, "tls.mode", `"vault": supported values: "cert-manager", "self-managed"`},
		{"bad namespace", func(a *Args) { a.Namespace = "Kcp" }, "tls.namespace", `"Kcp"`},
		{"duplicate target", func(a *Args) { a.SyncTargets = []string{"a", "a"} }, "tls.syncTargets[1]", `"a": distinct`},
		{"renew after expiry", func(a *Args) { a.RenewBefore = 9000 * time.Hour }, "tls.renewBefore", `"9000h": shorter than leafDuration (8760h)`},
		{"leaf outlives CA", func(a *Args) { a.LeafDuration = 100000 * time.Hour }, "tls.leafDuration", "at most caDuration"},
		{"minutes", func(a *Args) { a.RenewBefore = 90 * time.Minute }, "tls.renewBefore", "whole number of hours"},
		{"renewal inside the front-proxy's restart week", func(a *Args) { a.RenewBefore = 100 * time.Hour }, "tls.renewBefore", `"100h": at least 192h: the front-proxy`},
		{"unpinned cert-manager", func(a *Args) { a.CertManagerVersion = "v1.21" }, "tls.certManagerVersion", "a pinned release tag"},
		{"ACME in self-managed", func(a *Args) { a.Mode = ModeSelfManaged; a.ACME = &ACME{Email: "a@b.c"} }, "tls.acme", "only with tls.mode cert-manager"},
		{"ACME without email", func(a *Args) { a.ACME = &ACME{} }, "tls.acme.email", "a contact e-mail address"},
		{"ACME over http", func(a *Args) { a.ACME = &ACME{Email: "a@b.c", Server: "http://acme.example.com"} }, "tls.acme.server", "an https:// ACME directory URL"},
		{"unknown existing CA", func(a *Args) { a.ExistingCAs = map[string]ExistingCA{"root": {}} }, "tls.existingCAs[root]", `"<secret>": a CA name`},
		{"existing CA not PEM", func(a *Args) { a.ExistingCAs = map[string]ExistingCA{CAEtcd: {CertPEM: "x"}} }, "tls.existingCAs[etcd-ca]", "<secret>"},
		{"existing CA key only", func(a *Args) {
			a.ExistingCAs = map[string]ExistingCA{CAEtcd: {CertPEM: notCA["publicKeyPem"], KeyPEM: notCA["privateKeyPem"]}}
		}, "tls.existingCAs[etcd-ca]", "<secret>"},
	})
}
