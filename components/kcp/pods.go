package kcp

// The pods of kcp's Deployments: every shard's server, and the front-proxy.

import (
	"fmt"
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// shardServerFlags are a kcp server's flags (the ones the kcp helm chart
// passes). Each must be one kcp v0.32.3 registers: it exits on an unknown
// flag, and it registers only an allow-list of kube-apiserver's (kcp_test.go
// checks every flag against that list).
func shardServerFlags(a Args, s server) []string {
	host := PublicHost(a.Domain)
	au := a.Audit
	flags := []string{
		"--etcd-servers=" + s.etcdURL,
		"--etcd-certfile=/etc/kcp/tls/etcd-client/tls.crt",
		"--etcd-keyfile=/etc/kcp/tls/etcd-client/tls.key",
		"--etcd-cafile=/etc/kcp/tls/etcd-client/ca.crt",
		"--tls-cert-file=/etc/kcp/tls/server/tls.crt",
		"--tls-private-key-file=/etc/kcp/tls/server/tls.key",
		// The CA that signs the serving certificate (ca.crt of its Secret in
		// both PKI modes). Without it kcp publishes the serving leaf itself as
		// the root CA (kube-root-ca.crt, token secrets) and trusts that leaf
		// for its own virtual-workspace calls (pkg/server/controllers.go).
		"--root-ca-file=/etc/kcp/tls/server/ca.crt",
		"--client-ca-file=/etc/kcp/tls/client-ca/ca.crt",
		"--requestheader-client-ca-file=/etc/kcp/tls/requestheader-ca/ca.crt",
		"--requestheader-allowed-names=kcp-front-proxy",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-account-key-file=/etc/kcp/tls/service-account/tls.crt",
		"--service-account-private-key-file=/etc/kcp/tls/service-account/tls.key",
		"--root-directory=/var/lib/kcp",
		"--shard-base-url=" + BaseURL(a.Namespace, s.Shard),
		"--shard-external-url=https://" + host + ":443",
	}
	// Where APIExportEndpointSlices send agents for the workspaces on this
	// shard. The default (--shard-base-url) is an in-cluster name no agent
	// on another cluster can resolve. The root shard's is the front door,
	// which routes /services/ to it; the front-proxy cannot route /services/
	// by shard (kcp v0.32.3: one backend per path), so another shard's is
	// its own public address, routed by the ingress straight to it. kcp
	// itself calls this URL only with an external virtual-workspace server,
	// which it does not run here (pkg/server/controllers.go).
	vw := "https://" + host + ":443"
	if !s.IsRoot() {
		vw = "https://" + s.PublicHost(PublicHost(a.Domain)) + ":443"
	}
	flags = append(flags, "--shard-virtual-workspace-url="+vw)
	switch {
	case !s.IsRoot():
		flags = append(flags, shardFlags(s)...)
	case a.Cache != nil:
		// The root shard too replicates through the separate cache.
		flags = append(flags, cacheKubeconfigFlag)
	}
	flags = append(flags, adminFlags()...)
	return append(flags,
		"--enable-leader-election",
		// At SIGTERM the pod has drained already; without this kcp waits up
		// to its request timeout (60 s) for open watches (agents', the
		// front-proxy's) and is killed at StopSeconds instead of exiting
		// (seen on the node: a shard took 41 s to stop). With it, it closes
		// them 2 s after its last short request ends; clients re-watch.
		"--shutdown-send-retry-after=true",
		"--logging-format=json",
		"--audit-policy-file=/etc/kcp/audit/policy.yaml",
		"--audit-log-path=/var/log/kcp/audit.log",
		"--audit-log-maxage="+strconv.Itoa(au.MaxAgeDays),
		"--audit-log-maxsize="+strconv.Itoa(au.MaxSizeMB),
		"--audit-log-maxbackup="+strconv.Itoa(au.MaxBackups),
		// Explicit, because kcp's defaults are for trying it out: home
		// workspaces make every authenticated identity cluster-admin of one,
		// and the default "admin" battery writes a system:masters kubeconfig
		// into every pod's root directory. The kcp-admin certificate of the
		// PKI is the admin identity; workspace-types keeps the organization
		// and team WorkspaceTypes.
		"--enable-home-workspaces="+strconv.FormatBool(a.HomeWorkspaces),
		"--batteries-included=workspace-types",
	)
}

// serverArgs are a shard's generated flags and then the user's extra ones.
func serverArgs(a Args, s server) []string {
	return append(generatedServerFlags(a, s), a.ExtraFlags...)
}

// generatedServerFlags are a shard's flags plus the optional sign-in flags.
func generatedServerFlags(a Args, s server) []string {
	f := shardServerFlags(a, s)
	if a.OIDC != nil {
		f = append(f, a.OIDC.flags(oidcDir(ServerName))...)
	}
	return f
}

// oidcDir is where a pod mounts the OIDC CA bundle.
func oidcDir(component string) string { return "/etc/" + component + "/oidc" }

// httpsProbe checks an HTTPS path on a named port (kcp allows anonymous health checks).
func httpsProbe(path, port string, period, failures int) *corev1.ProbeArgs {
	return &corev1.ProbeArgs{
		HttpGet:          &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String(port), Scheme: pulumi.String("HTTPS")},
		PeriodSeconds:    pulumi.Int(period),
		TimeoutSeconds:   pulumi.Int(5),
		FailureThreshold: pulumi.Int(failures),
	}
}

