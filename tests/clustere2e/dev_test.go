package clustere2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/cli"
	"github.com/kcp-tmc/kcp-tmc/internal/test/proctest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/tests/cluster"
)

func agentImage() string { return agents.DefaultSyncAgentImage }

// platform is one stack deployed to the node through the CLI.
type platform struct {
	t         *testing.T
	dir       string
	stack     auto.Stack
	ns        string
	destroyed bool
}

// destroyAtCleanup destroys the stack when the test ends, unless it did.
func (p *platform) destroyAtCleanup() {
	p.t.Cleanup(func() {
		if !p.destroyed {
			if out, err := p.cli("destroy", "--yes"); err != nil {
				p.t.Errorf("destroy: %v\n%s", err, cluster.Tail(out, 3000))
			}
		}
	})
}

// destroy runs `kcp-tmc destroy --yes`, failing the test if it fails.
func (p *platform) destroy() {
	p.t.Helper()
	p.destroyed = true
	p.must("destroy", "--yes")
}

// newPlatform copies the dev stack with the kubeconfig target (no
// skipAwait: the node runs the Pods), plus overrides. Its default front
// door is a LoadBalancer Service, which the node's load balancer serves.
func newPlatform(t *testing.T, overrides map[string]any) *platform {
	t.Helper()
	cfg := map[string]any{
		"kcp-tmc:target": map[string]any{"mode": "kubeconfig"},
		// The node's Prometheus selects by label, as kube-prometheus-stack
		// does, and runs outside kcp-tmc's default namespace.
		"kcp-tmc:monitoring": map[string]any{"namespace": cluster.PrometheusNamespace,
			"ruleLabels": map[string]string{cluster.PrometheusSelectorKey: cluster.PrometheusSelectorValue}},
	}
	for k, v := range overrides {
		cfg[k] = v
	}
	dir, opts := testenv.Project(t, "dev", cfg)
	for k, v := range opts.Env {
		t.Setenv(k, v)
	}
	t.Setenv("PULUMI_BACKEND_URL", opts.BackendURL)
	stack, err := automation.Stack(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, dir: dir, stack: stack, ns: "kcp"}
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	p.setSecret("kcp-tmc:kubeconfig", string(kubeconfig))
	return p
}

func (p *platform) setSecret(key, value string) {
	p.t.Helper()
	if err := p.stack.SetConfig(context.Background(), key, auto.ConfigValue{Value: value, Secret: true}); err != nil {
		p.t.Fatal(err)
	}
}

// cli runs `kcp-tmc <command> --stack dev --project-dir <dir> args...`.
func (p *platform) cli(command string, args ...string) (string, error) {
	var out bytes.Buffer
	err := cli.Run(context.Background(), append([]string{command, "--stack", "dev", "--project-dir", p.dir}, args...), &out, &out)
	return out.String(), err
}

// must runs the CLI, failing the test with its output on error, and logs
// how long it took.
func (p *platform) must(command string, args ...string) string {
	p.t.Helper()
	t0 := time.Now()
	out, err := p.cli(command, args...)
	if err != nil {
		p.t.Fatalf("kcp-tmc %s %v after %s: %v\n%s\n%s", command, args, time.Since(t0).Round(time.Second), err, cluster.Tail(out, 6000), p.state())
	}
	p.t.Logf("kcp-tmc %s %s: %s", command, strings.Join(args, " "), time.Since(t0).Round(time.Second))
	return out
}

// state is the namespace's Pods, the logs of those not ready and recent
// events, for failure messages.
func (p *platform) state() string {
	ctx := context.Background()
	objs, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "pods,pvc,certificates", "-o", "wide")
	events, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "events", "--sort-by=.lastTimestamp")
	var logs strings.Builder
	notReady, _, _ := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "pods", "-o",
		`jsonpath={range .items[?(@.status.containerStatuses[0].ready==false)]}{.metadata.name}{"\n"}{end}`)
	for _, pod := range strings.Fields(notReady) {
		for _, prev := range []string{"--previous", ""} {
			out, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "logs", pod, "--all-containers", "--tail=25", prev)
			if err == nil && out != "" {
				fmt.Fprintf(&logs, "--- %s %s\n%s\n", pod, prev, out)
				break
			}
		}
	}
	return "objects:\n" + objs + "\nlogs of Pods not ready:\n" + logs.String() + "\nevents:\n" + cluster.Tail(events, 3000)
}

