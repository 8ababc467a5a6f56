// Package monitoring makes kcp, its front-proxy and etcd observable:
// ServiceMonitors (kcp scraped with the metrics-viewer client certificate),
// PrometheusRules on series that exist upstream (rules.go), Grafana
// dashboards (dashboards.go), Alertmanager routing (alertmanager.go) and,
// optionally, kube-prometheus-stack itself.
package monitoring

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/logging"
	"github.com/kcp-tmc/kcp-tmc/components/platform"
	"github.com/kcp-tmc/kcp-tmc/pkg/check"
	"github.com/kcp-tmc/kcp-tmc/pkg/component"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/pkg/netpol"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "kcp-tmc:monitoring:Monitoring"

// ScrapeLabel marks the one Service per workload a ServiceMonitor selects
// (kcp and etcd have several Services over the same pods).
const ScrapeLabel = "kcp-tmc.io/scrape"

// Defaults.
const (
	DefaultInterval     = "30s"
	DefaultStackVersion = "75.18.1" // kube-prometheus-stack Helm chart
	DashboardLabel      = "grafana_dashboard"
	AlertmanagerSecret  = "alertmanager-kcp-tmc"
)

// Args configures monitoring.
type Args struct {
	Namespace string // kcp's namespace: monitors, rules, dashboards and secrets live there
	// Shards are the kcp shards besides the root shard: each is scraped by a
	// monitor of its own.
	Shards []shard.Shard
	// Cache, when set, is the separate cache server (kcp.cache.mode
	// separate): it is scraped too.
	Cache    *shard.Shard
	Interval string
	// RuleLabels are added to ServiceMonitors and PrometheusRules so that the
	// Prometheus operator selects them (kube-prometheus-stack: release=<name>).
	RuleLabels map[string]string
	// ServerCASecret verifies kcp's serving certificate; MetricsViewerSecret is
	// the client certificate kcp requires for /metrics.
	ServerCASecret, MetricsViewerSecret string
	// Alerting: Slack (webhook URL a Pulumi secret) and, for critical alerts,
	// PagerDuty (routing key a Pulumi secret) when set.
	SlackChannel    string
	SlackWebhookURL pulumi.StringInput
	PagerDutyKey    pulumi.StringInput
	// CertManagerNamespace, when set, is where a cert-manager kcp-tmc
	// installed runs: its metrics are scraped for the certificate alerts.
	CertManagerNamespace string
	// PodSecurityVersion pins the Pod Security Standards version of the
	// monitoring namespace's levels (like every other namespace's).
	PodSecurityVersion string
	// InstallStack installs kube-prometheus-stack into MonitoringNamespace.
	InstallStack bool
	StackVersion string
	// MonitoringNamespace is where Prometheus and Alertmanager run: the
	// Alertmanager config Secret goes there.
	MonitoringNamespace string
	// LoggingNamespace is where fluent-bit runs (logging enabled): a
	// PodMonitor scrapes it for the logging alerts.
	LoggingNamespace string
}

// Monitoring is the component.
type Monitoring struct {
	pulumi.ResourceState

	// Alerts lists the alert names defined.
	Alerts pulumi.StringArrayOutput `pulumi:"alerts"`
}

// WithDefaults fills unset fields.
func (a Args) WithDefaults() Args {
	component.Default(&a.Interval, DefaultInterval)
	component.Default(&a.StackVersion, DefaultStackVersion)
	component.Default(&a.MonitoringNamespace, netpol.MonitoringNamespace)
	return a
}

var promDuration = regexp.MustCompile(`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`)

// Validate reports every invalid field under fld, children named by the
// stack's keys.
func (a Args) Validate(fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	// kcp's namespace is the stack's top-level key, not one of monitoring's.
	for _, req := range []struct{ key, value string }{{"kcpNamespace", a.Namespace}, {"serverCASecret", a.ServerCASecret}, {"metricsViewerSecret", a.MetricsViewerSecret}} {
		if req.value == "" {
			errs = append(errs, field.Required(fld.Child(req.key), "set by the stack"))
		}
	}
	errs = append(errs, check.Labels(fld.Child("ruleLabels"), a.RuleLabels)...)
	errs = append(errs, check.DNSLabel(fld.Child("namespace"), a.MonitoringNamespace, "the namespace Prometheus and Alertmanager run in")...)
	// The Prometheus operator's duration grammar (h, m, s; no fractions or
	// signs), from 1s to Prometheus' 5m staleness window, or series vanish
	// between scrapes.
	if d, err := time.ParseDuration(a.Interval); !promDuration.MatchString(a.Interval) || err != nil || d < time.Second || d > 5*time.Minute {
		errs = append(errs, field.Invalid(fld.Child("interval"), a.Interval, `a scrape interval from 1s to 5m in whole seconds, such as "30s" or "1m"`))
	}
	if a.SlackWebhookURL != nil && !strings.HasPrefix(a.SlackChannel, "#") {
		errs = append(errs, field.Invalid(fld.Child("slackChannel"), a.SlackChannel, `a channel such as "#kcp-alerts"`))
	}
	return append(errs, check.ChartVersion(fld.Child("stackVersion"), a.StackVersion, DefaultStackVersion)...)
}

