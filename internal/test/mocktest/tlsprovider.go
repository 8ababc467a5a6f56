package mocktest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// EmulateTLS computes the outputs of a pulumi-tls resource from its inputs
// with crypto/x509, as terraform-provider-tls (which pulumi-tls wraps) does:
// the same key types and PEM encodings, allowed_uses mapped to key usages
// and extended key usages, validity in hours from now. The TLS plugin cannot
// be built here, so this is how the certificates a program asks for become
// real certificates in tests.
func EmulateTLS(typ string, in map[string]any) (map[string]string, error) {
	switch typ {
	case "tls:index/privateKey:PrivateKey":
		return emulatePrivateKey(in)
	case "tls:index/selfSignedCert:SelfSignedCert":
		key, err := parsePrivateKey(str(in, "privateKeyPem"))
		if err != nil {
			return nil, err
		}
		tmpl, err := template(in, subject(in), strs(in, "dnsNames"), strs(in, "ipAddresses"))
		if err != nil {
			return nil, err
		}
		return sign(tmpl, tmpl, key.Public(), key)
	case "tls:index/certRequest:CertRequest":
		key, err := parsePrivateKey(str(in, "privateKeyPem"))
		if err != nil {
			return nil, err
		}
		ips, err := parseIPs(strs(in, "ipAddresses"))
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: subject(in), DNSNames: strs(in, "dnsNames"), IPAddresses: ips,
		}, key)
		if err != nil {
			return nil, err
		}
		return map[string]string{"certRequestPem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}, nil
	case "tls:index/locallySignedCert:LocallySignedCert":
		csr, err := parseCSR(str(in, "certRequestPem"))
		if err != nil {
			return nil, err
		}
		caKey, err := parsePrivateKey(str(in, "caPrivateKeyPem"))
		if err != nil {
			return nil, fmt.Errorf("caPrivateKeyPem: %w", err)
		}
		caCert, err := ParseCertificate(str(in, "caCertPem"))
		if err != nil {
			return nil, fmt.Errorf("caCertPem: %w", err)
		}
		tmpl, err := template(in, csr.Subject, csr.DNSNames, nil)
		if err != nil {
			return nil, err
		}
		tmpl.IPAddresses = csr.IPAddresses
		return sign(tmpl, caCert, csr.PublicKey, caKey)
	}
	return nil, fmt.Errorf("no emulation for %s", typ)
}

func emulatePrivateKey(in map[string]any) (map[string]string, error) {
	var key crypto.Signer
	var err error
	switch str(in, "algorithm") {
	case "ECDSA":
		curves := map[string]elliptic.Curve{"P224": elliptic.P224(), "P256": elliptic.P256(), "P384": elliptic.P384(), "P521": elliptic.P521()}
		curve, ok := curves[str(in, "ecdsaCurve")]
		if str(in, "ecdsaCurve") == "" {
			curve, ok = elliptic.P224(), true // the provider's default
		}
		if !ok {
			return nil, fmt.Errorf("unsupported ecdsaCurve %q", str(in, "ecdsaCurve"))
		}
		key, err = ecdsa.GenerateKey(curve, rand.Reader)
	case "RSA":
		bits := 2048
		if b, ok := in["rsaBits"].(float64); ok {
			bits = int(b)
		}
		key, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", str(in, "algorithm"))
	}
	if err != nil {
		return nil, err
	}
	var block *pem.Block
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"privateKeyPem":      string(pem.EncodeToMemory(block)),
		"privateKeyPemPkcs8": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		"publicKeyPem":       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}, nil
}

// template builds the certificate template from the provider's inputs.
func template(in map[string]any, subj pkix.Name, dns []string, ips []string) (*x509.Certificate, error) {
	hours, ok := in["validityPeriodHours"].(float64)
	if !ok || hours <= 0 {
		return nil, errors.New("validityPeriodHours is required")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	parsedIPs, err := parseIPs(ips)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subj, DNSNames: dns, IPAddresses: parsedIPs,
		NotBefore: now, NotAfter: now.Add(time.Duration(hours) * time.Hour),
		BasicConstraintsValid: true, IsCA: in["isCaCertificate"] == true,
	}
	keyUsages := map[string]x509.KeyUsage{
		"digital_signature": x509.KeyUsageDigitalSignature, "content_commitment": x509.KeyUsageContentCommitment,
		"key_encipherment": x509.KeyUsageKeyEncipherment, "data_encipherment": x509.KeyUsageDataEncipherment,
		"key_agreement": x509.KeyUsageKeyAgreement, "cert_signing": x509.KeyUsageCertSign,
		"crl_signing": x509.KeyUsageCRLSign, "encipher_only": x509.KeyUsageEncipherOnly, "decipher_only": x509.KeyUsageDecipherOnly,
	}
	extUsages := map[string]x509.ExtKeyUsage{
		"any_extended": x509.ExtKeyUsageAny, "server_auth": x509.ExtKeyUsageServerAuth, "client_auth": x509.ExtKeyUsageClientAuth,
		"code_signing": x509.ExtKeyUsageCodeSigning, "email_protection": x509.ExtKeyUsageEmailProtection,
		"timestamping": x509.ExtKeyUsageTimeStamping, "ocsp_signing": x509.ExtKeyUsageOCSPSigning,
	}
	for _, u := range strs(in, "allowedUses") {
		if ku, ok := keyUsages[u]; ok {
			tmpl.KeyUsage |= ku
		} else if eku, ok := extUsages[u]; ok {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, eku)
		} else {
			return nil, fmt.Errorf("unknown allowed use %q", u)
		}
	}
	return tmpl, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (map[string]string, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"certPem":           string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"validityStartTime": tmpl.NotBefore.UTC().Format(time.RFC3339),
		"validityEndTime":   tmpl.NotAfter.UTC().Format(time.RFC3339),
	}, nil
}

func subject(in map[string]any) pkix.Name {
	s, _ := in["subject"].(map[string]any)
	var n pkix.Name
	if cn, ok := s["commonName"].(string); ok {
		n.CommonName = cn
	}
	if o, ok := s["organization"].(string); ok && o != "" {
		n.Organization = []string{o}
	}
	return n
}

// ParseCertificate decodes one PEM certificate.
func ParseCertificate(p string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parsePrivateKey(p string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k.(crypto.Signer), nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return x509.ParsePKCS1PrivateKey(block.Bytes)
}

func parseCSR(p string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("no PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	return csr, csr.CheckSignature()
}

func parseIPs(ips []string) ([]net.IP, error) {
	var out []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("invalid IP address %q", s)
		}
		out = append(out, ip)
	}
	return out, nil
}

func str(in map[string]any, k string) string { s, _ := in[k].(string); return s }

func strs(in map[string]any, k string) []string {
	arr, _ := in[k].([]any)
	var out []string
	for _, v := range arr {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
