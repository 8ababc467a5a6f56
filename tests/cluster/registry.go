package cluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// PauseImage is the sandbox image containerd runs for every Pod (its
// binary: tests/cluster/cmd/pause).
const PauseImage = "registry.k8s.io/pause:3.10"

// Image is a container image built on this machine from local binaries and
// served under its upstream reference, so Pod specs need no change.
type Image struct {
	// Ref is the reference Pods name, e.g. ghcr.io/kcp-dev/kcp:v0.32.3.
	Ref string
	// Files are copied into the image (binaries: mode 0755).
	Files []File
	// Entrypoint, User and Env are the image config's.
	Entrypoint []string
	User       string
	Env        []string
}

// File is one file of an image: Path inside it, Source on this machine.
type File struct {
	Path, Source string
}

// Registries serves images from in-process registries, one per upstream
// registry host; containerd uses them as that host's mirror.
type Registries struct {
	servers map[string]*http.Server // upstream host → server
	addrs   map[string]string       // upstream host → 127.0.0.1:port
}

// ServeImages builds each image (one layer of its files over a minimal
// root: /etc/passwd with nonroot users, /tmp) and pushes it to the registry
// of its reference's host.
func ServeImages(images []Image) (_ *Registries, err error) {
	r := &Registries{servers: map[string]*http.Server{}, addrs: map[string]string{}}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	for _, img := range images {
		ref, err := name.ParseReference(img.Ref)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Ref, err)
		}
		host := ref.Context().RegistryStr()
		if _, ok := r.addrs[host]; !ok {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			r.servers[host], r.addrs[host] = srv, ln.Addr().String()
		}
		built, err := buildImage(img)
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", img.Ref, err)
		}
		local, err := name.ParseReference(r.addrs[host]+"/"+ref.Context().RepositoryStr()+":"+ref.Identifier(), name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(local, built); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", img.Ref, err)
		}
	}
	return r, nil
}

// WriteHosts writes containerd's registry host configuration (config_path
// layout: <dir>/<host>/hosts.toml) sending each upstream host to its mirror.
func (r *Registries) WriteHosts(dir string) error {
	hosts := make([]string, 0, len(r.addrs))
	for h := range r.addrs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		// Docker Hub's references name docker.io; its registry answers at
		// index.docker.io (go-containerregistry's name for it).
		hostDir, server := h, "https://"+h
		if h == name.DefaultRegistry {
			hostDir, server = "docker.io", "https://registry-1.docker.io"
		}
		if err := os.MkdirAll(filepath.Join(dir, hostDir), 0o755); err != nil {
			return err
		}
		toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", server, "http://"+r.addrs[h])
		if err := os.WriteFile(filepath.Join(dir, hostDir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every registry.
func (r *Registries) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// baseFiles is the minimal root every image gets: users for the UIDs the
// stack and the add-ons run as, and a world-writable /tmp.
var baseFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
	"etc/group":  "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
}

func buildImage(img Image) (v1.Image, error) {
	f, err := os.CreateTemp("", "layer-*.tar")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if err := writeLayer(f, img.Files); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	// The layer is read (and compressed) again on push; keep it in memory.
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, err
	}
	out, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := out.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{
		Entrypoint: img.Entrypoint, User: img.User, WorkingDir: "/",
		Env: append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, img.Env...),
	}
	return mutate.ConfigFile(out, cf)
}

func writeLayer(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	now := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(d string, mode int64) error {
		if d == "." || d == "/" || d == "" || dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: now})
	}
	var parents func(p string) error
	parents = func(p string) error {
		d := path.Dir(p)
		if d == "." || dirs[d] {
			return nil
		}
		if err := parents(d); err != nil {
			return err
		}
		return addDir(d, 0o755)
	}
	if err := addDir("tmp", 0o1777); err != nil {
		return err
	}
	names := make([]string, 0, len(baseFiles))
	for n := range baseFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := parents(n); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(baseFiles[n])), ModTime: now}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, baseFiles[n]); err != nil {
			return err
		}
	}
	for _, f := range files {
		p := strings.TrimPrefix(path.Clean(f.Path), "/")
		if err := parents(p); err != nil {
			return err
		}
		src, err := os.Open(f.Source)
		if err != nil {
			return fmt.Errorf("image file %s: %w", f.Path, err)
		}
		st, err := src.Stat()
		if err != nil {
			src.Close()
			return err
		}
		if !st.Mode().IsRegular() {
			src.Close()
			return errors.New(f.Source + " is not a regular file")
		}
		if err := linkable(f.Source, files); err != nil {
			src.Close()
			return err
		}
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o755, Size: st.Size(), ModTime: now})
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// linkable refuses a dynamically linked ELF binary unless the image holds
// its dynamic loader and every library it needs (by file name): the images
// have no C library of their own, so it would fail with "exec …: no such
// file or directory" (a program only built with cgo, fluent-bit, brings its
// loader and libraries as files).
func linkable(file string, image []File) error {
	e, err := elf.Open(file)
	if err != nil {
		return nil // not an ELF binary (a script or data): nothing to link
	}
	defer e.Close()
	interp := ""
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return fmt.Errorf("%s: its interpreter: %w", file, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		return nil
	}
	has := map[string]bool{}
	for _, f := range image {
		has[path.Clean(f.Path)] = true
		has[path.Base(f.Path)] = true
	}
	libs, err := e.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: its libraries: %w", file, err)
	}
	var missing []string
	for _, need := range append([]string{interp}, libs...) {
		if !has[need] {
			missing = append(missing, need)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s is dynamically linked and the image lacks %s: build it with CGO_ENABLED=0 or add them as files", file, strings.Join(missing, ", "))
	}
	return nil
}
