package automation

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// RepairState undoes what a deploy killed mid-write leaves in a local
// backend. The engine's blob store (gocloud's fileblob) replaces a file
// atomically, but writes its metadata sidecar (<file>.attrs) in place first:
// killed in between, the sidecar is empty and every later read of the file
// fails ("failed to load checkpoint: EOF"). A missing sidecar reads as the
// defaults, so a damaged one is removed. A checkpoint damaged all the same
// (copied by hand, a network filesystem) is restored from the engine's .bak.
// Only the stack's own files are touched (its checkpoint and backups, its
// history, its locks): another stack's may be being written now.
func RepairState(state, stack string, stdout io.Writer) error {
	checkpoint := CheckpointPath(state, stack)
	for _, dir := range []string{filepath.Dir(checkpoint), filepath.Join(state, ".pulumi", "history", ProjectName, stack),
		LocksDir(state, stack)} {
		// The checkpoint's directory holds every stack's: only this one's files.
		only := ""
		if dir == filepath.Dir(checkpoint) {
			only = filepath.Base(checkpoint)
		}
		if err := removeDamagedSidecars(dir, only, stdout); err != nil {
			return err
		}
	}
	return repairCheckpoint(state, stack, stdout)
}

// removeDamagedSidecars removes every metadata sidecar under dir (whose
// name starts with only, if given) that is not the JSON fileblob writes.
func removeDamagedSidecars(dir, only string, stdout io.Writer) error {
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, sidecarExt) || !strings.HasPrefix(d.Name(), only) {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if json.Valid(raw) {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing the damaged %s: %w", path, err)
		}
		fmt.Fprintf(stdout, "removed the damaged metadata file %s: a deploy was killed while writing it\n", path)
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil // no state yet
	}
	return err
}

// sidecarExt is the suffix of fileblob's metadata files (gocloud.dev/blob/fileblob attrs.go).
const sidecarExt = ".attrs"

// repairCheckpoint restores the stack's checkpoint from the engine's own
// backup (<stack>.json.bak, the state before the last write) when it is
// empty or cut short. The next up then finishes what the killed one began.
func repairCheckpoint(state, stack string, stdout io.Writer) error {
	file := CheckpointPath(state, stack)
	raw, err := os.ReadFile(file)
	if err != nil || json.Valid(raw) {
		return nil // no checkpoint yet, or an intact one
	}
	bak, err := os.ReadFile(file + ".bak")
	if err != nil || !json.Valid(bak) {
		return fmt.Errorf("the checkpoint %s is damaged (a deploy was killed while writing it) and has no intact "+
			".bak beside it: restore it from .pulumi/history", file)
	}
	tmp := file + ".repair"
	if err := os.WriteFile(tmp, bak, 0o600); err != nil {
		return fmt.Errorf("restoring the checkpoint: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("restoring the checkpoint: %w", err)
	}
	fmt.Fprintf(stdout, "restored the checkpoint %s from its .bak: a deploy was killed while writing it\n", file)
	return nil
}
