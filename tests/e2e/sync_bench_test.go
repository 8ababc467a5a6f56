package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// The production targets the table is read against (README "Sync at scale").
const (
	targetSyncLatency = 5 * time.Second
	targetErrorRate   = 0.001
)

// syncStep is one row of the benchmark: objects created through kcp at a
// steady rate (objects per second, all agents together), spread evenly over
// the first agents clusters.
type syncStep struct {
	agents, objects int
	rate            float64
}

// defaultSyncSteps are the 1 agent × 1,000, 5 × 5,000 and
// 10 × 10,000 objects created as fast as a client would in bulk (50/s:
// the agents' throughput and the backlog), then 10 agents at a rate
// below their ceiling (latency in steady state).
const defaultSyncSteps = "1:1000@50,5:5000@50,10:10000@50,10:300@5"

// syncSteps reads KCP_TMC_BENCH_SYNC_STEPS ("agents:objects@rate,…").
func syncSteps(tb testing.TB) []syncStep {
	spec := os.Getenv("KCP_TMC_BENCH_SYNC_STEPS")
	if spec == "" {
		spec = defaultSyncSteps
	}
	var steps []syncStep
	for _, f := range strings.Split(spec, ",") {
		counts, rate, ok1 := strings.Cut(strings.TrimSpace(f), "@")
		a, o, ok2 := strings.Cut(counts, ":")
		na, err1 := strconv.Atoi(a)
		no, err2 := strconv.Atoi(o)
		r, err3 := strconv.ParseFloat(rate, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil || na < 1 || no < na || r <= 0 {
			tb.Fatalf("KCP_TMC_BENCH_SYNC_STEPS=%q: %q is not agents:objects@rate with objects ≥ agents ≥ 1 and rate > 0 (objects/s)", spec, f)
		}
		steps = append(steps, syncStep{na, no, r})
	}
	return steps
}

var widgetGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

// BenchmarkSync (make bench-sync): the dev stack with as many api-syncagent
// clusters as the largest step needs, every program real and started from
// what the stack renders, each physical cluster a local kube-apiserver.
// Per step, Widgets are created through the front-proxy at a steady rate
// into a consumer workspace per agent; the benchmark plays the service on
// each physical cluster (it writes a status as soon as the agent's copy
// appears) and records, per object, the latency kcp → cluster (from the
// create's acknowledgement to the copy on the cluster) and cluster → kcp
// (from the status write to the status in kcp). It prints p50/p95/p99,
// the error rate (failed creates, objects not synced, statuses not back),
// the throughput and kcp's and the agents' CPU and memory, beside the
// targets. Objects of earlier steps stay, as a platform's do.
func BenchmarkSync(b *testing.B) {
	binary(b, "KCP_BIN")
	binary(b, "KCP_FRONT_PROXY_BIN")
	agentBin := binary(b, "API_SYNCAGENT_BIN")
	steps := syncSteps(b)
	clusters := 0
	for _, s := range steps {
		clusters = max(clusters, s.agents)
	}
	// KCP_TMC_BENCH_SYNC_LOG_DEBUG=true: the agents' clusters[].logDebug,
	// a line per reconcile (with KCP_TMC_E2E_LOGS, where objects wait).
	debug := os.Getenv("KCP_TMC_BENCH_SYNC_LOG_DEBUG") == "true"
	var entries []string
	for i := range clusters {
		entries = append(entries, fmt.Sprintf(`{"name":"%s","replicas":1,"logDebug":%t,"resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]}`, benchCluster(i), debug))
	}
	objs, rec := render(b, "dev", map[string]string{"tls": `{"mode":"self-managed"}`, "clusters": "[" + strings.Join(entries, ",") + "]"})
	cp := startControlPlane(b, objs)
	cp.applyKCPSide(b, rec, map[string]string{"kcp-root": "root", "kcp-root-compute": "root:compute"})

	var lanes []*syncLane
	var rows []syncResult
	for range b.N { // -benchtime=1x: one pass over the steps
		for n, step := range steps {
			for len(lanes) < step.agents {
				lanes = append(lanes, cp.startLane(b, rec, agentBin, benchCluster(len(lanes))))
			}
			rows = append(rows, cp.runStep(b, lanes[:step.agents], n, step))
		}
	}
	printSyncTable(rows)
	last := rows[len(rows)-1]
	b.ReportMetric(last.p(last.down, 0.95).Seconds(), "p95-down-s")
	b.ReportMetric(last.p(last.up, 0.95).Seconds(), "p95-up-s")
	b.ReportMetric(last.errorRate()*100, "error-%")
}

func benchCluster(i int) string { return fmt.Sprintf("edge-%d", i+1) }

// syncLane is one agent's path: its physical cluster, its agent, the
// consumer workspace bound to its export, and the watches on both sides.
type syncLane struct {
	pc       *physicalCluster
	agent    *process
	kcp      dynamic.NamespaceableResourceInterface // Widgets in the consumer workspace, through the front-proxy
	physical dynamic.NamespaceableResourceInterface // Widgets on the physical cluster
	stop     chan struct{}

	mu sync.Mutex
	// Per object name: when the copy appeared on the cluster, when the
	// service's status write was answered there, when the status was in kcp.
	seen, patched, back map[string]time.Time
	patchErrors         int
}

func (cp *controlPlane) startLane(b *testing.B, rec []mocktest.Resource, agentBin, name string) *syncLane {
	b.Helper()
	pc := startPhysicalCluster(b, rec, name)
	l := &syncLane{pc: pc, stop: make(chan struct{}), seen: map[string]time.Time{}, patched: map[string]time.Time{}, back: map[string]time.Time{}}
	l.agent = pc.startAgent(b, cp, agentBin)
	consumer := "consumer-" + name
	cp.bindExport(b, map[string]any{"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": map[string]any{"name": consumer}}, name+"-export")

	kcpCfg := cp.adminConfig(b)
	kcpCfg.Host += "/clusters/root:" + consumer
	kcpCfg.QPS = -1 // no client-side throttling: the rate is the benchmark's
	physCfg := &rest.Config{Host: pc.kube.Server, BearerToken: pc.kube.AdminToken, TLSClientConfig: rest.TLSClientConfig{CAFile: pc.kube.CAFile}, QPS: -1}
	kcpClient, err := dynamic.NewForConfig(kcpCfg)
	if err != nil {
		b.Fatal(err)
	}
	physClient, err := dynamic.NewForConfig(physCfg)
	if err != nil {
		b.Fatal(err)
	}
	l.kcp, l.physical = kcpClient.Resource(widgetGVR), physClient.Resource(widgetGVR)
	b.Cleanup(func() { close(l.stop) })

	// The service: a copy that appears gets its status, written by a few workers.
	patches := make(chan *unstructured.Unstructured, 1<<16)
	for range 4 {
		go func() {
			for {
				select {
				case <-l.stop:
					return
				case u := <-patches:
					_, err := l.physical.Namespace(u.GetNamespace()).Patch(context.Background(), u.GetName(), types.MergePatchType,
						[]byte(`{"status":{"phase":"Provisioned"}}`), metav1.PatchOptions{}, "status")
					l.mu.Lock()
					if err != nil {
						l.patchErrors++
					} else {
						l.patched[u.GetAnnotations()[remoteNameAnnotation]] = time.Now()
					}
					l.mu.Unlock()
				}
			}
		}()
	}
	physInf := dynamicinformer.NewDynamicSharedInformerFactory(physClient, 0).ForResource(widgetGVR).Informer()
	if _, err := physInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		u := o.(*unstructured.Unstructured)
		name := u.GetAnnotations()[remoteNameAnnotation]
		l.mu.Lock()
		_, known := l.seen[name]
		if !known {
			l.seen[name] = time.Now()
		}
		l.mu.Unlock()
		if !known {
			patches <- u
		}
	}}); err != nil {
		b.Fatal(err)
	}
	kcpInf := dynamicinformer.NewDynamicSharedInformerFactory(kcpClient, 0).ForResource(widgetGVR).Informer()
	statusBack := func(o any) {
		u := o.(*unstructured.Unstructured)
		if phase, _, _ := unstructured.NestedString(u.Object, "status", "phase"); phase != "Provisioned" {
			return
		}
		l.mu.Lock()
		if _, ok := l.back[u.GetName()]; !ok {
			l.back[u.GetName()] = time.Now()
		}
		l.mu.Unlock()
	}
	if _, err := kcpInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: statusBack, UpdateFunc: func(_, o any) { statusBack(o) }}); err != nil {
		b.Fatal(err)
	}
	go physInf.Run(l.stop)
	go kcpInf.Run(l.stop)
	if !cache.WaitForCacheSync(l.stop, physInf.HasSynced, kcpInf.HasSynced) {
		b.Fatalf("the watches of %s never synced", name)
	}
	return l
}