// published: external-dns, running on the node as a user runs it, has
// published host at the address of its load balancer (service) from the
// annotations kcp-tmc writes on it — during the up that created it, since
// the agents that up awaits reach kcp by that name.
func (p *platform) published(service, host string) {
	p.t.Helper()
	out, _, err := kube.Kubectl(context.Background(), nil, "-n", p.ns, "get", "service", service, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip} {.metadata.creationTimestamp}")
	ip, created, _ := strings.Cut(strings.TrimSpace(out), " ")
	since, perr := time.Parse(time.RFC3339, created)
	if err != nil || ip == "" || perr != nil {
		p.t.Fatalf("service %s: no load balancer address or creation time in %q (%v)", service, out, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		// Published for this Service: an earlier test's may have had the same address.
		pub, ok := kube.Published(host)
		if ok && pub.IP == ip && !pub.At.Before(since) {
			p.t.Logf("external-dns published %s → %s (TTL %d s)", host, ip, pub.TTL)
			if pub.TTL != ingress.ExternalDNSTTL {
				p.t.Errorf("%s published with TTL %d s, want the annotations' %d s", host, pub.TTL, ingress.ExternalDNSTTL)
			}
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("external-dns did not publish %s → %s (now %+v, %v); its log:\n%s", host, ip, pub, ok, kube.Log("external-dns"))
		}
		time.Sleep(time.Second)
	}
}

// kcpAdminKubeconfig is an admin kubeconfig for kcp at its public address,
// from the kcp-admin certificate cert-manager issued: the override a user
// sets as kcp-tmc:kcpKubeconfig for the objects the stack puts into kcp.
func (p *platform) kcpAdminKubeconfig(server string) string {
	p.t.Helper()
	field := func(secret, key string) string {
		out, _, err := kube.Kubectl(context.Background(), nil, "-n", p.ns, "get", "secret", secret, "-o", "jsonpath={.data."+strings.ReplaceAll(key, ".", `\.`)+"}")
		if err != nil || out == "" {
			p.t.Fatalf("secret %s key %s: %v", secret, key, err)
		}
		return out
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: kcp, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: admin, user: {client-certificate-data: %s, client-key-data: %s}}]
contexts: [{name: kcp, context: {cluster: kcp, user: admin}}]
current-context: kcp
`, server, field(tls.CAServer, "ca.crt"), field(tls.CertAdmin, "tls.crt"), field(tls.CertAdmin, "tls.key"))
}

// TestDevStackOnANode: a first `kcp-tmc up` of the dev stack is SIGKILLed
// mid-way with everything it started, as a CI runner's timeout does; the
// next up removes the stack's lock the killed one left by itself, and
// returns once every workload is Ready on the node and the kcp side is
// applied; smoke passes with its defaults through the public address; the
// cluster's Prometheus scrapes kcp, the front-proxy and etcd through their
// ServiceMonitors; a second up changes nothing; the backup CronJobs run
// and etcd is restored from their snapshot by the runbook's commands;
// destroy removes the stack and keeps etcd's volume.
func TestDevStackOnANode(t *testing.T) {
	require(t)
	ctx := context.Background()
	const host = "kcp.dev.kcp.example.com"
	p := newPlatform(t, nil)
	p.destroyAtCleanup()

	killed := exec.Command(os.Args[0], "up", "--stack", "dev", "--project-dir", p.dir)
	killed.Env = append(os.Environ(), "KCP_TMC_TEST_AS_CLI=1")
	// Well into the deploy: objects created on the node, others still awaited.
	if out, err := proctest.KillDuring(killed, "creating", 20*time.Second); err != nil {
		t.Fatalf("killing the first up: %v\n%s", err, cluster.Tail(out, 3000))
	}
	if out := p.must("up"); !strings.Contains(out, `removed the lock of stack "dev" that a killed kcp-tmc pid `) {
		t.Errorf("the up after a killed deploy did not say it removed the killed one's lock:\n%s", cluster.Tail(out, 3000))
	}
	p.published(ingress.FrontDoorLoadBalancer, host)
	// Every Pod of the stack is running and Ready now, with nothing skipped.
	pods, _, err := kube.Kubectl(ctx, nil, "-n", p.ns, "get", "pods", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"etcd-0 Running True", "kcp-", "kcp-front-proxy-", "etcd-members-", "etcd-rollout-"} {
		if !strings.Contains(pods, want) {
			t.Errorf("after up, no Pod %q in:\n%s", want, pods)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(pods), "\n") {
		// The membership Job's pod ran before etcd and is done (it found
		// no cluster: a first install); the rollout Job's after it (every
		// member already on the template).
		if strings.HasPrefix(line, "etcd-members-") || strings.HasPrefix(line, "etcd-rollout-") {
			if !strings.Contains(line, " Succeeded ") {
				t.Errorf("after up, an etcd Job's Pod did not succeed: %s", line)
			}
			continue
		}
		if !strings.HasSuffix(line, "Running True") {
			t.Errorf("after up, Pod not Running and Ready: %s", line)
		}
	}

	t.Log(p.must("smoke"))

	// The kcp side (the metrics reader binding in root) came with the same
	// up, through the stack's own admin certificate at the load balancer's
	// address: Prometheus finds every target up, nothing left to apply.
	p.must("up", "--expect-no-changes")
	promTargetsUp(t, []string{"kcp", "kcp-front-proxy", "etcd"})
	promRulesHealthy(t, p.ns)
	promBucketsFound(t)
	certManagerSeriesFound(t, p.ns)

	backupAndRestore(t, p, host, 1) // ends with up --expect-no-changes
	moveEtcdByTheRunbook(t, p, host, cluster.OtherStorageClass, 1)

	pv, _ := claimVolume(t, p.ns, "data-etcd-0")
	p.destroy()
	if err := waitGone(ctx, "namespace", p.ns, "", 3*time.Minute); err != nil {
		t.Error(err)
	}
	etcdDataRetained(t, pv, "destroy")
}

// claimVolume is the local volume bound to a claim and its directory on
// this machine.
func claimVolume(t *testing.T, ns, claim string) (pv, dir string) {
	t.Helper()
	ctx := context.Background()
	out, _, err := kube.Kubectl(ctx, nil, "-n", ns, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}")
	if pv = strings.TrimSpace(out); err != nil || pv == "" {
		t.Fatalf("claim %s has no volume: %v", claim, err)
	}
	out, _, err = kube.Kubectl(ctx, nil, "get", "pv", pv, "-o", "jsonpath={.spec.local.path}")
	if dir = strings.TrimSpace(out); err != nil || dir == "" {
		t.Fatalf("the local path of %s's volume %s: %v", claim, pv, err)
	}
	return pv, dir
}

// backupsRun runs the backup and verification CronJobs of a shard's etcd
// now, as their schedules would: a snapshot of that etcd lands on dev's backup volume
// with its metadata, and the verification fetches that newest snapshot,
// checks it and restores it into scratch space.
func backupsRun(t *testing.T, ns string, of shard.Shard) (key string) {
	t.Helper()
	t0 := time.Now()
	out := runCronJob(t, ns, of.BackupJob())
	m := regexp.MustCompile(`etcd-backup: OK (\S+\.db) sha256=([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the backup's log names no snapshot:\n%s", cluster.Tail(out, 3000))
	}
	key, sum := m[1], m[2]
	_, dir := claimVolume(t, ns, backup.PVCClaim)
	db, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		t.Fatalf("the snapshot on the backup volume: %v", err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(db)); got != sum {
		t.Errorf("snapshot %s on the backup volume: sha256 %s, the backup logged %s", key, got, sum)
	}
	meta, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if err != nil || !strings.Contains(string(meta), `"sha256":"`+sum+`"`) {
		t.Errorf("the snapshot's metadata %s.json: %v %s", key, err, meta)
	}
	t.Logf("backup: %s (%d bytes) on volume %s in %s", key, len(db), backup.PVCClaim, time.Since(t0).Round(time.Second))
	t0 = time.Now()
	if out := runCronJob(t, ns, of.VerifyJob()); !strings.Contains(out, "OK fetched "+key) {
		t.Errorf("the verification did not fetch the newest snapshot %s:\n%s", key, cluster.Tail(out, 3000))
	}
	t.Logf("verification: fetched, checked and restored %s in %s", key, time.Since(t0).Round(time.Second))
	return key
}

// runCronJob creates a Job from a CronJob of the stack, as its schedule
// would, waits until it completes and returns the log of every step.
func runCronJob(t *testing.T, ns, cronjob string) string {
	t.Helper()
	ctx := context.Background()
	job := fmt.Sprintf("%s-manual-%d", cronjob, time.Now().Unix())
	if _, stderr, err := kube.Kubectl(ctx, nil, "-n", ns, "create", "job", "--from=cronjob/"+cronjob, job); err != nil {
		t.Fatalf("a Job from CronJob %s: %v: %s", cronjob, err, stderr)
	}
	logs := func() string {
		out, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "logs", "-l", "batch.kubernetes.io/job-name="+job,
			"--all-containers", "--prefix", "--tail=-1")
		return out
	}
	waitCmd(t, "Job "+job, 5*time.Minute, func() (bool, string) {
		out, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", "job", job, "-o",
			`jsonpath={.status.conditions[?(@.status=="True")].type}`)
		if strings.Contains(out, "Failed") {
			pods, _, _ := kube.Kubectl(ctx, nil, "-n", ns, "get", "pods", "-l", "batch.kubernetes.io/job-name="+job, "-o", "wide")
			t.Fatalf("Job %s failed:\n%s\n%s", job, pods, cluster.Tail(logs(), 4000))
		}
		return strings.Contains(out, "Complete"), out
	})
	return logs()
}

