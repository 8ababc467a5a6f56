package automation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob" // s3://, as the engine opens it
	"gocloud.dev/gcerrors"
	"sigs.k8s.io/yaml"
)

// Locks are the Pulumi locks of one stack in a self-managed backend, and
// where kcp-tmc holds that stack (stackGuard): a local directory (file://)
// keeps both, in its .pulumi/locks and .kcp-tmc/stacks; an S3 bucket keeps
// the locks, and this machine the hold (HoldsDir).
type Locks struct {
	lockStore
	stack string
	holds string // the hold's directory: its kernel lock and record
	state string // a local backend's directory; "" for a bucket
}

// lockStore is where a backend keeps one stack's locks. A lock's Path is
// its file or its key in the bucket.
type lockStore interface {
	list() ([]StackLock, error)
	read(path string) (StackLock, error) // wraps os.ErrNotExist once removed
	remove(path string) error
	// lockPath is where lock name is written (write).
	lockPath(name string) string
	// write writes lock name whole: no reader, the engine included, sees
	// it half-written or under another name.
	write(name string, raw []byte) error
	// watch calls changed once, then as locks may have been taken, until
	// it returns true or stop is called.
	watch(changed func() bool) (stop func(), err error)
	String() string // where the locks are, for messages
	// checkpoint reads the stack's checkpoint (the state's latest file).
	checkpoint() ([]byte, error)
	close()
}

// OpenLocks opens the locks of stack in the backend at backendURL, run in
// projectDir; nil for a backend whose locks kcp-tmc does not read (Pulumi
// Cloud, which has its own; gs://, azblob://).
func OpenLocks(backendURL, projectDir, stack string) (*Locks, error) {
	if state, ok := LocalState(backendURL, projectDir); ok {
		return &Locks{lockStore: dirLocks{state, stack}, stack: stack, holds: guardDir(state), state: state}, nil
	}
	if !strings.HasPrefix(backendURL, "s3://") {
		return nil, nil
	}
	b, err := openS3Locks(backendURL, stack)
	if b == nil {
		return nil, err
	}
	holds, err := HoldsDir(backendURL)
	if err != nil {
		b.close()
		return nil, err
	}
	return &Locks{lockStore: b, stack: stack, holds: holds}, nil
}

// List reads the stack's locks.
func (l *Locks) List() ([]StackLock, error) { return l.list() }

// Checkpoint reads the stack's checkpoint as the backend keeps it.
func (l *Locks) Checkpoint() ([]byte, error) { return l.checkpoint() }

// Remove removes one of them.
func (l *Locks) Remove(lock StackLock) error { return l.remove(lock.Path) }

// Close releases what opening them took (nothing for nil).
func (l *Locks) Close() {
	if l != nil {
		l.close()
	}
}

// Elsewhere returns the locks that the record of the stack's last holder
// keeps as taken by engines on another machine, boot or pid namespace, by
// path, with where.
func (l *Locks) Elsewhere() (map[string]string, error) {
	rec, err := readRecord(l.holds, l.stack)
	if rec == nil {
		return nil, err
	}
	where := map[string]string{}
	for _, e := range rec.Engines {
		if e.Elsewhere != "" {
			where[e.Lock] = e.Elsewhere
		}
	}
	return where, nil
}

// Local reports whether the stack's state is a local directory (else a
// bucket, which machines share).
func (l *Locks) Local() bool { return l.state != "" }

// Repair undoes what a kill mid-write leaves in a local backend
// (RepairState); a bucket replaces each object whole.
func (l *Locks) Repair(out io.Writer) error {
	if l.state == "" {
		return nil
	}
	return RepairState(l.state, l.stack, out)
}

