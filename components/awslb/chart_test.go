package awslb_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kcp-tmc/kcp-tmc/components/awslb"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestPolicyAndChartAreThePinnedRelease: the policy kcp-tmc gives the
// controller is the one its pinned release documents, and the chart of that
// release has the version kcp-tmc installs.
func TestPolicyAndChartAreThePinnedRelease(t *testing.T) {
	dir, err := toolchain.Source(awslb.Chart)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "docs", "install", "iam_policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	p, err := awslb.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(p), &got); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(want, got) {
		t.Errorf("components/awslb/iam_policy.json is not docs/install/iam_policy.json of the controller %s: copy it from %s", awslb.ChartVersion, dir)
	}
	chart, err := os.ReadFile(filepath.Join(dir, "helm", awslb.Chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(chart, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != awslb.ChartVersion || meta.AppVersion != "v"+awslb.ChartVersion {
		t.Errorf("the pinned module's chart is %s (app %s), kcp-tmc installs %s", meta.Version, meta.AppVersion, awslb.ChartVersion)
	}
}

// TestCRDsAreTheChartsCRDs: components/awslb/crds is the pinned chart's
// crds/ directory, every file Helm installs from it, unchanged.
func TestCRDsAreTheChartsCRDs(t *testing.T) {
	dir, err := toolchain.Source(awslb.Chart)
	if err != nil {
		t.Fatal(err)
	}
	chartDir := filepath.Join(dir, "helm", awslb.Chart)
	all, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if err != nil || len(all) == 0 {
		t.Fatalf("no CRD files in %s/crds: %v", chartDir, err)
	}
	// The chart's .helmignore leaves crds/kustomization.yaml (for
	// `kubectl apply -k`) out of the package: Helm never sees it.
	ignore, err := os.ReadFile(filepath.Join(chartDir, ".helmignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := strings.Fields(string(ignore))
	var want []string
	for _, f := range all {
		if !slices.Contains(ignored, "crds/"+filepath.Base(f)) {
			want = append(want, f)
		}
	}
	got, err := filepath.Glob("crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("components/awslb/crds has %q, the chart %q", got, want)
	}
	for _, f := range want {
		up, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := os.ReadFile(filepath.Join("crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(ours, up) {
			t.Errorf("components/awslb/crds/%s is not the chart %s's (%v): copy %s", filepath.Base(f), awslb.ChartVersion, err, f)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
