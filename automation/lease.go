package automation

// A deploy killed with the machine it ran on (a CI runner lost with its
// job) leaves its Pulumi lock in the bucket and no kcp-tmc on that machine
// to clear it: its hold (stackGuard) was on that machine. So a holder of a
// bucket backend's stack also keeps a lease in the bucket: an object
// beside the state, rewritten every sixth of its lapse by a keeper process that
// lives as long as the holder or any engine it started (an engine goes on
// when its kcp-tmc alone is killed), and marked ended by the keeper once
// none of them runs. Another kcp-tmc, on any machine, removes the Pulumi
// locks a lease names once it has ended, or lapsed: not rewritten for its
// lapse, by the bucket's clock. The bucket cannot stop an engine cut off
// from it for that long and then back; its writes would fail meanwhile.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/kcp-tmc/kcp-tmc/pkg/localproc"
)

// lease is what a holder of a bucket's stack publishes there: its record
// (the engines it started and the locks they took), how often it is
// renewed and after how long it counts as lapsed.
type lease struct {
	guardRecord
	User  string        `json:"user"` // the engine's locks name it
	Every time.Duration `json:"every"`
	Lapse time.Duration `json:"lapse"`
	// Ended: the keeper saw the holder and its engines end; the locks
	// still named are left by killed processes.
	Ended bool `json:"ended,omitempty"`
	// Waiting: the lease of a kcp-tmc that waits to take the stack, and
	// holds nothing yet.
	Waiting bool `json:"waiting,omitempty"`
}

// leaseObject is a lease as read from the bucket.
type leaseObject struct {
	lease
	key     string
	renewed time.Time // the object's modification time, by the bucket's clock
}

// leaseName is the object name of the lease of holder's hold since since,
// on host (a process that holds the stack again holds a new lease).
func leaseName(host string, holder localproc.Process, since time.Time) string {
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, host)
	return fmt.Sprintf("%s-%d-%d-%d.json", safe, holder.Pid, holder.Started, since.UnixNano())
}

// writeLease writes l as name whole and returns when the bucket says it
// was written.
func (b *s3Locks) writeLease(name string, l lease) (time.Time, error) {
	raw, err := json.Marshal(l)
	if err != nil {
		return time.Time{}, err
	}
	ctx, cancel := b.ctx()
	defer cancel()
	key := b.leases + name
	if err := b.bucket.WriteAll(ctx, key, raw, nil); err != nil {
		return time.Time{}, fmt.Errorf("writing the lease %s in %s: %w", key, b.url, err)
	}
	attrs, err := b.bucket.Attributes(ctx, key)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the lease %s in %s: %w", key, b.url, err)
	}
	return attrs.ModTime, nil
}

// readLeases reads the stack's leases.
func (b *s3Locks) readLeases() ([]leaseObject, error) {
	objects, err := b.jsonObjects(b.leases)
	if err != nil {
		return nil, fmt.Errorf("the leases: %w", err)
	}
	var leases []leaseObject
	for _, o := range objects {
		ctx, cancel := b.ctx()
		raw, err := b.bucket.ReadAll(ctx, o.Key)
		cancel()
		if gcerrors.Code(err) == gcerrors.NotFound {
			continue // its holder ended
		}
		if err != nil {
			return nil, fmt.Errorf("reading the lease %s in %s: %w", o.Key, b.url, err)
		}
		l := leaseObject{key: o.Key, renewed: o.ModTime}
		if err := json.Unmarshal(raw, &l.lease); err != nil {
			return nil, fmt.Errorf("the lease %s in %s: %w", o.Key, b.url, err)
		}
		leases = append(leases, l)
	}
	return leases, nil
}

func (b *s3Locks) removeLease(key string) error {
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("removing the lease %s in %s: %w", key, b.url, err)
	}
	return nil
}

// gone reports whether l's holder and engines run no more, and why: on
// this machine (id) by their processes, elsewhere by the lease having
// ended or lapsed at now, by the bucket's clock.
func (l leaseObject) gone(now time.Time, id string) (bool, string) {
	if l.Ended { // also of a process that goes on after it released the stack
		return true, "its lease says its holder and engines ended"
	}
	if l.Identity == id {
		if l.Process.Running() {
			return false, ""
		}
		for _, e := range l.Engines {
			if (e.Elsewhere == "" || e.Elsewhere == id) && e.Running() {
				return false, ""
			}
		}
		return true, "none of its processes runs on this machine"
	}
	if age, lapse := now.Sub(l.renewed), l.lapse(); age > lapse {
		return true, fmt.Sprintf("its lease was last renewed %s ago (it lapses after %s: the machine is gone)", age.Round(time.Second), lapse)
	}
	return false, ""
}