func mount(name, path string) corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(name), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(true)}
}

func writable(name, path string) corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(name), MountPath: pulumi.String(path)}
}

// drainSeconds is how long a pod told to stop (a rollout, a drained node,
// the front-proxy's weekly restart) goes on serving before its program
// gets SIGTERM: the time its Service's endpoints (kube-proxy, a load
// balancer, an ingress controller) take to stop sending it new
// connections. kcp and the front-proxy close their listener on SIGTERM, so
// without it the connections opened in that window are refused and the
// requests on them fail (tests/clustere2e TestDisruptionsUnderLoad). The
// kubelet sleeps (preStop sleep): the images hold no shell.
const drainSeconds = 10

// StopSeconds is how long a kcp server or the front-proxy has after
// SIGTERM (the drain done) before the kubelet kills it.
const StopSeconds = 30

// CacheStopSeconds is the cache server's: cache-server v0.32.3 registers
// no --shutdown-send-retry-after and fixes its request timeout at 60 s, so
// it waits that long for the shards' open watches before it closes them
// (timed by tests/e2e TestShardedStackWithSeparateCacheRuns: 60.0 s). Its
// grace covers that with 5 s to spare instead of killing it at StopSeconds.
const CacheStopSeconds = 65

// podSpec is the pod of a kcp-tmc server whose program has stopSeconds
// after SIGTERM (the drain done) before the kubelet kills it.
func podSpec(a Args, component, serviceAccount string, role map[string]string, stopSeconds int, c corev1.ContainerArgs, volumes corev1.VolumeArray) *corev1.PodTemplateSpecArgs {
	labels := workload.Labels(component)
	podLabels := pulumi.ToStringMap(labels)
	for k, v := range role {
		podLabels[k] = pulumi.String(v)
	}
	c.ImagePullPolicy = pulumi.String("Always")
	if a.OIDC != nil && a.OIDC.CABundle != "" {
		c.VolumeMounts = append(c.VolumeMounts.(corev1.VolumeMountArray), mount("oidc-ca", oidcDir(serviceAccount)))
		volumes = append(volumes, workload.ConfigMapVolume("oidc-ca", oidcCAConfigMap))
	}
	c.SecurityContext = workload.ContainerSecurityContext()
	c.Lifecycle = &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{
		Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(drainSeconds)}}}
	return &corev1.PodTemplateSpecArgs{
		Metadata: &metav1.ObjectMetaArgs{Labels: podLabels},
		Spec: &corev1.PodSpecArgs{
			ServiceAccountName:            pulumi.String(serviceAccount),
			AutomountServiceAccountToken:  pulumi.Bool(false),
			SecurityContext:               workload.PodSecurityContext(),
			Affinity:                      workload.Affinity(labels, a.Spread),
			TopologySpreadConstraints:     workload.TopologySpread(labels, a.Spread),
			TerminationGracePeriodSeconds: pulumi.Int(drainSeconds + stopSeconds),
			Containers:                    corev1.ContainerArray{c},
			Volumes:                       volumes,
		},
	}
}

// servers are the root shard (from Args) and the other shards.
func (a Args) servers() []server {
	out := []server{{Shard: shard.Shard{Name: shard.Root, Replicas: a.Replicas, Resources: a.Resources},
		etcdURL: a.EtcdURL, etcdSelector: a.EtcdSelector, serverSecret: a.Certs.Server}}
	for _, s := range a.Shards {
		out = append(out, serverOf(a.Namespace, s))
	}
	return out
}

