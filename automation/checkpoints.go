package automation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// Why an up may skip its checkpoints: with a file or S3 backend the engine
// (pulumi v3.274, backend.SnapshotManager) rewrites the whole state at the
// start and the end of every step, so a first up costs the square of its
// resources (README "Scale" has the figures). What the checkpoints buy is an up killed half-way (no
// chance to write the state at its end) whose work the next up knows. An
// up whose every change the next up simply does again needs none: a
// Kubernetes object with a name of its own is applied again by name
// (server-side, forced: PatchForceEnv) and a delete of one that is gone
// succeeds. A key minted by pulumi-tls, an AWS resource, or an object the
// provider names with a random suffix would be made a second time instead.

// ErrNotRedoable: UpSkippingCheckpoints refused, because the next up could
// not redo some planned change if this one were killed.
var ErrNotRedoable = errors.New("an up killed half-way without checkpoints would leave changes the next up cannot redo")

// Change is one step a preview plans.
type Change struct {
	Op   apitype.OpType
	Type string
	URN  string
	// Custom: a provider's resource (not a component, which has no effect of
	// its own).
	Custom bool
	// Autonamed: the Kubernetes provider picked the object's name (a random
	// suffix), so doing the create again makes a second object.
	Autonamed bool
}

// Changed counts the steps of a preview's summary that would change
// something, as the engine's --expect-no-changes does (v3.274
// engine.HasChanges): reading an existing object back (read, read-discard,
// read-replacement) changes nothing.
func Changed(summary map[apitype.OpType]int) int {
	n := 0
	for op, count := range summary {
		switch op {
		case apitype.OpSame, apitype.OpRead, apitype.OpReadDiscard, apitype.OpReadReplacement:
		default:
			n += count
		}
	}
	return n
}

// noEffect are the steps that change nothing outside the state.
var noEffect = map[apitype.OpType]bool{
	apitype.OpSame: true, apitype.OpRead: true, apitype.OpReadReplacement: true,
	apitype.OpRefresh: true, apitype.OpReadDiscard: true, apitype.OpDiscardReplaced: true,
	apitype.OpRemovePendingReplace: true,
}

// NotRedoable lists ("<op> <type> <name>") the planned changes the next up
// could not redo if an up without checkpoints were killed after them.
func NotRedoable(changes []Change) []string {
	var out []string
	for _, c := range changes {
		if redoable(c) {
			continue
		}
		name := c.URN[strings.LastIndex(c.URN, "::")+2:]
		out = append(out, fmt.Sprintf("%s %s %s", c.Op, c.Type, name))
	}
	return out
}

func redoable(c Change) bool {
	switch {
	case noEffect[c.Op], !c.Custom, strings.HasPrefix(c.Type, "pulumi:providers:"):
		return true
	case !strings.HasPrefix(c.Type, "kubernetes:") || strings.HasPrefix(c.Type, "kubernetes:helm.sh/"):
		// A Helm release is a record of its own, refused when made twice.
		return false
	case c.Op == apitype.OpDelete || c.Op == apitype.OpDeleteReplaced:
		return true
	}
	return !c.Autonamed
}

// changeOf reads a preview's step event.
func changeOf(m apitype.StepEventMetadata) Change {
	c := Change{Op: m.Op, Type: m.Type, URN: m.URN}
	state := m.New
	if state == nil {
		state = m.Old
	}
	if state != nil {
		c.Custom = state.Custom
		c.Autonamed = state.Custom && strings.HasPrefix(m.Type, "kubernetes:") && !hasOwnName(state.Inputs)
	}
	return c
}

// hasOwnName: the program set metadata.name, and the provider did not
// autoname it (it sets the name and marks it in its Check).
func hasOwnName(inputs map[string]any) bool {
	meta, _ := inputs["metadata"].(map[string]any)
	if name, _ := meta["name"].(string); name == "" {
		return false
	}
	annotations, _ := meta["annotations"].(map[string]any)
	return annotations["pulumi.com/autonamed"] != "true"
}

// UpSkippingCheckpoints previews s and, when the next up could redo every
// planned change, runs up with the state written once, at its end
// (PULUMI_SKIP_CHECKPOINTS); otherwise it refuses, naming the changes,
// with ErrNotRedoable and runs nothing. Before the up it says on out how
// many changes are planned and what to do if the up is killed.
func UpSkippingCheckpoints(ctx context.Context, s auto.Stack, out io.Writer, preview []optpreview.Option, up ...optup.Option) error {
	stream := make(chan events.EngineEvent)
	var changes []Change
	read := make(chan struct{})
	go func() {
		defer close(read)
		for e := range stream {
			if e.ResourcePreEvent != nil {
				changes = append(changes, changeOf(e.ResourcePreEvent.Metadata))
			}
		}
	}()
	if _, err := Preview(ctx, s, append(slices.Clip(preview), optpreview.EventStreams(stream))...); err != nil {
		// The stream may not have ended; what it held does not matter now.
		return fmt.Errorf("preview before an up without checkpoints: %w", err)
	}
	<-read // a preview that ran ends its event stream, which closes the channel
	if refused := NotRedoable(changes); len(refused) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrNotRedoable, strings.Join(refused, "\n  "))
	}
	planned := 0
	for _, c := range changes {
		if !noEffect[c.Op] {
			planned++
		}
	}
	fmt.Fprintf(out, "%d changes planned, each one a next up can redo: the state is written once, at the end "+
		"(if this up is killed: up again)\n", planned)
	ws := s.Workspace()
	ws.SetEnvVar(SkipCheckpointsEnv, "true")
	defer ws.UnsetEnvVar(SkipCheckpointsEnv)
	_, err := s.Up(ctx, up...)
	return err
}
