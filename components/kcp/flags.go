package kcp

import (
	_ "embed"
	"maps"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The flags the pinned release registers, listed by its own binaries
// (flags/*.txt say how): a flag kcp does not know makes it exit at start.
var (
	//go:embed flags/kcp-start-v0.32.3.txt
	serverFlagList string
	//go:embed flags/kcp-front-proxy-v0.32.3.txt
	frontProxyFlagList string
	//go:embed flags/cache-server-v0.32.3.txt
	cacheServerFlagList string
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

// KnownCacheServerFlags: see KnownServerFlags.
func KnownCacheServerFlags() map[string]bool { return flagSet(cacheServerFlagList) }

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
// not take as meant (Validate includes it).
func (a Args) ValidateExtraFlags(fld *field.Path) field.ErrorList {
	// The pod's wiring: probes, Services and policies use these.
	return append(
		checkExtraFlags(fld.Child("extraFlags"), a.ExtraFlags, generatedServerFlags(a, a.servers()[0]), KnownServerFlags(), refusedFlags,
			append([]string{"--secure-port", "--bind-address"}, shardWiredFlags...)...),
		checkExtraFlags(fld.Child("frontProxyExtraFlags"), a.FrontProxyExtraFlags, frontProxyArgs(a), KnownFrontProxyFlags(), frontProxyRefusedFlags, "--bind-address")...)
}

// refusedFlags are flags kcp v0.32.3 registers that break kcp behind its
// front-proxy (measured on the node: docs/control-plane.md) or that it
// never reads, and why.
var refusedFlags = map[string]string{
	// k8s's remedy for HTTP/2 clients pinned to one apiserver; the
	// front-proxy cannot replay a proxied body, so the writes that cross
	// each GOAWAY fail.
	"--goaway-chance": "kcp-front-proxy v0.32.3 cannot retry a write that crosses the GOAWAY it sends " +
		"(at 0.02, 5 of 2,907 writes through the front door failed with 502)",
	// k8s's remedy for load balancers slow to drop a stopping apiserver
	// (kcp's pods drain before SIGTERM instead); kcp cancels its requests
	// at SIGTERM, so it would fail all it takes meanwhile.
	"--shutdown-delay-duration": "kcp v0.32.3 fails every request it takes after SIGTERM (at 5s, 448 writes through " +
		"the front door failed in those 5 s); its pods already drain for 10 s before SIGTERM",
	// Registered as a hidden no-op (pkg/server/options/options.go: its
	// value is discarded; kube-apiserver's own flag is on kcp's disallowed
	// list), so a value would be silently ignored.
	"--external-hostname": "kcp v0.32.3 registers it only as a deprecated no-op and never reads it; " +
		"kcp's public address comes from kcp.domain (--shard-external-url)",
}

// frontProxyRefusedFlags are refusedFlags and the front-proxy's own.
var frontProxyRefusedFlags = func() map[string]string {
	m := maps.Clone(refusedFlags)
	// kcp-tmc sets it with kcp.oidc only (frontProxyVerifiesTokens):
	// without OIDC it would turn the front-proxy's token checks on,
	// against the root shard alone.
	m["--service-account-key-file"] = "kcp-tmc sets it on the front-proxy only with kcp.oidc: there it makes the front-proxy verify " +
		"ServiceAccount tokens itself, and kcp-front-proxy v0.32.3 finds them on the root shard only (an agent on another shard gets 401; docs/sharding.md)"
	return m
}()

// checkExtraFlags refuses an extra flag that is malformed, that the release
// does not register, that the component already sets or wires (kcp would
// exit, or the value would silently replace or merge with ours), or that
// has a typed key (--oidc-*: kcp.oidc also mounts the CA and opens egress),
// or that is in refused.
// A flag may repeat (list flags such as --tls-sni-cert-key take several).
func checkExtraFlags(fld *field.Path, extra, generated []string, known map[string]bool, refused map[string]string, wired ...string) field.ErrorList {
	set := map[string]bool{}
	for _, g := range append(generated, wired...) {
		set[flagName(g)] = true
	}
	var errs field.ErrorList
	for i, f := range extra {
		name := flagName(f)
		var allowed string
		switch {
		case !strings.HasPrefix(f, "--") || len(name) < 3 || strings.ContainsAny(name, " \t"):
			allowed = "--name or --name=value"
		case !known[name]:
			allowed = "a flag kcp v0.32.3 registers (" + name + " is not one; the list: components/kcp/flags/)"
		case set[name]:
			allowed = "a flag kcp-tmc does not already set (" + name + " is set from its own config key)"
		case strings.HasPrefix(name, "--oidc-"):
			allowed = "kcp-tmc:kcp.oidc for OIDC (it also mounts the CA and lets kcp reach the issuer)"
		case refused[name] != "":
			allowed = "not " + name + ": " + refused[name]
		}
		if allowed != "" {
			errs = append(errs, field.Invalid(fld.Index(i), f, allowed))
		}
	}
	return errs
}