// HoldsDir is where kcp-tmc on this machine holds the stacks of the bucket
// backend at backendURL: under $XDG_STATE_HOME (~/.local/state), one
// directory per URL (as the engine reads it, its query sorted). A holder
// elsewhere, or one that names the bucket otherwise (another endpoint
// spelling), is not seen: its locks are left to kcp-tmc unlock.
func HoldsDir(backendURL string) (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("where to hold the stacks of %s: %w", redactURL(backendURL), err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	if u, err := engineS3URL(backendURL); err == nil {
		backendURL = strings.TrimSuffix(u, "/")
	}
	sum := sha256.Sum256([]byte(backendURL))
	return filepath.Join(base, "kcp-tmc", "holds", hex.EncodeToString(sum[:8])), nil
}

// dirLocks is one stack's locks in the local backend under state.
type dirLocks struct{ state, stack string }

func (d dirLocks) list() ([]StackLock, error)          { return StackLocks(d.state, d.stack) }
func (d dirLocks) read(path string) (StackLock, error) { return readLock(path) }
func (d dirLocks) remove(path string) error            { return RemoveLock(path) }
func (d dirLocks) lockPath(name string) string {
	return filepath.Join(LocksDir(d.state, d.stack), name)
}

// write writes the lock beside the holds (the engine counts every file in
// the lock directory as a lock) and moves it in.
func (d dirLocks) write(name string, raw []byte) error {
	if err := os.MkdirAll(filepath.Dir(d.lockPath(name)), 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(guardDir(d.state), name+".new")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, d.lockPath(name))
}
func (d dirLocks) watch(changed func() bool) (func(), error) {
	return watchDir(LocksDir(d.state, d.stack), changed)
}
func (d dirLocks) String() string { return LocksDir(d.state, d.stack) }
func (d dirLocks) checkpoint() ([]byte, error) {
	return os.ReadFile(CheckpointPath(d.state, d.stack))
}
func (d dirLocks) close() {}

// s3Locks is a stack's lock prefix in an S3 bucket.
type s3Locks struct {
	bucket      *blob.Bucket
	prefix      string // <bucket path>/.pulumi/locks/organization/<project>/<stack>/
	checkpointK string // <bucket path>/.pulumi/stacks/<project>/<stack>.json
	leases      string // <bucket path>/.kcp-tmc/leases/<project>/<stack>/: the holders' leases (lease.go)
	url         string // without credentials
}

// openS3Locks opens the bucket as the engine does (pulumi v3.274
// backend/diy New: massageBlobPath, then a prefixed bucket for the URL's
// path), with the gocloud.dev the engine's go.mod pins; credentials and
// region come from the same AWS configuration. nil for a state in the
// legacy layout (no .pulumi/meta.yaml of version 1 or more, in a bucket
// that has state; meta.go ensurePulumiMeta), whose keys kcp-tmc does not
// read.
func openS3Locks(backendURL, stack string) (*s3Locks, error) {
	u, err := engineS3URL(backendURL)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", redactURL(backendURL), err)
	}
	p, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", redactURL(backendURL), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("opening the locks of stack %q in %s: %w", stack, redactURL(backendURL), err)
	}
	root := strings.TrimLeft(p.Path, "/") // the engine's prefixed bucket
	if root != "" && !strings.HasSuffix(root, "/") {
		root += "/"
	}
	b := &s3Locks{bucket: bucket, url: redactURL(backendURL),
		prefix:      root + ".pulumi/locks/organization/" + ProjectName + "/" + stack + "/",
		checkpointK: root + ".pulumi/stacks/" + ProjectName + "/" + stack + ".json",
		leases:      root + ".kcp-tmc/leases/" + ProjectName + "/" + stack + "/"}
	legacy, err := b.legacyLayout(root)
	if err != nil || legacy {
		bucket.Close()
		return nil, err
	}
	return b, nil
}

// legacyLayout reports whether the state under root is in the engine's
// legacy layout: its .pulumi/meta.yaml says version 0, or there is none in
// a bucket that has state (a new one gets the project layout, unless
// PULUMI_DIY_BACKEND_LEGACY_LAYOUT asks otherwise).
func (b *s3Locks) legacyLayout(root string) (bool, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	raw, err := b.bucket.ReadAll(ctx, root+".pulumi/meta.yaml")
	if err == nil {
		var meta struct {
			Version int `json:"version"`
		}
		if err := yaml.Unmarshal(raw, &meta); err != nil {
			return false, fmt.Errorf("%s: .pulumi/meta.yaml: %w", b.url, err)
		}
		return meta.Version == 0, nil
	}
	if gcerrors.Code(err) != gcerrors.NotFound {
		return false, fmt.Errorf("reading %s .pulumi/meta.yaml: %w", b.url, err)
	}
	if v := os.Getenv("PULUMI_DIY_BACKEND_LEGACY_LAYOUT"); v == "1" || v == "true" {
		return true, nil
	}
	_, err = b.bucket.List(&blob.ListOptions{Prefix: root + ".pulumi/stacks/"}).Next(ctx)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	return err == nil, err
}

