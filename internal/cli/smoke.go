package cli

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/ops"
	"github.com/kcp-tmc/kcp-tmc/stacks"
)

type smokeFlags struct {
	kcpKubeconfig, kcpServer, kubeconfig, workload string
	loadDuration, syncTimeout                      time.Duration
	loadWorkers                                    int
	maxP99                                         time.Duration
	// loadSet: --load-duration was given (prod runs no load unless asked).
	loadSet bool
}

func (f *smokeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kcpKubeconfig, "kcp-kubeconfig", "", "smoke: kcp admin kubeconfig file (default: the stack's secret kcp-tmc:kcpKubeconfig, else the kcp-admin certificate from the hosting cluster)")
	fs.StringVar(&f.kcpServer, "kcp-server", "", "smoke: kcp's URL when the admin certificate comes from the hosting cluster (default: kcp-tmc:target.kcpServer, verified for kcp.<domain>, else https://kcp.<domain>; each with path /clusters/root)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "smoke, agent-identity: kubeconfig of the cluster kcp runs on (default: the stack's kcp-tmc:kubeconfig; else target.context, looked up in $KUBECONFIG or ~/.kube/config; with none of the three set, smoke refuses rather than use the current context)")
	fs.StringVar(&f.workload, "workload", "", "smoke: YAML of the object created in kcp to prove syncing (default: per api-syncagent cluster, an object of its first published resource in a workspace bound to its export; without clusters, a ConfigMap)")
	fs.DurationVar(&f.loadDuration, "load-duration", 30*time.Second, "smoke: length of the load test (0 skips it; prod stacks default to 0)")
	fs.IntVar(&f.loadWorkers, "load-workers", 4, "smoke: concurrent load-test workers")
	fs.DurationVar(&f.maxP99, "load-max-p99", time.Second, "smoke: the load test fails above this p99 request latency")
	fs.DurationVar(&f.syncTimeout, "sync-timeout", 2*time.Minute, "smoke: how long the test workload may take to reach (and leave) every cluster")
}

// target resolves the stack's clusters: kcp from its admin kubeconfig, the
// hosting cluster like the stack's Kubernetes provider, each physical cluster
// from kcp-tmc:clusterKubeconfigs.
func (f *smokeFlags) target(ctx context.Context, cfg *stacks.Config) (ops.SmokeTarget, error) {
	t := ops.SmokeTarget{Namespace: cfg.Namespace, Shards: stacks.Shards(cfg).Shards, Cache: stacks.Shards(cfg).Cache, SyncTimeout: f.syncTimeout,
		VolumeAttributes: cfg.ModifiesVolumes(),
		Load:             ops.LoadSpec{Duration: f.loadDuration, Workers: f.loadWorkers, MaxP99: f.maxP99}}
	if cfg.Environment == "prod" && !f.loadSet {
		t.Load.Duration = 0 // never load-test production by default
	}
	var err error
	if t.Host, err = hostConfig(cfg, f.kubeconfig); err != nil {
		return t, fmt.Errorf("hosting cluster kubeconfig: %w", err)
	}
	switch {
	case f.kcpKubeconfig != "":
		t.KCP, err = clientcmd.BuildConfigFromFlags("", f.kcpKubeconfig)
	case cfg.KCPKubeconfig != "":
		t.KCP, err = clientcmd.RESTConfigFromKubeConfig([]byte(cfg.KCPKubeconfig))
	default:
		server, serverName := f.kcpServer, ""
		switch {
		case server != "":
		case cfg.Target.KCPServer != "":
			// The stack's own address for the deployer: kcp's certificate is
			// verified for kcp.<domain> there, as the up does.
			server, serverName = strings.TrimSuffix(cfg.Target.KCPServer, "/")+"/clusters/root", kcp.PublicHost(cfg.Domain)
		default:
			server = kcp.PublicURL(cfg.Domain) + "/clusters/root"
		}
		t.KCP, err = adminFromHost(ctx, t.Host, cfg.Namespace, server, cfg.PublicServerCert())
		if err == nil {
			t.KCP.TLSClientConfig.ServerName = serverName
		}
	}
	if err != nil {
		return t, fmt.Errorf("kcp admin access: %w", err)
	}
	for _, cl := range cfg.Clusters {
		kc, ok := cfg.ClusterKubeconfigs[cl.Name]
		if !ok {
			return t, fmt.Errorf("cluster %q has no kubeconfig in kcp-tmc:clusterKubeconfigs", cl.Name)
		}
		rc, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
		if err != nil {
			return t, fmt.Errorf("kcp-tmc:clusterKubeconfigs[%s]: %w", cl.Name, err)
		}
		a := stacks.AgentArgs(cfg, cl)
		c := ops.SmokeCluster{Name: cl.Name, AgentKind: a.Kind, AgentNamespace: a.Namespace, Config: rc, Workspace: a.Workspace, Export: a.APIExport}
		if r := a.Resources[0]; a.Kind == agents.KindSyncAgent {
			c.Published = &ops.PublishedResource{Resource: schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Plural}, Kind: r.Kind}
		}
		t.Clusters = append(t.Clusters, c)
	}
	if f.workload != "" {
		if t.Workload, err = readWorkload(f.workload); err != nil {
			return t, err
		}
		dc, err := discovery.NewDiscoveryClientForConfig(t.KCP)
		if err != nil {
			return t, fmt.Errorf("kcp discovery: %w", err)
		}
		mapping, err := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)).
			RESTMapping(t.Workload.GroupVersionKind().GroupKind(), t.Workload.GroupVersionKind().Version)
		if err != nil {
			return t, fmt.Errorf("--workload %s: kcp does not serve %s: %w", f.workload, t.Workload.GroupVersionKind(), err)
		}
		t.WorkloadResource = mapping.Resource
		t.WorkloadNamespace = t.Workload.GetNamespace()
	}
	return t, nil
}

