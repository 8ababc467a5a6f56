package tls

// cert-manager mode: Issuers and Certificates, cert-manager issues and
// renews; optionally an ACME issuer for the public front-proxy name.

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// CertManagerNamespace is where InstallCertManager installs cert-manager.
const CertManagerNamespace = "cert-manager"

// certManager builds a self-signed bootstrap Issuer, one CA Certificate and
// CA Issuer per CA, and the leaf Certificates.
func (b *builder) certManager() error {
	var deps []pulumi.Resource
	if b.args.InstallCertManager {
		rel, err := helmrelease.New(b.ctx, b.name+"-cert-manager", helmrelease.Args{
			Name:            pulumi.String("cert-manager"),
			Chart:           pulumi.String("cert-manager"),
			Version:         pulumi.String(b.args.CertManagerVersion),
			Namespace:       pulumi.String(CertManagerNamespace),
			CreateNamespace: true,
			Repo:            "https://charts.jetstack.io",
			Values: pulumi.Map{
				"crds":         pulumi.Map{"enabled": pulumi.Bool(true), "keep": pulumi.Bool(true)},
				"replicaCount": pulumi.Int(2),
				// The metrics Service; the monitoring component scrapes it (the
				// chart's own ServiceMonitor would precede the operator's CRDs).
				"prometheus": pulumi.Map{"enabled": pulumi.Bool(true), "servicemonitor": pulumi.Map{"enabled": pulumi.Bool(false)}},
			},
		}, b.opts()...)
		if err != nil {
			return fmt.Errorf("cert-manager release: %w", err)
		}
		deps = append(deps, rel)
	}
	after := b.opts(pulumi.DependsOn(deps))
	bootstrap, err := b.customResource("Issuer", "kcp-tmc-bootstrap", pulumi.Map{"selfSigned": pulumi.Map{}}, after)
	if err != nil {
		return err
	}
	issuers := map[string]pulumi.Resource{}
	for _, spec := range CAs() {
		var caDeps []pulumi.Resource
		if existing, ok := b.args.ExistingCAs[spec.Name]; ok {
			sec, err := corev1.NewSecret(b.ctx, b.name+"-"+spec.Name+"-secret", &corev1.SecretArgs{
				Metadata: b.meta(spec.Name),
				Type:     pulumi.String("kubernetes.io/tls"),
				StringData: pulumi.StringMap{
					"tls.crt": pulumi.String(existing.CertPEM),
					"tls.key": pulumi.ToSecret(pulumi.String(existing.KeyPEM)).(pulumi.StringOutput),
					"ca.crt":  pulumi.String(existing.CertPEM),
				},
			}, after...)
			if err != nil {
				return fmt.Errorf("existing CA %s: %w", spec.Name, err)
			}
			caDeps = append(caDeps, sec)
		} else {
			cert, err := b.certificate(spec, "kcp-tmc-bootstrap", b.args.CADuration, b.args.CADuration/3, append(after, pulumi.DependsOn([]pulumi.Resource{bootstrap})))
			if err != nil {
				return err
			}
			caDeps = append(caDeps, cert)
		}
		iss, err := b.customResource("Issuer", spec.Name, pulumi.Map{"ca": pulumi.Map{"secretName": pulumi.String(spec.Name)}},
			append(after, pulumi.DependsOn(caDeps)))
		if err != nil {
			return err
		}
		issuers[spec.Name] = iss
	}
	for _, spec := range Leaves(b.args) {
		if _, err := b.certificate(spec, spec.CA, b.args.LeafDuration, b.args.RenewBefore,
			append(after, pulumi.DependsOn([]pulumi.Resource{issuers[spec.CA]}))); err != nil {
			return err
		}
	}
	if b.args.ACME != nil {
		if err := b.acme(after); err != nil {
			return err
		}
	}
	if b.args.ReadAdmin {
		return b.readAdmin(after)
	}
	return nil
}

// readAdmin reads the admin certificate and the server CA back from the
// Secrets cert-manager wrote, after their Certificates are Ready (a bring-
// your-own server CA is its Secret). The ID is unknown until the Certificate
// exists, so a preview of a first up reads nothing and shows unknowns.
func (b *builder) readAdmin(opts []pulumi.ResourceOption) error {
	read := func(name string) (*corev1.Secret, error) {
		cr := b.issued[name]
		id := pulumi.Sprintf("%s/%s", cr.Metadata.Namespace().Elem(), cr.Metadata.Name().Elem())
		sec, err := corev1.GetSecret(b.ctx, b.name+"-"+name+"-read", id.ApplyT(func(s string) pulumi.ID { return pulumi.ID(s) }).(pulumi.IDOutput),
			nil, append(opts, pulumi.DependsOn([]pulumi.Resource{cr}))...)
		if err != nil {
			return nil, fmt.Errorf("reading Secret %s: %w", name, err)
		}
		return sec, nil
	}
	field := func(sec *corev1.Secret, key string) pulumi.StringOutput {
		return pulumi.ToSecret(sec.Data.MapIndex(pulumi.String(key)).ApplyT(decodeBase64)).(pulumi.StringOutput)
	}
	admin, err := read(CertAdmin)
	if err != nil {
		return err
	}
	b.admin = &Identity{Cert: field(admin, "tls.crt"), Key: field(admin, "tls.key")}
	if existing, ok := b.args.ExistingCAs[CAServer]; ok {
		b.admin.ServerCA = pulumi.String(existing.CertPEM).ToStringOutput()
		return nil
	}
	ca, err := read(CAServer)
	if err != nil {
		return err
	}
	b.admin.ServerCA = field(ca, "ca.crt")
	return nil
}