// engineS3URL rewrites the query parameters of the AWS SDK v1 that the
// engine still accepts (pulumi v3.274 backend/diy translateLegacyS3Params):
// disableSSL, an endpoint without a scheme, and, for an endpoint that is
// not AWS, checksums only when required.
func engineS3URL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	q := u.Query()
	disableSSL := false
	if v, ok := q["disableSSL"]; ok {
		if disableSSL, err = parseBool(v[len(v)-1]); err != nil {
			return "", fmt.Errorf("query parameter disableSSL: %w", err)
		}
		q.Del("disableSSL")
		if !strings.Contains(q.Get("endpoint"), "://") {
			q.Set("disable_https", fmt.Sprint(disableSSL))
		}
	}
	if endpoint := q.Get("endpoint"); endpoint != "" {
		if !strings.Contains(endpoint, "://") {
			scheme := "https"
			if disableSSL {
				scheme = "http"
			}
			q.Set("endpoint", scheme+"://"+endpoint)
		}
		if q.Get("request_checksum_calculation") == "" && os.Getenv("AWS_REQUEST_CHECKSUM_CALCULATION") == "" {
			q.Set("request_checksum_calculation", "when_required")
		}
		// Not the engine's: stores that answer without checksums would
		// have the SDK warn on every read of a lock.
		if q.Get("response_checksum_validation") == "" && os.Getenv("AWS_RESPONSE_CHECKSUM_VALIDATION") == "" {
			q.Set("response_checksum_validation", "when_required")
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true":
		return true, nil
	case "0", "f", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// redactURL is u without a user or password.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	p.User = nil
	return p.String()
}

// ctx bounds each request: a watch's stop waits for one in flight.
func (b *s3Locks) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// jsonObjects lists the .json objects directly under prefix.
func (b *s3Locks) jsonObjects(prefix string) ([]*blob.ListObject, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	it := b.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var objects []*blob.ListObject
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s in %s: %w", prefix, b.url, err)
		}
		if !o.IsDir && strings.HasSuffix(o.Key, ".json") {
			objects = append(objects, o)
		}
	}
}

func (b *s3Locks) list() ([]StackLock, error) {
	objects, err := b.jsonObjects(b.prefix)
	if err != nil {
		return nil, fmt.Errorf("the locks: %w", err)
	}
	var locks []StackLock
	for _, o := range objects {
		l, err := b.read(o.Key)
		if errors.Is(err, os.ErrNotExist) {
			continue // its operation ended
		}
		if err != nil {
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

func (b *s3Locks) read(key string) (StackLock, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	raw, err := b.bucket.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return StackLock{}, fmt.Errorf("reading lock %s: %w", key, os.ErrNotExist)
	}
	if err != nil {
		return StackLock{}, fmt.Errorf("reading lock %s in %s: %w", key, b, err)
	}
	l := StackLock{Path: key}
	if err := json.Unmarshal(raw, &l); err != nil {
		return StackLock{}, fmt.Errorf("lock %s in %s is not a Pulumi lock: %w", key, b, err)
	}
	return l, nil
}

func (b *s3Locks) remove(key string) error {
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("removing lock %s in %s: %w", key, b, err)
	}
	return nil
}

func (b *s3Locks) lockPath(name string) string { return b.prefix + name }

func (b *s3Locks) write(name string, raw []byte) error {
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.bucket.WriteAll(ctx, b.lockPath(name), raw, nil); err != nil {
		return fmt.Errorf("writing lock %s in %s: %w", name, b, err)
	}
	return nil
}

// watch lists the locks every 100 ms: a bucket tells nobody of a new
// object. The engine takes its lock within seconds of its start, after
// which changed reports it found it and the listing stops; after two
// minutes it stops anyway (the engine's process is recorded already, by
// which its lock is found too).
func (b *s3Locks) watch(changed func() bool) (func(), error) {
	until := time.Now().Add(2 * time.Minute)
	return poll(100*time.Millisecond, func() bool { return changed() || time.Now().After(until) }), nil
}

// checkpoint reads <stack>.json, if it is the newest of the engine's
// variants (pulumi v3.274 backend/diy stackPath: .json, .json.gz,
// .json.zst); a compressed one is not read.
func (b *s3Locks) checkpoint() ([]byte, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	it := b.bucket.List(&blob.ListOptions{Prefix: b.checkpointK, Delimiter: "/"})
	newest, at := "", time.Time{}
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("listing the checkpoint in %s: %w", b, err)
		}
		if rest := strings.TrimPrefix(o.Key, b.checkpointK); (rest == "" || rest == ".gz" || rest == ".zst") && !o.ModTime.Before(at) {
			newest, at = o.Key, o.ModTime
		}
	}
	switch newest {
	case "":
		return nil, fmt.Errorf("no checkpoint %s in %s: %w", b.checkpointK, b.url, os.ErrNotExist)
	case b.checkpointK:
		return b.bucket.ReadAll(ctx, b.checkpointK)
	}
	return nil, fmt.Errorf("the checkpoint %s in %s is compressed: %w", newest, b.url, errors.ErrUnsupported)
}

func (b *s3Locks) String() string { return b.url + " " + b.prefix }
func (b *s3Locks) close()         { b.bucket.Close() }
