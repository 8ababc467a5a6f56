package logging

import (
	"bufio"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/esstub"
	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// section is one [SECTION] of fluent-bit's classic configuration format.
type section struct {
	name string
	keys map[string]string
}

// parse reads the classic format strictly: section headers, then
// four-space-indented "Key Value" lines; anything else is an error.
func parse(t *testing.T, conf string) []section {
	t.Helper()
	var out []section
	header := regexp.MustCompile(`^\[([A-Z]+)\]$`)
	entry := regexp.MustCompile(`^    ([A-Za-z0-9_.-]+)\s+(\S.*)$`)
	sc := bufio.NewScanner(strings.NewReader(conf))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
		case header.MatchString(line):
			out = append(out, section{header.FindStringSubmatch(line)[1], map[string]string{}})
		case entry.MatchString(line) && len(out) > 0:
			m := entry.FindStringSubmatch(line)
			if _, dup := out[len(out)-1].keys[m[1]]; dup {
				t.Errorf("line %d: %s repeated in [%s]", n, m[1], out[len(out)-1].name)
			}
			out[len(out)-1].keys[m[1]] = m[2]
		default:
			t.Errorf("line %d is not fluent-bit classic config: %q", n, line)
		}
	}
	return out
}

func find(t *testing.T, ss []section, name, plugin string) map[string]string {
	t.Helper()
	for _, s := range ss {
		if s.name == name && (plugin == "" || s.keys["Name"] == plugin) {
			return s.keys
		}
	}
	t.Fatalf("no [%s] %s", name, plugin)
	return nil
}

func TestConfigParses(t *testing.T) {
	a := Args{ElasticsearchHost: "logs.example.com", Username: "kcp", Password: pulumi.String("x"), TLS: true}.WithDefaults()
	conf := parse(t, Config(a))
	tail := find(t, conf, "INPUT", "tail")
	if tail["Path"] != "/var/log/containers/*.log" || !strings.Contains(tail["multiline.parser"], "cri") || tail["DB"] == "" || tail["Read_from_Head"] != "On" {
		t.Errorf("tail input = %v", tail)
	}
	if k := find(t, conf, "FILTER", "kubernetes"); k["Merge_Log"] != "On" || k["Buffer_Size"] != "0" || k["K8S-Logging.Exclude"] != "Off" || k["Annotations"] != "Off" {
		t.Errorf("kubernetes filter = %v: want JSON merged, no limit on a pod's metadata, no pod hiding its logs", k)
	}
	if svc := find(t, conf, "SERVICE", ""); svc["storage.max_chunks_up"] != "32" || svc["storage.backlog.mem_limit"] == "" || svc["scheduler.cap"] != "300" {
		t.Errorf("service = %v: want memory bounded through an outage and retries at most 5 minutes apart", svc)
	}
	es := find(t, conf, "OUTPUT", "es")
	want := map[string]string{"Index": "kcp-logs", "Host": "${ES_HOST}", "Port": "${ES_PORT}", "HTTP_User": "${ES_USER}", "HTTP_Passwd": "${ES_PASSWORD}", "tls": "On",
		"tls.verify": "On", "tls.verify_hostname": "On", "storage.total_limit_size": BufferLimit, "Retry_Limit": "False", "Trace_Error": "On", "Buffer_Size": "False"}
	for k, v := range want {
		if es[k] != v {
			t.Errorf("es output %s = %q, want %q", k, es[k], v)
		}
	}
	if find(t, conf, "SERVICE", "")["Health_Check"] != "On" {
		t.Error("no health endpoint for the probes")
	}
	if _, ok := es["tls.ca_file"]; ok {
		t.Error("tls.ca_file without logging.caCert: the image's system CAs are what verifies then")
	}
	noAuth := parse(t, Config(Args{ElasticsearchHost: "logs"}.WithDefaults()))
	if _, ok := find(t, noAuth, "OUTPUT", "es")["HTTP_Passwd"]; ok {
		t.Error("password configured without credentials")
	}
	a.CACert = testCA(t)
	if got := find(t, parse(t, Config(a)), "OUTPUT", "es")["tls.ca_file"]; got != CAFile {
		t.Errorf("tls.ca_file = %q with logging.caCert, want %s", got, CAFile)
	}
}

// testCA is a self-signed CA certificate, PEM.
func testCA(t *testing.T) string { return esstub.NewCA(t).PEM }

