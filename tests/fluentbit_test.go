package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/internal/test/esstub"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// TestFluentBitShipsToElasticsearch runs the real fluent-bit (v3.2.10, the
// image kcp-tmc pins; FLUENT_BIT_BIN) as the logging DaemonSet's pod runs
// it: in a root of its own holding the pod's paths — the ConfigMap's files
// at /fluent-bit/etc as the API server returns them, the node's /var/log
// read-only, its state directory, the ServiceAccount's token and CA — with
// the container's args and environment, and kubernetes.default.svc:443 and
// Elasticsearch's name resolving to this machine. Nothing in the
// configuration is changed for the test.
//
// Elasticsearch is a stand-in for its Bulk API that checks what
// Elasticsearch 8 does (the content type, the credentials, the index, no
// mapping type) and keeps the documents; it serves TLS with a certificate
// from a private CA, given as logging.caCert.
//
// What a user relies on: a container's JSON log line arrives as fields,
// with the pod's metadata read from the API through the rendered RBAC; a
// line the runtime split is one document; a restart ships nothing twice and
// loses nothing; lines written while Elasticsearch refuses arrive once it
// is back; a certificate for another name is refused.
func TestFluentBitShipsToElasticsearch(t *testing.T) {
	bin := os.Getenv("FLUENT_BIT_BIN")
	if bin == "" {
		t.Skip("FLUENT_BIT_BIN unset: a fluent-bit v3.2.10 binary (README \"Real-binary e2e\")")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: fluent-bit runs in a mount namespace that gives it the pod's paths")
	}
	for _, tool := range []string{"unshare", "mount", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux, coreutils): %v", tool, err)
		}
	}
	ctx := context.Background()
	const esHost, password = "elasticsearch.logging.test", "correct horse battery staple"
	ca := esstub.NewCA(t)
	args := logging.Args{ElasticsearchHost: esHost, TLS: true, CACert: ca.PEM, Username: "kcp-tmc",
		Password: pulumi.ToSecret(pulumi.String(password)).(pulumi.StringOutput)}
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := logging.NewLogging(ctx, "logging", args)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i, obj := range rec.Manifests() {
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, fmt.Sprintf("%02d.yaml", i))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	applyInOrder(t, files)

	// What the pod gets: the ConfigMap's files and the container's args and
	// environment, read back from the API server.
	var cm struct{ Data map[string]string }
	getJSON(t, &cm, "configmap", "fluent-bit-config", "--namespace", logging.Namespace)
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string
						Env  []struct {
							Name, Value string
							ValueFrom   *struct{ SecretKeyRef struct{ Name, Key string } }
						}
					}
				}
			}
		}
	}
	getJSON(t, &ds, "daemonset", logging.Name, "--namespace", logging.Namespace)
	container := ds.Spec.Template.Spec.Containers[0]
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=fluent-bit-e2e"}
	for _, e := range container.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var s struct{ Data map[string]string }
			getJSON(t, &s, "secret", e.ValueFrom.SecretKeyRef.Name, "--namespace", logging.Namespace)
			b, err := base64.StdEncoding.DecodeString(s.Data[e.ValueFrom.SecretKeyRef.Key])
			if err != nil {
				t.Fatal(err)
			}
			v = string(b)
		}
		env = append(env, e.Name+"="+v)
	}
	token, _, err := kube.Kubectl(ctx, nil, "create", "token", logging.Name, "--namespace", logging.Namespace, "--duration=1h")
	if err != nil {
		t.Fatalf("a token of fluent-bit's ServiceAccount: %v", err)
	}
	caCrt, err := os.ReadFile(kube.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	// The pod whose logs these are: its metadata comes from the API.
	const ns, pod = "fluentbit-e2e", "kcp-0"
	if _, stderr, err := kube.Kubectl(ctx, []byte(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Pod
metadata:
  name: %[2]s
  namespace: %[1]s
  labels: {app.kubernetes.io/name: kcp, app.kubernetes.io/part-of: kcp-tmc}
  # The API's answer for this pod exceeds the kubernetes filter's default
  # 32K buffer (large annotations are common: last-applied configurations).
  annotations: {example.com/large: %[3]q}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: kcp
    image: ghcr.io/kcp-dev/kcp:v0.32.3
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, ns, pod, strings.Repeat("x", 40<<10))), "apply", "--server-side", "--field-manager=kcp-tmc-test", "-f", "-"); err != nil {
		t.Fatalf("the logging pod's namespace and pod: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })
	var p struct{ Metadata struct{ UID string } }
	getJSON(t, &p, "pod", pod, "--namespace", ns)

	// kubernetes.default.svc:443 is the API server, as in a pod.
	api, _ := url.Parse(kube.Server)
	forward(t, "127.8.0.1:443", api.Host)
	es := esstub.New(t, "127.8.0.2:9200", ca.ServerCert(t, esHost), "kcp-tmc", password, logging.DefaultIndex)

	root := podRoot(t, map[string]string{"kubernetes.default.svc": "127.8.0.1", esHost: "127.8.0.2"},
		cm.Data, token, caCrt)
	logFile := containerLog(t, root, ns, pod, p.Metadata.UID, "kcp")
	write := func(lines ...string) {
		t.Helper()
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, l := range lines {
			if _, err := fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), l); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(`stdout F {"level":"info","msg":"hello from kcp","component":"apiserver"}`,
		`stdout P {"level":"info","msg":"a line the runtime `,
		`stdout F split in two"}`,
		`stderr F plain text, not JSON`)

	fb := startFluentBit(t, bin, root, container.Args, env)
	eventually(t, 60*time.Second, "the three lines in Elasticsearch", func() string {
		if es.Count("hello from kcp") == 0 || es.Count("a line the runtime split in two") == 0 || es.CountLog("plain text, not JSON") == 0 {
			return es.String() + "\nfluent-bit: " + fb.tail()
		}
		return ""
	})
	doc := es.Find("hello from kcp")
	k8s, _ := doc["kubernetes"].(map[string]any)
	labels, _ := k8s["labels"].(map[string]any)
	if doc["level"] != "info" || doc["component"] != "apiserver" || k8s["pod_name"] != pod || k8s["namespace_name"] != ns ||
		k8s["container_name"] != "kcp" || labels["app_kubernetes_io/name"] != "kcp" || doc["@timestamp"] == nil {
		t.Errorf("the JSON line's document lacks its fields or the pod's metadata (labels' dots replaced):\n%v", doc)
	}
	if _, copied := k8s["annotations"]; copied {
		t.Errorf("the pod's annotations (40 KiB here) copied into every line's document: %.300v", k8s)
	}
	if _, kept := doc["log"]; kept {
		t.Errorf("the JSON line is also kept whole as log (Keep_Log Off): %v", doc)
	}
	shipped, _ := json.Marshal(doc)
	t.Logf("the JSON line in Elasticsearch: %s", shipped)

	// A restart (the DaemonSet's pod replaced) ships nothing twice and loses
	// nothing: neither what a container wrote meanwhile nor the log of a
	// container (re)started meanwhile, a file fluent-bit has no position for.
	fb.stop(t)
	write(`stdout F {"level":"info","msg":"while fluent-bit restarted"}`)
	restarted := containerLogN(t, root, ns, pod, p.Metadata.UID, "kcp", 1)
	if err := os.WriteFile(restarted, []byte(time.Now().UTC().Format(time.RFC3339Nano)+
		` stdout F {"level":"info","msg":"a container started while fluent-bit was down"}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	fb = startFluentBit(t, bin, root, container.Args, env)
	eventually(t, 60*time.Second, "the lines written during the restart", func() string {
		if es.Count("while fluent-bit restarted") == 0 || es.Count("a container started while fluent-bit was down") == 0 {
			return es.String() + "\nfluent-bit: " + fb.tail()
		}
		return ""
	})

	// Elasticsearch refusing: the chunk is retried until it takes it.
	es.SetFailing(true)
	write(`stdout F {"level":"warn","msg":"while elasticsearch refused"}`)
	eventually(t, 60*time.Second, "a bulk request refused", func() string {
		if es.Refused() == 0 {
			return es.String()
		}
		return ""
	})
	// The series the logging alerts read, where the PodMonitor scrapes them
	// (logging.MetricsPath on the pod's port 2020).
	eventually(t, 60*time.Second, "fluent-bit's metrics counting the retry", func() string {
		m := scrape(t, "http://127.0.0.1:2020"+logging.MetricsPath)
		for _, series := range []string{`fluentbit_output_proc_records_total{name="es.0"}`, `fluentbit_output_dropped_records_total{name="es.0"}`} {
			if _, ok := m[series]; !ok {
				return "no " + series
			}
		}
		if m[`fluentbit_output_retries_total{name="es.0"}`] < 1 {
			return fmt.Sprintf("fluentbit_output_retries_total %v", m[`fluentbit_output_retries_total{name="es.0"}`])
		}
		return ""
	})
	es.SetFailing(false)
	eventually(t, 120*time.Second, "the refused line, retried", func() string {
		if es.Count("while elasticsearch refused") == 0 {
			return es.String() + "\nfluent-bit: " + fb.tail()
		}
		return ""
	})
	// A burst: Elasticsearch's answer to one bulk request of it exceeds
	// fluent-bit's default 512k response buffer (es Buffer_Size). Without
	// Buffer_Size False a truncated answer makes fluent-bit send the chunk
	// again when the answer arrives in more than one read (seen under load:
	// 11,142 documents; unloaded runs took it whole).
	const burst = 6000
	var lines []string
	for i := range burst {
		lines = append(lines, fmt.Sprintf(`stdout F {"level":"info","msg":"burst line %05d","component":"apiserver"}`, i))
	}
	write(lines...)
	eventually(t, 90*time.Second, "the burst", func() string {
		if n := es.CountPrefix("burst line "); n < burst {
			return fmt.Sprintf("%d of %d burst lines; largest bulk answer %d bytes; fluent-bit: %s", n, burst, es.LargestAnswer(), fb.tail())
		}
		return ""
	})
	t.Logf("the burst: %d lines, Elasticsearch's largest bulk answer %d bytes", burst, es.LargestAnswer())
	if es.LargestAnswer() <= 512<<10 {
		t.Errorf("no bulk answer above fluent-bit's default 512k buffer (largest %d bytes): the burst tests nothing", es.LargestAnswer())
	}
	time.Sleep(6 * time.Second) // one more flush: anything sent twice shows now
	if n := es.CountPrefix("burst line "); n != burst {
		t.Errorf("%d burst lines in Elasticsearch, want %d: a chunk sent again", n, burst)
	}
	for _, msg := range []string{"hello from kcp", "a line the runtime split in two", "while fluent-bit restarted",
		"a container started while fluent-bit was down", "while elasticsearch refused"} {
		if n := es.Count(msg); n != 1 {
			t.Errorf("%q in Elasticsearch %d times, want once", msg, n)
		}
	}
	fb.stop(t)

	// A certificate its CA signed for another name is not Elasticsearch's.
	impostor := esstub.New(t, "127.8.0.3:9200", ca.ServerCert(t, "elsewhere.logging.test"), "kcp-tmc", password, logging.DefaultIndex)
	root2 := podRoot(t, map[string]string{"kubernetes.default.svc": "127.8.0.1", esHost: "127.8.0.3"}, cm.Data, token, caCrt)
	logFile = containerLog(t, root2, ns, pod, p.Metadata.UID, "kcp")
	write(`stdout F {"level":"info","msg":"for the impostor"}`)
	fb = startFluentBit(t, bin, root2, container.Args, env)
	eventually(t, 30*time.Second, "fluent-bit refusing the impostor's certificate", func() string {
		if !strings.Contains(fb.tail(), "certificate") {
			return "fluent-bit: " + fb.tail()
		}
		return ""
	})
	for _, line := range strings.Split(fb.tail(), "\n") {
		if strings.Contains(line, "certificate") {
			t.Logf("fluent-bit: %s", line)
		}
	}
	if n := impostor.Requests(); n > 0 {
		t.Errorf("fluent-bit sent %d requests to a server whose certificate names elsewhere.logging.test, not %s", n, esHost)
	}
	fb.stop(t)
}

// scrape reads a Prometheus text exposition: series (name{labels}, as
// written) to value; nothing on error.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line) // series value [timestamp]; no spaces in these labels
		if len(f) < 2 {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(f[1], &v); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// podRoot builds the root fluent-bit's container sees: /etc/hosts naming
// hosts, the ConfigMap's files, the ServiceAccount's files, and the mount
// points of what the node provides (startFluentBit mounts them).
func podRoot(t *testing.T, hosts, configFiles map[string]string, token string, apiCA []byte) string {
	t.Helper()
	root := t.TempDir()
	var etcHosts strings.Builder
	etcHosts.WriteString("127.0.0.1 localhost\n")
	for name, ip := range hosts {
		fmt.Fprintf(&etcHosts, "%s %s\n", ip, name)
	}
	sa := "var/run/secrets/kubernetes.io/serviceaccount/"
	write := map[string]string{"etc/hosts": etcHosts.String(), "etc/resolv.conf": "",
		"etc/nsswitch.conf": "hosts: files\n", sa + "token": token, sa + "ca.crt": string(apiCA), sa + "namespace": logging.Namespace}
	for name, data := range configFiles {
		write["fluent-bit/etc/"+name] = data
	}
	for _, d := range []string{"usr", "dev", "proc", "tmp", "etc/ssl", "fluent-bit/bin", "var/log/pods", "var/log/containers", "var/lib/fluent-bit"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink("/" + l); err == nil {
			if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write["fluent-bit/bin/fluent-bit"] = ""
	for name, data := range write {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// containerLog creates a container's log file where the kubelet writes it
// and the symlink it makes in /var/log/containers (absolute, as the
// kubelet's are), and returns the file's path on this machine.
func containerLog(t *testing.T, root, ns, pod, uid, container string) string {
	t.Helper()
	return containerLogN(t, root, ns, pod, uid, container, 0)
}

// containerLogN is containerLog for the container's restart n.
func containerLogN(t *testing.T, root, ns, pod, uid, container string, restart int) string {
	t.Helper()
	id := fmt.Sprintf("%064x", restart+1)
	inPod := fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/%d.log", ns, pod, uid, container, restart)
	path := filepath.Join(root, inPod)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "var/log/containers", fmt.Sprintf("%s_%s_%s-%s.log", pod, ns, container, id))
	if err := os.Symlink(inPod, link); err != nil {
		t.Fatal(err)
	}
	return path
}

type fluentBitProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (f *fluentBitProc) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log.Write(b)
}

func (f *fluentBitProc) tail() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.log.String()
	if len(s) > 3000 {
		s = "…" + s[len(s)-3000:]
	}
	return s
}

// startFluentBit runs args (the container's) in a mount namespace of its
// own, chrooted into root, with the host's /usr, /dev, /proc and CA
// bundle, the binary at the image's path, /var/log read-only.
func startFluentBit(t *testing.T, bin, root string, args, env []string) *fluentBitProc {
	t.Helper()
	const script = `set -eu
r=$1 bin=$2; shift 2
mount --bind /usr "$r/usr"
mount --rbind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount --bind /etc/ssl "$r/etc/ssl"
mount --bind "$bin" "$r/fluent-bit/bin/fluent-bit"
mount --bind "$r/var/log" "$r/var/log"
mount -o remount,bind,ro "$r/var/log"
exec chroot "$r" /fluent-bit/bin/fluent-bit "$@"`
	f := &fluentBitProc{done: make(chan struct{})}
	f.cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", root, bin}, args...)...)
	f.cmd.Env = env
	f.cmd.Stdout, f.cmd.Stderr = f, f
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.done
		if t.Failed() {
			t.Logf("fluent-bit log:\n%s", f.log.String())
		}
	})
	return f
}

// stop ends fluent-bit as the kubelet does, SIGTERM, and waits for it.
func (f *fluentBitProc) stop(t *testing.T) {
	t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("fluent-bit did not stop within 30 s of SIGTERM:\n%s", f.tail())
	}
}

// forward relays TCP connections from listen to target.
func forward(t *testing.T, listen, target string) {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}
