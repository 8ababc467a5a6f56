package tls

// Self-managed mode: pulumi-tls keys and certificates written to Secrets,
// renewed by `pulumi up`.

import (
	"fmt"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	tlsprovider "github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// selfManaged builds keys and certificates with pulumi-tls.
func (b *builder) selfManaged() error {
	type ca struct{ cert, key pulumi.StringOutput }
	cas := map[string]ca{}
	for _, spec := range CAs() {
		if existing, ok := b.args.ExistingCAs[spec.Name]; ok {
			cas[spec.Name] = ca{
				cert: pulumi.String(existing.CertPEM).ToStringOutput(),
				key:  pulumi.ToSecret(pulumi.String(existing.KeyPEM)).(pulumi.StringOutput),
			}
		} else {
			key, err := b.privateKey(spec.Name)
			if err != nil {
				return err
			}
			cert, err := tlsprovider.NewSelfSignedCert(b.ctx, b.name+"-"+spec.Name, &tlsprovider.SelfSignedCertArgs{
				PrivateKeyPem:       key.PrivateKeyPem,
				Subject:             &tlsprovider.SelfSignedCertSubjectArgs{CommonName: pulumi.String(spec.CommonName), Organization: pulumi.String(spec.Organizations[0])},
				IsCaCertificate:     pulumi.Bool(true),
				SetSubjectKeyId:     pulumi.Bool(true),
				AllowedUses:         tlsUsages(spec.Usages),
				ValidityPeriodHours: pulumi.Int(hours(b.args.CADuration)),
			}, b.opts()...)
			if err != nil {
				return fmt.Errorf("CA %s: %w", spec.Name, err)
			}
			cas[spec.Name] = ca{cert: cert.CertPem, key: key.PrivateKeyPem}
		}
		// The CA's public certificate only: consumers mount ca.crt; the CA key
		// never enters the cluster in this mode.
		if _, err := corev1.NewSecret(b.ctx, b.name+"-"+spec.Name+"-secret", &corev1.SecretArgs{
			Metadata:   b.meta(spec.Name),
			Type:       pulumi.String("Opaque"),
			StringData: pulumi.StringMap{"ca.crt": cas[spec.Name].cert, "tls.crt": cas[spec.Name].cert},
		}, b.opts()...); err != nil {
			return fmt.Errorf("CA secret %s: %w", spec.Name, err)
		}
	}
	for _, spec := range Leaves(b.args) {
		key, err := b.privateKey(spec.Name)
		if err != nil {
			return err
		}
		csr, err := tlsprovider.NewCertRequest(b.ctx, b.name+"-"+spec.Name, &tlsprovider.CertRequestArgs{
			PrivateKeyPem: key.PrivateKeyPem,
			Subject:       &tlsprovider.CertRequestSubjectArgs{CommonName: pulumi.String(spec.CommonName), Organization: firstOrNil(spec.Organizations)},
			DnsNames:      pulumi.ToStringArray(spec.DNSNames),
			IpAddresses:   pulumi.ToStringArray(spec.IPAddresses),
		}, b.opts()...)
		if err != nil {
			return fmt.Errorf("certificate request %s: %w", spec.Name, err)
		}
		signer := cas[spec.CA]
		cert, err := tlsprovider.NewLocallySignedCert(b.ctx, b.name+"-"+spec.Name, &tlsprovider.LocallySignedCertArgs{
			CertRequestPem:      csr.CertRequestPem,
			CaCertPem:           signer.cert,
			CaPrivateKeyPem:     signer.key,
			AllowedUses:         tlsUsages(spec.Usages),
			ValidityPeriodHours: pulumi.Int(hours(b.args.LeafDuration)),
			// After this point a `pulumi up` replaces the leaf; its CA is untouched.
			EarlyRenewalHours: pulumi.Int(hours(b.args.RenewBefore)),
			SetSubjectKeyId:   pulumi.Bool(true),
		}, b.opts()...)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", spec.Name, err)
		}
		if strings.HasPrefix(spec.Name, SyncerClientPrefix+"-") {
			b.identities[strings.TrimPrefix(spec.Name, SyncerClientPrefix+"-")] = Identity{
				Cert: cert.CertPem, Key: key.PrivateKeyPem, ServerCA: cas[CAServer].cert}
		}
		if spec.Name == CertAdmin {
			b.admin = &Identity{Cert: cert.CertPem, Key: pulumi.ToSecret(key.PrivateKeyPem).(pulumi.StringOutput), ServerCA: cas[CAServer].cert}
		}
		if _, err := corev1.NewSecret(b.ctx, b.name+"-"+spec.Name+"-secret", &corev1.SecretArgs{
			Metadata: b.meta(spec.Name),
			Type:     pulumi.String("kubernetes.io/tls"),
			StringData: pulumi.StringMap{
				"tls.crt": cert.CertPem,
				"tls.key": key.PrivateKeyPem,
				"ca.crt":  signer.cert,
			},
		}, b.opts()...); err != nil {
			return fmt.Errorf("secret %s: %w", spec.Name, err)
		}
	}
	return nil
}

func (b *builder) privateKey(name string) (*tlsprovider.PrivateKey, error) {
	key, err := tlsprovider.NewPrivateKey(b.ctx, b.name+"-"+name+"-key", &tlsprovider.PrivateKeyArgs{
		Algorithm:  pulumi.String("ECDSA"),
		EcdsaCurve: pulumi.String("P256"),
	}, b.opts()...)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", name, err)
	}
	return key, nil
}

func firstOrNil(s []string) pulumi.StringPtrInput {
	if len(s) == 0 {
		return nil
	}
	return pulumi.String(s[0])
}

// tlsUsages maps cert-manager usage names to pulumi-tls allowed_uses.
func tlsUsages(usages []string) pulumi.StringArray {
	names := map[string]string{
		UsageDigitalSignature: "digital_signature",
		UsageKeyEncipherment:  "key_encipherment",
		UsageCertSign:         "cert_signing",
		UsageCRLSign:          "crl_signing",
		UsageServerAuth:       "server_auth",
		UsageClientAuth:       "client_auth",
	}
	out := pulumi.StringArray{}
	for _, u := range usages {
		out = append(out, pulumi.String(names[u]))
	}
	return out
}
