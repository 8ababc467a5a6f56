package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// restart stops a started workload with sig (SIGKILL: a crash or an OOM
// kill; SIGTERM: a rolling restart), starts it again with the same command
// line, as its pod's restart does, and returns the time from the signal to
// the new process's readiness.
func (cp *controlPlane) restart(t testing.TB, workload string, sig syscall.Signal) time.Duration {
	t.Helper()
	began := time.Now()
	cp.stop(t, workload, sig)
	cp.startAgain(t, workload, fmt.Sprintf("after-%s", strings.ToLower(sig.String()[:4])))
	return time.Since(began)
}

// stop signals a started workload, waits for it to exit and returns how
// long that took.
func (cp *controlPlane) stop(t testing.TB, workload string, sig syscall.Signal) time.Duration {
	t.Helper()
	in, ok := cp.running[workload]
	if !ok {
		t.Fatalf("%s was not started by this test", workload)
	}
	began := time.Now()
	if err := in.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling %s: %v", workload, err)
	}
	select {
	case err := <-in.proc.done:
		in.proc.done <- err // for the cleanup, which waits for it too
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s still running 2m after %v", workload, sig)
	}
	return time.Since(began)
}

// startAgain starts a stopped workload with the command line it had, its
// log named with suffix, and returns the time to its readiness.
func (cp *controlPlane) startAgain(t testing.TB, workload, suffix string) time.Duration {
	t.Helper()
	in := cp.running[workload]
	again := *in
	return cp.launch(t, in.proc.name+"-"+suffix, &again, 3*time.Minute)
}

// writeLoad creates ConfigMaps in a workspace through the front-proxy from
// several clients at once, each a new name, never retried: a write is
// acknowledged when kcp answered 201, and only then must it exist later.
type writeLoad struct {
	mu      sync.Mutex
	acked   []string
	ackedAt []time.Time
	failed  []time.Time // when each unacknowledged write was answered
	stop    chan struct{}
	done    sync.WaitGroup
}

func startWriteLoad(clients []*client, workspace, prefix string) *writeLoad {
	l := &writeLoad{stop: make(chan struct{})}
	path := "/clusters/" + workspace + "/api/v1/namespaces/default/configmaps"
	for w, c := range clients {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				name := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				code, _, err := c.try(http.MethodPost, path, map[string]any{
					"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"i": fmt.Sprint(i)}})
				l.mu.Lock()
				if err == nil && code == http.StatusCreated {
					l.acked, l.ackedAt = append(l.acked, name), append(l.ackedAt, time.Now())
				} else {
					l.failed = append(l.failed, time.Now())
				}
				l.mu.Unlock()
				if err != nil || code != http.StatusCreated {
					time.Sleep(100 * time.Millisecond) // as a client's backoff; keeps the error count readable
				}
			}
		}()
	}
	return l
}

// finish stops the writers.
func (l *writeLoad) finish() {
	close(l.stop)
	l.done.Wait()
}

// TestKCPAndFrontProxyFailuresUnderLoad: clients write through the
// front-proxy without pause while (1) kcp is killed with SIGKILL and starts
// again, and (2) the front-proxy is restarted. Every write kcp
// acknowledged is there afterwards; clients see errors only while the
// program is down, and the same clients (the same kubeconfig: certificate,
// CA, address) succeed again after it is back, with no new connection
// settings.
func TestKCPAndFrontProxyFailuresUnderLoad(t *testing.T) {
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	objs, _ := render(t, "dev", map[string]string{"tls": `{"mode":"self-managed"}`})
	cp := startControlPlane(t, objs)
	const workspace = "root:load"
	cp.admin.must(t, http.MethodPost, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces", map[string]any{
		"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": map[string]any{"name": "load"}})
	cp.admin.eventually(t, "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/load", 2*time.Minute, func(ws map[string]any) bool {
		return mocktest.Dig(ws, "status", "phase") == "Ready"
	})
	var clients []*client
	for range 4 {
		c := cp.client(t, tls.CertAdmin, cp.admin.base, "")
		c.http.Timeout = 5 * time.Second // a client's request timeout; not the 30 s of the setup calls
		clients = append(clients, c)
	}
	// Errors are allowed from the signal until the program is ready again
	// and this much after (connections re-dialled, the shard found again).
	const settle = 5 * time.Second
	for _, step := range []struct {
		workload string
		sig      syscall.Signal
	}{
		{kcp.ServerName, syscall.SIGKILL},
		{kcp.FrontProxyName, syscall.SIGTERM},
	} {
		t.Run(fmt.Sprintf("%s %v", step.workload, step.sig), func(t *testing.T) {
			load := startWriteLoad(clients, workspace, strings.ToLower(step.workload))
			time.Sleep(5 * time.Second) // steady state before the failure
			down := time.Now()
			took := cp.restart(t, step.workload, step.sig)
			up := time.Now()
			time.Sleep(settle + 10*time.Second) // the writes after recovery must succeed
			load.finish()
			acked := load.acked
			outage := time.Duration(0)
			if n := len(load.failed); n > 0 {
				outage = load.failed[n-1].Sub(load.failed[0])
			}
			t.Logf("%s: ready %s after %v; clients saw errors for %s; %d writes acknowledged (all checked), %d failed",
				step.workload, took.Round(100*time.Millisecond), step.sig, outage.Round(100*time.Millisecond), len(acked), len(load.failed))
			var late []string
			for _, at := range load.failed {
				if at.Before(down) || at.After(up.Add(settle)) {
					late = append(late, at.Sub(down).Round(10*time.Millisecond).String())
				}
			}
			if len(late) > 0 {
				t.Errorf("writes failed outside the outage (at these offsets from the signal; ready at %s): %v", up.Sub(down).Round(10*time.Millisecond), late)
			}
			list := cp.admin.must(t, http.MethodGet, "/clusters/"+workspace+"/api/v1/namespaces/default/configmaps", nil)
			present := map[string]bool{}
			for _, item := range mocktest.List(list["items"]) {
				present[fmt.Sprint(mocktest.Dig(item, "metadata", "name"))] = true
			}
			var missing []string
			for _, name := range acked {
				if !present[name] {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 {
				t.Errorf("%d acknowledged writes are missing after the %s restart: %v", len(missing), step.workload, missing)
			}
			recovered := 0
			for _, at := range load.ackedAt {
				if at.After(up.Add(settle)) {
					recovered++
				}
			}
			if recovered == 0 {
				t.Errorf("no write succeeded after %s was back: the clients did not recover", step.workload)
			}
		})
	}
}
