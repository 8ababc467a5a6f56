package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// series is one input series of a promtool unit test.
type series struct{ Series, Values string }

// scenario makes one alert fire on failing series, stay silent on healthy
// ones, and stay pending until its `for:` has passed.
type scenario struct {
	alert            string
	interval         string
	failing, healthy []series
	silentAt, fireAt string // silentAt: condition true but `for:` not yet over ("" when for is 0)
	labels           map[string]string
}

var ns = map[string]string{"namespace": "kcp"}

// The agent's rewatch CronJob as kube-state-metrics shows it on its cluster.
var (
	rewatchLabels    = map[string]string{"cronjob": AgentRewatchCronJob, "namespace": "kcp-agent"}
	rewatchCreated   = `kube_cronjob_created{cronjob="` + AgentRewatchCronJob + `",namespace="kcp-agent"}`
	rewatchSucceeded = `kube_cronjob_status_last_successful_time{cronjob="` + AgentRewatchCronJob + `",namespace="kcp-agent"}`
)

func with(extra map[string]string, base ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, b := range base {
		for k, v := range b {
			out[k] = v
		}
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func histogram(name, labels string, bucketsFailing, bucketsHealthy map[string]string) ([]series, []series) {
	var f, h []series
	for _, le := range sortedKeys(bucketsFailing) {
		f = append(f, series{fmt.Sprintf(`%s{%s,le="%s"}`, name, labels, le), bucketsFailing[le]})
		h = append(h, series{fmt.Sprintf(`%s{%s,le="%s"}`, name, labels, le), bucketsHealthy[le]})
	}
	return f, h
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// fluentBitPod is what a PodMonitor's target adds to fluent-bit's own labels.
var fluentBitPod = map[string]string{"namespace": "logging", "pod": "fluent-bit-x7k2q"}

func fluentBit(metric string) string {
	return metric + `{namespace="logging",pod="fluent-bit-x7k2q",job="logging/fluent-bit",name="es.0"}`
}

func scenarios() []scenario {
	slow := func(name, labels, threshold, above string) ([]series, []series) {
		// All observations above the threshold bucket (failing) or within it (healthy).
		return histogram(name, labels,
			map[string]string{threshold: "0x40", above: "0+10x40", "+Inf": "0+10x40"},
			map[string]string{threshold: "0+10x40", above: "0+10x40", "+Inf": "0+10x40"})
	}
	fsyncF, fsyncH := slow("etcd_disk_wal_fsync_duration_seconds_bucket", `job="etcd",namespace="kcp",instance="etcd-0"`, "0.5", "1")
	commitF, commitH := slow("etcd_disk_backend_commit_duration_seconds_bucket", `job="etcd",namespace="kcp",instance="etcd-0"`, "0.25", "0.5")
	syncF, syncH := slow("controller_runtime_reconcile_time_seconds_bucket", `job="api-syncagent",namespace="kcp",controller="sync"`, "5", "10")
	apiF, apiH := slow("apiserver_request_duration_seconds_bucket", `job="kcp",namespace="kcp",verb="GET"`, "1", "2")
	errors := func(fivexx string) []series {
		return []series{
			{`apiserver_request_total{job="kcp",namespace="kcp",code="200"}`, "0+100x5000"},
			{`apiserver_request_total{job="kcp",namespace="kcp",code="500"}`, fivexx},
		}
	}
	burn := func(alert, silentAt, fireAt string) scenario {
		return scenario{alert: alert, interval: "1m", failing: errors("0+2x5000"), healthy: errors("0x5000"),
			silentAt: silentAt, fireAt: fireAt, labels: with(nil, ns)}
	}
	etcd0 := `job="etcd",namespace="kcp",instance="etcd-0"`
	return []scenario{
		{"TMCComponentDown", "1m", []series{{`up{` + etcd0 + `}`, "0x20"}}, []series{{`up{` + etcd0 + `}`, "1x20"}},
			"4m", "6m", with(map[string]string{"job": "etcd", "component": "etcd"}, ns)},
		{"SyncerHighErrorRate", "1m", []series{{`controller_runtime_reconcile_errors_total{job="api-syncagent",namespace="kcp",controller="sync"}`, "0+60x20"}},
			[]series{{`controller_runtime_reconcile_errors_total{job="api-syncagent",namespace="kcp",controller="sync"}`, "0x20"}},
			"2m", "5m", with(map[string]string{"controller": "sync"}, ns)},
		{"SyncLatencyHigh", "1m", syncF, syncH, "8m", "15m", with(nil, ns)},
		{"SyncerDown", "1m", []series{{`up{job="api-syncagent",namespace="kcp",instance="agent-0"}`, "0x10"}},
			[]series{{`up{job="api-syncagent",namespace="kcp",instance="agent-0"}`, "1x10"}}, "4m", "6m", with(map[string]string{"instance": "agent-0", "job": "api-syncagent"}, ns)},
		// The rewatch's last success 30 min ago (then 5 min of for:); one
		// that never succeeded, counted from the CronJob's creation.
		{"AgentRewatchFailing", "1m", []series{{rewatchCreated, "0x60"}, {rewatchSucceeded, "0x60"}},
			[]series{{rewatchCreated, "0x60"}, {rewatchSucceeded, "0+60x60"}}, "33m", "37m", rewatchLabels},
		{"AgentRewatchFailing", "1m", []series{{rewatchCreated, "0x60"}},
			[]series{{rewatchCreated, "0x60"}, {rewatchSucceeded, "0+60x60"}}, "33m", "37m", rewatchLabels},
		// Half the objects waited more than 10 s in the queue (failing); all under it (healthy).
		{"SyncBacklog", "1m", []series{
			{`workqueue_queue_duration_seconds_bucket{job="api-syncagent",namespace="kcp",controller="sync",name="sync",le="10"}`, "0+5x30"},
			{`workqueue_queue_duration_seconds_count{job="api-syncagent",namespace="kcp",controller="sync",name="sync"}`, "0+10x30"}},
			[]series{
				{`workqueue_queue_duration_seconds_bucket{job="api-syncagent",namespace="kcp",controller="sync",name="sync",le="10"}`, "0+10x30"},
				{`workqueue_queue_duration_seconds_count{job="api-syncagent",namespace="kcp",controller="sync",name="sync"}`, "0+10x30"}},
			"8m", "15m", with(map[string]string{"controller": "sync"}, ns)},
		{"EtcdNoLeader", "1m", []series{{`etcd_server_has_leader{` + etcd0 + `}`, "0x10"}}, []series{{`etcd_server_has_leader{` + etcd0 + `}`, "1x10"}},
			"30s", "2m", map[string]string{"job": "etcd", "namespace": "kcp", "instance": "etcd-0"}},
		// One cluster down to 2 of 3 alerts for that cluster; the other shard's is healthy.
		{"EtcdMembersDown", "1m", []series{{`up{job="etcd",namespace="kcp",service="etcd-shard-1",instance="etcd-shard-1-0"}`, "0x10"},
			{`up{job="etcd",namespace="kcp",service="etcd-shard-1",instance="etcd-shard-1-1"}`, "1x10"},
			{`up{job="etcd",namespace="kcp",service="etcd",instance="etcd-0"}`, "1x10"}},
			[]series{{`up{` + etcd0 + `}`, "1x10"}}, "2m", "4m", with(map[string]string{"service": "etcd-shard-1"}, ns)},
		{"EtcdHighFsyncDuration", "1m", fsyncF, fsyncH, "8m", "15m", with(map[string]string{"instance": "etcd-0"}, ns)},
		{"EtcdHighCommitDuration", "1m", commitF, commitH, "8m", "15m", with(map[string]string{"instance": "etcd-0"}, ns)},
		{"EtcdDatabaseNearQuota", "1m",
			[]series{{`etcd_mvcc_db_total_size_in_bytes{` + etcd0 + `}`, "900x20"}, {`etcd_server_quota_backend_bytes{` + etcd0 + `}`, "1000x20"}},
			[]series{{`etcd_mvcc_db_total_size_in_bytes{` + etcd0 + `}`, "100x20"}, {`etcd_server_quota_backend_bytes{` + etcd0 + `}`, "1000x20"}},
			"8m", "12m", map[string]string{"job": "etcd", "namespace": "kcp", "instance": "etcd-0"}},
		{"KCPAPIErrorRate", "1m", errors("0+2x40"), errors("0x40"), "8m", "15m", with(nil, ns)},
		{"KCPAPIHighLatency", "1m", apiF, apiH, "8m", "15m", with(nil, ns)},
		{"KCPWorkqueueBacklog", "1m", []series{{`workqueue_depth{job="kcp",namespace="kcp",name="apibinding"}`, "5000x30"}},
			[]series{{`workqueue_depth{job="kcp",namespace="kcp",name="apibinding"}`, "3x30"}}, "10m", "20m", with(map[string]string{"name": "apibinding"}, ns)},
		// Short windows see the burn at once, so each alert fires right after its `for:`.
		burn("KCPErrorBudgetBurnFast", "1m", "5m"),
		burn("KCPErrorBudgetBurnMedium", "10m", "20m"),
		burn("KCPErrorBudgetBurnSlow", "30m", "1h10m"),
		burn("KCPErrorBudgetBurnTicket", "2h", "3h10m"),
		// Sample intervals stay under Prometheus' 5m lookback, or `for:` would reset between samples.
		// Promtool's clock starts at 0: a renewal due at 600 (10 min) is a
		// day overdue at 1d10m, and fires an hour later. Quiet: a
		// certificate not yet issued (0), one due in three days, and a leaf
		// renewing 8 days before expiry (tls.renewBefore 192h) whose
		// renewal is an hour under way — a fixed 14 days to expiry warned
		// at every such renewal.
		{"CertificateRenewalOverdue", "4m", []series{{`certmanager_certificate_renewal_timestamp_seconds{name="kcp-server",namespace="kcp"}`, "600x450"}},
			[]series{{`certmanager_certificate_renewal_timestamp_seconds{name="kcp-server",namespace="kcp"}`, "0x450"},
				{`certmanager_certificate_renewal_timestamp_seconds{name="kcp-admin",namespace="kcp"}`, "259200x450"},
				{`certmanager_certificate_renewal_timestamp_seconds{name="agent-a",namespace="kcp"}`, "86400x450"},
				{`certmanager_certificate_expiration_timestamp_seconds{name="agent-a",namespace="kcp"}`, "777600x450"}},
			"1d30m", "1d1h20m", map[string]string{"name": "kcp-server", "namespace": "kcp"}},
		{"CertificateExpiresVerySoon", "1m", []series{{`certmanager_certificate_expiration_timestamp_seconds{name="kcp-server",namespace="kcp"}`, "172800x20"}},
			[]series{{`certmanager_certificate_expiration_timestamp_seconds{name="kcp-server",namespace="kcp"}`, "864000x20"}},
			"5m", "12m", map[string]string{"name": "kcp-server", "namespace": "kcp"}},
		{"EtcdBackupStale", "4m", []series{{`kube_cronjob_status_last_successful_time{cronjob="etcd-backup",namespace="kcp"}`, "0x500"}},
			[]series{{`kube_cronjob_status_last_successful_time{cronjob="etcd-backup",namespace="kcp"}`, "0+240x500"}},
			"26h5m", "27h", map[string]string{"cronjob": "etcd-backup", "namespace": "kcp"}},
		// A shard's etcd (etcd-<shard>-backup) is covered like the root's.
		gaveUpScenario("EtcdBackupFailed", "etcd-shard-1-backup-29000000"),
		// A request with such a certificate in the window: the bucket grows
		// (le as Prometheus 3 stores it, and as Prometheus 2 did).
		{"KCPClientCertificateExpiresSoon", "1m", []series{{`apiserver_client_certificate_expiration_seconds_bucket{job="kcp",namespace="kcp",le="604800.0"}`, "0+1x120"}},
			[]series{{`apiserver_client_certificate_expiration_seconds_bucket{job="kcp",namespace="kcp",le="604800"}`, "5x120"}},
			"", "30m", ns},
		{"KCPClientCertificateExpiresVerySoon", "1m", []series{{`apiserver_client_certificate_expiration_seconds_bucket{job="kcp",namespace="kcp",le="86400"}`, "0+1x60"}},
			[]series{{`apiserver_client_certificate_expiration_seconds_bucket{job="kcp",namespace="kcp",le="86400"}`, "5x60"}},
			"", "20m", ns},
		// Ten 401s to one 200 per minute, kcp failing to authenticate as
		// many; quiet: the same answers from the front-proxy while kcp
		// authenticates everything it gets — one client with a bad
		// credential, which the front-proxy refuses itself.
		{"FrontProxyUnauthorized", "1m",
			[]series{{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="401"}`, "0+10x60"},
				{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="200"}`, "0+1x60"},
				{`authentication_attempts{job="kcp",namespace="kcp",result="error"}`, "0+10x60"},
				{`authentication_attempts{job="kcp",namespace="kcp",result="success"}`, "0+1x60"}},
			[]series{{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="401"}`, "0+10x60"},
				{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="200"}`, "0+1x60"},
				{`authentication_attempts{job="kcp",namespace="kcp",result="error"}`, "0x60"},
				{`authentication_attempts{job="kcp",namespace="kcp",result="success"}`, "0+1x60"}},
			"6m", "15m", ns},
		// Quiet: kcp refusing a client that goes to it directly (an expired
		// certificate) while the front-proxy's answers are healthy.
		{"FrontProxyUnauthorized", "1m",
			[]series{{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="401"}`, "0+10x60"},
				{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="200"}`, "0+1x60"},
				{`authentication_attempts{job="kcp",namespace="kcp",result="error"}`, "0+1x60"}},
			[]series{{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="401"}`, "0+1x60"},
				{`proxy_request_duration_seconds_count{job="kcp-front-proxy",namespace="kcp",method="GET",code="200"}`, "0+100x60"},
				{`authentication_attempts{job="kcp",namespace="kcp",result="error"}`, "0+10x60"}},
			"6m", "15m", ns},
		// A week, the CronJob's and the Job's deadlines, slack: 7d3h, then 15m.
		{"FrontProxyRestartStale", "4m", []series{{`kube_cronjob_status_last_successful_time{cronjob="kcp-front-proxy-restart",namespace="kcp"}`, "0x3000"}},
			[]series{{`kube_cronjob_status_last_successful_time{cronjob="kcp-front-proxy-restart",namespace="kcp"}`, "0+240x3000"}},
			"7d3h10m", "7d3h30m", map[string]string{"cronjob": "kcp-front-proxy-restart", "namespace": "kcp"}},
		gaveUpScenario("FrontProxyRestartFailed", "kcp-front-proxy-restart-29000000"),
		{"EtcdBackupVerificationStale", "4m", []series{{`kube_cronjob_status_last_successful_time{cronjob="etcd-shard-1-backup-verify",namespace="kcp"}`, "0x3000"}},
			[]series{{`kube_cronjob_status_last_successful_time{cronjob="etcd-shard-1-backup-verify",namespace="kcp"}`, "0+240x3000"}},
			"8d30m", "8d2h", map[string]string{"cronjob": "etcd-shard-1-backup-verify", "namespace": "kcp"}},
		// Retries with nothing shipped stall; retries while records flow do not.
		{"LogShippingStalled", "1m", []series{{fluentBit("fluentbit_output_retries_total"), "0+1x40"}, {fluentBit("fluentbit_output_proc_records_total"), "500x40"}},
			[]series{{fluentBit("fluentbit_output_retries_total"), "0+1x40"}, {fluentBit("fluentbit_output_proc_records_total"), "500+100x40"}},
			"12m", "20m", fluentBitPod},
		{"LogsDropped", "1m", []series{{fluentBit("fluentbit_output_dropped_records_total"), "0+5x20"}},
			[]series{{fluentBit("fluentbit_output_dropped_records_total"), "0x20"}}, "", "5m", fluentBitPod},
	}
}

// gaveUpScenario is the scenario of an alert on a Job that gave up (its Failed
// condition) and stays quiet on one whose pod failed before a retry
// succeeded (status.failed 1, no Failed condition).
func gaveUpScenario(alert, job string) scenario {
	failed := fmt.Sprintf(`kube_job_failed{job_name="%s",namespace="kcp",condition="true"}`, job)
	return scenario{alert, "1m", []series{{failed, "1x10"}},
		[]series{{failed, "0x10"}, {fmt.Sprintf(`kube_job_status_failed{job_name="%s",namespace="kcp"}`, job), "1x10"}},
		"", "1m", map[string]string{"job_name": job, "namespace": "kcp"}}
}

// writeRules writes the rules for promtool: annotations dropped for the unit
// tests (promtool would demand their rendered text; their presence is
// checked in TestEveryAlertIsDocumented), kept for `check rules`.
func writeRules(t *testing.T, dir string, keepAnnotations bool) string {
	t.Helper()
	groups := Groups()
	if !keepAnnotations {
		for gi := range groups {
			for ri := range groups[gi].Rules {
				groups[gi].Rules[ri].Annotations = nil
			}
		}
	}
	rules, err := RulesFile(groups)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := toolchain.Find("promtool")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRulesPassPromtoolCheck(t *testing.T) {
	out := promtool(t, "check", "rules", writeRules(t, t.TempDir(), true))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules:\n%s", out)
	}
}

// TestAlertsUnderPromtool runs a promtool unit test per alert: it fires on
// failing series, stays silent on healthy ones and before its `for:` is over.
func TestAlertsUnderPromtool(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, false)
	covered := map[string]bool{}
	var tests []map[string]any
	for _, s := range scenarios() {
		covered[s.alert] = true
		firing := []map[string]any{{"exp_labels": with(map[string]string{"severity": severityOf(t, s.alert)}, s.labels)}}
		failing := []map[string]any{{"eval_time": s.fireAt, "alertname": s.alert, "exp_alerts": firing}}
		if s.silentAt != "" {
			failing = append(failing, map[string]any{"eval_time": s.silentAt, "alertname": s.alert, "exp_alerts": []any{}})
		}
		tests = append(tests,
			map[string]any{"name": s.alert + " fires", "interval": s.interval, "input_series": toInput(s.failing), "alert_rule_test": failing},
			map[string]any{"name": s.alert + " stays silent when healthy", "interval": s.interval, "input_series": toInput(s.healthy),
				"alert_rule_test": []map[string]any{{"eval_time": s.fireAt, "alertname": s.alert, "exp_alerts": []any{}}}})
	}
	for _, a := range Alerts() {
		if !covered[a.Alert] {
			t.Errorf("alert %s has no promtool unit test scenario", a.Alert)
		}
	}
	b, err := yaml.Marshal(map[string]any{"rule_files": []string{"rules.yaml"}, "evaluation_interval": "1m", "tests": tests})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules_test.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, "test", "rules", path)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

func toInput(ss []series) []map[string]string {
	var out []map[string]string
	for _, s := range ss {
		out = append(out, map[string]string{"series": s.Series, "values": s.Values})
	}
	return out
}

func severityOf(t *testing.T, alert string) string {
	t.Helper()
	for _, a := range Alerts() {
		if a.Alert == alert {
			return a.Labels["severity"]
		}
	}
	t.Fatalf("no alert %s", alert)
	return ""
}

// TestEveryAlertIsDocumented checks the annotations every alert must carry
// and that its runbook anchor exists in docs/runbook.md.
func TestEveryAlertIsDocumented(t *testing.T) {
	runbook, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (\S+)\s*$`).FindAllStringSubmatch(string(runbook), -1) {
		headings[strings.ToLower(m[1])] = true
	}
	for _, a := range Alerts() {
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if a.Annotations[k] == "" {
				t.Errorf("%s has no %s", a.Alert, k)
			}
		}
		anchor := strings.TrimPrefix(a.Annotations["runbook_url"], RunbookURL+"#")
		if !headings[anchor] {
			t.Errorf("%s: runbook anchor #%s has no heading in docs/runbook.md", a.Alert, anchor)
		}
		if s := a.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s severity %q", a.Alert, s)
		}
	}
	want := map[string]struct{ severity, forDur string }{
		"TMCComponentDown": {"critical", "5m"}, "SyncerHighErrorRate": {"warning", "2m"},
	}
	for _, a := range Alerts() {
		if w, ok := want[a.Alert]; ok && (a.Labels["severity"] != w.severity || a.For != w.forDur) {
			t.Errorf("seed alert %s = %s for %s, want %s for %s", a.Alert, a.Labels["severity"], a.For, w.severity, w.forDur)
		}
	}
}

