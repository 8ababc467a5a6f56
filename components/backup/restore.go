package backup

import (
	"context"

	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kcp-tmc/kcp-tmc/components/etcd"
)

// RestoreMember is one etcd member to rebuild from a snapshot.
type RestoreMember struct {
	Name    string // --name, e.g. etcd-0
	PeerURL string // --initial-advertise-peer-urls
	DataDir string // where the member's new data goes (must not hold data)
}

// RestorePlan rebuilds every member of a cluster from one snapshot, as a
// new cluster (fresh token), the way etcd's disaster-recovery guide says.
type RestorePlan struct {
	Snapshot string
	Members  []RestoreMember
	// Token is a fresh --initial-cluster-token, so restored members can never
	// join the old cluster's leftovers.
	Token string
}

// NewRestorePlan plans a restore with a token derived from the time.
func NewRestorePlan(snapshot string, members []RestoreMember, now time.Time) RestorePlan {
	return RestorePlan{Snapshot: snapshot, Members: members, Token: "kcp-tmc-restore-" + now.UTC().Format("20060102T150405Z")}
}

// InClusterMembers are the members of an etcd cluster of the etcd component.
func InClusterMembers(c etcd.Cluster, replicas int) []RestoreMember {
	var out []RestoreMember
	for _, name := range c.MemberNames(replicas) {
		out = append(out, RestoreMember{Name: name, PeerURL: c.MemberURL(name, etcd.PeerPort), DataDir: "/var/lib/etcd/data"})
	}
	return out
}

// InitialCluster is the --initial-cluster every member is restored with.
func (p RestorePlan) InitialCluster() string {
	var parts []string
	for _, m := range p.Members {
		parts = append(parts, m.Name+"="+m.PeerURL)
	}
	return strings.Join(parts, ",")
}

// Commands are the etcdutl invocations, one per member (argv without the binary).
func (p RestorePlan) Commands() [][]string {
	var out [][]string
	for _, m := range p.Members {
		out = append(out, []string{
			"snapshot", "restore", p.Snapshot,
			"--name=" + m.Name,
			"--initial-cluster=" + p.InitialCluster(),
			"--initial-cluster-token=" + p.Token,
			"--initial-advertise-peer-urls=" + m.PeerURL,
			"--data-dir=" + m.DataDir,
		})
	}
	return out
}

// Validate refuses plans that would lose or mix data.
func (p RestorePlan) Validate() error {
	var errs []error
	if _, err := os.Stat(p.Snapshot); err != nil {
		errs = append(errs, fmt.Errorf("snapshot %s: %w", p.Snapshot, err))
	}
	if len(p.Members) == 0 || len(p.Members)%2 == 0 {
		errs = append(errs, fmt.Errorf("restore needs an odd number of members, got %d", len(p.Members)))
	}
	for _, m := range p.Members {
		if m.Name == "" || !strings.HasPrefix(m.PeerURL, "https://") || m.DataDir == "" {
			errs = append(errs, fmt.Errorf("member %+v: want a name, an https:// peer URL and a data dir", m))
		}
		if entries, err := os.ReadDir(m.DataDir); err == nil && len(entries) > 0 {
			errs = append(errs, fmt.Errorf("member %s: data dir %s is not empty: move the old data aside first", m.Name, m.DataDir))
		}
	}
	return errors.Join(errs...)
}

// Run validates the plan and runs etcdutl for every member.
func (p RestorePlan) Run(ctx context.Context, etcdutl string) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("restore plan: %w", err)
	}
	for i, args := range p.Commands() {
		out, err := exec.CommandContext(ctx, etcdutl, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("restoring member %s: %w\n%s", p.Members[i].Name, err, out)
		}
	}
	return nil
}
