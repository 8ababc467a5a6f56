package tests

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/components/awslb"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestAWSLoadBalancerControllerChartInstalls installs the pinned AWS Load
// Balancer Controller chart — upstream's own files, served as a Helm
// repository — with exactly the values components/awslb gives it, through
// the Kubernetes provider's Helm release on the local apiserver, which
// admits every object. It checks what the controller relies on: the
// ServiceAccount its IAM role trusts, carrying that role; the cluster,
// region, VPC and tags as flags the controller's source declares; two
// replicas under a disruption budget; no webhook that would make every
// Service or Ingress change depend on it. The controller itself cannot run here (it
// calls the EC2 and ELB APIs); without a kubelet nothing waits for its pods.
func TestAWSLoadBalancerControllerChartInstalls(t *testing.T) {
	module, err := awslb.Upstream(toolchain.Dir())
	if err != nil {
		t.Fatal(err)
	}
	repo := chartRepoOf(t, awslb.Chart, map[string]map[string]string{awslb.ChartVersion: chartFiles(t, filepath.Join(module, "helm", awslb.Chart))})
	kubeconfig, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::123456789012:role/lbc"
	a := awslb.Args{ClusterName: "kcp-tmc-prod", Region: "us-east-1", VPCID: pulumi.String("vpc-0abc"),
		Tags: map[string]string{"environment": "prod", "cost-center": "cc-42", "kcp-tmc.io/cluster": "kcp-tmc-prod"}}
	_, opts := testenv.Project(t, "dev", nil)
	opts.Program = func(ctx *pulumi.Context) error {
		p, err := kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{Kubeconfig: pulumi.ToSecret(pulumi.String(string(kubeconfig))).(pulumi.StringOutput)})
		if err != nil {
			return err
		}
		_, err = helmrelease.New(ctx, "lbc", helmrelease.Args{
			Name: pulumi.String(awslb.Chart), Chart: pulumi.String(awslb.Chart), Version: pulumi.String(awslb.ChartVersion), Repo: repo,
			Namespace: pulumi.String(awslb.Namespace), Values: awslb.Values(a, pulumi.String(role)),
		}, pulumi.Provider(p), pulumi.Transforms([]pulumi.ResourceTransform{noWait}))
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := automation.Stack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Its cluster-wide objects (CRDs, webhooks) must not outlive the test.
	t.Cleanup(func() {
		if _, err := s.Destroy(context.Background(), optdestroy.ProgressStreams(io.Discard)); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	if err := automation.Up(ctx, s, io.Discard, optup.SuppressProgress()); err != nil {
		t.Fatal(err)
	}

	get := func(args ...string) map[string]any {
		out, _, err := kube.Kubectl(ctx, nil, append([]string{"get", "-o", "json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	sa := get("-n", awslb.Namespace, "serviceaccount", awslb.ServiceAccount)
	if got := mocktest.Dig(sa, "metadata", "annotations", "eks.amazonaws.com/role-arn"); got != role {
		t.Errorf("ServiceAccount %s/%s's role = %v, want %s", awslb.Namespace, awslb.ServiceAccount, got, role)
	}
	dep := get("-n", awslb.Namespace, "deployment", awslb.Chart)
	if got := mocktest.Dig(dep, "spec", "replicas"); got != float64(2) {
		t.Errorf("replicas = %v", got)
	}
	if got := mocktest.Dig(dep, "spec", "template", "spec", "serviceAccountName"); got != awslb.ServiceAccount {
		t.Errorf("the controller runs as %v, its role trusts %s", got, awslb.ServiceAccount)
	}
	args := mocktest.Strings(mocktest.Dig(dep, "spec", "template", "spec", "containers", 0, "args"))
	for _, want := range []string{"--cluster-name=kcp-tmc-prod", "--aws-region=us-east-1", "--aws-vpc-id=vpc-0abc",
		"--default-tags=cost-center=cc-42,environment=prod,kcp-tmc.io/cluster=kcp-tmc-prod"} {
		if !slices.Contains(args, want) {
			t.Errorf("controller args %q lack %s", args, want)
		}
	}
	declared := declaredFlags(t, module)
	for _, arg := range args {
		if name := strings.TrimPrefix(strings.SplitN(arg, "=", 2)[0], "--"); !declared[name] {
			t.Errorf("flag --%s is not declared in the controller %s's source", name, awslb.ChartVersion)
		}
	}
	pdb := get("-n", awslb.Namespace, "poddisruptionbudget", awslb.Chart)
	if got := mocktest.Dig(pdb, "spec", "maxUnavailable"); got != float64(1) {
		t.Errorf("disruption budget maxUnavailable = %v", got)
	}
	// Webhooks that would make every Service or Ingress change of the
	// cluster depend on the controller running.
	for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		for _, hooks := range mocktest.List(get(kind)["items"]) {
			for _, w := range mocktest.List(mocktest.Dig(hooks, "webhooks")) {
				if name := mocktest.Dig(w, "name"); name == "mservice.elbv2.k8s.aws" || name == "vingress.elbv2.k8s.aws" {
					t.Errorf("webhook %v is installed (failurePolicy %v)", name, mocktest.Dig(w, "failurePolicy"))
				}
			}
		}
	}
}

// noWait: no kubelet runs the controller's pods here.
func noWait(_ context.Context, args *pulumi.ResourceTransformArgs) *pulumi.ResourceTransformResult {
	if args.Type != helmrelease.Type {
		return nil
	}
	props := pulumi.Map{}
	for k, v := range args.Props {
		props[k] = v
	}
	props["skipAwait"] = pulumi.Bool(true)
	return &pulumi.ResourceTransformResult{Props: props, Opts: args.Opts}
}

// chartFiles are a chart directory's files by their path in it, without
// those its .helmignore leaves out of the package Helm makes (the chart's
// crds/kustomization.yaml, which Helm would apply as a CRD).
func chartFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ignore, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	// Helm's rules: a pattern with a slash matches the path, one without the
	// name; a trailing slash matches a directory.
	ignored := func(rel string, isDir bool) bool {
		for _, p := range strings.Split(string(ignore), "\n") {
			p = strings.TrimSpace(p)
			if p == "" || strings.HasPrefix(p, "#") {
				continue
			}
			if strings.HasSuffix(p, "/") {
				if !isDir {
					continue
				}
				p = strings.TrimSuffix(p, "/")
			}
			target := filepath.Base(rel)
			if strings.Contains(p, "/") {
				target = rel
			}
			if ok, _ := filepath.Match(p, target); ok {
				return true
			}
		}
		return false
	}
	files := map[string]string{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case ignored(rel, d.IsDir()) && d.IsDir():
			return filepath.SkipDir
		case ignored(rel, d.IsDir()) || d.IsDir():
			return nil
		}
		raw, err := os.ReadFile(path)
		files[rel] = string(raw)
		return err
	})
	if err != nil || files["Chart.yaml"] == "" {
		t.Fatalf("chart %s: %v", dir, err)
	}
	return files
}

var flagConst = regexp.MustCompile(`\bflag\w*\s*=\s*"([a-z0-9-]+)"`)

// declaredFlags are the flag names the controller's packages declare (its
// flag constants, `flagK8sClusterName = "cluster-name"`).
func declaredFlags(t *testing.T, module string) map[string]bool {
	t.Helper()
	flags := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(module, "pkg"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range flagConst.FindAllStringSubmatch(string(raw), -1) {
			flags[m[1]] = true
		}
		return nil
	})
	if err != nil || !flags["cluster-name"] {
		t.Fatalf("no flag constants found under %s/pkg: %v", module, err)
	}
	return flags
}