// TestConfigChangeRollsThePods: fluent-bit reads its files only at start;
// a change of any (the index, the CA) changes the pod template, a change
// of nothing leaves it.
func TestConfigChangeRollsThePods(t *testing.T) {
	revision := func(a Args) (string, map[string]any) {
		rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
			_, err := NewLogging(ctx, "logging", a)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ds := rec.Object(t, "kubernetes:apps/v1:DaemonSet", Name)
		cm := rec.Object(t, "kubernetes:core/v1:ConfigMap", "fluent-bit-config")
		rev, _ := mocktest.Dig(ds, "spec", "template", "metadata", "annotations", ConfigRevision).(string)
		return rev, cm
	}
	base := Args{ElasticsearchHost: "logs.example.com", TLS: true}
	r0, _ := revision(base)
	if again, _ := revision(base); r0 == "" || again != r0 {
		t.Fatalf("revision %q, then %q for the same config", r0, again)
	}
	other := base
	other.Index = "other-logs"
	if r, _ := revision(other); r == r0 {
		t.Error("another index leaves the pod template as it was: running pods keep shipping to the old one")
	}
	withCA := base
	withCA.CACert = testCA(t)
	r, cm := revision(withCA)
	if r == r0 {
		t.Error("a CA added leaves the pod template as it was")
	}
	if mocktest.Dig(cm, "data", "ca.crt") != withCA.CACert {
		t.Errorf("ConfigMap data %v: no ca.crt beside the config (mounted at %s)", cm["data"], CAFile)
	}
}

