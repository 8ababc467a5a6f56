package cluster

// cert-manager and Prometheus from the pinned modules' binaries, as the
// stacks install them on a real cluster.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

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

// PrometheusSelectorKey and PrometheusSelectorValue are the one label the
// cluster's Prometheus selects ServiceMonitors and PrometheusRules by, in
// every namespace, as a kube-prometheus-stack install does by default
// (release: <its release>): what the stack does not label is not scraped.
const PrometheusSelectorKey, PrometheusSelectorValue = "release", "kcp-tmc-e2e"

// PrometheusNamespace is where the node's Prometheus runs: not kcp-tmc's
// default (`monitoring`), so that every scrape through the stack's
// NetworkPolicies proves monitoring.namespace reaches them all.
const PrometheusNamespace = "observability"

// InstallPrometheus runs prometheus-operator and one Prometheus that selects
// by PrometheusSelectorKey.
func (c *Cluster) InstallPrometheus(ctx context.Context) error {
	manifest := adminServiceAccount(PrometheusNamespace, "prometheus-operator") + fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus-operator, namespace: %[3]s}
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
        image: %[1]s
        args: [--prometheus-config-reloader=%[2]s]
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus, namespace: %[3]s}
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
subjects: [{kind: ServiceAccount, name: prometheus, namespace: %[3]s}]
`, PrometheusOperatorImage, ConfigReloaderImage, PrometheusNamespace)
	if err := c.Apply(ctx, manifest); err != nil {
		return err
	}
	if err := c.WaitRollout(ctx, PrometheusNamespace, "deployment/prometheus-operator", 3*time.Minute); err != nil {
		return err
	}
	prom := fmt.Sprintf(`apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: k8s, namespace: %[4]s}
spec:
  image: %[1]s
  version: v3.16.0
  replicas: 1
  serviceAccountName: prometheus
  securityContext: {runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, fsGroup: 65534}
  scrapeInterval: 5s
  evaluationInterval: 5s
  serviceMonitorSelector: {matchLabels: {%[2]s: %[3]s}}
  serviceMonitorNamespaceSelector: {}
  podMonitorSelector: {matchLabels: {%[2]s: %[3]s}}
  podMonitorNamespaceSelector: {}
  ruleSelector: {matchLabels: {%[2]s: %[3]s}}
  ruleNamespaceSelector: {}
`, PrometheusImage, PrometheusSelectorKey, PrometheusSelectorValue, PrometheusNamespace)
	if err := c.Apply(ctx, prom); err != nil {
		return err
	}
	return waitFor(ctx, 3*time.Minute, "Prometheus k8s running", func() error {
		_, _, err := c.Kubectl(ctx, nil, "-n", PrometheusNamespace, "rollout", "status", "statefulset/prometheus-k8s", "--timeout=5s")
		return err
	}, func() string {
		pods, _, _ := c.Kubectl(ctx, nil, "-n", PrometheusNamespace, "get", "pods", "-o", "wide")
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

// PrometheusIP is the harness Prometheus's pod address: this machine
// reaches it on port 9090.
func (c *Cluster) PrometheusIP(ctx context.Context) (string, error) {
	ip, _, err := c.Kubectl(ctx, nil, "-n", PrometheusNamespace, "get", "pod", "prometheus-k8s-0", "-o", "jsonpath={.status.podIP}")
	if err == nil && ip == "" {
		err = fmt.Errorf("prometheus-k8s-0 has no address yet")
	}
	return ip, err
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// PromQuery runs an instant query on the Prometheus at ip.
func PromQuery(ip, query string) ([]Sample, error) {
	resp, err := http.Get("http://" + ip + ":9090/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"` // [time, "value"]
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", query, body.Error)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s := Sample{Metric: r.Metric}
		if v, ok := r.Value[1].(string); ok {
			s.Value, _ = strconv.ParseFloat(v, 64)
		}
		out = append(out, s)
	}
	return out, nil
}
