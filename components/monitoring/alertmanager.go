package monitoring

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// AlertmanagerConfig renders alertmanager.yaml: alerts grouped by
// alertname, cluster and service, to Slack; critical ones also to PagerDuty
// when a routing key is given. The webhook URL and the key are secrets: the
// caller passes them in from Pulumi secrets and stores the result in a Secret.
func AlertmanagerConfig(slackWebhookURL, slackChannel, pagerDutyKey string) (string, error) {
	route := map[string]any{
		"receiver":        "slack",
		"group_by":        []string{"alertname", "cluster", "service"},
		"group_wait":      "10s",
		"group_interval":  "10s",
		"repeat_interval": "1h",
	}
	receivers := []map[string]any{{
		"name": "slack",
		"slack_configs": []map[string]any{{
			"api_url":       slackWebhookURL,
			"channel":       slackChannel,
			"send_resolved": true,
			"title":         `[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})`,
			"text": `{{ range .Alerts }}*{{ .Annotations.summary }}*
{{ .Annotations.description }}
Runbook: {{ .Annotations.runbook_url }}
{{ end }}`,
		}},
	}}
	if pagerDutyKey != "" {
		route["routes"] = []map[string]any{{
			"receiver": "pagerduty", "matchers": []string{`severity="critical"`}, "continue": true,
		}}
		receivers = append(receivers, map[string]any{
			"name":              "pagerduty",
			"pagerduty_configs": []map[string]any{{"routing_key": pagerDutyKey, "send_resolved": true}},
		})
		// Critical alerts go to PagerDuty and, through continue, on to Slack too.
		route["routes"] = append(route["routes"].([]map[string]any), map[string]any{"receiver": "slack", "matchers": []string{`severity="critical"`}})
	}
	b, err := yaml.Marshal(map[string]any{"route": route, "receivers": receivers})
	if err != nil {
		return "", fmt.Errorf("alertmanager config: %w", err)
	}
	return string(b), nil
}
