package kcp

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// CacheName names the separate cache server's Deployment, Service and pods.
var CacheName = shard.Shard{Name: shard.Cache}.Deployment()

// CacheURL is where the shards reach the cache: the separate cache
// server's Service, or (cache nil) the root shard's embedded one, at its
// base URL.
func CacheURL(ns string, cache *shard.Shard) string {
	if cache != nil {
		return BaseURL(ns, *cache)
	}
	return ShardURL(ns)
}

// CacheAnnotation on every kcp server pod names the cache it replicates
// through, so changing kcp.cache.mode rolls every shard.
const CacheAnnotation = "kcp-tmc.io/cache-url"

// cacheSelector labels the separate cache server's pods.
func cacheSelector() map[string]string { return workload.Labels(CacheName) }

// cacheFlags are the cache server's flags; each one cache-server v0.32.3
// registers (kcp_test.go checks them against its list).
func cacheFlags(c server) []string {
	return []string{
		"--root-directory=/var/lib/kcp-cache",
		fmt.Sprintf("--secure-port=%d", APIPort),
		"--tls-cert-file=/etc/kcp-cache/tls/server/tls.crt",
		"--tls-private-key-file=/etc/kcp-cache/tls/server/tls.key",
		// It authorizes system:masters only (the shards' shard-admin identity).
		"--client-ca-file=/etc/kcp-cache/tls/client-ca/ca.crt",
		"--etcd-servers=" + c.etcdURL,
		"--etcd-certfile=/etc/kcp-cache/tls/etcd-client/tls.crt",
		"--etcd-keyfile=/etc/kcp-cache/tls/etcd-client/tls.key",
		"--etcd-cafile=/etc/kcp-cache/tls/etcd-client/ca.crt",
		// It authorizes system:masters alone; its metrics are for Prometheus
		// (its NetworkPolicy lets only the shards and monitoring in).
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
		"--logging-format=json",
	}
}

func cachePod(a Args) *corev1.PodTemplateSpecArgs {
	c := serverOf(a.Namespace, *a.Cache)
	return podSpec(a, CacheName, CacheName, nil, CacheStopSeconds, corev1.ContainerArgs{
		Name:    pulumi.String(CacheName),
		Image:   pulumi.String(a.Image + ":" + a.Version),
		Command: pulumi.ToStringArray([]string{"/cache-server"}),
		Args:    pulumi.ToStringArray(cacheFlags(c)),
		Ports: corev1.ContainerPortArray{
			corev1.ContainerPortArgs{Name: pulumi.String("https"), ContainerPort: pulumi.Int(APIPort)},
		},
		StartupProbe:   httpsProbe("/readyz", "https", 5, 60),
		LivenessProbe:  httpsProbe("/livez", "https", 10, 3),
		ReadinessProbe: httpsProbe("/readyz", "https", 5, 3),
		Resources:      c.Resources.Args(),
		VolumeMounts: corev1.VolumeMountArray{
			mount("tls-server", "/etc/kcp-cache/tls/server"),
			mount("tls-client-ca", "/etc/kcp-cache/tls/client-ca"),
			mount("tls-etcd-client", "/etc/kcp-cache/tls/etcd-client"),
			writable("data", "/var/lib/kcp-cache"),
			writable("tmp", "/tmp"),
		},
	}, corev1.VolumeArray{
		workload.SecretVolume("tls-server", c.serverSecret),
		workload.SecretItemsVolume("tls-client-ca", a.Certs.ClientCA, "ca.crt"),
		workload.SecretVolume("tls-etcd-client", a.Certs.EtcdClient),
		workload.EmptyDir("data", "256Mi"),
		workload.EmptyDir("tmp", "256Mi"),
	})
}

// validateCache checks kcp.cache (children named by the stack's keys).
func (a Args) validateCache(fld *field.Path) field.ErrorList {
	c := a.Cache
	if c == nil {
		return nil
	}
	return a.validateServers(fld, *c)
}