func TestDaemonSet(t *testing.T) {
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := NewLogging(ctx, "logging", Args{ElasticsearchHost: "logs.example.com", Username: "kcp",
			Password: pulumi.ToSecret(pulumi.String("hunter2")).(pulumi.StringOutput)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ds := rec.Object(t, "kubernetes:apps/v1:DaemonSet", Name)
	c := mocktest.Dig(ds, "spec", "template", "spec", "containers", 0)
	if mocktest.Dig(c, "securityContext", "allowPrivilegeEscalation") != false || mocktest.Dig(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("container security = %v", mocktest.Dig(c, "securityContext"))
	}
	if mocktest.Dig(ds, "spec", "template", "spec", "volumes", 0, "hostPath", "path") != "/var/log" || mocktest.Dig(c, "volumeMounts", 0, "readOnly") != true {
		t.Error("/var/log is not mounted read-only")
	}
	if n := len(mocktest.Dig(ds, "spec", "template", "spec", "volumes").([]any)); n != 3 {
		t.Errorf("%d volumes with the default podLogsDir, want 3: /var/log already holds /var/log/pods", n)
	}
	sec := rec.Named(t, "kubernetes:core/v1:Secret", "logging-credentials")
	if sd := sec.Inputs["stringData"]; !sd.IsSecret() && !sd.ObjectValue()["password"].IsSecret() {
		t.Error("the Elasticsearch password is not a Pulumi secret")
	}
	ns := rec.Object(t, "kubernetes:core/v1:Namespace", Namespace)
	if mocktest.Dig(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "privileged" ||
		mocktest.Dig(ns, "metadata", "labels", "pod-security.kubernetes.io/audit") != "restricted" ||
		mocktest.Dig(ns, "metadata", "annotations", "kcp-tmc.io/policy-exception") == nil {
		t.Errorf("logging namespace = %v", ns["metadata"])
	}
	rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "default-deny")
	role := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kcp-tmc-fluent-bit")
	if got := mocktest.Dig(role, "rules"); !reflect.DeepEqual(got, []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get"}}}) {
		t.Errorf("ClusterRole rules = %v, want get on pods only (what the kubernetes filter reads)", got)
	}
}

// TestPodLogsDirElsewhere: the kubelet's podLogsDir outside /var/log is
// mounted where /var/log/containers' symlinks point, read-only.
func TestPodLogsDirElsewhere(t *testing.T) {
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := NewLogging(ctx, "logging", Args{ElasticsearchHost: "logs.example.com", PodLogsDir: "/data/pod-logs"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := mocktest.Dig(rec.Object(t, "kubernetes:apps/v1:DaemonSet", Name), "spec", "template", "spec")
	var mounted, fromNode bool
	for _, m := range mocktest.Dig(spec, "containers", 0, "volumeMounts").([]any) {
		m := m.(map[string]any)
		mounted = mounted || m["mountPath"] == "/data/pod-logs" && m["readOnly"] == true && m["name"] == "podlogs"
	}
	for _, v := range mocktest.Dig(spec, "volumes").([]any) {
		v := v.(map[string]any)
		fromNode = fromNode || v["name"] == "podlogs" && mocktest.Dig(v, "hostPath", "path") == "/data/pod-logs"
	}
	if !mounted || !fromNode {
		t.Errorf("the node's /data/pod-logs is not mounted read-only at /data/pod-logs: volumes %v, mounts %v",
			mocktest.Dig(spec, "volumes"), mocktest.Dig(spec, "containers", 0, "volumeMounts"))
	}
}

func TestValidate(t *testing.T) {
	ca := testCA(t)
	tests := []struct {
		a           Args
		field, want string
	}{
		{Args{ElasticsearchHost: "https://logs"}, "logging.elasticsearchHost", "without scheme"},
		{Args{}, "logging.elasticsearchHost", "Required value"},
		{Args{ElasticsearchHost: "logs", ElasticsearchPort: 70000}, "logging.elasticsearchPort", "70000: 1 to 65535"},
		{Args{ElasticsearchHost: "logs", Index: "KCP"}, "logging.index", `"KCP": a lowercase`},
		{Args{ElasticsearchHost: "logs", Index: "_kcp"}, "logging.index", "a lowercase Elasticsearch index name"},
		{Args{ElasticsearchHost: "logs", Username: "u"}, "logging.password", "Required value"},
		{Args{ElasticsearchHost: "logs", Image: "fluent-bit:latest"}, "logging.image", "a pinned image"},
		{Args{ElasticsearchHost: "logs", CACert: ca}, "logging.caCert", "only with logging.tls: true"},
		{Args{ElasticsearchHost: "logs", TLS: true, CACert: "not a certificate"}, "logging.caCert", "PEM CA certificates (-----BEGIN CERTIFICATE-----): no certificate"},
		{Args{ElasticsearchHost: "logs", TLS: true, CACert: ca + "trailing"}, "logging.caCert", "text that is not PEM after 1 certificate(s)"},
		{Args{ElasticsearchHost: "logs", TLS: true, CACert: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "logging.caCert", "a PRIVATE KEY block"},
		{Args{ElasticsearchHost: "logs", PodLogsDir: "pods"}, "logging.podLogsDir", `"pods": the nodes' kubelet podLogsDir`},
		{Args{ElasticsearchHost: "logs", PodLogsDir: "/data/pods/"}, "logging.podLogsDir", "an absolute, clean path"},
		{Args{ElasticsearchHost: "logs", PodLogsDir: "/"}, "logging.podLogsDir", "an absolute, clean path"},
		{Args{ElasticsearchHost: "logs", PodLogsDir: "/var"}, "logging.podLogsDir", "not /var/log, a directory holding it"},
		{Args{ElasticsearchHost: "logs", PodLogsDir: "/fluent-bit/etc/pods"}, "logging.podLogsDir", "not /fluent-bit/etc"},
		{Args{ElasticsearchHost: "logs", PodLogsDir: "/var/lib"}, "logging.podLogsDir", "not /var/lib/fluent-bit"},
	}
	for _, dir := range []string{"/var/log/pods", "/var/log/kubelet/pods", "/data/pod-logs", "/var/lib/fluent-bit-pods"} {
		if errs := (Args{ElasticsearchHost: "logs", PodLogsDir: dir}).WithDefaults().Validate(field.NewPath("logging")); len(errs) > 0 {
			t.Errorf("podLogsDir %s refused: %v", dir, errs)
		}
	}
	if errs := (Args{ElasticsearchHost: "logs", TLS: true, CACert: ca + ca}).WithDefaults().Validate(field.NewPath("logging")); len(errs) > 0 {
		t.Fatalf("a bundle of two CAs refused: %v", errs)
	}
	if errs := (Args{ElasticsearchHost: "10.0.0.5"}).WithDefaults().Validate(field.NewPath("logging")); len(errs) > 0 {
		t.Fatalf("valid args refused: %v", errs)
	}
	for _, tt := range tests {
		fieldtest.Expect(t, tt.a.WithDefaults().Validate(field.NewPath("logging")), tt.field, tt.want)
	}
}
