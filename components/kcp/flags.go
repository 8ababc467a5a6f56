package kcp

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
)

// The flags the pinned release registers, listed by its own binaries
// (flags/*.txt say how): a flag kcp does not know makes it exit at start.
var (
	//go:embed flags/kcp-start-v0.32.3.txt
	serverFlagList string
	//go:embed flags/kcp-front-proxy-v0.32.3.txt
	frontProxyFlagList string
)

// hiddenServerFlags are registered but hidden (deprecated), so not listed.
var hiddenServerFlags = []string{"--external-hostname"}

// KnownServerFlags and KnownFrontProxyFlags are the flag names (with
// leading dashes) of kcp start and kcp-front-proxy v0.32.3.
func KnownServerFlags() map[string]bool {
	return flagSet(serverFlagList, hiddenServerFlags...)
}

// KnownFrontProxyFlags: see KnownServerFlags.
func KnownFrontProxyFlags() map[string]bool { return flagSet(frontProxyFlagList) }

func flagSet(list string, extra ...string) map[string]bool {
	out := map[string]bool{}
	for _, line := range append(strings.Split(list, "\n"), extra...) {
		if strings.HasPrefix(line, "--") {
			out[strings.TrimSpace(line)] = true
		}
	}
	return out
}

// flagName is "--name" of "--name=value" or "--name".
func flagName(arg string) string {
	name, _, _ := strings.Cut(arg, "=")
	return name
}

// ValidateExtraFlags reports the extra flags kcp or the front-proxy would
// not take as meant (Validate includes it; the stack calls it alone).
func (a Args) ValidateExtraFlags() error {
	// The pod's wiring: probes, Services and policies use these.
	return errors.Join(
		checkExtraFlags("ExtraFlags", a.ExtraFlags, generatedServerFlags(a), KnownServerFlags(), "--secure-port", "--bind-address"),
		checkExtraFlags("FrontProxyExtraFlags", a.FrontProxyExtraFlags, frontProxyArgs(a), KnownFrontProxyFlags(), "--bind-address"))
}

// checkExtraFlags refuses an extra flag that is malformed, that the release
// does not register, that the component already sets or wires (kcp would
// exit, or the value would silently replace or merge with ours), or that
// has a typed key (--oidc-*: kcp.oidc also mounts the CA and opens egress).
// A flag may repeat (list flags such as --tls-sni-cert-key take several).
func checkExtraFlags(field string, extra, generated []string, known map[string]bool, wired ...string) error {
	set := map[string]bool{}
	for _, g := range append(generated, wired...) {
		set[flagName(g)] = true
	}
	var errs []error
	for i, f := range extra {
		name := flagName(f)
		switch {
		case !strings.HasPrefix(f, "--") || len(name) < 3 || strings.ContainsAny(name, " \t"):
			errs = append(errs, fmt.Errorf("kcp: %s[%d] %q: want --name or --name=value", field, i, f))
		case !known[name]:
			errs = append(errs, fmt.Errorf("kcp: %s[%d] %q: want a flag kcp v0.32.3 registers (%s is not one; the list: components/kcp/flags/)", field, i, f, name))
		case set[name]:
			errs = append(errs, fmt.Errorf("kcp: %s[%d] %q: want a flag kcp-tmc does not already set (%s is set from its own config key)", field, i, f, name))
		case strings.HasPrefix(name, "--oidc-"):
			errs = append(errs, fmt.Errorf("kcp: %s[%d] %q: want kcp-tmc:kcp.oidc for OIDC (it also mounts the CA and lets kcp reach the issuer)", field, i, f))
		}
	}
	return errors.Join(errs...)
}
