// Package clustere2e deploys stacks with `kcp-tmc up` onto a single-node
// Kubernetes cluster that runs their Pods (tests/cluster: the pinned
// kube-apiserver, controller-manager, scheduler, kubelet and kube-proxy,
// containerd and runc, CNI bridge, CoreDNS, cert-manager, prometheus-operator
// and Prometheus), then uses the platform as its users do.
//
// Opt-in (`make cluster-e2e`): it needs root on Linux, changes this
// machine's network settings while it runs (restored at the end) and the
// kcp, api-syncagent and cert-manager binaries, which the Go module proxy
// does not serve. Without KCP_TMC_CLUSTER_E2E=1 and those, it skips saying why.
package clustere2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/internal/cli"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/stacks"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// binaries the Go module proxy does not serve: env var → what it must be.
var binaries = []struct{ env, what string }{
	{"KCP_BIN", "kcp v0.32.3"},
	{"KCP_FRONT_PROXY_BIN", "kcp-front-proxy v0.32.3"},
	{"CACHE_SERVER_BIN", "cache-server v0.32.3 (kcp.cache.mode separate)"},
	{"API_SYNCAGENT_BIN", "api-syncagent v0.7.0"},
	{"CERT_MANAGER_CONTROLLER_BIN", "cert-manager's controller v1.21.2 (quay.io/jetstack/cert-manager-controller's /app/cmd/controller/controller)"},
	{"CERT_MANAGER_WEBHOOK_BIN", "cert-manager's webhook v1.21.2 (quay.io/jetstack/cert-manager-webhook's /app/cmd/webhook/webhook)"},
	{"CERT_MANAGER_CAINJECTOR_BIN", "cert-manager's cainjector v1.21.2 (quay.io/jetstack/cert-manager-cainjector's /app/cmd/cainjector/cainjector)"},
	{"TRAEFIK_BIN", "Traefik v3.7.9 (its release archive's traefik), the Gateway test's implementation"},
}

// busybox is Debian's busybox-static, statically linked (cluster.NodeMissing
// checks it): the shell tools of etcd's join image and the backup image.
const busybox = cluster.Busybox

// kube is the cluster every test here deploys to; nil when skipped.
var (
	kube     *cluster.Cluster
	skipWhy  string
	startErr error
)

