package kcp

// What NewKCP registers, by concern: the files the pods mount, the
// Deployments (front-proxy, cache server, every shard), the Services, and
// the NetworkPolicies.

import (
	"fmt"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// newConfigs registers the ServiceAccounts and the ConfigMaps the pods
// mount (audit policy, OIDC CA, front-proxy config, shard kubeconfigs); the
// Deployments wait for the ConfigMaps it returns.
func newConfigs(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption) ([]pulumi.Resource, error) {
	ns := args.Namespace
	accounts := []string{ServerName, FrontProxyName}
	if args.Cache != nil {
		accounts = append(accounts, CacheName)
	}
	for _, sa := range accounts {
		if _, err := corev1.NewServiceAccount(ctx, name+"-"+sa+"-sa", &corev1.ServiceAccountArgs{
			Metadata: workload.Meta(sa, ns, sa),
			// Neither calls the hosting cluster's API: no token in the pod.
			AutomountServiceAccountToken: pulumi.Bool(false),
		}, child); err != nil {
			return nil, fmt.Errorf("ServiceAccount %s: %w", sa, err)
		}
	}
	audit, err := corev1.NewConfigMap(ctx, name+"-audit-policy", &corev1.ConfigMapArgs{
		Metadata: workload.Meta("kcp-audit-policy", ns, ServerName),
		Data:     pulumi.StringMap{"policy.yaml": pulumi.String(auditPolicy)},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	if a := args.OIDC; a != nil && a.CABundle != "" {
		if _, err := corev1.NewConfigMap(ctx, name+"-oidc-ca", &corev1.ConfigMapArgs{
			Metadata: workload.Meta(oidcCAConfigMap, ns, ServerName),
			Data:     pulumi.StringMap{"ca.crt": pulumi.String(a.CABundle)},
		}, child); err != nil {
			return nil, fmt.Errorf("OIDC CA bundle: %w", err)
		}
	}
	proxyKubeconfig, err := frontProxyKubeconfig(ns)
	if err != nil {
		return nil, err
	}
	proxyConfig, err := corev1.NewConfigMap(ctx, name+"-front-proxy-config", &corev1.ConfigMapArgs{
		Metadata: workload.Meta("kcp-front-proxy-config", ns, FrontProxyName),
		Data: pulumi.StringMap{
			"mapping.yaml": pulumi.String(frontProxyMapping(ns)),
			"kubeconfig":   pulumi.String(proxyKubeconfig),
		},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("front-proxy config: %w", err)
	}

	shardConfigs, err := shardKubeconfigs(ns, args.Cache)
	if err != nil {
		return nil, err
	}
	kubeconfigs, err := corev1.NewConfigMap(ctx, name+"-shard-kubeconfigs", &corev1.ConfigMapArgs{
		Metadata: workload.Meta(shardKubeconfigCM, ns, ServerName),
		Data:     pulumi.ToStringMap(shardConfigs),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("shard kubeconfigs: %w", err)
	}

	return []pulumi.Resource{audit, proxyConfig, kubeconfigs}, nil
}

// newDeployments registers the front-proxy's, the cache server's and every
// shard's Deployment, each with its PDB.
func newDeployments(ctx *pulumi.Context, name string, args Args, child, after pulumi.ResourceOption) ([]pulumi.Resource, error) {
	ns := args.Namespace
	var workloads []pulumi.Resource
	type deployment struct {
		urn, component string
		replicas       int
		template       *corev1.PodTemplateSpecArgs
	}
	deployments := []deployment{{"front-proxy", FrontProxyName, args.FrontProxyReplicas, frontProxyPod(args)}}
	if args.Cache != nil {
		deployments = append(deployments, deployment{args.Cache.URN(), args.Cache.Deployment(), args.Cache.Replicas, cachePod(args)})
	}
	for _, s := range args.servers() {
		deployments = append(deployments, deployment{s.URN(), s.Deployment(), s.Replicas, serverPod(args, s)})
	}
	for _, d := range deployments {
		dep, err := appsv1.NewDeployment(ctx, name+"-"+d.urn, &appsv1.DeploymentArgs{
			Metadata: singleReplicaOK(workload.Meta(d.component, ns, d.component), d.replicas),
			Spec: &appsv1.DeploymentSpecArgs{
				Replicas: pulumi.Int(d.replicas),
				Selector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(workload.Labels(d.component))},
				Strategy: rollout(args.Spread),
				Template: d.template,
			},
		}, child, after)
		if err != nil {
			return nil, fmt.Errorf("%s Deployment: %w", d.component, err)
		}
		workloads = append(workloads, dep)
		if err := workload.NewPDB(ctx, name+"-"+d.component+"-pdb", ns, d.component, child); err != nil {
			return nil, err
		}
	}

	return workloads, nil
}

// newServices registers each workload's Services: the root shard's internal
// one (its base URL) and the scraped one of every workload.
func newServices(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption) error {
	ns := args.Namespace
	server, proxy := workload.Labels(ServerName), workload.Labels(FrontProxyName)
	apiPort := corev1.ServicePortArgs{Name: pulumi.String("https"), Port: pulumi.Int(APIPort), TargetPort: pulumi.String("https")}
	type service struct {
		name     string
		selector map[string]string
		ports    corev1.ServicePortArray
		// scraped: the one Service per workload Prometheus scrapes (job = its app.kubernetes.io/name).
		scraped map[string]string
	}
	services := []service{
		{InternalService, server, corev1.ServicePortArray{apiPort}, nil},
		{FrontProxyService, proxy, corev1.ServicePortArray{corev1.ServicePortArgs{
			Name: pulumi.String("https"), Port: pulumi.Int(443), TargetPort: pulumi.String("https")}},
			map[string]string{"app.kubernetes.io/name": FrontProxyName}},
	}
	if args.Cache != nil {
		services = append(services, service{CacheName, cacheSelector(), corev1.ServicePortArray{apiPort},
			map[string]string{"app.kubernetes.io/name": CacheName}})
	}
	for _, s := range args.servers() {
		svc := s.Service()
		if s.IsRoot() {
			svc = ServerService // the scraped one; kcp-internal is the root's base URL
		}
		services = append(services, service{svc, workload.Labels(s.Deployment()), corev1.ServicePortArray{apiPort},
			map[string]string{"app.kubernetes.io/name": ServerName, ShardLabel: s.Name}})
	}
	for _, s := range services {
		meta := workload.Meta(s.name, ns, s.selector["app.kubernetes.io/name"])
		if s.scraped != nil {
			labels := pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "kcp-tmc.io/scrape": pulumi.String("true")}
			for k, v := range s.scraped {
				labels[k] = pulumi.String(v)
			}
			meta.Labels = labels
		}
		if _, err := corev1.NewService(ctx, name+"-"+s.name, &corev1.ServiceArgs{
			Metadata: meta,
			Spec:     &corev1.ServiceSpecArgs{Selector: pulumi.ToStringMap(s.selector), Ports: s.ports},
		}, child); err != nil {
			return fmt.Errorf("Service %s: %w", s.name, err)
		}
	}
	return nil
}

// newPolicies registers the NetworkPolicies: every kcp server accepts the
// front-proxy, the other shards and monitoring, and reaches only its own
// etcd, the other shards, the front-proxy (and an OIDC issuer); the
// front-proxy accepts its clients.
func newPolicies(ctx *pulumi.Context, name string, args Args, child pulumi.ResourceOption) error {
	ns := args.Namespace
	proxy := workload.Labels(FrontProxyName)
	monitoring := netpol.Flow{Namespace: args.MonitoringNamespace, Ports: []int{APIPort}}
	// Both authenticate OIDC tokens, so both fetch the issuer's keys.
	var issuer []netpol.Flow
	if args.OIDC != nil {
		issuer = []netpol.Flow{netpol.Anywhere(args.OIDC.port())}
	}
	// The front-proxy is the entry point: its clients (the ingress controller
	// or a passthrough load balancer) may reach its port, nothing else.
	clients := args.FrontProxyClients
	if len(clients) == 0 {
		clients = []netpol.Flow{{Namespace: "*"}}
	}
	shards := netpol.Flow{Pods: ServerRole, Ports: []int{APIPort}}
	var cache []netpol.Flow
	if args.Cache != nil {
		cache = []netpol.Flow{{Pods: cacheSelector(), Ports: []int{APIPort}}}
		// Only the shards use it; it uses only its etcd.
		if _, err := netpol.NewAllowPolicy(ctx, name+"-"+args.Cache.URN()+"-netpol", ns, CacheName, cacheSelector(), []netpol.Flow{shards, monitoring},
			[]netpol.Flow{{Pods: serverOf(ns, *args.Cache).etcdSelector, Ports: []int{2379}}}, child); err != nil {
			return err
		}
	}
	for _, s := range args.servers() {
		urn := name + "-" + s.URN() + "-netpol"
		c := s.Deployment()
		ingress := []netpol.Flow{{Pods: proxy, Ports: []int{APIPort}}, shards, monitoring}
		if !s.IsRoot() {
			// Its public address (virtual workspaces): the front-proxy's clients.
			for _, f := range clients {
				f.Ports = []int{APIPort}
				ingress = append(ingress, f)
			}
		}
		// Shards reach each other (registration, cache, logical-cluster admin)
		// and the front-proxy (external logical-cluster admin).
		if _, err := netpol.NewAllowPolicy(ctx, urn, ns, c, workload.Labels(c), ingress,
			append(append([]netpol.Flow{{Pods: s.etcdSelector, Ports: []int{2379}}, shards, {Pods: proxy, Ports: []int{FrontProxyPort}}}, cache...), issuer...), child); err != nil {
			return err
		}
	}
	var proxyIngress []netpol.Flow
	for _, c := range append(clients, netpol.Flow{Namespace: args.MonitoringNamespace}, netpol.Flow{Pods: ServerRole}) {
		c.Ports = []int{FrontProxyPort}
		proxyIngress = append(proxyIngress, c)
	}
	if _, err := netpol.NewAllowPolicy(ctx, name+"-front-proxy-netpol", ns, FrontProxyName, proxy, proxyIngress,
		append([]netpol.Flow{shards}, issuer...), child); err != nil {
		return err
	}

	return nil
}
