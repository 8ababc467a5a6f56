package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/proctest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/s3backend"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

// TestKilledHelmOperationIsRedone: an up SIGKILLed while the Kubernetes
// provider installs or upgrades a Helm release (Helm waits for the release's
// objects, as cert-manager's install does for its webhook) leaves Helm's
// record of that revision pending, and the state with a pending operation.
// Helm refuses the next install of that name ("cannot re-use a name that is
// still in use") or upgrade ("another operation … is in progress"). The
// killed engine's lock is gone as its up returns (no unlock), and
// automation.Up (kcp-tmc up) removes that one record and the up does the
// operation again, taking over the objects the killed one created; an up
// after it changes nothing.
func TestKilledHelmOperationIsRedone(t *testing.T) {
	service := func(suffix string) string {
		return fmt.Sprintf("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}%s\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n", suffix)
	}
	// Helm waits for each LoadBalancer Service's address, which only the test gives.
	repo := chartRepo(t, release, map[string]string{"0.1.0": service(""), "0.2.0": service("") + service("-2")})
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []helmRedoCase{
		{"install", "", "0.1.0", "pending-install", "1=deployed"},
		{"upgrade", "0.1.0", "0.2.0", "pending-upgrade", "1=superseded 2=deployed"},
	}
	for _, backend := range []string{"file", "s3"} {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				tc.run(t, backend, repo, kubeconfig)
			})
		}
	}
}

// release is the chart and release the killed operations install.
const release = "hold"

type helmRedoCase struct {
	name          string
	before        string // the version installed first, "" for none
	killed        string // the version the killed up installs or upgrades to
	pendingStatus string
	want          string // Helm's records after the redo, "revision=status …"
}

func (tc helmRedoCase) run(t *testing.T, backend, repo string, kubeconfig []byte) {
	ctx := context.Background()
	ns := "kcp-helm-" + backend + "-" + tc.name
	if _, stderr, err := kube.Kubectl(ctx, nil, "create", "namespace", ns); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })
	_, opts := testenv.Project(t, "dev", nil)
	if backend == "s3" {
		t.Setenv("XDG_STATE_HOME", t.TempDir()) // kcp-tmc's holds of the bucket's stacks
		opts.BackendURL = s3backend.Start(t)
	}
	version := tc.before
	opts.Program = func(ctx *pulumi.Context) error {
		p, err := kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{Kubeconfig: pulumi.ToSecret(pulumi.String(string(kubeconfig))).(pulumi.StringOutput)})
		if err != nil {
			return err
		}
		_, err = helmrelease.New(ctx, release, helmrelease.Args{Name: pulumi.String(release), Chart: pulumi.String(release), Version: pulumi.String(version),
			Repo: repo, Namespace: pulumi.String(ns)}, pulumi.Provider(p))
		return err
	}
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if tc.before != "" {
		stop := giveAddresses(ns)
		_, err := s.Up(ctx, optup.SuppressProgress())
		stop()
		if err != nil {
			t.Fatalf("installing %s: %v", tc.before, err)
		}
	}
	version = tc.killed
	var killed bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := s.Up(ctx, optup.ProgressStreams(&killed))
		done <- err
	}()
	waitHelmRecord(t, ns, release, tc.pendingStatus)
	killEngine(t)
	if err := <-done; err == nil {
		t.Fatalf("the up ended by itself before it was killed:\n%s", killed.String())
	}
	if !strings.Contains(killed.String(), `removed the lock of stack "dev" that its killed engine (pid `) {
		t.Errorf("the killed up did not remove its engine's lock:\n%s", cluster.Tail(killed.String(), 3000))
	}
	defer giveAddresses(ns)()
	var out bytes.Buffer
	if err := automation.Up(ctx, s, &out, optup.ProgressStreams(&out)); err != nil {
		t.Fatalf("the up after the killed one: %v\n%s", err, cluster.Tail(out.String(), 3000))
	}
	if !strings.Contains(out.String(), "removed Helm's record of release "+ns+"/"+release) {
		t.Errorf("the up did not say it removed the killed operation's record:\n%s", cluster.Tail(out.String(), 3000))
	}
	if got := helmRecords(t, ns, release); got != tc.want {
		t.Errorf("Helm's records of %s after the redo: %q, want %q", release, got, tc.want)
	}
	// Redone, the killed create is no longer pending: the engine does
	// not warn of it on every later up.
	if _, pending := testenv.Checkpoint(t, opts.BackendURL); len(pending) != 0 {
		t.Errorf("the state after the redo has operations pending: %v\n%s", pending, cluster.Tail(out.String(), 3000))
	}
	// The next up must leave the release be.
	out.Reset()
	if err := automation.Up(ctx, s, &out, optup.SuppressProgress(), optup.ExpectNoChanges()); err != nil {
		t.Errorf("an up after the redo: %v", err)
	}
	if got := helmRecords(t, ns, release); got != tc.want || strings.Contains(out.String(), "removed") {
		t.Errorf("after an up after the redo, Helm's records are %q, want %q; it said:\n%s", got, tc.want, out.String())
	}
	if _, err := s.Destroy(ctx); err != nil {
		t.Errorf("destroy: %v", err)
	}
}

