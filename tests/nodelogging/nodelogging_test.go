// Package nodelogging runs the logging component on a node that runs its
// Pods (tests/cluster: the pinned kubelet, containerd and runc, kube-proxy,
// CoreDNS, enforced NetworkPolicies, prometheus-operator and Prometheus):
// the real fluent-bit, as the DaemonSet kcp-tmc renders, reads the log files
// the kubelet and containerd write for real containers and ships them to an
// Elasticsearch stand-in behind a Service, while Prometheus scrapes it
// through the monitoring component's PodMonitor.
//
// Opt-in (`make node-logging-e2e`): root on Linux, KCP_TMC_CLUSTER_E2E=1 and
// FLUENT_BIT_BIN (fluent-bit v3.2.10, which the Go module proxy does not
// serve; README "Real-binary e2e"). Without them it skips, saying why.
package nodelogging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/internal/test/esstub"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

var (
	kube      *cluster.Cluster
	skipWhy   string
	startErr  error
	fluentBit string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Getenv("KCP_TMC_CLUSTER_E2E") != "1" {
		skipWhy = "KCP_TMC_CLUSTER_E2E is not 1: the node e2e runs only through make node-logging-e2e (root; it changes this machine's network settings while it runs)"
		return m.Run()
	}
	var missing []string
	if fluentBit = os.Getenv("FLUENT_BIT_BIN"); fluentBit == "" {
		missing = append(missing, "FLUENT_BIT_BIN (fluent-bit v3.2.10; README \"Real-binary e2e\")")
	} else if _, err := exec.LookPath("ldd"); err != nil {
		missing = append(missing, "ldd (libc-bin: fluent-bit's libraries go into its image)")
	}
	missing = append(missing, cluster.NodeMissing(toolchain.Bin())...)
	if len(missing) > 0 {
		skipWhy = "the node logging e2e needs: " + strings.Join(missing, "; ")
		return m.Run()
	}
	// The kubelet rotates a container's log at this size (default 10Mi):
	// the burst test writes a few times as much.
	cluster.ContainerLogMaxSize = "1Mi"
	return cluster.RunSuite(m, "node with Prometheus", startCluster, func(k *cluster.Cluster, err error) {
		kube, startErr = k, err
	})
}

// loggerImage runs the test's workload: a shell (Debian's static busybox).
const loggerImage = "registry.k8s.io/kcp-tmc-harness/logger:1"

func startCluster(parent context.Context, dir string) (*cluster.Cluster, error) {
	ctx, cancel := context.WithTimeout(parent, 10*time.Minute)
	defer cancel()
	bin := toolchain.Bin()
	pause, err := cluster.BuildPause(dir)
	if err != nil {
		return nil, err
	}
	fb, err := fluentBitImage(fluentBit)
	if err != nil {
		return nil, err
	}
	images := []cluster.Image{fb, {Ref: loggerImage, User: "65532",
		Files: applets("sh", "sleep", "nc", "true")}}
	for _, img := range cluster.AddonImages(bin, pause, cluster.CertManagerBins{}) {
		if !strings.Contains(img.Ref, "cert-manager") { // no cert-manager here
			images = append(images, img)
		}
	}
	k, err := cluster.StartWithNode(ctx, bin, dir, images)
	if err != nil {
		return k, err
	}
	if err := k.InstallCRDs(ctx, "prometheus-operator"); err != nil {
		return k, fmt.Errorf("prometheus-operator CRDs: %w", err)
	}
	if err := k.InstallPrometheus(ctx); err != nil {
		return k, fmt.Errorf("Prometheus: %w", err)
	}
	return k, nil
}

// applets installs the static busybox under /bin once per applet name.
func applets(names ...string) []cluster.File {
	var files []cluster.File
	for _, a := range names {
		files = append(files, cluster.File{Path: "/bin/" + a, Source: cluster.Busybox})
	}
	return files
}

// reachable runs a Pod in namespace that opens a TCP connection to
// host:port and says whether it got through.
func reachable(t *testing.T, namespace, name, host string, port int) bool {
	t.Helper()
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: probe
    image: %[3]s
    # The sleep lets the policy plugin learn the Pod's address first.
    command: [sh, -c, 'sleep 3; if nc -w 3 %[4]s %[5]d -e /bin/true; then echo reached; else echo blocked; fi']
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, namespace, name, loggerImage, host, port), "apply", "--server-side", "--field-manager=kcp-tmc-test", "-f", "-")
	kubectl(t, "", "-n", namespace, "wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=90s", "pod/"+name)
	out := strings.TrimSpace(kubectl(t, "", "-n", namespace, "logs", name))
	kubectl(t, "", "-n", namespace, "delete", "pod", name, "--wait=false")
	return out == "reached"
}

