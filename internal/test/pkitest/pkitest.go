// Package pkitest mints the pki component's certificates for tests that
// need real ones (etcd with mTLS): it runs the component in self-managed
// mode under mocks, where pulumi-tls is emulated with crypto/x509, and
// writes every Secret's PEM files.
package pkitest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// Files are one certificate's PEM files.
type Files struct{ Cert, Key, CA string }

// Write mints the PKI for args into dir and returns each Secret's files.
func Write(t testing.TB, dir string, args tls.Args) map[string]Files {
	t.Helper()
	args.Mode = tls.ModeSelfManaged
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := tls.NewPKI(ctx, "pki", args)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Files{}
	for _, s := range rec.OfType("kubernetes:core/v1:Secret") {
		in := s.Input()
		name := fmt.Sprint(mocktest.Dig(in, "metadata", "name"))
		f := Files{filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, name+"-ca.crt")}
		for path, key := range map[string]string{f.Cert: "tls.crt", f.Key: "tls.key", f.CA: "ca.crt"} {
			data, _ := mocktest.Dig(in, "stringData", key).(string)
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out[name] = f
	}
	return out
}