// hostConfig is the cluster kcp runs on, never an ambient current context
// (which may well be another cluster with the same namespace).
func hostConfig(cfg *stacks.Config, file string) (*rest.Config, error) {
	if file == "" && cfg.Kubeconfig == "" && cfg.Target.Context == "" {
		return nil, fmt.Errorf("stack %q names no cluster: set kcp-tmc:kubeconfig or kcp-tmc:target.context, or pass --kubeconfig "+
			"(cloud.mode eks: `aws eks update-kubeconfig --name kcp-tmc-%s --kubeconfig FILE`)", cfg.Environment, cfg.Environment)
	}
	if file == "" && cfg.Kubeconfig != "" {
		raw, err := clientcmd.Load([]byte(cfg.Kubeconfig))
		if err != nil {
			return nil, err
		}
		return clientcmd.NewNonInteractiveClientConfig(*raw, cfg.Target.Context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if file != "" {
		rules.ExplicitPath = file
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Target.Context}).ClientConfig()
}

func readWorkload(path string) (*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--workload: %w", err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
		return nil, fmt.Errorf("--workload %s: %w", path, err)
	}
	if obj.GetKind() == "" || obj.GetAPIVersion() == "" || obj.GetName() == "" {
		return nil, fmt.Errorf("--workload %s: want one object with apiVersion, kind and metadata.name", path)
	}
	return obj, nil
}

func (f *smokeFlags) run(ctx context.Context, cfg *stacks.Config, asJSON bool, stdout io.Writer) error {
	if cfg.Target.Mode == stacks.TargetRender {
		return fmt.Errorf("stack %q renders YAML (target.mode render): there is no cluster to smoke-test", cfg.Environment)
	}
	t, err := f.target(ctx, cfg)
	if err != nil {
		return err
	}
	report, err := ops.Smoke(ctx, t)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(stdout, report); err != nil {
			return err
		}
	} else {
		for _, c := range report.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(stdout, "%s %s (%s): %s\n", mark, c.Name, c.Took, c.Detail)
		}
	}
	if !report.OK() {
		return fmt.Errorf("%w: smoke test: %s", ErrCheck, strings.Join(report.Failed(), "; "))
	}
	if !asJSON {
		fmt.Fprintln(stdout, "OK")
	}
	return nil
}

// adminFromHost is kcp admin access from the certificates the stack keeps on
// the hosting cluster: the kcp-admin client certificate and kcp-server-ca.
// Always current (cert-manager renews them in place), nothing to copy.
// publicCert: kcp's address serves a publicly trusted certificate
// (tls.acme), which the system's roots verify, not kcp-server-ca.
func adminFromHost(ctx context.Context, host *rest.Config, namespace, server string, publicCert bool) (*rest.Config, error) {
	c, err := dynamic.NewForConfig(host)
	if err != nil {
		return nil, err
	}
	secrets := c.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(namespace)
	field := func(name, key string) ([]byte, error) {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("secret %s/%s (or set kcp-tmc:kcpKubeconfig / --kcp-kubeconfig): %w", namespace, name, err)
		}
		v, _, _ := unstructured.NestedString(s.Object, "data", key)
		data, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(data) == 0 {
			return nil, fmt.Errorf("secret %s/%s has no %s", namespace, name, key)
		}
		return data, nil
	}
	cfg := &rest.Config{Host: server}
	if cfg.CertData, err = field(tls.CertAdmin, "tls.crt"); err != nil {
		return nil, err
	}
	if cfg.KeyData, err = field(tls.CertAdmin, "tls.key"); err != nil {
		return nil, err
	}
	if publicCert {
		return cfg, nil
	}
	if cfg.CAData, err = field(tls.CAServer, "ca.crt"); err != nil {
		return nil, err
	}
	return cfg, nil
}
