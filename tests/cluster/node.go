package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
)

// A node turns the control plane into a single-node cluster that runs Pods:
// containerd and runc (Debian's packages), CNI bridge + host-local (Debian's
// containernetworking-plugins), and the pinned kubelet, kube-scheduler and
// kube-proxy. Images come from in-process registries (registry.go) that
// containerd uses as mirrors of the upstream registries, so Pods name their
// upstream image references unchanged, with any pull policy.

const (
	// NodeName is the node's name (and the kubelet's hostname override).
	NodeName = "kcp-tmc-node"
	// PodCIDR is the bridge's subnet; ServiceCIDR the apiserver's.
	PodCIDR     = "10.244.0.0/24"
	ServiceCIDR = "10.96.0.0/16"
	// DNSServiceIP is the cluster DNS Service's address; APIServiceIP the
	// kubernetes Service's (the first of ServiceCIDR).
	DNSServiceIP = "10.96.0.10"
	APIServiceIP = "10.96.0.1"
	// bridgeName is the CNI bridge: short, and unique to this harness so
	// cleanup deletes only its own link.
	bridgeName = "kcptmc0"
	// APIServerNodePort is the apiserver's port on a node cluster: kubeadm's.
	APIServerNodePort = 6443
	// netpolTable is the nftables table kube-network-policies writes where
	// the kernel lets it; netpolChain the harness's iptables chain (mangle
	// table; KUBE-, so teardown's removeChains takes it) that queues Pods'
	// new connections to it on netpolQueue.
	netpolTable = "kube-network-policies"
	netpolChain = "KUBE-NETWORK-POLICIES"
	// netpolLocalChain (mangle INPUT) queues Pods' new connections to
	// this machine's own addresses — the apiserver behind the kubernetes
	// Service, a test's stand-ins — which never reach POSTROUTING: a real
	// cluster's API endpoint is another host, and its CNI judges the way.
	netpolLocalChain = "KUBE-NETPOL-LOCAL"
	netpolQueue      = 100
)

// ContainerLogMaxSize, when set before StartWithNode, is the kubelet's
// containerLogMaxSize (default 10Mi): a test of what reads the logs makes
// the kubelet rotate them within its run.
var ContainerLogMaxSize string

// cniBinDir is where Debian's containernetworking-plugins put the plugins.
var cniBinDir = "/usr/lib/cni"

// node is what StartWithNode started and must undo.
type node struct {
	dir        string // short: containerd's socket path must fit 108 bytes
	sock       string
	sysctls    map[string]string // values to restore
	registries *Registries
	lb         *loadBalancer
	hosts      *hostsFile
	dns        *externalDNS
	// publishMu serialises PublishHost: CoreDNS's hosts are read, changed
	// and written back, and two front doors may get addresses at once.
	publishMu sync.Mutex
	netnsSeen map[string]bool // /var/run/netns entries that existed before
}

// NodeMissing lists what this machine lacks to run a node (root, Linux, the
// Debian packages, the toolchain's cluster binaries), each with how to get it;
// empty when a node can start.
func NodeMissing(binDir string) []string {
	var missing []string
	if runtime.GOOS != "linux" {
		missing = append(missing, "Linux (this is "+runtime.GOOS+")")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root (containerd, the kubelet and kube-proxy need it)")
	}
	for _, b := range []string{"containerd", "ctr", "runc", "iptables", "ip", "nft", "unshare", "mount"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b+" (apt-get install containerd runc containernetworking-plugins iptables iproute2 nftables util-linux mount)")
		}
	}
	if _, err := os.Stat(Busybox); err != nil {
		missing = append(missing, Busybox+" (apt-get install busybox-static: the shell tools of the NetworkPolicy probe's, etcd's join and the backup images)")
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			missing = append(missing, filepath.Join(cniBinDir, p)+" (apt-get install containernetworking-plugins)")
		}
	}
	for _, b := range []string{"kubelet", "kube-scheduler", "kube-proxy", "coredns", "kube-network-policies", "external-dns"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			missing = append(missing, filepath.Join(binDir, b)+" (hack/toolchain.sh cluster)")
		}
	}
	return missing
}

