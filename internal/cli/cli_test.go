package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kcp-tmc/kcp-tmc/automation"
	"github.com/kcp-tmc/kcp-tmc/internal/test/backuptest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/testenv"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: kcp-tmc"},
		{"unknown command", []string{"deploy", "--stack", "dev"}, `unknown command "deploy"`},
		{"no stack", []string{"up"}, "--stack is required"},
		{"unknown flag", []string{"up", "--stack", "dev", "--force"}, "flag provided but not defined"},
		{"destroy without --yes", []string{"destroy", "--stack", "dev"}, "pass --yes to confirm"},
		{"another command's flag", []string{"drill", "--stack", "dev", "--snapshot", "x"}, "drill does not take --snapshot"},
		{"--yes on up", []string{"up", "--stack", "dev", "--yes"}, "up does not take --yes"},
		{"--skip-checkpoints on destroy", []string{"destroy", "--stack", "dev", "--yes", "--skip-checkpoints"}, "destroy does not take --skip-checkpoints"},
		{"positional argument", []string{"outputs", "--stack", "dev", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Run(context.Background(), tt.args, &stdout, &stderr)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("err = %v, want a usage error (exit 2)", err)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestStackWithoutFileFails(t *testing.T) {
	dir, _ := testenv.Project(t, "dev", nil)
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"preview", "--stack", "qa", "--project-dir", dir}, &stdout, &stderr)
	if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "no Pulumi.qa.yaml") {
		t.Fatalf("err = %v, want an operation error naming the missing stack file", err)
	}
}

// TestPreviewUpDestroy runs the CLI's three verbs on the dev stack through
// the real engine; progress must stream to stdout.
func TestPreviewUpDestroy(t *testing.T) {
	dir, _ := testenv.Project(t, "dev", nil)
	ctx := context.Background()
	rendered := filepath.Join(dir, "rendered", "dev")
	steps := []struct {
		args       []string
		wantOut    string
		wantRender bool
	}{
		{[]string{"preview"}, "kubernetes:core/v1:Namespace", false},
		{[]string{"up"}, "created", true},
		{[]string{"preview", "--expect-no-changes"}, "unchanged", true},
		{[]string{"destroy", "--yes"}, "deleted", false},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		args := append([]string{s.args[0], "--stack", "dev", "--project-dir", dir}, s.args[1:]...)
		if err := Run(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("kcp-tmc %v: %v\nstdout:\n%s\nstderr:\n%s", s.args, err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), s.wantOut) {
			t.Errorf("kcp-tmc %v: progress output lacks %q:\n%s", s.args, s.wantOut, stdout.String())
		}
		entries, _ := os.ReadDir(filepath.Join(rendered, "1-manifest"))
		if got := len(entries) > 0; got != s.wantRender {
			t.Errorf("after kcp-tmc %v: rendered manifests present = %v, want %v", s.args, got, s.wantRender)
		}
	}
}