// fluentBitImage lays the binary out as fluent-bit's image does
// (/fluent-bit/bin/fluent-bit, its entrypoint) with the loader and the
// libraries it links (libssl, libsqlite3, libc: the official image carries
// Debian's).
func fluentBitImage(bin string) (cluster.Image, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return cluster.Image{}, fmt.Errorf("ldd %s: %w", bin, err)
	}
	files := []cluster.File{{Path: "/fluent-bit/bin/fluent-bit", Source: bin}}
	var libDirs []string
	lib := func(p string) {
		files = append(files, cluster.File{Path: p, Source: p})
		if d := filepath.Dir(p); !slices.Contains(libDirs, d) {
			libDirs = append(libDirs, d)
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch f := strings.Fields(line); {
		case len(f) == 4 && f[1] == "=>": // libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)
			lib(f[2])
			if strings.HasPrefix(f[0], "libc.so") {
				// glibc dlopens it to cancel threads (fluent-bit's HTTP
				// server at exit); the official image (distroless/cc) has it.
				if gcc := filepath.Join(filepath.Dir(f[2]), "libgcc_s.so.1"); fileExists(gcc) {
					lib(gcc)
				}
			}
		case len(f) == 2 && strings.HasPrefix(f[0], "/"): // /lib64/ld-linux-x86-64.so.2 (0x…)
			files = append(files, cluster.File{Path: f[0], Source: f[0]})
		}
	}
	// The image has no ld.so.cache: the loader searches where ldd found
	// them, wherever this machine's ld.so.conf pointed.
	return cluster.Image{Ref: logging.DefaultImage, Entrypoint: []string{"/fluent-bit/bin/fluent-bit"}, Files: files,
		Env: []string{"LD_LIBRARY_PATH=" + strings.Join(libDirs, ":")}}, nil
}

// verdicts are the policy plugin's log lines (--v=2) about the last few
// packets that mention what: the packet and each verdict on it.
func verdicts(what string) string {
	b, _ := os.ReadFile(filepath.Join(kube.Dir, "kube-network-policies.log"))
	lines := strings.Split(string(b), "\n")
	ids := map[string]bool{}
	for _, l := range lines {
		if strings.Contains(l, what) {
			if i := strings.Index(l, "["); i >= 0 {
				if j := strings.Index(l[i:], "]"); j > 0 {
					ids["id="+l[i+1:i+j]+" "] = true
				}
			}
		}
	}
	var out []string
	for i, l := range lines {
		if strings.Contains(l, what) && i > 0 {
			// The packet is printed on the line after the one naming its pods.
			out = append(out, lines[i-1], l)
			continue
		}
		for id := range ids {
			if strings.Contains(l+" ", id) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out[max(0, len(out)-24):], "\n")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func require(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if kube == nil || startErr != nil {
		t.Fatalf("the cluster did not start: %v", startErr)
	}
}

// apply server-side applies what a program registered under mocks,
// namespaces first.
func apply(t *testing.T, objs []map[string]any) {
	t.Helper()
	var first, rest []string
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if o["kind"] == "Namespace" {
			first = append(first, string(b))
		} else {
			rest = append(rest, string(b))
		}
	}
	for _, batch := range [][]string{first, rest} {
		if len(batch) == 0 {
			continue
		}
		if _, stderr, err := kube.Kubectl(context.Background(), []byte(strings.Join(batch, "---\n")),
			"apply", "--server-side", "--field-manager=kcp-tmc", "-f", "-"); err != nil {
			t.Fatalf("apply: %v\n%s", err, stderr)
		}
	}
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, stderr, err := kube.Kubectl(context.Background(), in, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// eventually polls check (nil when satisfied) until timeout.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if last = check(); last == nil {
			return
		}
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, last)
}

