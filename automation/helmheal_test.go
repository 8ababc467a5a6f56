package automation

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	corev1 "k8s.io/api/core/v1"

	"github.com/kcp-tmc/kcp-tmc/internal/test/s3backend"
)

func TestPlaintext(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
		ok   bool
	}{
		{"plain", "cert-manager", "cert-manager", true},
		{"a secret the export showed", map[string]any{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": `"apiVersion: v1"`}, "apiVersion: v1", true},
		{"a secret still encrypted", map[string]any{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:abc"}, "", false},
		{"absent", nil, "", false},
	}
	for _, tc := range tests {
		if got, ok := plaintext(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("%s: plaintext = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReleaseCluster: the Helm heal reaches the cluster the release's
// provider was configured with, as the provider reads its inputs.
func TestReleaseCluster(t *testing.T) {
	const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://a.example:6443"}}, {name: b, cluster: {server: "https://b.example:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: a, context: {cluster: a, user: u, namespace: team-a}}, {name: b, context: {cluster: b, user: u}}]
current-context: a
`
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(file, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	const urn = "urn:pulumi:prod::kcp-tmc::pulumi:providers:kubernetes::cluster"
	secret := func(s string) map[string]any {
		return map[string]any{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": mustJSON(t, s)}
	}
	tests := []struct {
		name          string
		inputs        map[string]any
		server, names string
	}{
		{"kubeconfig contents, a secret", map[string]any{"kubeconfig": map[string]any{
			"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": mustJSON(t, kubeconfig)}}, "https://a.example:6443", "team-a"},
		{"kubeconfig path and context", map[string]any{"kubeconfig": file, "context": "b"}, "https://b.example:6443", "default"},
		{"the provider's namespace", map[string]any{"kubeconfig": file, "namespace": secret("ops")}, "https://a.example:6443", "ops"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const id = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
			state := apitype.DeploymentV3{Resources: []apitype.ResourceV3{
				{URN: resource.URN(urn), ID: "replaced-provider", Inputs: map[string]any{"kubeconfig": "/nonexistent"}},
				{URN: resource.URN(urn), ID: id, Inputs: tc.inputs}}}
			cfg, ns, err := releaseCluster(state, urn+"::"+id)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.server || ns != tc.names {
				t.Errorf("cluster %s, namespace %s; want %s, %s", cfg.Host, ns, tc.server, tc.names)
			}
		})
	}
}

func mustJSON(t *testing.T, s string) string {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestPendingHelmOperation: the local backend's checkpoint answers whether
// a killed up left a Helm operation pending; elsewhere nothing is known.
func TestPendingHelmOperation(t *testing.T) {
	tests := []struct {
		name           string
		backend        string
		checkpoint     string // "" for no file
		pending, known bool
	}{
		{"a Helm install pending", "file://", `{"version":3,"checkpoint":{"latest":{"pending_operations":[{"resource":{"urn":"u","type":"kubernetes:helm.sh/v3:Release"},"type":"creating"}]}}}`, true, true},
		{"another resource pending", "file://", `{"version":3,"checkpoint":{"latest":{"pending_operations":[{"resource":{"urn":"u","type":"kubernetes:core/v1:ConfigMap"},"type":"creating"}]}}}`, false, true},
		{"nothing pending", "file://", `{"version":3,"checkpoint":{"latest":{"resources":[]}}}`, false, true},
		{"no checkpoint (a new stack, or another layout)", "file://", "", false, false},
		{"a damaged checkpoint", "file://", `{"version":3,"checkp`, false, false},
		{"a backend kcp-tmc does not read", "gs://", "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.checkpoint != "" {
				file := CheckpointPath(dir, "prod")
				if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(tc.checkpoint), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			locks, _ := OpenLocks(tc.backend+dir, "", "prod")
			if pending, known := pendingHelmOperation(locks); pending != tc.pending || known != tc.known {
				t.Errorf("pending, known = %v, %v; want %v, %v", pending, known, tc.pending, tc.known)
			}
		})
	}
}

// TestReadCheckpoint: what kcp-tmc reads of the state for the Helm heal
// and for clearing the creates an up redid, from a local backend's file
// and from an S3 bucket.
func TestReadCheckpoint(t *testing.T) {
	raw := `{"version":3,"checkpoint":{"latest":{"resources":[
		{"urn":"root","type":"pulumi:pulumi:Stack"},{"urn":"cm","type":"kubernetes:core/v1:ConfigMap"},
		{"urn":"old","type":"kubernetes:core/v1:ConfigMap","delete":true}],
		"pending_operations":[{"resource":{"urn":"cm","type":"kubernetes:core/v1:ConfigMap"},"type":"creating"}]}}}`
	want := checkpoint{pending: []pendingOp{{"creating", "cm", "kubernetes:core/v1:ConfigMap"}},
		held: map[string]bool{"root": true, "cm": true}, root: "root"}
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			url := "file://" + dir
			if backend == "s3" {
				t.Setenv("XDG_STATE_HOME", t.TempDir())
				// A path in the bucket: the engine keeps the state under it.
				url = strings.Replace(s3backend.Start(t), "s3://state?", "s3://state/team/kcp?", 1)
			}
			locks, err := OpenLocks(url, "", "prod")
			if err != nil {
				t.Fatal(err)
			}
			defer locks.Close()
			if _, known := readCheckpoint(locks); known {
				t.Fatal("a checkpoint read before there is one")
			}
			if backend == "s3" {
				b := locks.lockStore.(*s3Locks)
				if b.checkpointK != "team/kcp/.pulumi/stacks/kcp-tmc/prod.json" {
					t.Fatalf("the checkpoint's key is %q, not where the engine writes it", b.checkpointK)
				}
				if err := b.bucket.WriteAll(context.Background(), b.checkpointK, []byte(raw), nil); err != nil {
					t.Fatal(err)
				}
			} else {
				file := CheckpointPath(dir, "prod")
				if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(raw), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if c, known := readCheckpoint(locks); !known || !reflect.DeepEqual(c, want) {
				t.Errorf("readCheckpoint = %+v, %v; want %+v, true", c, known, want)
			}
		})
	}
}

func TestReleaseClusterRefuses(t *testing.T) {
	const urn = "urn:pulumi:prod::kcp-tmc::pulumi:providers:kubernetes::cluster"
	state := apitype.DeploymentV3{Resources: []apitype.ResourceV3{{URN: resource.URN(urn), ID: "a", Inputs: map[string]any{"kubeconfig": "/nonexistent/kubeconfig"}}}}
	for ref, want := range map[string]string{
		urn + "::b": "its provider " + urn + "::b is not in the state",
		urn + "::a": "its provider's kubeconfig file: stat /nonexistent/kubeconfig",
	} {
		if _, _, err := releaseCluster(state, ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("releaseCluster(%s) = %v, want %q", ref, err, want)
		}
	}
}

// TestLockStack: what kcp-tmc changes outside the engine (the Helm heal)
// it changes holding the stack's Pulumi lock, taken as the engine takes
// it, in a local directory and in a bucket.
func TestLockStack(t *testing.T) {
	for _, kind := range []string{"file", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", t.TempDir())
			backend := "file://" + t.TempDir()
			if kind == "s3" {
				backend = s3backend.Start(t)
			}
			g, err := holdStack(backend, "", "dev", "up", io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { g.release() }() // the last hold taken
			unlock, err := g.lockStack()
			if err != nil {
				t.Fatal(err)
			}
			held, err := g.list()
			if err != nil || len(held) != 1 || held[0].Pid != os.Getpid() {
				t.Fatalf("the stack's locks while kcp-tmc holds it: %v, %v; want its own", held, err)
			}
			if n, locked := g.recorded(); n != 1 || !locked {
				t.Errorf("the lock is not recorded as this process's (engines %d, locked %v): a kill now would leave it", n, locked)
			}
			if _, err := g.lockStack(); !errors.Is(err, ErrStackInUse) {
				t.Errorf("taking a locked stack's lock: %v, want ErrStackInUse", err)
			}
			unlock()
			if held, err := g.list(); err != nil || len(held) != 0 {
				t.Errorf("locks after unlock: %v, %v", held, err)
			}
			if n, _ := g.recorded(); n != 0 {
				t.Errorf("still recorded after unlock: %d", n)
			}
			// A lock whose removal failed stays recorded; this same process,
			// holding the stack again, removes it instead of refusing.
			if _, err := g.lockStack(); err != nil {
				t.Fatal(err)
			}
			g.release()
			var out bytes.Buffer
			g, err = holdStack(backend, "", "dev", "up", &out)
			if err != nil || !strings.Contains(out.String(), "that this kcp-tmc could not remove before") {
				t.Fatalf("holding the stack again over its own lock left: %v; it said %q", err, out.String())
			}
			if held, err := g.list(); err != nil || len(held) != 0 {
				t.Errorf("locks after holding again: %v, %v", held, err)
			}
		})
	}
}

func TestStderrOf(t *testing.T) {
	err := errors.New("failed to export stack: exit status 1\ncode: 1\nstdout: {\"secret\": \"s3cr3t\"}\nstderr: error: decrypting: bad passphrase\n")
	if got := stderrOf(err); got != "error: decrypting: bad passphrase" {
		t.Errorf("stderrOf = %q", got)
	}
	if got := stderrOf(errors.New("failed\nstdout: s3cr3t")); strings.Contains(got, "s3cr3t") {
		t.Errorf("stderrOf = %q: it shows stdout", got)
	}
}

func TestRecordChart(t *testing.T) {
	record := func(body string) corev1.Secret {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		_, _ = w.Write([]byte(body))
		_ = w.Close()
		return corev1.Secret{Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))}}
	}
	got, err := recordChart(record(`{"name":"cert-manager","chart":{"metadata":{"name":"cert-manager","version":"v1.21.2"}},"version":1}`))
	if err != nil || got != (chartRef{"cert-manager", "v1.21.2"}) {
		t.Fatalf("recordChart = %v, %v", got, err)
	}
	if _, err := recordChart(corev1.Secret{Data: map[string][]byte{"release": []byte("not base64!")}}); err == nil {
		t.Error("an unreadable record reads")
	}
	tests := []struct {
		want chartRef
		ok   bool
	}{
		{chartRef{"cert-manager", "v1.21.2"}, true},
		{chartRef{"jetstack/cert-manager", "v1.21.2"}, true},
		{chartRef{"https://charts.example.com/cert-manager-v1.21.2.tgz", ""}, true},
		{chartRef{"cert-manager", ""}, true},
		{chartRef{"cert-manager", "v1.20.0"}, false},
		{chartRef{"ingress-nginx", "v1.21.2"}, false},
		{chartRef{"cert", "v1.21.2"}, false},
		{chartRef{"cert-manager-webhook", "v1.21.2"}, false},
	}
	for _, tc := range tests {
		if ok := tc.want.matches(got); ok != tc.ok {
			t.Errorf("%v matches %v = %v, want %v", tc.want, got, ok, tc.ok)
		}
	}
}
