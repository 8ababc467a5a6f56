package cluster

import (
	"bytes"
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
// cluster: CoreDNS, local persistent volumes behind StorageClass "standard",
// and a load balancer that gives Services of type LoadBalancer an address
// kube-proxy routes (what MetalLB does, without announcing it: the address
// is reachable from this machine only).

const (
	// CoreDNSImage is the reference the CoreDNS Deployment names.
	CoreDNSImage = "registry.k8s.io/coredns/coredns:v1.15.0"
	// localVolumes is how many local PersistentVolumes the node offers.
	localVolumes = 12
)

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
	return nil
}

// Apply server-side applies YAML to the cluster as the harness.
func (c *Cluster) Apply(ctx context.Context, yaml string) error {
	_, _, err := c.Kubectl(ctx, []byte(yaml), "apply", "--server-side", "--force-conflicts", "--field-manager=kcp-tmc-harness", "-f", "-")
	return err
}

// installLocalVolumes offers local PersistentVolumes (directories on this
// machine, bound when a Pod is scheduled) as StorageClass "standard", the
// dev stack's class. Local volumes honour fsGroup, as cloud disks do.
func (c *Cluster) installLocalVolumes(ctx context.Context) error {
	var b strings.Builder
	b.WriteString(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
`)
	for i := range localVolumes {
		dir := filepath.Join(c.Dir, "volumes", fmt.Sprintf("pv-%02d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-%02d}
spec:
  capacity: {storage: 200Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  local: {path: %q}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [%s]}]
`, i, dir, NodeName)
	}
	return c.Apply(ctx, b.String())
}