// TestLogsShipFromTheNode: what a user relies on once `logging.enabled` is
// up — every container's lines reach Elasticsearch as fields with their
// pod's metadata (a line containerd split at 16 KiB as one document);
// fluent-bit's pod replaced ships nothing twice and loses nothing; lines
// written while Elasticsearch refuses arrive once it is back; Prometheus
// scrapes fluent-bit through the PodMonitor and the logging namespace's
// NetworkPolicy (ingress from Prometheus' namespace; egress to
// Elasticsearch, while another pod in its namespace is refused), with the
// series the logging alerts read.
func TestLogsShipFromTheNode(t *testing.T) {
	require(t)
	ctx := context.Background()
	const (
		esNamespace = "es-e2e"
		esHost      = "elasticsearch." + esNamespace + ".svc"
		user, pass  = "kcp-tmc", "correct horse battery staple"
		kcpNS       = "kcp-e2e" // where the monitoring component's objects live
	)
	ca := esstub.NewCA(t)
	es := esstub.New(t, kube.NodeIP()+":9200", ca.ServerCert(t, esHost), user, pass, logging.DefaultIndex)
	// Elasticsearch as a cluster's Service (ECK's are such names), its
	// endpoint this machine.
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Service
metadata: {name: elasticsearch, namespace: %[1]s}
spec: {ports: [{name: https, port: 9200, targetPort: 9200}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: elasticsearch-1, namespace: %[1]s, labels: {kubernetes.io/service-name: elasticsearch}}
addressType: IPv4
ports: [{name: https, port: 9200, protocol: TCP}]
endpoints: [{addresses: [%[2]q]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: %[3]s}
`, esNamespace, kube.NodeIP(), kcpNS), "apply", "--server-side", "--field-manager=kcp-tmc-test", "-f", "-")

	// fluent-bit keeps its read positions and chunks on the node: another
	// run's would resume at their offsets (tail.db matches files by inode)
	// and send their chunks again.
	const stateDir = "/var/lib/fluent-bit"
	if fileExists(stateDir) {
		t.Fatalf("%s exists on this machine (another fluent-bit's read positions and chunks): move it aside", stateDir)
	}
	t.Cleanup(func() { _ = os.RemoveAll(stateDir) })
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		if _, err := logging.NewLogging(ctx, "logging", logging.Args{ElasticsearchHost: esHost, TLS: true, CACert: ca.PEM,
			Username: user, Password: pulumi.ToSecret(pulumi.String(pass)).(pulumi.StringOutput),
			PodLogsDir: kube.PodLogsDir(), MonitoringNamespace: cluster.PrometheusNamespace}); err != nil {
			return err
		}
		_, err := monitoring.NewMonitoring(ctx, "monitoring", monitoring.Args{Namespace: kcpNS, Interval: "5s",
			ServerCASecret: "kcp-ca", MetricsViewerSecret: "kcp-metrics-viewer", LoggingNamespace: logging.Namespace,
			MonitoringNamespace: cluster.PrometheusNamespace,
			RuleLabels:          map[string]string{cluster.PrometheusSelectorKey: cluster.PrometheusSelectorValue}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	for _, o := range rec.Manifests() {
		// Of monitoring's objects, fluent-bit's PodMonitor and the rules
		// (the kcp ServiceMonitors would scrape nothing here).
		if o["kind"] == "ServiceMonitor" || o["kind"] == "ConfigMap" && strings.HasPrefix(fmt.Sprint(mocktest.Dig(o, "metadata", "name")), "dashboard-") {
			continue
		}
		objs = append(objs, o)
	}
	apply(t, objs)
	// Before the state directory goes (cleanups run last-in first-out):
	// fluent-bit stopped, nothing more written there.
	t.Cleanup(func() {
		_, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", logging.Namespace, "--wait=true", "--timeout=2m")
	})
	if err := kube.WaitRollout(ctx, logging.Namespace, "daemonset/"+logging.Name, 3*time.Minute); err != nil {
		pods, _, _ := kube.Kubectl(ctx, nil, "-n", logging.Namespace, "describe", "pods")
		t.Fatalf("fluent-bit's DaemonSet: %v\n%s", err, cluster.Tail(pods, 40))
	}
	fbLogs := func() string {
		out, _, _ := kube.Kubectl(ctx, nil, "-n", logging.Namespace, "logs", "daemonset/"+logging.Name, "--tail=30")
		return "fluent-bit: " + out
	}

	// The workload: a JSON line, a line longer than containerd's 16 KiB
	// (written as two CRI records), a plain line on stderr, then one tick a
	// second, numbered.
	const ns, pod = "nodelog-e2e", "logger"
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Pod
metadata:
  name: %[2]s
  namespace: %[1]s
  labels: {app.kubernetes.io/name: logger, app.kubernetes.io/part-of: kcp-tmc}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: logger
    image: %[3]s
    command: [/bin/sh, -c]
    args:
    - |
      echo '{"level":"info","msg":"hello from a pod","component":"e2e"}'
      s=0123456789; for i in 1 2 3 4 5 6 7 8 9 10 11; do s=$s$s; done
      echo "{\"msg\":\"a long line\",\"pad\":\"$s\"}"
      echo 'plain text on stderr' >&2
      i=0; while :; do echo "{\"msg\":\"tick\",\"n\":$i}"; i=$((i+1)); sleep 1; done
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, ns, pod, loggerImage), "apply", "--server-side", "--field-manager=kcp-tmc-test", "-f", "-")
	t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })

	eventually(t, 2*time.Minute, "the pod's first lines in Elasticsearch", func() error {
		if es.Count("hello from a pod") == 0 || es.Count("a long line") == 0 || es.CountLog("plain text on stderr") == 0 {
			return fmt.Errorf("%s\n%s", es, fbLogs())
		}
		return nil
	})
	doc := es.Find("hello from a pod")
	k8s, _ := doc["kubernetes"].(map[string]any)
	labels, _ := k8s["labels"].(map[string]any)
	if doc["level"] != "info" || doc["component"] != "e2e" || k8s["pod_name"] != pod || k8s["namespace_name"] != ns ||
		k8s["container_name"] != "logger" || k8s["host"] != cluster.NodeName || labels["app_kubernetes_io/name"] != "logger" {
		t.Errorf("the JSON line's document lacks its fields or the pod's metadata (read from the API through the rendered RBAC):\n%v", doc)
	}
	if long := es.Find("a long line"); len(fmt.Sprint(long["pad"])) != 20480 {
		t.Errorf("the 20 KiB line containerd split in two arrived with a pad of %d characters, want 20480 (one document)", len(fmt.Sprint(long["pad"])))
	}
	// fluent-bit reaches Elasticsearch through its allow policy; the
	// namespace's default-deny stops any other pod there.
	if reachable(t, logging.Namespace, "egress-probe", esHost, 9200) {
		t.Errorf("a pod in %s that fluent-bit's policy does not select reached %s:9200: the default-deny does not hold", logging.Namespace, esHost)
	}
	ticks := func() []int {
		var n []int
		for _, d := range es.Where(func(d map[string]any) bool { return d["msg"] == "tick" }) {
			if f, ok := d["n"].(float64); ok {
				n = append(n, int(f))
			}
		}
		sort.Ints(n)
		return n
	}
	// nothingLostOrTwice: ticks 0…max each once, up to at least want.
	nothingLostOrTwice := func(want int) error {
		n := ticks()
		for i, v := range n {
			if v != i {
				return fmt.Errorf("ticks %v…: %d where %d belongs (lost or shipped twice)", n[max(0, i-3):min(len(n), i+3)], v, i)
			}
		}
		if len(n) < want+1 {
			return fmt.Errorf("%d ticks, want at least %d", len(n), want+1)
		}
		return nil
	}

	// fluent-bit's pod replaced (a rollout, an eviction): the new pod
	// resumes from the positions on the node.
	before := len(ticks())
	kubectl(t, "", "-n", logging.Namespace, "delete", "pod", "-l", "app.kubernetes.io/name="+logging.Name, "--wait=true")
	if err := kube.WaitRollout(ctx, logging.Namespace, "daemonset/"+logging.Name, 2*time.Minute); err != nil {
		t.Fatalf("fluent-bit's replacement pod: %v", err)
	}
	eventually(t, 2*time.Minute, "the ticks across fluent-bit's replacement", func() error {
		if err := nothingLostOrTwice(before + 15); err != nil {
			return fmt.Errorf("%w\n%s", err, fbLogs())
		}
		return nil
	})

	// Prometheus scrapes fluent-bit (the PodMonitor, across the logging
	// namespace's NetworkPolicy) with the series the logging alerts read.
	ip, err := kube.PrometheusIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "Prometheus scraping fluent-bit", func() error {
		s, err := cluster.PromQuery(ip, `up{namespace="`+logging.Namespace+`"}`)
		if err != nil || len(s) == 0 || s[0].Value != 1 {
			return fmt.Errorf("up{namespace=%q}: %v %v; the policy plugin's verdicts on port 2020:\n%s", logging.Namespace, s, err, verdicts(":2020"))
		}
		return nil
	})

	// Elasticsearch refusing for a while: the lines wait, Prometheus sees
	// the retries, and once it is back nothing is missing. A retry waits up
	// to 5 s × 2ⁿ (full jitter), capped at scheduler.cap 300 s: the refusal
	// stays short, the wait for its lines covers the cap.
	es.SetFailing(true)
	refusing := time.Now()
	eventually(t, time.Minute, "a bulk request refused", func() error {
		if es.Refused() == 0 {
			return fmt.Errorf("%s", es)
		}
		return nil
	})
	for _, series := range []string{
		`sum by (namespace, pod) (rate(fluentbit_output_retries_total{namespace="` + logging.Namespace + `"}[1m])) > 0`,
		`sum by (namespace, pod) (fluentbit_output_dropped_records_total{namespace="` + logging.Namespace + `"})`,
		`sum by (namespace, pod) (fluentbit_output_proc_records_total{namespace="` + logging.Namespace + `"}) > 0`,
	} {
		eventually(t, 2*time.Minute, "Prometheus: "+series, func() error {
			s, err := cluster.PromQuery(ip, series)
			if err != nil || len(s) == 0 || s[0].Metric["pod"] == "" {
				return fmt.Errorf("%v %v", s, err)
			}
			return nil
		})
	}
	refusedAt := len(ticks())
	es.SetFailing(false)
	t.Logf("Elasticsearch refused for %s", time.Since(refusing).Round(time.Second))
	eventually(t, 6*time.Minute, "the ticks written while Elasticsearch refused", func() error {
		if err := nothingLostOrTwice(refusedAt + 10); err != nil {
			return fmt.Errorf("%w\n%s\n%s", err, es, fbLogs())
		}
		return nil
	})
	t.Logf("%d ticks shipped, each once, across fluent-bit's replacement and %d refused bulk requests", len(ticks()), es.Refused())

	// A chatty container: ≈4.8 MB in ≈2 min, which the kubelet rotates
	// (0.log → 0.log.<time>, compressed and removed beyond five files)
	// while fluent-bit reads it. Every line arrives, once.
	const burstLines = 20000
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: burst, namespace: %[1]s}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: burst
    image: %[2]s
    command: [/bin/sh, -c]
    args:
    - |
      pad=0123456789; for i in 1 2 3 4; do pad=$pad$pad; done
      i=0
      while [ $i -lt %[3]d ]; do
        j=0
        while [ $j -lt 50 ]; do echo "{\"msg\":\"burst\",\"n\":$i,\"pad\":\"$pad\"}"; i=$((i+1)); j=$((j+1)); done
        sleep 0.2
      done
      while :; do sleep 3600; done
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, ns, loggerImage, burstLines), "apply", "--server-side", "--field-manager=kcp-tmc-test", "-f", "-")
	burst := func() (n, twice int) {
		seen := map[int]bool{}
		for _, d := range es.Where(func(d map[string]any) bool { return d["msg"] == "burst" }) {
			if f, ok := d["n"].(float64); ok {
				if seen[int(f)] {
					twice++
				}
				seen[int(f)] = true
			}
		}
		return len(seen), twice
	}
	eventually(t, 5*time.Minute, "the burst's lines", func() error {
		if n, _ := burst(); n < burstLines {
			return fmt.Errorf("%d of %d burst lines\n%s", n, burstLines, fbLogs())
		}
		return nil
	})
	time.Sleep(6 * time.Second) // one more flush: a chunk sent twice shows now
	n, twice := burst()
	if twice > 0 {
		t.Errorf("%d of the burst's %d lines arrived more than once", twice, n)
	}
	uid := kubectl(t, "", "-n", ns, "get", "pod", "burst", "-o", "jsonpath={.metadata.uid}")
	rotated, _ := filepath.Glob(filepath.Join(kube.PodLogsDir(), ns+"_burst_"+uid, "burst", "0.log.*"))
	if len(rotated) == 0 {
		t.Errorf("the kubelet rotated no log of the burst (containerLogMaxSize %s): the burst tests no rotation", cluster.ContainerLogMaxSize)
	}
	t.Logf("the burst: %d lines, each once, across %d rotations by the kubelet (%v)", n, len(rotated), rotated)
	if n := es.Count("hello from a pod"); n != 1 {
		t.Errorf("the first line in Elasticsearch %d times, want once", n)
	}
}