// remoteNameAnnotation is where api-syncagent v0.7.0 records the kcp
// object's name on its copy (internal/sync/types.go of the release).
const remoteNameAnnotation = "syncagent.kcp.io/remote-object-name"

// syncResult is one step's measurements.
type syncResult struct {
	step                       syncStep
	created, createErrors      int
	down, up                   []time.Duration // kcp → cluster; cluster → kcp (status)
	notSynced, notBack         int
	patchErrors                int
	elapsed                    time.Duration      // first create → last status back
	kcpRequests                float64            // the agents' requests to kcp (their rest_client_requests_total)
	served                     map[string]float64 // requests kcp served during the step, by verb and resource
	kcpCPU, proxyCPU, agentCPU float64            // cores, averaged over the step (agents: all together)
	kcpRSS, proxyRSS, agentRSS int64              // peak bytes (agents: the largest one)
}

func (r syncResult) errorRate() float64 {
	return float64(r.createErrors+r.notSynced+r.notBack) / float64(r.step.objects)
}

// p is the q-quantile of d (sorted), the largest value for q = 1.
func (r syncResult) p(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// runStep runs the n-th step (from 0). Its objects' names start with the
// step's number: two steps of the same shape (KCP_TMC_BENCH_SYNC_STEPS=
// 1:100@5,1:600@50,1:100@5) would otherwise create the same names, and
// the second's creates fail as AlreadyExists.
func (cp *controlPlane) runStep(b *testing.B, lanes []*syncLane, n int, step syncStep) syncResult {
	b.Helper()
	prefix := fmt.Sprintf("s%d-a%do%dr%g", n+1, step.agents, step.objects, step.rate)
	watch := newUsage(cp.running[kcp.ServerName].proc.cmd.Process.Pid, cp.running[kcp.FrontProxyName].proc.cmd.Process.Pid)
	for _, l := range lanes {
		watch.add(l.agent.cmd.Process.Pid)
	}
	res := syncResult{step: step}
	served0 := kcpServed(cp.scrape(b, monitoring.JobKCP, kcp.ServerName, kcp.APIPort))
	requests0 := 0.0
	for _, l := range lanes {
		requests0 += l.kcpRequests(b)
	}
	acked := make([]map[string]time.Time, len(lanes))
	for i := range acked {
		acked[i] = map[string]time.Time{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	inflight := make(chan struct{}, 64)
	tick := time.NewTicker(time.Duration(float64(time.Second) / step.rate))
	began := time.Now()
	for i := range step.objects {
		<-tick.C
		lane := i % len(lanes)
		name := fmt.Sprintf("%s-%05d", prefix, i)
		inflight <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-inflight; wg.Done() }()
			w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
				"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": map[string]any{"size": int64(i)}}}
			_, err := lanes[lane].kcp.Namespace("default").Create(context.Background(), w, metav1.CreateOptions{})
			mu.Lock()
			if err != nil {
				res.createErrors++
			} else {
				acked[lane][name] = time.Now()
			}
			mu.Unlock()
		}()
	}
	tick.Stop()
	wg.Wait()
	// Wait for the stragglers while the agents work: an agent first adds
	// its finalizer to every queued object and only then copies them, so
	// a burst shows no finished object for minutes while its requests to
	// kcp go on. Two minutes with neither a finished object nor a request,
	// or an hour in all, is the end (what is missing then counts as errors).
	progress, requests, last := -1, requests0, time.Now()
	for deadline := time.Now().Add(time.Hour); time.Now().Before(deadline); time.Sleep(time.Second) {
		done := 0
		for i, l := range lanes {
			l.mu.Lock()
			for name := range acked[i] {
				if _, ok := l.back[name]; ok {
					done++
				}
			}
			l.mu.Unlock()
		}
		if done == step.objects-res.createErrors {
			break
		}
		now := 0.0
		for _, l := range lanes {
			now += l.kcpRequests(b)
		}
		if done != progress || now != requests {
			if done/500 != progress/500 {
				b.Logf("step %d agents × %d objects: %d of %d back after %s", step.agents, step.objects, done, step.objects, time.Since(began).Round(time.Second))
			}
			progress, requests, last = done, now, time.Now()
		} else if time.Since(last) > 2*time.Minute {
			break
		}
	}
	var end time.Time
	for i, l := range lanes {
		l.mu.Lock()
		for name, at := range acked[i] {
			res.created++
			seen, ok := l.seen[name]
			if !ok {
				res.notSynced++
				continue
			}
			res.down = append(res.down, max(seen.Sub(at), 0))
			patched, ok1 := l.patched[name]
			back, ok2 := l.back[name]
			if !ok1 || !ok2 {
				res.notBack++
				continue
			}
			res.up = append(res.up, max(back.Sub(patched), 0))
			if back.After(end) {
				end = back
			}
		}
		res.patchErrors += l.patchErrors
		l.patchErrors = 0
		l.mu.Unlock()
	}
	res.elapsed = end.Sub(began)
	for _, l := range lanes {
		res.kcpRequests += l.kcpRequests(b)
	}
	res.kcpRequests -= requests0
	res.served = kcpServed(cp.scrape(b, monitoring.JobKCP, kcp.ServerName, kcp.APIPort))
	for k, v := range served0 {
		res.served[k] -= v
	}
	sort.Slice(res.down, func(i, j int) bool { return res.down[i] < res.down[j] })
	sort.Slice(res.up, func(i, j int) bool { return res.up[i] < res.up[j] })
	u := watch.finish()
	res.kcpCPU, res.kcpRSS = u[0].cores, u[0].peak
	res.proxyCPU, res.proxyRSS = u[1].cores, u[1].peak
	for _, a := range u[2:] {
		res.agentCPU += a.cores
		res.agentRSS = max(res.agentRSS, a.peak)
	}
	b.Logf("step %d agents × %d objects: done in %s\n%s%s", step.agents, step.objects, res.elapsed.Round(time.Second), res.row(), res.servedTop(8))
	return res
}

