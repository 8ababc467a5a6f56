package ops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kcp-tmc/kcp-tmc/components/backup"
	"github.com/kcp-tmc/kcp-tmc/pkg/etcdlocal"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// DrillReport is what a DR drill measured.
type DrillReport struct {
	Snapshot
	Members int `json:"members"`
	// Age is the snapshot's age when the drill started: the data a real
	// restore would have lost (RPO).
	Age Duration `json:"age"`
	// RecoveryTime runs from "nothing local" to a restored cluster serving
	// the data: download, restore of every member, start, read-back (RTO).
	RecoveryTime Duration `json:"recoveryTime"`
	// KeysServed is how many live keys the restored cluster serves.
	KeysServed int64    `json:"keysServed"`
	Revision   int64    `json:"servedRevision"`
	RPO        Duration `json:"rpo"`
	RTO        Duration `json:"rto"`
	Problems   []string `json:"problems,omitempty"`
}

// OK says whether the drill met both objectives and the data came back.
func (r DrillReport) OK() bool { return len(r.Problems) == 0 }

// Drill is the DR drill against a stack's real backups, without touching the
// stack: the newest snapshot is downloaded and restored, as the runbook's
// procedure does, into a scratch cluster of `members` etcd processes on
// loopback (mTLS with a throwaway CA), which must then serve the snapshot's
// revision and data. Age and recovery time are compared with the objectives.
func Drill(ctx context.Context, src BackupSource, members int, obj Objectives, now func() time.Time) (DrillReport, error) {
	work, err := localproc.WorkDir("drill")
	if err != nil {
		return DrillReport{}, err
	}
	defer os.RemoveAll(work)
	start := now()
	snap, err := src.Fetch(ctx, "latest", work)
	if err != nil {
		return DrillReport{}, err
	}
	r := DrillReport{Snapshot: snap, Members: members, Age: Duration(start.Sub(snap.Taken)), RPO: Duration(obj.RPO), RTO: Duration(obj.RTO)}

	tlsFiles, clientCert, clientKey, err := etcdlocal.ScratchTLS(work)
	if err != nil {
		return r, err
	}
	ports, err := loopback.FreePorts(2 * members)
	if err != nil {
		return r, err
	}
	cluster := etcdlocal.New(filepath.Join(work, "data"), members, ports, tlsFiles)
	var planned []backup.RestoreMember
	for _, m := range cluster.Members {
		planned = append(planned, backup.RestoreMember{Name: m.Name, PeerURL: m.PeerURL, DataDir: m.DataDir})
	}
	plan := backup.NewRestorePlan(snap.File, planned, start)
	cluster.Token = plan.Token
	if err := plan.Run(ctx, toolchain.Path("etcdutl")); err != nil {
		return r, err
	}
	if err := cluster.Start(ctx, clientCert, clientKey); err != nil {
		return r, fmt.Errorf("starting the restored cluster: %w", err)
	}
	defer cluster.Stop()
	r.KeysServed, r.Revision, err = readBack(ctx, cluster.Endpoints(), tlsFiles.CA, clientCert, clientKey)
	if err != nil {
		return r, fmt.Errorf("reading the restored cluster: %w", err)
	}
	r.RecoveryTime = Duration(now().Sub(start))

	if r.Revision < snap.Revision {
		r.Problems = append(r.Problems, fmt.Sprintf("restored cluster serves revision %d, the snapshot holds %d", r.Revision, snap.Revision))
	}
	if r.KeysServed == 0 {
		r.Problems = append(r.Problems, "restored cluster serves no keys")
	}
	if time.Duration(r.Age) > obj.RPO {
		r.Problems = append(r.Problems, fmt.Sprintf("RPO missed: newest snapshot is %s old, objective %s", r.Age, r.RPO))
	}
	if time.Duration(r.RecoveryTime) > obj.RTO {
		r.Problems = append(r.Problems, fmt.Sprintf("RTO missed: recovery took %s, objective %s", r.RecoveryTime, r.RTO))
	}
	return r, nil
}

// readBack counts the live keys of a cluster through every member in turn:
// each must answer with the same count; the revision returned is the lowest
// any member serves.
func readBack(ctx context.Context, endpoints, ca, cert, key string) (int64, int64, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return 0, 0, err
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return 0, 0, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	var count, rev int64
	for i, ep := range strings.Split(endpoints, ",") {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints: []string{ep}, DialTimeout: 5 * time.Second,
			TLS: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12},
		})
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", ep, err)
		}
		getCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := cli.Get(getCtx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
		cancel()
		cli.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", ep, err)
		}
		if i > 0 && resp.Count != count {
			return 0, 0, fmt.Errorf("%s serves %d keys, another member %d", ep, resp.Count, count)
		}
		if i == 0 || resp.Header.Revision < rev {
			rev = resp.Header.Revision
		}
		count = resp.Count
	}
	return count, rev, nil
}
