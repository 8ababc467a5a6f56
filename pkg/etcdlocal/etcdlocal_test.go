package etcdlocal

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
)

// TestStartFailsFastWhenAMemberDies: a member that cannot start (its peer
// port is taken by another cluster) fails Start at once, naming it, instead
// of after the 30 s health wait.
func TestStartFailsFastWhenAMemberDies(t *testing.T) {
	dir := t.TempDir()
	files, cert, key, err := ScratchTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ports := loopback.MustFreePorts(t, 3)
	New(filepath.Join(dir, "a"), 1, ports[:2], files).MustStart(t, cert, key)

	start := time.Now()
	clash := New(filepath.Join(dir, "b"), 1, []int{ports[2], ports[1]}, files) // own client port, a's peer port
	err = clash.Start(context.Background(), cert, key)
	if err == nil || !strings.Contains(err.Error(), "etcd member etcd-0 exited while starting") {
		t.Fatalf("second cluster on the same ports: err = %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("failing took %s: it waited for the health timeout", took)
	}
}
