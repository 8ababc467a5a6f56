package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/loopback"
)

// objects are the Kubernetes objects a program run registered.
type objects []map[string]any

// get returns the object of kind and name, failing the test if absent.
func (o objects) get(t testing.TB, kind, name string) map[string]any {
	t.Helper()
	for _, m := range o {
		if m["kind"] == kind && mocktest.Dig(m, "metadata", "name") == name {
			return m
		}
	}
	t.Fatalf("the stack renders no %s %s", kind, name)
	return nil
}

// find returns the Deployment named name, or nil.
func (o objects) find(name string) map[string]any {
	for _, m := range o {
		if m["kind"] == "Deployment" && mocktest.Dig(m, "metadata", "name") == name {
			return m
		}
	}
	return nil
}

// data is a Secret's or ConfigMap's content (stringData, or decoded data).
func (o objects) data(t testing.TB, kind, name string) map[string]string {
	t.Helper()
	m := o.get(t, kind, name)
	out := map[string]string{}
	for k, v := range asMap(m["data"]) {
		s := fmt.Sprint(v)
		if kind == "Secret" {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("Secret %s key %s: %v", name, k, err)
			}
			s = string(b)
		}
		out[k] = s
	}
	for k, v := range asMap(m["stringData"]) {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// machine maps what a pod sees in the cluster to this machine: every port
// a workload's containers or Services expose to a free loopback port of its
// own (two shards both listen on 6443, two etcd clusters on 2379), and every
// in-cluster or public host name to localhost. Nothing else of what the
// stack renders changes.
type machine struct {
	ports map[endpoint]int
	// services maps a Service to the workload its selector picks.
	services map[string]string
	// ingress maps each public host name (the stack's Ingress rules: the
	// front door, each shard's own address) to the endpoint it leads to.
	ingress    map[string]endpoint
	publicHost string
	hosts      *regexp.Regexp
	// httpsHosts are https:// URLs without a port (443).
	httpsHosts *regexp.Regexp
}

// endpoint is a port of a workload's pods (a Deployment or StatefulSet).
type endpoint struct {
	workload string
	port     int
}

// newMachine maps every workload, Service and Ingress rule of objs;
// publicHost is kcp's public name (the front door).
func newMachine(t testing.TB, objs objects, publicHost string) *machine {
	t.Helper()
	m := &machine{ports: map[endpoint]int{}, services: map[string]string{}, ingress: map[string]endpoint{}, publicHost: publicHost}
	type workload struct {
		labels map[string]any
		ports  map[string]int // container port name → number
	}
	workloads := map[string]workload{}
	for _, o := range objs {
		if o["kind"] != "Deployment" && o["kind"] != "StatefulSet" {
			continue
		}
		name := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
		w := workload{labels: asMap(mocktest.Dig(o, "spec", "template", "metadata", "labels")), ports: map[string]int{}}
		for _, c := range mocktest.List(mocktest.Dig(o, "spec", "template", "spec", "containers")) {
			for _, cp := range mocktest.List(asMap(c)["ports"]) {
				n := int(asMap(cp)["containerPort"].(float64))
				w.ports[fmt.Sprint(asMap(cp)["name"])] = n
				m.ports[endpoint{name, n}] = loopback.MustFreePorts(t, 1)[0]
			}
		}
		workloads[name] = w
	}
	for _, o := range objs {
		if o["kind"] != "Service" {
			continue
		}
		svc := fmt.Sprint(mocktest.Dig(o, "metadata", "name"))
		selector := asMap(mocktest.Dig(o, "spec", "selector"))
		for name, w := range workloads {
			matches := len(selector) > 0
			for k, v := range selector {
				matches = matches && w.labels[k] == v
			}
			if !matches {
				continue
			}
			m.services[svc] = name
			for _, p := range mocktest.List(mocktest.Dig(o, "spec", "ports")) {
				port, target := int(asMap(p)["port"].(float64)), asMap(p)["targetPort"]
				n, named := w.ports[fmt.Sprint(target)]
				if !named {
					n = port
					if f, ok := target.(float64); ok {
						n = int(f)
					}
				}
				if local, ok := m.ports[endpoint{name, n}]; ok {
					m.ports[endpoint{name, port}] = local
				}
			}
		}
	}
	// The public hosts lead where the stack's Ingress rules or TLSRoutes
	// send them (the test stands in for the ingress controller or the
	// Gateway, unless it runs one).
	var hosts []string
	public := func(kind, host string, service, port any) {
		w, ok := m.services[fmt.Sprint(service)]
		if !ok {
			t.Fatalf("%s host %s leads to Service %v, which selects no workload", kind, host, service)
		}
		m.ingress[host] = endpoint{w, int(port.(float64))}
		hosts = append(hosts, regexp.QuoteMeta(host))
	}
	for _, o := range objs {
		switch o["kind"] {
		case "Ingress":
			for _, r := range mocktest.List(mocktest.Dig(o, "spec", "rules")) {
				backend := asMap(mocktest.Dig(r, "http", "paths", 0, "backend", "service"))
				public("Ingress", fmt.Sprint(asMap(r)["host"]), backend["name"], mocktest.Dig(backend, "port", "number"))
			}
		case "TLSRoute":
			backend := asMap(mocktest.Dig(o, "spec", "rules", 0, "backendRefs", 0))
			for _, h := range mocktest.List(mocktest.Dig(o, "spec", "hostnames")) {
				public("TLSRoute", fmt.Sprint(h), backend["name"], backend["port"])
			}
		}
	}
	if _, ok := m.ingress[publicHost]; !ok {
		t.Fatalf("no Ingress rule or TLSRoute for kcp's public host %s", publicHost)
	}
	names := `[a-z0-9-]+(?:\.[a-z0-9-]+)*\.svc(?:\.cluster\.local)?|` + strings.Join(hosts, "|")
	m.hosts = regexp.MustCompile(`(0\.0\.0\.0|localhost|127\.0\.0\.1|` + names + `):(\d+)`)
	m.httpsHosts = regexp.MustCompile(`https://(` + names + `)([/"\s]|$)`)
	return m
}

// local is the loopback port of a workload's port.
func (m *machine) local(t testing.TB, workload string, port int) int {
	t.Helper()
	p, ok := m.ports[endpoint{workload, port}]
	if !ok {
		t.Fatalf("port %d is not one %s's containers or Services expose", port, workload)
	}
	return p
}

// withOwnPorts is a copy of m in which workload's ports are new loopback
// ports: for programs of the same name started more than once (an agent
// per cluster), each listening on its own.
func (m *machine) withOwnPorts(t testing.TB, workload string) *machine {
	t.Helper()
	c := *m
	c.ports = make(map[endpoint]int, len(m.ports))
	renumbered := map[int]int{} // a container port and its Service ports share one local port
	for e, p := range m.ports {
		if e.workload == workload {
			if _, ok := renumbered[p]; !ok {
				renumbered[p] = loopback.MustFreePorts(t, 1)[0]
			}
			p = renumbered[p]
		}
		c.ports[e] = p
	}
	return &c
}

// front is the loopback port of the public address (443).
func (m *machine) front(t testing.TB) int { return m.publicPort(t, m.publicHost) }

// publicPort is the loopback port of a public host name (443 at the ingress).
func (m *machine) publicPort(t testing.TB, host string) int {
	t.Helper()
	e, ok := m.ingress[host]
	if !ok {
		t.Fatalf("no Ingress rule for %s", host)
	}
	return m.local(t, e.workload, e.port)
}

// workloadOf is the workload an in-cluster host name leads to, seen from self's pods.
func (m *machine) workloadOf(t testing.TB, self, host string) string {
	t.Helper()
	if host == "0.0.0.0" || host == "127.0.0.1" || host == "localhost" {
		return self
	}
	// name.ns.svc or member.headless.ns.svc: the Service is the label before the namespace.
	labels := strings.Split(strings.TrimSuffix(strings.TrimSuffix(host, ".cluster.local"), ".svc"), ".")
	if len(labels) < 2 {
		t.Fatalf("host %s is not an in-cluster Service name", host)
	}
	w, ok := m.services[labels[len(labels)-2]]
	if !ok {
		t.Fatalf("host %s: the stack has no Service %s selecting a workload", host, labels[len(labels)-2])
	}
	return w
}

// rewrite maps host:port pairs and listener flags in s, as self's pods see them.
func (m *machine) rewrite(t testing.TB, self, s string) string {
	t.Helper()
	s = m.hosts.ReplaceAllStringFunc(s, func(hp string) string {
		i := strings.LastIndex(hp, ":")
		host, port := hp[:i], hp[i+1:]
		n, _ := strconv.Atoi(port)
		local := "localhost"
		if host == "0.0.0.0" || host == "127.0.0.1" {
			local = "127.0.0.1"
		}
		if _, public := m.ingress[host]; public {
			return local + ":" + strconv.Itoa(m.publicPort(t, host))
		}
		w := m.workloadOf(t, self, host)
		if _, exposed := m.ports[endpoint{w, n}]; !exposed && (host == "localhost" || host == "127.0.0.1") {
			return hp // a service of this machine (the test's OIDC issuer), not of the stack
		}
		return local + ":" + strconv.Itoa(m.local(t, w, n))
	})
	s = m.httpsHosts.ReplaceAllStringFunc(s, func(u string) string {
		sub := m.httpsHosts.FindStringSubmatch(u)
		if _, public := m.ingress[sub[1]]; public {
			return "https://localhost:" + strconv.Itoa(m.publicPort(t, sub[1])) + sub[2]
		}
		return "https://localhost:" + strconv.Itoa(m.local(t, m.workloadOf(t, self, sub[1]), 443)) + sub[2]
	})
	return regexp.MustCompile(`^--secure-port=(\d+)$`).ReplaceAllStringFunc(s, func(f string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(f, "--secure-port="))
		return "--secure-port=" + strconv.Itoa(m.local(t, self, n))
	})
}