// StartWithNode starts the control plane reachable at this machine's address
// and a node that runs its Pods, with CoreDNS, StorageClasses "standard" and "fast" of
// local volumes and a load balancer for Services of type LoadBalancer
// (addons.go). images are served to the node by reference. dir holds
// everything; Stop removes every process, container, mount, link and rule.
func StartWithNode(ctx context.Context, binDir, dir string, images []Image) (c *Cluster, err error) {
	if missing := NodeMissing(binDir); len(missing) > 0 {
		return nil, fmt.Errorf("a node cannot run here; missing: %s", strings.Join(missing, "; "))
	}
	ip, err := nodeAddress()
	if err != nil {
		return nil, err
	}
	c, err = start(ctx, binDir, dir, ip)
	if err != nil {
		return nil, err
	}
	// Sockets need a short path; everything else of the node lives there too.
	short, err := os.MkdirTemp("", "kn-")
	if err != nil {
		c.Stop()
		return nil, err
	}
	c.nodeDir = short
	c.node = &node{dir: short, sock: filepath.Join(short, "c.sock"), sysctls: map[string]string{}, netnsSeen: map[string]bool{}}
	// The node's own handle: a failure below returns a nil *Cluster.
	started := c
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	if entries, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range entries {
			c.node.netnsSeen[e.Name()] = true
		}
	}
	// Forwarding between the bridge and Services, and bridged traffic through
	// kube-proxy's rules (a Pod reaching a Service backed by a Pod on the same bridge).
	for k, v := range map[string]string{"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"} {
		if err := c.node.setSysctl(k, v); err != nil {
			return nil, err
		}
	}
	if c.node.registries, err = ServeImages(append(images, netpolProbeImage())); err != nil {
		return nil, fmt.Errorf("serving images: %w", err)
	}
	if err := c.startContainerd(ctx); err != nil {
		return nil, err
	}
	if err := c.startNodeComponents(ctx); err != nil {
		return nil, err
	}
	if err := c.installAddons(ctx); err != nil {
		return nil, err
	}
	if err := c.checkNetworkPoliciesEnforced(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// NodeIP is the node's address (where the apiserver, the kubelet and
// hostNetwork Pods listen).
func (c *Cluster) NodeIP() string { return c.nodeIP }

// PodLogsDir is the kubelet's podLogsDir: the harness keeps the node's pod
// logs in its own directory, not in /var/log/pods (the links in
// /var/log/containers point there, as a real node's do to /var/log/pods).
func (c *Cluster) PodLogsDir() string { return filepath.Join(c.nodeDir, "pod-logs") }

// BuildPause builds the sandbox image's program (cmd/pause) into dir.
func BuildPause(dir string) (string, error) {
	pause := filepath.Join(dir, "pause")
	build := exec.Command("go", "build", "-o", pause, "github.com/kcp-tmc/kcp-tmc/tests/cluster/cmd/pause")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause program: %w: %s", err, out)
	}
	return pause, nil
}

