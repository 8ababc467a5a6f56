package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/components/tls"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// TestShardedStackRuns: a dev stack with kcp.shards [shard-1] runs as real
// processes from what it renders: two etcd clusters, the root shard (with
// kcp's embedded cache server), shard-1 registering with it, one
// front-proxy. Through the front-proxy an admin creates a workspace on
// each shard and uses it; each workspace's objects are in its own shard's
// etcd and only there; each shard is scraped as its ServiceMonitor says.
func TestShardedStackRuns(t *testing.T) { shardedStackRuns(t, `{"shards":[{"name":"shard-1"}]}`) }

// TestShardedStackWithSeparateCacheRuns: the same with kcp.cache.mode
// separate: cache-server runs on its own etcd, every shard (the root too)
// replicates through it, and what they replicate is in its etcd.
func TestShardedStackWithSeparateCacheRuns(t *testing.T) {
	binary(t, "CACHE_SERVER_BIN")
	cp := shardedStackRuns(t, `{"shards":[{"name":"shard-1"}],"cache":{"mode":"separate"}}`)
	t.Run("the cache server is scraped as its ServiceMonitor says", func(t *testing.T) {
		if body := cp.scrape(t, monitoring.JobCache, kcp.CacheName, kcp.APIPort); !strings.Contains(string(body), "apiserver_request_total") {
			t.Errorf("kcp-cache metrics lack apiserver_request_total:\n%.500s", body)
		}
	})
	t.Run("the shards replicate into the cache server's own etcd", func(t *testing.T) {
		if keys := cp.etcdKeys(t, shard.EtcdCluster(shard.Cache)); !strings.Contains(keys, "workspacetypes") {
			t.Errorf("etcd-cache holds no replicated WorkspaceType:\n%s", keys)
		}
	})
	// Told to stop while both shards watch it, the cache server exits
	// before its pod's grace after the drain would kill it (it waits its
	// fixed 60 s request timeout for their watches: kcp.CacheStopSeconds).
	took := cp.stop(t, kcp.CacheName, syscall.SIGTERM)
	t.Logf("%s exited %s after SIGTERM, watched by both shards", kcp.CacheName, took.Round(100*time.Millisecond))
	if took >= kcp.CacheStopSeconds*time.Second {
		t.Errorf("%s took %s to exit after SIGTERM: its pod would be killed at %d s", kcp.CacheName, took.Round(100*time.Millisecond), kcp.CacheStopSeconds)
	}
}

func shardedStackRuns(t *testing.T, kcpConfig string) *controlPlane {
	binary(t, "KCP_BIN")
	binary(t, "KCP_FRONT_PROXY_BIN")
	const shardName = "shard-1"
	objs, rec := render(t, "dev", map[string]string{"tls": `{"mode":"self-managed"}`, "kcp": kcpConfig})
	cp := startControlPlane(t, objs)
	if cp.shards != 2 {
		t.Fatalf("%d kcp server sets started, want the root shard and %s", cp.shards, shardName)
	}
	admin := cp.admin

	t.Run("both shards are registered with the root shard", func(t *testing.T) {
		admin.eventually(t, "/clusters/root/apis/core.kcp.io/v1alpha1/shards", time.Minute, func(l map[string]any) bool {
			var names []string
			for _, s := range mocktest.List(l["items"]) {
				names = append(names, fmt.Sprint(mocktest.Dig(s, "metadata", "name")))
			}
			return slices.Contains(names, shard.Root) && slices.Contains(names, shardName)
		})
	})

	placed := map[string]string{} // shard → the ConfigMap written into a workspace on it
	for _, s := range []string{shard.Root, shardName} {
		t.Run("a workspace scheduled onto "+s+" through the front-proxy is Ready and usable", func(t *testing.T) {
			ws := "on-" + s
			cp.createWorkspace(t, workspaceOn(ws, s))
			name := "placed-on-" + s
			admin.must(t, http.MethodPost, "/clusters/root:"+ws+"/api/v1/namespaces/default/configmaps", map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"shard": s}})
			if got := admin.must(t, http.MethodGet, "/clusters/root:"+ws+"/api/v1/namespaces/default/configmaps/"+name, nil); mocktest.Dig(got, "data", "shard") != s {
				t.Fatalf("read back %v", got)
			}
			placed[s] = name
		})
	}

	t.Run("each workspace's objects are in its shard's etcd and only there", func(t *testing.T) {
		if len(placed) != 2 {
			t.Fatal("a workspace above failed, so there is nothing to look for in the etcds")
		}
		for s, cluster := range map[string]string{shard.Root: etcd.Name, shardName: shard.EtcdCluster(shardName)} {
			keys := cp.etcdKeys(t, cluster)
			for other, name := range placed {
				if got, want := strings.Contains(keys, "/"+name+"\n"), other == s; got != want {
					t.Errorf("etcd %s holds %s: %v, want %v", cluster, name, got, want)
				}
			}
		}
	})

	t.Run("each shard is scraped as its ServiceMonitor says and serves what the kcp rules read", func(t *testing.T) {
		cp.applyKCPSide(t, rec, map[string]string{"kcp-root": "root"}) // the metrics reader binding
		for _, s := range []string{shard.Root, shardName} {
			monitor := shard.Shard{Name: s}.Deployment()
			if n := rulesFindSeries(t, cp.scrape(t, monitor, monitor, kcp.APIPort), "kcp"); n == 0 {
				t.Errorf("%s: no rule reads a kcp series", monitor)
			}
		}
	})
	return cp
}

// etcdKeys lists an etcd cluster's keys with etcdctl, as kcp's etcd client
// identity (etcd-client-kcp) over the cluster's client port.
func (cp *controlPlane) etcdKeys(t testing.TB, cluster string) string {
	t.Helper()
	etcdctl, err := toolchain.Find("etcdctl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{}
	for k, v := range cp.objs.data(t, "Secret", tls.CertEtcdClientKCP) {
		files[k] = filepath.Join(dir, k)
		if err := os.WriteFile(files[k], []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(etcdctl, "--endpoints", fmt.Sprintf("https://127.0.0.1:%d", cp.m.local(t, cluster, etcd.ClientPort)),
		"--cacert", files["ca.crt"], "--cert", files["tls.crt"], "--key", files["tls.key"],
		"get", "/", "--prefix", "--keys-only").CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl get on %s: %v\n%s", cluster, err, out)
	}
	if len(out) == 0 {
		t.Fatalf("etcd %s has no keys", cluster)
	}
	return string(out)
}