// pod is one container of a rendered pod template, with its volumes
// written to a directory and its args mapped to this machine.
type pod struct {
	name      string
	workload  string
	container map[string]any
	args      []string
	env       []string // NAME=value, mapped as args are
	dir       string
	// scratch are the emptyDirs and claims: what a pod on a new node
	// (or a lost volume) starts without.
	scratch []string
}

// materialize writes every volume of the workload's pod template (Secrets
// and ConfigMaps from the stack's own objects; emptyDirs and a
// StatefulSet's claims empty) under dir, and returns
// the first container's command line with mount paths, host names,
// ports and $(VAR) references mapped.
func materialize(t testing.TB, objs objects, m *machine, name string, workload map[string]any, dir string) *pod {
	t.Helper()
	c := asMap(mocktest.Dig(workload, "spec", "template", "spec", "containers", 0))
	return materializeContainer(t, objs, m, name, workload, c, dir)
}

// materializeContainer is materialize for container c of the workload's
// pod template (an init container, or a Job's steps in turn), with its env
// mapped as its args are (pod.env).
func materializeContainer(t testing.TB, objs objects, m *machine, name string, workload, c map[string]any, dir string) *pod {
	t.Helper()
	self := fmt.Sprint(mocktest.Dig(workload, "metadata", "name"))
	template := asMap(mocktest.Dig(workload, "spec", "template"))
	spec := asMap(template["spec"])
	volumes := map[string]map[string]any{}
	for _, v := range mocktest.List(spec["volumes"]) {
		volumes[fmt.Sprint(asMap(v)["name"])] = asMap(v)
	}
	for _, claim := range mocktest.List(mocktest.Dig(workload, "spec", "volumeClaimTemplates")) {
		n := fmt.Sprint(mocktest.Dig(claim, "metadata", "name"))
		volumes[n] = map[string]any{"name": n, "emptyDir": map[string]any{}}
	}
	// Mount paths, longest first, so /x/server-ca is mapped before /x/server.
	type mountMap struct{ from, to string }
	var mounts []mountMap
	for _, vm := range mocktest.List(c["volumeMounts"]) {
		vm := asMap(vm)
		mounts = append(mounts, mountMap{fmt.Sprint(vm["mountPath"]), filepath.Join(dir, fmt.Sprint(vm["name"]))})
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].from) > len(mounts[j].from) })
	// One pass over all of them: a local path must not be mapped again
	// (the pod's /tmp mount would otherwise catch /tmp/...).
	local := map[string]string{}
	var alternatives []string
	for _, mm := range mounts {
		local[mm.from] = mm.to
		alternatives = append(alternatives, regexp.QuoteMeta(mm.from))
	}
	paths := regexp.MustCompile(`(` + strings.Join(alternatives, "|") + `)($|[/,:\s"])`)
	mapPaths := func(s string) string {
		if len(mounts) > 0 {
			s = paths.ReplaceAllStringFunc(s, func(match string) string {
				sub := paths.FindStringSubmatch(match)
				return local[sub[1]] + sub[2]
			})
		}
		return m.rewrite(t, self, s)
	}
	p := &pod{name: name, workload: self, container: c, dir: dir}
	for _, vm := range mocktest.List(c["volumeMounts"]) {
		vname := fmt.Sprint(asMap(vm)["name"])
		v, ok := volumes[vname]
		if !ok {
			t.Fatalf("%s mounts volume %s, which the pod does not define", name, vname)
		}
		vdir := filepath.Join(dir, vname)
		if err := os.MkdirAll(vdir, 0o700); err != nil {
			t.Fatal(err)
		}
		var files map[string]string
		var items []any
		switch {
		case v["secret"] != nil:
			files = objs.data(t, "Secret", fmt.Sprint(asMap(v["secret"])["secretName"]))
			items = mocktest.List(asMap(v["secret"])["items"])
			for k, s := range files {
				files[k] = m.rewrite(t, self, s) // a kubeconfig's server; PEM has no host:port
			}
		case v["configMap"] != nil:
			files = objs.data(t, "ConfigMap", fmt.Sprint(asMap(v["configMap"])["name"]))
			items = mocktest.List(asMap(v["configMap"])["items"])
			for k, s := range files {
				files[k] = mapPaths(s)
			}
		case v["emptyDir"] != nil:
			p.scratch = append(p.scratch, vdir)
			continue
		default:
			t.Fatalf("%s: volume %s is neither a Secret, a ConfigMap nor an emptyDir", name, vname)
		}
		if len(items) > 0 {
			picked := map[string]string{}
			for _, it := range items {
				key, path := fmt.Sprint(asMap(it)["key"]), fmt.Sprint(asMap(it)["path"])
				s, ok := files[key]
				if !ok {
					t.Fatalf("%s: volume %s wants key %s, which its source lacks", name, vname, key)
				}
				picked[path] = s
			}
			files = picked
		}
		for k, s := range files {
			if err := os.WriteFile(filepath.Join(vdir, k), []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := map[string]string{}
	for _, e := range mocktest.List(c["env"]) {
		e := asMap(e)
		switch path := mocktest.Dig(e, "valueFrom", "fieldRef", "fieldPath"); path {
		case "metadata.name":
			env[fmt.Sprint(e["name"])] = name
		case "metadata.namespace":
			env[fmt.Sprint(e["name"])] = fmt.Sprint(mocktest.Dig(workload, "metadata", "namespace"))
		default:
			found := false
			for kind, from := range map[string]string{"Secret": "secretKeyRef", "ConfigMap": "configMapKeyRef"} {
				if ref := asMap(mocktest.Dig(e, "valueFrom", from)); ref != nil {
					v, ok := objs.data(t, kind, fmt.Sprint(ref["name"]))[fmt.Sprint(ref["key"])]
					if !ok {
						t.Fatalf("%s: env %v reads key %v, which %s %v lacks", name, e["name"], ref["key"], kind, ref["name"])
					}
					env[fmt.Sprint(e["name"])], found = v, true
				}
			}
			if found {
				break
			}
			v, ok := e["value"]
			if !ok {
				t.Fatalf("%s: env %v comes from neither a value, a Secret's or ConfigMap's key nor the pod's name or namespace", name, e["name"])
			}
			env[fmt.Sprint(e["name"])] = fmt.Sprint(v)
		}
		p.env = append(p.env, fmt.Sprint(e["name"])+"="+mapPaths(env[fmt.Sprint(e["name"])]))
	}
	// The command's first word is the binary the test is given; the rest
	// (kcp's "start") stays.
	command := mocktest.List(c["command"])
	if len(command) > 1 {
		command = command[1:]
	} else {
		command = nil
	}
	for _, a := range append(command, mocktest.List(c["args"])...) {
		s := fmt.Sprint(a)
		for k, v := range env {
			s = strings.ReplaceAll(s, "$("+k+")", v)
		}
		p.args = append(p.args, mapPaths(s))
	}
	return p
}

// process is a started program; its output goes to a log file.
type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan error
}

// start runs bin with args in dir, with this process's environment plus
// env (a container's, NAME=value).
func start(t testing.TB, name, bin string, args []string, dir string, env ...string) *process {
	t.Helper()
	log := filepath.Join(dir, name+".log")
	// KCP_TMC_E2E_LOGS=dir keeps every program's log after the run (the
	// test's temporary directory goes with it).
	if keep := os.Getenv("KCP_TMC_E2E_LOGS"); keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatalf("KCP_TMC_E2E_LOGS: %v", err)
		}
		log = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log")
	}
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Env = dir, f, f, append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, log: log, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log (last 40 lines):\n%s", name, tail(log, 40))
		}
	})
	return p
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitProbe polls the container's readiness probe as the kubelet does
// (HTTP GET on the named port; HTTPS without verifying the certificate)
// until it answers 2xx, the process exits, or the timeout passes.
func waitProbe(t testing.TB, p *process, pd *pod, m *machine, timeout time.Duration) time.Duration {
	t.Helper()
	probe := asMap(mocktest.Dig(pd.container, "readinessProbe", "httpGet"))
	if probe == nil {
		t.Fatalf("%s has no HTTP readiness probe", pd.name)
	}
	port := 0
	for _, cp := range mocktest.List(pd.container["ports"]) {
		cp := asMap(cp)
		if cp["name"] == probe["port"] || fmt.Sprint(cp["containerPort"]) == fmt.Sprint(probe["port"]) {
			port = int(cp["containerPort"].(float64))
		}
	}
	scheme := strings.ToLower(fmt.Sprint(probe["scheme"]))
	if scheme != "https" {
		scheme = "http"
	}
	url := fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, m.local(t, pd.workload, port), probe["path"])
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // as the kubelet probes
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	began := time.Now()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return time.Since(began)
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited before ready (%v):\n%s", pd.name, err, tail(p.log, 40))
		case <-ctx.Done():
			t.Fatalf("%s not ready at %s after %s (last: %v):\n%s", pd.name, url, timeout, err, tail(p.log, 40))
		case <-time.After(time.Second):
		}
	}
}