// TestOutputsAndDrift: after an up, outputs prints JSON and drift reports
// none; once the stack's configuration changes, renew (no certificate due)
// leaves it, and drift exits with ErrDrift (exit code 3). Render-mode stacks have no cluster to refresh from.
func TestOutputsAndDrift(t *testing.T) {
	dir, _ := testenv.Project(t, "dev", nil)
	ctx := context.Background()
	cli := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := Run(ctx, append([]string{args[0], "--stack", "dev", "--project-dir", dir}, args[1:]...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	if out, err := cli("up"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	out, err := cli("outputs")
	if err != nil || !strings.Contains(out, `"namespace": "kcp"`) {
		t.Fatalf("outputs: %v\n%s", err, out)
	}
	if out, err := cli("drift", "--refresh=false"); err != nil || !strings.Contains(out, "no drift") {
		t.Fatalf("drift right after up: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "Pulumi.dev.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), "dev.kcp.example.com", "other.kcp.example.com", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// renew changes only certificates due; dev's are cert-manager's, so it
	// runs no up and leaves the change for the up it belongs to.
	if out, err := cli("renew"); err != nil || !strings.Contains(out, `stack "dev" has no self-managed certificate to renew`) {
		t.Fatalf("renew: %v\n%s", err, out)
	}
	if out, err := cli("renew", "--json"); err != nil || !strings.Contains(out, `"renewed": []`) || !strings.Contains(out, `"identitiesCopied": []`) {
		t.Fatalf("renew --json: %v\n%s", err, out)
	}
	if out, err := cli("drift", "--refresh=false"); !errors.Is(err, ErrDrift) || !strings.Contains(out, "would change") {
		t.Fatalf("drift after a config change: err = %v\n%s", err, out)
	}
}

// TestBackupVerifyDrillRestore drives the backup verbs the way an operator
// does, on a stack whose backup target is an S3-compatible server holding a
// real snapshot made by the backup script.
func TestBackupVerifyDrillRestore(t *testing.T) {
	endpoint := backuptest.FakeS3(t, "kcp-backups")
	key := backuptest.Seed(t, "s3://kcp-backups/etcd", "kcp-tmc-dev", endpoint)
	// A second shard's etcd keeps its snapshots beside the root's.
	shardKey := backuptest.Seed(t, "s3://kcp-backups/etcd", "kcp-tmc-dev-etcd-shard-1", endpoint)
	// The server's key (backuptest.FakeS3's), as the stack's backup jobs get it.
	dir, opts := testenv.Project(t, "dev", map[string]any{
		"kcp-tmc:backup": map[string]any{"target": "s3", "bucket": "kcp-backups", "prefix": "etcd", "endpoint": endpoint, "accessKeyId": "ops-test"},
		"kcp-tmc:kcp":    map[string]any{"shards": []any{map[string]any{"name": "shard-1"}}},
	})
	for k, v := range opts.Env {
		t.Setenv(k, v)
	}
	stack, err := automation.Stack(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.SetConfig(context.Background(), "kcp-tmc:backupSecretAccessKey", auto.ConfigValue{Value: "ops-test-secret", Secret: true}); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), args, &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	restoreDir, usedDir, shardDir := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(usedDir, "old-data"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		want    []string
		wantErr error
	}{
		{[]string{"backup", "verify"}, []string{"snapshot " + key, "restorable: true", "OK"}, nil},
		{[]string{"backup", "verify", "--json"}, []string{`"key": "` + key + `"`, `"restorable": true`, `"rpo": "26h0m0s"`}, nil},
		{[]string{"drill"}, []string{"DR drill of " + key + " into 1 scratch members", fmt.Sprintf("%d keys served", backuptest.Keys), "RTO: recovered in", "OK"}, nil},
		{[]string{"drill", "--json"}, []string{fmt.Sprintf(`"keysServed": %d`, backuptest.Keys), `"rto": "15m0s"`}, nil},
		{[]string{"restore", "--out", restoreDir}, []string{"restored " + key, "etcd-0 → " + filepath.Join(restoreDir, "etcd-0"), "OK"}, nil},
		{[]string{"restore", "--out", usedDir}, []string{"restore dir " + usedDir + " is not empty"}, errAny},
		{[]string{"backup", "verify", "--etcd", "etcd-shard-1"}, []string{"snapshot " + shardKey, "restorable: true", "OK"}, nil},
		{[]string{"restore", "--etcd", "etcd-shard-1", "--out", shardDir}, []string{"restored " + shardKey, "etcd-shard-1-0 → " + filepath.Join(shardDir, "etcd-shard-1-0")}, nil},
		{[]string{"drill", "--etcd", "etcd-shard-2"}, []string{`has no etcd cluster "etcd-shard-2": it has etcd, etcd-shard-1`}, errAny},
		{[]string{"drill", "extra"}, []string{`unexpected argument "extra"`}, ErrUsage},
		{[]string{"backup", "verify", "--json", "--target", "file://" + t.TempDir()}, []string{`"error":`, "no snapshot of kcp-tmc-dev"}, errAny},
		{[]string{"backup", "verify", "--target", "file://" + t.TempDir()}, []string{"no snapshot of kcp-tmc-dev"}, errAny},
		{[]string{"backup", "verify", "--target", "ftp://x"}, []string{`--target "ftp://x"`}, errAny},
		{[]string{"restore"}, []string{"restore needs --out"}, ErrUsage},
		{[]string{"backup", "list"}, []string{"backup needs a subcommand"}, ErrUsage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			n := 1
			if tt.args[0] == "backup" {
				n = 2
			}
			args := append(append(append([]string{}, tt.args[:n]...), "--stack", "dev", "--project-dir", dir), tt.args[n:]...)
			out, err := cli(args...)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("%v\n%s", err, out)
			case tt.wantErr == errAny && (err == nil || errors.Is(err, ErrUsage)):
				t.Fatalf("err = %v, want an operation error\n%s", err, out)
			case tt.wantErr == ErrUsage && !errors.Is(err, ErrUsage):
				t.Fatalf("err = %v, want a usage error\n%s", err, out)
			}
			msg := out
			if err != nil {
				msg += err.Error()
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("output lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

// errAny marks a case that must fail as an operation (exit 1), not as usage.
var errAny = errors.New("any operation error")

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{fmt.Errorf("up of stack %q failed: %w", "dev", errors.New("boom")), 1},
		{fmt.Errorf("%w: smoke test: kcp ready: 503", ErrCheck), 1},
		{ErrUsage, 2},
		{fmt.Errorf("drift of stack %q failed: %w", "dev", ErrDrift), 3},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestSmokeNeedsACluster(t *testing.T) {
	dir, _ := testenv.Project(t, "dev", nil)
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"smoke", "--stack", "dev", "--project-dir", dir}, &stdout, &stderr)
	if err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), "there is no cluster to smoke-test") {
		t.Fatalf("smoke on a render-mode stack: %v", err)
	}
}

// TestHelp: --help, -h and help [command] print usage on stdout and succeed
// (exit 0); a command's help lists only that command's flags; help for an
// unknown command is a usage error.
func TestHelp(t *testing.T) {
	tests := []struct {
		args          []string
		want, notWant []string
	}{
		{[]string{"--help"}, []string{"usage: kcp-tmc <command>", "backup verify", "help [command]"}, nil},
		{[]string{"-h"}, []string{"usage: kcp-tmc <command>"}, nil},
		{[]string{"help"}, []string{"usage: kcp-tmc <command>"}, nil},
		{[]string{"help", "up"}, []string{"usage: kcp-tmc up", "--expect-no-changes\t", "--stack\t"}, []string{"--yes\t"}},
		{[]string{"up", "--help"}, []string{"usage: kcp-tmc up", "--refresh\t", "--skip-checkpoints\t"}, []string{"--snapshot\t"}},
		{[]string{"drill", "-h"}, []string{"--target\t", "--json\t", "--stack\t"}, []string{"--snapshot\t", "--out\t", "--yes\t"}},
		{[]string{"help", "backup", "verify"}, []string{"usage: kcp-tmc backup verify", "--target\t"}, []string{"--out\t"}},
		{[]string{"destroy", "--stack", "dev", "-h"}, []string{"--yes\t"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := Run(context.Background(), tt.args, &stdout, &stderr); err != nil {
				t.Fatalf("err = %v (exit %d), want success; stderr:\n%s", err, ExitCode(err), stderr.String())
			}
			help := stdout.String()
			for _, w := range tt.want {
				if !strings.Contains(help, w) {
					t.Errorf("help lacks %q:\n%s", w, help)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(help, w) {
					t.Errorf("help lists %q, which this command does not take:\n%s", w, help)
				}
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"help", "deploy"}, &stdout, &stderr); ExitCode(err) != 2 ||
		!strings.Contains(stderr.String(), `unknown command "deploy"`) {
		t.Errorf("help deploy: err %v, stderr %q; want exit 2 naming the unknown command", err, stderr.String())
	}
}