// TestDashboardQueries parses every panel query with Prometheus' own parser
// (promtool) and checks it uses a series the rules rely on too.
func TestDashboardQueries(t *testing.T) {
	metric := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	ruleSeries := map[string]bool{}
	for _, g := range Groups() {
		for _, r := range g.Rules {
			for _, m := range metric.FindAllString(r.Expr, -1) {
				ruleSeries[m] = true
			}
			if r.Record != "" {
				ruleSeries[r.Record] = true
			}
		}
	}
	var rules []Rule
	for _, d := range Dashboards() {
		if _, err := d.JSON(); err != nil {
			t.Fatal(err)
		}
		for i, p := range d.Panels {
			rules = append(rules, Rule{Record: fmt.Sprintf("dashboard:%s:panel%d", strings.ReplaceAll(d.UID, "-", "_"), i), Expr: p.Expr})
			uses := false
			for _, m := range metric.FindAllString(p.Expr, -1) {
				if (strings.Contains(m, "_") || m == "up") && ruleSeries[m] {
					uses = true
				}
			}
			if !uses {
				t.Errorf("%s / %q uses no series the rules rely on: %s", d.Title, p.Title, p.Expr)
			}
		}
	}
	dir := t.TempDir()
	file, err := RulesFile([]Group{{Name: "dashboards", Rules: rules}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboards.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

func TestAlertmanagerConfigPassesAmtool(t *testing.T) {
	amtool, err := toolchain.Find("amtool")
	if err != nil {
		t.Fatal(err)
	}
	for _, pd := range []string{"", "0123456789abcdef0123456789abcdef"} {
		cfg, err := AlertmanagerConfig("https://hooks.slack.com/services/T000/B000/XXXX", "#kcp-alerts", pd)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "alertmanager.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(amtool, "check-config", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("amtool check-config (pagerduty=%v): %v\n%s\n%s", pd != "", err, out, cfg)
		}
		// Routing: a critical alert reaches PagerDuty (when configured) and Slack.
		routes, err := exec.Command(amtool, "config", "routes", "test", "--config.file="+path, "severity=critical", "alertname=EtcdNoLeader").CombinedOutput()
		if err != nil {
			t.Fatalf("amtool config routes test: %v\n%s", err, routes)
		}
		want := "slack"
		if pd != "" {
			want = "pagerduty,slack"
		}
		if got := lastLine(string(routes)); got != want { // amtool may print a warning line first
			t.Errorf("critical alert routed to %q, want %q", got, want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
