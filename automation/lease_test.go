package automation

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/internal/test/s3backend"
	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// asAnotherMachine makes this process a kcp-tmc on another machine than
// the holders it starts: its own holds directory and identity.
func asAnotherMachine(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	prev := thisIdentity
	thisIdentity = func() (string, error) { return "another-machine/boot", nil }
	t.Cleanup(func() { thisIdentity = prev })
}

// leasesOf reads the leases of stack dev in backend.
func leasesOf(t *testing.T, backend string) []leaseObject {
	t.Helper()
	b, err := openS3Locks(backend, "dev")
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	leases, err := b.readLeases()
	if err != nil {
		t.Fatal(err)
	}
	return leases
}

// TestLeaseLetsAnotherMachineTakeOver: a lock in a bucket whose holder's
// lease ended or lapsed is removed by a kcp-tmc on any machine; one whose
// lease is renewed is not, and its holder is named.
func TestLeaseLetsAnotherMachineTakeOver(t *testing.T) {
	const enginePid = 4242
	tests := []struct {
		name        string
		lapse       time.Duration
		ended       bool
		renewed     bool // by its keeper, while this one waits
		waiting     bool // the lease of a kcp-tmc waiting to take the stack
		leasesLeft  int  // after this one released the stack
		here        bool // the holder is this process, as a holder on this machine that released the stack and goes on
		recorded    bool // the lease names the lock; else the engine's pid, host and user find it
		lockPid     int
		wantErr     string
		wantPrinted string
		wantLock    bool
	}{
		{name: "renewed", lapse: time.Hour, renewed: true, recorded: true, lockPid: enginePid, wantLock: true,
			wantErr: "on runner-7, `up` since"},
		{name: "lapsed", lapse: 3 * time.Second, recorded: true, lockPid: enginePid,
			wantPrinted: "its lease was last renewed "},
		{name: "ended", lapse: time.Hour, ended: true, recorded: true, lockPid: enginePid,
			wantPrinted: "its lease says its holder and engines ended"},
		{name: "ended before it saw its engine's lock", lapse: time.Hour, ended: true, lockPid: enginePid,
			wantPrinted: "its lease says its holder and engines ended"},
		{name: "ended, the lock another process's", lapse: time.Hour, ended: true, lockPid: enginePid + 1, wantLock: true},
		{name: "ended, by a process on this machine that goes on", here: true, lapse: time.Hour, ended: true, recorded: true,
			lockPid: enginePid, wantPrinted: "its lease says its holder and engines ended"},
		{name: "a taker that waits, or was killed waiting: not waited for", waiting: true, lapse: time.Hour,
			recorded: true, lockPid: enginePid, wantLock: true, leasesLeft: 1},
		{name: "a live holder on this machine", here: true, lapse: time.Hour, recorded: true, lockPid: enginePid,
			wantLock: true, wantErr: "`up` since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := s3backend.Start(t)
			asAnotherMachine(t)
			b, err := openS3Locks(backend, "dev")
			if err != nil {
				t.Fatal(err)
			}
			defer b.close()
			since := time.Now().Add(-time.Second)
			raw := []byte(`{"pid":` + strconv.Itoa(tt.lockPid) + `,"username":"ci","hostname":"runner-7","timestamp":"` +
				since.Add(100*time.Millisecond).Format(time.RFC3339Nano) + `"}`)
			if err := b.bucket.WriteAll(context.Background(), b.prefix+"engine.json", raw, nil); err != nil {
				t.Fatal(err)
			}
			e := engineLock{Process: localproc.Process{Pid: enginePid, Started: 7}, Since: since}
			if tt.recorded {
				e.Lock = b.prefix + "engine.json"
			}
			held := lease{guardRecord: guardRecord{Process: localproc.Process{Pid: 1, Started: 1}, Host: "runner-7",
				Identity: "runner-7/boot", Command: "up", Since: since, Engines: []engineLock{e}},
				User: "ci", Every: 20 * time.Second, Lapse: tt.lapse, Ended: tt.ended, Waiting: tt.waiting}
			if tt.here {
				held.Identity, _ = thisIdentity()
				held.Process, _ = localproc.Find(os.Getpid())
			}
			if _, err := b.writeLease("runner-7-1-1.json", held); err != nil {
				t.Fatal(err)
			}
			if tt.renewed {
				done := make(chan struct{})
				defer close(done)
				go func() {
					for {
						select {
						case <-done:
							return
						case <-time.After(1100 * time.Millisecond): // the bucket's clock has seconds
						}
						_, _ = b.writeLease("runner-7-1-1.json", held)
					}
				}()
			}

			var out bytes.Buffer
			g, err := holdStack(backend, "", "dev", "up", &out)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrStackInUse) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "runner-7") {
					t.Fatalf("err = %v, want ErrStackInUse naming the holder on runner-7", err)
				}
				if n := len(leasesOf(t, backend)); n != 1 {
					t.Errorf("%d leases after a refused hold, want the holder's alone", n)
				}
			} else {
				if err != nil {
					t.Fatalf("holding the stack: %v", err)
				}
				if !strings.Contains(out.String(), tt.wantPrinted) {
					t.Errorf("printed %q, want %q", out.String(), tt.wantPrinted)
				}
				leases := leasesOf(t, backend)
				if len(leases) != 1+tt.leasesLeft || !slices.ContainsFunc(leases, func(l leaseObject) bool { return l.key == g.leaseKey }) {
					t.Errorf("leases while held: %+v; want this holder's, and %d other", leases, tt.leasesLeft)
				}
				g.release()
				if n := len(leasesOf(t, backend)); n != tt.leasesLeft {
					t.Errorf("%d leases left after the release, want %d", n, tt.leasesLeft)
				}
			}
			locks, err := b.list()
			if err != nil || (len(locks) == 1) != tt.wantLock {
				t.Errorf("the stack's locks after: %v, %v; want the engine's there: %v", locks, err, tt.wantLock)
			}
		})
	}
}

