package automation

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kcp-tmc/kcp-tmc/pkg/helmrelease"
)

// Up is s.Up after undoing what a killed up left that the next one could
// not redo by itself: the stack's lock (holdStack, as for every engine
// command) and the Helm install or upgrade it was in the middle of
// (healKilledHelmOperations). kcp-tmc up runs it.
func Up(ctx context.Context, s auto.Stack, out io.Writer, opts ...optup.Option) error {
	g, err := holdStack(s.Workspace().GetEnvVars()["PULUMI_BACKEND_URL"], s.Workspace().WorkDir(), s.Name(), "up", out)
	if err != nil {
		return err
	}
	defer g.release()
	healKilledHelmOperations(ctx, s, g, out)
	if _, err = s.Up(ctx, opts...); err != nil {
		return err
	}
	if g != nil {
		clearRedoneCreates(ctx, s, g.Locks, out)
	}
	return nil
}

// clearRedoneCreates drops from the state the pending creates a killed up
// left, once an up has redone them all. The engine keeps such a create in
// every later state, even with its resource created since, and warns on
// each up that the resource is "in an unknown state", to be confirmed by
// hand and cleared by a `pulumi refresh` (pulumi v3.274
// deployment_executor.go printPendingOperationsWarning): a person step
// after every killed deploy. After an up that succeeded, a pending create
// whose resource the state holds was redone, and nothing is unknown.
// kcp-tmc then runs the refresh that drops pending creates
// (--clear-pending-creates) of the stack's root alone, so that no resource
// is read. The flag drops them all: it runs only when every pending
// operation is such a create (otherwise the engine's warning stays and
// names them). Only with a local or S3 backend, whose checkpoint kcp-tmc
// reads.
func clearRedoneCreates(ctx context.Context, s auto.Stack, locks *Locks, out io.Writer) {
	c, known := readCheckpoint(locks)
	if !known || len(c.pending) == 0 || c.root == "" {
		return
	}
	urns := make([]string, 0, len(c.pending))
	for _, op := range c.pending {
		if op.op != string(apitype.OperationTypeCreating) || !c.held[op.urn] {
			return
		}
		urns = append(urns, op.urn)
	}
	if _, err := s.Refresh(ctx, optrefresh.ClearPendingCreates(), optrefresh.Target([]string{c.root})); err != nil {
		fmt.Fprintf(out, "the engine will warn of the creates a killed up left pending, which this up redid: clearing "+
			"them failed: %s\n", stderrOf(err))
		return
	}
	fmt.Fprintf(out, "cleared the creates a killed up left pending, which this up redid:\n  %s\n", strings.Join(urns, "\n  "))
}

// healKilledHelmOperations removes Helm's record of the release operation a
// killed up was in the middle of, which the state has as pending, so that
// the next up can do it again:
//   - an install (cert-manager's waits a minute for its webhook) leaves the
//     release pending-install, or deployed if Helm had finished, and the
//     state without it. The next up installs it again under its fixed name,
//     which Helm refuses while a record of that name exists ("cannot re-use
//     a name that is still in use"). Without the record the install runs
//     and takes over the objects the killed one created (they carry Helm's
//     ownership annotations for that release). Only a release with no
//     revision besides that install is touched.
//   - an upgrade leaves its revision pending-upgrade, and Helm refuses every
//     later one ("another operation (install/upgrade/rollback) is in
//     progress"). Without that revision's record the release is back at
//     the revision before, and the next up upgrades it again.
//
// Only with a backend whose locks kcp-tmc reads (g, the stack's hold: a
// local directory or S3), holding the stack's Pulumi lock while it reads
// and removes (g.lockStack: no engine, on any machine, runs beside it), and
// only for a release the state does not hold since: the engine keeps a
// pending create in every later state until a refresh clears it. What it
// cannot do it says, and the up goes on (Helm then refuses as before; the
// runbook says what to delete by hand).
func healKilledHelmOperations(ctx context.Context, s auto.Stack, g *stackGuard, out io.Writer) {
	if g == nil {
		return
	}
	if pending, known := pendingHelmOperation(g.Locks); !known || !pending {
		return
	}
	warn := func(format string, a ...any) {
		fmt.Fprintf(out, "a killed up left a Helm operation pending, which this up cannot redo by itself: "+format+
			" (docs/runbook.md#a-killed-deploy)\n", a...)
	}
	unlock, err := g.lockStack()
	if errors.Is(err, ErrStackInUse) {
		return // the up fails on the lock, naming kcp-tmc unlock
	}
	if err != nil {
		warn("locking the stack: %v", err)
		return
	}
	defer unlock()
	state, err := exportState(ctx, s)
	if err != nil {
		warn("%v", err)
		return
	}
	held := map[string]bool{}
	for _, r := range state.Resources {
		if !r.Delete {
			held[string(r.URN)] = true
		}
	}
	for _, op := range state.PendingOperations {
		r := op.Resource
		creating := op.Type == apitype.OperationTypeCreating
		// A create the state holds since was redone; an update is not kept
		// in later states.
		if r.Type != helmrelease.Type || (creating && held[string(r.URN)]) || (!creating && op.Type != apitype.OperationTypeUpdating) {
			continue
		}
		name, _ := plaintext(r.Inputs["name"])
		namespace, _ := plaintext(r.Inputs["namespace"])
		if name == "" {
			continue // the provider had not named it: no install ran
		}
		cfg, defaultNamespace, err := releaseCluster(state, r.Provider)
		if err != nil {
			warn("release %s: %v", name, err)
			continue
		}
		if namespace == "" {
			namespace = defaultNamespace
		}
		chart, _ := plaintext(r.Inputs["chart"])
		version, _ := plaintext(r.Inputs["version"])
		if err := removeKilledRevision(ctx, cfg, namespace, name, creating, chartRef{chart, version}, out); err != nil {
			warn("%v", err)
		}
	}
}

