package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestRulesOnRealPrometheus runs a real Prometheus 3 (built from its Go module by
// hack/toolchain.sh) that scrapes the test control plane's kube-apiserver
// (as job "kcp": kcp is an apiserver with the same metrics) and two etcds,
// and loads our rules with `for:` shortened to 0 (promtool's unit tests cover
// `for:`). Every rule evaluates without error on real data, nothing fires
// while all is healthy, and stopping one etcd fires TMCComponentDown and
// EtcdMembersDown. Prometheus sends its alerts to a real Alertmanager on the
// configuration kcp-tmc renders: the page reaches Slack's webhook and, being
// critical, PagerDuty, with the alert's summary and runbook; the etcd back,
// both get the resolution.
func TestRulesOnRealPrometheus(t *testing.T) {
	bin, err := toolchain.Find("prometheus")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ports := loopback.MustFreePorts(t, 5)
	extra := startPlainEtcd(t, dir, ports[0], ports[1], ports[2])

	groups := monitoring.Groups()
	for gi := range groups {
		for ri := range groups[gi].Rules {
			groups[gi].Rules[ri].For = ""
		}
	}
	rules, err := monitoring.RulesFile(groups)
	if err != nil {
		t.Fatal(err)
	}
	api, _ := url.Parse(kube.Server)
	etcdMetrics, _ := url.Parse(kube.EtcdMetricsURL)
	const channel, pagerDutyKey = "#kcp-alerts", "0123456789abcdef0123456789abcdef"
	stub := newPagerStub(t)
	alertmanager := fmt.Sprintf("127.0.0.1:%d", ports[4])
	startAlertmanager(t, dir, alertmanager, stub, channel, pagerDutyKey)
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
alerting: {alertmanagers: [{static_configs: [{targets: [%q]}]}]}
scrape_configs:
- job_name: kcp
  scheme: https
  authorization: {credentials: %q}
  tls_config: {ca_file: %q}
  static_configs: [{targets: [%q], labels: {namespace: kcp}}]
- job_name: etcd
  static_configs: [{targets: [%q, "127.0.0.1:%d"], labels: {namespace: kcp, service: etcd}}]
`, alertmanager, kube.AdminToken, kube.CAFile, api.Host, etcdMetrics.Host, ports[2])
	for name, data := range map[string]string{"rules.yaml": rules, "prometheus.yaml": config} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	web := fmt.Sprintf("127.0.0.1:%d", ports[3])
	prom := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yaml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web, "--log.level=warn",
		"--rules.alert.resend-delay=1s") // not a minute between sends: the test's Alertmanager may start after the first
	var log strings.Builder
	prom.Stdout, prom.Stderr = &log, &log
	prom.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-prom.Process.Pid, syscall.SIGKILL)
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})

	// Healthy: every target up, every rule evaluated without error, no alert.
	eventually(t, 60*time.Second, "all targets up and every rule evaluated", func() string {
		if up := query(t, web, `sum(up)`); up != "3" {
			return "targets up: " + up
		}
		return rulesNotOK(t, web)
	})
	if firing := firingAlerts(t, web); len(firing) > 0 {
		t.Errorf("alerts firing while everything is healthy: %v", firing)
	}
	// The series the etcd and kcp rules read exist on the real targets.
	eventually(t, 30*time.Second, "the rules' series on the real targets", func() string {
		var missing []string
		for _, series := range []string{`etcd_server_has_leader{job="etcd"}`, `etcd_mvcc_db_total_size_in_bytes{job="etcd"}`,
			`etcd_server_quota_backend_bytes{job="etcd"}`, `etcd_disk_wal_fsync_duration_seconds_bucket{job="etcd"}`,
			`apiserver_request_total{job="kcp"}`, `apiserver_request_duration_seconds_bucket{job="kcp"}`, `workqueue_depth{job="kcp"}`,
			`tmc_component_health`, `kcp:apiserver_request:error_ratio_rate5m`} {
			if n := query(t, web, "count("+series+")"); n == "" || n == "0" {
				missing = append(missing, series)
			}
		}
		return strings.Join(missing, ", ")
	})
	if firing := firingAlerts(t, web); len(firing) > 0 {
		t.Errorf("alerts firing while everything is healthy: %v", firing)
	}

	// Failure: one etcd member gone.
	extra.stop()
	eventually(t, 60*time.Second, "TMCComponentDown and EtcdMembersDown firing", func() string {
		firing := firingAlerts(t, web)
		if !contains(firing, "TMCComponentDown") || !contains(firing, "EtcdMembersDown") {
			return fmt.Sprintf("firing: %v", firing)
		}
		return ""
	})

	// The page: one Slack message and one PagerDuty event per alert (grouped
	// by alertname), after group_wait.
	const title = "[FIRING:1] EtcdMembersDown (critical)"
	eventually(t, 60*time.Second, "EtcdMembersDown paged on Slack and PagerDuty", func() string {
		if _, ok := stub.slackTitled(title); !ok || len(stub.pages("EtcdMembersDown")) == 0 {
			return stub.String()
		}
		return ""
	})
	m, _ := stub.slackTitled(title)
	text := m.Attachments[0].Text
	if m.Channel != channel || !strings.Contains(text, "*1 member(s) of etcd cluster etcd down in kcp*") ||
		!strings.Contains(text, "Runbook: "+monitoring.RunbookURL+"#etcdmembersdown") || strings.Contains(text, "{{") {
		t.Errorf("Slack message to %q:\n%s\nwant channel %q, the alert's summary and its runbook", m.Channel, text, channel)
	}
	page := stub.pages("EtcdMembersDown")[0]
	if page.RoutingKey != pagerDutyKey || page.EventAction != "trigger" || page.DedupKey == "" {
		t.Errorf("PagerDuty event %+v: want a trigger with the routing key", page)
	}

	// Resolved: the member back, both receivers told (send_resolved).
	startPlainEtcd(t, dir, ports[0], ports[1], ports[2])
	eventually(t, 90*time.Second, "EtcdMembersDown resolved on Slack and PagerDuty", func() string {
		_, slack := stub.slackTitled("[RESOLVED] EtcdMembersDown (critical)")
		resolved := false
		for _, e := range stub.pages("EtcdMembersDown") {
			resolved = resolved || (e.EventAction == "resolve" && e.DedupKey == page.DedupKey)
		}
		if !slack || !resolved {
			return stub.String()
		}
		return ""
	})
}

type plainEtcd struct{ cmd *exec.Cmd }

func (p plainEtcd) stop() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); _ = p.cmd.Wait() }

// startPlainEtcd runs a throwaway single-member etcd whose death the alerts must notice.
func startPlainEtcd(t *testing.T, dir string, client, peer, metrics int) plainEtcd {
	t.Helper()
	c := fmt.Sprintf("http://127.0.0.1:%d", client)
	p := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(toolchain.Path("etcd"), "--name=extra", "--data-dir="+filepath.Join(dir, "extra-etcd"),
		"--listen-client-urls="+c, "--advertise-client-urls="+c, "--listen-peer-urls="+p,
		"--initial-advertise-peer-urls="+p, "--initial-cluster=extra="+p,
		fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", metrics), "--log-level=error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := plainEtcd{cmd}
	t.Cleanup(func() {
		if e.cmd.ProcessState == nil {
			e.stop()
		}
	})
	return e
}

func eventually(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: not within %s (%s)", what, timeout, last)
}

func apiGet(t *testing.T, web, path string, out any) {
	t.Helper()
	resp, err := http.Get("http://" + web + path)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(out)
}

func query(t *testing.T, web, q string) string {
	var r struct {
		Data struct {
			Result []struct{ Value []any }
		}
	}
	apiGet(t, web, "/api/v1/query?query="+url.QueryEscape(q), &r)
	if len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) < 2 {
		return ""
	}
	return fmt.Sprint(r.Data.Result[0].Value[1])
}

// rulesNotOK names rules that have not evaluated yet or failed.
func rulesNotOK(t *testing.T, web string) string {
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				}
			}
		}
	}
	apiGet(t, web, "/api/v1/rules", &r)
	var bad []string
	n := 0
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health != "ok" {
				bad = append(bad, rule.Name+":"+rule.Health+" "+rule.LastError)
			}
		}
	}
	if n == 0 {
		return "no rules loaded yet"
	}
	return strings.Join(bad, "; ")
}

func firingAlerts(t *testing.T, web string) []string {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	apiGet(t, web, "/api/v1/alerts", &r)
	var out []string
	for _, a := range r.Data.Alerts {
		if a.State == "firing" {
			out = append(out, a.Labels["alertname"])
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