// installCoreDNS runs CoreDNS as upstream's manifest does (kube-dns Service
// at DNSServiceIP), listening on 1053 so it needs no capability. Names a
// test publishes (PublishHost) resolve from a hosts file it reloads.
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
    .:1053 {
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
      securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: %s
        args: [-conf, /etc/coredns/Corefile]
        ports: [{containerPort: 1053, protocol: UDP, name: dns}, {containerPort: 1053, protocol: TCP, name: dns-tcp}]
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
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
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
		return fmt.Errorf("%w\npods:\n%s\nevents:\n%s", err, pods, tail(events, 3000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// PublishHost makes name resolve to ip on this machine (/etc/hosts, restored
// at Stop) and in the cluster (CoreDNS): what a public DNS record does.
func (c *Cluster) PublishHost(ctx context.Context, name, ip string) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("PublishHost %s: %q is not an IP address", name, ip)
	}
	if err := c.node.hosts.add(name, ip); err != nil {
		return err
	}
	cm, _, err := c.Kubectl(ctx, nil, "-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.hosts}")
	if err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"data":{"hosts":%q}}`, cm+ip+" "+name+"\n")
	_, _, err = c.Kubectl(ctx, nil, "-n", "kube-system", "patch", "configmap", "coredns", "--type=merge", "-p", patch)
	return err
}

// hostsFile adds lines to /etc/hosts and puts the original back.
type hostsFile struct {
	path     string
	mu       sync.Mutex
	original []byte
	saved    bool
}

func (h *hostsFile) add(name, ip string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, err := os.ReadFile(h.path)
	if err != nil {
		return err
	}
	if !h.saved {
		h.original, h.saved = cur, true
	}
	if len(cur) > 0 && !bytes.HasSuffix(cur, []byte("\n")) {
		cur = append(cur, '\n')
	}
	cur = append(cur, []byte(ip+" "+name+" # kcp-tmc cluster e2e\n")...)
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

// InstallCRDs server-side applies the upstream CRDs of dir (too large for
// client-side apply) and waits until they are established.
func (c *Cluster) InstallCRDs(ctx context.Context, dir string) error {
	real, err := filepath.EvalSymlinks(dir) // kubectl does not follow a linked dir
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

// CertManagerBins are cert-manager's three release binaries, each at the
// path its upstream image runs it from.
type CertManagerBins struct{ Controller, Webhook, CAInjector string }

// certManagerWebhook is the webhook's Service, named as the helm chart names
// it for a release called cert-manager: its serving certificate's DNS names
// and the webhook configurations' clientConfig come from it.
const certManagerWebhook = "cert-manager-webhook"

// InstallCertManager runs cert-manager as its helm chart does: the
// controller, the webhook (validating and mutating every cert-manager.io
// object, failurePolicy Fail) and the cainjector that puts the webhook's CA
// into those configurations. It returns once the webhook judges requests, so
// every Certificate and Issuer the stack applies passes cert-manager's own
// validation. The add-ons run with cluster-admin: their RBAC is not under test.
func (c *Cluster) InstallCertManager(ctx context.Context) error {
	manifest := adminServiceAccount("cert-manager", "cert-manager") + fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cert-manager, namespace: cert-manager}
spec:
  replicas: 1
  selector: {matchLabels: {app: cert-manager}}
  template:
    metadata: {labels: {app: cert-manager}}
    spec:
      serviceAccountName: cert-manager
      securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: controller
        image: %[1]s
        args: [--v=2, --leader-elect=false, --cluster-resource-namespace=cert-manager]
        livenessProbe: {httpGet: {path: /livez, port: 9403}, periodSeconds: 10}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cert-manager-cainjector, namespace: cert-manager}
spec:
  replicas: 1
  selector: {matchLabels: {app: cainjector}}
  template:
    metadata: {labels: {app: cainjector}}
    spec:
      serviceAccountName: cert-manager
      securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: cainjector
        image: %[2]s
        args: [--v=2, --leader-elect=false]
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[4]s, namespace: cert-manager}
spec:
  replicas: 1
  selector: {matchLabels: {app: webhook}}
  template:
    metadata: {labels: {app: webhook}}
    spec:
      serviceAccountName: cert-manager
      securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: webhook
        image: %[3]s
        args:
        - --v=2
        - --secure-port=10250
        - --dynamic-serving-ca-secret-namespace=cert-manager
        - --dynamic-serving-ca-secret-name=%[4]s-ca
        - --dynamic-serving-dns-names=%[4]s
        - --dynamic-serving-dns-names=%[4]s.cert-manager
        - --dynamic-serving-dns-names=%[4]s.cert-manager.svc
        ports:
        - {name: https, containerPort: 10250}
        - {name: healthcheck, containerPort: 6080}
        livenessProbe: {httpGet: {path: /livez, port: healthcheck}, initialDelaySeconds: 60, periodSeconds: 10}
        readinessProbe: {httpGet: {path: /healthz, port: healthcheck}, initialDelaySeconds: 5, periodSeconds: 5}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: %[4]s, namespace: cert-manager}
spec:
  selector: {app: webhook}
  ports: [{name: https, port: 443, targetPort: https}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: %[4]s
  annotations: {cert-manager.io/inject-ca-from-secret: cert-manager/%[4]s-ca}
webhooks:
- name: webhook.cert-manager.io
  rules: [{apiGroups: [cert-manager.io, acme.cert-manager.io], apiVersions: [v1], operations: [CREATE, UPDATE], resources: ["*/*"]}]
  admissionReviewVersions: [v1]
  matchPolicy: Equivalent
  timeoutSeconds: 30
  failurePolicy: Fail
  sideEffects: None
  clientConfig: {service: {name: %[4]s, namespace: cert-manager, path: /validate}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: %[4]s
  annotations: {cert-manager.io/inject-ca-from-secret: cert-manager/%[4]s-ca}
webhooks:
- name: webhook.cert-manager.io
  rules: [{apiGroups: [cert-manager.io], apiVersions: [v1], operations: [CREATE], resources: [certificaterequests]}]
  admissionReviewVersions: [v1]
  matchPolicy: Equivalent
  timeoutSeconds: 30
  failurePolicy: Fail
  sideEffects: None
  clientConfig: {service: {name: %[4]s, namespace: cert-manager, path: /mutate}}
`, CertManagerControllerImage, CertManagerCAInjectorImage, CertManagerWebhookImage, certManagerWebhook)
	if err := c.Apply(ctx, manifest); err != nil {
		return err
	}
	for _, d := range []string{"cert-manager", "cert-manager-cainjector", certManagerWebhook} {
		if err := c.WaitRollout(ctx, "cert-manager", "deployment/"+d, 3*time.Minute); err != nil {
			return err
		}
	}
	return c.waitCertManagerWebhook(ctx)
}

// waitCertManagerWebhook waits until the apiserver sends cert-manager objects
// to the webhook and trusts it (the cainjector has injected its CA): a
// Certificate that the CRD's schema admits but names no subject is refused
// by the webhook's validation, not stored.
func (c *Cluster) waitCertManagerWebhook(ctx context.Context) error {
	invalid := `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: kcp-tmc-harness-webhook-check, namespace: cert-manager}
spec: {secretName: kcp-tmc-harness-webhook-check, issuerRef: {name: any}}
`
	var last string
	return waitFor(ctx, 3*time.Minute, "cert-manager's webhook judging requests", func() error {
		_, stderr, err := c.Kubectl(ctx, []byte(invalid), "create", "--dry-run=server", "-f", "-")
		last = stderr
		if err == nil {
			return fmt.Errorf("a Certificate naming no subject was accepted: the webhook is not called")
		}
		if !strings.Contains(stderr, `admission webhook "webhook.cert-manager.io" denied the request`) {
			return fmt.Errorf("not yet denied by the webhook")
		}
		return nil
	}, func() string { return last })
}

