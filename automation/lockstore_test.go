package automation

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/internal/test/s3backend"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// TestLockOfByPid: a killed holder recorded its engine as it started, but
// not the lock it took; the next one takes a lock for that engine's only
// when nothing else could have written it.
func TestLockOfByPid(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	engine := engineLock{Process: localproc.Process{Pid: dead.Process.Pid, Started: 1}, Since: since}
	live := engineLock{Process: localproc.Process{Pid: os.Getpid(), Started: 1}, Since: since} // the pid runs again
	for _, tc := range []struct {
		name   string
		engine engineLock
		lock   StackLock
		want   bool
	}{
		{"written by its pid since it started", engine, StackLock{Pid: engine.Pid, Username: currentUser(), Hostname: host, Timestamp: since.Add(time.Second)}, true},
		{"written before it started", engine, StackLock{Pid: engine.Pid, Username: currentUser(), Hostname: host, Timestamp: since.Add(-time.Second)}, false},
		{"written long after it started (another process with that pid)", engine, StackLock{Pid: engine.Pid, Username: currentUser(), Hostname: host, Timestamp: since.Add(engineLocksWithin + time.Second)}, false},
		{"on another host", engine, StackLock{Pid: engine.Pid, Username: currentUser(), Hostname: "runner-7", Timestamp: since.Add(time.Second)}, false},
		{"by another user", engine, StackLock{Pid: engine.Pid, Username: "someone-else", Hostname: host, Timestamp: since.Add(time.Second)}, false},
		{"its pid now another running process's", live, StackLock{Pid: live.Pid, Username: currentUser(), Hostname: host, Timestamp: since.Add(time.Second)}, false},
		{"another pid", engine, StackLock{Pid: engine.Pid + 1, Username: currentUser(), Hostname: host, Timestamp: since.Add(time.Second)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			if err := writeLock("file://"+state, tc.lock); err != nil {
				t.Fatal(err)
			}
			locks, err := OpenLocks("file://"+state, "", "dev")
			if err != nil {
				t.Fatal(err)
			}
			g := &stackGuard{Locks: locks}
			l, err := g.lockOf(tc.engine, host, currentUser(), true)
			if err != nil || (l != nil) != tc.want {
				t.Errorf("lockOf = %v, %v; want a lock: %v", l, err, tc.want)
			}
		})
	}
}

// TestEngineS3URL: the URL kcp-tmc opens the bucket with is the engine's
// (pulumi v3.274 backend/diy legacy_s3_params_test.go).
func TestEngineS3URL(t *testing.T) {
	t.Setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "")
	t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "")
	for _, tc := range []struct{ give, want string }{
		{"s3://bucket", "s3://bucket"},
		{"s3://bucket?region=us-east-1", "s3://bucket?region=us-east-1"},
		{"s3://bucket/team/state?region=eu-west-1", "s3://bucket/team/state?region=eu-west-1"},
		{"s3://bucket?endpoint=minio:9000&disableSSL=true&s3ForcePathStyle=true",
			"s3://bucket?disable_https=true&endpoint=http%3A%2F%2Fminio%3A9000&request_checksum_calculation=when_required&response_checksum_validation=when_required&s3ForcePathStyle=true"},
		{"s3://bucket?disableSSL=false", "s3://bucket?disable_https=false"},
		{"s3://bucket?endpoint=minio:9000", "s3://bucket?endpoint=https%3A%2F%2Fminio%3A9000&request_checksum_calculation=when_required&response_checksum_validation=when_required"},
		{"s3://bucket?endpoint=http://minio:9000&disableSSL=true", "s3://bucket?endpoint=http%3A%2F%2Fminio%3A9000&request_checksum_calculation=when_required&response_checksum_validation=when_required"},
		{"s3://bucket?disableSSL=true", "s3://bucket?disable_https=true"},
		{"s3://bucket?endpoint=https://s3.example.com&request_checksum_calculation=when_supported", "s3://bucket?endpoint=https%3A%2F%2Fs3.example.com&request_checksum_calculation=when_supported&response_checksum_validation=when_required"},
	} {
		if got, err := engineS3URL(tc.give); err != nil || got != tc.want {
			t.Errorf("engineS3URL(%q) = %q, %v; want %q", tc.give, got, err, tc.want)
		}
	}
	if _, err := engineS3URL("s3://bucket?disableSSL=banana"); err == nil {
		t.Error("disableSSL=banana accepted")
	}
}

// TestS3Layout: kcp-tmc reads a bucket's locks and checkpoint only where
// the engine keeps them: the project layout under the URL's path, the
// plain checkpoint when it is the newest.
func TestS3Layout(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	url := strings.Replace(s3backend.Start(t), "s3://state?", "s3://state/team?", 1)
	put := func(key, body string) {
		t.Helper()
		b, err := openS3Locks(strings.Replace(url, "/team?", "?", 1), "dev") // the bucket's root
		if err != nil || b == nil {
			t.Fatalf("opening the bucket's root: %v", err)
		}
		defer b.close()
		if err := b.bucket.WriteAll(context.Background(), key, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *Locks {
		t.Helper()
		l, err := OpenLocks(url, "", "dev")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := open(); l == nil {
		t.Fatal("a new bucket: no locks read")
	} else {
		l.Close()
	}
	put("team/.pulumi/locks/x", `{}`) // not state
	if l := open(); l == nil {
		t.Fatal("a bucket with no stack yet read as the legacy layout")
	} else {
		l.Close()
	}
	put("team/.pulumi/stacks/dev.json", `{}`) // a legacy state: no meta.yaml
	if l := open(); l != nil {
		l.Close()
		t.Fatal("a legacy layout read as the project layout")
	}
	put("team/.pulumi/meta.yaml", "version: 0\n")
	if l := open(); l != nil {
		l.Close()
		t.Fatal("meta.yaml version 0 read as the project layout")
	}
	put("team/.pulumi/meta.yaml", "version: 1\n")
	l := open()
	if l == nil {
		t.Fatal("meta.yaml version 1: no locks read")
	}
	defer l.Close()
	if _, err := l.Checkpoint(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no checkpoint yet: %v", err)
	}
	put("team/.pulumi/stacks/kcp-tmc/dev.json.gz", "compressed, older")
	time.Sleep(1100 * time.Millisecond) // a later modification time, to the second
	put("team/.pulumi/stacks/kcp-tmc/dev.json", `{"version":3}`)
	if raw, err := l.Checkpoint(); err != nil || string(raw) != `{"version":3}` {
		t.Errorf("Checkpoint with an older compressed one beside it = %q, %v", raw, err)
	}
	time.Sleep(1100 * time.Millisecond)
	put("team/.pulumi/stacks/kcp-tmc/dev.json.gz", "compressed")
	if _, err := l.Checkpoint(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("with a newer compressed checkpoint: %v, want it refused, not the older plain one read", err)
	}
}
