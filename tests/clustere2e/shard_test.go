package clustere2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/agents"
	"github.com/kcp-tmc/kcp-tmc/components/ingress"
	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

// TestShardedStackOnANode: the production topology of docs/sharding.md —
// a second shard with its own etcd, the separate cache server on its own
// etcd, each shard's public address behind its own load balancer — with an
// agent whose workspace is on the second shard, deployed by one up onto the
// node: cert-manager issues every shard's certificates, the NetworkPolicies
// are enforced, and the up returns once the agent is Ready. Then a
// workspace on each shard binds the agent's export (the root shard's
// through what the cache server replicates), a Widget created in each
// reaches the node through that shard's virtual workspace (the front door
// for the root shard, the shard's own address for shard-1) and its status
// comes back; each Widget is stored in its own shard's etcd only; the
// cluster's Prometheus scrapes both shards, the cache server and the three
// etcds; the next up changes nothing.
func TestShardedStackOnANode(t *testing.T) {
	require(t)
	const host = "kcp.dev.kcp.example.com"
	s1 := shard.Shard{Name: "shard-1"}
	p := newAgentPlatform(t, map[string]any{"shard": s1.Name}, map[string]any{
		"kcp-tmc:kcp": map[string]any{"shards": []any{map[string]any{"name": s1.Name}}, "cache": map[string]any{"mode": "separate"}},
	})

	p.must("up") // awaits the agent: Ready means it reached shard-1's workspace
	p.published(ingress.FrontDoorLoadBalancer, host)
	p.published(ingress.ShardLoadBalancer(s1), s1.PublicHost(host))
	p.must("up", "--expect-no-changes")
	// smoke with its defaults: every shard and the cache server ready and
	// registered, a Widget through the agent's export.
	t.Log(p.must("smoke"))

	admin := p.kcpAdminAt(host)
	const export = "local-export"
	waitCmd(t, "the agent publishes Widget into "+export, 2*time.Minute,
		admin.poll("root:compute", "", "get", "apiexports.v1alpha1.apis.kcp.io", export, "-o", "jsonpath={.spec.latestResourceSchemas}"))
	for _, on := range []string{shard.Root, s1.Name} {
		ws := "consumer-" + on
		admin.createWorkspace(ws, on)
		admin.bind("root:"+ws, "root:compute", export)
	}
	// The agent is sent to each shard that holds a binding: the front door
	// serves the root shard's virtual workspaces, shard-1 its own.
	waitCmd(t, "the endpoint slice names both shards' virtual workspaces", 2*time.Minute, func() (bool, string) {
		out, err := admin.try("root:compute", "", "get", "apiexportendpointslices", export, "-o", "jsonpath={.status.endpoints[*].url}")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, "https://"+host) && strings.Contains(out, "https://"+s1.PublicHost(host)), out
	})
	for _, on := range []string{shard.Root, s1.Name} {
		ws, name := "root:consumer-"+on, "w-"+on
		ns, nodeName := admin.widgetToNode(ws, name)
		admin.statusBack(ws, name, ns, nodeName, "Provisioned")
	}
	// The agent's rewatch CronJob, run as its schedule does, reaches kcp
	// with the agent's token through its own NetworkPolicy and marks the
	// endpoint slice with its pod's name (docs/agents.md "Shards the agent
	// could not reach").
	rewatch := agents.RewatchName(agents.Args{Kind: agents.KindSyncAgent})
	rewatchedBy := func() string {
		by, _ := admin.try("root:compute", "", "get", "apiexportendpointslices", export, "-o",
			`jsonpath={.metadata.annotations.kcp-tmc\.io/rewatched-by}`)
		return by
	}
	before := rewatchedBy()
	t.Log(strings.TrimSpace(runCronJob(t, agents.DefaultNamespace, rewatch)))
	// A scheduled run may have come between: any run's pod will do.
	if by := rewatchedBy(); by == before || !strings.HasPrefix(by, rewatch+"-") {
		t.Errorf("endpoint slice %s: %s = %q (before the run %q), want the name of a rewatch Job's pod", export, agents.RewatchAnnotation, by, before)
	}
	// Each Widget is in its own shard's etcd and only there (kcp keys a
	// bound resource's objects by its identity as well: match the ends).
	for _, s := range []shard.Shard{{Name: shard.Root}, s1} {
		keys, err := ectl(p.ns, s.EtcdCluster()+"-0", "get", "--prefix", "--keys-only", "/registry/")
		if err != nil {
			t.Fatal(err)
		}
		var widgets []string
		for _, k := range strings.Fields(keys) {
			if strings.Contains(k, "widgets") {
				widgets = append(widgets, k)
			}
		}
		for _, on := range []string{shard.Root, s1.Name} {
			stored := slices.ContainsFunc(widgets, func(k string) bool { return strings.HasSuffix(k, "/default/w-"+on) })
			if stored != (on == s.Name) {
				t.Errorf("Widget w-%s stored in %s's etcd: %v, want %v; its widget keys: %v", on, s.Name, stored, on == s.Name, widgets)
			}
		}
	}

	// Prometheus in the cluster scrapes both shards, the cache server and
	// all three etcds (through the NetworkPolicies).
	promTargetsUp(t, []string{monitoring.JobKCP, monitoring.JobCache, monitoring.JobEtcd, monitoring.JobSyncAgent})
	ip := prometheusIP(t)
	prefixed := func(prefix string) func(string) bool {
		return func(pod string) bool { return strings.HasPrefix(pod, prefix) }
	}
	for _, want := range []struct {
		job, what string
		is        func(pod string) bool
	}{
		{monitoring.JobKCP, "the root shard's kcp", func(pod string) bool {
			return strings.HasPrefix(pod, "kcp-") && !strings.HasPrefix(pod, s1.Deployment()+"-")
		}},
		{monitoring.JobKCP, s1.Name + "'s kcp", prefixed(s1.Deployment() + "-")},
		{monitoring.JobEtcd, "the root shard's etcd", prefixed("etcd-0")},
		{monitoring.JobEtcd, s1.Name + "'s etcd", prefixed(s1.EtcdCluster() + "-0")},
		{monitoring.JobEtcd, "the cache server's etcd", prefixed(shard.EtcdCluster(shard.Cache) + "-0")},
	} {
		pods, err := promTargetPods(ip, want.job)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(pods, want.is) {
			t.Errorf("Prometheus scrapes %s as job %s in none of %v", want.what, want.job, pods)
		}
	}
	p.must("up", "--expect-no-changes")

	restoreShardByTheRunbook(t, p, admin, host, s1, "consumer-"+s1.Name)
	p.destroy()
}

