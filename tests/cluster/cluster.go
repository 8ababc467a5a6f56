// Package cluster runs a real, local Kubernetes control plane for tests:
// etcd, kube-apiserver (RBAC, PodSecurity admission) and
// kube-controller-manager, all on loopback, from the pinned binaries
// hack/toolchain.sh builds. Start runs no kubelet or scheduler: Pods are
// created and admitted, never started. StartWithNode adds a real node
// (node.go): containerd, a kubelet, kube-scheduler, kube-proxy and CoreDNS.
package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/kubeconfig"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
)

// Cluster is a running control plane.
type Cluster struct {
	// Dir holds certificates, logs, data and the kubeconfig.
	Dir string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Server is the apiserver URL; CAFile verifies it; AdminToken authenticates as system:masters.
	Server     string
	CAFile     string
	AdminToken string
	// EtcdMetricsURL is etcd's plain-HTTP metrics endpoint.
	EtcdMetricsURL string
	bin            string
	procs          []*exec.Cmd
	// nodeIP is the address Pods reach the apiserver at ("" on loopback only).
	nodeIP string
	// node holds what the node added (node.go); nil without one or once
	// stopped; nodeDir stays for Leftovers.
	node    *node
	nodeDir string
}

// Start launches etcd, kube-apiserver and kube-controller-manager from binDir
// in dir and waits until the apiserver is ready. Call Stop when done.
func Start(ctx context.Context, binDir, dir string) (c *Cluster, err error) {
	return start(ctx, binDir, dir, "")
}

