package monitoring

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

func run(t *testing.T, a Args) *mocktest.Recorder {
	t.Helper()
	return mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := NewMonitoring(ctx, "monitoring", a)
		return err
	})
}

func base() Args {
	return Args{Namespace: "kcp", ServerCASecret: "kcp-server-ca", MetricsViewerSecret: "kcp-metrics-viewer", SlackChannel: "#kcp-alerts"}
}

func TestServiceMonitors(t *testing.T) {
	rec := run(t, base())
	kcp := rec.Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", JobKCP)
	ep := mocktest.Dig(kcp, "spec", "endpoints", 0)
	if mocktest.Dig(ep, "scheme") != "https" || mocktest.Dig(ep, "interval") != "30s" ||
		mocktest.Dig(ep, "tlsConfig", "cert", "secret", "name") != "kcp-metrics-viewer" ||
		mocktest.Dig(ep, "tlsConfig", "keySecret", "name") != "kcp-metrics-viewer" ||
		mocktest.Dig(ep, "tlsConfig", "ca", "secret", "name") != "kcp-server-ca" {
		t.Errorf("kcp endpoint = %v: want HTTPS with the metrics-viewer client certificate", ep)
	}
	if mocktest.Dig(kcp, "spec", "jobLabel") != "app.kubernetes.io/name" || mocktest.Dig(kcp, "spec", "selector", "matchLabels", ScrapeLabel) != "true" {
		t.Errorf("kcp selector/jobLabel = %v", kcp["spec"])
	}
	etcd := rec.Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", JobEtcd)
	if mocktest.Dig(etcd, "spec", "endpoints", 0, "port") != "metrics" {
		t.Errorf("etcd endpoint = %v", mocktest.Dig(etcd, "spec", "endpoints"))
	}
	if n := len(rec.OfType("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")); n != 3 {
		t.Errorf("%d ServiceMonitors without a cert-manager to scrape, want 3", n)
	}

	// A cert-manager kcp-tmc installed: its metrics feed the certificate alerts.
	a := base()
	a.CertManagerNamespace = "cert-manager"
	cm := run(t, a).Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "cert-manager")
	if mocktest.Dig(cm, "spec", "namespaceSelector", "matchNames", 0) != "cert-manager" || mocktest.Dig(cm, "spec", "endpoints", 0, "port") != "http-metrics" ||
		mocktest.Dig(cm, "spec", "selector", "matchLabels", "app.kubernetes.io/component") != "controller" {
		t.Errorf("cert-manager ServiceMonitor = %v", cm["spec"])
	}
}

// TestFluentBitPodMonitor: with logging on, each fluent-bit pod is scraped
// where it serves Prometheus' format, for the logging alerts.
func TestFluentBitPodMonitor(t *testing.T) {
	const podMonitor = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
	if n := len(run(t, base()).OfType(podMonitor)); n != 0 {
		t.Errorf("%d PodMonitors without logging, want none", n)
	}
	a := base()
	a.LoggingNamespace = logging.Namespace
	pm := run(t, a).Object(t, podMonitor, logging.Name)
	ep := mocktest.Dig(pm, "spec", "podMetricsEndpoints", 0)
	if mocktest.Dig(pm, "spec", "namespaceSelector", "matchNames", 0) != logging.Namespace ||
		mocktest.Dig(pm, "spec", "selector", "matchLabels", "app.kubernetes.io/name") != logging.Name ||
		mocktest.Dig(ep, "port") != logging.MetricsPort || mocktest.Dig(ep, "path") != "/api/v2/metrics/prometheus" {
		t.Errorf("fluent-bit PodMonitor = %v", pm["spec"])
	}
}

func TestRulesAndDashboards(t *testing.T) {
	rec := run(t, base())
	rule := rec.Object(t, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "kcp-tmc")
	got := map[string]bool{}
	for _, g := range mocktest.Dig(rule, "spec", "groups").([]any) {
		for _, r := range mocktest.Dig(g, "rules").([]any) {
			if a, ok := mocktest.Dig(r, "alert").(string); ok {
				got[a] = mocktest.Dig(r, "annotations", "runbook_url") != nil
			}
		}
	}
	for _, a := range Alerts() {
		if !got[a.Alert] {
			t.Errorf("alert %s missing from the PrometheusRule (or without runbook_url)", a.Alert)
		}
	}
	dashboards := 0
	for _, cm := range rec.OfType("kubernetes:core/v1:ConfigMap") {
		if mocktest.Dig(cm.Input(), "metadata", "labels", DashboardLabel) == "1" {
			dashboards++
		}
	}
	if dashboards != len(Dashboards()) {
		t.Errorf("%d dashboard ConfigMaps with the sidecar label, want %d", dashboards, len(Dashboards()))
	}
}

