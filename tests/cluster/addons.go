package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The node's add-ons, as a platform team provides them on a bare-metal
// cluster: CoreDNS, local persistent volumes behind StorageClasses "standard" and "fast",
// and a load balancer that gives Services of type LoadBalancer an address
// kube-proxy routes (what MetalLB does, without announcing it: the address
// is reachable from this machine only), and external-dns publishing the
// names its Services ask for (externaldns.go).

const (
	// CoreDNSImage is the reference the CoreDNS Deployment names.
	CoreDNSImage = "registry.k8s.io/coredns/coredns:v1.15.0"
	// StorageClass is the node's default class of local volumes, the dev
	// stack's; OtherStorageClass a second one, to move etcd's data to
	// (docs/runbook.md "Moving etcd to another StorageClass").
	StorageClass      = "standard"
	OtherStorageClass = "fast"
)

// localVolumes is how many local PersistentVolumes each class offers:
// enough for every test of the suite, since volumes are retained and each
// new claim takes a fresh one (the sharded stack's four ran out at 12).
var localVolumes = map[string]int{StorageClass: 24, OtherStorageClass: 6}

// LoadBalancerIPs is the pool Services of type LoadBalancer get addresses
// from (TEST-NET-2: never a real host).
var LoadBalancerIPs = []string{"198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13"}

func (c *Cluster) installAddons(ctx context.Context) error {
	if err := c.installLocalVolumes(ctx); err != nil {
		return fmt.Errorf("local volumes: %w", err)
	}
	if err := c.installCoreDNS(ctx); err != nil {
		return fmt.Errorf("CoreDNS: %w", err)
	}
	lb, err := c.startLoadBalancer()
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	c.node.lb = lb
	c.node.hosts = &hostsFile{path: "/etc/hosts"}
	// external-dns's gateway source lists Gateways and TLSRoutes from its
	// start (the pinned Gateway API CRDs; hack/toolchain.sh links them).
	if err := c.InstallCRDs(ctx, "gateway-api"); err != nil {
		return fmt.Errorf("Gateway API CRDs: %w", err)
	}
	dns, err := c.startExternalDNS()
	if err != nil {
		return fmt.Errorf("external-dns: %w", err)
	}
	c.node.dns = dns
	return nil
}

// Apply server-side applies YAML to the cluster as the harness.
func (c *Cluster) Apply(ctx context.Context, yaml string) error {
	_, _, err := c.Kubectl(ctx, []byte(yaml), "apply", "--server-side", "--force-conflicts", "--field-manager=kcp-tmc-harness", "-f", "-")
	return err
}