// takeLease publishes this holder's lease in the bucket, removes the locks
// that holders whose leases ended or lapsed left, and starts the keeper.
// A live lease of a holder elsewhere is waited for: ErrStackInUse as soon
// as it is renewed, taken over once it lapses (a CI job rerun on another
// runner right after its first one was lost goes on by itself).
func (g *stackGuard) takeLease(b *s3Locks, backendURL, id string) error {
	every, lapse, err := leaseTimes()
	if err != nil {
		return err
	}
	name := leaseName(g.rec.Host, g.rec.Process, g.rec.Since)
	g.leaseKey = b.leases + name
	// Until it holds the stack, this one's lease says it waits: a taker
	// killed while waiting holds nothing that another should wait for.
	renew := func() (time.Time, error) {
		l := g.leaseNow(every, lapse)
		l.Waiting = true
		return b.writeLease(name, l)
	}
	now, err := renew()
	if err != nil {
		return err
	}
	others, err := b.readLeases()
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.key == g.leaseKey {
			continue
		}
		if o.Waiting { // another taker: the engine's own lock decides between two
			if gone, _ := o.gone(now, id); gone {
				if err := b.removeLease(o.key); err != nil {
					return err
				}
			}
			continue
		}
		why, err := g.awaitLease(b, o, now, id, renew)
		if err != nil {
			return err
		}
		for _, e := range o.Engines {
			l, err := g.lockOf(e, o.Host, o.User, false)
			if err != nil {
				return err
			}
			if l == nil {
				continue
			}
			if err := g.remove(l.Path); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "removed the lock of stack %q by %s that a killed %s left: %s\n", g.stack, l, o.guardRecord, why)
		}
		if err := b.removeLease(o.key); err != nil {
			return err
		}
	}
	return g.startKeeper(backendURL, every, lapse)
}

// awaitLease returns once the holder of lease o runs no more, saying why,
// or fails with ErrStackInUse once it is seen running: on this machine
// (id) by its processes; elsewhere, when its lease is renewed. A lease
// neither renewed nor ended is read every second, and this holder's
// renewed (renew), whose time says the bucket's, until it lapses.
func (g *stackGuard) awaitLease(b *s3Locks, o leaseObject, now time.Time, id string, renew func() (time.Time, error)) (string, error) {
	inUse := func(o leaseObject, now time.Time) error {
		if o.Identity == id {
			return fmt.Errorf("%w: %s runs an operation on stack %q on this machine, with its state elsewhere (its lease %s "+
				"in %s): wait for it to end", ErrStackInUse, o.guardRecord, g.stack, o.key, b.url)
		}
		return fmt.Errorf("%w: %s runs an operation on stack %q: its lease %s in %s was renewed %s ago (it is renewed "+
			"every %s while it or an engine it started runs; if its machine is lost, it lapses %s after its last "+
			"renewal and kcp-tmc takes over)", ErrStackInUse, o.guardRecord, g.stack, o.key, b.url,
			max(0, now.Sub(o.renewed)).Round(time.Second), o.every(), o.lapse())
	}
	first := o
	for waited := false; ; waited = true {
		if gone, why := o.gone(now, id); gone {
			return why, nil
		}
		if o.Identity == id || o.renewed.After(first.renewed) {
			return "", inUse(o, now)
		}
		if !waited {
			fmt.Fprintf(g.out, "waiting for the lease of %s on stack %q, renewed %s ago: if it is not renewed within %s, "+
				"its machine is gone and this kcp-tmc takes over\n", o.guardRecord, g.stack,
				max(0, now.Sub(o.renewed)).Round(time.Second), (o.lapse() - max(0, now.Sub(o.renewed))).Round(time.Second))
		}
		time.Sleep(time.Second)
		var err error
		if now, err = renew(); err != nil {
			return "", err
		}
		leases, err := b.readLeases()
		if err != nil {
			return "", err
		}
		i := slices.IndexFunc(leases, func(l leaseObject) bool { return l.key == o.key })
		if i < 0 {
			return "its holder ended and removed its lease", nil
		}
		o = leases[i]
	}
}

// every is how often o is renewed, as its holder set it.
func (o leaseObject) every() time.Duration {
	if o.Every <= 0 {
		return o.lapse() / 6
	}
	return o.Every
}