// NewMonitoring registers the component and its children.
func NewMonitoring(ctx *pulumi.Context, name string, args Args, opts ...pulumi.ResourceOption) (*Monitoring, error) {
	args = args.WithDefaults()
	comp := &Monitoring{}
	if err := component.Register(ctx, TypeToken, name, comp, args.Validate(field.NewPath("monitoring")), opts...); err != nil {
		return nil, err
	}
	child := []pulumi.ResourceOption{pulumi.Parent(comp)}
	if args.InstallStack {
		rel, err := installStack(ctx, name, args, child)
		if err != nil {
			return nil, err
		}
		child = append(child, pulumi.DependsOn([]pulumi.Resource{rel}))
	}
	for _, sm := range serviceMonitors(args) {
		if _, err := customResource(ctx, name+"-servicemonitor-"+sm.name, "ServiceMonitor", sm.name, args, sm.spec, child); err != nil {
			return nil, err
		}
	}
	if args.LoggingNamespace != "" {
		// fluent-bit's pods, one per node, each scraped itself.
		if _, err := customResource(ctx, name+"-podmonitor-fluent-bit", "PodMonitor", logging.Name, args, pulumi.Map{
			"namespaceSelector": pulumi.Map{"matchNames": pulumi.ToStringArray([]string{args.LoggingNamespace})},
			"selector":          pulumi.Map{"matchLabels": pulumi.ToStringMap(workload.Labels(logging.Name))},
			"podMetricsEndpoints": pulumi.Array{pulumi.Map{"port": pulumi.String(logging.MetricsPort),
				"path": pulumi.String(logging.MetricsPath), "interval": pulumi.String(args.Interval)}},
		}, child); err != nil {
			return nil, err
		}
	}
	var alerts []string
	for _, g := range Groups() {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	if _, err := customResource(ctx, name+"-rules", "PrometheusRule", "kcp-tmc", args, pulumi.Map{"groups": RuleGroups(Groups())}, child); err != nil {
		return nil, err
	}
	for _, d := range Dashboards() {
		js, err := d.JSON()
		if err != nil {
			return nil, err
		}
		meta := workload.Meta("dashboard-"+d.UID, args.Namespace, "grafana-dashboard")
		// Grafana's sidecar loads every ConfigMap with this label.
		meta.Labels = pulumi.StringMap{DashboardLabel: pulumi.String("1"), "app.kubernetes.io/part-of": pulumi.String("kcp-tmc")}
		if _, err := corev1.NewConfigMap(ctx, name+"-dashboard-"+d.UID, &corev1.ConfigMapArgs{
			Metadata: meta, Data: pulumi.StringMap{d.UID + ".json": pulumi.String(js)},
		}, child...); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.UID, err)
		}
	}
	if args.SlackWebhookURL != nil {
		if err := alertmanagerSecret(ctx, name, args, child); err != nil {
			return nil, err
		}
	}
	comp.Alerts = pulumi.ToStringArray(alerts).ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"alerts": comp.Alerts}); err != nil {
		return nil, fmt.Errorf("registering outputs of %q: %w", name, err)
	}
	return comp, nil
}

type monitor struct {
	name string
	spec pulumi.Map
}

