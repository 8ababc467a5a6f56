package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// forwardingRenewal: the front-proxy reads the certificate it forwards
// requests to kcp with (kcp-front-proxy-client, mounted at tls-client) only
// at start (kcp v0.32.3 pkg/proxy/proxy.go). So it runs with one about to
// expire, its renewal lands in the files as the kubelet updates a Secret
// volume, and once the old one expired a new connection to kcp (kcp
// restarted, as a rescheduled pod is) is refused to the running
// front-proxy; a restart of the front-proxy — what the CronJob
// kcp-front-proxy-restart does weekly — forwards again. The refusal is the
// reason the CronJob exists: if a kcp release reads the renewal by itself,
// this test says so, and the CronJob can go.
func forwardingRenewal(t *testing.T, cp *controlPlane, rec []mocktest.Resource) {
	caCert, caKey := signerOf(t, rec, tls.CertFrontProxyClient)
	dir := filepath.Join(cp.running[kcp.FrontProxyName].pod.dir, "tls-client")
	current, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, current)
	list := "/clusters/root/api/v1/namespaces"

	expires := time.Now().Add(45 * time.Second)
	writeLeaf(t, dir, reissue(t, leaf, caCert, caKey, expires))
	cp.restart(t, kcp.FrontProxyName, syscall.SIGTERM)
	cp.admin.must(t, http.MethodGet, list, nil)

	writeLeaf(t, dir, reissue(t, leaf, caCert, caKey, time.Now().Add(365*24*time.Hour)))
	time.Sleep(time.Until(expires) + 2*time.Second)
	took := cp.restart(t, kcp.ServerName, syscall.SIGTERM)
	t.Logf("the forwarding certificate the front-proxy loaded expired; kcp restarted in %s", took.Round(time.Second))
	errorsBefore := cp.authenticationErrors(t)
	expiredBefore := cp.expiredClientCertificates(t)
	switch code, body, err := cp.admin.try(http.MethodGet, list, nil); {
	case err == nil && code/100 == 2:
		t.Errorf("the front-proxy forwarded with a renewed certificate it was not restarted for: kcp %s reads it by itself now "+
			"(kcp-dev/kcp#1308), so the CronJob %s is no longer needed", kcp.DefaultVersion, kcp.FrontProxyRestartName)
	case err != nil || code != http.StatusUnauthorized:
		// Only kcp refusing the expired forwarding certificate proves the point.
		t.Errorf("the running front-proxy after the expiry: HTTP %d %v, want 401 (kcp refusing its expired forwarding certificate): %.200s", code, err, body)
	default:
		t.Logf("the running front-proxy, its forwarding certificate expired and renewed on disk: HTTP 401: %.200s", body)
		// What FrontProxyUnauthorized reads: the front-proxy counts the 401s it passes on.
		if n := cp.frontProxyUnauthorized(t); n < 1 {
			t.Errorf("the front-proxy counted %v answers with code 401, want at least 1: FrontProxyUnauthorized reads nothing", n)
		}
		// What tells FrontProxyUnauthorized the 401s are kcp's, not the
		// front-proxy's own answer to a client with a bad credential.
		if n := cp.authenticationErrors(t) - errorsBefore; n < 1 {
			t.Errorf("kcp counted %v more authentication errors after refusing the expired forwarding certificate, want at least 1: FrontProxyUnauthorized cannot fire", n)
		} else {
			t.Logf("kcp counted %v authentication errors for it (authentication_attempts{result=\"error\"}), %v before", n, errorsBefore)
		}
		// kcp measures the expired certificate too, so the client
		// certificate alerts (cumulative buckets) fire for it.
		if n := cp.expiredClientCertificates(t) - expiredBefore; n < 1 {
			t.Errorf("kcp counted %v more requests with an expired client certificate, want at least 1: KCPClientCertificateExpiresVerySoon stays silent for it", n)
		}
	}
	took = cp.restart(t, kcp.FrontProxyName, syscall.SIGTERM)
	cp.admin.must(t, http.MethodGet, list, nil)
	t.Logf("the front-proxy restarted in %s forwards with the renewed certificate", took.Round(time.Second))
}

// clientCertExpiring is the stack's certificate cert reissued by its CA to
// expire in ttl.
func clientCertExpiring(t *testing.T, cp *controlPlane, rec []mocktest.Resource, cert string, ttl time.Duration) certKey {
	t.Helper()
	caCert, caKey := signerOf(t, rec, cert)
	return reissue(t, parseCert(t, []byte(cp.objs.data(t, "Secret", cert)["tls.crt"])), caCert, caKey, time.Now().Add(ttl))
}

// signerOf is the CA certificate and key that signed cert in the stack's
// self-managed PKI (the inputs of its pulumi-tls LocallySignedCert).
func signerOf(t *testing.T, rec []mocktest.Resource, cert string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	for _, r := range rec {
		if r.Type != "tls:index/locallySignedCert:LocallySignedCert" || !strings.HasSuffix(r.Name, "-"+cert) {
			continue
		}
		in := r.Input()
		return parseCert(t, []byte(fmt.Sprint(in["caCertPem"]))), parseKey(t, []byte(fmt.Sprint(in["caPrivateKeyPem"])))
	}
	t.Fatalf("no LocallySignedCert for %s: render with tls.mode self-managed", cert)
	return nil, nil
}

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseKey(t *testing.T, p []byte) crypto.Signer {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatal("no PEM key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k.(crypto.Signer)
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("CA key: %v", err)
	}
	return k
}

// certKey is a PEM certificate and its PEM key.
type certKey struct{ cert, key []byte }

// reissue is leaf renewed as cert-manager renews it: the same subject and
// usages, a new key and serial, valid until notAfter.
func reissue(t *testing.T, leaf, ca *x509.Certificate, caKey crypto.Signer, notAfter time.Time) certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: leaf.Subject, DNSNames: leaf.DNSNames, IPAddresses: leaf.IPAddresses,
		KeyUsage: leaf.KeyUsage, ExtKeyUsage: leaf.ExtKeyUsage, NotBefore: time.Now().Add(-time.Minute), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certKey{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
}

// writeLeaf replaces tls.crt and tls.key in dir, each whole.
func writeLeaf(t *testing.T, dir string, ck certKey) {
	t.Helper()
	for name, b := range map[string][]byte{"tls.crt": ck.cert, "tls.key": ck.key} {
		tmp := filepath.Join(dir, "."+name+".new")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