// lapse is how long o lives without a renewal, as its holder set it.
func (o leaseObject) lapse() time.Duration {
	if o.Lapse <= 0 {
		return defaultLeaseLapse
	}
	return o.Lapse
}

// leaseTimes is how often a keeper renews its holder's lease and after how
// long without a renewal another kcp-tmc takes the holder for lost with
// its machine: KCP_TMC_LEASE_LAPSE, by default two minutes, renewed six
// times within it, so that a slow bucket does not lose a live holder.
func leaseTimes() (every, lapse time.Duration, err error) {
	lapse = defaultLeaseLapse
	if v := os.Getenv(leaseLapseEnv); v != "" {
		if lapse, err = time.ParseDuration(v); err != nil || lapse < minLeaseLapse {
			return 0, 0, fmt.Errorf("%s: invalid value %q: want a duration of at least %s (default %s), "+
				"e.g. 90s", leaseLapseEnv, v, minLeaseLapse, defaultLeaseLapse)
		}
	}
	return lapse / 6, lapse, nil
}

const (
	leaseLapseEnv     = "KCP_TMC_LEASE_LAPSE"
	defaultLeaseLapse = 2 * time.Minute
	// The bucket's clock counts seconds (S3's Last-Modified).
	minLeaseLapse = 3 * time.Second
)

// leaseNow is this holder's lease as of its record (under g.mu, or before
// the keeper starts).
func (g *stackGuard) leaseNow(every, lapse time.Duration) lease {
	return lease{guardRecord: g.rec, User: currentUser(), Every: every, Lapse: lapse}
}

// keeperEnv carries a keeper's spec into the process that runs it: this
// program again (os.Executable), which runs the keeper instead of itself
// from this package's init, so that any program that embeds automation
// keeps its leases.
const keeperEnv = "KCP_TMC_LEASE_KEEPER"

// keeperSpec is what a keeper keeps.
type keeperSpec struct {
	Backend string            `json:"backend"`
	Stack   string            `json:"stack"`
	Holds   string            `json:"holds"` // where the holder's record is
	Lease   string            `json:"lease"` // the lease's name
	Holder  localproc.Process `json:"holder"`
	User    string            `json:"user"`
	Every   time.Duration     `json:"every"`
	Lapse   time.Duration     `json:"lapse"`
}

func init() {
	if spec := os.Getenv(keeperEnv); spec != "" {
		os.Exit(keepLease(spec))
	}
}

// startKeeper starts the keeper of this holder's lease: in a session of
// its own, so that a terminal's ^C, which the engine handles by ending
// its operation, does not end the keeper first; its stdin a pipe that
// this process never writes, whose end tells it the holder is gone. A
// keeper that ends while the hold lasts (killed by someone, out of memory)
// is started again: without one, the lease would lapse under a live
// holder.
func (g *stackGuard) startKeeper(backendURL string, every, lapse time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("starting the keeper of stack %q's lease: %w", g.stack, err)
	}
	spec, err := json.Marshal(keeperSpec{Backend: backendURL, Stack: g.stack, Holds: g.holds,
		Lease: strings.TrimPrefix(g.leaseKey, g.lockStore.(*s3Locks).leases), Holder: g.rec.Process,
		User: currentUser(), Every: every, Lapse: lapse})
	if err != nil {
		return err
	}
	start := func() (*exec.Cmd, io.WriteCloser, error) {
		cmd := exec.Command(self)
		if _, err := os.Stat(self); err != nil { // replaced since it started (an upgrade): this process's binary still is
			cmd = exec.Command("/proc/self/exe")
		}
		cmd.Env = append(os.Environ(), keeperEnv+"="+string(spec))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		// No stdout or stderr: a write to the holder's, once it is gone,
		// would kill the keeper with SIGPIPE.
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			in.Close()
			return nil, nil, fmt.Errorf("starting the keeper of stack %q's lease: %w", g.stack, err)
		}
		return cmd, in, nil
	}
	cmd, in, err := start()
	if err != nil {
		return err
	}
	stop, done := make(chan struct{}), make(chan struct{})
	g.stopKeeper = func() { close(stop); <-done }
	g.leaseEvery, g.leaseLapse = every, lapse
	go func() {
		defer close(done)
		// Started again for as long as the hold lasts, waiting longer each
		// time (up to keeperRetryMax), so that a failing one does not spin.
		wait := time.Second
		for {
			if cmd != nil {
				exited := make(chan error, 1)
				go func(cmd *exec.Cmd) { exited <- cmd.Wait() }(cmd)
				select {
				case <-stop:
					// Written, not signalled: the pipe keeps it until a
					// keeper that has just started reads it. It exits
					// between two writes.
					_, _ = in.Write([]byte(keeperRelease))
					in.Close()
					<-exited
					return
				case err := <-exited:
					in.Close()
					cmd = nil
					fmt.Fprintf(g.out, "the keeper of stack %q's lease ended (%v): starting another in %s\n", g.stack, err, wait)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(wait):
			}
			cmd, in, err = start()
			wait = min(2*wait, keeperRetryMax)
			if err != nil {
				fmt.Fprintf(g.out, "%v: trying again in %s (its lease lapses %s after its last renewal)\n", err, wait, lapse)
			}
		}
	}()
	return nil
}