// TestLeaseOutlivesAKilledHolder, with real processes: a kcp-tmc killed
// alone leaves its engine running, and its keeper renews the lease until
// that engine ends; a machine lost with all three lets it lapse. Another
// machine takes the stack over then, and only then.
func TestLeaseOutlivesAKilledHolder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lost        bool // the keeper is killed too, as with its machine
		wantPrinted string
	}{
		{name: "holder killed, then its engine", wantPrinted: "its lease says its holder and engines ended"},
		{name: "machine lost", lost: true, wantPrinted: "its lease was last renewed "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := s3backend.Start(t)
			t.Setenv("XDG_STATE_HOME", t.TempDir())
			t.Setenv(leaseLapseEnv, "3s") // renewed every 500 ms
			holder, engine := startHolder(t, backend, false, false)
			comm := filepath.Base(os.Args[0])
			if len(comm) > 15 {
				comm = comm[:15]
			}
			keepers := localproc.Children(holder.Process.Pid, comm)
			if len(keepers) != 1 {
				t.Fatalf("the holder's keepers: %v, want one", keepers)
			}
			t.Cleanup(func() { _ = syscall.Kill(keepers[0].Pid, syscall.SIGKILL) })
			// The lease names the engine's lock within 100 ms (the keeper reads the record that often).
			deadline := time.Now().Add(5 * time.Second)
			for named := false; !named; {
				if time.Now().After(deadline) {
					t.Fatalf("the lease does not name the engine's lock: %+v", leasesOf(t, backend))
				}
				for _, l := range leasesOf(t, backend) {
					for _, e := range l.Engines {
						named = named || (e.Pid == engine && e.Lock != "")
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			asAnotherMachine(t)
			refused := func(when string) {
				t.Helper()
				if _, err := holdStack(backend, "", "dev", "up", nil); !errors.Is(err, ErrStackInUse) ||
					!strings.Contains(err.Error(), "its lease ") {
					t.Fatalf("%s: err = %v, want ErrStackInUse naming the lease", when, err)
				}
			}
			refused("while it runs")
			// A keeper killed under a live holder is started again.
			_ = syscall.Kill(keepers[0].Pid, syscall.SIGKILL)
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if again := localproc.Children(holder.Process.Pid, comm); len(again) == 1 && again[0] != keepers[0] {
					keepers = again
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no keeper started again after the first one was killed")
				}
			}
			time.Sleep(4 * time.Second) // longer than the lapse
			refused("after its first keeper was killed")
			_ = holder.Process.Kill()
			_ = holder.Wait()
			if tc.lost {
				_ = syscall.Kill(keepers[0].Pid, syscall.SIGKILL)
				_ = syscall.Kill(engine, syscall.SIGKILL)
			} else {
				time.Sleep(6 * time.Second) // twice the lapse: still renewed, for the engine
				refused("with its engine still running")
				_ = syscall.Kill(engine, syscall.SIGKILL)
				for localproc.Running(keepers[0].Pid) || localproc.Running(engine) {
					time.Sleep(50 * time.Millisecond) // the keeper ends the lease within 100 ms
				}
			}
			var out bytes.Buffer
			start := time.Now()
			g, err := holdStack(backend, "", "dev", "up", &out)
			if err != nil {
				t.Fatalf("taking over: %v", err)
			}
			g.release()
			if waited := time.Since(start); tc.lost && waited < 2*time.Second {
				t.Errorf("took over after %s, before the lease of 3s lapsed", waited)
			}
			if !strings.Contains(out.String(), tc.wantPrinted) {
				t.Errorf("printed %q, want %q", out.String(), tc.wantPrinted)
			}
			b, err := openS3Locks(backend, "dev")
			if err != nil {
				t.Fatal(err)
			}
			defer b.close()
			locks, err := b.list()
			if err != nil || len(locks) != 0 {
				t.Errorf("the stack's locks after: %v, %v; want none", locks, err)
			}
		})
	}
}

