package tls

import (
	cryptotls "crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/etcdlocal"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestEtcdMutualTLS starts a real 3-member etcd (the pinned binary) on
// loopback with the minted server and peer certificates and client-cert auth
// on both sides: the members only form a cluster if peer mTLS works; kcp's
// etcd client certificate writes and reads; no certificate, or a client
// certificate from another CA, is refused.
func TestEtcdMutualTLS(t *testing.T) {
	// All ports up front, held together, so the parallel clusters never collide.
	ports := loopback.MustFreePorts(t, 6*len(modes))
	for i, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel() // each mode runs its own cluster on its own ports
			b := mode.bundles(t, testArgs(mode.name).WithDefaults())
			dir := t.TempDir()
			files := writeBundles(t, dir, b)
			cluster := etcdlocal.New(dir, 3, ports[6*i:6*i+6], etcdlocal.TLS{
				ServerCert: files[CertEtcdServer].crt, ServerKey: files[CertEtcdServer].key,
				PeerCert: files[CertEtcdPeer].crt, PeerKey: files[CertEtcdPeer].key, CA: files[CertEtcdServer].ca,
			})
			cluster.MustStart(t, files[CertEtcdClientKCP].crt, files[CertEtcdClientKCP].key)
			endpoints := cluster.Endpoints()

			etcdctl := func(cert string, args ...string) (string, error) {
				base := []string{"--endpoints=" + endpoints, "--cacert=" + files[CertEtcdServer].ca,
					"--dial-timeout=2s", "--command-timeout=5s"}
				if cert != "" {
					base = append(base, "--cert="+files[cert].crt, "--key="+files[cert].key)
				}
				out, err := exec.Command(toolchain.Path("etcdctl"), append(base, args...)...).CombinedOutput()
				return string(out), err
			}
			if out, err := etcdctl(CertEtcdClientKCP, "put", "/registry/probe", "kcp"); err != nil {
				t.Fatalf("kcp client cannot write: %v\n%s", err, out)
			}
			if out, err := etcdctl(CertEtcdClientBackup, "get", "/registry/probe", "--print-value-only"); err != nil || strings.TrimSpace(out) != "kcp" {
				t.Fatalf("backup client cannot read: %v\n%s", err, out)
			}
			if out, err := etcdctl(CertEtcdClientKCP, "member", "list"); err != nil || strings.Count(out, "started") != 3 {
				t.Errorf("want 3 started members (peer mTLS): %v\n%s", err, out)
			}
			for _, refused := range []string{"", "syncer-client-us-east", CertAdmin} {
				if out, err := etcdctl(refused, "get", "/registry/probe"); err == nil {
					t.Errorf("client %q read etcd:\n%s", refused, out)
				}
			}
		})
	}
}

// TestKCPServerClientAuth serves HTTPS with the kcp-server certificate,
// requiring client certificates from kcp-client-ca, as kcp does with
// --client-ca-file: the admin, metrics-viewer and syncer identities get in;
// etcd's client, the front-proxy's requestheader identity and anonymous
// clients do not. Clients verify the server by kcp.<domain> and its
// in-cluster name.
func TestKCPServerClientAuth(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			b := mode.bundles(t, testArgs(mode.name).WithDefaults())
			serverCert, err := cryptotls.X509KeyPair([]byte(b[CertKCPServer].certPEM), []byte(b[CertKCPServer].keyPEM))
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
				}),
				TLSConfig: &cryptotls.Config{
					Certificates: []cryptotls.Certificate{serverCert},
					ClientCAs:    pool(t, b[CAClient].caPEM),
					ClientAuth:   cryptotls.RequireAndVerifyClientCert,
					MinVersion:   cryptotls.VersionTLS12,
				},
				ErrorLog: nil,
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.ServeTLS(l, "", "") }()
			t.Cleanup(func() { _ = srv.Close() })
			port := l.Addr().(*net.TCPAddr).Port

			for _, tt := range []struct {
				client, serverName string
				ok                 bool
			}{
				{CertAdmin, "kcp.example.com", true},
				{CertMetricsViewer, "kcp-internal.kcp.svc.cluster.local", true},
				{"syncer-client-eu-west", "kcp-server.kcp.svc", true},
				{CertEtcdClientKCP, "kcp.example.com", false},
				{CertFrontProxyKubeconfig, "kcp-internal.kcp.svc", true},
				// Only kcp's requestheader CA trusts it, never its client CA.
				{CertFrontProxyClient, "kcp.example.com", false},
				{"", "kcp.example.com", false},
			} {
				t.Run(tt.client+"@"+tt.serverName, func(t *testing.T) {
					cfg := &cryptotls.Config{RootCAs: pool(t, b[CertKCPServer].caPEM), ServerName: tt.serverName}
					if tt.client != "" {
						c, err := cryptotls.X509KeyPair([]byte(b[tt.client].certPEM), []byte(b[tt.client].keyPEM))
						if err != nil {
							t.Fatal(err)
						}
						cfg.Certificates = []cryptotls.Certificate{c}
					}
					client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
					resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
					if !tt.ok {
						if err == nil {
							resp.Body.Close()
							t.Fatalf("accepted (%s)", resp.Status)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					if string(body) != b[tt.client].cert.Subject.CommonName {
						t.Errorf("server saw %q", body)
					}
				})
			}
		})
	}
}

type pemFiles struct{ crt, key, ca string }

func writeBundles(t *testing.T, dir string, b map[string]bundle) map[string]pemFiles {
	t.Helper()
	out := map[string]pemFiles{}
	for name, bb := range b {
		f := pemFiles{filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, name+"-ca.crt")}
		for path, data := range map[string]string{f.crt: bb.certPEM, f.key: bb.keyPEM, f.ca: bb.caPEM} {
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out[name] = f
	}
	return out
}
