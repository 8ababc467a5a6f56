package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

// TestEmbeddedProgramRunsOnTheRealEngine runs the example as a user would:
// the Go-built Config is deployed (rendered) by the real engine, with the
// example's settings in the manifests, then destroyed.
func TestEmbeddedProgramRunsOnTheRealEngine(t *testing.T) {
	testenv.RequireToolchain(t)
	dir := t.TempDir()
	t.Setenv("PULUMI_HOME", filepath.Join(dir, ".pulumi-home"))
	var out bytes.Buffer
	if err := run(context.Background(), dir, false, &out); err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	manifests := readAll(t, filepath.Join(dir, "rendered"))
	for _, want := range []string{"kcp.platform.example.org", "storage: 30Gi", "pod-security.kubernetes.io/enforce: restricted"} {
		if !strings.Contains(manifests, want) {
			t.Errorf("rendered manifests lack %q", want)
		}
	}
	if !strings.Contains(out.String(), "kcp URL: https://kcp.platform.example.org") {
		t.Errorf("example output lacks the kcp URL:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), dir, true, &out); err != nil {
		t.Fatalf("up + destroy: %v\n%s", err, out.String())
	}
	if got := readAll(t, filepath.Join(dir, "rendered")); got != "" {
		t.Errorf("manifests left after destroy:\n%.500s", got)
	}
}

func readAll(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		b.Write(data)
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b.String()
}