func TestAlertmanagerSecretKeepsWebhookSecret(t *testing.T) {
	a := base()
	a.SlackWebhookURL = pulumi.ToSecret(pulumi.String("https://hooks.slack.com/services/T/B/SECRET")).(pulumi.StringOutput)
	rec := run(t, a)
	sec := rec.Named(t, "kubernetes:core/v1:Secret", "monitoring-alertmanager")
	sd := sec.Inputs["stringData"]
	if !sd.IsSecret() && !sd.ObjectValue()["alertmanager.yaml"].IsSecret() {
		t.Error("alertmanager.yaml (with the webhook URL) is not a Pulumi secret")
	}
	if cfg := mocktest.Dig(sec.Input(), "stringData", "alertmanager.yaml"); !strings.Contains(cfg.(string), "SECRET") {
		t.Errorf("config does not carry the webhook: %v", cfg)
	}
	if len(run(t, base()).OfType("kubernetes:core/v1:Secret")) != 0 {
		t.Error("an Alertmanager Secret exists without a webhook")
	}
}

func alertExpr(t *testing.T, name string) string {
	for _, a := range Alerts() {
		if a.Alert == name {
			return a.Expr
		}
	}
	t.Fatalf("no alert %s", name)
	return ""
}

// TestInstalledStackNamespace: the kube-prometheus-stack namespace is a
// recorded Pod Security exception (enforce baseline, audit restricted), at
// the pinned Pod Security version like every other namespace.
func TestInstalledStackNamespace(t *testing.T) {
	a := base()
	a.InstallStack, a.MonitoringNamespace, a.PodSecurityVersion = true, "monitoring", "v1.34"
	rec := run(t, a)
	ns := rec.Object(t, "kubernetes:core/v1:Namespace", "monitoring")
	labels, _ := mocktest.Dig(ns, "metadata", "labels").(map[string]any)
	for k, want := range map[string]string{
		"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/audit": "restricted",
		"pod-security.kubernetes.io/enforce-version": "v1.34", "pod-security.kubernetes.io/audit-version": "v1.34",
		"pod-security.kubernetes.io/warn-version": "v1.34",
	} {
		if labels[k] != want {
			t.Errorf("monitoring namespace %s = %v, want %s", k, labels[k], want)
		}
	}
	if mocktest.Dig(ns, "metadata", "annotations", "kcp-tmc.io/policy-exception") == nil {
		t.Error("the monitoring namespace's exception is not recorded")
	}
	releases := rec.OfType("kubernetes:helm.sh/v3:Release")
	if len(releases) != 1 {
		t.Fatal("kube-prometheus-stack not installed")
	}
	// The chart's Prometheus selects only its own release's monitors and
	// rules unless told otherwise; kcp-tmc's carry no release label.
	spec := mocktest.Dig(releases[0].Inputs.Mappable(), "values", "prometheus", "prometheusSpec")
	for _, kind := range []string{"rule", "serviceMonitor", "podMonitor"} {
		if got := mocktest.Dig(spec, kind+"SelectorNilUsesHelmValues"); got != false {
			t.Errorf("prometheusSpec.%sSelectorNilUsesHelmValues = %v, want false: the installed Prometheus ignores kcp-tmc's %ss", kind, got, kind)
		}
	}
}

// TestShardMonitors: every kcp shard is scraped as job kcp (the alerts'
// selector) by a monitor that selects only its Service and verifies its own
// serving name; a shard added later adds a monitor and changes none.
func TestShardMonitors(t *testing.T) {
	a := base()
	a.Shards = []shard.Shard{{Name: "shard-1"}}
	rec := run(t, a)
	for _, tc := range []struct{ monitor, shard, serverName string }{
		{JobKCP, "root", "kcp-server.kcp.svc"},
		{"kcp-shard-1", "shard-1", "kcp-shard-1.kcp.svc"},
	} {
		m := rec.Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", tc.monitor)
		if got := mocktest.Dig(m, "spec", "selector", "matchLabels", "kcp-tmc.io/shard"); got != tc.shard {
			t.Errorf("%s selects shard %v, want %s", tc.monitor, got, tc.shard)
		}
		if got := mocktest.Dig(m, "spec", "selector", "matchLabels", "app.kubernetes.io/name"); got != JobKCP {
			t.Errorf("%s selects %v: its series would not be job kcp", tc.monitor, got)
		}
		if got := mocktest.Dig(m, "spec", "endpoints", 0, "tlsConfig", "serverName"); got != tc.serverName {
			t.Errorf("%s verifies %v, want %s", tc.monitor, got, tc.serverName)
		}
	}
	a.Cache = &shard.Shard{Name: shard.Cache}
	cache := run(t, a).Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", JobCache)
	if got := mocktest.Dig(cache, "spec", "endpoints", 0, "tlsConfig", "serverName"); got != "kcp-cache.kcp.svc" {
		t.Errorf("cache monitor verifies %v", got)
	}
	one := run(t, base()).Object(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", JobKCP)
	if !strings.EqualFold(mocktest.Dig(one, "spec", "selector", "matchLabels", "kcp-tmc.io/shard").(string), "root") {
		t.Error("the root monitor's selector depends on the number of shards")
	}
}
