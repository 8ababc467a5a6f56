package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
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