func TestMain(m *testing.M) {
	if os.Getenv("KCP_TMC_TEST_AS_CLI") == "1" {
		// The test binary as kcp-tmc: a test kills it mid-deploy from
		// outside, the runbook's blocks run it. It says why it failed, as
		// cmd/kcp-tmc does.
		err := cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
		if err != nil && !errors.Is(err, cli.ErrUsage) {
			fmt.Fprintln(os.Stderr, "kcp-tmc:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
	code := run(m)
	os.Exit(code)
}

func run(m *testing.M) int {
	if os.Getenv("KCP_TMC_CLUSTER_E2E") != "1" {
		skipWhy = "KCP_TMC_CLUSTER_E2E is not 1: the cluster e2e runs only through make cluster-e2e (root; it changes this machine's network settings while it runs)"
		return m.Run()
	}
	var missing []string
	for _, b := range binaries {
		if p := os.Getenv(b.env); p == "" {
			missing = append(missing, b.env+" ("+b.what+")")
		} else if _, err := os.Stat(p); err != nil {
			missing = append(missing, b.env+"="+p+": "+err.Error())
		}
	}
	if _, err := exec.LookPath("jq"); err != nil {
		missing = append(missing, "jq (apt-get install jq: the runbook's restore commands)")
	}
	missing = append(missing, cluster.NodeMissing(toolchain.Bin())...)
	if len(missing) > 0 {
		skipWhy = "the cluster e2e needs: " + strings.Join(missing, "; ")
		return m.Run()
	}
	return cluster.RunSuite(m, "cluster with cert-manager and Prometheus", startCluster, func(k *cluster.Cluster, err error) {
		kube, startErr = k, err
	})
}

// startCluster builds every image the dev stack and the add-ons run, starts
// the node and installs the add-ons.
func startCluster(parent context.Context, dir string) (*cluster.Cluster, error) {
	ctx, cancel := context.WithTimeout(parent, 15*time.Minute)
	defer cancel()
	bin := toolchain.Bin()
	pause, err := cluster.BuildPause(dir)
	if err != nil {
		return nil, err
	}
	images, err := stackImages(bin)
	if err != nil {
		return nil, err
	}
	images = append(images, cluster.AddonImages(bin, pause, cluster.CertManagerBins{
		Controller: os.Getenv("CERT_MANAGER_CONTROLLER_BIN"),
		Webhook:    os.Getenv("CERT_MANAGER_WEBHOOK_BIN"),
		CAInjector: os.Getenv("CERT_MANAGER_CAINJECTOR_BIN"),
	})...)
	images = append(images, cluster.TraefikImageOf(os.Getenv("TRAEFIK_BIN")))
	kube, err := cluster.StartWithNode(ctx, bin, dir, images)
	if err != nil {
		return kube, err
	}
	for _, src := range []string{"cert-manager", "prometheus-operator"} {
		if err := kube.InstallCRDs(ctx, src); err != nil {
			return kube, fmt.Errorf("%s CRDs: %w", src, err)
		}
	}
	if err := kube.InstallCertManager(ctx); err != nil {
		return kube, fmt.Errorf("cert-manager: %w", err)
	}
	if err := kube.InstallPrometheus(ctx); err != nil {
		return kube, fmt.Errorf("Prometheus: %w", err)
	}
	return kube, nil
}

// stackImages are the images the dev stack's Pods name, at the exact
// references its profile renders, from the binaries of the pinned versions.
func stackImages(bin string) ([]cluster.Image, error) {
	cfg, err := stacks.Profile("dev")
	if err != nil {
		return nil, err
	}
	env := os.Getenv
	return []cluster.Image{
		{Ref: cfg.KCP.Image + ":" + cfg.KCP.Version, User: "65532", Entrypoint: []string{"/kcp"},
			// kcp's image holds its three programs (kcp v0.32.3's Dockerfile).
			Files: []cluster.File{{Path: "/kcp", Source: env("KCP_BIN")}, {Path: "/kcp-front-proxy", Source: env("KCP_FRONT_PROXY_BIN")},
				{Path: "/cache-server", Source: env("CACHE_SERVER_BIN")}}},
		{Ref: cfg.Etcd.Image + ":" + cfg.Etcd.Version, User: "65532", Entrypoint: []string{"/usr/local/bin/etcd"},
			Files: []cluster.File{{Path: "/usr/local/bin/etcd", Source: filepath.Join(bin, "etcd")},
				{Path: "/usr/local/bin/etcdctl", Source: filepath.Join(bin, "etcdctl")},
				{Path: "/usr/local/bin/etcdutl", Source: filepath.Join(bin, "etcdutl")}}},
		{Ref: agentImage(), User: "65532", Entrypoint: []string{"/api-syncagent"},
			Files: []cluster.File{{Path: "/api-syncagent", Source: env("API_SYNCAGENT_BIN")}}},
		// etcd's join init container, membership and rollout Jobs
		// (etcd.joinImage; hack/backup-image): sh, cut, date, rm and
		// sleep (Debian's static busybox), etcd, etcdctl and kubectl.
		{Ref: cfg.Etcd.JoinImage, User: "65532",
			Files: append(busyboxApplets("sh", "cut", "date", "rm", "sleep"),
				cluster.File{Path: "/usr/local/bin/etcd", Source: filepath.Join(bin, "etcd")},
				cluster.File{Path: "/usr/local/bin/etcdctl", Source: filepath.Join(bin, "etcdctl")},
				cluster.File{Path: "/usr/local/bin/kubectl", Source: filepath.Join(bin, "kubectl")})},
		// The backup CronJobs' transfer steps (backup.image, the aws CLI's
		// image): components/backup/scripts/etcd-backup.sh's tools for a
		// file:// target (dev's volume; no aws CLI).
		{Ref: backup.Args{Image: cfg.Backup.Image}.WithDefaults().Image, User: "65532",
			Files: busyboxApplets("sh", "awk", "cat", "cp", "cut", "date", "dirname", "find", "grep", "mkdir", "mv",
				"rm", "sed", "sha256sum", "sort", "tail", "tr", "wc")},
		// Kubernetes' kubectl image: the front-proxy's restart CronJob.
		{Ref: cfg.KCP.KubectlImage, User: "65532", Entrypoint: []string{"/bin/kubectl"},
			Files: []cluster.File{{Path: "/bin/kubectl", Source: filepath.Join(bin, "kubectl")}}},
	}, nil
}

// busyboxApplets installs the static busybox once per applet, under
// /bin/<applet>: it runs as the applet it is named.
func busyboxApplets(applets ...string) []cluster.File {
	var files []cluster.File
	for _, a := range applets {
		files = append(files, cluster.File{Path: "/bin/" + a, Source: busybox})
	}
	return files
}

// require skips the test when the cluster is not running, saying why.
func require(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if kube == nil || startErr != nil {
		t.Fatalf("the cluster did not start: %v", startErr)
	}
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}
