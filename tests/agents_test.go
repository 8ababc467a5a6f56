package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kcpGroups are API groups kcp serves: their objects go to kcp, not to a
// cluster, and run against the real kcp in tests/e2e. (The agents'
// PublishedResources are applied here: the stack installs their CRD.)
var kcpGroups = []string{"apis.kcp.io/", "tenancy.kcp.io/"}

// TestTwoClusterStack renders a prod stack with two clusters and holds every object the real apiserver can know to the same
// judges as the stacks: server-side apply with zero warnings, Pods admitted,
// kube-score and the security policy.
func TestTwoClusterStack(t *testing.T) {
	clusters := `[
 {"name":"eu-west","agent":"api-syncagent","namespace":"kcp-agent-eu","region":"eu-west-1","zone":"eu-west-1a",
  "resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"},{"group":"","version":"v1","kind":"Service","plural":"services"}]},
 {"name":"us-east","namespace":"kcp-agent-us","region":"us-east-1","zone":"us-east-1b",
  "resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`
	dir := stackManifestsWith(t, "prod", "kcp-agents", map[string]string{
		"kcp-tmc:tls":                `{"mode":"self-managed","installCertManager":false}`,
		"kcp-tmc:clusters":           clusters,
		"kcp-tmc:clusterKubeconfigs": `{"eu-west":"apiVersion: v1","us-east":"apiVersion: v1"}`,
		"kcp-tmc:kcpKubeconfig": "apiVersion: v1\nkind: Config\n" +
			"clusters: [{name: kcp, cluster: {server: \"https://kcp.example.com/clusters/root\"}}]\n" +
			"users: [{name: admin, user: {token: t}}]\ncontexts: [{name: kcp, context: {cluster: kcp, user: admin}}]\ncurrent-context: kcp\n",
	}, "kcp-tmc:clusterKubeconfigs", "kcp-tmc:kcpKubeconfig")
	files, skipped := judgeStack(t, dir)
	if skipped < 3 { // the two APIExports and their workspace root:compute
		t.Errorf("only %d kcp-side objects rendered", skipped)
	}
	agentsFound := 0
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "deployment-api-syncagent") {
			agentsFound++
		}
	}
	if agentsFound != 2 {
		t.Errorf("%d agent Deployments rendered, want 2", agentsFound)
	}
}

// judgeStack holds every object of a rendered stack that a Kubernetes
// cluster serves (kcp's own kinds go to kcp: they are counted and skipped)
// to the judges: server-side apply with zero warnings, Pods admitted,
// kube-score and the security policy. It returns the judged files.
func judgeStack(t *testing.T, dir string) (files []string, kcpSide int) {
	t.Helper()
	judged := t.TempDir()
	for _, f := range yamlFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kcpObject := false
		for _, g := range kcpGroups {
			kcpObject = kcpObject || strings.Contains(string(b), "apiVersion: "+g)
		}
		if kcpObject {
			kcpSide++
			continue
		}
		files = append(files, f)
		if err := os.WriteFile(filepath.Join(judged, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if stderr := applyInOrder(t, files); strings.Contains(stderr, "Warning") {
		t.Errorf("the apiserver warned:\n%s", stderr)
	}
	for _, w := range workloads(t, files) {
		assertPodsAdmitted(t, w)
	}
	if findings := kubeScore(t, files...); len(findings) > 0 {
		t.Errorf("kube-score findings:\n%s", strings.Join(findings, "\n"))
	}
	objs := readObjects(t, judged)
	for _, r := range policyRules {
		for _, o := range objs {
			for _, violation := range r.check(o, objs) {
				if why := exception(o, objs); !(r.exceptable && why != "") {
					t.Errorf("%s: %s: %s", o.id(), r.name, violation)
				}
			}
		}
	}
	return files, kcpSide
}
