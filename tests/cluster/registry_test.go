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

// TestLinkable: a dynamically linked binary goes into an image only with
// its loader and libraries; a static one or a script always.
func TestLinkable(t *testing.T) {
	const dynamic = "/bin/true" // Debian's coreutils: libc only
	if _, err := os.Stat(dynamic); err != nil {
		t.Skipf("%s: %v", dynamic, err)
	}
	script := filepath.Join(t.TempDir(), "run.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	loader, libc := File{"/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"}, File{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}
	tests := []struct {
		name, file string
		image      []File
		missing    string // "" when accepted
	}{
		{"dynamic alone", dynamic, nil, "lacks /lib64/ld-linux-x86-64.so.2, libc.so.6"},
		{"dynamic without libc", dynamic, []File{loader}, "lacks libc.so.6"},
		{"dynamic with its loader and libc", dynamic, []File{loader, libc}, ""},
		{"static", Busybox, nil, ""},
		{"script", script, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := linkable(tt.file, tt.image)
			switch {
			case tt.missing == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.missing != "" && (err == nil || !strings.Contains(err.Error(), tt.missing)):
				t.Errorf("error %v, want one saying the image %s", err, tt.missing)
			}
		})
	}
}
