// Command gen-config-docs writes docs/configuration.md, the configuration
// reference, from the Config type of package stacks (its fields' doc
// comments), the environment profiles and the checked-in stack files.
//
//	go run ./hack/gen-config-docs          # from anywhere inside the repository
//	go run ./hack/gen-config-docs -check   # exit 1 if the file is stale
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "", "repository root (default: the directory of the nearest go.mod above the working directory)")
	check := flag.Bool("check", false, "only report whether "+ConfigDocPath+" is current")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gen-config-docs:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	if root == "" {
		var err error
		if root, err = repoRoot(); err != nil {
			return err
		}
	}
	doc, err := ConfigReference(root)
	if err != nil {
		return err
	}
	path := filepath.Join(root, ConfigDocPath)
	if check {
		current, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(current, []byte(doc)) {
			return fmt.Errorf("%s is stale: run go run ./hack/gen-config-docs", ConfigDocPath)
		}
		return nil
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// repoRoot is the nearest directory holding go.mod, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; pass -root")
		}
		dir = parent
	}
}
