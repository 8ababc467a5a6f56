// Package pki issues every certificate kcp, etcd, the front proxy and the
// syncers need, from separate CAs, in one of two interchangeable modes:
// cert-manager (Issuers and Certificates, renewed in-cluster) or self-managed
// (pulumi-tls keys and certificates written to Secrets, rotated by `pulumi up`
// after the renewal point). Either way the Secrets carry the same names and
// keys (tls.crt, tls.key, ca.crt), so consumers do not care which mode ran.
package tls

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	tlsprovider "github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:tls:PKI"

// Modes.
const (
	ModeCertManager = "cert-manager"
	ModeSelfManaged = "self-managed"
)

// Defaults follow the kcp helm chart: CAs 10 years, leaves 1 year renewed 15 days early.
const (
	DefaultCADuration         = 87600 * time.Hour
	DefaultLeafDuration       = 8760 * time.Hour
	DefaultRenewBefore        = 360 * time.Hour
	DefaultCertManagerVersion = "v1.21.2"
)

// Args configures the PKI.
type Args struct {
	Mode      string // ModeCertManager (default) or ModeSelfManaged
	Namespace string // where the Secrets (and cert-manager Issuers) live
	Domain    string // kcp is published as kcp.<Domain>
	// EtcdReplicas sizes the etcd peer SAN list (default 1).
	EtcdReplicas int
	// Shards are the kcp shards besides the root shard: each gets a serving
	// certificate and its etcd cluster's server and peer certificates.
	Shards []shard.Shard
	// Cache, when set, is the separate cache server (kcp.cache.mode
	// separate): a serving certificate and its etcd cluster's certificates.
	Cache *shard.Shard
	// SyncTargets gets one syncer client certificate each (revocable per
	// target); none means one shared `syncer-client`.
	SyncTargets  []string
	CADuration   time.Duration
	LeafDuration time.Duration
	RenewBefore  time.Duration
	// ExistingCAs replaces generated CAs by name (bring your own CA): the
	// inputs must be Pulumi secrets.
	ExistingCAs map[string]ExistingCA
	// InstallCertManager installs cert-manager's Helm chart (cert-manager
	// mode; stacks turn it off in render mode).
	InstallCertManager bool
	CertManagerVersion string
	// ACME, when set, adds a Let's Encrypt ClusterIssuer and a certificate
	// for the public front-proxy hostname only (cert-manager mode).
	ACME *ACME
	// ReadAdmin: the Secrets land in a live cluster whose cert-manager issues
	// them, so the admin identity is read back once issued (Admin), for the
	// program's own access to kcp. Self-managed mode has it from Pulumi.
	ReadAdmin bool
}

// ExistingCA is a CA brought by the user.
type ExistingCA struct {
	CertPEM string
	KeyPEM  string
}

// ACME configures the public-hostname certificate; it is also the stack key
// kcp-tmc:tls.acme.
type ACME struct {
	// Email is the contact address of the ACME account.
	Email string `json:"email"`
	// Server is an https:// ACME directory URL (default: Let's Encrypt
	// production).
	Server string `json:"server,omitempty"`
	// IngressClass is the class of the HTTP-01 solver (default `nginx`).
	IngressClass string `json:"ingressClass,omitempty"`
}

// PKI is the component.
type PKI struct {
	pulumi.ResourceState

	// SecretNames maps every certificate and CA name to its Secret's name.
	SecretNames pulumi.StringMapOutput `pulumi:"secretNames"`
	// Identities are the sync targets' client certificates with the CA that
	// verifies kcp, for writing kubeconfigs onto their clusters. Self-managed
	// mode only: with cert-manager the keys never leave the kcp cluster.
	Identities map[string]Identity
	// Namespace holds the Secrets.
	Namespace string
	// Admin is kcp's admin client certificate with the server CA: set in
	// self-managed mode, and in cert-manager mode with Args.ReadAdmin (read
	// back from its Secrets once cert-manager issued them, so renewals reach
	// the next up). Nil otherwise.
	Admin *Identity
}

// Identity is a client certificate (key secret) and the CA of kcp's serving certificate.
type Identity struct {
	Cert, Key, ServerCA pulumi.StringOutput
}

