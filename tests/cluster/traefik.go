package cluster

// Traefik as a Gateway API implementation on the node, as its helm chart
// runs it with the Gateway provider on: the `websecure` entry point on 8443
// behind a LoadBalancer Service on 443, and the Gateways it programs
// reporting that Service's address (what external-dns's gateway sources
// publish, and what kcp-tmc's up reaches kcp at).

import (
	"context"
	"fmt"
	"time"
)

const (
	// TraefikImage is the reference the harness's Traefik Deployment names
	// (Docker Hub's official image).
	TraefikImage = "docker.io/library/traefik:v3.7.9"
	// TraefikNamespace holds Traefik and its LoadBalancer Service.
	TraefikNamespace = "traefik"
	// TraefikGatewayClass is the GatewayClass Traefik serves.
	TraefikGatewayClass = "traefik"
	// TraefikEntryPointPort is the port of the chart's websecure entry
	// point: a Gateway's listeners take it (docs/ingress.md).
	TraefikEntryPointPort = 8443
	// traefikController is the controllerName Traefik's Gateway provider
	// serves GatewayClasses of (its pkg/provider/kubernetes/gateway).
	traefikController = "traefik.io/gateway-controller"
)

// TraefikImageOf is Traefik's image from its release binary (static).
func TraefikImageOf(bin string) Image {
	return Image{Ref: TraefikImage, Files: []File{{"/usr/local/bin/traefik", bin}}, Entrypoint: []string{"/usr/local/bin/traefik"}, User: "65532"}
}

// InstallTraefik runs Traefik v3.7.9 with its Gateway provider and the
// GatewayClass it serves; it returns the address of its load balancer once
// Traefik is Ready. Flags from v3.7.9's static configuration
// (pkg/config/static, pkg/provider/kubernetes/gateway: statusAddress).
func (c *Cluster) InstallTraefik(ctx context.Context) (string, error) {
	manifest := adminServiceAccount(TraefikNamespace, "traefik") + fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: traefik}}
  template:
    metadata: {labels: {app: traefik}}
    spec:
      serviceAccountName: traefik
      securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: traefik
        image: %[2]s
        args:
        - --entryPoints.websecure.address=:%[3]d
        - --entryPoints.traefik.address=:9000
        - --ping=true
        - --providers.kubernetesGateway=true
        - --providers.kubernetesGateway.statusAddress.service.name=traefik
        - --providers.kubernetesGateway.statusAddress.service.namespace=%[1]s
        - --log.level=INFO
        ports: [{name: websecure, containerPort: %[3]d}]
        readinessProbe: {httpGet: {path: /ping, port: 9000}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: traefik, namespace: %[1]s}
spec:
  type: LoadBalancer
  selector: {app: traefik}
  ports: [{name: websecure, port: 443, targetPort: %[3]d, protocol: TCP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: %[4]s}
spec: {controllerName: %[5]s}
`, TraefikNamespace, TraefikImage, TraefikEntryPointPort, TraefikGatewayClass, traefikController)
	if err := c.Apply(ctx, manifest); err != nil {
		return "", err
	}
	if err := c.WaitRollout(ctx, TraefikNamespace, "deployment/traefik", 3*time.Minute); err != nil {
		return "", fmt.Errorf("%w\nits log:\n%s", err, c.podLog(ctx, TraefikNamespace, "deployment/traefik"))
	}
	return c.LoadBalancerIP(ctx, TraefikNamespace, "traefik")
}

// RemoveTraefik deletes Traefik, its Service (the load-balancer address
// goes back to the pool) and its GatewayClass.
func (c *Cluster) RemoveTraefik(ctx context.Context) error {
	if _, _, err := c.Kubectl(ctx, nil, "delete", "gatewayclass", TraefikGatewayClass, "--ignore-not-found", "--wait=false"); err != nil {
		return err
	}
	_, _, err := c.Kubectl(ctx, nil, "delete", "namespace", TraefikNamespace, "--ignore-not-found", "--timeout=2m")
	return err
}

// podLog is the tail of a workload's log, for an error.
func (c *Cluster) podLog(ctx context.Context, namespace, workload string) string {
	out, stderr, _ := c.Kubectl(ctx, nil, "-n", namespace, "logs", workload, "--all-containers", "--tail=100")
	return Tail(out+stderr, 6000)
}