// serverPod is a pod of shard s.
func serverPod(a Args, s server) *corev1.PodTemplateSpecArgs {
	identities := []struct{ dir, secret string }{
		{"logical-cluster-admin", a.Certs.LogicalClusterAdmin},
		{"external-logical-cluster-admin", a.Certs.ExternalLogicalClusterAdmin},
	}
	if !s.IsRoot() || a.Cache != nil {
		identities = append(identities, struct{ dir, secret string }{"shard-admin", a.Certs.ShardAdmin})
	}
	mounts := corev1.VolumeMountArray{
		mount("tls-server", "/etc/kcp/tls/server"),
		mount("tls-etcd-client", "/etc/kcp/tls/etcd-client"),
		mount("tls-client-ca", "/etc/kcp/tls/client-ca"),
		mount("tls-requestheader-ca", "/etc/kcp/tls/requestheader-ca"),
		mount("tls-service-account", "/etc/kcp/tls/service-account"),
		mount("kubeconfigs", kubeconfigDir),
		mount("audit-policy", "/etc/kcp/audit"),
		writable("data", "/var/lib/kcp"),
		writable("audit-log", "/var/log/kcp"),
		writable("tmp", "/tmp"),
	}
	volumes := corev1.VolumeArray{
		workload.SecretVolume("tls-server", s.serverSecret),
		workload.SecretVolume("tls-etcd-client", a.Certs.EtcdClient),
		workload.SecretItemsVolume("tls-client-ca", a.Certs.ClientCA, "ca.crt"),
		workload.SecretItemsVolume("tls-requestheader-ca", a.Certs.RequestHeaderCA, "ca.crt"),
		workload.SecretVolume("tls-service-account", a.Certs.ServiceAccount),
		workload.ConfigMapVolume("kubeconfigs", shardKubeconfigCM),
		workload.ConfigMapVolume("audit-policy", "kcp-audit-policy"),
		workload.EmptyDir("data", "1Gi"),
		// Room for every rotated audit file plus the live one.
		workload.EmptyDir("audit-log", strconv.Itoa((a.Audit.MaxBackups+2)*a.Audit.MaxSizeMB)+"Mi"),
		workload.EmptyDir("tmp", "256Mi"),
	}
	for _, id := range identities {
		mounts = append(mounts, mount("tls-"+id.dir, "/etc/kcp/tls/"+id.dir))
		volumes = append(volumes, workload.SecretItemsVolume("tls-"+id.dir, id.secret, "tls.crt", "tls.key"))
	}
	pod := podSpec(a, s.Deployment(), ServerName, ServerRole, StopSeconds, corev1.ContainerArgs{
		Name:    pulumi.String(ServerName),
		Image:   pulumi.String(a.Image + ":" + a.Version),
		Command: pulumi.ToStringArray([]string{"/kcp", "start"}),
		Args:    pulumi.ToStringArray(serverArgs(a, s)),
		Ports: corev1.ContainerPortArray{
			corev1.ContainerPortArgs{Name: pulumi.String("https"), ContainerPort: pulumi.Int(APIPort)},
		},
		StartupProbe:   httpsProbe("/readyz", "https", 5, 60),
		LivenessProbe:  httpsProbe("/livez", "https", 10, 3),
		ReadinessProbe: httpsProbe("/readyz", "https", 5, 3),
		Resources:      s.Resources.Args(),
		VolumeMounts:   mounts,
	}, volumes)
	// kcp reads its kubeconfigs once, at start: a pod whose cache moves
	// (kcp.cache.mode) must restart, though its flags stay the same.
	pod.Metadata.(*metav1.ObjectMetaArgs).Annotations = pulumi.StringMap{CacheAnnotation: pulumi.String(CacheURL(a.Namespace, a.Cache))}
	return pod
}

