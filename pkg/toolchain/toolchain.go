// Package toolchain locates the pinned binaries hack/toolchain.sh builds.
package toolchain

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is the cache root: $KCP_TMC_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/kcp-tmc.
func Dir() string {
	if dir := os.Getenv("KCP_TMC_CACHE"); dir != "" {
		return dir
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "kcp-tmc")
}

// Bin is where the binaries are linked.
func Bin() string { return filepath.Join(Dir(), "bin") }

// Path is the path of one pinned binary.
func Path(name string) string { return filepath.Join(Bin(), name) }

// Find is the path of one pinned binary, or an error saying how to build it.
func Find(name string) (string, error) {
	p := Path(name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is not built: run hack/toolchain.sh (make test does): %w", name, err)
	}
	return p, nil
}

// Source is an upstream directory hack/toolchain.sh links from the Go
// module cache under crds/ (CRD YAML, the AWS Load Balancer Controller's
// module), resolved: kubectl does not follow a linked directory.
func Source(name string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Join(Dir(), "crds", name))
	if err != nil {
		return "", fmt.Errorf("upstream source %s is not linked: run hack/toolchain.sh (make test does): %w", name, err)
	}
	return dir, nil
}
