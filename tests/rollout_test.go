package tests

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	podspec "github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TestEtcdRolloutNeverCostsQuorum runs the rollout Job's script, as the
// etcd component renders it (three members, prod's count), against the
// real kube-apiserver and kube-controller-manager, with the Job's own
// ServiceAccount token and Role: the StatefulSet controller recreates each
// deleted pod from the new template, and the test plays the kubelet (a
// pod is Ready a second after it is created, unless its member is down).
// Each case changes the pod template and runs the script: a Ready member
// is restarted only while every member is Ready, highest ordinal first; a
// member down is restarted first, and while it stays down no Ready member
// is touched and the Job fails naming it; once it is back the next run
// finishes.
func TestEtcdRolloutNeverCostsQuorum(t *testing.T) {
	ctx := context.Background()
	const ns = "kcp-rollout"
	job, env := applyEtcdMembers(t, ns, 3)
	cfg, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	k := &fakeKubelet{client: client, ns: ns, down: map[string]bool{}}
	stop := k.start(ctx)
	defer stop()
	k.waitReady(t, 3)

	token, _, err := kube.Kubectl(ctx, nil, "create", "token", job, "-n", ns, "--duration=1h")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kube.KubeconfigFor(kubeconfig, strings.TrimSpace(token)); err != nil {
		t.Fatal(err)
	}

	revision := 0
	for _, tc := range []struct {
		name        string
		newTemplate bool     // the up changed the pod template
		down        []string // members down during the run
		wantOK      bool
		restarts    []string // in this order, and no other
		logs        []string
	}{
		{name: "all Ready: highest ordinal first, one at a time", newTemplate: true, wantOK: true,
			restarts: []string{"etcd-2", "etcd-1", "etcd-0"}, logs: []string{"every member Ready: restarting etcd-2", "OK: all 3 member(s) Ready"}},
		{name: "etcd-0 lost: restarted first, the Ready members left alone", newTemplate: true, down: []string{"etcd-0"},
			restarts: []string{"etcd-0"}, logs: []string{"etcd-0 is not Ready and on the previous template: restarting it first",
				"not Ready for 10 s: etcd-0", "not restarting etcd-2 etcd-1"}},
		{name: "etcd-0 back: the next run finishes the rollout", wantOK: true,
			restarts: []string{"etcd-2", "etcd-1"}, logs: []string{"OK: all 3 member(s) Ready"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k.setDown(tc.down...)
			// The fake kubelet marks pods at its next tick: the script must
			// start on the readiness the case describes (found by CI: it
			// saw etcd-0 still Ready and rightly restarted etcd-2).
			k.waitReady(t, 3-len(tc.down))
			if tc.newTemplate {
				revision++
				patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kcp-tmc.io/test-revision":"%d"}}}}}`, revision)
				if _, _, err := kube.Kubectl(ctx, nil, "-n", ns, "patch", "statefulset", etcd.Name, "--type=merge", "-p", patch); err != nil {
					t.Fatal(err)
				}
			}
			k.reset()
			out, err := runScript(t, job, env, kubeconfig)
			restarts, violations := k.report()
			t.Logf("restarted %v; the script said:\n%s", restarts, out)
			if (err == nil) != tc.wantOK {
				t.Errorf("the rollout exited %v, want success %v", err, tc.wantOK)
			}
			if !slices.Equal(restarts, tc.restarts) {
				t.Errorf("members restarted %v, want %v", restarts, tc.restarts)
			}
			for _, v := range violations {
				t.Errorf("quorum put at risk: %s", v)
			}
			for _, want := range tc.logs {
				if !strings.Contains(out, want) {
					t.Errorf("the rollout's log has no %q", want)
				}
			}
		})
	}

	// The Job's identity deletes the members' pods and nothing else.
	if out, err := exec.CommandContext(ctx, filepath.Join(automation.ToolchainBin(), "kubectl"), "--kubeconfig="+kubeconfig,
		"-n", ns, "delete", "statefulset", etcd.Name, "--dry-run=server").CombinedOutput(); err == nil || !strings.Contains(string(out), "forbidden") {
		t.Errorf("the rollout's identity may delete the StatefulSet (err %v): %s", err, out)
	}
}

