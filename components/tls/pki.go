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
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
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
	errs = append(errs, shard.ValidateNames(fld.Child("shards"), shard.Names(a.Shards))...)
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
	// The front-proxy reads its forwarding certificate only at start and is
	// restarted weekly: a renewal must come early enough for that.
	if least := kcp.MinRenewBefore; a.RenewBefore < least {
		errs = append(errs, field.Invalid(fld.Child("renewBefore"), HoursString(a.RenewBefore), "at least "+HoursString(least)+
			": the front-proxy picks up its renewed forwarding certificate at its weekly restart (docs/tls.md \"Renewals\")"))
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
