package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestEmbeddedCRDIsTheRelease: the PublishedResource CRD the agents
// install is api-syncagent v0.7.0's file, byte for byte (crds/README.md
// records where it came from and its digest).
func TestEmbeddedCRDIsTheRelease(t *testing.T) {
	sum := sha256.Sum256(publishedResourceCRD)
	readme, err := os.ReadFile("crds/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sum[:]); !strings.Contains(string(readme), got) {
		t.Errorf("embedded CRD digest %s is not the one crds/README.md records", got)
	}
	if !strings.Contains(string(readme), "v0.7.0") || !strings.HasSuffix(DefaultSyncAgentImage, ":v0.7.0") {
		t.Errorf("the CRD's release and the default image %s differ", DefaultSyncAgentImage)
	}
}

// TestCRDWithoutDescriptions: the schema's description keywords go, a
// property named "description" stays, everything else is kept; the
// installed CRD is a third of the release's size.
func TestCRDWithoutDescriptions(t *testing.T) {
	in := map[string]any{
		"description": "drop me",
		"type":        "object",
		"properties": map[string]any{
			"description": map[string]any{"type": "string", "description": "the field named description"},
			"items":       map[string]any{"type": "array", "items": map[string]any{"type": "string", "description": "drop"}},
		},
		"required": []any{"description"},
	}
	want := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"description": map[string]any{"type": "string"},
			"items":       map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		},
		"required": []any{"description"},
	}
	if got := withoutDescriptions(in); !reflect.DeepEqual(got, want) {
		t.Errorf("withoutDescriptions = %v, want %v", got, want)
	}
	crd, err := publishedResourceCRDObject()
	if err != nil {
		t.Fatal(err)
	}
	applied, _ := json.Marshal(crd.spec)
	var release map[string]any
	if err := yaml.Unmarshal(publishedResourceCRD, &release); err != nil {
		t.Fatal(err)
	}
	full, _ := json.Marshal(release["spec"])
	if strings.Contains(string(applied), `"description":"`) || len(applied)*2 > len(full) {
		t.Errorf("applied spec %d bytes (release %d) or still holds descriptions", len(applied), len(full))
	}
	if crd.name != "publishedresources.syncagent.kcp.io" {
		t.Errorf("CRD name %q", crd.name)
	}
}
