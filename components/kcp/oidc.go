package kcp

import (
	"crypto/x509"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/component"
)

// OIDC signs humans in with an OpenID Connect issuer, on kcp and on the
// front-proxy (which authenticates the caller and forwards who it is). It is
// also the stack key kcp-tmc:kcp.oidc, so the doc comments are what
// docs/configuration.md says.
type OIDC struct {
	// IssuerURL is the issuer's https:// URL, exactly as its tokens' `iss`.
	IssuerURL string `json:"issuerURL"`
	// ClientID is the client id the tokens are issued for (their `aud`).
	ClientID string `json:"clientID"`
	// UsernameClaim is the claim that names the user (default `sub`).
	UsernameClaim string `json:"usernameClaim"`
	// UsernamePrefix is put before every username (default `oidc:`, so no
	// token can claim kcp's or the PKI's user names; `-` for none).
	UsernamePrefix string `json:"usernamePrefix"`
	// GroupsClaim is the claim that lists the user's groups (default `groups`).
	GroupsClaim string `json:"groupsClaim"`
	// GroupsPrefix is put before every group (default `oidc:`; `-` for none).
	GroupsPrefix string `json:"groupsPrefix"`
	// CABundle is the PEM CA of the issuer's serving certificate (default:
	// the system roots, for a public issuer).
	CABundle string `json:"caBundle"`
}

// oidcCAConfigMap holds OIDC.CABundle, mounted into kcp and the front-proxy.
const oidcCAConfigMap = "kcp-oidc-ca"

// WithDefaults fills the claims and prefixes: usernames from "sub" and
// groups from "groups", both prefixed "oidc:" so no token can claim a
// name kcp or the PKI's identities use (system:…, kcp-admin).
func (o OIDC) WithDefaults() OIDC {
	component.Default(&o.UsernameClaim, "sub")
	component.Default(&o.UsernamePrefix, "oidc:")
	component.Default(&o.GroupsClaim, "groups")
	component.Default(&o.GroupsPrefix, "oidc:")
	return o
}

// Validate reports every invalid field under fld.
func (o OIDC) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if u, err := url.Parse(o.IssuerURL); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, field.Invalid(fld.Child("issuerURL"), o.IssuerURL, "the issuer's https:// URL, exactly as its tokens' iss claim (no query or fragment)"))
	}
	if o.ClientID == "" {
		errs = append(errs, field.Invalid(fld.Child("clientID"), o.ClientID, "the client id tokens are issued for (their aud claim)"))
	}
	for _, claim := range []struct{ key, value string }{{"usernameClaim", o.UsernameClaim}, {"groupsClaim", o.GroupsClaim}} {
		if strings.TrimSpace(claim.value) == "" || strings.ContainsAny(claim.value, " \t") {
			errs = append(errs, field.Invalid(fld.Child(claim.key), claim.value, "a claim name such as sub, email or groups"))
		}
	}
	if o.CABundle != "" {
		if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM([]byte(o.CABundle)) {
			errs = append(errs, field.Invalid(fld.Child("caBundle"), "<not PEM>", "PEM certificates of the CA that signs the issuer's serving certificate"))
		}
	}
	return errs
}

// flags are kcp v0.32.3's --oidc-* flags (the same on the front-proxy);
// caDir is where the CA bundle is mounted.
func (o OIDC) flags(caDir string) []string {
	f := []string{
		"--oidc-issuer-url=" + o.IssuerURL,
		"--oidc-client-id=" + o.ClientID,
		"--oidc-username-claim=" + o.UsernameClaim,
		"--oidc-username-prefix=" + o.UsernamePrefix,
		"--oidc-groups-claim=" + o.GroupsClaim,
		"--oidc-groups-prefix=" + groupsPrefix(o.GroupsPrefix),
	}
	if o.CABundle != "" {
		f = append(f, "--oidc-ca-file="+caDir+"/ca.crt")
	}
	return f
}

// port is the issuer's TCP port (egress must reach it to fetch its keys).
func (o OIDC) port() int {
	u, err := url.Parse(o.IssuerURL)
	if err != nil {
		return 443
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	return 443
}

// groupsPrefix: "-" means none, as it does for usernames (where kube-apiserver
// itself reads it so); for groups only the empty flag value does.
func groupsPrefix(p string) string {
	if p == "-" {
		return ""
	}
	return p
}