func TestLeaseTimes(t *testing.T) {
	for _, tc := range []struct {
		env          string
		every, lapse time.Duration
		wantErr      string
	}{
		{env: "", every: 20 * time.Second, lapse: 2 * time.Minute},
		{env: "90s", every: 15 * time.Second, lapse: 90 * time.Second},
		{env: "1s", wantErr: `KCP_TMC_LEASE_LAPSE: invalid value "1s": want a duration of at least 3s (default 2m0s)`},
		{env: "soon", wantErr: `KCP_TMC_LEASE_LAPSE: invalid value "soon"`},
	} {
		t.Setenv(leaseLapseEnv, tc.env)
		every, lapse, err := leaseTimes()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s=%q: err = %v, want %q", leaseLapseEnv, tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || every != tc.every || lapse != tc.lapse {
			t.Errorf("%s=%q: %s, %s, %v; want %s, %s", leaseLapseEnv, tc.env, every, lapse, err, tc.every, tc.lapse)
		}
	}
}

// TestLeaseKeepsAnEngineWhoseHolderWasTakenOver: a kcp-tmc in another pid
// namespace that shares the holds' directory takes the hold of one killed
// alone, and rewrites the record; the killed one's keeper still watches
// the engine it last saw, so the lock of that running engine stays, and
// goes once the engine ends.
func TestLeaseKeepsAnEngineWhoseHolderWasTakenOver(t *testing.T) {
	backend := s3backend.Start(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv(leaseLapseEnv, "3s")
	holder, engine := startHolder(t, backend, false, false)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		leases := leasesOf(t, backend)
		if len(leases) == 1 && len(leases[0].Engines) == 1 && leases[0].Engines[0].Lock != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease does not name the engine's lock: %+v", leases)
		}
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	prev := thisIdentity
	thisIdentity = func() (string, error) { return "another-container/boot", nil }
	defer func() { thisIdentity = prev }()
	var out bytes.Buffer
	if _, err := holdStack(backend, "", "dev", "up", &out); !errors.Is(err, ErrStackInUse) {
		t.Fatalf("holding the stack while the killed holder's engine runs: %v, want ErrStackInUse\n%s", err, out.String())
	}
	b, err := openS3Locks(backend, "dev")
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if locks, err := b.list(); err != nil || len(locks) != 1 {
		t.Fatalf("the running engine's lock: %v, %v; want it kept", locks, err)
	}
	_ = syscall.Kill(engine, syscall.SIGKILL)
	for localproc.Running(engine) {
		time.Sleep(50 * time.Millisecond)
	}
	out.Reset()
	g, err := holdStack(backend, "", "dev", "up", &out)
	if err != nil {
		t.Fatalf("holding the stack once the engine ended: %v\n%s", err, out.String())
	}
	g.release()
	if locks, err := b.list(); err != nil || len(locks) != 0 {
		t.Errorf("the ended engine's lock: %v, %v; want it removed\n%s", locks, err, out.String())
	}
}
