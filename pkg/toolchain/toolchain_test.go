package toolchain

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/kcp-tmc/kcp-tmc/components/awslb"
	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
)

const repo = "../.."

// versionsEnv reads hack/versions.env's KEY=value lines.
func versionsEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repo, "hack", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// required is the version a go.mod requires of module.
func required(t *testing.T, gomod, module string) string {
	t.Helper()
	data, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == module {
			return r.Mod.Version
		}
	}
	t.Fatalf("%s does not require %s", gomod, module)
	return ""
}

// TestVersionsMatchToolModules: the cache key in hack/versions.env is the
// version the tools module builds. A bump in one place only would either
// rebuild nothing (stale binary under a new name) or build a version the
// README does not name.
func TestVersionsMatchToolModules(t *testing.T) {
	env := versionsEnv(t)
	for _, tc := range []struct {
		key, gomod, module, prefix string
	}{
		{"PULUMI_VERSION", "hack/tools/pulumi/go.mod", "github.com/pulumi/pulumi/pkg/v3", "v"},
		{"PULUMI_VERSION", "go.mod", "github.com/pulumi/pulumi/sdk/v3", "v"},
		{"KUBERNETES_PLUGIN_VERSION", "go.mod", "github.com/pulumi/pulumi-kubernetes/sdk/v4", "v"},
		{"KUBE_VERSION", "hack/tools/kube/go.mod", "k8s.io/kubernetes", ""},
		{"ETCD_VERSION", "hack/tools/etcd/go.mod", "go.etcd.io/etcd/server/v3", ""},
		{"KUBE_SCORE_VERSION", "hack/tools/judges/go.mod", "github.com/zegl/kube-score", ""},
		{"ACTIONLINT_VERSION", "hack/tools/actionlint/go.mod", "github.com/rhysd/actionlint", ""},
		{"PROMETHEUS_VERSION", "hack/tools/prometheus/go.mod", "github.com/prometheus/prometheus", ""},
		{"ALERTMANAGER_VERSION", "hack/tools/alertmanager/go.mod", "github.com/prometheus/alertmanager", ""},
		{"COREDNS_VERSION", "hack/tools/coredns/go.mod", "github.com/coredns/coredns", ""},
		{"KUBE_NETWORK_POLICIES_VERSION", "hack/tools/kube-network-policies/go.mod", "sigs.k8s.io/kube-network-policies", ""},
		{"EXTERNAL_DNS_VERSION", "hack/tools/external-dns/go.mod", "sigs.k8s.io/external-dns", ""},
		{"AWS_LOAD_BALANCER_CONTROLLER_VERSION", "hack/tools/aws-load-balancer-controller/go.mod", "sigs.k8s.io/aws-load-balancer-controller/v3", ""},
		{"PROMETHEUS_OPERATOR_VERSION", "hack/tools/prometheus-operator/go.mod", "github.com/prometheus-operator/prometheus-operator", ""},
	} {
		t.Run(tc.key+" "+tc.module, func(t *testing.T) {
			want, ok := env[tc.key]
			if !ok {
				t.Fatalf("hack/versions.env has no %s", tc.key)
			}
			if got := required(t, filepath.Join(repo, tc.gomod), tc.module); got != tc.prefix+want {
				t.Errorf("%s requires %s %s, hack/versions.env %s=%s", tc.gomod, tc.module, got, tc.key, want)
			}
		})
	}
}

// TestDefaultsAreTheTestedVersions: what a stack deploys by default is the
// version the suite runs and judges (hack/versions.env): kubectl in the
// front-proxy's restart Job, etcd, cert-manager, the AWS Load Balancer
// Controller's chart.
func TestDefaultsAreTheTestedVersions(t *testing.T) {
	env := versionsEnv(t)
	for _, tc := range []struct{ key, what, got string }{
		{"KUBE_VERSION", "kcp.DefaultKubectlImage's tag", kcp.DefaultKubectlImage[strings.LastIndex(kcp.DefaultKubectlImage, ":")+1:]},
		{"ETCD_VERSION", "etcd.DefaultVersion", etcd.DefaultVersion},
		{"CERT_MANAGER_VERSION", "tls.DefaultCertManagerVersion", tls.DefaultCertManagerVersion},
		{"AWS_LOAD_BALANCER_CONTROLLER_VERSION", "awslb.ChartVersion", "v" + awslb.ChartVersion},
	} {
		if want := env[tc.key]; tc.got != want {
			t.Errorf("%s is %q, hack/versions.env %s=%q: the suite tests another version than the stack deploys", tc.what, tc.got, tc.key, want)
		}
	}
}