// InstallPrometheus runs prometheus-operator and one Prometheus that selects
// every ServiceMonitor and PrometheusRule in every namespace, as a
// kube-prometheus-stack install does.
func (c *Cluster) InstallPrometheus(ctx context.Context) error {
	manifest := adminServiceAccount("monitoring", "prometheus-operator") + fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus-operator, namespace: monitoring}
spec:
  replicas: 1
  selector: {matchLabels: {app: prometheus-operator}}
  template:
    metadata: {labels: {app: prometheus-operator}}
    spec:
      serviceAccountName: prometheus-operator
      securityContext: {runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: operator
        image: %s
        args: [--prometheus-config-reloader=%s]
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus, namespace: monitoring}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kcp-tmc-harness-prometheus}
rules:
- {apiGroups: [""], resources: [nodes, nodes/metrics, services, endpoints, pods], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [configmaps], verbs: [get]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [ingresses], verbs: [get, list, watch]}
- {nonResourceURLs: [/metrics], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kcp-tmc-harness-prometheus}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kcp-tmc-harness-prometheus}
subjects: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]
`, PrometheusOperatorImage, ConfigReloaderImage)
	if err := c.Apply(ctx, manifest); err != nil {
		return err
	}
	if err := c.WaitRollout(ctx, "monitoring", "deployment/prometheus-operator", 3*time.Minute); err != nil {
		return err
	}
	prom := fmt.Sprintf(`apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: k8s, namespace: monitoring}
spec:
  image: %s
  version: v3.16.0
  replicas: 1
  serviceAccountName: prometheus
  securityContext: {runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, fsGroup: 65534}
  scrapeInterval: 5s
  evaluationInterval: 5s
  serviceMonitorSelector: {}
  serviceMonitorNamespaceSelector: {}
  ruleSelector: {}
  ruleNamespaceSelector: {}
`, PrometheusImage)
	if err := c.Apply(ctx, prom); err != nil {
		return err
	}
	return waitFor(ctx, 3*time.Minute, "Prometheus k8s running", func() error {
		_, _, err := c.Kubectl(ctx, nil, "-n", "monitoring", "rollout", "status", "statefulset/prometheus-k8s", "--timeout=5s")
		return err
	}, func() string {
		pods, _, _ := c.Kubectl(ctx, nil, "-n", "monitoring", "get", "pods", "-o", "wide")
		return pods
	})
}

// AddonImages are the images of the node's add-ons, from the toolchain's
// binaries in binDir and cert-manager's release binaries.
func AddonImages(binDir, pauseBin string, certManager CertManagerBins) []Image {
	bin := func(name string) string { return filepath.Join(binDir, name) }
	return []Image{
		{Ref: PauseImage, Files: []File{{"/pause", pauseBin}}, Entrypoint: []string{"/pause"}, User: "65535"},
		{Ref: CoreDNSImage, Files: []File{{"/coredns", bin("coredns")}}, Entrypoint: []string{"/coredns"}, User: "65532"},
		certManagerImage(CertManagerControllerImage, "controller", certManager.Controller),
		certManagerImage(CertManagerWebhookImage, "webhook", certManager.Webhook),
		certManagerImage(CertManagerCAInjectorImage, "cainjector", certManager.CAInjector),
		{Ref: PrometheusOperatorImage, Files: []File{{"/bin/operator", bin("operator")}}, Entrypoint: []string{"/bin/operator"}, User: "65534"},
		{Ref: ConfigReloaderImage, Files: []File{{"/bin/prometheus-config-reloader", bin("prometheus-config-reloader")}},
			Entrypoint: []string{"/bin/prometheus-config-reloader"}, User: "65534"},
		{Ref: PrometheusImage, Files: []File{{"/bin/prometheus", bin("prometheus-kubernetes")}},
			Entrypoint: []string{"/bin/prometheus"}, User: "65534"},
	}
}

// certManagerImage lays a cert-manager binary out as its Containerfile does.
func certManagerImage(ref, name, bin string) Image {
	path := "/app/cmd/" + name + "/" + name
	return Image{Ref: ref, Files: []File{{path, bin}}, Entrypoint: []string{path}, User: "65532"}
}