// stderrOf is what an Automation API error says without the command's
// stdout, which for `stack export --show-secrets` is the state, secrets
// decrypted.
func stderrOf(err error) string {
	msg := err.Error()
	if _, stderr, ok := strings.Cut(msg, "\nstderr: "); ok {
		return strings.TrimSpace(stderr)
	}
	if before, _, ok := strings.Cut(msg, "\nstdout: "); ok {
		return before
	}
	return msg
}

// pendingHelmOperation reports whether the stack's checkpoint has a
// pending operation on a Helm release; known is false when kcp-tmc cannot
// read it (then there is no heal).
func pendingHelmOperation(locks *Locks) (pending, known bool) {
	c, known := readCheckpoint(locks)
	return slices.ContainsFunc(c.pending, func(op pendingOp) bool { return op.resourceType == helmrelease.Type }), known
}

// checkpoint is what kcp-tmc reads of a stack's state before and after
// the engine runs: the operations a killed up left pending, the resources
// held, the stack's root.
type checkpoint struct {
	pending []pendingOp
	held    map[string]bool // URNs of resources not pending deletion
	root    string          // the pulumi:pulumi:Stack URN
}

type pendingOp struct{ op, urn, resourceType string }

// readCheckpoint reads the stack's checkpoint from its local directory or
// bucket, without the engine: `pulumi stack export` took 5.5 s at 100
// clusters (41 MB, secrets decrypted), the file 0.11 s. known is false for
// a backend kcp-tmc does not read (locks nil), or no readable checkpoint.
func readCheckpoint(locks *Locks) (c checkpoint, known bool) {
	if locks == nil {
		return c, false
	}
	raw, err := locks.Checkpoint()
	if err != nil {
		return c, false
	}
	type res struct {
		URN    string `json:"urn"`
		Type   string `json:"type"`
		Delete bool   `json:"delete"`
	}
	var file struct {
		Checkpoint struct {
			Latest struct {
				Resources         []res `json:"resources"`
				PendingOperations []struct {
					Resource res    `json:"resource"`
					Type     string `json:"type"`
				} `json:"pending_operations"`
			} `json:"latest"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return c, false
	}
	latest := file.Checkpoint.Latest
	c.held = make(map[string]bool, len(latest.Resources))
	for _, r := range latest.Resources {
		if !r.Delete {
			c.held[r.URN] = true
		}
		if r.Type == rootType {
			c.root = r.URN
		}
	}
	for _, op := range latest.PendingOperations {
		c.pending = append(c.pending, pendingOp{op: op.Type, urn: op.Resource.URN, resourceType: op.Resource.Type})
	}
	return c, true
}

// rootType is the type of every stack's root resource.
const rootType = "pulumi:pulumi:Stack"

// removeKilledRevision deletes Helm's record of the revision a killed
// install (every record, all of revision 1) or upgrade (the newest, if
// still pending) of namespace/name left.
func removeKilledRevision(ctx context.Context, cfg *rest.Config, namespace, name string, install bool, want chartRef, out io.Writer) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// Helm's default storage: a Secret per revision (pulumi-kubernetes sets no other driver).
	list, err := cs.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + name})
	if err != nil {
		return fmt.Errorf("reading Helm's records of release %s/%s, which a killed up was changing: %w", namespace, name, err)
	}
	records := list.Items
	if len(records) == 0 {
		return fmt.Errorf("release %s/%s has no record in Secrets (a Helm driver other than secret?)", namespace, name)
	}
	if install {
		for _, rec := range records {
			if rec.Labels["version"] != "1" {
				return fmt.Errorf("release %s/%s, which a killed up was installing, has revision %s too: it is not only that install, "+
					"so kcp-tmc leaves it; import it into the stack or uninstall it (docs/runbook.md#a-killed-deploy)", namespace, name, rec.Labels["version"])
			}
		}
	} else {
		newest := slices.MaxFunc(records, func(a, b corev1.Secret) int { return cmp.Compare(revision(a), revision(b)) })
		records = nil
		if strings.HasPrefix(newest.Labels["status"], "pending-") {
			records = []corev1.Secret{newest}
		}
	}
	for _, rec := range records {
		if got, err := recordChart(rec); err != nil || !want.matches(got) {
			return fmt.Errorf("release %s/%s revision %s is not of the chart the killed up was installing (%s; the record: %s, %v), "+
				"so kcp-tmc leaves it", namespace, name, rec.Labels["version"], want, got, err)
		}
	}
	for _, rec := range records {
		if err := cs.CoreV1().Secrets(namespace).Delete(ctx, rec.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("removing Helm's record %s, left by a killed up: %w", rec.Name, err)
		}
		fmt.Fprintf(out, "removed Helm's record of release %s/%s revision %s (%s), left by a killed up: this up does it again\n",
			namespace, name, rec.Labels["version"], rec.Labels["status"])
	}
	return nil
}

// chartRef is a chart's name and version.
type chartRef struct{ Name, Version string }

func (c chartRef) String() string { return c.Name + " " + c.Version }

// matches: a Release's chart input may be a repository path
// ("jetstack/cert-manager") or a chart archive's URL; its version may be
// unset (the newest).
func (c chartRef) matches(record chartRef) bool {
	name := c.Name[strings.LastIndex(c.Name, "/")+1:]
	archive, isArchive := strings.CutSuffix(name, ".tgz") // <name>-<version>.tgz
	return (name == record.Name || isArchive && strings.HasPrefix(archive, record.Name+"-")) && (c.Version == "" || c.Version == record.Version)
}

// recordChart reads the chart of a Helm record: the Secret's "release",
// base64 of gzipped JSON (helm v3 pkg/storage/driver/util.go).
func recordChart(rec corev1.Secret) (chartRef, error) {
	raw, err := base64.StdEncoding.DecodeString(string(rec.Data["release"]))
	if err != nil {
		return chartRef{}, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return chartRef{}, err
	}
	var rel struct {
		Chart struct {
			Metadata chartRef `json:"metadata"`
		} `json:"chart"`
	}
	if err := json.NewDecoder(zr).Decode(&rel); err != nil {
		return chartRef{}, err
	}
	return rel.Chart.Metadata, nil
}

// revision is the revision a Helm record holds (0 if unreadable).
func revision(rec corev1.Secret) int {
	n, _ := strconv.Atoi(rec.Labels["version"])
	return n
}

// releaseCluster is the cluster of the Kubernetes provider ref (the
// state's "<urn>::<id>") and its default namespace, from the provider's
// inputs as the provider reads them: kubeconfig (contents or a path) and
// context, else the ambient configuration.
func releaseCluster(state apitype.DeploymentV3, ref string) (*rest.Config, string, error) {
	var inputs map[string]any
	for _, r := range state.Resources {
		if string(r.URN)+"::"+string(r.ID) == ref {
			inputs = r.Inputs
		}
	}
	if inputs == nil {
		return nil, "", fmt.Errorf("its provider %s is not in the state", ref)
	}
	kubeconfig, _ := plaintext(inputs["kubeconfig"])
	kubeContext, _ := plaintext(inputs["context"])
	cluster, _ := plaintext(inputs["cluster"])
	namespace, _ := plaintext(inputs["namespace"])
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kubeContext}
	overrides.Context.Cluster = cluster
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	var cc clientcmd.ClientConfig
	switch _, statErr := os.Stat(kubeconfig); {
	case strings.Contains(kubeconfig, "\n"): // contents, as kcp-tmc's providers get it
		raw, err := clientcmd.Load([]byte(kubeconfig))
		if err != nil {
			return nil, "", fmt.Errorf("its provider's kubeconfig: %w", err)
		}
		cc = clientcmd.NewNonInteractiveClientConfig(*raw, kubeContext, overrides, nil)
	case kubeconfig != "" && statErr != nil:
		return nil, "", fmt.Errorf("its provider's kubeconfig file: %w", statErr)
	default:
		rules.ExplicitPath = kubeconfig
		cc = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("its provider's cluster: %w", err)
	}
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil || namespace == "" {
			namespace = "default"
		}
	}
	return cfg, namespace, nil
}

// plaintext is a state value as a string: plain, or a secret the export
// showed ({"4dabf18193072939515e22adb298388d": …, "plaintext": "<JSON>"}).
func plaintext(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case map[string]any:
		p, ok := v["plaintext"].(string)
		if !ok {
			return "", false
		}
		var s string
		if err := json.Unmarshal([]byte(p), &s); err != nil {
			return "", false
		}
		return s, true
	}
	return "", false
}