// applyEtcdMembers applies an etcd cluster of n members as the component
// renders it (under mocks) into ns, without its Jobs (nothing runs them
// here), and returns the rollout Job's name and environment.
func applyEtcdMembers(t *testing.T, ns string, n int) (string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := etcd.NewEtcd(ctx, "etcd", etcd.Args{Namespace: ns, Replicas: n, StorageClass: "standard", StorageSize: "20Gi",
			ServerSecret: "etcd-server", PeerSecret: "etcd-peer",
			Resources: podspec.Resources{Requests: podspec.ResourceList{CPU: "100m", Memory: "128Mi", EphemeralStorage: "64Mi"},
				Limits: podspec.ResourceList{CPU: "1", Memory: "1Gi", EphemeralStorage: "256Mi"}}})
		return err
	})
	if _, _, err := kube.Kubectl(ctx, nil, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _, _ = kube.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=false") })
	var job string
	env := map[string]string{}
	var docs []string
	for _, obj := range rec.Manifests() {
		if obj["kind"] == "Job" {
			name := fmt.Sprint(mocktest.Dig(obj, "metadata", "name"))
			if !strings.HasSuffix(name, "-rollout") {
				continue
			}
			job = name
			c := mocktest.Dig(obj, "spec", "template", "spec", "containers", 0)
			for _, e := range mocktest.List(mocktest.Dig(c, "env")) {
				env[fmt.Sprint(mocktest.Dig(e, "name"))] = fmt.Sprint(mocktest.Dig(e, "value"))
			}
			env["SCRIPT"] = mocktest.Strings(mocktest.Dig(c, "command"))[2]
			continue
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	if job == "" {
		t.Fatal("the etcd component renders no rollout Job")
	}
	if _, _, err := kube.Kubectl(ctx, []byte(strings.Join(docs, "---\n")), "apply", "--server-side", "--field-manager=kcp-tmc", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	return job, env
}

// runScript runs the rollout Job's script as its pod would, with its
// environment (a 10 s wait instead of 5 minutes) and its token.
func runScript(t *testing.T, job string, env map[string]string, kubeconfig string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", env["SCRIPT"], job)
	cmd.Env = []string{"PATH=" + automation.ToolchainBin() + ":/usr/bin:/bin", "HOME=" + t.TempDir(), "KUBECONFIG=" + kubeconfig}
	for k, v := range env {
		if k != "SCRIPT" && k != "HOME" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, "WAIT=10")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fakeKubelet plays the kubelet for the members' pods: a pod is Ready a
// second after it is created unless its member is down. It records the
// pods restarted (a new UID), in order, and a restart of a pod that was
// Ready while another member was not.
type fakeKubelet struct {
	client *kubernetes.Clientset
	ns     string

	mu         sync.Mutex
	down       map[string]bool
	last       map[string]corev1.Pod
	restarts   []string
	violations []string
}

func (k *fakeKubelet) setDown(names ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.down = map[string]bool{}
	for _, n := range names {
		k.down[n] = true
	}
}

func (k *fakeKubelet) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.restarts, k.violations = nil, nil
}

func (k *fakeKubelet) report() ([]string, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.restarts), slices.Clone(k.violations)
}

func (k *fakeKubelet) start(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			k.tick(ctx)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-done }
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (k *fakeKubelet) tick(ctx context.Context) {
	list, err := k.client.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(podspec.Labels(etcd.Name)).String()})
	if err != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := map[string]corev1.Pod{}
	for _, p := range list.Items {
		now[p.Name] = p
	}
	for name, before := range k.last {
		if p, ok := now[name]; ok && p.UID == before.UID {
			continue
		}
		if len(k.restarts) == 0 || k.restarts[len(k.restarts)-1] != name {
			k.restarts = append(k.restarts, name)
		}
		if !ready(before) {
			continue
		}
		for other, o := range k.last {
			if other != name && !ready(o) {
				k.violations = append(k.violations, fmt.Sprintf("%s restarted while Ready, with %s not Ready", name, other))
			}
		}
	}
	k.last = now
	for _, p := range list.Items {
		want := !k.down[p.Name] && time.Since(p.CreationTimestamp.Time) > time.Second && p.DeletionTimestamp == nil
		if ready(p) == want {
			continue
		}
		status := corev1.ConditionFalse
		if want {
			status = corev1.ConditionTrue
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
		_, _ = k.client.CoreV1().Pods(k.ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{})
	}
}

func (k *fakeKubelet) waitReady(t *testing.T, n int) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(200 * time.Millisecond) {
		k.mu.Lock()
		count := 0
		for _, p := range k.last {
			if ready(p) {
				count++
			}
		}
		k.mu.Unlock()
		if count == n {
			return
		}
	}
	out, _, _ := kube.Kubectl(context.Background(), nil, "-n", k.ns, "get", "pods,statefulsets", "-o", "wide")
	t.Fatalf("the StatefulSet's %d pods were not all created and Ready in 60 s:\n%s\ncontroller-manager log:\n%s", n, out, kube.Log("kube-controller-manager"))
}