func printSyncTable(rows []syncResult) {
	var s strings.Builder
	fmt.Fprintf(&s, "\nBenchmarkSync: Widgets created through the front-proxy at the step's rate; latency from the create's acknowledgement (↓ kcp → cluster) and from the service's status write (↑ cluster → kcp)\n")
	fmt.Fprintf(&s, "| agents | objects | created/s | ↓ p50 | ↓ p95 | ↓ p99 | ↑ p50 | ↑ p95 | ↑ p99 | errors | throughput | kcp CPU / peak RSS | front-proxy CPU / RSS | agents CPU (all) / peak RSS (one) | agent requests to kcp per object |\n")
	fmt.Fprintf(&s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		s.WriteString(r.row())
	}
	fmt.Fprintf(&s, "targets: sync latency < %s, error rate < %.1f %%\n", targetSyncLatency, targetErrorRate*100)
	for _, r := range rows {
		var missed []string
		if l := max(r.p(r.down, .99), r.p(r.up, .99)); l >= targetSyncLatency {
			missed = append(missed, fmt.Sprintf("p99 latency %s", sec(l)))
		}
		if r.errorRate() >= targetErrorRate {
			missed = append(missed, fmt.Sprintf("error rate %.3f %%", r.errorRate()*100))
		}
		if len(missed) > 0 {
			fmt.Fprintf(&s, "  %d agents × %d objects at %g/s misses: %s\n", r.step.agents, r.step.objects, r.step.rate, strings.Join(missed, ", "))
		}
	}
	fmt.Print(s.String())
}