func serviceMonitors(a Args) []monitor {
	tlsEndpoint := func(path, serverName string) pulumi.Map {
		return pulumi.Map{
			"port": pulumi.String("https"), "scheme": pulumi.String("https"), "path": pulumi.String(path),
			"interval": pulumi.String(a.Interval),
			"tlsConfig": pulumi.Map{
				"ca":         pulumi.Map{"secret": pulumi.Map{"name": pulumi.String(a.ServerCASecret), "key": pulumi.String("ca.crt")}},
				"cert":       pulumi.Map{"secret": pulumi.Map{"name": pulumi.String(a.MetricsViewerSecret), "key": pulumi.String("tls.crt")}},
				"keySecret":  pulumi.Map{"name": pulumi.String(a.MetricsViewerSecret), "key": pulumi.String("tls.key")},
				"serverName": pulumi.String(serverName),
			},
		}
	}
	spec := func(app string, endpoint pulumi.Map, extra ...string) pulumi.Map {
		match := pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(app), ScrapeLabel: pulumi.String("true")}
		for i := 0; i+1 < len(extra); i += 2 {
			match[extra[i]] = pulumi.String(extra[i+1])
		}
		return pulumi.Map{
			// job = the Service's app.kubernetes.io/name: kcp, kcp-front-proxy, etcd.
			"jobLabel":          pulumi.String("app.kubernetes.io/name"),
			"namespaceSelector": pulumi.Map{"matchNames": pulumi.ToStringArray([]string{a.Namespace})},
			"selector":          pulumi.Map{"matchLabels": match},
			"endpoints":         pulumi.Array{endpoint},
		}
	}
	// kcp serves its metrics shard-wide at /metrics (a workspace path
	// answers 501) to a client certificate bound to kcp's metrics reader
	// role (the kcp component's binding for the metrics-viewer group). One
	// monitor per shard: each verifies its shard's own serving name.
	monitors := []monitor{
		{JobKCP, spec(JobKCP, tlsEndpoint("/metrics", kcp.ServerService+"."+a.Namespace+".svc"), kcp.ShardLabel, shard.Root)},
	}
	for _, s := range a.Shards {
		monitors = append(monitors, monitor{s.Deployment(),
			spec(JobKCP, tlsEndpoint("/metrics", s.Service()+"."+a.Namespace+".svc"), kcp.ShardLabel, s.Name)})
	}
	if c := a.Cache; c != nil {
		monitors = append(monitors, monitor{JobCache, spec(JobCache, tlsEndpoint("/metrics", c.Service()+"."+a.Namespace+".svc"))})
	}
	monitors = append(monitors,
		monitor{JobFrontProxy, spec(JobFrontProxy, tlsEndpoint("/metrics", "kcp-front-proxy."+a.Namespace+".svc"))},
		// Every etcd cluster: the root shard's and each other shard's.
		monitor{JobEtcd, spec(JobEtcd, pulumi.Map{"port": pulumi.String("metrics"), "scheme": pulumi.String("http"),
			"path": pulumi.String("/metrics"), "interval": pulumi.String(a.Interval)})},
	)
	if a.CertManagerNamespace != "" {
		// The certificate alerts read cert-manager's metrics. The monitor is
		// ours, not the chart's: the chart is installed before the
		// prometheus-operator CRDs exist.
		monitors = append(monitors, monitor{"cert-manager", pulumi.Map{
			"jobLabel":          pulumi.String("app.kubernetes.io/name"),
			"namespaceSelector": pulumi.Map{"matchNames": pulumi.ToStringArray([]string{a.CertManagerNamespace})},
			"selector": pulumi.Map{"matchLabels": pulumi.StringMap{
				"app.kubernetes.io/name": pulumi.String("cert-manager"), "app.kubernetes.io/component": pulumi.String("controller"),
			}},
			// cert-manager ≥ 1.21 names its metrics port http-metrics.
			"endpoints": pulumi.Array{pulumi.Map{"port": pulumi.String("http-metrics"), "path": pulumi.String("/metrics"),
				"interval": pulumi.String(a.Interval)}},
		}})
	}
	return monitors
}

func ruleMap(r Rule) pulumi.Map {
	m := pulumi.Map{"expr": pulumi.String(r.Expr)}
	if r.Record != "" {
		m["record"] = pulumi.String(r.Record)
	}
	if r.Alert != "" {
		m["alert"] = pulumi.String(r.Alert)
		m["labels"] = pulumi.ToStringMap(r.Labels)
		m["annotations"] = pulumi.ToStringMap(r.Annotations)
	}
	if r.For != "" {
		m["for"] = pulumi.String(r.For)
	}
	return m
}

func customResource(ctx *pulumi.Context, urnName, kind, name string, a Args, spec pulumi.Map, opts []pulumi.ResourceOption) (pulumi.Resource, error) {
	meta := workload.Meta(name, a.Namespace, "monitoring")
	labels := pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "app.kubernetes.io/managed-by": pulumi.String("pulumi")}
	for k, v := range a.RuleLabels {
		labels[k] = pulumi.String(v)
	}
	meta.Labels = labels
	res, err := apiextensions.NewCustomResource(ctx, urnName, &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("monitoring.coreos.com/v1"), Kind: pulumi.String(kind),
		Metadata: meta, OtherFields: kubernetes.UntypedArgs{"spec": spec},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return res, nil
}