// frontProxyArgs are the front-proxy's generated flags.
func frontProxyArgs(a Args) []string {
	args := []string{
		fmt.Sprintf("--secure-port=%d", FrontProxyPort),
		"--tls-cert-file=/etc/kcp-front-proxy/tls/server/tls.crt",
		"--tls-private-key-file=/etc/kcp-front-proxy/tls/server/tls.key",
		"--client-ca-file=/etc/kcp-front-proxy/tls/client-ca/ca.crt",
		"--mapping-file=/etc/kcp-front-proxy/config/mapping.yaml",
		"--root-kubeconfig=/etc/kcp-front-proxy/config/kubeconfig",
		"--shards-kubeconfig=/etc/kcp-front-proxy/config/kubeconfig",
		"--logging-format=json",
	}
	if a.Certs.FrontProxyPublic != "" {
		args = append(args, "--tls-sni-cert-key=/etc/kcp-front-proxy/tls/public/tls.crt,/etc/kcp-front-proxy/tls/public/tls.key:"+PublicHost(a.Domain))
	}
	if a.OIDC != nil {
		args = append(args, a.OIDC.flags(oidcDir(FrontProxyName))...)
	}
	if frontProxyVerifiesTokens(a) {
		args = append(args, "--service-account-key-file=/etc/kcp-front-proxy/tls/service-account/tls.crt")
	}
	return args
}

// frontProxyVerifiesTokens: the front-proxy authenticates ServiceAccount
// tokens itself only where it must. kcp v0.32.3's front-proxy passes a
// request without a client certificate through to the shard, which
// authenticates the token (any shard's: kcp's cross-shard ServiceAccount
// cache), unless the front-proxy has a token authenticator of its own
// (pkg/proxy/filters WithOptionalAuthentication). With OIDC it has one,
// and must then verify ServiceAccount tokens too or refuse them all; but
// it looks their Secrets up on the root shard only (pkg/proxy/options
// authentication.go), so with OIDC a ServiceAccount of a workspace on
// another shard cannot authenticate through the front door (stacks refuse
// an agent there).
func frontProxyVerifiesTokens(a Args) bool { return a.OIDC != nil }

func frontProxyPod(a Args) *corev1.PodTemplateSpecArgs {
	args := append(frontProxyArgs(a), a.FrontProxyExtraFlags...)
	mounts := corev1.VolumeMountArray{
		mount("tls-server", "/etc/kcp-front-proxy/tls/server"),
		mount("tls-client", "/etc/kcp-front-proxy/tls/client"),
		mount("tls-kubeconfig", "/etc/kcp-front-proxy/tls/kubeconfig"),
		mount("tls-client-ca", "/etc/kcp-front-proxy/tls/client-ca"),
		mount("tls-server-ca", "/etc/kcp-front-proxy/tls/server-ca"),
		mount("config", "/etc/kcp-front-proxy/config"),
		writable("tmp", "/tmp"),
	}
	volumes := corev1.VolumeArray{
		workload.SecretVolume("tls-server", a.Certs.FrontProxy),
		workload.SecretVolume("tls-client", a.Certs.FrontProxyClient),
		workload.SecretItemsVolume("tls-kubeconfig", a.Certs.FrontProxyKubeconfig, "tls.crt", "tls.key"),
		workload.SecretItemsVolume("tls-client-ca", a.Certs.ClientCA, "ca.crt"),
		workload.SecretItemsVolume("tls-server-ca", a.Certs.ServerCA, "ca.crt"),
		workload.ConfigMapVolume("config", "kcp-front-proxy-config"),
		workload.EmptyDir("tmp", "256Mi"),
	}
	if frontProxyVerifiesTokens(a) {
		mounts = append(mounts, mount("tls-service-account", "/etc/kcp-front-proxy/tls/service-account"))
		// Only the public half: the front-proxy verifies tokens, it never signs them.
		volumes = append(volumes, workload.SecretItemsVolume("tls-service-account", a.Certs.ServiceAccount, "tls.crt"))
	}
	if a.Certs.FrontProxyPublic != "" {
		mounts = append(mounts, mount("tls-public", "/etc/kcp-front-proxy/tls/public"))
		volumes = append(volumes, workload.SecretVolume("tls-public", a.Certs.FrontProxyPublic))
	}
	return podSpec(a, FrontProxyName, FrontProxyName, nil, StopSeconds, corev1.ContainerArgs{
		Name:           pulumi.String(FrontProxyName),
		Image:          pulumi.String(a.Image + ":" + a.Version),
		Command:        pulumi.ToStringArray([]string{"/kcp-front-proxy"}),
		Args:           pulumi.ToStringArray(args),
		Ports:          corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String("https"), ContainerPort: pulumi.Int(FrontProxyPort)}},
		StartupProbe:   httpsProbe("/readyz", "https", 5, 60),
		LivenessProbe:  httpsProbe("/livez", "https", 10, 3),
		ReadinessProbe: httpsProbe("/readyz", "https", 5, 3),
		Resources:      a.FrontProxyResources.Args(),
		VolumeMounts:   mounts,
	}, volumes)
}