func decodeBase64(v string) (string, error) {
	out, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("a Secret's data is not base64: %w", err)
	}
	return string(out), nil
}

// certificate is a cert-manager Certificate for spec, issued by issuer.
func (b *builder) certificate(spec Spec, issuer string, duration, renewBefore time.Duration, opts []pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	// Leaves get a new key on every renewal. A CA keeps its key: leaves it
	// signed before its renewal then still verify against the renewed CA,
	// instead of failing until each of them is renewed too.
	rotation := "Always"
	if spec.IsCA || spec.KeepKey {
		rotation = "Never"
	}
	s := pulumi.Map{
		"secretName":  pulumi.String(spec.Name),
		"commonName":  pulumi.String(spec.CommonName),
		"duration":    pulumi.String(duration.String()),
		"renewBefore": pulumi.String(renewBefore.String()),
		"usages":      pulumi.ToStringArray(spec.Usages),
		"isCA":        pulumi.Bool(spec.IsCA),
		"privateKey": pulumi.Map{
			"algorithm":      pulumi.String("ECDSA"),
			"size":           pulumi.Int(256),
			"rotationPolicy": pulumi.String(rotation),
		},
		"issuerRef": pulumi.Map{"name": pulumi.String(issuer), "kind": pulumi.String("Issuer"), "group": pulumi.String("cert-manager.io")},
		"secretTemplate": pulumi.Map{"labels": pulumi.StringMap{
			"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "app.kubernetes.io/component": pulumi.String("pki"),
		}},
	}
	if len(spec.Organizations) > 0 {
		s["subject"] = pulumi.Map{"organizations": pulumi.ToStringArray(spec.Organizations)}
	}
	if len(spec.DNSNames) > 0 {
		s["dnsNames"] = pulumi.ToStringArray(spec.DNSNames)
	}
	if len(spec.IPAddresses) > 0 {
		s["ipAddresses"] = pulumi.ToStringArray(spec.IPAddresses)
	}
	meta := b.meta(spec.Name)
	if b.args.ReadAdmin && (spec.Name == CertAdmin || spec.Name == CAServer) {
		// Read back by readAdmin: the Secret must hold the issued certificate.
		meta.Annotations = pulumi.StringMap{workload.WaitFor: pulumi.String("condition=Ready")}
	}
	res, err := b.customResourceIn("Certificate", spec.Name, meta, s, opts)
	if err == nil {
		b.issued[spec.Name] = res
	}
	return res, err
}

func (b *builder) customResource(kind, name string, spec pulumi.Map, opts []pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	return b.customResourceIn(kind, name, b.meta(name), spec, opts)
}

func (b *builder) customResourceIn(kind, name string, meta *metav1.ObjectMetaArgs, spec pulumi.Map, opts []pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	res, err := apiextensions.NewCustomResource(b.ctx, b.name+"-"+slug(kind)+"-"+name, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String("cert-manager.io/v1"),
		Kind:        pulumi.String(kind),
		Metadata:    meta,
		OtherFields: kubernetes.UntypedArgs{"spec": spec},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return res, nil
}

// acme adds the public certificate for kcp.<domain> from an ACME ClusterIssuer.
func (b *builder) acme(opts []pulumi.ResourceOption) error {
	a := b.args.ACME
	meta := b.meta("kcp-tmc-acme")
	meta.Namespace = nil // cluster-scoped
	iss, err := b.customResourceIn("ClusterIssuer", "kcp-tmc-acme", meta, pulumi.Map{"acme": pulumi.Map{
		"email":               pulumi.String(a.Email),
		"server":              pulumi.String(a.Server),
		"privateKeySecretRef": pulumi.Map{"name": pulumi.String("kcp-tmc-acme-account")},
		"solvers": pulumi.Array{pulumi.Map{"http01": pulumi.Map{"ingress": pulumi.Map{
			"ingressClassName": pulumi.String(a.IngressClass),
		}}}},
	}}, opts)
	if err != nil {
		return err
	}
	host := kcp.PublicHost(b.args.Domain)
	_, err = b.customResource("Certificate", CertFrontProxyPublic, pulumi.Map{
		"secretName":  pulumi.String(CertFrontProxyPublic),
		"commonName":  pulumi.String(host),
		"dnsNames":    pulumi.ToStringArray([]string{host}),
		"usages":      pulumi.ToStringArray(serverUsages),
		"duration":    pulumi.String((2160 * time.Hour).String()),
		"renewBefore": pulumi.String((720 * time.Hour).String()),
		"privateKey":  pulumi.Map{"algorithm": pulumi.String("ECDSA"), "size": pulumi.Int(256), "rotationPolicy": pulumi.String("Always")},
		"issuerRef":   pulumi.Map{"name": pulumi.String("kcp-tmc-acme"), "kind": pulumi.String("ClusterIssuer"), "group": pulumi.String("cert-manager.io")},
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{iss})))
	return err
}

func slug(kind string) string {
	out := []rune{}
	for i, r := range kind {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				out = append(out, '-')
			}
			r += 'a' - 'A'
		}
		out = append(out, r)
	}
	return string(out)
}
