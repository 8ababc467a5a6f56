package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kcp-tmc/kcp-tmc/components/tls"
)

// TestAdminFromHostTrust: the smoke test reaches kcp as admin with the
// certificates the stack keeps on the hosting cluster; it trusts
// kcp-server-ca, except where kcp's address serves a publicly trusted
// certificate (tls.acme), which only the system's roots verify — pinning
// the private CA there failed every smoke test of an ACME stack.
func TestAdminFromHostTrust(t *testing.T) {
	secrets := map[string]map[string]string{
		tls.CertAdmin: {"tls.crt": "CERT", "tls.key": "KEY"},
		tls.CAServer:  {"ca.crt": "CA"},
	}
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		data, ok := secrets[name]
		if !ok || !strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/kcp/secrets/") {
			http.NotFound(w, r)
			return
		}
		enc := map[string]string{}
		for k, v := range data {
			enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": name, "namespace": "kcp"}, "data": enc})
	}))
	defer host.Close()
	for _, tt := range []struct {
		name   string
		public bool
		wantCA string
	}{
		{"private CA", false, "CA"},
		{"tls.acme", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := adminFromHost(context.Background(), &rest.Config{Host: host.URL}, "kcp", "https://kcp.example.com/clusters/root", tt.public)
			if err != nil {
				t.Fatal(err)
			}
			if string(cfg.CertData) != "CERT" || string(cfg.KeyData) != "KEY" || string(cfg.CAData) != tt.wantCA {
				t.Errorf("admin access: cert %q key %q CA %q; want CERT, KEY and CA %q", cfg.CertData, cfg.KeyData, cfg.CAData, tt.wantCA)
			}
		})
	}
}