// start is Start with the apiserver also reachable at nodeIP (and advertised
// there, so the kubernetes Service's endpoint is an address Pods can reach).
func start(ctx context.Context, binDir, dir, nodeIP string) (c *Cluster, err error) {
	c = &Cluster{Dir: dir, bin: binDir, nodeIP: nodeIP}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.writePKI(); err != nil {
		return nil, fmt.Errorf("writing PKI: %w", err)
	}
	if nodeIP != "" {
		crt, key, err := c.ClientCert("kube-apiserver-kubelet-client", "system:masters")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(c.path("kubelet-client.crt"), crt, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(c.path("kubelet-client.key"), key, 0o600); err != nil {
			return nil, err
		}
	}
	ports, err := loopback.FreePorts(5)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	c.EtcdMetricsURL = "http://127.0.0.1:" + strconv.Itoa(ports[4]) + "/metrics"
	c.CAFile, c.AdminToken = c.path("ca.crt"), adminToken
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.start("etcd",
		"--name=test", "--data-dir="+c.path("etcd-data"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=test="+peerURL, "--listen-metrics-urls=http://127.0.0.1:"+strconv.Itoa(ports[4]),
		"--log-level=warn", "--unsafe-no-fsync"); err != nil {
		return nil, err
	}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	listen := []string{"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"}
	if nodeIP != "" {
		// kubeadm's port: the stack's NetworkPolicies allow the API at
		// 443 and 6443 (netpol.KubernetesAPIPorts), and the node enforces
		// them on the address the kubernetes Service translates to.
		if l, err := net.Listen("tcp", fmt.Sprintf(":%d", APIServerNodePort)); err != nil {
			return nil, fmt.Errorf("the node's apiserver needs port %d: %w", APIServerNodePort, err)
		} else {
			l.Close()
		}
		ports[2] = APIServerNodePort
		c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])
		// The node's name resolves nowhere: reach the kubelet (logs, exec)
		// at its address, as a client it authorizes.
		listen = []string{"--bind-address=0.0.0.0", "--advertise-address=" + nodeIP,
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-client-certificate=" + c.path("kubelet-client.crt"), "--kubelet-client-key=" + c.path("kubelet-client.key")}
	}
	if err := c.start("kube-apiserver", append(listen,
		"--etcd-servers="+etcdURL,
		"--secure-port="+strconv.Itoa(ports[2]), "--cert-dir="+c.path("apiserver-certs"),
		"--tls-cert-file="+c.path("serving.crt"), "--tls-private-key-file="+c.path("serving.key"),
		"--client-ca-file="+c.path("ca.crt"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.path("sa.pub"),
		"--service-account-signing-key-file="+c.path("sa.key"),
		"--token-auth-file="+c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		// As kubeadm and managed clusters do: privileged Pods are PodSecurity's call.
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--v=1")...); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.Kubeconfig = c.path("admin.kubeconfig")
	if err := c.writeKubeconfig(c.Kubeconfig, adminToken); err != nil {
		return nil, err
	}
	kcm := c.path("controller-manager.kubeconfig")
	if err := c.writeKubeconfig(kcm, kcmToken); err != nil {
		return nil, err
	}
	if err := c.start("kube-controller-manager",
		"--kubeconfig="+kcm, "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[3]),
		"--leader-elect=false", "--use-service-account-credentials=true",
		"--service-account-private-key-file="+c.path("sa.key"), "--root-ca-file="+c.path("ca.crt"),
		"--cluster-signing-cert-file="+c.path("ca.crt"), "--cluster-signing-key-file="+c.path("ca.key"),
		"--v=1"); err != nil {
		return nil, err
	}
	return c, nil
}

// Stop kills every process group it started and waits for them, and with a
// node also removes what the node left (containers, mounts, links, rules).
func (c *Cluster) Stop() {
	if c.node != nil {
		c.stopNode()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		if p := c.procs[i]; p.Process != nil {
			stopGroup(p, 10*time.Second)
		}
	}
	c.procs = nil
}

// Log returns the tail of a component's log (for failure messages).
func (c *Cluster) Log(name string) string {
	b, _ := os.ReadFile(c.path(name + ".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Kubectl runs the pinned kubectl against the cluster as admin.
func (c *Cluster) Kubectl(ctx context.Context, stdin []byte, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

const (
	adminToken = "kcp-tmc-test-admin"
	kcmToken   = "kcp-tmc-test-controller-manager"
)

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) start(name string, args ...string) error {
	return c.startBinary(name, filepath.Join(c.bin, name), args...)
}

// startBinary starts program with its output in <logName>.log.
func (c *Cluster) startBinary(logName, program string, args ...string) error {
	name := logName
	logf, err := os.Create(c.path(name + ".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(program, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so Stop reaches every child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s (build it with hack/toolchain.sh judges): %w", name, err)
	}
	logf.Close()
	c.procs = append(c.procs, cmd)
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	caPEM, err := os.ReadFile(c.path("ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		if err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body.String())
		} else {
			last = err.Error()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after 90s (%s); log:\n%s", last, c.Log("kube-apiserver"))
}

func (c *Cluster) writeKubeconfig(path, token string) error {
	ca, err := os.ReadFile(c.path("ca.crt"))
	if err != nil {
		return err
	}
	cfg, err := kubeconfig.Config{Context: "local", User: "user", Server: c.Server, CAData: ca, Token: token}.Render()
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// writePKI writes a CA, an apiserver serving certificate for loopback, the
// service-account key pair and the static token file.
func (c *Cluster) writePKI() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kcp-tmc-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	}
	if c.nodeIP != "" {
		srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, net.ParseIP(c.nodeIP))
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	caKeyDER, _ := x509.MarshalECPrivateKey(caKey)
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	files := map[string][]byte{
		"ca.crt":      pemBlock("CERTIFICATE", caDER),
		"ca.key":      pemBlock("EC PRIVATE KEY", caKeyDER),
		"serving.crt": pemBlock("CERTIFICATE", srvDER),
		"serving.key": pemBlock("EC PRIVATE KEY", srvKeyDER),
		"sa.key":      pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		"sa.pub":      pemBlock("PUBLIC KEY", saPub),
		"tokens.csv": []byte(adminToken + ",admin,admin-uid,system:masters\n" +
			kcmToken + ",system:kube-controller-manager,kcm-uid\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// ClientCert mints a client certificate (PEM cert and key) the apiserver
// accepts, signed by the cluster's CA, for user cn in groups orgs.
func (c *Cluster) ClientCert(cn string, orgs ...string) ([]byte, []byte, error) {
	raw, err := os.ReadFile(c.path("ca.key"))
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, nil, fmt.Errorf("ca.key: no PEM block")
	}
	caKey, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	raw, err = os.ReadFile(c.path("ca.crt"))
	if err != nil {
		return nil, nil, err
	}
	block, _ = pem.Decode(raw)
	if block == nil {
		return nil, nil, fmt.Errorf("ca.crt: no PEM block")
	}
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER), nil
}

// KubeconfigFor writes a kubeconfig for this apiserver that authenticates
// with token (a ServiceAccount's, say) to path.
func (c *Cluster) KubeconfigFor(path, token string) error { return c.writeKubeconfig(path, token) }
