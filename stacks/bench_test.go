package stacks

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// BenchmarkStacks evaluates each checked-in stack file's program under mocks
// (with the secrets a user adds): the program's own cost per `preview`/`up`,
// without the engine. Figures: README "Performance".
func BenchmarkStacks(b *testing.B) {
	TuneGC()
	for _, stack := range Environments {
		b.Run(stack, func(b *testing.B) {
			cfg, secrets := stackFileConfig(b, stack)
			mocktest.SetConfig(b, cfg, secrets...)
			dir := b.TempDir()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := pulumi.RunErr(ProgramIn(dir), pulumi.WithMocks("kcp-tmc", stack, mocktest.Discard{})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stackFileConfig is a checked-in stack file's config with the secrets a
// user adds to it, and those secrets' keys.
func stackFileConfig(t testing.TB, stack string) (map[string]string, []string) {
	cfg := mocktest.StackFileConfig(t, filepath.Join("..", "Pulumi."+stack+".yaml"))
	secrets := []string{"kcp-tmc:kubeconfig", "kcp-tmc:slackWebhookUrl", "kcp-tmc:elasticsearchPassword"}
	if stack != "dev" {
		cfg["kcp-tmc:kubeconfig"] = "apiVersion: v1\nkind: Config\n"
		cfg["kcp-tmc:slackWebhookUrl"] = "https://hooks.slack.com/services/T000/B000/bench"
		cfg["kcp-tmc:elasticsearchPassword"] = "bench"
	}
	return cfg, secrets
}

// perClusterCost is what the program allocates for each physical cluster
// under mocks: the difference between a prod stack with few and with more
// clusters, divided by the clusters added (the fixed part cancels out).
func perClusterCost(t testing.TB, few, more int) (bytes, allocs uint64) {
	t.Helper()
	measure := func(n int) (uint64, uint64) {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("c%04d", i)
		}
		mocktest.SetConfig(t, clusterConfig(names...), clusterSecrets...)
		dir := t.TempDir()
		return allocated(t, func() error {
			return pulumi.RunErr(ProgramIn(dir), pulumi.WithMocks("kcp-tmc", "prod", mocktest.Discard{}))
		})
	}
	return perAdded(few, more, measure)
}

// resourcesPerCluster counts what one cluster adds: its provider, its
// components and their resources (every name that carries the cluster's).
func resourcesPerCluster(t testing.TB) int {
	t.Helper()
	mocktest.SetConfig(t, clusterConfig("c0000", "c0001"), clusterSecrets...)
	rec, err := mocktest.Run(t, "prod", ProgramIn(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rec.All() {
		if strings.Contains(r.Name, "c0001") {
			n++
		}
	}
	return n
}

// sdkFloorPerCluster is what the Pulumi Go SDK alone allocates for a
// cluster of the same shape under the same mocks. Our own cost is what the
// program adds on top.
func sdkFloorPerCluster(t testing.TB, few, more, resources int) (bytes, allocs uint64) {
	t.Helper()
	measure := func(n int) (uint64, uint64) {
		return allocated(t, func() error {
			return pulumi.RunErr(floorProgram(n, resources), pulumi.WithMocks("kcp-tmc", "prod", mocktest.Discard{}))
		})
	}
	return perAdded(few, more, measure)
}

// floorProgram registers n clusters the way the prod stack does, each with
// the least the SDK can be asked to do: a Kubernetes provider, a component,
// and resources-2 minimal objects (a name, a namespace, two labels) under
// it. What the SDK costs for that is a floor no program with that many
// resources per cluster goes below.
func floorProgram(n, resources int) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		for c := range n {
			name := fmt.Sprintf("c%04d", c)
			p, err := kubernetes.NewProvider(ctx, "cluster-"+name, &kubernetes.ProviderArgs{Kubeconfig: pulumi.String("apiVersion: v1")})
			if err != nil {
				return err
			}
			comp := &struct{ pulumi.ResourceState }{}
			if err := ctx.RegisterComponentResource("kcp-tmc:floor:Cluster", name, comp, pulumi.Provider(p)); err != nil {
				return err
			}
			for i := range resources - 2 {
				if _, err := corev1.NewConfigMap(ctx, fmt.Sprintf("%s-%d", name, i), &corev1.ConfigMapArgs{Metadata: &metav1.ObjectMetaArgs{
					Name: pulumi.String(fmt.Sprintf("object-%d", i)), Namespace: pulumi.String("kcp-agent"),
					Labels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String("api-syncagent"), "kcp-tmc.io/cluster": pulumi.String(name)},
				}}, pulumi.Parent(comp)); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// BenchmarkSDKFloor is BenchmarkProdStack's floor: as many clusters, each
// with as many resources as the prod stack gives one, all minimal. Beside
// BenchmarkProdStack it says how much of a cluster's cost is the program's
// own (README "Scale").
func BenchmarkSDKFloor(b *testing.B) {
	TuneGC()
	resources := resourcesPerCluster(b)
	for _, n := range benchClusters {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := pulumi.RunErr(floorProgram(n, resources), pulumi.WithMocks("kcp-tmc", "prod", mocktest.Discard{})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// perAdded is what each of the more-few added clusters costs: the
// difference of two measured stack sizes (the fixed part cancels out).
func perAdded(few, more int, measure func(int) (uint64, uint64)) (bytes, allocs uint64) {
	b1, a1 := measure(few)
	b2, a2 := measure(more)
	added := uint64(more - few)
	return (b2 - min(b1, b2)) / added, (a2 - min(a1, a2)) / added
}

// allocated runs fn twice (the first warms one-time parsing and caches) and
// returns the bytes and allocations of the second run.
func allocated(t testing.TB, fn func() error) (bytes, allocs uint64) {
	t.Helper()
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
}

// TestPerClusterCost guards the program's cost per physical cluster:
// bytes and allocations per added cluster, under a bound with headroom over
// today's figures (4.9 MiB, 81.4k allocations; README "Scale" says where
// they go). Deterministic enough to guard (the same objects every run),
// unlike time. Lower the bound as the cost comes down; issue 29 aims at 1 MiB.
func TestPerClusterCost(t *testing.T) {
	bytes, allocs := perClusterCost(t, 10, 40)
	n := resourcesPerCluster(t)
	floorBytes, floorAllocs := sdkFloorPerCluster(t, 10, 40, n)
	t.Logf("per cluster: %d KiB in %d allocations; the Pulumi SDK's floor for %d minimal resources: %d KiB in %d allocations",
		bytes/1024, allocs, n, floorBytes/1024, floorAllocs)
	const maxBytes, maxAllocs = 6 << 20, 100_000
	if bytes > maxBytes || allocs > maxAllocs {
		t.Errorf("per cluster: %d bytes in %d allocations; the bound is %d bytes and %d allocations (README \"Scale\")", bytes, allocs, maxBytes, maxAllocs)
	}
}