// chartRepo serves a Helm chart repository with one chart, as
// charts.jetstack.io serves cert-manager's: each version's one template.
func chartRepo(t *testing.T, name string, templates map[string]string) string {
	t.Helper()
	versions := map[string]map[string]string{}
	for version, template := range templates {
		versions[version] = map[string]string{
			"Chart.yaml":                  fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version),
			"templates/" + name + ".yaml": template,
		}
	}
	return chartRepoOf(t, name, versions)
}

// chartRepoOf serves a Helm repository of chart name: per version, its files
// by path within the chart.
func chartRepoOf(t *testing.T, name string, versions map[string]map[string]string) string {
	t.Helper()
	charts := map[string][]byte{}
	var index strings.Builder
	fmt.Fprintf(&index, "apiVersion: v1\ngenerated: \"2026-12-04T00:00:00Z\"\nentries:\n  %s:\n", name)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/index.yaml" {
			_, _ = io.WriteString(w, index.String())
		} else if tgz, ok := charts[strings.TrimPrefix(r.URL.Path, "/")]; ok {
			_, _ = w.Write(tgz)
		} else {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	for version, files := range versions {
		var tgz bytes.Buffer
		gz := gzip.NewWriter(&tgz)
		tw := tar.NewWriter(gz)
		for path, body := range files {
			if err := tw.WriteHeader(&tar.Header{Name: name + "/" + path, Mode: 0o644, Size: int64(len(body)), ModTime: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := errors.Join(tw.Close(), gz.Close()); err != nil {
			t.Fatal(err)
		}
		file := fmt.Sprintf("%s-%s.tgz", name, version)
		charts[file] = tgz.Bytes()
		sum := sha256.Sum256(tgz.Bytes())
		fmt.Fprintf(&index, "  - apiVersion: v2\n    name: %s\n    version: %s\n    digest: %s\n    urls: [%s/%s]\n    created: \"2026-12-04T00:00:00Z\"\n",
			name, version, hex.EncodeToString(sum[:]), srv.URL, file)
	}
	return srv.URL
}

// giveAddresses gives every LoadBalancer Service in ns a load-balancer
// address as it appears, until stopped (what a cloud's controller does).
func giveAddresses(ns string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			names, _, _ := kube.Kubectl(ctx, nil, "get", "services", "-n", ns, "-o",
				`jsonpath={range .items[?(@.spec.type=="LoadBalancer")]}{.metadata.name}{" "}{.status.loadBalancer.ingress}{"\n"}{end}`)
			for _, line := range strings.Split(names, "\n") {
				if name, ingress, _ := strings.Cut(line, " "); name != "" && ingress == "" {
					_, _, _ = kube.Kubectl(ctx, nil, "patch", "service", name, "-n", ns, "--subresource=status", "--type=merge",
						"-p", `{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.1"}]}}}`)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-done }
}

// helmRecords is Helm's records of release: "revision=status …", oldest first.
func helmRecords(t *testing.T, ns, release string) string {
	t.Helper()
	out, _, err := kube.Kubectl(context.Background(), nil, "get", "secrets", "-n", ns, "-l", "owner=helm,name="+release, "--sort-by=.metadata.labels.version",
		"-o", `jsonpath={range .items[*]}{.metadata.labels.version}={.metadata.labels.status} {end}`)
	if err != nil {
		t.Fatalf("Helm's records of %s/%s: %v", ns, release, err)
	}
	return strings.TrimSpace(out)
}

// waitHelmRecord waits until one of Helm's records of release has status.
func waitHelmRecord(t *testing.T, ns, release, status string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(" "+helmRecords(t, ns, release)+" ", "="+status+" ") {
		if time.Now().After(deadline) {
			t.Fatalf("no record of %s/%s is %s after 2 min: %q", ns, release, status, helmRecords(t, ns, release))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// killEngine SIGKILLs the engine and providers this test process started
// (a CI runner's timeout kills them all; this process plays the next run).
// Every one: this package's tests do not run in parallel.
func killEngine(t *testing.T) {
	t.Helper()
	killed := 0
	for _, pid := range proctest.Tree(os.Getpid()) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && pid != os.Getpid() && strings.HasPrefix(filepath.Base(exe), "pulumi") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no engine process to kill")
	}
}
