package shard

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
)

// TestNames: what each kind of shard gives its name to — the names the
// running stack and the runbook use (the root shard's are those it had
// before there were shards).
func TestNames(t *testing.T) {
	tests := []struct {
		shard                                                      string
		deployment, service, cert, etcd, backup, verify, host, urn string
	}{
		{Root, "kcp", "kcp-internal", "kcp-server", "etcd", "etcd-backup", "etcd-backup-verify", "root.kcp.example.com", "server"},
		{"shard-1", "kcp-shard-1", "kcp-shard-1", "kcp-shard-1-server", "etcd-shard-1", "etcd-shard-1-backup", "etcd-shard-1-backup-verify",
			"shard-1.kcp.example.com", "shard-shard-1"},
		{Cache, "kcp-cache", "kcp-cache", "kcp-cache-server", "etcd-cache", "etcd-cache-backup", "etcd-cache-backup-verify", "cache.kcp.example.com", "cache"},
	}
	for _, tt := range tests {
		t.Run(tt.shard, func(t *testing.T) {
			s := Shard{Name: tt.shard}
			got := []string{s.Deployment(), s.Service(), s.ServerCert(), s.EtcdCluster(), s.BackupJob(), s.VerifyJob(), s.PublicHost("kcp.example.com"), s.URN()}
			want := []string{tt.deployment, tt.service, tt.cert, tt.etcd, tt.backup, tt.verify, tt.host, tt.urn}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("name %d = %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}

// TestMaxNameFitsEveryName: a name of MaxName characters gives every object
// a valid name (DNS labels; a CronJob's at most 52), one more does not.
func TestMaxNameFitsEveryName(t *testing.T) {
	longest := Shard{Name: strings.Repeat("s", MaxName)}
	for _, name := range []string{longest.Deployment(), longest.Service(), longest.ServerCert(), longest.EtcdCluster(),
		longest.EtcdCluster() + "-headless", longest.BackupJob(), longest.VerifyJob()} {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	if n := len(longest.VerifyJob()); n != maxCronJobName {
		t.Errorf("the longest shard's verify CronJob has %d characters, want exactly the limit %d", n, maxCronJobName)
	}
}

func TestValidateNames(t *testing.T) {
	valid := func() []string { return []string{"shard-1", "eu"} }
	validate := func(names []string) field.ErrorList { return ValidateNames(field.NewPath("kcp", "shards"), names) }
	fieldtest.Table(t, valid, validate, []fieldtest.Case[[]string]{
		{"root is implicit", func(n *[]string) { (*n)[0] = Root }, "kcp.shards[0].name", "root is implicit"},
		{"the cache", func(n *[]string) { (*n)[0] = Cache }, "kcp.shards[0].name", "collide with kcp-tmc's own objects"},
		{"the front-proxy", func(n *[]string) { (*n)[1] = "front-proxy" }, "kcp.shards[1].name", "collide"},
		{"another shard's etcd Service", func(n *[]string) { (*n)[1] = "eu-headless" }, "kcp.shards[1].name", "not ending in -headless, -backup or -lb"},
		{"twice", func(n *[]string) { (*n)[1] = (*n)[0] }, "kcp.shards[1].name", "Duplicate value"},
		{"not a label", func(n *[]string) { (*n)[0] = "Shard_1" }, "kcp.shards[0].name", "a DNS label"},
		{"too long", func(n *[]string) { (*n)[0] = strings.Repeat("s", MaxName+1) }, "kcp.shards[0].name", "may not be more than 33"},
	})
}