// alertmanagerSecret stores alertmanager.yaml (with the webhook URL and
// PagerDuty key) in a Secret, built inside an Apply so the secrets stay secret.
func alertmanagerSecret(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) error {
	pd := a.PagerDutyKey
	if pd == nil {
		pd = pulumi.String("")
	}
	cfg := pulumi.All(a.SlackWebhookURL, pd).ApplyT(func(v []any) (string, error) {
		return AlertmanagerConfig(v[0].(string), a.SlackChannel, v[1].(string))
	}).(pulumi.StringOutput)
	_, err := corev1.NewSecret(ctx, name+"-alertmanager", &corev1.SecretArgs{
		Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(AlertmanagerSecret), Namespace: pulumi.String(a.MonitoringNamespace)},
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{"alertmanager.yaml": pulumi.ToSecret(cfg).(pulumi.StringOutput)},
	}, opts...)
	if err != nil {
		return fmt.Errorf("Alertmanager config Secret: %w", err)
	}
	return nil
}

// installStack installs kube-prometheus-stack with Alertmanager reading our
// config Secret and Grafana's sidecar loading our dashboards.
func installStack(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) (pulumi.Resource, error) {
	// Third-party chart, not verified under `restricted` here: enforce
	// baseline, audit at restricted to record every gap (the platform's labels).
	labels := platform.NamespaceLabels(platform.Args{PodSecurityVersion: a.PodSecurityVersion, EnforceLevel: "baseline"}.WithDefaults())
	ns, err := corev1.NewNamespace(ctx, name+"-namespace", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{
		Name:        pulumi.String(a.MonitoringNamespace),
		Labels:      pulumi.ToStringMap(labels),
		Annotations: pulumi.StringMap{platform.PolicyException: pulumi.String("kube-prometheus-stack: enforce baseline, no default-deny (the chart's own components and flows)")},
	}}, opts...)
	if err != nil {
		return nil, fmt.Errorf("monitoring namespace: %w", err)
	}
	rel, err := helmrelease.New(ctx, name+"-kube-prometheus-stack", helmrelease.Args{
		Name:      pulumi.String("kube-prometheus-stack"),
		Chart:     pulumi.String("kube-prometheus-stack"),
		Version:   pulumi.String(a.StackVersion),
		Namespace: ns.Metadata.Name().Elem(),
		Repo:      "https://prometheus-community.github.io/helm-charts",
		Values: pulumi.Map{
			// The chart's Prometheus otherwise selects only objects labelled
			// release: kube-prometheus-stack, and kcp-tmc's carry only
			// monitoring.ruleLabels: fluent-bit's PodMonitor (the logging
			// alerts' series) was never scraped.
			"prometheus": pulumi.Map{"prometheusSpec": pulumi.Map{
				"ruleSelectorNilUsesHelmValues":           pulumi.Bool(false),
				"serviceMonitorSelectorNilUsesHelmValues": pulumi.Bool(false),
				"podMonitorSelectorNilUsesHelmValues":     pulumi.Bool(false),
			}},
			"alertmanager": pulumi.Map{"alertmanagerSpec": pulumi.Map{"configSecret": pulumi.String(AlertmanagerSecret)}},
			"nodeExporter": pulumi.Map{"enabled": pulumi.Bool(false)}, // needs host access; not kcp-tmc's concern
			"grafana": pulumi.Map{"sidecar": pulumi.Map{"dashboards": pulumi.Map{
				"enabled": pulumi.Bool(true), "label": pulumi.String(DashboardLabel), "labelValue": pulumi.String("1"),
				"searchNamespace": pulumi.String("ALL"),
			}}},
		},
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{ns}))...)
	if err != nil {
		return nil, fmt.Errorf("kube-prometheus-stack release: %w", err)
	}
	return rel, nil
}

// RuleGroups is groups as a PrometheusRule's spec.groups.
func RuleGroups(groups []Group) pulumi.Array {
	var out pulumi.Array
	for _, g := range groups {
		var rules pulumi.Array
		for _, r := range g.Rules {
			rules = append(rules, ruleMap(r))
		}
		out = append(out, pulumi.Map{"name": pulumi.String(g.Name), "rules": rules})
	}
	return out
}
