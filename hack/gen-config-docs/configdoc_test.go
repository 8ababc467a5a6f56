package main

import (
	"os"
	"strings"
	"testing"
)

// TestConfigurationDocIsCurrent fails when docs/configuration.md differs from
// what the generator makes of Config, its doc comments, the profiles and the
// stack files.
func TestConfigurationDocIsCurrent(t *testing.T) {
	want, err := ConfigReference("../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../" + ConfigDocPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == want {
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(want, "\n")
	for i := range max(len(gotLines), len(wantLines)) {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Fatalf("%s is stale: run `go run ./hack/gen-config-docs`.\nfirst difference, line %d:\n  file:      %s\n  generated: %s", ConfigDocPath, i+1, g, w)
		}
	}
}

// TestConfigKeysAreDocumented fails for a field without a doc comment in
// stacks/config.go, so a new key cannot reach the reference undescribed.
func TestConfigKeysAreDocumented(t *testing.T) {
	keys, err := configKeys("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 100 {
		t.Fatalf("only %d keys: the walk of Config lost some", len(keys))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		t.Run(k.Key, func(t *testing.T) {
			if seen[k.Key] {
				t.Errorf("key documented twice")
			}
			seen[k.Key] = true
			if strings.TrimSpace(k.Description) == "" {
				t.Errorf("no description: add a doc comment to its field in stacks/config.go")
			}
			if k.Type == "" {
				t.Errorf("no type")
			}
		})
	}
	for _, want := range []string{"environment", "kcp.resources.requests.cpu", "backup.schedule", "clusters[].name",
		"clusters[].resources[].plural", "cloud.nodesPerZone.min", "cloud.existingVpc.privateSubnets", "tls.acme.email",
		"existingCAs.<name>.cert", "slackWebhookUrl", "elasticsearchPassword"} {
		if !seen[want] {
			t.Errorf("key %s is missing from the reference", want)
		}
	}
}

func TestConfigDocText(t *testing.T) {
	known := map[string]bool{"tls.mode": true, "tls.leafDuration": true, "slackWebhookUrl": true}
	tests := []struct {
		name, in, parent, want string
	}{
		{"dotted key becomes code", "needs tls.mode `self-managed`.", "", "needs `tls.mode` `self-managed`."},
		{"camelCase sibling becomes code", "at least leafDuration", "tls.", "at least `leafDuration`"},
		{"top-level key becomes code", "the secret slackWebhookUrl", "monitoring.", "the secret `slackWebhookUrl`"},
		{"unknown words stay", "the example.com zone and mode", "tls.", "the example.com zone and mode"},
		{"html and pipes escaped outside code", "a <n>Gi size | `<n>|x`", "", "a &lt;n&gt;Gi size \\| `<n>\\|x`"},
		{"doc links", "see docs/backup.md.", "", "see [backup.md](backup.md)."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := markdownText(tt.in, tt.parent, known); got != tt.want {
				t.Errorf("markdownText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	for _, tt := range []struct{ field, doc, want string }{
		{"Replicas", "Replicas is the number of kcp servers.", "The number of kcp servers."},
		{"Requests", "Requests are what the scheduler\nreserves.", "What the scheduler reserves."},
		{"Context", "Context selects a context.", "Selects a context."},
		{"ACME", "ACME is optional: when set.", "Optional: when set."},
		{"TransitionDays", "Lifecycle in days.", "Lifecycle in days."},
	} {
		if got := stripFieldName(tt.field, tt.doc); got != tt.want {
			t.Errorf("stripFieldName(%s, %q) = %q, want %q", tt.field, tt.doc, got, tt.want)
		}
	}
}
