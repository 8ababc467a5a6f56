package backup

import (
	"reflect"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/shard"
)

func shardedArgs() Args {
	a := s3Args()
	a.Shards = []shard.Shard{{Name: "shard-1", EtcdMembers: 1}}
	return a
}

// TestShardBackups: a shard's etcd is backed up and verified by its own
// jobs, from its own members, into its own key prefix (beside the root's, so
// neither's "latest" is the other's), and its pods may reach only it.
func TestShardBackups(t *testing.T) {
	rec := run(t, shardedArgs())
	for _, name := range []string{"etcd-shard-1-backup", "etcd-shard-1-backup-verify"} {
		cj := mocktest.Decode[batchv1.CronJob](t, rec.Object(t, "kubernetes:batch/v1:CronJob", name))
		pod := cj.Spec.JobTemplate.Spec.Template
		if pod.Labels["app.kubernetes.io/name"] != "etcd-shard-1-backup" {
			t.Errorf("%s pods are labelled %v", name, pod.Labels)
		}
		env := map[string]string{}
		for _, e := range pod.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if env["CLUSTER_NAME"] != "prod-etcd-shard-1" || env["ETCD_ENDPOINTS"] != "https://etcd-shard-1-0.etcd-shard-1-headless.kcp.svc:2379" {
			t.Errorf("%s: CLUSTER_NAME %q, ETCD_ENDPOINTS %q", name, env["CLUSTER_NAME"], env["ETCD_ENDPOINTS"])
		}
		if name == "etcd-shard-1-backup" {
			if snap := strings.Join(pod.Spec.InitContainers[0].Command, " "); !strings.Contains(snap, "--endpoints=https://etcd-shard-1.kcp.svc:2379") {
				t.Errorf("snapshot step reads %s", snap)
			}
		}
	}
	np := mocktest.Decode[networkingv1.NetworkPolicy](t, rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-etcd-shard-1-backup"))
	if got := np.Spec.Egress[0].To[0].PodSelector.MatchLabels["app.kubernetes.io/name"]; got != "etcd-shard-1" || np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "etcd-shard-1-backup" {
		t.Errorf("shard backup policy: pods %v reach %v", np.Spec.PodSelector.MatchLabels, got)
	}
	// Adding the shard leaves every object of the root's backups as it was.
	before := map[string]map[string]any{}
	for _, r := range run(t, s3Args()).All() {
		before[r.Type+" "+r.Name] = r.Input()
	}
	for _, r := range rec.All() {
		if old, ok := before[r.Type+" "+r.Name]; ok && !reflect.DeepEqual(old, r.Input()) {
			t.Errorf("%s %s changes once a shard is added", r.Type, r.Name)
		}
	}
}

func TestValidateShards(t *testing.T) {
	fieldtest.Table(t, shardedArgs, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("backup")) }, []fieldtest.Case[Args]{
		{"the root's name", func(a *Args) { a.Shards[0].Name = shard.Root }, "backup.shards[0].name", "root is implicit"},
		{"twice", func(a *Args) { a.Shards = append(a.Shards, a.Shards[0]) }, "backup.shards[1].name", "Duplicate value"},
		{"too long", func(a *Args) { a.Shards[0].Name = strings.Repeat("e", 34) }, "backup.shards[0].name", "may not be more than 33"},
		{"no members", func(a *Args) { a.Shards[0].EtcdMembers = 0 }, "backup.shards[0].etcdMembers", "at least 1"},
	})
}