// etcdDataRetained checks that etcd's volume pv and the data on it stayed
// after what (destroy: the claim goes with dev's namespace; a move to
// another class): Released (the class reclaims by Retain), with etcd's
// backend file in it.
func etcdDataRetained(t *testing.T, pv, after string) {
	t.Helper()
	out, _, err := kube.Kubectl(context.Background(), nil, "get", "pv", pv, "-o", "jsonpath={.status.phase} {.spec.local.path}")
	if err != nil {
		t.Fatalf("etcd's volume %s after %s: %v", pv, after, err)
	}
	phase, path, _ := strings.Cut(out, " ")
	if phase != "Released" {
		t.Errorf("etcd's volume %s after %s: phase %q, want Released", pv, after, phase)
	}
	// etcd's data dir (the pod's --data-dir), not a copy a restore moved aside.
	db := filepath.Join(path, "data", "member", "snap", "db")
	if st, err := os.Stat(db); err != nil || st.Size() == 0 {
		t.Errorf("etcd's volume %s (%s) after %s holds no data/member/snap/db: %v", pv, path, after, err)
	} else {
		t.Logf("%s kept etcd's volume %s: %s (%d bytes)", after, pv, db, st.Size())
	}
}

// waitGone waits until kubectl get finds no such object.
func waitGone(ctx context.Context, kind, name, ns string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		args := []string{"get", kind, name}
		if ns != "" {
			args = append(args, "-n", ns)
		}
		if _, _, err := kube.Kubectl(ctx, nil, args...); err != nil && strings.Contains(err.Error(), "NotFound") {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("%s %s still exists %s after destroy", kind, name, timeout)
}

// prometheusIP is the cluster's Prometheus Pod address (this machine
// reaches Pod addresses through the bridge).
func prometheusIP(t *testing.T) string {
	t.Helper()
	ip, err := kube.PrometheusIP(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// promTargetsUp waits until the cluster's Prometheus has a target of each
// job and every target of those jobs is up.
func promTargetsUp(t *testing.T, jobs []string) {
	t.Helper()
	ip := prometheusIP(t)
	var last string
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		last = checkTargets(ip, jobs)
		if last == "" {
			t.Logf("Prometheus in the cluster: every target of %v up", jobs)
			return
		}
		time.Sleep(5 * time.Second)
	}
	t.Errorf("Prometheus targets after 3m: %s", last)
}

// promTarget is one of Prometheus' active scrape targets.
type promTarget struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
	ScrapeURL string            `json:"scrapeUrl"`
}

// promTargets are the active targets of the Prometheus at ip.
func promTargets(ip string) ([]promTarget, error) {
	resp, err := http.Get("http://" + ip + ":9090/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("Prometheus targets: %w", err)
	}
	return body.Data.ActiveTargets, nil
}

// checkTargets is "" when every job has targets and all are up, else why not.
func checkTargets(ip string, jobs []string) string {
	targets, err := promTargets(ip)
	if err != nil {
		return err.Error()
	}
	var problems []string
	for _, job := range jobs {
		n := 0
		for _, tg := range targets {
			if tg.Labels["job"] != job {
				continue
			}
			n++
			if tg.Health != "up" {
				problems = append(problems, fmt.Sprintf("%s %s: %s %s", job, tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
		if n == 0 {
			problems = append(problems, "no target of job "+job)
		}
	}
	return strings.Join(problems, "; ")
}

// promBucketsFound: every histogram bucket a rule selects by its le label
// is a series in the cluster's Prometheus, as it stores it (Prometheus 3
// writes le="604800" as "604800.0": a rule matching the exposed form alone
// would never fire, and still evaluate without error).
func promBucketsFound(t *testing.T) {
	t.Helper()
	ip := prometheusIP(t)
	selector := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\ble=~?"[^"]*"[^}]*\}`)
	found := 0
	for _, g := range monitoring.Groups() {
		// The agents' series are scraped on their physical clusters (this
		// Prometheus has them only when it federates them; docs/monitoring.md).
		if g.Name == monitoring.AgentGroup().Name {
			continue
		}
		for _, r := range g.Rules {
			for _, sel := range selector.FindAllString(r.Expr, -1) {
				var last string
				for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Second) {
					n, err := promSeries(ip, sel)
					if err == nil && n > 0 {
						found++
						break
					}
					last = fmt.Sprintf("%d series, %v", n, err)
					if time.Now().After(deadline) {
						t.Errorf("rule %s selects %s, which the cluster's Prometheus does not have: %s", r.Alert+r.Record, sel, last)
						break
					}
				}
			}
		}
	}
	if found == 0 {
		t.Error("no rule selects a histogram bucket by le: nothing was checked")
	}
	t.Logf("Prometheus in the cluster: the %d bucket selectors of the rules each find their series", found)
}

// promSeries is how many series an instant query of selector returns.
func promSeries(ip, selector string) (int, error) {
	samples, err := cluster.PromQuery(ip, selector)
	return len(samples), err
}

// promRulesHealthy: the cluster's Prometheus loaded the rule groups of the
// stack's PrometheusRules (the operator names their files after namespace
// ns) and every rule evaluates without error on the real series.
func promRulesHealthy(t *testing.T, ns string) {
	t.Helper()
	ip := prometheusIP(t)
	var last string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Second) {
		resp, err := http.Get("http://" + ip + ":9090/api/v1/rules")
		if err != nil {
			last = err.Error()
			continue
		}
		var body struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					File  string `json:"file"`
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			last = err.Error()
			continue
		}
		groups, rules := 0, 0
		var bad []string
		for _, g := range body.Data.Groups {
			if !strings.Contains(g.File, ns+"-") {
				continue
			}
			groups++
			for _, r := range g.Rules {
				rules++
				if r.Health != "ok" {
					bad = append(bad, fmt.Sprintf("%s/%s: %s %s", g.Name, r.Name, r.Health, r.LastError))
				}
			}
		}
		if groups > 0 && len(bad) == 0 {
			t.Logf("Prometheus in the cluster: %d rule groups (%d rules) of the stack loaded, every rule evaluating", groups, rules)
			return
		}
		last = fmt.Sprintf("%d groups of namespace %s; unhealthy: %v", groups, ns, bad)
	}
	t.Errorf("the stack's rules in Prometheus after 2m: %s", last)
}

// certManagerSeriesFound: the node's cert-manager (the pinned release, as
// its controller binary) exposes every certmanager_* series the rules read
// for the stack's certificates, labelled as the rules use them (name,
// namespace); for the just-issued kcp-server the renewal time
// CertificateRenewalOverdue reads lies ahead, before the expiry.
func certManagerSeriesFound(t *testing.T, ns string) {
	t.Helper()
	ip, _, err := kube.Kubectl(context.Background(), nil, "-n", "cert-manager", "get", "pod", "-l", "app=cert-manager", "-o", "jsonpath={.items[0].status.podIP}")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + ip + ":9402/metrics")
	if err != nil {
		t.Fatalf("cert-manager's metrics: %v", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`certmanager_[a-z_]+`)
	names := map[string]bool{}
	for _, g := range monitoring.Groups() {
		for _, r := range g.Rules {
			for _, n := range read.FindAllString(r.Expr, -1) {
				names[n] = true
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no rule reads a certmanager_ series: nothing to check")
	}
	values := map[string]float64{}
	for name := range names {
		sample := regexp.MustCompile(`(?m)^` + name + `\{[^}]*\bname="` + tls.CertKCPServer + `"[^}]*\bnamespace="` + ns + `"[^}]*\} (\S+)$`)
		m := sample.FindStringSubmatch(body.String())
		if m == nil {
			t.Errorf("cert-manager exposes no %s{name=%q,namespace=%q}, which the rules read", name, tls.CertKCPServer, ns)
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Errorf("%s: value %q: %v", name, m[1], err)
		}
		values[name] = v
	}
	now := float64(time.Now().Unix())
	renewal, expiry := values["certmanager_certificate_renewal_timestamp_seconds"], values["certmanager_certificate_expiration_timestamp_seconds"]
	if !(now < renewal && renewal < expiry) {
		t.Errorf("kcp-server: renewal at %v, expiry at %v, now %v: want now < renewal < expiry", renewal, expiry, now)
	}
	t.Logf("cert-manager: the %d certmanager_ series the rules read exposed for %s/%s (renewal in %s)", len(values), ns, tls.CertKCPServer, time.Duration(renewal-now)*time.Second)
}