// keeperRelease is what a holder writes to its keeper's stdin when it
// releases the stack.
const keeperRelease = "released\n"

// keeperRetryMax is the longest a hold waits to start its lease's keeper
// again: well within the lapse, a keeper started by then renews in time.
const keeperRetryMax = 15 * time.Second

// endLease stops the keeper and removes the lease, or, while the record
// keeps engines whose locks may be left, marks it ended for the next
// holder, wherever it runs.
func (g *stackGuard) endLease() {
	b, ok := g.lockStore.(*s3Locks)
	if !ok || g.leaseKey == "" {
		return
	}
	if g.stopKeeper != nil {
		g.stopKeeper()
		g.stopKeeper = nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.rec.Engines) == 0 {
		if err := b.removeLease(g.leaseKey); err != nil {
			fmt.Fprintf(g.out, "%v\n", err) // it lapses
		}
		return
	}
	l := g.leaseNow(g.leaseEvery, g.leaseLapse)
	l.Ended = true
	if _, err := b.writeLease(strings.TrimPrefix(g.leaseKey, b.leases), l); err != nil {
		fmt.Fprintf(g.out, "%v\n", err)
	}
}

// keepLease is the keeper: every 100 ms it reads the holder's record,
// rewrites the lease when the record changed or leaseEvery passed, and
// ends it once neither the holder nor an engine it recorded runs. It
// exits between two writes once the holder releases the stack. Errors go
// unreported (nowhere to report them): a lease not renewed lapses.
func keepLease(raw string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	var s keeperSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return 2
	}
	// The holder writes keeperRelease when it releases the stack; its
	// stdin ends without it when the holder is gone.
	stop, holderGone := make(chan struct{}), make(chan struct{})
	go func() {
		if n, _ := io.ReadFull(os.Stdin, make([]byte, len(keeperRelease))); n > 0 {
			close(stop)
			return
		}
		close(holderGone)
	}()
	// A bucket out of reach is tried again until the lease has lapsed.
	var b *s3Locks
	for until := time.Now().Add(s.Lapse); b == nil; {
		var err error
		if b, err = openS3Locks(s.Backend, s.Stack); err == nil && b == nil {
			return 1 // a legacy layout: its holder holds no lease
		}
		if b == nil && time.Now().After(until) {
			return 1
		}
		if b == nil {
			select {
			case <-stop:
				return 0
			case <-time.After(time.Second):
			}
		}
	}
	defer b.close()
	// The record is read every 100 ms, so that the lease names an engine,
	// and the lock it took, before a kill in its first second.
	tick := time.NewTicker(min(100*time.Millisecond, s.Every))
	defer tick.Stop()
	l := lease{User: s.User, Every: s.Every, Lapse: s.Lapse}
	ours := true // the holder's record is its own
	var written time.Time
	var last []byte
	for {
		select {
		case <-stop:
			return 0
		case <-tick.C:
		}
		// A record that cannot be read is no news; one of another holder
		// (on this machine, taking over from this one, which it holds
		// for killed) leaves the engines last seen to watch.
		switch rec, err := readRecord(s.Holds, s.Stack); {
		case err != nil:
		case rec != nil && rec.Process == s.Holder:
			l.guardRecord = *rec
		default:
			ours = false
		}
		alive := false
		select {
		case <-holderGone:
		default:
			alive = ours
		}
		for _, e := range l.Engines {
			alive = alive || (e.Elsewhere == "" && e.Running())
		}
		if !alive {
			l.Ended = true
			_, _ = b.writeLease(s.Lease, l)
			return 0
		}
		now, _ := json.Marshal(l)
		if string(now) == string(last) && time.Since(written) < s.Every {
			continue
		}
		if _, err := b.writeLease(s.Lease, l); err == nil {
			written, last = time.Now(), now
		}
	}
}
