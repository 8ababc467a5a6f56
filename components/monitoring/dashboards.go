package monitoring

import (
	"encoding/json"
	"fmt"
)

// Panel is one time-series panel.
type Panel struct{ Title, Expr, Unit string }

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	UID, Title string
	Panels     []Panel
}

// Dashboards are the TMC overview, etcd and agents dashboards; their
// queries use the same series (and recording rules) as the alerts.
func Dashboards() []Dashboard {
	return []Dashboard{
		{UID: "kcp-tmc-overview", Title: "TMC overview", Panels: []Panel{
			{"Component health (1 = all instances up)", `tmc_component_health`, "none"},
			{"kcp API availability (30d SLO 99.9%)", `1 - kcp:apiserver_request:error_ratio_rate1h`, "percentunit"},
			{"kcp API error ratio (5m)", `kcp:apiserver_request:error_ratio_rate5m`, "percentunit"},
			{"kcp API requests by code", `sum by (code) (rate(apiserver_request_total{job="kcp"}[5m]))`, "reqps"},
			{"kcp API p99 latency", `histogram_quantile(0.99, sum by (le) (rate(apiserver_request_duration_seconds_bucket{job="kcp",verb!~"WATCH|CONNECT"}[5m])))`, "s"},
			{"kcp controller queues", `sum by (name) (workqueue_depth{job="kcp"})`, "none"},
			{"Agent sync errors", `sum by (controller) (rate(syncer_sync_errors_total[5m]))`, "ops"},
			{"Hours since last etcd backup", `max((time() - kube_cronjob_status_last_successful_time{cronjob=~"` + backupJobs + `"}) / 3600)`, "h"},
		}},
		{UID: "kcp-tmc-etcd", Title: "kcp etcd", Panels: []Panel{
			{"Has leader", `etcd_server_has_leader{job="etcd"}`, "none"},
			{"Members up", `sum by (service) (up{job="etcd"})`, "none"},
			{"DB size / quota", `etcd_mvcc_db_total_size_in_bytes{job="etcd"} / etcd_server_quota_backend_bytes{job="etcd"}`, "percentunit"},
			{"WAL fsync p99", `histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{job="etcd"}[5m])))`, "s"},
			{"Backend commit p99", `histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{job="etcd"}[5m])))`, "s"},
			{"kcp → etcd request p99", `histogram_quantile(0.99, sum by (operation, le) (rate(etcd_request_duration_seconds_bucket{job="kcp"}[5m])))`, "s"},
		}},
		{UID: "kcp-tmc-agents", Title: "kcp agents", Panels: []Panel{
			{"Agents up", `up{job="api-syncagent"}`, "none"},
			{"Reconcile errors", `rate(syncer_sync_errors_total[5m])`, "ops"},
			{"Reconcile p99 (objective 5 s)", `histogram_quantile(0.99, sum by (controller, le) (rate(controller_runtime_reconcile_time_seconds_bucket{job="api-syncagent"}[5m])))`, "s"},
			{"Work queue depth", `sum by (name) (workqueue_depth{job="api-syncagent"})`, "none"},
		}},
	}
}

// JSON renders the dashboard in Grafana's model (schema 39, Prometheus datasource variable).
func (d Dashboard) JSON() (string, error) {
	var panels []map[string]any
	for i, p := range d.Panels {
		panels = append(panels, map[string]any{
			"id": i + 1, "type": "timeseries", "title": p.Title,
			"datasource":  map[string]string{"type": "prometheus", "uid": "${datasource}"},
			"gridPos":     map[string]int{"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": p.Unit}},
			"targets": []map[string]any{{"refId": "A", "expr": p.Expr,
				"datasource": map[string]string{"type": "prometheus", "uid": "${datasource}"}}},
		})
	}
	b, err := json.Marshal(map[string]any{
		"uid": d.UID, "title": d.Title, "schemaVersion": 39, "editable": false,
		"tags": []string{"kcp-tmc"}, "time": map[string]string{"from": "now-6h", "to": "now"},
		"templating": map[string]any{"list": []map[string]any{{"name": "datasource", "type": "datasource", "query": "prometheus"}}},
		"panels":     panels,
	})
	if err != nil {
		return "", fmt.Errorf("dashboard %s: %w", d.UID, err)
	}
	return string(b), nil
}
