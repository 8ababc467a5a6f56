package kubeconfig

import (
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/clientcmd/api"
)

// TestClientGoReadsWhatIsWritten: client-go loads each kind of kubeconfig
// back with its current context pointing at the server and credentials set.
func TestClientGoReadsWhatIsWritten(t *testing.T) {
	exec := &api.ExecConfig{APIVersion: "client.authentication.k8s.io/v1beta1", Command: "aws",
		Args: []string{"eks", "get-token"}, InteractiveMode: api.NeverExecInteractiveMode}
	tests := []struct {
		name string
		in   Config
	}{
		{"certificate files", Config{Context: "shard-base", Cluster: "kcp", User: "shard-admin", Server: "https://kcp-internal.kcp.svc:6443",
			CAFile: "/etc/kcp/tls/server/ca.crt", CertFile: "/etc/kcp/tls/shard-admin/tls.crt", KeyFile: "/etc/kcp/tls/shard-admin/tls.key"}},
		{"token file", Config{Context: "kcp", User: "syncagent-a", Server: "https://kcp.example.com/clusters/root:a", TokenFile: "/etc/kcp-agent/token"}},
		{"token, inline CA", Config{Context: "local", User: "user", Server: "https://127.0.0.1:6443", CAData: []byte("-----BEGIN CERTIFICATE-----\n"), Token: "secret"}},
		{"exec plugin, inline CA", Config{Context: "kcp-tmc-prod", Server: "https://eks.example.com", CAData: []byte("-----BEGIN CERTIFICATE-----\n"), Exec: exec}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := tt.in.Render()
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := clientcmd.Load([]byte(raw))
			if err != nil {
				t.Fatalf("client-go cannot load it: %v\n%s", err, raw)
			}
			ctx := cfg.Contexts[cfg.CurrentContext]
			if cfg.CurrentContext != tt.in.Context || ctx == nil {
				t.Fatalf("current context %q, want %q:\n%s", cfg.CurrentContext, tt.in.Context, raw)
			}
			cl, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
			if cl == nil || user == nil {
				t.Fatalf("context %s names a missing cluster or user:\n%s", cfg.CurrentContext, raw)
			}
			if cl.Server != tt.in.Server || cl.CertificateAuthority != tt.in.CAFile || string(cl.CertificateAuthorityData) != string(tt.in.CAData) {
				t.Errorf("cluster = %+v", cl)
			}
			if user.ClientCertificate != tt.in.CertFile || user.ClientKey != tt.in.KeyFile || user.TokenFile != tt.in.TokenFile || user.Token != tt.in.Token ||
				(tt.in.Exec != nil) != (user.Exec != nil) || user.Exec != nil && user.Exec.Command != tt.in.Exec.Command {
				t.Errorf("user = %+v", user)
			}
		})
	}
	if _, err := (Config{Context: "kcp"}).Render(); err == nil {
		t.Error("a kubeconfig without a server was written")
	}
}