// nodeAddress is the IPv4 address of the default route's interface: what
// kubeadm advertises. Pods reach the apiserver there.
func nodeAddress() (string, error) {
	// A UDP "connection" only picks the route; nothing is sent.
	if conn, err := net.Dial("udp4", "192.0.2.254:9"); err == nil {
		defer conn.Close()
		if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
			return a.IP.String(), nil
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no non-loopback IPv4 address for the node")
}

func (n *node) setSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", key)
	old, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	if strings.TrimSpace(string(old)) == value {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	n.sysctls[key] = strings.TrimSpace(string(old))
	return nil
}

// startContainerd runs containerd as a plain process with its own root,
// state and socket; the CRI plugin uses the harness's CNI config and the
// in-process registries as mirrors.
func (c *Cluster) startContainerd(ctx context.Context) error {
	n := c.node
	cniConf := filepath.Join(n.dir, "cni")
	certsD := filepath.Join(n.dir, "certs.d")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "kcp-tmc", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
`, bridgeName, PodCIDR, filepath.Join(n.dir, "ipam"))
	if err := os.WriteFile(filepath.Join(cniConf, "10-kcp-tmc.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	if err := n.registries.WriteHosts(certsD); err != nil {
		return err
	}
	// restrict_oom_score_adj: this machine forbids lowering oom_score_adj, and
	// without it every sandbox fails ("can't get final child's PID from pipe").
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  # Pods' network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.sock, PauseImage, cniBinDir, cniConf, certsD)
	cfgPath := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := c.startPath("containerd", "containerd", "--config", cfgPath); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, "containerd", func() error {
		_, err := c.ctr(ctx, "version")
		return err
	}, func() string { return c.Log("containerd") })
}

// ctr runs Debian's ctr against the node's containerd in the CRI namespace.
func (c *Cluster) ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.node.sock, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// startNodeComponents starts the kubelet, kube-scheduler and kube-proxy
// (admin credentials: a test node, not a hardened one) and waits for the
// node to be Ready.
func (c *Cluster) startNodeComponents(ctx context.Context) error {
	n := c.node
	ports, err := loopback.FreePorts(6)
	if err != nil {
		return err
	}
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [%s]
containerRuntimeEndpoint: unix://%s
resolvConf: /etc/resolv.conf
podLogsDir: %q
serializeImagePulls: false
# A test machine's disk is shared: evict only when it is really full.
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%%", "imagefs.available": "1%%", "nodefs.inodesFree": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, c.nodeIP, ports[0], ports[1], c.path("ca.crt"), DNSServiceIP, n.sock, c.PodLogsDir())
	if ContainerLogMaxSize != "" {
		kubelet += fmt.Sprintf("containerLogMaxSize: %s\n", ContainerLogMaxSize)
	}
	kubeletCfg := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(kubeletCfg, []byte(kubelet), 0o644); err != nil {
		return err
	}
	if err := c.start("kubelet", "--config="+kubeletCfg, "--kubeconfig="+c.Kubeconfig,
		"--root-dir="+filepath.Join(n.dir, "kubelet"), "--cert-dir="+filepath.Join(n.dir, "kubelet-pki"),
		"--hostname-override="+NodeName, "--node-ip="+c.nodeIP, "--v=1"); err != nil {
		return err
	}
	if err := c.start("kube-scheduler", "--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig,
		"--authorization-kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]), "--v=1"); err != nil {
		return err
	}
	// conntrack values 0: leave the machine's settings alone (they may be read-only).
	proxy := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, c.Kubeconfig, PodCIDR, NodeName, ports[3], ports[4])
	proxyCfg := filepath.Join(n.dir, "kube-proxy.yaml")
	if err := os.WriteFile(proxyCfg, []byte(proxy), 0o644); err != nil {
		return err
	}
	if err := c.start("kube-proxy", "--config="+proxyCfg, "--v=1"); err != nil {
		return err
	}
	if err := c.startNetworkPolicies(ports[5]); err != nil {
		return err
	}
	return waitFor(ctx, 2*time.Minute, "node "+NodeName+" Ready", func() error {
		out, _, err := c.Kubectl(ctx, nil, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if out != "True" {
			return fmt.Errorf("Ready=%q", out)
		}
		return nil
	}, func() string { return c.Log("kubelet") })
}

// startNetworkPolicies enforces NetworkPolicies on the node as a real
// cluster's network plugin does, so the stack's policies are tested for
// what they allow and what they cut: kube-network-policies (SIG Network's
// implementation) judges every new connection of a Pod in userspace,
// through an NFQUEUE, and drops what no policy allows.
//
// Its own rules queue with nftables' queue statement, which this machine's
// kernel lacks (CONFIG_NFT_QUEUE unset: "Could not process rule: No such
// file or directory"); it still judges whatever reaches its queue. So the
// harness queues the packets its rules would (controller.go
// syncNFTablesRules: postrouting before SNAT, root's own traffic such as
// the kubelet's probes and established connections excepted) with
// iptables' NFQUEUE target, which the kernel has; a Pod no policy selects
// is let through by its verdict. No bypass: if it stops, Pods' new
// connections fail, as they would on a node whose plugin is down.
//
// It reads only in-cluster credentials (rest.InClusterConfig), so it runs
// in a mount namespace of its own with the admin token at the
// ServiceAccount path, leaving the machine's /run alone.
func (c *Cluster) startNetworkPolicies(metricsPort int) error {
	sa := filepath.Join(c.node.dir, "netpol-sa")
	if err := os.MkdirAll(sa, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte(c.AdminToken), 0o600); err != nil {
		return err
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sa, "ca.crt"), ca, 0o600); err != nil {
		return err
	}
	script := `set -e
mount -t tmpfs -o mode=0755 kcp-tmc-netpol /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
mount --bind "$1" /run/secrets/kubernetes.io/serviceaccount
shift
exec "$@"`
	if err := c.startPath("kube-network-policies", "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", script, "sh", sa,
		"env", "KUBERNETES_SERVICE_HOST="+c.nodeIP, "KUBERNETES_SERVICE_PORT="+strconv.Itoa(APIServerNodePort),
		filepath.Join(c.bin, "kube-network-policies"),
		"--hostname-override="+NodeName, "--disable-nri", // containerd 1.6 has no NRI
		"--nfqueue-id="+strconv.Itoa(netpolQueue),
		// Kernels from 6.12 have the conntrack fix; DNS is judged like the rest.
		"--netfilter-bug-1766-fix=false",
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"--v=2"); err != nil { // a line per judged connection: what a drop was
		return err
	}
	queue := []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(netpolQueue)}
	for _, rule := range [][]string{
		{"-N", netpolChain},
		{"-A", netpolChain, "-m", "owner", "--uid-owner", "0", "-j", "RETURN"},
		{"-A", netpolChain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"},
		append([]string{"-A", netpolChain, "-s", PodCIDR}, queue...),
		append([]string{"-A", netpolChain, "-d", PodCIDR}, queue...),
		{"-A", "POSTROUTING", "-j", netpolChain},
		{"-N", netpolLocalChain},
		{"-A", netpolLocalChain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"},
		append([]string{"-A", netpolLocalChain, "-s", PodCIDR}, queue...),
		{"-A", "INPUT", "-j", netpolLocalChain},
	} {
		if out, err := exec.Command("iptables", append([]string{"-t", "mangle"}, rule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -t mangle %s: %v: %s", strings.Join(rule, " "), err, out)
		}
	}
	return nil
}

// Busybox is Debian's busybox-static (statically linked): an image's
// applet is a copy of it named after the applet.
const Busybox = "/bin/busybox"

// netpolProbeRef is the image of checkNetworkPoliciesEnforced's Pods.
const netpolProbeRef = "registry.k8s.io/kcp-tmc-harness/netpol-probe:1"

func netpolProbeImage() Image {
	var files []File
	for _, a := range []string{"sh", "nc", "sleep", "true"} {
		files = append(files, File{Path: "/bin/" + a, Source: Busybox})
	}
	return Image{Ref: netpolProbeRef, Files: files, User: "65532"}
}

// checkNetworkPoliciesEnforced proves the node drops what no policy allows
// before any test relies on it (a suite that passed with enforcement off
// would prove nothing): a Pod opens a TCP connection to the cluster's DNS
// Service; it must get through with no policy in its namespace and fail
// once one denies its egress.
func (c *Cluster) checkNetworkPoliciesEnforced(ctx context.Context) error {
	const ns = "kcp-tmc-netpol-check"
	// The DNS Service is a Pod (routed); the kubernetes Service this
	// machine's apiserver (local).
	targets := APIServiceIP + ":443 " + DNSServiceIP + ":53"
	probe := func(name string) (string, error) {
		// The sleep lets the policy plugin learn the Pod's address first
		// (no NRI here): before that its connections count as from outside.
		pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 65532, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: probe
    image: %s
    command: [sh, -c, 'sleep 3; for t in %s; do if nc -w 3 ${t%%:*} ${t#*:} -e /bin/true 2>/dev/null; then echo "$t reached"; else echo "$t blocked"; fi; done']
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, name, ns, netpolProbeRef, targets)
		if err := c.Apply(ctx, pod); err != nil {
			return "", err
		}
		if _, stderr, err := c.Kubectl(ctx, nil, "-n", ns, "wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=90s", "pod/"+name); err != nil {
			return "", fmt.Errorf("probe %s: %v: %s", name, err, stderr)
		}
		out, _, err := c.Kubectl(ctx, nil, "-n", ns, "logs", name)
		return strings.TrimSpace(out), err
	}
	if err := c.Apply(ctx, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ns+"}\n"); err != nil {
		return err
	}
	// want is the probe's answer when every target is reached or blocked.
	want := func(verdict string) string {
		var lines []string
		for _, t := range strings.Fields(targets) {
			lines = append(lines, t+" "+verdict)
		}
		return strings.Join(lines, "\n")
	}
	if got, err := probe("open"); err != nil || got != want("reached") {
		return fmt.Errorf("NetworkPolicy check: with no policy a Pod's connections: %q (%v)", got, err)
	}
	if err := c.Apply(ctx, fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: %s}
spec: {podSelector: {}, policyTypes: [Egress]}
`, ns)); err != nil {
		return err
	}
	if got, err := probe("denied"); err != nil || got != want("blocked") {
		return fmt.Errorf("NetworkPolicies are not enforced: with egress denied a Pod's connections: %q (%v); see kube-network-policies.log", got, err)
	}
	_, _, err := c.Kubectl(ctx, nil, "delete", "namespace", ns, "--wait=false")
	return err
}

// startPath starts a program found on PATH (Debian's containerd) like start.
func (c *Cluster) startPath(logName, program string, args ...string) error {
	p, err := exec.LookPath(program)
	if err != nil {
		return err
	}
	return c.startBinary(logName, p, args...)
}

// waitFor polls check every half second until it succeeds or timeout passes;
// the error names what and carries the last failure and log().
func waitFor(ctx context.Context, timeout time.Duration, what string, check func() error, log func() string) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %v; log tail:\n%s", what, timeout, last, log())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