// SecretName is the Secret of a certificate or CA: the one name consumers mount.
func (p *PKI) SecretName(cert string) string { return cert }

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Mode, ModeCertManager)
	component.Default(&a.EtcdReplicas, 1)
	component.Default(&a.CADuration, DefaultCADuration)
	component.Default(&a.LeafDuration, DefaultLeafDuration)
	component.Default(&a.RenewBefore, DefaultRenewBefore)
	component.Default(&a.CertManagerVersion, DefaultCertManagerVersion)
	if a.ACME != nil {
		acme := *a.ACME
		component.Default(&acme.Server, "https://acme-v02.api.letsencrypt.org/directory")
		component.Default(&acme.IngressClass, "nginx")
		a.ACME = &acme
	}
	return a
}

// Validate reports every invalid field under fld (the stack's tls key;
// derived fields keep their Go names).
func (a Args) Validate(fld *field.Path) field.ErrorList {
	errs := check.OneOf(fld.Child("mode"), a.Mode, ModeCertManager, ModeSelfManaged)
	errs = append(errs, check.DNSLabel(fld.Child("namespace"), a.Namespace, "a namespace")...)
	errs = append(errs, check.DNSSubdomain(fld.Child("domain"), a.Domain, "a DNS name")...)
	if a.EtcdReplicas < 1 || a.EtcdReplicas%2 == 0 {
		errs = append(errs, field.Invalid(fld.Child("etcdReplicas"), a.EtcdReplicas, "an odd number ≥ 1"))
	}
	errs = append(errs, shard.ValidateNames(fld.Child("shards"), shard.Names(a.Shards))...)
	for i, sh := range a.Shards {
		if sh.EtcdMembers < 1 || sh.EtcdMembers%2 == 0 {
			errs = append(errs, field.Invalid(fld.Child("shards").Index(i).Child("etcdMembers"), sh.EtcdMembers, "an odd number ≥ 1"))
		}
	}
	seen := map[string]bool{}
	for i, t := range a.SyncTargets {
		if len(validation.IsDNS1123Label(t)) > 0 || len(t) > 40 || seen[t] {
			errs = append(errs, field.Invalid(fld.Child("syncTargets").Index(i), t, "distinct DNS-1123 labels of at most 40 characters"))
		}
		seen[t] = true
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"caDuration", a.CADuration}, {"leafDuration", a.LeafDuration}, {"renewBefore", a.RenewBefore}} {
		if !WholeHours(d.d) {
			errs = append(errs, field.Invalid(fld.Child(d.key), d.d.String(), WholeHoursRule))
		}
	}
	if a.LeafDuration > a.CADuration {
		errs = append(errs, field.Invalid(fld.Child("leafDuration"), HoursString(a.LeafDuration), "at most caDuration ("+HoursString(a.CADuration)+")"))
	}
	if a.RenewBefore >= a.LeafDuration {
		errs = append(errs, field.Invalid(fld.Child("renewBefore"), HoursString(a.RenewBefore), "shorter than leafDuration ("+HoursString(a.LeafDuration)+")"))
	}
	errs = append(errs, check.Release(fld.Child("certManagerVersion"), a.CertManagerVersion, "", DefaultCertManagerVersion)...)
	if a.ACME != nil {
		if a.Mode != ModeCertManager {
			errs = append(errs, field.Invalid(fld.Child("acme"), "<set>", "only with tls.mode cert-manager (ACME needs an in-cluster issuer)"))
		}
		if at := strings.Index(a.ACME.Email, "@"); at < 1 || check.Domain(nil, a.ACME.Email[at+1:], "") != nil {
			errs = append(errs, field.Invalid(fld.Child("acme", "email"), a.ACME.Email, "a contact e-mail address for the ACME account"))
		}
		if !strings.HasPrefix(a.ACME.Server, "https://") {
			errs = append(errs, field.Invalid(fld.Child("acme", "server"), a.ACME.Server, "an https:// ACME directory URL"))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(a.ExistingCAs)) {
		if err := CheckCA(name, a.ExistingCAs[name]); err != nil {
			errs = append(errs, field.Invalid(fld.Child("existingCAs").Key(name), "<secret>", err.Error()))
		}
	}
	return errs
}

