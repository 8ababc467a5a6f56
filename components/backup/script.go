package backup

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

// Script is scripts/etcd-backup.sh: mounted into the CronJobs from a
// ConfigMap and run as is by the DR drill.
//
//go:embed scripts/etcd-backup.sh
var Script string

// WriteScript writes the script into dir (for running it outside a cluster)
// and returns its path.
func WriteScript(dir string) (string, error) {
	path := filepath.Join(dir, "etcd-backup.sh")
	if err := os.WriteFile(path, []byte(Script), 0o755); err != nil {
		return "", fmt.Errorf("writing the backup script: %w", err)
	}
	return path, nil
}