// workflowPulumiVersion is a workflow's `pulumi-version:` (pulumi/actions).
var workflowPulumiVersion = regexp.MustCompile(`(?m)^\s*pulumi-version:\s*["']?([^"'\s#]*)`)

// TestWorkflowsPinThePulumiCLI: every Pulumi CLI a workflow installs is
// the version the program's SDK is (hack/versions.env PULUMI_VERSION, which
// TestVersionsMatchToolModules ties to go.mod), not whatever is newest on
// the day; and every pulumi/actions step names one.
func TestWorkflowsPinThePulumiCLI(t *testing.T) {
	want := versionsEnv(t)["PULUMI_VERSION"]
	files, err := filepath.Glob(filepath.Join(repo, ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("workflows: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pins := workflowPulumiVersion.FindAllStringSubmatch(string(data), -1)
		if uses := strings.Count(string(data), "uses: pulumi/actions@"); len(pins) != uses {
			t.Errorf("%s: %d pulumi/actions steps, %d pulumi-version pins: each step pins the CLI", filepath.Base(f), uses, len(pins))
		}
		for _, m := range pins {
			if m[1] != want {
				t.Errorf("%s: pulumi-version %q, want %s (hack/versions.env PULUMI_VERSION, the SDK in go.mod)", filepath.Base(f), m[1], want)
			}
		}
	}
}

// aptPin is an apt package argument with an exact version (name=version).
var aptPin = regexp.MustCompile(`apt(-get)?\s+install\b[^\n]*\s["']?[a-z0-9][a-z0-9.+-]*=["']?[0-9$]`)

// TestNoExactDebianVersions: Debian replaces a build (2.42.0+ds-5+b6 became
// +deb12u1) whenever a point release lands, and an exact pin then fails on
// every new machine while warm ones keep passing.
func TestNoExactDebianVersions(t *testing.T) {
	var files []string
	for _, glob := range []string{"Makefile", ".ci/*", "hack/*.sh", "hack/*.env", "hack/*/*.sh", ".github/workflows/*.y*ml"} {
		m, err := filepath.Glob(filepath.Join(repo, glob))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 4 {
		t.Fatalf("found only %v: the globs no longer match the repo layout", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Join continued lines so a pin on the next line is seen too.
		text := strings.ReplaceAll(string(data), "\\\n", " ")
		if m := aptPin.FindString(text); m != "" {
			t.Errorf("%s pins an exact Debian package version: %q (install by name; pin tools by Go module version)", f, m)
		}
	}
	if aptPin.FindString(`apt-get install -y -qq "prometheus=$PROMETHEUS_DEB" x`) == "" {
		t.Error("the pin pattern no longer catches the pin that broke fresh machines")
	}
}

// TestStepReportsFailureWithLogTail: a failing make step names itself, keeps
// the command's exit code, and prints the tail of the log it wrote.
func TestStepReportsFailureWithLogTail(t *testing.T) {
	log := filepath.Join(t.TempDir(), "logs", "step.log")
	cmd := exec.Command(filepath.Join(repo, "hack", "step.sh"), "compiling x", log,
		"sh", "-c", "for i in $(seq 1 100); do echo noise $i; done; echo 'main.go:3: undefined: y'; exit 3")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("err = %v, want exit 3\n%s", err, out)
	}
	for _, want := range []string{"make: compiling x (output: " + log + ")", "make: compiling x: FAILED after", "last 40 lines of " + log, "main.go:3: undefined: y", "noise 99"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "noise 1\n") {
		t.Errorf("the whole log was printed, not its tail:\n%s", out)
	}
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), "noise 1\n") {
		t.Errorf("the log lacks the command's output:\n%s", data)
	}
}

// copyHack copies hack/ into a temp project whose tools modules named in
// broken cannot build (fast failures instead of real builds).
func copyHack(t *testing.T, broken ...string) string {
	t.Helper()
	root := t.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(repo, "hack"), root).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, tool := range broken {
		gomod := filepath.Join(root, "hack", "tools", tool, "go.mod")
		if err := os.WriteFile(gomod, []byte("module broken\n\ngo 1.26\n\nrequire example.com/"+tool+" v0.0.0-does-not-exist\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// cacheWithout is a cache holding every tool of the real one except those
// whose versioned directories start with one of skip.
func cacheWithout(t *testing.T, skip ...string) string {
	t.Helper()
	real := Dir()
	entries, err := os.ReadDir(real)
	if err != nil {
		t.Fatalf("no toolchain cache (run hack/toolchain.sh; make test does): %v", err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "bin" || name == "logs" || name == "crds" || slices.ContainsFunc(skip, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		if err := os.Symlink(filepath.Join(real, name), filepath.Join(cache, name)); err != nil {
			t.Fatal(err)
		}
	}
	return cache
}

// TestToolchainReportsProgressAndFailure runs hack/toolchain.sh on a copy of
// hack/ whose tools module for one tool is broken, with every other tool taken
// from the real cache: one start line naming the log, then a FAILED line with
// the log's tail and exit 1, and nothing else rebuilt. A run with the real
// cache prints nothing (everything cached) and ends with the bin directory.
func TestToolchainReportsProgressAndFailure(t *testing.T) {
	warm := exec.Command(filepath.Join(repo, "hack", "toolchain.sh"), "all")
	var stderr strings.Builder
	warm.Stderr = &stderr
	out, err := warm.Output()
	if err != nil || strings.TrimSpace(string(out)) != Bin() {
		t.Fatalf("warm run: %v, stdout %q, stderr:\n%s", err, out, stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "building") {
		t.Errorf("warm run rebuilt something:\n%s", s)
	}

	env := versionsEnv(t)
	for _, tc := range []struct {
		tool, version, module, group string
	}{
		{"actionlint", env["ACTIONLINT_VERSION"], "actionlint", "judges"},
		// The plugin's builder is the one with a scratch dir to clean up.
		{"pulumi-resource-kubernetes", env["KUBERNETES_PLUGIN_VERSION"], "kubernetes", "engine"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			root := copyHack(t, tc.module)
			cache := cacheWithout(t, tc.tool+"-"+tc.version)
			cmd := exec.Command(filepath.Join(root, "hack", "toolchain.sh"), tc.group)
			cmd.Env = append(os.Environ(), "KCP_TMC_CACHE="+cache)
			got, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("err = %v, want exit 1\n%s", err, got)
			}
			log := filepath.Join(cache, "logs", tc.tool+"-"+tc.version+".log")
			for _, want := range []string{
				"toolchain: [1/1] " + tc.tool + " " + tc.version + ": building (go output: " + log + ")",
				"toolchain: [1/1] " + tc.tool + " " + tc.version + ": FAILED after",
				"last 40 lines of " + log,
				"does-not-exist",
			} {
				if !strings.Contains(string(got), want) {
					t.Errorf("output lacks %q:\n%s", want, got)
				}
			}
			if lines := strings.Count(string(got), "toolchain: ["); lines != 2 {
				t.Errorf("%d progress lines, want the start and the failure of the one missing tool:\n%s", lines, got)
			}
			if strings.Contains(string(got), "unbound variable") {
				t.Errorf("the script itself failed:\n%s", got)
			}
		})
	}
}

// TestToolchainBuildsEveryTool drives hack/toolchain.sh from an empty cache
// through every builder with a stand-in go command (testdata/fakego): each
// tool gets its start and end lines in order with what is left, every binary
// and CRD directory the tests use is linked, and a second run builds nothing.
// The real builds run on every cold machine (.ci/run); this catches the
// script's own mistakes in a second.
func TestToolchainBuildsEveryTool(t *testing.T) {
	fake := t.TempDir()
	bin := filepath.Join(fake, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := filepath.Abs(filepath.Join("testdata", "fakego"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "go")); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(fake, "cache")
	run := func() string {
		cmd := exec.Command(filepath.Join(repo, "hack", "toolchain.sh"), "all")
		cmd.Env = append(os.Environ(), "KCP_TMC_CACHE="+cache, "FAKE="+fake, "KCP_TMC_BUILD_PULUMI=1",
			"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != filepath.Join(cache, "bin") {
			t.Fatalf("toolchain.sh: %v, stdout %q\n%s", err, out, stderr.String())
		}
		return stderr.String()
	}
	progress := run()
	tools := []string{"pulumi", "pulumi-resource-kubernetes", "kube", "etcd", "kube-score", "actionlint", "prometheus", "alertmanager", "aws-load-balancer-controller", "crds"}
	for i, tool := range tools {
		n := fmt.Sprintf("[%d/%d] %s ", i+1, len(tools), tool)
		left := "nothing"
		if i+1 < len(tools) {
			left = strings.Join(tools[i+1:], ", ")
		}
		if !strings.Contains(progress, "toolchain: "+n) || !regexp.MustCompile(regexp.QuoteMeta(n)+`\S+: built in \d+s \(toolchain \d+s so far; left: `+regexp.QuoteMeta(left)+`\)`).MatchString(progress) {
			t.Errorf("no start and end lines for %s (left: %s):\n%s", tool, left, progress)
		}
	}
	for _, name := range []string{"pulumi", "pulumi-resource-kubernetes", "kube-apiserver", "kube-controller-manager", "kubectl",
		"etcd", "etcdctl", "etcdutl", "kube-score", "actionlint", "prometheus", "promtool", "amtool", "alertmanager", "aws-load-balancer-controller"} {
		if out, err := exec.Command(filepath.Join(cache, "bin", name)).Output(); err != nil || !strings.HasPrefix(string(out), "fake ") {
			t.Errorf("bin/%s: %v %q", name, err, out)
		}
	}
	for _, crd := range []string{"cert-manager", "prometheus-operator", "gateway-api", "aws-load-balancer-controller"} {
		if st, err := os.Stat(filepath.Join(cache, "crds", crd)); err != nil || !st.IsDir() {
			t.Errorf("crds/%s: %v", crd, err)
		}
	}
	if again := run(); again != "" {
		t.Errorf("a warm run printed (rebuilt?):\n%s", again)
	}
}

// TestToolchainReusesInstalledPulumi: an installed pulumi at the pinned
// version or newer (3.x) is linked instead of built; an older one, another
// major version, or KCP_TMC_BUILD_PULUMI=1 means a build (here of a broken
// tools module, so the attempt shows as a fast FAILED).
func TestToolchainReusesInstalledPulumi(t *testing.T) {
	pinned := versionsEnv(t)["PULUMI_VERSION"]
	tests := []struct {
		name, installed string
		force, reuse    bool
	}{
		{"same version", "v" + pinned, false, true},
		{"newer", "v3.999.0", false, true},
		{"older", "v3.100.0", false, false},
		{"next major", "v4.0.0", false, false},
		{"forced build", "v3.999.0", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyHack(t, "pulumi")
			cache := cacheWithout(t, "pulumi-"+pinned)
			fakeBin := t.TempDir()
			fake := filepath.Join(fakeBin, "pulumi")
			if err := os.WriteFile(fake, []byte("#!/bin/sh\necho "+tt.installed+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(root, "hack", "toolchain.sh"), "engine")
			// Only the fake is installed: another pulumi on the developer's PATH
			// (the toolchain cache's, say) would be reused instead.
			cmd.Env = append(os.Environ(), "KCP_TMC_CACHE="+cache, "PATH="+fakeBin+string(os.PathListSeparator)+pathWithout("pulumi"),
				"PULUMI_HOME="+t.TempDir())
			if tt.force {
				cmd.Env = append(cmd.Env, "KCP_TMC_BUILD_PULUMI=1")
			}
			out, err := cmd.CombinedOutput()
			link, _ := filepath.EvalSymlinks(filepath.Join(cache, "bin", "pulumi"))
			if tt.reuse {
				if err != nil || link != fake || !strings.Contains(string(out), "pulumi: using the installed "+fake) {
					t.Fatalf("err %v, bin/pulumi → %q; want the installed %s linked\n%s", err, link, fake, out)
				}
				return
			}
			if err == nil || !strings.Contains(string(out), "pulumi "+pinned+": FAILED") || link == fake {
				t.Fatalf("err %v, bin/pulumi → %q; want a build attempt, not %s\n%s", err, link, tt.installed, out)
			}
		})
	}
}

// pathWithout is $PATH without the directories that hold an executable name.
func pathWithout(name string) string {
	var keep []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if info, err := os.Stat(filepath.Join(dir, name)); err == nil && info.Mode()&0o111 != 0 {
			continue
		}
		keep = append(keep, dir)
	}
	return strings.Join(keep, string(os.PathListSeparator))
}