// WholeHoursRule says what the certificate lifetimes accept.
const WholeHoursRule = `a positive whole number of hours such as "8760h"`

// WholeHours is the rule of the certificate lifetimes.
func WholeHours(d time.Duration) bool { return d > 0 && d%time.Hour == 0 }

// HoursString writes a duration as the stack keys do ("8760h").
func HoursString(d time.Duration) string { return strconv.Itoa(hours(d)) + "h" }

// CheckCA proves a brought CA has a known name and is a CA certificate with
// a matching key; errors never quote the key.
func CheckCA(name string, ca ExistingCA) error {
	if !slices.ContainsFunc(CAs(), func(s Spec) bool { return s.Name == name }) {
		return fmt.Errorf("a CA name: %s, %s, %s, %s or %s", CAEtcd, CAServer, CAClient, CARequestHeader, CAServiceAcct)
	}
	block, _ := pem.Decode([]byte(ca.CertPEM))
	if block == nil {
		return errors.New("a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA {
		return errors.New("a CA certificate (basicConstraints CA:TRUE)")
	}
	keyBlock, _ := pem.Decode([]byte(ca.KeyPEM))
	if keyBlock == nil {
		return errors.New("a PEM private key")
	}
	key, err := parseKey(keyBlock.Bytes)
	if err != nil {
		return errors.New("a PKCS#1, PKCS#8 or EC private key")
	}
	pub, ok := key.(crypto.Signer)
	if !ok {
		return errors.New("a private key")
	}
	if eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(cert.PublicKey) {
		return errors.New("a private key matching the certificate")
	}
	return nil
}

func parseKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return x509.ParseECPrivateKey(der)
}

// NewPKI registers the component and its children.
func NewPKI(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*PKI, error) {
	args = args.WithDefaults()
	comp := &PKI{Namespace: args.Namespace}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("tls")), opts...); err != nil {
		return nil, err
	}
	b := &builder{ctx: ctx, name: name, args: args, parent: comp, identities: map[string]Identity{}, issued: map[string]*apiextensions.CustomResource{}}
	var err error
	if args.Mode == ModeSelfManaged {
		err = b.selfManaged()
	} else {
		err = b.certManager()
	}
	if err != nil {
		return nil, err
	}
	names := pulumi.StringMap{}
	for _, s := range append(CAs(), Leaves(args)...) {
		names[s.Name] = pulumi.String(comp.SecretName(s.Name))
	}
	comp.SecretNames = names.ToStringMapOutput()
	comp.Identities, comp.Admin = b.identities, b.admin
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"secretNames": comp.SecretNames}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

type builder struct {
	ctx        *pulumi.Context
	name       string
	args       Args
	parent     pulumi.Resource
	identities map[string]Identity
	admin      *Identity
	// issued are cert-manager's Certificates by name, for reading back.
	issued map[string]*apiextensions.CustomResource
}

func (b *builder) opts(extra ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append([]pulumi.ResourceOption{pulumi.Parent(b.parent)}, extra...)
}

func (b *builder) meta(name string) *metav1.ObjectMetaArgs {
	return &metav1.ObjectMetaArgs{
		Name:      pulumi.String(name),
		Namespace: pulumi.String(b.args.Namespace),
		Labels: pulumi.StringMap{
			"app.kubernetes.io/part-of":    pulumi.String("kcp-tmc"),
			"app.kubernetes.io/managed-by": pulumi.String("pulumi"),
			"app.kubernetes.io/component":  pulumi.String("pki"),
		},
	}
}

func hours(d time.Duration) int { return int(d / time.Hour) }

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

// CertManagerNamespace is where InstallCertManager installs cert-manager.
const CertManagerNamespace = "cert-manager"

// certManager builds a self-signed bootstrap Issuer, one CA Certificate and
// CA Issuer per CA, and the leaf Certificates.
func (b *builder) certManager() error {
	var deps []pulumi.Resource
	if b.args.InstallCertManager {
		rel, err := helmrelease.New(b.ctx, b.name+"-cert-manager", helmrelease.Args{
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
		meta.Annotations = pulumi.StringMap{"pulumi.com/waitFor": pulumi.String("condition=Ready")}
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
