package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteHosts: containerd finds each upstream host's mirror under the
// directory of the name its references use — docker.io for Docker Hub's,
// whose registry go-containerregistry calls index.docker.io.
func TestWriteHosts(t *testing.T) {
	r := &Registries{addrs: map[string]string{"index.docker.io": "127.0.0.1:5001", "quay.io": "127.0.0.1:5002"}}
	dir := t.TempDir()
	if err := r.WriteHosts(dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ dir, server, mirror string }{
		{"docker.io", `server = "https://registry-1.docker.io"`, `[host."http://127.0.0.1:5001"]`},
		{"quay.io", `server = "https://quay.io"`, `[host."http://127.0.0.1:5002"]`},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(filepath.Join(dir, tt.dir, "hosts.toml"))
		if err != nil {
			t.Fatalf("no hosts.toml for %s: %v", tt.dir, err)
		}
		if s := string(b); !strings.Contains(s, tt.server) || !strings.Contains(s, tt.mirror) {
			t.Errorf("%s/hosts.toml = %q, want %s and %s", tt.dir, s, tt.server, tt.mirror)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.docker.io")); err == nil {
		t.Error("a hosts directory index.docker.io, which containerd never reads")
	}
}