// usage samples processes' CPU time and resident memory from /proc while a
// step runs (the programs are this machine's processes, not pods).
type usage struct {
	pids  []int
	began time.Time
	cpu0  []float64
	peak  []int64
	mu    sync.Mutex
	stop  chan struct{}
	done  chan struct{}
}

type procUsage struct {
	cores float64 // CPU seconds per second over the step
	peak  int64   // largest resident set sampled, bytes
}

func newUsage(pids ...int) *usage {
	u := &usage{began: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	for _, p := range pids {
		u.add(p)
	}
	go func() {
		defer close(u.done)
		for {
			u.mu.Lock()
			for i, p := range u.pids {
				u.peak[i] = max(u.peak[i], rss(p))
			}
			u.mu.Unlock()
			select {
			case <-u.stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return u
}

func (u *usage) add(pid int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pids, u.cpu0, u.peak = append(u.pids, pid), append(u.cpu0, cpuSeconds(pid)), append(u.peak, rss(pid))
}

func (u *usage) finish() []procUsage {
	close(u.stop)
	<-u.done
	wall := time.Since(u.began).Seconds()
	out := make([]procUsage, len(u.pids))
	for i, p := range u.pids {
		out[i] = procUsage{cores: (cpuSeconds(p) - u.cpu0[i]) / wall, peak: u.peak[i]}
	}
	return out
}

// cpuSeconds is a process's user + system time: /proc/PID/stat fields 14
// and 15, in clock ticks of 1/100 s (USER_HZ on Linux).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields are counted after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// rss is a process's resident set (VmRSS of /proc/PID/status) in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

// row is the step's line of the table.
func (r syncResult) row() string {
	perObject := 0.0
	if len(r.up) > 0 {
		perObject = r.kcpRequests / float64(len(r.up))
	}
	return fmt.Sprintf("| %d | %d | %g | %s | %s | %s | %s | %s | %s | %.3f %% (%d create, %d not synced, %d status not back; %d status writes failed) | %.1f objects/s | %.2f cores / %s | %.2f / %s | %.2f cores / %s | %.1f |\n",
		r.step.agents, r.step.objects, r.step.rate,
		sec(r.p(r.down, .5)), sec(r.p(r.down, .95)), sec(r.p(r.down, .99)),
		sec(r.p(r.up, .5)), sec(r.p(r.up, .95)), sec(r.p(r.up, .99)),
		r.errorRate()*100, r.createErrors, r.notSynced, r.notBack, r.patchErrors,
		float64(len(r.up))/r.elapsed.Seconds(),
		r.kcpCPU, mib(r.kcpRSS), r.proxyCPU, mib(r.proxyRSS), r.agentCPU, mib(r.agentRSS), perObject)
}

// kcpRequests is how many requests the lane's agent has sent to kcp: its
// controller-runtime rest_client_requests_total for every host but its
// own cluster's. client-go's default limiter (5/s, burst 10, on a config
// loaded from a kubeconfig, which is how v0.7.0 loads kcp's) applies to them.
func (l *syncLane) kcpRequests(b *testing.B) float64 {
	b.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", l.pc.m.local(b, agents.KindSyncAgent, agents.MetricsPort)))
	if err != nil {
		b.Fatalf("scraping the agent of %s: %v", l.pc.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	own := strings.TrimPrefix(l.pc.kube.Server, "https://")
	total := 0.0
	for _, s := range samples(body) {
		if s.name == "rest_client_requests_total" && s.labels["host"] != own {
			total += s.value
		}
	}
	return total
}

// kcpServed sums kcp's apiserver_request_total by verb, resource and
// subresource: which requests a step cost kcp, from every client (the
// agents through their virtual workspace and directly, the benchmark's
// creates, kcp's own controllers).
func kcpServed(body []byte) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples(body) {
		if s.name != "apiserver_request_total" {
			continue
		}
		l := s.labels
		key := l["verb"] + " " + l["resource"]
		if l["group"] != "" {
			key += "." + l["group"]
		}
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += s.value
	}
	return out
}

// servedTop is the step's n most frequent requests kcp served, per synced
// object (README "Sync at scale": where the agents' traffic goes).
func (r syncResult) servedTop(n int) string {
	type kv struct {
		key string
		n   float64
	}
	var all []kv
	total := 0.0
	for k, v := range r.served {
		if v > 0 {
			all = append(all, kv{k, v})
			total += v
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	objects := float64(max(len(r.up), 1))
	var s strings.Builder
	fmt.Fprintf(&s, "kcp served %.0f requests, %.1f per synced object; the most frequent (per object):", total, total/objects)
	for _, e := range all[:min(n, len(all))] {
		fmt.Fprintf(&s, " %s %.1f;", e.key, e.n/objects)
	}
	return s.String()
}