// installLocalVolumes offers local PersistentVolumes (directories on this
// machine, bound when a Pod is scheduled) as StorageClasses "standard" and
// "fast". Local volumes honour fsGroup, as cloud disks do.
func (c *Cluster) installLocalVolumes(ctx context.Context) error {
	var b strings.Builder
	for _, class := range []string{StorageClass, OtherStorageClass} {
		fmt.Fprintf(&b, `---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: %s}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
`, class)
		for i := range localVolumes[class] {
			dir := filepath.Join(c.Dir, "volumes", fmt.Sprintf("%s-%02d", class, i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			fmt.Fprintf(&b, `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: %s-%02d}
spec:
  capacity: {storage: 200Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: %s
  local: {path: %q}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [%s]}]
`, class, i, class, dir, NodeName)
		}
	}
	return c.Apply(ctx, b.String())
}

// installCoreDNS runs CoreDNS as upstream's manifest does (kube-dns Service
// at DNSServiceIP), listening on 53 as a real cluster's does — NetworkPolicies
// name the port the Service translates to, and the node enforces them — as
// a non-root user the pod's safe sysctl lets bind it. Names a test
// publishes (PublishHost) resolve from a hosts file it reloads.
func (c *Cluster) installCoreDNS(ctx context.Context) error {
	manifest := fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  hosts: ""
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        hosts /etc/coredns/hosts {
            reload 2s
            fallthrough
        }
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        forward . /etc/resolv.conf
        cache 5
        reload 2s
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext:
        runAsUser: 65532
        runAsGroup: 65532
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
      containers:
      - name: coredns
        image: %s
        args: [-conf, /etc/coredns/Corefile]
        ports: [{containerPort: 53, protocol: UDP, name: dns}, {containerPort: 53, protocol: TCP, name: dns-tcp}]
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: %s
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 53, protocol: TCP}
`, CoreDNSImage, DNSServiceIP)
	if err := c.Apply(ctx, manifest); err != nil {
		return err
	}
	return c.WaitRollout(ctx, "kube-system", "deployment/coredns", 3*time.Minute)
}

// WaitRollout waits for a workload's rollout, failing with its Pods' state.
func (c *Cluster) WaitRollout(ctx context.Context, namespace, workload string, timeout time.Duration) error {
	_, _, err := c.Kubectl(ctx, nil, "-n", namespace, "rollout", "status", workload, "--timeout="+timeout.String())
	if err != nil {
		pods, _, _ := c.Kubectl(ctx, nil, "-n", namespace, "get", "pods", "-o", "wide")
		events, _, _ := c.Kubectl(ctx, nil, "-n", namespace, "get", "events", "--sort-by=.lastTimestamp")
		return fmt.Errorf("%w\npods:\n%s\nevents:\n%s", err, pods, Tail(events, 3000))
	}
	return nil
}

// Tail is the last n bytes of a long output (a command's, a log's), marked
// as cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// PublishHost makes name resolve to ip on this machine (/etc/hosts, restored
// at Stop) and in the cluster (CoreDNS): what a public DNS record does. It
// replaces what an earlier call published for name (a stack deployed again
// gets its load balancer another address; a stale first entry would be
// dialled first).
func (c *Cluster) PublishHost(ctx context.Context, name, ip string) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("PublishHost %s: %q is not an IP address", name, ip)
	}
	return c.setHost(ctx, name, ip)
}

// WithdrawHost undoes PublishHost for name: it resolves nowhere.
func (c *Cluster) WithdrawHost(ctx context.Context, name string) error {
	return c.setHost(ctx, name, "")
}

// setHost points name at ip here and in CoreDNS ("": nowhere).
func (c *Cluster) setHost(ctx context.Context, name, ip string) error {
	c.node.publishMu.Lock()
	defer c.node.publishMu.Unlock()
	if err := c.node.hosts.set(name, ip); err != nil {
		return err
	}
	cm, _, err := c.Kubectl(ctx, nil, "-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.hosts}")
	if err != nil {
		return err
	}
	hosts := withoutHost(cm, name)
	if ip != "" {
		hosts += ip + " " + name + "\n"
	}
	if hosts == cm {
		return nil
	}
	patch := fmt.Sprintf(`{"data":{"hosts":%q}}`, hosts)
	_, _, err = c.Kubectl(ctx, nil, "-n", "kube-system", "patch", "configmap", "coredns", "--type=merge", "-p", patch)
	return err
}

// withoutHost is a hosts file without the lines that map name (an address,
// then name alone), ending in a newline unless empty.
func withoutHost(hosts, name string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(hosts, "\n") {
		fields := strings.Fields(strings.SplitN(l, "#", 2)[0])
		if l == "" || (len(fields) == 2 && fields[1] == name) {
			continue
		}
		b.WriteString(strings.TrimSuffix(l, "\n") + "\n")
	}
	return b.String()
}

// hostsFile adds lines to /etc/hosts and puts the original back.
type hostsFile struct {
	path     string
	mu       sync.Mutex
	original []byte
	saved    bool
}

// set makes name resolve to ip, or to nothing with ip "".
func (h *hostsFile) set(name, ip string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, err := os.ReadFile(h.path)
	if err != nil {
		return err
	}
	if !h.saved {
		h.original, h.saved = cur, true
	}
	cur = []byte(withoutHost(string(cur), name))
	if ip != "" {
		cur = append(cur, []byte(ip+" "+name+" # kcp-tmc cluster e2e\n")...)
	}
	return os.WriteFile(h.path, cur, 0o644)
}

func (h *hostsFile) restore() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.saved {
		return nil
	}
	h.saved = false
	return os.WriteFile(h.path, h.original, 0o644)
}

// loadBalancer gives every Service of type LoadBalancer the next free
// address of LoadBalancerIPs in its status; kube-proxy then routes that
// address to the Service's endpoints.
type loadBalancer struct {
	stopCh chan struct{}
	done   chan struct{}
}

func (c *Cluster) startLoadBalancer() (*loadBalancer, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lb := &loadBalancer{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lb.done)
		for {
			lb.assign(cs)
			select {
			case <-lb.stopCh:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return lb, nil
}

func (lb *loadBalancer) assign(cs kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, s := range svcs.Items {
		for _, in := range s.Status.LoadBalancer.Ingress {
			used[in.IP] = true
		}
	}
	for _, s := range svcs.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer || len(s.Status.LoadBalancer.Ingress) > 0 {
			continue
		}
		for _, ip := range LoadBalancerIPs {
			if used[ip] {
				continue
			}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
			if _, err := cs.CoreV1().Services(s.Namespace).UpdateStatus(ctx, &s, metav1.UpdateOptions{}); err == nil {
				used[ip] = true
			}
			break
		}
	}
}

func (lb *loadBalancer) stop() {
	close(lb.stopCh)
	<-lb.done
}

// LoadBalancerIP waits for the Service's load-balancer address.
func (c *Cluster) LoadBalancerIP(ctx context.Context, namespace, service string) (string, error) {
	var ip string
	err := waitFor(ctx, time.Minute, "load-balancer address of "+namespace+"/"+service, func() error {
		out, _, err := c.Kubectl(ctx, nil, "-n", namespace, "get", "service", service, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if err != nil {
			return err
		}
		if ip = strings.TrimSpace(out); ip == "" {
			return fmt.Errorf("no address yet")
		}
		return nil
	}, func() string { return "" })
	return ip, err
}

// Add-on images: the references the harness's own manifests name.
const (
	CertManagerControllerImage = "quay.io/jetstack/cert-manager-controller:v1.21.2"
	CertManagerWebhookImage    = "quay.io/jetstack/cert-manager-webhook:v1.21.2"
	CertManagerCAInjectorImage = "quay.io/jetstack/cert-manager-cainjector:v1.21.2"
	PrometheusOperatorImage    = "quay.io/prometheus-operator/prometheus-operator:v0.85.0"
	ConfigReloaderImage        = "quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0"
	PrometheusImage            = "quay.io/prometheus/prometheus:v3.16.0"
)

// InstallCRDs server-side applies the CRDs of an upstream source the
// toolchain links beside its binaries (crds/<source>: cert-manager,
// prometheus-operator, gateway-api; too large for client-side apply) and
// waits until they are established.
func (c *Cluster) InstallCRDs(ctx context.Context, source string) error {
	real, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(c.bin), "crds", source)) // kubectl does not follow a linked dir
	if err != nil {
		return err
	}
	if _, _, err := c.Kubectl(ctx, nil, "apply", "--server-side", "--field-manager=kcp-tmc-harness", "-f", real); err != nil {
		return err
	}
	_, _, err = c.Kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	return err
}

// adminServiceAccount is a namespace and a ServiceAccount in it bound to
// cluster-admin: the harness's add-ons are not under test, their RBAC is not.
func adminServiceAccount(namespace, name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kcp-tmc-harness-%[2]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: %[2]s, namespace: %[1]s}]
`, namespace, name)
}