// restoreShardByTheRunbook: the etcd of shard s, which holds the workspace
// ws, restored from its own backup CronJob's snapshot by the runbook's
// commands with s's names, while a client writes to the root workspace
// through the front door: that shard's kcp alone stops (no root write
// fails); a namespace of ws created before the backup is back, one
// created after it is not; the agent syncs a new Widget of ws with no
// command run; the next up changes nothing.
func restoreShardByTheRunbook(t *testing.T, p *platform, admin *kcpAdmin, host string, s shard.Shard, ws string) {
	t.Helper()
	path := "root:" + ws
	admin.must(path, "", "create", "namespace", "before-the-backup")
	key := backupsRun(t, p.ns, s)
	admin.must(path, "", "create", "namespace", "after-the-backup")
	w := startKCPWriter(t, p.kcpAdminKubeconfig("https://"+host+":443/clusters/root"), "shard-restore", 1, 100*time.Millisecond)
	runbook, _ := runbookAdmin(t, p, host)
	rto := restoreByTheRunbook(t, p, host, runbook, key, restoreTarget{shard: s, members: 1, ws: path})
	acked, failed := w.stop()
	t.Logf("%s's etcd restored by the runbook from %s: RTO %s; root workspace meanwhile: %d writes acknowledged, %d failed %v",
		s.Name, key, rto.Round(time.Second), len(acked), len(failed), failed)
	if len(failed) > 0 {
		t.Errorf("the root shard failed %d writes while %s's etcd was restored: %v", len(failed), s.Name, failed)
	}
	w.allStored(t, acked)
	for name, want := range map[string]bool{"before-the-backup": true, "after-the-backup": false} {
		_, err := admin.try(path, "", "get", "namespace", name)
		if got := err == nil; got != want || (err != nil && !strings.Contains(err.Error(), "NotFound")) {
			t.Errorf("after the restore, namespace %s in %s: exists %v, want %v (%v)", name, path, got, want, err)
		}
	}
	admin.widgetToNode(path, "w-after-restore")
	p.must("up", "--expect-no-changes")
}

// promTargetPods lists the pods of job's targets that are up.
func promTargetPods(ip, job string) ([]string, error) {
	targets, err := promTargets(ip)
	if err != nil {
		return nil, err
	}
	var pods []string
	for _, tg := range targets {
		if tg.Labels["job"] == job && tg.Health == "up" {
			pods = append(pods, tg.Labels["pod"])
		}
	}
	return pods, nil
}
